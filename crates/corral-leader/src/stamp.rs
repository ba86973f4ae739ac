//! The `now_ms` of a proposal: state-machine time in the leader's term.

use std::time::Duration;

use corral_raft::{AppliedState, LeaderId, Replica, StateMachineStore};
use tokio::time::Instant;

use crate::SmClock;

/// State-machine time now in leader term `leader`, anchoring the term's
/// clock if `state` has applied an entry of it (see [`SmClock`]); `None`
/// before that, or when `leader` is stale. `wall_ms` is read only to anchor
/// a fresh cluster.
pub fn sm_now_ms_in(
    clock: &SmClock,
    leader: &LeaderId,
    state: &AppliedState,
    wall_ms: impl FnOnce() -> u64,
) -> Option<u64> {
    let ready = state
        .last_applied
        .as_ref()
        .is_some_and(|id| id.leader_id == *leader);
    clock.now_ms(
        leader.term,
        ready,
        state.table.now_ms(),
        wall_ms,
        Instant::now(),
    )
}

/// The `now_ms` of a proposal in term `leader`. A new leader waits (at
/// most `wait`) for its term's blank entry to apply, which anchors the
/// clock; if it never does, the table's time, which stands still and so
/// ends nothing early (the write bound to a lost term is refused anyway).
pub async fn stamp_ms(
    replica: &Replica,
    store: &StateMachineStore,
    clock: &SmClock,
    leader: &LeaderId,
    wall_ms: impl Fn() -> u64,
    wait: Duration,
) -> u64 {
    if let Some(now_ms) = sm_now_ms_in(clock, leader, &store.read(), &wall_ms) {
        return now_ms;
    }
    let term = leader.term;
    if let Err(e) = replica.wait_applied_term(term, wait).await {
        tracing::debug!(error = %e, term, "proposing before the term's blank entry applied");
    }
    let state = store.read();
    sm_now_ms_in(clock, leader, &state, &wall_ms).unwrap_or_else(|| state.table.now_ms())
}
