//! The workloads: workers cycling acquire/release, each with its own lease.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::report::{Report, Samples};
use crate::target::{Lease, Target};

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
    let mut all = Samples::default();
    for task in tasks {
        match task.await {
            Ok(samples) => all.merge(samples),
            Err(_) => all.errors += 1,
        }
    }
    all.report(target.name(), workload, workers, started.elapsed())
}

/// One worker: cycles until `until`, keeping its lease alive at ttl/3.
async fn work(
    target: &Target,
    workload: Workload,
    worker: usize,
    prefix: &str,
    until: Instant,
) -> Samples {
    let mut samples = Samples::default();
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
    samples: &mut Samples,
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
    samples: &mut Samples,
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
