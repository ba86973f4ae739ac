//! Locks, their holders and their FIFO wait queues.

use std::collections::{BTreeMap, VecDeque};
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

/// How a lock is held: by one exclusive holder, or by any number of shared
/// holders.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The only holder (a writer).
    #[default]
    Exclusive,
    /// One of many holders, none of them exclusive (a reader).
    Shared,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        })
    }
}

/// One grant of a lock to a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The lock granted.
    pub name: LockName,
    /// The lease that holds it.
    pub lease_id: LeaseId,
    /// How it holds it.
    pub mode: Mode,
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
    /// The mode it asks for.
    pub mode: Mode,
    /// State-machine time at which it joined the queue.
    pub queued_at_ms: u64,
    /// State-machine time after which the leader may cancel the wait if the
    /// request that asked for it has not done so itself (its node died or the
    /// client went away).
    pub deadline_ms: u64,
}

/// A lock: its holders and the leases waiting for it, in arrival order.
///
/// Invariants: the holders are one exclusive grant or any number of shared
/// ones; the head of the queue is never admissible (a lock that frees up
/// grants its queue head in the same command), so a lock with waiters has
/// holders; a lock with neither is removed from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The current grants, by lease.
    pub holders: BTreeMap<LeaseId, Grant>,
    /// The wait queue, oldest first.
    pub waiters: VecDeque<Waiter>,
}

impl Lock {
    /// The position (0 is next) of `lease_id` in the queue, if it waits.
    pub fn position(&self, lease_id: LeaseId) -> Option<usize> {
        self.waiters.iter().position(|w| w.lease_id == lease_id)
    }

    /// The exclusive holder, if the lock is held exclusively.
    pub fn exclusive_holder(&self) -> Option<&Grant> {
        self.holders.values().find(|g| g.mode == Mode::Exclusive)
    }

    /// Whether a grant in `mode` fits beside the current holders.
    pub fn admits(&self, mode: Mode) -> bool {
        match mode {
            Mode::Exclusive => self.holders.is_empty(),
            Mode::Shared => self.holders.values().all(|g| g.mode == Mode::Shared),
        }
    }

    /// The newest token the lock is held under.
    pub fn newest_token(&self) -> Option<FencingToken> {
        self.holders.values().map(|g| g.fencing_token).max()
    }
}
