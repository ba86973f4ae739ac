//! The `Idempotency-Key` header: read from a mutating request and turned
//! into the key and fingerprint its proposal carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use corral_state::{check_idempotency_key, fingerprint, Idempotency};
use serde::Serialize;

use crate::auth::Caller;
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
    /// `DELETE /v1/auth/tokens/{name}`.
    pub(crate) const REVOKE_TOKEN: &str = "DELETE /v1/auth/tokens";
    /// `PUT /v1/queues/{queue}`.
    pub(crate) const CONFIGURE_QUEUE: &str = "PUT /v1/queues";
    /// `POST /v1/queues/{queue}/items`.
    pub(crate) const ENQUEUE: &str = "POST /v1/queues/items";
    /// `POST /v1/queues/{queue}/claim`.
    pub(crate) const CLAIM: &str = "POST /v1/queues/claim";
    /// `POST /v1/queues/{queue}/ack`.
    pub(crate) const ACK: &str = "POST /v1/queues/ack";
    /// `POST /v1/queues/{queue}/extend`.
    pub(crate) const EXTEND: &str = "POST /v1/queues/extend";
    /// `POST /v1/queues/{queue}/nack`.
    pub(crate) const NACK: &str = "POST /v1/queues/nack";
}

/// Where a write comes from: its idempotency key, if it sent one, and
/// its caller, both carried in the proposal.
pub(crate) struct Origin {
    /// The key, fingerprinted.
    pub idempotency: Option<Idempotency>,
    /// The token it came with.
    pub caller: Caller,
}

/// The `Idempotency-Key` header of a write, if it sent one, with the
/// write's caller.
#[derive(Clone)]
pub(crate) struct IdempotencyKey {
    key: Option<String>,
    caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(IdempotencyKey { key: None, caller });
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
        Ok(IdempotencyKey {
            key: Some(key.to_string()),
            caller,
        })
    }
}

impl IdempotencyKey {
    /// The same caller with no key: for writes made on the caller's
    /// behalf, none of which is a retry of another.
    pub(crate) fn without_key(self) -> IdempotencyKey {
        IdempotencyKey {
            key: None,
            caller: self.caller,
        }
    }

    /// An id for the request in `scope`, the same for each of its
    /// retries: drawn from its key and caller when it has a key, at
    /// random otherwise. Never 0.
    pub(crate) fn request_id(&self, scope: &str) -> u64 {
        let id = match &self.key {
            Some(key) => {
                let caller = self.caller.name().map(|name| name.as_str().as_bytes());
                let parts = [scope.as_bytes(), key.as_bytes(), caller.unwrap_or_default()];
                fingerprint(&parts)
            }
            None => rand::random(),
        };
        id.max(1)
    }

    /// The origin of a request in `scope` (one of [`scope`]) with `body`:
    /// its caller, and its key fingerprinted so that the same key with
    /// another request (or from another token) is refused, remembered for
    /// the node's window.
    pub(crate) fn for_request(self, node: &Node, scope: &str, body: &impl Serialize) -> Origin {
        let window_ms = node.idempotency_window_ms;
        let caller = self.caller;
        let idempotency = self.key.map(|key| {
            // Serializing the decoded request, not hashing the raw bytes,
            // makes the fingerprint blind to whitespace and key order.
            let body = serde_json::to_vec(body).unwrap_or_default();
            // Without a caller the parts are those of every earlier
            // version, so retries across an upgrade still match.
            let fingerprint = match caller.name() {
                None => fingerprint(&[scope.as_bytes(), &body]),
                Some(name) => fingerprint(&[scope.as_bytes(), &body, name.as_str().as_bytes()]),
            };
            Idempotency {
                key,
                fingerprint,
                window_ms,
            }
        });
        Origin {
            idempotency,
            caller,
        }
    }
}

#[cfg(test)]
#[path = "idempotency_test.rs"]
mod tests;
