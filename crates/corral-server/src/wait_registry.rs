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
use corral_state::{Event, Grant, Kind, LeaseId, LockName, LockTable};
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
}

type Key = (Kind, LeaseId, LockName);

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
        let (tx, ended) = mpsc::unbounded_channel();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let keys: Vec<Key> = names.iter().map(|n| (kind, lease_id, n.clone())).collect();
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
                    vec![(kind, grant.lease_id, grant.name.clone())],
                    WaitEnd::Granted(vec![grant]),
                ),
                Event::GrantedAll(grants) => (
                    grants
                        .iter()
                        .map(|g| (Kind::Lock, g.lease_id, g.name.clone()))
                        .collect(),
                    WaitEnd::Granted(grants),
                ),
                Event::WaitEnded {
                    kind,
                    lease_id,
                    name,
                } => (vec![(kind, lease_id, name)], WaitEnd::LeaseEnded),
                Event::Withdrawn { lease_id, names } => (
                    names
                        .iter()
                        .map(|name| (Kind::Lock, lease_id, name.clone()))
                        .collect(),
                    WaitEnd::Withdrawn(names),
                ),
                // No request waits for queue items yet: the queue routes
                // come with the next slice of the work queue.
                Event::ItemsClaimed { .. } | Event::ClaimWaitEnded { .. } => continue,
            };
            waiting.wake(&keys, &end);
        }
    }

    /// After a snapshot replaced the table: wakes every request whose lease
    /// now holds all it waits for, or no longer exists.
    fn recheck(&self, table: &LockTable) {
        let waiting = self.lock();
        for (keys, tx) in waiting.tickets.values() {
            let grants: Option<Vec<Grant>> = keys
                .iter()
                .map(|(kind, lease_id, name)| {
                    table.entry(*kind, name)?.holders.get(lease_id).cloned()
                })
                .collect();
            let lease_gone = keys
                .first()
                .is_some_and(|(_, lease_id, _)| table.lease(*lease_id).is_none());
            let end = match grants {
                Some(grants) => WaitEnd::Granted(grants),
                None if lease_gone => WaitEnd::LeaseEnded,
                None => continue,
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
