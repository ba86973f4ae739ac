//! Stories of leases and locks: grants, queues, modes, deadlocks.

use super::story::{id, name, Story};
use crate::*;

#[test]
fn free_lock_is_granted_with_rising_tokens() {
    let mut s = Story::new();
    s.lease(1);
    let t1 = s.token(1, "a");
    let t2 = s.token(1, "b");
    assert_eq!(t1, FencingToken(1));
    assert_eq!(t2, FencingToken(2));
    s.release(1, "a");
    let t3 = s.token(1, "a");
    assert!(t3 > t2);
}

#[test]
fn acquiring_again_regrants_under_the_next_token() {
    let mut s = Story::new();
    s.lease(1);
    let first = s.token(1, "a");
    let again = s.token(1, "a");
    assert!(
        again > first,
        "a new grant, so no release of the old one ends it"
    );
    assert_eq!(s.table.last_token(), again);
    assert_eq!(s.holder("a"), Some(id(1)));
}

#[test]
fn held_lock_is_busy_without_wait() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    let t = s.token(1, "a");
    let r = s.acquire(2, "a", 0);
    assert_eq!(
        r.response,
        Err(Refusal::LockBusy {
            holder_token: Some(t)
        })
    );
    assert!(s.table.lock(&name("a")).unwrap().waiters.is_empty());
}

#[test]
fn waiters_are_granted_in_arrival_order() {
    let mut s = Story::new();
    for n in 1..=4 {
        s.lease(n);
    }
    s.token(1, "a");
    for n in 2..=4 {
        let r = s.acquire(n, "a", 5_000);
        assert!(
            matches!(r.response, Ok(Outcome::Queued { position, .. }) if position == (n - 2) as usize)
        );
    }
    let mut last = FencingToken(1);
    for (holder, next) in [(1, 2), (2, 3), (3, 4)] {
        let r = s.release(holder, "a");
        assert_eq!(r.response, Ok(Outcome::Released));
        match &r.events[..] {
            [Event::Granted { grant: g, .. }] => {
                assert_eq!(g.lease_id, id(next));
                assert!(g.fencing_token > last);
                last = g.fencing_token;
            }
            other => panic!("expected one grant, got {other:?}"),
        }
        assert_eq!(s.holder("a"), Some(id(next)));
    }
    s.release(4, "a");
    assert!(
        s.table.lock(&name("a")).is_none(),
        "a free lock leaves the table"
    );
}

#[test]
fn retried_wait_keeps_its_place() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "a");
    s.acquire(2, "a", 1_000);
    s.acquire(3, "a", 1_000);
    let r = s.acquire(2, "a", 9_000);
    assert!(matches!(
        r.response,
        Ok(Outcome::Queued { position: 0, .. })
    ));
    let waiter = &s.table.lock(&name("a")).unwrap().waiters[0];
    assert_eq!(waiter.deadline_ms, 1_000 + 9_000);
    // A try-lock from a queued lease is busy and leaves its wait alone.
    let r = s.acquire(2, "a", 0);
    assert_eq!(
        r.response,
        Err(Refusal::LockBusy {
            holder_token: Some(FencingToken(1))
        })
    );
    assert_eq!(s.table.lock(&name("a")).unwrap().position(id(2)), Some(0));
}

#[test]
fn release_by_other_lease_is_refused() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(1, "a");
    assert_eq!(s.release(2, "a").response, Err(Refusal::NotHolder));
    assert_eq!(s.release(2, "free").response, Err(Refusal::NotHolder));
    assert_eq!(s.release(9, "a").response, Err(Refusal::LeaseNotFound));
    assert_eq!(s.holder("a"), Some(id(1)));
}

#[test]
fn cancel_wait_removes_the_waiter_or_returns_the_grant() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "a");
    s.acquire(2, "a", 1_000);
    s.acquire(3, "a", 1_000);
    let r = s.run(Command::CancelWait {
        lease_id: id(3),
        name: name("a"),
        kind: Kind::Lock,
    });
    assert_eq!(r.response, Ok(Outcome::WaitCancelled));
    assert_eq!(s.table.lock(&name("a")).unwrap().waiters.len(), 1);
    // The grant wins the race: lease 2 is handed the lock before it cancels.
    s.release(1, "a");
    let r = s.run(Command::CancelWait {
        lease_id: id(2),
        name: name("a"),
        kind: Kind::Lock,
    });
    match r.response {
        Ok(Outcome::Granted(g)) => assert_eq!(g.lease_id, id(2)),
        other => panic!("expected the grant, got {other:?}"),
    }
}

