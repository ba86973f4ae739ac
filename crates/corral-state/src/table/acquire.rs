//! Taking, releasing and withdrawing: the commands a client's request
//! becomes.

use std::collections::BTreeSet;

use super::LockTable;
use crate::check::{check_acquire_all_names, check_election_value, check_permits};
use crate::lease::{LeaseId, WaitGroup};
use crate::lock::{Claim, Grant, Kind, Lock, LockName, Mode, Waiter};
use crate::outcome::{Event, Limit, Outcome, Refusal, Response};
use crate::token::FencingToken;
use crate::{LOCKS_PER_LEASE_MAX, WAITERS_PER_LOCK_MAX};

/// One acquire of one lock or semaphore.
struct Ask {
    kind: Kind,
    lease_id: LeaseId,
    name: LockName,
    claim: Claim,
    /// The limit of a semaphore the acquire would create.
    limit: Option<u32>,
    wait_ms: u64,
}

impl LockTable {
    pub(super) fn acquire(
        &mut self,
        lease_id: LeaseId,
        name: LockName,
        mode: Mode,
        wait_ms: u64,
        events: &mut Vec<Event>,
    ) -> Response {
        self.lift_if_due(&name, events);
        self.acquire_one(Ask {
            kind: Kind::Lock,
            lease_id,
            name,
            claim: Claim::lock(mode),
            limit: None,
            wait_ms,
        })
    }

    /// Leads the election, or queues as a candidate.
    pub(super) fn campaign(
        &mut self,
        lease_id: LeaseId,
        name: LockName,
        value: String,
        wait_ms: u64,
    ) -> Response {
        check_election_value(&value)?;
        self.acquire_one(Ask {
            kind: Kind::Election,
            lease_id,
            name,
            claim: Claim {
                mode: Mode::Exclusive,
                permits: 1,
                value: Some(value),
            },
            limit: None,
            wait_ms,
        })
    }

    /// Changes the leader's value under a new token, so that observers
    /// holding the old token see the change.
    pub(super) fn proclaim(
        &mut self,
        lease_id: LeaseId,
        name: &LockName,
        value: String,
    ) -> Response {
        check_election_value(&value)?;
        self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        let next = self.last_token.next();
        let now_ms = self.now_ms;
        let leader = self
            .elections
            .get_mut(name)
            .and_then(|e| e.holders.get_mut(&lease_id))
            .ok_or(Refusal::NotLeader)?;
        leader.value = Some(value);
        leader.fencing_token = next;
        leader.granted_at_ms = now_ms;
        let leader = leader.clone();
        self.last_token = next;
        Ok(Outcome::Granted(leader))
    }

    /// Steps down as leader, or withdraws a waiting candidacy. With
    /// `fencing_token`, only the leadership under that token ends.
    pub(super) fn resign(
        &mut self,
        lease_id: LeaseId,
        name: &LockName,
        fencing_token: Option<FencingToken>,
        events: &mut Vec<Event>,
    ) -> Response {
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        if fencing_token.is_none() && lease.campaigns.contains(name) {
            return self.cancel_wait(Kind::Election, lease_id, name, events);
        }
        self.release(Kind::Election, lease_id, name, fencing_token, events)
            .map_err(|_| Refusal::NotLeader)
    }

    pub(super) fn acquire_permits(
        &mut self,
        lease_id: LeaseId,
        name: LockName,
        limit: u32,
        permits: u32,
        wait_ms: u64,
    ) -> Response {
        check_permits(limit, permits)?;
        if let Some(existing) = self.semaphores.get(&name).and_then(|s| s.limit) {
            if existing != limit {
                return Err(Refusal::LimitMismatch { limit: existing });
            }
        }
        self.acquire_one(Ask {
            kind: Kind::Semaphore,
            lease_id,
            name,
            claim: Claim {
                mode: Mode::Shared,
                permits,
                value: None,
            },
            limit: Some(limit),
            wait_ms,
        })
    }

