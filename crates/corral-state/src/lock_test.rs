//! A lock name reads and writes as the string it is, in JSON (the API)
//! and MessagePack (the log, snapshots and peers), whether the decoder
//! lends the string or hands over its own; what is not a name is refused
//! with the reason `LockName::new` gives.

use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn a_name_is_its_string_everywhere(text in "[^\\p{Cc}]{1,40}") {
        let name = LockName::new(&text).expect("a valid name");
        prop_assert_eq!(name.as_str(), text.as_str());
        let json = serde_json::to_string(&name).expect("encodes");
        prop_assert_eq!(&json, &serde_json::to_string(&text).expect("encodes"));
        prop_assert_eq!(&serde_json::from_str::<LockName>(&json).expect("decodes"), &name);
        // From a reader, serde_json hands over strings it does not lend.
        let read: LockName = serde_json::from_reader(json.as_bytes()).expect("decodes");
        prop_assert_eq!(&read, &name);
        let packed = rmp_serde::to_vec(&name).expect("encodes");
        prop_assert_eq!(&packed, &rmp_serde::to_vec(&text).expect("encodes"));
        prop_assert_eq!(&rmp_serde::from_slice::<LockName>(&packed).expect("decodes"), &name);
    }
}

/// What is not a lock name is refused when decoded, with the reason.
#[test]
fn anything_else_is_not_a_name() {
    let long = "n".repeat(LOCK_NAME_BYTES_MAX + 1);
    for (text, why) in [
        ("", LockNameError::Empty),
        (
            long.as_str(),
            LockNameError::TooLong(LOCK_NAME_BYTES_MAX + 1),
        ),
        ("a\nb", LockNameError::ControlCharacter),
    ] {
        assert_eq!(LockName::new(text), Err(why.clone()));
        let json = serde_json::to_string(text).expect("encodes");
        let refused = serde_json::from_str::<LockName>(&json).expect_err(text);
        assert!(refused.to_string().contains(&why.to_string()), "{refused}");
        let packed = rmp_serde::to_vec(text).expect("encodes");
        let refused = rmp_serde::from_slice::<LockName>(&packed).expect_err(text);
        assert!(refused.to_string().contains(&why.to_string()), "{refused}");
    }
    let refused = serde_json::from_str::<LockName>("5").expect_err("a number");
    assert!(
        refused.to_string().contains("expected a lock name"),
        "{refused}"
    );
}
