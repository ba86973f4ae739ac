//! The lock table: the replicated state and its apply function.
//!
//! The table's methods are split by concern: `acquire` (taking, releasing
//! and withdrawing), `queue` (granting waiters, lock-delay), `deadlines`
//! (the time-ordered index of waits and lock-delays the leader's sweep
//! reads), `deadlock` (the wait-for graph), `order` (lock ordering) and
//! `invariants`.

mod acquire;
mod auth;
mod deadlines;
mod deadlock;
mod ended;
mod invariants;
mod kv;
mod order;
mod queue;
mod record;
mod replay;
mod restore;
mod work;

pub use invariants::BrokenInvariant;
pub use order::{check_lock_order, LockOrderError};
pub use restore::TOKENS_LEFT_MIN;

#[cfg(test)]
mod acquire_all_test;
#[cfg(test)]
mod auth_test;
#[cfg(test)]
mod election_test;
#[cfg(test)]
mod encoding_test;
#[cfg(test)]
mod ended_test;
#[cfg(test)]
mod idempotency_test;
#[cfg(test)]
mod kv_test;
#[cfg(test)]
mod late_release_test;
#[cfg(test)]
mod lock_delay_test;
#[cfg(test)]
mod order_test;
#[cfg(test)]
mod property_test;
#[cfg(test)]
mod semaphore_test;
#[cfg(test)]
mod story;
#[cfg(test)]
mod story_test;
#[cfg(test)]
mod timeline_test;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::auth::{TokenName, Tokens};
use crate::command::{Command, Proposal};
use crate::idempotency::{Recall, RememberedResponses};
use crate::kv::{kv_cost, FencedValue, KvKey};
use crate::lease::{Lease, LeaseId, LockOrder};
use crate::lock::{Kind, Lock, LockName};
use crate::outcome::{Applied, Event, LeaseChange, Limit, Outcome, Refusal, Response};
use crate::timeline::{TimelineEvent, Timelines};
use crate::token::FencingToken;
use crate::work::Queues;
use crate::{LEASES_MAX, LOCK_DELAY_MS_MAX, TTL_MS_MAX};

/// The largest table (in `LockTable::entries`) that debug builds check
/// whole after every apply. A full check walks every lease, lock and queue,
/// and parts of it are quadratic in a queue's length, so checking a table
/// of [`crate::WAITERS_PER_LOCK_MAX`] waiters after each of their acquires
/// would take hours; the tables of the property and story tests stay far
/// below this.
const INVARIANTS_CHECKED_ENTRIES_MAX: usize = 256;

/// Every lease, lock and semaphore of the cluster, the fencing-token
/// counter and the cluster's lock order.
///
/// `apply` is a pure function of the state and the proposal: no clock, no
/// randomness, no I/O, and only ordered collections, so every replica that
/// applies the same log holds the same table and gives the same answers.
#[derive(Clone, Debug, Default, Eq, Serialize, Deserialize)]
pub struct LockTable {
    /// State-machine time: the largest `now_ms` of any proposal applied.
    now_ms: u64,
    /// The last fencing token handed out; 0 before the first grant.
    last_token: FencingToken,
    /// Live leases by id.
    leases: BTreeMap<LeaseId, Lease>,
    /// Locks in use (held, waited for or under lock-delay), by name.
    locks: BTreeMap<LockName, Lock>,
    /// Semaphores in use (held or waited for), by name.
    #[serde(default)]
    semaphores: BTreeMap<LockName, Lock>,
    /// Elections in use (led or campaigned for), by name.
    #[serde(default)]
    elections: BTreeMap<LockName, Lock>,
    /// The cluster's lock ranks: name prefixes, lowest rank first.
    #[serde(default)]
    lock_order: Vec<String>,
    /// The fenced key-value store.
    #[serde(default)]
    kv: BTreeMap<KvKey, FencedValue>,
    /// The bytes the fenced store counts against its cap; derived from
    /// `kv`, so not in snapshots.
    #[serde(skip)]
    kv_bytes: usize,
    /// Answers to requests with idempotency keys, for their retries.
    #[serde(default)]
    remembered: RememberedResponses,
    /// Recent events per lock.
    #[serde(default)]
    timelines: Timelines,
    /// The cluster's tokens, and whether auth is on.
    #[serde(default)]
    tokens: Tokens,
    /// Live leases by owning token; derived from `leases`, so not in
    /// snapshots.
    #[serde(skip)]
    owned_leases: BTreeMap<TokenName, BTreeSet<LeaseId>>,
    /// How many fenced keys each token created; derived from `kv`.
    #[serde(skip)]
    owned_keys: BTreeMap<TokenName, usize>,
    /// Whether this table came from a backup ([`Command::Restore`]): then
    /// no other restore applies.
    #[serde(default)]
    restored: bool,
    /// The node ids removed from the cluster's membership: never members
    /// again. Written when a membership entry applies (see
    /// [`LockTable::retire_nodes`]), so every node agrees on it.
    #[serde(default)]
    retired_nodes: BTreeSet<u64>,
    /// The work queues.
    #[serde(default)]
    queues: Queues,
    /// When each waiter's wait and each lock-delay ends, in time order;
    /// derived from the locks, so not in snapshots.
    #[serde(skip)]
    deadlines: deadlines::Deadlines,
}

