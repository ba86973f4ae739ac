//! The fenced store: only the current holder writes, never backwards.

use super::story::{name, Story};
use crate::*;

fn put(s: &mut Story, key: &str, value: &str, lock: &str, token: FencingToken) -> Response {
    s.run(Command::KvPut {
        key: name(key),
        value: value.into(),
        fence: Fence {
            lock: name(lock),
            fencing_token: token,
        },
        keys_max: 2,
        bytes_max: 40,
    })
    .response
}

fn delete(s: &mut Story, key: &str, lock: &str, token: FencingToken) -> Response {
    s.run(Command::KvDelete {
        key: name(key),
        fence: Fence {
            lock: name(lock),
            fencing_token: token,
        },
    })
    .response
}

#[test]
fn only_the_current_holder_writes() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let old = s.token(1, "invoice");
    assert!(put(&mut s, "invoice/next", "41", "invoice", old).is_ok());
    s.release(1, "invoice");
    let new = s.token(2, "invoice");
    assert!(put(&mut s, "invoice/next", "42", "invoice", new).is_ok());
    // The old holder wakes up and writes with its token: refused.
    assert_eq!(
        put(&mut s, "invoice/next", "stale", "invoice", old),
        Err(Refusal::StaleToken {
            lock_token: Some(new),
            key_token: Some(new)
        })
    );
    let record = s.table.fenced_value(&name("invoice/next")).unwrap();
    assert_eq!(
        (record.value.as_deref(), record.fencing_token),
        (Some("42"), new)
    );
}

#[test]
fn a_lower_token_of_another_lock_cannot_overwrite() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let low = s.token(1, "a");
    let high = s.token(2, "b");
    assert!(put(&mut s, "k", "from b", "b", high).is_ok());
    assert!(matches!(
        put(&mut s, "k", "from a", "a", low),
        Err(Refusal::StaleToken { .. })
    ));
}

#[test]
fn a_delete_keeps_the_highest_token_and_keys_are_capped() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let old = s.token(1, "l");
    assert!(put(&mut s, "k", "v", "l", old).is_ok());
    s.release(1, "l");
    let new = s.token(2, "l");
    assert!(delete(&mut s, "k", "l", new).is_ok());
    assert_eq!(s.table.fenced_value(&name("k")).unwrap().value, None);
    s.release(2, "l");
    let again = s.token(1, "l");
    assert!(
        put(&mut s, "k", "back", "l", again).is_ok(),
        "a newer holder may write again"
    );
    assert_eq!(
        delete(&mut s, "never", "l", again),
        Err(Refusal::KeyNotFound)
    );
    assert!(put(&mut s, "k2", "v", "l", again).is_ok());
    assert!(matches!(
        put(&mut s, "k3", "v", "l", again),
        Err(Refusal::TooManyKeys { .. })
    ));
    // Keys and JSON values count against the byte cap: "k" + "\"back\"" and
    // "k2" + "\"v\"" are 7 and 5 bytes of 40.
    assert!(matches!(
        put(&mut s, "k2", &"x".repeat(40), "l", again),
        Err(Refusal::TooManyKeys { .. })
    ));
    assert!(put(&mut s, "k2", &"x".repeat(20), "l", again).is_ok());
    let free = put(&mut s, "k", "v", "free-lock", again);
    assert_eq!(
        free,
        Err(Refusal::StaleToken {
            lock_token: None,
            key_token: Some(again)
        })
    );
    let big = "x".repeat(KV_VALUE_BYTES_MAX + 1);
    assert!(matches!(
        put(&mut s, "k", &big, "l", again),
        Err(Refusal::Invalid { .. })
    ));
}

#[test]
fn validate_says_whether_a_token_is_current() {
    let mut s = Story::new();
    s.lease(1);
    let t = s.token(1, "l");
    assert_eq!(s.table.validate(&name("l"), t), (true, Some(t)));
    assert_eq!(
        s.table.validate(&name("l"), FencingToken(0)),
        (false, Some(t))
    );
    s.release(1, "l");
    assert_eq!(s.table.validate(&name("l"), t), (false, None));
}
