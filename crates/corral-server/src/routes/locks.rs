//! `/v1/locks`: acquire (with server-side waiting), release and read locks.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    AcquireRequest, GrantResponse, HolderView, LockList, LockView, ReleaseRequest, ReleaseResponse,
    LIST_LOCKS_MAX, WAIT_MS_MAX,
};
use corral_state::{Command, FencingToken, Grant, Lock, LockName, Outcome};
use serde::Deserialize;
use tokio::time::Instant;

use super::unexpected;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::node::Node;
use crate::wait_registry::{WaitEnd, WaitTicket};

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/locks", get(show))
        .route("/v1/locks/acquire", post(acquire))
        .route("/v1/locks/release", post(release))
}

fn granted(grant: Grant) -> Json<GrantResponse> {
    Json(GrantResponse {
        name: grant.name,
        lease_id: grant.lease_id,
        mode: grant.mode,
        fencing_token: grant.fencing_token,
    })
}

async fn acquire(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<AcquireRequest>,
) -> Result<Json<GrantResponse>, ApiError> {
    let wait_ms = request.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(ApiError::InvalidArgument(format!(
            "field `wait_ms`: must be at most {WAIT_MS_MAX}, got {wait_ms}"
        )));
    }
    let AcquireRequest {
        lease_id,
        name,
        mode,
        ..
    } = request;
    // Registered before proposing, so a grant applied right after the
    // enqueue cannot be missed.
    let ticket = (wait_ms > 0).then(|| node.waits.register(lease_id, name.clone()));
    let command = Command::Acquire {
        lease_id,
        name: name.clone(),
        mode,
        wait_ms,
    };
    match node.propose(command).await? {
        Outcome::Granted(grant) => Ok(granted(grant)),
        Outcome::Queued { after_token, .. } => {
            let ticket =
                ticket.ok_or_else(|| ApiError::Internal("queued without a wait".into()))?;
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            if let Some(grant) = wait_for_grant(ticket, after_token, deadline).await? {
                return Ok(granted(grant));
            }
            // Time ran out: withdraw through the log, which answers with the
            // grant if it won the race.
            match node.propose(Command::CancelWait { lease_id, name }).await? {
                Outcome::Granted(grant) => Ok(granted(grant)),
                Outcome::WaitCancelled => Err(ApiError::WaitTimeout),
                other => Err(unexpected(other)),
            }
        }
        other => Err(unexpected(other)),
    }
}

/// Waits until the lease is granted the lock or ends, or until `deadline`
/// (`Ok(None)`). Only a grant whose token is above `after_token`, the last
/// token handed out when the request was queued, is this request's grant: an
/// older one is a grant this node applied late.
async fn wait_for_grant(
    mut ticket: WaitTicket,
    after_token: FencingToken,
    deadline: Instant,
) -> Result<Option<Grant>, ApiError> {
    loop {
        match tokio::time::timeout_at(deadline, ticket.ended.recv()).await {
            Ok(Some(WaitEnd::Granted(grant))) if grant.fencing_token > after_token => {
                return Ok(Some(grant))
            }
            Ok(Some(WaitEnd::Granted(_))) => continue,
            Ok(Some(WaitEnd::LeaseEnded)) => return Err(ApiError::LeaseNotFound),
            Ok(None) | Err(_) => return Ok(None),
        }
    }
}

async fn release(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<ReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let command = Command::Release {
        lease_id: request.lease_id,
        name: request.name,
    };
    match node.propose(command).await? {
        Outcome::Released => Ok(Json(ReleaseResponse { released: true })),
        other => Err(unexpected(other)),
    }
}

#[derive(Deserialize)]
struct LocksQuery {
    name: Option<String>,
    prefix: Option<String>,
}

fn view(name: &LockName, lock: Option<&Lock>) -> LockView {
    let holder_view = |g: &Grant| HolderView {
        lease_id: g.lease_id,
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
            .map(|l| l.waiters.iter().map(|w| w.lease_id).collect())
            .unwrap_or_default(),
    }
}

async fn show(
    State(node): State<Arc<Node>>,
    query: Result<Query<LocksQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let body = match (query.name, query.prefix) {
        (Some(name), None) => {
            let name = LockName::new(name)
                .map_err(|e| ApiError::InvalidArgument(format!("query `name`: {e}")))?;
            node.linearize().await?;
            let state = node.state.read();
            serde_json::to_value(view(&name, state.table.lock(&name)))
        }
        (None, Some(prefix)) => {
            node.linearize().await?;
            let state = node.state.read();
            let mut locks: Vec<LockView> = state
                .table
                .locks_with_prefix(&prefix)
                .take(LIST_LOCKS_MAX + 1)
                .map(|(name, lock)| view(name, Some(lock)))
                .collect();
            let truncated = locks.len() > LIST_LOCKS_MAX;
            locks.truncate(LIST_LOCKS_MAX);
            serde_json::to_value(LockList { locks, truncated })
        }
        _ => {
            return Err(ApiError::InvalidArgument(
                "give exactly one of the queries `name` and `prefix`".into(),
            ))
        }
    };
    body.map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}
