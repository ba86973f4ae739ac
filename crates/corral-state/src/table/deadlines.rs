//! When waits and lock-delays run out, in time order: an index derived
//! from the locks, so that the leader's sweep finds the overdue waits and
//! the due lock-delays in O(due) instead of walking every lock and queue
//! each tick.
//!
//! Every change to a queue or a lock-delay goes through the methods here,
//! which change the index with it. The index is not in snapshots: it is
//! rebuilt from the locks when a table is decoded
//! ([`LockTable::rebuild_derived`]), and `check_invariants` compares it
//! with such a rebuild. It orders waits by deadline, then by what the walk
//! it replaces sorted them by, so it answers as that walk did.

use std::collections::BTreeSet;

use super::LockTable;
use crate::lease::LeaseId;
use crate::lock::{Kind, LockName, Waiter};

/// One waiter: (its deadline_ms, kind, lease, name).
type WaitDeadline = (u64, Kind, LeaseId, LockName);

/// The deadlines of every waiter and lock-delay, earliest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Deadlines {
    /// Every waiter of every lock, semaphore and election.
    waits: BTreeSet<WaitDeadline>,
    /// (delayed_until_ms, name) of every lock under lock-delay.
    delays: BTreeSet<(u64, LockName)>,
}

#[cfg(test)]
thread_local! {
    /// How many index entries the sweep's queries looked at on this
    /// thread: what the tests of their cost count.
    pub(super) static VISITED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `entry`, counted as looked at in tests.
fn visit<T>(entry: T) -> T {
    #[cfg(test)]
    VISITED.with(|visited| visited.set(visited.get() + 1));
    entry
}

impl LockTable {
    /// Waits whose deadline is before `now_ms`, oldest deadline first.
    ///
    /// The request that queued a waiter cancels it when its wait runs out;
    /// the leader uses this list to cancel the waits whose request is gone.
    pub fn overdue_waiters(&self, now_ms: u64) -> Vec<(Kind, LeaseId, LockName)> {
        self.deadlines
            .waits
            .iter()
            .map(visit)
            .take_while(|(deadline_ms, ..)| *deadline_ms < now_ms)
            .map(|(_, kind, lease_id, name)| (*kind, *lease_id, name.clone()))
            .collect()
    }

    /// Whether some lock's lock-delay has run out by `now_ms`, so that the
    /// leader should propose [`crate::Command::LiftLockDelays`].
    pub fn has_due_lock_delays(&self, now_ms: u64) -> bool {
        let first = self.deadlines.delays.first().map(visit);
        first.is_some_and(|(until_ms, _)| *until_ms <= now_ms)
    }

    /// The locks whose lock-delay has run out by `now_ms`, in name order.
    pub(super) fn due_lock_delays(&self, now_ms: u64) -> BTreeSet<LockName> {
        self.deadlines
            .delays
            .iter()
            .map(visit)
            .take_while(|(until_ms, _)| *until_ms <= now_ms)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Appends `waiter` to the queue of `name` of `kind`, which is in use,
    /// and returns its position.
    pub(super) fn push_waiter(&mut self, kind: Kind, name: &LockName, waiter: Waiter) -> usize {
        let key = (waiter.deadline_ms, kind, waiter.lease_id, name.clone());
        let lock = self
            .map_mut(kind)
            .get_mut(name)
            .expect("a queue is joined on a lock in use");
        lock.waiters.push_back(waiter);
        let position = lock.waiters.len() - 1;
        self.deadlines.waits.insert(key);
        position
    }

    /// Takes the head off the queue of `name` of `kind`.
    pub(super) fn pop_waiter(&mut self, kind: Kind, name: &LockName) -> Option<Waiter> {
        let waiter = self.map_mut(kind).get_mut(name)?.waiters.pop_front()?;
        let key = (waiter.deadline_ms, kind, waiter.lease_id, name.clone());
        self.deadlines.waits.remove(&key);
        Some(waiter)
    }

    /// Takes `lease_id` out of the queue of `name` of `kind`, if it waits
    /// there.
    pub(super) fn remove_waiter(&mut self, kind: Kind, name: &LockName, lease_id: LeaseId) {
        let Some(lock) = self.map_mut(kind).get_mut(name) else {
            return;
        };
        // A lease is at most once in one queue.
        let Some(waiter) = lock
            .position(lease_id)
            .and_then(|at| lock.waiters.remove(at))
        else {
            return;
        };
        let key = (waiter.deadline_ms, kind, lease_id, name.clone());
        self.deadlines.waits.remove(&key);
    }

    /// Moves the deadline of the waiter at `position` in the queue of
    /// `name` of `kind` to `deadline_ms`, if that is later: a retried wait
    /// keeps the later deadline.
    pub(super) fn extend_wait(
        &mut self,
        kind: Kind,
        name: &LockName,
        position: usize,
        deadline_ms: u64,
    ) {
        let waiter = &mut self
            .map_mut(kind)
            .get_mut(name)
            .expect("a waited lock is in use")
            .waiters[position];
        let before_ms = waiter.deadline_ms;
        if deadline_ms <= before_ms {
            return;
        }
        waiter.deadline_ms = deadline_ms;
        let lease_id = waiter.lease_id;
        let waits = &mut self.deadlines.waits;
        waits.remove(&(before_ms, kind, lease_id, name.clone()));
        waits.insert((deadline_ms, kind, lease_id, name.clone()));
    }

    /// Puts the lock `name`, which is in use, under lock-delay until
    /// `until_ms`, unless it is delayed longer already.
    pub(super) fn delay_lock(&mut self, name: &LockName, until_ms: u64) {
        let lock = self.locks.get_mut(name).expect("a held lock is in use");
        let before_ms = lock.delayed_until_ms;
        if until_ms <= before_ms {
            return;
        }
        lock.delayed_until_ms = until_ms;
        let delays = &mut self.deadlines.delays;
        delays.remove(&(before_ms, name.clone()));
        delays.insert((until_ms, name.clone()));
    }

    /// Ends the lock-delay of `name`, if it is under one.
    pub(super) fn end_delay(&mut self, name: &LockName) {
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        let before_ms = std::mem::take(&mut lock.delayed_until_ms);
        self.deadlines.delays.remove(&(before_ms, name.clone()));
    }

    /// The index built afresh from the locks.
    pub(super) fn walked_deadlines(&self) -> Deadlines {
        let mut deadlines = Deadlines::default();
        for kind in Kind::ALL {
            for (name, lock) in self.map(kind) {
                for w in &lock.waiters {
                    let key = (w.deadline_ms, kind, w.lease_id, name.clone());
                    deadlines.waits.insert(key);
                }
                if lock.delayed_until_ms > 0 {
                    let key = (lock.delayed_until_ms, name.clone());
                    deadlines.delays.insert(key);
                }
            }
        }
        deadlines
    }
}

#[cfg(test)]
#[path = "deadlines_test.rs"]
mod tests;
