//! Fuzzing the HTTP API in process: any method, on paths built from the
//! real route templates with any segments and queries, with any headers
//! and any body, served by the router of a one-node cluster that leads, so
//! that writes commit. Whatever comes in, the answer is not a 5xx, the
//! router does not panic or hang, and every 4xx is the JSON error body
//! whose `code` goes with its status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::Router;
use corral_api::ErrorBody;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::node::Node;
use crate::test_support::{uninitialized_node, uninitialized_node_with_auth, TempDir};

/// Every route template, with the methods it serves; `{}` is a segment
/// of the request.
const TEMPLATES: &[(&str, &[&str])] = &[
    ("/v1/leases", &["POST", "GET"]),
    ("/v1/leases/{}", &["GET", "DELETE"]),
    ("/v1/leases/{}/keepalive", &["POST"]),
    ("/v1/leases/keepalive", &["POST"]),
    ("/v1/locks", &["GET"]),
    ("/v1/locks/acquire", &["POST"]),
    ("/v1/locks/acquire-all", &["POST"]),
    ("/v1/locks/release", &["POST"]),
    ("/v1/locks/validate", &["POST"]),
    ("/v1/locks/history", &["GET"]),
    ("/v1/semaphores", &["GET"]),
    ("/v1/semaphores/acquire", &["POST"]),
    ("/v1/semaphores/release", &["POST"]),
    ("/v1/kv", &["GET", "PUT", "DELETE"]),
    ("/v1/elections", &["GET"]),
    ("/v1/elections/observe", &["GET"]),
    ("/v1/elections/campaign", &["POST"]),
    ("/v1/elections/proclaim", &["POST"]),
    ("/v1/elections/resign", &["POST"]),
    ("/v1/cluster", &["GET"]),
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/ui", &["GET"]),
    ("/test/faults", &["POST"]),
    ("/test/load", &["POST"]),
    ("/v1/auth/tokens", &["GET", "POST"]),
    ("/v1/auth/tokens/{}", &["DELETE"]),
    ("/raft/append", &["POST"]),
    ("/raft/append-stream", &["POST"]),
    ("/raft/snapshot-chunk", &["POST"]),
    ("/raft/vote", &["POST"]),
    ("/raft/snapshot", &["POST"]),
    ("/raft/propose-stream", &["POST"]),
    ("/raft/read-index", &["POST"]),
    ("/raft/keepalive", &["POST"]),
    ("/{}", &["GET"]),
    ("/v1/{}", &["GET"]),
];

/// Every method asked for.
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The query keys the routes read, and one they do not.
const QUERY_KEYS: &[&str] = &["name", "prefix", "key", "after_token", "wait_ms", "junk"];

/// How long one request may take: the longest wait a request can ask
/// for here is 20 ms, and a write commits in milliseconds.
const REQUEST_WITHIN: Duration = Duration::from_secs(10);

/// Numbers at the edges of every field's range. No wait between 21 ms and
/// the 60 s cap, so that no request waits long for a lock.
fn number() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(-1),
        json!(0),
        json!(1),
        json!(2),
        json!(20),
        json!(65_535),
        json!(86_400_001),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(9_007_199_254_740_993u64),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
    ])
}

/// Strings of every kind a field may get: the lease's id, a name, empty,
/// too long, with control characters, not hex.
fn string(lease: &str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(lease.to_string()),
        Just("a".to_string()),
        Just(String::new()),
        Just("n".repeat(513)),
        Just("a\u{7}b".to_string()),
        Just("é".repeat(300)),
        "[0-9a-f]{32}",
        ".{0,12}",
    ]
}

