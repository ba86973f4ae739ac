//! openraft's storage conformance suite, run against the RocksDB stores,
//! and the log's own durability tests.

use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::alias::LeaderIdOf;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::StorageError;

use crate::log_store::LogStore;
use crate::metrics::StoreMetrics;
use crate::rocks::test_disk;
use crate::state_machine::{Notice, StateMachineStore};
use crate::type_config::{Entry, LogId, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::TempDir::new()
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let db = test_disk(dir.path());
        let log = LogStore::new(db.clone());
        let sm = StateMachineStore::open(db, Arc::new(|_: Notice<'_>| {}), StoreMetrics::default())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_the_openraft_suite() {
    Suite::test_all(RocksBuilder).await.expect("storage suite");
}

/// Appends entries `first..=last`, and waits until they are durable.
async fn append_synced(log: &mut LogStore, first: u64, last: u64) {
    let entries = (first..=last).map(|index| {
        Entry::new_blank(LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, 1),
            index,
        ))
    });
    let (synced, on_sync) = TypeConfig::oneshot();
    log.append(entries, IOFlushed::signal(synced))
        .await
        .expect("append");
    on_sync.await.expect("flusher").expect("sync");
}

#[tokio::test]
async fn a_log_written_over_recycled_wal_files_reads_back_whole_after_reopening() {
    // Enough entries to fill the log's memtable several times, so that WAL
    // files are flushed, recycled and written over.
    const LAST: u64 = 200_000;
    let dir = tempfile::TempDir::new().expect("temp dir");
    {
        let db = test_disk(dir.path());
        let mut log = LogStore::new(db);
        for first in (1..=LAST).step_by(2_000) {
            append_synced(&mut log, first, first + 1_999).await;
        }
    }
    let rocks_log = std::fs::read_to_string(dir.path().join("LOG")).expect("RocksDB's LOG");
    assert!(
        rocks_log.contains("reusing log"),
        "no WAL file was written over"
    );

    let db = test_disk(dir.path());
    let mut log = LogStore::new(db);
    let entries = log.try_get_log_entries(1..=LAST).await.expect("read");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (1..=LAST).collect::<Vec<_>>());
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id.map(|id| id.index), Some(LAST));
}
