//! The holds a command reports as ended, and their hold times.

use super::story::{id, name, Story};
use crate::*;

#[test]
fn a_release_reports_the_hold_and_its_duration() {
    let mut s = Story::new();
    s.lease(1);
    let token = s.token(1, "a");
    s.now_ms += 250;
    let applied = s.release(1, "a");
    assert_eq!(applied.ended.len(), 1);
    let ended = &applied.ended[0];
    assert_eq!(ended.kind, Kind::Lock);
    assert_eq!(ended.grant.fencing_token, token);
    assert_eq!(ended.held_ms, 250);
    assert_eq!(ended.reason, HoldEnd::Released);
    assert_eq!(applied.expired_lease, None);
}

#[test]
fn an_expiry_reports_every_hold_of_the_lease_and_the_lease() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(1, "a");
    s.token(1, "b");
    s.acquire(2, "a", 5_000);
    s.now_ms += 1_000;
    let applied = s.run(Command::ExpireLease { lease_id: id(1) });
    let mut names: Vec<_> = applied.ended.iter().map(|e| e.grant.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec![name("a"), name("b")]);
    assert!(applied
        .ended
        .iter()
        .all(|e| e.reason == HoldEnd::Expired && e.held_ms == 1_000));
    assert_eq!(applied.expired_lease, Some(id(1)));
}

#[test]
fn a_revoke_is_not_an_expiry() {
    let mut s = Story::new();
    s.lease(1);
    s.token(1, "a");
    let applied = s.run(Command::RevokeLease { lease_id: id(1) });
    assert_eq!(applied.ended.len(), 1);
    assert_eq!(applied.ended[0].reason, HoldEnd::Revoked);
    assert_eq!(applied.expired_lease, None);
}

#[test]
fn refused_or_idle_commands_end_nothing() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(1, "a");
    // Not the holder: refused.
    assert!(s.release(2, "a").ended.is_empty());
    // Releasing one lock leaves the other hold alone.
    s.token(1, "b");
    let applied = s.release(1, "b");
    assert_eq!(applied.ended.len(), 1);
    assert_eq!(applied.ended[0].grant.name, name("b"));
    // An unknown lease cannot expire.
    let applied = s.run(Command::ExpireLease { lease_id: id(9) });
    assert!(applied.ended.is_empty());
    assert_eq!(applied.expired_lease, None);
}

#[test]
fn a_command_reports_the_lease_it_granted_or_ended_for_the_lease_clock() {
    let mut s = Story::new();
    let grant = Command::GrantLease {
        lease_id: id(1),
        ttl_ms: 7_000,
        lock_order: LockOrder::None,
        lock_delay_ms: 0,
    };
    let granted = LeaseChange::Granted {
        lease_id: id(1),
        ttl_ms: 7_000,
    };
    assert_eq!(s.run(grant.clone()).lease_change, Some(granted));
    assert_eq!(s.run(grant).lease_change, None, "refused: it exists");
    s.lease(2);
    let revoked = s.run(Command::RevokeLease { lease_id: id(1) });
    let ended = |n, expired| LeaseChange::Ended {
        lease_id: id(n),
        expired,
    };
    assert_eq!(revoked.lease_change, Some(ended(1, false)));
    let expired = s.run(Command::ExpireLease { lease_id: id(2) });
    assert_eq!(expired.lease_change, Some(ended(2, true)));
    let unknown = s.run(Command::ExpireLease { lease_id: id(2) });
    assert_eq!(unknown.lease_change, None);
    assert_eq!(s.release(3, "a").lease_change, None);
}
