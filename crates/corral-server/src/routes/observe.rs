//! The layer around every route: a request id and a tracing span for each
//! request, and its count, status and duration in the metrics.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use corral_api::ErrorKind;
use tokio::time::Instant;
use tracing::Instrument;

use corral_raft::append_stream::PATH_APPEND_STREAM;
use corral_raft::{PATH_APPEND, PATH_SNAPSHOT, PATH_SNAPSHOT_CHUNK, PATH_VOTE};

use crate::forward::PATH_PROPOSE_STREAM;
use crate::node::Node;
use crate::request_id;

/// Routes of traffic between nodes that carries no single client request:
/// raft's replication, and the stream of forwarded commands (each of which
/// gets a span of its own).
const RAFT_ROUTES: [&str; 6] = [
    PATH_APPEND,
    PATH_APPEND_STREAM,
    PATH_VOTE,
    PATH_SNAPSHOT,
    PATH_SNAPSHOT_CHUNK,
    PATH_PROPOSE_STREAM,
];

/// Serves one request inside its span and records how it went.
pub(super) async fn observe(
    State(node): State<Arc<Node>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id::from_headers(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().clone();
    // Raft's own traffic between nodes carries no client request: its spans
    // are kept for debugging, off at the default level.
    let span = if RAFT_ROUTES.contains(&route.as_str()) {
        tracing::debug_span!("request", id = %id, method = %method, route = %route)
    } else {
        tracing::info_span!("request", id = %id, method = %method, route = %route)
    };
    let mut response = request_id::scope(id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let kind = response.extensions().get::<ErrorKind>();
    span.in_scope(|| {
        tracing::debug!(
            status,
            took_ms = took.as_secs_f64() * 1e3,
            "request answered"
        )
    });
    node.metrics.http_done(route, &method, status, kind, took);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    response
}
