//! What applying a command answers, and what it tells other waiters.

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::lock::{Grant, LockName, Mode};
use crate::token::FencingToken;

/// The answer to the command's proposer.
pub type Response = Result<Outcome, Refusal>;

/// A command that took effect (or found its effect already there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The lease exists now.
    LeaseGranted {
        /// Its id.
        lease_id: LeaseId,
        /// Its time to live.
        ttl_ms: u64,
    },
    /// The lease is gone; these locks were released.
    LeaseEnded {
        /// The locks it held, now released or handed to their next waiter.
        released: Vec<LockName>,
    },
    /// The lease holds the lock under this grant (new, or the one it
    /// already had).
    Granted(Grant),
    /// The lease waits in the lock's queue.
    Queued {
        /// Its place in the queue; 0 is next.
        position: usize,
        /// The last token handed out when it was queued: its grant will take
        /// a higher one, so any grant at or below this is an older one.
        after_token: FencingToken,
    },
    /// The lock was released (and perhaps handed to the next waiter).
    Released,
    /// The lease no longer waits for the lock and does not hold it.
    WaitCancelled,
}

/// A command refused; the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// No lease with that id (never granted, revoked or expired).
    #[error("lease not found")]
    LeaseNotFound,
    /// A lease with that id exists already.
    #[error("lease id already in use")]
    LeaseExists,
    /// The ttl is outside what the state machine accepts.
    #[error("ttl_ms must be from 1 to {max_ms}")]
    InvalidTtl {
        /// The largest ttl accepted.
        max_ms: u64,
    },
    /// The lock is held by another lease and the request would not wait.
    #[error("lock is held by another lease under token {holder_token}")]
    LockBusy {
        /// The token the lock is held under.
        holder_token: FencingToken,
    },
    /// The lease does not hold the lock.
    #[error("lease does not hold the lock")]
    NotHolder,
    /// Waiting would close a cycle of leases that wait for each other.
    #[error("waiting would deadlock: {}", describe_cycle(cycle))]
    Deadlock {
        /// The cycle, starting with the lease that asked.
        cycle: Vec<WaitEdge>,
    },
    /// The lease holds the lock in the other mode; upgrades and downgrades
    /// are not done in place (release first).
    #[error("the lease holds or waits for the lock in {held} mode")]
    ModeConflict {
        /// The mode it holds.
        held: Mode,
    },
    /// A limit of the state machine was reached.
    #[error("{0}")]
    LimitReached(Limit),
}

/// One edge of the wait-for graph: `lease_id` waits for the lock
/// `waits_for`, which `held_by` holds (or waits for ahead of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEdge {
    /// The waiting lease.
    pub lease_id: LeaseId,
    /// The lock it waits for.
    pub waits_for: LockName,
    /// The lease it waits on.
    pub held_by: LeaseId,
}

fn describe_cycle(cycle: &[WaitEdge]) -> String {
    cycle
        .iter()
        .map(|e| {
            format!(
                "{} waits for {} held by {}",
                e.lease_id, e.waits_for, e.held_by
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bounded collections of the lock table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// [`crate::LEASES_MAX`].
    #[error("too many leases: at most {} may exist", crate::LEASES_MAX)]
    Leases,
    /// [`crate::WAITERS_PER_LOCK_MAX`].
    #[error(
        "too many waiters: at most {} may wait for one lock",
        crate::WAITERS_PER_LOCK_MAX
    )]
    WaitersPerLock,
    /// [`crate::LOCKS_PER_LEASE_MAX`].
    #[error(
        "too many locks: one lease may hold or wait for at most {}",
        crate::LOCKS_PER_LEASE_MAX
    )]
    LocksPerLease,
}

/// Something that happened to a lease other than the proposer's request, for
/// the nodes whose clients wait on it. Events are derived from the log on
/// every replica, so any node can wake its own waiting requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A waiting lease was granted the lock.
    Granted(Grant),
    /// A waiting lease left the queue without a grant because it ended.
    WaitEnded {
        /// The lease that ended.
        lease_id: LeaseId,
        /// The lock it waited for.
        name: LockName,
    },
}

/// The result of applying one proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The answer to the proposer.
    pub response: Response,
    /// What it did to other waiting requests.
    pub events: Vec<Event>,
}
