//! Idempotency keys: a retry answers the first answer and applies nothing.

use super::story::{id, name, Story};
use crate::*;

fn keyed(key: &str, fingerprint: u64) -> Option<Idempotency> {
    Some(Idempotency {
        key: key.into(),
        fingerprint,
        window_ms: 10_000,
    })
}

fn acquire(story: &mut Story, lease: u128, lock: &str, key: Option<Idempotency>) -> Applied {
    let applied = story.table.apply(Proposal {
        now_ms: story.now_ms,
        idempotency: key,
        command: Command::Acquire {
            lease_id: id(lease),
            name: name(lock),
            mode: Mode::Exclusive,
            wait_ms: 0,
        },
    });
    story.table.check_invariants().expect("invariants hold");
    applied
}

#[test]
fn a_retry_gets_the_first_answer_and_takes_no_token() {
    let mut s = Story::new();
    s.lease(1);
    let first = acquire(&mut s, 1, "a", keyed("k1", 7));
    s.release(1, "a");
    let retry = acquire(&mut s, 1, "a", keyed("k1", 7));
    assert_eq!(
        retry.response, first.response,
        "the first grant, though released since"
    );
    assert!(retry.events.is_empty());
    assert!(s.table.lock(&name("a")).is_none(), "nothing applied again");
    assert_eq!(s.table.last_token(), FencingToken(1));
}

#[test]
fn a_refusal_is_remembered_too_and_another_request_mismatches() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(2, "a");
    let busy = acquire(&mut s, 1, "a", keyed("k", 1));
    assert!(matches!(busy.response, Err(Refusal::LockBusy { .. })));
    s.release(2, "a");
    assert_eq!(
        acquire(&mut s, 1, "a", keyed("k", 1)).response,
        busy.response
    );
    assert_eq!(
        acquire(&mut s, 1, "a", keyed("k", 2)).response,
        Err(Refusal::IdempotencyMismatch)
    );
}

#[test]
fn answers_are_forgotten_after_their_window() {
    let mut s = Story::new();
    s.lease(1);
    let first = acquire(&mut s, 1, "a", keyed("k", 1));
    s.release(1, "a");
    s.now_ms += 10_000;
    let later = acquire(&mut s, 1, "a", keyed("k", 1));
    assert_ne!(later.response, first.response, "applied anew: a new token");
    assert_eq!(s.table.remembered_count(), 1);
}

#[test]
fn fingerprints_are_stable() {
    assert_eq!(fingerprint(&[b"a", b"bc"]), fingerprint(&[b"a", b"bc"]));
    assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    assert_eq!(fingerprint(&[]), 0xcbf2_9ce4_8422_2325);
    assert!(check_idempotency_key("order-42/retry 1").is_ok());
    assert!(check_idempotency_key("").is_err());
    assert!(check_idempotency_key("tab\there").is_err());
    assert!(check_idempotency_key(&"k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1)).is_err());
}
