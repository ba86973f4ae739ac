//! Crash safety of the raft log: a leader whose own log sync lags behind
//! its followers' is killed with acknowledged entries only in its memory,
//! and restarted at once. It must not resume its term on the shorter log
//! (issue 17, bug 2): its next entries would reuse log ids the followers
//! already hold with other contents, the replicas would diverge and
//! fencing tokens would be handed out twice.

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Cluster;
use serde_json::{json, Value};

/// Election timeouts long enough that a leader killed and restarted at
/// once is back before any follower's timeout runs out: before the fix, it
/// then resumed its term on the log it found on disk. (The heartbeat stays
/// at its default 75 ms.)
const SERVER_ARGS: [&str; 5] = [
    "--test-faults",
    "--election-timeout-min-ms",
    "3000",
    "--election-timeout-max-ms",
    "6000",
];

/// Far longer than the granting before the kill: nothing the leader
/// appends from the moment it is slowed down reaches its disk.
const LOG_SYNC_DELAY_MS: u64 = 10_000;

/// How long the clients take locks while the leader's log sync lags.
const SLOW_WINDOW: Duration = Duration::from_millis(1_000);

/// Concurrent clients; each has a lease and its own lock names.
const CLIENTS: usize = 4;

/// At most this many grants per client in all, so that one prefix read
/// (at most 1 000 locks) shows each client's locks.
const GRANTS_PER_CLIENT_MAX: usize = 600;

/// Grants wanted after the restart, over all clients, and how long to try.
const GRANTS_AFTER_RESTART: usize = 40;
const AFTER_RESTART_WINDOW: Duration = Duration::from_secs(30);

/// One acknowledged grant.
#[derive(Clone, Debug)]
struct Grant {
    name: String,
    lease: String,
    token: u64,
    after_restart: bool,
}

/// What one client does: take new locks through `node_url` under `lease`
/// until `until`, or until `wanted` counts down to zero.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    node_url: String,
    lease: String,
    prefix: String,
}

impl Client {
    /// Acquires fresh lock names one after another; returns the acked
    /// grants. `next` numbers the names, carried from one phase to the next.
    async fn take_locks(
        &self,
        next: &mut usize,
        until: Instant,
        wanted: Option<Arc<AtomicUsize>>,
        after_restart: bool,
    ) -> Vec<Grant> {
        let mut grants = Vec::new();
        while Instant::now() < until && *next < GRANTS_PER_CLIENT_MAX {
            if wanted
                .as_ref()
                .is_some_and(|w| w.load(Ordering::Relaxed) == 0)
            {
                break;
            }
            let name = format!("{}{:04}", self.prefix, *next);
            *next += 1;
            let body = json!({ "lease_id": self.lease, "name": name, "wait_ms": 0 });
            let sent = self.http.post(&self.node_url).json(&body).send().await;
            let Ok(response) = sent else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if response.status() != 200 {
                // No leader yet, or an outcome the node could not learn:
                // not acked, so nothing to check.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let token = answer["fencing_token"]
                .as_u64()
                .unwrap_or_else(|| panic!("a grant without a token: {answer}"));
            grants.push(Grant {
                name,
                lease: self.lease.clone(),
                token,
                after_restart,
            });
            if let Some(wanted) = &wanted {
                let _ =
                    wanted.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1));
            }
        }
        grants
    }
}

/// Runs every client at once for one phase; returns their acked grants and
/// each client's next name number.
async fn run_clients(
    clients: &[Client],
    next: Vec<usize>,
    until: Instant,
    wanted: Option<Arc<AtomicUsize>>,
    after_restart: bool,
) -> (Vec<Grant>, Vec<usize>) {
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .zip(next)
        .map(|(client, mut next)| {
            let wanted = wanted.clone();
            tokio::spawn(async move {
                let grants = client
                    .take_locks(&mut next, until, wanted, after_restart)
                    .await;
                (grants, next)
            })
        })
        .collect();
    let mut grants = Vec::new();
    let mut nexts = Vec::new();
    for task in tasks {
        let (mut some, next) = task.await.expect("client task");
        grants.append(&mut some);
        nexts.push(next);
    }
    (grants, nexts)
}

