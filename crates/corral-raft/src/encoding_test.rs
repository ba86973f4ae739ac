//! Every value this crate writes to disk or sends to a peer decodes to what
//! was written: log entries of every payload, snapshots of any lock table
//! (every kind of state and of remembered answer), and replication requests
//! framed onto a stream that arrives in chunks of any size. The state
//! machine's values come from strategies derived on its types, so a new
//! variant is covered the day it is added.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use corral_state::{LockTable, Proposal};
use futures::StreamExt;
use openraft::raft::AppendEntriesRequest;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, EntryPayload, Membership};
use proptest::prelude::*;

use crate::codec::Encoding;
use crate::frame::{encode_frame, frames};
use crate::metrics::StoreMetrics;
use crate::rocks::{decode, encode, test_disk};
use crate::state_machine::{Notice, StateMachineStore};
use crate::type_config::{Entry, LogId, TypeConfig, Vote};

fn log_id() -> impl Strategy<Value = LogId> {
    (0u64..1 << 40, 0u64..6, 0u64..1 << 50)
        .prop_map(|(term, node, index)| openraft::testing::log_id::<TypeConfig>(term, node, index))
}

/// Any membership of one or two voter sets (two during a change) and
/// perhaps learners.
fn membership() -> impl Strategy<Value = Membership<u64, BasicNode>> {
    let nodes = prop::collection::btree_map(1u64..9, "[a-z0-9.:-]{1,24}", 1..7);
    (nodes, any::<bool>()).prop_map(|(nodes, joint)| {
        let ids: Vec<u64> = nodes.keys().copied().collect();
        let mut configs = vec![ids.iter().copied().take(3).collect::<BTreeSet<_>>()];
        if joint {
            configs.push(ids.iter().copied().rev().take(3).collect());
        }
        let nodes: BTreeMap<u64, BasicNode> = nodes
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        Membership::new(configs, nodes).expect("every voter is a node")
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        any::<Proposal>().prop_map(EntryPayload::Normal),
        membership().prop_map(EntryPayload::Membership),
    ];
    (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

/// Any replication request; also the valid frames that the frame
/// tests corrupt.
pub(crate) fn append_request() -> impl Strategy<Value = AppendEntriesRequest<TypeConfig>> {
    let entries = prop::collection::vec(entry(), 0..8);
    (
        0u64..1 << 40,
        1u64..6,
        prop::option::of(log_id()),
        prop::option::of(log_id()),
        entries,
    )
        .prop_map(
            |(term, node, prev_log_id, leader_commit, entries)| AppendEntriesRequest {
                vote: Vote::new_committed(term, node),
                prev_log_id,
                leader_commit,
                entries,
            },
        )
}

/// Builds a snapshot of `table` on one store and installs it on another,
/// as a leader does for a lagging follower; returns the follower's table.
async fn through_a_snapshot(table: LockTable) -> LockTable {
    let open = |dir: &tempfile::TempDir| {
        let db = test_disk(dir.path());
        StateMachineStore::open(db, Arc::new(|_: Notice<'_>| {}), StoreMetrics::default())
            .expect("open the state machine")
    };
    let (leader_dir, follower_dir) = (
        tempfile::TempDir::new().unwrap(),
        tempfile::TempDir::new().unwrap(),
    );
    let mut leader = open(&leader_dir);
    leader.set_table(table);
    let snapshot = leader
        .build_snapshot()
        .await
        .expect("a snapshot of any table builds");
    let mut follower = open(&follower_dir);
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("a built snapshot installs");
    let installed = follower.read().table.clone();
    installed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A log entry reads back as it was appended.
    #[test]
    fn any_log_entry_round_trips(entry in entry()) {
        let bytes = encode("log entry", &entry).expect("every entry encodes");
        let decoded: Entry = decode("log entry", &bytes).expect("what was encoded decodes");
        prop_assert_eq!(&decoded, &entry);
        // As an older node wrote it: format 1, JSON.
        let mut json = vec![1];
        Encoding::Json.encode_into(&mut json, &entry).expect("every entry encodes");
        let decoded: Entry = decode("log entry", &json).expect("format 1 decodes");
        prop_assert_eq!(decoded, entry);
    }

    /// A replication request crosses the stream whole, however the bytes
    /// are cut into chunks on the way.
    #[test]
    fn any_append_request_crosses_a_chunked_stream(
        requests in prop::collection::vec(append_request(), 1..4),
        chunk_bytes in 1usize..300,
        binary in any::<bool>(),
    ) {
        let encoding = if binary { Encoding::MessagePack } else { Encoding::Json };
        let mut bytes = Vec::new();
        for request in &requests {
            bytes.extend(encode_frame(encoding, request).expect("every request encodes"));
        }
        let chunks: Vec<Result<Vec<u8>, String>> =
            bytes.chunks(chunk_bytes).map(|c| Ok(c.to_vec())).collect();
        let decoded: Vec<Result<AppendEntriesRequest<TypeConfig>, crate::frame::FrameError>> =
            futures::executor::block_on(frames(encoding, futures::stream::iter(chunks)).collect());
        prop_assert_eq!(decoded.len(), requests.len());
        for (decoded, sent) in decoded.into_iter().zip(&requests) {
            let decoded = decoded.expect("every frame decodes");
            prop_assert_eq!(&decoded.entries, &sent.entries);
            prop_assert_eq!(encode_frame(encoding, &decoded).ok(), encode_frame(encoding, sent).ok());
        }
    }
}

proptest! {
    // Each case opens two databases: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A snapshot of any table, with any remembered answers, installs on
    /// another node as the same table.
    #[test]
    fn any_table_survives_a_snapshot_install(table in any::<LockTable>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let installed = runtime.block_on(through_a_snapshot(table.clone()));
        prop_assert_eq!(installed, table);
    }
}

/// Values are written in [`crate::DISK_FORMAT`] (MessagePack); values of
/// format 1 (a byte, then JSON) and 0 (the JSON alone, as corral wrote
/// before formats were numbered) still read; a newer format is refused
/// with a message that names it.
#[test]
fn disk_formats_read_and_refuse_as_they_should() {
    let table = LockTable::new();
    let written = encode("snapshot data", &table).expect("encodes");
    assert_eq!(written[0], crate::DISK_FORMAT);
    assert_eq!(
        Encoding::of_format(crate::DISK_FORMAT),
        Encoding::MessagePack
    );
    let read: LockTable = decode("snapshot data", &written).expect("format 2 reads");
    assert_eq!(read, table);
    let old = serde_json::to_vec(&table).expect("JSON");
    let read: LockTable = decode("snapshot data", &old).expect("format 0 reads");
    assert_eq!(read, table);
    let format1 = [&[1u8][..], &old].concat();
    let read: LockTable = decode("snapshot data", &format1).expect("format 1 reads");
    assert_eq!(read, table);
    let mut newer = written.clone();
    newer[0] = crate::DISK_FORMAT + 1;
    let refused = decode::<LockTable>("snapshot data", &newer).expect_err("a newer format");
    let said = refused.to_string();
    assert!(
        said.contains("format 3") && said.contains("newer corral"),
        "{said}"
    );
}

/// A snapshot sent to a node older than format 2 is written again in JSON
/// (format 1), which it reads; to a node of format 2 it goes as it is.
#[test]
fn snapshot_data_is_sent_in_a_format_the_peer_reads() {
    let table = LockTable::new();
    let written = encode("snapshot data", &table).expect("encodes");
    let same = crate::rocks::readable_by::<LockTable>(2, "snapshot data", written.clone());
    assert_eq!(same.expect("as it is"), written);
    let old =
        crate::rocks::readable_by::<LockTable>(1, "snapshot data", written).expect("written again");
    assert_eq!(old[0], 1);
    let json: LockTable = serde_json::from_slice(&old[1..]).expect("JSON after the byte");
    assert_eq!(json, table);
}
