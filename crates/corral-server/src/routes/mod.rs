//! The HTTP routes of a node: the public API v1 and the peer endpoints, on
//! one listener.

mod leases;
mod locks;
mod peer;
mod status;

use std::sync::Arc;

use axum::Router;

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