/// Every lock of `prefix` as node `id` itself has it (a linearizable read:
/// the node waits until it has applied the leader's read index, then reads
/// its own table): name to (holder's lease, token).
async fn locks_on(cluster: &Cluster, id: u64, prefix: &str) -> BTreeMap<String, (String, u64)> {
    let path = format!("/v1/locks?prefix={prefix}");
    let body = cluster
        .wait_for(id, &path, |body| body["locks"].is_array())
        .await;
    assert_eq!(body["truncated"], false, "node {id}, {prefix}: too many");
    let mut held = BTreeMap::new();
    for lock in body["locks"].as_array().into_iter().flatten() {
        let name = lock["name"].as_str().unwrap_or_default().to_string();
        let lease = lock["holder"]["lease_id"].as_str().unwrap_or_default();
        let token = lock["holder"]["fencing_token"].as_u64().unwrap_or(0);
        held.insert(name, (lease.to_string(), token));
    }
    held
}

/// The grants whose lock node `id` does not show held by the acked lease
/// under the acked token, each described.
async fn disagreements<'g>(
    cluster: &Cluster,
    id: u64,
    grants: &'g [Grant],
) -> Vec<(&'g Grant, String)> {
    let mut held = BTreeMap::new();
    for c in 0..CLIENTS {
        held.append(&mut locks_on(cluster, id, &format!("crash/{c}/")).await);
    }
    grants
        .iter()
        .filter_map(|grant| {
            let seen = held.get(&grant.name);
            let agrees = seen == Some(&(grant.lease.clone(), grant.token));
            let when = if grant.after_restart {
                "after"
            } else {
                "before"
            };
            (!agrees).then(|| {
                let said = format!(
                    "{} acked {when} the restart to {} with token {}; node {id} has {seen:?}",
                    grant.name, grant.lease, grant.token,
                );
                (grant, said)
            })
        })
        .collect()
}

/// Tokens acked to more than one grant, with the names they were acked
/// for.
fn tokens_handed_out_twice(grants: &[Grant]) -> BTreeMap<u64, Vec<String>> {
    let mut by_token: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for grant in grants {
        by_token
            .entry(grant.token)
            .or_default()
            .push(grant.name.clone());
    }
    by_token.retain(|_, names| names.len() > 1);
    by_token
}

/// Each node's raft view, for the test's report.
async fn raft_views(cluster: &Cluster) -> String {
    let mut out = String::new();
    for id in cluster.live() {
        let (_, view) = cluster.get(id, "/v1/cluster").await;
        out.push_str(&format!(
            "\n  node {id}: term {}, leader {}, commit {}, applied {}",
            view["term"], view["leader_id"], view["commit_index"], view["applied_index"]
        ));
    }
    out
}

