use std::cell::Cell;

use super::*;

const TTL: Duration = Duration::from_secs(5);

/// Live leases with their ttls, counting the leases the clock reads.
#[derive(Default)]
struct Table {
    leases: BTreeMap<LeaseId, Duration>,
    read: Cell<usize>,
}

impl Table {
    fn of(ids: impl IntoIterator<Item = u128>) -> Table {
        Table {
            leases: ids.into_iter().map(|n| (LeaseId(n), TTL)).collect(),
            read: Cell::new(0),
        }
    }

    /// How many leases the clock read since the last call.
    fn read(&self) -> usize {
        self.read.replace(0)
    }
}

impl LiveLeases for Table {
    fn each(&self) -> impl Iterator<Item = (LeaseId, Duration)> {
        self.leases.iter().map(|(id, ttl)| {
            self.read.set(self.read.get() + 1);
            (*id, *ttl)
        })
    }

    fn is_live(&self, lease_id: LeaseId) -> bool {
        self.read.set(self.read.get() + 1);
        self.leases.contains_key(&lease_id)
    }
}

#[tokio::test]
async fn a_lease_first_seen_gets_a_full_ttl() {
    let (clock, table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    let id = LeaseId(1);
    assert!(clock.take_due(1, &table, t0, 10).is_empty());
    assert!(clock.take_due(1, &table, t0 + TTL / 2, 10).is_empty());
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 10), vec![id]);
    // Marked expiring: not proposed twice, and keepalives are refused.
    assert!(clock.take_due(1, &table, t0 + TTL * 2, 10).is_empty());
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL * 2), Renewal::Expiring);
    // Raft refused the proposal before appending it: proposed again.
    clock.unmark(1, id);
    assert_eq!(clock.take_due(1, &table, t0 + TTL * 2, 10), vec![id]);
}

#[tokio::test]
async fn keepalive_pushes_the_deadline() {
    let (clock, table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    let id = LeaseId(1);
    clock.take_due(1, &table, t0, 10);
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL / 2), Renewal::Renewed);
    assert!(clock.take_due(1, &table, t0 + TTL, 10).is_empty());
    assert_eq!(clock.take_due(1, &table, t0 + TTL * 3 / 2, 10), vec![id]);
}

#[tokio::test]
async fn a_new_term_starts_every_lease_afresh() {
    let (clock, table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    let id = LeaseId(1);
    clock.take_due(1, &table, t0, 10);
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 10), vec![id]);
    // Term 2: the old deadline and the expiring mark are gone.
    assert!(clock.take_due(2, &table, t0 + TTL, 10).is_empty());
    assert_eq!(clock.renew(2, id, TTL, t0 + TTL), Renewal::Renewed);
    // A late call for term 1 changes nothing.
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL), Renewal::StaleTerm);
    assert!(clock.take_due(1, &table, t0 + TTL * 9, 10).is_empty());
    assert_eq!(clock.take_due(2, &table, t0 + TTL * 2, 10), vec![id]);
}

#[tokio::test]
async fn a_term_entered_by_a_keepalive_still_meets_every_lease() {
    let (clock, table) = (LeaseClock::default(), Table::of([1, 2]));
    let t0 = Instant::now();
    assert_eq!(clock.renew(1, LeaseId(1), TTL, t0), Renewal::Renewed);
    assert!(clock.take_due(1, &table, t0 + TTL / 2, 10).is_empty());
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 10), vec![LeaseId(1)]);
    let due = clock.take_due(1, &table, t0 + TTL * 3 / 2, 10);
    assert_eq!(due, vec![LeaseId(2)]);
}

#[tokio::test]
async fn ended_leases_are_forgotten_and_due_is_bounded() {
    let (clock, mut table) = (LeaseClock::default(), Table::of(0..5));
    let t0 = Instant::now();
    clock.take_due(1, &table, t0, 10);
    let due = clock.take_due(1, &table, t0 + TTL, 2);
    assert_eq!(due, vec![LeaseId(0), LeaseId(1)]);
    assert_eq!(clock.expiring_count(), 2);
    // Their expiries apply.
    for id in due {
        table.leases.remove(&id);
        clock.lease_ended(id);
    }
    assert_eq!((clock.expiring_count(), clock.known_count()), (0, 3));
    // Lease 2 is revoked, and the sweep runs before the news arrives: it
    // is forgotten, not proposed.
    table.leases.remove(&LeaseId(2));
    let due = clock.take_due(1, &table, t0 + TTL, 10);
    assert_eq!(due, vec![LeaseId(3), LeaseId(4)]);
    clock.lease_ended(LeaseId(2));
    assert_eq!((clock.expiring_count(), clock.known_count()), (2, 2));
}

