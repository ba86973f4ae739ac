//! Simulated clients: each takes a lease, takes a lock, writes under its
//! token to a fenced register, and releases, again and again. A write
//! whose outcome is unknown (the leader crashed, leadership moved) is
//! retried with the same idempotency key; one that stays unknown makes the
//! client revoke its lease and start over.

use std::sync::Arc;
use std::time::Duration;

use corral_leader::stamp_ms;
use corral_raft::WriteError;
use corral_state::{
    fingerprint, Command, Fence, FencingToken, Idempotency, Kind, LeaseId, LockName, LockOrder,
    Mode, Outcome, Proposal, Response,
};

use crate::clock::WallClocks;
use crate::cluster::Cluster;
use crate::history::History;
use crate::rng::SimRng;

/// The locks the clients contend for.
pub(crate) const LOCKS: [&str; 2] = ["a", "b"];
/// How many times a write of unknown outcome is retried with its key.
const RETRIES: usize = 6;
/// How long a write may take before its outcome counts as unknown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Leases outlive every run: no lease expires, so every grant ends by a
/// release or a revoke the client asked for.
const TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// What a client needs to talk to the cluster.
#[derive(Clone)]
pub(crate) struct World {
    pub cluster: Arc<Cluster>,
    pub clocks: WallClocks,
    pub history: History,
    pub rng: SimRng,
}

/// What came of one write.
enum Answer {
    /// Applied, with this answer.
    Known(Response),
    /// It may or may not have applied.
    Unknown,
}

impl World {
    /// Proposes `command` on the leader once: `None` when no node leads or
    /// the leader refused before appending (safe to try again).
    async fn try_once(
        &self,
        command: &Command,
        idempotency: &Option<Idempotency>,
    ) -> Option<Answer> {
        let node = self.cluster.leader()?;
        let leader = node.replica.leadership()?;
        // Stamped as a corral leader does: by its monotonic clock, so that
        // its wall clock's jumps move no window or deadline.
        let wall_ms = || self.clocks.now_ms(node.id);
        let (replica, state, clock) = (&node.replica, &node.state, &node.sm_clock);
        let now_ms = stamp_ms(replica, state, clock, &leader, wall_ms, WRITE_TIMEOUT).await;
        let proposal = Proposal {
            now_ms,
            command: command.clone(),
            idempotency: idempotency.clone(),
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, replica.write_in_term(&leader, proposal));
        match written.await {
            Ok(Ok(response)) => Some(Answer::Known(response)),
            Ok(Err(WriteError::NotLeader)) => None,
            Ok(Err(_)) | Err(_) => Some(Answer::Unknown),
        }
    }

    /// Proposes `command` until it is answered: a try that could not be
    /// appended is repeated at once (after a pause), one of unknown outcome
    /// with the same key, at most [`RETRIES`] times.
    async fn write(&self, command: Command, key: String) -> Answer {
        let body = serde_json::to_vec(&command).unwrap_or_default();
        let idempotency = Some(Idempotency {
            key,
            fingerprint: fingerprint(&[b"sim", &body]),
            window_ms: 10 * 60 * 1000,
        });
        let mut unknown = 0;
        while unknown < RETRIES {
            match self.try_once(&command, &idempotency).await {
                Some(Answer::Known(response)) => return Answer::Known(response),
                Some(Answer::Unknown) => unknown += 1,
                None => {}
            }
            let pause_ms = self.rng.between(20, 200);
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        Answer::Unknown
    }
}

impl World {
    /// Whether `command` was applied and accepted.
    pub(crate) async fn write_known(&self, command: Command, key: String) -> bool {
        matches!(self.write(command, key).await, Answer::Known(Ok(_)))
    }
}

/// One client, until `end_ms` of virtual time.
pub(crate) async fn client(world: World, name: String, end_ms: u64) {
    let mut client = Client {
        world,
        name,
        writes: 0,
    };
    while crate::clock::elapsed_ms() < end_ms {
        let Some(lease_id) = client.grant_lease().await else {
            continue;
        };
        while crate::clock::elapsed_ms() < end_ms {
            if !client.lock_write_release(lease_id).await {
                client.revoke(lease_id).await;
                break;
            }
        }
    }
}

struct Client {
    world: World,
    name: String,
    /// Writes sent so far: each gets its own idempotency key.
    writes: u64,
}

impl Client {
    async fn write(&mut self, command: Command) -> Answer {
        self.writes += 1;
        let key = format!("{}-{}", self.name, self.writes);
        self.world.write(command, key).await
    }

