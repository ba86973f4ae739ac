//! Bad input that takes the state machine or the leader to refuse gets a
//! 4xx with a code, changes nothing, and never takes a node down. What the
//! routes refuse before anything reaches raft (malformed bodies, fields out
//! of bounds, bad paths and queries) is tested in process, without a
//! cluster, in `crates/corral-server/src/routes/input_test.rs`.

mod harness;

use harness::{code, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_leases_are_404_and_change_nothing() {
    let cluster = Cluster::start(3).await;

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
