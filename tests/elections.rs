//! Leader election on a real 3-node cluster: candidates in turn, an
//! expired leader replaced, proclaim and resign, and an observer that sees
//! every change once.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use harness::{code, Cluster};
use serde_json::{json, Value};

/// The leader's (lease, value, token), or None.
fn leader(view: &Value) -> Option<(String, String, u64)> {
    let l = &view["leader"];
    l.is_object().then(|| {
        (
            l["lease_id"].as_str().unwrap().to_string(),
            l["value"].as_str().unwrap().to_string(),
            l["fencing_token"].as_u64().unwrap(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_candidate_leads_when_the_leader_expires_and_observers_see_each_change_once() {
    let cluster = Cluster::start(3).await;
    // The first leader never sends keepalives: it expires after its ttl.
    let first = cluster.lease(1, 3_000).await;
    let second = cluster.lease(2, 30_000).await;
    let (status, body) = cluster
        .post(
            1,
            "/v1/elections/campaign",
            json!({ "lease_id": first, "name": "primary", "value": "10.0.0.1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (first_lease, _, first_token) = leader(&body).unwrap();
    assert_eq!(first_lease, first);

    let (status, body) = cluster
        .post(
            2,
            "/v1/elections/campaign",
            json!({ "lease_id": second, "name": "primary", "value": "10.0.0.2" }),
        )
        .await;
    assert_eq!((status, code(&body)), (409, Some("lock_busy")), "{body}");
    let candidate = cluster.spawn_post(
        2,
        "/v1/elections/campaign",
        json!({ "lease_id": second, "name": "primary", "value": "10.0.0.2", "wait_ms": 30_000 }),
    );

    // An observer on node 3 follows the election from the first leader on.
    let mut seen = vec![(first_lease.clone(), "10.0.0.1".to_string(), first_token)];
    let mut after = first_token;
    while seen.last().map(|s| s.0.as_str()) != Some(second.as_str()) {
        let (status, body) = cluster
            .get(
                3,
                &format!("/v1/elections/observe?name=primary&after_token={after}&wait_ms=20000"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let now = leader(&body).expect("a leader: the candidate takes over at once");
        assert_ne!(now.2, after, "observe answered without a change: {body}");
        after = now.2;
        seen.push(now);
        assert!(seen.len() < 5, "too many changes: {seen:?}");
    }
    assert_eq!(seen.len(), 2, "each change once: {seen:?}");
    let (status, body) = candidate.await.expect("candidate");
    assert_eq!(status, 200, "{body}");
    let (_, value, token) = leader(&body).unwrap();
    assert_eq!((value.as_str(), token), ("10.0.0.2", after));
    assert!(token > first_token);

    // The expired leader can neither proclaim nor resign; another live
    // lease is not the leader.
    let (status, body) = cluster
        .post(
            1,
            "/v1/elections/proclaim",
            json!({ "lease_id": first, "name": "primary", "value": "x" }),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (404, Some("lease_not_found")),
        "{body}"
    );
    let other = cluster.lease(3, 30_000).await;
    let (status, body) = cluster
        .post(
            3,
            "/v1/elections/proclaim",
            json!({ "lease_id": other, "name": "primary", "value": "x" }),
        )
        .await;
    assert_eq!((status, code(&body)), (409, Some("not_leader")), "{body}");

    // The leader proclaims a new value: observers see it, under a new token.
    let (status, body) = cluster
        .post(
            1,
            "/v1/elections/proclaim",
            json!({ "lease_id": second, "name": "primary", "value": "10.0.0.22" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cluster
        .get(
            3,
            &format!("/v1/elections/observe?name=primary&after_token={after}&wait_ms=20000"),
        )
        .await;
    assert_eq!(status, 200);
    let (_, value, token) = leader(&body).unwrap();
    assert_eq!(value, "10.0.0.22");
    assert!(token > after);

    // Resigning leaves no leader; an observer of the old token sees that.
    let (status, body) = cluster
        .post(
            2,
            "/v1/elections/resign",
            json!({ "lease_id": second, "name": "primary" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cluster
        .get(
            1,
            &format!("/v1/elections/observe?name=primary&after_token={token}&wait_ms=20000"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["leader"], Value::Null);
    // With nothing changing, observe answers the same state when its wait
    // runs out.
    let (status, body) = cluster
        .get(
            2,
            "/v1/elections/observe?name=primary&after_token=0&wait_ms=200",
        )
        .await;
    assert_eq!((status, &body["leader"]), (200, &Value::Null));
    let (status, body) = cluster.get(2, "/v1/elections?name=primary").await;
    assert_eq!((status, &body["leader"]), (200, &Value::Null));
}
