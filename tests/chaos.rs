//! Failure tests: clients take locks and increment fenced registers while
//! a seeded schedule kills (also while a node's disk lags, and all at once,
//! each restarted at once), pauses, partitions and skews the clocks of a
//! real 3-node and a real 5-node cluster; then everything heals, the whole
//! cluster is killed and restarted, and the history is checked:
//!
//! - no two conservative hold intervals of one lock overlap, and tokens
//!   rise in hold order (a mutex with fencing);
//! - the acquire/release/expiry history of each lock is linearizable
//!   against a leased, fenced mutex (a Wing-Gong search, `corral-check`);
//! - every acknowledged increment of a register is there exactly once, both
//!   in the cluster's fenced store and in a register kept in this process
//!   that refuses lower tokens;
//! - every refused write came from a stale owner;
//! - no fencing token was handed to two grants, and once the clients stop
//!   every node reads the same locks, holders and tokens;
//! - after healing, a majority serves an acquire within 5 s;
//! - after the full restart, tokens go on above every token handed out.
//!
//! A work queue runs through the same faults: a producer enqueues items
//! (an enqueue of unknown outcome retried with its dedup id), consumers
//! claim them under leases, write a register per item in this process
//! that refuses lower tokens, nack some and ack the rest, and one consumer
//! stalls past its claim's visibility before it acks. After the full
//! restart they drain the queue, and:
//!
//! - every acknowledged enqueue's item was acked exactly once (one item
//!   per dedup id), by its latest claim: tokens rise with attempts;
//! - no token went to two claims, nor to a claim and a lock grant;
//! - every refused ack, extend or nack, and every refused register write,
//!   came from a claim that was no longer its item's latest, or no longer
//!   proven held; no two claims of an item were proven held at once;
//! - every node reads the queue alike: empty.
//!
//! `CORRAL_CHAOS_SEED` replays a schedule; `CORRAL_CHAOS_SECS` runs longer
//! (`just chaos SEED MINUTES`, or `deploy/chaos.sh SEED MINUTES`). A run
//! prints a summary; a violation also writes the lock's history under the
//! test's output folder.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_api::ErrorKind;
use corral_check::{check, FencedMutex, MutexInput, MutexOutput, Operation, SearchBudget, Verdict};
use corral_client::{
    ClaimGuard, ClaimLost, Client, Error, Fence, FencingToken, Lease, LockName, Queue, RetryPolicy,
};
use futures::FutureExt;
use harness::{code, Cluster};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::Instant;

const LOCKS: [&str; 2] = ["mutex/a", "mutex/b"];
const CLIENTS: usize = 4;
const TTL: Duration = Duration::from_secs(3);

/// One run's settings.
struct Run {
    nodes: u64,
    seed: u64,
    /// At least one pass over every fault kind, and this long at least.
    chaos: Duration,
}

impl Run {
    fn new(nodes: u64, default_seed: u64) -> Run {
        let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
        Run {
            nodes,
            seed: env("CORRAL_CHAOS_SEED").unwrap_or(default_seed),
            chaos: Duration::from_secs(env("CORRAL_CHAOS_SECS").unwrap_or(0)),
        }
    }
}

/// The kinds of fault a schedule draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// kill -9 of the leader, restarted on its data later.
    KillLeader,
    /// kill -9 of a follower, restarted later.
    KillFollower,
    /// SIGSTOP of the leader, longer than the election timeout and the
    /// lease ttl, then SIGCONT.
    PauseLeader,
    /// The leader cut off from every other node.
    IsolateLeader,
    /// The leader and one follower cut off from the other three (5 nodes).
    SplitMinority,
    /// The followers split in two groups that cannot reach each other; the
    /// leader reaches both.
    Bridge,
    /// A node's wall clock 5 s ahead or behind.
    Skew,
    /// A node (the leader or a follower) whose log sync lags, killed -9
    /// under load and restarted at once: what it appended but had not
    /// synced is lost, and it is back before an election would start.
    LaggingDiskFastRestart,
    /// Every node killed -9 under load and restarted at once.
    RestartAll,
}

impl Fault {
    fn kinds(nodes: u64) -> Vec<Fault> {
        let mut kinds = vec![
            Fault::KillLeader,
            Fault::KillFollower,
            Fault::PauseLeader,
            Fault::IsolateLeader,
            Fault::Bridge,
            Fault::Skew,
            Fault::LaggingDiskFastRestart,
            Fault::RestartAll,
        ];
        if nodes >= 5 {
            kinds.push(Fault::SplitMinority);
        }
        kinds
    }
}

/// One hold of a lock, as a client can prove it: from the grant's arrival
/// to the earlier of sending the release and the lease's proven deadline.
#[derive(Clone, Debug)]
struct Hold {
    lock: &'static str,
    /// The checker's number of the holding lease.
    lease: u64,
    token: u64,
    start: Instant,
    end: Instant,
}

/// A fenced write that was refused, and what the writer knew then.
#[derive(Debug)]
struct Refusal {
    lock: &'static str,
    token: u64,
    /// In the cluster's store: the lock's newest token, per the refusal.
    current_token: Option<u64>,
    /// In the cluster's store: the key's highest token, per the refusal.
    key_token: Option<u64>,
    /// Whether the writer's lease was still proven alive after the answer.
    proven_held: bool,
}

/// A register in this process that refuses any access under a token lower
/// than one it has seen: a resource guarded by fencing tokens.
#[derive(Debug, Default)]
struct LocalRegister {
    value: u64,
    max_token: u64,
}

impl LocalRegister {
    fn admit(&mut self, token: u64) -> bool {
        if token < self.max_token {
            return false;
        }
        self.max_token = token;
        true
    }
}

type LockOp = Operation<MutexInput, MutexOutput>;

/// Everything the clients saw.
struct History {
    started: Instant,
    holds: Vec<Hold>,
    /// Acquire, release and expiry operations per lock.
    ops: BTreeMap<&'static str, Vec<LockOp>>,
    /// The cluster's fenced store: acknowledged and unknown increments.
    acked: BTreeMap<&'static str, u64>,
    unknown: BTreeMap<&'static str, u64>,
    refused: Vec<Refusal>,
    /// The registers in this process, and their acknowledged increments.
    local: BTreeMap<&'static str, LocalRegister>,
    local_acked: BTreeMap<&'static str, u64>,
    local_refused: Vec<Refusal>,
    /// The highest token any client saw.
    max_token: u64,
    /// Each fault and when it began, in ns since the run began.
    faults: Vec<(Fault, u64)>,
    /// The work queue's producer and consumers.
    queue: QueueLog,
}

impl History {
    fn new() -> History {
        History {
            started: Instant::now(),
            holds: Vec::new(),
            ops: BTreeMap::new(),
            acked: BTreeMap::new(),
            unknown: BTreeMap::new(),
            refused: Vec::new(),
            local: BTreeMap::new(),
            local_acked: BTreeMap::new(),
            local_refused: Vec::new(),
            max_token: 0,
            faults: Vec::new(),
            queue: QueueLog::default(),
        }
    }

    /// Nanoseconds since the run began: the checker's clock.
    fn at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.started).as_nanos() as u64
    }

    /// Records an operation on `lock` from `invoke` to `ret`, with its
    /// output, or with the outcome unknown.
    fn op(
        &mut self,
        lock: &'static str,
        lease: u64,
        input: MutexInput,
        invoke: Instant,
        done: Option<(Instant, MutexOutput)>,
    ) {
        let invoke_ns = self.at(invoke);
        let op = match done {
            Some((ret, output)) => {
                Operation::completed(lease, invoke_ns, self.at(ret), input, output)
                    .expect("a return after its invocation")
            }
            None => Operation::unknown(lease, invoke_ns, input),
        };
        if let MutexInput::Acquire { .. } = input {
            if let Some(MutexOutput::Granted { token }) = op.output() {
                self.max_token = self.max_token.max(*token);
            }
        }
        self.ops.entry(lock).or_default().push(op);
    }

    /// How long after each fault began the next grant reached a client.
    fn recoveries(&self) -> Vec<(Fault, Option<Duration>)> {
        self.faults
            .iter()
            .map(|&(fault, began)| {
                let next = self
                    .ops
                    .values()
                    .flatten()
                    .filter(|op| matches!(op.output(), Some(MutexOutput::Granted { .. })))
                    .filter_map(|op| op.ret())
                    .filter(|ret| *ret >= began)
                    .min();
                (fault, next.map(|ret| Duration::from_nanos(ret - began)))
            })
            .collect()
    }

    /// Records that `lease` may have expired from `from` on, for every lock
    /// it tried.
    fn expiry(&mut self, lease: u64, tried: &[&'static str], from: Instant) {
        for lock in tried {
            self.op(lock, lease, MutexInput::Expire { lease }, from, None);
        }
    }

    /// Records a hold and what its fenced increments did; `proven_held`
    /// says whether the writer's lease was proven alive after the write.
    fn record(&mut self, hold: Hold, outcome: Increment, proven_held: bool) {
        let (lock, token) = (hold.lock, hold.token);
        self.max_token = self.max_token.max(token);
        if hold.end > hold.start {
            self.holds.push(hold);
        }
        match outcome {
            Increment::Acked => *self.acked.entry(lock).or_default() += 1,
            Increment::Unknown => *self.unknown.entry(lock).or_default() += 1,
            Increment::Refused {
                current_token,
                key_token,
            } => self.refused.push(Refusal {
                lock,
                token,
                current_token,
                key_token,
                proven_held,
            }),
            Increment::NotTried => {}
        }
    }
}

