//! Work queues on real 3-node clusters: 500 items through workers that
//! crash, walk away from claims, stall past their deadline and nack (each
//! item acked once, by its latest claim, and no two claims of an item
//! valid at once); a lapsed claim's ack, extend and nack refused; dead
//! letters and drops after `max_attempts`; items in every state through a
//! whole-cluster restart; claims that wait, served in turn; one waiting
//! claim per lease and queue.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{code, send, Cluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The queue the workers share.
const WORK: &str = "work";
/// How many items go through the workers.
const ITEMS: u64 = 500;
/// How many workers.
const WORKERS: usize = 4;
/// The workers' lease ttl.
const TTL_MS: u64 = 2_000;
/// How often a worker keeps its lease alive.
const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);
/// The workers' claim visibility.
const VISIBILITY_MS: u64 = 1_500;
/// The visibility of one claim in three: longer than a lease lives
/// without keepalives, so that a crashed worker's items come back by its
/// lease's end, before their deadline.
const LONG_VISIBILITY_MS: u64 = 4_000;
/// How long a worker's claim waits for items.
const CLAIM_WAIT_MS: u64 = 500;
/// The most the crashing-workers test may take, from its first item on.
const WORKLOAD_BOUND: Duration = Duration::from_secs(90);
/// Generous bound of a poll.
const POLL_BOUND: Duration = Duration::from_secs(20);

/// A cheap handle on the cluster's nodes, for tasks of their own.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    /// The base URL of each node, node `i + 1` at `i`.
    bases: Vec<String>,
}

impl Api {
    fn of(cluster: &Cluster) -> Api {
        let bases = cluster
            .nodes
            .iter()
            .map(|n| cluster.url(n.id, ""))
            .collect();
        Api {
            http: cluster.http.clone(),
            bases,
        }
    }

    /// The URL of `path` on the `node`th node (modulo the node count).
    fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.bases[node % self.bases.len()])
    }

    async fn post(&self, node: usize, path: &str, body: Value) -> (u16, Value) {
        send(self.http.post(self.url(node, path)), Some(body), None).await
    }

    async fn post_empty(&self, node: usize, path: &str) -> (u16, Value) {
        send(self.http.post(self.url(node, path)), None, None).await
    }

    async fn get(&self, node: usize, path: &str) -> (u16, Value) {
        send(self.http.get(self.url(node, path)), None, None).await
    }

    async fn delete(&self, node: usize, path: &str) -> (u16, Value) {
        send(self.http.delete(self.url(node, path)), None, None).await
    }
}

/// `/v1/queues/{queue}{rest}`.
fn qpath(queue: &str, rest: &str) -> String {
    format!("/v1/queues/{queue}{rest}")
}

