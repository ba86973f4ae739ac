//! Acquire-all, lock ordering and lock-delay on a real 3-node cluster, and
//! waits of every kind carried across a leader kill.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{code, token, Cluster};
use serde_json::{json, Value};

async fn acquire_all(
    cluster: &Cluster,
    node: u64,
    lease: &str,
    names: &[&str],
    wait_ms: u64,
) -> (u16, Value) {
    cluster
        .post(
            node,
            "/v1/locks/acquire-all",
            json!({ "lease_id": lease, "names": names, "wait_ms": wait_ms }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acquire_all_takes_every_lock_at_once_or_none() {
    let cluster = Arc::new(Cluster::start(3).await);
    let owner = cluster.lease(1, 30_000).await;
    let batch = cluster.lease(2, 30_000).await;
    let late = cluster.lease(3, 30_000).await;

    for names in [vec![], vec!["a", "a"]] {
        let (status, body) = acquire_all(&cluster, 1, &batch, &names, 0).await;
        assert_eq!(
            (status, code(&body)),
            (400, Some("invalid_argument")),
            "{body}"
        );
    }
    let many: Vec<String> = (0..65).map(|i| format!("n{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, _) = acquire_all(&cluster, 1, &batch, &many, 0).await;
    assert_eq!(status, 400);

    let (status, held) = cluster.acquire(1, &owner, "order/b", 0).await;
    assert_eq!(status, 200);
    let (status, body) = acquire_all(&cluster, 2, &batch, &["order/a", "order/b"], 0).await;
    assert_eq!((status, code(&body)), (409, Some("lock_busy")), "{body}");
    assert_eq!(body["error"]["holder_token"], token(&held));
    assert_eq!(
        cluster.lock(2, "order/a").await["holders"],
        json!([]),
        "none taken"
    );

    // It waits in both queues, holding nothing; a later request for the
    // free lock queues behind it.
    let waiter = cluster.spawn_post(
        2,
        "/v1/locks/acquire-all",
        json!({ "lease_id": batch, "names": ["order/b", "order/a"], "wait_ms": 30_000 }),
    );
    let view = cluster
        .wait_for(3, "/v1/locks?name=order/a", |v| {
            v["queue"].as_array().is_some_and(|q| q.len() == 1)
        })
        .await;
    assert_eq!(view["queue"][0]["lease_id"], batch.as_str());
    assert_eq!(view["queue"][0]["acquire_all"], true);
    assert_eq!(view["queue"][0]["mode"], "exclusive");
    assert_eq!(view["holder"], Value::Null);
    let (status, body) = cluster.acquire(3, &late, "order/a", 0).await;
    assert_eq!((status, code(&body)), (409, Some("lock_busy")), "{body}");

    assert_eq!(cluster.release(1, &owner, "order/b").await.0, 200);
    let (status, granted) = waiter.await.expect("waiter");
    assert_eq!(status, 200, "{granted}");
    let grants = granted["grants"].as_array().expect("grants");
    let names: Vec<&str> = grants.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["order/a", "order/b"]);
    assert!(token(&grants[0]) > token(&held) && token(&grants[1]) > token(&grants[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_order_is_enforced_for_the_cluster_and_for_lexicographic_leases() {
    let cluster = Cluster::start_with(3, &["--lock-order", "user/,cart/,inventory/"]).await;
    let lease = cluster.lease(2, 30_000).await;
    // The leader writes the order into the replicated state shortly after
    // it is elected.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    assert_eq!(cluster.acquire(2, &lease, "cart/7", 0).await.0, 200);
    loop {
        let (status, body) = cluster.acquire(3, &lease, "user/7", 0).await;
        if status == 409 {
            assert_eq!(code(&body), Some("order_violation"), "{body}");
            assert_eq!(body["error"]["name"], "user/7");
            assert_eq!(body["error"]["held"], "cart/7");
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert_eq!(cluster.release(3, &lease, "user/7").await.0, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the lock order never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.acquire(1, &lease, "inventory/1", 0).await.0, 200);

    let (status, body) = cluster
        .post(
            1,
            "/v1/leases",
            json!({ "ttl_ms": 30_000, "lock_order": "lexicographic" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sorted = body["lease_id"].as_str().unwrap().to_string();
    let (_, view) = cluster.get(3, &format!("/v1/leases/{sorted}")).await;
    assert_eq!(view["lock_order"], "lexicographic");
    assert_eq!(cluster.acquire(1, &sorted, "misc/b", 0).await.0, 200);
    let (status, body) = cluster.acquire(1, &sorted, "misc/a", 0).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("order_violation")),
        "{body}"
    );
    let (status, body) = cluster
        .post(
            1,
            "/v1/leases",
            json!({ "ttl_ms": 30_000, "lock_order": "random" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_holds_its_locks_back_for_its_lock_delay() {
    let cluster = Arc::new(Cluster::start(3).await);
    let (status, body) = cluster
        .post(
            1,
            "/v1/leases",
            json!({ "ttl_ms": 3_000, "lock_delay_ms": 2_000 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let dying = body["lease_id"].as_str().unwrap().to_string();
    let (status, first) = cluster.acquire(1, &dying, "delayed", 0).await;
    assert_eq!(status, 200);
    let next = cluster.lease(2, 30_000).await;
    let waiter = {
        let (cluster, next) = (cluster.clone(), next.clone());
        tokio::spawn(async move { cluster.acquire(2, &next, "delayed", 30_000).await })
    };
    // After expiry and before the delay ends, the lock has no holder but
    // grants nothing.
    let view = cluster
        .wait_for(3, "/v1/locks?name=delayed", |v| {
            v["delayed_until_ms"].is_u64()
        })
        .await;
    assert_eq!(view["holders"], json!([]));
    let other = cluster.lease(3, 30_000).await;
    let (status, body) = cluster.acquire(3, &other, "delayed", 0).await;
    if status == 409 {
        assert_eq!(code(&body), Some("lock_busy"), "{body}");
    }
    let (status, granted) = waiter.await.expect("waiter");
    assert_eq!(status, 200, "{granted}");
    assert!(token(&granted) > token(&first));

    // A revoke is not an expiry: no delay.
    let (status, body) = cluster
        .post(
            1,
            "/v1/leases",
            json!({ "ttl_ms": 30_000, "lock_delay_ms": 60_000 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let revoked = body["lease_id"].as_str().unwrap().to_string();
    assert_eq!(cluster.acquire(1, &revoked, "revoked", 0).await.0, 200);
    let (status, _) = cluster
        .request(
            reqwest::Method::DELETE,
            1,
            &format!("/v1/leases/{revoked}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cluster.acquire(2, &next, "revoked", 0).await.0, 200);
    let (status, _) = cluster
        .post(
            1,
            "/v1/leases",
            json!({ "ttl_ms": 30_000, "lock_delay_ms": 60_001 }),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_semaphore_and_acquire_all_waits_survive_a_leader_kill() {
    let mut cluster = Cluster::start_with(3, &["--lock-order", "user/,cart/"]).await;
    let leader = cluster.wait_leader().await;
    let followers = cluster.followers_of(leader);
    let (f1, f2) = (followers[0], followers[1]);
    let owner = cluster.lease(f1, 30_000).await;
    let batch = cluster.lease(f2, 30_000).await;
    let reader = cluster.lease(f2, 30_000).await;
    let (status, held) = cluster.acquire(f1, &owner, "cart/1", 0).await;
    assert_eq!(status, 200);
    let (status, _) = cluster
        .post(
            f1,
            "/v1/semaphores/acquire",
            json!({ "lease_id": owner, "name": "slots", "limit": 1 }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, shared) = cluster
        .post(
            f1,
            "/v1/locks/acquire",
            json!({ "lease_id": owner, "name": "doc", "mode": "exclusive" }),
        )
        .await;
    assert_eq!(status, 200, "{shared}");

    let all = cluster.spawn_post(
        f2,
        "/v1/locks/acquire-all",
        json!({ "lease_id": batch, "names": ["cart/1", "cart/2"], "wait_ms": 40_000 }),
    );
    let permits = cluster.spawn_post(
        f2,
        "/v1/semaphores/acquire",
        json!({ "lease_id": reader, "name": "slots", "limit": 1, "wait_ms": 40_000 }),
    );
    let read = cluster.spawn_post(
        f2,
        "/v1/locks/acquire",
        json!({ "lease_id": reader, "name": "doc", "mode": "shared", "wait_ms": 40_000 }),
    );
    cluster.wait_queued(f1, "cart/1", 1).await;
    cluster.wait_queued(f1, "doc", 1).await;
    cluster
        .wait_for(f1, "/v1/semaphores?name=slots", |v| {
            v["waiters"].as_array().is_some_and(|w| w.len() == 1)
        })
        .await;

    cluster.kill(leader);
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    // The queues are intact on the new leader.
    let cart = cluster.lock(new_leader, "cart/2").await;
    assert_eq!(cart["queue"][0]["acquire_all"], true, "{cart}");
    // The lock order is the replicated one.
    let (status, body) = cluster.acquire(f1, &owner, "user/1", 0).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("order_violation")),
        "{body}"
    );

    for (path, name) in [
        ("/v1/locks/release", "cart/1"),
        ("/v1/semaphores/release", "slots"),
        ("/v1/locks/release", "doc"),
    ] {
        let (status, body) = cluster
            .post(f1, path, json!({ "lease_id": owner, "name": name }))
            .await;
        assert_eq!(status, 200, "{path} {name}: {body}");
    }
    let (status, granted) = all.await.expect("acquire-all");
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["grants"].as_array().map(Vec::len), Some(2));
    assert!(token(&granted["grants"][0]) > token(&held));
    let (status, body) = permits.await.expect("semaphore");
    assert_eq!(status, 200, "{body}");
    let (status, body) = read.await.expect("shared");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "shared");
}
