//! One corral node: its raft instance, its applied state, and the ways a
//! request reaches the leader.
//!
//! Any node takes any request. Writes and linearizable reads are served by
//! the leader: when this node is not the leader it forwards the command (not
//! the HTTP request) to the leader's `/raft/*` endpoints and answers with the
//! leader's reply. Waiting for a lock stays on the node that took the
//! request, woken by its own state machine.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_api::LeaseResponse;
use corral_raft::{
    AppliedState, Faults, LeaderId, NodeId, ReadError, Replica, StateMachineStore, WriteError,
};
use corral_state::{Bearer, Command, Idempotency, LeaseId, Outcome, Proposal, Refusal, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::auth::{AuthSettings, Caller};
use crate::error::ApiError;
use crate::forward::Forwarder;
use crate::idempotency::Origin;
use crate::metrics::Metrics;
use crate::request_id;
use crate::wait_registry::WaitRegistry;
use corral_leader::{LeaseClock, SmClock};

/// Path of the internal read-index RPC.
pub(crate) const PATH_READ_INDEX: &str = "/raft/read-index";
/// Path of the internal keepalive RPC.
pub(crate) const PATH_KEEPALIVE: &str = "/raft/keepalive";

/// How long a request may spend finding a leader before it is answered with
/// 503.
pub(crate) const LEADER_WAIT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The answer of a leader-only RPC.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum PeerReply<T> {
    /// Served: the result.
    Done(Result<T, corral_api::ErrorBody>),
    /// Not served: this node is not the leader.
    NotLeader {
        /// The leader it knows of.
        leader_id: Option<NodeId>,
    },
}

/// A command on its way to the leader, with the client's idempotency key
/// and token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Submission {
    /// What to do.
    pub command: Command,
    /// The request's idempotency key, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    /// The request's token, if it came with one; `None` for the node's
    /// own commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Bearer>,
}

impl Submission {
    /// A client's command with its origin.
    pub(crate) fn from_origin(command: Command, origin: Origin) -> Submission {
        Submission {
            command,
            idempotency: origin.idempotency,
            caller: origin.caller.0,
        }
    }
}

/// A command of the node itself.
impl From<Command> for Submission {
    fn from(command: Command) -> Submission {
        Submission {
            command,
            idempotency: None,
            caller: None,
        }
    }
}

impl<T> From<PeerReply<T>> for Attempt<T> {
    fn from(reply: PeerReply<T>) -> Attempt<T> {
        match reply {
            PeerReply::Done(result) => Attempt::Done(result.map_err(ApiError::from)),
            PeerReply::NotLeader { .. } => Attempt::NotLeader,
        }
    }
}

/// One try at a leader-only operation on this node.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// The answer; final.
    Done(Result<T, ApiError>),
    /// This node is not (or no longer) the leader; nothing was done.
    NotLeader,
}

