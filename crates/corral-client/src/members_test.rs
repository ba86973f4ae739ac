use corral_api::{ErrorKind, MemberRole};

use super::*;
use crate::test_server::{answer_once, body_of, client};

const LIST: &str = r#"{"leader_id":1,"changing":false,"members":[
    {"id":1,"peer_addr":"10.0.0.1:7201","client_addr":"10.0.0.1:7101","role":"voter",
     "leader":true,"lag":0,"reachable":true},
    {"id":4,"peer_addr":"10.0.0.4:7201","role":"learner","leader":false,
     "lag":null,"reachable":false}],
    "retired":[3]}"#;

#[tokio::test]
async fn members_reads_the_list_without_a_key() {
    let (endpoint, request) = answer_once("200 OK", LIST).await;
    let list = client(&[endpoint]).members().await.unwrap();
    assert_eq!((list.leader_id, list.changing), (1, false));
    assert_eq!(list.retired, [3]);
    let learner = &list.members[1];
    assert_eq!((learner.id, learner.role), (4, MemberRole::Learner));
    assert_eq!((learner.client_addr.as_deref(), learner.lag), (None, None));
    assert_eq!(learner.last_ack_ms_ago, None);
    let request = request.await.unwrap();
    assert!(
        request.starts_with("GET /v1/cluster/members HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(!request.to_ascii_lowercase().contains("idempotency-key"));
}

#[tokio::test]
async fn add_member_sends_the_request_as_is() {
    let (endpoint, request) = answer_once("200 OK", LIST).await;
    let add = AddMemberRequest {
        node_id: 4,
        peer_addr: "10.0.0.4:7201".into(),
        client_addr: Some("10.0.0.4:7101".into()),
        catch_up_ms: Some(5_000),
        learner: true,
    };
    let list = client(&[endpoint]).add_member(&add).await.unwrap();
    assert_eq!(list.members.len(), 2);
    let request = request.await.unwrap();
    assert!(
        request.starts_with("POST /v1/cluster/members HTTP/1.1\r\n"),
        "{request}"
    );
    // The cluster ignores a key here; sending none says so.
    assert!(!request.to_ascii_lowercase().contains("idempotency-key"));
    let sent: AddMemberRequest = serde_json::from_str(body_of(&request)).unwrap();
    assert_eq!(sent, add);
}

#[test]
fn an_add_waits_for_its_catch_up_and_more() {
    let mut add = AddMemberRequest {
        node_id: 4,
        peer_addr: "h:1".into(),
        client_addr: None,
        catch_up_ms: None,
        learner: false,
    };
    let default = Duration::from_millis(CATCH_UP_MS_DEFAULT);
    assert!(add_wait(&add) > default, "{:?}", add_wait(&add));
    add.catch_up_ms = Some(1_000);
    assert!(add_wait(&add) > Duration::from_secs(1));
    assert!(add_wait(&add) < default);
    // The server refuses more than the maximum at once: no longer wait.
    add.catch_up_ms = Some(u64::MAX);
    assert!(add_wait(&add) <= Duration::from_millis(CATCH_UP_MS_MAX) + ADD_OVERHEAD);
}

#[test]
fn a_removal_says_whether_it_is_forced() {
    assert_eq!(member_path(3, false), "/v1/cluster/members/3?force=false");
    assert_eq!(member_path(12, true), "/v1/cluster/members/12?force=true");
}

#[tokio::test]
async fn removing_the_leader_is_sent_again_to_the_next_node() {
    // The leader hands over and answers 503; the next node, the new
    // leader, removes it.
    let handed_over = r#"{"error":{"code":"unavailable","leader_id":2,
        "message":"this node was the leader; leadership moves to node 2: send the removal again"}}"#;
    let (old, first) = answer_once("503 Service Unavailable", handed_over).await;
    let (new, second) = answer_once("200 OK", LIST).await;
    let list = client(&[old, new]).remove_member(1, false).await.unwrap();
    assert_eq!(list.leader_id, 1);
    for request in [first.await.unwrap(), second.await.unwrap()] {
        assert!(
            request.starts_with("DELETE /v1/cluster/members/1?force=false HTTP/1.1\r\n"),
            "{request}"
        );
    }
}

#[tokio::test]
async fn membership_refusals_keep_their_kind_and_are_not_retried() {
    let cases = [
        (
            "404 Not Found",
            "member_not_found",
            ErrorKind::MemberNotFound,
        ),
        (
            "409 Conflict",
            "membership_change_in_progress",
            ErrorKind::MembershipChangeInProgress,
        ),
        ("409 Conflict", "node_id_retired", ErrorKind::NodeIdRetired),
        (
            "409 Conflict",
            "no_reachable_majority",
            ErrorKind::NoReachableMajority,
        ),
        ("409 Conflict", "member_exists", ErrorKind::MemberExists),
        ("409 Conflict", "learner_lagging", ErrorKind::LearnerLagging),
        ("410 Gone", "node_removed", ErrorKind::NodeRemoved),
        ("502 Bad Gateway", "join_failed", ErrorKind::JoinFailed),
    ];
    for (status, code, expected) in cases {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"why"}}}}"#);
        // One answer only: a retry would find no server and end as
        // `Unavailable`.
        let (endpoint, _request) = answer_once(status, &body).await;
        let error = client(&[endpoint])
            .remove_member(4, false)
            .await
            .expect_err(code);
        assert!(!error.is_transient(), "{code}");
        assert!(
            matches!(&error, Error::Refused { kind, message } if *kind == expected && message == "why"),
            "{code}: {error:?}"
        );
    }
}
