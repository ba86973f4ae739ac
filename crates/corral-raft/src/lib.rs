//! Replication for corral.
//!
//! The lock table of `corral-state` is replicated with openraft. This crate
//! holds the thin adapters around it and no lock logic:
//! - [`TypeConfig`]: log entries carry `corral_state::Proposal`s;
//! - [`LogStore`]: the raft log, vote and committed id in RocksDB, with group
//!   commit (one WAL sync for every append that arrived meanwhile), and its
//!   newest entries kept in memory for the reads that follow each append;
//! - [`StateMachineStore`]: the lock table in memory, snapshots in RocksDB;
//! - [`PeerNetwork`]: raft RPCs as HTTP calls to the peers' `/raft/*`
//!   endpoints, bounded by openraft's RPC timeouts;
//! - [`append_stream`]: replication as a pipelined HTTP/2 stream of
//!   [`frame`]s;
//! - [`start`]: opens the database and starts a node;
//! - [`Replica`]: what the server asks of raft (leader, term, status,
//!   writes bound to a term, read index, the peers' RPCs), so that openraft
//!   stays inside this crate;
//! - [`Faults`]: partitions and a slow log sync injected by failure tests
//!   (off by default);
//! - [`StoreMetrics`]: log fsync times and snapshots, for `/metrics`.

pub mod append_stream;
mod faults;
pub mod frame;
mod log_store;
mod log_tail;
mod metrics;
mod network;
mod node;
mod replica;
mod rocks;
mod state_machine;
mod type_config;

#[cfg(test)]
mod encoding_test;
#[cfg(test)]
mod log_store_test;
#[cfg(test)]
mod state_machine_test;

pub use faults::Faults;
pub use log_store::LogStore;
pub use metrics::StoreMetrics;
pub use network::{
    PeerNetwork, RpcReply, SnapshotHeader, SnapshotReply, HEADER_SNAPSHOT, PATH_APPEND,
    PATH_SNAPSHOT, PATH_VOTE,
};
pub use node::{start, RaftSettings, ReplicatedNode, StartError};
pub use replica::{
    AppendReply, AppendRequest, LeaderId, Member, RaftStatus, ReadError, Replica, VoteReply,
    VoteRpc, WaitError, WriteError,
};
pub use rocks::StoreError;
pub use state_machine::{AppliedState, EventSink, Notice, StateMachineStore};
pub use type_config::{
    CorralRaft, Entry, LogId, NodeId, Reply, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote,
};
