//! Failure tests: clients take locks and increment fenced registers while
//! a seeded schedule kills, pauses, partitions and skews the clocks of a
//! real 3-node cluster; then everything heals, the whole cluster is killed
//! and restarted, and the history is checked:
//!
//! - no two conservative hold intervals of one lock overlap, and tokens
//!   rise in hold order (a mutex with fencing);
//! - every acknowledged increment of a register is there exactly once;
//! - every refused write came from a stale owner: its lease was no longer
//!   proven alive, or a newer token held the lock or wrote the key;
//! - after healing, a majority serves an acquire within 5 s;
//! - after the full restart, tokens go on above every token handed out.

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Client, Error, Fence, FencingToken, LockName, RetryPolicy};
use harness::Cluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

const LOCKS: [&str; 2] = ["mutex/a", "mutex/b"];
const CLIENTS: usize = 4;
const CHAOS: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3);

/// One hold of a lock, as a client can prove it: from the grant's arrival
/// to the earlier of sending the release and the lease's proven deadline.
#[derive(Clone, Debug)]
struct Hold {
    lock: &'static str,
    token: u64,
    start: Instant,
    end: Instant,
}

#[derive(Default)]
struct History {
    holds: Vec<Hold>,
    /// Acknowledged increments per register.
    acked: BTreeMap<&'static str, u64>,
    /// Increments whose outcome is unknown (the write's retries ran out).
    unknown: BTreeMap<&'static str, u64>,
    /// Writes refused as stale.
    refused: Vec<Refusal>,
    /// The highest token any client saw.
    max_token: u64,
}

impl History {
    /// Records a hold and what its fenced increment did; `proven_held`
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

fn name(s: &str) -> LockName {
    LockName::new(s).expect("a valid name")
}

fn register(lock: &str) -> LockName {
    name(&format!("{lock}/register"))
}

/// One client: leases, locks, fenced read-modify-writes, releases, until
/// told to stop.
async fn client_loop(
    endpoints: Vec<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
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
        for _ in 0..20 {
            if stop.load(Ordering::Relaxed) || !lease.is_held() {
                break;
            }
            let lock = LOCKS[rng.random_range(0..LOCKS.len())];
            let guard = match lease
                .lock_timeout(&name(lock), Duration::from_secs(1))
                .await
            {
                Ok(guard) => guard,
                Err(Error::LeaseLost) => break,
                Err(_) => continue,
            };
            let start = Instant::now();
            let token = guard.fencing_token().0;
            // The deadline only moves forward while held: the last one seen
            // is never later than the real one.
            let mut proven = lease.held_until().unwrap_or(start);
            let outcome = increment(&client, lock, token).await;
            let proven_held = lease.held_until().is_some();
            if let Some(until) = lease.held_until() {
                proven = until;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
            if let Some(until) = lease.held_until() {
                proven = until;
            }
            let end = Instant::now().min(proven);
            let _ = guard.release().await;
            let hold = Hold {
                lock,
                token,
                start,
                end,
            };
            history.lock().unwrap().record(hold, outcome, proven_held);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke()).await;
    }
}

/// A fenced write the cluster refused, and what the client knew then.
#[derive(Debug)]
struct Refusal {
    lock: &'static str,
    token: u64,
    /// The lock's newest token, per the refusal.
    current_token: Option<u64>,
    /// The key's highest token, per the refusal.
    key_token: Option<u64>,
    /// Whether the writer's lease was still proven alive after the answer.
    proven_held: bool,
}

/// A client that pauses while it holds a lock, as a process stopped by a
/// long GC or a frozen VM does: it takes a lease it never renews, takes a
/// lock, sleeps past the ttl, then writes with its old token. The cluster
/// must refuse the write once someone else holds the lock.
async fn sleeper_loop(
    endpoints: Vec<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let client = Client::new(&endpoints).expect("client");
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let sent_at = Instant::now();
        let Ok(lease) = client.grant_lease_id(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let deadline = sent_at + TTL;
        let lock = LOCKS[rng.random_range(0..LOCKS.len())];
        let body = serde_json::json!({ "lease_id": lease.lease_id, "name": lock, "wait_ms": 1000 });
        let mut token = None;
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
        let Some(token) = token else {
            continue;
        };
        // Not too often: a lease that is never renewed still gets a full
        // ttl from every new leader, so with faults its locks stay out of
        // the others' reach for a while.
        let start = Instant::now();
        // The pause: no keepalive, past the ttl.
        tokio::time::sleep(TTL + Duration::from_millis(rng.random_range(500..1_500))).await;
        let outcome = increment(&client, lock, token).await;
        let end = Instant::now().min(deadline);
        let hold = Hold {
            lock,
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

/// Reads the register guarded by `lock` and writes it plus one, fenced by
/// `token`.
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
            code: corral_api::ErrorCode::StaleToken,
            detail,
            ..
        }) => Increment::Refused {
            current_token: detail.current_token.map(|t| t.0),
            key_token: detail.key_token.map(|t| t.0),
        },
        Err(_) => Increment::Unknown,
    }
}

