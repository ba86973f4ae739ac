//! The openraft type configuration of corral.

use corral_state::{Proposal, Response};

openraft::declare_raft_types!(
    /// Raft types of corral: log entries carry [`Proposal`]s, applying one
    /// answers a [`Reply`].
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        AsyncRuntime = crate::runtime::CorralRuntime,
);

/// A node's id in the cluster.
pub type NodeId = u64;

/// What applying one log entry answers: the lock table's response to a
/// proposal, or nothing for raft's own entries (blank and membership).
pub type Reply = Option<Response>;

/// A corral raft node.
pub type CorralRaft = openraft::Raft<TypeConfig, crate::StateMachineStore>;

/// Raft's log id in this configuration.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// Raft's vote in this configuration.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A log entry in this configuration.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// Membership as stored with the applied state and in snapshots.
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata in this configuration.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot whose data is the serialized lock table.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A snapshot's data: its chunks on the node's disk.
pub type SnapshotData = crate::snapshot_store::SnapshotChunks;
