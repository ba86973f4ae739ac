//! `/raft/*`: raft's RPCs between nodes, and the leader-only RPCs a node
//! uses to forward a client's command, read index or keepalive.
//!
//! These endpoints trust their callers: run corral on a network that only
//! the cluster and its clients reach.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_raft::append_stream::PATH_APPEND_STREAM;
use corral_raft::{
    AppendReply, AppendRequest, ChunkHeader, SnapshotHeader, SnapshotReply, VoteReply, VoteRpc,
    HEADER_SNAPSHOT, HEADER_SNAPSHOT_CHUNK, PATH_APPEND, PATH_SNAPSHOT, PATH_SNAPSHOT_CHUNK,
    PATH_VOTE,
};
use corral_state::LeaseId;
use tracing::Instrument;

use crate::error::ApiError;
use crate::forward::{self, Forwarded, PATH_PROPOSE_STREAM};
use crate::join::PATH_JOIN;
use crate::json::{read_body, JsonBody};
use crate::members::PATH_MEMBER;
use crate::node::{Attempt, Node, PeerReply, Renewals, PATH_KEEPALIVE, PATH_READ_INDEX};
use crate::request_id;

/// A snapshot sent whole, by a node older than chunks: a large lock
/// table's is far bigger than any other peer body.
const SNAPSHOT_BODY_BYTES_MAX: usize = 1 << 30;
/// One stored chunk of a snapshot.
const SNAPSHOT_CHUNK_BYTES_MAX: usize = corral_raft::snapshot_store::STORED_CHUNK_BYTES_MAX;
/// A batch of log entries: as large as one frame of the append stream.
const APPEND_BODY_BYTES_MAX: usize = corral_raft::frame::FRAME_BYTES_MAX;
/// A vote, a read index, a keepalive of lease ids: small.
const SMALL_BODY_BYTES_MAX: usize = 1 << 20;

pub(super) fn router(node: &Arc<Node>) -> Router<Arc<Node>> {
    Router::new()
        .route(PATH_APPEND, post(append))
        .route(PATH_APPEND_STREAM, post(append_stream))
        .route(PATH_VOTE, post(vote))
        .route(PATH_SNAPSHOT, post(snapshot))
        .route(PATH_SNAPSHOT_CHUNK, post(snapshot_chunk))
        .route(PATH_PROPOSE_STREAM, post(propose_stream))
        .route(PATH_READ_INDEX, post(read_index))
        .route(PATH_KEEPALIVE, post(keepalive))
        .route(PATH_MEMBER, get(member))
        .route(PATH_JOIN, post(join))
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            same_cluster,
        ))
}

/// Whether a peer format is one this node reads.
fn readable(format: &str) -> bool {
    format
        .parse::<u8>()
        .is_ok_and(|f| f <= corral_raft::PEER_FORMAT)
}

/// Refuses a peer request of another cluster (say, the one a backup came
/// from), in a format this node does not read, or from a node removed from
/// the cluster. A request without these headers comes from a node older
/// than them, and is taken: a rolling upgrade passes through a cluster of
/// both.
///
/// Every answer names the newest peer format this node reads, refusals
/// too: that is how a sender learns what to frame its streams in (see
/// `corral_raft::PeerFormats`).
async fn same_cluster(
    State(node): State<Arc<Node>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = match refusal_of(&node, request.headers()) {
        None => next.run(request).await,
        Some(refusal) => {
            tracing::warn!("refused a peer request: {refusal}");
            axum::response::IntoResponse::into_response(refusal)
        }
    };
    response.headers_mut().insert(
        corral_raft::FORMAT_HEADER,
        axum::http::HeaderValue::from(u16::from(corral_raft::PEER_FORMAT)),
    );
    response
}

/// The peer format a request's bodies are in: 0 without the header (a
/// node older than it). `same_cluster` refused any other it does not read.
fn format_of(headers: &HeaderMap) -> u8 {
    corral_raft::format_named(headers).unwrap_or(0)
}

/// Why a peer request with `headers` is refused, if it is.
fn refusal_of(node: &Node, headers: &axum::http::HeaderMap) -> Option<ApiError> {
    let header = |name| {
        let value = headers.get(name)?;
        Some(value.to_str().unwrap_or("?"))
    };
    if header(corral_raft::CLUSTER_HEADER).is_some_and(|id| id != node.cluster_id) {
        return Some(ApiError::permission_denied(
            "this node belongs to another cluster",
        ));
    }
    let sender = header(corral_raft::NODE_HEADER).and_then(|id| id.parse::<u64>().ok());
    if let Some(sender) = sender.filter(|id| node.is_retired(*id)) {
        // 410 tells the sender to stop (see `corral_raft::Removal`).
        let message = format!("node {sender} was removed from this cluster");
        return Some(ApiError::new(corral_api::ErrorKind::NodeRemoved, message));
    }
    let format = header(corral_raft::FORMAT_HEADER).filter(|f| !readable(f))?;
    Some(ApiError::permission_denied(format!(
        "peer messages of format {format} are newer than this node reads ({}): upgrade it",
        corral_raft::PEER_FORMAT
    )))
}

