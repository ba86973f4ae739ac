//! Upgrading: a cluster's data folders written by corral before its disk
//! and peer formats were numbered (format 0; `tests/fixtures/
//! format0-cluster.tar.gz`, three nodes on 127.0.0.5 with a lease holding
//! `fixture/1..3` and the key `fixture/k`) start under this version, keep
//! their state, take new writes, and keep both after a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The fixture's members: clients on 127.0.0.5:7101-7103, peers on
/// 7201-7203 (an address of its own, so that no other test's port is in
/// the way).
const SPEC: &str = "1=127.0.0.5:7201,2=127.0.0.5:7202,3=127.0.0.5:7203";

fn start(dir: &Path) -> Vec<Child> {
    (1..=3)
        .map(|id| {
            Command::new(env!("CARGO_BIN_EXE_corral"))
                .args(["server", "--node-id", &id.to_string()])
                .args(["--listen", &format!("127.0.0.5:710{id}")])
                .args(["--peer-listen", &format!("127.0.0.5:720{id}")])
                .args(["--initial-cluster", SPEC])
                .arg("--data-dir")
                .arg(dir.join(format!("n{id}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("corral server starts")
        })
        .collect()
}

fn stop(nodes: Vec<Child>) {
    for mut node in nodes {
        let pid = node.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        node.wait().expect("reaped");
    }
}

/// `method path` on node 1, retried while no leader answers (30 s).
async fn call(method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = http.request(method.clone(), format!("http://127.0.0.5:7101{path}"));
        if let Some(body) = &body {
            request = request.json(body);
        }
        if let Ok(answer) = request.send().await {
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if status != 503 {
                return (status, body);
            }
        }
        assert!(Instant::now() < deadline, "no leader answered {path}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_written_before_formats_were_numbered_upgrades() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format0-cluster.tar.gz");
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir.path())
        .status();
    assert!(unpacked.expect("tar").success());
    let lease = std::fs::read_to_string(dir.path().join("lease-id")).expect("the lease id");
    let lease = lease.trim();

    let nodes = start(dir.path());
    let (status, view) = call(reqwest::Method::GET, "/v1/locks?name=fixture/2", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["holder"]["lease_id"], lease, "{view}");
    assert_eq!(view["holder"]["fencing_token"], 2);
    let (status, value) = call(reqwest::Method::GET, "/v1/kv?key=fixture/k", None).await;
    assert_eq!((status, &value["value"]), (200, &json!("v1")), "{value}");
    let acquire = json!({"lease_id": lease, "name": "fixture/4"});
    let (status, grant) = call(reqwest::Method::POST, "/v1/locks/acquire", Some(acquire)).await;
    assert_eq!(
        (status, &grant["fencing_token"]),
        (200, &json!(4)),
        "{grant}"
    );
    stop(nodes);

    // Old entries and new ones side by side in the log, after a restart.
    let nodes = start(dir.path());
    let (status, view) = call(reqwest::Method::GET, "/v1/locks?name=fixture/4", None).await;
    assert_eq!(
        (status, &view["holder"]["fencing_token"]),
        (200, &json!(4)),
        "{view}"
    );
    let (status, view) = call(reqwest::Method::GET, "/v1/locks?name=fixture/1", None).await;
    assert_eq!(
        (status, &view["holder"]["lease_id"]),
        (200, &json!(lease)),
        "{view}"
    );
    stop(nodes);
}
