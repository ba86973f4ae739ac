//! A late release: a release that names its grant's token cannot end a
//! newer grant, and acquiring again always makes a newer grant.

use super::story::{id, name, Story};
use crate::*;

fn granted(applied: &Applied) -> Grant {
    match &applied.response {
        Ok(Outcome::Granted(g)) => g.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn release_token(s: &mut Story, n: u128, kind: Kind, lock: &str, token: FencingToken) -> Response {
    s.run(Command::Release {
        lease_id: id(n),
        name: name(lock),
        kind,
        fencing_token: Some(token),
    })
    .response
}

fn holder_token(s: &Story, kind: Kind, lock: &str, n: u128) -> Option<FencingToken> {
    let lock = s.table.entry(kind, &name(lock))?;
    lock.holders.get(&id(n)).map(|g| g.fencing_token)
}

#[test]
fn a_release_sent_before_acquiring_again_cannot_end_the_new_grant() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let old = s.token(1, "a");
    s.acquire(2, "a", 5_000);
    // The client sent a release naming `old`, got no answer, and acquired
    // again through another node: a new grant, not the old one.
    let new = granted(&s.acquire(1, "a", 0));
    assert!(new.fencing_token > old);
    assert_eq!((new.lease_id, new.mode), (id(1), Mode::Exclusive));
    // The late release arrives: refused, nothing changes.
    let before = s.table.clone();
    let late = release_token(&mut s, 1, Kind::Lock, "a", old);
    assert_eq!(late, Err(Refusal::NotHolder));
    assert_eq!(s.table.lock(&name("a")), before.lock(&name("a")));
    assert_eq!(
        holder_token(&s, Kind::Lock, "a", 1),
        Some(new.fencing_token)
    );
    // Naming the grant it holds releases it, to the waiter.
    let done = release_token(&mut s, 1, Kind::Lock, "a", new.fencing_token);
    assert_eq!(done, Ok(Outcome::Released));
    assert_eq!(s.holder("a"), Some(id(2)));
}

#[test]
fn a_release_naming_a_token_of_another_lease_or_none_is_refused() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let t = s.token(1, "a");
    assert_eq!(
        release_token(&mut s, 2, Kind::Lock, "a", t),
        Err(Refusal::NotHolder)
    );
    assert_eq!(
        release_token(&mut s, 1, Kind::Lock, "b", t),
        Err(Refusal::NotHolder)
    );
    assert_eq!(
        release_token(&mut s, 3, Kind::Lock, "a", t),
        Err(Refusal::LeaseNotFound)
    );
    assert_eq!(s.holder("a"), Some(id(1)));
}

#[test]
fn a_shared_holder_is_regranted_beside_the_others_and_ahead_of_no_one() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    let first = granted(&s.acquire_mode(1, "a", Mode::Shared, 0));
    let other = granted(&s.acquire_mode(2, "a", Mode::Shared, 0));
    s.acquire(3, "a", 5_000); // a writer waits
    let again = granted(&s.acquire_mode(1, "a", Mode::Shared, 0));
    assert!(again.fencing_token > other.fencing_token);
    assert_eq!(again.mode, Mode::Shared);
    assert_eq!(s.holders("a"), vec![id(1), id(2)]);
    assert_eq!(
        holder_token(&s, Kind::Lock, "a", 2),
        Some(other.fencing_token)
    );
    assert_eq!(s.table.lock(&name("a")).unwrap().waiters.len(), 1);
    assert_eq!(
        release_token(&mut s, 1, Kind::Lock, "a", first.fencing_token),
        Err(Refusal::NotHolder)
    );
}

#[test]
fn a_semaphore_holder_is_regranted_its_permits() {
    let mut s = Story::new();
    s.lease(1);
    let first = granted(&s.permits(1, "pool", 3, 2, 0));
    let again = granted(&s.permits(1, "pool", 3, 2, 0));
    assert!(again.fencing_token > first.fencing_token);
    assert_eq!(again.permits, 2);
    assert_eq!(s.table.semaphore(&name("pool")).unwrap().permits_held(), 2);
    let late = release_token(&mut s, 1, Kind::Semaphore, "pool", first.fencing_token);
    assert_eq!(late, Err(Refusal::NotHolder));
    let done = release_token(&mut s, 1, Kind::Semaphore, "pool", again.fencing_token);
    assert_eq!(done, Ok(Outcome::Released));
    assert!(s.table.semaphore(&name("pool")).is_none());
}

