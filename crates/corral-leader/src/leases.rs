//! The leader's lease rules over the applied table, shared by the server
//! and the simulation: which leases a keepalive renews, which leases a
//! sweep expires, and what the lease clock learns as commands apply.

use std::time::Duration;

use corral_raft::{AppliedState, Notice};
use corral_state::{LeaseChange, LeaseId, LockTable};
use tokio::time::Instant;

use crate::{LeaseClock, LiveLeases, Renewal};

impl LiveLeases for LockTable {
    fn each(&self) -> impl Iterator<Item = (LeaseId, Duration)> {
        self.leases()
            .map(|(id, lease)| (*id, Duration::from_millis(lease.ttl_ms)))
    }

    fn is_live(&self, lease_id: LeaseId) -> bool {
        self.lease(lease_id).is_some()
    }
}

/// Renews `lease_ids` in leader term `term`: one answer per lease, in
/// order, with its ttl in milliseconds, or `None` when the lease is gone or
/// its expiry is under way. `None` for the whole batch when `term` is older
/// than the deadlines kept: this node's view of its leadership is stale.
///
/// The caller must first confirm with a quorum that it leads (a read
/// index): a deposed leader that still believes it leads must never ack.
/// Each lease is read and renewed under one read of `state`, so an expiry
/// cannot apply (and its mark be dropped) in between.
pub fn renew_leases(
    clock: &LeaseClock,
    term: u64,
    state: &AppliedState,
    lease_ids: &[LeaseId],
    now: Instant,
) -> Option<Vec<Option<u64>>> {
    let mut answers = Vec::with_capacity(lease_ids.len());
    for &lease_id in lease_ids {
        let Some(lease) = state.table.lease(lease_id) else {
            answers.push(None);
            continue;
        };
        let ttl_ms = lease.ttl_ms;
        match clock.renew(term, lease_id, Duration::from_millis(ttl_ms), now) {
            Renewal::Renewed => answers.push(Some(ttl_ms)),
            Renewal::Expiring => answers.push(None),
            Renewal::StaleTerm => return None,
        }
    }
    debug_assert_eq!(answers.len(), lease_ids.len());
    Some(answers)
}

/// At most `max` leases of `state` whose deadline in leader term `term` has
/// passed, now marked as expiring: the sweep proposes their expiry, bound to
/// `term`. A lease first seen gets a full ttl from `now`.
pub fn due_leases(
    clock: &LeaseClock,
    term: u64,
    state: &AppliedState,
    now: Instant,
    max: usize,
) -> Vec<LeaseId> {
    clock.take_due(term, &state.table, now, max)
}

/// Tells `clock` what an applied entry or an installed snapshot did to the
/// leases: every notice of a node's state machine goes through here, so
/// that the leader's sweep need not walk the table to find new leases.
pub fn learn_leases(clock: &LeaseClock, notice: &Notice<'_>) {
    match notice {
        Notice::Applied {
            lease_change: Some(change),
            ..
        } => match *change {
            LeaseChange::Granted { lease_id, ttl_ms } => {
                clock.lease_granted(lease_id, Duration::from_millis(ttl_ms));
            }
            LeaseChange::Ended { lease_id, .. } => clock.lease_ended(lease_id),
            LeaseChange::Replaced => clock.table_replaced(),
        },
        Notice::Applied { .. } => {}
        Notice::Restored(_) => clock.table_replaced(),
    }
}

#[cfg(test)]
#[path = "leases_test.rs"]
mod tests;
