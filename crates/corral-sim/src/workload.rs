//! Simulated clients: each takes a lease with a short ttl and keeps it
//! alive, takes a lock, writes under its token to a fenced register, and
//! releases, again and again. A write whose outcome is unknown (the leader
//! crashed, leadership moved) is retried with the same idempotency key;
//! one that stays unknown makes the client revoke its lease and start
//! over. Now and then a client walks away from a lock it holds, or its
//! keepalive comes late, and its lease expires.
//!
//! A client talks to the leader it last found, until that node fails it:
//! a deposed or paused leader that still believes it leads gets its
//! requests, as it would from a real client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_check::{MutexInput, MutexOutput, Operation};
use corral_raft::{NodeId, WriteError};
use corral_state::{
    fingerprint, Command, Fence, FencingToken, Idempotency, Kind, LeaseId, LockName, LockOrder,
    Mode, Outcome, Refusal, Response,
};

use crate::clock::elapsed_us;
use crate::cluster::Cluster;
use crate::history::History;
use crate::leader::{Duties, KeptAlive};
use crate::rng::SimRng;

/// The locks the clients contend for.
pub(crate) const LOCKS: [&str; 2] = ["a", "b"];
/// How many times a write of unknown outcome is retried with its key.
const RETRIES: usize = 6;
/// The shortest and longest lease ttl: at least twice the longest election
/// timeout, as corral requires.
const TTL_MS: (u64, u64) = (1_500, 4_000);
/// Keepalives that come late (a client stalled), per thousand.
const LATE_KEEPALIVE_PER_MILLE: u64 = 30;
/// Grants after which the client walks away, per thousand.
const WALK_AWAY_PER_MILLE: u64 = 30;

/// What a client needs to talk to the cluster.
#[derive(Clone)]
pub(crate) struct World {
    pub cluster: Arc<Cluster>,
    pub history: History,
    pub rng: SimRng,
}

/// The node a client talks to: the leader it last found, until it fails.
#[derive(Clone, Default)]
pub(crate) struct Route(Arc<Mutex<Option<NodeId>>>);

impl Route {
    fn get(&self) -> Option<NodeId> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, id: Option<NodeId>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = id;
    }
}

/// What came of one write.
enum Answer {
    /// Applied, with this answer.
    Known(Response),
    /// It may or may not have applied.
    Unknown,
}

impl World {
    /// The node `route` leads to, or else the node that leads now.
    fn node_for(&self, route: &Route) -> Option<Duties> {
        if let Some(duties) = route.get().and_then(|id| self.cluster.duties(id)) {
            return Some(duties);
        }
        let leader = self.cluster.leader()?;
        route.set(Some(leader.id));
        Some(leader)
    }

    /// Proposes `command` once: `None` when no node leads or the node
    /// refused before appending (safe to try again).
    async fn try_once(
        &self,
        route: &Route,
        command: &Command,
        idempotency: &Option<Idempotency>,
    ) -> Option<Answer> {
        let node = self.node_for(route)?;
        let Some(leader) = node.replica.leadership() else {
            route.set(None);
            return None;
        };
        let written = node.propose(&leader, command.clone(), idempotency.clone());
        match written.await {
            Ok(response) => Some(Answer::Known(response)),
            Err(WriteError::NotLeader) => {
                route.set(None);
                None
            }
            Err(_) => {
                route.set(None);
                Some(Answer::Unknown)
            }
        }
    }

    /// Proposes `command` until it is answered: a try that could not be
    /// appended is repeated at once (after a pause), one of unknown outcome
    /// with the same key, at most [`RETRIES`] times.
    async fn write(&self, route: &Route, command: Command, key: String) -> Answer {
        let body = serde_json::to_vec(&command).unwrap_or_default();
        let idempotency = Some(Idempotency {
            key,
            fingerprint: fingerprint(&[b"sim", &body]),
            window_ms: 10 * 60 * 1000,
        });
        let mut unknown = 0;
        while unknown < RETRIES {
            match self.try_once(route, &command, &idempotency).await {
                Some(Answer::Known(response)) => return Answer::Known(response),
                Some(Answer::Unknown) => unknown += 1,
                None => {}
            }
            let pause_ms = self.rng.between(20, 200);
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        Answer::Unknown
    }

    /// Whether `command` was applied and accepted.
    pub(crate) async fn write_known(&self, command: Command, key: String) -> bool {
        let answer = self.write(&Route::default(), command, key).await;
        matches!(answer, Answer::Known(Ok(_)))
    }
}

/// A lease a client holds, and its keepalives.
#[derive(Clone)]
struct HeldLease {
    lease_id: LeaseId,
    ttl_ms: u64,
    /// Set when the client lets go of the lease: keepalives stop.
    dropped: Arc<AtomicBool>,
    /// Set when a keepalive found the lease gone.
    lost: Arc<AtomicBool>,
}

impl HeldLease {
    fn id(&self) -> u64 {
        self.lease_id.0 as u64
    }

