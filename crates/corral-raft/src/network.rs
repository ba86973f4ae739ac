//! The peer network: raft RPCs as HTTP calls to the other nodes' `/raft/*`
//! endpoints, each bounded by openraft's RPC timeout. Votes and snapshots
//! are one HTTP/1.1 call each, over a pooled client; replication is a
//! pipelined stream per session over HTTP/2 (see [`crate::append_stream`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::append_stream::{Session, PATH_APPEND_STREAM};
use crate::codec::Encoding;
use crate::faults::Faults;
use crate::node::StartError;
use crate::snapshot_store::{ChunkSpan, SnapshotChunks};
use crate::tls::{self, TlsFiles};
use crate::type_config::{NodeId, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};

/// Path of the append-entries RPC.
pub const PATH_APPEND: &str = "/raft/append";
/// Path of the vote RPC.
pub const PATH_VOTE: &str = "/raft/vote";
/// Path of the snapshot RPC of a snapshot sent whole: to and from nodes
/// older than chunks (format 1 and before).
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
/// Path of the snapshot RPC that carries one chunk (see
/// [`crate::snapshot_store`]): a snapshot is sent one request per chunk.
pub const PATH_SNAPSHOT_CHUNK: &str = "/raft/snapshot-chunk";
/// Header of both snapshot RPCs that carries [`SnapshotHeader`] as JSON;
/// the body is the snapshot's data, or one stored chunk of it.
pub const HEADER_SNAPSHOT: &str = "x-corral-snapshot";
/// Header of the chunk RPC that carries [`ChunkHeader`] as JSON.
pub const HEADER_SNAPSHOT_CHUNK: &str = "x-corral-snapshot-chunk";

/// Which chunk a chunk RPC carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHeader {
    /// The snapshot's id and number of chunks.
    pub span: ChunkSpan,
    /// This chunk's index: the chunks are sent in order, and the last one
    /// installs the snapshot.
    pub index: u32,
}

/// The vote and meta sent with a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The sender's vote.
    pub vote: Vote,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
}

/// What `/raft/append` and `/raft/vote` answer.
pub type RpcReply<T> = Result<T, RaftError<TypeConfig>>;
/// What `/raft/snapshot` answers.
pub type SnapshotReply = Result<SnapshotResponse<TypeConfig>, openraft::errors::Fatal<TypeConfig>>;

/// The HTTP clients a node talks to its peers with: one pooled client for
/// single requests, one that speaks HTTP/2 for long-lived streams, and the
/// scheme of both (`https` with peer TLS).
#[derive(Clone)]
pub struct PeerClients {
    /// For single requests, pooled.
    pub http: reqwest::Client,
    /// For streams: HTTP/2 only.
    pub streams: reqwest::Client,
    scheme: &'static str,
    /// Set when a peer answered that this node was removed.
    pub removal: Removal,
    /// The format each peer's streams are sent in.
    pub formats: PeerFormats,
}

/// The peer format to frame each peer's streams in, learned from its
/// answers: every answer of a node names the newest format it reads in
/// [`FORMAT_HEADER`], and an answer without one comes from a node that
/// reads JSON only (format 1 or older). A peer not heard from yet is sent
/// [`PEER_FORMAT`]; an older node refuses that stream once (nothing on it
/// was read: a forwarded write is sent again), and the next one is framed
/// in JSON. So a rolling upgrade passes through a cluster of both
/// versions.
#[derive(Clone, Debug, Default)]
pub struct PeerFormats(Arc<Mutex<HashMap<String, u8>>>);

impl PeerFormats {
    /// The format to frame a stream to the peer at `addr` in.
    pub fn sending(&self, addr: &str) -> u8 {
        let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known.get(addr).copied().unwrap_or(PEER_FORMAT)
    }

    /// Learns what the peer at `addr` reads from the headers of its answer.
    pub fn learn(&self, addr: &str, headers: &reqwest::header::HeaderMap) {
        let reads = format_named(headers).unwrap_or(JSON_PEER_FORMAT);
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(addr.to_string(), reads.min(PEER_FORMAT));
    }
}

