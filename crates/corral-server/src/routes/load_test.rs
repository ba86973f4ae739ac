//! `POST /test/load` through the router in process, on a one-node cluster
//! that leads: it runs real cycles, leaves no lease or lock behind, keeps
//! to its limits, and is not there without `--test-faults`.

use std::sync::Arc;

use serde_json::Value;

use crate::node::Node;
use crate::test_support::{default_config, lead_alone, send_json, uninitialized_node, TempDir};

/// Sends `POST /test/load` with `body`; the status and the body as JSON.
async fn load(router: &axum::Router, body: &str) -> (u16, Value) {
    let (status, text) = send_json(router, "POST", "/test/load", body).await;
    (status, serde_json::from_str(&text).expect("a JSON body"))
}

async fn node_with_faults(dir: &TempDir) -> Arc<Node> {
    let mut config = default_config(&dir.0);
    config.test_faults = true;
    let node = crate::start_node(&config).await.expect("the node starts");
    Arc::new(node)
}

#[tokio::test]
async fn a_load_run_cycles_and_leaves_nothing_behind() {
    let dir = TempDir::new("load-route");
    let node = node_with_faults(&dir).await;
    lead_alone(&node).await;
    let router = super::router(node.clone());
    let mut granted = 0;
    for contended in [false, true] {
        let body = format!(r#"{{"workers":4,"duration_ms":300,"contended":{contended}}}"#);
        let (status, report) = load(&router, &body).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["workers"], 4);
        assert_eq!(report["on_leader"], true, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        let cycles = report["cycles"].as_u64().expect("cycles");
        assert!(cycles >= 4, "{report}");
        granted += cycles;
        assert!(report["acquire_p50_ms"].as_f64() > Some(0.0), "{report}");
        assert!(report["release_p50_ms"].as_f64() > Some(0.0), "{report}");
        let state = node.state.read();
        assert_eq!(state.table.lease_count(), 0, "a worker's lease is left");
        let held = state.table.locks_with_prefix("test-load/").count();
        assert_eq!(held, 0, "a lock is left in use");
    }
    // Each acquire went the acquire route's way, and is counted as the route's are.
    let (_, metrics) = send_json(&router, "GET", "/metrics", "").await;
    let counted = format!(
        "corral_acquire_duration_seconds_count{{kind=\"lock\",outcome=\"granted\"}} {granted}\n"
    );
    assert!(metrics.contains(&counted), "{counted} not in {metrics}");
}

#[tokio::test]
async fn a_load_run_keeps_to_its_limits() {
    let dir = TempDir::new("load-route-limits");
    let node = node_with_faults(&dir).await;
    let router = super::router(node);
    for body in [
        r#"{"workers":0,"duration_ms":100}"#,
        r#"{"workers":257,"duration_ms":100}"#,
        r#"{"workers":1,"duration_ms":0}"#,
        r#"{"workers":1,"duration_ms":60001}"#,
    ] {
        let (status, answer) = load(&router, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_argument", "{answer}");
    }
}

#[tokio::test]
async fn without_test_faults_there_is_no_load_route() {
    let dir = TempDir::new("load-route-off");
    let node = uninitialized_node(&dir).await;
    let router = super::router(node);
    let (status, answer) = load(&router, r#"{"workers":1,"duration_ms":100}"#).await;
    assert_eq!(status, 404, "{answer}");
}
