//! Requests waiting for a lock on this node, woken by applied events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use corral_state::{Event, Grant, LeaseId, LockName};
use tokio::sync::oneshot;

/// How a wait ended other than by the request's own timer.
#[derive(Clone, Debug)]
pub enum WaitEnd {
    /// The lock was granted to the waiting lease.
    Granted(Grant),
    /// The lease ended while it waited.
    LeaseEnded,
}

type Key = (LeaseId, LockName);
/// The requests waiting on one key, each with its ticket id.
type Waiters = HashMap<Key, Vec<(u64, oneshot::Sender<WaitEnd>)>>;

/// Waiting requests by (lease, lock). Every node applies every entry, so the
/// node that holds the request wakes it from its own state machine.
#[derive(Clone, Default)]
pub struct WaitRegistry {
    waiting: Arc<Mutex<Waiters>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

/// A registered wait. Dropping it unregisters.
pub struct WaitTicket {
    registry: WaitRegistry,
    key: Key,
    id: u64,
    /// Resolves when the wait ends by an applied event.
    pub ended: oneshot::Receiver<WaitEnd>,
}

impl WaitRegistry {
    /// Registers interest in `(lease_id, name)`; do it before proposing the
    /// acquire so that no event can slip in between.
    pub fn register(&self, lease_id: LeaseId, name: LockName) -> WaitTicket {
        let (tx, ended) = oneshot::channel();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = (lease_id, name);
        self.lock().entry(key.clone()).or_default().push((id, tx));
        WaitTicket {
            registry: self.clone(),
            key,
            id,
            ended,
        }
    }

    /// Wakes the requests that `events` concern.
    pub fn notify(&self, events: Vec<Event>) {
        let mut waiting = self.lock();
        for event in events {
            let (key, end) = match event {
                Event::Granted(grant) => (
                    (grant.lease_id, grant.name.clone()),
                    WaitEnd::Granted(grant),
                ),
                Event::WaitEnded { lease_id, name } => ((lease_id, name), WaitEnd::LeaseEnded),
            };
            if let Some(senders) = waiting.remove(&key) {
                for (_, tx) in senders {
                    // The request may have given up already; nothing to do.
                    let _ = tx.send(end.clone());
                }
            }
        }
    }

    /// How many requests wait on this node.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether no request waits on this node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .expect("wait registry lock is never poisoned")
    }
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        let mut waiting = self.registry.lock();
        if let Some(senders) = waiting.get_mut(&self.key) {
            senders.retain(|(id, _)| *id != self.id);
            if senders.is_empty() {
                waiting.remove(&self.key);
            }
        }
    }
}
