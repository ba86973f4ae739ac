//! What the crate's tests share: a temporary data folder, and a one-node
//! raft on RocksDB in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use corral_raft::{Faults, RaftSettings, ReplicatedNode};

use crate::metrics::Metrics;

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
        reqwest::Client::new(),
        Faults::default(),
        Arc::new(|_| {}),
        metrics.store.clone(),
    )
    .await
    .expect("raft starts")
}