fn campaign(s: &mut Story, n: u128, value: &str, wait_ms: u64) -> Applied {
    s.run(Command::Campaign {
        lease_id: id(n),
        name: name("primary"),
        value: value.into(),
        wait_ms,
    })
}

fn resign(s: &mut Story, n: u128, token: Option<FencingToken>) -> Response {
    s.run(Command::Resign {
        lease_id: id(n),
        name: name("primary"),
        fencing_token: token,
    })
    .response
}

#[test]
fn a_leader_campaigning_again_leads_under_a_new_token_with_its_value() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let first = granted(&campaign(&mut s, 1, "10.0.0.1", 0));
    campaign(&mut s, 2, "10.0.0.2", 5_000);
    let again = granted(&campaign(&mut s, 1, "ignored", 0));
    assert!(again.fencing_token > first.fencing_token);
    assert_eq!(again.value.as_deref(), Some("10.0.0.1"), "use proclaim");
    assert_eq!(
        resign(&mut s, 1, Some(first.fencing_token)),
        Err(Refusal::NotLeader)
    );
    // A candidate has no token to name: its wait is left alone.
    assert_eq!(
        resign(&mut s, 2, Some(again.fencing_token)),
        Err(Refusal::NotLeader)
    );
    assert!(s
        .table
        .lease(id(2))
        .unwrap()
        .campaigns
        .contains(&name("primary")));
    assert_eq!(
        resign(&mut s, 1, Some(again.fencing_token)),
        Ok(Outcome::Released)
    );
    let election = s.table.election(&name("primary")).unwrap();
    assert!(election.holders.contains_key(&id(2)), "the next one leads");
}

#[test]
fn an_acquire_all_regrants_what_it_held_in_name_order() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let b = s.token(1, "b");
    let all = s.acquire_all(1, &["c", "b", "a"], 0);
    let Ok(Outcome::GrantedAll { grants }) = all.response else {
        panic!("{all:?}");
    };
    let tokens: Vec<FencingToken> = grants.iter().map(|g| g.fencing_token).collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    assert!(tokens[0] > b);
    assert_eq!(
        release_token(&mut s, 1, Kind::Lock, "b", b),
        Err(Refusal::NotHolder)
    );
    // Queued: the held lock is re-granted with the rest, when they come.
    s.token(2, "d");
    s.token(1, "e");
    let e = holder_token(&s, Kind::Lock, "e", 1).unwrap();
    let queued = s.acquire_all(1, &["d", "e"], 5_000);
    assert!(matches!(queued.response, Ok(Outcome::Queued { .. })));
    assert_eq!(holder_token(&s, Kind::Lock, "e", 1), Some(e), "not yet");
    let handed = s.release(2, "d");
    let Some(Event::GrantedAll(grants)) = handed.events.first() else {
        panic!("{handed:?}");
    };
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| g.fencing_token > e));
    assert_eq!(
        release_token(&mut s, 1, Kind::Lock, "e", e),
        Err(Refusal::NotHolder)
    );
}

#[test]
fn a_holder_is_regranted_under_lock_delay_and_the_timeline_says_so() {
    let mut s = Story::new();
    s.lease(1);
    s.lease_with(2, LockOrder::None, 5_000);
    let first = granted(&s.acquire_mode(1, "a", Mode::Shared, 0));
    s.acquire_mode(2, "a", Mode::Shared, 0);
    s.run(Command::ExpireLease { lease_id: id(2) });
    assert!(s.table.lock(&name("a")).unwrap().delayed_until_ms > 0);
    let again = granted(&s.acquire_mode(1, "a", Mode::Shared, 0));
    assert!(again.fencing_token > first.fencing_token);
    let last = s.table.timeline(&name("a")).pop().expect("events");
    assert_eq!(last.kind, TimelineKind::Granted);
    assert_eq!(last.fencing_token, Some(again.fencing_token));
}

#[test]
fn a_regrant_keeps_the_hold_time_whole() {
    let mut s = Story::new();
    s.lease(1);
    let first = granted(&s.acquire(1, "a", 0));
    s.now_ms += 300;
    let again = granted(&s.acquire(1, "a", 0));
    assert_eq!(again.granted_at_ms, first.granted_at_ms, "the hold goes on");
    s.now_ms += 200;
    let released = s.release(1, "a");
    let held: Vec<(FencingToken, u64)> = released
        .ended
        .iter()
        .map(|e| (e.grant.fencing_token, e.held_ms))
        .collect();
    assert_eq!(held, vec![(again.fencing_token, 500)]);
}
