//! Backup and restore on real clusters: a backup saved under load restores
//! into a new cluster with the locks as saved, and the new cluster's
//! tokens start above every token the old one handed out, after the backup
//! too. A damaged backup is refused and writes nothing.

mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{token, Cluster};
use serde_json::Value;

/// `corral` with `args` against `cluster` (none: offline); exit code and
/// what it said.
fn corral(cluster: Option<&Cluster>, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    if let Some(cluster) = cluster {
        command.env("CORRAL_ENDPOINTS", cluster.endpoints());
    }
    let output = command.args(args).output().expect("corral runs");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), said)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Polls `GET /v1/locks?name=NAME` through node 1 until it has a holder.
async fn held(cluster: &Cluster, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, view) = cluster.get(1, &format!("/v1/locks?name={name}")).await;
        if status == 200 && !view["holder"].is_null() {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never held: {status} {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node 3 replaced by a node of the old cluster (its folder from before
/// identities were kept, started with the new cluster's addresses, as an
/// operator might by mistake): the others refuse its votes and its log,
/// and the restored state stands.
async fn intruder_is_refused(new: &mut Cluster, old_node: &Path, lease: &str) {
    std::fs::remove_file(old_node.join("cluster-id")).expect("an identity file");
    new.kill(3);
    let spec: Vec<String> = new
        .nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.addr))
        .collect();
    let mut intruder = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["server", "--node-id", "3", "--listen", &new.nodes[2].addr])
        .args(["--initial-cluster", &spec.join(",")])
        .arg("--data-dir")
        .arg(old_node)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the old node starts");
    // Several election timeouts: time for the old node to campaign.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let view = held(new, "saved/3").await;
    assert_eq!(view["holder"]["lease_id"], lease, "{view}");
    let (status, body) = new.acquire(1, lease, "while-intruded", 0).await;
    assert_eq!(status, 200, "the restored cluster still writes: {body}");
    assert!(token(&body) > 1_000_000_000_000);
    let (_, theirs) = send_get(&new.url(3, "/v1/cluster")).await;
    let (_, ours) = new.get(1, "/v1/cluster").await;
    assert_ne!(theirs["cluster_id"], ours["cluster_id"]);
    intruder.kill().expect("kill the old node");
    intruder.wait().expect("reaped");
    new.restart(3);
}

/// `GET url` with a plain client; status and body.
async fn send_get(url: &str) -> (u16, Value) {
    harness::send(reqwest::Client::new().get(url), None, None).await
}

/// A lease granted through node `id`, retried while the cluster answers
/// 503 (for 30 s at most).
async fn granted(cluster: &Cluster, id: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = cluster
            .post(id, "/v1/leases", serde_json::json!({"ttl_ms": 600_000}))
            .await;
        if status == 201 {
            return body["lease_id"].as_str().expect("lease_id").to_string();
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// A scenario reads best as one function, step after step.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restores_with_its_locks_and_tokens_above_every_old_one() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = dir.path().join("backup.json");
    let old = Cluster::start(3).await;
    let leader = old.wait_leader().await;
    let follower = old.followers_of(leader)[0];
    let lease = old.lease(follower, 600_000).await;
    for i in 1..=3 {
        let (status, _) = old
            .acquire(follower, &lease, &format!("saved/{i}"), 0)
            .await;
        assert_eq!(status, 200);
    }
    let (code, said) = corral(Some(&old), &["snapshot", "save", path(&file)]);
    assert_eq!(code, 0, "save: {said}");
    // The old cluster goes on granting after the backup.
    let mut last_old = 0;
    for i in 0..20 {
        let (status, body) = old.acquire(leader, &lease, &format!("after/{i}"), 0).await;
        assert_eq!(status, 200);
        last_old = last_old.max(token(&body));
    }
    // A copy of an old node's folder, to bring back among the new nodes.
    let old_node = dir.path().join("old-n3");
    let mut old = old;
    old.kill(3);
    let copied = Command::new("cp")
        .args(["-a", path(&old.nodes[2].data_dir), path(&old_node)])
        .status();
    assert!(copied.expect("cp").success());
    drop(old);

    // A damaged backup writes nothing.
    let bytes = std::fs::read(&file).expect("the backup");
    let damaged = dir.path().join("damaged.json");
    std::fs::write(&damaged, &bytes[..bytes.len() - 40]).expect("written");
    let refused_dir = dir.path().join("refused");
    let restore = [
        "snapshot",
        "restore",
        path(&damaged),
        "--data-dir",
        path(&refused_dir),
    ];
    let (code, said) = corral(None, &restore);
    assert_ne!(code, 0, "a damaged backup: {said}");
    assert!(
        !refused_dir.exists(),
        "nothing is written for a damaged backup"
    );

    let prepare = |_id: u64, data_dir: &Path| {
        let restore = [
            "snapshot",
            "restore",
            path(&file),
            "--data-dir",
            path(data_dir),
        ];
        let (code, said) = corral(None, &restore);
        assert_eq!(code, 0, "restore: {said}");
    };
    let mut new = Cluster::start_prepared(3, &prepare).await;
    let view = held(&new, "saved/2").await;
    assert_eq!(view["holder"]["lease_id"], lease.as_str(), "{view}");
    let (status, view) = new.get(1, "/v1/locks?name=after/0").await;
    assert_eq!(
        (status, &view["holder"]),
        (200, &Value::Null),
        "after the backup: not there"
    );
    // The restored lease lives on, and its next grant is far above
    // anything the old cluster handed out.
    let (status, body) = new.acquire(2, &lease, "new/1", 0).await;
    assert_eq!(status, 200, "{body}");
    let first_new = token(&body);
    assert!(first_new > last_old, "{first_new} after {last_old}");
    assert!(
        first_new > 1_000_000_000_000,
        "bumped by the default: {first_new}"
    );

    intruder_is_refused(&mut new, &old_node, &lease).await;

    // Restarted, it is still the restored cluster.
    new.restart_all();
    new.wait_leader().await;
    let view = held(&new, "saved/1").await;
    assert_eq!(view["holder"]["lease_id"], lease.as_str());
    // A node whose seed is still on disk (it was killed before it saw the
    // restore applied) answers writes 503 until it has replayed its log.
    let other = granted(&new, 3).await;
    let (status, body) = new.acquire(3, &other, "new/2", 0).await;
    assert_eq!(status, 200, "{body}");
    assert!(token(&body) > first_new);
}