#[test]
fn ending_a_lease_releases_and_hands_over() {
    for expire in [false, true] {
        let mut s = Story::new();
        for n in 1..=3 {
            s.lease(n);
        }
        s.token(1, "a");
        s.token(1, "b");
        s.token(3, "c");
        s.acquire(2, "a", 1_000);
        s.acquire(1, "c", 1_000);
        let command = if expire {
            Command::ExpireLease { lease_id: id(1) }
        } else {
            Command::RevokeLease { lease_id: id(1) }
        };
        let r = s.run(command);
        assert_eq!(
            r.response,
            Ok(Outcome::LeaseEnded {
                released: vec![name("a"), name("b")],
                released_semaphores: vec![],
                resigned: vec![],
            })
        );
        assert!(r.events.contains(&Event::WaitEnded {
            kind: Kind::Lock,
            lease_id: id(1),
            name: name("c")
        }));
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, Event::Granted { grant: g, .. } if g.lease_id == id(2) && g.name == name("a"))));
        assert_eq!(s.holder("a"), Some(id(2)));
        assert_eq!(s.holder("b"), None);
        assert!(s.table.lock(&name("c")).unwrap().waiters.is_empty());
        assert!(s.table.lease(id(1)).is_none());
        assert_eq!(s.acquire(1, "d", 0).response, Err(Refusal::LeaseNotFound));
    }
}

#[test]
fn lease_grant_checks_ttl_and_ids() {
    let mut s = Story::new();
    s.lease(1);
    let again = s.run(Command::GrantLease {
        lease_id: id(1),
        ttl_ms: 5,
        lock_order: LockOrder::None,
        lock_delay_ms: 0,
    });
    assert_eq!(again.response, Err(Refusal::LeaseExists));
    for ttl_ms in [0, TTL_MS_MAX + 1] {
        let r = s.run(Command::GrantLease {
            lease_id: id(2),
            ttl_ms,
            lock_order: LockOrder::None,
            lock_delay_ms: 0,
        });
        assert_eq!(r.response, Err(Refusal::InvalidTtl { max_ms: TTL_MS_MAX }));
    }
}

#[test]
fn time_never_goes_backwards() {
    let mut s = Story::new();
    s.now_ms = 5_000;
    s.lease(1);
    s.now_ms = 4_000;
    s.lease(2);
    assert_eq!(s.table.now_ms(), 5_000);
    assert_eq!(s.table.lease(id(2)).unwrap().granted_at_ms, 5_000);
}

#[test]
fn overdue_waiters_are_listed_by_deadline() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "a");
    s.acquire(2, "a", 500);
    s.acquire(3, "a", 100);
    assert_eq!(s.table.overdue_waiters(1_050), vec![]);
    assert_eq!(
        s.table.overdue_waiters(1_200),
        vec![(Kind::Lock, id(3), name("a"))]
    );
    assert_eq!(
        s.table.overdue_waiters(2_000),
        vec![
            (Kind::Lock, id(3), name("a")),
            (Kind::Lock, id(2), name("a"))
        ]
    );
}

#[test]
fn prefix_listing_stays_in_its_prefix() {
    let mut s = Story::new();
    s.lease(1);
    for lock in ["app/a", "app/b", "apq", "ap", "b"] {
        s.token(1, lock);
    }
    let names: Vec<_> = s
        .table
        .locks_with_prefix("app/")
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(names, ["app/a", "app/b"]);
    assert_eq!(s.table.locks_with_prefix("").count(), 5);
}

#[test]
fn names_and_ids_are_checked() {
    assert_eq!(LockName::new(""), Err(LockNameError::Empty));
    assert_eq!(
        LockName::new("a".repeat(513)),
        Err(LockNameError::TooLong(513))
    );
    assert!(LockName::new("a".repeat(512)).is_ok());
    assert_eq!(LockName::new("a\nb"), Err(LockNameError::ControlCharacter));
    assert!(serde_json::from_str::<LockName>("\"\"").is_err());
    let lease = id(0xabc);
    let text = lease.to_string();
    assert_eq!(text.len(), 32);
    assert_eq!(text.parse::<LeaseId>(), Ok(lease));
    assert!("xyz".parse::<LeaseId>().is_err());
    assert!(format!("{}g", &text[..31]).parse::<LeaseId>().is_err());
}

#[test]
fn waiters_per_lock_are_bounded() {
    let mut s = Story::new();
    s.lease(0);
    s.token(0, "a");
    for n in 1..=WAITERS_PER_LOCK_MAX as u128 {
        s.table.apply(Proposal {
            now_ms: 1,
            idempotency: None,
            caller: None,
            command: Command::GrantLease {
                lease_id: id(n),
                ttl_ms: 1,
                lock_order: LockOrder::None,
                lock_delay_ms: 0,
            },
        });
        s.table.apply(Proposal {
            now_ms: 1,
            idempotency: None,
            caller: None,
            command: Command::Acquire {
                lease_id: id(n),
                name: name("a"),
                mode: Mode::Exclusive,
                wait_ms: 1,
            },
        });
    }
    s.lease(u128::MAX);
    let r = s.acquire(u128::MAX, "a", 1);
    assert_eq!(
        r.response,
        Err(Refusal::LimitReached(Limit::WaitersPerLock))
    );
}

#[test]
fn snapshot_round_trip_keeps_everything() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "a");
    s.acquire(2, "a", 1_000);
    let bytes = serde_json::to_vec(&s.table).unwrap();
    let mut restored: LockTable = serde_json::from_slice(&bytes).unwrap();
    restored.rebuild_derived();
    restored.check_invariants().unwrap();
    assert_eq!(restored, s.table);
}

