//! A lease id reads and writes as it always has: 32 lowercase hex digits,
//! in text and in every encoding.

use proptest::prelude::*;

use super::*;

proptest! {
    /// Any id shows, encodes and decodes as its `{:032x}`, in JSON (the
    /// API) and MessagePack (the log, snapshots and peers).
    #[test]
    fn an_id_is_its_32_hex_digits_everywhere(n in any::<u128>()) {
        let id = LeaseId(n);
        let digits = format!("{n:032x}");
        prop_assert_eq!(id.to_string(), digits.clone());
        prop_assert_eq!(String::from(id), digits.clone());
        let json = serde_json::to_string(&id).expect("encodes");
        prop_assert_eq!(&json, &format!("\"{digits}\""));
        prop_assert_eq!(serde_json::from_str::<LeaseId>(&json).expect("decodes"), id);
        let packed = rmp_serde::to_vec(&id).expect("encodes");
        prop_assert_eq!(&packed, &rmp_serde::to_vec(&digits).expect("encodes"));
        prop_assert_eq!(rmp_serde::from_slice::<LeaseId>(&packed).expect("decodes"), id);
        prop_assert_eq!(digits.to_uppercase().parse::<LeaseId>(), Ok(id));
    }
}

/// What is not 32 hex digits is refused, in text and when decoded.
#[test]
fn anything_else_is_not_an_id() {
    for text in [
        "",
        "abc",
        &"0".repeat(31),
        &"0".repeat(33),
        &"g".repeat(32),
        &format!("+{}", "0".repeat(31)),
    ] {
        assert_eq!(text.parse::<LeaseId>(), Err(LeaseIdError), "{text:?}");
        let json = serde_json::to_string(text).expect("encodes");
        let refused = serde_json::from_str::<LeaseId>(&json).expect_err(text);
        assert!(refused.to_string().contains("32 hex digits"), "{refused}");
    }
    assert!(
        serde_json::from_str::<LeaseId>("7").is_err(),
        "a number is no id"
    );
}
