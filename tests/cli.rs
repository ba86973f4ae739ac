//! The `corral` command line against a real 3-node cluster: `corral lock`
//! serializes commands and stops them when the lease is lost.

mod harness;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::Cluster;
use tokio::process::Command;

fn corral(cluster: &Cluster) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .env("CORRAL_ENDPOINTS", cluster.endpoints())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_lock_commands_never_overlap_and_their_tokens_rise() {
    let cluster = Cluster::start(3).await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("log");
    // Each command appends "start TOKEN", pauses, and appends "end TOKEN".
    let script = format!(
        "echo start $CORRAL_FENCING_TOKEN >> {log}; sleep 0.3; echo end $CORRAL_FENCING_TOKEN >> {log}",
        log = log.display()
    );
    let mut runs = Vec::new();
    for _ in 0..2 {
        for _ in 0..2 {
            let mut command = corral(&cluster);
            command.args(["lock", "ledger", "--wait", "30s", "--", "sh", "-c", &script]);
            runs.push(command.spawn().expect("spawn corral lock"));
        }
    }
    for mut run in runs {
        let status = run.wait().await.unwrap();
        assert!(status.success(), "corral lock exited with {status}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    let mut last = 0;
    for pair in lines.chunks(2) {
        let start = pair[0].strip_prefix("start ").expect("a start line");
        let end = pair[1].strip_prefix("end ").expect("then its end line");
        assert_eq!(start, end, "two holders overlapped:\n{text}");
        let token: u64 = start.parse().unwrap();
        assert!(token > last, "tokens must rise:\n{text}");
        last = token;
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_lease_stops_the_command_and_exits_non_zero() {
    let cluster = Cluster::start(3).await;
    let dir = tempfile::TempDir::new().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut command = corral(&cluster);
    command
        .args(["lock", "batch", "--grace", "1s", "--", "sh", "-c", &script])
        .stderr(Stdio::piped());
    let run = command.spawn().expect("spawn corral lock");
    // Wait until the command runs, then revoke its lease from outside.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lock = cluster.lock(1, "batch").await;
    let lease = lock["holder"]["lease_id"]
        .as_str()
        .expect("held")
        .to_string();
    let (status, _) = cluster
        .request(
            reqwest::Method::DELETE,
            2,
            &format!("/v1/leases/{lease}"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let output = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .expect("corral lock stops after its lease is lost")
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "exit code 4 for a lost lease"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lost"), "says why: {stderr}");
    assert!(!alive(pid), "the command was stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_lock_without_waiting_exits_3_and_inspection_commands_work() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    let (status, _) = cluster.acquire(1, &lease, "taken", 0).await;
    assert_eq!(status, 200);
    let output = corral(&cluster)
        .args(["lock", "taken", "--wait", "0", "--", "true"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");

    let output = corral(&cluster)
        .args(["locks", "show", "taken", "--json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let view: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(view["holder"]["lease_id"], lease.as_str());

    let output = corral(&cluster)
        .args(["locks", "history", "taken", "--json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let history: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let events = history["events"].as_array().expect("events");
    assert_eq!(events[0]["kind"], "granted", "{history}");
    assert_eq!(events[0]["lease_id"], lease.as_str());

    let output = corral(&cluster)
        .args(["locks", "list"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("NAME") && text.contains("taken"), "{text}");

    let output = corral(&cluster)
        .args(["cluster", "status"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("leader") && text.contains("ROLE"), "{text}");

    // Nothing listens here: exit 5.
    let output = corral(&cluster)
        .env("CORRAL_ENDPOINTS", "127.0.0.1:9")
        .args(["cluster", "status"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{output:?}");
}

/// Runs `corral bench` with `args` and `--json` against `cluster`, and
/// returns its report.
async fn bench_report(cluster: &Cluster, args: &[&str]) -> serde_json::Value {
    let output = corral(cluster)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_runs_both_workloads_and_reports_json() {
    let cluster = Cluster::start(3).await;
    for workload in ["uncontended", "contended"] {
        let args = ["--workload", workload, "--workers", "2", "--duration", "1s"];
        let report = bench_report(&cluster, &args).await;
        assert_eq!(report["workload"], workload);
        assert!(report["cycles"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert!(
            report["acquire_p99_ms"].as_f64().unwrap()
                >= report["acquire_p50_ms"].as_f64().unwrap()
        );
    }
    let args = [
        "--workload",
        "keepalive",
        "--leases",
        "40",
        "--batch",
        "16",
        "--ttl",
        "3s",
        "--duration",
        "3s",
    ];
    let report = bench_report(&cluster, &args).await;
    assert_eq!(report["granted"], 40, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert!(report["renewals"].as_u64().unwrap() >= 40, "{report}");
}
