//! `corral dev`: a local cluster of three or five processes that forms,
//! serves, and stops with the command.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A client port base whose `nodes` client ports and peer ports (100
/// above) are all free now, below the ephemeral range.
fn free_base(nodes: u16) -> u16 {
    let start = 21_000 + (std::process::id() % 400) as u16 * 25;
    (start..31_000)
        .step_by(10)
        .find(|base| {
            (0..nodes).all(|i| {
                TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
            })
        })
        .expect("free ports for the dev cluster")
}

/// Node 1's view of the cluster once it names a leader and `nodes`
/// members, polled for at most a minute.
async fn formed(base: u16, nodes: usize) -> Value {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{base}/v1/cluster");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = http.get(&url).send().await {
            if let Ok(view) = answer.json::<Value>().await {
                let members = view["members"].as_array().map_or(0, Vec::len);
                if members == nodes && view["leader_id"].as_u64().is_some() {
                    return view;
                }
            }
        }
        assert!(Instant::now() < deadline, "the dev cluster never formed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_dev_runs_five_nodes_and_stops_them() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let base = free_base(5);
    let mut dev = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["dev", "--nodes", "5", "--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start corral dev");
    let view = formed(base, 5).await;
    let peers: Vec<&str> = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["addr"].as_str())
        .collect();
    let want: Vec<String> = (0..5)
        .map(|i| format!("127.0.0.1:{}", base + 100 + i))
        .collect();
    assert_eq!(peers, want, "{view}");
    // SIGTERM to corral dev stops every node with it.
    let pid = dev.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while dev.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "corral dev did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        assert!(
            TcpListener::bind(("127.0.0.1", base + i)).is_ok(),
            "node {} still listens",
            i + 1
        );
    }
}
