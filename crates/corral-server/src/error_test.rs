//! Golden error bodies: every refusal and every error of the HTTP layer, as
//! the client reads it, byte for byte and with its status.
//!
//! The expected lines were printed by the code before the error types were
//! merged (issue 18), so they pin what API v1 has always sent.

use corral_state::{FencingToken, LeaseId, Limit, LockName, Mode, Refusal, WaitEdge};

use crate::error::ApiError;

fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

fn edge(lease: u128, waits_for: &str, held_by: u128) -> WaitEdge {
    WaitEdge {
        lease_id: LeaseId(lease),
        waits_for: name(waits_for),
        held_by: LeaseId(held_by),
    }
}

fn refusals() -> Vec<Refusal> {
    vec![
        Refusal::LeaseNotFound,
        Refusal::LeaseExists,
        Refusal::InvalidTtl { max_ms: 86_400_000 },
        Refusal::LockBusy {
            holder_token: Some(FencingToken(7)),
        },
        Refusal::LockBusy { holder_token: None },
        Refusal::NotHolder,
        Refusal::Deadlock {
            cycle: vec![edge(0x3004, "a", 0x01fb), edge(0x01fb, "b/\"q\"", 0x3004)],
        },
        Refusal::ModeConflict { held: Mode::Shared },
        Refusal::PermitsConflict { held: 2 },
        Refusal::LimitMismatch { limit: 3 },
        Refusal::AlreadyWaiting {
            name: name("invoice/42"),
        },
        Refusal::LockDelayed {
            until_ms: 1_764_280_003_401,
        },
        Refusal::OrderViolation {
            name: name("user/7"),
            held: name("cart/7"),
        },
        Refusal::StaleToken {
            lock_token: Some(FencingToken(9)),
            key_token: None,
        },
        Refusal::StaleToken {
            lock_token: None,
            key_token: Some(FencingToken(u64::MAX)),
        },
        Refusal::NotLeader,
        Refusal::KeyNotFound,
        Refusal::TooManyKeys {
            limit: "at most 100000 keys".into(),
        },
        Refusal::IdempotencyMismatch,
        Refusal::Invalid {
            reason: "value: longer than 65536 bytes".into(),
        },
        Refusal::LimitReached(Limit::Leases),
        Refusal::LimitReached(Limit::WaitersPerLock),
        Refusal::LimitReached(Limit::LocksPerLease),
    ]
}

fn http_errors() -> Vec<ApiError> {
    vec![
        ApiError::invalid("field `ttl_ms`: invalid type"),
        ApiError::body_too_large(65536),
        ApiError::not_found(),
        ApiError::method_not_allowed(),
        ApiError::wait_timeout(),
        ApiError::wait_withdrawn(),
        ApiError::unavailable("no leader known", None),
        ApiError::unavailable("leadership changed", Some(3)),
        ApiError::internal("boom"),
    ]
}