/// Whether a peer told this node it was removed from the cluster (`410
/// Gone` to a raft RPC): the node must then stop, not campaign for ever.
#[derive(Clone, Debug)]
pub struct Removal(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl Default for Removal {
    fn default() -> Removal {
        Removal(Arc::new(tokio::sync::watch::channel(None).0))
    }
}

impl Removal {
    /// Records that this node was removed, and why; the first report
    /// stays.
    pub fn report(&self, why: impl Into<String>) {
        let why = why.into();
        self.0.send_if_modified(|removed| {
            let first = removed.is_none();
            if first {
                *removed = Some(why);
            }
            first
        });
    }

    /// Resolves with the reason once this node is reported removed.
    pub fn removed(&self) -> impl Future<Output = String> + Send + 'static {
        let mut watch = self.0.subscribe();
        async move {
            let why = match watch.wait_for(Option::is_some).await {
                Ok(why) => why.clone(),
                Err(_) => None,
            };
            match why {
                Some(why) => why,
                // The sender lives as long as any handle: never here.
                None => std::future::pending().await,
            }
        }
    }

    /// Why this node was reported removed, if it was.
    pub fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Reports the removal a peer's answer says, if it says one.
    fn check(&self, from: NodeId, status: reqwest::StatusCode) {
        if status == reqwest::StatusCode::GONE {
            self.report(format!(
                "peer {from} answered that this node was removed from the cluster"
            ));
        }
    }
}

/// Who sends a node's peer requests: its cluster and its own id.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    /// The cluster's identity (16 hex digits).
    pub cluster_id: String,
    /// This node's id.
    pub node_id: NodeId,
}

/// The header every peer request carries its cluster's identity in: a
/// node refuses peer requests of another cluster.
pub const CLUSTER_HEADER: &str = "x-corral-cluster";
/// The header every peer request carries its sender's node id in: a node
/// refuses a removed one.
pub const NODE_HEADER: &str = "x-corral-node";
/// The header every peer request carries the format of its bodies in
/// (absent: format 0, a node older than the header), and every answer the
/// newest format its node reads in.
pub const FORMAT_HEADER: &str = "x-corral-format";

/// The peer format that `headers` name in [`FORMAT_HEADER`], if they name
/// one a byte holds.
pub fn format_named(headers: &reqwest::header::HeaderMap) -> Option<u8> {
    let value = headers.get(FORMAT_HEADER)?;
    value.to_str().ok()?.parse().ok()
}

/// The newest format of peer messages this version sends and reads (it
/// reads 0 to this): since 2, the frames of append and propose streams
/// are MessagePack ([`crate::codec`]), and snapshots travel in chunks as
/// they are stored ([`PATH_SNAPSHOT_CHUNK`]). Single requests (votes,
/// keepalives) stay JSON bodies; an older node gets a snapshot whole, in
/// JSON.
pub const PEER_FORMAT: u8 = 2;
/// The format of JSON bodies and frames, which every node that checks
/// formats reads: what single requests are sent in.
pub const JSON_PEER_FORMAT: u8 = 1;

impl PeerClients {
    /// Clients over plain HTTP, or over mutual TLS with `tls`: this node's
    /// certificate presented, the peers' CA the only one trusted. They
    /// send no cluster identity (see [`PeerClients::for_cluster`]).
    pub fn new(tls: Option<&TlsFiles>) -> Result<PeerClients, StartError> {
        PeerClients::for_cluster(tls, None)
    }

