//! `corral bench`: load against a cluster (or, with `--etcd`, against an
//! etcd cluster through the same client code), measured from the client
//! side. The workloads live in the `corral-bench` crate; this prints them.

use std::time::Duration;

use clap::{Args, ValueEnum};
use corral_bench::{
    FailoverReport, KeepaliveReport, Report, SnapshotsReport, TableReport, Target, Workload,
};

use super::output::{self, duration, parse_duration};
use super::{exit, lock_name, Connection};
use super::{failover, snapshots};

/// What the workers do.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum WorkloadArg {
    /// Each worker cycles over 16 names of its own.
    Uncontended,
    /// Every worker cycles on one name: hand-offs per second.
    Contended,
    /// Every worker cycles push, claim, ack on one work queue: cycles per
    /// second, claim and ack latency (corral only).
    Queue,
    /// --leases leases kept alive at ttl/3 in batches: leases lost, and
    /// the leader's CPU (corral only).
    Keepalive,
    /// A 3-node cluster of this binary, started for the run, whose leader
    /// is killed --trials times: time until an acquire succeeds through a
    /// survivor (corral only; ignores --endpoints).
    Failover,
    /// A lock table of --leases leases, each holding one lock, built in
    /// this process: memory per lease and lock, snapshot size, encode and
    /// decode times (no cluster; ignores --endpoints).
    Table,
    /// A 3-node cluster of this binary, started for the run, holding
    /// --leases leases, each with a lock: the leader's snapshot size and
    /// build time, a new node's time to install it and serve, a killed
    /// follower's time to restart and serve (ignores --endpoints and
    /// --ttl: the leases outlive the run).
    Snapshots,
}

/// `corral bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// What to measure: locks (uncontended, contended; also on etcd), or
    /// corral's keepalive or failover.
    #[arg(long, value_enum, default_value = "uncontended")]
    pub workload: WorkloadArg,
    /// Concurrent workers, each with its own lease; worker i talks to
    /// endpoint i mod n.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// How long to run; keepalive: how long to keep the leases alive once
    /// all are granted.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Name prefix of the locks used.
    #[arg(long, default_value = "bench/")]
    pub prefix: String,
    /// Load an etcd cluster at these client URLs (comma-separated) through
    /// its JSON gateway, instead of corral.
    #[arg(long)]
    pub etcd: Option<String>,
    /// keepalive, table, snapshots: how many leases.
    #[arg(long, default_value_t = 100_000)]
    pub leases: usize,
    /// keepalive: the leases' time to live; each is renewed every ttl/3.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// keepalive: leases per keepalive call.
    #[arg(long, default_value_t = corral_api::KEEPALIVE_BATCH_MAX)]
    pub batch: usize,
    /// keepalive: each lease takes a lock of its own (named under
    /// --prefix) once granted, and the leader's memory per lease and lock
    /// is reported.
    #[arg(long)]
    pub locks: bool,
    /// failover: how many kills.
    #[arg(long, default_value_t = 10)]
    pub trials: usize,
    /// failover, snapshots: port of the run's node 1; the other nodes
    /// take the next ones, and serve peers 100 above (default: 27301 for
    /// failover, 17501 for snapshots, so that both can run beside the
    /// tests' clusters, which take ports from 20000 to 31999).
    #[arg(long)]
    pub base_port: Option<u16>,
    /// uncontended, contended: run the workers inside the node at the
    /// first endpoint (`POST /test/load`, on a node started with
    /// --test-faults), with no client HTTP: what raft, the log and the
    /// state machine do on their own (the node names its own locks, under
    /// test-load/). The report says whether that node led.
    #[arg(long)]
    pub inside: bool,
}

