//! The `corral` command line against a real 3-node cluster: `corral lock`
//! serializes commands and stops them when the lease is lost; `corral
//! cluster members|add|remove` show and change the membership; `corral
//! queue work` runs a command per item, acking or nacking it.

mod harness;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use corral_api::ITEM_PAYLOAD_BYTES_MAX;
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

/// Runs `corral` with `args` and `--json`; its exit code and what it
/// printed on stdout, as JSON (null if none), and stderr.
async fn corral_json(cluster: &Cluster, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let output = corral(cluster)
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.code(), stdout, stderr)
}

/// The ids of a member list's voters, and of its leaders.
fn voters_and_leaders(list: &serde_json::Value) -> (Vec<u64>, Vec<u64>) {
    let members = list["members"].as_array().expect("members");
    let ids = |keep: &dyn Fn(&serde_json::Value) -> bool| {
        members
            .iter()
            .filter(|m| keep(m))
            .map(|m| m["id"].as_u64().expect("id"))
            .collect()
    };
    (
        ids(&|m| m["role"] == "voter"),
        ids(&|m| m["leader"] == true),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_members_add_and_remove_show_and_change_the_membership() {
    let mut cluster = Cluster::start_apart(3, &[]).await;
    let (code, list, stderr) = corral_json(&cluster, &["cluster", "members"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (voters, leaders) = voters_and_leaders(&list);
    assert_eq!(voters, [1, 2, 3], "{list}");
    assert_eq!(leaders, [list["leader_id"].as_u64().unwrap()], "{list}");
    let output = corral(&cluster)
        .args(["cluster", "members"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("leader ") && text.contains("PEER ADDRESS"),
        "{text}"
    );

    cluster.spawn_joining(4);
    let peer_addr = cluster.peer_addr(4);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.get(4, "/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "node 4 never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let add = [
        "cluster",
        "add",
        "--node-id",
        "4",
        "--peer-addr",
        &peer_addr,
    ];
    let (code, list, stderr) = corral_json(&cluster, &add).await;
    assert_eq!(code, Some(0), "{stderr}\n{}", cluster.logs());
    assert_eq!(voters_and_leaders(&list).0, [1, 2, 3, 4], "{list}");

    let (code, list, stderr) = corral_json(&cluster, &["cluster", "remove", "4"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(voters_and_leaders(&list).0, [1, 2, 3], "{list}");
    assert_eq!(list["retired"], serde_json::json!([4]), "{list}");
    // Removed before: refused (exit 1), with what to look at.
    let (code, _, stderr) = corral_json(&cluster, &["cluster", "remove", "4"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("MemberNotFound") && stderr.contains("retired"),
        "{stderr}"
    );
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

/// `corral bench --inside` runs the cycles in the node at its first
/// endpoint and says whether that node led; refused against etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_inside_runs_in_the_node_it_names() {
    let cluster = Cluster::start_with(3, &["--test-faults"]).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    for (id, workload, target) in [
        (leader, "uncontended", "corral inside the leader"),
        (follower, "contended", "corral inside a follower"),
    ] {
        let endpoint = cluster.url(id, "");
        let args = [
            "--endpoints",
            endpoint.as_str(),
            "bench",
            "--inside",
            "--workload",
            workload,
            "--workers",
            "2",
            "--duration",
            "1s",
            "--json",
        ];
        let output = corral(&cluster).args(args).output().await.unwrap();
        assert!(output.status.success(), "{output:?}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["target"], target, "{report}");
        assert_eq!(report["workload"], workload, "{report}");
        assert_eq!(report["workers"], 2, "{report}");
        assert!(report["cycles"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["release_p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    }
    let (code, _, stderr) = corral_json(
        &cluster,
        &["bench", "--inside", "--etcd", "http://127.0.0.1:9"],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not in etcd"), "{stderr}");
    // Only the lock workloads run inside a node; the others are refused,
    // not run over HTTP instead.
    for workload in ["queue", "keepalive", "table"] {
        let args = ["bench", "--inside", "--workload", workload];
        let (code, _, stderr) = corral_json(&cluster, &args).await;
        assert_eq!(code, Some(1), "{workload}: {stderr}");
        assert!(stderr.contains("uncontended or the contended"), "{stderr}");
    }
}

/// Runs `corral queue work` with `args`, within 30 s; its output.
async fn queue_work(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    let run = corral(cluster).args(["queue", "work"]).args(args).output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("corral queue work ends after --max-items")
        .unwrap()
}

/// Pushes `payload` to `queue` with `corral queue push`.
async fn queue_push(cluster: &Cluster, queue: &str, payload: &str) {
    let (code, pushed, stderr) = corral_json(cluster, &["queue", "push", queue, payload]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(pushed["duplicate"], false, "{pushed}");
}

/// How many items of `queue` are ready and claimed, by `corral queue
/// stats`.
async fn ready_and_claimed(cluster: &Cluster, queue: &str) -> (u64, u64) {
    let (code, stats, stderr) = corral_json(cluster, &["queue", "stats", queue]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let count = |field: &str| stats[field].as_u64().expect("a count");
    (count("ready"), count("claimed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_work_acks_the_items_its_command_did_and_nacks_a_failure() {
    let cluster = Cluster::start(3).await;
    let dir = tempfile::TempDir::new().unwrap();
    let done = dir.path().join("done");
    // A name with a `/` goes as one path segment.
    let queue = "jobs/email";
    for n in 1..=3 {
        queue_push(&cluster, queue, &format!(r#"{{"n":{n}}}"#)).await;
    }
    let script = format!(
        r#"echo "$CORRAL_QUEUE $CORRAL_ATTEMPT $(cat)" >> {}"#,
        done.display()
    );
    let two_workers = ["--max-items", "3", "--concurrency", "2", "--"];
    let args: Vec<&str> = [queue].into_iter().chain(two_workers).collect();
    let output = queue_work(&cluster, &[&args[..], &["sh", "-c", &script]].concat()).await;
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&done).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let expected = (1..=3).map(|n| format!(r#"jobs/email 1 {{"n":{n}}}"#));
    assert_eq!(lines, expected.collect::<Vec<_>>(), "{text}");
    assert_eq!(ready_and_claimed(&cluster, queue).await, (0, 0));

    // A command that fails leaves its item ready again, one attempt on.
    // It exits without reading its stdin: a payload larger than a pipe
    // holds (64 KiB) makes sure the write to it breaks, which must not end
    // `queue work`.
    let unread = serde_json::Value::String("x".repeat(ITEM_PAYLOAD_BYTES_MAX - 2));
    queue_push(&cluster, queue, &unread.to_string()).await;
    let failing = [queue, "--max-items", "1", "--", "sh", "-c", "exit 1"];
    let output = queue_work(&cluster, &failing).await;
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exited with 1; nacked"), "{stderr}");
    assert_eq!(ready_and_claimed(&cluster, queue).await, (1, 0));
    let listing = ["queue", "items", queue, "--state", "ready"];
    let (code, items, stderr) = corral_json(&cluster, &listing).await;
    assert_eq!(code, Some(0), "{stderr}");
    let item = &items["items"][0];
    assert_eq!((&item["payload"], &item["attempt"]), (&unread, &1.into()));
    let output = corral(&cluster)
        .args(["queue", "stats", queue])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("QUEUE") && text.contains("no limit on attempts"),
        "{text}"
    );
}

/// Runs `corral` with `args` and its stdout closed before it writes; how
/// it ended, and its stderr.
async fn with_stdout_closed(
    cluster: &Cluster,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut command = corral(cluster);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn corral");
    drop(child.stdout.take());
    let output = child.wait_with_output().await.expect("corral ends");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status, stderr)
}

/// A command whose reader goes away (`corral cluster status | head -0`)
/// ends by SIGPIPE, as Unix tools do, without a panic's backtrace. `corral
/// lock NAME`, which prints its token and holds, first gives the lock back:
/// it is free at once, not when the lease's 60 s run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;

    let cluster = Cluster::start(3).await;
    cluster.wait_leader().await;
    let (status, stderr) = with_stdout_closed(&cluster, &["cluster", "status"]).await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{stderr}");

    let hold = ["lock", "printed", "--ttl", "60s"];
    let (status, stderr) = with_stdout_closed(&cluster, &hold).await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{stderr}");
    let (code, view, stderr) = corral_json(&cluster, &["locks", "show", "printed"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(view["holder"].is_null(), "the lock is still held: {view}");
}