/// Any JSON value, with the numbers and strings above at its leaves.
fn json_value(lease: &str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        string(lease).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body of each POST, PUT and DELETE route, over `lease`.
fn valid_body(path: &str, lease: &str) -> Value {
    let fence = json!({"lock": "a", "fencing_token": 1});
    match path {
        "/v1/leases" => json!({"ttl_ms": 30_000, "lock_order": "none", "lock_delay_ms": 0}),
        "/v1/leases/keepalive" => json!({"lease_ids": [lease]}),
        "/v1/locks/acquire" => json!({"lease_id": lease, "name": "a", "mode": "shared"}),
        "/v1/locks/acquire-all" => json!({"lease_id": lease, "names": ["a", "b"]}),
        "/v1/locks/release" => json!({"lease_id": lease, "name": "a", "fencing_token": 1}),
        "/v1/locks/validate" => json!({"name": "a", "fencing_token": 1}),
        "/v1/semaphores/acquire" => {
            json!({"lease_id": lease, "name": "s", "limit": 2, "permits": 1, "wait_ms": 0})
        }
        "/v1/semaphores/release" => json!({"lease_id": lease, "name": "s"}),
        "/v1/kv" => json!({"key": "k", "value": "v", "fence": fence}),
        "/v1/elections/campaign" => json!({"lease_id": lease, "name": "e", "value": "v"}),
        "/v1/elections/proclaim" => json!({"lease_id": lease, "name": "e", "value": "w"}),
        "/v1/elections/resign" => json!({"lease_id": lease, "name": "e"}),
        "/raft/keepalive" => json!([lease]),
        "/v1/auth/tokens" => json!({
            "name": "t",
            "permissions": [{"kind": "lock", "prefix": "a", "access": "write"}],
            "quotas": {"leases_max": 1, "holds_max": 1, "kv_keys_max": 1}
        }),
        _ => json!({}),
    }
}

/// What to do to a valid body: nothing, drop a field, or put any value in
/// one (the field picked by index, modulo their count).
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Remove(usize),
    Replace(usize, Value),
}

/// A request body: random bytes, any JSON, a route's valid body (perhaps
/// mutated), or one over every JSON body's limit.
#[derive(Clone, Debug)]
enum BodyPlan {
    Bytes(Vec<u8>),
    Json(Value),
    Valid(Mutation),
    Huge,
}

fn body_plan(lease: &str) -> impl Strategy<Value = BodyPlan> {
    let mutation = prop_oneof![
        2 => Just(Mutation::None),
        1 => any::<usize>().prop_map(Mutation::Remove),
        2 => (any::<usize>(), json_value(lease)).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ];
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyPlan::Bytes),
        2 => json_value(lease).prop_map(BodyPlan::Json),
        5 => mutation.prop_map(BodyPlan::Valid),
        1 => Just(BodyPlan::Huge),
    ]
}

fn body_bytes(plan: &BodyPlan, path: &str, lease: &str) -> Vec<u8> {
    match plan {
        BodyPlan::Bytes(bytes) => bytes.clone(),
        BodyPlan::Json(value) => value.to_string().into_bytes(),
        BodyPlan::Valid(mutation) => {
            let mut body = valid_body(path, lease);
            if let Value::Object(fields) = &mut body {
                let keys: Vec<String> = fields.keys().cloned().collect();
                match mutation {
                    Mutation::None => {}
                    Mutation::Remove(i) if !keys.is_empty() => {
                        fields.remove(&keys[i % keys.len()]);
                    }
                    Mutation::Replace(i, value) if !keys.is_empty() => {
                        fields.insert(keys[i % keys.len()].clone(), value.clone());
                    }
                    Mutation::Remove(_) | Mutation::Replace(..) => {}
                }
            }
            body.to_string().into_bytes()
        }
        // Over the 1 MiB of a fenced write and the 64 KiB of the others.
        BodyPlan::Huge => format!(r#"{{"value":"{}"}}"#, "x".repeat(1 << 21)).into_bytes(),
    }
}

/// A path segment: the lease's id, any id, dots, percent-encoded junk
/// (valid escapes of any byte, and bad ones), a very long one, or any
/// characters a path may hold.
fn segment(lease: &str) -> impl Strategy<Value = String> {
    let escaped = prop::collection::vec(any::<u8>(), 1..12)
        .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect());
    prop_oneof![
        Just(lease.to_string()),
        "[0-9a-f]{32}",
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("%zz%".to_string()),
        Just("%00".to_string()),
        escaped,
        Just("x".repeat(5_000)),
        "[A-Za-z0-9._~!$&'()*+,;=:@-]{0,16}",
    ]
}

