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
//!
//! A sweep costs what is due and what changed, not what lives. The
//! deadlines are also kept in time order, so that
//! [`LeaseClock::take_due`] takes the earliest until it reaches one still
//! to come. The term's first sweep walks the table and gives every lease
//! a full ttl from then. After that the clock learns of leases as their
//! commands apply on this node ([`LeaseClock::lease_granted`],
//! [`LeaseClock::lease_ended`]): the next sweep gives a lease granted
//! since a full ttl from then, as the walk would have (a keepalive that
//! came first keeps its deadline), and an ended lease is forgotten at
//! once. Only a table replaced whole ([`LeaseClock::table_replaced`]) is
//! walked again. The news of an applied command reaches the clock just
//! after the state lock is released, so a sweep may run in between: a
//! grant then waits for the next sweep (its lease lives longer, never
//! shorter), and so that no gone lease is proposed for expiry, a deadline
//! that passes is checked against the table first; a lease found gone is
//! forgotten there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use corral_state::LeaseId;
use tokio::time::Instant;

/// The live leases, as the clock reads them from the applied table.
pub trait LiveLeases {
    /// Every live lease with its ttl.
    fn each(&self) -> impl Iterator<Item = (LeaseId, Duration)>;
    /// Whether `lease_id` is live.
    fn is_live(&self, lease_id: LeaseId) -> bool;
}

/// Deadlines of the current leader term.
pub struct LeaseClock {
    /// What deadlines count from: kept as nanoseconds after it (for 584
    /// years), 8 bytes where an `Instant` takes 16, in both indexes of a
    /// million leases.
    base: Instant,
    inner: Mutex<Deadlines>,
}

impl Default for LeaseClock {
    fn default() -> LeaseClock {
        LeaseClock {
            base: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

/// Nanoseconds after a clock's base.
type Nanos = u64;

#[derive(Default)]
struct Deadlines {
    /// The leader term these deadlines belong to.
    term: Option<u64>,
    /// Whether every lease of the table has a deadline (it was walked in
    /// this term, and not replaced since), or is in `granted`.
    met_all: bool,
    /// Leases granted since the last sweep, with their ttls: the next
    /// sweep gives them their deadlines.
    granted: BTreeMap<LeaseId, Duration>,
    /// When each known lease is due.
    due_at: BTreeMap<LeaseId, Nanos>,
    /// The deadlines of `due_at` in time order, less those of the
    /// `expiring` leases: what a sweep takes due leases from.
    by_deadline: BTreeSet<(Nanos, LeaseId)>,
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

    /// Sets the deadline of a lease that is not expiring.
    fn set(&mut self, lease_id: LeaseId, at: Nanos) {
        if let Some(before) = self.due_at.insert(lease_id, at) {
            self.by_deadline.remove(&(before, lease_id));
        }
        self.by_deadline.insert((at, lease_id));
    }

    /// Gives a lease first seen in this term a deadline of `at`; one it
    /// has already keeps its own.
    fn meet(&mut self, lease_id: LeaseId, at: Nanos) {
        if !self.due_at.contains_key(&lease_id) {
            self.set(lease_id, at);
        }
    }

    /// Forgets a lease that is gone.
    fn forget(&mut self, lease_id: LeaseId) {
        if let Some(at) = self.due_at.remove(&lease_id) {
            self.by_deadline.remove(&(at, lease_id));
        }
        self.expiring.remove(&lease_id);
        self.granted.remove(&lease_id);
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
        d.set(lease_id, self.nanos(now + ttl));
        Renewal::Renewed
    }

    /// Lifts the expiring mark of a lease whose expiry raft refused without
    /// appending it, so that the next sweep proposes it again.
    pub fn unmark(&self, term: u64, lease_id: LeaseId) {
        let mut d = self.lock();
        if d.term == Some(term) && d.expiring.remove(&lease_id) {
            if let Some(at) = d.due_at.get(&lease_id).copied() {
                d.by_deadline.insert((at, lease_id));
            }
        }
    }

    /// Marks as expiring and returns, in id order, at most `max` leases
    /// whose deadline has passed: those whose deadline passed first, when
    /// more are due. Leases it has not seen yet (every lease of `leases`
    /// in the term's first call and the first after the table was
    /// replaced; those granted since the last call otherwise) first get a
    /// full ttl from `now`.
    pub fn take_due(
        &self,
        term: u64,
        leases: &impl LiveLeases,
        now: Instant,
        max: usize,
    ) -> Vec<LeaseId> {
        let mut d = self.lock();
        if !d.enter_term(term) {
            return Vec::new();
        }
        if !d.met_all {
            d.granted.clear();
            for (lease_id, ttl) in leases.each() {
                d.meet(lease_id, self.nanos(now + ttl));
            }
            d.met_all = true;
        }
        for (lease_id, ttl) in std::mem::take(&mut d.granted) {
            d.meet(lease_id, self.nanos(now + ttl));
        }
        let now = self.nanos(now);
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&(at, lease_id)) = d.by_deadline.first() else {
                break;
            };
            if at > now {
                break;
            }
            if !leases.is_live(lease_id) {
                // Its end applied, and the news is on its way.
                d.forget(lease_id);
                continue;
            }
            d.by_deadline.pop_first();
            d.expiring.insert(lease_id);
            due.push(lease_id);
        }
        due.sort();
        due
    }

    /// A lease was granted: while this node keeps deadlines, the next
    /// sweep gives it a full ttl, unless it has a deadline by then.
    pub fn lease_granted(&self, lease_id: LeaseId, ttl: Duration) {
        let mut d = self.lock();
        if d.term.is_some() && d.met_all {
            d.granted.insert(lease_id, ttl);
        }
    }

    /// A lease was revoked or expired: its deadline and mark go.
    pub fn lease_ended(&self, lease_id: LeaseId) {
        self.lock().forget(lease_id);
    }

    /// The whole table was replaced (a snapshot installed, a backup
    /// restored) without the grants that led to it: the next sweep walks
    /// it for leases this clock has not seen.
    pub fn table_replaced(&self) {
        self.lock().met_all = false;
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

    /// How many leases have a deadline.
    #[cfg(test)]
    pub fn known_count(&self) -> usize {
        self.lock().due_at.len()
    }

    /// An instant as the indexes keep it: nanoseconds after the base,
    /// which orders as the instants do (an instant before the base counts
    /// as the base; a clock made at start sees none).
    fn nanos(&self, at: Instant) -> Nanos {
        let after = at.saturating_duration_since(self.base).as_nanos();
        Nanos::try_from(after).unwrap_or(Nanos::MAX)
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
