//! The keepalive workload: many leases kept alive at ttl/3 in batches, to
//! see that none is lost and what renewing them costs the leader. With
//! `locks`, each lease takes a lock of its own once granted: the working
//! set of a cluster in front of a million invoices, and the leader's
//! memory per lease and lock.

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::target::{BenchError, Lease, Target};
use corral_api::percentile_ms;

/// What the keepalive workload measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeepaliveReport {
    /// `corral`.
    pub target: String,
    /// Leases asked for.
    pub leases: usize,
    /// Leases granted.
    pub granted: usize,
    /// Their ttl, in seconds.
    pub ttl_seconds: f64,
    /// Leases per keepalive call.
    pub batch: usize,
    /// How long granting them all took.
    pub grant_seconds: f64,
    /// How long they were then kept alive.
    pub seconds: f64,
    /// Leases the cluster no longer had at a keepalive: lost.
    pub lost: usize,
    /// Leases renewed, counted once per renewal.
    pub renewals: usize,
    /// Renewals per second while all were granted.
    pub renewals_per_second: f64,
    /// Latency of one batch call, median and 99th percentile, in ms.
    pub batch_p50_ms: f64,
    /// Latency of one batch call, 99th percentile, in ms.
    pub batch_p99_ms: f64,
    /// CPU the leader used while they were kept alive, in cores (from its
    /// `process_cpu_seconds_total`); `None` if it could not be read or the
    /// leader changed.
    pub leader_cpu_cores: Option<f64>,
    /// Calls that failed (not counting lost leases).
    pub errors: usize,
    /// Locks the leases took, one each (0 without `locks`).
    #[serde(default)]
    pub locks: usize,
    /// Growth of the leader's resident memory from before the first grant
    /// to the steady state, per lease granted, in bytes; `None` if it
    /// could not be read or the leader changed.
    #[serde(default)]
    pub leader_rss_bytes_per_lease: Option<f64>,
}

/// What the keepalive workload does.
#[derive(Clone, Debug)]
pub struct KeepaliveSpec {
    /// How many leases.
    pub leases: usize,
    /// Their time to live; each is renewed every ttl/3.
    pub ttl: Duration,
    /// Leases per keepalive call.
    pub batch: usize,
    /// How long to keep them alive once all are granted.
    pub duration: Duration,
    /// Whether each lease takes a lock of its own, named under this
    /// prefix.
    pub locks: Option<String>,
}

/// How long granting may take before the run gives up waiting for it.
const GRANT_LIMIT: Duration = Duration::from_secs(600);

/// What every group shares.
struct Plan {
    target: Target,
    leases: usize,
    ttl: Duration,
    duration: Duration,
    /// The lock name prefix, when each lease takes a lock.
    locks: Option<String>,
    /// Leases granted (or given up at the cluster's limit) so far, over
    /// all groups.
    granted: AtomicUsize,
    /// Set when the last lease is granted: the steady state starts.
    steady: watch::Sender<Option<Instant>>,
    /// When the run stops whatever happens.
    hard_stop: Instant,
}

impl Plan {
    /// `n` more leases are settled (granted, or given up at the cluster's
    /// limit); the steady state starts when all are.
    fn settle(&self, n: usize) {
        let before = self.granted.fetch_add(n, Ordering::Relaxed);
        if before < self.leases && before + n >= self.leases {
            self.steady.send_replace(Some(Instant::now()));
        }
    }
}

/// Grants `leases` leases of `ttl` in groups of `batch`, renews each group
/// every ttl/3 with one call (also while the rest are still being
/// granted), and keeps them alive for `duration` once all are granted.
/// corral only: etcd has no batch keepalive over its gateway.
pub async fn keepalive(target: &Target, spec: KeepaliveSpec) -> KeepaliveReport {
    let KeepaliveSpec {
        leases,
        ttl,
        batch,
        duration,
        locks,
    } = spec;
    let batch = batch.max(1);
    let started = Instant::now();
    let rss_before = leader_rss_before(target).await;
    let plan = Arc::new(Plan {
        target: target.clone(),
        leases,
        ttl,
        duration,
        locks,
        granted: AtomicUsize::new(0),
        steady: watch::channel(None).0,
        hard_stop: started + GRANT_LIMIT + duration,
    });
    let cpu = tokio::spawn(leader_cpu_cores(plan.clone()));
    let rss = tokio::spawn(leader_rss_growth(plan.clone(), rss_before));
    let mut all = run_groups(&plan, batch).await;
    let steady_from = *plan.steady.borrow();
    let grant_seconds = steady_from
        .map_or(started.elapsed(), |t| t - started)
        .as_secs_f64();
    let seconds = steady_from.map_or(0.0, |t| t.elapsed().as_secs_f64());
    KeepaliveReport {
        target: target.name().to_string(),
        leases,
        granted: all.granted,
        ttl_seconds: ttl.as_secs_f64(),
        batch,
        grant_seconds,
        seconds,
        lost: all.lost,
        renewals: all.steady_renewals,
        renewals_per_second: if seconds > 0.0 {
            all.steady_renewals as f64 / seconds
        } else {
            0.0
        },
        batch_p50_ms: percentile_ms(&mut all.calls, 0.50),
        batch_p99_ms: percentile_ms(&mut all.calls, 0.99),
        leader_cpu_cores: cpu.await.ok().flatten(),
        errors: all.errors,
        locks: all.locks,
        leader_rss_bytes_per_lease: rss
            .await
            .ok()
            .flatten()
            .map(|grown| grown / all.granted.max(1) as f64),
    }
}

