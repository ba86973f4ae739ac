//! [`Replica`]: what the server asks of raft, in corral's words.
//!
//! The server never names openraft: it asks who leads, in which term,
//! proposes a command bound to a term, reads at a confirmed index and
//! serves the peers' RPCs through this handle. A change of raft library
//! then touches this crate alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_state::{Proposal, Response};
use futures::Stream;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, LinearizableReadError, RaftError};
use openraft::impls::ProgressResponder;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, ErrorSubject, ReadPolicy, ServerState};

use crate::disk::Disk;
use crate::network::{ChunkHeader, RpcReply, SnapshotHeader, SnapshotReply};
use crate::node::StartError;
use crate::rocks::StoreError;
use crate::snapshot_store;
use crate::type_config::{CorralRaft, LogId, NodeId, Snapshot, TypeConfig};

/// A leader id: the term and the node that leads it.
pub type LeaderId = openraft::type_config::alias::LeaderIdOf<TypeConfig>;
/// What a peer sends to `/raft/append`.
pub type AppendRequest = AppendEntriesRequest<TypeConfig>;
/// What `/raft/append` answers.
pub type AppendReply = RpcReply<AppendEntriesResponse<TypeConfig>>;
/// What a candidate sends to `/raft/vote`.
pub type VoteRpc = VoteRequest<TypeConfig>;
/// What `/raft/vote` answers.
pub type VoteReply = RpcReply<VoteResponse<TypeConfig>>;

/// How many times a snapshot's answer looks for its last log id on disk
/// before the leader is told to try again.
const DURABLE_TRIES_MAX: u32 = 200;
/// How long it waits between two looks: an install of the same snapshot may
/// be under way.
const DURABLE_RETRY: Duration = Duration::from_millis(10);

/// A storage failure, as openraft's answer to a snapshot.
fn storage_fatal(e: StoreError) -> openraft::errors::Fatal<TypeConfig> {
    let e = std::io::Error::other(e.to_string());
    let verb = openraft::ErrorVerb::Write;
    let failed = openraft::StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e);
    openraft::errors::Fatal::StorageError(failed)
}

/// A node's raft instance, as the server uses it.
#[derive(Clone)]
pub struct Replica {
    pub(crate) raft: CorralRaft,
    id: NodeId,
    /// Where snapshot chunks a leader sends are kept until installed.
    disk: Arc<dyn Disk>,
}

/// Why a write bound to a leader term did not apply.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This node does not lead in that term (any more): nothing was
    /// appended.
    #[error("this node does not lead in the write's term")]
    NotLeader,
    /// Leadership changed after the entry was appended and before it
    /// committed: it may still apply.
    #[error("leadership changed before the write committed; it may still apply")]
    Discarded {
        /// The leader this node knows of now.
        leader_id: Option<NodeId>,
    },
    /// An entry applied without the state machine's response.
    #[error("a proposal applied without a response")]
    NoResponse,
    /// Raft refused otherwise, or its core stopped.
    #[error("{0}")]
    Raft(String),
}

/// Why a read index was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// This node is not the leader, or could not reach a quorum to confirm
    /// that it still is.
    #[error("this node cannot confirm that it leads")]
    NotLeader,
    /// Raft failed otherwise, or its core stopped.
    #[error("{0}")]
    Raft(String),
}

/// A wait on raft's progress that ran out or ended.
#[derive(Debug, thiserror::Error)]
#[error("waiting for {what}: {reason}")]
pub struct WaitError {
    what: &'static str,
    reason: String,
}

/// A member of the cluster as raft knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub id: NodeId,
    /// Its address for peers and clients, `host:port`.
    pub addr: String,
    /// Whether it votes (otherwise a learner).
    pub voter: bool,
}

/// What this node's raft knows now, read at one point.
#[derive(Clone, Debug)]
pub struct RaftStatus {
    /// The leader it knows of.
    pub leader_id: Option<NodeId>,
    /// Whether this node is that leader.
    pub leads: bool,
    /// Its current term.
    pub term: u64,
    /// The highest log index it knows committed.
    pub commit_index: Option<u64>,
    /// The highest log index its state machine applied.
    pub applied_index: Option<u64>,
    /// The last log index its newest snapshot covers.
    pub snapshot_index: Option<u64>,
    /// The last log index purged from its log.
    pub purged_index: Option<u64>,
    /// The members of the cluster, by id.
    pub members: Vec<Member>,
    /// Why its raft core stopped (a storage fault, say), if it did.
    pub stopped: Option<String>,
}