/// Two tables are equal when what they replicate is: the indexes derived
/// from it (byte counts, owners, deadlines) are left out, as a decoded
/// table has them only once [`LockTable::rebuild_derived`] ran.
impl PartialEq for LockTable {
    fn eq(&self, other: &LockTable) -> bool {
        // Destructured, so that a new field does not compile until it is
        // compared here or left out on purpose.
        let LockTable {
            now_ms,
            last_token,
            leases,
            locks,
            semaphores,
            elections,
            lock_order,
            kv,
            kv_bytes: _,
            remembered,
            timelines,
            tokens,
            owned_leases: _,
            owned_keys: _,
            restored,
            retired_nodes,
            queues,
            deadlines: _,
        } = self;
        *now_ms == other.now_ms
            && *last_token == other.last_token
            && *leases == other.leases
            && *locks == other.locks
            && *semaphores == other.semaphores
            && *elections == other.elections
            && *lock_order == other.lock_order
            && *kv == other.kv
            && *remembered == other.remembered
            && *timelines == other.timelines
            && *tokens == other.tokens
            && *restored == other.restored
            && *retired_nodes == other.retired_nodes
            && *queues == other.queues
    }
}

impl LockTable {
    /// An empty table: no leases, and a token counter at 0, so the first
    /// grant takes token 1.
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// Applies one proposal and says what it did.
    ///
    /// A proposal with an idempotency key that answered the same request
    /// before is answered the same way again and changes nothing.
    ///
    /// Debug builds check every invariant after each apply, as long as the
    /// table is small (see `INVARIANTS_CHECKED_ENTRIES_MAX`): every test
    /// that applies commands then checks the table for free.
    pub fn apply(&mut self, proposal: Proposal) -> Applied {
        let applied = self.apply_unchecked(proposal);
        if cfg!(debug_assertions) && self.entries() <= INVARIANTS_CHECKED_ENTRIES_MAX {
            if let Err(broken) = self.check_invariants() {
                panic!("apply broke an invariant: {broken}");
            }
        }
        applied
    }

    fn apply_unchecked(&mut self, proposal: Proposal) -> Applied {
        // Clamped so that a new leader whose clock is behind the old one's
        // cannot move state-machine time backwards.
        self.now_ms = self.now_ms.max(proposal.now_ms);
        self.remembered.forget_expired(self.now_ms);
        let caller = proposal.caller.as_ref();
        // Before the remembered answers: a revoked token gets no replay.
        if let Err(refusal) = self.authorize(caller, &proposal.command) {
            return Applied::answer(Err(refusal));
        }
        let owner = proposal.caller.map(|bearer| bearer.name);
        let Some(idempotency) = proposal.idempotency else {
            return self.apply_command(proposal.command, owner);
        };
        let response = match self.remembered.recall(&idempotency) {
            Recall::Answered(response) => self.still_true(&proposal.command, response),
            Recall::Mismatch => Err(Refusal::IdempotencyMismatch),
            Recall::New => {
                let applied = self.apply_command(proposal.command, owner);
                self.remembered
                    .remember(idempotency, self.now_ms, &applied.response);
                return applied;
            }
        };
        Applied::answer(response)
    }

