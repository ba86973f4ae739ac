//! `corral bench`: load against a cluster (or, with `--etcd`, against an
//! etcd cluster through the same client code), measured from the client
//! side. The workloads live in the `corral-bench` crate; this prints them.

use std::time::Duration;

use clap::{Args, ValueEnum};
use corral_bench::{FailoverReport, KeepaliveReport, Report, TableReport, Target, Workload};

use super::failover;
use super::output::{self, duration, parse_duration};
use super::{exit, lock_name, Connection};

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
    /// keepalive, table: how many leases.
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
    /// failover: port of the run's node 1; nodes 2 and 3 take the next two.
    #[arg(long, default_value_t = 27301)]
    pub base_port: u16,
}

/// Runs the workload and prints the report; exit 1 if no cycle completed.
pub(super) async fn run(connection: &Connection, args: BenchArgs) -> anyhow::Result<i32> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    lock_name(&format!("{}probe", args.prefix))?;
    if let WorkloadArg::Table = args.workload {
        let report = corral_bench::table_scale(args.leases)?;
        match connection.json {
            true => output::json(&report)?,
            false => print!("{}", corral_bench::table_markdown(&[report])),
        }
        return Ok(exit::OK);
    }
    let target = match &args.etcd {
        Some(etcd) => Target::etcd(&split(etcd))?,
        None => {
            // The bench's own HTTP client has no TLS settings: refuse them
            // rather than send plain HTTP to an HTTPS cluster.
            let failover = matches!(args.workload, WorkloadArg::Failover);
            if connection.tls().is_set() && !failover {
                anyhow::bail!("corral bench does not take --cacert, --cert or --key");
            }
            // Nor a token: it would run into 401s on a cluster with auth on.
            if connection.has_token() && !failover {
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
        WorkloadArg::Table => unreachable!("measured above"),
        WorkloadArg::Failover => {
            let report = failover::run(args.trials, args.base_port).await?;
            print_failover(&report, connection.json)?;
            return Ok(exit::OK);
        }
    };
    let report =
        corral_bench::run(&target, workload, args.workers, args.duration, &args.prefix).await;
    if connection.json {
        output::json(&report)?;
    } else {
        print_table(&report);
    }
    Ok(if report.cycles > 0 {
        exit::OK
    } else {
        exit::ERROR
    })
}

fn split(endpoints: &str) -> Vec<String> {
    endpoints
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(str::to_string)
        .collect()
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
    );
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
    );
    Ok(())
}

fn print_table(report: &Report) {
    let workload = serde_json::to_value(report.workload)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let rows = vec![vec![
        report.target.clone(),
        workload,
        report.workers.to_string(),
        duration(Duration::from_secs_f64(report.seconds)),
        report.cycles.to_string(),
        format!("{:.0}", report.cycles_per_second),
        format!("{:.2}/{:.2}", report.acquire_p50_ms, report.acquire_p99_ms),
        format!("{:.2}/{:.2}", report.release_p50_ms, report.release_p99_ms),
        report.errors.to_string(),
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
    );
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
    let mut runs = Vec::new();
    let mut keepalives = Vec::new();
    let mut failovers = Vec::new();
    let mut tables = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)?;
        if value.get("snapshot_bytes").is_some() {
            tables.push(serde_json::from_value::<TableReport>(value)?);
        } else if value.get("leases").is_some() {
            keepalives.push(serde_json::from_value::<KeepaliveReport>(value)?);
        } else if value.get("median_seconds").is_some() {
            failovers.push(serde_json::from_value::<FailoverReport>(value)?);
        } else {
            runs.push(serde_json::from_value::<Report>(value)?);
        }
    }
    print!("{}", corral_bench::markdown(&runs, &keepalives, &failovers));
    if !tables.is_empty() {
        println!();
        println!("Lock table scale (`--workload table`, in one process, no cluster): each lease holds one lock of its own; memory is the growth of resident memory while the table was built; the snapshot is the table as a node writes it and sends it to a follower.");
        println!();
        print!("{}", corral_bench::table_markdown(&tables));
    }
    Ok(exit::OK)
}