impl Replica {
    pub(crate) fn new(raft: CorralRaft, id: NodeId, disk: Arc<dyn Disk>) -> Replica {
        Replica { raft, id, disk }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The leader this node knows of, with its address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// This node's leader id when it leads: what a write is bound to, so
    /// that it is appended in that term or not at all.
    pub fn leadership(&self) -> Option<LeaderId> {
        self.raft.as_leader().ok().map(|l| *l.leader_id())
    }

    /// This node's term, when raft reports it the leader.
    pub fn leader_term(&self) -> Option<u64> {
        let status = self.status();
        status.leads.then_some(status.term)
    }

    /// What raft knows now.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        RaftStatus {
            leader_id: m.current_leader,
            leads: m.state == ServerState::Leader && m.current_leader == Some(self.id),
            term: m.current_term,
            commit_index: m.local_committed.map(|id| id.index),
            applied_index: m.last_applied.map(|id| id.index),
            snapshot_index: m.snapshot.map(|id| id.index),
            purged_index: m.purged.map(|id| id.index),
            members,
            stopped: m.running_state.as_ref().err().map(|e| e.to_string()),
        }
    }

    /// Appends `proposal` if this node still leads as `leader`, and waits
    /// for it to apply. Raft compares the leader id before appending: a
    /// write decided in one term is never appended in a later one.
    pub async fn write_in_term(
        &self,
        leader: &LeaderId,
        proposal: Proposal,
    ) -> Result<Response, WriteError> {
        let (responder, answer) = ProgressResponder::complete_only();
        self.raft
            .write(proposal)
            .with_leader(*leader)
            .responder(responder)
            .await
            .map_err(|e| WriteError::Raft(e.to_string()))?;
        let written = answer.await.map_err(|e| WriteError::Raft(e.to_string()))?;
        match written {
            Ok(written) => written.data.ok_or(WriteError::NoResponse),
            Err(ClientWriteError::ForwardToLeader(_)) => Err(WriteError::NotLeader),
            Err(ClientWriteError::LogEntryDiscarded(f)) => Err(WriteError::Discarded {
                leader_id: f.leader_id,
            }),
            Err(e) => Err(WriteError::Raft(e.to_string())),
        }
    }

    /// Confirms leadership with a quorum and returns the index a
    /// linearizable read must see.
    pub async fn read_index(&self) -> Result<u64, ReadError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(ReadError::NotLeader)
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                tracing::debug!(error = %e, "read index: no quorum");
                Err(ReadError::NotLeader)
            }
            Err(e) => Err(ReadError::Raft(e.to_string())),
        }
    }

    /// Waits (at most `timeout`) until this node applied log index `index`.
    pub async fn wait_applied_index(&self, index: u64, timeout: Duration) -> Result<(), WaitError> {
        let what = "the read index applied";
        let waited = self.raft.wait(Some(timeout));
        let applied = waited.applied_index_at_least(Some(index), what).await;
        applied.map(|_| ()).map_err(|e| WaitError::new(what, e))
    }

    /// Waits (at most `timeout`) until this node applied an entry of term
    /// `term` or later: a new leader's blank entry, say.
    pub async fn wait_applied_term(&self, term: u64, timeout: Duration) -> Result<(), WaitError> {
        let what = "an entry of the term applied";
        let in_term = |m: &openraft::RaftMetrics<TypeConfig>| {
            let applied = m.last_applied.as_ref();
            applied.is_some_and(|id| id.leader_id.term >= term)
        };
        let applied = self.raft.wait(Some(timeout)).metrics(in_term, what).await;
        applied.map(|_| ()).map_err(|e| WaitError::new(what, e))
    }

    /// Waits until a cluster commit covers this node's whole durable log
    /// and is applied: before that, the committed id on disk may be older
    /// than what this node applied before a restart.
    pub async fn wait_for_recovery(&self) -> Result<(), WaitError> {
        let recovered = self.raft.wait_for_recovery(None).await;
        recovered
            .map(|_| ())
            .map_err(|e| WaitError::new("recovery", e))
    }

    /// Initializes the cluster with `members` (id to address) unless it was
    /// initialized before. Every node may call it: raft refuses all but the
    /// first, and a restarted node is never initialized again.
    pub async fn initialize_once(
        &self,
        members: &BTreeMap<NodeId, String>,
    ) -> Result<(), StartError> {
        let members = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect::<BTreeMap<_, _>>();
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }

    /// Calls `changed(leader, term)` on every change of the leader this
    /// node knows, until raft stops.
    pub async fn watch_leader(&self, mut changed: impl FnMut(Option<NodeId>, u64)) {
        // The server metrics change with the vote, role or membership only;
        // the full metrics change with every write.
        let mut watch = self.raft.server_metrics();
        let mut leader = watch.borrow_watched().current_leader;
        while watch.changed().await.is_ok() {
            let (now, term) = {
                let m = watch.borrow_watched();
                (m.current_leader, m.vote.leader_id.term)
            };
            if now != leader {
                changed(now, term);
                leader = now;
            }
        }
    }

    /// Asks raft to build a snapshot of what this node applied so far.
    /// Raft drops the ask while a build is under way: the caller asks
    /// again once that one is done.
    pub async fn trigger_snapshot(&self) -> Result<(), WaitError> {
        let asked = self.raft.trigger().snapshot().await;
        asked.map_err(|e| WaitError::new("a snapshot build", e))
    }

    /// Stops raft.
    pub async fn shutdown(&self) -> Result<(), WaitError> {
        let stopped = self.raft.shutdown().await;
        stopped.map_err(|e| WaitError::new("shutdown", e))
    }

    /// Serves a peer's append RPC.
    pub async fn append(&self, request: AppendRequest) -> AppendReply {
        self.raft.append_entries(request).await
    }

    /// Serves a candidate's vote RPC.
    pub async fn vote(&self, request: VoteRpc) -> VoteReply {
        self.raft.vote(request).await
    }

    /// Installs a snapshot a leader sent whole (a leader older than
    /// chunks, or the simulation's transport): its data is written as
    /// chunks first, as if it had come in them.
    pub async fn install_snapshot(&self, header: SnapshotHeader, data: Vec<u8>) -> SnapshotReply {
        let id = crate::state_machine::snapshot_id();
        let chunks = match snapshot_store::write_whole(self.disk.clone(), id, &data) {
            Ok(chunks) => chunks,
            Err(e) => return Err(storage_fatal(e)),
        };
        drop(data);
        let last = header.meta.last_log_id;
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: chunks,
        };
        let reply = self.raft.install_full_snapshot(header.vote, snapshot).await;
        self.once_durable(last, reply).await
    }

    /// Keeps chunk `index` of a snapshot a leader sends in chunks; once the
    /// last one is kept, installs the snapshot (openraft checks the vote
    /// then) and answers. `None` before the last chunk.
    pub async fn receive_snapshot_chunk(
        &self,
        header: SnapshotHeader,
        chunk: ChunkHeader,
        stored: Vec<u8>,
    ) -> Result<Option<SnapshotReply>, StoreError> {
        snapshot_store::store_chunk(self.disk.as_ref(), chunk.span, chunk.index, stored)?;
        if chunk.index + 1 < chunk.span.chunks {
            return Ok(None);
        }
        let last = header.meta.last_log_id;
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: snapshot_store::chunks_on(self.disk.clone(), chunk.span),
        };
        let reply = self.raft.install_full_snapshot(header.vote, snapshot).await;
        Ok(Some(self.once_durable(last, reply).await))
    }

    /// Passes on openraft's answer to a snapshot once this node holds the
    /// snapshot's last log id durably: in a stored snapshot at or past it,
    /// or in its log after a sync. The leader takes a successful answer as
    /// the node's log matching through that log id, and never checks again.
    ///
    /// openraft answers at once, installing nothing, when the snapshot is
    /// at or below what the node counts as committed; but a follower counts
    /// as committed the entries it has accepted, which may be written and
    /// not yet synced. A crash then would lose entries the leader counts
    /// as matched: openraft's debug builds panic on the follower's log
    /// going back (`follower log reversion is not allowed`), and its
    /// release builds never send that follower anything it can accept
    /// again while that leader leads. The same holds for a snapshot sent
    /// twice while the first copy is still being installed.
    async fn once_durable(&self, last: Option<LogId>, reply: SnapshotReply) -> SnapshotReply {
        let (Ok(_), Some(last)) = (&reply, last) else {
            return reply;
        };
        for _ in 0..DURABLE_TRIES_MAX {
            match self.holds_durably(last).await {
                Ok(true) => return reply,
                Ok(false) => tokio::time::sleep(DURABLE_RETRY).await,
                Err(e) => return Err(storage_fatal(e)),
            }
        }
        let why = format!("the log through {last} is not durable here yet");
        Err(storage_fatal(StoreError::Failed(why)))
    }

    /// Whether, after a sync, this node holds `last` durably.
    async fn holds_durably(&self, last: LogId) -> Result<bool, StoreError> {
        let (done, synced) = tokio::sync::oneshot::channel();
        self.disk.sync_then(Box::new(move |result| {
            let _ = done.send(result);
        }));
        match synced.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StoreError::Failed(e)),
            Err(_) => return Err(StoreError::Failed("the disk dropped a sync".into())),
        }
        let stored = snapshot_store::current(&self.disk)?.map(|(meta, _)| meta.last_log_id);
        if stored.flatten() >= Some(last) {
            return Ok(true);
        }
        Ok(crate::log_store::stored_log_id(self.disk.as_ref(), last.index)? == Some(last))
    }

    /// Serves a leader's replication session (see [`crate::append_stream`]),
    /// framed in peer format `format`.
    pub fn append_stream<B, E>(
        &self,
        format: u8,
        body: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, std::convert::Infallible>> + Send + 'static
    where
        B: AsRef<[u8]> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let encoding = crate::codec::Encoding::of_format(format);
        crate::append_stream::serve(self.raft.clone(), encoding, body)
    }
}

impl WaitError {
    fn new(what: &'static str, reason: impl std::fmt::Display) -> WaitError {
        WaitError {
            what,
            reason: reason.to_string(),
        }
    }
}
