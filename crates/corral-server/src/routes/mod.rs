//! The HTTP routes of a node: the public API v1 and the peer endpoints, on
//! one listener or on two (`--peer-listen`).

mod answer;
mod elections;
mod faults;
#[cfg(test)]
mod fuzz_test;
#[cfg(test)]
mod input_test;
mod kv;
mod leases;
mod locks;
mod metrics;
mod observe;
mod peer;
mod semaphores;
mod status;
mod ui;
mod waiting;

use std::sync::Arc;

use axum::{Json, Router};
use corral_api::{ReleaseResponse, LIST_LOCKS_MAX};
use corral_state::{Command, FencingToken, Idempotency, Kind, LeaseId, Lock, LockName};
use serde::Serialize;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error::ApiError;
use crate::node::Node;

/// Both routers on one listener: the public API and the peer endpoints.
pub(crate) fn router(node: Arc<Node>) -> Router {
    finish(api(&node).merge(peer::router()), node)
}

/// The public API alone, for a client listener apart from the peers'.
pub(crate) fn client_router(node: Arc<Node>) -> Router {
    finish(api(&node), node)
}

/// The peer endpoints alone (`/raft/*`), for the peer listener.
pub(crate) fn peer_router(node: Arc<Node>) -> Router {
    finish(peer::router(), node)
}

/// The public API. A client's body must arrive within the node's body
/// timeout (peer streams, which live long, are not under it).
fn api(node: &Node) -> Router<Arc<Node>> {
    let body_timeout = RequestBodyTimeoutLayer::new(node.body_read_timeout);
    Router::new()
        .merge(leases::router())
        .merge(locks::router())
        .merge(semaphores::router())
        .merge(kv::router())
        .merge(elections::router())
        .merge(faults::router())
        .merge(status::router())
        .merge(metrics::router())
        .merge(ui::router())
        .layer(body_timeout)
}

/// The fallbacks, the request observer and the state every router shares.
fn finish(routes: Router<Arc<Node>>, node: Arc<Node>) -> Router {
    routes
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            observe::observe,
        ))
        .with_state(node)
}

/// The `name` or `prefix` query of the read endpoints.
#[derive(serde::Deserialize)]
struct NameQuery {
    name: Option<String>,
    prefix: Option<String>,
}

/// Answers `?name=` with the view of one lock (or semaphore) and
/// `?prefix=` with a list of at most [`LIST_LOCKS_MAX`] of those in use,
/// read linearizably.
async fn show_named<V, L>(
    node: &Node,
    query: NameQuery,
    kind: Kind,
    view: impl Fn(&LockName, Option<&Lock>) -> V,
    list: impl FnOnce(Vec<V>, bool) -> L,
) -> Result<Json<serde_json::Value>, ApiError>
where
    V: Serialize,
    L: Serialize,
{
    let name = match (query.name, &query.prefix) {
        (Some(name), None) => {
            Some(LockName::new(name).map_err(|e| ApiError::invalid(format!("query `name`: {e}")))?)
        }
        (None, Some(_)) => None,
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of the queries `name` and `prefix`",
            ))
        }
    };
    let state = node.read_linearized().await?;
    let body = match name {
        Some(name) => serde_json::to_value(view(&name, state.table.entry(kind, &name))),
        None => {
            let prefix = query.prefix.unwrap_or_default();
            let mut views: Vec<V> = state
                .table
                .with_prefix(kind, &prefix)
                .take(LIST_LOCKS_MAX + 1)
                .map(|(name, lock)| view(name, Some(lock)))
                .collect();
            let truncated = views.len() > LIST_LOCKS_MAX;
            views.truncate(LIST_LOCKS_MAX);
            serde_json::to_value(list(views, truncated))
        }
    };
    body.map(Json).map_err(ApiError::internal)
}

/// Gives up a lock or all permits of a semaphore: the lease's grant of the
/// name, or only the one under the token when one is given.
async fn release(
    node: &Node,
    kind: Kind,
    lease_id: LeaseId,
    name: LockName,
    fencing_token: Option<FencingToken>,
    idempotency: Option<Idempotency>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let command = Command::Release {
        lease_id,
        name,
        kind,
        fencing_token,
    };
    answer::propose_as(node, command, idempotency)
        .await
        .map(Json)
}