    fn drop_it(&self) {
        self.dropped.store(true, Ordering::Relaxed);
    }
}

/// Keeps `lease` alive, a third of its ttl apart (now and then late),
/// until the client drops it or the leader says it is gone. Each acked
/// keepalive proves the lease alive until a ttl after it was sent.
async fn keep_alive(world: World, route: Route, lease: HeldLease) {
    let ttl_ms = lease.ttl_ms;
    loop {
        let pause_ms = if world.rng.chance(LATE_KEEPALIVE_PER_MILLE) {
            world.rng.between(ttl_ms * 8 / 10, ttl_ms * 13 / 10)
        } else {
            ttl_ms / 3
        };
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        if lease.dropped.load(Ordering::Relaxed) {
            return;
        }
        let sent_us = elapsed_us();
        let Some(node) = world.node_for(&route) else {
            continue;
        };
        match node.keepalive(lease.lease_id).await {
            KeptAlive::Renewed => world.history.proven(lease.id(), sent_us + ttl_ms * 1_000),
            KeptAlive::Gone => {
                lease.lost.store(true, Ordering::Relaxed);
                return;
            }
            KeptAlive::NotLeader => route.set(None),
        }
    }
}

/// How a round of a client ended.
enum Round {
    /// Go on with the same lease.
    Again,
    /// The lease is gone, or the client walked away from it.
    LetGo,
    /// An outcome stayed unknown: the client no longer knows what its
    /// lease holds, and revokes it.
    Unknown,
}

/// One client, until `end_ms` of virtual time. Client `number` numbers
/// its operations in the lock histories.
pub(crate) async fn client(world: World, number: u64, end_ms: u64) {
    let mut client = Client {
        world,
        name: format!("c{number}"),
        number,
        writes: 0,
        route: Route::default(),
    };
    while crate::clock::elapsed_ms() < end_ms {
        let Some(lease) = client.grant_lease().await else {
            continue;
        };
        let (world, route) = (client.world.clone(), client.route.clone());
        tokio::spawn(keep_alive(world, route, lease.clone()));
        while crate::clock::elapsed_ms() < end_ms {
            match client.lock_write_release(&lease).await {
                Round::Again => {}
                Round::LetGo => break,
                Round::Unknown => {
                    client.revoke(&lease).await;
                    break;
                }
            }
        }
        lease.drop_it();
    }
}

struct Client {
    world: World,
    name: String,
    number: u64,
    /// Writes sent so far: each gets its own idempotency key.
    writes: u64,
    route: Route,
}

impl Client {
    async fn write(&mut self, command: Command) -> Answer {
        self.writes += 1;
        let key = format!("{}-{}", self.name, self.writes);
        self.world.write(&self.route, command, key).await
    }

    /// Records an operation on `lock` invoked at `invoke_us`: returned now
    /// with `output`, or of unknown outcome.
    fn record(&self, lock: &str, invoke_us: u64, input: MutexInput, output: Option<MutexOutput>) {
        let op = match output {
            Some(output) => {
                Operation::completed(self.number, invoke_us, elapsed_us(), input, output)
                    .expect("virtual time never goes back")
            }
            None => Operation::unknown(self.number, invoke_us, input),
        };
        self.world.history.lock_op(lock, op);
    }

    async fn grant_lease(&mut self) -> Option<HeldLease> {
        let lease_id = LeaseId(u128::from(self.world.rng.next_u64()));
        let ttl_ms = self.world.rng.between(TTL_MS.0, TTL_MS.1);
        let command = Command::GrantLease {
            lease_id,
            ttl_ms,
            lock_order: LockOrder::default(),
            lock_delay_ms: 0,
        };
        let sent_us = elapsed_us();
        match self.write(command).await {
            Answer::Known(Ok(Outcome::LeaseGranted { .. })) => {
                self.world
                    .history
                    .proven(lease_id.0 as u64, sent_us + ttl_ms * 1_000);
                Some(HeldLease {
                    lease_id,
                    ttl_ms,
                    dropped: Arc::default(),
                    lost: Arc::default(),
                })
            }
            // A lease granted or not: either way this client never uses it,
            // and it holds nothing.
            _ => None,
        }
    }

    /// Revokes the lease, until the cluster answers: it then holds no lock.
    async fn revoke(&mut self, lease: &HeldLease) {
        let history = self.world.history.clone();
        history.trace(format!("{} revokes its lease", self.name));
        let invoke_us = elapsed_us();
        loop {
            let command = Command::RevokeLease {
                lease_id: lease.lease_id,
            };
            if let Answer::Known(_) = self.write(command).await {
                break;
            }
        }
        let release = MutexInput::Release { lease: lease.id() };
        for lock in LOCKS {
            self.record(lock, invoke_us, release, Some(MutexOutput::ReleasedIfHeld));
        }
    }

