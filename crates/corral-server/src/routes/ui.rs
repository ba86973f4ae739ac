//! `GET /ui`: a status page of the cluster as this node sees it. One file,
//! built into the binary: no CDN, no build step. It reads the JSON API.

use std::sync::Arc;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::node::Node;

const PAGE: &str = include_str!("ui.html");

/// The page may load nothing from elsewhere and run only its own script.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/ui", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, POLICY),
        ],
        PAGE,
    )
}
