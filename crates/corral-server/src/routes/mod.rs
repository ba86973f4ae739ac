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
mod load;
#[cfg(test)]
mod load_test;
mod locks;
mod members;
mod metrics;
mod observe;
mod peer;
mod queues;
pub(crate) mod rules;
#[cfg(test)]
mod rules_test;
mod semaphores;
mod snapshot;
mod status;
mod tokens;
mod ui;
mod waiting;

use std::sync::Arc;

use axum::{Json, Router};
use corral_api::{ReleaseResponse, LIST_LOCKS_MAX};
use corral_state::{Access, Command, FencingToken, Kind, LeaseId, Lock, LockName, Scope};
use serde::Serialize;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::Origin;
use crate::node::Node;

/// Both routers on one listener: the public API and the peer endpoints.
pub(crate) fn router(node: Arc<Node>) -> Router {
    finish(api(&node).merge(peer::router(&node)), node)
}

/// The public API alone, for a client listener apart from the peers'.
pub(crate) fn client_router(node: Arc<Node>) -> Router {
    finish(api(&node), node)
}

/// The peer endpoints alone (`/raft/*`), for the peer listener.
pub(crate) fn peer_router(node: Arc<Node>) -> Router {
    finish(peer::router(&node), node)
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
        .merge(load::router())
        .merge(status::router())
        .merge(metrics::router())
        .merge(ui::router())
        .merge(tokens::router())
        .merge(snapshot::router())
        .merge(members::router())
        .merge(queues::router())
        .layer(body_timeout)
}

/// The fallbacks, the request observer and the state every router shares.
fn finish(routes: Router<Arc<Node>>, node: Arc<Node>) -> Router {
    // Layered on the routes (not on the fallbacks), so the rule is looked
    // up by the matched route; the observer runs outside it and logs every
    // refusal too.
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            crate::auth::authenticate,
        ))
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

/// Whether the caller may see a lease's id in a view.
pub(crate) type Sees<'a> = &'a dyn Fn(LeaseId) -> bool;

/// Answers `?name=` with the view of one lock (or semaphore) and
/// `?prefix=` with a list of at most [`LIST_LOCKS_MAX`] of those in use,
/// read linearizably. The caller needs read access to the name or the
/// prefix; lease ids are shown only where [`Caller::sees_lease`] says.
async fn show_named<V, L>(
    (node, caller): (&Node, &Caller),
    query: NameQuery,
    kind: Kind,
    view: impl Fn(&LockName, Option<&Lock>, Sees<'_>) -> V,
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
    let state = node.read_linearized(caller).await?;
    let table = &state.table;
    let scope = Scope::from(kind);
    let asked = name
        .as_ref()
        .map_or(query.prefix.as_deref().unwrap_or(""), |n| n.as_str());
    caller.require(table, scope, asked, Access::Read)?;
    let sees = |name: &LockName, id: LeaseId| caller.sees_lease(table, id, scope, name.as_str());
    let body = match name {
        Some(name) => {
            let sees_here = |id| sees(&name, id);
            serde_json::to_value(view(&name, table.entry(kind, &name), &sees_here))
        }
        None => {
            let prefix = query.prefix.unwrap_or_default();
            let mut views: Vec<V> = table
                .with_prefix(kind, &prefix)
                .take(LIST_LOCKS_MAX + 1)
                .map(|(name, lock)| view(name, Some(lock), &|id| sees(name, id)))
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
    origin: Origin,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let command = Command::Release {
        lease_id,
        name,
        kind,
        fencing_token,
    };
    answer::propose_as(node, command, origin).await.map(Json)
}
