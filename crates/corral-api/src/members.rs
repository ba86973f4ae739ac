//! The membership API: `GET`, `POST /v1/cluster/members` and
//! `DELETE /v1/cluster/members/{id}`; and `POST /v1/cluster/snapshot`
//! (cluster admins only).

use serde::{Deserialize, Serialize};

/// How long an add waits by default for the new member to catch up
/// before it is promoted to a voter.
pub const CATCH_UP_MS_DEFAULT: u64 = 60_000;
/// The longest an add may wait for the new member to catch up.
pub const CATCH_UP_MS_MAX: u64 = 600_000;

/// A member's part in the cluster.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// It votes, and counts towards a majority.
    Voter,
    /// It receives the log but does not vote: a member being added.
    Learner,
}

/// A member as the leader sees it.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its node id. Ids are never reused.
    pub id: u64,
    /// The `host:port` its peers reach it on.
    pub peer_addr: String,
    /// The `host:port` it serves clients on, once the leader has learnt it.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// Voter or learner.
    pub role: MemberRole,
    /// Whether it is the leader that answered.
    pub leader: bool,
    /// How many log entries it is behind the leader's last one; absent
    /// while the leader does not know what it holds.
    #[serde(default)]
    pub lag: Option<u64>,
    /// Whether it acknowledged the leader recently (the leader itself
    /// always is).
    pub reachable: bool,
    /// How long ago it last acknowledged the leader, in milliseconds;
    /// absent for the leader and for a member never heard from.
    #[serde(default)]
    pub last_ack_ms_ago: Option<u64>,
}

/// `GET /v1/cluster/members`, and the answer of every change.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// The leader that answered.
    pub leader_id: u64,
    /// Whether a change is under way (the cluster is in a joint
    /// configuration, or its last change is not committed yet).
    pub changing: bool,
    /// The members, in id order.
    pub members: Vec<MemberStatus>,
    /// The ids removed from the cluster, which it never takes again.
    #[serde(default)]
    pub retired: Vec<u64>,
}

/// `POST /v1/cluster/members`: adds a node, started with `--join`, as a
/// learner, waits until it caught up, then makes it a voter.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The new node's `--node-id`: never one the cluster had before.
    pub node_id: u64,
    /// Where its peers reach it: its `--peer-listen` (or its one listener).
    pub peer_addr: String,
    /// Where it serves clients; when given, the node must say the same.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// How long to wait for it to catch up before giving up (it then
    /// stays a learner, and the same add can be sent again), in
    /// milliseconds; 60 s by default, 600 s at most.
    #[serde(default)]
    pub catch_up_ms: Option<u64>,
    /// Leave it a learner: it receives the log but does not vote.
    #[serde(default)]
    pub learner: bool,
}

/// `POST /v1/cluster/snapshot`: the snapshot the answering node built of
/// everything it had applied when asked.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBuilt {
    /// The node that built it.
    pub node_id: u64,
    /// The last log index its newest snapshot covers now.
    pub snapshot_index: Option<u64>,
}
