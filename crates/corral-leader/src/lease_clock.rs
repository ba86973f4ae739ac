//! Lease deadlines, kept by the leader in memory.
//!
//! Keepalives are not log entries: the leader renews a lease's deadline here
//! after confirming it is still leader, and proposes an expiry when a
//! deadline passes. The deadlines belong to one leader term. When the term
//! changes they are dropped, and every lease gets a full ttl from the moment
//! this node sees it as leader: a new leader knows nothing of the old one's
//! deadlines, so leases expire late, never early.
//!
//! Once an expiry is proposed the lease is `expiring` and keepalives for it
//! are refused, so no client holds an ack for a lease about to vanish. The
//! mark is lifted only when raft refused the proposal before appending it
//! (not leader, or its quorum lease ran out); an entry that was appended
//! either commits in its term or the term ends. Terms only move forward: a
//! call for an older term changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use corral_state::LeaseId;
use tokio::time::Instant;

/// Deadlines of the current leader term.
#[derive(Default)]
pub struct LeaseClock {
    inner: Mutex<Deadlines>,
}

#[derive(Default)]
struct Deadlines {
    /// The leader term these deadlines belong to.
    term: Option<u64>,
    /// When each known lease is due.
    due_at: BTreeMap<LeaseId, Instant>,
    /// Leases whose expiry has been proposed in this term.
    expiring: BTreeSet<LeaseId>,
}

impl Deadlines {
    /// Moves to `term` if it is newer; false if `term` is older than the
    /// deadlines kept.
    fn enter_term(&mut self, term: u64) -> bool {
        match self.term {
            Some(current) if current > term => false,
            Some(current) if current == term => true,
            _ => {
                *self = Deadlines {
                    term: Some(term),
                    ..Deadlines::default()
                };
                true
            }
        }
    }
}

/// What a keepalive did to a lease's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The deadline is `now + ttl`.
    Renewed,
    /// The lease's expiry is under way; refuse the keepalive.
    Expiring,
    /// The term is older than the deadlines kept: this node's view of its
    /// leadership is stale; nothing changed.
    StaleTerm,
}

impl LeaseClock {
    /// Renews `lease_id` to `now + ttl` in leader term `term`.
    pub fn renew(&self, term: u64, lease_id: LeaseId, ttl: Duration, now: Instant) -> Renewal {
        let mut d = self.lock();
        if !d.enter_term(term) {
            return Renewal::StaleTerm;
        }
        if d.expiring.contains(&lease_id) {
            return Renewal::Expiring;
        }
        d.due_at.insert(lease_id, now + ttl);
        Renewal::Renewed
    }

    /// Lifts the expiring mark of a lease whose expiry raft refused without
    /// appending it, so that the next sweep proposes it again.
    pub fn unmark(&self, term: u64, lease_id: LeaseId) {
        let mut d = self.lock();
        if d.term == Some(term) {
            d.expiring.remove(&lease_id);
        }
    }

    /// Brings the deadlines in line with the live leases (a lease first seen
    /// gets a full ttl from `now`), then marks as expiring and returns at
    /// most `max` leases whose deadline has passed.
    pub fn take_due(
        &self,
        term: u64,
        live: impl Iterator<Item = (LeaseId, Duration)>,
        now: Instant,
        max: usize,
    ) -> Vec<LeaseId> {
        let mut d = self.lock();
        if !d.enter_term(term) {
            return Vec::new();
        }
        let mut seen = BTreeSet::new();
        for (lease_id, ttl) in live {
            seen.insert(lease_id);
            d.due_at.entry(lease_id).or_insert(now + ttl);
        }
        d.due_at.retain(|id, _| seen.contains(id));
        d.expiring.retain(|id| seen.contains(id));
        let mut due: Vec<LeaseId> = d
            .due_at
            .iter()
            .filter(|&(id, at)| *at <= now && !d.expiring.contains(id))
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        due.sort();
        d.expiring.extend(due.iter().copied());
        due
    }

    /// Forgets every deadline: this node is not leader.
    pub fn clear(&self) {
        *self.lock() = Deadlines::default();
    }

    /// How many leases have an expiry proposed and not yet applied.
    #[cfg(test)]
    pub fn expiring_count(&self) -> usize {
        self.lock().expiring.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.inner
            .lock()
            .expect("lease clock lock is never poisoned")
    }
}

#[cfg(test)]
#[path = "lease_clock_test.rs"]
mod tests;
