//! What the storage layer measures: log fsyncs and snapshots. The server
//! registers these with the rest of a node's metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Storage measurements of one node. Clones share the same values.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Time of each raft log WAL sync (one per batch of appends).
    pub log_fsync: Histogram,
    /// Snapshots this node built.
    pub snapshots_built: Counter,
    /// Snapshots this node installed from a leader.
    pub snapshots_installed: Counter,
    /// Time of each snapshot this node built: the table copied, encoded and
    /// synced to disk.
    pub snapshot_build: Histogram,
    /// Time each snapshot build held the state lock while it encoded the
    /// table: writes wait for it (reads do not).
    pub snapshot_locked: Histogram,
    /// Size of the last snapshot this node built, in bytes: what it stores
    /// and sends to a follower that lags past its log.
    pub snapshot_bytes: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> StoreMetrics {
        StoreMetrics {
            // 50 µs to about 3.3 s.
            log_fsync: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            snapshots_built: Counter::default(),
            snapshots_installed: Counter::default(),
            // 1 ms to about 65 s: a table of a million leases builds in
            // seconds.
            snapshot_build: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            snapshot_locked: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            snapshot_bytes: Gauge::default(),
        }
    }
}

impl StoreMetrics {
    /// Adds these metrics to `registry` (whose prefix is `corral`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "raft_log_fsync",
            "Time of one raft log WAL sync, which makes a batch of appends durable",
            Unit::Seconds,
            self.log_fsync.clone(),
        );
        registry.register(
            "raft_snapshots_built",
            "Snapshots this node built",
            self.snapshots_built.clone(),
        );
        registry.register(
            "raft_snapshots_installed",
            "Snapshots this node installed from a leader",
            self.snapshots_installed.clone(),
        );
        registry.register_with_unit(
            "raft_snapshot_build",
            "Time to build one snapshot: copy the table, encode it, sync it to disk",
            Unit::Seconds,
            self.snapshot_build.clone(),
        );
        registry.register_with_unit(
            "raft_snapshot_locked",
            "Time one snapshot build held the state lock to encode the table; writes wait for it",
            Unit::Seconds,
            self.snapshot_locked.clone(),
        );
        registry.register_with_unit(
            "raft_snapshot",
            "Size of the last snapshot this node built",
            Unit::Bytes,
            self.snapshot_bytes.clone(),
        );
    }
}
