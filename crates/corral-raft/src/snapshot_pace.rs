//! When a node builds a snapshot: once the log since its last one holds at
//! least as many entries as the table holds items, and at least
//! `--snapshot-logs`.
//!
//! A snapshot costs time and disk in proportion to the table. With a fixed
//! count of entries (openraft's `LogsSinceLast`), a table filling up to a
//! million leases, each with a lock, built one every 50 000 writes: 41
//! snapshots of up to 450 MB while it filled, with resident memory at
//! three times the table's during the builds. Paced by the table's size, a
//! snapshot costs a bounded amount per applied entry, and the log a
//! restarted node replays is never longer than about the table.
//!
//! Every node paces its own snapshots from its own applied state, as
//! openraft's policy did; the policy itself is `Never`, and the node asks
//! openraft for a snapshot through `trigger().snapshot()`.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The snapshot pace of one node.
#[derive(Debug)]
pub(crate) struct SnapshotPace {
    /// The fewest entries between two snapshots (`--snapshot-logs`).
    logs_min: u64,
    paced: Mutex<Paced>,
    /// Woken when a snapshot is wanted.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Paced {
    /// The log index of the last snapshot built or installed.
    last_snapshot: u64,
    /// The applied index at which a snapshot was last asked for, until one
    /// is built.
    asked_at: Option<u64>,
}

impl SnapshotPace {
    /// A pace of at least `logs_min` entries, from a snapshot at
    /// `last_snapshot` (0: none).
    pub(crate) fn new(logs_min: u64, last_snapshot: u64) -> SnapshotPace {
        SnapshotPace {
            logs_min: logs_min.max(1),
            paced: Mutex::new(Paced {
                last_snapshot,
                asked_at: None,
            }),
            wake: Notify::new(),
        }
    }

    /// Entries were applied up to `applied`, and `items` counts the
    /// table's items: wakes the asker if a snapshot is due. The count is
    /// taken only once `--snapshot-logs` entries were applied since the
    /// last snapshot, so most applies pay for none. Asks once per
    /// threshold: an ask that openraft dropped (a build was under way) is
    /// made again a whole threshold later.
    pub(crate) fn applied(&self, applied: u64, items: impl FnOnce() -> usize) {
        let since = applied.saturating_sub(self.lock().last_snapshot);
        if since < self.logs_min {
            return;
        }
        let threshold = self
            .logs_min
            .max(u64::try_from(items()).unwrap_or(u64::MAX));
        let mut paced = self.lock();
        if applied.saturating_sub(paced.last_snapshot) < threshold {
            return;
        }
        if paced
            .asked_at
            .is_some_and(|at| applied.saturating_sub(at) < threshold)
        {
            return;
        }
        paced.asked_at = Some(applied);
        drop(paced);
        self.wake.notify_one();
    }

    /// A snapshot at `index` was built or installed.
    pub(crate) fn snapshot_at(&self, index: u64) {
        let mut paced = self.lock();
        paced.last_snapshot = paced.last_snapshot.max(index);
        paced.asked_at = None;
    }

    /// Waits until a snapshot is wanted.
    pub(crate) async fn wanted(&self) {
        self.wake.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Paced> {
        // Every change is a plain assignment: a panic cannot leave it half
        // written.
        self.paced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether the pace woke its asker.
    async fn woken(pace: &SnapshotPace) -> bool {
        tokio::time::timeout(Duration::from_millis(50), pace.wanted())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_small_table_snapshots_every_logs_min_entries() {
        let pace = SnapshotPace::new(100, 0);
        pace.applied(99, || 10);
        assert!(!woken(&pace).await);
        pace.applied(100, || 10);
        assert!(woken(&pace).await);
        pace.snapshot_at(100);
        pace.applied(199, || 10);
        assert!(!woken(&pace).await);
        pace.applied(200, || 10);
        assert!(woken(&pace).await);
    }

    #[tokio::test]
    async fn a_large_table_snapshots_once_its_size_was_logged() {
        let pace = SnapshotPace::new(100, 5_000);
        pace.applied(5_000 + 999_999, || 1_000_000);
        assert!(!woken(&pace).await);
        pace.applied(5_000 + 1_000_000, || 1_000_000);
        assert!(woken(&pace).await);
    }

    #[tokio::test]
    async fn an_ask_is_made_again_only_a_threshold_later() {
        let pace = SnapshotPace::new(100, 0);
        pace.applied(100, || 0);
        assert!(woken(&pace).await);
        // Still building: no second ask for every entry applied meanwhile.
        pace.applied(150, || 0);
        assert!(!woken(&pace).await);
        // The ask seems lost: ask again.
        pace.applied(200, || 0);
        assert!(woken(&pace).await);
    }

    #[tokio::test]
    async fn an_installed_snapshot_restarts_the_count() {
        let pace = SnapshotPace::new(100, 0);
        pace.snapshot_at(1_000);
        pace.applied(1_050, || 0);
        assert!(!woken(&pace).await);
        // An older snapshot does not move it back.
        pace.snapshot_at(500);
        pace.applied(1_099, || 0);
        assert!(!woken(&pace).await);
    }
}
