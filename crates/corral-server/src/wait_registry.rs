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
use corral_state::{Event, Grant, LeaseId, LockName, LockTable};
use tokio::sync::mpsc;

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
type Waiters = HashMap<Key, Vec<(u64, mpsc::UnboundedSender<WaitEnd>)>>;

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
    /// Every applied event about this wait, in apply order.
    pub ended: mpsc::UnboundedReceiver<WaitEnd>,
}

impl WaitRegistry {
    /// Registers interest in `(lease_id, name)`; do it before proposing the
    /// acquire so that no event can slip in between.
    pub fn register(&self, lease_id: LeaseId, name: LockName) -> WaitTicket {
        let (tx, ended) = mpsc::unbounded_channel();
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

    /// Wakes the requests that a notice of the state machine concerns.
    pub fn notify(&self, notice: Notice<'_>) {
        match notice {
            Notice::Events(events) => self.apply_events(events),
            Notice::Restored(table) => self.recheck(table),
        }
    }

    fn apply_events(&self, events: Vec<Event>) {
        let mut waiting = self.lock();
        for event in events {
            let (key, end) = match event {
                Event::Granted(grant) => (
                    (grant.lease_id, grant.name.clone()),
                    WaitEnd::Granted(grant),
                ),
                Event::WaitEnded { lease_id, name } => ((lease_id, name), WaitEnd::LeaseEnded),
            };
            wake(&mut waiting, &key, end);
        }
    }

    /// After a snapshot replaced the table: wakes every request whose lease
    /// now holds its lock or no longer exists.
    fn recheck(&self, table: &LockTable) {
        let mut waiting = self.lock();
        let keys: Vec<Key> = waiting.keys().cloned().collect();
        for key in keys {
            let (lease_id, name) = &key;
            let grant = table.lock(name).and_then(|lock| lock.holders.get(lease_id));
            let end = match grant {
                Some(grant) => WaitEnd::Granted(grant.clone()),
                _ if table.lease(*lease_id).is_none() => WaitEnd::LeaseEnded,
                _ => continue,
            };
            wake(&mut waiting, &key, end);
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

/// Sends `end` to every request waiting on `key`. They stay registered
/// until their tickets are dropped.
fn wake(waiting: &mut Waiters, key: &Key, end: WaitEnd) {
    if let Some(senders) = waiting.get(key) {
        for (_, tx) in senders {
            // The request may have given up already; nothing to do.
            let _ = tx.send(end.clone());
        }
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

#[cfg(test)]
mod tests {
    use corral_state::{Command, Proposal};

    use super::*;

    fn run(table: &mut LockTable, command: Command) {
        let applied = table.apply(Proposal { now_ms: 1, command });
        assert!(applied.response.is_ok(), "{applied:?}");
    }

    fn name(s: &str) -> LockName {
        LockName::new(s).unwrap()
    }

    #[test]
    fn events_wake_the_matching_waits_only() {
        let registry = WaitRegistry::default();
        let mut a = registry.register(LeaseId(1), name("x"));
        let mut b = registry.register(LeaseId(2), name("x"));
        registry.notify(Notice::Events(vec![Event::WaitEnded {
            lease_id: LeaseId(2),
            name: name("x"),
        }]));
        assert!(matches!(b.ended.try_recv(), Ok(WaitEnd::LeaseEnded)));
        assert!(a.ended.try_recv().is_err(), "lease 1 still waits");
        assert_eq!(registry.len(), 2, "tickets stay until dropped");
        drop(a);
        drop(b);
        assert!(registry.is_empty(), "a dropped ticket unregisters");
    }

    #[test]
    fn a_restored_table_wakes_granted_and_ended_waits() {
        let mut table = LockTable::new();
        for id in [1, 3] {
            run(
                &mut table,
                Command::GrantLease {
                    lease_id: LeaseId(id),
                    ttl_ms: 1_000,
                },
            );
        }
        for (lease, lock, wait_ms) in [(1, "x", 0), (1, "y", 0), (3, "y", 100)] {
            let command = Command::Acquire {
                lease_id: LeaseId(lease),
                name: name(lock),
                mode: Default::default(),
                wait_ms,
            };
            run(&mut table, command);
        }
        let registry = WaitRegistry::default();
        let mut granted = registry.register(LeaseId(1), name("x"));
        let mut ended = registry.register(LeaseId(2), name("x"));
        let mut waiting = registry.register(LeaseId(3), name("y"));
        registry.notify(Notice::Restored(&table));
        assert!(
            matches!(granted.ended.try_recv(), Ok(WaitEnd::Granted(g)) if g.lease_id == LeaseId(1))
        );
        assert!(matches!(ended.ended.try_recv(), Ok(WaitEnd::LeaseEnded)));
        assert!(
            waiting.ended.try_recv().is_err(),
            "lease 3 still waits for y"
        );
    }
}
