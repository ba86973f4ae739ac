//! Lock-delay: an expired holder's locks stay unavailable for a while.

use super::story::{id, name, Story};
use crate::*;

#[test]
fn an_expired_lease_leaves_its_locks_delayed() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::None, 5_000);
    s.lease(2);
    s.lease(3);
    s.token(1, "a");
    assert!(matches!(
        s.acquire(2, "a", 60_000).response,
        Ok(Outcome::Queued { .. })
    ));
    let r = s.run(Command::ExpireLease { lease_id: id(1) });
    assert!(
        r.events.is_empty(),
        "the waiter is not granted during the delay"
    );
    let lock = s.table.lock(&name("a")).unwrap();
    assert_eq!(lock.delayed_until_ms, 1_000 + 5_000);
    assert_eq!(
        s.acquire(3, "a", 0).response,
        Err(Refusal::LockDelayed { until_ms: 6_000 })
    );
    assert!(!s.table.has_due_lock_delays(5_999));
    assert!(s.table.has_due_lock_delays(6_000));
    s.now_ms = 5_999;
    let r = s.run(Command::LiftLockDelays);
    assert_eq!(r.response, Ok(Outcome::DelaysLifted { count: 0 }));
    s.now_ms = 6_000;
    let r = s.run(Command::LiftLockDelays);
    assert_eq!(r.response, Ok(Outcome::DelaysLifted { count: 1 }));
    assert!(matches!(&r.events[..], [Event::Granted { grant, .. }] if grant.lease_id == id(2)));
}

#[test]
fn release_and_revoke_take_no_delay() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::None, 5_000);
    s.lease(2);
    s.token(1, "a");
    s.token(1, "b");
    s.release(1, "a");
    s.run(Command::RevokeLease { lease_id: id(1) });
    s.token(2, "a");
    s.token(2, "b");
}

#[test]
fn a_delay_that_ran_out_is_lifted_by_the_next_acquire_after_the_waiters() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::None, 100);
    s.lease(2);
    s.lease(3);
    s.token(1, "a");
    s.acquire(2, "a", 60_000);
    s.run(Command::ExpireLease { lease_id: id(1) });
    s.now_ms += 100;
    // Lease 3 comes before the timer's command: lease 2 still goes first.
    let r = s.acquire(3, "a", 0);
    assert!(matches!(r.response, Err(Refusal::LockBusy { .. })));
    assert!(matches!(&r.events[..], [Event::Granted { grant, .. }] if grant.lease_id == id(2)));
}

#[test]
fn a_free_delayed_lock_stays_in_the_table_until_lifted() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::None, 100);
    s.token(1, "a");
    s.run(Command::ExpireLease { lease_id: id(1) });
    assert!(s.table.lock(&name("a")).is_some());
    s.now_ms += 100;
    s.run(Command::LiftLockDelays);
    assert!(s.table.lock(&name("a")).is_none());
    let r = s.run(Command::GrantLease {
        lease_id: id(9),
        ttl_ms: 1_000,
        lock_order: LockOrder::None,
        lock_delay_ms: LOCK_DELAY_MS_MAX + 1,
    });
    assert!(matches!(r.response, Err(Refusal::Invalid { .. })));
}
