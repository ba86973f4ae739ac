//! `/v1/auth/tokens`: add, list and revoke tokens (cluster admins only;
//! see `rules.rs`). A secret is drawn here, shown once, and only its hash
//! is replicated.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use corral_api::{AddTokenRequest, AddTokenResponse, RevokeTokenResponse, TokenList, TokenView};
use corral_state::{check_permissions, Command, Outcome, TokenName};

use super::answer::{propose_as, FromOutcome};
use crate::auth::{hash_secret, new_secret, Caller};
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey, Origin};
use crate::json::{JsonBody, PathParam};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/auth/tokens", get(list).post(add))
        .route("/v1/auth/tokens/{name}", delete(revoke))
}

/// Adds a token. Refuses an `Idempotency-Key`: a retry could not show the
/// first secret again, so a retried add is refused as `token_exists`, and
/// the token is revoked and added anew.
async fn add(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    JsonBody(request): JsonBody<AddTokenRequest>,
) -> Result<(StatusCode, Json<AddTokenResponse>), ApiError> {
    if headers.contains_key(crate::idempotency::HEADER) {
        return Err(ApiError::invalid(
            "header `Idempotency-Key`: adding a token takes none, as a retry could not show the secret again",
        ));
    }
    let name = TokenName::new(request.name)
        .map_err(|e| ApiError::invalid(format!("field `name`: {e}")))?;
    check_permissions(&request.permissions)
        .map_err(|e| ApiError::invalid(format!("field `permissions`: {e}")))?;
    let secret = new_secret();
    let command = Command::AddToken {
        name: name.clone(),
        hash: hash_secret(&secret),
        permissions: request.permissions,
        quotas: request.quotas.unwrap_or(node.auth.quotas),
    };
    let origin = Origin {
        idempotency: None,
        caller,
    };
    let TokenAdded = propose_as(&node, command, origin).await?;
    let added = AddTokenResponse {
        name: name.to_string(),
        token: secret,
    };
    Ok((StatusCode::CREATED, Json(added)))
}

/// Every token and its permissions, never a secret.
async fn list(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    let tokens = state.table.tokens().iter().map(|(name, token)| TokenView {
        name: name.to_string(),
        permissions: token.permissions.clone(),
        quotas: token.quotas,
        created_at_ms: token.created_at_ms,
    });
    Ok(Json(TokenList {
        tokens: tokens.collect(),
    }))
}

/// Revokes a token: from its commit on, apply refuses every command that
/// names it, and each node's reads refuse it after their read barrier.
async fn revoke(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    PathParam(name): PathParam<corral_state::TokenName>,
) -> Result<Json<RevokeTokenResponse>, ApiError> {
    let origin = key.for_request(&node, scope::REVOKE_TOKEN, &name);
    let TokenRevoked = propose_as(&node, Command::RevokeToken { name }, origin).await?;
    Ok(Json(RevokeTokenResponse { revoked: true }))
}

/// The answer to an add.
struct TokenAdded;

impl FromOutcome for TokenAdded {
    fn from_outcome(outcome: Outcome) -> Result<TokenAdded, Outcome> {
        match outcome {
            Outcome::TokenAdded { .. } => Ok(TokenAdded),
            other => Err(other),
        }
    }
}

/// The answer to a revoke.
struct TokenRevoked;

impl FromOutcome for TokenRevoked {
    fn from_outcome(outcome: Outcome) -> Result<TokenRevoked, Outcome> {
        match outcome {
            Outcome::TokenRevoked { .. } => Ok(TokenRevoked),
            other => Err(other),
        }
    }
}
