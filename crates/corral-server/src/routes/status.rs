//! `/v1/cluster`, `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use corral_api::{ClusterView, MemberView};
use openraft::async_runtime::WatchReceiver;
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
    let metrics = node.raft.metrics();
    let m = metrics.borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, n)| MemberView {
            id: *id,
            addr: n.addr.clone(),
            role: if Some(*id) == m.current_leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            }
            .to_string(),
        })
        .collect();
    Json(ClusterView {
        node_id: node.id,
        leader_id: m.current_leader,
        term: m.current_term,
        commit_index: m.local_committed.map(|id| id.index),
        applied_index: m.last_applied.map(|id| id.index),
        snapshot_index: m.snapshot.map(|id| id.index),
        purged_index: m.purged.map(|id| id.index),
        members,
    })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(node): State<Arc<Node>>) -> Result<Json<serde_json::Value>, ApiError> {
    match node.leader() {
        Some((leader_id, _)) => Ok(Json(json!({ "status": "ready", "leader_id": leader_id }))),
        None => Err(ApiError::unavailable("no leader known", None)),
    }
}