    /// How many leases, locks, semaphores, elections, keys and queue items
    /// the table holds: what a snapshot's cost grows with. Remembered
    /// answers and timelines are left out: their bounds are fixed, and
    /// remembered answers grow with the keyed writes themselves.
    pub fn items(&self) -> usize {
        self.leases.len()
            + self.locks.len()
            + self.semaphores.len()
            + self.elections.len()
            + self.kv.len()
            + self.queues.items()
    }

    /// How many leases, locks, semaphores, elections, keys, remembered
    /// answers and timelines the table holds: the size a full invariant
    /// check walks.
    fn entries(&self) -> usize {
        self.items() + self.remembered.len() + self.timelines.len()
    }

    /// Applies one command that is not answered from memory, if it fits
    /// in the caller's quotas (a retry answered from memory is not
    /// counted again): runs it, then records its timeline events and the
    /// holds it ended.
    fn apply_command(&mut self, command: Command, caller: Option<TokenName>) -> Applied {
        if let Err(refusal) = self.check_quotas(caller.as_ref(), &command) {
            return Applied::answer(Err(refusal));
        }
        let token_before = self.last_token;
        let subject = record::Subject::of(&command);
        let holding = self.holds_ended_by(&command);
        let lease_change = lease_change_of(&command);
        let mut events = Vec::new();
        let response = self.execute(command, caller, &mut events);
        assert!(
            self.last_token >= token_before,
            "fencing token went backwards"
        );
        debug_assert!(
            response.is_ok() || self.last_token == token_before || !events.is_empty(),
            "a refused command takes a token only for waiters a lifted lock-delay let in"
        );
        self.record(&subject, &response, &events, token_before);
        let ended = match &response {
            Ok(_) => self.ended(holding),
            Err(_) => Vec::new(),
        };
        let lease_change = lease_change.filter(|_| response.is_ok());
        let expired_lease = match lease_change {
            Some(LeaseChange::Ended {
                lease_id,
                expired: true,
            }) => Some(lease_id),
            _ => None,
        };
        Applied {
            response,
            events,
            ended,
            expired_lease,
            lease_change,
        }
    }

    /// Runs a command on leases, elections, the fenced store or the lock
    /// order; hands lock and semaphore commands to
    /// `execute_lock_command`.
    fn execute(
        &mut self,
        command: Command,
        caller: Option<TokenName>,
        events: &mut Vec<Event>,
    ) -> Response {
        // Only a token's own requests are owned by it: with auth off, the
        // caller is recorded by no one.
        let owner = caller.filter(|_| self.tokens.enabled());
        match command {
            Command::GrantLease {
                lease_id,
                ttl_ms,
                lock_order,
                lock_delay_ms,
            } => self.grant_lease(lease_id, ttl_ms, lock_order, lock_delay_ms, owner),
            Command::RevokeLease { lease_id } => self.end_lease(lease_id, false, events),
            Command::ExpireLease { lease_id } => self.end_lease(lease_id, true, events),
            Command::SetLockOrder { prefixes } => self.set_lock_order(prefixes),
            Command::KvPut {
                key,
                value,
                fence,
                keys_max,
                bytes_max,
            } => self.write_fenced(key, Some(value), fence, (keys_max, bytes_max), owner),
            Command::KvDelete { key, fence } => {
                self.write_fenced(key, None, fence, (usize::MAX, usize::MAX), owner)
            }
            Command::Campaign {
                lease_id,
                name,
                value,
                wait_ms,
            } => self.campaign(lease_id, name, value, wait_ms),
            Command::Proclaim {
                lease_id,
                name,
                value,
            } => self.proclaim(lease_id, &name, value),
            Command::Resign {
                lease_id,
                name,
                fencing_token,
            } => self.resign(lease_id, &name, fencing_token, events),
            Command::EnableAuth { root_hash } => self.enable_auth(root_hash),
            Command::AddToken {
                name,
                hash,
                permissions,
                quotas,
            } => self.add_token(name, hash, permissions, quotas),
            Command::RevokeToken { name } => self.revoke_token(name),
            Command::Restore { table } => self.restore(*table),
            queue_command @ (Command::ConfigureQueue { .. }
            | Command::Enqueue { .. }
            | Command::Claim { .. }
            | Command::Ack { .. }
            | Command::ExtendClaim { .. }
            | Command::Nack { .. }
            | Command::TickQueue { .. }
            | Command::CancelClaimWait { .. }) => self.execute_queue_command(queue_command, events),
            lock_command => self.execute_lock_command(lock_command, events),
        }
    }

