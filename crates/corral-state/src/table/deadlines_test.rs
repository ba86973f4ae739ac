//! The deadline index at the scale it is for: the sweep's queries look at
//! what is due, not at everything that waits.

use super::super::story::{id, name, Story};
use super::VISITED;
use crate::*;

/// Semaphores the crowd waits on, each held by one lease.
const SEMAPHORES: u128 = 100;
/// Leases that wait a minute on one of the semaphores.
const CROWD: u128 = 200_000;
/// Leases of the crowd that wait one second only.
const SHORT_WAITS: [u128; 3] = [SEMAPHORES + 7, SEMAPHORES + 70_000, SEMAPHORES + 199_999];
/// Locks under a minute's lock-delay, and one under a second's.
const DELAYED_LOCKS: u128 = 100;
/// State-machine time of the crowd.
const T0: u64 = 1_000;

fn sem(n: u128) -> LockName {
    LockName::new(format!("sem-{}", n % SEMAPHORES)).expect("a name")
}

fn delayed_lock(n: u128) -> LockName {
    LockName::new(format!("delayed-{n}")).expect("a name")
}

fn run(table: &mut LockTable, now_ms: u64, command: Command) -> Applied {
    let applied = table.apply(Proposal::new(now_ms, command));
    assert!(applied.response.is_ok(), "{:?}", applied.response);
    applied
}

fn grant(table: &mut LockTable, n: u128, lock_delay_ms: u64) {
    let grant = Command::GrantLease {
        lease_id: LeaseId(n),
        ttl_ms: 60_000,
        lock_order: LockOrder::None,
        lock_delay_ms,
    };
    run(table, T0, grant);
}

/// [`CROWD`] waits (all of a minute but [`SHORT_WAITS`]) on
/// [`SEMAPHORES`] held semaphores, and [`DELAYED_LOCKS`] locks under
/// lock-delay (all of a minute but the first, of a second), at [`T0`].
fn crowded() -> LockTable {
    let mut table = LockTable::new();
    for n in 0..SEMAPHORES + CROWD {
        grant(&mut table, n, 0);
        let wait_ms = if SHORT_WAITS.contains(&n) {
            1_000
        } else {
            60_000
        };
        let acquire = Command::AcquirePermits {
            lease_id: LeaseId(n),
            name: sem(n),
            limit: 1,
            permits: 1,
            wait_ms,
        };
        run(&mut table, T0, acquire);
    }
    let holder = SEMAPHORES + CROWD;
    for n in 0..DELAYED_LOCKS {
        let lease_id = LeaseId(holder + n);
        grant(&mut table, lease_id.0, if n == 0 { 1_000 } else { 60_000 });
        let acquire = Command::Acquire {
            lease_id,
            name: delayed_lock(n),
            mode: Mode::Exclusive,
            wait_ms: 0,
        };
        run(&mut table, T0, acquire);
        run(&mut table, T0, Command::ExpireLease { lease_id });
    }
    table
}

/// What `query` returns, and how many index entries it looked at.
fn visited_by<T>(query: impl FnOnce() -> T) -> (T, usize) {
    VISITED.with(|visited| visited.set(0));
    let answer = query();
    (answer, VISITED.with(std::cell::Cell::get))
}

#[test]
fn a_tick_over_200_000_waits_looks_at_the_due_ones_only() {
    let mut table = crowded();
    assert_eq!(table.walked_deadlines(), table.deadlines);
    let sweep_at = T0 + 1_001;
    let (overdue, visited) = visited_by(|| table.overdue_waiters(sweep_at));
    let expected: Vec<_> = SHORT_WAITS
        .iter()
        .map(|n| (Kind::Semaphore, LeaseId(*n), sem(*n)))
        .collect();
    assert_eq!(overdue, expected);
    assert_eq!(visited, SHORT_WAITS.len() + 1, "the due ones and the next");
    assert_eq!(
        visited_by(|| table.has_due_lock_delays(sweep_at)),
        (true, 1)
    );
    let applied = run(&mut table, sweep_at, Command::LiftLockDelays);
    assert_eq!(
        applied.response,
        Ok(Outcome::DelaysLifted { count: 1 }),
        "the one-second delay, alone"
    );
    assert_eq!(
        visited_by(|| table.has_due_lock_delays(sweep_at)),
        (false, 1)
    );

    // The sweep cancels the overdue waits; a holder lets go and its
    // semaphore's queue moves on: the index follows.
    for (kind, lease_id, name) in overdue {
        run(
            &mut table,
            sweep_at,
            Command::CancelWait {
                lease_id,
                name,
                kind,
            },
        );
    }
    let release = Command::Release {
        lease_id: LeaseId(0),
        name: sem(0),
        kind: Kind::Semaphore,
        fencing_token: None,
    };
    run(&mut table, sweep_at, release);
    let (overdue, visited) = visited_by(|| table.overdue_waiters(sweep_at));
    assert_eq!((overdue, visited), (Vec::new(), 1));
    assert_eq!(table.walked_deadlines(), table.deadlines);
}

#[test]
fn a_lock_delay_pushed_later_is_due_at_its_new_end_only() {
    let mut s = Story::new();
    s.lease_with(1, LockOrder::None, 1_000);
    s.lease_with(2, LockOrder::None, 1_000);
    s.acquire_mode(1, "a", Mode::Shared, 0);
    s.acquire_mode(2, "a", Mode::Shared, 0);
    s.run(Command::ExpireLease { lease_id: id(1) });
    s.now_ms += 500;
    s.run(Command::ExpireLease { lease_id: id(2) });
    assert_eq!(s.table.lock(&name("a")).unwrap().delayed_until_ms, 2_500);
    assert!(!s.table.has_due_lock_delays(2_499));
    assert!(s.table.has_due_lock_delays(2_500));
}
