//! The timeline of each lock: a bounded ring of its recent events, kept in
//! the replicated state, so every replica holds the same history and it
//! survives snapshots.
//!
//! Memory is bounded however many locks come and go: at most
//! [`TIMELINE_EVENTS_PER_LOCK`] events for each of at most
//! [`TIMELINE_LOCKS_MAX`] locks; the lock whose last event is oldest is
//! forgotten first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::lock::LockName;
use crate::token::FencingToken;

/// The most events kept per lock.
pub const TIMELINE_EVENTS_PER_LOCK: usize = 100;
/// The most locks whose timelines are kept.
pub const TIMELINE_LOCKS_MAX: usize = 10_000;

/// What happened to a lock.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A lease joined the queue.
    Queued,
    /// A lease was granted the lock.
    Granted,
    /// Its holder released it.
    Released,
    /// Its holder's lease expired.
    Expired,
    /// Its holder's lease was revoked.
    Revoked,
    /// A wait ended without a grant (it ran out, or was withdrawn).
    WaitEnded,
    /// A wait was refused: it would have closed a deadlock.
    RefusedDeadlock,
    /// An acquire was refused: it broke the lock order.
    RefusedOrder,
    /// A fenced write under the lock was refused as stale.
    StaleWriteRefused,
    /// Queues: an item was claimed under the token.
    ItemClaimed,
    /// Queues: the claim under the token acked its item.
    ItemAcked,
    /// Queues: the claim under the token gave its item back (a nack).
    ItemNacked,
    /// Queues: the claim under the token ran out; its item is back.
    ItemTimedOut,
    /// Queues: the claim under the token ended with its lease; its item is
    /// back.
    ItemLeaseLost,
    /// Queues: an item left for the dead-letter queue, or was dropped,
    /// after its last attempt.
    ItemDeadLettered,
    /// Queues: an ack, extend or nack under the token was refused: the
    /// claim was lost.
    StaleClaimRefused,
}

/// One event of a lock's timeline.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Its place among all timeline events of the cluster.
    pub seq: u64,
    /// State-machine time, Unix milliseconds.
    pub at_ms: u64,
    /// What happened to the lock.
    pub kind: TimelineKind,
    /// The lease concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// The token concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
}

/// Every kept timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timelines {
    seq: u64,
    by_lock: BTreeMap<LockName, VecDeque<TimelineEvent>>,
    /// (seq of the last event, lock), to forget the stalest lock first.
    by_last: BTreeSet<(u64, LockName)>,
}

impl Timelines {
    /// Appends an event to `name`'s timeline, within the bounds.
    pub(crate) fn record(
        &mut self,
        name: &LockName,
        at_ms: u64,
        kind: TimelineKind,
        lease_id: Option<LeaseId>,
        fencing_token: Option<FencingToken>,
    ) {
        self.seq += 1;
        let ring = self.by_lock.entry(name.clone()).or_default();
        if let Some(last) = ring.back() {
            self.by_last.remove(&(last.seq, name.clone()));
        }
        ring.push_back(TimelineEvent {
            seq: self.seq,
            at_ms,
            kind,
            lease_id,
            fencing_token,
        });
        if ring.len() > TIMELINE_EVENTS_PER_LOCK {
            ring.pop_front();
        }
        self.by_last.insert((self.seq, name.clone()));
        while self.by_lock.len() > TIMELINE_LOCKS_MAX {
            let Some((_, stalest)) = self.by_last.pop_first() else {
                break;
            };
            self.by_lock.remove(&stalest);
        }
    }

    /// How many locks have a kept timeline.
    pub(crate) fn len(&self) -> usize {
        self.by_lock.len()
    }

    /// The kept events of `name`, oldest first.
    pub(crate) fn of(&self, name: &LockName) -> Vec<TimelineEvent> {
        self.by_lock
            .get(name)
            .map(|ring| ring.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The lock granted most often at or after `since_ms`, with its count
    /// of grants (the first such lock by name on a tie).
    pub(crate) fn most_granted_since(&self, since_ms: u64) -> Option<(&LockName, usize)> {
        let mut busiest: Option<(&LockName, usize)> = None;
        for (name, ring) in &self.by_lock {
            let grants = ring
                .iter()
                .rev()
                .take_while(|e| e.at_ms >= since_ms)
                .filter(|e| e.kind == TimelineKind::Granted)
                .count();
            if grants > busiest.map_or(0, |(_, n)| n) {
                busiest = Some((name, grants));
            }
        }
        busiest
    }

    /// Checks the bounds and that the two indexes agree.
    pub(crate) fn check(&self) -> Result<(), crate::table::BrokenInvariant> {
        let bounded = self.by_lock.len() <= TIMELINE_LOCKS_MAX
            && self
                .by_lock
                .values()
                .all(|r| !r.is_empty() && r.len() <= TIMELINE_EVENTS_PER_LOCK);
        let indexed = self.by_last.len() == self.by_lock.len()
            && self.by_last.iter().all(|(seq, name)| {
                self.by_lock
                    .get(name)
                    .and_then(|r| r.back())
                    .is_some_and(|e| e.seq == *seq)
            });
        if !bounded || !indexed {
            return Err(crate::table::BrokenInvariant::Timelines);
        }
        Ok(())
    }
}
