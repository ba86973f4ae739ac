//! Semaphores: permits up to a limit, FIFO waiting, limits that must agree.

use super::story::{id, name, Story};
use crate::*;

fn granted(applied: &Applied) -> Grant {
    match &applied.response {
        Ok(Outcome::Granted(g)) => g.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn permits_are_granted_up_to_the_limit_each_with_a_token() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    let a = granted(&s.permits(1, "pool", 3, 2, 0));
    let b = granted(&s.permits(2, "pool", 3, 1, 0));
    assert_eq!((a.permits, b.permits), (2, 1));
    assert!(b.fencing_token > a.fencing_token);
    assert_eq!(s.table.semaphore(&name("pool")).unwrap().permits_held(), 3);
    let busy = s.permits(3, "pool", 3, 1, 0).response;
    assert_eq!(
        busy,
        Err(Refusal::LockBusy {
            holder_token: Some(b.fencing_token)
        })
    );
    // Acquiring again with the same permits re-grants them under a new
    // token.
    let again = granted(&s.permits(1, "pool", 3, 2, 0));
    assert_eq!((again.permits, again.lease_id), (a.permits, a.lease_id));
    assert!(again.fencing_token > b.fencing_token);
    assert_eq!(
        s.permits(1, "pool", 3, 1, 0).response,
        Err(Refusal::PermitsConflict { held: 2 })
    );
    assert!(
        s.table.lock(&name("pool")).is_none(),
        "locks are another namespace"
    );
}

#[test]
fn the_first_acquire_fixes_the_limit_until_the_semaphore_is_free() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    granted(&s.permits(1, "pool", 2, 1, 0));
    assert_eq!(
        s.permits(2, "pool", 5, 1, 0).response,
        Err(Refusal::LimitMismatch { limit: 2 })
    );
    s.release_permits(1, "pool");
    assert!(s.table.semaphore(&name("pool")).is_none());
    granted(&s.permits(2, "pool", 5, 4, 0));
    for (limit, permits) in [(0, 1), (SEMAPHORE_LIMIT_MAX + 1, 1), (5, 0), (5, 6)] {
        let r = s.permits(1, "other", limit, permits, 0).response;
        assert!(
            matches!(r, Err(Refusal::Invalid { .. })),
            "{limit} {permits}: {r:?}"
        );
    }
}

#[test]
fn waiters_are_granted_in_order_when_enough_permits_free_up() {
    let mut s = Story::new();
    for n in 1..=4 {
        s.lease(n);
    }
    granted(&s.permits(1, "pool", 3, 2, 0));
    granted(&s.permits(2, "pool", 3, 1, 0));
    // Lease 3 wants 2 and waits; lease 4 wants 1, which would fit after
    // one release, but does not pass lease 3.
    assert!(matches!(
        s.permits(3, "pool", 3, 2, 1_000).response,
        Ok(Outcome::Queued { position: 0, .. })
    ));
    assert!(matches!(
        s.permits(4, "pool", 3, 1, 1_000).response,
        Ok(Outcome::Queued { position: 1, .. })
    ));
    let r = s.release_permits(2, "pool");
    assert!(
        r.events.is_empty(),
        "1 free permit: lease 3 needs 2 and lease 4 waits behind it"
    );
    let r = s.release_permits(1, "pool");
    let granted: Vec<(LeaseId, u32)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Granted {
                kind: Kind::Semaphore,
                grant,
            } => Some((grant.lease_id, grant.permits)),
            _ => None,
        })
        .collect();
    assert_eq!(granted, vec![(id(3), 2), (id(4), 1)]);
}

#[test]
fn an_ended_lease_frees_its_permits() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    granted(&s.permits(1, "pool", 1, 1, 0));
    s.permits(2, "pool", 1, 1, 1_000);
    let r = s.run(Command::ExpireLease { lease_id: id(1) });
    assert_eq!(
        r.response,
        Ok(Outcome::LeaseEnded {
            released: vec![],
            released_semaphores: vec![name("pool")],
            resigned: vec![],
        })
    );
    assert!(
        matches!(&r.events[..], [Event::Granted { kind: Kind::Semaphore, grant }] if grant.lease_id == id(2))
    );
}

#[test]
fn a_semaphore_wait_is_not_a_deadlock_edge() {
    // Lease 1 holds lock x and waits for the semaphore that leases 2 and 3
    // hold; lease 2 may still wait for x: lease 3's release lets lease 1 on.
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "x");
    granted(&s.permits(2, "pool", 2, 1, 0));
    granted(&s.permits(3, "pool", 2, 1, 0));
    assert!(matches!(
        s.permits(1, "pool", 2, 1, 1_000).response,
        Ok(Outcome::Queued { .. })
    ));
    assert!(matches!(
        s.acquire(2, "x", 1_000).response,
        Ok(Outcome::Queued { .. })
    ));
    let r = s.release_permits(3, "pool");
    assert!(matches!(&r.events[..], [Event::Granted { grant, .. }] if grant.lease_id == id(1)));
}
