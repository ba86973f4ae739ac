//! The table's invariants, checked by tests after every command.

use std::collections::BTreeSet;

use super::LockTable;
use crate::kv::KvKey;
use crate::lease::{Lease, LeaseId};
use crate::lock::{Kind, Lock, LockName, Mode};

/// An invariant of the lock table that does not hold: always a bug, since
/// apply keeps every one. Found by tests, which check after every command,
/// and by a node that restores a snapshot, which refuses it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokenInvariant {
    /// A lock, semaphore or election disagrees with itself or its leases.
    #[error("{kind} {name:?} {what}")]
    Lock {
        /// Lock, semaphore or election.
        kind: Kind,
        /// Its name.
        name: LockName,
        /// What is wrong with it.
        what: String,
    },
    /// A lease lists holds or waits the locks do not have.
    #[error("lease {lease_id} {what}")]
    Lease {
        /// The lease.
        lease_id: LeaseId,
        /// What is wrong with it.
        what: String,
    },
    /// The answers remembered for idempotency keys disagree with their
    /// indexes or their byte count.
    #[error("the remembered answers' indexes disagree")]
    Remembered,
    /// The lock timelines are over their bounds or disagree with their
    /// index.
    #[error("the lock timelines are out of bounds or their index disagrees")]
    Timelines,
    /// The fenced store's byte count is not what its keys and values cost.
    #[error("the fenced store counts {counted_bytes} bytes but holds {held_bytes}")]
    KvBytes {
        /// The count the table keeps.
        counted_bytes: usize,
        /// What its keys and values cost.
        held_bytes: usize,
    },
    /// A key was written under a token never handed out.
    #[error("key {key:?} was written under a token never handed out")]
    KvToken {
        /// The key.
        key: KvKey,
    },
    /// The tokens, or the leases and keys each token owns, disagree with
    /// their indexes.
    #[error("the tokens or what they own disagree with their indexes")]
    Auth,
    /// A work queue disagrees with itself, its leases or the token counter.
    #[error("queue {name:?} {what}")]
    Queue {
        /// The queue.
        name: LockName,
        /// What is wrong with it.
        what: String,
    },
    /// The claims indexed by lease disagree with the queues' items.
    #[error("the claims of each lease disagree with the queues' items")]
    QueueClaims,
    /// The index of wait and lock-delay deadlines disagrees with the locks.
    #[error("the deadlines of waits and lock-delays disagree with the locks")]
    Deadlines,
    /// The wait-for graph has a cycle: a deadlock went undetected.
    #[error("the wait-for graph has a cycle")]
    WaitCycle,
}

/// A broken invariant of the `kind` called `name`.
fn broken(kind: Kind, name: &LockName, what: impl Into<String>) -> BrokenInvariant {
    BrokenInvariant::Lock {
        kind,
        name: name.clone(),
        what: what.into(),
    }
}

impl LockTable {
    /// Checks every invariant of the table; `Err` names the first broken one.
    ///
    /// It walks the whole table: apply calls it only in debug builds and
    /// on small tables; tests call it after every command, and a node after
    /// restoring a snapshot.
    pub fn check_invariants(&self) -> Result<(), BrokenInvariant> {
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
        self.check_store()?;
        self.check_auth()?;
        self.check_queues()?;
        if self.walked_deadlines() != self.deadlines {
            return Err(BrokenInvariant::Deadlines);
        }
        if !self.wait_graph_is_acyclic() {
            return Err(BrokenInvariant::WaitCycle);
        }
        Ok(())
    }

    /// The indexes of tokens and of what they own agree with the tokens,
    /// leases and keys; there are tokens only once auth is on.
    fn check_auth(&self) -> Result<(), BrokenInvariant> {
        let mut derived = self.clone();
        derived.rebuild_derived();
        let agrees = self.tokens.index_agrees()
            && derived.owned_leases == self.owned_leases
            && derived.owned_keys == self.owned_keys
            && (self.tokens.enabled() || self.tokens.is_empty());
        if !agrees {
            return Err(BrokenInvariant::Auth);
        }
        Ok(())
    }

    /// Every claim and waiting claim is of a live lease, under a token
    /// handed out, and indexed by its lease; ids and seqs are below their
    /// counters.
    fn check_queues(&self) -> Result<(), BrokenInvariant> {
        let mut derived = self.queues.clone();
        derived.rebuild_derived();
        for (name, queue) in self.queues.iter() {
            let broken = |what: String| BrokenInvariant::Queue {
                name: name.clone(),
                what,
            };
            if queue.config.dead_letter.as_ref() == Some(name) {
                return Err(broken("is its own dead-letter queue".into()));
            }
            for waiting in &queue.claimers {
                if !self.leases.contains_key(&waiting.lease_id) {
                    return Err(broken(format!(
                        "has a waiting claim of ended lease {}",
                        waiting.lease_id
                    )));
                }
            }
            for (id, item) in &queue.items {
                if *id != item.id || id.0 >= self.queues.next_item_id || item.seq >= queue.next_seq
                {
                    return Err(broken(format!("item {id} is past its counters")));
                }
                if item.last_token.is_some_and(|t| t > self.last_token) {
                    return Err(broken(format!("item {id} has a token never handed out")));
                }
                if let Some(claim) = &item.claim {
                    let live = self.leases.contains_key(&claim.lease_id);
                    if !live || item.last_token != Some(claim.fencing_token) || item.attempt == 0 {
                        return Err(broken(format!(
                            "item {id} has a claim that is not its latest, or of an ended lease"
                        )));
                    }
                }
            }
        }
        if derived.claims_by_lease != self.queues.claims_by_lease {
            return Err(BrokenInvariant::QueueClaims);
        }
        Ok(())
    }

