//! The table's invariants, checked after every command by tests and by
//! apply in debug builds.

use std::collections::BTreeSet;

use super::LockTable;
use crate::lease::{Lease, LeaseId};
use crate::lock::{Kind, Lock, LockName, Mode};

impl LockTable {
    /// Checks every invariant of the table; `Err` names the first broken one.
    ///
    /// It walks the whole table, so only debug builds call it from apply,
    /// and only while the table is small; tests call it after every
    /// command too, and after restoring a snapshot.
    pub fn check_invariants(&self) -> Result<(), String> {
        for kind in Kind::ALL {
            for (name, lock) in self.map(kind) {
                self.check_lock(kind, name, lock)?;
            }
        }
        for (id, lease) in &self.leases {
            self.check_lease(*id, lease)?;
        }
        self.remembered.check()?;
        self.timelines.check()?;
        let kv_bytes: usize = self.kv.iter().map(|(k, v)| crate::kv::kv_cost(k, v)).sum();
        if kv_bytes != self.kv_bytes {
            return Err(format!(
                "the fenced store counts {} bytes but holds {kv_bytes}",
                self.kv_bytes
            ));
        }
        for (key, record) in &self.kv {
            if record.fencing_token > self.last_token {
                return Err(format!(
                    "key {key:?} was written under a token never handed out"
                ));
            }
        }
        if !self.wait_graph_is_acyclic() {
            return Err("the wait-for graph has a cycle".into());
        }
        Ok(())
    }

    fn check_lock(&self, kind: Kind, name: &LockName, lock: &Lock) -> Result<(), String> {
        if lock.is_unused() {
            return Err(format!("{kind} {name:?} in the table but not in use"));
        }
        if (kind == Kind::Semaphore) != lock.limit.is_some() {
            return Err(format!("{kind} {name:?} has a limit only semaphores have"));
        }
        if kind != Kind::Lock && lock.delayed_until_ms > 0 {
            return Err(format!("{kind} {name:?} is under lock-delay"));
        }
        let valued = lock
            .holders
            .values()
            .map(|g| &g.value)
            .chain(lock.waiters.iter().map(|w| &w.value))
            .all(|v| v.is_some() == (kind == Kind::Election));
        if !valued || (kind == Kind::Election && lock.holders.len() > 1) {
            return Err(format!(
                "{kind} {name:?} has values or leaders it should not"
            ));
        }
        let exclusive = lock
            .holders
            .values()
            .filter(|g| g.mode == Mode::Exclusive)
            .count();
        if exclusive > 1 || (exclusive == 1 && lock.holders.len() > 1) {
            return Err(format!(
                "{kind} {name:?} has an exclusive holder beside another holder"
            ));
        }
        if let Some(limit) = lock.limit {
            if lock.permits_held() > limit || exclusive > 0 {
                return Err(format!(
                    "semaphore {name:?} holds more permits than {limit}"
                ));
            }
        }
        if let Some(head) = lock.waiters.front() {
            let held_back = head.grouped && self.ready_group(head.lease_id, name).is_none();
            if lock.head_fits() && !held_back {
                return Err(format!(
                    "{kind} {name:?} strands its queue head while it could be granted"
                ));
            }
        }
        self.check_holders(kind, name, lock)?;
        self.check_waiters(kind, name, lock)
    }

    /// Checks that every grant of `lock` is well formed and that its lease
    /// lives and lists it.
    fn check_holders(&self, kind: Kind, name: &LockName, lock: &Lock) -> Result<(), String> {
        for (lease_id, grant) in &lock.holders {
            if grant.fencing_token > self.last_token
                || grant.lease_id != *lease_id
                || grant.name != *name
                || (kind == Kind::Lock && grant.permits != 1)
            {
                return Err(format!("{kind} {name:?} has a malformed grant {grant:?}"));
            }
            let lease = self
                .leases
                .get(lease_id)
                .ok_or(format!("{kind} {name:?} held by a dead lease"))?;
            if !lease.held(kind).contains(name) {
                return Err(format!(
                    "{kind} {name:?} held by a lease that does not list it"
                ));
            }
        }
        Ok(())
    }

    /// Checks that every waiter of `lock` lives, lists the wait, is grouped
    /// exactly when its lease waits in an acquire-all, and queues once.
    fn check_waiters(&self, kind: Kind, name: &LockName, lock: &Lock) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for waiter in &lock.waiters {
            let lease = self
                .leases
                .get(&waiter.lease_id)
                .ok_or(format!("{kind} {name:?} has a dead waiter"))?;
            if !lease.waited(kind).contains(name) || lock.holders.contains_key(&waiter.lease_id) {
                return Err(format!(
                    "{kind} {name:?} has a waiter that does not list it"
                ));
            }
            let in_group = kind == Kind::Lock && lease.group_of(name).is_some();
            if waiter.grouped != in_group {
                return Err(format!(
                    "{kind} {name:?} has a waiter outside its acquire-all"
                ));
            }
            if !seen.insert(waiter.lease_id) {
                return Err(format!("{kind} {name:?} has a lease twice in its queue"));
            }
        }
        Ok(())
    }

    /// Checks that a lease's lists agree with the queues and holders, and
    /// that its waiting acquire-alls are whole.
    fn check_lease(&self, id: LeaseId, lease: &Lease) -> Result<(), String> {
        for kind in Kind::ALL {
            for name in lease.held(kind) {
                let holds = self
                    .map(kind)
                    .get(name)
                    .is_some_and(|l| l.holders.contains_key(&id));
                if !holds {
                    return Err(format!(
                        "lease {id} lists {kind} {name:?} but does not hold it"
                    ));
                }
            }
            for name in lease.waited(kind) {
                if self
                    .map(kind)
                    .get(name)
                    .and_then(|l| l.position(id))
                    .is_none()
                {
                    return Err(format!(
                        "lease {id} lists a wait for {kind} {name:?} but is not queued"
                    ));
                }
            }
        }
        let mut grouped = BTreeSet::new();
        for group in &lease.groups {
            let whole = group.waiting.is_subset(&group.names)
                && group
                    .names
                    .iter()
                    .all(|n| group.waiting.contains(n) != lease.holds.contains(n));
            if group.waiting.is_empty() || !whole {
                return Err(format!(
                    "lease {id} keeps an acquire-all that waits for nothing or lost a lock"
                ));
            }
            for name in &group.waiting {
                if !lease.waits.contains(name) || !grouped.insert(name.clone()) {
                    return Err(format!(
                        "lease {id} waits for {name:?} in two requests, or not at all"
                    ));
                }
            }
        }
        Ok(())
    }
}
