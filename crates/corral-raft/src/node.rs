//! Opening a node's storage and starting its raft instance.

use std::path::Path;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::Fatal;
use openraft::network::{NetSnapshot, RaftNetworkFactory};
use openraft::{Config, SnapshotPolicy};

use crate::disk::Disk;
use crate::faults::Faults;
use crate::log_store::LogStore;
use crate::metrics::StoreMetrics;
use crate::network::{PeerClients, PeerNetwork};
use crate::replica::Replica;
use crate::rocks::{RocksDisk, StoreError};
use crate::snapshot_pace::SnapshotPace;
use crate::state_machine::{EventSink, StateMachineStore};
use crate::transport::{Transport, TransportNetwork};
use crate::type_config::{CorralRaft, NodeId, SnapshotData, TypeConfig};

/// Raft settings of a corral cluster: timing and snapshots.
#[derive(Clone, Copy, Debug)]
pub struct RaftSettings {
    /// How often the leader sends heartbeats; also the bound of one append
    /// RPC.
    pub heartbeat_ms: u64,
    /// The shortest election timeout.
    pub election_timeout_min_ms: u64,
    /// The longest election timeout. Leases may not be shorter than twice
    /// this.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last,
    /// and at least as many as the table holds items; the log before it is
    /// purged, keeping a tenth of this for followers that lag a little.
    pub snapshot_logs: u64,
}

impl Default for RaftSettings {
    fn default() -> RaftSettings {
        RaftSettings {
            heartbeat_ms: 75,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_logs: 50_000,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or read.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The peer network's HTTP client could not be built.
    #[error("peer network: {0}")]
    Network(#[from] reqwest::Error),
    /// The peer TLS files do not load.
    #[error("peer TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The raft configuration is invalid.
    #[error("raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// Raft failed to start or to initialize the cluster.
    #[error("raft: {0}")]
    Raft(String),
    /// The cluster's identity cannot be sent as a header.
    #[error("cluster identity: {0}")]
    ClusterId(String),
}

impl From<Fatal<TypeConfig>> for StartError {
    fn from(e: Fatal<TypeConfig>) -> StartError {
        StartError::Raft(e.to_string())
    }
}

/// A started raft node and the handle to its applied state.
pub struct ReplicatedNode {
    /// The raft instance.
    pub raft: Replica,
    /// The state machine, for reads.
    pub state: StateMachineStore,
}

/// Opens the node's database under `dir` and starts raft, talking to its
/// peers over HTTP.
pub async fn start(
    node_id: NodeId,
    dir: &Path,
    settings: RaftSettings,
    peers: PeerClients,
    faults: Faults,
    events: EventSink,
    metrics: StoreMetrics,
) -> Result<ReplicatedNode, StartError> {
    let disk = RocksDisk::open(dir, metrics.log_fsync.clone(), faults.clone())?;
    let network = PeerNetwork::new(peers, faults);
    let parts = NodeParts {
        disk: Arc::new(disk),
        network,
        events,
        metrics,
    };
    start_with(node_id, raft_config(settings)?, parts).await
}

/// What a node is started on: its disk, its network to the peers (a
/// [`Transport`] for [`start_on`]), and who hears of what it applies. The
/// simulation gives its own disk and transport.
pub struct NodeParts<N> {
    /// Where the log, the metadata and the snapshot are kept.
    pub disk: Arc<dyn Disk>,
    /// How raft's RPCs reach the peers.
    pub network: N,
    /// Told of every applied entry and installed snapshot.
    pub events: EventSink,
    /// Storage measurements.
    pub metrics: StoreMetrics,
}

/// Starts raft on `parts`, whose network is any [`Transport`], with
/// `config` (see [`raft_config`]).
pub async fn start_on<T: Transport>(
    node_id: NodeId,
    config: Config,
    parts: NodeParts<T>,
) -> Result<ReplicatedNode, StartError> {
    let parts = NodeParts {
        disk: parts.disk,
        network: TransportNetwork::new(parts.network),
        events: parts.events,
        metrics: parts.metrics,
    };
    start_with(node_id, config, parts).await
}

async fn start_with<N>(
    node_id: NodeId,
    config: Config,
    parts: NodeParts<N>,
) -> Result<ReplicatedNode, StartError>
where
    N: RaftNetworkFactory<TypeConfig>,
    N::Network: NetSnapshot<TypeConfig, SnapshotData = SnapshotData>,
{
    let log = LogStore::new(parts.disk.clone());
    let disk = parts.disk.clone();
    let mut state = StateMachineStore::open(parts.disk, parts.events, parts.metrics)?;
    // corral paces snapshots by the table's size (see `snapshot_pace`);
    // the policy's count is the least number of entries between two.
    let mut config = config;
    let logs_min = match config.snapshot_policy {
        SnapshotPolicy::LogsSinceLast(logs) => logs,
        SnapshotPolicy::Never => u64::MAX,
    };
    config.snapshot_policy = SnapshotPolicy::Never;
    let last_snapshot = crate::state_machine::log_index(state.read().last_applied);
    state.pace = Arc::new(SnapshotPace::new(logs_min, last_snapshot));
    let raft =
        CorralRaft::new(node_id, Arc::new(config), parts.network, log, state.clone()).await?;
    ask_for_snapshots(&raft, state.pace.clone());
    Ok(ReplicatedNode {
        raft: Replica::new(raft, node_id, disk),
        state,
    })
}

/// Asks openraft for a snapshot whenever the pace wants one, until raft
/// shuts down: its core then drops the metrics' sender, and the task drops
/// its handle, so that a node stopped in a process (the simulation, a
/// test) holds nothing open.
fn ask_for_snapshots(raft: &CorralRaft, pace: Arc<SnapshotPace>) {
    let raft = raft.clone();
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = pace.wanted() => {
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// openraft's configuration for a corral node: `settings`' timing and
/// snapshots, and the choices corral's guarantees rest on (see
/// docs/design.md, "Raft settings and why they are safe").
pub fn raft_config(settings: RaftSettings) -> Result<Config, openraft::ConfigError> {
    Config {
        cluster_name: "corral".into(),
        heartbeat_interval: settings.heartbeat_ms,
        election_timeout_min: settings.election_timeout_min_ms,
        election_timeout_max: settings.election_timeout_max_ms,
        install_snapshot_timeout: 30_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_logs.max(1)),
        max_in_snapshot_log_to_keep: settings.snapshot_logs / 10,
        // Replication starts as soon as an entry is written, not after the
        // rest of the core's inbox: a lone write commits sooner. An entry
        // may then commit on the followers' syncs before the leader's own.
        broadcast_submitted_on_append: Some(true),
        // A restarted leader must win a new term, not resume its old one
        // (openraft's default): its own log sync may have lagged, so after
        // a kill -9 its log can end before entries the cluster committed,
        // and resuming would append other entries under their log ids
        // (issue 17: tokens handed out twice). The vote rule refuses a
        // candidate whose log lacks a committed entry.
        enable_leader_restore: Some(false),
        // A follower's synced log never goes backwards; if it did, a sync
        // lied, and openraft must not quietly refill it. Pinned, not left
        // to a default that may change.
        allow_log_reversion: Some(false),
        ..Default::default()
    }
    .validate()
}
