//! The HTTP routes of a node: the public API v1 and the peer endpoints, on
//! one listener.

mod leases;
mod locks;
mod peer;
mod semaphores;
mod status;
mod waiting;

use std::sync::Arc;

use axum::Router;
use corral_state::Outcome;

use crate::error::ApiError;
use crate::node::Node;

/// The whole router of a node.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(leases::router())
        .merge(locks::router())
        .merge(semaphores::router())
        .merge(status::router())
        .merge(peer::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(node)
}

/// An outcome that does not answer the command proposed: a bug.
fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::Internal(format!("unexpected outcome {outcome:?}"))
}

/// The `name` or `prefix` query of the read endpoints.
#[derive(serde::Deserialize)]
struct NameQuery {
    name: Option<String>,
    prefix: Option<String>,
}

/// What a `NameQuery` asks for.
enum Lookup {
    One(corral_state::LockName),
    Prefix(String),
}

impl NameQuery {
    fn lookup(self) -> Result<Lookup, ApiError> {
        match (self.name, self.prefix) {
            (Some(name), None) => corral_state::LockName::new(name)
                .map(Lookup::One)
                .map_err(|e| ApiError::InvalidArgument(format!("query `name`: {e}"))),
            (None, Some(prefix)) => Ok(Lookup::Prefix(prefix)),
            _ => Err(ApiError::InvalidArgument(
                "give exactly one of the queries `name` and `prefix`".into(),
            )),
        }
    }
}
