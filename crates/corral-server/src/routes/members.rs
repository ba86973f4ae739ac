//! `/v1/cluster/members`: the membership, and changing it (cluster admins
//! only; see `rules.rs`). The work is in `crate::membership`, on the
//! leader; any other node answers 503 naming it, and the client moves on.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, get};
use axum::{Json, Router};
use corral_api::{AddMemberRequest, MemberList};
use serde::Deserialize;

use crate::error::ApiError;
use crate::json::{JsonBody, PathParam, QueryOf};
use crate::membership;
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/cluster/members", get(list).post(add))
        .route("/v1/cluster/members/{id}", delete(remove))
}

async fn list(State(node): State<Arc<Node>>) -> Result<Json<MemberList>, ApiError> {
    membership::list(&node).map(Json)
}

async fn add(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<AddMemberRequest>,
) -> Result<Json<MemberList>, ApiError> {
    membership::add(&node, request).await.map(Json)
}

/// `?force=true`: remove even if too few voters would be reachable after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove(
    State(node): State<Arc<Node>>,
    PathParam(id): PathParam<u64>,
    QueryOf(query): QueryOf<RemoveQuery>,
) -> Result<Json<MemberList>, ApiError> {
    membership::remove(&node, id, query.force).await.map(Json)
}
