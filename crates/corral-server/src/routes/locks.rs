//! `/v1/locks`: acquire one or several locks (with server-side waiting),
//! release and read locks.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    AcquireAllRequest, AcquireAllResponse, AcquireRequest, GrantResponse, HolderView, LockHistory,
    LockList, LockView, NamedToken, ReleaseRequest, ReleaseResponse, TimelineEvent,
    ValidateRequest, ValidateResponse, WaiterView,
};
use corral_state::{
    check_acquire_all_names, Access, Command, Grant, Kind, LeaseId, Lock, LockName, Scope,
};

use super::waiting;
use super::{show_named, NameQuery, Sees};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::{JsonBody, QueryOf};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/locks", get(show))
        .route("/v1/locks/acquire", post(acquire))
        .route("/v1/locks/acquire-all", post(acquire_all))
        .route("/v1/locks/release", post(release))
        .route("/v1/locks/validate", post(validate))
        .route("/v1/locks/history", get(history))
}

async fn acquire(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<AcquireRequest>,
) -> Result<Json<GrantResponse>, ApiError> {
    let wait_ms = waiting::wait_ms(request.wait_ms)?;
    let AcquireRequest {
        lease_id,
        name,
        mode,
        ..
    } = request;
    let command = Command::Acquire {
        lease_id,
        name,
        mode,
        wait_ms,
    };
    let grant = waiting::acquire_one(&node, command, key, scope::ACQUIRE).await?;
    Ok(Json(GrantResponse {
        name: grant.name,
        lease_id: grant.lease_id,
        mode: grant.mode,
        fencing_token: grant.fencing_token,
    }))
}

async fn acquire_all(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<AcquireAllRequest>,
) -> Result<Json<AcquireAllResponse>, ApiError> {
    let wait_ms = waiting::wait_ms(request.wait_ms)?;
    let AcquireAllRequest {
        lease_id,
        names,
        mode,
        ..
    } = request;
    let sorted = check_acquire_all_names(&names)?.into_iter().collect();
    let command = Command::AcquireAll {
        lease_id,
        names: sorted,
        mode,
        wait_ms,
    };
    let grants = waiting::acquire(&node, command, key, scope::ACQUIRE_ALL).await?;
    Ok(Json(AcquireAllResponse {
        lease_id,
        grants: grants
            .into_iter()
            .map(|g| NamedToken {
                name: g.name,
                mode: g.mode,
                fencing_token: g.fencing_token,
            })
            .collect(),
    }))
}

async fn release(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let origin = key.for_request(&node, scope::RELEASE, &request);
    super::release(
        &node,
        Kind::Lock,
        request.lease_id,
        request.name,
        request.fencing_token,
        origin,
    )
    .await
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    name: String,
}

/// A lock's recent events, read linearizably.
async fn history(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<HistoryQuery>,
) -> Result<Json<LockHistory>, ApiError> {
    let name =
        LockName::new(query.name).map_err(|e| ApiError::invalid(format!("query `name`: {e}")))?;
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Lock, name.as_str(), Access::Read)?;
    let table = &state.table;
    let sees = |id: LeaseId| caller.sees_lease(table, id, Scope::Lock, name.as_str());
    let shown = |event: TimelineEvent| TimelineEvent {
        lease_id: event.lease_id.filter(|id| sees(*id)),
        ..event
    };
    Ok(Json(LockHistory {
        events: table
            .timeline(&name)
            .into_iter()
            .map(|e| shown(e.into()))
            .collect(),
        // State-machine time, never the wall clock (which may jump): the
        // leader's clock on the leader, so that open holds run to now.
        now_ms: node.sm_time_shown_ms(&state),
        name,
    }))
}

/// Whether a token is the one a lock is held under now: a linearizable
/// read, for a downstream service that keeps no state of its own.
async fn validate(
    State(node): State<Arc<Node>>,
    caller: Caller,
    JsonBody(request): JsonBody<ValidateRequest>,
) -> Result<Json<ValidateResponse>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    caller.require(
        &state.table,
        Scope::Lock,
        request.name.as_str(),
        Access::Read,
    )?;
    let (valid, current_token) = state.table.validate(&request.name, request.fencing_token);
    Ok(Json(ValidateResponse {
        valid,
        current_token,
    }))
}

fn view(name: &LockName, lock: Option<&Lock>, sees: Sees<'_>) -> LockView {
    let shown = |id: LeaseId| sees(id).then_some(id);
    let holder_view = |g: &Grant| HolderView {
        lease_id: shown(g.lease_id),
        mode: g.mode,
        fencing_token: g.fencing_token,
    };
    LockView {
        name: name.clone(),
        holder: lock.and_then(Lock::exclusive_holder).map(holder_view),
        holders: lock
            .map(|l| l.holders.values().map(holder_view).collect())
            .unwrap_or_default(),
        waiters: lock
            .map(|l| l.waiters.iter().filter_map(|w| shown(w.lease_id)).collect())
            .unwrap_or_default(),
        queue: lock
            .map(|l| {
                l.waiters
                    .iter()
                    .map(|w| WaiterView {
                        lease_id: shown(w.lease_id),
                        mode: w.mode,
                        acquire_all: w.grouped,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        delayed_until_ms: lock.map(|l| l.delayed_until_ms).filter(|until| *until > 0),
    }
}

async fn show(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<NameQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = |locks, truncated| LockList { locks, truncated };
    show_named((&node, &caller), query, Kind::Lock, view, list).await
}
