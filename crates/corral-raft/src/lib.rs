//! Replication for corral.
//!
//! The lock table of `corral-state` is replicated with openraft. This crate
//! holds the thin adapters around it and no lock logic:
//! - [`TypeConfig`]: log entries carry `corral_state::Proposal`s;
//! - [`Disk`]: where a node keeps its log, metadata and snapshot:
//!   [`RocksDisk`] in a real node, with group commit (one WAL sync for every
//!   append that arrived meanwhile); memory in the simulation;
//! - [`LogStore`]: the raft log, vote and committed id on a disk, reported
//!   durable only after a sync, and its newest entries kept in memory for
//!   the reads that follow each append;
//! - [`StateMachineStore`]: the lock table in memory, snapshots on the disk
//!   in chunks ([`snapshot_store`]), built, sent and installed a chunk at a
//!   time;
//! - [`PeerNetwork`]: raft RPCs as HTTP calls to the peers' `/raft/*`
//!   endpoints, bounded by openraft's RPC timeouts;
//! - [`append_stream`]: replication as a pipelined HTTP/2 stream of
//!   [`frame`]s;
//! - [`start`]: opens the database and starts a node on HTTP peers;
//!   [`start_on`] starts one on any disk and network (the simulation's);
//! - [`Replica`]: what the server asks of raft (leader, term, status,
//!   writes bound to a term, read index, the peers' RPCs), so that openraft
//!   stays inside this crate;
//! - [`Members`]: membership changes on the leader, one at a time;
//! - [`Transport`]: raft's RPCs in corral's types, which the simulation
//!   implements; [`TransportNetwork`] makes openraft's network of one;
//! - [`Faults`]: partitions and a slow log sync injected by failure tests
//!   (off by default);
//! - [`StoreMetrics`]: log fsync times and snapshots, for `/metrics`.

pub mod append_stream;
pub mod codec;
mod disk;
mod faults;
pub mod frame;
mod log_store;
mod log_tail;
mod membership;
mod metrics;
mod network;
mod node;
mod replica;
mod rocks;
mod runtime;
mod snapshot_pace;
pub mod snapshot_store;
mod state_machine;
pub mod tls;
mod transport;
mod type_config;
mod watch;

#[cfg(test)]
mod encoding_test;
#[cfg(test)]
mod log_store_test;
#[cfg(test)]
mod state_machine_test;

pub use disk::{Disk, Durability, Family, KeyValue, Op, SyncDone, Visit};
pub use faults::Faults;
pub use log_store::LogStore;
pub use membership::{MemberProgress, Members, MembershipError};
pub use metrics::StoreMetrics;
pub use network::{
    format_named, ChunkHeader, PeerClients, PeerFormats, PeerIdentity, PeerNetwork, Removal,
    RpcReply, SnapshotHeader, SnapshotReply, CLUSTER_HEADER, FORMAT_HEADER, HEADER_SNAPSHOT,
    HEADER_SNAPSHOT_CHUNK, JSON_PEER_FORMAT, NODE_HEADER, PATH_APPEND, PATH_SNAPSHOT,
    PATH_SNAPSHOT_CHUNK, PATH_VOTE, PEER_FORMAT,
};
pub use node::{raft_config, start, start_on, NodeParts, RaftSettings, ReplicatedNode, StartError};
pub use replica::{
    AppendReply, AppendRequest, LeaderId, Member, RaftStatus, ReadError, Replica, VoteReply,
    VoteRpc, WaitError, WriteError,
};
pub use rocks::{RocksDisk, StoreError, DISK_FORMAT};
pub use runtime::{seed_thread_rng, CorralRuntime};
pub use state_machine::{AppliedState, EventSink, Notice, StateMachineStore};
pub use transport::{PeerUnreachable, Transport, TransportConnection, TransportNetwork};
pub use type_config::{
    CorralRaft, Entry, LogId, NodeId, Reply, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote,
};