/// Runs the workload and prints the report; exit 1 if no cycle completed.
pub(super) async fn run(connection: &Connection, args: BenchArgs) -> anyhow::Result<i32> {
    check(&args)?;
    if let Some(code) = run_apart(&args, connection.json).await? {
        return Ok(code);
    }
    let target = match &args.etcd {
        Some(etcd) => Target::etcd(&split(etcd))?,
        None => {
            // The bench's own HTTP client has no TLS settings: refuse them
            // rather than send plain HTTP to an HTTPS cluster.
            if connection.tls().is_set() {
                anyhow::bail!("corral bench does not take --cacert, --cert or --key");
            }
            // Nor a token: it would run into 401s on a cluster with auth on.
            if connection.has_token() {
                anyhow::bail!(
                    "corral bench sends no token: it does not take --token or --token-file \
                     (CORRAL_TOKEN, CORRAL_TOKEN_FILE)"
                );
            }
            Target::corral(&split(&connection.endpoints))?
        }
    };
    let workload = match args.workload {
        WorkloadArg::Uncontended => Workload::Uncontended,
        WorkloadArg::Contended => Workload::Contended,
        WorkloadArg::Queue if args.etcd.is_some() => anyhow::bail!("etcd has no work queue"),
        WorkloadArg::Queue => Workload::Queue,
        WorkloadArg::Keepalive => {
            let spec = corral_bench::KeepaliveSpec {
                leases: args.leases,
                ttl: args.ttl,
                batch: args.batch,
                duration: args.duration,
                locks: args.locks.then(|| args.prefix.clone()),
            };
            let report = corral_bench::keepalive(&target, spec).await;
            print_keepalive(&report, connection.json)?;
            return Ok(if report.granted > 0 && report.lost == 0 {
                exit::OK
            } else {
                exit::ERROR
            });
        }
        WorkloadArg::Table | WorkloadArg::Snapshots | WorkloadArg::Failover => {
            unreachable!("run apart, above")
        }
    };
    let report = if args.inside {
        corral_bench::run_inside(&target, workload, args.workers, args.duration).await?
    } else {
        corral_bench::run(&target, workload, args.workers, args.duration, &args.prefix).await
    };
    if connection.json {
        output::json(&report)?;
    } else {
        print_table(&report)?;
    }
    Ok(if report.summary.cycles > 0 {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Refuses arguments that do not go together.
fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    lock_name(&format!("{}probe", args.prefix))?;
    if args.inside && args.etcd.is_some() {
        anyhow::bail!("--inside runs the workers in a corral node, not in etcd");
    }
    let lock_cycles = matches!(
        args.workload,
        WorkloadArg::Uncontended | WorkloadArg::Contended
    );
    if args.inside && !lock_cycles {
        anyhow::bail!("--inside runs the uncontended or the contended workload only");
    }
    Ok(())
}

/// Runs the workloads that bring their own table or cluster and ignore
/// --endpoints (table, snapshots, failover), and prints their report;
/// `None` for the others.
async fn run_apart(args: &BenchArgs, json: bool) -> anyhow::Result<Option<i32>> {
    match args.workload {
        WorkloadArg::Table => {
            let report = corral_bench::table_scale(args.leases)?;
            print_scale(&report, json, corral_bench::table_markdown)?;
        }
        WorkloadArg::Snapshots => {
            let base_port = args.base_port.unwrap_or(17501);
            let report = snapshots::run(args.leases, base_port).await?;
            print_scale(&report, json, corral_bench::snapshots_markdown)?;
        }
        WorkloadArg::Failover => {
            let base_port = args.base_port.unwrap_or(27301);
            let report = failover::run(args.trials, base_port).await?;
            print_failover(&report, json)?;
        }
        _ => return Ok(None),
    }
    Ok(Some(exit::OK))
}

fn split(endpoints: &str) -> Vec<String> {
    endpoints
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Prints a scale report as JSON, or as the one row of its markdown table.
fn print_scale<R: serde::Serialize>(
    report: &R,
    json: bool,
    markdown: fn(&[R]) -> String,
) -> anyhow::Result<()> {
    if json {
        return output::json(report);
    }
    out!("{}", markdown(std::slice::from_ref(report)))?;
    Ok(())
}

fn print_keepalive(report: &KeepaliveReport, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(report);
    }
    let rows = vec![vec![
        report.target.clone(),
        format!("{}/{}", report.granted, report.leases),
        duration(Duration::from_secs_f64(report.ttl_seconds)),
        report.batch.to_string(),
        duration(Duration::from_secs_f64(report.grant_seconds)),
        duration(Duration::from_secs_f64(report.seconds)),
        report.lost.to_string(),
        format!("{:.0}", report.renewals_per_second),
        format!("{:.2}/{:.2}", report.batch_p50_ms, report.batch_p99_ms),
        report
            .leader_cpu_cores
            .map_or("-".into(), |c| format!("{c:.2}")),
        report.errors.to_string(),
    ]];
    output::table(
        &[
            "TARGET",
            "GRANTED",
            "TTL",
            "BATCH",
            "GRANTING",
            "KEPT",
            "LOST",
            "RENEWALS/S",
            "CALL P50/P99 MS",
            "LEADER CORES",
            "ERRORS",
        ],
        &rows,
    )?;
    Ok(())
}

fn print_failover(report: &FailoverReport, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(report);
    }
    let each: Vec<String> = report.seconds.iter().map(|s| format!("{s:.2}")).collect();
    output::table(
        &["TARGET", "TRIALS", "MEDIAN S", "MAX S", "EACH S"],
        &[vec![
            report.target.clone(),
            report.trials.to_string(),
            format!("{:.2}", report.median_seconds),
            format!("{:.2}", report.max_seconds),
            each.join(" "),
        ]],
    )?;
    Ok(())
}

fn print_table(report: &Report) -> std::io::Result<()> {
    let workload = serde_json::to_value(report.workload)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let rows = vec![vec![
        report.target.clone(),
        workload,
        report.summary.workers.to_string(),
        duration(Duration::from_secs_f64(report.summary.seconds)),
        report.summary.cycles.to_string(),
        format!("{:.0}", report.summary.cycles_per_second),
        format!(
            "{:.2}/{:.2}",
            report.summary.acquire_p50_ms, report.summary.acquire_p99_ms
        ),
        format!(
            "{:.2}/{:.2}",
            report.summary.release_p50_ms, report.summary.release_p99_ms
        ),
        report.summary.errors.to_string(),
    ]];
    output::table(
        &[
            "TARGET",
            "WORKLOAD",
            "WORKERS",
            "TIME",
            "CYCLES",
            "CYCLES/S",
            "ACQUIRE P50/P99 MS",
            "RELEASE P50/P99 MS",
            "ERRORS",
        ],
        &rows,
    )
}

/// `corral bench-report`.
#[derive(Args, Debug)]
pub(crate) struct BenchReportArgs {
    /// A file of `corral bench --json` reports, one per line, of corral
    /// and etcd runs.
    pub file: std::path::PathBuf,
}

/// Prints the runs of a file side by side, with the corral/etcd ratios,
/// as Markdown.
pub(super) fn report(args: BenchReportArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.file)?;
    let reports = parse_reports(&text)?;
    out!(
        "{}",
        corral_bench::markdown(&reports.runs, &reports.keepalives, &reports.failovers)
    )?;
    if !reports.tables.is_empty() {
        outln!()?;
        outln!("Lock table scale (`--workload table`, in one process, no cluster): each lease holds one lock of its own; memory is the growth of resident memory while the table was built; the snapshot is the table as a node writes it and sends it to a follower.")?;
        outln!()?;
        out!("{}", corral_bench::table_markdown(&reports.tables))?;
    }
    if !reports.snapshots.is_empty() {
        outln!()?;
        outln!("{SNAPSHOTS_METHOD}")?;
        outln!()?;
        out!("{}", corral_bench::snapshots_markdown(&reports.snapshots))?;
    }
    Ok(exit::OK)
}