    async fn grant_lease(&mut self) -> Option<LeaseId> {
        let lease_id = LeaseId(u128::from(self.world.rng.next_u64()));
        let command = Command::GrantLease {
            lease_id,
            ttl_ms: TTL_MS,
            lock_order: LockOrder::default(),
            lock_delay_ms: 0,
        };
        match self.write(command).await {
            Answer::Known(Ok(Outcome::LeaseGranted { .. })) => Some(lease_id),
            // A lease granted or not: either way this client never uses it,
            // and it holds nothing.
            _ => None,
        }
    }

    /// Revokes the lease, until the cluster answers.
    async fn revoke(&mut self, lease_id: LeaseId) {
        let history = self.world.history.clone();
        history.trace(format!("{} revokes its lease", self.name));
        loop {
            let command = Command::RevokeLease { lease_id };
            if let Answer::Known(_) = self.write(command).await {
                return;
            }
        }
    }

    /// One round: acquire a lock, write under its token, release it.
    /// False when an outcome stayed unknown: the client then does not know
    /// what its lease holds.
    async fn lock_write_release(&mut self, lease_id: LeaseId) -> bool {
        let lock = LOCKS[self.world.rng.below(LOCKS.len() as u64) as usize];
        let name = LockName::new(lock).expect("a valid lock name");
        let floor = self.world.history.highest_acked();
        let acquire = Command::Acquire {
            lease_id,
            name: name.clone(),
            mode: Mode::Exclusive,
            wait_ms: 0,
        };
        let token = match self.write(acquire).await {
            Answer::Unknown => return false,
            Answer::Known(Ok(Outcome::Granted(grant))) => grant.fencing_token,
            Answer::Known(other) => {
                let refused = format!("{} acquire {lock}: {other:?}", self.name);
                self.world.history.trace(refused);
                let pause_ms = self.world.rng.between(5, 50);
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                return true;
            }
        };
        let history = self.world.history.clone();
        history.granted(&self.name, lock, token.0, floor);
        self.write_register(&name, token).await && self.release(lease_id, name, token).await
    }

    /// Writes the token to the lock's register, fenced by it. The client
    /// holds the lock: a refusal means another holder took it.
    async fn write_register(&mut self, lock: &LockName, token: FencingToken) -> bool {
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
        let history = self.world.history.clone();
        match self.write(command).await {
            Answer::Unknown => false,
            Answer::Known(Ok(_)) => {
                history.put(&self.name, &key, token.0);
                true
            }
            Answer::Known(Err(refusal)) => {
                history.violation(format!(
                    "{} holds {lock} under {} and its fenced write was refused: {refusal}",
                    self.name, token.0
                ));
                true
            }
        }
    }

    async fn release(&mut self, lease_id: LeaseId, name: LockName, token: FencingToken) -> bool {
        let command = Command::Release {
            lease_id,
            name: name.clone(),
            kind: Kind::Lock,
            fencing_token: Some(token),
        };
        let history = self.world.history.clone();
        match self.write(command).await {
            Answer::Unknown => false,
            Answer::Known(Ok(_)) => {
                history.trace(format!("{} released {name} {}", self.name, token.0));
                true
            }
            Answer::Known(Err(refusal)) => {
                history.violation(format!(
                    "{} holds {name} under {} and its release was refused: {refusal}",
                    self.name, token.0
                ));
                true
            }
        }
    }
}
