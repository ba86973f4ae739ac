//! The error body on the wire: every kind round-trips, and the bytes are
//! those API v1 has always sent.

use proptest::prelude::*;

use corral_state::Refusal;

use crate::{ErrorBody, ErrorDetail, ErrorKind, FencingToken, LeaseId, LockName, WaitEdge};

fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

fn json(kind: ErrorKind, message: &str) -> String {
    let body = ErrorBody {
        error: ErrorDetail {
            message: message.into(),
            kind,
        },
    };
    serde_json::to_string(&body).expect("encodes")
}

/// Bodies written by the flat `ErrorDetail` this type replaced (its fields
/// in declaration order: code, message, then each optional field), and by
/// docs/api.md: the same bytes, key for key.
#[test]
fn bodies_are_the_bytes_api_v1_always_sent() {
    let cases = [
        (
            ErrorKind::LockBusy {
                holder_token: Some(FencingToken(7)),
                delayed_until_ms: None,
            },
            "lock is held by another lease under token 7",
            r#"{"error":{"code":"lock_busy","message":"lock is held by another lease under token 7","holder_token":7}}"#,
        ),
        (
            ErrorKind::LockBusy {
                holder_token: None,
                delayed_until_ms: Some(u64::MAX),
            },
            "m",
            r#"{"error":{"code":"lock_busy","message":"m","delayed_until_ms":18446744073709551615}}"#,
        ),
        (
            ErrorKind::OrderViolation {
                name: name("user/7"),
                held: name("cart/7"),
            },
            "m",
            r#"{"error":{"code":"order_violation","message":"m","name":"user/7","held":"cart/7"}}"#,
        ),
        (
            ErrorKind::StaleToken {
                current_token: None,
                key_token: Some(FencingToken(4)),
            },
            "m",
            r#"{"error":{"code":"stale_token","message":"m","key_token":4}}"#,
        ),
        (
            ErrorKind::Deadlock {
                cycle: vec![WaitEdge {
                    lease_id: LeaseId(1),
                    waits_for: name("a"),
                    held_by: LeaseId(2),
                }],
            },
            "m",
            r#"{"error":{"code":"deadlock","message":"m","cycle":[{"lease_id":"00000000000000000000000000000001","waits_for":"a","held_by":"00000000000000000000000000000002"}]}}"#,
        ),
        (
            ErrorKind::Unavailable { leader_id: None },
            "no leader reachable: no leader known",
            r#"{"error":{"code":"unavailable","message":"no leader reachable: no leader known"}}"#,
        ),
        (
            ErrorKind::LimitMismatch { limit: 3 },
            "m",
            r#"{"error":{"code":"limit_mismatch","message":"m","limit":3}}"#,
        ),
        (
            ErrorKind::KeyNotFound,
            "no such key",
            r#"{"error":{"code":"key_not_found","message":"no such key"}}"#,
        ),
    ];
    for (kind, message, expected) in cases {
        assert_eq!(json(kind, message), expected);
    }
}

/// Unknown keys are ignored and keys may come in any order, as a reader of
/// API v1 always could.
#[test]
fn a_body_reads_in_any_key_order_and_ignores_unknown_keys() {
    let text = r#"{"holder_token":7,"future":[1,{"x":2}],"message":"m","code":"lock_busy"}"#;
    let detail: ErrorDetail = serde_json::from_str(text).expect("decodes");
    assert_eq!(
        detail.kind,
        ErrorKind::LockBusy {
            holder_token: Some(FencingToken(7)),
            delayed_until_ms: None
        }
    );
}

/// Each code has the status docs/api.md gives it.
#[test]
fn statuses_are_those_of_the_api_table() {
    assert_eq!(ErrorKind::InvalidArgument.status(), 400);
    assert_eq!(ErrorKind::KeyNotFound.status(), 404);
    assert_eq!(ErrorKind::Deadlock { cycle: vec![] }.status(), 409);
    assert_eq!(ErrorKind::BodyTooLarge.status(), 413);
    assert_eq!(ErrorKind::IdempotencyMismatch.status(), 422);
    assert_eq!(ErrorKind::TooManyKeys.status(), 429);
    assert_eq!(ErrorKind::Internal.status(), 500);
    assert_eq!(ErrorKind::Unavailable { leader_id: Some(1) }.status(), 503);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Every kind, with any fields, decodes to itself; flattening does not
    /// lose numbers (u64 tokens at their largest included).
    #[test]
    fn every_error_round_trips(detail in any::<ErrorDetail>()) {
        let body = ErrorBody { error: detail };
        let text = serde_json::to_string(&body).expect("encodes");
        let back: ErrorBody = serde_json::from_str(&text).expect("decodes");
        prop_assert_eq!(&back, &body);
        // Through a `Value` too, as a reader that looks at the JSON first.
        let value: serde_json::Value = serde_json::from_str(&text).expect("parses");
        let back: ErrorBody = serde_json::from_value(value).expect("decodes");
        prop_assert_eq!(&back, &body);
    }

    /// `code` is always the first key and `message` the second.
    #[test]
    fn code_then_message_come_first(detail in any::<ErrorDetail>()) {
        let text = serde_json::to_string(&detail).expect("encodes");
        let message = serde_json::to_string(&detail.message).expect("encodes");
        let code = serde_json::to_value(&detail.kind).expect("encodes")["code"].clone();
        let start = format!(r#"{{"code":{code},"message":{message}"#);
        prop_assert!(text.starts_with(&start), "{} does not start with {}", text, start);
    }

    /// Every refusal maps to a kind whose status is a client error, except
    /// the two that only a bug can cause.
    #[test]
    fn refusals_map_to_client_errors(refusal in any::<Refusal>()) {
        let status = ErrorKind::from(&refusal).status();
        let bug = matches!(refusal, Refusal::InvalidTtl { .. } | Refusal::LeaseExists);
        prop_assert_eq!(status == 500, bug);
    }
}