/// One fault, held for a while and then undone.
async fn inject(cluster: &mut Cluster, rng: &mut StdRng) -> String {
    let leader = cluster.wait_leader().await;
    let others: Vec<u64> = cluster
        .live()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let hold = Duration::from_millis(rng.random_range(3_500..5_000));
    match rng.random_range(0..5) {
        0 => {
            cluster.kill(leader);
            tokio::time::sleep(hold).await;
            cluster.restart(leader);
            format!("kill -9 of leader {leader}, restarted after {hold:?}")
        }
        1 => {
            // Longer than the election timeout and the lease ttl.
            cluster.pause(leader);
            tokio::time::sleep(hold).await;
            cluster.resume(leader);
            format!("pause of leader {leader} for {hold:?}")
        }
        2 => {
            cluster.partition(&[&[leader], &others]).await;
            tokio::time::sleep(hold).await;
            cluster.heal().await;
            format!("leader {leader} isolated for {hold:?}")
        }
        3 => {
            // A bridge: the leader sees both others, they not each other.
            cluster.block(others[0], &[others[1]]).await;
            cluster.block(others[1], &[others[0]]).await;
            tokio::time::sleep(hold).await;
            cluster.heal().await;
            format!("bridge through {leader} for {hold:?}")
        }
        _ => {
            let node = cluster.live()[rng.random_range(0..3)];
            let skew: i64 = if rng.random_bool(0.5) { 5_000 } else { -5_000 };
            cluster.skew_clock(node, skew).await;
            tokio::time::sleep(hold).await;
            cluster.skew_clock(node, 0).await;
            format!("node {node}'s clock off by {skew} ms for {hold:?}")
        }
    }
}

/// Checks a history: holds of one lock never overlap, and their tokens
/// rise in hold order.
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
                a.token < b.token,
                "tokens of {lock} must rise in hold order: {} then {}",
                a.token,
                b.token
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_fault_makes_two_owners_or_loses_an_acknowledged_write() {
    let seed: u64 = std::env::var("CORRAL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    eprintln!("chaos seed {seed} (set CORRAL_CHAOS_SEED to replay)");
    let mut cluster = Cluster::start_with(3, &["--test-faults"]).await;
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.url(id, "")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let mut workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                endpoints.clone(),
                seed * 100 + i as u64,
                stop.clone(),
                history.clone(),
            ))
        })
        .collect();
    workers.push(tokio::spawn(sleeper_loop(
        endpoints.clone(),
        seed * 100 + 99,
        stop.clone(),
        history.clone(),
    )));

    let mut rng = StdRng::seed_from_u64(seed);
    let chaos_ends = Instant::now() + CHAOS;
    while Instant::now() < chaos_ends {
        let fault = inject(&mut cluster, &mut rng).await;
        eprintln!("fault: {fault}");
        // A quiet spell longer than a lease ttl plus an election, so that
        // leases nobody renews can expire: every new leader gives every
        // lease a full ttl, so back-to-back leader changes would keep them.
        tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..5_000))).await;
    }

    // Healed: a majority serves an acquire within 5 s of having a leader.
    cluster.heal().await;
    let leader = cluster.wait_leader().await;
    let probe = Client::new(&endpoints).unwrap();
    let healed = Instant::now();
    let lease = probe.grant_lease(Duration::from_secs(10)).await.unwrap();
    let guard = lease
        .lock_timeout(&name("liveness"), Duration::from_secs(5))
        .await
        .expect("an acquire after healing");
    assert!(
        healed.elapsed() < Duration::from_secs(5),
        "liveness: {:?}",
        healed.elapsed()
    );
    guard.release().await.unwrap();
    lease.revoke().await.unwrap();
    eprintln!("healed; leader {leader}");

    // The whole cluster dies under load and comes back.
    for id in 1..=3 {
        cluster.kill(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_leader().await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("clients stop")
            .expect("client task");
    }

    let history = std::mem::take(&mut *history.lock().unwrap());
    eprintln!(
        "history: {} holds, acked {:?}, unknown {:?}, {} refused, max token {}",
        history.holds.len(),
        history.acked,
        history.unknown,
        history.refused.len(),
        history.max_token
    );
    assert!(history.holds.len() >= 10, "the clients made progress");
    check_holds(&history.holds);

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
    // Tokens go on above every token handed out.
    let lease = probe.grant_lease(Duration::from_secs(10)).await.unwrap();
    let guard = lease.try_lock(&name("after-restart")).await.unwrap();
    assert!(guard.fencing_token().0 > history.max_token);
}