    /// A lease's holds, waits and acquire-alls agree with the locks.
    fn check_lease(&self, id: LeaseId, lease: &Lease) -> Result<(), BrokenInvariant> {
        for kind in Kind::ALL {
            for name in lease.held(kind) {
                let holds = self
                    .map(kind)
                    .get(name)
                    .is_some_and(|l| l.holders.contains_key(&id));
                if !holds {
                    return Err(BrokenInvariant::Lease {
                        lease_id: id,
                        what: format!("lists {kind} {name:?} but does not hold it"),
                    });
                }
            }
            for name in lease.waited(kind) {
                if self
                    .map(kind)
                    .get(name)
                    .and_then(|l| l.position(id))
                    .is_none()
                {
                    return Err(BrokenInvariant::Lease {
                        lease_id: id,
                        what: format!("lists a wait for {kind} {name:?} but is not queued"),
                    });
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
                return Err(BrokenInvariant::Lease {
                    lease_id: id,
                    what: "keeps an acquire-all that waits for nothing or lost a lock".into(),
                });
            }
            for name in &group.waiting {
                if !lease.waits.contains(name) || !grouped.insert(name.clone()) {
                    return Err(BrokenInvariant::Lease {
                        lease_id: id,
                        what: format!("waits for {name:?} in two requests, or not at all"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The fenced store's byte count and tokens agree with its records.
    fn check_store(&self) -> Result<(), BrokenInvariant> {
        let kv_bytes: usize = self.kv.iter().map(|(k, v)| crate::kv::kv_cost(k, v)).sum();
        if kv_bytes != self.kv_bytes {
            return Err(BrokenInvariant::KvBytes {
                counted_bytes: self.kv_bytes,
                held_bytes: kv_bytes,
            });
        }
        for (key, record) in &self.kv {
            if record.fencing_token > self.last_token {
                return Err(BrokenInvariant::KvToken { key: key.clone() });
            }
        }
        Ok(())
    }

    fn check_lock(&self, kind: Kind, name: &LockName, lock: &Lock) -> Result<(), BrokenInvariant> {
        if lock.is_unused() {
            return Err(broken(kind, name, "in the table but not in use"));
        }
        if (kind == Kind::Semaphore) != lock.limit.is_some() {
            return Err(broken(kind, name, "has a limit only semaphores have"));
        }
        if kind != Kind::Lock && lock.delayed_until_ms > 0 {
            return Err(broken(kind, name, "is under lock-delay"));
        }
        let valued = lock
            .holders
            .values()
            .map(|g| &g.value)
            .chain(lock.waiters.iter().map(|w| &w.value))
            .all(|v| v.is_some() == (kind == Kind::Election));
        if !valued || (kind == Kind::Election && lock.holders.len() > 1) {
            return Err(broken(kind, name, "has values or leaders it should not"));
        }
        let exclusive = lock
            .holders
            .values()
            .filter(|g| g.mode == Mode::Exclusive)
            .count();
        if exclusive > 1 || (exclusive == 1 && lock.holders.len() > 1) {
            return Err(broken(
                kind,
                name,
                "has an exclusive holder beside another holder",
            ));
        }
        if let Some(limit) = lock.limit {
            if lock.permits_held() > limit || exclusive > 0 {
                return Err(broken(
                    kind,
                    name,
                    format!("holds more permits than {limit}"),
                ));
            }
        }
        if let Some(head) = lock.waiters.front() {
            let held_back = head.grouped && self.ready_group(head.lease_id, name).is_none();
            if lock.head_fits() && !held_back {
                return Err(broken(
                    kind,
                    name,
                    "strands its queue head while it could be granted",
                ));
            }
        }
        self.check_holders(kind, name, lock)?;
        self.check_waiters(kind, name, lock)
    }

    /// Each holder's grant is well formed and its lease lists it.
    fn check_holders(
        &self,
        kind: Kind,
        name: &LockName,
        lock: &Lock,
    ) -> Result<(), BrokenInvariant> {
        for grant in lock.holders.values() {
            let lease_id = &grant.lease_id;
            if grant.fencing_token > self.last_token
                || grant.name != *name
                || (kind == Kind::Lock && grant.permits != 1)
            {
                return Err(broken(
                    kind,
                    name,
                    format!("has a malformed grant {grant:?}"),
                ));
            }
            let lease = self
                .leases
                .get(lease_id)
                .ok_or_else(|| broken(kind, name, "held by a dead lease"))?;
            if !lease.held(kind).contains(name) {
                return Err(broken(kind, name, "held by a lease that does not list it"));
            }
        }
        Ok(())
    }

    /// Each waiter's lease lives, lists the wait, and is queued once.
    fn check_waiters(
        &self,
        kind: Kind,
        name: &LockName,
        lock: &Lock,
    ) -> Result<(), BrokenInvariant> {
        let mut seen = BTreeSet::new();
        for waiter in &lock.waiters {
            let lease = self
                .leases
                .get(&waiter.lease_id)
                .ok_or_else(|| broken(kind, name, "has a dead waiter"))?;
            if !lease.waited(kind).contains(name) || lock.holders.contains_key(&waiter.lease_id) {
                return Err(broken(kind, name, "has a waiter that does not list it"));
            }
            let in_group = kind == Kind::Lock && lease.group_of(name).is_some();
            if waiter.grouped != in_group {
                return Err(broken(kind, name, "has a waiter outside its acquire-all"));
            }
            if !seen.insert(waiter.lease_id) {
                return Err(broken(kind, name, "has a lease twice in its queue"));
            }
        }
        Ok(())
    }
}