    /// [`PeerClients::new`], sending the cluster's identity in
    /// [`CLUSTER_HEADER`] and the node's id in [`NODE_HEADER`] with every
    /// request.
    pub fn for_cluster(
        tls: Option<&TlsFiles>,
        identity: Option<&PeerIdentity>,
    ) -> Result<PeerClients, StartError> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            FORMAT_HEADER,
            reqwest::header::HeaderValue::from(u16::from(JSON_PEER_FORMAT)),
        );
        if let Some(identity) = identity {
            let value = reqwest::header::HeaderValue::from_str(&identity.cluster_id)
                .map_err(|e| StartError::ClusterId(e.to_string()))?;
            headers.insert(CLUSTER_HEADER, value);
            headers.insert(NODE_HEADER, identity.node_id.into());
        }
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .default_headers(headers.clone())
        };
        // Streams speak HTTP/2 with no negotiation without TLS (the
        // listener takes both versions); with TLS, ALPN offers only h2.
        let (http, streams, scheme) = match tls {
            None => (builder(), builder().http2_prior_knowledge(), "http"),
            Some(files) => (
                builder().use_preconfigured_tls(tls::client_config(files, &[b"h2", b"http/1.1"])?),
                builder()
                    .http2_prior_knowledge()
                    .use_preconfigured_tls(tls::client_config(files, &[b"h2"])?),
                "https",
            ),
        };
        Ok(PeerClients {
            http: http.build()?,
            streams: streams.build()?,
            scheme,
            removal: Removal::default(),
            formats: PeerFormats::default(),
        })
    }

    /// The URL of `path` on the peer at `addr`.
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }
}

/// Makes connections to peers. Holds the pooled HTTP clients shared by all.
#[derive(Clone)]
pub struct PeerNetwork {
    clients: PeerClients,
    faults: Faults,
}

impl PeerNetwork {
    /// A network over `clients`, that drops what `faults` blocks.
    pub fn new(clients: PeerClients, faults: Faults) -> PeerNetwork {
        PeerNetwork { clients, faults }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            http: self.clients.http.clone(),
            streams: self.clients.streams.clone(),
            addr: node.addr.clone(),
            base: self.clients.url(&node.addr, ""),
            target,
            faults: self.faults.clone(),
            removal: self.clients.removal.clone(),
            formats: self.clients.formats.clone(),
        }
    }
}

/// The raft client for one peer. Connects lazily, through the pool.
pub struct PeerConnection {
    http: reqwest::Client,
    streams: reqwest::Client,
    addr: String,
    base: String,
    target: NodeId,
    faults: Faults,
    removal: Removal,
    formats: PeerFormats,
}

impl PeerConnection {
    /// Fails the call if a test partitioned this peer away.
    fn check_faults(&self) -> Result<(), RPCError<TypeConfig>> {
        self.faults
            .check(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        self.check_faults()?;
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(timeout)
            .json(request)
            .send()
            .await
            .map_err(|e| transport_error(self.target, e))?;
        self.removal.check(self.target, response.status());
        let reply: RpcReply<Resp> = response
            .json()
            .await
            .map_err(|e| transport_error(self.target, e))?;
        // A remote raft error cannot travel as RemoteError in this openraft
        // version; the peer is as good as unreachable for this call.
        reply.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    /// Opens a replication stream to the peer: requests go out as
    /// `requests` yields them, without waiting for earlier answers.
    async fn open_stream<S>(
        &self,
        requests: S,
        option: RPCOption,
    ) -> Result<
        impl Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>
            + Send
            + 'static,
        RPCError<TypeConfig>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        self.check_faults()?;
        let (faults, addr) = (self.faults.clone(), self.addr.clone());
        let check = move || faults.check(&addr);
        let format = self.formats.sending(&self.addr);
        let session = Session::new(self.target, option.hard_ttl(), Encoding::of_format(format));
        let body = session.body(requests, check);
        // No timeout on the request as a whole: it lives as long as the
        // session. Opening it and each answer are bounded instead.
        let opening = self
            .streams
            .post(format!("{}{PATH_APPEND_STREAM}", self.base))
            .header(FORMAT_HEADER, u16::from(format))
            .body(reqwest::Body::wrap_stream(body))
            .send();
        let response = match tokio::time::timeout(option.hard_ttl(), opening).await {
            Ok(response) => response.map_err(|e| transport_error(self.target, e))?,
            Err(_) => {
                let e =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "append stream not opened");
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        self.removal.check(self.target, response.status());
        self.formats.learn(&self.addr, response.headers());
        let response = response
            .error_for_status()
            .map_err(|e| transport_error(self.target, e))?;
        Ok(session.answers(response.bytes_stream()))
    }

    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        timeout: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta,
        };
        let header = serde_json::to_string(&header).map_err(network_error)?;
        let chunks = snapshot.snapshot;
        let format = self.formats.sending(&self.addr);
        if Encoding::of_format(format) != Encoding::MessagePack {
            return self.send_whole(&header, &chunks, format, timeout).await;
        }
        // One request per chunk, each bounded by the snapshot timeout: a
        // large snapshot takes as long as it needs, chunk by chunk.
        let span = chunks.span;
        for index in 0..span.chunks {
            self.check_faults().map_err(StreamingError::from)?;
            let stored = chunks.stored_chunk(index).map_err(network_error)?;
            let chunk =
                serde_json::to_string(&ChunkHeader { span, index }).map_err(network_error)?;
            let response = self
                .http
                .post(format!("{}{PATH_SNAPSHOT_CHUNK}", self.base))
                .timeout(timeout)
                .header(HEADER_SNAPSHOT, &header)
                .header(HEADER_SNAPSHOT_CHUNK, chunk)
                .body(stored)
                .send()
                .await
                .map_err(|e| StreamingError::from(transport_error(self.target, e)))?;
            if index + 1 == span.chunks {
                return self.snapshot_reply(response).await;
            }
            self.removal.check(self.target, response.status());
            response
                .error_for_status()
                .map_err(|e| StreamingError::from(transport_error(self.target, e)))?;
        }
        Err(network_error("a snapshot of no chunks"))
    }

