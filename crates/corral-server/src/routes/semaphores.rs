//! `/v1/semaphores`: take and give back permits (with server-side
//! waiting), and read semaphores.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    PermitHolderView, PermitWaiterView, ReleaseResponse, SemaphoreAcquireRequest,
    SemaphoreGrantResponse, SemaphoreList, SemaphoreReleaseRequest, SemaphoreView,
};
use corral_state::{check_permits, Command, Kind, LeaseId, Lock, LockName};

use super::waiting;
use super::{show_named, NameQuery, Sees};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::{JsonBody, QueryOf};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/semaphores", get(show))
        .route("/v1/semaphores/acquire", post(acquire))
        .route("/v1/semaphores/release", post(release))
}

async fn acquire(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<SemaphoreAcquireRequest>,
) -> Result<Json<SemaphoreGrantResponse>, ApiError> {
    let wait_ms = waiting::wait_ms(request.wait_ms)?;
    let SemaphoreAcquireRequest {
        lease_id,
        name,
        limit,
        permits,
        ..
    } = request;
    check_permits(limit, permits)?;
    let command = Command::AcquirePermits {
        lease_id,
        name,
        limit,
        permits,
        wait_ms,
    };
    let grant = waiting::acquire_one(&node, command, key, scope::ACQUIRE_PERMITS).await?;
    Ok(Json(SemaphoreGrantResponse {
        name: grant.name,
        lease_id: grant.lease_id,
        permits: grant.permits,
        fencing_token: grant.fencing_token,
    }))
}

async fn release(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<SemaphoreReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let origin = key.for_request(&node, scope::RELEASE_PERMITS, &request);
    super::release(
        &node,
        Kind::Semaphore,
        request.lease_id,
        request.name,
        request.fencing_token,
        origin,
    )
    .await
}

fn view(name: &LockName, semaphore: Option<&Lock>, sees: Sees<'_>) -> SemaphoreView {
    let shown = |id: LeaseId| sees(id).then_some(id);
    SemaphoreView {
        name: name.clone(),
        limit: semaphore.and_then(|s| s.limit),
        permits_held: semaphore.map(Lock::permits_held).unwrap_or(0),
        holders: semaphore
            .map(|s| {
                s.holders
                    .values()
                    .map(|g| PermitHolderView {
                        lease_id: shown(g.lease_id),
                        permits: g.permits,
                        fencing_token: g.fencing_token,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        waiters: semaphore
            .map(|s| {
                s.waiters
                    .iter()
                    .map(|w| PermitWaiterView {
                        lease_id: shown(w.lease_id),
                        permits: w.permits,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn show(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<NameQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = |semaphores, truncated| SemaphoreList {
        semaphores,
        truncated,
    };
    show_named((&node, &caller), query, Kind::Semaphore, view, list).await
}