/// A path from a template with its segments filled, sometimes one more
/// segment, and a query of known and unknown keys.
fn path(lease: &str) -> impl Strategy<Value = (usize, String)> {
    let query_value = prop_oneof![segment(lease), number().prop_map(|n| n.to_string()),];
    let query = prop::collection::vec((prop::sample::select(QUERY_KEYS), query_value), 0..4);
    (
        0..TEMPLATES.len(),
        segment(lease),
        prop::option::weighted(0.1, segment(lease)),
        query,
    )
        .prop_map(|(template, filler, extra, query)| {
            let mut path = TEMPLATES[template].0.replace("{}", &filler);
            if let Some(extra) = extra {
                path = format!("{path}/{extra}");
            }
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !pairs.is_empty() {
                path = format!("{path}?{}", pairs.join("&"));
            }
            (template, path)
        })
}

/// Header values a client could send: any visible ASCII, bytes above
/// ASCII, spaces, empty, very long.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"application/json; charset=utf-8".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(b"key-1".to_vec()),
        Just(b"1".to_vec()),
        Just(b"2".to_vec()),
        Just(Vec::new()),
        Just(vec![b'k'; 300]),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..40),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "content-type",
        "idempotency-key",
        "x-request-id",
        "x-junk",
        "accept",
        corral_raft::FORMAT_HEADER,
    ]);
    prop::collection::vec((name, header_value()), 0..4)
}

/// One request to send.
#[derive(Clone, Debug)]
struct Fuzzed {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    /// Which of the app's bearers to send, if any (with auth on).
    bearer: Option<usize>,
}

/// A request, with one of its route's own methods three times in four.
fn request(lease: String) -> impl Strategy<Value = Fuzzed> {
    let method = (prop::bool::weighted(0.75), any::<usize>());
    let bearer = prop::option::weighted(0.9, any::<usize>());
    (method, path(&lease), headers(), body_plan(&lease), bearer).prop_map(
        move |((own, pick), (template, path), headers, plan, bearer)| {
            let (template, methods) = TEMPLATES[template];
            let methods = if own { methods } else { METHODS };
            Fuzzed {
                method: methods[pick % methods.len()],
                body: body_bytes(&plan, template, &lease),
                path,
                headers,
                bearer,
            }
        },
    )
}

/// The root token of the run with auth on.
const ROOT: &str = "the-fuzzer-root-token";

/// The router of a one-node cluster that leads, with one lease granted.
struct App {
    router: Router,
    node: Arc<Node>,
    lease: String,
    /// `Authorization` values to send: with auth on, root's, a scoped
    /// token's and one the cluster does not know; none with auth off.
    bearers: Vec<String>,
    // Dropped last: the node's database is in it.
    _dir: TempDir,
}

impl App {
    /// The app with auth on when `auth`: the lease is root's, and a token
    /// that may write locks under `a` exists too.
    async fn start(name: &str, auth: bool) -> App {
        let dir = TempDir::new(name);
        let node = match auth {
            true => uninitialized_node_with_auth(&dir, ROOT, false).await,
            false => uninitialized_node(&dir).await,
        };
        let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        node.raft
            .initialize_once(&members)
            .await
            .expect("initialized");
        let router = super::router(node.clone());
        let mut app = App {
            router,
            node,
            lease: String::new(),
            bearers: Vec::new(),
            _dir: dir,
        };
        if auth {
            app.bearers.push(format!("Bearer {ROOT}"));
        }
        app.lease = app.grant_lease().await;
        if auth {
            let scoped = app.add_token().await;
            app.bearers.push(format!("Bearer {scoped}"));
            app.bearers.push("Bearer not-a-token".into());
            app.bearers.push("Basic cm9vdA==".into());
        }
        app
    }

    /// Adds a token that may write locks under `a`, as root; its secret.
    async fn add_token(&self) -> String {
        let body = r#"{"name": "scoped", "permissions": [{"kind": "lock", "prefix": "a", "access": "write"}]}"#;
        let request = Request::post("/v1/auth/tokens")
            .header("authorization", format!("Bearer {ROOT}"))
            .body(Body::from(body))
            .expect("request");
        let (status, body) = self.send(request).await.expect("answered");
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let reply: Value = serde_json::from_slice(&body).expect("JSON");
        reply["token"].as_str().expect("a secret").to_string()
    }

