//! `/v1/leases`: grant, keepalive, revoke and read leases.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    GrantLeaseRequest, HeldLock, KeepaliveAllRequest, KeepaliveAllResponse, LeaseList,
    LeaseResponse, LeaseView, RevokeLeaseResponse, KEEPALIVE_BATCH_MAX, LIST_LEASES_MAX,
    LOCK_DELAY_MS_MAX, TTL_MS_MAX,
};
use corral_state::{Command, Kind, Lease, LeaseId, LockTable, Refusal};

use super::answer::propose_as;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::{JsonBody, PathParam};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/leases", post(grant).get(list))
        .route("/v1/leases/{id}", get(show).delete(revoke))
        .route("/v1/leases/{id}/keepalive", post(keepalive))
        .route("/v1/leases/keepalive", post(keepalive_all))
}

/// Parses the `{id}` path segment.
async fn grant(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<GrantLeaseRequest>,
) -> Result<(StatusCode, Json<LeaseResponse>), ApiError> {
    if !(node.ttl_ms_min..=TTL_MS_MAX).contains(&request.ttl_ms) {
        return Err(ApiError::invalid(format!(
            "field `ttl_ms`: must be from {} to {TTL_MS_MAX}, got {}",
            node.ttl_ms_min, request.ttl_ms
        )));
    }
    let lock_delay_ms = request.lock_delay_ms.unwrap_or(0);
    if lock_delay_ms > LOCK_DELAY_MS_MAX {
        return Err(ApiError::invalid(format!(
            "field `lock_delay_ms`: must be at most {LOCK_DELAY_MS_MAX}, got {lock_delay_ms}"
        )));
    }
    // Drawn here, before proposing, so every replica applies the same id.
    let lease_id = LeaseId(rand::random());
    let command = Command::GrantLease {
        lease_id,
        ttl_ms: request.ttl_ms,
        lock_order: request.lock_order.unwrap_or_default(),
        lock_delay_ms,
    };
    // Fingerprinted with the defaults filled in, so that a retry that
    // spells them out is the same request.
    let normalized = GrantLeaseRequest {
        ttl_ms: request.ttl_ms,
        lock_order: Some(request.lock_order.unwrap_or_default()),
        lock_delay_ms: Some(lock_delay_ms),
    };
    let origin = key.for_request(&node, scope::GRANT_LEASE, &normalized);
    let granted: LeaseResponse = propose_as(&node, command, origin).await?;
    Ok((StatusCode::CREATED, Json(granted)))
}

/// A keepalive is not logged and may be repeated at will; an
/// `Idempotency-Key` is checked but has nothing to do.
async fn keepalive(
    State(node): State<Arc<Node>>,
    caller: Caller,
    _key: IdempotencyKey,
    PathParam(lease_id): PathParam<LeaseId>,
) -> Result<Json<LeaseResponse>, ApiError> {
    if !owns_all(&node, &caller, &[lease_id]).await?.is_empty() {
        return Err(ApiError::permission_denied(
            "the lease belongs to another token",
        ));
    }
    let renewed = node.keepalive(lease_id).await;
    let acked = u64::from(renewed.is_ok());
    node.metrics.keepalives_done(acked, 1 - acked);
    renewed.map(Json)
}

/// Renews many leases with one leadership check; a gone lease is listed,
/// not an error.
async fn keepalive_all(
    State(node): State<Arc<Node>>,
    caller: Caller,
    _key: IdempotencyKey,
    JsonBody(mut request): JsonBody<KeepaliveAllRequest>,
) -> Result<Json<KeepaliveAllResponse>, ApiError> {
    let count = request.lease_ids.len();
    if count == 0 || count > KEEPALIVE_BATCH_MAX {
        return Err(ApiError::invalid(format!(
            "field `lease_ids`: give 1 to {KEEPALIVE_BATCH_MAX} leases, got {count}"
        )));
    }
    // Another token's leases are answered as not found, and not renewed.
    let others = owns_all(&node, &caller, &request.lease_ids).await?;
    request.lease_ids.retain(|id| !others.contains(id));
    if request.lease_ids.is_empty() {
        node.metrics.keepalives_done(0, count as u64);
        return Ok(Json(KeepaliveAllResponse {
            not_found: others,
            ..KeepaliveAllResponse::default()
        }));
    }
    let renewals = match node.keepalive_all(request.lease_ids.clone()).await {
        Ok(renewals) => renewals,
        Err(e) => {
            node.metrics.keepalives_done(0, count as u64);
            return Err(e);
        }
    };
    let mut answer = KeepaliveAllResponse {
        not_found: others,
        ..KeepaliveAllResponse::default()
    };
    for (lease_id, renewal) in request.lease_ids.into_iter().zip(renewals) {
        match renewal {
            Ok(renewed) => answer.renewed.push(renewed),
            Err(_) => answer.not_found.push(lease_id),
        }
    }
    node.metrics
        .keepalives_done(answer.renewed.len() as u64, answer.not_found.len() as u64);
    Ok(Json(answer))
}

