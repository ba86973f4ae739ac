//! State-machine time on the leader: the `now_ms` every proposal carries,
//! and the "now" of every leader decision measured in state-machine time
//! (overdue waits, due lock-delays).
//!
//! It advances with the leader's monotonic clock, never with its wall
//! clock, so that a wall clock that jumps (forward or back, by any amount)
//! moves no deadline, delay, wait or idempotency window. When a node starts
//! leading a term it anchors the clock on the applied table's time, once
//! it has applied its term's blank entry (and with it everything committed
//! before the term), together with an `Instant`; from then on state-machine
//! time is that base plus the monotonic time since, and never less than the
//! table's. Only a fresh cluster, whose table time is still 0, takes its
//! base from the wall clock, so that stamps start near Unix time.
//!
//! The cost: state-machine time stands still between the last proposal of
//! one leader and the anchor of the next, so it falls behind wall time by
//! the failover gaps. That only makes delays and waits end later, never
//! earlier.

use std::sync::Mutex;

use tokio::time::Instant;

/// Where one leader term's state-machine clock starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The leader term it belongs to.
    pub term: u64,
    /// State-machine time at `at`.
    pub base_ms: u64,
    /// When it was taken, on this node's monotonic clock.
    pub at: Instant,
}

impl Anchor {
    /// The anchor of `term` taken at `at` over a table whose time is
    /// `table_now_ms`; `wall_ms` is read only for a fresh table (time 0).
    pub fn new(term: u64, table_now_ms: u64, wall_ms: impl FnOnce() -> u64, at: Instant) -> Anchor {
        let base_ms = if table_now_ms == 0 {
            wall_ms()
        } else {
            table_now_ms
        };
        Anchor { term, base_ms, at }
    }

    /// State-machine time at `now`: the base plus the monotonic time since
    /// the anchor, and never behind the table's time.
    pub fn time_ms(&self, now: Instant, table_now_ms: u64) -> u64 {
        let elapsed_ms = now.saturating_duration_since(self.at).as_millis();
        let elapsed_ms = u64::try_from(elapsed_ms).unwrap_or(u64::MAX);
        table_now_ms.max(self.base_ms.saturating_add(elapsed_ms))
    }
}

/// The state-machine clock of the term this node leads.
#[derive(Default)]
pub struct SmClock {
    anchor: Mutex<Option<Anchor>>,
}

impl SmClock {
    /// State-machine time at `now` in leader term `term`. The first call of
    /// a term anchors it, but only once `ready`: the table has applied an
    /// entry of that term, so every earlier entry is applied and its time is
    /// the time the previous leaders reached. `None` before that, and for a
    /// term older than the anchor (a stale view of leadership).
    pub fn now_ms(
        &self,
        term: u64,
        ready: bool,
        table_now_ms: u64,
        wall_ms: impl FnOnce() -> u64,
        now: Instant,
    ) -> Option<u64> {
        let mut anchor = self.anchor.lock().expect("sm clock lock is never poisoned");
        match *anchor {
            Some(a) if a.term == term => return Some(a.time_ms(now, table_now_ms)),
            Some(a) if a.term > term => return None,
            _ => {}
        }
        if !ready {
            return None;
        }
        let a = Anchor::new(term, table_now_ms, wall_ms, now);
        *anchor = Some(a);
        Some(a.time_ms(now, table_now_ms))
    }

    /// The anchored term's time at `now`, if this node anchored `term`;
    /// never anchors.
    pub fn peek_ms(&self, term: u64, table_now_ms: u64, now: Instant) -> Option<u64> {
        let anchor = self.anchor.lock().expect("sm clock lock is never poisoned");
        anchor
            .filter(|a| a.term == term)
            .map(|a| a.time_ms(now, table_now_ms))
    }

    /// Forgets the anchor: this node does not lead.
    pub fn clear(&self) {
        *self.anchor.lock().expect("sm clock lock is never poisoned") = None;
    }
}

#[cfg(test)]
#[path = "sm_clock_test.rs"]
mod tests;