    /// One round: acquire a lock, write under its token, release it (or
    /// walk away from it).
    async fn lock_write_release(&mut self, lease: &HeldLease) -> Round {
        if lease.lost.load(Ordering::Relaxed) {
            return Round::LetGo;
        }
        let lock = LOCKS[self.world.rng.below(LOCKS.len() as u64) as usize];
        let name = LockName::new(lock).expect("a valid lock name");
        let token = match self.acquire(lease, lock, &name).await {
            Ok(token) => token,
            Err(round) => return round,
        };
        if self.world.rng.chance(WALK_AWAY_PER_MILLE) {
            let line = format!("{} walks away from {lock} and its lease", self.name);
            self.world.history.trace(line);
            return Round::LetGo;
        }
        if !self.write_register(lease, &name, token).await {
            return Round::Unknown;
        }
        self.release(lease, name, token).await
    }

    /// Acquires `lock` without waiting: its token, or how the round ends.
    async fn acquire(
        &mut self,
        lease: &HeldLease,
        lock: &str,
        name: &LockName,
    ) -> Result<FencingToken, Round> {
        let floor = self.world.history.highest_acked();
        let input = MutexInput::Acquire { lease: lease.id() };
        let acquire = Command::Acquire {
            lease_id: lease.lease_id,
            name: name.clone(),
            mode: Mode::Exclusive,
            wait_ms: 0,
        };
        let invoke_us = elapsed_us();
        let refused = match self.write(acquire).await {
            Answer::Unknown => {
                self.record(lock, invoke_us, input, None);
                return Err(Round::Unknown);
            }
            Answer::Known(Ok(Outcome::Granted(grant))) => {
                let token = grant.fencing_token;
                let output = MutexOutput::Granted { token: token.0 };
                self.record(lock, invoke_us, input, Some(output));
                self.world.history.granted(&self.name, lock, token.0, floor);
                return Ok(token);
            }
            Answer::Known(Err(Refusal::LeaseNotFound)) => {
                // An earlier try of unknown outcome may have been granted
                // before the lease expired.
                self.record(lock, invoke_us, input, None);
                return Err(Round::LetGo);
            }
            Answer::Known(Err(refusal @ Refusal::LockBusy { .. })) => {
                self.record(lock, invoke_us, input, Some(MutexOutput::NotGranted));
                format!("{refusal}")
            }
            Answer::Known(other) => format!("{other:?}"),
        };
        let line = format!("{} acquire {lock}: {refused}", self.name);
        self.world.history.trace(line);
        let pause_ms = self.world.rng.between(5, 50);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        Err(Round::Again)
    }

    /// A refusal of a holder's fenced write or release is a violation,
    /// unless its lease expired (it came late with a keepalive).
    fn refused_to_holder(&self, lease: &HeldLease, what: String) {
        if self.world.history.has_expired(lease.id()) {
            self.world
                .history
                .trace(format!("{what}: its lease expired"));
        } else {
            self.world.history.violation(what);
        }
    }

    /// Writes the token to the lock's register, fenced by it; false when
    /// the outcome stayed unknown.
    async fn write_register(
        &mut self,
        lease: &HeldLease,
        lock: &LockName,
        token: FencingToken,
    ) -> bool {
        let key = format!("reg-{lock}");
        let command = Command::KvPut {
            key: LockName::new(key.clone()).expect("a valid key"),
            value: token.0.to_string(),
            fence: Fence {
                lock: lock.clone(),
                fencing_token: token,
            },
            keys_max: 100,
            bytes_max: 1 << 20,
        };
        match self.write(command).await {
            Answer::Unknown => false,
            Answer::Known(Ok(_)) => {
                self.world.history.put(&self.name, &key, token.0);
                true
            }
            Answer::Known(Err(refusal)) => {
                let what = format!(
                    "{} holds {lock} under {} and its fenced write was refused: {refusal}",
                    self.name, token.0
                );
                self.refused_to_holder(lease, what);
                true
            }
        }
    }

    async fn release(&mut self, lease: &HeldLease, name: LockName, token: FencingToken) -> Round {
        let command = Command::Release {
            lease_id: lease.lease_id,
            name: name.clone(),
            kind: Kind::Lock,
            fencing_token: Some(token),
        };
        let input = MutexInput::Release { lease: lease.id() };
        let invoke_us = elapsed_us();
        match self.write(command).await {
            Answer::Unknown => {
                self.record(name.as_str(), invoke_us, input, None);
                Round::Unknown
            }
            Answer::Known(Ok(_)) => {
                self.record(name.as_str(), invoke_us, input, Some(MutexOutput::Released));
                let line = format!("{} released {name} {}", self.name, token.0);
                self.world.history.trace(line);
                Round::Again
            }
            Answer::Known(Err(refusal)) => {
                self.record(
                    name.as_str(),
                    invoke_us,
                    input,
                    Some(MutexOutput::NotHolder),
                );
                let what = format!(
                    "{} holds {name} under {} and its release was refused: {refusal}",
                    self.name, token.0
                );
                self.refused_to_holder(lease, what);
                Round::Again
            }
        }
    }
}
