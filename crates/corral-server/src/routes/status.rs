//! `/v1/cluster`, `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use corral_api::{ClusterView, MemberView};
use serde_json::json;

use crate::error::ApiError;
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn cluster(State(node): State<Arc<Node>>) -> Json<ClusterView> {
    let status = node.raft.status();
    let members = status
        .members
        .iter()
        .map(|member| MemberView {
            id: member.id,
            addr: member.addr.clone(),
            client_addr: node.client_addrs.get(member.id),
            role: if Some(member.id) == status.leader_id {
                "leader"
            } else if member.voter {
                "follower"
            } else {
                "learner"
            }
            .to_string(),
        })
        .collect();
    Json(ClusterView {
        node_id: node.id,
        leader_id: status.leader_id,
        term: status.term,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
        snapshot_index: status.snapshot_index,
        purged_index: status.purged_index,
        members,
        auth_enabled: node.auth.root_hash.is_some() || node.state.read().table.tokens().enabled(),
        cluster_id: node.cluster_id.clone(),
    })
}

/// Why the node's raft core stopped, if it did: a storage fault, say. Such
/// a node answers no write and no read, whatever its listener still does.
fn raft_stopped(node: &Node) -> Option<String> {
    node.raft.status().stopped
}

/// `503 {"status": "stopped", "reason"}` for a node whose raft core stopped.
fn stopped_response(reason: String) -> Response {
    let body = json!({ "status": "stopped", "reason": format!("the raft core stopped: {reason}") });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn healthz(State(node): State<Arc<Node>>) -> Response {
    match raft_stopped(&node) {
        Some(reason) => stopped_response(reason),
        None => Json(json!({ "status": "ok" })).into_response(),
    }
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    if let Some(reason) = raft_stopped(&node) {
        return stopped_response(reason);
    }
    match node.leader() {
        Some((leader_id, _)) => {
            Json(json!({ "status": "ready", "leader_id": leader_id })).into_response()
        }
        None => ApiError::unavailable("no leader known", None).into_response(),
    }
}
