//! The workloads: workers cycling acquire/release, each with its own lease.

use std::time::Duration;

use corral_api::{CycleSamples, LoadRequest};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::report::Report;
use crate::target::{BenchError, Lease, Target};

/// What the workers do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Each worker cycles over 16 names of its own.
    Uncontended,
    /// Every worker cycles on one name: hand-offs per second.
    Contended,
    /// Every worker cycles push, claim, ack on one work queue (corral
    /// only): the claim is the "acquire", the ack the "release".
    Queue,
}

/// The ttl of the workers' leases.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long one acquire may wait in the queue.
const WAIT: Duration = Duration::from_secs(10);

/// Runs `workload` with `workers` workers against `target` for `duration`,
/// on names under `prefix`.
pub async fn run(
    target: &Target,
    workload: Workload,
    workers: usize,
    duration: Duration,
    prefix: &str,
) -> Report {
    let started = Instant::now();
    let until = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let target = target.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move { work(&target, workload, worker, &prefix, until).await })
        })
        .collect();
    let mut all = CycleSamples::default();
    for task in tasks {
        match task.await {
            Ok(samples) => all.merge(samples),
            Err(_) => all.errors += 1,
        }
    }
    Report {
        target: target.name().to_string(),
        workload,
        summary: all.summary(workers, started.elapsed()),
    }
}

/// Runs `workload` (uncontended or contended) with `workers` workers for
/// `duration` inside the node at `target`'s first endpoint (`POST
/// /test/load`), with no client HTTP: what raft, the log and the state
/// machine do on their own. The report's target says whether that node
/// led.
pub async fn run_inside(
    target: &Target,
    workload: Workload,
    workers: usize,
    duration: Duration,
) -> Result<Report, BenchError> {
    let contended = match workload {
        Workload::Uncontended => false,
        Workload::Contended => true,
        Workload::Queue => {
            return Err(BenchError::Unexpected(
                "a node runs lock cycles only, not queue ones".into(),
            ))
        }
    };
    let request = LoadRequest {
        workers,
        duration_ms: duration.as_millis().try_into().unwrap_or(u64::MAX),
        contended,
    };
    let addr = target.first_endpoint()?;
    let load = target.load_inside(addr, &request).await?;
    let node = if load.on_leader {
        "the leader"
    } else {
        "a follower"
    };
    Ok(Report {
        target: format!("corral inside {node}"),
        workload,
        summary: load.cycles,
    })
}

/// One worker: cycles until `until`, keeping its lease alive at ttl/3.
async fn work(
    target: &Target,
    workload: Workload,
    worker: usize,
    prefix: &str,
    until: Instant,
) -> CycleSamples {
    let mut samples = CycleSamples::default();
    let lease = match target.grant_lease(worker, LEASE_TTL).await {
        Ok(lease) => lease,
        Err(_) => {
            samples.errors += 1;
            return samples;
        }
    };
    let mut renewed = Instant::now();
    let mut cycle = 0usize;
    while Instant::now() < until {
        if renewed.elapsed() > LEASE_TTL / 3 {
            renewed = Instant::now();
            if target.keepalive(worker, &lease).await.is_err() {
                samples.errors += 1;
            }
        }
        let name = match workload {
            Workload::Uncontended => format!("{prefix}{worker}/{}", cycle % 16),
            Workload::Contended => format!("{prefix}contended"),
            Workload::Queue => format!("{prefix}queue").replace('/', "-"),
        };
        cycle += 1;
        match workload {
            Workload::Queue => queue_cycle(target, worker, &lease, &name, &mut samples).await,
            _ => cycle_once(target, worker, &lease, &name, &mut samples).await,
        }
    }
    let _ = target.revoke(worker, &lease).await;
    samples
}

/// Push one item, claim one (perhaps another worker's), ack it.
async fn queue_cycle(
    target: &Target,
    worker: usize,
    lease: &Lease,
    queue: &str,
    samples: &mut CycleSamples,
) {
    if target.push(worker, queue).await.is_err() {
        samples.errors += 1;
        return;
    }
    let sent = Instant::now();
    let claimed = match target.claim(worker, lease, queue, WAIT).await {
        Ok(claimed) => claimed,
        Err(_) => {
            samples.errors += 1;
            return;
        }
    };
    samples.acquire.push(sent.elapsed());
    let sent = Instant::now();
    match target.ack(worker, queue, claimed).await {
        Ok(()) => samples.release.push(sent.elapsed()),
        Err(_) => samples.errors += 1,
    }
}

async fn cycle_once(
    target: &Target,
    worker: usize,
    lease: &Lease,
    name: &str,
    samples: &mut CycleSamples,
) {
    let sent = Instant::now();
    let held = match target.lock(worker, lease, name, WAIT).await {
        Ok(held) => held,
        Err(_) => {
            samples.errors += 1;
            return;
        }
    };
    samples.acquire.push(sent.elapsed());
    let sent = Instant::now();
    match target.unlock(worker, lease, &held).await {
        Ok(()) => samples.release.push(sent.elapsed()),
        Err(_) => samples.errors += 1,
    }
}
