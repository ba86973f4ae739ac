//! The `Idempotency-Key` header: read from a mutating request and turned
//! into the key and fingerprint its proposal carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use corral_state::{check_idempotency_key, fingerprint, Idempotency};
use serde::Serialize;

use crate::error::ApiError;
use crate::node::Node;

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// The `Idempotency-Key` header of a request, if it sent one.
pub struct IdempotencyKey(Option<String>);

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
    /// The key of a request to `route` with `body`, fingerprinted so that
    /// the same key with another request is refused, remembered for the
    /// node's window; `None` without a key.
    pub fn for_request(
        self,
        node: &Node,
        route: &str,
        body: &impl Serialize,
    ) -> Option<Idempotency> {
        let window_ms = node.idempotency_window_ms;
        let key = self.0?;
        // Serializing the decoded request, not hashing the raw bytes, makes
        // the fingerprint blind to whitespace and key order.
        let body = serde_json::to_vec(body).unwrap_or_default();
        Some(Idempotency {
            key,
            fingerprint: fingerprint(&[route.as_bytes(), &body]),
            window_ms,
        })
    }
}
