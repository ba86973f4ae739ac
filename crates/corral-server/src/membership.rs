//! Membership changes, as the admin API asks them of the leader: list the
//! members with their progress, add a node (the join handshake, a learner,
//! its catch-up, then a voter), and remove one for good.
//!
//! One change at a time: a change holds the node's `membership_change`
//! lock for its whole length (an add's catch-up included), and raft takes
//! each step only while the membership is the one the step was decided on.

use std::collections::BTreeSet;
use std::time::Duration;

use corral_api::{
    AddMemberRequest, ErrorKind, JoinRequest, MemberList, MemberRole, MemberSelf, MemberStatus,
    CATCH_UP_MS_DEFAULT, CATCH_UP_MS_MAX,
};
use corral_raft::{MemberProgress, Members, MembershipError, NodeId};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::join::{join_failed, JOIN_TIMEOUT, PATH_JOIN};
use crate::node::Node;

/// A member that acknowledged the leader within this long is reachable.
pub(crate) const ACK_RECENT: Duration = Duration::from_secs(3);
/// How often an add looks at the learner's progress.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);
/// How often an add logs the learner's progress.
const CATCH_UP_LOG_EVERY: Duration = Duration::from_secs(2);

/// The members as this node, the leader, sees them.
pub(crate) fn list(node: &Node) -> Result<MemberList, ApiError> {
    let members = leader_view(node)?;
    Ok(list_of(node, &members))
}

/// Adds the node `request` names: it must answer the join handshake as
/// that node. Waits for it to catch up, then makes it a voter (unless it
/// is to stay a learner).
pub(crate) async fn add(node: &Node, request: AddMemberRequest) -> Result<MemberList, ApiError> {
    let catch_up = catch_up_of(&request)?;
    let _one_at_a_time = one_change(node)?;
    let seen = settled_view(node)?;
    let id = request.node_id;
    if node.is_retired(id) {
        let message = format!("node id {id} was a member before: ids are never reused");
        return Err(ApiError::new(ErrorKind::NodeIdRetired, message));
    }
    match seen.get(id) {
        Some(member) if member.addr != request.peer_addr => {
            let message = format!("node {id} is a member at {}", member.addr);
            return Err(ApiError::new(ErrorKind::MemberExists, message));
        }
        Some(member) if member.voter => return Ok(list_of(node, &seen)),
        Some(_) => {}
        None => {
            let said = handshake(node, &request).await?;
            node.client_addrs.learn(id, said.client_addr);
            tracing::info!(member = id, peer_addr = %request.peer_addr, "adding a learner");
            node.raft
                .add_learner(&seen, id, &request.peer_addr)
                .await
                .map_err(refused)?;
        }
    }
    wait_caught_up(node, id, catch_up).await?;
    if !request.learner {
        let seen = settled_view(node)?;
        let mut voters = seen.voters();
        voters.insert(id);
        check_majority(&seen, &voters, false)?;
        tracing::info!(member = id, "promoting the learner to a voter");
        node.raft.promote(&seen, id).await.map_err(refused)?;
    }
    list(node)
}

/// Removes member `id` for good. The leader does not remove itself: it
/// hands leadership to a caught-up voter first, and answers 503 so that
/// the call is sent again (to the new leader).
pub(crate) async fn remove(node: &Node, id: NodeId, force: bool) -> Result<MemberList, ApiError> {
    let _one_at_a_time = one_change(node)?;
    let seen = settled_view(node)?;
    if seen.get(id).is_none() {
        let retired = node.is_retired(id);
        let message = if retired {
            format!("node {id} was removed before")
        } else {
            format!("node {id} is not a member")
        };
        return Err(ApiError::new(ErrorKind::MemberNotFound, message));
    }
    let mut voters = seen.voters();
    voters.remove(&id);
    check_majority(&seen, &voters, force)?;
    if id == seen.leader_id {
        return Err(hand_over(node, &seen, &voters).await);
    }
    tracing::warn!(member = id, force, "removing a member for good");
    node.raft.remove(&seen, id).await.map_err(refused)?;
    list(node)
}

/// The lock that makes changes one at a time, or 409.
fn one_change(node: &Node) -> Result<tokio::sync::MutexGuard<'_, ()>, ApiError> {
    node.membership_change
        .try_lock()
        .map_err(|_| in_progress("another membership change is under way on this leader"))
}

/// The leader's view, or 503 on any other node.
fn leader_view(node: &Node) -> Result<Members, ApiError> {
    node.raft.members().ok_or_else(|| {
        let leader = node.leader();
        let reason = match &leader {
            Some((id, _)) => format!("membership is changed on the leader, node {id}"),
            None => "no leader known".to_string(),
        };
        ApiError::unavailable(reason, leader.map(|(id, _)| id))
    })
}

/// The leader's view, when no change is under way; 409 otherwise.
fn settled_view(node: &Node) -> Result<Members, ApiError> {
    let seen = leader_view(node)?;
    if seen.changing {
        return Err(in_progress(
            "the cluster's last membership change has not completed",
        ));
    }
    Ok(seen)
}

