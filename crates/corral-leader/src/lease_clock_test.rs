use super::*;

const TTL: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_lease_first_seen_gets_a_full_ttl() {
    let clock = LeaseClock::default();
    let t0 = Instant::now();
    let id = LeaseId(1);
    assert!(clock
        .take_due(1, [(id, TTL)].into_iter(), t0, 10)
        .is_empty());
    assert!(clock
        .take_due(1, [(id, TTL)].into_iter(), t0 + TTL / 2, 10)
        .is_empty());
    assert_eq!(
        clock.take_due(1, [(id, TTL)].into_iter(), t0 + TTL, 10),
        vec![id]
    );
    // Marked expiring: not proposed twice, and keepalives are refused.
    assert!(clock
        .take_due(1, [(id, TTL)].into_iter(), t0 + TTL * 2, 10)
        .is_empty());
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL * 2), Renewal::Expiring);
    // Raft refused the proposal before appending it: proposed again.
    clock.unmark(1, id);
    assert_eq!(
        clock.take_due(1, [(id, TTL)].into_iter(), t0 + TTL * 2, 10),
        vec![id]
    );
}

#[tokio::test]
async fn keepalive_pushes_the_deadline() {
    let clock = LeaseClock::default();
    let t0 = Instant::now();
    let id = LeaseId(1);
    clock.take_due(1, [(id, TTL)].into_iter(), t0, 10);
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL / 2), Renewal::Renewed);
    assert!(clock
        .take_due(1, [(id, TTL)].into_iter(), t0 + TTL, 10)
        .is_empty());
    assert_eq!(
        clock.take_due(1, [(id, TTL)].into_iter(), t0 + TTL * 3 / 2, 10),
        vec![id]
    );
}

#[tokio::test]
async fn a_new_term_starts_every_lease_afresh() {
    let clock = LeaseClock::default();
    let t0 = Instant::now();
    let id = LeaseId(1);
    clock.take_due(1, [(id, TTL)].into_iter(), t0, 10);
    assert_eq!(
        clock.take_due(1, [(id, TTL)].into_iter(), t0 + TTL, 10),
        vec![id]
    );
    // Term 2: the old deadline and the expiring mark are gone.
    assert!(clock
        .take_due(2, [(id, TTL)].into_iter(), t0 + TTL, 10)
        .is_empty());
    assert_eq!(clock.renew(2, id, TTL, t0 + TTL), Renewal::Renewed);
    // A late call for term 1 changes nothing.
    assert_eq!(clock.renew(1, id, TTL, t0 + TTL), Renewal::StaleTerm);
    assert!(clock
        .take_due(1, [(id, TTL)].into_iter(), t0 + TTL * 9, 10)
        .is_empty());
    assert_eq!(
        clock.take_due(2, [(id, TTL)].into_iter(), t0 + TTL * 2, 10),
        vec![id]
    );
}

#[tokio::test]
async fn gone_leases_are_forgotten_and_due_is_bounded() {
    let clock = LeaseClock::default();
    let t0 = Instant::now();
    let ids: Vec<_> = (0..5).map(LeaseId).collect();
    clock.take_due(1, ids.iter().map(|id| (*id, TTL)), t0, 10);
    let due = clock.take_due(1, ids.iter().map(|id| (*id, TTL)), t0 + TTL, 2);
    assert_eq!(due.len(), 2);
    assert_eq!(clock.expiring_count(), 2);
    clock.take_due(1, std::iter::empty(), t0 + TTL, 2);
    assert_eq!(clock.expiring_count(), 0);
}
