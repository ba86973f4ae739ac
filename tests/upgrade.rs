//! Upgrading: a cluster's data folders written by an older corral start
//! under this version, keep their state, take new writes, and keep both
//! after a restart. Two fixtures, three nodes each with a lease holding
//! `fixture/1..3` and the key `fixture/k`:
//! - `tests/fixtures/format0-cluster.tar.gz`, written before disk and peer
//!   formats were numbered (JSON values), on 127.0.0.5;
//! - `tests/fixtures/format1-cluster.tar.gz`, written in format 1 (a byte,
//!   then JSON), on 127.0.0.6, with a snapshot (at index 10, after the
//!   keys `filler/1..12`) and `fixture/4` taken after it, so that both a
//!   snapshot and log entries of the JSON format are read.
//!
//! Each fixture has an address of its own, so that no other test's port
//! is in the way.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One fixture: its file, the address its nodes listen on (clients on
/// ports 7101-7103, peers on 7201-7203) and the tokens it granted.
struct Fixture {
    file: &'static str,
    host: &'static str,
    tokens_granted: u64,
}

/// The nodes of a fixture's cluster, killed when dropped (a failed
/// assertion must not leave them running on the fixture's ports).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in &mut self.0 {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn start(fixture: &Fixture, dir: &Path) -> Nodes {
    let host = fixture.host;
    let spec = format!("1={host}:7201,2={host}:7202,3={host}:7203");
    let nodes = (1..=3)
        .map(|id| {
            Command::new(env!("CARGO_BIN_EXE_corral"))
                .args(["server", "--node-id", &id.to_string()])
                .args(["--listen", &format!("{host}:710{id}")])
                .args(["--peer-listen", &format!("{host}:720{id}")])
                .args(["--initial-cluster", &spec])
                // Small, so that this version writes a snapshot of its own.
                .args(["--snapshot-logs", "10"])
                .arg("--data-dir")
                .arg(dir.join(format!("n{id}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("corral server starts")
        })
        .collect();
    Nodes(nodes)
}

/// Stops the nodes as an operator would, with SIGTERM.
fn stop(mut nodes: Nodes) {
    for node in &mut nodes.0 {
        let pid = node.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        node.wait().expect("reaped");
    }
}

/// `method path` on node 1, retried while no leader answers (30 s).
async fn call(
    fixture: &Fixture,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{}:7101{path}", fixture.host);
    loop {
        let mut request = http.request(method.clone(), &url);
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

/// Unpacks `fixture` into a new folder; returns it and the lease id.
fn unpack(fixture: &Fixture) -> (tempfile::TempDir, String) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(fixture.file);
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(&file)
        .arg("-C")
        .arg(dir.path())
        .status();
    assert!(unpacked.expect("tar").success());
    let lease = std::fs::read_to_string(dir.path().join("lease-id")).expect("the lease id");
    let lease = lease.trim().to_string();
    (dir, lease)
}

async fn holder(fixture: &Fixture, name: &str) -> (u16, Value) {
    let path = format!("/v1/locks?name={name}");
    let (status, view) = call(fixture, reqwest::Method::GET, &path, None).await;
    (status, view["holder"].clone())
}

/// The fixture's cluster under this version: its state as written, a new
/// grant under the next token, a snapshot of this version's own, and all
/// of it again after a restart.
async fn upgrades(fixture: Fixture) {
    let (dir, lease) = unpack(&fixture);
    let next = fixture.tokens_granted + 1;
    let nodes = start(&fixture, dir.path());
    let (status, held) = holder(&fixture, "fixture/2").await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["lease_id"], json!(lease), "{held}");
    assert_eq!(held["fencing_token"], 2);
    let (status, value) = call(&fixture, reqwest::Method::GET, "/v1/kv?key=fixture/k", None).await;
    assert_eq!((status, &value["value"]), (200, &json!("v1")), "{value}");
    let name = format!("fixture/{next}");
    let acquire = json!({"lease_id": lease, "name": name});
    let (status, grant) = call(
        &fixture,
        reqwest::Method::POST,
        "/v1/locks/acquire",
        Some(acquire),
    )
    .await;
    assert_eq!(
        (status, &grant["fencing_token"]),
        (200, &json!(next)),
        "{grant}"
    );
    let snapshot_before = snapshot_index(&fixture).await;
    let written = write_until_a_snapshot(&fixture, next, snapshot_before).await;
    stop(nodes);

    // Old entries, new ones and this version's snapshot, after a restart.
    let nodes = start(&fixture, dir.path());
    let (status, held) = holder(&fixture, &name).await;
    assert_eq!(
        (status, &held["fencing_token"]),
        (200, &json!(next)),
        "{held}"
    );
    let (status, held) = holder(&fixture, "fixture/1").await;
    assert_eq!((status, &held["lease_id"]), (200, &json!(lease)), "{held}");
    let (status, value) = call(&fixture, reqwest::Method::GET, "/v1/kv?key=after", None).await;
    assert_eq!(
        (status, &value["value"]),
        (200, &json!(format!("a{written}"))),
        "{value}"
    );
    stop(nodes);
}

/// Node 1's last snapshot index (0 for none).
async fn snapshot_index(fixture: &Fixture) -> u64 {
    let (status, view) = call(fixture, reqwest::Method::GET, "/v1/cluster", None).await;
    assert_eq!(status, 200, "{view}");
    view["snapshot_index"].as_u64().unwrap_or(0)
}

/// Writes the key `after` under `fixture/{token}`, again and again, until
/// node 1 snapshots past `before` (at most 500 writes; one key, so that
/// the table does not grow and put the snapshot off); returns how many.
async fn write_until_a_snapshot(fixture: &Fixture, token: u64, before: u64) -> u64 {
    for i in 1..=500 {
        let put = json!({
            "key": "after",
            "value": format!("a{i}"),
            "fence": {"lock": format!("fixture/{token}"), "fencing_token": token},
        });
        let (status, put) = call(fixture, reqwest::Method::PUT, "/v1/kv", Some(put)).await;
        assert_eq!(status, 200, "{put}");
        if i % 10 == 0 && snapshot_index(fixture).await > before {
            return i;
        }
    }
    panic!("no snapshot past {before} after 500 writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_written_before_formats_were_numbered_upgrades() {
    upgrades(Fixture {
        file: "format0-cluster.tar.gz",
        host: "127.0.0.5",
        tokens_granted: 3,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_written_in_json_format_1_with_a_snapshot_upgrades() {
    let fixture = Fixture {
        file: "format1-cluster.tar.gz",
        host: "127.0.0.6",
        tokens_granted: 4,
    };
    let (dir, _) = unpack(&fixture);
    let nodes = start(&fixture, dir.path());
    // Written before the snapshot, and read from it.
    let (status, value) = call(&fixture, reqwest::Method::GET, "/v1/kv?key=filler/12", None).await;
    assert_eq!((status, &value["value"]), (200, &json!("f12")), "{value}");
    let (status, held) = holder(&fixture, "fixture/4").await;
    assert_eq!((status, &held["fencing_token"]), (200, &json!(4)), "{held}");
    stop(nodes);
    drop(dir);
    upgrades(fixture).await;
}