    /// Grants the lease the bodies name, once the node leads.
    async fn grant_lease(&self) -> String {
        for _ in 0..200 {
            let mut request = Request::post("/v1/leases");
            if let Some(root) = self.bearers.first() {
                request = request.header("authorization", root);
            }
            let request = request
                .body(Body::from(r#"{"ttl_ms": 86400000}"#))
                .expect("request");
            let (status, body) = self.send(request).await.expect("answered");
            if status == 201 {
                let reply: Value = serde_json::from_slice(&body).expect("JSON");
                return reply["lease_id"].as_str().expect("lease id").to_string();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the one node never granted a lease");
    }

    /// Serves one request; its status and body, or `None` if it hung.
    async fn send(&self, request: Request<Body>) -> Option<(u16, Vec<u8>)> {
        let served = async {
            let response = self.router.clone().oneshot(request).await;
            let response = response.expect("the router never fails");
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            (status, bytes.map(|b| b.to_vec()).unwrap_or_default())
        };
        tokio::time::timeout(REQUEST_WITHIN, served).await.ok()
    }

    /// Sends `fuzzed` and checks its answer.
    async fn check(&self, fuzzed: Fuzzed) -> Result<(), TestCaseError> {
        let mut request = Request::builder().method(fuzzed.method).uri(&fuzzed.path);
        if let (Some(pick), false) = (fuzzed.bearer, self.bearers.is_empty()) {
            request = request.header("authorization", &self.bearers[pick % self.bearers.len()]);
        }
        // Peer routes hear only their own cluster: mostly they get its
        // identity, so that the bytes reach the frame decoders.
        if fuzzed.path.starts_with("/raft/") && fuzzed.bearer.is_some() {
            request = request.header(corral_raft::CLUSTER_HEADER, &self.node.cluster_id);
        }
        for (name, value) in &fuzzed.headers {
            let value = HeaderValue::from_bytes(value).expect("a valid header value");
            request = request.header(HeaderName::from_static(name), value);
        }
        let request = request.body(Body::from(fuzzed.body));
        // A path no client could send (the URI does not parse).
        let Ok(request) = request else {
            return Ok(());
        };
        let Some((status, body)) = self.send(request).await else {
            return Err(TestCaseError::fail("no answer within 10 s"));
        };
        let text = String::from_utf8_lossy(&body);
        prop_assert!(status < 500, "{} -> {}", status, text);
        if status >= 400 {
            let error: ErrorBody = serde_json::from_slice(&body)
                .map_err(|e| TestCaseError::fail(format!("{status} {text}: {e}")))?;
            prop_assert_eq!(error.error.kind.status(), status, "{}", text);
        }
        Ok(())
    }

    /// Checks that the node still answers after all it was sent, and
    /// stops its raft before the folder goes.
    async fn stop(self) {
        let request = Request::get("/healthz")
            .body(Body::empty())
            .expect("request");
        assert_eq!(self.send(request).await.map(|r| r.0), Some(200));
        self.node.raft.shutdown().await.expect("shut down");
    }
}

/// Any method on any path built from the route templates, with any
/// headers and any body: no 5xx, no panic, no hang, and every 4xx the
/// error body with the code of its status. One node for all cases, so
/// that what earlier cases wrote is there for later ones; requests to
/// `/raft/append-stream` and `/raft/propose-stream` put any bytes through
/// both peer streams' frame decoders. 512 cases: 0.5 s in a debug build
/// (4096 cases, tried three times: 3 s each).
#[test]
fn any_request_is_answered_without_a_server_error() {
    fuzz_router(false);
}

/// The same with auth on: each request as root, as a token scoped to locks
/// under `a`, with an unknown token, another scheme, or none.
#[test]
fn any_request_is_answered_without_a_server_error_with_auth_on() {
    fuzz_router(true);
}

fn fuzz_router(auth: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let name = if auth { "fuzz-http-auth" } else { "fuzz-http" };
    let app = runtime.block_on(App::start(name, auth));
    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&request(app.lease.clone()), |fuzzed| {
        runtime.block_on(app.check(fuzzed))
    });
    runtime.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
