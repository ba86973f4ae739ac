//! The Rust client library against a real 3-node cluster: failover to the
//! next endpoint, and `lost()` firing by its deadline.

mod harness;

use std::time::Duration;

use corral_client::{Client, LockName, LostReason, RetryPolicy};
use harness::Cluster;
use tokio::time::Instant;

fn endpoints(cluster: &Cluster, order: &[u64]) -> Vec<String> {
    order.iter().map(|id| cluster.url(*id, "")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_moves_to_the_next_endpoint_when_the_first_node_dies() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    // The first endpoint is a follower that is about to die.
    let mut order: Vec<u64> = cluster
        .live()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    order.push(leader);
    let client = Client::new(endpoints(&cluster, &order)).unwrap();
    let lease = client.grant_lease(Duration::from_secs(10)).await.unwrap();
    let name = LockName::new("failover/1").unwrap();
    let first = lease.try_lock(&name).await.unwrap();
    let first_token = first.fencing_token();
    first.release().await.unwrap();

    cluster.kill(order[0]);
    let again = lease
        .try_lock(&name)
        .await
        .expect("served by the next node");
    assert!(again.fencing_token() > first_token);
    assert_ne!(client.current_endpoint(), cluster.url(order[0], ""));
    // The lease was kept alive through the failover.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(lease.is_held());
    again.release().await.unwrap();
    lease.revoke().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_fires_by_the_deadline_when_keepalives_stop_getting_through() {
    let cluster = Cluster::start(3).await;
    let retry = RetryPolicy {
        budget: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let client = Client::with_retry(endpoints(&cluster, &[1, 2, 3]), retry).unwrap();
    let lease = client.grant_lease(Duration::from_secs(3)).await.unwrap();
    // Let a keepalive or two be acked, then freeze the whole cluster.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for id in 1..=3 {
        cluster.pause(id);
    }
    // An ack already on its way may still land; after that nothing can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = lease.held_until().expect("held before the freeze");
    let reason = tokio::time::timeout(Duration::from_secs(10), lease.lost())
        .await
        .expect("lost() fires");
    let fired = Instant::now();
    for id in 1..=3 {
        cluster.resume(id);
    }
    assert_eq!(reason, LostReason::Expired);
    assert!(fired >= deadline, "not before the deadline");
    // No later than the deadline, give or take the scheduler on a busy
    // machine.
    assert!(
        fired <= deadline + Duration::from_millis(500),
        "fired {:?} after the deadline",
        fired - deadline
    );
    assert!(!lease.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guards_of_one_grant_release_it_when_the_last_goes_and_a_dropped_acquire_is_cleaned_up() {
    let cluster = Cluster::start(3).await;
    let client = Client::new(endpoints(&cluster, &[1, 2, 3])).unwrap();
    let lease = client.grant_lease(Duration::from_secs(30)).await.unwrap();
    let name = LockName::new("shared-grant").unwrap();
    let first = lease.try_lock(&name).await.unwrap();
    let second = lease.try_lock(&name).await.unwrap();
    assert!(
        second.fencing_token() > first.fencing_token(),
        "the second acquire re-granted it"
    );
    first.release().await.unwrap();
    let view = client.lock(&name).await.unwrap();
    assert_eq!(view.holders.len(), 1, "the second guard still holds it");
    second.release().await.unwrap();
    assert!(client.lock(&name).await.unwrap().holders.is_empty());
    // The other order: the last guard is the older one, and its release
    // names the newest grant, which the lease holds.
    let first = lease.try_lock(&name).await.unwrap();
    let second = lease.try_lock(&name).await.unwrap();
    second.release().await.unwrap();
    assert_eq!(client.lock(&name).await.unwrap().holders.len(), 1);
    first.release().await.unwrap();
    assert!(
        client.lock(&name).await.unwrap().holders.is_empty(),
        "released, not refused for its old token"
    );

    // An acquire whose caller gives up while it waits may still be granted
    // later; the lease gives the lock back once no grant can come.
    let other = client.grant_lease(Duration::from_secs(30)).await.unwrap();
    let blocker = other.try_lock(&name).await.unwrap();
    let wait = Duration::from_secs(2);
    let gave_up =
        tokio::time::timeout(Duration::from_millis(300), lease.lock_timeout(&name, wait)).await;
    assert!(gave_up.is_err(), "still waiting when the caller gave up");
    blocker.release().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = client.lock(&name).await.unwrap();
        if view.holders.is_empty() && view.queue.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned grant was never given back: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
