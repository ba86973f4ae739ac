//! Observability on a real 3-node cluster: Prometheus metrics, request ids
//! carried through forwarding, the lease list, and the alert rules checked
//! by promtool. The status page's browser test is in `tests/ui.rs`.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use std::time::Duration;

use harness::{token, Cluster};
use serde_json::{json, Value};

/// The value of the sample `series` (name and labels exactly as rendered),
/// if the text has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split(' ').next()?.parse().ok())
}

async fn metrics(cluster: &Cluster, id: u64) -> String {
    let response = cluster
        .http
        .get(cluster.url(id, "/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap_or("");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("metrics text")
}

/// Polls a node's metrics until `series` has the value `want` (followers
/// apply a little after the leader).
async fn until_sample(cluster: &Cluster, id: u64, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(cluster, id).await;
        let got = sample(&text, series);
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {id}: {series} is {got:?}, not {want}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_acquires_holds_refusals_expiries_and_raft() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let node = cluster.live().into_iter().find(|id| *id != leader).unwrap();

    let a = cluster.lease(node, 30_000).await;
    let b = cluster.lease(node, 30_000).await;
    let (status, grant) = cluster.acquire(node, &a, "obs/a", 0).await;
    assert_eq!(status, 200, "{grant}");
    let first = token(&grant);
    let (status, _) = cluster.acquire(node, &b, "obs/a", 0).await;
    assert_eq!(status, 409, "busy");
    let (status, body) = cluster.acquire(node, &b, "obs/a", 300).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("wait_timeout"))
    );
    let (status, _) = cluster
        .post(node, &format!("/v1/leases/{a}/keepalive"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = cluster.release(node, &a, "obs/a").await;
    assert_eq!(status, 200);
    // b takes the lock and writes; a's write under the old token is stale.
    let (status, grant) = cluster.acquire(node, &b, "obs/a", 0).await;
    assert_eq!(status, 200);
    let write = |token: u64| json!({ "key": "obs/k", "value": "v", "fence": { "lock": "obs/a", "fencing_token": token } });
    let (status, body) = cluster
        .request(
            reqwest::Method::PUT,
            node,
            "/v1/kv",
            Some(write(token(&grant))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cluster
        .request(reqwest::Method::PUT, node, "/v1/kv", Some(write(first)))
        .await;
    assert_eq!(status, 409, "{body}");

    // Counted where the requests were taken.
    let text = metrics(&cluster, node).await;
    let count = |labels: &str| {
        sample(
            &text,
            &format!("corral_acquire_duration_seconds_count{{{labels}}}"),
        )
    };
    assert_eq!(
        count(r#"kind="lock",outcome="granted""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(count(r#"kind="lock",outcome="busy""#), Some(1.0));
    assert_eq!(count(r#"kind="lock",outcome="timeout""#), Some(1.0));
    assert_eq!(
        sample(&text, r#"corral_keepalives_total{result="acked"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"corral_refusals_total{reason="stale_token"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"corral_http_requests_total{route="/v1/locks/acquire",method="POST",status="409"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(text.contains("# TYPE corral_raft_log_fsync_seconds histogram"));
    assert!(text.ends_with("# EOF\n"));

    // Counted from the log, alike on every node.
    for id in cluster.live() {
        until_sample(
            &cluster,
            id,
            r#"corral_hold_duration_seconds_count{kind="lock"}"#,
            1.0,
        )
        .await;
        until_sample(&cluster, id, "corral_leases", 2.0).await;
        until_sample(&cluster, id, r#"corral_held{kind="lock"}"#, 1.0).await;
        let text = metrics(&cluster, id).await;
        assert!(sample(&text, "corral_raft_term").unwrap_or(0.0) >= 1.0);
        assert!(sample(&text, "corral_raft_applied_index").unwrap_or(0.0) >= 8.0);
        assert_eq!(sample(&text, "corral_raft_has_leader"), Some(1.0));
        assert!(sample(&text, "corral_raft_log_fsync_seconds_count").unwrap_or(0.0) > 0.0);
        let leads = sample(&text, "corral_raft_is_leader");
        assert_eq!(leads, Some(if id == leader { 1.0 } else { 0.0 }));
    }

    // The lease list shows both leases and what they hold.
    let (status, list) = cluster.get(node, "/v1/leases").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["truncated"], false);
    let leases = list["leases"].as_array().expect("leases");
    assert_eq!(leases.len(), 2);
    let holder = leases
        .iter()
        .find(|l| l["lease_id"] == b.as_str())
        .expect("b");
    assert_eq!(holder["locks"][0]["name"], "obs/a");

    // An expiry (the shortest ttl, never renewed) is counted on every node.
    let short = cluster.lease(node, 3_000).await;
    let (status, _) = cluster.acquire(node, &short, "obs/short", 0).await;
    assert_eq!(status, 200);
    for id in cluster.live() {
        until_sample(&cluster, id, "corral_lease_expirations_total", 1.0).await;
        until_sample(
            &cluster,
            id,
            r#"corral_hold_duration_seconds_count{kind="lock"}"#,
            2.0,
        )
        .await;
    }
}

/// The queue counters and gauges, on every node: an item enqueued,
/// claimed, refused to a stale token and acked; another left ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_queue_items_on_every_node() {
    let cluster = Cluster::start(3).await;
    let node = cluster.wait_leader().await;
    let lease = cluster.lease(node, 60_000).await;
    for n in 0..2 {
        let item = serde_json::json!({ "payload": n });
        let (status, _) = cluster.post(node, "/v1/queues/obs-q/items", item).await;
        assert_eq!(status, 201);
    }
    let claim = serde_json::json!({ "lease_id": lease, "visibility_ms": 60_000 });
    let (status, claimed) = cluster.post(node, "/v1/queues/obs-q/claim", claim).await;
    assert_eq!(status, 200, "{claimed}");
    let item = &claimed["items"][0];
    let token = item["fencing_token"].as_u64().expect("a token");
    let stale = serde_json::json!({ "item_id": item["item_id"], "fencing_token": token + 1 });
    let (status, _) = cluster.post(node, "/v1/queues/obs-q/ack", stale).await;
    assert_eq!(status, 409);
    let ack =
        serde_json::json!({ "item_id": item["item_id"], "fencing_token": item["fencing_token"] });
    let (status, _) = cluster.post(node, "/v1/queues/obs-q/ack", ack).await;
    assert_eq!(status, 200);
    for id in cluster.live() {
        let items = |event: &str| format!(r#"corral_queue_items_total{{event="{event}"}}"#);
        until_sample(&cluster, id, &items("enqueued"), 2.0).await;
        until_sample(&cluster, id, &items("claimed"), 1.0).await;
        until_sample(&cluster, id, &items("stale_refused"), 1.0).await;
        until_sample(&cluster, id, &items("acked"), 1.0).await;
        until_sample(&cluster, id, r#"corral_queue_ready{queue="obs-q"}"#, 1.0).await;
    }
}

/// Whether a JSON log has a line inside the span of request `id` on
/// `route`. Every line must be a JSON object.
fn logged(log: &str, id: &str, route: &str) -> bool {
    log.lines().any(|line| {
        let line: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        line["spans"].as_array().is_some_and(|spans| {
            spans
                .iter()
                .any(|s| s["name"] == "request" && s["id"] == id && s["route"] == route)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_is_answered_and_logged_by_the_leader_it_was_forwarded_to() {
    let cluster = Cluster::start_logging(
        3,
        &["--log-format", "json"],
        "info,openraft=warn,corral_server=debug",
    )
    .await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();

    let response = cluster
        .http
        .post(cluster.url(follower, "/v1/leases"))
        .header("x-request-id", "trace-me-7f3a")
        .json(&json!({ "ttl_ms": 30_000 }))
        .send()
        .await
        .expect("grant");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "trace-me-7f3a");

    // The follower forwarded the command; the leader logged it under the
    // same id, on the route of the forwarded call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if logged(
            &cluster.log_of(leader),
            "trace-me-7f3a",
            "/raft/propose-stream",
        ) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader's log has no line with the request id\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged(
        &cluster.log_of(follower),
        "trace-me-7f3a",
        "/v1/leases"
    ));

    // Without one, the node makes one up and answers with it.
    let response = cluster
        .http
        .get(cluster.url(follower, "/v1/cluster"))
        .send()
        .await
        .expect("cluster");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16, "{id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["node_id"], follower);
}

/// The alert rules load, and their unit tests pass (promtool comes with
/// the Debian package `prometheus`, which `deploy/setup.sh` installs).
#[test]
fn alert_rules_pass_promtool() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus");
    let promtool = |args: &[&str]| {
        std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
    };
    let output = match promtool(&["check", "rules", "alerts.yml"]) {
        Ok(output) => output,
        Err(e) if std::env::var_os("CORRAL_SKIP_PROMTOOL").is_some() => {
            eprintln!("skipped: promtool not runnable ({e}) and CORRAL_SKIP_PROMTOOL is set");
            return;
        }
        Err(e) => panic!(
            "promtool not runnable ({e}): run deploy/setup.sh as root, or apt-get install prometheus"
        ),
    };
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 8 rules found"), "{text}");
    let output = promtool(&["test", "rules", "alerts_test.yml"]).expect("promtool");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
}
