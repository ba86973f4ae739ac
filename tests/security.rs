//! Security: peers served apart from clients.

mod harness;

use std::time::{Duration, Instant};

use harness::{Cluster, LEADER_TIMEOUT};
use serde_json::{json, Value};

/// Every peer endpoint, as a client might try it on the client listener.
const PEER_ROUTES: [(&str, &str); 8] = [
    ("POST", "/raft/append"),
    ("POST", "/raft/append-stream"),
    ("POST", "/raft/vote"),
    ("POST", "/raft/snapshot"),
    ("POST", "/raft/propose-stream"),
    ("POST", "/raft/read-index"),
    ("POST", "/raft/keepalive"),
    ("GET", "/raft/member"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_apart_serve_no_raft_route_to_clients_and_the_cluster_fails_over() {
    let mut cluster = Cluster::start_apart(3, &[]).await;
    for (method, path) in PEER_ROUTES {
        let method = method.parse().expect("a method");
        let url = cluster.url(1, path);
        let answer = cluster.http.request(method, url).body("{}").send().await;
        let answer = answer.expect("the client listener answers");
        assert_eq!(answer.status(), 404, "{path} on the client listener");
        let body: Value = answer.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    let member: Value = cluster
        .http
        .get(cluster.peer_url(2, "/raft/member"))
        .send()
        .await
        .expect("the peer listener answers")
        .json()
        .await
        .expect("a member body");
    assert_eq!(member["node_id"], 2);
    assert_eq!(member["client_addr"], cluster.nodes[1].addr.as_str());
    wait_client_addrs_known(&cluster, 1).await;

    // Writes through a follower reach the leader over the peer listener,
    // before and after the leader is lost.
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    let lease = cluster.lease(follower, 30_000).await;
    let (status, body) = cluster.acquire(follower, &lease, "invoice/1", 0).await;
    assert_eq!(status, 200, "{body}");
    cluster.kill(leader);
    let new_leader = cluster.wait_leader().await;
    let survivor = cluster.followers_of(new_leader)[0];
    let lease = cluster.lease(survivor, 30_000).await;
    let (status, body) = cluster.acquire(survivor, &lease, "invoice/2", 0).await;
    assert_eq!(status, 200, "{body}");
}

/// Waits until node `id` shows every member's client and peer address.
async fn wait_client_addrs_known(cluster: &Cluster, id: u64) {
    let start = Instant::now();
    loop {
        let (status, view) = cluster.get(id, "/v1/cluster").await;
        assert_eq!(status, 200, "{view}");
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let shown = |node: &harness::NodeProc| {
            members.iter().any(|m| {
                m["id"] == node.id
                    && m["client_addr"] == node.addr.as_str()
                    && Some(m["addr"].as_str().unwrap_or_default()) == node.peer_addr.as_deref()
            })
        };
        if members.len() == cluster.nodes.len() && cluster.nodes.iter().all(shown) {
            return;
        }
        assert!(
            start.elapsed() < LEADER_TIMEOUT,
            "node {id} does not show every member's addresses: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_listener_still_serves_peers_and_shows_its_client_address() {
    let cluster = Cluster::start(3).await;
    let (status, view) = cluster.get(2, "/v1/cluster").await;
    assert_eq!(status, 200);
    let me = view["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == 2).cloned())
        .unwrap_or(json!(null));
    assert_eq!(me["client_addr"], me["addr"], "{view}");
}