/// The leader's resident memory, in its `/metrics`.
const RSS_METRIC: &str = "process_resident_memory_bytes";

/// The leader's resident memory before the run. A cluster just started
/// may not know its members' client addresses yet (it learns them within
/// seconds), so this asks again for a while.
async fn leader_rss_before(target: &Target) -> Option<(u64, f64)> {
    for _ in 0..20 {
        if let Some(rss) = target.leader_metric(RSS_METRIC).await {
            return Some(rss);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// How much the leader's resident memory grew from `before` to the middle
/// of the steady state, in bytes; `None` if it could not be read or the
/// leader changed.
async fn leader_rss_growth(plan: Arc<Plan>, before: Option<(u64, f64)>) -> Option<f64> {
    let (leader, before) = before?;
    let mut steady = plan.steady.subscribe();
    steady.wait_for(Option::is_some).await.ok()?;
    tokio::time::sleep(plan.duration / 2).await;
    let (still, after) = plan.target.leader_metric(RSS_METRIC).await?;
    (still == leader).then_some(after - before)
}

/// The leader's CPU seconds so far, in its `/metrics`.
const CPU_METRIC: &str = "process_cpu_seconds_total";

/// The leader's CPU over the steady state, in cores; `None` if it could
/// not be read or the leader changed meanwhile.
async fn leader_cpu_cores(plan: Arc<Plan>) -> Option<f64> {
    let mut steady = plan.steady.subscribe();
    steady.wait_for(Option::is_some).await.ok()?;
    let (leader, before) = plan.target.leader_metric(CPU_METRIC).await?;
    let from = Instant::now();
    tokio::time::sleep(plan.duration.saturating_sub(Duration::from_millis(500))).await;
    let (still, after) = plan.target.leader_metric(CPU_METRIC).await?;
    (still == leader).then(|| (after - before) / from.elapsed().as_secs_f64())
}

/// Runs the leases in groups of `batch`, all at once, and adds up what
/// the groups did.
async fn run_groups(plan: &Arc<Plan>, batch: usize) -> Group {
    debug_assert!(batch > 0, "a group holds at least one lease");
    let tasks: Vec<_> = (0..plan.leases.div_ceil(batch))
        .map(|group| {
            let plan = plan.clone();
            let size = batch.min(plan.leases - group * batch);
            tokio::spawn(async move { Group::run(&plan, group, size).await })
        })
        .collect();
    let mut all = Group::default();
    for task in tasks {
        match task.await {
            Ok(group) => all.merge(group),
            Err(_) => all.errors += 1,
        }
    }
    debug_assert!(
        all.granted <= plan.leases,
        "no group grants more than its size"
    );
    all
}

/// One group of leases and what happened to it.
#[derive(Default)]
struct Group {
    granted: usize,
    locks: usize,
    lost: usize,
    steady_renewals: usize,
    calls: Vec<Duration>,
    errors: usize,
}

impl Group {
    /// Takes a lock of the lease's own, when the plan says so; its name
    /// is the prefix, the group and the lease's place in it.
    async fn take_lock(&mut self, plan: &Plan, group: usize, lease: &Lease) {
        let Some(prefix) = &plan.locks else {
            return;
        };
        let name = format!("{prefix}{group}/{}", self.granted);
        match plan.target.lock(group, lease, &name, Duration::ZERO).await {
            Ok(_) => self.locks += 1,
            Err(_) => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Group) {
        self.granted += other.granted;
        self.locks += other.locks;
        self.lost += other.lost;
        self.steady_renewals += other.steady_renewals;
        self.calls.extend(other.calls);
        self.errors += other.errors;
    }

    /// Grants the group's `size` leases and renews them every ttl/3 until
    /// the steady state has lasted its duration.
    async fn run(plan: &Plan, group: usize, mut size: usize) -> Group {
        let mut done = Group::default();
        let mut mine: Vec<Lease> = Vec::with_capacity(size);
        let mut steady = plan.steady.subscribe();
        let every = plan.ttl / 3;
        // Spread the groups' renewals over the period.
        let mut next_renewal = Instant::now() + every.mul_f64((group % 16) as f64 / 16.0);
        while Instant::now() < plan.hard_stop {
            let steady_since = *steady.borrow_and_update();
            if steady_since.is_some_and(|since| since.elapsed() >= plan.duration) {
                break;
            }
            if Instant::now() >= next_renewal && !mine.is_empty() {
                next_renewal += every;
                let sent = Instant::now();
                match plan.target.keepalive_all(group, &mine).await {
                    Ok(gone) => {
                        done.calls.push(sent.elapsed());
                        if steady_since.is_some() {
                            done.steady_renewals += mine.len() - gone.len();
                        }
                        done.lost += gone.len();
                        mine.retain(|l| !gone.contains(&l.id));
                    }
                    Err(_) => done.errors += 1,
                }
            } else if done.granted < size {
                match plan.target.grant_lease(group, plan.ttl).await {
                    Ok(lease) => {
                        done.take_lock(plan, group, &lease).await;
                        mine.push(lease);
                        done.granted += 1;
                        plan.settle(1);
                    }
                    // The cluster holds as many leases as it may: a grant
                    // whose answer was lost may have taken a place. This
                    // group keeps what it has.
                    Err(BenchError::Refused { status: 429, .. }) => {
                        done.errors += 1;
                        plan.settle(size - done.granted);
                        size = done.granted;
                    }
                    Err(_) => {
                        done.errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            } else {
                let wait = next_renewal.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(wait, steady.changed()).await;
            }
        }
        done
    }
}
