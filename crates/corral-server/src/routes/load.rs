//! `POST /test/load`: the bench's cycle (acquire, release) run from inside
//! this node, with no HTTP in front of it.
//!
//! It measures what raft, the log, replication and the state machine cost
//! on their own: run on the leader, every write is proposed here; run on a
//! follower, every write crosses the forward stream. An acquire takes the
//! acquire route's own path (its wait, its metrics), with the caller of the
//! load request and no idempotency key. The difference to the bench's
//! numbers is what client HTTP costs. The report says whether this node
//! led when the run began, and counts and times cycles with the bench's own
//! [`CycleSamples`]. Only on a node started with `--test-faults`; a 404
//! otherwise.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use corral_api::{CycleSamples, LoadReport, LoadRequest, LOAD_DURATION_MS_MAX, LOAD_WORKERS_MAX};
use corral_state::{Command, Kind, LeaseId, LockName, LockOrder, Mode, Outcome};
use tokio::time::Instant;

use super::waiting;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::JsonBody;
use crate::node::Node;

/// Each worker cycles over this many names of its own, as the bench does.
const NAMES_PER_WORKER: u64 = 16;
/// How much longer than the run a worker's lease lives: no keepalives.
const LEASE_SLACK_MS: u64 = 30_000;
/// How long an acquire may wait in the queue, as in the bench.
const WAIT_MS: u64 = 10_000;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/test/load", post(run))
}

/// What every worker of a run shares.
struct Run {
    node: Arc<Node>,
    key: IdempotencyKey,
    /// The run's names start with it.
    prefix: String,
    contended: bool,
    duration: Duration,
    until: Instant,
}

async fn run(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<LoadRequest>,
) -> Result<Json<LoadReport>, ApiError> {
    if !node.faults.is_enabled() {
        return Err(ApiError::not_found());
    }
    if !(1..=LOAD_WORKERS_MAX).contains(&request.workers) {
        return Err(ApiError::invalid(format!(
            "field `workers`: must be from 1 to {LOAD_WORKERS_MAX}, got {}",
            request.workers
        )));
    }
    if !(1..=LOAD_DURATION_MS_MAX).contains(&request.duration_ms) {
        return Err(ApiError::invalid(format!(
            "field `duration_ms`: must be from 1 to {LOAD_DURATION_MS_MAX}, got {}",
            request.duration_ms
        )));
    }
    let duration = Duration::from_millis(request.duration_ms);
    let on_leader = node.leadership().is_some();
    let started = Instant::now();
    let run = Arc::new(Run {
        node,
        key: key.without_key(),
        prefix: format!("test-load/{:08x}/", rand::random::<u32>()),
        contended: request.contended,
        duration,
        until: started + duration,
    });
    let workers: Vec<_> = (0..request.workers)
        .map(|worker| {
            let run = run.clone();
            tokio::spawn(async move { work(&run, worker).await })
        })
        .collect();
    let mut all = CycleSamples::default();
    for worker in workers {
        match worker.await {
            Ok(samples) => all.merge(samples),
            Err(_) => all.errors += 1,
        }
    }
    Ok(Json(LoadReport {
        on_leader,
        cycles: all.summary(request.workers, started.elapsed()),
    }))
}

/// One worker: a lease of its own, acquire and release until the run's
/// end, then the lease revoked.
async fn work(run: &Run, worker: usize) -> CycleSamples {
    let mut samples = CycleSamples::default();
    let lease_id = LeaseId(rand::random());
    let grant = Command::GrantLease {
        lease_id,
        ttl_ms: run.duration.as_millis() as u64 + LEASE_SLACK_MS,
        lock_order: LockOrder::default(),
        lock_delay_ms: 0,
    };
    let node = &run.node;
    if !matches!(node.propose(grant).await, Ok(Outcome::LeaseGranted { .. })) {
        samples.errors += 1;
        return samples;
    }
    let mut cycle = 0u64;
    while Instant::now() < run.until {
        let name = if run.contended {
            format!("{}contended", run.prefix)
        } else {
            format!("{}{worker}/{}", run.prefix, cycle % NAMES_PER_WORKER)
        };
        cycle += 1;
        let Ok(name) = LockName::new(name) else {
            samples.errors += 1;
            break;
        };
        if !cycle_once(run, lease_id, name, &mut samples).await {
            samples.errors += 1;
        }
    }
    if node
        .propose(Command::RevokeLease { lease_id })
        .await
        .is_err()
    {
        samples.errors += 1;
    }
    samples
}

/// Acquires `name` (waiting for it, as the bench does) and releases it,
/// timing each as the bench does; whether both were done.
async fn cycle_once(
    run: &Run,
    lease_id: LeaseId,
    name: LockName,
    samples: &mut CycleSamples,
) -> bool {
    let sent = Instant::now();
    let acquire = Command::Acquire {
        lease_id,
        name: name.clone(),
        mode: Mode::default(),
        wait_ms: WAIT_MS,
    };
    let key = run.key.clone();
    let Ok(grant) = waiting::acquire_one(&run.node, acquire, key, scope::ACQUIRE).await else {
        return false;
    };
    samples.acquire.push(sent.elapsed());
    let release = Command::Release {
        lease_id,
        name,
        kind: Kind::Lock,
        fencing_token: Some(grant.fencing_token),
    };
    let sent = Instant::now();
    let released = run.node.propose(release).await.is_ok();
    if released {
        samples.release.push(sent.elapsed());
    }
    released
}