    /// Sends a snapshot whole, to a node older than chunks: in JSON for one
    /// older than format 2, since this node writes no format its peers
    /// cannot read.
    async fn send_whole(
        &self,
        header: &str,
        chunks: &SnapshotChunks,
        format: u8,
        timeout: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.check_faults().map_err(StreamingError::from)?;
        let data = chunks.read_all().map_err(network_error)?;
        let data =
            crate::rocks::readable_by::<corral_state::LockTable>(format, "snapshot data", data)
                .map_err(network_error)?;
        let response = self
            .http
            .post(format!("{}{PATH_SNAPSHOT}", self.base))
            .timeout(timeout)
            .header(HEADER_SNAPSHOT, header)
            .body(data)
            .send()
            .await
            .map_err(|e| StreamingError::from(transport_error(self.target, e)))?;
        self.snapshot_reply(response).await
    }

    /// What the peer answered to a snapshot it installed.
    async fn snapshot_reply(
        &self,
        response: reqwest::Response,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.removal.check(self.target, response.status());
        let reply: SnapshotReply = response
            .json()
            .await
            .map_err(|e| StreamingError::from(transport_error(self.target, e)))?;
        reply.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}

/// A local failure to send a snapshot, as openraft's network error.
fn network_error(e: impl std::fmt::Display) -> StreamingError<TypeConfig> {
    let e = std::io::Error::other(e.to_string());
    StreamingError::Network(NetworkError::new(&e))
}

/// Connection failures mean the peer is down: openraft backs off longer.
fn transport_error(target: NodeId, e: reqwest::Error) -> RPCError<TypeConfig> {
    tracing::debug!(target_node = target, error = %e, "peer rpc failed");
    if e.is_connect() {
        RPCError::Unreachable(Unreachable::new(&e))
    } else {
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(PATH_APPEND, &rpc, option.hard_ttl()).await
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            let answers = self.open_stream(input, option).await?;
            let answers: BoxStream<'s, _> = Box::pin(answers);
            Ok(answers)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(PATH_VOTE, &rpc, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = self.send_snapshot(vote, snapshot, option.hard_ttl()) => reply,
        }
    }
}

#[cfg(test)]
#[path = "network_test.rs"]
mod tests;
