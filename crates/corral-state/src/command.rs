//! Commands: the only way the lock table changes.

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::lock::{LockName, Mode};

/// A command with the time at which the leader proposed it.
///
/// Time enters the state machine only here: `now_ms` is the proposing
/// leader's wall clock in Unix milliseconds. Apply clamps it so that
/// state-machine time never goes backwards, even when a new leader's clock is
/// behind the old one's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing leader's wall-clock time, in Unix milliseconds.
    pub now_ms: u64,
    /// What to do.
    pub command: Command,
}

/// What a client (or the leader itself) asks of the lock table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Create a lease. The id was drawn at random by the node that took the
    /// request.
    GrantLease {
        /// The new lease's id.
        lease_id: LeaseId,
        /// Its time to live, in milliseconds.
        ttl_ms: u64,
    },
    /// End a lease at its client's request, releasing all it holds.
    RevokeLease {
        /// The lease to end.
        lease_id: LeaseId,
    },
    /// End a lease whose deadline passed on the leader, releasing all it
    /// holds.
    ExpireLease {
        /// The lease to end.
        lease_id: LeaseId,
    },
    /// Take a lock, or join its queue when `wait_ms` is above zero.
    Acquire {
        /// The lease that will hold the lock.
        lease_id: LeaseId,
        /// The lock.
        name: LockName,
        /// Exclusive or shared.
        #[serde(default)]
        mode: Mode,
        /// How long the request may wait; 0 asks for a grant or a refusal
        /// now.
        wait_ms: u64,
    },
    /// Give up a held lock, handing it to the next waiter.
    Release {
        /// The holding lease.
        lease_id: LeaseId,
        /// The lock.
        name: LockName,
    },
    /// Leave a lock's queue because the wait ran out. If the grant won the
    /// race, the grant is the answer.
    CancelWait {
        /// The waiting lease.
        lease_id: LeaseId,
        /// The lock.
        name: LockName,
    },
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} at {}", self.command, self.now_ms)
    }
}
