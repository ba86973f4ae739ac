//! What `corral bench --workload snapshots` measured: a working set of
//! leases, each holding a lock, on a 3-node cluster of its own, and what
//! the cluster's size costs in snapshots: building one on the leader, a
//! new node that joins and installs it, and a follower restarted with its
//! data after a kill -9. The cluster is run by the binary (see its
//! `cli/snapshots.rs`); this holds the report and its table.

use serde::{Deserialize, Serialize};

use crate::keepalive::KeepaliveReport;

/// What one run measured, at one size of working set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotsReport {
    /// `corral`.
    pub target: String,
    /// Leases asked for, each to hold one lock of its own.
    pub leases: usize,
    /// Granting them and taking their locks, as `--workload keepalive
    /// --locks` does (kept 0 s: their ttl outlasts the run).
    pub load: KeepaliveReport,
    /// The last log index the leader's snapshot covers.
    pub snapshot_index: u64,
    /// The snapshot's size, as the leader stores it and sends it to a new
    /// node (its `corral_raft_snapshot_bytes`).
    pub snapshot_bytes: u64,
    /// The leader's build of it: the table copied, encoded and synced (its
    /// `corral_raft_snapshot_build_seconds`), in seconds.
    pub build_seconds: f64,
    /// From asking the leader for the snapshot to its answer that it is
    /// built, in seconds.
    pub snapshot_call_seconds: f64,
    /// From starting a new node with `--join` until it served a
    /// linearizable read of the lock taken after all the others, in
    /// seconds: it was added, received the snapshot, installed it and
    /// applied the log after it.
    pub join_seconds: f64,
    /// Whether the new node installed a snapshot (its
    /// `corral_raft_snapshots_installed_total`), rather than the whole log.
    pub join_installed_snapshot: bool,
    /// From starting the new node until the leader answered its add (it
    /// caught up and was made a voter), in seconds.
    pub add_seconds: f64,
    /// From restarting a follower with its data, after a kill -9, until it
    /// served the same read, in seconds: it restored its own snapshot and
    /// replayed its log after it.
    pub restart_seconds: f64,
}

/// The reports as a markdown table, one row per size.
pub fn snapshots_markdown(reports: &[SnapshotsReport]) -> String {
    let mut out = String::from(
        "| leases (one lock each) | load | snapshot | build | new node serves | add answered | restarted follower serves |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let installed = if r.join_installed_snapshot {
            ""
        } else {
            " (from the log)"
        };
        out.push_str(&format!(
            "| {} | {:.0} s | {:.1} MiB | {:.2} s | {:.2} s{installed} | {:.2} s | {:.2} s |\n",
            r.load.granted,
            r.load.grant_seconds,
            r.snapshot_bytes as f64 / f64::from(1u32 << 20),
            r.build_seconds,
            r.join_seconds,
            r.add_seconds,
            r.restart_seconds,
        ));
    }
    out
}

#[cfg(test)]
#[path = "snapshots_test.rs"]
mod tests;