/// The clients, their leases granted before any fault: two through each
/// follower, so that every grant is forwarded to the leader.
async fn clients(cluster: &Cluster, followers: &[u64]) -> Vec<Client> {
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let via = followers[c % followers.len()];
        clients.push(Client {
            http: cluster.http.clone(),
            node_url: cluster.url(via, "/v1/locks/acquire"),
            lease: cluster.lease(via, 60_000).await,
            prefix: format!("crash/{c}/"),
        });
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_restarted_at_once_after_losing_its_unsynced_log_hands_out_no_token_twice() {
    let mut cluster = Cluster::start_with(3, &SERVER_ARGS).await;
    let leader = cluster.wait_leader().await;
    let followers = cluster.followers_of(leader);
    let clients = clients(&cluster, &followers).await;

    // The followers sync and ack, so the grants commit and are answered;
    // the leader's own copy stays in its memory.
    cluster.slow_log_sync(leader, LOG_SYNC_DELAY_MS).await;
    let slowed_at = Instant::now();
    let next = vec![0; CLIENTS];
    let (mut grants, next) =
        run_clients(&clients, next, slowed_at + SLOW_WINDOW, None, false).await;
    let before = grants.len();
    let since_slowed = slowed_at.elapsed();
    cluster.kill(leader);
    cluster.restart(leader);
    println!(
        "{before} grants acked in {since_slowed:?} with leader {leader}'s log sync {LOG_SYNC_DELAY_MS} ms late; killed and restarted it"
    );
    assert!(before > 0, "no grant acked while the leader was slowed");

    let wanted = Arc::new(AtomicUsize::new(GRANTS_AFTER_RESTART));
    let until = Instant::now() + AFTER_RESTART_WINDOW;
    let (mut after, _) = run_clients(&clients, next, until, Some(wanted), true).await;
    println!("{} grants acked after the restart", after.len());
    grants.append(&mut after);
    let new_leader = cluster.wait_leader().await;
    println!(
        "leader after the restart: {new_leader}{}",
        raft_views(&cluster).await
    );

    let mut failures = Vec::new();
    for id in [1, 2, 3] {
        let wrong = disagreements(&cluster, id, &grants).await;
        let wrong_before = wrong.iter().filter(|(g, _)| !g.after_restart).count();
        println!(
            "node {id}: {} of {} acked grants not as acked ({wrong_before} of the {before} before the restart)",
            wrong.len(),
            grants.len()
        );
        failures.extend(wrong.into_iter().take(5).map(|(_, said)| said));
    }
    let twice = tokens_handed_out_twice(&grants);
    println!("tokens acked to two grants: {}", twice.len());
    let top_before = grants
        .iter()
        .filter(|g| !g.after_restart)
        .map(|g| g.token)
        .max();
    let not_above = grants
        .iter()
        .filter(|g| g.after_restart && Some(g.token) <= top_before)
        .count();
    println!("grants after the restart with a token not above {top_before:?}: {not_above}");
    assert!(
        failures.is_empty() && twice.is_empty() && not_above == 0,
        "replicas disagree with acked grants: {failures:#?}\ntokens acked twice (first 5): {:?}",
        twice.iter().take(5).collect::<Vec<_>>()
    );
}

/// Polls node `id`'s health checks until both say its raft core stopped.
async fn wait_stopped(cluster: &Cluster, id: u64) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (health, health_body) = cluster.get(id, "/healthz").await;
        let (ready, ready_body) = cluster.get(id, "/readyz").await;
        if health == 503 && ready == 503 {
            return (health_body, ready_body);
        }
        assert!(
            Instant::now() < deadline,
            "node {id}'s health checks never said its raft core stopped: \
             /healthz {health} {health_body}, /readyz {ready} {ready_body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A follower whose disk fails stops its raft core (a failed sync is
/// fatal: raft cannot count what it cannot make durable), and its health
/// checks say so instead of "ok"; the other two go on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fails_says_so_on_its_health_checks() {
    let cluster = Cluster::start_with(3, &["--test-faults"]).await;
    let leader = cluster.wait_leader().await;
    let victim = cluster
        .live()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let (status, body) = cluster.get(victim, "/healthz").await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({ "status": "ok" })),
        "healthy at first"
    );

    let (status, body) = cluster
        .post(victim, "/test/faults", json!({ "log_sync_fails": true }))
        .await;
    assert_eq!(status, 200, "failing node {victim}'s disk: {body}");
    // Writes reach the follower's log, whose next sync then fails.
    let lease = cluster.lease(leader, 10_000).await;
    for i in 0..5 {
        let (status, body) = cluster
            .acquire(leader, &lease, &format!("disk/{i}"), 0)
            .await;
        assert_eq!(status, 200, "the other two serve: {body}");
    }

    let (health, ready) = wait_stopped(&cluster, victim).await;
    for body in [&health, &ready] {
        assert_eq!(body["status"], "stopped", "{body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("raft core stopped"), "{body}");
    }
    let (status, body) = cluster.acquire(leader, &lease, "disk/after", 0).await;
    assert_eq!(status, 200, "a majority still serves: {body}");
    let (status, _) = cluster.get(leader, "/healthz").await;
    assert_eq!(status, 200, "the leader is healthy");
}
