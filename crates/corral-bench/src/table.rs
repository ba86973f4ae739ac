//! The lock table at scale, in this process: how much memory a lease
//! holding one lock costs, and how long a snapshot of the table takes to
//! encode and decode. No cluster and no network: these are the state
//! machine's own costs, which a node pays on top of its fixed ones.

use std::time::Instant;

use corral_raft::codec::{CodecError, Encoding};
use corral_state::{Command, LeaseId, LockName, LockTable, Mode, Proposal};
use serde::{Deserialize, Serialize};

/// What one size of table measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableReport {
    /// Leases, each holding one lock of its own.
    pub leases: usize,
    /// Growth of this process's resident memory while the table was
    /// built, per lease and its lock, in bytes.
    pub rss_bytes_per_lease: f64,
    /// Applying the grants and acquires, in seconds.
    pub apply_seconds: f64,
    /// The snapshot's size (the table as written to disk and sent to a
    /// follower), in bytes.
    pub snapshot_bytes: usize,
    /// Encoding the snapshot, in seconds.
    pub encode_seconds: f64,
    /// Decoding it and checking its invariants, as a node restoring or
    /// installing it does, in seconds.
    pub restore_seconds: f64,
}

/// Why the table could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A command of the build was refused: the table's limits are lower
    /// than the size asked for.
    #[error("building the table: {0}")]
    Refused(String),
    /// The snapshot does not encode or decode.
    #[error("snapshot: {0}")]
    Snapshot(#[from] CodecError),
    /// The decoded snapshot breaks an invariant.
    #[error("restored snapshot: {0}")]
    Invalid(String),
}

/// Builds a table of `leases` leases, each holding one lock, and measures
/// it. Lease ids are spread as random ones are; lock names run in order,
/// as invoice numbers do.
pub fn table_scale(leases: usize) -> Result<TableReport, TableError> {
    let before = resident_bytes();
    let started = Instant::now();
    let table = build(leases)?;
    let apply_seconds = started.elapsed().as_secs_f64();
    let grown = resident_bytes().saturating_sub(before);
    let started = Instant::now();
    // In the disk format, as a node writes and sends it.
    let encoding = Encoding::of_format(corral_raft::DISK_FORMAT);
    let snapshot = encoding.encode(&table)?;
    let encode_seconds = started.elapsed().as_secs_f64();
    drop(table);
    let started = Instant::now();
    let restored: LockTable = encoding.decode(&snapshot)?;
    restored
        .check_invariants()
        .map_err(|e| TableError::Invalid(e.to_string()))?;
    let restore_seconds = started.elapsed().as_secs_f64();
    Ok(TableReport {
        leases,
        rss_bytes_per_lease: grown as f64 / leases.max(1) as f64,
        apply_seconds,
        snapshot_bytes: snapshot.len(),
        encode_seconds,
        restore_seconds,
    })
}

fn build(leases: usize) -> Result<LockTable, TableError> {
    let mut table = LockTable::default();
    let start_ms = 1_700_000_000_000u64;
    for i in 0..leases {
        // A multiplicative hash spreads the ids over the whole range.
        let lease_id =
            LeaseId((i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        let now_ms = start_ms + i as u64 / 1_000;
        let grant = Command::GrantLease {
            lease_id,
            ttl_ms: 60_000,
            lock_order: Default::default(),
            lock_delay_ms: 0,
        };
        let name = LockName::new(format!("invoice/{i:010}"))
            .map_err(|e| TableError::Refused(e.to_string()))?;
        let acquire = Command::Acquire {
            lease_id,
            name,
            mode: Mode::Exclusive,
            wait_ms: 0,
        };
        for command in [grant, acquire] {
            let applied = table.apply(Proposal::new(now_ms, command));
            if let Err(refusal) = applied.response {
                return Err(TableError::Refused(refusal.to_string()));
            }
        }
    }
    Ok(table)
}

/// This process's resident memory, in bytes (0 where /proc is missing).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The reports as a markdown table.
pub fn table_markdown(reports: &[TableReport]) -> String {
    let mut out = String::from(
        "| leases (one lock each) | memory per lease and lock | apply | snapshot | encode | decode and check |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {:.0} B | {:.2} s | {:.1} MiB | {:.2} s | {:.2} s |\n",
            r.leases,
            r.rss_bytes_per_lease,
            r.apply_seconds,
            r.snapshot_bytes as f64 / f64::from(1u32 << 20),
            r.encode_seconds,
            r.restore_seconds,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_table_is_measured_and_restores() {
        let report = table_scale(200).expect("measured");
        assert_eq!(report.leases, 200);
        assert!(report.snapshot_bytes > 200 * 50, "{report:?}");
        let table = table_markdown(&[report]);
        assert!(table.contains("| 200 |"), "{table}");
    }
}
