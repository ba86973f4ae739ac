//! `corral bench`: load against a cluster, measured from the client side.
//!
//! Each worker takes its own lease and cycles acquire/release: over names of
//! its own (`uncontended`) or all on one name (`contended`, which measures
//! hand-offs). It reports cycles per second and the acquire and release
//! latencies, for comparing runs made side by side, not as absolute truth.

use std::time::Duration;

use clap::{Args, ValueEnum};
use corral_client::{Client, LockName};
use serde::Serialize;
use tokio::time::Instant;

use super::output::{self, duration, parse_duration};
use super::{exit, lock_name};

/// What the workers do.
#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Each worker cycles over 16 names of its own.
    Uncontended,
    /// Every worker cycles on one name: hand-offs per second.
    Contended,
}

/// `corral bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The workload.
    #[arg(long, value_enum, default_value = "uncontended")]
    pub workload: Workload,
    /// Concurrent workers, each with its own lease.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Name prefix of the locks used.
    #[arg(long, default_value = "bench/")]
    pub prefix: String,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    workload: Workload,
    workers: usize,
    seconds: f64,
    cycles: usize,
    cycles_per_second: f64,
    acquire_p50_ms: f64,
    acquire_p99_ms: f64,
    release_p50_ms: f64,
    release_p99_ms: f64,
    errors: usize,
}

#[derive(Default)]
struct Samples {
    acquire: Vec<Duration>,
    release: Vec<Duration>,
    errors: usize,
}

/// Runs the workload and prints the report; exit 1 if no cycle completed.
pub async fn run(client: &Client, args: BenchArgs, json: bool) -> anyhow::Result<i32> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    lock_name(&format!("{}probe", args.prefix))?;
    let started = Instant::now();
    let until = started + args.duration;
    let tasks: Vec<_> = (0..args.workers)
        .map(|worker| {
            let client = client.clone();
            let prefix = args.prefix.clone();
            let workload = args.workload;
            tokio::spawn(async move { work(client, workload, worker, prefix, until).await })
        })
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        let samples = task.await?;
        all.acquire.extend(samples.acquire);
        all.release.extend(samples.release);
        all.errors += samples.errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = Report {
        workload: args.workload,
        workers: args.workers,
        seconds,
        cycles: all.release.len(),
        cycles_per_second: all.release.len() as f64 / seconds,
        acquire_p50_ms: percentile_ms(&mut all.acquire, 0.50),
        acquire_p99_ms: percentile_ms(&mut all.acquire, 0.99),
        release_p50_ms: percentile_ms(&mut all.release, 0.50),
        release_p99_ms: percentile_ms(&mut all.release, 0.99),
        errors: all.errors,
    };
    if json {
        output::json(&report)?;
    } else {
        let rows = vec![vec![
            format!("{:?}", report.workload).to_lowercase(),
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
    Ok(if report.cycles > 0 {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// One worker: cycles until `until`.
async fn work(
    client: Client,
    workload: Workload,
    worker: usize,
    prefix: String,
    until: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let lease = match client.grant_lease(Duration::from_secs(10)).await {
        Ok(lease) => lease,
        Err(_) => {
            samples.errors += 1;
            return samples;
        }
    };
    let mut cycle = 0usize;
    while Instant::now() < until {
        let name = match workload {
            Workload::Uncontended => format!("{prefix}{worker}/{}", cycle % 16),
            Workload::Contended => format!("{prefix}contended"),
        };
        cycle += 1;
        let Ok(name) = LockName::new(name) else {
            samples.errors += 1;
            break;
        };
        let sent = Instant::now();
        let guard = match lease.lock_timeout(&name, Duration::from_secs(10)).await {
            Ok(guard) => guard,
            Err(_) => {
                samples.errors += 1;
                continue;
            }
        };
        samples.acquire.push(sent.elapsed());
        let sent = Instant::now();
        match guard.release().await {
            Ok(()) => samples.release.push(sent.elapsed()),
            Err(_) => samples.errors += 1,
        }
    }
    let _ = lease.revoke().await;
    samples
}

/// The `q` quantile of `samples`, in milliseconds; 0 without samples.
fn percentile_ms(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[at].as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut samples, 0.50), 51.0);
        assert_eq!(percentile_ms(&mut samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&mut [], 0.5), 0.0);
    }
}
