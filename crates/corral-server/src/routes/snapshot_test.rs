//! `POST /v1/cluster/snapshot` on a one-node cluster that leads, through
//! the router in process: every call builds a snapshot covering what was
//! applied before it, and the build's size and time show in `/metrics`.

use serde_json::Value;

use crate::test_support::{lead_alone, send_json as send, uninitialized_node, TempDir};

/// The value of the sample `name` in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn each_call_builds_a_snapshot_of_what_was_applied_before_it() {
    let dir = TempDir::new("snapshot-route");
    let node = uninitialized_node(&dir).await;
    lead_alone(&node).await;
    let router = super::super::router(node.clone());
    for round in 1..=2u32 {
        let (status, lease) = send(&router, "POST", "/v1/leases", r#"{"ttl_ms":60000}"#).await;
        assert_eq!(status, 201, "{lease}");
        let applied = node.raft.status().applied_index.expect("applied");
        let (status, built) = send(&router, "POST", "/v1/cluster/snapshot", "").await;
        assert_eq!(status, 200, "{built}");
        let built: Value = serde_json::from_str(&built).expect("JSON");
        assert_eq!(built["node_id"], 1);
        let index = built["snapshot_index"].as_u64().expect("an index");
        assert!(index >= applied, "snapshot at {index}, applied {applied}");
        let (_, metrics) = send(&router, "GET", "/metrics", "").await;
        let builds = sample(&metrics, "corral_raft_snapshot_build_seconds_count");
        assert_eq!(builds, Some(f64::from(round)), "{metrics}");
        let bytes = sample(&metrics, "corral_raft_snapshot_bytes").unwrap_or(0.0);
        assert!(bytes > 100.0, "{metrics}");
    }
}
