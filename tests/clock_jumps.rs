//! A leader whose wall clock jumps an hour forward or back, on a real
//! 3-node cluster: lock-delays, waits and idempotency windows keep their
//! length, and state-machine time (the `at_ms` of a lock's history) goes
//! on with real time instead of jumping.
//!
//! Every check is collected rather than asserted at once, so that a
//! failure names every deadline the jump moved, not just the first.

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Cluster;
use serde_json::{json, Value};

/// One hour, the size of each jump.
const HOUR_MS: i64 = 3_600_000;
/// How far from real time a deadline may end and still count as on time:
/// generous, for a loaded 2-core machine; a jump moves it by an hour.
const SLACK_MS: i64 = 2_500;

/// Checks that failed, with what was seen.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }
}

/// The state-machine time of `lease`'s first event of `kind` in the
/// history of `name`, read through node `id`.
async fn event_at_ms(cluster: &Cluster, id: u64, name: &str, lease: &str, kind: &str) -> i64 {
    let (status, history) = cluster
        .get(id, &format!("/v1/locks/history?name={name}"))
        .await;
    assert_eq!(status, 200, "{history}");
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let event = events
        .iter()
        .find(|e| e["kind"] == kind && e["lease_id"] == lease)
        .unwrap_or_else(|| panic!("no {kind} event of {lease} on {name}: {history}"));
    event["at_ms"].as_i64().expect("at_ms")
}

