//! `GET /v1/snapshot`: a backup of the whole table, for `corral snapshot
//! save` (cluster admins only; see `rules.rs`).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use corral_api::Backup;

use crate::auth::Caller;
use crate::backup::backup_of;
use crate::error::ApiError;
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/v1/snapshot", get(snapshot))
}

/// The table after a read barrier: every write acknowledged before the
/// call is in it.
async fn snapshot(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<Backup>, ApiError> {
    let table = node.read_linearized(&caller).await?.table.clone();
    let backup = backup_of(&table).map_err(ApiError::internal)?;
    Ok(Json(backup))
}
