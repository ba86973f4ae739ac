//! The lock table: the replicated state and its apply function.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::command::{Command, Proposal};
use crate::lease::{Lease, LeaseId};
use crate::lock::{Grant, Lock, LockName, Mode, Waiter};
use crate::outcome::{Applied, Event, Limit, Outcome, Refusal, Response, WaitEdge};
use crate::token::FencingToken;
use crate::{LEASES_MAX, LOCKS_PER_LEASE_MAX, TTL_MS_MAX, WAITERS_PER_LOCK_MAX};

/// Every lease and lock of the cluster, and the fencing-token counter.
///
/// `apply` is a pure function of the state and the proposal: no clock, no
/// randomness, no I/O, and only ordered collections, so every replica that
/// applies the same log holds the same table and gives the same answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTable {
    /// State-machine time: the largest `now_ms` of any proposal applied.
    now_ms: u64,
    /// The last fencing token handed out; 0 before the first grant.
    last_token: FencingToken,
    /// Live leases by id.
    leases: BTreeMap<LeaseId, Lease>,
    /// Locks that are held, by name. A free lock has no entry.
    locks: BTreeMap<LockName, Lock>,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// Applies one proposal and says what it did.
    pub fn apply(&mut self, proposal: Proposal) -> Applied {
        // Clamped so that a new leader whose clock is behind the old one's
        // cannot move state-machine time backwards.
        self.now_ms = self.now_ms.max(proposal.now_ms);
        let token_before = self.last_token;
        let mut events = Vec::new();
        let response = match proposal.command {
            Command::GrantLease { lease_id, ttl_ms } => self.grant_lease(lease_id, ttl_ms),
            Command::RevokeLease { lease_id } | Command::ExpireLease { lease_id } => {
                self.end_lease(lease_id, &mut events)
            }
            Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms,
            } => self.acquire(lease_id, name, mode, wait_ms),
            Command::Release { lease_id, name } => self.release(lease_id, &name, &mut events),
            Command::CancelWait { lease_id, name } => {
                self.cancel_wait(lease_id, &name, &mut events)
            }
        };
        assert!(
            self.last_token >= token_before,
            "fencing token went backwards"
        );
        Applied { response, events }
    }

    /// State-machine time, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The last fencing token handed out.
    pub fn last_token(&self) -> FencingToken {
        self.last_token
    }

    /// A lease by id.
    pub fn lease(&self, lease_id: LeaseId) -> Option<&Lease> {
        self.leases.get(&lease_id)
    }

    /// Every live lease, in id order.
    pub fn leases(&self) -> impl Iterator<Item = (&LeaseId, &Lease)> {
        self.leases.iter()
    }

    /// How many leases are live.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// A held lock by name; `None` when it is free.
    pub fn lock(&self, name: &LockName) -> Option<&Lock> {
        self.locks.get(name)
    }

    /// Held locks whose names start with `prefix`, in name order.
    pub fn locks_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a LockName, &'a Lock)> + 'a {
        let start = match LockName::new(prefix) {
            Ok(name) => Bound::Included(name),
            Err(_) => Bound::Unbounded,
        };
        self.locks
            .range((start, Bound::Unbounded))
            .take_while(move |(name, _)| name.as_str().starts_with(prefix))
    }

    /// Waiters whose deadline is before `now_ms`, oldest deadline first.
    ///
    /// The request that queued a waiter cancels it when its wait runs out;
    /// the leader uses this list to cancel the waits whose request is gone.
    pub fn overdue_waiters(&self, now_ms: u64) -> Vec<(LeaseId, LockName)> {
        let mut overdue: Vec<(u64, LeaseId, LockName)> = self
            .locks
            .iter()
            .flat_map(|(name, lock)| {
                lock.waiters
                    .iter()
                    .filter(|w| w.deadline_ms < now_ms)
                    .map(move |w| (w.deadline_ms, w.lease_id, name.clone()))
            })
            .collect();
        overdue.sort();
        overdue
            .into_iter()
            .map(|(_, id, name)| (id, name))
            .collect()
    }

    fn grant_lease(&mut self, lease_id: LeaseId, ttl_ms: u64) -> Response {
        if ttl_ms == 0 || ttl_ms > TTL_MS_MAX {
            return Err(Refusal::InvalidTtl { max_ms: TTL_MS_MAX });
        }
        if self.leases.contains_key(&lease_id) {
            return Err(Refusal::LeaseExists);
        }
        if self.leases.len() >= LEASES_MAX {
            return Err(Refusal::LimitReached(Limit::Leases));
        }
        let lease = Lease {
            ttl_ms,
            granted_at_ms: self.now_ms,
            holds: Default::default(),
            waits: Default::default(),
        };
        self.leases.insert(lease_id, lease);
        Ok(Outcome::LeaseGranted { lease_id, ttl_ms })
    }

    fn end_lease(&mut self, lease_id: LeaseId, events: &mut Vec<Event>) -> Response {
        let lease = self
            .leases
            .remove(&lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        for name in &lease.waits {
            events.push(Event::WaitEnded {
                lease_id,
                name: name.clone(),
            });
            self.leave_queue(lease_id, name, events);
        }
        for name in &lease.holds {
            self.let_go(lease_id, name, events);
        }
        Ok(Outcome::LeaseEnded {
            released: lease.holds.into_iter().collect(),
        })
    }

    fn acquire(&mut self, lease_id: LeaseId, name: LockName, mode: Mode, wait_ms: u64) -> Response {
        let now_ms = self.now_ms;
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        let lease_full = lease.holds.len() + lease.waits.len() >= LOCKS_PER_LEASE_MAX;
        let after_token = self.last_token;
        let Some(lock) = self.locks.get_mut(&name) else {
            if lease_full {
                return Err(Refusal::LimitReached(Limit::LocksPerLease));
            }
            let grant = self.grant(lease_id, name, mode);
            return Ok(Outcome::Granted(grant));
        };
        if let Some(held) = lock.holders.get(&lease_id) {
            if held.mode != mode {
                return Err(Refusal::ModeConflict { held: held.mode });
            }
            return Ok(Outcome::Granted(held.clone()));
        }
        // FIFO without barging: a request is granted at once only when no
        // one waits ahead of it, so a waiting writer holds back later readers.
        if lock.waiters.is_empty() && lock.admits(mode) {
            if lease_full {
                return Err(Refusal::LimitReached(Limit::LocksPerLease));
            }
            let grant = self.grant(lease_id, name, mode);
            return Ok(Outcome::Granted(grant));
        }
        let holder_token = lock
            .newest_token()
            .expect("a lock with waiters or incompatible holders is held");
        if wait_ms == 0 {
            // A try-lock answers now, even from a lease that also waits for
            // this lock through another request; that wait goes on.
            return Err(Refusal::LockBusy { holder_token });
        }
        let deadline_ms = now_ms.saturating_add(wait_ms);
        if let Some(position) = lock.position(lease_id) {
            let waiter = &mut lock.waiters[position];
            if waiter.mode != mode {
                return Err(Refusal::ModeConflict { held: waiter.mode });
            }
            // A retried wait keeps its place; the later deadline counts.
            waiter.deadline_ms = waiter.deadline_ms.max(deadline_ms);
            return Ok(Outcome::Queued {
                position,
                after_token,
            });
        }
        if lock.waiters.len() >= WAITERS_PER_LOCK_MAX {
            return Err(Refusal::LimitReached(Limit::WaitersPerLock));
        }
        if lease_full {
            return Err(Refusal::LimitReached(Limit::LocksPerLease));
        }
        if let Some(cycle) = self.cycle_through(lease_id, &name) {
            return Err(Refusal::Deadlock { cycle });
        }
        let lock = self.locks.get_mut(&name).expect("checked above");
        lock.waiters.push_back(Waiter {
            lease_id,
            mode,
            queued_at_ms: now_ms,
            deadline_ms,
        });
        let position = lock.waiters.len() - 1;
        self.lease_mut(lease_id).waits.insert(name);
        Ok(Outcome::Queued {
            position,
            after_token,
        })
    }

    /// The leases a lease waiting in `lock` (at `position`, or joining the
    /// end) waits on directly: every holder, and the waiter just ahead of
    /// it. That waiter in turn waits on the one ahead of it, so the lease
    /// reaches every waiter ahead without an edge to each.
    fn blockers(lock: &Lock, lease_id: LeaseId, position: Option<usize>) -> BTreeSet<LeaseId> {
        let ahead = position.unwrap_or(lock.waiters.len());
        let just_ahead = ahead.checked_sub(1).map(|i| lock.waiters[i].lease_id);
        lock.holders
            .keys()
            .copied()
            .chain(just_ahead)
            .filter(|id| *id != lease_id)
            .collect()
    }

    /// The cycle in the wait-for graph through `lease_id` waiting for
    /// `name` (a new wait, joining the end of the queue), starting with that
    /// wait's edge.
    ///
    /// A waiter waits for the holders of its lock and for the waiters ahead
    /// of it (they must be granted and let go first). A grant never adds an
    /// edge (the queue head everyone behind already waited for becomes a
    /// holder), so refusing every new wait that closes a cycle keeps the
    /// graph free of cycles.
    fn cycle_through(&self, lease_id: LeaseId, name: &LockName) -> Option<Vec<WaitEdge>> {
        let lock = self.locks.get(name)?;
        let lease = self.leases.get(&lease_id)?;
        if lease.holds.is_empty() && lease.waits.is_empty() {
            // Edges point only at holders and waiters: nothing reaches a
            // lease that holds nothing and waits nowhere yet.
            return None;
        }
        // Breadth-first from the new wait's blockers, in BTree order, so
        // that every replica finds the same (shortest) cycle. `came_by`
        // keeps the edge that first reached each lease, to rebuild the path.
        let mut came_by: BTreeMap<LeaseId, WaitEdge> = BTreeMap::new();
        let mut frontier = VecDeque::new();
        for blocker in Self::blockers(lock, lease_id, None) {
            let edge = WaitEdge {
                lease_id,
                waits_for: name.clone(),
                held_by: blocker,
            };
            came_by.insert(blocker, edge);
            frontier.push_back(blocker);
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
                for next in Self::blockers(lock, from, lock.position(from)) {
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
    fn wait_graph_is_acyclic(&self) -> bool {
        let mut edges: BTreeMap<LeaseId, Vec<LeaseId>> = BTreeMap::new();
        let mut waited_on: BTreeMap<LeaseId, usize> =
            self.leases.keys().map(|id| (*id, 0)).collect();
        for (id, lease) in &self.leases {
            for name in &lease.waits {
                let lock = &self.locks[name];
                for next in Self::blockers(lock, *id, lock.position(*id)) {
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

    fn release(&mut self, lease_id: LeaseId, name: &LockName, events: &mut Vec<Event>) -> Response {
        let lease = self
            .leases
            .get_mut(&lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        if !lease.holds.remove(name) {
            return Err(Refusal::NotHolder);
        }
        self.let_go(lease_id, name, events);
        Ok(Outcome::Released)
    }

    fn cancel_wait(
        &mut self,
        lease_id: LeaseId,
        name: &LockName,
        events: &mut Vec<Event>,
    ) -> Response {
        let lease = self
            .leases
            .get_mut(&lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        if lease.holds.contains(name) {
            let lock = self
                .locks
                .get(name)
                .expect("a lock a lease holds is in the table");
            let grant = lock
                .holders
                .get(&lease_id)
                .expect("a lock a lease holds lists it")
                .clone();
            return Ok(Outcome::Granted(grant));
        }
        if lease.waits.remove(name) {
            self.leave_queue(lease_id, name, events);
        }
        Ok(Outcome::WaitCancelled)
    }

    /// Removes `lease_id`'s grant of `name` (its lease has already let go
    /// of it) and grants the lock onwards.
    fn let_go(&mut self, lease_id: LeaseId, name: &LockName, events: &mut Vec<Event>) {
        let lock = self
            .locks
            .get_mut(name)
            .expect("a released lock is in the table");
        lock.holders.remove(&lease_id);
        self.grant_waiters(name, events);
    }

    /// Removes `lease_id` from the queue of `name` (its lease has already let
    /// go of the wait) and grants the lock onwards: the waiter may have held
    /// back the ones behind it.
    fn leave_queue(&mut self, lease_id: LeaseId, name: &LockName, events: &mut Vec<Event>) {
        let lock = self
            .locks
            .get_mut(name)
            .expect("a waited-for lock is in the table");
        lock.waiters.retain(|w| w.lease_id != lease_id);
        self.grant_waiters(name, events);
    }

    /// Grants the lock `name` to the head of its queue for as long as the
    /// head fits beside the holders, in order; removes the lock when nothing
    /// is left.
    fn grant_waiters(&mut self, name: &LockName, events: &mut Vec<Event>) {
        loop {
            let lock = self.locks.get_mut(name).expect("the lock is in the table");
            let next = match lock.waiters.front() {
                Some(head) if lock.admits(head.mode) => lock.waiters.pop_front().expect("a head"),
                Some(_) => return,
                None => {
                    if lock.holders.is_empty() {
                        self.locks.remove(name);
                    }
                    return;
                }
            };
            self.lease_mut(next.lease_id).waits.remove(name);
            let grant = self.grant(next.lease_id, name.clone(), next.mode);
            events.push(Event::Granted(grant));
        }
    }

    /// Grants the lock `name` to `lease_id` under the next token.
    fn grant(&mut self, lease_id: LeaseId, name: LockName, mode: Mode) -> Grant {
        self.last_token = self.last_token.next();
        let grant = Grant {
            name: name.clone(),
            lease_id,
            mode,
            fencing_token: self.last_token,
            granted_at_ms: self.now_ms,
        };
        self.lease_mut(lease_id).holds.insert(name.clone());
        let lock = self.locks.entry(name).or_default();
        assert!(
            lock.admits(mode),
            "granted a lock beside an incompatible holder"
        );
        lock.holders.insert(lease_id, grant.clone());
        grant
    }

    fn lease_mut(&mut self, lease_id: LeaseId) -> &mut Lease {
        self.leases
            .get_mut(&lease_id)
            .expect("a lease in a lock is live")
    }

    /// Checks every invariant of the table; `Err` names the first broken one.
    ///
    /// It walks the whole table, so apply does not call it; tests call it
    /// after every command, and after restoring a snapshot.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (name, lock) in &self.locks {
            self.check_lock(name, lock)?;
        }
        for (id, lease) in &self.leases {
            for name in &lease.holds {
                let holds = self
                    .locks
                    .get(name)
                    .is_some_and(|l| l.holders.contains_key(id));
                if !holds {
                    return Err(format!("lease {id} lists {name:?} but does not hold it"));
                }
            }
            for name in &lease.waits {
                if self.locks.get(name).and_then(|l| l.position(*id)).is_none() {
                    return Err(format!(
                        "lease {id} lists a wait for {name:?} but is not queued"
                    ));
                }
            }
        }
        if !self.wait_graph_is_acyclic() {
            return Err("the wait-for graph has a cycle".into());
        }
        Ok(())
    }

    fn check_lock(&self, name: &LockName, lock: &Lock) -> Result<(), String> {
        if lock.holders.is_empty() && lock.waiters.is_empty() {
            return Err(format!(
                "lock {name:?} in the table with no holder and no waiter"
            ));
        }
        let exclusive = lock
            .holders
            .values()
            .filter(|g| g.mode == Mode::Exclusive)
            .count();
        if exclusive > 1 || (exclusive == 1 && lock.holders.len() > 1) {
            return Err(format!(
                "lock {name:?} has an exclusive holder beside another holder"
            ));
        }
        if let Some(head) = lock.waiters.front() {
            if lock.admits(head.mode) {
                return Err(format!(
                    "lock {name:?} strands its queue head while it could be granted"
                ));
            }
        }
        for (lease_id, grant) in &lock.holders {
            if grant.fencing_token > self.last_token
                || grant.lease_id != *lease_id
                || grant.name != *name
            {
                return Err(format!("lock {name:?} has a malformed grant {grant:?}"));
            }
            let lease = self
                .leases
                .get(lease_id)
                .ok_or(format!("lock {name:?} held by a dead lease"))?;
            if !lease.holds.contains(name) {
                return Err(format!(
                    "lock {name:?} held by a lease that does not list it"
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for waiter in &lock.waiters {
            let lease = self
                .leases
                .get(&waiter.lease_id)
                .ok_or(format!("lock {name:?} has a dead waiter"))?;
            if !lease.waits.contains(name) || lock.holders.contains_key(&waiter.lease_id) {
                return Err(format!("lock {name:?} has a waiter that does not list it"));
            }
            if !seen.insert(waiter.lease_id) {
                return Err(format!("lock {name:?} has a lease twice in its queue"));
            }
        }
        Ok(())
    }
}