type Shared = Arc<Mutex<History>>;

fn name(s: &str) -> LockName {
    LockName::new(s).expect("a valid name")
}

fn register(lock: &str) -> LockName {
    name(&format!("{lock}/register"))
}

/// Numbers leases for the checker.
static LEASES: AtomicU64 = AtomicU64::new(1);

/// Moves `seen` to the moment `lease` is proven alive until, if it is
/// proven alive now and that is later. (Never to "now" when it is not: a
/// lease lost a while ago may have expired a while ago.)
fn see_alive(lease: &Lease, seen: &mut Instant) {
    if let Some(until) = lease.held_until() {
        *seen = (*seen).max(until);
    }
}

/// A client of the run's nodes, with a retry budget shorter than the
/// longer faults, so that some writes end of unknown outcome.
fn chaos_client(endpoints: Vec<String>) -> Client {
    let retry = RetryPolicy {
        budget: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    Client::with_retry(endpoints, retry).expect("client")
}

/// One client: leases, locks, fenced read-modify-writes, releases, until
/// told to stop.
async fn client_loop(endpoints: Vec<String>, seed: u64, stop: Arc<AtomicBool>, history: Shared) {
    let client = chaos_client(endpoints);
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let Ok(lease) = client.grant_lease(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let number = LEASES.fetch_add(1, Ordering::Relaxed);
        let mut tried: Vec<&'static str> = Vec::new();
        // The latest moment the lease was seen proven alive: at first, the
        // grant's answer.
        let mut alive = Instant::now();
        for _ in 0..20 {
            if stop.load(Ordering::Relaxed) || !lease.is_held() {
                break;
            }
            let lock = LOCKS[rng.random_range(0..LOCKS.len())];
            if !tried.contains(&lock) {
                tried.push(lock);
            }
            let acquire = MutexInput::Acquire { lease: number };
            let invoked = Instant::now();
            let acquired = lease
                .lock_timeout(&name(lock), Duration::from_secs(1))
                .await;
            let guard = match acquired {
                Ok(guard) => {
                    let token = guard.fencing_token().0;
                    let output = MutexOutput::Granted { token };
                    let done = Some((Instant::now(), output));
                    history
                        .lock()
                        .unwrap()
                        .op(lock, number, acquire, invoked, done);
                    guard
                }
                // A refusal of a wait may still have been granted later
                // (the client then releases it in the background): its
                // effect is unknown.
                Err(e) => {
                    history
                        .lock()
                        .unwrap()
                        .op(lock, number, acquire, invoked, None);
                    if matches!(e, Error::LeaseLost) {
                        break;
                    }
                    continue;
                }
            };
            let start = Instant::now();
            let token = guard.fencing_token().0;
            // The deadline only moves forward while held: the last one seen
            // is never later than the real one. A grant that arrives after
            // the lease's deadline is no hold at all (end = start).
            let mut deadline = start;
            see_alive(&lease, &mut deadline);
            let outcome = increment(&client, lock, token).await;
            let proven_held = lease.held_until().is_some();
            see_alive(&lease, &mut deadline);
            increment_local(&history, &lease, lock, token, &mut rng).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
            see_alive(&lease, &mut deadline);
            see_alive(&lease, &mut alive);
            let end = Instant::now().min(deadline);
            let release = MutexInput::Release { lease: number };
            let invoked = Instant::now();
            let released = guard.release().await;
            let done = released
                .is_ok()
                .then(|| (Instant::now(), MutexOutput::ReleasedIfHeld));
            let hold = Hold {
                lock,
                lease: number,
                token,
                start,
                end,
            };
            let mut history = history.lock().unwrap();
            history.op(lock, number, release, invoked, done);
            history.record(hold, outcome, proven_held);
        }
        see_alive(&lease, &mut alive);
        let invoked = Instant::now();
        let revoked = tokio::time::timeout(Duration::from_secs(2), lease.revoke()).await;
        let mut history = history.lock().unwrap();
        if matches!(revoked, Ok(Ok(()))) {
            let done = Some((Instant::now(), MutexOutput::Expired));
            for lock in &tried {
                history.op(
                    lock,
                    number,
                    MutexInput::Expire { lease: number },
                    invoked,
                    done,
                );
            }
        }
        // Whatever the revoke did, the lease may have expired from the
        // last moment it was proven alive.
        history.expiry(number, &tried, alive.min(invoked));
    }
}

/// Reads the local register guarded by `lock` and writes it plus one,
/// both under `token`; another client may act in between.
async fn increment_local(
    history: &Shared,
    lease: &Lease,
    lock: &'static str,
    token: u64,
    rng: &mut StdRng,
) {
    let read = {
        let mut h = history.lock().unwrap();
        let register = h.local.entry(lock).or_default();
        register.admit(token).then_some(register.value)
    };
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
    let written = read.is_some_and(|value| {
        let mut h = history.lock().unwrap();
        let register = h.local.entry(lock).or_default();
        let admitted = register.admit(token);
        if admitted {
            register.value = value + 1;
            *h.local_acked.entry(lock).or_default() += 1;
        }
        admitted
    });
    if !written {
        let refusal = Refusal {
            lock,
            token,
            current_token: None,
            key_token: None,
            proven_held: lease.held_until().is_some(),
        };
        history.lock().unwrap().local_refused.push(refusal);
    }
}

/// A client that pauses while it holds a lock, as a process stopped by a
/// long GC or a frozen VM does: it takes a lease it never renews, takes a
/// lock, sleeps past the ttl, then writes with its old token. The cluster
/// must refuse the write once someone else holds the lock.
async fn sleeper_loop(endpoints: Vec<String>, seed: u64, stop: Arc<AtomicBool>, history: Shared) {
    let client = Client::new(&endpoints).expect("client");
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let sent_at = Instant::now();
        let Ok(lease) = client.grant_lease_id(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let number = LEASES.fetch_add(1, Ordering::Relaxed);
        let deadline = sent_at + TTL;
        let lock = LOCKS[rng.random_range(0..LOCKS.len())];
        let body = serde_json::json!({ "lease_id": lease.lease_id, "name": lock, "wait_ms": 1000 });
        let mut token = None;
        let invoked = Instant::now();
        for endpoint in &endpoints {
            let answer = http
                .post(format!("{endpoint}/v1/locks/acquire"))
                .timeout(Duration::from_secs(8))
                .json(&body)
                .send()
                .await;
            if let Ok(response) = answer {
                if response.status().is_success() {
                    let grant: serde_json::Value = response.json().await.unwrap_or_default();
                    token = grant["fencing_token"].as_u64();
                }
                break;
            }
        }
        {
            let mut h = history.lock().unwrap();
            let acquire = MutexInput::Acquire { lease: number };
            let done = token.map(|token| (Instant::now(), MutexOutput::Granted { token }));
            h.op(lock, number, acquire, invoked, done);
            h.expiry(number, &[lock], deadline);
        }
        let Some(token) = token else {
            continue;
        };
        let start = Instant::now();
        // The pause: no keepalive, past the ttl.
        tokio::time::sleep(TTL + Duration::from_millis(rng.random_range(500..1_500))).await;
        let outcome = increment(&client, lock, token).await;
        let end = Instant::now().min(deadline);
        let hold = Hold {
            lock,
            lease: number,
            token,
            start,
            end,
        };
        history.lock().unwrap().record(hold, outcome, false);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

enum Increment {
    Acked,
    Unknown,
    Refused {
        current_token: Option<u64>,
        key_token: Option<u64>,
    },
    NotTried,
}

/// Reads the register guarded by `lock` in the cluster's fenced store and
/// writes it plus one, fenced by `token`.
async fn increment(client: &Client, lock: &str, token: u64) -> Increment {
    let key = register(lock);
    let current = match client.kv_get(&key).await {
        Ok(Some(record)) => record.value.parse::<u64>().expect("a number"),
        Ok(None) => 0,
        Err(_) => return Increment::NotTried,
    };
    let fence = Fence {
        lock: name(lock),
        fencing_token: FencingToken(token),
    };
    match client.kv_put(&key, &(current + 1).to_string(), fence).await {
        Ok(_) => Increment::Acked,
        Err(Error::Refused {
            kind:
                corral_api::ErrorKind::StaleToken {
                    current_token,
                    key_token,
                },
            ..
        }) => Increment::Refused {
            current_token: current_token.map(|t| t.0),
            key_token: key_token.map(|t| t.0),
        },
        Err(_) => Increment::Unknown,
    }
}

// ---------------------------------------------------------------------
// The work queue
// ---------------------------------------------------------------------

/// The queue the producer fills and the consumers drain.
const QUEUE: &str = "chaos-jobs";
/// The most items the producer enqueues: enough for faults to catch claims
/// in every state, few enough to drain in seconds.
const ITEMS: u64 = 300;
/// Consumers that claim through the Rust client; a stalling one comes on
/// top.
const CONSUMERS: usize = 2;
/// The stalling consumer's number.
const STALLER: usize = CONSUMERS;
/// A claim's visibility: short, so that a fault lets claims lapse.
const VISIBILITY: Duration = Duration::from_secs(2);
/// How long a consumer's claim waits on the server for an item.
const CLAIM_WAIT: Duration = Duration::from_millis(500);
/// The most the consumers take to empty the queue once the clients stop.
const DRAIN_BOUND: Duration = Duration::from_secs(20);

/// How a consumer settled a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    Ack,
    Nack,
}

/// The answer to an ack or a nack.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Done,
    /// `409 stale_token`: not the item's live claim; the live claim's
    /// token, when the item has one.
    Stale {
        current: Option<u64>,
    },
    /// `404 item_not_found`: the item is gone.
    Gone,
    /// No answer within the retries: it may have applied.
    Unknown,
    /// Anything else, which no fault explains.
    Unexpected(String),
}

impl Answer {
    fn of<T>(result: Result<T, Error>) -> Answer {
        match result {
            Ok(_) => Answer::Done,
            Err(Error::Refused {
                kind: ErrorKind::StaleToken { current_token, .. },
                ..
            }) => Answer::Stale {
                current: current_token.map(|t| t.0),
            },
            Err(Error::Refused {
                kind: ErrorKind::ItemNotFound,
                ..
            }) => Answer::Gone,
            Err(Error::Unavailable(_)) => Answer::Unknown,
            Err(e) => Answer::Unexpected(e.to_string()),
        }
    }

    /// The answer to a request sent by hand: its status and body, or
    /// nothing from any node.
    fn of_http(answer: Option<(u16, Value)>) -> Answer {
        match answer {
            None => Answer::Unknown,
            Some((200, _)) => Answer::Done,
            Some((409, body)) if code(&body) == Some("stale_token") => Answer::Stale {
                current: body["error"]["current_token"].as_u64(),
            },
            Some((404, body)) if code(&body) == Some("item_not_found") => Answer::Gone,
            Some((status, body)) => Answer::Unexpected(format!("{status} {body}")),
        }
    }

    fn refused(&self) -> bool {
        matches!(self, Answer::Stale { .. } | Answer::Gone)
    }
}

/// One claim a consumer got, and what came of it.
#[derive(Clone, Debug)]
struct ClaimRec {
    item: u64,
    /// The payload's `n`, if it has one.
    n: Option<u64>,
    token: u64,
    attempt: u64,
    consumer: usize,
    /// The checker's number of the claiming lease.
    lease: u64,
    /// From the claim's arrival to the last moment it was seen proven
    /// held (`start` when never): the claim held at least that long.
    start: Instant,
    end: Instant,
    /// How the consumer settled it, and the answer.
    settled: Option<(Settle, Answer)>,
    /// The guard's background extend was refused.
    extend_refused: bool,
}

/// A write to an item's register in this process that was refused.
#[derive(Debug)]
struct RegisterRefusal {
    item: u64,
    token: u64,
    /// Whether the claim was still proven held after the refusal.
    proven_held: bool,
}

/// What the producer and the consumers saw.
#[derive(Default)]
struct QueueLog {
    /// The `n`s the producer tried (0 to `pushed - 1`).
    pushed: u64,
    /// Per `n`: the item id each acknowledged enqueue answer named, and
    /// whether it said `duplicate` (two answers when it was sent again).
    enqueued: BTreeMap<u64, Vec<(u64, bool)>>,
    /// Per `n`: the tries of unknown outcome, each retried with the same
    /// dedup id.
    enqueue_unknown: BTreeMap<u64, u32>,
    /// Answers that named the earlier item of their dedup id.
    duplicates: u64,
    claims: Vec<ClaimRec>,
    /// Claims that failed, by why.
    claim_failures: BTreeMap<String, u64>,
    /// One register per item in this process, written under its claims'
    /// tokens (its value: the token of the last write).
    registers: BTreeMap<u64, LocalRegister>,
    register_refused: Vec<RegisterRefusal>,
    /// Claims whose consumer revoked its lease while it held them.
    quits: u64,
    /// Requests answered in a way no fault explains.
    errors: Vec<String>,
}

/// The producer: enqueues `{"n": n}` for n = 0, 1, ... (at most `ITEMS`)
/// until the faults end, each under the dedup id `n-{n}`: an enqueue of
/// unknown outcome is retried with it, so none is lost and none added
/// twice. One acknowledged enqueue in ten is sent again, as by a client
/// whose answer was lost, to see the dedup id answer its first item. Sets
/// `done` when no enqueue of its is under way.
async fn producer_loop(
    endpoints: Vec<String>,
    seed: u64,
    chaos_over: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    history: Shared,
) -> Instant {
    let client = chaos_client(endpoints);
    let queue = client.queue(&name(QUEUE));
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..ITEMS {
        if chaos_over.load(Ordering::Relaxed) {
            break;
        }
        history.lock().unwrap().queue.pushed = n + 1;
        if enqueue(&queue, n, &history).await && rng.random_ratio(1, 10) {
            enqueue(&queue, n, &history).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
    }
    done.store(true, Ordering::Relaxed);
    Instant::now()
}

/// Enqueues `{"n": n}` under the dedup id `n-{n}`, again while its outcome
/// is unknown (bounded: a cluster that answers nothing this long fails the
/// run anyway); records the answer. Whether it was acknowledged.
async fn enqueue(queue: &Queue, n: u64, history: &Shared) -> bool {
    let dedup_id = format!("n-{n}");
    for _ in 0..30 {
        let pushed = queue
            .push_with(json!({ "n": n }), Duration::ZERO, Some(&dedup_id))
            .await;
        {
            let mut h = history.lock().unwrap();
            match pushed {
                Ok(answer) => {
                    h.queue.duplicates += u64::from(answer.duplicate);
                    let answers = h.queue.enqueued.entry(n).or_default();
                    answers.push((answer.item_id.0, answer.duplicate));
                    return true;
                }
                Err(Error::Unavailable(_)) => {
                    *h.queue.enqueue_unknown.entry(n).or_default() += 1;
                }
                Err(e) => {
                    h.queue.errors.push(format!("enqueue of n = {n}: {e}"));
                    return false;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Moves `end` to now if `held` says the claim is proven held now.
fn see_held(held: impl Fn() -> bool, end: &mut Instant) {
    // Read before asking: the claim is held at least until the moment
    // it is asked about.
    let now = Instant::now();
    if held() {
        *end = now;
    }
}

/// "Processes" `item` under `token`: reads its register in this process,
/// works for `work`, then writes it, both under `token`; another consumer
/// may act in between. `held` says whether the claim is still proven held,
/// for a refusal.
async fn process(
    history: &Shared,
    (item, token): (u64, u64),
    held: impl Fn() -> bool,
    work: Duration,
) {
    let read = {
        let mut h = history.lock().unwrap();
        h.queue.registers.entry(item).or_default().admit(token)
    };
    tokio::time::sleep(work).await;
    let written = read && {
        let mut h = history.lock().unwrap();
        let register = h.queue.registers.entry(item).or_default();
        let admitted = register.admit(token);
        if admitted {
            register.value = token;
        }
        admitted
    };
    if !written {
        let refusal = RegisterRefusal {
            item,
            token,
            proven_held: held(),
        };
        history.lock().unwrap().queue.register_refused.push(refusal);
    }
}

/// Whether the queue is empty for good: the producer is done and nothing
/// is ready, claimed or delayed.
async fn drained(queue: &Queue, producer_done: &AtomicBool) -> bool {
    if !producer_done.load(Ordering::Relaxed) {
        return false;
    }
    matches!(queue.stats().await, Ok(s) if s.ready + s.claimed + s.delayed == 0)
}

/// One consumer: takes leases (the chaos ttl) and claims items under them
/// through the Rust client, processes each, nacks one in ten, acks the
/// rest, and now and then revokes its lease while it holds a claim. Once
/// told to stop, it goes on until the queue is empty for good, or for
/// `DRAIN_BOUND`.
async fn consumer_loop(
    endpoints: Vec<String>,
    consumer: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    producer_done: Arc<AtomicBool>,
    history: Shared,
) -> Instant {
    let client = chaos_client(endpoints);
    let queue = client.queue(&name(QUEUE));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut drain_until: Option<Instant> = None;
    // The last claim found nothing: time to ask whether the queue is empty.
    let mut idle = false;
    let mut done = false;
    // Once told to stop: whether the drain is over (or out of time).
    let mut drain_over = async |idle: bool| {
        if !stop.load(Ordering::Relaxed) {
            return false;
        }
        let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_BOUND);
        Instant::now() >= until || (idle && drained(&queue, &producer_done).await)
    };
    while !done {
        if drain_over(false).await {
            break;
        }
        let Ok(lease) = client.grant_lease(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let number = LEASES.fetch_add(1, Ordering::Relaxed);
        for _ in 0..20 {
            if drain_over(idle).await {
                done = true;
                break;
            }
            if !lease.is_held() {
                break;
            }
            let guard = match lease.claim_wait(&queue, VISIBILITY, CLAIM_WAIT).await {
                Ok(Some(guard)) => guard,
                Ok(None) => {
                    idle = true;
                    continue;
                }
                Err(e) => {
                    let why = match &e {
                        Error::Unavailable(_) => "unavailable".to_string(),
                        Error::LeaseLost => "lease lost".to_string(),
                        other => other.to_string(),
                    };
                    *history
                        .lock()
                        .unwrap()
                        .queue
                        .claim_failures
                        .entry(why)
                        .or_default() += 1;
                    if matches!(e, Error::LeaseLost) {
                        break;
                    }
                    // Not a busy loop against a refusal that lasts.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            idle = false;
            if work(&history, (consumer, number), &lease, guard, &mut rng).await {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke()).await;
    }
    Instant::now()
}

/// Processes one claimed item, then settles it: one claim in twenty its
/// consumer "quits" (revokes the lease, then acks, which the queue must
/// refuse once the revoke applied), one in ten it nacks, the rest it
/// acks. Records the claim; true when the lease was revoked.
async fn work(
    history: &Shared,
    (consumer, lease_number): (usize, u64),
    lease: &Lease,
    guard: ClaimGuard,
    rng: &mut StdRng,
) -> bool {
    let start = Instant::now();
    let mut rec = ClaimRec {
        item: guard.item_id().0,
        n: guard.payload()["n"].as_u64(),
        token: guard.fencing_token().0,
        attempt: u64::from(guard.attempt()),
        consumer,
        lease: lease_number,
        start,
        end: start,
        settled: None,
        extend_refused: false,
    };
    see_held(|| guard.is_held(), &mut rec.end);
    // One item in five takes long enough for a fault to catch its claim.
    let work_ms = match rng.random_ratio(1, 5) {
        true => rng.random_range(200..1_500),
        false => rng.random_range(0..30),
    };
    let work = Duration::from_millis(work_ms);
    process(history, (rec.item, rec.token), || guard.is_held(), work).await;
    rec.extend_refused = matches!(guard.lost().now_or_never(), Some(ClaimLost::Refused));
    let roll = rng.random_range(0..100);
    see_held(|| guard.is_held(), &mut rec.end);
    let quit = roll < 5;
    if quit {
        let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke()).await;
        rec.settled = Some((Settle::Ack, Answer::of(guard.ack().await)));
    } else if roll < 15 {
        let delay = Duration::from_millis(rng.random_range(0..300));
        rec.settled = Some((Settle::Nack, Answer::of(guard.nack(delay).await)));
    } else {
        rec.settled = Some((Settle::Ack, Answer::of(guard.ack().await)));
    }
    let mut h = history.lock().unwrap();
    h.queue.quits += u64::from(quit);
    h.max_token = h.max_token.max(rec.token);
    h.queue.claims.push(rec);
    quit
}

/// Sends a keyed POST by hand, trying each node in turn (from `first`)
/// with one `Idempotency-Key`: the first answer that is not "unavailable",
/// or `None` when no node gave one.
async fn post_by_hand(
    http: &reqwest::Client,
    endpoints: &[String],
    first: usize,
    (path, body): (&str, &Value),
    wait: Duration,
) -> Option<(u16, Value)> {
    let key = format!("{:032x}", rand::rng().random::<u128>());
    for i in 0..endpoints.len() {
        let endpoint = &endpoints[(first + i) % endpoints.len()];
        let request = http
            .post(format!("{endpoint}{path}"))
            .timeout(Duration::from_secs(3) + wait)
            .header("Idempotency-Key", &key)
            .json(body);
        let (status, answer) = harness::send(request, None, None).await;
        if status != 0 && status != 503 {
            return Some((status, answer));
        }
    }
    None
}

/// A consumer that pauses while it holds a claim, as a worker stopped by a
/// long GC does: it claims (by hand, so that nothing extends the claim)
/// under a lease it never renews, sleeps past the visibility, then writes
/// the item's register and acks with its old token. The queue and the
/// register must refuse it once another consumer claimed the item.
async fn stalling_consumer(
    endpoints: Vec<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
    history: Shared,
) -> Instant {
    let client = Client::new(&endpoints).expect("client");
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let claim_path = format!("/v1/queues/{QUEUE}/claim");
    let ack_path = format!("/v1/queues/{QUEUE}/ack");
    let wait = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let sent_at = Instant::now();
        let Ok(lease) = client.grant_lease_id(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let number = LEASES.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "lease_id": lease.lease_id,
            "visibility_ms": VISIBILITY.as_millis() as u64,
            "max": 1,
            "wait_ms": wait.as_millis() as u64,
        });
        let first = rng.random_range(0..endpoints.len());
        let claim_sent = Instant::now();
        let answer = post_by_hand(&http, &endpoints, first, (&claim_path, &body), wait).await;
        let start = Instant::now();
        let item = match &answer {
            Some((200, answer)) => answer["items"].get(0).cloned(),
            Some((status, answer)) if code(answer) != Some("lease_not_found") => {
                let what = format!("a stalled claim: {status} {answer}");
                history.lock().unwrap().queue.errors.push(what);
                None
            }
            _ => None,
        };
        let Some(item) = item else {
            continue;
        };
        let (Some(item_id), Some(token), Some(attempt)) = (
            item["item_id"].as_u64(),
            item["fencing_token"].as_u64(),
            item["attempt"].as_u64(),
        ) else {
            let what = format!("a claimed item without its id, token or attempt: {item}");
            history.lock().unwrap().queue.errors.push(what);
            continue;
        };
        // Proven held until its visibility or its lease ran out, counted
        // from the sends.
        let held_until = (claim_sent + VISIBILITY).min(sent_at + TTL);
        // The pause: no extend, past the visibility.
        let pause = VISIBILITY + Duration::from_millis(rng.random_range(200..1_000));
        tokio::time::sleep(pause).await;
        let held = || Instant::now() < held_until;
        let work = Duration::from_millis(rng.random_range(0..5));
        process(&history, (item_id, token), held, work).await;
        let named = json!({ "item_id": item_id, "fencing_token": token });
        let ack_sent = Instant::now();
        let first = rng.random_range(0..endpoints.len());
        let acked = post_by_hand(
            &http,
            &endpoints,
            first,
            (&ack_path, &named),
            Duration::ZERO,
        );
        let answer = Answer::of_http(acked.await);
        let rec = ClaimRec {
            item: item_id,
            n: item["payload"]["n"].as_u64(),
            token,
            attempt,
            consumer: STALLER,
            lease: number,
            start,
            end: held_until.min(ack_sent).max(start),
            settled: Some((Settle::Ack, answer)),
            extend_refused: false,
        };
        {
            let mut h = history.lock().unwrap();
            h.max_token = h.max_token.max(token);
            h.queue.claims.push(rec);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..1_500))).await;
    }
    Instant::now()
}

/// Checks the queue's history; panics naming every violation, with the
/// history written to a file. Returns the summary's line.
fn check_queue(run: &Run, log: &QueueLog) -> String {
    let (violations, summary) = queue_violations(log);
    if violations.is_empty() {
        return summary;
    }
    let file = write_queue_history(run, log);
    let shown: Vec<&str> = violations.iter().take(40).map(String::as_str).collect();
    panic!(
        "{} violations in the queue's history (seed {}, {} nodes); history in {}:\n{}",
        violations.len(),
        run.seed,
        run.nodes,
        file.display(),
        shown.join("\n")
    );
}

/// Every violation in the queue's history, and the summary's line.
fn queue_violations(log: &QueueLog) -> (Vec<String>, String) {
    let mut violations = Vec::new();
    let mut by_item: BTreeMap<u64, Vec<&ClaimRec>> = BTreeMap::new();
    for claim in &log.claims {
        by_item.entry(claim.item).or_default().push(claim);
    }
    for list in by_item.values_mut() {
        list.sort_by_key(|c| (c.attempt, c.token));
    }
    let by_token: BTreeMap<u64, &ClaimRec> = log.claims.iter().map(|c| (c.token, c)).collect();

    // One item per dedup id, whether an enqueue's answer or a claim names
    // it; and only payloads the producer pushed.
    let mut items_of: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (n, answers) in &log.enqueued {
        items_of
            .entry(*n)
            .or_default()
            .extend(answers.iter().map(|(id, _)| id));
        // Its item is there already when it is sent again.
        if answers.iter().skip(1).any(|(_, duplicate)| !duplicate) {
            violations.push(format!(
                "dedup id n-{n} sent again was answered as new: {answers:?}"
            ));
        }
    }
    for claim in &log.claims {
        match claim.n {
            Some(n) if n < log.pushed => {
                items_of.entry(n).or_default().insert(claim.item);
            }
            _ => violations.push(format!(
                "item {} has a payload the producer never pushed: {claim:?}",
                claim.item
            )),
        }
    }
    for (n, ids) in &items_of {
        if ids.len() > 1 {
            violations.push(format!("dedup id n-{n} added {} items: {ids:?}", ids.len()));
        }
    }
    // Every acknowledged enqueue's item was claimed (and, below, acked).
    for (n, answers) in &log.enqueued {
        let ids: BTreeSet<u64> = answers.iter().map(|(id, _)| *id).collect();
        for id in ids.iter().filter(|id| !by_item.contains_key(id)) {
            violations.push(format!(
                "item {id} (n = {n}), whose enqueue was acknowledged, was never claimed"
            ));
        }
    }

    let (mut acked_once, mut acked_unknown) = (0, 0);
    for (item, list) in &by_item {
        // Attempts and tokens rise together.
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.attempt <= a.attempt || b.token <= a.token {
                violations.push(format!(
                    "item {item}: attempt {} under token {}, attempt {} under token {}",
                    a.attempt, a.token, b.attempt, b.token
                ));
            }
        }
        // Acked once, by its latest claim: the highest token. An ack of
        // unknown outcome by the latest claim may be the one.
        let latest = list[list.len() - 1];
        let acks: Vec<&&ClaimRec> = list
            .iter()
            .filter(|c| c.settled == Some((Settle::Ack, Answer::Done)))
            .collect();
        match acks.as_slice() {
            [] if latest.settled == Some((Settle::Ack, Answer::Unknown)) => acked_unknown += 1,
            [] => violations.push(format!(
                "item {item} was never acked; its latest claim: {latest:?}"
            )),
            [ack] if ack.token == latest.token => acked_once += 1,
            [ack] => violations.push(format!(
                "item {item} was acked under token {}, below its later claim {latest:?}",
                ack.token
            )),
            acks => violations.push(format!(
                "item {item} was acked {} times: {acks:?}",
                acks.len()
            )),
        }
        for claim in list {
            // Refused only once it was not the item's latest claim.
            let refused = claim.extend_refused
                || claim
                    .settled
                    .as_ref()
                    .is_some_and(|(_, answer)| answer.refused());
            if refused && claim.token == latest.token {
                violations.push(format!("item {item}'s latest claim was refused: {claim:?}"));
            }
            match &claim.settled {
                Some((Settle::Nack, Answer::Done)) if claim.token == latest.token => violations
                    .push(format!(
                        "item {item} was nacked and never claimed again: {claim:?}"
                    )),
                // The live claim a refusal names is a later one of the item.
                Some((_, Answer::Stale { current: Some(t) })) => {
                    let other_item = by_token.get(t).map(|c| c.item);
                    if *t <= claim.token || other_item.is_some_and(|other| other != *item) {
                        violations.push(format!(
                            "a refusal of {claim:?} named token {t} as the live claim (of item {other_item:?})"
                        ));
                    }
                }
                Some((_, Answer::Unexpected(what))) => {
                    violations.push(format!("an unexpected answer to {claim:?}: {what}"))
                }
                _ => {}
            }
        }
        // No two claims of the item proven held at once.
        let mut held: Vec<&&ClaimRec> = list.iter().filter(|c| c.end > c.start).collect();
        held.sort_by_key(|c| c.start);
        for pair in held.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.end > b.start {
                violations.push(format!(
                    "two claims of item {item} held at once: token {} until {:?}, token {} from {:?}",
                    a.token, a.end, b.token, b.start
                ));
            }
        }
    }
    for refusal in log.register_refused.iter().filter(|r| r.proven_held) {
        violations.push(format!(
            "a write to item {}'s register under token {}, by a claim still proven held, was refused",
            refusal.item, refusal.token
        ));
    }
    violations.extend(log.errors.iter().cloned());
    // A claim fails under the faults only for want of a leader or of its
    // lease: a refusal is a bug (a lost waiting claim once made the
    // lease's next claims `already_waiting`).
    let faults = ["unavailable", "lease lost"];
    for (why, n) in &log.claim_failures {
        if !faults.contains(&why.as_str()) {
            violations.push(format!("{n} claims failed: {why}"));
        }
    }

    let count = |settle: Settle, what: fn(&Answer) -> bool| {
        let settled = log.claims.iter().filter_map(|c| c.settled.as_ref());
        settled.filter(|(s, a)| *s == settle && what(a)).count()
    };
    let acknowledged = log.enqueued.len();
    let retried = log.enqueue_unknown.len();
    let resent = log.enqueued.values().filter(|a| a.len() > 1).count();
    let stalled = log.claims.iter().filter(|c| c.consumer == STALLER).count();
    let extends = log.claims.iter().filter(|c| c.extend_refused).count();
    let summary = format!(
        "{} pushed ({acknowledged} acknowledged, {retried} retried with their dedup id after an unknown outcome, \
         {resent} sent again; {} answers said duplicate); \
         {} claims ({stalled} stalled) of {} items, failed claims {:?}; \
         acks: {} done, {} refused, {} unknown; nacks: {} done, {} refused, {} unknown; {extends} extends refused; \
         {} leases revoked holding a claim; {} register writes refused, none by a live claim; \
         items acked once: {acked_once}, by an ack of unknown outcome: {acked_unknown}",
        log.pushed,
        log.duplicates,
        log.claims.len(),
        by_item.len(),
        log.claim_failures,
        count(Settle::Ack, |a| *a == Answer::Done),
        count(Settle::Ack, Answer::refused),
        count(Settle::Ack, |a| *a == Answer::Unknown),
        count(Settle::Nack, |a| *a == Answer::Done),
        count(Settle::Nack, Answer::refused),
        count(Settle::Nack, |a| *a == Answer::Unknown),
        log.quits,
        log.register_refused.len(),
    );
    (violations, summary)
}

/// Writes the queue's history, item by item, under the test's output
/// folder; returns the file.
fn write_queue_history(run: &Run, log: &QueueLog) -> std::path::PathBuf {
    let mut by_item: BTreeMap<u64, Vec<&ClaimRec>> = BTreeMap::new();
    for claim in &log.claims {
        by_item.entry(claim.item).or_default().push(claim);
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos");
    std::fs::create_dir_all(&dir).expect("output folder");
    let file = dir.join(format!("seed-{}-{}-nodes-queue.txt", run.seed, run.nodes));
    let mut text = format!(
        "pushed {}\nenqueued {:?}\nunknown enqueues {:?}\n",
        log.pushed, log.enqueued, log.enqueue_unknown
    );
    for (item, list) in &by_item {
        text.push_str(&format!("item {item}:\n"));
        for claim in list {
            text.push_str(&format!("  {claim:?}\n"));
        }
    }
    text.push_str(&format!("register refusals: {:?}\n", log.register_refused));
    text.push_str(&format!("errors: {:?}\n", log.errors));
    std::fs::write(&file, text).expect("write the queue's history");
    file
}

/// Waits (bounded) until every node answers the queue's stats and items,
/// then checks they read alike and empty: nothing ready, claimed or
/// delayed, no item listed. The consumers saw the queue empty through a
/// linearizable read, so any node's later read that is not empty is a
/// violation at once. Returns the stats.
async fn check_queue_drained(cluster: &Cluster) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for id in cluster.live() {
            let stats = cluster.get(id, &format!("/v1/queues/{QUEUE}")).await;
            let items = cluster
                .get(id, &format!("/v1/queues/{QUEUE}/items?limit=1000"))
                .await;
            views.push((id, stats, items));
        }
        for (id, (status, stats), _) in &views {
            if *status != 200 {
                continue;
            }
            let empty = ["ready", "claimed", "delayed"]
                .iter()
                .all(|field| stats[field].as_u64() == Some(0));
            assert!(
                empty,
                "node {id} reads the queue not empty after the drain (or the drain ran out of time): {stats}"
            );
        }
        for (id, _, (status, items)) in &views {
            let listed = items["items"].as_array().map(Vec::len);
            assert!(
                *status != 200 || listed == Some(0),
                "node {id} lists items after the drain: {items}"
            );
        }
        let answered = views
            .iter()
            .all(|(_, (s, _), (i, _))| *s == 200 && *i == 200);
        // The waiting claims of a lease that ended may leave between two
        // nodes' reads: alike is waited for.
        let alike = views
            .windows(2)
            .all(|pair| pair[0].1 == pair[1].1 && pair[0].2 == pair[1].2);
        if answered && alike {
            return views.swap_remove(0).1 .1;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never read the queue alike: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Injects one fault, holds it for a while, undoes it; says what it did.
async fn inject(cluster: &mut Cluster, fault: Fault, rng: &mut StdRng) -> String {
    let leader = cluster.wait_leader().await;
    let mut others: Vec<u64> = cluster
        .live()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    others.shuffle(rng);
    let hold = Duration::from_millis(rng.random_range(3_500..5_000));
    match fault {
        Fault::KillLeader => {
            cluster.kill(leader);
            tokio::time::sleep(hold).await;
            cluster.restart(leader);
            format!("kill -9 of leader {leader}, restarted after {hold:?}")
        }
        Fault::KillFollower => {
            let victim = others[0];
            cluster.kill(victim);
            tokio::time::sleep(hold).await;
            cluster.restart(victim);
            format!("kill -9 of follower {victim}, restarted after {hold:?}")
        }
        Fault::PauseLeader => {
            // Longer than the election timeout and the lease ttl.
            cluster.pause(leader);
            tokio::time::sleep(hold).await;
            cluster.resume(leader);
            format!("pause of leader {leader} for {hold:?}")
        }
        Fault::IsolateLeader => {
            cluster.partition(&[&[leader], &others]).await;
            tokio::time::sleep(hold).await;
            cluster.heal().await;
            format!("leader {leader} isolated for {hold:?}")
        }
        Fault::SplitMinority => {
            let minority = [leader, others[0]];
            cluster.partition(&[&minority, &others[1..]]).await;
            tokio::time::sleep(hold).await;
            cluster.heal().await;
            format!(
                "leader {leader} and {} cut off from {:?} for {hold:?}",
                others[0],
                &others[1..]
            )
        }
        Fault::Bridge => {
            // The leader sees everyone; the followers' two halves do not
            // see each other.
            let (left, right) = others.split_at(others.len() / 2);
            for id in left {
                cluster.block(*id, right).await;
            }
            for id in right {
                cluster.block(*id, left).await;
            }
            tokio::time::sleep(hold).await;
            cluster.heal().await;
            format!("bridge through leader {leader} between {left:?} and {right:?} for {hold:?}")
        }
        Fault::LaggingDiskFastRestart => {
            let victim = if rng.random_bool(0.5) {
                leader
            } else {
                others[0]
            };
            let lagging = lag_then_kill(cluster, victim, rng).await;
            cluster.restart(victim);
            tokio::time::sleep(hold).await;
            let role = if victim == leader {
                "leader"
            } else {
                "follower"
            };
            format!(
                "{role} {victim} killed after its log sync lagged {lagging:?}, restarted at once"
            )
        }
        Fault::RestartAll => {
            let live = cluster.live();
            for id in &live {
                cluster.kill(*id);
            }
            for id in &live {
                cluster.restart(*id);
            }
            tokio::time::sleep(hold).await;
            format!("every node killed under load and restarted at once ({live:?})")
        }
        Fault::Skew => {
            let live = cluster.live();
            let node = live[rng.random_range(0..live.len())];
            let skew: i64 = if rng.random_bool(0.5) { 5_000 } else { -5_000 };
            cluster.skew_clock(node, skew).await;
            tokio::time::sleep(hold).await;
            cluster.skew_clock(node, 0).await;
            format!("node {node}'s clock off by {skew} ms for {hold:?}")
        }
    }
}

/// Slows `victim`'s log sync, lets the clients write for a while (what
/// `victim` appends meanwhile is only in its memory), then kills it -9;
/// returns how long its sync lagged.
async fn lag_then_kill(cluster: &mut Cluster, victim: u64, rng: &mut StdRng) -> Duration {
    cluster.slow_log_sync(victim, 5_000).await;
    let lagging = Duration::from_millis(rng.random_range(300..1_200));
    tokio::time::sleep(lagging).await;
    cluster.kill(victim);
    lagging
}

/// Who a fencing token was handed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenOwner {
    /// A grant of `lock` to a lease.
    Lock { lock: &'static str, lease: u64 },
    /// A claim of an item of the queue by a lease.
    Claim { item: u64, lease: u64 },
}

/// Checks that no fencing token was handed out twice: every granted
/// acquire and every hold with a token names one lock and one lease, and
/// every claim a consumer saw has a token of its own, which no grant has
/// (they share the cluster's one counter).
fn check_tokens_unique(
    holds: &[Hold],
    ops: &BTreeMap<&'static str, Vec<LockOp>>,
    claims: &[ClaimRec],
) {
    if let Some(reuse) = token_reused(holds, ops, claims) {
        panic!("{reuse}");
    }
}

/// The first token handed out twice, said, if any: see
/// [`check_tokens_unique`].
fn token_reused(
    holds: &[Hold],
    ops: &BTreeMap<&'static str, Vec<LockOp>>,
    claims: &[ClaimRec],
) -> Option<String> {
    let mut owner: BTreeMap<u64, TokenOwner> = BTreeMap::new();
    let granted = ops.iter().flat_map(|(lock, ops)| {
        ops.iter().filter_map(move |op| match op.output() {
            Some(MutexOutput::Granted { token }) => Some((*token, *lock, op.client())),
            _ => None,
        })
    });
    let held = holds.iter().map(|h| (h.token, h.lock, h.lease));
    for (token, lock, lease) in granted.chain(held) {
        let this = TokenOwner::Lock { lock, lease };
        let first = *owner.entry(token).or_insert(this);
        if first != this {
            return Some(format!(
                "token {token} was handed out twice: to {first:?} and to {this:?}"
            ));
        }
    }
    // A claim is seen once: the same token twice is two claims.
    for claim in claims {
        let this = TokenOwner::Claim {
            item: claim.item,
            lease: claim.lease,
        };
        if let Some(first) = owner.insert(claim.token, this) {
            return Some(format!(
                "token {} was handed out twice: to {first:?} and to {this:?} ({claim:?})",
                claim.token
            ));
        }
    }
    None
}

/// One node's reads of what the clients wrote: the locks (holders,
/// tokens) and the registers of the fenced store (values, tokens).
async fn replica_view(cluster: &Cluster, id: u64) -> Vec<(u16, serde_json::Value)> {
    let mut view = vec![cluster.get(id, "/v1/locks?prefix=mutex/").await];
    for lock in LOCKS {
        view.push(
            cluster
                .get(id, &format!("/v1/kv?key={}", register(lock)))
                .await,
        );
    }
    view
}

/// Waits (bounded) until every node reads the same locks and registers:
/// replicas that diverged (a token handed out twice, say) never agree on
/// the registers' tokens.
async fn check_replicas_agree(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for id in cluster.live() {
            views.push(replica_view(cluster, id).await);
        }
        let answered = views
            .iter()
            .flatten()
            .all(|(status, _)| *status == 200 || *status == 404);
        let agree = answered && views.windows(2).all(|pair| pair[0] == pair[1]);
        if agree {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never agreed on the locks: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks a history: holds of one lock never overlap, and their tokens
/// rise in hold order. A lease whose release went unanswered may still
/// hold; acquiring again then grants it anew, under a higher token (a
/// client's release names its grant's token, so a late one cannot end the
/// new grant). The same token twice in a row, with the same lease, is
/// still accepted as one hold going on.
fn check_holds(holds: &[Hold]) {
    for lock in LOCKS {
        let mut mine: Vec<&Hold> = holds.iter().filter(|h| h.lock == lock).collect();
        mine.sort_by_key(|h| h.start);
        for pair in mine.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                a.end <= b.start,
                "two holders of {lock} at once: token {} until {:?}, token {} from {:?}",
                a.token,
                a.end,
                b.token,
                b.start
            );
            assert!(
                a.token < b.token || (a.token == b.token && a.lease == b.lease),
                "tokens of {lock} must rise in hold order: {} (lease {}) then {} (lease {})",
                a.token,
                a.lease,
                b.token,
                b.lease
            );
        }
    }
}

/// Checks each lock's history for linearizability; a violation writes the
/// history to a file and fails. Returns a line per lock for the summary.
fn check_linearizable(run: &Run, ops: &BTreeMap<&'static str, Vec<LockOp>>) -> Vec<String> {
    let mut lines = Vec::new();
    for (lock, history) in ops {
        let started = std::time::Instant::now();
        let verdict = check(&FencedMutex, history, SearchBudget::default());
        let took = started.elapsed();
        let unknown = history.iter().filter(|op| !op.is_completed()).count();
        match verdict {
            Verdict::Linearizable { .. } => lines.push(format!(
                "{lock}: {} ops ({unknown} of unknown outcome) linearizable, checked in {took:?}",
                history.len()
            )),
            Verdict::Unknown { explored } => lines.push(format!(
                "{lock}: {} ops: INCONCLUSIVE after {explored} states",
                history.len()
            )),
            Verdict::Violation {
                longest_prefix,
                stuck_at,
            } => {
                let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos");
                std::fs::create_dir_all(&dir).expect("output folder");
                let file = dir.join(format!(
                    "seed-{}-{}-nodes-{}.txt",
                    run.seed,
                    run.nodes,
                    lock.replace('/', "_")
                ));
                let mut text = String::new();
                for (i, op) in history.iter().enumerate() {
                    text.push_str(&format!("{i}: {op:?}\n"));
                }
                text.push_str(&format!(
                    "longest prefix: {longest_prefix:?}\nstuck at: {stuck_at:?}\n"
                ));
                std::fs::write(&file, text).expect("write the history");
                panic!(
                    "the history of {lock} is not linearizable (seed {}, {} nodes); history in {}",
                    run.seed,
                    run.nodes,
                    file.display()
                );
            }
        }
    }
    lines
}

/// A small history that passes the queue's checks: item 1 nacked under
/// token 10 and acked under 12, item 2 acked under 11.
fn sound_queue_log() -> QueueLog {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let claim = |item, token, attempt, (start, end), settled| ClaimRec {
        item,
        n: Some(item - 1),
        token,
        attempt,
        consumer: 0,
        lease: 1,
        start: at(start),
        end: at(end),
        settled: Some(settled),
        extend_refused: false,
    };
    QueueLog {
        pushed: 2,
        enqueued: BTreeMap::from([(0, vec![(1, false), (1, true)]), (1, vec![(2, false)])]),
        claims: vec![
            claim(1, 10, 1, (0, 10), (Settle::Nack, Answer::Done)),
            claim(2, 11, 1, (5, 20), (Settle::Ack, Answer::Done)),
            claim(1, 12, 2, (15, 30), (Settle::Ack, Answer::Done)),
        ],
        ..QueueLog::default()
    }
}

/// A way to break a sound history: what it breaks, and words of the
/// violation that must name it.
type Break = (&'static str, &'static str, fn(&mut QueueLog));

/// The queue's checks pass a sound history and fail each broken one: the
/// checks of a chaos run are only as good as their power to fail.
#[test]
fn queue_checks_fail_broken_histories() {
    let (violations, _) = queue_violations(&sound_queue_log());
    assert_eq!(violations, Vec::<String>::new());
    let breaks: Vec<Break> = vec![
        ("acked twice", "acked 2 times", |log| {
            log.claims[0].settled = Some((Settle::Ack, Answer::Done))
        }),
        (
            "acked by a claim not its latest",
            "below its later claim",
            |log| {
                log.claims[0].settled = Some((Settle::Ack, Answer::Done));
                log.claims[2].settled = Some((Settle::Ack, Answer::Gone));
            },
        ),
        (
            "the latest claim refused",
            "latest claim was refused",
            |log| log.claims[1].settled = Some((Settle::Ack, Answer::Stale { current: None })),
        ),
        (
            "the latest claim's extend refused",
            "latest claim was refused",
            |log| log.claims[2].extend_refused = true,
        ),
        (
            "a refusal naming another item's claim",
            "as the live claim (of item Some(2))",
            |log| log.claims[0].settled = Some((Settle::Nack, Answer::Stale { current: Some(11) })),
        ),
        (
            "tokens falling as attempts rise",
            "attempt 2 under token 9",
            |log| log.claims[2].token = 9,
        ),
        ("two claims held at once", "held at once", |log| {
            log.claims[0].end = log.claims[2].start + Duration::from_millis(1)
        }),
        (
            "one dedup id, two items",
            "dedup id n-0 added 2 items",
            |log| log.claims[1].n = Some(0),
        ),
        (
            "a dedup id sent again answered as new",
            "answered as new",
            |log| {
                log.enqueued.insert(1, vec![(2, false), (2, false)]);
            },
        ),
        (
            "an acknowledged enqueue never claimed",
            "item 3 (n = 2), whose enqueue was acknowledged",
            |log| {
                log.enqueued.insert(2, vec![(3, false)]);
                log.pushed = 3;
            },
        ),
        (
            "a live claim's register write refused",
            "by a claim still proven held",
            |log| {
                log.register_refused.push(RegisterRefusal {
                    item: 1,
                    token: 10,
                    proven_held: true,
                })
            },
        ),
    ];
    for (what, words, breaks) in breaks {
        let mut log = sound_queue_log();
        breaks(&mut log);
        let (violations, _) = queue_violations(&log);
        assert!(
            violations.iter().any(|v| v.contains(words)),
            "the checks missed a history with {what}: {violations:?}"
        );
    }
    // One token for a claim and a lock grant.
    let log = sound_queue_log();
    let hold = Hold {
        lock: LOCKS[0],
        lease: 7,
        token: 12,
        start: Instant::now(),
        end: Instant::now(),
    };
    assert_eq!(token_reused(&[], &BTreeMap::new(), &log.claims), None);
    let reused = token_reused(&[hold], &BTreeMap::new(), &log.claims);
    assert!(reused.is_some(), "a token of a claim and a grant passed");
}

/// Serializes the runs: each starts its own cluster, and two at once would
/// starve both of CPU on a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A claim whose answer is lost while it waits on the server leaves its
/// wait behind until the leader withdraws it (its `wait_ms` and a 2 s
/// grace after it began). The lease's next claim on that queue waits apart
/// from it, under its own claim id. Found by the queue workload of the
/// chaos run (seed 7, 3 nodes: 2 claims unavailable, then 26 refused
/// `already_waiting`, when a lease had one waiting claim per queue); seen
/// failing so before claims had ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_waiting_claim_leaves_the_leases_next_claim_free() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    // A client of the follower alone, which gives up soon.
    let retry = RetryPolicy {
        attempts: 3,
        budget: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let client = Client::with_retry([cluster.url(follower, "")], retry).expect("client");
    let queue = client.queue(&name("lost-wait"));
    let lease = client.grant_lease(Duration::from_secs(60)).await.unwrap();
    let waiting = {
        let (lease, queue) = (lease.clone(), queue.clone());
        tokio::spawn(async move {
            let claimed = lease.claim_wait(&queue, Duration::from_secs(5), Duration::from_secs(10));
            claimed.await.map(|guard| guard.is_some())
        })
    };
    let path = "/v1/queues/lost-wait";
    cluster
        .wait_for(leader, path, |q| q["waiting_claims"] == 1)
        .await;
    // The node the claim waits on dies: the claim's answer is lost.
    cluster.kill(follower);
    let lost = waiting.await.expect("the claim's task");
    assert!(matches!(lost, Err(Error::Unavailable(_))), "{lost:?}");
    cluster.restart(follower);
    cluster.wait_leader().await;
    // The lease claims again, in turn: no other claim of it waits.
    let again = lease
        .claim_wait(&queue, Duration::from_secs(5), Duration::from_secs(1))
        .await;
    let (_, stats) = cluster.get(leader, path).await;
    assert!(
        matches!(again, Ok(None)),
        "the lease's next claim: {again:?}; the queue: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_no_fault_makes_two_owners_or_loses_an_acknowledged_write() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(Run::new(3, 7)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_no_fault_makes_two_owners_or_loses_an_acknowledged_write() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(Run::new(5, 11)).await;
}

async fn chaos(run: Run) {
    eprintln!(
        "chaos: seed {}, {} nodes (set CORRAL_CHAOS_SEED to replay, CORRAL_CHAOS_SECS to run longer)",
        run.seed, run.nodes
    );
    let mut cluster = Cluster::start_with(run.nodes, &["--test-faults"]).await;
    let endpoints: Vec<String> = (1..=run.nodes).map(|id| cluster.url(id, "")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let history: Shared = Arc::new(Mutex::new(History::new()));
    let mut workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                endpoints.clone(),
                run.seed * 100 + i as u64,
                stop.clone(),
                history.clone(),
            ))
        })
        .collect();
    workers.push(tokio::spawn(sleeper_loop(
        endpoints.clone(),
        run.seed * 100 + 99,
        stop.clone(),
        history.clone(),
    )));
    // The queue's clients draw from seeds of their own: the schedule's
    // generator is the run's seed alone, as before.
    let chaos_over = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicBool::new(false));
    let mut queue_workers = vec![tokio::spawn(producer_loop(
        endpoints.clone(),
        run.seed * 100 + 50,
        chaos_over.clone(),
        produced.clone(),
        history.clone(),
    ))];
    for consumer in 0..CONSUMERS {
        queue_workers.push(tokio::spawn(consumer_loop(
            endpoints.clone(),
            consumer,
            run.seed * 100 + 60 + consumer as u64,
            stop.clone(),
            produced.clone(),
            history.clone(),
        )));
    }
    queue_workers.push(tokio::spawn(stalling_consumer(
        endpoints.clone(),
        run.seed * 100 + 98,
        stop.clone(),
        history.clone(),
    )));

    // Every kind of fault once, in a seeded order, then more passes while
    // time remains.
    let mut rng = StdRng::seed_from_u64(run.seed);
    let probe = Client::new(&endpoints).unwrap();
    let chaos_started = Instant::now();
    let mut passes = 0;
    while passes == 0 || chaos_started.elapsed() < run.chaos {
        let mut kinds = Fault::kinds(run.nodes);
        kinds.shuffle(&mut rng);
        for fault in kinds {
            {
                let mut h = history.lock().unwrap();
                let began = h.at(Instant::now());
                h.faults.push((fault, began));
            }
            let what = inject(&mut cluster, fault, &mut rng).await;
            eprintln!("fault: {what}");
            // A quiet spell longer than a lease ttl plus an election, so
            // that leases nobody renews can expire: every new leader gives
            // every lease a full ttl, so back-to-back leader changes would
            // keep them.
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..5_000))).await;
        }
        passes += 1;
    }
    // No enqueue starts from here on, so none is under way when the queue
    // drains (a late one would refill it).
    chaos_over.store(true, Ordering::Relaxed);

    // Healed: a majority serves an acquire within 5 s of having a leader.
    cluster.heal().await;
    let leader = cluster.wait_leader().await;
    let healed = Instant::now();
    let lease = probe.grant_lease(Duration::from_secs(10)).await.unwrap();
    let guard = lease
        .lock_timeout(&name("liveness"), Duration::from_secs(5))
        .await
        .expect("an acquire after healing");
    let liveness = healed.elapsed();
    assert!(liveness < Duration::from_secs(5), "liveness: {liveness:?}");
    guard.release().await.unwrap();
    lease.revoke().await.unwrap();

    // The whole cluster dies under load and comes back.
    for id in 1..=run.nodes {
        cluster.kill(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=run.nodes {
        cluster.restart(id);
    }
    let restarted = Instant::now();
    cluster.wait_leader().await;
    let restart_leader = restarted.elapsed();
    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("clients stop")
            .expect("client task");
    }
    // The consumers drain the queue (bounded by `DRAIN_BOUND`), the
    // producer and the stalling consumer end.
    let mut ended = Vec::new();
    for worker in queue_workers {
        let end = tokio::time::timeout(DRAIN_BOUND + Duration::from_secs(15), worker)
            .await
            .expect("the queue's clients stop")
            .expect("queue client task");
        // The producer ends with the faults, before the clients stop.
        ended.push(match end.checked_duration_since(stopped) {
            Some(after) => format!("{:.2}", after.as_secs_f64()),
            None => format!("-{:.2}", (stopped - end).as_secs_f64()),
        });
    }

    let history = std::mem::replace(&mut *history.lock().unwrap(), History::new());
    assert!(history.holds.len() >= 10, "the clients made progress");
    check_holds(&history.holds);
    check_tokens_unique(&history.holds, &history.ops, &history.queue.claims);
    check_replicas_agree(&cluster).await;
    let linearizable = check_linearizable(&run, &history.ops);
    assert!(
        history.queue.claims.len() >= 10,
        "the consumers made progress"
    );
    let queue = check_queue(&run, &history.queue);
    let queue_stats = check_queue_drained(&cluster).await;

    // Every acknowledged increment survived the full restart, once.
    for lock in LOCKS {
        let value = probe
            .kv_get(&register(lock))
            .await
            .unwrap()
            .map_or(0, |r| r.value.parse::<u64>().unwrap());
        let acked = history.acked.get(lock).copied().unwrap_or(0);
        let unknown = history.unknown.get(lock).copied().unwrap_or(0);
        assert!(
            acked <= value && value <= acked + unknown,
            "register of {lock}: {value}, with {acked} acked and {unknown} unknown"
        );
        // The register in this process has no unknown outcomes.
        let local = history.local.get(lock).map_or(0, |r| r.value);
        let local_acked = history.local_acked.get(lock).copied().unwrap_or(0);
        assert_eq!(local, local_acked, "local register of {lock}");
    }
    // A refused writer was stale: its lease no longer proven alive, or a
    // newer token held the lock or had written the key.
    for r in &history.refused {
        let newer = r.current_token.is_some_and(|t| t > r.token)
            || r.key_token.is_some_and(|t| t > r.token);
        assert!(
            !r.proven_held || newer,
            "a live owner's write to the register of {} was refused: {r:?}",
            r.lock
        );
    }
    // The local register refuses only lower tokens, which some other
    // holder took after this one: so the refused holder was no longer
    // proven alive.
    for r in &history.local_refused {
        assert!(
            !r.proven_held,
            "a live owner's access to the local register of {} was refused: {r:?}",
            r.lock
        );
    }
    // Tokens go on above every token handed out.
    let lease = probe.grant_lease(Duration::from_secs(10)).await.unwrap();
    let guard = lease.try_lock(&name("after-restart")).await.unwrap();
    assert!(guard.fencing_token().0 > history.max_token);

    let ops: usize = history.ops.values().map(Vec::len).sum();
    let recoveries: Vec<String> = history
        .recoveries()
        .iter()
        .map(|(fault, took)| match took {
            Some(took) => format!("{fault:?} {:.2}s", took.as_secs_f64()),
            None => format!("{fault:?} never"),
        })
        .collect();
    eprintln!(
        "chaos summary: seed {}, {} nodes, {:.0} s of faults, leader {leader} after healing\n  \
         operations: {ops} acquire/release/expiry ops, {} holds; cluster register: acked {:?}, unknown {:?}, {} refused as stale; \
         local register: acked {:?}, {} refused as stale\n  \
         faults: {} ({} kinds)\n  \
         recovery (fault began to the next grant any client saw): {}\n  \
         liveness after healing: {:.2} s; leader after full restart: {:.2} s\n  \
         linearizability:\n    {}\n  \
         queue {QUEUE}: {queue}\n  \
         queue drained, on every node: {queue_stats}; the producer, the consumers and the stalling one ended {} s after the clients stopped\n  \
         violations: 0",
        run.seed,
        run.nodes,
        chaos_started.elapsed().as_secs_f64(),
        history.holds.len(),
        history.acked,
        history.unknown,
        history.refused.len(),
        history.local_acked,
        history.local_refused.len(),
        history.faults.len(),
        {
            let mut kinds: Vec<Fault> = history.faults.iter().map(|(f, _)| *f).collect();
            kinds.sort();
            kinds.dedup();
            kinds.len()
        },
        recoveries.join(", "),
        liveness.as_secs_f64(),
        restart_leader.as_secs_f64(),
        linearizable.join("\n    "),
        ended.join(", "),
    );
}
