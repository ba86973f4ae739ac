//! Leases: ownership tied to a living client.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::lock::LockName;

/// A lease id: 128 random bits, drawn by the node that takes the request
/// before it proposes, so replicas agree and ids cannot be guessed.
///
/// Written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct LeaseId(pub u128);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

/// Why a string is not a lease id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a lease id is 32 hex digits")]
pub struct LeaseIdError;

impl FromStr for LeaseId {
    type Err = LeaseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LeaseIdError);
        }
        u128::from_str_radix(s, 16)
            .map(LeaseId)
            .map_err(|_| LeaseIdError)
    }
}

impl From<LeaseId> for String {
    fn from(id: LeaseId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for LeaseId {
    type Error = LeaseIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A lease as the replicated state knows it.
///
/// Deadlines are not here: keepalives are served by the leader from memory
/// and never logged, so only the leader knows when a lease is due. Expiry
/// reaches the state machine as a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Time to live granted at each keepalive, in milliseconds.
    pub ttl_ms: u64,
    /// State-machine time at which the lease was granted.
    pub granted_at_ms: u64,
    /// Locks this lease holds.
    pub holds: BTreeSet<LockName>,
    /// Locks whose queues this lease waits in.
    pub waits: BTreeSet<LockName>,
}
