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
//! `CORRAL_CHAOS_SEED` replays a schedule; `CORRAL_CHAOS_SECS` runs longer
//! (`just chaos SEED MINUTES`, or `deploy/chaos.sh SEED MINUTES`). A run
//! prints a summary; a violation also writes the lock's history under the
//! test's output folder.

// A scenario test reads top to bottom as one story; the 70-line limit
// is for production code.
#![allow(clippy::too_many_lines)]

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_check::{check, FencedMutex, MutexInput, MutexOutput, Operation, SearchBudget, Verdict};
use corral_client::{Client, Error, Fence, FencingToken, Lease, LockName, RetryPolicy};
use harness::Cluster;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
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

/// One client: leases, locks, fenced read-modify-writes, releases, until
/// told to stop.
async fn client_loop(endpoints: Vec<String>, seed: u64, stop: Arc<AtomicBool>, history: Shared) {
    let retry = RetryPolicy {
        budget: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    let client = Client::with_retry(endpoints, retry).expect("client");
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

/// Checks that no fencing token was handed to two grants: every granted
/// acquire and every hold with a token names one lock and one lease.
fn check_tokens_unique(holds: &[Hold], ops: &BTreeMap<&'static str, Vec<LockOp>>) {
    let mut owner: BTreeMap<u64, (&'static str, u64)> = BTreeMap::new();
    let granted = ops.iter().flat_map(|(lock, ops)| {
        ops.iter().filter_map(move |op| match op.output() {
            Some(MutexOutput::Granted { token }) => Some((*token, *lock, op.client())),
            _ => None,
        })
    });
    let held = holds.iter().map(|h| (h.token, h.lock, h.lease));
    for (token, lock, lease) in granted.chain(held) {
        let first = *owner.entry(token).or_insert((lock, lease));
        assert_eq!(
            first,
            (lock, lease),
            "token {token} was handed out twice: to lease {} on {}, and to lease {lease} on {lock}",
            first.1,
            first.0
        );
    }
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

/// Serializes the runs: each starts its own cluster, and two at once would
/// starve both of CPU on a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("clients stop")
            .expect("client task");
    }

    let history = std::mem::replace(&mut *history.lock().unwrap(), History::new());
    assert!(history.holds.len() >= 10, "the clients made progress");
    check_holds(&history.holds);
    check_tokens_unique(&history.holds, &history.ops);
    check_replicas_agree(&cluster).await;
    let linearizable = check_linearizable(&run, &history.ops);

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
    );
}
