//! Acquire-all: every lock in one command or none, waiting in every queue.

use super::story::{id, name, Story};
use crate::*;

fn tokens(applied: &Applied) -> Vec<(String, FencingToken)> {
    match &applied.response {
        Ok(Outcome::GrantedAll { grants }) => grants
            .iter()
            .map(|g| (g.name.to_string(), g.fencing_token))
            .collect(),
        other => panic!("expected all grants, got {other:?}"),
    }
}

#[test]
fn free_locks_are_all_granted_at_once_in_name_order() {
    let mut s = Story::new();
    s.lease(1);
    let got = tokens(&s.acquire_all(1, &["b", "a", "c"], 0));
    assert_eq!(
        got,
        vec![
            ("a".into(), FencingToken(1)),
            ("b".into(), FencingToken(2)),
            ("c".into(), FencingToken(3))
        ]
    );
    // Asking again re-grants them all, in name order, under new tokens.
    assert_eq!(
        tokens(&s.acquire_all(1, &["a", "b", "c"], 0)),
        vec![
            ("a".into(), FencingToken(4)),
            ("b".into(), FencingToken(5)),
            ("c".into(), FencingToken(6))
        ]
    );
    assert_eq!(s.table.last_token(), FencingToken(6));
}

#[test]
fn a_busy_lock_refuses_the_whole_request() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let held = s.token(2, "b");
    let r = s.acquire_all(1, &["a", "b"], 0);
    assert_eq!(
        r.response,
        Err(Refusal::LockBusy {
            holder_token: Some(held)
        })
    );
    assert!(s.table.lock(&name("a")).is_none(), "nothing taken");
    assert!(s.table.lease(id(1)).unwrap().holds.is_empty());
}

#[test]
fn bad_name_lists_are_refused() {
    let mut s = Story::new();
    s.lease(1);
    for names in [vec![], vec!["a", "a"]] {
        let r = s.acquire_all(1, &names, 0);
        assert!(matches!(r.response, Err(Refusal::Invalid { .. })), "{r:?}");
    }
    let many: Vec<String> = (0..=ACQUIRE_ALL_NAMES_MAX)
        .map(|i| format!("l{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        s.acquire_all(1, &many, 0).response,
        Err(Refusal::Invalid { .. })
    ));
}

#[test]
fn a_waiting_request_holds_nothing_and_keeps_its_place_everywhere() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(2, "b");
    assert!(matches!(
        s.acquire_all(1, &["a", "b"], 1_000).response,
        Ok(Outcome::Queued { .. })
    ));
    // Lock a is free, but lease 1 queues for it: lease 3 waits behind.
    assert!(s.table.lease(id(1)).unwrap().holds.is_empty());
    assert_eq!(
        s.acquire(3, "a", 0).response,
        Err(Refusal::LockBusy { holder_token: None })
    );
    assert!(matches!(
        s.acquire(3, "a", 1_000).response,
        Ok(Outcome::Queued { position: 1, .. })
    ));
    // Lease 2 lets go of b: lease 1 takes a and b in one step, and lease 3
    // goes on waiting for a.
    let r = s.release(2, "b");
    match &r.events[..] {
        [Event::GrantedAll(grants)] => {
            let names: Vec<&str> = grants.iter().map(|g| g.name.as_str()).collect();
            assert_eq!(names, ["a", "b"]);
            assert!(grants.iter().all(|g| g.lease_id == id(1)));
        }
        other => panic!("expected one acquire-all grant, got {other:?}"),
    }
    assert_eq!(s.table.lock(&name("a")).unwrap().position(id(3)), Some(0));
    let r = s.release(1, "a");
    assert!(matches!(&r.events[..], [Event::Granted { grant, .. }] if grant.lease_id == id(3)));
}

#[test]
fn cancelling_one_queue_withdraws_the_whole_request() {
    let mut s = Story::new();
    for n in 1..=2 {
        s.lease(n);
    }
    s.token(2, "b");
    s.acquire_all(1, &["a", "b"], 1_000);
    let r = s.run(Command::CancelWait {
        lease_id: id(1),
        name: name("b"),
        kind: Kind::Lock,
    });
    assert_eq!(r.response, Ok(Outcome::WaitCancelled));
    assert!(
        s.table.lock(&name("a")).is_none(),
        "its place in a is gone too"
    );
    let lease = s.table.lease(id(1)).unwrap();
    assert!(lease.waits.is_empty() && lease.groups.is_empty());
}

#[test]
fn cancel_all_answers_with_the_grants_if_they_won() {
    let mut s = Story::new();
    for n in 1..=2 {
        s.lease(n);
    }
    s.token(2, "b");
    s.acquire_all(1, &["a", "b"], 1_000);
    s.release(2, "b");
    let r = s.run(Command::CancelWaitAll {
        lease_id: id(1),
        names: vec![name("b"), name("a")],
    });
    assert_eq!(tokens(&r).len(), 2);
}

