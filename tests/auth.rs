//! Auth on a real cluster: tokens scoped by prefix on every node, revoked
//! at once everywhere, leases that only their token may use or see, quotas,
//! and tokens that survive restarts and snapshots.

// A scenario reads best as one function, step after step.
#![allow(clippy::too_many_lines)]

mod harness;

use harness::{code, send, Cluster};
use reqwest::Method;
use serde_json::{json, Value};

const ROOT: &str = "root-secret-for-the-auth-tests";

/// A client that sends no token unless told to.
fn plain() -> reqwest::Client {
    Cluster::client_builder().build().expect("http client")
}

/// `method path` on node `id` with `secret` as the bearer token (none:
/// no header at all).
async fn call(
    cluster: &Cluster,
    secret: Option<&str>,
    (method, id, path): (Method, u64, &str),
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = plain().request(method, cluster.url(id, path));
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    send(request, body, None).await
}

/// Adds a token through node `id` as root; its secret.
async fn add_token(cluster: &Cluster, id: u64, body: Value) -> String {
    let (status, added) = cluster.post(id, "/v1/auth/tokens", body).await;
    assert_eq!(status, 201, "add token: {added}");
    added["token"].as_str().expect("a secret").to_string()
}

/// Grants a lease through node `id` as `secret`; its id.
async fn lease_as(cluster: &Cluster, secret: &str, id: u64) -> String {
    let grant = (Method::POST, id, "/v1/leases");
    let (status, body) = call(
        cluster,
        Some(secret),
        grant,
        Some(json!({"ttl_ms": 30_000})),
    )
    .await;
    assert_eq!(status, 201, "grant as a token: {body}");
    body["lease_id"].as_str().expect("lease_id").to_string()
}

/// An acquire of `name` under `lease` through node `id` as `secret`.
async fn acquire_as(
    cluster: &Cluster,
    secret: &str,
    id: u64,
    lease: &str,
    name: &str,
) -> (u16, Value) {
    let acquire = (Method::POST, id, "/v1/locks/acquire");
    let body = json!({"lease_id": lease, "name": name});
    call(cluster, Some(secret), acquire, Some(body)).await
}

