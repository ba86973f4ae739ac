//! Bad input the routes refuse before anything reaches raft gets a 4xx
//! with a code and a message naming the field: served in process by the
//! router of a node whose raft never has a leader, so that an answer that
//! needed one could only be a 503, never the expected refusal.
//! `tests/bad_input.rs` keeps what needs a cluster.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::node::Node;
use crate::test_support::{uninitialized_node, TempDir};

/// A well-formed lease id; no lease of it exists, and none need: these
/// bodies are refused before a lease is looked up.
const LEASE: &str = "0000000000000000000000000000002a";

/// POST bodies with a field missing, mistyped or out of bounds, each
/// refused with 400 `invalid_argument` in a message naming the field:
/// (path, whether the body gets `lease_id` [`LEASE`], body, field).
const FIELD_CASES: &[(&str, bool, &str, &str)] = &[
    ("/v1/leases", false, r#"{}"#, "ttl_ms"),
    ("/v1/leases", false, r#"{"ttl_ms": "10s"}"#, "ttl_ms"),
    ("/v1/leases", false, r#"{"ttl_ms": 10}"#, "ttl_ms"),
    ("/v1/leases", false, r#"{"ttl_ms": 86400001}"#, "ttl_ms"),
    ("/v1/leases", false, r#"{"ttl_ms": -5}"#, "ttl_ms"),
    ("/v1/locks/acquire", false, r#"{"name": "a"}"#, "lease_id"),
    (
        "/v1/locks/acquire",
        false,
        r#"{"lease_id": "xyz", "name": "a"}"#,
        "lease_id",
    ),
    ("/v1/locks/acquire", true, r#"{}"#, "name"),
    ("/v1/locks/acquire", true, r#"{"name": ""}"#, "name"),
    ("/v1/locks/acquire", true, r#"{"name": "a\u0007b"}"#, "name"),
    ("/v1/locks/acquire", true, r#"{"name": 7}"#, "name"),
    (
        "/v1/locks/acquire",
        true,
        r#"{"name": "a", "wait_ms": 60001}"#,
        "wait_ms",
    ),
    (
        "/v1/locks/acquire",
        true,
        r#"{"name": "a", "wait_ms": -1}"#,
        "wait_ms",
    ),
    ("/v1/locks/release", true, r#"{"name": ""}"#, "name"),
    ("/v1/locks/release", false, r#"{"name": "a"}"#, "lease_id"),
    (
        "/v1/leases",
        false,
        r#"{"ttl_ms": 30000, "lock_delay_ms": 60001}"#,
        "lock_delay_ms",
    ),
    (
        "/v1/leases",
        false,
        r#"{"ttl_ms": 30000, "lock_order": "random"}"#,
        "lock_order",
    ),
    (
        "/v1/locks/acquire",
        true,
        r#"{"name": "a", "mode": "upgradable"}"#,
        "mode",
    ),
    ("/v1/locks/acquire-all", true, r#"{"names": []}"#, "names"),
    (
        "/v1/locks/acquire-all",
        true,
        r#"{"names": ["a", "b", "a"]}"#,
        "names",
    ),
    (
        "/v1/locks/acquire-all",
        true,
        r#"{"names": ["a", ""]}"#,
        "names",
    ),
    ("/v1/semaphores/acquire", true, r#"{"name": "s"}"#, "limit"),
    (
        "/v1/semaphores/acquire",
        true,
        r#"{"name": "s", "limit": 0}"#,
        "limit",
    ),
    (
        "/v1/semaphores/acquire",
        true,
        r#"{"name": "s", "limit": 10001}"#,
        "limit",
    ),
    (
        "/v1/semaphores/acquire",
        true,
        r#"{"name": "s", "limit": 2, "permits": 3}"#,
        "permits",
    ),
    (
        "/v1/semaphores/acquire",
        true,
        r#"{"name": "s", "limit": 2, "permits": 0}"#,
        "permits",
    ),
    ("/v1/semaphores/release", true, r#"{}"#, "name"),
];

/// Bad paths, queries and methods: (method, path and query, status, code).
const PATH_CASES: &[(&str, &str, u16, &str)] = &[
    (
        "POST",
        "/v1/leases/nothex/keepalive",
        400,
        "invalid_argument",
    ),
    ("GET", "/v1/leases/0123", 400, "invalid_argument"),
    ("GET", "/v1/locks?name=", 400, "invalid_argument"),
    ("GET", "/v1/locks", 400, "invalid_argument"),
    (
        "GET",
        "/v1/semaphores?name=a&prefix=b",
        400,
        "invalid_argument",
    ),
    ("GET", "/v1/nowhere", 404, "not_found"),
    ("GET", "/v1/locks/acquire", 405, "method_not_allowed"),
];

#[tokio::test]
async fn fields_out_of_bounds_are_refused_naming_the_field() {
    let app = App::start("input-fields").await;
    for (path, with_lease, body, field) in FIELD_CASES {
        let mut body: Value = serde_json::from_str(body).expect("case body");
        if *with_lease {
            body["lease_id"] = json!(LEASE);
        }
        let (status, reply) = app.send("POST", path, body.to_string()).await;
        assert_eq!(status, 400, "{path} {body} -> {reply}");
        assert_eq!(code(&reply), "invalid_argument", "{path} {body}");
        let message = reply["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(field),
            "message names `{field}`: {message}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn bodies_not_json_or_too_long_are_refused() {
    let app = App::start("input-bodies").await;
    // Not JSON at all, and an empty body.
    for raw in ["{", "not json", "", "[1,2]"] {
        let (status, reply) = app.send("POST", "/v1/locks/acquire", raw).await;
        assert_eq!(status, 400, "{raw:?} -> {reply}");
        assert_eq!(code(&reply), "invalid_argument");
    }
    // A name over 512 bytes.
    let body = json!({"lease_id": LEASE, "name": "n".repeat(513)}).to_string();
    let (status, reply) = app.send("POST", "/v1/locks/acquire", body).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(code(&reply), "invalid_argument");
    let message = reply["error"]["message"].as_str().expect("message");
    assert!(message.contains("name"), "message names `name`: {message}");
    // Bodies over 64 KiB.
    let huge = format!(
        r#"{{"lease_id":"{LEASE}","name":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, reply) = app.send("POST", "/v1/locks/acquire", huge).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(code(&reply), "body_too_large");
    app.stop().await;
}

#[tokio::test]
async fn peer_bodies_are_limited_by_what_raft_sends_on_each_route() {
    let app = App::start("input-peer-bodies").await;
    let two_mib = "x".repeat(2 << 20);
    // A vote is small: 2 MiB is refused before it is read whole.
    let (status, reply) = app.send("POST", "/raft/vote", two_mib.clone()).await;
    assert_eq!((status, code(&reply)), (413, "body_too_large"), "{reply}");
    // A batch of entries may be far larger: read, then refused as bad JSON.
    let (status, reply) = app.send("POST", "/raft/append", two_mib).await;
    assert_eq!((status, code(&reply)), (400, "invalid_argument"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn bad_paths_queries_and_methods_are_refused() {
    let app = App::start("input-paths").await;
    for (method, uri, status, expected_code) in PATH_CASES {
        let body = if *method == "POST" { "{}" } else { "" };
        let (got, reply) = app.send(method, uri, body).await;
        assert_eq!(
            (got, code(&reply)),
            (*status, *expected_code),
            "{method} {uri} -> {reply}"
        );
    }
    app.stop().await;
}

/// The router of a node whose raft has no leader, on a folder of its own.
struct App {
    router: Router,
    node: Arc<Node>,
    // Dropped last: the node's database is in it.
    _dir: TempDir,
}

impl App {
    async fn start(name: &str) -> App {
        let dir = TempDir::new(name);
        let node = uninitialized_node(&dir).await;
        App {
            router: super::router(node.clone()),
            node,
            _dir: dir,
        }
    }

    /// Serves one request; answers its status and its body as JSON (null
    /// when it is not JSON).
    async fn send(&self, method: &str, uri: &str, body: impl Into<Body>) -> (u16, Value) {
        // As a peer of this cluster would send it.
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(corral_raft::CLUSTER_HEADER, &self.node.cluster_id)
            .body(body.into())
            .expect("request");
        let response = self.router.clone().oneshot(request).await;
        let response = response.expect("the router never fails");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Checks that the node still answers after all it refused, and stops
    /// its raft before the folder goes.
    async fn stop(self) {
        assert_eq!(self.send("GET", "/healthz", "").await.0, 200);
        self.node.raft.shutdown().await.expect("shut down");
    }
}

/// The error code of an error body, or "" for any other body.
fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or_default()
}
