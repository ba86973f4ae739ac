//! Elections: one leader with a value, candidates in FIFO order.

use super::story::{id, name, Story};
use crate::*;

fn campaign(s: &mut Story, lease: u128, value: &str, wait_ms: u64) -> Applied {
    s.run(Command::Campaign {
        lease_id: id(lease),
        name: name("primary"),
        value: value.into(),
        wait_ms,
    })
}

fn leader(s: &Story) -> Option<(LeaseId, String, FencingToken)> {
    let election = s.table.election(&name("primary"))?;
    let g = election.holders.values().next()?;
    Some((g.lease_id, g.value.clone()?, g.fencing_token))
}

#[test]
fn candidates_lead_in_turn_when_the_leader_resigns_or_expires() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    assert!(matches!(
        campaign(&mut s, 1, "10.0.0.1", 0).response,
        Ok(Outcome::Granted(_))
    ));
    assert!(matches!(
        campaign(&mut s, 2, "10.0.0.2", 0).response,
        Err(Refusal::LockBusy { .. })
    ));
    campaign(&mut s, 2, "10.0.0.2", 1_000);
    campaign(&mut s, 3, "10.0.0.3", 1_000);
    let first = leader(&s).unwrap();
    assert_eq!(first.0, id(1));

    let r = s.run(Command::Resign {
        lease_id: id(1),
        name: name("primary"),
        fencing_token: None,
    });
    assert_eq!(r.response, Ok(Outcome::Released));
    let second = leader(&s).unwrap();
    assert_eq!((second.0, second.1.as_str()), (id(2), "10.0.0.2"));
    assert!(second.2 > first.2);

    let r = s.run(Command::ExpireLease { lease_id: id(2) });
    match r.response {
        Ok(Outcome::LeaseEnded { resigned, .. }) => assert_eq!(resigned, vec![name("primary")]),
        other => panic!("{other:?}"),
    }
    assert_eq!(leader(&s).unwrap().0, id(3));
}

#[test]
fn proclaim_changes_the_value_under_a_new_token_for_the_leader_only() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    campaign(&mut s, 1, "a", 0);
    let before = leader(&s).unwrap();
    let r = s.run(Command::Proclaim {
        lease_id: id(1),
        name: name("primary"),
        value: "b".into(),
    });
    assert!(matches!(r.response, Ok(Outcome::Granted(ref g)) if g.value.as_deref() == Some("b")));
    let after = leader(&s).unwrap();
    assert!(after.2 > before.2);
    assert_eq!(s.table.last_token(), after.2);
    let r = s.run(Command::Proclaim {
        lease_id: id(2),
        name: name("primary"),
        value: "c".into(),
    });
    assert_eq!(r.response, Err(Refusal::NotLeader));
    assert_eq!(
        s.table.last_token(),
        after.2,
        "a refused proclaim takes no token"
    );
    let r = s.run(Command::Resign {
        lease_id: id(2),
        name: name("primary"),
        fencing_token: None,
    });
    assert_eq!(r.response, Err(Refusal::NotLeader));
    let long = "x".repeat(ELECTION_VALUE_BYTES_MAX + 1);
    assert!(matches!(
        campaign(&mut s, 2, &long, 0).response,
        Err(Refusal::Invalid { .. })
    ));
}

#[test]
fn a_waiting_candidate_may_withdraw() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    campaign(&mut s, 1, "a", 0);
    campaign(&mut s, 2, "b", 1_000);
    let r = s.run(Command::Resign {
        lease_id: id(2),
        name: name("primary"),
        fencing_token: None,
    });
    assert_eq!(r.response, Ok(Outcome::WaitCancelled));
    assert!(s
        .table
        .election(&name("primary"))
        .unwrap()
        .waiters
        .is_empty());
    assert!(
        s.table.lock(&name("primary")).is_none(),
        "elections are a namespace of their own"
    );
}
