//! openraft's storage conformance suite, run against the RocksDB stores.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;

use crate::log_store::LogStore;
use crate::metrics::StoreMetrics;
use crate::rocks::open_db;
use crate::state_machine::{Notice, StateMachineStore};
use crate::type_config::TypeConfig;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::TempDir::new()
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let db =
            open_db(dir.path()).map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let log = LogStore::new(db.clone(), StoreMetrics::default().log_fsync);
        let sm = StateMachineStore::open(db, Arc::new(|_: Notice<'_>| {}), StoreMetrics::default())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_the_openraft_suite() {
    Suite::test_all(RocksBuilder).await.expect("storage suite");
}
