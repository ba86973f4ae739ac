//! `/v1/elections`: campaign (with server-side waiting), proclaim, resign,
//! read and observe elections.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    CampaignRequest, ElectionView, LeaderView, ProclaimRequest, ResignRequest, ResignResponse,
};
use corral_state::{
    check_election_value, Access, Command, FencingToken, Grant, LockName, LockTable, Scope,
};
use serde::Deserialize;
use tokio::time::Instant;

use super::answer::propose_as;
use super::waiting;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::{JsonBody, QueryOf};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/elections", get(show))
        .route("/v1/elections/observe", get(observe))
        .route("/v1/elections/campaign", post(campaign))
        .route("/v1/elections/proclaim", post(proclaim))
        .route("/v1/elections/resign", post(resign))
}

/// The leader's view; its lease id only when the caller `sees` it (the
/// campaigner itself always does).
fn leader_view(grant: &Grant, sees: bool) -> LeaderView {
    LeaderView {
        lease_id: sees.then_some(grant.lease_id),
        value: grant.value.clone().unwrap_or_default(),
        fencing_token: grant.fencing_token,
    }
}

fn view(table: &LockTable, name: &LockName, caller: &Caller) -> ElectionView {
    let sees = |g: &Grant| caller.sees_lease(table, g.lease_id, Scope::Election, name.as_str());
    let leader = table
        .election(name)
        .and_then(|e| e.holders.values().next())
        .map(|g| leader_view(g, sees(g)));
    ElectionView {
        name: name.clone(),
        leader,
    }
}

async fn campaign(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<CampaignRequest>,
) -> Result<Json<ElectionView>, ApiError> {
    let wait_ms = waiting::wait_ms(request.wait_ms)?;
    check_election_value(&request.value)?;
    let CampaignRequest {
        lease_id,
        name,
        value,
        ..
    } = request;
    let command = Command::Campaign {
        lease_id,
        name: name.clone(),
        value,
        wait_ms,
    };
    let grant = waiting::acquire_one(&node, command, key, scope::CAMPAIGN).await?;
    Ok(Json(ElectionView {
        name,
        leader: Some(leader_view(&grant, true)),
    }))
}

async fn proclaim(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ProclaimRequest>,
) -> Result<Json<ElectionView>, ApiError> {
    check_election_value(&request.value)?;
    let origin = key.for_request(&node, scope::PROCLAIM, &request);
    let command = Command::Proclaim {
        lease_id: request.lease_id,
        name: request.name.clone(),
        value: request.value,
    };
    let grant: Grant = propose_as(&node, command, origin).await?;
    Ok(Json(ElectionView {
        name: request.name,
        leader: Some(leader_view(&grant, true)),
    }))
}

async fn resign(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ResignRequest>,
) -> Result<Json<ResignResponse>, ApiError> {
    let origin = key.for_request(&node, scope::RESIGN, &request);
    let command = Command::Resign {
        lease_id: request.lease_id,
        name: request.name,
        fencing_token: request.fencing_token,
    };
    propose_as(&node, command, origin).await.map(Json)
}

#[derive(Deserialize)]
struct ElectionQuery {
    name: String,
    after_token: Option<u64>,
    wait_ms: Option<u64>,
}

fn election_name(raw: String) -> Result<LockName, ApiError> {
    LockName::new(raw).map_err(|e| ApiError::invalid(format!("query `name`: {e}")))
}

async fn show(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<ElectionQuery>,
) -> Result<Json<ElectionView>, ApiError> {
    let name = election_name(query.name)?;
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Election, name.as_str(), Access::Read)?;
    Ok(Json(view(&state.table, &name, &caller)))
}

/// A long poll: answers once the leader's token differs from `after_token`
/// (0 for "no leader"), or with the unchanged state when `wait_ms` runs
/// out. Without `after_token` it answers at once.
async fn observe(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<ElectionQuery>,
) -> Result<Json<ElectionView>, ApiError> {
    let name = election_name(query.name)?;
    let wait_ms = waiting::wait_ms(query.wait_ms)?;
    // Linearizable from the start; afterwards the local state only moves
    // forward, and every apply or restore moves the registry's counter.
    let mut applied = node.waits.changes();
    {
        let state = node.read_linearized(&caller).await?;
        caller.require(&state.table, Scope::Election, name.as_str(), Access::Read)?;
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let current = {
            let state = node.state.read();
            // Again at each wake: a token revoked during the poll ends it.
            caller.require(&state.table, Scope::Election, name.as_str(), Access::Read)?;
            view(&state.table, &name, &caller)
        };
        let token = current
            .leader
            .as_ref()
            .map_or(FencingToken(0), |l| l.fencing_token);
        match query.after_token {
            Some(after) if after == token.0 => {}
            _ => return Ok(Json(current)),
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return Ok(Json(current)),
        }
    }
}