#[test]
fn shared_holders_coexist_and_each_take_a_token() {
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    let mut tokens = Vec::new();
    for n in 1..=2 {
        match s.acquire_mode(n, "doc", Mode::Shared, 0).response {
            Ok(Outcome::Granted(g)) => tokens.push(g.fencing_token),
            other => panic!("{other:?}"),
        }
    }
    assert!(tokens[0] < tokens[1]);
    assert_eq!(s.holders("doc"), vec![id(1), id(2)]);
    assert_eq!(s.holder("doc"), None, "no exclusive holder");
    let busy = s.acquire_mode(3, "doc", Mode::Exclusive, 0).response;
    assert_eq!(
        busy,
        Err(Refusal::LockBusy {
            holder_token: Some(tokens[1])
        })
    );
    let conflict = s.acquire_mode(1, "doc", Mode::Exclusive, 0).response;
    assert_eq!(conflict, Err(Refusal::ModeConflict { held: Mode::Shared }));
}

#[test]
fn a_waiting_writer_holds_back_later_readers() {
    let mut s = Story::new();
    for n in 1..=4 {
        s.lease(n);
    }
    s.acquire_mode(1, "doc", Mode::Shared, 0);
    assert!(matches!(
        s.acquire_mode(2, "doc", Mode::Exclusive, 1_000).response,
        Ok(Outcome::Queued { .. })
    ));
    // A reader behind the waiting writer waits too, though readers hold it.
    assert!(matches!(
        s.acquire_mode(3, "doc", Mode::Shared, 1_000).response,
        Ok(Outcome::Queued { position: 1, .. })
    ));
    assert_eq!(
        s.acquire_mode(4, "doc", Mode::Shared, 0).response,
        Err(Refusal::LockBusy {
            holder_token: Some(FencingToken(1))
        })
    );
    let r = s.release(1, "doc");
    assert!(
        matches!(&r.events[..], [Event::Granted { grant: g, .. }] if g.lease_id == id(2) && g.mode == Mode::Exclusive)
    );
    // The writer lets go: the reader behind it is granted.
    let r = s.release(2, "doc");
    assert!(
        matches!(&r.events[..], [Event::Granted { grant: g, .. }] if g.lease_id == id(3) && g.mode == Mode::Shared)
    );
}

#[test]
fn readers_queued_together_are_granted_together() {
    let mut s = Story::new();
    for n in 1..=4 {
        s.lease(n);
    }
    s.acquire_mode(1, "doc", Mode::Exclusive, 0);
    for n in 2..=3 {
        s.acquire_mode(n, "doc", Mode::Shared, 1_000);
    }
    s.acquire_mode(4, "doc", Mode::Exclusive, 1_000);
    let r = s.release(1, "doc");
    let granted: Vec<LeaseId> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Granted { grant: g, .. } => Some(g.lease_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        granted,
        vec![id(2), id(3)],
        "both readers, not the writer behind them"
    );
    assert_eq!(s.table.lock(&name("doc")).unwrap().waiters.len(), 1);
}

#[test]
fn the_classic_deadlock_is_refused_with_its_cycle() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.token(1, "user/7");
    s.token(2, "cart/7");
    assert!(matches!(
        s.acquire(1, "cart/7", 5_000).response,
        Ok(Outcome::Queued { .. })
    ));
    let refused = s.acquire(2, "user/7", 5_000).response;
    let expected = vec![
        WaitEdge {
            lease_id: id(2),
            waits_for: name("user/7"),
            held_by: id(1),
        },
        WaitEdge {
            lease_id: id(1),
            waits_for: name("cart/7"),
            held_by: id(2),
        },
    ];
    assert_eq!(refused, Err(Refusal::Deadlock { cycle: expected }));
    assert!(
        s.table.lock(&name("user/7")).unwrap().waiters.is_empty(),
        "nothing enqueued"
    );
    // Lease 2 lets go of cart/7: lease 1 is granted it at once.
    let r = s.release(2, "cart/7");
    assert!(matches!(&r.events[..], [Event::Granted { grant: g, .. }] if g.lease_id == id(1)));
}

#[test]
fn a_cycle_through_a_queue_is_refused_too() {
    // Lease 3 waits behind lease 2 for a; lease 2 holds b. Lease 2 may not
    // wait for what lease 3 holds: lease 3 cannot pass lease 2 in a's queue.
    let mut s = Story::new();
    for n in 1..=3 {
        s.lease(n);
    }
    s.token(1, "a");
    s.token(2, "b");
    s.token(3, "c");
    s.acquire(2, "a", 5_000);
    s.acquire(3, "a", 5_000);
    let refused = s.acquire(2, "c", 5_000).response;
    assert!(
        matches!(refused, Err(Refusal::Deadlock { ref cycle }) if cycle.len() == 2),
        "{refused:?}"
    );
}
