//! Lock ordering: lexicographic leases and the cluster's ranks.

use super::story::{id, name, Story};
use crate::*;

fn violation(applied: &Applied) -> (String, String) {
    match &applied.response {
        Err(Refusal::OrderViolation { name, held }) => (name.to_string(), held.to_string()),
        other => panic!("expected an order violation, got {other:?}"),
    }
}

#[test]
fn a_lexicographic_lease_takes_names_in_byte_order() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::Lexicographic, 0);
    s.lease(2);
    s.token(1, "b");
    assert_eq!(violation(&s.acquire(1, "a", 0)), ("a".into(), "b".into()));
    s.token(1, "c");
    s.token(1, "b"); // already held: granted again, no violation
                     // Other leases keep no order.
    s.token(2, "z");
    s.token(2, "y");
    // An acquire-all is checked name by name against what the lease holds.
    assert_eq!(
        violation(&s.acquire_all(1, &["a", "d"], 0)),
        ("a".into(), "b".into())
    );
    assert!(matches!(
        s.acquire_all(1, &["d", "e"], 0).response,
        Ok(Outcome::GrantedAll { .. })
    ));
}

#[test]
fn the_cluster_ranks_names_by_prefix_for_every_lease() {
    let mut s = Story::new();
    let r = s.run(Command::SetLockOrder {
        prefixes: vec!["user/".into(), "cart/".into(), "inventory/".into()],
    });
    assert_eq!(r.response, Ok(Outcome::LockOrderSet));
    s.lease(1);
    s.token(1, "cart/7");
    assert_eq!(
        violation(&s.acquire(1, "user/7", 0)),
        ("user/7".into(), "cart/7".into())
    );
    s.token(1, "cart/8"); // same rank: free order
    s.token(1, "inventory/1");
    s.token(1, "misc"); // unranked: free for a lease without an order
    assert_eq!(s.table.rank(&name("misc")), None);
    // A waited-for lock counts like a held one.
    s.lease(2);
    s.token(2, "inventory/9");
    s.lease(3);
    s.acquire(3, "inventory/9", 1_000);
    assert_eq!(
        violation(&s.acquire(3, "cart/1", 0)),
        ("cart/1".into(), "inventory/9".into())
    );
    assert!(s.table.lease(id(3)).unwrap().holds.is_empty());
}

#[test]
fn a_lexicographic_lease_ranks_unranked_names_last() {
    let mut s = Story::new();
    s.run(Command::SetLockOrder {
        prefixes: vec!["z/".into()],
    });
    s.lease_with(1, LockOrder::Lexicographic, 0);
    s.token(1, "a");
    s.lease_with(2, LockOrder::Lexicographic, 0);
    s.token(2, "z/1");
    s.token(2, "b"); // z/ is ranked, so it comes before every unranked name
    assert_eq!(
        violation(&s.acquire(1, "z/2", 0)),
        ("z/2".into(), "a".into())
    );
}

#[test]
fn bad_prefix_lists_are_refused() {
    let mut s = Story::new();
    for prefixes in [
        vec![String::new()],
        vec!["a".into(), "a".into()],
        vec!["p".into(); 65],
    ] {
        let r = s.run(Command::SetLockOrder { prefixes });
        assert!(matches!(r.response, Err(Refusal::Invalid { .. })), "{r:?}");
    }
    assert!(s.table.lock_order().is_empty());
}

#[test]
fn a_retried_wait_is_not_an_order_violation() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::Lexicographic, 0);
    s.lease(2);
    s.token(2, "b");
    s.token(2, "c");
    s.acquire(1, "b", 1_000);
    s.acquire(1, "c", 1_000);
    assert!(matches!(
        s.acquire(1, "b", 5_000).response,
        Ok(Outcome::Queued { position: 0, .. })
    ));
}
