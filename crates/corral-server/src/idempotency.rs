//! The `Idempotency-Key` header: read from a mutating request and turned
//! into the key and fingerprint its proposal carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use corral_state::{check_idempotency_key, fingerprint, Idempotency};
use serde::Serialize;

use crate::error::ApiError;
use crate::node::Node;

/// The header's name.
pub(crate) const HEADER: &str = "idempotency-key";

/// The scope of each keyed write: hashed with its body into the
/// fingerprint that replicated state remembers with its answer. The bytes
/// are fixed for good, even where a route's path has since changed
/// (revoke's scope predates its `{id}` path), or a retry after an upgrade
/// would be refused as another request.
pub(crate) mod scope {
    /// `POST /v1/leases`.
    pub(crate) const GRANT_LEASE: &str = "POST /v1/leases";
    /// `DELETE /v1/leases/{id}`.
    pub(crate) const REVOKE_LEASE: &str = "DELETE /v1/leases";
    /// `POST /v1/locks/acquire`.
    pub(crate) const ACQUIRE: &str = "POST /v1/locks/acquire";
    /// `POST /v1/locks/acquire-all`.
    pub(crate) const ACQUIRE_ALL: &str = "POST /v1/locks/acquire-all";
    /// `POST /v1/locks/release`.
    pub(crate) const RELEASE: &str = "POST /v1/locks/release";
    /// `POST /v1/semaphores/acquire`.
    pub(crate) const ACQUIRE_PERMITS: &str = "POST /v1/semaphores/acquire";
    /// `POST /v1/semaphores/release`.
    pub(crate) const RELEASE_PERMITS: &str = "POST /v1/semaphores/release";
    /// `POST /v1/elections/campaign`.
    pub(crate) const CAMPAIGN: &str = "POST /v1/elections/campaign";
    /// `POST /v1/elections/proclaim`.
    pub(crate) const PROCLAIM: &str = "POST /v1/elections/proclaim";
    /// `POST /v1/elections/resign`.
    pub(crate) const RESIGN: &str = "POST /v1/elections/resign";
    /// `PUT /v1/kv`.
    pub(crate) const KV_PUT: &str = "PUT /v1/kv";
    /// `DELETE /v1/kv`.
    pub(crate) const KV_DELETE: &str = "DELETE /v1/kv";
}

/// The `Idempotency-Key` header of a request, if it sent one.
pub(crate) struct IdempotencyKey(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|key| check_idempotency_key(key).is_ok())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "header `Idempotency-Key`: {}",
                    corral_state::IdempotencyKeyError
                ))
            })?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

impl IdempotencyKey {
    /// The key of a request in `scope` (one of [`scope`]) with `body`, fingerprinted so that
    /// the same key with another request is refused, remembered for the
    /// node's window; `None` without a key.
    pub(crate) fn for_request(
        self,
        node: &Node,
        scope: &str,
        body: &impl Serialize,
    ) -> Option<Idempotency> {
        let window_ms = node.idempotency_window_ms;
        let key = self.0?;
        // Serializing the decoded request, not hashing the raw bytes, makes
        // the fingerprint blind to whitespace and key order.
        let body = serde_json::to_vec(body).unwrap_or_default();
        Some(Idempotency {
            key,
            fingerprint: fingerprint(&[scope.as_bytes(), &body]),
            window_ms,
        })
    }
}

#[cfg(test)]
#[path = "idempotency_test.rs"]
mod tests;