/// How `--workload snapshots` measures, above its table.
const SNAPSHOTS_METHOD: &str = "Snapshots at scale (`--workload snapshots`, each size on a 3-node cluster of its own): the leases are granted as `--workload keepalive --locks` grants them (groups of 1000, each lease then taking a lock of its own), with a ttl of 600 s so that nothing renews them while the cluster is timed; load is that time. Then one more lease takes a marker lock. The snapshot and its build are the leader's, asked for with `POST /v1/cluster/snapshot` and read from its `corral_raft_snapshot_bytes` and `corral_raft_snapshot_build_seconds` (the table copied, encoded and synced to disk). New node: a fourth node started with `--join` and added through the leader, timed from its start until it serves a linearizable read of the marker lock (`GET /v1/locks?name=`), which it can answer only once it has installed the leader's snapshot and applied the log after it; beside it, until the leader answered the add (caught up, and made a voter). Restarted follower: one of the first three, killed with SIGKILL and started again on its data, timed from its start until it serves the same read: it restores its own last snapshot and replays its log after it.";

/// The reports of a `bench-report` file, by kind.
#[derive(Default)]
struct Reports {
    runs: Vec<Report>,
    keepalives: Vec<KeepaliveReport>,
    failovers: Vec<FailoverReport>,
    tables: Vec<TableReport>,
    snapshots: Vec<SnapshotsReport>,
}

/// Sorts the lines of `corral bench --json` reports by the fields only
/// their kind has (a snapshots report also has a table's `snapshot_bytes`
/// and a keepalive's `leases`, so it is told first).
fn parse_reports(text: &str) -> anyhow::Result<Reports> {
    let mut reports = Reports::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)?;
        if value.get("join_seconds").is_some() {
            reports.snapshots.push(serde_json::from_value(value)?);
        } else if value.get("snapshot_bytes").is_some() {
            reports.tables.push(serde_json::from_value(value)?);
        } else if value.get("leases").is_some() {
            reports.keepalives.push(serde_json::from_value(value)?);
        } else if value.get("median_seconds").is_some() {
            reports.failovers.push(serde_json::from_value(value)?);
        } else {
            reports.runs.push(serde_json::from_value(value)?);
        }
    }
    Ok(reports)
}

#[cfg(test)]
#[path = "bench_test.rs"]
mod tests;
