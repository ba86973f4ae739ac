//! Locks, their holders and their FIFO wait queues.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::token::FencingToken;

/// The longest lock name, in bytes.
pub const LOCK_NAME_BYTES_MAX: usize = 512;

/// A lock name: 1 to 512 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct LockName(String);

/// Why a string is not a lock name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockNameError {
    /// The name is the empty string.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than [`LOCK_NAME_BYTES_MAX`].
    #[error("must be at most {LOCK_NAME_BYTES_MAX} bytes, got {0}")]
    TooLong(usize),
    /// The name holds a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl LockName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<LockName, LockNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(LockNameError::Empty);
        }
        if name.len() > LOCK_NAME_BYTES_MAX {
            return Err(LockNameError::TooLong(name.len()));
        }
        if name.chars().any(char::is_control) {
            return Err(LockNameError::ControlCharacter);
        }
        Ok(LockName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<LockName> for String {
    fn from(name: LockName) -> String {
        name.0
    }
}

impl TryFrom<String> for LockName {
    type Error = LockNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        LockName::new(s)
    }
}

/// One grant of a lock to a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The lock granted.
    pub name: LockName,
    /// The lease that holds it.
    pub lease_id: LeaseId,
    /// The token this grant took.
    pub fencing_token: FencingToken,
    /// State-machine time of the grant.
    pub granted_at_ms: u64,
}

/// A lease waiting in a lock's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// The waiting lease.
    pub lease_id: LeaseId,
    /// State-machine time at which it joined the queue.
    pub queued_at_ms: u64,
    /// State-machine time after which the leader may cancel the wait if the
    /// request that asked for it has not done so itself (its node died or the
    /// client went away).
    pub deadline_ms: u64,
}

/// A lock: its holder, if any, and the leases waiting for it, in arrival
/// order.
///
/// Invariant: a lock with waiters has a holder (a free lock is granted to the
/// head of its queue in the same command that frees it), and a lock with
/// neither is removed from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The current grant, if the lock is held.
    pub holder: Option<Grant>,
    /// The wait queue, oldest first.
    pub waiters: VecDeque<Waiter>,
}

impl Lock {
    /// The position (0 is next) of `lease_id` in the queue, if it waits.
    pub fn position(&self, lease_id: LeaseId) -> Option<usize> {
        self.waiters.iter().position(|w| w.lease_id == lease_id)
    }
}