    /// Runs a command of the work queues.
    fn execute_queue_command(&mut self, command: Command, events: &mut Vec<Event>) -> Response {
        match command {
            Command::ConfigureQueue {
                queue,
                config,
                queues_max,
            } => self.configure_queue(queue, config, queues_max),
            Command::Enqueue {
                queue,
                payload,
                delay_ms,
                dedup_id,
                limits,
            } => {
                let new = work::NewItem {
                    payload,
                    delay_ms,
                    dedup_id,
                };
                self.enqueue_item(queue, new, limits, events)
            }
            Command::Claim {
                queue,
                lease_id,
                visibility_ms,
                max,
                wait_ms,
                claim_id,
            } => {
                let ask = work::ClaimAsk {
                    lease_id,
                    claim_id,
                    visibility_ms,
                    max,
                    wait_ms,
                };
                self.claim(queue, ask, events)
            }
            Command::Ack {
                queue,
                item_id,
                fencing_token,
            } => self.ack(queue, item_id, fencing_token),
            Command::ExtendClaim {
                queue,
                item_id,
                fencing_token,
                visibility_ms,
            } => self.extend_claim(queue, item_id, fencing_token, visibility_ms),
            Command::Nack {
                queue,
                item_id,
                fencing_token,
                delay_ms,
            } => self.nack(queue, item_id, fencing_token, delay_ms, events),
            Command::TickQueue { queue } => self.tick_queue(queue, events),
            Command::CancelClaimWait {
                queue,
                lease_id,
                claim_id,
            } => self.cancel_claim_wait(queue, (lease_id, claim_id)),
            other => unreachable!("execute runs {other:?} elsewhere"),
        }
    }

