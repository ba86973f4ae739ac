//! Semaphores on a real 3-node cluster: permits up to a limit, FIFO
//! waiting, limits that must agree, and permits freed by lease expiry.

mod harness;

use std::sync::Arc;

use harness::{token, Cluster};
use serde_json::{json, Value};

async fn take(
    cluster: &Cluster,
    node: u64,
    lease: &str,
    limit: u32,
    permits: u32,
    wait_ms: u64,
) -> (u16, Value) {
    cluster
        .post(
            node,
            "/v1/semaphores/acquire",
            json!({ "lease_id": lease, "name": "pool", "limit": limit, "permits": permits, "wait_ms": wait_ms }),
        )
        .await
}

async fn give_back(cluster: &Cluster, node: u64, lease: &str) -> (u16, Value) {
    cluster
        .post(
            node,
            "/v1/semaphores/release",
            json!({ "lease_id": lease, "name": "pool" }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permits_are_shared_up_to_the_limit_in_fifo_order() {
    let cluster = Arc::new(Cluster::start(3).await);
    let a = cluster.lease(1, 30_000).await;
    let b = cluster.lease(2, 30_000).await;
    let c = cluster.lease(3, 30_000).await;
    let (status, first) = take(&cluster, 1, &a, 3, 2, 0).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["permits"], 2);
    let (status, second) = take(&cluster, 2, &b, 3, 1, 0).await;
    assert_eq!(status, 200, "{second}");
    assert!(
        token(&second) > token(&first),
        "every grant takes its own token"
    );

    let (status, body) = take(&cluster, 3, &c, 5, 1, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("limit_mismatch")),
        "{body}"
    );
    assert_eq!(body["error"]["limit"], 3);
    let (status, body) = take(&cluster, 3, &c, 3, 1, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("lock_busy")),
        "{body}"
    );

    // c waits for 2 permits through node 3.
    let waiter = {
        let (cluster, c) = (cluster.clone(), c.clone());
        tokio::spawn(async move { take(&cluster, 3, &c, 3, 2, 30_000).await })
    };
    let view = cluster
        .wait_for(1, "/v1/semaphores?name=pool", |v| {
            v["waiters"].as_array().is_some_and(|w| w.len() == 1)
        })
        .await;
    assert_eq!(view["limit"], 3);
    assert_eq!(view["permits_held"], 3);
    assert_eq!(view["waiters"][0]["permits"], 2);

    // One permit free is not enough for c.
    assert_eq!(give_back(&cluster, 2, &b).await.0, 200);
    let view = cluster.lock(1, "pool").await;
    assert_eq!(
        view["holder"],
        Value::Null,
        "a lock of the same name is another thing"
    );
    assert!(!waiter.is_finished(), "c needs two permits");
    assert_eq!(give_back(&cluster, 1, &a).await.0, 200);
    let (status, granted) = waiter.await.expect("waiter");
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["permits"], 2);
    assert!(token(&granted) > token(&second));
    let (status, body) = give_back(&cluster, 1, &a).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_holder"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_holder_frees_its_permits_for_the_waiter() {
    let cluster = Arc::new(Cluster::start(3).await);
    // The shortest ttl (twice the longest election timeout), never kept
    // alive.
    let short = cluster.lease(1, 3_000).await;
    let long = cluster.lease(2, 30_000).await;
    let (status, body) = take(&cluster, 1, &short, 1, 1, 0).await;
    assert_eq!(status, 200, "{body}");
    let (_, lease) = cluster.get(1, &format!("/v1/leases/{short}")).await;
    assert_eq!(lease["semaphores"][0]["name"], "pool");
    let (status, granted) = take(&cluster, 2, &long, 1, 1, 30_000).await;
    assert_eq!(
        status, 200,
        "granted once the short lease expired: {granted}"
    );
    assert!(token(&granted) > token(&body));
    let (status, _) = cluster.get(2, &format!("/v1/leases/{short}")).await;
    assert_eq!(status, 404);
}
