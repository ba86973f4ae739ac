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
        caller: None,
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
fn a_retry_gets_the_first_grant_while_it_holds_and_takes_no_token() {
    let mut s = Story::new();
    s.lease(1);
    let first = acquire(&mut s, 1, "a", keyed("k1", 7));
    let retry = acquire(&mut s, 1, "a", keyed("k1", 7));
    assert_eq!(retry.response, first.response);
    assert!(retry.events.is_empty());
    assert_eq!(s.table.last_token(), FencingToken(1));
}

#[test]
fn a_retry_of_a_grant_released_since_says_not_holder_and_applies_nothing() {
    let mut s = Story::new();
    s.lease(1);
    acquire(&mut s, 1, "a", keyed("k1", 7));
    s.release(1, "a");
    let retry = acquire(&mut s, 1, "a", keyed("k1", 7));
    assert_eq!(retry.response, Err(Refusal::NotHolder), "not the old grant");
    assert!(retry.events.is_empty());
    assert!(s.table.lock(&name("a")).is_none(), "nothing applied again");
    assert_eq!(s.table.last_token(), FencingToken(1));
}

#[test]
fn a_retry_of_a_grant_whose_lease_ended_says_lease_not_found() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    acquire(&mut s, 1, "a", keyed("k1", 7));
    s.acquire(2, "a", 5_000);
    s.run(Command::ExpireLease { lease_id: id(1) });
    let retry = acquire(&mut s, 1, "a", keyed("k1", 7));
    assert_eq!(retry.response, Err(Refusal::LeaseNotFound));
    assert_eq!(s.holder("a"), Some(id(2)), "the lock went on to lease 2");
}

#[test]
fn a_retry_of_a_grant_held_again_under_another_token_says_not_holder() {
    let mut s = Story::new();
    s.lease(1);
    acquire(&mut s, 1, "a", keyed("k1", 7));
    let newer = s.token(1, "a");
    let retry = acquire(&mut s, 1, "a", keyed("k1", 7));
    assert_eq!(retry.response, Err(Refusal::NotHolder));
    assert_eq!(s.table.last_token(), newer, "and takes no token");
}

#[test]
fn replays_of_acquire_all_permits_and_campaigns_are_checked_too() {
    let mut s = Story::new();
    s.lease(1);
    let run = |s: &mut Story, key: &str, command: Command| {
        let applied = s.table.apply(Proposal {
            now_ms: s.now_ms,
            idempotency: keyed(key, 1),
            caller: None,
            command,
        });
        s.table.check_invariants().expect("invariants hold");
        applied.response
    };
    let all = Command::AcquireAll {
        lease_id: id(1),
        names: vec![name("a"), name("b")],
        mode: Mode::Exclusive,
        wait_ms: 0,
    };
    let first = run(&mut s, "all", all.clone());
    assert_eq!(run(&mut s, "all", all.clone()), first);
    s.release(1, "b");
    assert_eq!(run(&mut s, "all", all), Err(Refusal::NotHolder));

    let permits = Command::AcquirePermits {
        lease_id: id(1),
        name: name("a"),
        limit: 2,
        permits: 1,
        wait_ms: 0,
    };
    let first = run(&mut s, "sem", permits.clone());
    assert_eq!(run(&mut s, "sem", permits.clone()), first);
    s.release_permits(1, "a");
    assert_eq!(run(&mut s, "sem", permits), Err(Refusal::NotHolder));

    let campaign = Command::Campaign {
        lease_id: id(1),
        name: name("e"),
        value: "v".into(),
        wait_ms: 0,
    };
    let first = run(&mut s, "lead", campaign.clone());
    assert_eq!(run(&mut s, "lead", campaign.clone()), first);
    s.run(Command::Resign {
        lease_id: id(1),
        name: name("e"),
        fencing_token: None,
    });
    assert_eq!(run(&mut s, "lead", campaign), Err(Refusal::NotLeader));
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
