//! A node's Prometheus metrics, served at `GET /metrics`.
//!
//! Three sources feed them:
//! - requests, counted on the node that took them (sum them over nodes):
//!   acquire latency by outcome, keepalives, refusals, HTTP requests;
//! - the applied log, counted on every replica alike (take one node's, or
//!   the max over nodes): hold times and lease expirations;
//! - the state and raft's own metrics, read at scrape time: leases, held
//!   locks, waiters, term, indexes, leader.

use std::time::Duration;

use axum::http::Method;
use corral_api::ErrorKind;
use corral_raft::{RaftStatus, StateMachineStore, StoreMetrics};
use corral_state::{EndedHold, Kind, LockName, LockTable, QueueTally};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The content type of `/metrics` (OpenMetrics text, which Prometheus
/// reads).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How far back `corral_lock_grants_last_minute_max` looks.
const FLAP_WINDOW_MS: u64 = 60_000;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcquireLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueEventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// The queues whose depth and age `/metrics` shows, at most: a label
/// per queue, so bounded.
pub(crate) const QUEUES_SHOWN_MAX: usize = 100;

/// How an acquire ended, as its metric labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireOutcome {
    /// Granted, at once or after waiting.
    Granted,
    /// Refused at once: held by another lease.
    Busy,
    /// The wait ran out.
    Timeout,
    /// Refused: waiting would have closed a deadlock.
    Deadlock,
    /// Anything else: a bad request, a lost lease, no leader, ...
    Failed,
}

impl AcquireOutcome {
    fn label(self) -> &'static str {
        match self {
            AcquireOutcome::Granted => "granted",
            AcquireOutcome::Busy => "busy",
            AcquireOutcome::Timeout => "timeout",
            AcquireOutcome::Deadlock => "deadlock",
            AcquireOutcome::Failed => "failed",
        }
    }
}

/// The methods the API has, by name; any other as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Lock => "lock",
        Kind::Semaphore => "semaphore",
        Kind::Election => "election",
    }
}