#[test]
fn a_held_lock_counts_and_a_single_wait_conflicts() {
    let mut s = Story::new();
    for n in 1..=2 {
        s.lease(n);
    }
    let a = s.token(1, "a");
    s.token(2, "c");
    let got = tokens(&s.acquire_all(1, &["a", "b"], 0));
    assert_eq!(got[0].0, "a", "the held lock is part of the answer");
    assert!(got[0].1 > a, "re-granted under a new token");
    assert!(got[1].1 > got[0].1, "in name order");
    s.acquire(1, "c", 1_000);
    assert_eq!(
        s.acquire_all(1, &["c", "d"], 1_000).response,
        Err(Refusal::AlreadyWaiting { name: name("c") })
    );
}

#[test]
fn a_request_that_would_close_a_cycle_is_refused() {
    let mut s = Story::new();
    for n in 1..=2 {
        s.lease(n);
    }
    s.token(1, "a");
    s.token(2, "b");
    s.acquire(1, "b", 1_000);
    let r = s.acquire_all(2, &["a", "c"], 1_000);
    assert!(
        matches!(r.response, Err(Refusal::Deadlock { ref cycle }) if cycle.len() == 2),
        "{r:?}"
    );
    assert!(s.table.lock(&name("c")).is_none(), "nothing enqueued");
}

#[test]
fn releasing_a_lock_the_request_counted_as_held_withdraws_it() {
    // Lease 1 holds b and waits for {b, c}; it releases b: the request can
    // no longer be granted whole, so it is withdrawn, and a later wait for
    // b is a wait of its own.
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(2, "c");
    s.token(1, "b");
    s.acquire_all(1, &["b", "c"], 1_000);
    let r = s.release(1, "b");
    assert!(r.events.contains(&Event::Withdrawn {
        lease_id: id(1),
        names: vec![name("b"), name("c")],
    }));
    let lease = s.table.lease(id(1)).unwrap();
    assert!(lease.groups.is_empty() && lease.waits.is_empty());
    s.token(3, "b");
    s.acquire(1, "b", 1_000);
    let r = s.acquire_all(1, &["a", "b"], 1_000);
    assert_eq!(r.response, Err(Refusal::AlreadyWaiting { name: name("b") }));
    // Lease 2 lets go of c: nothing of the withdrawn request is granted.
    let r = s.release(2, "c");
    assert!(r.events.is_empty(), "{r:?}");
}

#[test]
fn a_try_of_a_waiting_request_answers_busy_and_leaves_it_waiting() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(2, "b");
    s.acquire_all(1, &["a", "b"], 1_000);
    // The first lock it waits for, a, is free but held back by the request
    // itself: busy, with no holder.
    assert_eq!(
        s.acquire_all(1, &["a", "b"], 0).response,
        Err(Refusal::LockBusy { holder_token: None })
    );
    assert_eq!(s.table.lease(id(1)).unwrap().groups.len(), 1);
}

#[test]
fn a_shared_request_held_back_elsewhere_does_not_wait_on_shared_holders() {
    // Lease 2 holds a shared; lease 1 waits for {a, b} shared, held back by
    // lease 3's b. Lease 2 may wait for d, which lease 1 holds: lease 1
    // waits on lease 3 only.
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.acquire_mode(2, "a", Mode::Shared, 0);
    s.token(3, "b");
    s.token(1, "d");
    let r = s.run(Command::AcquireAll {
        lease_id: id(1),
        names: vec![name("a"), name("b")],
        mode: Mode::Shared,
        wait_ms: 1_000,
    });
    assert!(matches!(r.response, Ok(Outcome::Queued { .. })), "{r:?}");
    assert!(matches!(
        s.acquire(2, "d", 1_000).response,
        Ok(Outcome::Queued { .. })
    ));
}

#[test]
fn a_snapshot_without_queued_names_is_rebuilt_on_restore() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(2, "b");
    s.token(1, "a");
    s.acquire_all(1, &["a", "b"], 1_000);
    let mut json = serde_json::to_value(&s.table).unwrap();
    // Snapshots written before acquire-alls recorded their queued names.
    let lease = json["leases"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|l| !l["groups"].as_array().unwrap().is_empty())
        .unwrap();
    lease["groups"][0]
        .as_object_mut()
        .unwrap()
        .remove("waiting");
    let mut restored: LockTable = serde_json::from_value(json).unwrap();
    restored.rebuild_derived();
    restored.check_invariants().unwrap();
    assert_eq!(restored, s.table);
}