fn lock_write(prefix: &str) -> Value {
    json!({"kind": "lock", "prefix": prefix, "access": "write"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_does_what_its_prefix_allows_through_every_node() {
    let cluster = Cluster::start_auth(3, ROOT, &[]).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];

    // Without a token: 401 on the API, health stays open.
    for id in [leader, follower] {
        let (status, body) = call(&cluster, None, (Method::GET, id, "/v1/cluster"), None).await;
        assert_eq!((status, code(&body)), (401, Some("unauthenticated")));
        let grant = (Method::POST, id, "/v1/leases");
        let (status, _) = call(&cluster, None, grant, Some(json!({"ttl_ms": 30_000}))).await;
        assert_eq!(status, 401);
        let (status, _) = call(&cluster, None, (Method::GET, id, "/healthz"), None).await;
        assert_eq!(status, 200);
        let bad = (Method::GET, id, "/v1/cluster");
        let (status, _) = call(&cluster, Some("not-a-token"), bad, None).await;
        assert_eq!(status, 401);
    }
    let (_, view) = cluster.get(follower, "/v1/cluster").await;
    assert_eq!(view["auth_enabled"], true, "{view}");

    // Added through a follower: the forwarded command carries root.
    let permissions = json!([lock_write("invoice/")]);
    let invoicer = add_token(
        &cluster,
        follower,
        json!({"name": "invoicer", "permissions": permissions}),
    )
    .await;
    for id in cluster.live() {
        let lease = lease_as(&cluster, &invoicer, id).await;
        let (status, body) =
            acquire_as(&cluster, &invoicer, id, &lease, &format!("invoice/{id}")).await;
        assert_eq!(status, 200, "node {id}: {body}");
        let (status, body) =
            acquire_as(&cluster, &invoicer, id, &lease, &format!("refund/{id}")).await;
        assert_eq!(
            (status, code(&body)),
            (403, Some("permission_denied")),
            "{body}"
        );
        let tokens = (Method::GET, id, "/v1/auth/tokens");
        let (status, body) = call(&cluster, Some(&invoicer), tokens, None).await;
        assert_eq!((status, code(&body)), (403, Some("permission_denied")));
        let permits = (Method::POST, id, "/v1/semaphores/acquire");
        let body = json!({"lease_id": lease, "name": "invoice/s", "limit": 2, "permits": 1});
        let (status, _) = call(&cluster, Some(&invoicer), permits, Some(body)).await;
        assert_eq!(status, 403, "a lock permission is no semaphore permission");
        // Write implies read; its own lease id is shown.
        let path = format!("/v1/locks?name=invoice/{id}");
        let (status, view) = call(&cluster, Some(&invoicer), (Method::GET, id, &path), None).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["holder"]["lease_id"], lease.as_str());
        let outside = (Method::GET, id, "/v1/locks?name=refund/1");
        let (status, _) = call(&cluster, Some(&invoicer), outside, None).await;
        assert_eq!(status, 403);
    }

    // Idempotency keys are per token.
    let lease = lease_as(&cluster, &invoicer, follower).await;
    let body = json!({"lease_id": lease, "name": "invoice/keyed"});
    let keyed = |secret: &str| {
        let request = plain()
            .post(cluster.url(follower, "/v1/locks/acquire"))
            .bearer_auth(secret);
        send(request, Some(body.clone()), Some("k-1"))
    };
    let (status, first) = keyed(&invoicer).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = keyed(&invoicer).await;
    assert_eq!(
        (status, &again["fencing_token"]),
        (200, &first["fencing_token"])
    );
    let (status, other) = keyed(ROOT).await;
    assert_eq!((status, code(&other)), (422, Some("idempotency_mismatch")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_is_refused_at_once_on_every_node() {
    let cluster = Cluster::start_auth(3, ROOT, &[]).await;
    let secret = add_token(
        &cluster,
        1,
        json!({"name": "short-lived", "permissions": [lock_write("")]}),
    )
    .await;
    let mut leases = Vec::new();
    for id in cluster.live() {
        let lease = lease_as(&cluster, &secret, id).await;
        let (status, _) = acquire_as(&cluster, &secret, id, &lease, &format!("r/{id}")).await;
        assert_eq!(status, 200);
        leases.push((id, lease));
    }
    let (status, body) = cluster
        .request(Method::DELETE, 2, "/v1/auth/tokens/short-lived", None)
        .await;
    assert_eq!((status, &body["revoked"]), (200, &json!(true)), "{body}");
    for (id, lease) in &leases {
        let (status, body) = acquire_as(&cluster, &secret, *id, lease, "r/after").await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("unauthenticated")),
            "node {id}"
        );
        let read = (Method::GET, *id, "/v1/locks?name=r/1");
        let (status, _) = call(&cluster, Some(&secret), read, None).await;
        assert_eq!(status, 401, "a read on node {id}");
        let path = format!("/v1/leases/{lease}/keepalive");
        let (status, body) = call(&cluster, Some(&secret), (Method::POST, *id, &path), None).await;
        assert!(
            matches!(status, 401 | 403),
            "a keepalive on node {id}: {status} {body}"
        );
    }
    let (status, body) = cluster
        .request(Method::DELETE, 3, "/v1/auth/tokens/short-lived", None)
        .await;
    assert_eq!((status, code(&body)), (404, Some("token_not_found")));
    let (status, _) = cluster
        .request(Method::DELETE, 3, "/v1/auth/tokens/root", None)
        .await;
    assert_eq!(status, 400, "root stays");
    let (_, list) = cluster.get(1, "/v1/auth/tokens").await;
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["root"], "{list}");
    assert!(!list.to_string().contains("corral_"), "no secret is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_cannot_use_or_see_another_tokens_lease() {
    let cluster = Cluster::start_auth(3, ROOT, &[]).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    let both = json!([lock_write("")]);
    let a = add_token(&cluster, leader, json!({"name": "a", "permissions": both})).await;
    let b = add_token(&cluster, leader, json!({"name": "b", "permissions": both})).await;
    let lease_a = lease_as(&cluster, &a, follower).await;
    let (status, _) = acquire_as(&cluster, &a, follower, &lease_a, "shared/1").await;
    assert_eq!(status, 200);

    for id in [leader, follower] {
        let keepalive = format!("/v1/leases/{lease_a}/keepalive");
        let (status, _) = call(&cluster, Some(&b), (Method::POST, id, &keepalive), None).await;
        assert_eq!(status, 403, "keepalive through node {id}");
        let batch = (Method::POST, id, "/v1/leases/keepalive");
        let (status, body) = call(
            &cluster,
            Some(&b),
            batch,
            Some(json!({"lease_ids": [lease_a]})),
        )
        .await;
        assert_eq!(
            (status, &body["not_found"][0]),
            (200, &json!(lease_a)),
            "{body}"
        );
        assert_eq!(body["renewed"], json!([]), "{body}");
        let release = (Method::POST, id, "/v1/locks/release");
        let body = json!({"lease_id": lease_a, "name": "shared/1"});
        let (status, _) = call(&cluster, Some(&b), release, Some(body)).await;
        assert_eq!(status, 403, "release through node {id}");
        let (status, _) = acquire_as(&cluster, &b, id, &lease_a, "shared/2").await;
        assert_eq!(status, 403, "acquire under another token's lease");
        let path = format!("/v1/leases/{lease_a}");
        let (status, _) = call(&cluster, Some(&b), (Method::DELETE, id, &path), None).await;
        assert_eq!(status, 403, "revoke through node {id}");
        let (status, body) = call(&cluster, Some(&b), (Method::GET, id, &path), None).await;
        assert_eq!((status, code(&body)), (404, Some("lease_not_found")));
        let (_, list) = call(&cluster, Some(&b), (Method::GET, id, "/v1/leases"), None).await;
        assert_eq!(list["leases"], json!([]), "{list}");
        // B sees that the lock is held, and under which token, not by whom.
        let view_path = "/v1/locks?name=shared/1";
        let (status, view) = call(&cluster, Some(&b), (Method::GET, id, view_path), None).await;
        assert_eq!(status, 200);
        assert!(view["holder"]["fencing_token"].as_u64().is_some(), "{view}");
        assert!(
            !view.to_string().contains(&lease_a),
            "B sees A's lease id: {view}"
        );
        let listing = (Method::GET, id, "/v1/locks?prefix=shared/");
        let (_, list) = call(&cluster, Some(&b), listing, None).await;
        assert!(!list.to_string().contains(&lease_a), "{list}");
        let (_, view) = call(&cluster, Some(&a), (Method::GET, id, view_path), None).await;
        assert_eq!(
            view["holder"]["lease_id"],
            lease_a.as_str(),
            "A sees its own"
        );
        let (_, view) = cluster.get(id, view_path).await;
        assert_eq!(
            view["holder"]["lease_id"],
            lease_a.as_str(),
            "root sees all"
        );
    }
    // Nor in the lock's history, nor in a deadlock's cycle.
    let history = (Method::GET, follower, "/v1/locks/history?name=shared/1");
    let (status, body) = call(&cluster, Some(&b), history.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains(&lease_a),
        "history shows A's lease: {body}"
    );
    let (_, body) = call(&cluster, Some(&a), history, None).await;
    assert!(
        body.to_string().contains(&lease_a),
        "A sees its own in the history"
    );
    let lease_b = lease_as(&cluster, &b, leader).await;
    let (status, _) = acquire_as(&cluster, &b, leader, &lease_b, "dl/b").await;
    assert_eq!(status, 200);
    let wait = json!({"lease_id": lease_a, "name": "dl/b", "wait_ms": 20_000});
    let waiter = tokio::spawn({
        let request = plain()
            .post(cluster.url(leader, "/v1/locks/acquire"))
            .bearer_auth(&a);
        send(request, Some(wait), None)
    });
    cluster.wait_queued(leader, "dl/b", 1).await;
    let closing = json!({"lease_id": lease_b, "name": "shared/1", "wait_ms": 1_000});
    let acquire = (Method::POST, leader, "/v1/locks/acquire");
    let (status, body) = call(&cluster, Some(&b), acquire, Some(closing)).await;
    assert_eq!((status, code(&body)), (409, Some("deadlock")), "{body}");
    assert!(
        !body.to_string().contains(&lease_a),
        "the cycle shows A's lease: {body}"
    );
    let release = json!({"lease_id": lease_b, "name": "dl/b"});
    let (status, _) = call(
        &cluster,
        Some(&b),
        (Method::POST, leader, "/v1/locks/release"),
        Some(release),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = waiter.await.expect("the waiter");
    assert_eq!(status, 200, "A's wait is granted");

    let path = format!("/v1/leases/{lease_a}");
    let (status, _) = call(&cluster, Some(&a), (Method::DELETE, follower, &path), None).await;
    assert_eq!(status, 200, "A revokes its own lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_and_tokens_survive_a_restart_and_a_snapshot() {
    let mut cluster = Cluster::start_auth(3, ROOT, &["--snapshot-logs", "20"]).await;
    let quotas = json!({"leases_max": 2, "holds_max": 2, "kv_keys_max": 1});
    let small = add_token(
        &cluster,
        2,
        json!({"name": "small", "permissions": [lock_write("")], "quotas": quotas}),
    )
    .await;
    let first = lease_as(&cluster, &small, 1).await;
    let _second = lease_as(&cluster, &small, 2).await;
    let grant = (Method::POST, 3, "/v1/leases");
    let (status, body) = call(
        &cluster,
        Some(&small),
        grant,
        Some(json!({"ttl_ms": 30_000})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (429, Some("limit_reached")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("quota"),
        "{body}"
    );
    for name in ["q/1", "q/2"] {
        let (status, _) = acquire_as(&cluster, &small, 1, &first, name).await;
        assert_eq!(status, 200);
    }
    let (status, body) = acquire_as(&cluster, &small, 1, &first, "q/3").await;
    assert_eq!(
        (status, code(&body)),
        (429, Some("limit_reached")),
        "{body}"
    );

    // Past a snapshot (20 entries), then every node restarted.
    let filler = cluster.lease(1, 30_000).await;
    for i in 0..30 {
        let (status, _) = cluster.acquire(1, &filler, &format!("fill/{i}"), 0).await;
        assert_eq!(status, 200);
    }
    cluster.restart_all();
    cluster.wait_leader().await;
    let grant = (Method::POST, 2, "/v1/leases");
    let (status, _) = call(
        &cluster,
        Some(&small),
        grant,
        Some(json!({"ttl_ms": 30_000})),
    )
    .await;
    assert_eq!(status, 429, "the quota counts the leases it had");
    let path = format!("/v1/leases/{first}");
    let (status, _) = call(&cluster, Some(&small), (Method::DELETE, 3, &path), None).await;
    assert_eq!(status, 200, "the token still works after the restart");
    let _third = lease_as(&cluster, &small, 2).await;
    let (status, _) = call(&cluster, None, (Method::GET, 1, "/v1/cluster"), None).await;
    assert_eq!(status, 401, "auth stays on");
}

/// `corral` with the cluster's endpoints and `args`; its exit code, stdout
/// and stderr.
async fn corral(cluster: &Cluster, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .env("CORRAL_ENDPOINTS", cluster.endpoints())
        .env_remove("CORRAL_TOKEN")
        .env_remove("CORRAL_TOKEN_FILE")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("corral runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_and_the_rust_client_send_tokens() {
    let cluster = Cluster::start_auth(3, ROOT, &[]).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let root_file = dir.path().join("root");
    std::fs::write(&root_file, format!("{ROOT}\n")).expect("root token file");
    let root_file = root_file.to_str().expect("a path");

    let add = [
        "--token-file",
        root_file,
        "auth",
        "token",
        "add",
        "jobs",
        "--permission",
        "lock:job/:write",
    ];
    let (code, secret, said) = corral(&cluster, &add).await;
    assert_eq!(code, 0, "add: {said}");
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("corral_"), "{secret}");
    let (code, listed, _) = corral(
        &cluster,
        &["--token-file", root_file, "auth", "token", "list"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        listed.contains("jobs") && listed.contains("job/"),
        "{listed}"
    );

    // Without a token the CLI says how to give one; with it, it locks.
    let (code, _, said) = corral(&cluster, &["lock", "job/1", "--", "true"]).await;
    assert_ne!(code, 0);
    assert!(said.contains("--token"), "{said}");
    let (code, _, said) = corral(
        &cluster,
        &["--token", &secret, "lock", "job/1", "--", "true"],
    )
    .await;
    assert_eq!(code, 0, "lock with the token: {said}");
    let (code, _, said) = corral(
        &cluster,
        &["--token", &secret, "lock", "refund/1", "--", "true"],
    )
    .await;
    assert_ne!(code, 0, "a lock outside the token's prefix: {said}");

    // The Rust client.
    let endpoints: Vec<String> = cluster
        .live()
        .iter()
        .map(|id| cluster.url(*id, ""))
        .collect();
    let client = corral_client::Client::new(endpoints.clone())
        .expect("a client")
        .with_token(secret.clone())
        .expect("a token");
    let lease = client
        .grant_lease(std::time::Duration::from_secs(10))
        .await
        .expect("a lease");
    let name = |s: &str| corral_client::LockName::new(s).expect("a name");
    let guard = lease
        .try_lock(&name("job/2"))
        .await
        .expect("job/2 is allowed");
    guard.release().await.expect("released");
    let refused = lease.try_lock(&name("refund/2")).await;
    assert!(
        matches!(refused, Err(corral_client::Error::PermissionDenied(_))),
        "{refused:?}"
    );
    let anonymous = corral_client::Client::new(endpoints).expect("a client");
    let refused = anonymous
        .grant_lease(std::time::Duration::from_secs(10))
        .await;
    assert!(
        matches!(refused, Err(corral_client::Error::Unauthenticated(_))),
        "{:?}",
        refused.err()
    );

    let revoke = ["--token-file", root_file, "auth", "token", "revoke", "jobs"];
    let (code, _, said) = corral(&cluster, &revoke).await;
    assert_eq!(code, 0, "revoke: {said}");
    let (code, _, _) = corral(
        &cluster,
        &["--token", &secret, "lock", "job/3", "--", "true"],
    )
    .await;
    assert_ne!(code, 0, "a revoked token");
}
