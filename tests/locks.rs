//! Locks on a real 3-node cluster: exclusivity, fencing tokens, FIFO
//! waiting, wait timeouts, lease expiry and forwarding from followers.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{token, Cluster};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_holder_at_a_time_with_strictly_rising_tokens() {
    let cluster = Arc::new(Cluster::start(3).await);
    let held = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    const CLIENTS: u64 = 4;
    const ROUNDS: usize = 15;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (cluster, held, tokens) = (cluster.clone(), held.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            // Each client talks to another node, so followers forward.
            let node = client % 3 + 1;
            let lease = cluster.lease(node, 30_000).await;
            for _ in 0..ROUNDS {
                let (status, body) = cluster.acquire(node, &lease, "mutex", 30_000).await;
                assert_eq!(status, 200, "acquire: {body}");
                assert!(!held.swap(true, Ordering::SeqCst), "two holders at once");
                tokens.lock().unwrap().push(token(&body));
                tokio::time::sleep(Duration::from_millis(2)).await;
                // The hold ends before the release is sent.
                held.store(false, Ordering::SeqCst);
                let (status, body) = cluster.release(node, &lease, "mutex").await;
                assert_eq!(status, 200, "release: {body}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), (CLIENTS as usize) * ROUNDS);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must rise strictly in grant order: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_lease_is_granted_again_and_others_are_busy() {
    let cluster = Cluster::start(3).await;
    let a = cluster.lease(1, 30_000).await;
    let b = cluster.lease(2, 30_000).await;
    let (status, first) = cluster.acquire(1, &a, "invoice/1", 0).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = cluster.acquire(3, &a, "invoice/1", 0).await;
    assert_eq!(status, 200);
    assert!(token(&again) > token(&first), "a new grant: {again}");
    let (status, busy) = cluster.acquire(2, &b, "invoice/1", 0).await;
    assert_eq!(status, 409);
    assert_eq!(busy["error"]["code"], "lock_busy");
    assert_eq!(busy["error"]["holder_token"], token(&again));
    let (status, body) = cluster.release(3, &b, "invoice/1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_holder"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_are_granted_in_fifo_order() {
    let cluster = Arc::new(Cluster::start(3).await);
    let holder = cluster.lease(1, 30_000).await;
    let (status, _) = cluster.acquire(1, &holder, "queue", 0).await;
    assert_eq!(status, 200);
    let mut waiters = Vec::new();
    for i in 0..3u64 {
        let lease = cluster.lease(i % 3 + 1, 30_000).await;
        let task = {
            let (cluster, lease) = (cluster.clone(), lease.clone());
            tokio::spawn(async move { cluster.acquire(i % 3 + 1, &lease, "queue", 30_000).await })
        };
        // Wait until this waiter is queued before the next one comes.
        cluster.wait_queued(1, "queue", (i + 1) as usize).await;
        waiters.push((lease, task));
    }
    let queued: Vec<String> = cluster.lock(2, "queue").await["waiters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = waiters.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(queued, expected, "the queue keeps arrival order");

    let mut current = holder;
    let mut last_token = 0;
    for (lease, task) in waiters {
        let (status, _) = cluster.release(2, &current, "queue").await;
        assert_eq!(status, 200);
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["lease_id"], lease.as_str(), "granted in arrival order");
        assert!(token(&body) > last_token);
        last_token = token(&body);
        current = lease;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wait_that_runs_out_leaves_the_queue() {
    let cluster = Cluster::start(3).await;
    let a = cluster.lease(1, 30_000).await;
    let b = cluster.lease(1, 30_000).await;
    assert_eq!(cluster.acquire(1, &a, "slow", 0).await.0, 200);
    let started = Instant::now();
    let (status, body) = cluster.acquire(2, &b, "slow", 500).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "wait_timeout");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let lock = cluster.lock(3, "slow").await;
    assert_eq!(
        lock["waiters"],
        json!([]),
        "the timed-out waiter left the queue"
    );
    assert_eq!(lock["holder"]["lease_id"], a.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_releases_its_locks_to_the_next_waiter() {
    let cluster = Arc::new(Cluster::start(3).await);
    let short = cluster.lease(1, 3_000).await;
    let (status, first) = cluster.acquire(1, &short, "job", 0).await;
    assert_eq!(status, 200);
    let waiter = cluster.lease(2, 30_000).await;
    let started = Instant::now();
    // No keepalive for `short`: it expires and `waiter` is granted.
    let (status, body) = cluster.acquire(2, &waiter, "job", 30_000).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lease_id"], waiter.as_str());
    assert!(token(&body) > token(&first));
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "expired early: {:?}",
        started.elapsed()
    );
    let (status, body) = cluster.get(3, &format!("/v1/leases/{short}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("lease_not_found"))
    );
    let (status, _) = cluster
        .post(3, &format!("/v1/leases/{short}/keepalive"), json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keepalives_keep_a_lease_past_its_ttl() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 3_000).await;
    assert_eq!(cluster.acquire(2, &lease, "kept", 0).await.0, 200);
    let until = Instant::now() + Duration::from_secs(7);
    let mut node = 1;
    while Instant::now() < until {
        let (status, body) = cluster
            .post(node, &format!("/v1/leases/{lease}/keepalive"), json!({}))
            .await;
        assert_eq!(status, 200, "keepalive through node {node}: {body}");
        assert_eq!(body["ttl_ms"], 3_000);
        node = node % 3 + 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (status, body) = cluster.get(3, &format!("/v1/leases/{lease}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locks"][0]["name"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_keepalive_renews_live_leases_and_lists_gone_ones() {
    let cluster = Cluster::start(3).await;
    let kept: Vec<String> =
        futures::future::join_all((0..3).map(|_| cluster.lease(2, 3_000))).await;
    let gone = cluster.lease(1, 3_000).await;
    let (status, _) = cluster
        .request(
            reqwest::Method::DELETE,
            1,
            &format!("/v1/leases/{gone}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mut ids = kept.clone();
    ids.push(gone.clone());
    let until = Instant::now() + Duration::from_secs(7);
    let mut node = 1;
    while Instant::now() < until {
        let (status, body) = cluster
            .post(node, "/v1/leases/keepalive", json!({ "lease_ids": ids }))
            .await;
        assert_eq!(status, 200, "batch keepalive through node {node}: {body}");
        let renewed: Vec<&str> = body["renewed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["lease_id"].as_str().unwrap())
            .collect();
        assert_eq!(renewed, kept.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(body["not_found"], json!([gone]));
        node = node % 3 + 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for lease in &kept {
        let (status, body) = cluster.get(3, &format!("/v1/leases/{lease}")).await;
        assert_eq!(status, 200, "kept past its ttl: {body}");
    }
    // Empty and oversized batches are refused.
    let (status, body) = cluster
        .post(1, "/v1/leases/keepalive", json!({ "lease_ids": [] }))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_argument"))
    );
    let many: Vec<String> = (0..1_001).map(|_| kept[0].clone()).collect();
    let (status, _) = cluster
        .post(1, "/v1/leases/keepalive", json!({ "lease_ids": many }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_a_lease_releases_everything_it_holds() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(2, 30_000).await;
    for name in ["r/a", "r/b"] {
        assert_eq!(cluster.acquire(3, &lease, name, 0).await.0, 200);
    }
    let (status, listed) = cluster.get(1, "/v1/locks?prefix=r/").await;
    assert_eq!(status, 200);
    assert_eq!(listed["locks"].as_array().unwrap().len(), 2);
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            1,
            &format!("/v1/leases/{lease}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["released"], json!(["r/a", "r/b"]));
    let (_, listed) = cluster.get(2, "/v1/locks?prefix=r/").await;
    assert_eq!(listed["locks"], json!([]));
    let (status, _) = cluster
        .request(
            reqwest::Method::DELETE,
            1,
            &format!("/v1/leases/{lease}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_lease_that_expires_leaves_the_queue() {
    let cluster = Cluster::start(3).await;
    let holder = cluster.lease(1, 30_000).await;
    assert_eq!(cluster.acquire(1, &holder, "held", 0).await.0, 200);
    let short = cluster.lease(2, 3_000).await;
    // The waiter sends no keepalives: its lease expires while it waits.
    let (status, body) = cluster.acquire(3, &short, "held", 30_000).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "lease_not_found");
    let lock = cluster.lock(2, "held").await;
    assert_eq!(lock["waiters"], json!([]));
    assert_eq!(lock["holder"]["lease_id"], holder.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_share_a_lock_and_a_waiting_writer_holds_back_new_readers() {
    let cluster = Arc::new(Cluster::start(3).await);
    let (r1, r2, w, r3) = (
        cluster.lease(1, 30_000).await,
        cluster.lease(2, 30_000).await,
        cluster.lease(3, 30_000).await,
        cluster.lease(1, 30_000).await,
    );
    let shared = |lease: &str| json!({ "lease_id": lease, "name": "doc", "mode": "shared" });
    let (status, first) = cluster.post(1, "/v1/locks/acquire", shared(&r1)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["mode"], "shared");
    let (status, second) = cluster.post(2, "/v1/locks/acquire", shared(&r2)).await;
    assert_eq!(status, 200, "{second}");
    assert!(
        token(&second) > token(&first),
        "every shared grant takes its own token"
    );
    let lock = cluster.lock(3, "doc").await;
    assert_eq!(lock["holder"], Value::Null, "no exclusive holder");
    assert_eq!(lock["holders"].as_array().unwrap().len(), 2);

    let writer = {
        let (cluster, w) = (cluster.clone(), w.clone());
        tokio::spawn(async move { cluster.acquire(3, &w, "doc", 30_000).await })
    };
    cluster.wait_queued(1, "doc", 1).await;
    let mut late_reader = shared(&r3);
    late_reader["wait_ms"] = json!(0);
    let (status, body) = cluster.post(2, "/v1/locks/acquire", late_reader).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("lock_busy"))
    );

    for (node, lease) in [(1, &r1), (2, &r2)] {
        assert_eq!(cluster.release(node, lease, "doc").await.0, 200);
    }
    let (status, body) = writer.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "exclusive");
    assert_eq!(
        cluster.lock(2, "doc").await["holder"]["lease_id"],
        w.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wait_that_would_deadlock_is_refused_with_the_cycle() {
    let cluster = Arc::new(Cluster::start(3).await);
    let one = cluster.lease(1, 30_000).await;
    let two = cluster.lease(2, 30_000).await;
    assert_eq!(cluster.acquire(1, &one, "user/7", 0).await.0, 200);
    assert_eq!(cluster.acquire(2, &two, "cart/7", 0).await.0, 200);
    let waiting = {
        let (cluster, one) = (cluster.clone(), one.clone());
        tokio::spawn(async move { cluster.acquire(3, &one, "cart/7", 30_000).await })
    };
    cluster.wait_queued(1, "cart/7", 1).await;
    let (status, body) = cluster.acquire(2, &two, "user/7", 30_000).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "deadlock");
    assert_eq!(
        body["error"]["cycle"],
        json!([
            { "lease_id": two, "waits_for": "user/7", "held_by": one },
            { "lease_id": one, "waits_for": "cart/7", "held_by": two },
        ])
    );
    assert_eq!(
        cluster.lock(3, "user/7").await["waiters"],
        json!([]),
        "nothing was queued"
    );
    // Lease two lets go of cart/7: lease one is granted it at once.
    assert_eq!(cluster.release(2, &two, "cart/7").await.0, 200);
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lease_id"], one.as_str());
}

/// A release sent through a node that is paused before it could forward
/// it, a re-acquire through the leader meanwhile, and the release arriving
/// late: it names the old grant's token, so it is refused and the lease
/// keeps the lock under the new token; the waiting lease does not get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_release_cannot_end_a_newer_grant() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let a = cluster.lease(leader, 60_000).await;
    let b = cluster.lease(leader, 60_000).await;
    let (status, first) = cluster.acquire(leader, &a, "late/1", 0).await;
    assert_eq!(status, 200, "{first}");
    let waiter = cluster.spawn_post(
        leader,
        "/v1/locks/acquire",
        json!({ "lease_id": b, "name": "late/1", "wait_ms": 30_000 }),
    );
    cluster.wait_queued(leader, "late/1", 1).await;

    // Paused first, so that the release certainly waits in the follower's
    // socket buffer (the kernel accepts the connection) until it resumes.
    cluster.pause(follower);
    let release = json!({ "lease_id": a, "name": "late/1", "fencing_token": token(&first) });
    let late = cluster.spawn_post(follower, "/v1/locks/release", release);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No answer: the client acquires again through the leader.
    let (status, again) = cluster.acquire(leader, &a, "late/1", 0).await;
    assert_eq!(status, 200, "{again}");
    assert!(token(&again) > token(&first), "a new grant: {again}");

    cluster.resume(follower);
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), late)
        .await
        .expect("the late release is answered")
        .expect("release task");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_holder")),
        "the late release is refused: {body}"
    );
    let lock = cluster.lock(leader, "late/1").await;
    assert_eq!(lock["holder"]["lease_id"], a.as_str(), "{lock}");
    assert_eq!(lock["holder"]["fencing_token"], token(&again), "{lock}");
    assert_eq!(lock["waiters"], json!([b]), "{lock}");
    assert!(!waiter.is_finished(), "lease b still waits");

    // The release naming the grant it holds ends it, to the waiter.
    let release = json!({ "lease_id": a, "name": "late/1", "fencing_token": token(&again) });
    let (status, body) = cluster.post(leader, "/v1/locks/release", release).await;
    assert_eq!(status, 200, "{body}");
    let (status, granted) = waiter.await.expect("waiter task");
    assert_eq!(status, 200, "{granted}");
    assert!(token(&granted) > token(&again));
}

/// A retried acquire whose first answer was a grant is answered with it
/// only while the lease still holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_grant_released_since_says_not_holder() {
    let cluster = Cluster::start(3).await;
    let a = cluster.lease(1, 30_000).await;
    let body = json!({ "lease_id": a, "name": "replay/1" });
    let keyed =
        |id: u64, key: &'static str| cluster.post_keyed(id, "/v1/locks/acquire", key, body.clone());
    let (status, first) = keyed(1, "acq-1").await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = keyed(2, "acq-1").await;
    assert_eq!((status, token(&again)), (200, token(&first)), "{again}");
    let (status, body) = cluster.release(3, &a, "replay/1").await;
    assert_eq!(status, 200, "{body}");
    let (status, replay) = keyed(3, "acq-1").await;
    assert_eq!(
        (status, replay["error"]["code"].as_str()),
        (409, Some("not_holder")),
        "not the released grant: {replay}"
    );
    assert!(cluster.lock(1, "replay/1").await["holders"]
        .as_array()
        .is_some_and(|h| h.is_empty()));
}
