//! Bad input gets a 4xx with a code and a message naming the field,
//! changes nothing, and never takes a node down.

mod harness;

use harness::{code, Cluster};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_input_is_refused_with_a_named_field() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    let long_name = "n".repeat(513);
    let cases: Vec<(&str, &str, Value, u16, &str, &str)> = vec![
        (
            "/v1/leases",
            "",
            json!({}),
            400,
            "invalid_argument",
            "ttl_ms",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": "10s"}),
            400,
            "invalid_argument",
            "ttl_ms",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": 10}),
            400,
            "invalid_argument",
            "ttl_ms",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": 86_400_001u64}),
            400,
            "invalid_argument",
            "ttl_ms",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": -5}),
            400,
            "invalid_argument",
            "ttl_ms",
        ),
        (
            "/v1/locks/acquire",
            "",
            json!({"name": "a"}),
            400,
            "invalid_argument",
            "lease_id",
        ),
        (
            "/v1/locks/acquire",
            "",
            json!({"lease_id": "xyz", "name": "a"}),
            400,
            "invalid_argument",
            "lease_id",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": ""}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": long_name}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": "a\u{7}b"}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": 7}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": "a", "wait_ms": 60_001}),
            400,
            "invalid_argument",
            "wait_ms",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": "a", "wait_ms": -1}),
            400,
            "invalid_argument",
            "wait_ms",
        ),
        (
            "/v1/locks/release",
            "L",
            json!({"name": ""}),
            400,
            "invalid_argument",
            "name",
        ),
        (
            "/v1/locks/release",
            "",
            json!({"name": "a"}),
            400,
            "invalid_argument",
            "lease_id",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": 30_000, "lock_delay_ms": 60_001}),
            400,
            "invalid_argument",
            "lock_delay_ms",
        ),
        (
            "/v1/leases",
            "",
            json!({"ttl_ms": 30_000, "lock_order": "random"}),
            400,
            "invalid_argument",
            "lock_order",
        ),
        (
            "/v1/locks/acquire",
            "L",
            json!({"name": "a", "mode": "upgradable"}),
            400,
            "invalid_argument",
            "mode",
        ),
        (
            "/v1/locks/acquire-all",
            "L",
            json!({"names": []}),
            400,
            "invalid_argument",
            "names",
        ),
        (
            "/v1/locks/acquire-all",
            "L",
            json!({"names": ["a", "b", "a"]}),
            400,
            "invalid_argument",
            "names",
        ),
        (
            "/v1/locks/acquire-all",
            "L",
            json!({"names": ["a", ""]}),
            400,
            "invalid_argument",
            "names",
        ),
        (
            "/v1/semaphores/acquire",
            "L",
            json!({"name": "s"}),
            400,
            "invalid_argument",
            "limit",
        ),
        (
            "/v1/semaphores/acquire",
            "L",
            json!({"name": "s", "limit": 0}),
            400,
            "invalid_argument",
            "limit",
        ),
        (
            "/v1/semaphores/acquire",
            "L",
            json!({"name": "s", "limit": 10_001}),
            400,
            "invalid_argument",
            "limit",
        ),
        (
            "/v1/semaphores/acquire",
            "L",
            json!({"name": "s", "limit": 2, "permits": 3}),
            400,
            "invalid_argument",
            "permits",
        ),
        (
            "/v1/semaphores/acquire",
            "L",
            json!({"name": "s", "limit": 2, "permits": 0}),
            400,
            "invalid_argument",
            "permits",
        ),
        (
            "/v1/semaphores/release",
            "L",
            json!({}),
            400,
            "invalid_argument",
            "name",
        ),
    ];
    for (path, with_lease, mut body, status, expected_code, field) in cases {
        if with_lease == "L" {
            body["lease_id"] = json!(lease);
        }
        for node in [1, 2] {
            let (got, reply) = cluster.post(node, path, body.clone()).await;
            assert_eq!(got, status, "{path} {body} -> {reply}");
            assert_eq!(
                code(&reply).unwrap_or_default(),
                expected_code,
                "{path} {body}"
            );
            let message = reply["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(field),
                "message names `{field}`: {message}"
            );
        }
    }

    // Not JSON at all, and an empty body.
    for raw in ["{", "not json", "", "[1,2]"] {
        let (status, reply) = cluster
            .post_raw(2, "/v1/locks/acquire", raw.to_string())
            .await;
        assert_eq!(status, 400, "{raw:?} -> {reply}");
        assert_eq!(code(&reply).unwrap_or_default(), "invalid_argument");
    }
    // Bodies over 64 KiB.
    let huge = format!(
        r#"{{"lease_id":"{lease}","name":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, reply) = cluster.post_raw(3, "/v1/locks/acquire", huge).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(code(&reply).unwrap_or_default(), "body_too_large");

    // Bad path and query parameters.
    let (status, reply) = cluster
        .post(1, "/v1/leases/nothex/keepalive", json!({}))
        .await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (400, "invalid_argument")
    );
    let (status, reply) = cluster.get(1, "/v1/leases/0123").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (400, "invalid_argument")
    );
    let (status, reply) = cluster.get(2, "/v1/locks?name=").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (400, "invalid_argument")
    );
    let (status, reply) = cluster.get(2, "/v1/locks").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (400, "invalid_argument")
    );
    let (status, reply) = cluster.get(2, "/v1/semaphores?name=a&prefix=b").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (400, "invalid_argument")
    );
    let (status, reply) = cluster.get(2, "/v1/nowhere").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (404, "not_found")
    );
    let (status, reply) = cluster.get(2, "/v1/locks/acquire").await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (405, "method_not_allowed")
    );

    // Unknown leases are 404, not 400.
    let unknown = "0".repeat(32);
    let (status, reply) = cluster.acquire(3, &unknown, "a", 0).await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (404, "lease_not_found")
    );
    let (status, reply) = cluster
        .post(3, &format!("/v1/leases/{unknown}/keepalive"), json!({}))
        .await;
    assert_eq!(
        (status, code(&reply).unwrap_or_default()),
        (404, "lease_not_found")
    );

    // Nothing changed, and every node still serves.
    let (status, listed) = cluster.get(3, "/v1/locks?prefix=").await;
    assert_eq!(status, 200);
    assert_eq!(listed["locks"], json!([]));
    assert_eq!(listed["truncated"], false);
    for node in [1, 2, 3] {
        assert_eq!(cluster.get(node, "/healthz").await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_leader_means_503_within_a_bounded_time() {
    let mut cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    cluster.kill(2);
    cluster.kill(3);
    let started = std::time::Instant::now();
    let (status, reply) = cluster.acquire(1, &lease, "alone", 0).await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(code(&reply).unwrap_or_default(), "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let (status, _) = cluster.get(1, "/readyz").await;
    assert!(status == 503 || status == 200);
}
