//! Leases: ownership tied to a living client.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::compact::NameSet;
use crate::lock::{Kind, LockName, Mode};

/// A lease id: 128 random bits, drawn by the node that takes the request
/// before it proposes, so replicas agree and ids cannot be guessed.
///
/// Written as 32 lowercase hex digits.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
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
    /// The order in which this lease promised to take its locks.
    #[serde(default)]
    pub lock_order: LockOrder,
    /// How long the locks of this lease stay unavailable after it expires
    /// (not after a release or a revoke), in milliseconds.
    #[serde(default)]
    pub lock_delay_ms: u64,
    /// Locks this lease holds.
    pub holds: NameSet,
    /// Locks whose queues this lease waits in.
    pub waits: NameSet,
    /// Semaphores this lease holds permits of.
    #[serde(default)]
    pub sem_holds: NameSet,
    /// Semaphores whose queues this lease waits in.
    #[serde(default)]
    pub sem_waits: NameSet,
    /// Elections this lease leads.
    #[serde(default)]
    pub leads: NameSet,
    /// Elections this lease is a waiting candidate in.
    #[serde(default)]
    pub campaigns: NameSet,
    /// The acquire-all requests this lease waits for. Each of their waited
    /// names is also in `waits`. A `ThinVec`, one pointer where a `Vec`
    /// takes three: almost every lease has none, and a million leases
    /// each carry it.
    #[serde(default)]
    pub groups: ThinVec<WaitGroup>,
    /// The token that granted it, when auth was on: only that token (or a
    /// cluster admin) may keep it alive, use it or revoke it, or see its
    /// id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::auth::TokenName>,
}

impl Lease {
    /// The names of `kind` this lease holds.
    pub fn held(&self, kind: Kind) -> &NameSet {
        match kind {
            Kind::Lock => &self.holds,
            Kind::Semaphore => &self.sem_holds,
            Kind::Election => &self.leads,
        }
    }

    /// The names of `kind` whose queues this lease waits in.
    pub fn waited(&self, kind: Kind) -> &NameSet {
        match kind {
            Kind::Lock => &self.waits,
            Kind::Semaphore => &self.sem_waits,
            Kind::Election => &self.campaigns,
        }
    }

    pub(crate) fn held_mut(&mut self, kind: Kind) -> &mut NameSet {
        match kind {
            Kind::Lock => &mut self.holds,
            Kind::Semaphore => &mut self.sem_holds,
            Kind::Election => &mut self.leads,
        }
    }

    pub(crate) fn waited_mut(&mut self, kind: Kind) -> &mut NameSet {
        match kind {
            Kind::Lock => &mut self.waits,
            Kind::Semaphore => &mut self.sem_waits,
            Kind::Election => &mut self.campaigns,
        }
    }

    /// How many locks, semaphores and elections it holds and waits for,
    /// together.
    pub fn load(&self) -> usize {
        Kind::ALL
            .iter()
            .map(|kind| self.held(*kind).len() + self.waited(*kind).len())
            .sum()
    }

    /// The acquire-all request that queued this lease for `name`, if any.
    pub fn group_of(&self, name: &LockName) -> Option<&WaitGroup> {
        self.groups.iter().find(|g| g.waiting.contains(name))
    }
}

/// The order a lease promised to take its locks in. An acquire that breaks
/// it is refused, so leases that keep an order can never wait in a circle.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockOrder {
    /// Only the cluster's ranks (if any) apply.
    #[default]
    None,
    /// Besides the cluster's ranks, names are taken in byte order: a lease
    /// never takes a name below one it holds or waits for.
    Lexicographic,
}

/// One waiting acquire-all request: every name it asked for, all granted in
/// one command or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitGroup {
    /// Every name of the request, including those the lease already held
    /// when it asked.
    pub names: BTreeSet<LockName>,
    /// The names it queued for: those it did not hold. Each is in the
    /// lease's `waits`, and in no other group's `waiting`. (Absent from
    /// snapshots written before it existed; rebuilt on restore.)
    #[serde(default)]
    pub waiting: BTreeSet<LockName>,
    /// The mode of every grant.
    pub mode: Mode,
}

#[cfg(test)]
#[path = "lease_test.rs"]
mod tests;
