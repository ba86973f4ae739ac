use corral_state::{Command, Proposal};

use super::*;

fn run(table: &mut LockTable, command: Command) {
    let applied = table.apply(Proposal::new(1, command));
    assert!(applied.response.is_ok(), "{applied:?}");
}

fn name(s: &str) -> LockName {
    LockName::new(s).unwrap()
}

fn notice(events: Vec<Event>) -> Notice<'static> {
    Notice::Applied {
        events,
        ended: Vec::new(),
        expired_lease: None,
        lease_change: None,
        queue: Default::default(),
    }
}

#[test]
fn events_wake_the_matching_waits_only() {
    let registry = WaitRegistry::default();
    let mut a = registry.register(Kind::Lock, LeaseId(1), &[name("x")]);
    let mut b = registry.register(Kind::Lock, LeaseId(2), &[name("x")]);
    let mut c = registry.register(Kind::Semaphore, LeaseId(2), &[name("x")]);
    registry.notify(notice(vec![Event::WaitEnded {
        kind: Kind::Lock,
        lease_id: LeaseId(2),
        name: name("x"),
    }]));
    assert!(matches!(b.ended.try_recv(), Ok(WaitEnd::LeaseEnded)));
    assert!(a.ended.try_recv().is_err(), "lease 1 still waits");
    assert!(
        c.ended.try_recv().is_err(),
        "a semaphore of the same name is another wait"
    );
    assert_eq!(registry.len(), 3, "tickets stay until dropped");
    drop(a);
    drop(b);
    drop(c);
    assert!(registry.is_empty(), "a dropped ticket unregisters");
}

#[test]
fn an_acquire_all_grant_wakes_its_request_once() {
    let registry = WaitRegistry::default();
    let mut all = registry.register(Kind::Lock, LeaseId(1), &[name("x"), name("y")]);
    let mut table = LockTable::new();
    run(
        &mut table,
        Command::GrantLease {
            lease_id: LeaseId(1),
            ttl_ms: 1_000,
            lock_order: Default::default(),
            lock_delay_ms: 0,
        },
    );
    let applied = table.apply(Proposal {
        now_ms: 1,
        idempotency: None,
        caller: None,
        command: Command::AcquireAll {
            lease_id: LeaseId(1),
            names: vec![name("x"), name("y")],
            mode: Default::default(),
            wait_ms: 0,
        },
    });
    let Ok(corral_state::Outcome::GrantedAll { grants }) = applied.response else {
        panic!("{applied:?}");
    };
    registry.notify(notice(vec![Event::GrantedAll(grants)]));
    assert!(matches!(all.ended.try_recv(), Ok(WaitEnd::Granted(g)) if g.len() == 2));
    assert!(all.ended.try_recv().is_err(), "one wake, not one per name");
}

#[test]
fn a_restored_table_wakes_granted_and_ended_waits() {
    let mut table = LockTable::new();
    for id in [1, 3] {
        run(
            &mut table,
            Command::GrantLease {
                lease_id: LeaseId(id),
                ttl_ms: 1_000,
                lock_order: Default::default(),
                lock_delay_ms: 0,
            },
        );
    }
    for (lease, lock, wait_ms) in [(1, "x", 0), (1, "y", 0), (3, "y", 100)] {
        let command = Command::Acquire {
            lease_id: LeaseId(lease),
            name: name(lock),
            mode: Default::default(),
            wait_ms,
        };
        run(&mut table, command);
    }
    let registry = WaitRegistry::default();
    let mut granted = registry.register(Kind::Lock, LeaseId(1), &[name("x"), name("y")]);
    let mut ended = registry.register(Kind::Lock, LeaseId(2), &[name("x")]);
    let mut waiting = registry.register(Kind::Lock, LeaseId(3), &[name("y")]);
    registry.notify(Notice::Restored(&table));
    assert!(
        matches!(granted.ended.try_recv(), Ok(WaitEnd::Granted(g)) if g.len() == 2 && g[0].lease_id == LeaseId(1))
    );
    assert!(matches!(ended.ended.try_recv(), Ok(WaitEnd::LeaseEnded)));
    assert!(
        waiting.ended.try_recv().is_err(),
        "lease 3 still waits for y"
    );
}