async fn append(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<AppendRequest, APPEND_BODY_BYTES_MAX>,
) -> Json<AppendReply> {
    Json(node.raft.append(request).await)
}

/// A replication session: requests framed in the body, answers framed in
/// the response as they become durable. Lives as long as the session.
async fn append_stream(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Body {
    let format = format_of(&headers);
    Body::from_stream(node.raft.append_stream(format, body.into_data_stream()))
}

async fn vote(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<VoteRpc, SMALL_BODY_BYTES_MAX>,
) -> Json<VoteReply> {
    Json(node.raft.vote(request).await)
}

async fn snapshot(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SnapshotReply>, ApiError> {
    let body = read_body(body, SNAPSHOT_BODY_BYTES_MAX).await?;
    let header: SnapshotHeader = json_header(&headers, HEADER_SNAPSHOT)?;
    Ok(Json(
        node.raft.install_snapshot(header, body.to_vec()).await,
    ))
}

/// One chunk of a snapshot a leader sends in chunks: kept, and once the
/// last is kept, the snapshot installed and its answer returned (`204`
/// before that).
async fn snapshot_chunk(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let body = read_body(body, SNAPSHOT_CHUNK_BYTES_MAX).await?;
    let header: SnapshotHeader = json_header(&headers, HEADER_SNAPSHOT)?;
    let chunk: ChunkHeader = json_header(&headers, HEADER_SNAPSHOT_CHUNK)?;
    let received = node
        .raft
        .receive_snapshot_chunk(header, chunk, body.to_vec())
        .await;
    let received = received.map_err(|e| match e {
        corral_raft::StoreError::Invalid(why) => ApiError::invalid(why),
        other => ApiError::internal(format!("keeping a snapshot chunk: {other}")),
    })?;
    Ok(match received {
        Some(reply) => Json(reply).into_response(),
        None => axum::http::StatusCode::NO_CONTENT.into_response(),
    })
}

/// The JSON value of header `name`.
fn json_header<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    name: &str,
) -> Result<T, ApiError> {
    let value = headers
        .get(name)
        .ok_or_else(|| ApiError::invalid(format!("missing header {name}")))?;
    serde_json::from_slice(value.as_bytes())
        .map_err(|e| ApiError::invalid(format!("header {name}: {e}")))
}

/// What this node says of itself to a peer: its client address.
async fn member(State(node): State<Arc<Node>>) -> Json<corral_api::MemberSelf> {
    Json(node.client_addrs.own().clone())
}

/// A join sent again to a node that joined already (its cluster checked
/// by `same_cluster`): the same answer as the first time.
async fn join(
    State(node): State<Arc<Node>>,
    Json(request): Json<corral_api::JoinRequest>,
) -> Result<Json<corral_api::MemberSelf>, ApiError> {
    crate::join::check_addressee(node.client_addrs.own(), &request)?;
    Ok(Json(node.client_addrs.own().clone()))
}

fn reply<T>(attempt: Attempt<T>, node: &Node) -> Json<PeerReply<T>> {
    Json(match attempt {
        Attempt::Done(result) => PeerReply::Done(result.map_err(|e| e.body())),
        Attempt::NotLeader => PeerReply::NotLeader {
            leader_id: node.leader().map(|(id, _)| id),
        },
    })
}

/// A follower's forwarded commands: each proposed as it arrives, under
/// its client request's id, and answered as it commits. Lives as long as
/// the follower forwards to this node.
async fn propose_stream(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Body {
    let encoding = corral_raft::codec::Encoding::of_format(format_of(&headers));
    let propose = move |command: Forwarded| {
        let node = node.clone();
        async move {
            let id = command.request_id.unwrap_or_default();
            let span = tracing::info_span!(
                "request",
                id = %id,
                method = "POST",
                route = PATH_PROPOSE_STREAM
            );
            let attempt = request_id::scope(id, node.propose_here(command.submission))
                .instrument(span.clone())
                .await;
            span.in_scope(|| tracing::debug!("forwarded proposal answered"));
            reply(attempt, &node).0
        }
    };
    Body::from_stream(forward::serve(propose, encoding, body.into_data_stream()))
}

async fn read_index(State(node): State<Arc<Node>>) -> Json<PeerReply<u64>> {
    reply(node.read_index_here().await, &node)
}

async fn keepalive(
    State(node): State<Arc<Node>>,
    JsonBody(lease_ids): JsonBody<Vec<LeaseId>, SMALL_BODY_BYTES_MAX>,
) -> Json<PeerReply<Renewals>> {
    reply(node.keepalive_here(&lease_ids).await, &node)
}