#[tokio::test]
async fn the_earliest_deadlines_go_first_when_more_are_due() {
    let (clock, table) = (LeaseClock::default(), Table::of(0..4));
    let t0 = Instant::now();
    clock.take_due(1, &table, t0, 10);
    for (n, late) in [(0, 3), (1, 2), (2, 0), (3, 1)] {
        clock.renew(1, LeaseId(n), TTL, t0 + Duration::from_millis(late));
    }
    let due = clock.take_due(1, &table, t0 + TTL * 2, 2);
    assert_eq!(due, vec![LeaseId(2), LeaseId(3)], "in id order");
    let due = clock.take_due(1, &table, t0 + TTL * 2, 2);
    assert_eq!(due, vec![LeaseId(0), LeaseId(1)]);
}

#[tokio::test]
async fn a_lease_granted_after_the_walk_gets_a_full_ttl_from_the_next_sweep() {
    let (clock, mut table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    // A follower's clock keeps nothing: lease 9 is not met.
    clock.lease_granted(LeaseId(9), TTL);
    clock.take_due(1, &table, t0, 10);
    assert_eq!(clock.known_count(), 1);
    for n in [2, 3] {
        table.leases.insert(LeaseId(n), TTL);
        clock.lease_granted(LeaseId(n), TTL);
    }
    // Lease 3 is kept alive before the sweep meets it; news of a grant the
    // walk saw changes nothing.
    clock.renew(1, LeaseId(3), TTL, t0 + TTL * 3 / 4);
    clock.lease_granted(LeaseId(1), TTL);
    assert!(clock.take_due(1, &table, t0 + TTL / 2, 10).is_empty());
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 10), vec![LeaseId(1)]);
    assert!(clock
        .take_due(1, &table, t0 + TTL * 3 / 2 - MS, 10)
        .is_empty());
    let due = clock.take_due(1, &table, t0 + TTL * 7 / 4, 10);
    assert_eq!(due, vec![LeaseId(2), LeaseId(3)]);
}

#[tokio::test]
async fn a_lease_granted_and_ended_between_sweeps_is_never_met() {
    let (clock, table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    clock.take_due(1, &table, t0, 10);
    clock.lease_granted(LeaseId(2), TTL);
    clock.lease_ended(LeaseId(2));
    clock.take_due(1, &table, t0, 10);
    assert_eq!(clock.known_count(), 1);
}

#[tokio::test]
async fn a_replaced_table_is_walked_again() {
    let (clock, mut table) = (LeaseClock::default(), Table::of([1]));
    let t0 = Instant::now();
    clock.take_due(1, &table, t0, 10);
    // A backup restored: lease 2 came without a grant.
    table.leases = Table::of([1, 2]).leases;
    clock.table_replaced();
    assert!(clock.take_due(1, &table, t0 + TTL / 2, 10).is_empty());
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 10), vec![LeaseId(1)]);
    let due = clock.take_due(1, &table, t0 + TTL * 3 / 2, 10);
    assert_eq!(due, vec![LeaseId(2)]);
}

/// Leases of the crowd of [`a_sweep_reads_the_due_leases_only`].
const CROWD: u128 = 200_000;

#[tokio::test]
async fn a_sweep_reads_the_due_leases_only() {
    let (clock, mut table) = (LeaseClock::default(), Table::of(0..CROWD));
    let t0 = Instant::now();
    assert!(clock.take_due(1, &table, t0, 1_000).is_empty());
    assert_eq!(table.read(), CROWD as usize, "once per term, the walk");
    // Everyone keeps alive but three.
    let quiet = [LeaseId(7), LeaseId(70_000), LeaseId(199_999)];
    for id in table.leases.keys().filter(|id| !quiet.contains(id)) {
        clock.renew(1, *id, TTL, t0 + TTL / 2);
    }
    table.leases.insert(LeaseId(CROWD), TTL);
    clock.lease_granted(LeaseId(CROWD), TTL);
    for tick in 1..=9 {
        assert!(clock
            .take_due(1, &table, t0 + TTL * tick / 10, 1_000)
            .is_empty());
    }
    assert_eq!(table.read(), 0);
    assert_eq!(clock.take_due(1, &table, t0 + TTL, 1_000), quiet);
    assert_eq!(table.read(), quiet.len(), "one look each at the due ones");
    assert!(clock.take_due(1, &table, t0 + TTL, 1_000).is_empty());
    assert_eq!(table.read(), 0);
}

const MS: Duration = Duration::from_millis(1);
