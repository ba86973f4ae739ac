//! Fenced writes, token validation and idempotent retries on a real 3-node
//! cluster, across a leader kill.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use harness::{code, token, Cluster};
use serde_json::{json, Value};

async fn put(
    cluster: &Cluster,
    node: u64,
    key: &str,
    value: &str,
    lock: &str,
    token: u64,
) -> (u16, Value) {
    let body =
        json!({ "key": key, "value": value, "fence": { "lock": lock, "fencing_token": token } });
    cluster
        .request(reqwest::Method::PUT, node, "/v1/kv", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_owner_is_refused_after_a_new_owner_wrote_across_a_leader_kill() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let followers = cluster.followers_of(leader);
    // The old owner: the shortest ttl, and it will stop sending keepalives
    // as if paused.
    let old = cluster.lease(followers[0], 3_000).await;
    let (status, grant) = cluster.acquire(followers[0], &old, "invoice", 0).await;
    assert_eq!(status, 200);
    let old_token = token(&grant);
    let (status, body) = put(
        &cluster,
        followers[0],
        "invoice/next",
        "41",
        "invoice",
        old_token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fencing_token"], old_token);

    // A new owner waits for the lock, gets it when the old lease expires,
    // and writes.
    let new = cluster.lease(followers[1], 30_000).await;
    let (status, grant) = cluster.acquire(followers[1], &new, "invoice", 30_000).await;
    assert_eq!(status, 200, "granted after the old lease expired: {grant}");
    let new_token = token(&grant);
    assert!(new_token > old_token);
    let (status, body) = put(
        &cluster,
        followers[1],
        "invoice/next",
        "42",
        "invoice",
        new_token,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    cluster.kill(leader);
    cluster.wait_leader().await;

    // The old owner wakes up and writes with its token: refused, with the
    // current token.
    let (status, body) = put(
        &cluster,
        followers[0],
        "invoice/next",
        "stale",
        "invoice",
        old_token,
    )
    .await;
    assert_eq!((status, code(&body)), (409, Some("stale_token")), "{body}");
    assert_eq!(body["error"]["current_token"], new_token);
    assert_eq!(body["error"]["key_token"], new_token);
    let (status, body) = cluster.get(followers[0], "/v1/kv?key=invoice/next").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "42");
    assert_eq!(body["fencing_token"], new_token);

    // Validation says the same.
    let (status, body) = cluster
        .post(
            followers[1],
            "/v1/locks/validate",
            json!({ "name": "invoice", "fencing_token": old_token }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "valid": false, "current_token": new_token }));
    let (_, body) = cluster
        .post(
            followers[0],
            "/v1/locks/validate",
            json!({ "name": "invoice", "fencing_token": new_token }),
        )
        .await;
    assert_eq!(body["valid"], true);

    // Deleting needs a current fence too; a deleted key reads as not found.
    let delete = json!({ "key": "invoice/next", "fence": { "lock": "invoice", "fencing_token": new_token } });
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            followers[1],
            "/v1/kv",
            Some(delete),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cluster.get(followers[0], "/v1/kv?key=invoice/next").await;
    assert_eq!((status, code(&body)), (404, Some("key_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_with_the_same_key_gets_the_first_answer_from_any_node() {
    let cluster = Cluster::start(3).await;
    let keyed = |node: u64, path: &'static str, key: &'static str, body: Value| {
        cluster.post_keyed(node, path, key, body)
    };
    // A lease grant whose answer was lost, retried: the same lease.
    let (status, first) = keyed(1, "/v1/leases", "lease-1", json!({ "ttl_ms": 30_000 })).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = keyed(2, "/v1/leases", "lease-1", json!({ "ttl_ms": 30_000 })).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(first["lease_id"], again["lease_id"]);
    let lease = first["lease_id"].as_str().unwrap().to_string();

    // An acquire whose answer was lost, retried against another node: the
    // same token, and no token was taken by the retry.
    let acquire = json!({ "lease_id": lease, "name": "refund/9" });
    let (status, first) = keyed(1, "/v1/locks/acquire", "acq-1", acquire.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = keyed(3, "/v1/locks/acquire", "acq-1", acquire.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(token(&first), token(&again));
    let (status, next) = cluster.acquire(2, &lease, "refund/10", 0).await;
    assert_eq!(status, 200);
    assert_eq!(token(&next), token(&first) + 1, "the retry took no token");

    // A release retried gets its first answer, not not_holder.
    let release = json!({ "lease_id": lease, "name": "refund/9" });
    for node in [1, 2] {
        let (status, body) = keyed(node, "/v1/locks/release", "rel-1", release.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    let too_long: &'static str = Box::leak("k".repeat(257).into_boxed_str());
    // The same key with another request.
    let other = json!({ "lease_id": lease, "name": "refund/11" });
    let (status, body) = keyed(2, "/v1/locks/acquire", "acq-1", other).await;
    assert_eq!(
        (status, code(&body)),
        (422, Some("idempotency_mismatch")),
        "{body}"
    );
    let (status, body) = keyed(2, "/v1/locks/acquire", too_long, acquire).await;
    assert_eq!(status, 400, "{body}");
}
