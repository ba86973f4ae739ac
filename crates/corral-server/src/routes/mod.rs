//! The HTTP routes of a node: the public API v1 and the peer endpoints, on
//! one listener.

mod leases;
mod locks;
mod peer;
mod status;

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
