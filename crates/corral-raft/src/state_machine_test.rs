//! Snapshot storage of the state machine.

use std::sync::Arc;

use corral_state::LockTable;

use crate::metrics::StoreMetrics;
use crate::rocks::{encode, test_disk};
use crate::state_machine::{Notice, StateMachineStore};
use crate::type_config::{SnapshotMeta, TypeConfig};

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 1, index)),
        last_membership: Default::default(),
    }
}

#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = StateMachineStore::open(
        test_disk(dir.path()),
        Arc::new(|_: Notice<'_>| {}),
        StoreMetrics::default(),
    )
    .unwrap();
    let data = encode("snapshot data", &LockTable::new()).unwrap();
    store.write_snapshot(&meta(10), &data).unwrap();
    store.write_snapshot(&meta(5), &data).unwrap();
    let (stored, stored_data) = store.read_snapshot().unwrap().unwrap();
    assert_eq!(stored, meta(10));
    assert_eq!(stored_data, data);
    store.write_snapshot(&meta(12), b"{}").unwrap();
    assert_eq!(store.read_snapshot().unwrap().unwrap().0, meta(12));
}

#[test]
fn a_restart_restores_the_stored_snapshot() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let store = StateMachineStore::open(
            test_disk(dir.path()),
            Arc::new(|_: Notice<'_>| {}),
            StoreMetrics::default(),
        )
        .unwrap();
        store
            .write_snapshot(
                &meta(7),
                &encode("snapshot data", &LockTable::new()).unwrap(),
            )
            .unwrap();
    }
    let store = StateMachineStore::open(
        test_disk(dir.path()),
        Arc::new(|_: Notice<'_>| {}),
        StoreMetrics::default(),
    )
    .unwrap();
    assert_eq!(store.read().last_applied, meta(7).last_log_id);
}