    /// Grants, queues or refuses one acquire.
    fn acquire_one(&mut self, ask: Ask) -> Response {
        let lease = self
            .leases
            .get(&ask.lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        let lease_full = lease.load() >= LOCKS_PER_LEASE_MAX;
        if let Some(held) = self.holder(ask.kind, &ask.name, ask.lease_id) {
            check_same(ask.kind, held.mode, held.permits, &ask.claim)?;
            let grant = self.regrant(ask.kind, ask.lease_id, &ask.name);
            return Ok(Outcome::Granted(grant));
        }
        // A retried wait is not a new acquire: the order was checked when
        // it first queued.
        if ask.kind == Kind::Lock && !lease.waits.contains(&ask.name) {
            if let Some(refusal) = self.order_violation(lease, &ask.name) {
                return Err(refusal);
            }
        }
        // FIFO without barging: a request is granted at once only when no
        // one waits ahead of it, so a waiting writer holds back later readers.
        let free = self.map(ask.kind).get(&ask.name).is_none_or(|lock| {
            lock.waiters.is_empty() && lock.admits(ask.claim.mode, ask.claim.permits)
        });
        if !free {
            return self.wait_one(ask, lease_full);
        }
        if lease_full {
            return Err(Refusal::LimitReached(Limit::LocksPerLease));
        }
        let token_before = self.last_token;
        let lock = Lock {
            limit: ask.limit,
            ..Lock::default()
        };
        self.map_mut(ask.kind)
            .entry(ask.name.clone())
            .or_insert(lock);
        let grant = self.grant(ask.kind, ask.lease_id, ask.name, ask.claim);
        debug_assert!(
            grant.fencing_token > token_before,
            "a grant takes a token above every earlier one"
        );
        Ok(Outcome::Granted(grant))
    }

    /// Queues an acquire that the lock cannot grant now, keeps the place of
    /// one that already waits, or refuses.
    fn wait_one(&mut self, ask: Ask, lease_full: bool) -> Response {
        let after_token = self.last_token;
        let deadline_ms = self.now_ms.saturating_add(ask.wait_ms);
        let lock = self
            .map_mut(ask.kind)
            .get_mut(&ask.name)
            .expect("only a lock in use holds an acquire back");
        debug_assert!(
            !lock.holders.contains_key(&ask.lease_id),
            "a holder is re-granted, never queued"
        );
        if ask.wait_ms == 0 {
            // A try-lock answers now, even from a lease that also waits for
            // this lock through another request; that wait goes on.
            return Err(busy(lock));
        }
        if let Some(position) = lock.position(ask.lease_id) {
            let waiter = &lock.waiters[position];
            if waiter.grouped {
                return Err(Refusal::AlreadyWaiting { name: ask.name });
            }
            check_same(ask.kind, waiter.mode, waiter.permits, &ask.claim)?;
            // A retried wait keeps its place; the later deadline counts.
            self.extend_wait(ask.kind, &ask.name, position, deadline_ms);
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
        // Semaphore waits stay out of the wait-for graph: any holder's
        // release may be the one that frees enough permits, so an edge to
        // every holder would refuse waits that are not deadlocks.
        if ask.kind == Kind::Lock {
            let names = std::slice::from_ref(&ask.name);
            if let Some(cycle) = self.cycle_through(ask.lease_id, ask.claim.mode, names) {
                return Err(Refusal::Deadlock { cycle });
            }
        }
        let position = self.enqueue(
            ask.kind,
            ask.lease_id,
            &ask.name,
            ask.claim,
            deadline_ms,
            false,
        );
        Ok(Outcome::Queued {
            position,
            after_token,
        })
    }

    /// The lease's grant of `name` of `kind`, if it holds it.
    fn holder(&self, kind: Kind, name: &LockName, lease_id: LeaseId) -> Option<&Grant> {
        self.map(kind).get(name)?.holders.get(&lease_id)
    }

    /// Takes every lock of `names` in one command, or waits for all of them
    /// together in every queue, or refuses.
    pub(super) fn acquire_all(
        &mut self,
        lease_id: LeaseId,
        names: Vec<LockName>,
        mode: Mode,
        wait_ms: u64,
        events: &mut Vec<Event>,
    ) -> Response {
        let set = check_acquire_all_names(&names)?;
        for name in &set {
            self.lift_if_due(name, events);
        }
        let token_before = self.last_token;
        let response = self.take_all(lease_id, &set, mode, wait_ms);
        // All or none: either every name is granted, or no token was taken.
        debug_assert!(
            match &response {
                Ok(Outcome::GrantedAll { grants }) => grants.iter().map(|g| &g.name).eq(&set),
                _ => self.last_token == token_before,
            },
            "an acquire-all grants all its locks or none"
        );
        response
    }

    /// Grants, queues or refuses an acquire-all whose names are checked and
    /// whose due lock-delays are lifted.
    fn take_all(
        &mut self,
        lease_id: LeaseId,
        set: &BTreeSet<LockName>,
        mode: Mode,
        wait_ms: u64,
    ) -> Response {
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        if let Some(group) = lease.groups.iter().find(|g| g.names == *set) {
            // A retried acquire-all keeps its places; the later deadline
            // counts.
            if group.mode != mode {
                return Err(Refusal::ModeConflict { held: group.mode });
            }
            let waited: Vec<LockName> = group.waiting.iter().cloned().collect();
            return self.rewait_all(lease_id, &waited, wait_ms);
        }
        let missing = self.missing_of(lease_id, set, mode)?;
        if lease.load() + missing.len() > LOCKS_PER_LEASE_MAX {
            return Err(Refusal::LimitReached(Limit::LocksPerLease));
        }
        let blocked = missing.iter().find_map(|name| {
            self.locks
                .get(name)
                .filter(|l| !(l.waiters.is_empty() && l.admits(mode, 1)))
        });
        let Some(blocked) = blocked else {
            let grants = self.grant_all_now(lease_id, set, &missing, mode);
            return Ok(Outcome::GrantedAll { grants });
        };
        if wait_ms == 0 {
            return Err(busy(blocked));
        }
        let crowded = missing.iter().any(|name| {
            self.locks
                .get(name)
                .is_some_and(|l| l.waiters.len() >= WAITERS_PER_LOCK_MAX)
        });
        if crowded {
            return Err(Refusal::LimitReached(Limit::WaitersPerLock));
        }
        if let Some(cycle) = self.cycle_through(lease_id, mode, &missing) {
            return Err(Refusal::Deadlock { cycle });
        }
        let after_token = self.last_token;
        let position = self.enqueue_all(lease_id, set, missing, mode, wait_ms);
        Ok(Outcome::Queued {
            position,
            after_token,
        })
    }

    /// The names of `set` the lease does not hold yet, in name order, or
    /// the refusal of the first name it cannot ask for: one it holds in the
    /// other mode, waits for already, or would take out of order.
    fn missing_of(
        &self,
        lease_id: LeaseId,
        set: &BTreeSet<LockName>,
        mode: Mode,
    ) -> Result<Vec<LockName>, Refusal> {
        let lease = &self.leases[&lease_id];
        let mut missing = Vec::new();
        for name in set {
            if let Some(held) = self.holder(Kind::Lock, name, lease_id) {
                check_same(Kind::Lock, held.mode, held.permits, &Claim::lock(mode))?;
                continue;
            }
            if lease.waits.contains(name) {
                return Err(Refusal::AlreadyWaiting { name: name.clone() });
            }
            if let Some(refusal) = self.order_violation(lease, name) {
                return Err(refusal);
            }
            missing.push(name.clone());
        }
        Ok(missing)
    }

    /// Answers a retried acquire-all that already waits for `waited`: a
    /// try is refused as busy, a wait keeps its places and takes the later
    /// deadline.
    fn rewait_all(&mut self, lease_id: LeaseId, waited: &[LockName], wait_ms: u64) -> Response {
        debug_assert!(!waited.is_empty(), "a waiting acquire-all waits somewhere");
        let after_token = self.last_token;
        if wait_ms == 0 {
            // A try answers now, as a single acquire does; the waiting
            // request goes on.
            let blocked = self.locks.get(&waited[0]).expect("a waited lock is in use");
            return Err(busy(blocked));
        }
        let deadline_ms = self.now_ms.saturating_add(wait_ms);
        let mut position = 0;
        for name in waited {
            let lock = self.locks.get(name).expect("a waited lock is in use");
            let at = lock
                .position(lease_id)
                .expect("a waited lock queues the lease");
            self.extend_wait(Kind::Lock, name, at, deadline_ms);
            position = position.max(at);
        }
        Ok(Outcome::Queued {
            position,
            after_token,
        })
    }

    /// Queues an acquire-all in every lock of `set` it lacks (`missing`),
    /// as one group, and returns its furthest position.
    fn enqueue_all(
        &mut self,
        lease_id: LeaseId,
        set: &BTreeSet<LockName>,
        missing: Vec<LockName>,
        mode: Mode,
        wait_ms: u64,
    ) -> usize {
        debug_assert!(
            !missing.is_empty(),
            "an acquire-all waits only for what it lacks"
        );
        // It queues in every lock it lacks, free ones included: that is how
        // it keeps its place everywhere and cannot be starved by later
        // requests for its free locks.
        let deadline_ms = self.now_ms.saturating_add(wait_ms);
        let mut position = 0;
        for name in &missing {
            self.locks.entry(name.clone()).or_default();
            let at = self.enqueue(
                Kind::Lock,
                lease_id,
                name,
                Claim::lock(mode),
                deadline_ms,
                true,
            );
            position = position.max(at);
        }
        self.lease_mut(lease_id).groups.push(WaitGroup {
            names: set.clone(),
            waiting: missing.into_iter().collect(),
            mode,
        });
        position
    }

    /// Grants an acquire-all at once: every lock of `set`, in name order,
    /// each under the next token. A lock the lease held (not `missing`) is
    /// re-granted too, so that no release sent for its old grant can end
    /// what the answer reports.
    fn grant_all_now(
        &mut self,
        lease_id: LeaseId,
        set: &BTreeSet<LockName>,
        missing: &[LockName],
        mode: Mode,
    ) -> Vec<Grant> {
        for name in set {
            if missing.contains(name) {
                self.locks.entry(name.clone()).or_default();
                self.grant(Kind::Lock, lease_id, name.clone(), Claim::lock(mode));
            } else {
                self.regrant(Kind::Lock, lease_id, name);
            }
        }
        self.grants_of(lease_id, set)
    }

    /// Puts the lease at the end of the queue of a lock in use and returns
    /// its position.
    fn enqueue(
        &mut self,
        kind: Kind,
        lease_id: LeaseId,
        name: &LockName,
        claim: Claim,
        deadline_ms: u64,
        grouped: bool,
    ) -> usize {
        let queued_at_ms = self.now_ms;
        debug_assert!(
            self.map(kind).get(name).is_some_and(|lock| {
                lock.position(lease_id).is_none() && !lock.holders.contains_key(&lease_id)
            }),
            "a lease joins a queue only of a lock in use that it neither holds nor waits for"
        );
        let waiter = Waiter {
            lease_id,
            mode: claim.mode,
            permits: claim.permits,
            value: claim.value,
            grouped,
            queued_at_ms,
            deadline_ms,
        };
        let position = self.push_waiter(kind, name, waiter);
        self.lease_mut(lease_id)
            .waited_mut(kind)
            .insert(name.clone());
        position
    }

    /// The lease's grants of `names` that it holds, in name order.
    pub(super) fn grants_of(&self, lease_id: LeaseId, names: &BTreeSet<LockName>) -> Vec<Grant> {
        names
            .iter()
            .filter_map(|name| self.locks.get(name)?.holders.get(&lease_id).cloned())
            .collect()
    }

    /// Ends the lease's grant of `name`; with `fencing_token`, only if the
    /// grant is the one under that token (a newer grant stays).
    pub(super) fn release(
        &mut self,
        kind: Kind,
        lease_id: LeaseId,
        name: &LockName,
        fencing_token: Option<FencingToken>,
        events: &mut Vec<Event>,
    ) -> Response {
        if !self.leases.contains_key(&lease_id) {
            return Err(Refusal::LeaseNotFound);
        }
        if let Some(token) = fencing_token {
            let held = self
                .map(kind)
                .get(name)
                .and_then(|l| l.holders.get(&lease_id));
            if held.is_none_or(|g| g.fencing_token != token) {
                return Err(Refusal::NotHolder);
            }
        }
        let lease = self.lease_mut(lease_id);
        if !lease.held_mut(kind).remove(name) {
            return Err(Refusal::NotHolder);
        }
        // A waiting acquire-all of this lease that counted the lock as held
        // can no longer be granted whole: it is withdrawn.
        let broken: Vec<WaitGroup> = lease
            .groups
            .iter()
            .filter(|g| kind == Kind::Lock && g.names.contains(name))
            .cloned()
            .collect();
        for group in broken {
            self.drop_group(lease_id, &group, events);
            events.push(Event::Withdrawn {
                lease_id,
                names: group.names.into_iter().collect(),
            });
        }
        self.remove_lease_from(kind, lease_id, std::slice::from_ref(name), events);
        debug_assert!(
            self.holder(kind, name, lease_id).is_none(),
            "a released lock has no grant of that lease afterwards"
        );
        Ok(Outcome::Released)
    }

    pub(super) fn cancel_wait(
        &mut self,
        kind: Kind,
        lease_id: LeaseId,
        name: &LockName,
        events: &mut Vec<Event>,
    ) -> Response {
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        if let Some(grant) = self
            .map(kind)
            .get(name)
            .and_then(|l| l.holders.get(&lease_id))
        {
            return Ok(Outcome::Granted(grant.clone()));
        }
        if kind == Kind::Lock {
            if let Some(group) = lease.group_of(name).cloned() {
                self.drop_group(lease_id, &group, events);
                return Ok(Outcome::WaitCancelled);
            }
        }
        if self.lease_mut(lease_id).waited_mut(kind).remove(name) {
            self.remove_lease_from(kind, lease_id, std::slice::from_ref(name), events);
        }
        Ok(Outcome::WaitCancelled)
    }

    pub(super) fn cancel_wait_all(
        &mut self,
        lease_id: LeaseId,
        names: &[LockName],
        events: &mut Vec<Event>,
    ) -> Response {
        let lease = self.leases.get(&lease_id).ok_or(Refusal::LeaseNotFound)?;
        let set: BTreeSet<LockName> = names.iter().cloned().collect();
        if let Some(group) = lease.groups.iter().find(|g| g.names == set).cloned() {
            self.drop_group(lease_id, &group, events);
            return Ok(Outcome::WaitCancelled);
        }
        let grants = self.grants_of(lease_id, &set);
        if !set.is_empty() && grants.len() == set.len() {
            return Ok(Outcome::GrantedAll { grants });
        }
        Ok(Outcome::WaitCancelled)
    }

    /// Withdraws a waiting acquire-all from every queue it waits in.
    fn drop_group(&mut self, lease_id: LeaseId, group: &WaitGroup, events: &mut Vec<Event>) {
        let lease = self.lease_mut(lease_id);
        lease.groups.retain(|g| g != group);
        let waited: Vec<LockName> = group.waiting.iter().cloned().collect();
        for name in &waited {
            lease.waits.remove(name);
        }
        self.remove_lease_from(Kind::Lock, lease_id, &waited, events);
    }
}

/// Refuses an acquire whose lease holds or waits for the name with
/// another claim (`mode` and `permits`): there are no in-place upgrades,
/// and a semaphore hold does not change its permits.
fn check_same(kind: Kind, mode: Mode, permits: u32, asked: &Claim) -> Result<(), Refusal> {
    match kind {
        Kind::Lock if mode != asked.mode => Err(Refusal::ModeConflict { held: mode }),
        Kind::Semaphore if permits != asked.permits => {
            Err(Refusal::PermitsConflict { held: permits })
        }
        _ => Ok(()),
    }
}

/// The refusal of a request that would not wait for a lock it cannot have.
fn busy(lock: &Lock) -> Refusal {
    if lock.delayed_until_ms > 0 {
        return Refusal::LockDelayed {
            until_ms: lock.delayed_until_ms,
        };
    }
    Refusal::LockBusy {
        holder_token: lock.newest_token(),
    }
}
