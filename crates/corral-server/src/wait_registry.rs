//! Requests waiting for a lock on this node, woken by applied events.
//!
//! A ticket hears every event about its (lease, lock) until it is dropped,
//! not just the first: a node that lags may apply an old grant of the same
//! lock to the same lease after the request was queued, and the request must
//! skip it (its token is not above the holder's token at queueing time) and
//! go on waiting for the fresh one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use corral_raft::Notice;
use corral_state::{ClaimId, ClaimedItem, Event, Grant, Kind, LeaseId, LockName, LockTable};
use tokio::sync::{mpsc, watch};

/// How a wait ended other than by the request's own timer.
#[derive(Clone, Debug)]
pub(crate) enum WaitEnd {
    /// The waiting lease was granted: one grant for a lock or a semaphore,
    /// every grant of an acquire-all.
    Granted(Vec<Grant>),
    /// The lease ended while it waited.
    LeaseEnded,
    /// An acquire-all of these names (sorted) was withdrawn: its lease
    /// released a lock the request counted as held.
    Withdrawn(Vec<LockName>),
    /// A waiting claim of a queue got these items.
    Claimed(Vec<ClaimedItem>),
}

/// What a request waits for: a hold of a lock, semaphore or election, or
/// items of a queue for the claim of that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Hold(Kind),
    Claim(ClaimId),
}

type Key = (Subject, LeaseId, LockName);

#[derive(Default)]
struct Waiting {
    /// Every registered request: the keys it waits on, and where to tell it.
    tickets: HashMap<u64, (Vec<Key>, mpsc::UnboundedSender<WaitEnd>)>,
    /// The tickets waiting on each key.
    by_key: HashMap<Key, Vec<u64>>,
}

/// Waiting requests by (kind, lease, name). Every node applies every entry,
/// so the node that holds the request wakes it from its own state machine.
#[derive(Clone)]
pub(crate) struct WaitRegistry {
    waiting: Arc<Mutex<Waiting>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    /// Counts the notices: it moves whenever the applied state does.
    moved: Arc<watch::Sender<u64>>,
}

impl Default for WaitRegistry {
    fn default() -> WaitRegistry {
        WaitRegistry {
            waiting: Default::default(),
            next_id: Default::default(),
            moved: Arc::new(watch::channel(0).0),
        }
    }
}

/// A registered wait. Dropping it unregisters.
pub(crate) struct WaitTicket {
    registry: WaitRegistry,
    id: u64,
    /// Every applied event about this wait, in apply order.
    pub ended: mpsc::UnboundedReceiver<WaitEnd>,
}

impl WaitRegistry {
    /// Registers interest in `names` of `kind` for `lease_id` (one name, or
    /// every name of an acquire-all); do it before proposing the acquire so
    /// that no event can slip in between.
    pub(crate) fn register(&self, kind: Kind, lease_id: LeaseId, names: &[LockName]) -> WaitTicket {
        let keys: Vec<Key> = names
            .iter()
            .map(|n| (Subject::Hold(kind), lease_id, n.clone()))
            .collect();
        self.register_keys(keys)
    }

    /// Registers interest in the items the waiting claim `claim_id` of
    /// `lease_id` on `queue` gets; do it before proposing the claim.
    pub(crate) fn register_claim(
        &self,
        (lease_id, claim_id): (LeaseId, ClaimId),
        queue: &LockName,
    ) -> WaitTicket {
        self.register_keys(vec![(Subject::Claim(claim_id), lease_id, queue.clone())])
    }

    fn register_keys(&self, keys: Vec<Key>) -> WaitTicket {
        let (tx, ended) = mpsc::unbounded_channel();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut waiting = self.lock();
        for key in &keys {
            waiting.by_key.entry(key.clone()).or_default().push(id);
        }
        waiting.tickets.insert(id, (keys, tx));
        WaitTicket {
            registry: self.clone(),
            id,
            ended,
        }
    }

    /// A receiver that changes whenever the applied state moves (an entry
    /// applied, a snapshot restored), for readers that wait for a change.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Wakes the requests that a notice of the state machine concerns.
    pub(crate) fn notify(&self, notice: Notice<'_>) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
        match notice {
            Notice::Applied { events, .. } => self.apply_events(events),
            Notice::Restored(table) => self.recheck(table),
        }
    }

