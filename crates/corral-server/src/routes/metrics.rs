//! `GET /metrics`: the node's metrics in Prometheus' text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics;
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let text = node.metrics.render(&node.raft.status(), &node.state);
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}