async fn revoke(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    PathParam(lease_id): PathParam<LeaseId>,
) -> Result<Json<RevokeLeaseResponse>, ApiError> {
    let command = Command::RevokeLease { lease_id };
    let origin = key.for_request(&node, scope::REVOKE_LEASE, &lease_id);
    propose_as(&node, command, origin).await.map(Json)
}

/// The leases of `lease_ids` that `caller` may not use. Keepalives are
/// not logged, so apply cannot check them: this node does, on its state
/// after a read barrier, so that a lease granted elsewhere is known here
/// and a token revoked before the call is refused (with auth off there is
/// nothing to check and no barrier).
async fn owns_all(
    node: &Node,
    caller: &Caller,
    lease_ids: &[LeaseId],
) -> Result<Vec<LeaseId>, ApiError> {
    if caller.0.is_none() {
        // No token: refused if auth is on here; apply cannot check a
        // keepalive, so a node that has not seen auth go on yet may renew
        // until it has (docs/design.md).
        caller.check(&node.state.read().table)?;
        return Ok(Vec::new());
    }
    let state = node.read_linearized(caller).await?;
    let others = lease_ids
        .iter()
        .filter(|id| !caller.owns(&state.table, **id));
    Ok(others.copied().collect())
}

/// A lease, to its owner (and cluster admins); another token's lease is
/// not found.
async fn show(
    State(node): State<Arc<Node>>,
    caller: Caller,
    PathParam(lease_id): PathParam<LeaseId>,
) -> Result<Json<LeaseView>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    let lease = state.table.lease(lease_id).ok_or(Refusal::LeaseNotFound)?;
    if !caller.owns(&state.table, lease_id) {
        return Err(Refusal::LeaseNotFound.into());
    }
    Ok(Json(view(&state.table, lease_id, lease)))
}

/// The caller's live leases (a cluster admin's: all), at most
/// [`LIST_LEASES_MAX`] in id order, read linearizably.
async fn list(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<LeaseList>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    let table = &state.table;
    let mut mine = table.leases().filter(|(id, _)| caller.owns(table, **id));
    let leases: Vec<LeaseView> = mine
        .by_ref()
        .take(LIST_LEASES_MAX)
        .map(|(id, lease)| view(table, *id, lease))
        .collect();
    Ok(Json(LeaseList {
        leases,
        truncated: mine.next().is_some(),
    }))
}

fn view(table: &LockTable, lease_id: LeaseId, lease: &Lease) -> LeaseView {
    LeaseView {
        lease_id,
        ttl_ms: lease.ttl_ms,
        locks: held(table, lease_id, lease, Kind::Lock),
        semaphores: held(table, lease_id, lease, Kind::Semaphore),
        elections: held(table, lease_id, lease, Kind::Election),
        lock_order: lease.lock_order,
        lock_delay_ms: lease.lock_delay_ms,
    }
}

/// What `lease` holds of `kind`, with tokens.
fn held(table: &LockTable, lease_id: LeaseId, lease: &Lease, kind: Kind) -> Vec<HeldLock> {
    lease
        .held(kind)
        .iter()
        .filter_map(|name| {
            let holder = table.entry(kind, name)?.holders.get(&lease_id)?;
            Some(HeldLock {
                name: name.clone(),
                fencing_token: holder.fencing_token,
            })
        })
        .collect()
}
