//! The lock table: the replicated state and its apply function.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::command::{Command, Proposal};
use crate::lease::{Lease, LeaseId};
use crate::lock::{Grant, Lock, LockName, Waiter};
use crate::outcome::{Applied, Event, Limit, Outcome, Refusal, Response};
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
                wait_ms,
            } => self.acquire(lease_id, name, wait_ms),
            Command::Release { lease_id, name } => self.release(lease_id, &name, &mut events),
            Command::CancelWait { lease_id, name } => self.cancel_wait(lease_id, &name),
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
            let lock = self.locks.get_mut(name).expect("a waited-for lock is held");
            lock.waiters.retain(|w| w.lease_id != lease_id);
            events.push(Event::WaitEnded {
                lease_id,
                name: name.clone(),
            });
        }
        for name in &lease.holds {
            self.hand_over(name, events);
        }
        Ok(Outcome::LeaseEnded {
            released: lease.holds.into_iter().collect(),
        })
    }

    fn acquire(&mut self, lease_id: LeaseId, name: LockName, wait_ms: u64) -> Response {
        let now_ms = self.now_ms;
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        let lease_full = lease.holds.len() + lease.waits.len() >= LOCKS_PER_LEASE_MAX;
        let Some(lock) = self.locks.get_mut(&name) else {
            if lease_full {
                return Err(Refusal::LimitReached(Limit::LocksPerLease));
            }
            let grant = self.grant(lease_id, name);
            return Ok(Outcome::Granted(grant));
        };
        let holder = lock.holder.as_ref().expect("a lock in the table is held");
        if holder.lease_id == lease_id {
            return Ok(Outcome::Granted(holder.clone()));
        }
        let holder_token = holder.fencing_token;
        let deadline_ms = now_ms.saturating_add(wait_ms);
        if wait_ms == 0 {
            // A try-lock answers now, even from a lease that also waits for
            // this lock through another request; that wait goes on.
            return Err(Refusal::LockBusy { holder_token });
        }
        if let Some(position) = lock.position(lease_id) {
            // A retried wait keeps its place; the later deadline counts.
            let waiter = &mut lock.waiters[position];
            waiter.deadline_ms = waiter.deadline_ms.max(deadline_ms);
            return Ok(Outcome::Queued {
                position,
                holder_token,
            });
        }
        if lock.waiters.len() >= WAITERS_PER_LOCK_MAX {
            return Err(Refusal::LimitReached(Limit::WaitersPerLock));
        }
        if lease_full {
            return Err(Refusal::LimitReached(Limit::LocksPerLease));
        }
        lock.waiters.push_back(Waiter {
            lease_id,
            queued_at_ms: now_ms,
            deadline_ms,
        });
        let position = lock.waiters.len() - 1;
        self.lease_mut(lease_id).waits.insert(name);
        Ok(Outcome::Queued {
            position,
            holder_token,
        })
    }

    fn release(&mut self, lease_id: LeaseId, name: &LockName, events: &mut Vec<Event>) -> Response {
        let lease = self
            .leases
            .get_mut(&lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        if !lease.holds.remove(name) {
            return Err(Refusal::NotHolder);
        }
        self.hand_over(name, events);
        Ok(Outcome::Released)
    }

    fn cancel_wait(&mut self, lease_id: LeaseId, name: &LockName) -> Response {
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
                .holder
                .clone()
                .expect("a lock a lease holds has a holder");
            return Ok(Outcome::Granted(grant));
        }
        if lease.waits.remove(name) {
            let lock = self.locks.get_mut(name).expect("a waited-for lock is held");
            lock.waiters.retain(|w| w.lease_id != lease_id);
        }
        Ok(Outcome::WaitCancelled)
    }

    /// Frees the lock `name` (its holder has already let go of it in its
    /// lease) and grants it to the head of its queue, if any.
    fn hand_over(&mut self, name: &LockName, events: &mut Vec<Event>) {
        let lock = self
            .locks
            .get_mut(name)
            .expect("a released lock is in the table");
        lock.holder = None;
        match lock.waiters.pop_front() {
            None => {
                self.locks.remove(name);
            }
            Some(next) => {
                self.lease_mut(next.lease_id).waits.remove(name);
                let grant = self.grant(next.lease_id, name.clone());
                events.push(Event::Granted(grant));
            }
        }
    }

    /// Grants the free lock `name` to `lease_id` under the next token.
    fn grant(&mut self, lease_id: LeaseId, name: LockName) -> Grant {
        self.last_token = self.last_token.next();
        let grant = Grant {
            name: name.clone(),
            lease_id,
            fencing_token: self.last_token,
            granted_at_ms: self.now_ms,
        };
        self.lease_mut(lease_id).holds.insert(name.clone());
        let lock = self.locks.entry(name).or_default();
        assert!(lock.holder.is_none(), "granted a lock that is held");
        lock.holder = Some(grant.clone());
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
            let holder = lock
                .holder
                .as_ref()
                .ok_or(format!("lock {name:?} in the table without a holder"))?;
            if holder.fencing_token > self.last_token {
                return Err(format!("lock {name:?} holds a token above the counter"));
            }
            let lease = self
                .leases
                .get(&holder.lease_id)
                .ok_or(format!("lock {name:?} held by a dead lease"))?;
            if !lease.holds.contains(name) {
                return Err(format!(
                    "lock {name:?} held by a lease that does not list it"
                ));
            }
            for waiter in &lock.waiters {
                let lease = self
                    .leases
                    .get(&waiter.lease_id)
                    .ok_or(format!("lock {name:?} has a dead waiter"))?;
                if !lease.waits.contains(name) || waiter.lease_id == holder.lease_id {
                    return Err(format!("lock {name:?} has a waiter that does not list it"));
                }
            }
            let mut ids: Vec<_> = lock.waiters.iter().map(|w| w.lease_id).collect();
            ids.sort();
            ids.dedup();
            if ids.len() != lock.waiters.len() {
                return Err(format!("lock {name:?} has a lease twice in its queue"));
            }
        }
        for (id, lease) in &self.leases {
            for name in &lease.holds {
                let held_by = self
                    .locks
                    .get(name)
                    .and_then(|l| l.holder.as_ref())
                    .map(|h| h.lease_id);
                if held_by != Some(*id) {
                    return Err(format!("lease {id} lists {name:?} but does not hold it"));
                }
            }
            for name in &lease.waits {
                let waits = self.locks.get(name).and_then(|l| l.position(*id));
                if waits.is_none() {
                    return Err(format!(
                        "lease {id} lists a wait for {name:?} but is not queued"
                    ));
                }
            }
        }
        Ok(())
    }
}
