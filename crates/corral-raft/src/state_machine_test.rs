//! Snapshot storage of the state machine.

use std::sync::Arc;

use corral_state::LockTable;

use crate::metrics::StoreMetrics;
use crate::rocks::{encode, test_disk};
use crate::snapshot_store::{self, SnapshotChunks};
use crate::state_machine::{Notice, StateMachineStore};
use crate::type_config::{SnapshotMeta, TypeConfig};

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 1, index)),
        last_membership: Default::default(),
    }
}

fn open(dir: &tempfile::TempDir) -> StateMachineStore {
    StateMachineStore::open(
        test_disk(dir.path()),
        Arc::new(|_: Notice<'_>| {}),
        StoreMetrics::default(),
    )
    .unwrap()
}

/// The data of an empty table in the disk format, as chunks of `id`.
fn empty_table(store: &StateMachineStore, id: u64) -> SnapshotChunks {
    let data = encode("snapshot data", &LockTable::new()).unwrap();
    snapshot_store::write_whole(store.disk.clone(), id, &data).unwrap()
}

#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = open(&dir);
    store
        .keep_if_newest(&meta(10), &empty_table(&store, 1))
        .unwrap();
    store
        .keep_if_newest(&meta(5), &empty_table(&store, 2))
        .unwrap();
    let (stored, chunks) = store.current_snapshot().unwrap().unwrap();
    assert_eq!((stored, chunks.span.id), (meta(10), 1));
    store
        .keep_if_newest(&meta(12), &empty_table(&store, 3))
        .unwrap();
    let (stored, chunks) = store.current_snapshot().unwrap().unwrap();
    assert_eq!((stored, chunks.span.id), (meta(12), 3));
}

#[test]
fn a_restart_restores_the_stored_snapshot() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let store = open(&dir);
        store
            .keep_if_newest(&meta(7), &empty_table(&store, 1))
            .unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.read().last_applied, meta(7).last_log_id);
}

/// A membership entry retires the ids the one before it had and it has
/// not: the table keeps them, in snapshots too, so they are never members
/// again.
#[tokio::test]
async fn a_membership_change_retires_the_nodes_it_drops() {
    use openraft::storage::RaftStateMachine;
    use openraft::{BasicNode, EntryPayload, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    let dir = tempfile::TempDir::new().unwrap();
    let mut store = StateMachineStore::open(
        test_disk(dir.path()),
        Arc::new(|_: Notice<'_>| {}),
        StoreMetrics::default(),
    )
    .unwrap();
    let membership = |voters: &[&[u64]], nodes: &[u64]| {
        let configs = voters.iter().map(|v| v.iter().copied().collect()).collect();
        let nodes: BTreeMap<u64, BasicNode> = nodes
            .iter()
            .map(|id| (*id, BasicNode::new(format!("127.0.0.1:{id}"))))
            .collect();
        Membership::new(configs, nodes).unwrap()
    };
    let steps = [
        membership(&[&[1, 2, 3]], &[1, 2, 3]),
        membership(&[&[1, 2, 3]], &[1, 2, 3, 4]),
        membership(&[&[1, 2, 3], &[1, 2, 4]], &[1, 2, 3, 4]),
        membership(&[&[1, 2, 4]], &[1, 2, 4]),
    ];
    let entries: Vec<_> = steps
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let entry = crate::type_config::Entry {
                log_id: openraft::testing::log_id::<TypeConfig>(1, 1, i as u64 + 1),
                payload: EntryPayload::Membership(m),
            };
            Ok((entry, None))
        })
        .collect();
    store.apply(futures::stream::iter(entries)).await.unwrap();
    let retired = store.read().table.retired_nodes().clone();
    assert_eq!(retired, BTreeSet::from([3]));
}

/// A table whose encoding spans a few chunks: 4 leases, each holding
/// 10 000 locks of long names (the most a lease may hold).
fn table_of_long_names() -> LockTable {
    use corral_state::{Command, LeaseId, LockName, Mode, Proposal, LOCKS_PER_LEASE_MAX};
    let mut table = LockTable::new();
    let mut apply = |command| {
        let applied = table.apply(Proposal::new(1_700_000_000_000, command));
        assert!(applied.response.is_ok(), "{:?}", applied.response);
    };
    for lease in 1..=4u128 {
        let lease_id = LeaseId(lease);
        apply(Command::GrantLease {
            lease_id,
            ttl_ms: 60_000,
            lock_order: Default::default(),
            lock_delay_ms: 0,
        });
        for n in 0..LOCKS_PER_LEASE_MAX {
            let name = format!("{lease}/{n:05}/{}", "x".repeat(200));
            let name = LockName::new(name).expect("a name");
            let mode = Mode::Exclusive;
            apply(Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms: 0,
            });
        }
    }
    table
}

/// A build whose chunks cannot be stored fails with the disk's error, not
/// the encoder's "the chunk thread stopped", and leaves no snapshot.
#[test]
fn a_build_the_disk_refuses_fails_with_the_disk_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let disk = crate::rocks::FailingWrites::after(test_disk(dir.path()), 0);
    let store =
        StateMachineStore::open(disk, Arc::new(|_: Notice<'_>| {}), StoreMetrics::default())
            .unwrap();
    store.set_table(table_of_long_names());
    let Err(e) = store.encode_snapshot(1) else {
        panic!("the build must fail")
    };
    assert!(e.to_string().contains("the disk is full"), "{e}");
    assert!(store.current_snapshot().unwrap().is_none());
}
