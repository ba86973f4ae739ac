//! Lock timelines: what happened, in order, within bounds.

use super::story::{id, name, Story};
use crate::*;

fn kinds(s: &Story, lock: &str) -> Vec<TimelineKind> {
    s.table
        .timeline(&name(lock))
        .iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn a_lock_remembers_its_grants_queue_releases_and_refusals() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    let t1 = s.token(1, "a");
    s.token(2, "b");
    s.acquire(2, "a", 1_000);
    s.acquire(1, "b", 1_000);
    s.release(1, "a");
    s.run(Command::ExpireLease { lease_id: id(2) });
    s.acquire(3, "a", 0);
    assert_eq!(
        kinds(&s, "a"),
        [
            TimelineKind::Granted,
            TimelineKind::Queued,
            TimelineKind::Released,
            TimelineKind::Granted,
            TimelineKind::Expired,
            TimelineKind::Granted,
        ]
    );
    let a = s.table.timeline(&name("a"));
    assert_eq!(a[0].fencing_token, Some(t1));
    assert_eq!(a[3].lease_id, Some(id(2)));
    assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
    // Lease 1's wait for b would have closed a cycle: refused, and b was
    // let go when lease 2 expired.
    assert_eq!(
        kinds(&s, "b"),
        [
            TimelineKind::Granted,
            TimelineKind::RefusedDeadlock,
            TimelineKind::Expired
        ]
    );
}

#[test]
fn deadlock_refusals_and_a_retry_from_memory_are_told_apart() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(1, "user/7");
    s.token(2, "cart/7");
    s.acquire(1, "cart/7", 1_000);
    s.acquire(2, "user/7", 1_000);
    assert_eq!(
        kinds(&s, "user/7").last(),
        Some(&TimelineKind::RefusedDeadlock)
    );
    // A try that is merely busy is not an event; a same-lease re-acquire
    // is a new grant, under a new token.
    let before = s.table.timeline(&name("user/7")).len();
    s.acquire(2, "user/7", 0);
    assert_eq!(s.table.timeline(&name("user/7")).len(), before);
    s.acquire(1, "user/7", 0);
    let events = s.table.timeline(&name("user/7"));
    assert_eq!(events.len(), before + 1);
    assert_eq!(events.last().map(|e| e.kind), Some(TimelineKind::Granted));
}

#[test]
fn timelines_stay_within_their_bounds() {
    let mut s = Story::new();
    s.lease(1);
    for _ in 0..(TIMELINE_EVENTS_PER_LOCK / 2 + 10) {
        s.token(1, "busy");
        s.release(1, "busy");
    }
    assert_eq!(
        s.table.timeline(&name("busy")).len(),
        TIMELINE_EVENTS_PER_LOCK
    );
    // Applied without the per-step invariant walk, which is O(table).
    for i in 0..=TIMELINE_LOCKS_MAX {
        let lock = name(&format!("many/{i}"));
        for command in [
            Command::Acquire {
                lease_id: id(1),
                name: lock.clone(),
                mode: Mode::Exclusive,
                wait_ms: 0,
            },
            Command::Release {
                lease_id: id(1),
                name: lock,
                kind: Kind::Lock,
                fencing_token: None,
            },
        ] {
            s.table.apply(Proposal::new(s.now_ms, command));
        }
    }
    assert!(
        s.table.timeline(&name("busy")).is_empty(),
        "the stalest lock is forgotten first"
    );
    assert_eq!(s.table.timeline(&name("many/1")).len(), 2);
    s.table.check_invariants().unwrap();
}

#[test]
fn the_most_granted_lock_is_counted_within_the_window() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    assert_eq!(s.table.most_granted_since(0), None);
    for _ in 0..3 {
        s.token(1, "flappy");
        s.release(1, "flappy");
        s.token(2, "flappy");
        s.release(2, "flappy");
        s.now_ms += 100;
    }
    s.token(1, "calm");
    let (name, grants) = s.table.most_granted_since(0).expect("grants");
    assert_eq!((name.as_str(), grants), ("flappy", 6));
    // Only grants at or after the start of the window count.
    let (_, recent) = s.table.most_granted_since(1_200).expect("grants");
    assert_eq!(recent, 2);
    assert_eq!(s.table.most_granted_since(s.now_ms + 1), None);
}
