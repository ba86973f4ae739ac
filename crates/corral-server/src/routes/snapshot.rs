//! `GET /v1/snapshot`: a backup of the whole table, for `corral snapshot
//! save`; and `POST /v1/cluster/snapshot`: a raft snapshot built on the
//! answering node now, for `corral bench --workload snapshots` and for an
//! operator who wants a short log before a restart (cluster admins only;
//! see `rules.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{Backup, SnapshotBuilt};

use crate::auth::Caller;
use crate::backup::backup_of;
use crate::error::ApiError;
use crate::node::Node;

/// How long a build may take before the call gives up: a table of a
/// million leases, each with a lock, builds in seconds.
const BUILD_WAIT: Duration = Duration::from_secs(300);
/// How long after an ask the build is asked for again: raft drops an ask
/// while another build is under way, which may cover less than the call
/// must.
const ASK_AGAIN: Duration = Duration::from_secs(1);
/// How often the call looks whether its build is done.
const POLL: Duration = Duration::from_millis(20);

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/cluster/snapshot", post(build))
}

/// The table after a read barrier: every write acknowledged before the
/// call is in it.
async fn snapshot(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<Backup>, ApiError> {
    let table = node.read_linearized(&caller).await?.table.clone();
    let backup = backup_of(&table).map_err(ApiError::internal)?;
    Ok(Json(backup))
}

/// Has this node build a snapshot and answers once one built after the
/// call covers everything it had applied at the call. A build already
/// under way counts only if it covers that much, so the answer always
/// follows a build that this call saw finish.
async fn build(State(node): State<Arc<Node>>) -> Result<Json<SnapshotBuilt>, ApiError> {
    let applied = node.raft.status().applied_index.unwrap_or(0);
    let built = || node.metrics.store.snapshots_built.get();
    let built_before = built();
    let started = Instant::now();
    let mut asked: Option<Instant> = None;
    loop {
        let snapshot_index = node.raft.status().snapshot_index;
        if built() > built_before && snapshot_index.unwrap_or(0) >= applied {
            let node_id = node.id;
            return Ok(Json(SnapshotBuilt {
                node_id,
                snapshot_index,
            }));
        }
        if started.elapsed() > BUILD_WAIT {
            let reason = format!("no snapshot built within {BUILD_WAIT:?}");
            return Err(ApiError::unavailable(reason, None));
        }
        if asked.is_none_or(|at| at.elapsed() >= ASK_AGAIN) {
            let triggered = node.raft.trigger_snapshot().await;
            triggered.map_err(ApiError::internal)?;
            asked = Some(Instant::now());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[path = "snapshot_test.rs"]
mod tests;