    /// Runs a command that takes, gives up or stops waiting for locks and
    /// semaphores.
    fn execute_lock_command(&mut self, command: Command, events: &mut Vec<Event>) -> Response {
        match command {
            Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms,
            } => self.acquire(lease_id, name, mode, wait_ms, events),
            Command::AcquireAll {
                lease_id,
                names,
                mode,
                wait_ms,
            } => self.acquire_all(lease_id, names, mode, wait_ms, events),
            Command::AcquirePermits {
                lease_id,
                name,
                limit,
                permits,
                wait_ms,
            } => self.acquire_permits(lease_id, name, limit, permits, wait_ms),
            Command::Release {
                lease_id,
                name,
                kind,
                fencing_token,
            } => self.release(kind, lease_id, &name, fencing_token, events),
            Command::CancelWait {
                lease_id,
                name,
                kind,
            } => self.cancel_wait(kind, lease_id, &name, events),
            Command::CancelWaitAll { lease_id, names } => {
                self.cancel_wait_all(lease_id, &names, events)
            }
            Command::LiftLockDelays => Ok(Outcome::DelaysLifted {
                count: self.lift_lock_delays(events),
            }),
            // Listed, not matched with `_`, so that a new command must be
            // routed in one of the two matches before it compiles.
            Command::GrantLease { .. }
            | Command::RevokeLease { .. }
            | Command::ExpireLease { .. }
            | Command::SetLockOrder { .. }
            | Command::KvPut { .. }
            | Command::KvDelete { .. }
            | Command::Campaign { .. }
            | Command::Proclaim { .. }
            | Command::Resign { .. }
            | Command::EnableAuth { .. }
            | Command::AddToken { .. }
            | Command::RevokeToken { .. }
            | Command::Restore { .. } => unreachable!("execute runs {command:?} itself"),
            Command::ConfigureQueue { .. }
            | Command::Enqueue { .. }
            | Command::Claim { .. }
            | Command::Ack { .. }
            | Command::ExtendClaim { .. }
            | Command::Nack { .. }
            | Command::TickQueue { .. }
            | Command::CancelClaimWait { .. } => {
                unreachable!("execute_queue_command runs {command:?}")
            }
        }
    }

    /// The recent events of the lock `name`, oldest first.
    pub fn timeline(&self, name: &LockName) -> Vec<TimelineEvent> {
        self.timelines.of(name)
    }

    /// The lock granted most often at or after `since_ms` (state-machine
    /// time), with its count of grants, as far as the timelines reach back:
    /// a lock that flaps between owners.
    pub fn most_granted_since(&self, since_ms: u64) -> Option<(&LockName, usize)> {
        self.timelines.most_granted_since(since_ms)
    }

    /// Rebuilds what a decoded snapshot does not carry: the fenced store's
    /// byte count, the deadline index, and the queued names of
    /// acquire-alls written before those were recorded. Call it on every
    /// table decoded from bytes.
    pub fn rebuild_derived(&mut self) {
        self.queues.rebuild_derived();
        self.deadlines = self.walked_deadlines();
        self.kv_bytes = self.kv.iter().map(|(k, v)| kv_cost(k, v)).sum();
        self.tokens.rebuild_derived();
        self.owned_leases.clear();
        for (id, lease) in &self.leases {
            if let Some(owner) = &lease.owner {
                self.owned_leases
                    .entry(owner.clone())
                    .or_default()
                    .insert(*id);
            }
        }
        self.owned_keys.clear();
        for owner in self.kv.values().filter_map(|v| v.owner.as_ref()) {
            *self.owned_keys.entry(owner.clone()).or_default() += 1;
        }
        for lease in self.leases.values_mut() {
            let waits = lease.waits.clone();
            for group in &mut lease.groups {
                if group.waiting.is_empty() {
                    let waiting = group.names.iter().filter(|name| waits.contains(name));
                    group.waiting = waiting.cloned().collect();
                }
            }
        }
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

    /// A lock in use by name; `None` when it is free.
    pub fn lock(&self, name: &LockName) -> Option<&Lock> {
        self.locks.get(name)
    }

    /// A semaphore in use by name; `None` when no one holds or waits for it.
    pub fn semaphore(&self, name: &LockName) -> Option<&Lock> {
        self.semaphores.get(name)
    }

    /// An election in use by name; `None` when no one leads or campaigns.
    pub fn election(&self, name: &LockName) -> Option<&Lock> {
        self.elections.get(name)
    }

    /// A lock, semaphore or election in use, by kind and name.
    pub fn entry(&self, kind: Kind, name: &LockName) -> Option<&Lock> {
        self.map(kind).get(name)
    }

    /// Remembers `response` as the answer to `idempotency`, as a keyed
    /// command answered so would: for tests that need a record of any kind.
    #[cfg(any(test, feature = "arbitrary"))]
    pub(crate) fn remember(&mut self, idempotency: crate::Idempotency, response: &Response) {
        self.remembered.remember(idempotency, self.now_ms, response);
    }

    /// How many answers to idempotency keys are remembered.
    pub fn remembered_count(&self) -> usize {
        self.remembered.len()
    }

    /// The cluster's lock ranks, lowest first.
    pub fn lock_order(&self) -> &[String] {
        &self.lock_order
    }

    /// Locks (or semaphores) in use whose names start with `prefix`, in
    /// name order.
    pub fn with_prefix<'a>(
        &'a self,
        kind: Kind,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a LockName, &'a Lock)> + 'a {
        let start = match LockName::new(prefix) {
            Ok(name) => Bound::Included(name),
            Err(_) => Bound::Unbounded,
        };
        self.map(kind)
            .range((start, Bound::Unbounded))
            .take_while(move |(name, _)| name.as_str().starts_with(prefix))
    }

    /// Locks in use whose names start with `prefix`, in name order.
    pub fn locks_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a LockName, &'a Lock)> + 'a {
        self.with_prefix(Kind::Lock, prefix)
    }

    /// The names in use of one kind after `after` (all of them with
    /// `None`), in name order: a walk that lets go of the table between
    /// steps resumes where it stopped.
    pub fn in_use_after<'a>(
        &'a self,
        kind: Kind,
        after: Option<&LockName>,
    ) -> impl Iterator<Item = (&'a LockName, &'a Lock)> + 'a {
        let start = after.map_or(Bound::Unbounded, |name| Bound::Excluded(name.clone()));
        self.map(kind).range((start, Bound::Unbounded))
    }

    fn map(&self, kind: Kind) -> &BTreeMap<LockName, Lock> {
        match kind {
            Kind::Lock => &self.locks,
            Kind::Semaphore => &self.semaphores,
            Kind::Election => &self.elections,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut BTreeMap<LockName, Lock> {
        match kind {
            Kind::Lock => &mut self.locks,
            Kind::Semaphore => &mut self.semaphores,
            Kind::Election => &mut self.elections,
        }
    }

    fn grant_lease(
        &mut self,
        lease_id: LeaseId,
        ttl_ms: u64,
        lock_order: LockOrder,
        lock_delay_ms: u64,
        owner: Option<TokenName>,
    ) -> Response {
        if ttl_ms == 0 || ttl_ms > TTL_MS_MAX {
            return Err(Refusal::InvalidTtl { max_ms: TTL_MS_MAX });
        }
        if lock_delay_ms > LOCK_DELAY_MS_MAX {
            return Err(Refusal::Invalid {
                reason: format!("lock_delay_ms must be at most {LOCK_DELAY_MS_MAX}"),
            });
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
            lock_order,
            lock_delay_ms,
            holds: Default::default(),
            waits: Default::default(),
            sem_holds: Default::default(),
            sem_waits: Default::default(),
            leads: Default::default(),
            campaigns: Default::default(),
            groups: Default::default(),
            owner,
        };
        if let Some(owner) = &lease.owner {
            self.owned_leases
                .entry(owner.clone())
                .or_default()
                .insert(lease_id);
        }
        self.leases.insert(lease_id, lease);
        Ok(Outcome::LeaseGranted { lease_id, ttl_ms })
    }

    /// Ends a lease: leaves every queue, then lets go of everything it
    /// holds. An expired lease's locks first take its lock-delay.
    fn end_lease(&mut self, lease_id: LeaseId, expired: bool, events: &mut Vec<Event>) -> Response {
        let lease = self
            .leases
            .remove(&lease_id)
            .ok_or(Refusal::LeaseNotFound)?;
        if let Some(owner) = &lease.owner {
            if let Some(owned) = self.owned_leases.get_mut(owner) {
                owned.remove(&lease_id);
                if owned.is_empty() {
                    self.owned_leases.remove(owner);
                }
            }
        }
        for kind in Kind::ALL {
            for name in lease.waited(kind) {
                events.push(Event::WaitEnded {
                    kind,
                    lease_id,
                    name: name.clone(),
                });
            }
        }
        if expired && lease.lock_delay_ms > 0 {
            let until_ms = self.now_ms.saturating_add(lease.lock_delay_ms);
            for name in &lease.holds {
                self.delay_lock(name, until_ms);
            }
        }
        for kind in Kind::ALL {
            let names: Vec<LockName> = lease
                .waited(kind)
                .iter()
                .chain(lease.held(kind))
                .cloned()
                .collect();
            self.remove_lease_from(kind, lease_id, &names, events);
        }
        self.end_claims(lease_id, events);
        Ok(Outcome::LeaseEnded {
            released: lease.holds.into_iter().collect(),
            released_semaphores: lease.sem_holds.into_iter().collect(),
            resigned: lease.leads.into_iter().collect(),
        })
    }

    fn lease_mut(&mut self, lease_id: LeaseId) -> &mut Lease {
        self.leases
            .get_mut(&lease_id)
            .expect("a lease in a lock is live")
    }
}

/// What `command` does to the set of live leases, if it applies.
fn lease_change_of(command: &Command) -> Option<LeaseChange> {
    match command {
        Command::GrantLease {
            lease_id, ttl_ms, ..
        } => Some(LeaseChange::Granted {
            lease_id: *lease_id,
            ttl_ms: *ttl_ms,
        }),
        Command::RevokeLease { lease_id } => Some(LeaseChange::Ended {
            lease_id: *lease_id,
            expired: false,
        }),
        Command::ExpireLease { lease_id } => Some(LeaseChange::Ended {
            lease_id: *lease_id,
            expired: true,
        }),
        Command::Restore { .. } => Some(LeaseChange::Replaced),
        _ => None,
    }
}