/// Grants a lease with an `Idempotency-Key`; returns its id.
async fn keyed_lease(cluster: &Cluster, id: u64, key: &str) -> String {
    let response = cluster
        .http
        .post(cluster.url(id, "/v1/leases"))
        .header("Idempotency-Key", key)
        .json(&json!({ "ttl_ms": 60_000 }))
        .send()
        .await
        .expect("lease request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "keyed lease: {body}");
    body["lease_id"].as_str().expect("lease_id").to_string()
}

/// Jumps the leader's wall clock by `jump_ms` and checks that nothing
/// measured in state-machine time moved with it.
async fn a_leader_clock_jump_changes_no_deadline(jump_ms: i64) {
    let cluster = Arc::new(Cluster::start_with(3, &["--test-faults"]).await);
    let leader = cluster.wait_leader().await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();
    let mut failures = Failures::default();

    // Before the jump: a keyed lease grant, a grant whose time is the
    // baseline, and a wait that is still queued when the clock jumps.
    let first = keyed_lease(&cluster, follower, "clock-jump-lease").await;
    let holder = cluster.lease(follower, 60_000).await;
    assert_eq!(
        cluster.acquire(follower, &holder, "jump/base", 0).await.0,
        200
    );
    let base_at = Instant::now();
    let base_ms = event_at_ms(&cluster, follower, "jump/base", &holder, "granted").await;
    assert_eq!(
        cluster.acquire(follower, &holder, "jump/queued", 0).await.0,
        200
    );
    let patient = cluster.lease(follower, 60_000).await;
    let queued = cluster.spawn_post(
        follower,
        "/v1/locks/acquire",
        json!({ "lease_id": patient, "name": "jump/queued", "wait_ms": 12_000 }),
    );
    cluster.wait_queued(follower, "jump/queued", 1).await;

    cluster.skew_clock(leader, jump_ms).await;
    // Several sweeps run with the jumped clock.
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // The wait queued before the jump keeps its place: the release grants it.
    assert_eq!(
        cluster.release(follower, &holder, "jump/queued").await.0,
        200
    );
    let (status, body) = queued.await.expect("queued acquire");
    failures.check(
        status == 200,
        format!("a wait queued before the jump was not granted: {status} {body}"),
    );

    // An idempotent retry within the window still replays.
    let again = keyed_lease(&cluster, follower, "clock-jump-lease").await;
    failures.check(
        again == first,
        format!("the retry made a second lease {again}, not the first {first}"),
    );

    lock_delay_ends_on_time(&cluster, follower, (base_at, base_ms), &mut failures).await;
    wait_times_out_on_time(&cluster, follower, &mut failures).await;

    // State-machine time went on with real time, not with the jump.
    let other = cluster.lease(follower, 60_000).await;
    assert_eq!(
        cluster.acquire(follower, &other, "jump/after", 0).await.0,
        200
    );
    let real_ms = base_at.elapsed().as_millis() as i64;
    let after_ms = event_at_ms(&cluster, follower, "jump/after", &other, "granted").await;
    failures.check(
        (after_ms - base_ms - real_ms).abs() <= SLACK_MS,
        format!(
            "state-machine time moved {} ms in {real_ms} ms of real time",
            after_ms - base_ms
        ),
    );
    assert_eq!(
        cluster.wait_leader().await,
        leader,
        "the leader changed: the test did not test a jump of one leader's clock"
    );
    assert!(
        failures.0.is_empty(),
        "after a jump of {jump_ms} ms:\n{}",
        failures.0.join("\n")
    );
}

/// A lease that expires after the jump holds its lock back for its
/// lock-delay, measured in real time, and shows a `delayed_until_ms` that
/// did not jump.
async fn lock_delay_ends_on_time(
    cluster: &Arc<Cluster>,
    node: u64,
    (base_at, base_ms): (Instant, i64),
    failures: &mut Failures,
) {
    const DELAY_MS: i64 = 3_000;
    let (status, body) = cluster
        .post(
            node,
            "/v1/leases",
            json!({ "ttl_ms": 2_000, "lock_delay_ms": DELAY_MS }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let dying = body["lease_id"].as_str().unwrap().to_string();
    assert_eq!(
        cluster.acquire(node, &dying, "jump/delayed", 0).await.0,
        200
    );
    let next = cluster.lease(node, 60_000).await;
    let waiter = cluster.spawn_post(
        node,
        "/v1/locks/acquire",
        json!({ "lease_id": next, "name": "jump/delayed", "wait_ms": 20_000 }),
    );
    let view = cluster
        .wait_for(node, "/v1/locks?name=jump/delayed", |v| {
            v["delayed_until_ms"].is_u64()
        })
        .await;
    let delayed_at = Instant::now();
    let until_ms = view["delayed_until_ms"].as_i64().unwrap_or(0);
    let expected_ms = base_ms + (delayed_at - base_at).as_millis() as i64 + DELAY_MS;
    failures.check(
        (until_ms - expected_ms).abs() <= SLACK_MS,
        format!(
            "delayed_until_ms is {} ms off real time",
            until_ms - expected_ms
        ),
    );
    let (status, body) = waiter.await.expect("delayed waiter");
    let waited_ms = delayed_at.elapsed().as_millis() as i64;
    failures.check(
        status == 200 && (waited_ms - DELAY_MS).abs() <= SLACK_MS,
        format!("a {DELAY_MS} ms lock-delay ended after {waited_ms} ms: {status} {body}"),
    );
}

/// A waiting acquire answers `wait_timeout` after its `wait_ms`.
async fn wait_times_out_on_time(cluster: &Arc<Cluster>, node: u64, failures: &mut Failures) {
    const WAIT_MS: i64 = 3_000;
    let holder = cluster.lease(node, 60_000).await;
    assert_eq!(cluster.acquire(node, &holder, "jump/busy", 0).await.0, 200);
    let waiter = cluster.lease(node, 60_000).await;
    let started = Instant::now();
    let (status, body) = cluster
        .acquire(node, &waiter, "jump/busy", WAIT_MS as u64)
        .await;
    let took_ms = started.elapsed().as_millis() as i64;
    failures.check(
        status == 409
            && body["error"]["code"] == "wait_timeout"
            && (WAIT_MS - 200..=WAIT_MS + SLACK_MS).contains(&took_ms),
        format!("a {WAIT_MS} ms wait ended after {took_ms} ms: {status} {body}"),
    );
    // Its waiter is gone from the queue, not left behind.
    let view = cluster.lock(node, "jump/busy").await;
    failures.check(
        view["queue"].as_array().is_some_and(Vec::is_empty),
        format!("the timed-out wait is still queued: {view}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_clock_one_hour_ahead_changes_no_deadline() {
    a_leader_clock_jump_changes_no_deadline(HOUR_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_clock_one_hour_behind_changes_no_deadline() {
    a_leader_clock_jump_changes_no_deadline(-HOUR_MS).await;
}
