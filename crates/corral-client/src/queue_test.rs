use corral_api::LeaseId;
use serde_json::json;

use super::*;
use crate::test_server::{answer_in_turn, answer_once, body_of, client, Reply};

const ITEM: &str = r#"{"items":[{"item_id":7,"seq":3,"payload":{"n":1},"fencing_token":12,
    "attempt":2,"visible_at_ms":1700000030000}]}"#;
const NACKED: &str = r#"{"item_id":7,"visible_at_ms":1700000000000,"dead_lettered":false}"#;
const STALE: &str = r#"{"error":{"code":"stale_token","message":"stale","current_token":15}}"#;

fn name(text: &str) -> LockName {
    LockName::new(text).unwrap()
}

/// A lease of a server that answers nothing about it: its keepalives would
/// start after 20 s, after any test.
fn lease(endpoint: &str) -> Lease {
    let ttl = Duration::from_secs(60);
    Lease::start(client(&[endpoint]), LeaseId(0xabc), ttl, Instant::now())
}

fn request_line(request: &str) -> &str {
    request.lines().next().unwrap_or("")
}

fn keyed(request: &str) -> bool {
    request
        .to_ascii_lowercase()
        .contains("\r\nidempotency-key: ")
}

fn body<T: serde::de::DeserializeOwned>(request: &str) -> T {
    serde_json::from_str(body_of(request)).unwrap()
}

#[tokio::test]
async fn a_push_is_a_keyed_post_to_the_name_as_one_segment() {
    let answer = r#"{"item_id":7,"seq":3,"duplicate":false}"#;
    let (endpoint, request) = answer_once("201 Created", answer).await;
    let queue = client(&[endpoint]).queue(&name("jobs/email 1"));
    let pushed = queue
        .push_with(json!({"to": "a"}), Duration::from_millis(1_500), Some("d1"))
        .await
        .unwrap();
    assert_eq!(
        (pushed.item_id, pushed.seq, pushed.duplicate),
        (ItemId(7), 3, false)
    );
    let request = request.await.unwrap();
    assert_eq!(
        request_line(&request),
        "POST /v1/queues/jobs%2Femail%201/items HTTP/1.1"
    );
    assert!(keyed(&request), "{request}");
    let sent: EnqueueRequest = body(&request);
    assert_eq!(sent.payload, json!({"to": "a"}));
    assert_eq!(
        (sent.delay_ms, sent.dedup_id.as_deref()),
        (1_500, Some("d1"))
    );
}

#[tokio::test]
async fn a_duplicate_push_answers_the_first_item() {
    let answer = r#"{"item_id":4,"seq":0,"duplicate":true}"#;
    let (endpoint, request) = answer_once("200 OK", answer).await;
    let queue = client(&[endpoint]).queue(&name("q"));
    let pushed = queue.push("text").await.unwrap();
    assert!(pushed.duplicate);
    let sent: EnqueueRequest = body(&request.await.unwrap());
    assert_eq!(
        (sent.payload, sent.delay_ms, sent.dedup_id),
        (json!("text"), 0, None)
    );
}

#[tokio::test]
async fn stats_and_items_are_reads_without_a_key() {
    let stats = r#"{"queue":"q","max_attempts":0,"ready":2,"claimed":1,"delayed":0,
        "waiting_claims":0,"dead_lettered_total":0,"dropped_total":0,"oldest_ready_age_ms":40}"#;
    let list = r#"{"items":[],"truncated":false}"#;
    let replies = vec![Reply::new("200 OK", stats), Reply::new("200 OK", list)];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let queue = client(&[endpoint]).queue(&name("q"));
    let view = queue.stats().await.unwrap();
    assert_eq!(
        (view.ready, view.claimed, view.oldest_ready_age_ms),
        (2, 1, Some(40))
    );
    let items = queue.items(Some(ItemState::Claimed), 5).await.unwrap();
    assert!(items.items.is_empty() && !items.truncated);
    let requests = requests.await.unwrap();
    assert_eq!(request_line(&requests[0]), "GET /v1/queues/q HTTP/1.1");
    assert_eq!(
        request_line(&requests[1]),
        "GET /v1/queues/q/items?limit=5&state=claimed HTTP/1.1"
    );
    assert!(!requests.iter().any(|r| keyed(r)));
}

#[tokio::test]
async fn configure_puts_the_settings_under_a_key() {
    let view = r#"{"queue":"q","max_attempts":3,"dead_letter":"q/dead","ready":0,"claimed":0,
        "delayed":0,"waiting_claims":0,"dead_lettered_total":0,"dropped_total":0}"#;
    let (endpoint, request) = answer_once("200 OK", view).await;
    let queue = client(&[endpoint]).queue(&name("q"));
    let dead = name("q/dead");
    let view = queue.configure(3, Some(&dead)).await.unwrap();
    assert_eq!(view.dead_letter, Some(dead.clone()));
    let request = request.await.unwrap();
    assert_eq!(request_line(&request), "PUT /v1/queues/q HTTP/1.1");
    assert!(keyed(&request));
    let sent: ConfigureQueueRequest = body(&request);
    assert_eq!((sent.max_attempts, sent.dead_letter), (3, Some(dead)));
}

#[tokio::test]
async fn a_name_no_path_segment_can_be_is_refused_unsent() {
    // Nothing listens there: a request sent would end as `Unavailable`.
    let queue = client(&["127.0.0.1:9"]).queue(&name(".."));
    let error = queue.stats().await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
}

