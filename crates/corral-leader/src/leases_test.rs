use corral_state::{Command, LockOrder, Proposal};

use super::*;

const TTL_MS: u64 = 5_000;

/// An applied state holding leases 1 and 2.
fn state_with_two_leases() -> AppliedState {
    let mut state = AppliedState::default();
    for id in [1, 2] {
        let grant = Command::GrantLease {
            lease_id: LeaseId(id),
            ttl_ms: TTL_MS,
            lock_order: LockOrder::default(),
            lock_delay_ms: 0,
        };
        state.table.apply(Proposal {
            now_ms: 1_000,
            command: grant,
            idempotency: None,
            caller: None,
        });
    }
    state
}

#[tokio::test]
async fn a_keepalive_renews_live_leases_and_refuses_gone_or_expiring_ones() {
    let (clock, state) = (LeaseClock::default(), state_with_two_leases());
    let t0 = Instant::now();
    let ttl = Duration::from_millis(TTL_MS);
    // First seen: a full ttl from now.
    assert!(due_leases(&clock, 1, &state, t0, 10).is_empty());
    let renewed = renew_leases(&clock, 1, &state, &[LeaseId(2)], t0 + ttl / 2);
    assert_eq!(renewed, Some(vec![Some(TTL_MS)]));
    // Lease 1 is due, lease 2 was renewed: only 1 is marked expiring.
    assert_eq!(
        due_leases(&clock, 1, &state, t0 + ttl, 10),
        vec![LeaseId(1)]
    );
    let ids = [LeaseId(1), LeaseId(2), LeaseId(3)];
    let renewed = renew_leases(&clock, 1, &state, &ids, t0 + ttl);
    assert_eq!(renewed, Some(vec![None, Some(TTL_MS), None]));
}

#[tokio::test]
async fn a_keepalive_in_an_older_term_changes_nothing() {
    let (clock, state) = (LeaseClock::default(), state_with_two_leases());
    let t0 = Instant::now();
    assert!(due_leases(&clock, 2, &state, t0, 10).is_empty());
    assert_eq!(renew_leases(&clock, 1, &state, &[LeaseId(1)], t0), None);
    let ttl = Duration::from_millis(TTL_MS);
    assert_eq!(due_leases(&clock, 2, &state, t0 + ttl, 1), vec![LeaseId(1)]);
}