/// Status and body of each error, as the code before issue 18 wrote them.
const GOLDEN: &[&str] = &[
    r#"404 {"error":{"code":"lease_not_found","message":"lease not found (never granted, revoked or expired)"}}"#,
    r#"500 {"error":{"code":"internal","message":"internal error: lease id already in use"}}"#,
    r#"500 {"error":{"code":"internal","message":"internal error: ttl_ms must be from 1 to 86400000"}}"#,
    r#"409 {"error":{"code":"lock_busy","message":"lock is held by another lease under token 7","holder_token":7}}"#,
    r#"409 {"error":{"code":"lock_busy","message":"lock is free but a request waiting for several locks at once is ahead in its queue"}}"#,
    r#"409 {"error":{"code":"not_holder","message":"the lease does not hold the lock"}}"#,
    r#"409 {"error":{"code":"deadlock","message":"waiting would close a cycle of leases waiting for each other; nothing was queued","cycle":[{"lease_id":"00000000000000000000000000003004","waits_for":"a","held_by":"000000000000000000000000000001fb"},{"lease_id":"000000000000000000000000000001fb","waits_for":"b/\"q\"","held_by":"00000000000000000000000000003004"}]}}"#,
    r#"409 {"error":{"code":"mode_conflict","message":"the lease holds or waits for the lock in shared mode; release it or let the wait end first"}}"#,
    r#"409 {"error":{"code":"permits_conflict","message":"the lease holds or waits for 2 permits of the semaphore; release them or let the wait end first"}}"#,
    r#"409 {"error":{"code":"limit_mismatch","message":"the semaphore exists with limit 3; every acquire must name the same limit while it is in use","limit":3}}"#,
    r#"409 {"error":{"code":"already_waiting","message":"the lease already waits for invoice/42 through another request (an acquire-all and a single acquire, or two different acquire-alls)","name":"invoice/42"}}"#,
    r#"409 {"error":{"code":"lock_busy","message":"lock is held back by lock-delay until 1764280003401 (Unix ms): a lease that held it expired","delayed_until_ms":1764280003401}}"#,
    r#"409 {"error":{"code":"order_violation","message":"lock order: user/7 is ordered before cart/7, which the lease holds or waits for","name":"user/7","held":"cart/7"}}"#,
    r#"409 {"error":{"code":"stale_token","message":"stale fencing token: the lock is held under token 9, the key was last written under nothing; a newer owner exists or the lock is not held","current_token":9}}"#,
    r#"409 {"error":{"code":"stale_token","message":"stale fencing token: the lock is held under nothing, the key was last written under token 18446744073709551615; a newer owner exists or the lock is not held","key_token":18446744073709551615}}"#,
    r#"409 {"error":{"code":"not_leader","message":"the lease does not lead the election (and is not a waiting candidate)"}}"#,
    r#"404 {"error":{"code":"key_not_found","message":"no such key"}}"#,
    r#"429 {"error":{"code":"too_many_keys","message":"the fenced store is full: at most 100000 keys"}}"#,
    r#"422 {"error":{"code":"idempotency_mismatch","message":"the Idempotency-Key was used before for another request; use a new key for a new request"}}"#,
    r#"400 {"error":{"code":"invalid_argument","message":"value: longer than 65536 bytes"}}"#,
    r#"429 {"error":{"code":"limit_reached","message":"too many leases: at most 1000000 may exist"}}"#,
    r#"429 {"error":{"code":"limit_reached","message":"too many waiters: at most 10000 may wait for one lock"}}"#,
    r#"429 {"error":{"code":"limit_reached","message":"too many locks: one lease may hold or wait for at most 10000"}}"#,
    r#"400 {"error":{"code":"invalid_argument","message":"field `ttl_ms`: invalid type"}}"#,
    r#"413 {"error":{"code":"body_too_large","message":"request body is larger than 65536 bytes"}}"#,
    r#"404 {"error":{"code":"not_found","message":"no such endpoint"}}"#,
    r#"405 {"error":{"code":"method_not_allowed","message":"this endpoint does not take that method"}}"#,
    r#"409 {"error":{"code":"wait_timeout","message":"wait_ms ran out before the lock was granted"}}"#,
    r#"409 {"error":{"code":"wait_withdrawn","message":"the acquire-all was withdrawn: its lease released a lock the request counted as held"}}"#,
    r#"503 {"error":{"code":"unavailable","message":"no leader reachable: no leader known"}}"#,
    r#"503 {"error":{"code":"unavailable","message":"no leader reachable: leadership changed","leader_id":3}}"#,
    r#"500 {"error":{"code":"internal","message":"internal error: boom"}}"#,
];

/// Every refusal as the API reports it, then every error of the HTTP layer.
fn every_error() -> impl Iterator<Item = ApiError> {
    refusals()
        .into_iter()
        .map(ApiError::from)
        .chain(http_errors())
}

#[test]
fn every_error_body_is_the_one_api_v1_sent() {
    let lines: Vec<String> = every_error()
        .map(|e| {
            let body = serde_json::to_string(&e.body()).expect("encodes");
            format!("{} {body}", e.kind().status())
        })
        .collect();
    assert_eq!(lines.len(), GOLDEN.len());
    for (line, golden) in lines.iter().zip(GOLDEN) {
        assert_eq!(line, golden);
    }
}

/// A follower passes a leader's error on as it came: the same body.
#[test]
fn a_forwarded_error_is_passed_on_unchanged() {
    for error in every_error() {
        let text = serde_json::to_vec(&error.body()).expect("encodes");
        let body: corral_api::ErrorBody = serde_json::from_slice(&text).expect("decodes");
        assert_eq!(ApiError::from(body), error);
    }
}
