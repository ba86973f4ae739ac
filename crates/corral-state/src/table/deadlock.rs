//! Deadlock detection over the wait-for graph.
//!
//! A lease waiting for a lock waits on the lock's holders it conflicts with
//! (every holder for an exclusive wait, the exclusive one for a shared
//! wait) and on the waiter just ahead of it (that waiter in turn waits on
//! the one ahead, so the lease reaches every waiter ahead without an edge
//! to each). Only lock
//! waits are edges: a semaphore wait may be ended by any holder's release,
//! so it does not wait on any one of them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::LockTable;
use crate::lease::LeaseId;
use crate::lock::{Lock, LockName, Mode};
use crate::outcome::WaitEdge;

impl LockTable {
    /// The leases a lease waiting in `lock` in `mode` (at `position`, or
    /// joining the end) waits on directly: the holders its mode conflicts
    /// with, and the waiter just ahead.
    fn blockers(
        lock: &Lock,
        lease_id: LeaseId,
        mode: Mode,
        position: Option<usize>,
    ) -> BTreeSet<LeaseId> {
        let ahead = position.unwrap_or(lock.waiters.len());
        let just_ahead = ahead.checked_sub(1).map(|i| lock.waiters[i].lease_id);
        lock.holders
            .values()
            .filter(|g| mode == Mode::Exclusive || g.mode == Mode::Exclusive)
            .map(|g| g.lease_id)
            .chain(just_ahead)
            .filter(|id| *id != lease_id)
            .collect()
    }

    /// The direct blockers of `lease_id`'s wait in `lock`.
    fn blockers_of_waiter(lock: &Lock, lease_id: LeaseId) -> BTreeSet<LeaseId> {
        let position = lock.position(lease_id);
        let mode = position.map_or(Mode::Exclusive, |i| lock.waiters[i].mode);
        Self::blockers(lock, lease_id, mode, position)
    }

    /// The cycle in the wait-for graph that `lease_id` would close by
    /// joining the end of the queues of `names` in `mode`, starting with the
    /// new wait's edge.
    ///
    /// A grant only adds edges that shortcut a path that existed (the head
    /// that everyone behind already waited for, through the waiters ahead,
    /// becomes a holder), and leaving a queue only shortcuts a path too, so
    /// refusing every new wait that closes a cycle keeps the graph free of
    /// cycles.
    pub(super) fn cycle_through(
        &self,
        lease_id: LeaseId,
        mode: Mode,
        names: &[LockName],
    ) -> Option<Vec<WaitEdge>> {
        let lease = self.leases.get(&lease_id)?;
        if lease.holds.is_empty() && lease.waits.is_empty() {
            // Edges point only at holders and waiters: nothing reaches a
            // lease that holds nothing and waits nowhere yet.
            return None;
        }
        // Breadth-first from the new waits' blockers, in BTree order, so
        // that every replica finds the same (shortest) cycle. `came_by`
        // keeps the edge that first reached each lease, to rebuild the path.
        let mut came_by: BTreeMap<LeaseId, WaitEdge> = BTreeMap::new();
        let mut frontier = VecDeque::new();
        for name in names {
            let Some(lock) = self.locks.get(name) else {
                continue;
            };
            for blocker in Self::blockers(lock, lease_id, mode, None) {
                if let Entry::Vacant(slot) = came_by.entry(blocker) {
                    slot.insert(WaitEdge {
                        lease_id,
                        waits_for: name.clone(),
                        held_by: blocker,
                    });
                    frontier.push_back(blocker);
                }
            }
        }
        while let Some(from) = frontier.pop_front() {
            let Some(waiting) = self.leases.get(&from) else {
                continue;
            };
            for waited in &waiting.waits {
                let lock = self
                    .locks
                    .get(waited)
                    .expect("a waited-for lock is in the table");
                for next in Self::blockers_of_waiter(lock, from) {
                    let edge = WaitEdge {
                        lease_id: from,
                        waits_for: waited.clone(),
                        held_by: next,
                    };
                    if next == lease_id {
                        return Some(Self::path_back(&came_by, edge, lease_id));
                    }
                    if let Entry::Vacant(slot) = came_by.entry(next) {
                        slot.insert(edge);
                        frontier.push_back(next);
                    }
                }
            }
        }
        None
    }

    /// The edges from `start` to the tail of `last`, then `last`.
    fn path_back(
        came_by: &BTreeMap<LeaseId, WaitEdge>,
        last: WaitEdge,
        start: LeaseId,
    ) -> Vec<WaitEdge> {
        let mut path = vec![last];
        loop {
            let tail = path.last().expect("the path is not empty").lease_id;
            if tail == start {
                break;
            }
            path.push(came_by[&tail].clone());
        }
        path.reverse();
        path
    }

    /// Whether the wait-for graph has no cycle (Kahn's algorithm: peel off
    /// leases nothing waits on until none are left).
    pub(super) fn wait_graph_is_acyclic(&self) -> bool {
        let mut edges: BTreeMap<LeaseId, Vec<LeaseId>> = BTreeMap::new();
        let mut waited_on: BTreeMap<LeaseId, usize> =
            self.leases.keys().map(|id| (*id, 0)).collect();
        for (id, lease) in &self.leases {
            for name in &lease.waits {
                let lock = &self.locks[name];
                for next in Self::blockers_of_waiter(lock, *id) {
                    edges.entry(*id).or_default().push(next);
                    *waited_on.entry(next).or_default() += 1;
                }
            }
        }
        let mut free: Vec<LeaseId> = waited_on
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        let mut peeled = 0;
        while let Some(id) = free.pop() {
            peeled += 1;
            for next in edges.remove(&id).unwrap_or_default() {
                let n = waited_on.get_mut(&next).expect("every lease is counted");
                *n -= 1;
                if *n == 0 {
                    free.push(next);
                }
            }
        }
        peeled == waited_on.len()
    }
}
