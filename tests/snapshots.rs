//! Snapshots in chunks on a real cluster: a table whose snapshot takes
//! several chunks (more than `CHUNK_BYTES`, 8 MiB, before compression)
//! installs on a node that lagged behind the leader's purged log, one peer
//! request per chunk, and that node restores it from its own chunks after a
//! restart.

mod harness;

use std::time::Duration;

use harness::{token, Cluster};
use serde_json::{json, Value};

/// Values of 60 000 bytes that compress little: 200 of them make about
/// 12 MB of table, two chunks.
fn value(i: u64) -> String {
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ i;
    (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

async fn put(cluster: &Cluster, id: u64, key: &str, value: &str, fence: &Value) {
    let body = json!({"key": key, "value": value, "fence": fence});
    let (status, answer) = cluster
        .request(reqwest::Method::PUT, id, "/v1/kv", Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
}

async fn snapshot_index(cluster: &Cluster, id: u64) -> u64 {
    let (_, view) = cluster.get(id, "/v1/cluster").await;
    view["snapshot_index"].as_u64().unwrap_or(0)
}

/// Node `id`'s value of `key`, once it answers one.
async fn read_on(cluster: &Cluster, id: u64, key: &str) -> Value {
    let path = format!("/v1/kv?key={key}");
    for _ in 0..600 {
        let (status, answer) = cluster.get(id, &path).await;
        if status == 200 {
            return answer["value"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {id} never served {key}:\n{}", cluster.log_of(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_of_several_chunks_installs_on_a_lagging_node_and_restores() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let leader = cluster.wait_leader().await;
    let lagging = cluster.followers_of(leader)[0];
    let lease = cluster.lease(leader, 120_000).await;
    let (status, grant) = cluster.acquire(leader, &lease, "big", 0).await;
    assert_eq!(status, 200, "{grant}");
    let fence = json!({"lock": "big", "fencing_token": token(&grant)});
    cluster.kill(lagging);
    for i in 0..200 {
        put(&cluster, leader, &format!("big/{i}"), &value(i), &fence).await;
    }
    // One key written again and again: the log outgrows the table, so the
    // leader snapshots and purges what the lagging node would need.
    let before = snapshot_index(&cluster, leader).await;
    let mut rewrites = 0;
    while snapshot_index(&cluster, leader).await <= before + 200 {
        assert!(rewrites < 2_000, "the leader never snapshotted");
        put(&cluster, leader, "small", &rewrites.to_string(), &fence).await;
        rewrites += 1;
    }
    let (_, view) = cluster.get(leader, "/v1/cluster").await;
    assert!(view["purged_index"].as_u64() > Some(200), "{view}");
    let stored = cluster.metric(leader, "corral_raft_snapshot_bytes").await;
    assert!(stored.is_some_and(|bytes| bytes > 1e6), "{stored:?}");

    cluster.restart(lagging);
    assert_eq!(
        read_on(&cluster, lagging, "big/199").await,
        json!(value(199))
    );
    let installed = cluster
        .metric(lagging, "corral_raft_snapshots_installed")
        .await;
    assert!(installed.is_some_and(|n| n >= 1.0), "{installed:?}");

    // Restored from its own chunks.
    cluster.kill(lagging);
    cluster.restart(lagging);
    assert_eq!(read_on(&cluster, lagging, "big/0").await, json!(value(0)));
    assert!(snapshot_index(&cluster, lagging).await > before + 200);
}