/// A corral node.
pub(crate) struct Node {
    /// This node's id.
    pub id: NodeId,
    /// Its raft instance.
    pub raft: Replica,
    /// Its applied state.
    pub state: StateMachineStore,
    /// Requests waiting for locks on this node.
    pub waits: WaitRegistry,
    /// Lease deadlines, while this node leads; the state machine's notices
    /// tell it of leases as they are granted and end.
    pub clock: Arc<LeaseClock>,
    /// State-machine time, while this node leads.
    pub sm_clock: SmClock,
    /// The pooled client for peers.
    pub peers: corral_raft::PeerClients,
    /// The shortest lease ttl accepted.
    pub ttl_ms_min: u64,
    /// The cluster lock order this node was started with; written into the
    /// replicated state while it leads.
    pub lock_order: Vec<String>,
    /// How long answers to idempotency keys are remembered.
    pub idempotency_window_ms: u64,
    /// The most keys of the fenced store.
    pub kv_keys_max: usize,
    /// The most bytes of the fenced store.
    pub kv_bytes_max: usize,
    /// The most items one work queue may hold.
    pub queue_items_max: usize,
    /// The most work queues there may be.
    pub queues_max: usize,
    /// Faults injected by failure tests (partitions, a skewed wall clock,
    /// slow or failing log syncs); off unless `--test-faults`.
    pub faults: Faults,
    /// What this node measures.
    pub metrics: Arc<Metrics>,
    /// How long a client's request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// The members' client addresses, this node's own included.
    pub client_addrs: crate::members::ClientAddrs,
    /// Forwards proposals to the leader, in batches under load.
    pub forwarder: Forwarder,
    /// Becomes true once a cluster commit covers this node's whole durable
    /// log and is applied (see [`Node::read_index_here`]).
    pub recovered: tokio::sync::watch::Receiver<bool>,
    /// Auth, from this node's flags.
    pub auth: AuthSettings,
    /// This node's data folder.
    pub data_dir: std::path::PathBuf,
    /// Its cluster's identity, which every peer request carries
    /// (`identity.rs`).
    pub cluster_id: String,
    /// The backup a restore left in the data folder, until the cluster has
    /// applied it (see `backup.rs`); while it waits, this node, as leader,
    /// takes no client write.
    pub seed: std::sync::Mutex<Option<Arc<corral_state::LockTable>>>,
    /// Held by the membership change under way on this node: one at a time.
    pub membership_change: tokio::sync::Mutex<()>,
}

impl Node {
    /// Whether node `id` was removed from the cluster, as this node's
    /// applied state knows.
    pub(crate) fn is_retired(&self, id: NodeId) -> bool {
        self.state.read().table.retired_nodes().contains(&id)
    }

    /// The leader this node knows of, with its address.
    pub(crate) fn leader(&self) -> Option<(NodeId, String)> {
        self.raft.leader()
    }

    /// This node's leader id (term and node), when it leads: what a write
    /// is bound to, so that it is appended in that term or not at all.
    pub(crate) fn leadership(&self) -> Option<LeaderId> {
        self.raft.leadership()
    }

    /// State-machine time now in leader term `leader` (see
    /// [`corral_leader::sm_now_ms_in`]).
    pub(crate) fn sm_now_ms_in(&self, leader: &LeaderId, state: &AppliedState) -> Option<u64> {
        let wall_ms = || wall_clock_ms(self.faults.clock_offset_ms());
        corral_leader::sm_now_ms_in(&self.sm_clock, leader, state, wall_ms)
    }

    /// State-machine time as this node can tell it, for display: the
    /// leader's clock when it leads, otherwise the time of the last write it
    /// applied. Never the wall clock, which may have jumped.
    pub(crate) fn sm_time_shown_ms(&self, state: &AppliedState) -> u64 {
        let table_ms = state.table.now_ms();
        self.leadership()
            .and_then(|l| self.sm_clock.peek_ms(l.term, table_ms, Instant::now()))
            .unwrap_or(table_ms)
    }

    /// The `now_ms` of a proposal in term `leader` (see
    /// [`corral_leader::stamp_ms`]).
    async fn stamp_ms(&self, leader: &LeaderId) -> u64 {
        let wall_ms = || wall_clock_ms(self.faults.clock_offset_ms());
        let (raft, state, clock) = (&self.raft, &self.state, &self.sm_clock);
        corral_leader::stamp_ms(raft, state, clock, leader, wall_ms, LEADER_WAIT).await
    }

    /// This node's term, when it is the leader.
    pub(crate) fn leader_term(&self) -> Option<u64> {
        self.raft.leader_term()
    }

