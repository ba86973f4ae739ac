use std::cell::Cell;

use corral_state::{Command, LeaseId, LockName, LockTable, Mode, Proposal};

use crate::metrics::{held_and_waiting, ReadTable, LOCKS_PER_READ_MAX};
use corral_state::Kind;

/// A table of `leases` leases, each holding a lock of its own, and one
/// more lease waiting for the first lock.
fn table_of(leases: usize) -> LockTable {
    let mut table = LockTable::default();
    let now_ms = 1_700_000_000_000;
    let mut apply = |command| {
        let applied = table.apply(Proposal::new(now_ms, command));
        assert!(applied.response.is_ok(), "{:?}", applied.response);
    };
    let grant = |lease_id| Command::GrantLease {
        lease_id,
        ttl_ms: 60_000,
        lock_order: Default::default(),
        lock_delay_ms: 0,
    };
    let acquire = |lease_id, name: LockName, wait_ms| Command::Acquire {
        lease_id,
        name,
        mode: Mode::Exclusive,
        wait_ms,
    };
    let name = |i: usize| LockName::new(format!("invoice/{i:06}")).unwrap();
    for i in 0..leases {
        let lease_id = LeaseId(i as u128 + 1);
        apply(grant(lease_id));
        apply(acquire(lease_id, name(i), 0));
    }
    let waiter = LeaseId(leases as u128 + 1);
    apply(grant(waiter));
    apply(acquire(waiter, name(0), 60_000));
    table
}

/// A table that counts its reads.
struct Counted {
    table: LockTable,
    reads: Cell<usize>,
}

impl Counted {
    fn new(table: LockTable) -> Counted {
        let reads = Cell::new(0);
        Counted { table, reads }
    }
}

impl ReadTable for Counted {
    fn read_table<T>(&self, read: impl FnOnce(&LockTable) -> T) -> T {
        self.reads.set(self.reads.get() + 1);
        read(&self.table)
    }
}

#[test]
fn the_lock_counts_are_walked_a_bounded_chunk_per_read() {
    let leases = 2 * LOCKS_PER_READ_MAX + 7;
    let table = Counted::new(table_of(leases));
    assert_eq!(held_and_waiting(&table, Kind::Lock), (leases as u64, 1));
    // Three chunks, each under a read of its own.
    assert_eq!(table.reads.get(), 3);
    assert_eq!(held_and_waiting(&table, Kind::Semaphore), (0, 0));
}

#[test]
fn a_count_of_exactly_one_chunk_ends_with_an_empty_read() {
    let table = Counted::new(table_of(LOCKS_PER_READ_MAX));
    let held = LOCKS_PER_READ_MAX as u64;
    assert_eq!(held_and_waiting(&table, Kind::Lock), (held, 1));
    assert_eq!(table.reads.get(), 2);
}
