//! Membership changes on a one-node cluster: what is refused before raft
//! is asked, and the leader's view of itself. The changes themselves run
//! on real clusters in tests/membership.rs.

use corral_api::{AddMemberRequest, ErrorKind, MemberRole};

use crate::membership::{add, list, remove};
use crate::test_support::{lead_alone, uninitialized_node, TempDir};

fn request(node_id: u64, peer_addr: &str) -> AddMemberRequest {
    AddMemberRequest {
        node_id,
        peer_addr: peer_addr.into(),
        client_addr: None,
        catch_up_ms: Some(1_000),
        learner: false,
    }
}

#[tokio::test]
async fn only_the_leader_changes_membership() {
    let dir = TempDir::new("membership-follower");
    let node = uninitialized_node(&dir).await;
    let refused = list(&node).expect_err("no leader");
    assert!(matches!(refused.kind(), ErrorKind::Unavailable { .. }));
    let refused = remove(&node, 2, false).await.expect_err("no leader");
    assert!(matches!(refused.kind(), ErrorKind::Unavailable { .. }));
}

#[tokio::test]
async fn the_leader_lists_itself_and_refuses_bad_changes() {
    let dir = TempDir::new("membership-leader");
    let node = uninitialized_node(&dir).await;
    lead_alone(&node).await;
    let members = list(&node).expect("the leader lists");
    assert_eq!(members.leader_id, 1);
    assert_eq!(members.members.len(), 1);
    let own = &members.members[0];
    assert!(own.leader && own.reachable && own.role == MemberRole::Voter);
    assert_eq!(own.lag, Some(0));

    // The last voter stays.
    let refused = remove(&node, 1, true).await.expect_err("last voter");
    assert_eq!(refused.kind(), &ErrorKind::InvalidArgument);
    let refused = remove(&node, 9, false).await.expect_err("no such member");
    assert_eq!(refused.kind(), &ErrorKind::MemberNotFound);

    // A wait past the bound, and a node that does not answer its join.
    let mut long = request(2, "127.0.0.1:1");
    long.catch_up_ms = Some(corral_api::CATCH_UP_MS_MAX + 1);
    let refused = add(&node, long).await.expect_err("too long a wait");
    assert_eq!(refused.kind(), &ErrorKind::InvalidArgument);
    let refused = add(&node, request(2, "127.0.0.1:1")).await;
    assert_eq!(
        refused.expect_err("nobody there").kind(),
        &ErrorKind::JoinFailed
    );
    // The member it is already, at another address.
    let refused = add(&node, request(1, "127.0.0.1:2")).await;
    assert_eq!(refused.expect_err("taken").kind(), &ErrorKind::MemberExists);
}

#[tokio::test]
async fn one_change_at_a_time() {
    let dir = TempDir::new("membership-one");
    let node = uninitialized_node(&dir).await;
    lead_alone(&node).await;
    let _under_way = node.membership_change.lock().await;
    let refused = remove(&node, 1, false).await.expect_err("busy");
    assert_eq!(refused.kind(), &ErrorKind::MembershipChangeInProgress);
    let refused = add(&node, request(2, "127.0.0.1:1")).await;
    assert_eq!(
        refused.expect_err("busy").kind(),
        &ErrorKind::MembershipChangeInProgress
    );
}