    /// Runs a leader-only operation: here when this node leads, otherwise
    /// through the leader's `path`. Retries while no leader answers, for at
    /// most [`LEADER_WAIT`].
    async fn on_leader<Req, T, F, Fut>(
        &self,
        path: &str,
        request: &Req,
        local: F,
    ) -> Result<T, ApiError>
    where
        Req: Serialize,
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        self.on_leader_by(local, |addr: String, deadline| async move {
            self.remote(&addr, path, request, deadline).await
        })
        .await
    }

    /// [`Node::on_leader`] with the call to a remote leader given: it answers
    /// `Err` when the call could not be sent (safe to retry).
    async fn on_leader_by<T, F, Fut, R, RFut, E>(&self, local: F, remote: R) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Attempt<T>>,
        R: Fn(String, Instant) -> RFut,
        RFut: Future<Output = Result<Attempt<T>, E>>,
        E: std::fmt::Display,
    {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut last_leader = None;
        loop {
            let leader = self.leader();
            let attempt = match &leader {
                Some((id, _)) if *id == self.id => local().await,
                // A test partitioned the leader away: as if unreachable.
                Some((_, addr)) if self.faults.blocks(addr) => Attempt::NotLeader,
                Some((id, addr)) => remote(addr.clone(), deadline).await.unwrap_or_else(|e| {
                    tracing::debug!(leader = id, error = %e, "forwarding to the leader failed");
                    Attempt::NotLeader
                }),
                None => Attempt::NotLeader,
            };
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::NotLeader => last_leader = leader.map(|(id, _)| id).or(last_leader),
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(ApiError::unavailable(
                    format!("no leader answered within {} ms", LEADER_WAIT.as_millis()),
                    last_leader,
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Sends a leader-only RPC. A transport error before the request was
    /// sent is `Err` (safe to retry); one after it may have been applied, so
    /// it is a final 503.
    async fn remote<Req: Serialize, T: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
        deadline: Instant,
    ) -> Result<Attempt<T>, reqwest::Error> {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(RETRY_PAUSE);
        let mut post = self
            .peers
            .http
            .post(self.peers.url(addr, path))
            .timeout(timeout);
        // The leader logs the forwarded request under the same id.
        if let Some(id) = request_id::current() {
            post = post.header(request_id::HEADER, id);
        }
        let sent = post.json(request).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_connect() => return Err(e),
            Err(e) => {
                return Ok(Attempt::Done(Err(ApiError::unavailable(
                    format!("leader did not answer: {e}"),
                    None,
                ))))
            }
        };
        Ok(match response.json::<PeerReply<T>>().await {
            Ok(reply) => Attempt::from(reply),
            Err(e) => Attempt::Done(Err(ApiError::unavailable(
                format!("bad answer from the leader: {e}"),
                None,
            ))),
        })
    }

    /// Replicates a command (with its idempotency key, if any) and returns
    /// what applying it answered.
    pub(crate) async fn propose(
        &self,
        submission: impl Into<Submission>,
    ) -> Result<Outcome, ApiError> {
        let submission = submission.into();
        if submission.caller.is_some() {
            self.enable_auth_first().await?;
            // Early, on this node's copy: apply checks again, and decides.
            let caller = Caller(submission.caller.clone());
            caller.may_propose(&self.state.read().table, &submission.command)?;
        }
        self.replicate(submission).await?.map_err(ApiError::from)
    }

    /// Replicates a submission through the leader, here or forwarded.
    async fn replicate(&self, submission: Submission) -> Result<Response, ApiError> {
        self.on_leader_by(
            || self.propose_here(submission.clone()),
            |addr: String, deadline| {
                let timeout = deadline
                    .saturating_duration_since(Instant::now())
                    .max(RETRY_PAUSE);
                let submission = submission.clone();
                async move { self.forwarder.forward(&addr, submission, timeout).await }
            },
        )
        .await
    }

    /// Whether this node holds a restore seed its state does not show
    /// applied: until it does, a grant could make the restore impossible.
    /// (After a restart, until the log is replayed, that may be a seed
    /// applied before: writes then wait a moment for nothing.)
    pub(crate) fn restoring(&self) -> bool {
        let seeded = self.seed.lock().expect("seed lock").is_some();
        seeded && !self.state.read().table.is_restored()
    }

    /// Turns auth on before a write made with this node's root token while
    /// auth is not yet on in the state, so the write is checked, and owned,
    /// as every later one. (The leader's sweep turns it on as well.)
    async fn enable_auth_first(&self) -> Result<(), ApiError> {
        let Some(root_hash) = self.auth.root_hash else {
            return Ok(());
        };
        if self.state.read().table.tokens().enabled() {
            return Ok(());
        }
        let enable = Submission::from(Command::EnableAuth { root_hash });
        let response = self.replicate(enable).await?;
        response.map(|_| ()).map_err(ApiError::from)
    }

    /// Proposes a command through this node's raft, stamped with its
    /// state-machine clock, if it is the leader.
    pub(crate) async fn propose_here(
        &self,
        submission: impl Into<Submission>,
    ) -> Attempt<Response> {
        let submission = submission.into();
        if !submission.command.is_the_clusters() && self.restoring() {
            return Attempt::Done(Err(ApiError::unavailable(
                "this cluster is restoring a backup; retry in a moment",
                None,
            )));
        }
        match self.leadership() {
            Some(leader) => self.propose_in(&leader, submission).await,
            None => Attempt::NotLeader,
        }
    }

    /// Proposes a command in leader term `leader` only: if this node no
    /// longer leads in that term (even if it leads again in a later one),
    /// raft refuses it before appending it and the answer is `NotLeader`.
    pub(crate) async fn propose_in(
        &self,
        leader: &LeaderId,
        submission: impl Into<Submission>,
    ) -> Attempt<Response> {
        let Submission {
            command,
            idempotency,
            caller,
        } = submission.into();
        let proposal = Proposal {
            now_ms: self.stamp_ms(leader).await,
            command,
            idempotency,
            caller,
        };
        // Boxed: raft's write future is several kilobytes, and every future
        // that holds it inline (the timeout, a batch's join) would copy it.
        let write = Box::pin(self.raft.write_in_term(leader, proposal));
        match tokio::time::timeout(LEADER_WAIT, write).await {
            Err(_) => Attempt::Done(Err(ApiError::unavailable(
                "the write was not committed in time; it may still apply",
                None,
            ))),
            Ok(written) => answer_of(written),
        }
    }

    /// The applied state after a linearizable read barrier: it reflects
    /// every write that completed before the call. The only way routes
    /// read the table, so that no read skips the barrier by accident. Hold
    /// the guard briefly: apply waits for it.
    ///
    /// The caller's token is looked up again in the state read: a token
    /// revoked before the call is refused here, on every node, and so is a
    /// request without a token once auth is on there.
    pub(crate) async fn read_linearized(
        &self,
        caller: &Caller,
    ) -> Result<std::sync::RwLockReadGuard<'_, corral_raft::AppliedState>, ApiError> {
        self.linearize().await?;
        let state = self.state.read();
        caller.check(&state.table)?;
        Ok(state)
    }

    /// Makes the next read of the local state linearizable: afterwards this
    /// node has applied everything committed when the call began.
    pub(crate) async fn linearize(&self) -> Result<(), ApiError> {
        let index: u64 = self
            .on_leader(PATH_READ_INDEX, &(), || self.read_index_here())
            .await?;
        let applied = self.raft.wait_applied_index(index, LEADER_WAIT).await;
        applied.map_err(|e| ApiError::unavailable(format!("this node did not catch up: {e}"), None))
    }

    /// Confirms leadership with a quorum and returns the index a
    /// linearizable read must see, if this node is the leader.
    ///
    /// Not before this node has recovered from its last restart: a leader
    /// that resumes its term after a restart reads at the committed id it
    /// found on disk, which is not synced and may be older than writes it
    /// acknowledged before the restart.
    pub(crate) async fn read_index_here(&self) -> Attempt<u64> {
        let mut recovered = self.recovered.clone();
        // Matched at once: the guard `wait_for` returns must not live
        // across the awaits below.
        let recovered = matches!(
            tokio::time::timeout(LEADER_WAIT, recovered.wait_for(|done| *done)).await,
            Ok(Ok(_))
        );
        if !recovered {
            return Attempt::Done(Err(ApiError::unavailable(
                "this node has not yet recovered the state it had before its restart",
                None,
            )));
        }
        let read = tokio::time::timeout(LEADER_WAIT, self.raft.read_index()).await;
        match read {
            Err(_) => Attempt::Done(Err(ApiError::unavailable(
                "leadership not confirmed in time",
                None,
            ))),
            Ok(Ok(index)) => Attempt::Done(Ok(index)),
            Ok(Err(ReadError::NotLeader)) => Attempt::NotLeader,
            Ok(Err(e @ ReadError::Raft(_))) => Attempt::Done(Err(ApiError::internal(e))),
        }
    }

    /// Renews a lease on the leader.
    pub(crate) async fn keepalive(&self, lease_id: LeaseId) -> Result<LeaseResponse, ApiError> {
        let mut answers = self.keepalive_all(vec![lease_id]).await?;
        match (answers.pop(), answers.is_empty()) {
            (Some(answer), true) => answer.map_err(ApiError::from),
            _ => Err(ApiError::internal(
                "a keepalive of one lease was not answered once",
            )),
        }
    }

    /// Renews many leases on the leader, with one leadership check: one
    /// answer per lease, in order.
    pub(crate) async fn keepalive_all(
        &self,
        lease_ids: Vec<LeaseId>,
    ) -> Result<Renewals, ApiError> {
        self.on_leader(PATH_KEEPALIVE, &lease_ids, || {
            self.keepalive_here(&lease_ids)
        })
        .await
    }

    /// Renews leases if this node is the leader, after confirming that with
    /// a quorum (once for all of them): a deposed leader never acks.
    pub(crate) async fn keepalive_here(&self, lease_ids: &[LeaseId]) -> Attempt<Renewals> {
        match self.read_index_here().await {
            Attempt::Done(Ok(_)) => {}
            Attempt::Done(Err(e)) => return Attempt::Done(Err(e)),
            Attempt::NotLeader => return Attempt::NotLeader,
        }
        let Some(term) = self.leader_term() else {
            return Attempt::NotLeader;
        };
        let state = self.state.read();
        let renewed =
            corral_leader::renew_leases(&self.clock, term, &state, lease_ids, Instant::now());
        let Some(renewed) = renewed else {
            return Attempt::NotLeader;
        };
        let answers = renewed
            .into_iter()
            .zip(lease_ids)
            .map(|(ttl_ms, &lease_id)| match ttl_ms {
                Some(ttl_ms) => Ok(LeaseResponse { lease_id, ttl_ms }),
                None => Err(ApiError::from(Refusal::LeaseNotFound).body()),
            });
        Attempt::Done(Ok(answers.collect()))
    }
}

/// The attempt a write's outcome makes.
pub(crate) fn answer_of(written: Result<Response, WriteError>) -> Attempt<Response> {
    let result = match written {
        Ok(response) => Ok(response),
        Err(WriteError::NotLeader) => return Attempt::NotLeader,
        Err(e @ WriteError::Discarded { leader_id }) => {
            Err(ApiError::unavailable(e.to_string(), leader_id))
        }
        Err(e @ (WriteError::NoResponse | WriteError::Raft(_))) => Err(ApiError::internal(e)),
    };
    Attempt::Done(result)
}

/// One answer per lease of a batch keepalive: renewed, or why not.
pub(crate) type Renewals = Vec<Result<LeaseResponse, corral_api::ErrorBody>>;

/// A wall clock in Unix milliseconds, `offset_ms` off (the skew a failure
/// test set; it moves this clock only, never an `Instant`). Read once per
/// cluster, for the first anchor of state-machine time.
fn wall_clock_ms(offset_ms: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now.saturating_add_signed(offset_ms)
}