/// Every metric of one node.
pub(crate) struct Metrics {
    registry: Registry,
    /// Storage measurements, handed to the raft layer.
    pub store: StoreMetrics,
    acquire: HistogramFamily<AcquireLabels>,
    hold: HistogramFamily<KindLabels>,
    keepalives: Family<ResultLabels, Counter>,
    lease_expirations: Counter,
    refusals: Family<ReasonLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    leases: Gauge,
    held: Family<KindLabels, Gauge>,
    waiters: Family<KindLabels, Gauge>,
    grants_last_minute_max: Gauge,
    queue_items: Family<QueueEventLabels, Counter>,
    queue_ready: Family<QueueLabels, Gauge>,
    queue_oldest_ready_age: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    term: Gauge,
    is_leader: Gauge,
    has_leader: Gauge,
    leader_changes: Counter,
    commit_index: Gauge,
    applied_index: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric: the node's named `corral_*`,
    /// and the standard `process_cpu_seconds_total` and
    /// `process_resident_memory_bytes`.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let store = StoreMetrics::default();
        let m = Metrics {
            store,
            // 0.5 ms to about 65 s.
            acquire: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 18))
            }),
            // 1 ms to about 70 min.
            hold: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 4.0, 12))
            }),
            keepalives: Family::default(),
            lease_expirations: Counter::default(),
            refusals: Family::default(),
            http_requests: Family::default(),
            // 0.5 ms to about 65 s.
            http_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 18))
            }),
            leases: Gauge::default(),
            held: Family::default(),
            waiters: Family::default(),
            grants_last_minute_max: Gauge::default(),
            queue_items: Family::default(),
            queue_ready: Family::default(),
            queue_oldest_ready_age: Family::default(),
            term: Gauge::default(),
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            leader_changes: Counter::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            registry: Registry::default(),
        };
        m.register_into(registry)
    }

    /// Registers every metric under `corral_`, in the order `/metrics`
    /// lists them.
    fn register_into(mut self, mut root: Registry) -> Metrics {
        let r = root.sub_registry_with_prefix("corral");
        self.store.register(r);
        self.register_requests(r);
        self.register_table(r);
        self.register_raft(r);
        self.registry = root;
        self
    }

    /// What requests did and how long they took.
    fn register_requests(&self, r: &mut Registry) {
        r.register_with_unit(
            "acquire_duration",
            "Time from an acquire request to its answer, by kind and outcome (granted, busy, timeout, deadlock, failed)",
            Unit::Seconds,
            self.acquire.clone(),
        );
        r.register_with_unit(
            "hold_duration",
            "How long ended holds were held, in state-machine time (the same on every replica)",
            Unit::Seconds,
            self.hold.clone(),
        );
        r.register(
            "keepalives",
            "Keepalives taken by this node, by result (acked, refused)",
            self.keepalives.clone(),
        );
        r.register(
            "lease_expirations",
            "Leases expired by the leader (the same on every replica)",
            self.lease_expirations.clone(),
        );
        r.register(
            "refusals",
            "Requests refused for safety, by reason (stale_token, deadlock, order_violation)",
            self.refusals.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            self.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            self.http_duration.clone(),
        );
    }

    /// What the lock table holds.
    fn register_table(&self, r: &mut Registry) {
        r.register("leases", "Live leases", self.leases.clone());
        r.register(
            "held",
            "Locks, semaphores and elections held by at least one lease, by kind",
            self.held.clone(),
        );
        r.register(
            "waiters",
            "Leases waiting in queues, by kind",
            self.waiters.clone(),
        );
        r.register(
            "lock_grants_last_minute_max",
            "The most grants any one lock had in the last minute of state-machine time (ownership flapping)",
            self.grants_last_minute_max.clone(),
        );
        r.register(
            "queue_items",
            "Work queue items by what happened to them: enqueued, claimed, acked, nacked, timed_out (claim ran out), lease_lost (claimer's lease ended), dead_lettered, dropped, stale_refused (an ack, extend or nack of a lost claim)",
            self.queue_items.clone(),
        );
        r.register(
            "queue_ready",
            "Items ready to be claimed, by queue (the first 100 queues by name)",
            self.queue_ready.clone(),
        );
        r.register_with_unit(
            "queue_oldest_ready_age",
            "How long the oldest ready item of each queue has waited, in state-machine time (the first 100 queues by name)",
            Unit::Seconds,
            self.queue_oldest_ready_age.clone(),
        );
    }

    /// What this node's raft knows.
    fn register_raft(&self, r: &mut Registry) {
        r.register("raft_term", "This node's raft term", self.term.clone());
        r.register(
            "raft_is_leader",
            "1 if this node is the leader",
            self.is_leader.clone(),
        );
        r.register(
            "raft_has_leader",
            "1 if this node knows a leader",
            self.has_leader.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Times this node saw the leader change",
            self.leader_changes.clone(),
        );
        r.register(
            "raft_commit_index",
            "The last log index this node knows committed",
            self.commit_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "The last log index this node applied",
            self.applied_index.clone(),
        );
    }

    /// Records an acquire's latency and outcome.
    pub(crate) fn acquire_done(&self, kind: Kind, outcome: AcquireOutcome, took: Duration) {
        self.acquire
            .get_or_create(&AcquireLabels {
                kind: kind_label(kind),
                outcome: outcome.label(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records keepalives: how many were acked and refused.
    pub(crate) fn keepalives_done(&self, acked: u64, refused: u64) {
        for (result, n) in [("acked", acked), ("refused", refused)] {
            if n > 0 {
                self.keepalives
                    .get_or_create(&ResultLabels { result })
                    .inc_by(n);
            }
        }
    }

    /// Records an answered HTTP request, and the safety refusal it carried.
    pub(crate) fn http_done(
        &self,
        route: String,
        method: &Method,
        status: u16,
        kind: Option<&ErrorKind>,
        took: Duration,
    ) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.clone(),
                method: method_label(method),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
        let reason = match kind {
            Some(ErrorKind::StaleToken { .. }) => "stale_token",
            Some(ErrorKind::Deadlock { .. }) => "deadlock",
            Some(ErrorKind::OrderViolation { .. }) => "order_violation",
            _ => return,
        };
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts what an applied entry did to the work queues.
    pub(crate) fn queue_applied(&self, tally: &QueueTally) {
        let counts = [
            ("enqueued", tally.enqueued),
            ("claimed", tally.claimed),
            ("acked", tally.acked),
            ("nacked", tally.nacked),
            ("timed_out", tally.timed_out),
            ("lease_lost", tally.lease_lost),
            ("dead_lettered", tally.dead_lettered),
            ("dropped", tally.dropped),
            ("stale_refused", tally.stale_refused),
        ];
        for (event, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
            self.queue_items
                .get_or_create(&QueueEventLabels { event })
                .inc_by(n);
        }
    }

    /// Records what an applied entry ended.
    pub(crate) fn applied(&self, ended: &[EndedHold], expired: bool) {
        for hold in ended {
            self.hold
                .get_or_create(&KindLabels {
                    kind: kind_label(hold.kind),
                })
                .observe(hold.held_ms as f64 / 1_000.0);
        }
        if expired {
            self.lease_expirations.inc();
        }
    }

    /// Records a change of the known leader.
    pub(crate) fn leader_changed(&self) {
        self.leader_changes.inc();
    }

    /// Reads the gauges from the state and raft, then renders everything.
    pub(crate) fn render(&self, status: &RaftStatus, state: &StateMachineStore) -> String {
        self.term.set(to_i64(status.term));
        self.is_leader.set(i64::from(status.leads));
        self.has_leader.set(i64::from(status.leader_id.is_some()));
        self.commit_index
            .set(to_i64(status.commit_index.unwrap_or(0)));
        self.applied_index
            .set(to_i64(status.applied_index.unwrap_or(0)));
        self.read_table(state);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn read_table(&self, state: &StateMachineStore) {
        for kind in Kind::ALL {
            let (held, waiting) = held_and_waiting(state, kind);
            let labels = KindLabels {
                kind: kind_label(kind),
            };
            self.held.get_or_create(&labels).set(to_i64(held));
            self.waiters.get_or_create(&labels).set(to_i64(waiting));
        }
        let table = &state.read().table;
        self.leases.set(to_i64(table.lease_count() as u64));
        let since = table.now_ms().saturating_sub(FLAP_WINDOW_MS);
        let busiest = table.most_granted_since(since).map_or(0, |(_, n)| n);
        self.grants_last_minute_max.set(to_i64(busiest as u64));
        self.read_queues(table);
    }

    /// Each queue's ready depth and oldest ready age; a queue gone since
    /// the last scrape loses its series.
    fn read_queues(&self, table: &LockTable) {
        self.queue_ready.clear();
        self.queue_oldest_ready_age.clear();
        let now_ms = table.now_ms();
        for (name, queue) in table.queues().iter().take(QUEUES_SHOWN_MAX) {
            let labels = QueueLabels {
                queue: name.to_string(),
            };
            let ready = queue.items.values().filter(|i| i.is_ready(now_ms));
            let (count, oldest) = ready.fold((0u64, None), |(n, oldest), item| {
                (n + 1, oldest.or(Some(item.visible_at_ms)))
            });
            self.queue_ready.get_or_create(&labels).set(to_i64(count));
            let age_ms = oldest.map_or(0, |at| now_ms.saturating_sub(at));
            self.queue_oldest_ready_age
                .get_or_create(&labels)
                .set(age_ms as f64 / 1_000.0);
        }
    }
}

/// The most locks counted under one taking of the state lock.
pub(crate) const LOCKS_PER_READ_MAX: usize = 4_096;

/// The applied lock table, read under the state lock: each call is one
/// short hold of it.
pub(crate) trait ReadTable {
    /// Runs `read` on the table under the lock.
    fn read_table<T>(&self, read: impl FnOnce(&LockTable) -> T) -> T;
}

impl ReadTable for StateMachineStore {
    fn read_table<T>(&self, read: impl FnOnce(&LockTable) -> T) -> T {
        read(&self.read().table)
    }
}

/// How many names of `kind` are held, and how many waiters they have.
/// The walk takes the state lock for [`LOCKS_PER_READ_MAX`] names at a
/// time and lets go in between, so that a scrape of a million locks never
/// holds apply back for the whole walk; the counts are then not of one
/// instant, which a gauge does not need.
pub(crate) fn held_and_waiting(tables: &impl ReadTable, kind: Kind) -> (u64, u64) {
    let (mut held, mut waiting) = (0u64, 0u64);
    let mut after: Option<LockName> = None;
    loop {
        let (counted, last) = tables.read_table(|table| {
            let (mut counted, mut last) = (0usize, None);
            let chunk = table.in_use_after(kind, after.as_ref());
            for (name, lock) in chunk.take(LOCKS_PER_READ_MAX) {
                held += u64::from(!lock.holders.is_empty());
                waiting += lock.waiters.len() as u64;
                counted += 1;
                last = Some(name);
            }
            (counted, last.cloned())
        });
        if counted < LOCKS_PER_READ_MAX {
            return (held, waiting);
        }
        after = last;
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The process' CPU time and resident memory, read when scraped.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cpu = ConstCounter::new(process_cpu_seconds());
        let metric = encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time of this process",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?;
        cpu.encode(metric)?;
        if let Some(bytes) = resident_bytes() {
            let memory = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory of this process",
                Some(&Unit::Bytes),
                memory.metric_type(),
            )?;
            memory.encode(metric)?;
        }
        Ok(())
    }
}

/// User plus system CPU seconds of this process.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Resident bytes of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system setting.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page_size > 0).then(|| pages * page_size)
}
