//! Locks, their holders and their FIFO wait queues.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compact::Holders;
use crate::lease::LeaseId;
use crate::token::FencingToken;

/// The longest lock name, in bytes.
pub const LOCK_NAME_BYTES_MAX: usize = 512;

/// A lock name: 1 to 512 bytes of UTF-8 without control characters.
///
/// Shared, not copied, when cloned: a held lock's name is in the table, in
/// its grant and in its lease.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockName(Arc<str>);

impl Serialize for LockName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

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

/// Decodes a name straight from the decoder's string: one allocation (the
/// shared name itself), where going through a `String` took two.
impl<'de> Deserialize<'de> for LockName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(LockNameVisitor)
    }
}

struct LockNameVisitor;

impl serde::de::Visitor<'_> for LockNameVisitor {
    type Value = LockName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a lock name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<LockName, E> {
        LockName::new(name).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<LockName, E> {
        let name = std::str::from_utf8(bytes)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(bytes), &self))?;
        self.visit_str(name)
    }
}

impl LockName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl AsRef<str>) -> Result<LockName, LockNameError> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(LockNameError::Empty);
        }
        if name.len() > LOCK_NAME_BYTES_MAX {
            return Err(LockNameError::TooLong(name.len()));
        }
        if name.chars().any(char::is_control) {
            return Err(LockNameError::ControlCharacter);
        }
        Ok(LockName(Arc::from(name)))
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
        name.0.to_string()
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
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
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

/// Which of the two namespaces a name lives in: locks (exclusive or
/// shared) or counting semaphores. The same name may be a lock and a
/// semaphore at once; they have nothing to do with each other.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A lock: one exclusive holder or many shared ones.
    #[default]
    Lock,
    /// A counting semaphore: holders share a fixed number of permits.
    Semaphore,
    /// An election: one leader with a value, candidates queued behind it.
    Election,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::Lock, Kind::Semaphore, Kind::Election];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Lock => "lock",
            Kind::Semaphore => "semaphore",
            Kind::Election => "election",
        })
    }
}

/// One grant of a lock (or of permits of a semaphore) to a lease.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The lock or semaphore granted.
    pub name: LockName,
    /// The lease that holds it.
    pub lease_id: LeaseId,
    /// How it holds it; semaphore grants are shared.
    pub mode: Mode,
    /// Permits held: 1 for a lock, 1 or more for a semaphore.
    #[serde(default = "one")]
    pub permits: u32,
    /// An election leader's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The token this grant took.
    pub fencing_token: FencingToken,
    /// State-machine time of the grant.
    pub granted_at_ms: u64,
}

fn one() -> u32 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a request asks to hold: the mode, the permits and, for an
/// election, the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) mode: Mode,
    pub(crate) permits: u32,
    pub(crate) value: Option<String>,
}

impl Claim {
    /// One exclusive or shared hold of a lock.
    pub(crate) fn lock(mode: Mode) -> Claim {
        Claim {
            mode,
            permits: 1,
            value: None,
        }
    }
}

impl Waiter {
    /// What the waiter asks to hold.
    pub(crate) fn claim(&self) -> Claim {
        Claim {
            mode: self.mode,
            permits: self.permits,
            value: self.value.clone(),
        }
    }
}

/// A lease waiting in a lock's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// The lease that waits; a lease is at most once in one queue.
    pub lease_id: LeaseId,
    /// The mode it asks for.
    pub mode: Mode,
    /// Permits it asks for: 1 for a lock.
    #[serde(default = "one")]
    pub permits: u32,
    /// An election candidate's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether it waits as part of an acquire-all: then it is granted only
    /// together with the lease's other waits of that request, and holds its
    /// place in every one of those queues until then.
    #[serde(default, skip_serializing_if = "is_false")]
    pub grouped: bool,
    /// State-machine time at which it joined the queue.
    pub queued_at_ms: u64,
    /// State-machine time after which the leader may cancel the wait if the
    /// request that asked for it has not done so itself (its node died or the
    /// client went away).
    pub deadline_ms: u64,
}

/// A lock or a semaphore: its holders and the leases waiting for it, in
/// arrival order.
///
/// A semaphore is a lock whose holders are all shared and share `limit`
/// permits. Invariants: the holders are one exclusive grant or any number
/// of shared ones, and never more permits than the limit; the head of the
/// queue is not admissible, unless the lock is under lock-delay or the head
/// waits for an acquire-all that another queue holds back (a lock that frees
/// up grants its queue head in the same command); a lock with no holder, no
/// waiter and no delay is removed from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The current grants, by lease.
    pub holders: Holders,
    /// The wait queue, oldest first.
    pub waiters: VecDeque<Waiter>,
    /// For a semaphore, the number of permits, fixed by the acquire that
    /// created it and kept while it is held or waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// While above 0, state-machine time until which the lock grants
    /// nothing because a holder's lease expired with a lock-delay.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delayed_until_ms: u64,
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

    /// Whether a grant of `permits` in `mode` fits beside the current
    /// holders now. A lock under lock-delay admits nothing.
    pub fn admits(&self, mode: Mode, permits: u32) -> bool {
        if self.delayed_until_ms > 0 {
            return false;
        }
        match (self.limit, mode) {
            (Some(limit), _) => {
                u64::from(self.permits_held()) + u64::from(permits) <= u64::from(limit)
            }
            (None, Mode::Exclusive) => self.holders.is_empty(),
            (None, Mode::Shared) => self.holders.values().all(|g| g.mode == Mode::Shared),
        }
    }

    /// Whether the queue head could be granted here, leaving aside the
    /// other queues of an acquire-all.
    pub fn head_fits(&self) -> bool {
        self.waiters
            .front()
            .is_some_and(|head| self.admits(head.mode, head.permits))
    }

    /// The permits held, summed over the holders.
    pub fn permits_held(&self) -> u32 {
        self.holders.values().map(|g| g.permits).sum()
    }

    /// Whether nothing keeps the lock in the table.
    pub fn is_unused(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty() && self.delayed_until_ms == 0
    }

    /// The newest token the lock is held under.
    pub fn newest_token(&self) -> Option<FencingToken> {
        self.holders.values().map(|g| g.fencing_token).max()
    }
}

#[cfg(test)]
#[path = "lock_test.rs"]
mod tests;
