//! What the crate's tests share: a temporary data folder, a one-node raft
//! on RocksDB in it, and a [`Node`] over that raft for the router.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use corral_raft::{Faults, RaftSettings, ReplicatedNode};

use crate::metrics::Metrics;
use crate::node::Node;
use crate::ServerConfig;

/// A data folder of a test, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new empty folder; `name` and the time keep tests apart.
    pub(crate) fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("corral-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts node 1's raft on `dir`, with the default settings and no peers;
/// not initialized, so it has no leader until the caller makes it one.
pub(crate) async fn start_raft(dir: &Path, metrics: &Metrics) -> ReplicatedNode {
    corral_raft::start(
        1,
        dir,
        RaftSettings::default(),
        corral_raft::PeerClients::new(None).expect("peer clients"),
        Faults::default(),
        Arc::new(|_| {}),
        metrics.store.clone(),
    )
    .await
    .expect("raft starts")
}

/// A node as `corral server` starts it with no flags but its data folder,
/// over an uninitialized one-node raft in `dir`: enough for everything the
/// routes check before a request reaches raft, which never gets a leader.
pub(crate) async fn uninitialized_node(dir: &TempDir) -> Arc<Node> {
    let node = crate::start_node(&default_config(&dir.0)).await;
    Arc::new(node.expect("the node starts"))
}

/// [`uninitialized_node`] started with `--auth-root-token-file` holding
/// `secret`, and `--auth-metrics` when `metrics_protected`.
pub(crate) async fn uninitialized_node_with_auth(
    dir: &TempDir,
    secret: &str,
    metrics_protected: bool,
) -> Arc<Node> {
    let file = dir.0.join("root-token");
    std::fs::write(&file, secret).expect("root token file");
    let mut config = default_config(&dir.0.join("data"));
    config.auth_root_token_file = Some(file);
    config.auth_metrics = metrics_protected;
    let node = crate::start_node(&config).await;
    Arc::new(node.expect("the node starts"))
}

/// The configuration of `corral server` run with its defaults (as the
/// cluster tests run it), as node 1 of a cluster of its own on `data_dir`.
pub(crate) fn default_config(data_dir: &Path) -> ServerConfig {
    ServerConfig {
        node_id: 1,
        listen: ([127, 0, 0, 1], 1).into(),
        peer_listen: None,
        advertise: None,
        tls: None,
        peer_tls: None,
        client_connections_max: crate::CLIENT_CONNECTIONS_MAX_DEFAULT,
        header_read_timeout_ms: crate::HEADER_READ_TIMEOUT_MS_DEFAULT,
        data_dir: data_dir.to_path_buf(),
        initial_cluster: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
        join: false,
        raft: RaftSettings::default(),
        lock_order: Vec::new(),
        idempotency_window_ms: crate::IDEMPOTENCY_WINDOW_MS_DEFAULT,
        kv_keys_max: crate::KV_KEYS_MAX_DEFAULT,
        kv_bytes_max: crate::KV_BYTES_MAX_DEFAULT,
        queue_items_max: crate::QUEUE_ITEMS_MAX_DEFAULT,
        queues_max: crate::QUEUES_MAX_DEFAULT,
        auth_root_token_file: None,
        token_quotas: crate::TOKEN_QUOTAS_DEFAULT,
        auth_metrics: false,
        test_faults: false,
        test_clock_offset_ms: 0,
    }
}

/// Makes `node` the leader of a cluster of itself alone, and waits until
/// it leads with its membership committed.
pub(crate) async fn lead_alone(node: &Node) {
    let members = BTreeMap::from([(node.id, "127.0.0.1:1".to_string())]);
    node.raft
        .initialize_once(&members)
        .await
        .expect("initialized");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.raft.members().is_none_or(|m| m.changing) {
        assert!(std::time::Instant::now() < deadline, "the node never led");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends `method path` with the JSON `body` through `router`, in process;
/// the status and the body as text.
pub(crate) async fn send_json(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    let text = String::from_utf8_lossy(&bytes.expect("a body")).into_owned();
    (status, text)
}
