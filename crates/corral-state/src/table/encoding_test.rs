//! Every value that leaves the state machine survives its encoding: log
//! payloads, answers (forwarded to followers and remembered for idempotency
//! keys) and snapshots holding any remembered answer. Values come from
//! derived strategies, so a new variant is generated the day it is added.
//! Also: applying arbitrary proposals never panics.

use proptest::prelude::*;

use super::property_test::{restored, round_trip};
use crate::*;

/// A table that remembers `response` under a key, as a snapshot carries it.
fn remembering(response: &Response, now_ms: u64) -> LockTable {
    let mut table = LockTable::new();
    let idempotency = Idempotency {
        key: "k".into(),
        fingerprint: 1,
        window_ms: 60_000,
    };
    table.now_ms = now_ms;
    table.remember(idempotency, response);
    table
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// A log entry's payload decodes to what was proposed.
    #[test]
    fn any_proposal_round_trips(proposal in any::<Proposal>()) {
        prop_assert_eq!(round_trip(&proposal), proposal);
    }

    /// An answer decodes to what was answered.
    #[test]
    fn any_response_round_trips(response in any::<Response>()) {
        prop_assert_eq!(round_trip(&response), response);
    }

    /// A snapshot that remembers any answer restores it, and answers a
    /// retry with it.
    #[test]
    fn a_snapshot_remembering_any_answer_round_trips(
        response in any::<Response>(),
        now_ms in 0u64..1 << 50,
    ) {
        let table = remembering(&response, now_ms);
        let mut replica = restored(&table);
        prop_assert_eq!(replica.remembered_count(), 1);
        let retry = Proposal {
            now_ms,
            command: Command::LiftLockDelays,
            idempotency: Some(Idempotency { key: "k".into(), fingerprint: 1, window_ms: 60_000 }),
            caller: None,
        };
        prop_assert_eq!(replica.apply(retry).response, response);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No proposal panics apply, whatever its values: a panic there would
    /// stop every replica at the same entry. The invariants hold after each.
    #[test]
    fn arbitrary_proposals_never_panic_apply(
        proposals in prop::collection::vec(any::<Proposal>(), 1..40),
    ) {
        let mut table = LockTable::new();
        for proposal in proposals {
            let applied = table.apply(proposal);
            prop_assert_eq!(&round_trip(&applied.response), &applied.response);
            table
                .check_invariants()
                .map_err(|broken| TestCaseError::fail(broken.to_string()))?;
        }
        restored(&table);
    }

    /// A table reached by any command sequence, remembering any answers,
    /// restores from its snapshot.
    #[test]
    fn any_table_round_trips(table in any::<LockTable>()) {
        restored(&table);
    }
}