fn list_of(node: &Node, members: &Members) -> MemberList {
    let last = members.last_log_index.unwrap_or(0);
    let statuses = members
        .members
        .iter()
        .map(|m| MemberStatus {
            id: m.id,
            peer_addr: m.addr.clone(),
            client_addr: node.client_addrs.get(m.id),
            role: if m.voter {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            },
            leader: m.id == members.leader_id,
            lag: m.matched_index.map(|i| last.saturating_sub(i)),
            reachable: reachable(m),
            last_ack_ms_ago: m
                .last_ack
                .filter(|_| m.id != members.leader_id)
                .map(|ago| u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect();
    MemberList {
        leader_id: members.leader_id,
        changing: members.changing,
        members: statuses,
        retired: node
            .state
            .read()
            .table
            .retired_nodes()
            .iter()
            .copied()
            .collect(),
    }
}

/// Refuses a voter set in which too few voters are reachable for a
/// majority, unless `force`.
fn check_majority(seen: &Members, voters: &BTreeSet<NodeId>, force: bool) -> Result<(), ApiError> {
    let reachable = voters
        .iter()
        .filter_map(|id| seen.get(*id))
        .filter(|m| reachable(m))
        .count();
    let majority = voters.len() / 2 + 1;
    if voters.is_empty() {
        return Err(ApiError::invalid("a cluster keeps at least one voter"));
    }
    if reachable >= majority || force {
        return Ok(());
    }
    let message = format!(
        "after the change, {reachable} of {} voters would be reachable, fewer than a majority ({majority}); pass force to change anyway",
        voters.len()
    );
    Err(ApiError::new(ErrorKind::NoReachableMajority, message))
}

/// The add's wait bound, checked.
fn catch_up_of(request: &AddMemberRequest) -> Result<Duration, ApiError> {
    let ms = request.catch_up_ms.unwrap_or(CATCH_UP_MS_DEFAULT);
    if ms > CATCH_UP_MS_MAX {
        return Err(ApiError::invalid(format!(
            "catch_up_ms is {ms}, above {CATCH_UP_MS_MAX}"
        )));
    }
    if request.peer_addr.is_empty() || request.peer_addr.len() > 256 {
        return Err(ApiError::invalid(
            "peer_addr is host:port, 256 bytes at most",
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Asks the node at `peer_addr` to join this cluster as `node_id`.
async fn handshake(node: &Node, request: &AddMemberRequest) -> Result<MemberSelf, ApiError> {
    let url = node.peers.url(&request.peer_addr, PATH_JOIN);
    let body = JoinRequest {
        node_id: request.node_id,
        auth_enabled: node.state.read().table.tokens().enabled(),
    };
    let sent = node.peers.http.post(url).json(&body).timeout(JOIN_TIMEOUT);
    let failed = |e: String| join_failed(format!("{}: {e}", request.peer_addr));
    let response = sent.send().await.map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(failed(format!("answered {status}: {text}")));
    }
    let said: MemberSelf = response.json().await.map_err(|e| failed(e.to_string()))?;
    if said.node_id != request.node_id {
        return Err(failed(format!("answered as node {}", said.node_id)));
    }
    match &request.client_addr {
        Some(addr) if *addr != said.client_addr => Err(failed(format!(
            "serves clients on {}, not {addr}",
            said.client_addr
        ))),
        _ => Ok(said),
    }
}

/// Waits until learner `id` holds the log up to where the leader's was
/// when the wait began, logging its progress.
async fn wait_caught_up(node: &Node, id: NodeId, bound: Duration) -> Result<(), ApiError> {
    let started = Instant::now();
    let target = leader_view(node)?.last_log_index.unwrap_or(0);
    let mut logged = started;
    loop {
        let view = leader_view(node)?;
        let matched = view.get(id).and_then(|m| m.matched_index);
        if matched.is_some_and(|m| m >= target) {
            tracing::info!(
                member = id,
                target,
                waited_ms = started.elapsed().as_millis() as u64,
                "the learner caught up"
            );
            return Ok(());
        }
        if started.elapsed() >= bound {
            let message = format!(
                "node {id} holds the log up to {matched:?} of {target} after {} ms; it stays a learner: send the add again to wait longer",
                bound.as_millis()
            );
            return Err(ApiError::new(ErrorKind::LearnerLagging, message));
        }
        if logged.elapsed() >= CATCH_UP_LOG_EVERY {
            tracing::info!(
                member = id,
                ?matched,
                target,
                "waiting for the learner to catch up"
            );
            logged = Instant::now();
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// Hands leadership to the most caught-up reachable voter of `voters`,
/// and says to send the removal again.
async fn hand_over(node: &Node, seen: &Members, voters: &BTreeSet<NodeId>) -> ApiError {
    let successor = voters
        .iter()
        .filter_map(|id| seen.get(*id))
        .filter(|m| reachable(m))
        .max_by_key(|m| m.matched_index)
        .map(|m| m.id);
    let Some(successor) = successor else {
        return ApiError::new(
            ErrorKind::NoReachableMajority,
            "no reachable voter to hand leadership to",
        );
    };
    tracing::info!(
        successor,
        "asked to remove the leader: handing leadership over first"
    );
    if let Err(e) = node.raft.transfer_leadership(successor).await {
        return ApiError::internal(e);
    }
    ApiError::unavailable(
        format!("this node was the leader; leadership moves to node {successor}: send the removal again"),
        Some(successor),
    )
}

/// Whether `member` acknowledged the leader within [`ACK_RECENT`] (the
/// leader itself always has).
fn reachable(member: &MemberProgress) -> bool {
    member.last_ack.is_some_and(|ago| ago <= ACK_RECENT)
}

fn in_progress(message: &str) -> ApiError {
    ApiError::new(ErrorKind::MembershipChangeInProgress, message)
}

/// A change raft refused, in the API's words.
fn refused(e: MembershipError) -> ApiError {
    match e {
        MembershipError::NotLeader => ApiError::unavailable(e, None),
        MembershipError::InProgress(why) => in_progress(&why),
        MembershipError::Raft(why) => ApiError::internal(why),
    }
}