    fn apply_events(&self, events: Vec<Event>) {
        let waiting = self.lock();
        for event in events {
            let (keys, end) = match event {
                Event::Granted { kind, grant } => (
                    vec![(Subject::Hold(kind), grant.lease_id, grant.name.clone())],
                    WaitEnd::Granted(vec![grant]),
                ),
                Event::GrantedAll(grants) => (
                    grants
                        .iter()
                        .map(|g| (Subject::Hold(Kind::Lock), g.lease_id, g.name.clone()))
                        .collect(),
                    WaitEnd::Granted(grants),
                ),
                Event::WaitEnded {
                    kind,
                    lease_id,
                    name,
                } => (
                    vec![(Subject::Hold(kind), lease_id, name)],
                    WaitEnd::LeaseEnded,
                ),
                Event::Withdrawn { lease_id, names } => (
                    names
                        .iter()
                        .map(|name| (Subject::Hold(Kind::Lock), lease_id, name.clone()))
                        .collect(),
                    WaitEnd::Withdrawn(names),
                ),
                Event::ItemsClaimed {
                    queue,
                    lease_id,
                    claim_id,
                    items,
                } => (
                    vec![(Subject::Claim(claim_id), lease_id, queue)],
                    WaitEnd::Claimed(items),
                ),
                Event::ClaimWaitEnded {
                    queue,
                    lease_id,
                    claim_id,
                } => (
                    vec![(Subject::Claim(claim_id), lease_id, queue)],
                    WaitEnd::LeaseEnded,
                ),
                // Told to the metrics; no request waits on them.
                Event::ItemReturned { .. } | Event::ItemLeft { .. } => continue,
            };
            waiting.wake(&keys, &end);
        }
    }

    /// After a snapshot replaced the table: wakes every request whose lease
    /// now holds all it waits for, or no longer exists.
    fn recheck(&self, table: &LockTable) {
        let waiting = self.lock();
        for (keys, tx) in waiting.tickets.values() {
            let lease_gone = keys
                .first()
                .is_some_and(|(_, lease_id, _)| table.lease(*lease_id).is_none());
            let end = match (keys.as_slice(), lease_gone) {
                (_, true) => WaitEnd::LeaseEnded,
                ([(Subject::Claim(claim_id), lease_id, queue)], false) => {
                    match claim_ended(table, (*lease_id, *claim_id), queue) {
                        Some(items) => WaitEnd::Claimed(items),
                        None => continue,
                    }
                }
                _ => match held(table, keys) {
                    Some(grants) => WaitEnd::Granted(grants),
                    None => continue,
                },
            };
            // The request may have given up already; nothing to do.
            let _ = tx.send(end);
        }
    }

    /// How many requests wait on this node.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().tickets.len()
    }

    /// Whether no request waits on this node.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .expect("wait registry lock is never poisoned")
    }
}

/// Every hold `keys` wait for, if the lease has them all now.
fn held(table: &LockTable, keys: &[Key]) -> Option<Vec<Grant>> {
    keys.iter()
        .map(|(subject, lease_id, name)| match subject {
            Subject::Hold(kind) => table.entry(*kind, name)?.holders.get(lease_id).cloned(),
            Subject::Claim(_) => None,
        })
        .collect()
}

/// The items the claim `claimer` got in `queue`, if it no longer waits
/// there (a restored snapshot skipped its event).
fn claim_ended(
    table: &LockTable,
    claimer: (LeaseId, ClaimId),
    queue: &LockName,
) -> Option<Vec<ClaimedItem>> {
    let q = table.queues().get(queue);
    let waits = |q: &corral_state::WorkQueue| {
        q.claimers
            .iter()
            .any(|c| (c.lease_id, c.claim_id) == claimer)
    };
    if q.is_some_and(waits) {
        return None;
    }
    Some(claims_of(table, claimer, queue))
}

/// Every item the claim `claimer` holds in `queue` now.
pub(crate) fn claims_of(
    table: &LockTable,
    claimer: (LeaseId, ClaimId),
    queue: &LockName,
) -> Vec<ClaimedItem> {
    let q = table.queues().get(queue);
    let items = q.into_iter().flat_map(|q| q.items.values());
    let claimed = items
        .filter(|item| {
            let claim = item.claim.as_ref();
            claim.is_some_and(|c| (c.lease_id, c.claim_id) == claimer)
        })
        .filter_map(|item| item.claimed());
    claimed.collect()
}

impl Waiting {
    /// Sends `end` once to every request waiting on any of `keys`. They
    /// stay registered until their tickets are dropped.
    fn wake(&self, keys: &[Key], end: &WaitEnd) {
        let mut ids: Vec<u64> = keys
            .iter()
            .filter_map(|key| self.by_key.get(key))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if let Some((_, tx)) = self.tickets.get(&id) {
                // The request may have given up already; nothing to do.
                let _ = tx.send(end.clone());
            }
        }
    }
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        let mut waiting = self.registry.lock();
        let Some((keys, _)) = waiting.tickets.remove(&self.id) else {
            return;
        };
        for key in keys {
            if let Some(ids) = waiting.by_key.get_mut(&key) {
                ids.retain(|id| *id != self.id);
                if ids.is_empty() {
                    waiting.by_key.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "wait_registry_test.rs"]
mod tests;
