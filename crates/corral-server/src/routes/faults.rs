//! `POST /test/faults`: partitions, clock skew and a slow log sync for
//! failure tests. Only on a node started with `--test-faults`; a 404
//! otherwise.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::json::JsonBody;
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/test/faults", post(set))
}

/// The faults to inject from now on.
#[derive(Debug, Serialize, Deserialize)]
struct FaultsRequest {
    /// Peers (`host:port`) this node may not reach, the others it may;
    /// unchanged when absent.
    #[serde(default)]
    blocked: Option<Vec<String>>,
    /// This node's clock skew in milliseconds; unchanged when absent.
    #[serde(default)]
    clock_offset_ms: Option<i64>,
    /// How long this node's log flusher sleeps before each WAL sync (0:
    /// not at all); unchanged when absent.
    #[serde(default)]
    log_sync_delay_ms: Option<u64>,
    /// Whether every WAL sync of this node fails, as on a dead disk;
    /// unchanged when absent.
    #[serde(default)]
    log_sync_fails: Option<bool>,
}

async fn set(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<FaultsRequest>,
) -> Result<Json<FaultsRequest>, ApiError> {
    if !node.faults.is_enabled() {
        return Err(ApiError::not_found());
    }
    if let Some(blocked) = request.blocked {
        node.faults.set_blocked(blocked);
    }
    if let Some(offset) = request.clock_offset_ms {
        node.faults.set_clock_offset_ms(offset);
    }
    if let Some(delay_ms) = request.log_sync_delay_ms {
        node.faults.set_log_sync_delay_ms(delay_ms);
    }
    if let Some(fails) = request.log_sync_fails {
        node.faults.set_log_sync_fails(fails);
    }
    tracing::warn!(
        blocked = ?node.faults.blocked(),
        clock_offset_ms = node.faults.clock_offset_ms(),
        log_sync_delay_ms = node.faults.log_sync_delay_ms(),
        log_sync_fails = node.faults.log_sync_fails(),
        "test faults set"
    );
    Ok(Json(FaultsRequest {
        blocked: Some(node.faults.blocked()),
        clock_offset_ms: Some(node.faults.clock_offset_ms()),
        log_sync_delay_ms: Some(node.faults.log_sync_delay_ms()),
        log_sync_fails: Some(node.faults.log_sync_fails()),
    }))
}