#[tokio::test]
async fn a_claim_names_the_lease_and_a_dropped_guard_nacks() {
    let replies = vec![Reply::new("200 OK", ITEM), Reply::new("200 OK", NACKED)];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let guard = lease.claim(&queue, Duration::from_secs(30)).await.unwrap();
    let guard = guard.expect("an item");
    assert_eq!(
        (guard.item_id(), guard.fencing_token()),
        (ItemId(7), FencingToken(12))
    );
    assert_eq!((guard.attempt(), guard.payload()), (2, &json!({"n": 1})));
    assert!(guard.is_held());
    drop(guard);
    let requests = requests.await.unwrap();
    assert_eq!(
        request_line(&requests[0]),
        "POST /v1/queues/q/claim HTTP/1.1"
    );
    let claim: ClaimRequest = body(&requests[0]);
    let expected = ClaimRequest {
        lease_id: LeaseId(0xabc),
        visibility_ms: 30_000,
        max: 1,
        wait_ms: 0,
    };
    assert_eq!(claim, expected);
    assert_eq!(
        request_line(&requests[1]),
        "POST /v1/queues/q/nack HTTP/1.1"
    );
    let nack: NackRequest = body(&requests[1]);
    assert_eq!(
        (nack.item_id, nack.fencing_token, nack.delay_ms),
        (ItemId(7), FencingToken(12), 0)
    );
    assert!(requests.iter().all(|r| keyed(r)));
}

#[tokio::test]
async fn ack_and_nack_name_the_claim_and_nothing_follows() {
    let acked = r#"{"item_id":7}"#;
    let replies = vec![
        Reply::new("200 OK", ITEM),
        Reply::new("200 OK", acked),
        Reply::new("200 OK", ITEM),
        Reply::new("200 OK", NACKED),
    ];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let visibility = Duration::from_secs(30);
    let guard = lease.claim(&queue, visibility).await.unwrap().unwrap();
    guard.ack().await.unwrap();
    let guard = lease.claim(&queue, visibility).await.unwrap().unwrap();
    let nacked = guard.nack(Duration::from_secs(2)).await.unwrap();
    assert_eq!(nacked.visible_at_ms, Some(1_700_000_000_000));
    let requests = requests.await.unwrap();
    assert_eq!(request_line(&requests[1]), "POST /v1/queues/q/ack HTTP/1.1");
    let ack: AckRequest = body(&requests[1]);
    assert_eq!(
        (ack.item_id, ack.fencing_token),
        (ItemId(7), FencingToken(12))
    );
    let nack: NackRequest = body(&requests[3]);
    assert_eq!(nack.delay_ms, 2_000);
}

#[tokio::test]
async fn no_item_is_none_and_a_long_wait_is_sent_a_minute_at_a_time() {
    let empty = r#"{"items":[]}"#;
    let replies = vec![
        Reply::new("200 OK", empty),
        Reply::new("200 OK", ITEM),
        Reply::new("200 OK", NACKED),
    ];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let visibility = Duration::from_secs(30);
    assert!(lease.claim(&queue, visibility).await.unwrap().is_none());
    let wait = Duration::from_secs(90);
    let guard = lease.claim_wait(&queue, visibility, wait).await.unwrap();
    drop(guard.expect("an item"));
    let requests = requests.await.unwrap();
    let waited: ClaimRequest = body(&requests[1]);
    assert_eq!(waited.wait_ms, WAIT_MS_MAX);
}

#[tokio::test]
async fn a_refused_extend_marks_the_claim_lost_and_its_drop_sends_nothing() {
    let replies = vec![
        Reply::new("200 OK", ITEM),
        Reply::new("409 Conflict", STALE),
        // Taken only by a nack, which must not come.
        Reply::new("200 OK", NACKED),
    ];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let visibility = Duration::from_millis(600);
    let guard = lease.claim(&queue, visibility).await.unwrap().unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(2), guard.lost()).await;
    assert_eq!(
        lost.expect("lost after the refused extend"),
        ClaimLost::Refused
    );
    assert!(!guard.is_held());
    drop(guard);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!requests.is_finished(), "a refused claim was nacked");
    requests.abort();
}

#[tokio::test]
async fn a_claim_that_waited_long_is_proven_by_an_extend() {
    let extended = r#"{"item_id":7,"visible_at_ms":1700000030000}"#;
    let replies = vec![
        // Most of the visibility goes by before the item comes.
        Reply::new("200 OK", ITEM).after(Duration::from_millis(500)),
        Reply::new("200 OK", extended),
        Reply::new("200 OK", NACKED),
    ];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let visibility = Duration::from_millis(600);
    let wait = Duration::from_secs(1);
    let guard = lease.claim_wait(&queue, visibility, wait).await.unwrap();
    let guard = guard.expect("an item");
    assert!(guard.is_held());
    drop(guard);
    let requests = requests.await.unwrap();
    assert_eq!(
        request_line(&requests[1]),
        "POST /v1/queues/q/extend HTTP/1.1"
    );
    let extend: ExtendRequest = body(&requests[1]);
    assert_eq!(
        (extend.fencing_token, extend.visibility_ms),
        (FencingToken(12), 600)
    );
    assert_eq!(
        request_line(&requests[2]),
        "POST /v1/queues/q/nack HTTP/1.1"
    );
}

#[tokio::test]
async fn a_waited_claim_refused_at_its_extend_is_no_item() {
    let replies = vec![
        Reply::new("200 OK", ITEM).after(Duration::from_millis(500)),
        Reply::new("409 Conflict", STALE),
    ];
    let (endpoint, requests) = answer_in_turn(replies).await;
    let lease = lease(&endpoint);
    let queue = lease.client().queue(&name("q"));
    let claimed = lease.claim(&queue, Duration::from_millis(600)).await;
    assert!(claimed.unwrap().is_none());
    assert_eq!(requests.await.unwrap().len(), 2);
}