/// The `u64` at `field` of `body`.
fn num(body: &Value, field: &str) -> u64 {
    body[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{field}` in {body}"))
}

/// A queue's stats without the one field that moves with time.
fn steady_stats(mut stats: Value) -> Value {
    if let Some(object) = stats.as_object_mut() {
        object.remove("oldest_ready_age_ms");
    }
    stats
}

// ---------------------------------------------------------------------
// 1. Crashing workers
// ---------------------------------------------------------------------

/// How a claim ended, as its worker left it.
#[derive(Clone, Debug, PartialEq)]
enum End {
    /// Still open when the worker stopped (never, once all items are acked).
    Open,
    /// The worker acked it; the answer's status.
    Acked { status: u16 },
    /// The worker acked it after stalling past its visibility.
    AckedLate { status: u16 },
    /// The worker nacked it; the answer's status and, if 200, when the
    /// item is ready again (state-machine time).
    Nacked {
        status: u16,
        ready_at_ms: Option<u64>,
    },
    /// The worker walked away from it, its lease kept alive.
    Abandoned,
    /// The worker crashed holding it: its lease is no longer kept alive.
    Crashed,
}

/// One claimed item, as its worker got it.
#[derive(Clone, Debug)]
struct ClaimRec {
    item: u64,
    /// The payload's `n`.
    n: u64,
    token: u64,
    attempt: u32,
    worker: usize,
    lease: String,
    /// State-machine time of the claim: its deadline less its visibility.
    at_ms: u64,
    /// Its deadline, state-machine time.
    deadline_ms: u64,
    /// When its answer came (test clock).
    arrived: Instant,
    end: End,
}

/// An ack or nack and its answer.
#[derive(Clone, Debug)]
struct AnswerRec {
    what: &'static str,
    item: u64,
    token: u64,
    worker: usize,
    status: u16,
    body: Value,
}

/// A worker's lease, once it is done with it.
#[derive(Clone, Debug)]
struct LeaseRec {
    worker: usize,
    /// The worker stopped keeping it alive (a crash).
    abandoned: bool,
    /// A keepalive found it gone while the worker still meant to keep it.
    lost: bool,
    /// It lives at least until here: the send time of the last grant or
    /// keepalive the cluster acked, plus the ttl.
    proven_until: Instant,
}

/// A lease a task keeps alive until stopped.
struct LiveLease {
    id: String,
    proven: Arc<Mutex<Instant>>,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveLease {
    /// Grants a lease through `node` and starts its keepalives; `None`
    /// when no grant came within a bounded number of tries.
    async fn grant(api: &Api, node: usize, errors: &mut Vec<String>) -> Option<LiveLease> {
        for attempt in 0..20 {
            let sent = Instant::now();
            let (status, body) = api
                .post(node + attempt, "/v1/leases", json!({ "ttl_ms": TTL_MS }))
                .await;
            if status != 201 {
                errors.push(format!("lease grant: {status} {body}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let id = body["lease_id"].as_str().expect("lease_id").to_string();
            let proven = Arc::new(Mutex::new(sent));
            let lost = Arc::new(AtomicBool::new(false));
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(keep_alive(
                api.clone(),
                node,
                id.clone(),
                proven.clone(),
                lost.clone(),
                stop.clone(),
            ));
            return Some(LiveLease {
                id,
                proven,
                lost,
                stop,
                task,
            });
        }
        None
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops its keepalives; what the checks need to know of it.
    fn stop(self, worker: usize, abandoned: bool) -> LeaseRec {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
        let proven = *self.proven.lock().expect("proven lock");
        LeaseRec {
            worker,
            abandoned,
            lost: self.lost(),
            proven_until: proven + Duration::from_millis(TTL_MS),
        }
    }
}

/// Keeps lease `id` alive through `node` until `stop`, or until a
/// keepalive finds it gone.
async fn keep_alive(
    api: Api,
    node: usize,
    id: String,
    proven: Arc<Mutex<Instant>>,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let path = format!("/v1/leases/{id}/keepalive");
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let sent = Instant::now();
        let (status, _) = api.post_empty(node, &path).await;
        match status {
            200 => *proven.lock().expect("proven lock") = sent,
            404 => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // Slow or refused: the next one may do.
            _ => {}
        }
    }
}

/// Everything one worker saw.
#[derive(Default)]
struct WorkerLog {
    claims: Vec<ClaimRec>,
    answers: Vec<AnswerRec>,
    leases: BTreeMap<String, LeaseRec>,
    errors: Vec<String>,
}

/// What a worker does with one claimed item.
#[derive(Clone, Copy, Debug)]
enum Action {
    Ack,
    /// Stalls past the claim's visibility, then acks.
    AckLate,
    Nack,
    Abandon,
    Crash,
}

fn choose(rng: &mut StdRng) -> Action {
    match rng.random_range(0..100) {
        0..3 => Action::Crash,
        3..6 => Action::Abandon,
        6..11 => Action::Nack,
        11..13 => Action::AckLate,
        _ => Action::Ack,
    }
}

/// One worker: claims through random nodes, and acks, nacks, stalls,
/// walks away or crashes as its generator says, until every item is
/// acked or `deadline`.
async fn worker(
    w: usize,
    api: Api,
    seed: u64,
    acked: Arc<AtomicUsize>,
    deadline: Instant,
) -> WorkerLog {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(w as u64));
    let mut log = WorkerLog::default();
    let Some(mut lease) = LiveLease::grant(&api, w, &mut log.errors).await else {
        return log;
    };
    while (acked.load(Ordering::SeqCst) as u64) < ITEMS && Instant::now() < deadline {
        if lease.lost() {
            // Found gone by a keepalive: start over, as after a crash.
            let id = lease.id.clone();
            log.leases.insert(id, lease.stop(w, false));
            match LiveLease::grant(&api, rng.random_range(0..3), &mut log.errors).await {
                Some(new) => lease = new,
                None => return log,
            }
            continue;
        }
        let node = rng.random_range(0..3);
        let max: u32 = rng.random_range(1..=3);
        let visibility_ms = match rng.random_ratio(1, 3) {
            true => LONG_VISIBILITY_MS,
            false => VISIBILITY_MS,
        };
        let ask = json!({
            "lease_id": lease.id,
            "visibility_ms": visibility_ms,
            "max": max,
            "wait_ms": CLAIM_WAIT_MS,
        });
        let (status, answer) = api.post(node, &qpath(WORK, "/claim"), ask).await;
        let arrived = Instant::now();
        if status == 404 && code(&answer) == Some("lease_not_found") {
            lease.lost.store(true, Ordering::SeqCst);
            continue;
        }
        if status != 200 {
            log.errors.push(format!(
                "claim through node {}: {status} {answer}",
                node + 1
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let first = log.claims.len();
        for item in answer["items"].as_array().expect("items") {
            let deadline_ms = num(item, "visible_at_ms");
            log.claims.push(ClaimRec {
                item: num(item, "item_id"),
                n: num(&item["payload"], "n"),
                token: num(item, "fencing_token"),
                attempt: u32::try_from(num(item, "attempt")).expect("an attempt"),
                worker: w,
                lease: lease.id.clone(),
                at_ms: deadline_ms - visibility_ms,
                deadline_ms,
                arrived,
                end: End::Open,
            });
        }
        let mut crashed = false;
        for index in first..log.claims.len() {
            if crashed {
                log.claims[index].end = End::Crashed;
                continue;
            }
            let action = choose(&mut rng);
            let (item, token) = (log.claims[index].item, log.claims[index].token);
            let node = rng.random_range(0..3);
            let named = json!({ "item_id": item, "fencing_token": token });
            match action {
                Action::Crash => {
                    log.claims[index].end = End::Crashed;
                    crashed = true;
                }
                Action::Abandon => log.claims[index].end = End::Abandoned,
                Action::Nack => {
                    let delay_ms: u64 = rng.random_range(0..200);
                    let mut body = named;
                    body["delay_ms"] = json!(delay_ms);
                    let (status, answer) = api.post(node, &qpath(WORK, "/nack"), body).await;
                    let ready_at_ms = (status == 200).then(|| num(&answer, "visible_at_ms"));
                    log.claims[index].end = End::Nacked {
                        status,
                        ready_at_ms,
                    };
                    log.answers.push(AnswerRec {
                        what: "nack",
                        item,
                        token,
                        worker: w,
                        status,
                        body: answer,
                    });
                }
                Action::Ack | Action::AckLate => {
                    let late = matches!(action, Action::AckLate);
                    let work_ms = match late {
                        true => rng.random_range(visibility_ms + 200..visibility_ms + 600),
                        false => rng.random_range(0..10),
                    };
                    tokio::time::sleep(Duration::from_millis(work_ms)).await;
                    let (status, answer) = api.post(node, &qpath(WORK, "/ack"), named).await;
                    if status == 200 {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    log.claims[index].end = match late {
                        true => End::AckedLate { status },
                        false => End::Acked { status },
                    };
                    log.answers.push(AnswerRec {
                        what: "ack",
                        item,
                        token,
                        worker: w,
                        status,
                        body: answer,
                    });
                }
            }
        }
        if crashed {
            // The worker dies: its lease is no longer kept alive, and it
            // comes back a little later with a fresh one.
            let id = lease.id.clone();
            log.leases.insert(id, lease.stop(w, true));
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            match LiveLease::grant(&api, rng.random_range(0..3), &mut log.errors).await {
                Some(new) => lease = new,
                None => return log,
            }
        }
    }
    let id = lease.id.clone();
    log.leases.insert(id.clone(), lease.stop(w, false));
    let _ = api.delete(w, &format!("/v1/leases/{id}")).await;
    log
}

/// Why an item came back between two of its claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Return {
    Nack,
    Deadline,
    LeaseEnd,
}

/// Checks the claims and answers of every worker against the items
/// enqueued (`items`: id to `n`); panics naming every violation. Returns
/// the redeliveries counted by what the worker did and why the item came
/// back.
fn check_workload(
    items: &BTreeMap<u64, u64>,
    claims: &[ClaimRec],
    answers: &[AnswerRec],
    leases: &BTreeMap<String, LeaseRec>,
) -> BTreeMap<(String, Return), usize> {
    let mut violations = Vec::new();
    // Every token went to one claim: the cluster's counter.
    let mut tokens = BTreeSet::new();
    for claim in claims {
        if !tokens.insert(claim.token) {
            violations.push(format!("token {} handed out twice", claim.token));
        }
    }
    let mut by_item: BTreeMap<u64, Vec<&ClaimRec>> = BTreeMap::new();
    for claim in claims {
        by_item.entry(claim.item).or_default().push(claim);
    }
    for list in by_item.values_mut() {
        list.sort_by_key(|c| c.attempt);
    }
    let mut returns = BTreeMap::new();
    for (item, list) in &by_item {
        match items.get(item) {
            None => violations.push(format!("item {item} claimed but never enqueued")),
            Some(n) if list.iter().any(|c| c.n != *n) => {
                violations.push(format!("item {item}'s payload is not n = {n}: {list:?}"))
            }
            Some(_) => {}
        }
        // Attempts 1, 2, ... each seen once, tokens rising with them.
        let attempts: Vec<u32> = list.iter().map(|c| c.attempt).collect();
        let expected: Vec<u32> = (1..=list.len() as u32).collect();
        if attempts != expected {
            violations.push(format!("item {item}'s attempts are {attempts:?}"));
        }
        for pair in list.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if after.token <= before.token {
                violations.push(format!(
                    "item {item}: attempt {} has token {}, attempt {} token {}",
                    before.attempt, before.token, after.attempt, after.token
                ));
            }
            // No two claims of the item valid at once: the item came back
            // by a nack, its deadline or its claimer's lease ending,
            // before it was claimed again.
            let nacked = match before.end {
                End::Nacked {
                    ready_at_ms: Some(ready_at_ms),
                    ..
                } => after.at_ms >= ready_at_ms,
                _ => false,
            };
            let lease = &leases[&before.lease];
            let why = if nacked {
                Some(Return::Nack)
            } else if after.at_ms >= before.deadline_ms {
                Some(Return::Deadline)
            } else if (lease.abandoned || lease.lost) && after.arrived >= lease.proven_until {
                Some(Return::LeaseEnd)
            } else {
                None
            };
            match why {
                Some(why) => {
                    let what = format!("{:?}", before.end)
                        .split([' ', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    *returns.entry((what, why)).or_insert(0) += 1;
                }
                None => violations.push(format!(
                    "item {item} claimed again while its claim was valid: {before:?} (lease {lease:?}) then {after:?} ({} ms after the lease's proven end)",
                    after.arrived.saturating_duration_since(lease.proven_until).as_millis()
                )),
            }
        }
    }
    // Every item acked exactly once, by its latest claim; every refused
    // ack or nack named a claim that was not its item's latest.
    let mut acks: BTreeMap<u64, Vec<&AnswerRec>> = BTreeMap::new();
    for answer in answers {
        let latest = by_item.get(&answer.item).and_then(|l| l.last());
        let Some(latest) = latest else {
            violations.push(format!("an answer for an item never claimed: {answer:?}"));
            continue;
        };
        if answer.status == 200 && answer.what == "ack" {
            if answer.token != latest.token || answer.worker != latest.worker {
                violations.push(format!(
                    "ack of item {} under token {} by worker {} answered 200, but its latest claim is {latest:?}",
                    answer.item, answer.token, answer.worker
                ));
            }
            acks.entry(answer.item).or_default().push(answer);
            continue;
        }
        if answer.status == 200 {
            // A nack gives the item back: it was claimed again.
            if answer.token >= latest.token {
                violations.push(format!(
                    "item {} nacked under token {} and never claimed again: {latest:?}",
                    answer.item, answer.token
                ));
            }
            continue;
        }
        if answer.token == latest.token {
            violations.push(format!(
                "the latest claim's {} refused: {answer:?}",
                answer.what
            ));
        }
        match (answer.status, code(&answer.body)) {
            (409, Some("stale_token")) => {
                // It names the item's live claim, if there is one: a later one.
                if let Some(current) = answer.body["error"]["current_token"].as_u64() {
                    let later = by_item[&answer.item]
                        .iter()
                        .any(|c| c.token == current && c.token > answer.token);
                    if !later {
                        violations.push(format!(
                            "a stale {} named token {current}, no later claim of its item: {answer:?}",
                            answer.what
                        ));
                    }
                }
            }
            (404, Some("item_not_found")) => {}
            _ => violations.push(format!("an unexpected answer: {answer:?}")),
        }
    }
    for item in items.keys() {
        let count = acks.get(item).map_or(0, Vec::len);
        if count != 1 {
            violations.push(format!("item {item} acked {count} times"));
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    returns
}

/// Four workers take 500 items through random nodes, with claims of 1.5 s
/// or (one in three) 4 s; now and then one crashes (its lease, ttl 2 s, no
/// longer kept alive, its claims left), walks away from a claim with its
/// lease alive, stalls past its claim's visibility, or nacks. Every item
/// is acked exactly once, by the worker that holds its latest claim;
/// tokens rise with an item's attempts; an item is claimed again only
/// after a nack, its claim's deadline, or its claimer's lease ending; and
/// the queue ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_workers_lose_no_item_and_ack_each_once() {
    let seed = std::env::var("CORRAL_QUEUE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .subsec_nanos();
            u64::from(nanos)
        });
    eprintln!(
        "queue workers: seed {seed} (replay the workers' choices with CORRAL_QUEUE_SEED={seed})"
    );
    let cluster = Cluster::start(3).await;
    let api = Api::of(&cluster);
    let started = Instant::now();
    let deadline = started + WORKLOAD_BOUND;
    let acked = Arc::new(AtomicUsize::new(0));
    // The workers first, so that the first items serve waiting claims.
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(w, api.clone(), seed, acked.clone(), deadline)))
        .collect();
    let enqueuers: Vec<_> = (0..3usize)
        .map(|node| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut items = Vec::new();
                for n in (node as u64..ITEMS).step_by(3) {
                    let body = json!({ "payload": { "n": n } });
                    let (status, answer) = api.post(node, &qpath(WORK, "/items"), body).await;
                    assert_eq!(
                        status,
                        201,
                        "enqueue {n} through node {}: {answer}",
                        node + 1
                    );
                    assert_eq!(answer["duplicate"], false, "{answer}");
                    items.push((num(&answer, "item_id"), n, num(&answer, "seq")));
                }
                items
            })
        })
        .collect();
    let mut items = BTreeMap::new();
    let mut seqs = BTreeSet::new();
    for enqueuer in enqueuers {
        for (item, n, seq) in enqueuer.await.expect("an enqueuer") {
            assert!(items.insert(item, n).is_none(), "item id {item} twice");
            assert!(seqs.insert(seq), "seq {seq} twice");
        }
    }
    let enqueued_in = started.elapsed();
    assert_eq!(seqs, (0..ITEMS).collect(), "seqs 0 to {}", ITEMS - 1);
    let mut claims = Vec::new();
    let mut answers = Vec::new();
    let mut leases = BTreeMap::new();
    let mut errors = Vec::new();
    for worker in workers {
        let log = worker.await.expect("a worker");
        claims.extend(log.claims);
        answers.extend(log.answers);
        leases.extend(log.leases);
        errors.extend(log.errors);
    }
    let took = started.elapsed();
    assert!(errors.is_empty(), "requests failed:\n{}", errors.join("\n"));
    assert_eq!(
        acked.load(Ordering::SeqCst) as u64,
        ITEMS,
        "not every item acked within {WORKLOAD_BOUND:?} (seed {seed})"
    );
    let returns = check_workload(&items, &claims, &answers, &leases);
    // The crashed workers' leases end (the last ones may still live).
    let bound = Instant::now() + POLL_BOUND;
    for (id, lease) in leases.iter().filter(|(_, l)| l.abandoned || l.lost) {
        loop {
            let (status, body) = api.get(lease.worker, &format!("/v1/leases/{id}")).await;
            if status == 404 {
                break;
            }
            assert!(
                Instant::now() < bound,
                "a crashed worker's lease {id} lives: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for node in 0..3 {
        let (status, stats) = api.get(node, &qpath(WORK, "")).await;
        assert_eq!(status, 200, "{stats}");
        for field in ["ready", "claimed", "delayed", "waiting_claims"] {
            assert_eq!(
                stats[field],
                0,
                "{field} through node {}: {stats}",
                node + 1
            );
        }
        let (status, list) = api.get(node, &qpath(WORK, "/items?limit=1000")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["items"], json!([]), "items left: {list}");
    }
    let count = |f: &dyn Fn(&End) -> bool| claims.iter().filter(|c| f(&c.end)).count();
    eprintln!(
        "queue workers: seed {seed}: {ITEMS} items enqueued in {:.1} s, all acked in {:.1} s; {} claims ({} crashed, {} abandoned, {} nacked, {} acked late), {} leases ({} abandoned, {} lost), {} refused acks/nacks; items came back: {returns:?}",
        enqueued_in.as_secs_f64(),
        took.as_secs_f64(),
        claims.len(),
        count(&|e| *e == End::Crashed),
        count(&|e| *e == End::Abandoned),
        count(&|e| matches!(e, End::Nacked { .. })),
        count(&|e| matches!(e, End::AckedLate { .. })),
        leases.len(),
        leases.values().filter(|l| l.abandoned).count(),
        leases.values().filter(|l| l.lost).count(),
        answers.iter().filter(|a| a.status != 200).count(),
    );
}

// ---------------------------------------------------------------------
// 2. A stale claim
// ---------------------------------------------------------------------

/// Claims from `queue` through `node` under `lease`; the items.
async fn claim(
    cluster: &Cluster,
    node: u64,
    queue: &str,
    lease: &str,
    visibility_ms: u64,
    wait_ms: u64,
) -> Vec<Value> {
    let ask = json!({
        "lease_id": lease,
        "visibility_ms": visibility_ms,
        "max": 10,
        "wait_ms": wait_ms,
    });
    let (status, body) = cluster.post(node, &qpath(queue, "/claim"), ask).await;
    assert_eq!(
        status, 200,
        "claim from {queue} through node {node}: {body}"
    );
    body["items"].as_array().expect("items").clone()
}

/// Enqueues `payload` into `queue` through `node`; the item's id.
async fn enqueue(cluster: &Cluster, node: u64, queue: &str, payload: Value, delay_ms: u64) -> u64 {
    let body = json!({ "payload": payload, "delay_ms": delay_ms });
    let (status, answer) = cluster.post(node, &qpath(queue, "/items"), body).await;
    assert_eq!(status, 201, "enqueue into {queue}: {answer}");
    num(&answer, "item_id")
}

/// Acks, extends or nacks (`verb`) item `item` under `token` through `node`.
async fn answer(
    cluster: &Cluster,
    node: u64,
    queue: &str,
    verb: &str,
    item: u64,
    token: u64,
) -> (u16, Value) {
    let mut body = json!({ "item_id": item, "fencing_token": token });
    if verb == "extend" {
        body["visibility_ms"] = json!(30_000);
    }
    cluster
        .post(node, &qpath(queue, &format!("/{verb}")), body)
        .await
}

/// Asserts a 409 `stale_token` naming `current` (or none).
fn assert_stale(what: &str, (status, body): (u16, Value), current: Option<u64>) {
    assert_eq!(status, 409, "{what}: {body}");
    assert_eq!(code(&body), Some("stale_token"), "{what}: {body}");
    assert_eq!(
        body["error"]["current_token"].as_u64(),
        current,
        "{what}: {body}"
    );
}

/// A claim whose visibility ran out: once the leader gives the item back,
/// its ack, extend and nack are refused as stale (naming no claim), and
/// again once the item is claimed anew (naming the new token); the new
/// claim extends and acks, and a second ack finds no item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_claims_ack_is_refused() {
    let cluster = Cluster::start(3).await;
    let (first, second) = (
        cluster.lease(1, 30_000).await,
        cluster.lease(2, 30_000).await,
    );
    let item = enqueue(&cluster, 2, "stale", json!({ "job": "x" }), 0).await;
    let claimed = claim(&cluster, 3, "stale", &first, 300, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(num(&claimed[0], "item_id"), item);
    assert_eq!(num(&claimed[0], "attempt"), 1);
    let old = num(&claimed[0], "fencing_token");
    // The deadline passes; the leader's tick gives the item back.
    let ready = cluster
        .wait_for(1, &qpath("stale", "/items?state=ready"), |list| {
            list["items"].as_array().is_some_and(|i| i.len() == 1)
        })
        .await;
    assert_eq!(ready["items"][0]["attempt"], 1, "{ready}");
    for verb in ["ack", "extend", "nack"] {
        let refused = answer(&cluster, 2, "stale", verb, item, old).await;
        assert_stale(&format!("{verb} of a returned item"), refused, None);
    }
    // Claimed anew by another worker.
    let again = claim(&cluster, 1, "stale", &second, 30_000, 5_000).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(num(&again[0], "item_id"), item);
    assert_eq!(num(&again[0], "attempt"), 2, "{again:?}");
    assert_eq!(again[0]["payload"], json!({ "job": "x" }));
    let new = num(&again[0], "fencing_token");
    assert!(new > old, "token {new} after {old}");
    for (node, verb) in [(2, "ack"), (3, "extend"), (1, "nack")] {
        let refused = answer(&cluster, node, "stale", verb, item, old).await;
        assert_stale(&format!("{verb} with the old token"), refused, Some(new));
    }
    // The stale answers changed nothing.
    let (status, stats) = cluster.get(3, &qpath("stale", "")).await;
    assert_eq!(status, 200);
    assert_eq!(stats["claimed"], 1, "{stats}");
    let (status, body) = answer(&cluster, 3, "stale", "extend", item, new).await;
    assert_eq!(status, 200, "extend with the new token: {body}");
    assert!(
        num(&body, "visible_at_ms") >= num(&again[0], "visible_at_ms"),
        "extended to {body}, claimed until {}",
        again[0]["visible_at_ms"]
    );
    let (status, body) = answer(&cluster, 2, "stale", "ack", item, new).await;
    assert_eq!(status, 200, "ack with the new token: {body}");
    for token in [new, old] {
        let (status, body) = answer(&cluster, 1, "stale", "ack", item, token).await;
        assert_eq!(status, 404, "ack after the ack: {body}");
        assert_eq!(code(&body), Some("item_not_found"), "{body}");
    }
    let (_, stats) = cluster.get(1, &qpath("stale", "")).await;
    for field in ["ready", "claimed", "delayed"] {
        assert_eq!(stats[field], 0, "{field}: {stats}");
    }
}

// ---------------------------------------------------------------------
// 3. Dead letters
// ---------------------------------------------------------------------

/// Configures `queue` through `node`.
async fn configure(cluster: &Cluster, node: u64, queue: &str, config: Value) {
    let path = qpath(queue, "");
    let (status, body) = cluster
        .request(reqwest::Method::PUT, node, &path, Some(config))
        .await;
    assert_eq!(status, 200, "configure {queue}: {body}");
}

/// `max_attempts`: an item nacked on its last attempt goes to the
/// dead-letter queue, payload intact and claimable there, and the queue
/// counts it; so does one whose last claim runs out. Without a
/// dead-letter queue, such items are dropped and counted, whether nacked
/// or given back by their lease's end. A dedup id adds one item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_sends_items_to_the_dead_letters() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    configure(
        &cluster,
        2,
        "q",
        json!({ "max_attempts": 2, "dead_letter": "dlq" }),
    )
    .await;
    let (status, stats) = cluster.get(3, &qpath("q", "")).await;
    assert_eq!(status, 200);
    assert_eq!(stats["max_attempts"], 2, "{stats}");
    assert_eq!(stats["dead_letter"], "dlq", "{stats}");
    let payload = json!({ "order": 7, "lines": [1, 2, 3], "note": "ünïcode \"quoted\"" });
    let body = json!({ "payload": payload, "dedup_id": "order-7" });
    let (status, first) = cluster.post(3, &qpath("q", "/items"), body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = cluster.post(1, &qpath("q", "/items"), body).await;
    assert_eq!(status, 200, "the same dedup id: {again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["item_id"], first["item_id"], "{again}");
    let item = num(&first, "item_id");
    for attempt in 1..=2 {
        let claimed = claim(&cluster, attempt, "q", &lease, 30_000, 0).await;
        assert_eq!(claimed.len(), 1, "one item: {claimed:?}");
        assert_eq!(num(&claimed[0], "item_id"), item);
        assert_eq!(num(&claimed[0], "attempt"), attempt);
        let token = num(&claimed[0], "fencing_token");
        let (status, nacked) = answer(&cluster, 3, "q", "nack", item, token).await;
        assert_eq!(status, 200, "{nacked}");
        assert_eq!(
            nacked["dead_lettered"],
            attempt == 2,
            "attempt {attempt}: {nacked}"
        );
    }
    let (_, stats) = cluster.get(2, &qpath("q", "")).await;
    assert_eq!(stats["dead_lettered_total"], 1, "{stats}");
    assert_eq!(stats["dropped_total"], 0, "{stats}");
    for field in ["ready", "claimed", "delayed"] {
        assert_eq!(stats[field], 0, "{field}: {stats}");
    }
    let (_, list) = cluster.get(1, &qpath("dlq", "/items")).await;
    let letters = list["items"].as_array().expect("items");
    assert_eq!(letters.len(), 1, "{list}");
    assert_eq!(letters[0]["dead_letter_from"], "q", "{list}");
    assert_eq!(letters[0]["state"], "ready", "{list}");
    assert_eq!(letters[0]["attempt"], 0, "{list}");
    assert_eq!(letters[0]["payload"], payload, "{list}");
    let claimed = claim(&cluster, 2, "dlq", &lease, 30_000, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0]["payload"], payload);
    assert_eq!(claimed[0]["attempt"], 1);
    let (item_dl, token) = (
        num(&claimed[0], "item_id"),
        num(&claimed[0], "fencing_token"),
    );
    assert_ne!(item_dl, item, "a dead letter is a new item");
    let (status, body) = answer(&cluster, 3, "dlq", "ack", item_dl, token).await;
    assert_eq!(status, 200, "{body}");

    // A last claim that runs out dead-letters its item too.
    configure(
        &cluster,
        3,
        "q-lapse",
        json!({ "max_attempts": 1, "dead_letter": "dlq" }),
    )
    .await;
    let lapsing = enqueue(&cluster, 1, "q-lapse", json!("lapse"), 0).await;
    let claimed = claim(&cluster, 2, "q-lapse", &lease, 200, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), lapsing);
    let list = cluster
        .wait_for(3, &qpath("dlq", "/items"), |list| {
            list["items"][0].is_object()
        })
        .await;
    assert_eq!(list["items"][0]["payload"], "lapse", "{list}");
    assert_eq!(list["items"][0]["dead_letter_from"], "q-lapse", "{list}");
    let (_, stats) = cluster.get(1, &qpath("q-lapse", "")).await;
    assert_eq!(stats["dead_lettered_total"], 1, "{stats}");
    assert_eq!(stats["claimed"], 0, "{stats}");

    // No dead-letter queue: dropped, by a nack and by a lease that ends.
    configure(&cluster, 1, "q-drop", json!({ "max_attempts": 1 })).await;
    let other = cluster.lease(3, 30_000).await;
    let dropped = enqueue(&cluster, 2, "q-drop", json!({ "n": 1 }), 0).await;
    let claimed = claim(&cluster, 3, "q-drop", &lease, 30_000, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), dropped);
    let token = num(&claimed[0], "fencing_token");
    let (status, nacked) = answer(&cluster, 1, "q-drop", "nack", dropped, token).await;
    assert_eq!(status, 200, "{nacked}");
    assert_eq!(nacked["dead_lettered"], true, "{nacked}");
    let ended = enqueue(&cluster, 3, "q-drop", json!({ "n": 2 }), 0).await;
    let claimed = claim(&cluster, 1, "q-drop", &other, 30_000, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), ended);
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            2,
            &format!("/v1/leases/{other}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "revoke: {body}");
    let (_, stats) = cluster.get(3, &qpath("q-drop", "")).await;
    assert_eq!(stats["dropped_total"], 2, "{stats}");
    assert_eq!(stats["dead_lettered_total"], 0, "{stats}");
    for field in ["ready", "claimed", "delayed"] {
        assert_eq!(stats[field], 0, "{field}: {stats}");
    }
    let (_, list) = cluster.get(2, &qpath("q-drop", "/items")).await;
    assert_eq!(list["items"], json!([]), "{list}");
}

// ---------------------------------------------------------------------
// 4. A whole-cluster restart
// ---------------------------------------------------------------------

/// The queues of the restart test.
const RESTART_QUEUES: [&str; 5] = ["r", "r-src", "r-dlq", "r-wait", "r-bulk"];

/// Each queue's stats (less what moves with time) and items, through `node`.
async fn queue_states(cluster: &Cluster, node: u64) -> BTreeMap<&'static str, (Value, Value)> {
    let mut states = BTreeMap::new();
    for queue in RESTART_QUEUES {
        let (status, stats) = cluster.get(node, &qpath(queue, "")).await;
        assert_eq!(status, 200, "stats of {queue} through node {node}: {stats}");
        let (status, items) = cluster.get(node, &qpath(queue, "/items?limit=1000")).await;
        assert_eq!(status, 200, "items of {queue} through node {node}: {items}");
        states.insert(queue, (steady_stats(stats), items));
    }
    states
}

/// Items ready, claimed, delayed (enqueued so, and nacked so), dead
/// lettered, and a claim waiting, then every node killed and restarted
/// (from a snapshot and its log): every node lists the same items (ids,
/// attempts, tokens, deadlines) and stats; a claim still acks under its
/// token, and another comes back at once when its lease ends; the other
/// items claim as before; new ids and tokens continue above the old; the
/// waiting claim ends with its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_in_every_state_survive_a_full_restart() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    // Long ttls: a new leader gives every lease a fresh one.
    let holder = cluster.lease(1, 120_000).await;
    let ending = cluster.lease(3, 120_000).await;
    let waiter = cluster.lease(2, 120_000).await;
    configure(
        &cluster,
        1,
        "r",
        json!({ "max_attempts": 5, "dead_letter": "r-dlq" }),
    )
    .await;
    configure(
        &cluster,
        2,
        "r-src",
        json!({ "max_attempts": 1, "dead_letter": "r-dlq" }),
    )
    .await;
    let claimed_item = enqueue(&cluster, 1, "r", json!("claimed"), 0).await;
    let claimed = claim(&cluster, 2, "r", &holder, 600_000, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), claimed_item);
    let claimed_token = num(&claimed[0], "fencing_token");
    let ending_item = enqueue(&cluster, 2, "r", json!("ending"), 0).await;
    let claimed = claim(&cluster, 1, "r", &ending, 600_000, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), ending_item);
    let nacked_item = enqueue(&cluster, 3, "r", json!("nacked"), 0).await;
    let claimed = claim(&cluster, 3, "r", &holder, 600_000, 0).await;
    assert_eq!(num(&claimed[0], "item_id"), nacked_item);
    let body = json!({
        "item_id": nacked_item,
        "fencing_token": num(&claimed[0], "fencing_token"),
        "delay_ms": 600_000,
    });
    let (status, nacked) = cluster.post(1, &qpath("r", "/nack"), body).await;
    assert_eq!(status, 200, "{nacked}");
    let ready_item = enqueue(&cluster, 2, "r", json!("ready"), 0).await;
    let delayed_item = enqueue(&cluster, 3, "r", json!("delayed"), 600_000).await;
    let dead = enqueue(&cluster, 1, "r-src", json!({ "dead": true }), 0).await;
    let claimed = claim(&cluster, 1, "r-src", &holder, 600_000, 0).await;
    let (status, body) = answer(
        &cluster,
        2,
        "r-src",
        "nack",
        dead,
        num(&claimed[0], "fencing_token"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dead_lettered"], true, "{body}");
    // Enough entries for a snapshot (every 20) and a log after it.
    let mut bulk = Vec::new();
    for n in 0..25u64 {
        bulk.push(enqueue(&cluster, n % 3 + 1, "r-bulk", json!({ "n": n }), 0).await);
    }
    let waiting = cluster.spawn_post(
        3,
        &qpath("r-wait", "/claim"),
        json!({ "lease_id": waiter, "visibility_ms": 60_000, "wait_ms": 40_000 }),
    );
    cluster
        .wait_for(1, &qpath("r-wait", ""), |s| s["waiting_claims"] == 1)
        .await;
    let before = queue_states(&cluster, 1).await;
    let (ref r_stats, ref r_items) = before["r"];
    assert_eq!(
        (
            r_stats["ready"].clone(),
            r_stats["claimed"].clone(),
            r_stats["delayed"].clone()
        ),
        (json!(1), json!(2), json!(2)),
        "{r_stats}"
    );
    assert_eq!(
        r_items["items"].as_array().map(Vec::len),
        Some(5),
        "{r_items}"
    );
    assert_eq!(before["r-dlq"].1["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        before["r-bulk"].1["items"].as_array().map(Vec::len),
        Some(25)
    );

    cluster.restart_all();
    let leader = cluster.wait_leader().await;
    // The waiting request died with its node.
    let gone = tokio::time::timeout(POLL_BOUND, waiting).await;
    assert!(
        matches!(&gone, Ok(Ok((status, _))) if *status != 200),
        "the waiting request of a killed node: {gone:?}"
    );
    for node in [leader, 1, 2, 3] {
        let after = queue_states(&cluster, node).await;
        assert_eq!(
            after, before,
            "queues through node {node} after the restart"
        );
    }

    // The claim lives on: its token acks.
    let follower = cluster.followers_of(leader)[0];
    let (status, body) = answer(&cluster, follower, "r", "ack", claimed_item, claimed_token).await;
    assert_eq!(
        status, 200,
        "ack of a claim from before the restart: {body}"
    );
    // A lease that ends gives its claim back at once, as before.
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            follower,
            &format!("/v1/leases/{ending}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "revoke: {body}");
    let (_, list) = cluster.get(leader, &qpath("r", "/items?state=ready")).await;
    let ready: Vec<u64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| num(i, "item_id"))
        .collect();
    assert_eq!(ready, [ending_item, ready_item], "{list}");
    // The ready items, and they alone, claim, under tokens above every old one.
    let fresh = cluster.lease(leader, 30_000).await;
    let claimed = claim(&cluster, follower, "r", &fresh, 30_000, 0).await;
    assert_eq!(claimed.len(), 2, "only the ready items: {claimed:?}");
    assert_eq!(num(&claimed[0], "item_id"), ending_item);
    assert_eq!(claimed[0]["attempt"], 2);
    assert_eq!(claimed[0]["payload"], "ending");
    assert_eq!(num(&claimed[1], "item_id"), ready_item);
    assert_eq!(claimed[1]["attempt"], 1);
    assert_eq!(claimed[1]["payload"], "ready");
    let old_tokens = before["r"].1["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["fencing_token"].as_u64())
        .chain([claimed_token]);
    let new_token = num(&claimed[0], "fencing_token");
    assert!(num(&claimed[1], "fencing_token") > new_token, "{claimed:?}");
    for old in old_tokens {
        assert!(
            new_token > old,
            "token {new_token} after the restart, {old} before"
        );
    }
    let (_, list) = cluster.get(leader, &qpath("r", "/items")).await;
    let states: Vec<(u64, String, u64)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                num(i, "item_id"),
                i["state"].as_str().unwrap_or("").to_string(),
                num(i, "attempt"),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (ending_item, "claimed".to_string(), 2),
            (nacked_item, "delayed".to_string(), 1),
            (ready_item, "claimed".to_string(), 1),
            (delayed_item, "delayed".to_string(), 0),
        ],
        "{list}"
    );
    // The dead letter claims, payload intact.
    let letters = claim(&cluster, 3, "r-dlq", &fresh, 30_000, 0).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["payload"], json!({ "dead": true }));
    // New items take ids and places after the old.
    let newest = enqueue(&cluster, 2, "r", json!("after"), 0).await;
    let max_old = bulk
        .iter()
        .chain([&dead, &delayed_item])
        .max()
        .copied()
        .unwrap_or(0);
    assert!(
        newest > max_old,
        "item id {newest} after the restart, {max_old} before"
    );
    // The waiting claim ends with its lease, and takes nothing after.
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            leader,
            &format!("/v1/leases/{waiter}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "revoke: {body}");
    let (_, stats) = cluster.get(follower, &qpath("r-wait", "")).await;
    assert_eq!(stats["waiting_claims"], 0, "{stats}");
    enqueue(&cluster, 1, "r-wait", json!("late"), 0).await;
    let (_, stats) = cluster.get(follower, &qpath("r-wait", "")).await;
    assert_eq!(
        (stats["ready"].clone(), stats["claimed"].clone()),
        (json!(1), json!(0)),
        "{stats}"
    );
}

// ---------------------------------------------------------------------
// 5. Waiting claims
// ---------------------------------------------------------------------

/// Two claims wait on an empty queue through different nodes: the first
/// enqueue serves the first to wait, the next the second; an item
/// enqueued with a delay serves a waiting claim once its delay passes. A
/// claim whose wait runs out answers no items, and leaves no waiting claim
/// behind; a waiting claim whose lease ends answers `lease_not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_claims_are_served_in_turn() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let followers = cluster.followers_of(leader);
    let (a, b) = (
        cluster.lease(1, 30_000).await,
        cluster.lease(2, 30_000).await,
    );
    let stats = qpath("wait", "");
    let ask = |lease: &str, wait_ms: u64| json!({ "lease_id": lease, "visibility_ms": 30_000, "max": 5, "wait_ms": wait_ms });
    let first = cluster.spawn_post(followers[0], &qpath("wait", "/claim"), ask(&a, 10_000));
    cluster
        .wait_for(leader, &stats, |s| s["waiting_claims"] == 1)
        .await;
    let second = cluster.spawn_post(followers[1], &qpath("wait", "/claim"), ask(&b, 10_000));
    cluster
        .wait_for(leader, &stats, |s| s["waiting_claims"] == 2)
        .await;

    let one = enqueue(&cluster, leader, "wait", json!("one"), 0).await;
    let (status, body) = tokio::time::timeout(POLL_BOUND, first)
        .await
        .expect("the first claim answers")
        .expect("its task");
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(num(&items[0], "item_id"), one);
    assert_eq!(items[0]["payload"], "one");
    let (_, now) = cluster.get(followers[1], &stats).await;
    assert_eq!(now["waiting_claims"], 1, "the second still waits: {now}");
    assert_eq!(now["claimed"], 1, "{now}");
    assert!(
        !second.is_finished(),
        "the second claim answered before any item was left"
    );

    let two = enqueue(&cluster, followers[0], "wait", json!("two"), 0).await;
    let (status, body) = tokio::time::timeout(POLL_BOUND, second)
        .await
        .expect("the second claim answers")
        .expect("its task");
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(num(&items[0], "item_id"), two);
    let (_, list) = cluster
        .get(leader, &qpath("wait", "/items?state=claimed"))
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");

    // An item enqueued with a delay goes to a waiting claim once the delay
    // passes (the leader's tick hands it over).
    let delayed = cluster.spawn_post(followers[1], &qpath("wait", "/claim"), ask(&a, 10_000));
    cluster
        .wait_for(leader, &stats, |s| s["waiting_claims"] == 1)
        .await;
    let three = enqueue(&cluster, followers[0], "wait", json!("three"), 500).await;
    let (_, now) = cluster.get(leader, &stats).await;
    assert_eq!(now["delayed"], 1, "{now}");
    let (status, body) = tokio::time::timeout(POLL_BOUND, delayed)
        .await
        .expect("the claim answers")
        .expect("its task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["item_id"], three, "{body}");
    let (_, now) = cluster.get(leader, &stats).await;
    assert_eq!(now["waiting_claims"], 0, "{now}");

    // A wait that runs out: no items, and no claim left waiting.
    let started = Instant::now();
    let (status, body) = cluster
        .post(followers[1], &qpath("wait", "/claim"), ask(&a, 1_000))
        .await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]), "{body}");
    assert!(
        waited >= Duration::from_millis(900),
        "answered after {waited:?}"
    );
    let (_, now) = cluster.get(leader, &stats).await;
    assert_eq!(now["waiting_claims"], 0, "{now}");

    // A waiting claim whose lease ends.
    let c = cluster.lease(3, 30_000).await;
    let third = cluster.spawn_post(followers[0], &qpath("wait", "/claim"), ask(&c, 10_000));
    cluster
        .wait_for(leader, &stats, |s| s["waiting_claims"] == 1)
        .await;
    let (status, body) = cluster
        .request(
            reqwest::Method::DELETE,
            followers[1],
            &format!("/v1/leases/{c}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "revoke: {body}");
    let (status, body) = tokio::time::timeout(POLL_BOUND, third)
        .await
        .expect("the third claim answers")
        .expect("its task");
    assert_eq!(status, 404, "{body}");
    assert_eq!(code(&body), Some("lease_not_found"), "{body}");
    let (_, now) = cluster.get(leader, &stats).await;
    assert_eq!(now["waiting_claims"], 0, "{now}");
}

// ---------------------------------------------------------------------
// Several waiting claims of one lease: bugs found and fixed, kept as
// regression tests.
// ---------------------------------------------------------------------

/// Awaits a spawned request, bounded.
async fn answered(request: tokio::task::JoinHandle<(u16, Value)>, what: &str) -> (u16, Value) {
    tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .unwrap_or_else(|_| panic!("{what} never answered"))
        .expect("its task")
}

/// Two claims of one lease waiting on one queue at once (a worker process
/// with one lease and two threads): each gets an item of its own, under a
/// token of its own. Before claims had ids both requests were one waiting
/// claim and were answered with the one item that served it, under one
/// token (seen: both `[{item_id: 0, fencing_token: 1, attempt: 1}]`, item
/// 1 left ready); then the second was refused `already_waiting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waiting_claims_of_one_lease_never_get_the_same_item() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    let ask = json!({ "lease_id": lease, "visibility_ms": 30_000, "max": 1, "wait_ms": 5_000 });
    let first = cluster.spawn_post(1, &qpath("one-lease", "/claim"), ask.clone());
    cluster
        .wait_for(1, &qpath("one-lease", ""), |s| s["waiting_claims"] == 1)
        .await;
    let second = cluster.spawn_post(2, &qpath("one-lease", "/claim"), ask);
    cluster
        .wait_for(1, &qpath("one-lease", ""), |s| s["waiting_claims"] == 2)
        .await;
    let x = enqueue(&cluster, 3, "one-lease", json!("x"), 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let y = enqueue(&cluster, 3, "one-lease", json!("y"), 0).await;
    let answers = [
        answered(first, "the first claim").await,
        answered(second, "the second claim").await,
    ];
    let mut got = Vec::new();
    for (_, body) in answers.iter().filter(|(status, _)| *status == 200) {
        for item in body["items"].as_array().expect("items") {
            got.push((num(item, "item_id"), num(item, "fencing_token")));
        }
    }
    let (_, list) = cluster.get(1, &qpath("one-lease", "/items")).await;
    let distinct: BTreeSet<u64> = got.iter().map(|(item, _)| *item).collect();
    assert_eq!(
        distinct.len(),
        got.len(),
        "one item (x = {x}, y = {y}) handed to two waiting claims of one lease: {answers:?}; items now {list}"
    );
    assert_eq!(
        distinct,
        BTreeSet::from([x, y]),
        "each claim gets one item: {answers:?}; items now {list}"
    );
}

/// A lease's second waiting claim on a queue outlives the first: the
/// first's timeout withdraws the first alone, and an item enqueued after
/// goes to the second. Once the two requests shared one claim, which the
/// first's timeout withdrew (seen: `[]` after 13.0 s for a wait of 8 s,
/// the item ready from 2.0 s on); then the second was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claim_outlives_its_leases_other_wait() {
    let cluster = Cluster::start(3).await;
    let lease = cluster.lease(1, 30_000).await;
    let ask = |wait_ms: u64| json!({ "lease_id": lease, "visibility_ms": 30_000, "max": 1, "wait_ms": wait_ms });
    let first = cluster.spawn_post(1, &qpath("outlive", "/claim"), ask(2_000));
    cluster
        .wait_for(1, &qpath("outlive", ""), |s| s["waiting_claims"] == 1)
        .await;
    let started = Instant::now();
    let second = cluster.spawn_post(2, &qpath("outlive", "/claim"), ask(8_000));
    let (status, body) = answered(first, "the first claim").await;
    assert_eq!((status, &body["items"]), (200, &json!([])), "{body}");
    let x = enqueue(&cluster, 3, "outlive", json!("x"), 0).await;
    let ready_after = started.elapsed();
    let (status, body) = answered(second, "the second claim").await;
    let took = started.elapsed();
    let (_, list) = cluster.get(1, &qpath("outlive", "/items")).await;
    let got: Vec<u64> = body["items"]
        .as_array()
        .map(|items| items.iter().map(|i| num(i, "item_id")).collect())
        .unwrap_or_default();
    assert_eq!(
        (status, got),
        (200, vec![x]),
        "item {x}, ready after {ready_after:?}; the second claim answered {body} after {took:?}; items now {list}"
    );
    let (_, stats) = cluster.get(1, &qpath("outlive", "")).await;
    assert_eq!(
        (stats["ready"].clone(), stats["claimed"].clone()),
        (json!(0), json!(1)),
        "{stats}"
    );
}
