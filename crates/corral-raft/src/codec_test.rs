use corral_state::{Command, LeaseId, LockName, Proposal};

use super::*;

const BOTH: [Encoding; 2] = [Encoding::Json, Encoding::MessagePack];

fn acquire() -> Proposal {
    let command = Command::Acquire {
        lease_id: LeaseId(u128::MAX - 7),
        name: LockName::new("invoice/42").expect("a valid name"),
        mode: Default::default(),
        wait_ms: 250,
    };
    Proposal::new(1_700_000_000_000, command)
}

/// An internally tagged command, with a 128-bit id and fields left out
/// when empty, decodes as it was encoded, in either encoding.
#[test]
fn a_proposal_round_trips_in_both_encodings() {
    for encoding in BOTH {
        let bytes = encoding.encode(&acquire()).expect("encodes");
        let decoded: Proposal = encoding.decode(&bytes).expect("decodes");
        assert_eq!(decoded, acquire(), "{encoding:?}");
    }
}

/// Formats 0 and 1 are JSON, 2 and later MessagePack.
#[test]
fn formats_name_their_encoding() {
    assert_eq!(Encoding::of_format(0), Encoding::Json);
    assert_eq!(Encoding::of_format(1), Encoding::Json);
    assert_eq!(
        Encoding::of_format(FIRST_BINARY_FORMAT),
        Encoding::MessagePack
    );
}

/// The binary form is the smaller one, and neither decodes as the other.
#[test]
fn messagepack_is_smaller_and_not_json() {
    let json = Encoding::Json.encode(&acquire()).expect("encodes");
    let binary = Encoding::MessagePack.encode(&acquire()).expect("encodes");
    assert!(
        binary.len() < json.len(),
        "{} >= {}",
        binary.len(),
        json.len()
    );
    assert!(Encoding::Json.decode::<Proposal>(&binary).is_err());
    assert!(Encoding::MessagePack.decode::<Proposal>(&json).is_err());
}
