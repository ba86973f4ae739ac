//! Changing the cluster's membership, one change at a time, on the leader.
//!
//! A node joins as a learner, is promoted to a voter once it caught up,
//! and leaves for good: the state machine retires the id of every node a
//! membership entry drops (see `state_machine.rs`). Every change is
//! proposed only while the membership is the one it was decided on
//! (`change_membership_if`), so two concurrent changes cannot both apply.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::Precondition;
use openraft::{BasicNode, ChangeMembers, Instant};

use crate::replica::Replica;
use crate::type_config::{LogId, NodeId, TypeConfig};

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// This node does not lead (any more).
    #[error("this node does not lead")]
    NotLeader,
    /// Another change is under way, or was made since this one was
    /// decided.
    #[error("another membership change is under way: {0}")]
    InProgress(String),
    /// Raft refused otherwise, or its core stopped.
    #[error("{0}")]
    Raft(String),
}

/// A member and what the leader knows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberProgress {
    /// Its node id.
    pub id: NodeId,
    /// Its peer address.
    pub addr: String,
    /// Whether it votes (otherwise a learner).
    pub voter: bool,
    /// The last log index the leader knows it holds (the leader: its own
    /// last one).
    pub matched_index: Option<u64>,
    /// How long ago it last acknowledged the leader; `Some(0)` for the
    /// leader itself.
    pub last_ack: Option<Duration>,
}

/// The membership as the leader sees it, read at one point.
#[derive(Clone, Debug)]
pub struct Members {
    /// The leader's id (this node).
    pub leader_id: NodeId,
    /// The leader's last log index.
    pub last_log_index: Option<u64>,
    /// Whether a change is under way: a joint configuration, or a last
    /// change not committed yet.
    pub changing: bool,
    /// The members, by id.
    pub members: Vec<MemberProgress>,
    /// The membership's log id: a change decided on this view is proposed
    /// only while it is still the effective one.
    pub(crate) log_id: Option<LogId>,
}

impl Members {
    /// Member `id`, if it is one.
    pub fn get(&self, id: NodeId) -> Option<&MemberProgress> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The voters' ids.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect()
    }
}

impl Replica {
    /// The membership with each member's progress, when this node leads.
    pub fn members(&self) -> Option<Members> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader != Some(self.id()) {
            return None;
        }
        let config = &m.membership_config;
        let voters: BTreeSet<NodeId> = config.voter_ids().collect();
        let matched = |id: &NodeId| {
            let replication = m.replication.as_ref()?;
            replication.get(id).cloned().flatten().map(|l| l.index)
        };
        let last_ack = |id: &NodeId| {
            let heartbeat = m.heartbeat.as_ref()?;
            let at = heartbeat.get(id).cloned().flatten()?;
            Some(at.into_inner().elapsed())
        };
        let members = config
            .nodes()
            .map(|(id, node)| {
                let own = *id == self.id();
                MemberProgress {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    matched_index: if own { m.last_log_index } else { matched(id) },
                    last_ack: if own {
                        Some(Duration::ZERO)
                    } else {
                        last_ack(id)
                    },
                }
            })
            .collect();
        let changing = config.get_joint_config().len() > 1
            || config.log_id() != m.committed_membership_config.log_id();
        Some(Members {
            leader_id: self.id(),
            last_log_index: m.last_log_index,
            changing,
            members,
            log_id: *config.log_id(),
        })
    }

    /// Adds node `id` at peer address `addr` as a learner: the leader
    /// starts replicating to it. Returns once the change committed.
    pub async fn add_learner(
        &self,
        seen: &Members,
        id: NodeId,
        addr: &str,
    ) -> Result<(), MembershipError> {
        let nodes = BTreeMap::from([(id, BasicNode::new(addr))]);
        self.change(seen, ChangeMembers::AddNodes(nodes)).await
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&self, seen: &Members, id: NodeId) -> Result<(), MembershipError> {
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.change(seen, change).await
    }

    /// Removes member `id` from the cluster for good: a voter stops voting
    /// and is dropped in the same change.
    pub async fn remove(&self, seen: &Members, id: NodeId) -> Result<(), MembershipError> {
        let member = seen.get(id).ok_or_else(|| {
            MembershipError::InProgress(format!("node {id} is not a member of the view"))
        })?;
        let change = if member.voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.change(seen, change).await
    }

    /// Proposes `change` if the membership is still `seen`'s, and waits
    /// until it (both steps of a voter change) committed.
    async fn change(
        &self,
        seen: &Members,
        change: ChangeMembers<NodeId, BasicNode>,
    ) -> Result<(), MembershipError> {
        let precondition = Precondition::LastMembershipLogId {
            last_membership_log_id: seen.log_id,
        };
        // `retain: false`: a removed voter leaves the cluster, it does not
        // linger as a learner.
        let changed = self
            .raft
            .change_membership_if(change, false, [precondition])
            .await;
        match changed {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(e)) => Err(refusal(e)),
            Err(e) => Err(MembershipError::Raft(e.to_string())),
        }
    }

    /// Moves leadership to voter `to`, which must be caught up: for a
    /// leader asked to remove itself.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), MembershipError> {
        let trigger = self.raft.trigger();
        let transferred = trigger.transfer_leader(to).await;
        transferred.map_err(|e| MembershipError::Raft(e.to_string()))
    }
}

/// A refused change, in corral's words.
fn refusal(e: ClientWriteError<TypeConfig>) -> MembershipError {
    match e {
        ClientWriteError::ForwardToLeader(_) => MembershipError::NotLeader,
        ClientWriteError::PreconditionFailed(e) => MembershipError::InProgress(e.to_string()),
        ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e)) => {
            MembershipError::InProgress(e.to_string())
        }
        ClientWriteError::ChangeMembershipError(ChangeMembershipError::UncommittedLeaderLog(e)) => {
            MembershipError::InProgress(e.to_string())
        }
        e => MembershipError::Raft(e.to_string()),
    }
}
