//! The checks at the end of a run, once every fault has healed: the
//! cluster serves again within a bound, the replicas catch up and agree,
//! each table keeps its invariants, nothing a client was told was applied
//! is missing, and each lock's history is linearizable.

use std::time::Duration;

use corral_check::{check, FencedMutex, MutexInput, Operation, SearchBudget, Verdict};
use corral_state::{Command, LeaseId, LockName, LockOrder};

use crate::workload::World;

/// How long a healed cluster may take to serve a write again.
const SERVE_WITHIN: Duration = Duration::from_secs(60);
/// How long the replicas may take to apply the same log.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);
/// How much the linearizability search of one lock may explore. A run's
/// lock history of a few hundred operations needs far less; one that
/// needs more is reported in the trace as undecided, not as a failure.
const SEARCH_STATES_MAX: u64 = 300_000;
/// The client number of the expiries in a lock history.
const SERVER: u64 = u64::MAX;

/// Heals everything, then checks; violations go into the history.
pub(crate) async fn heal_and_check(world: &World) {
    world.history.trace("heal: every fault ends");
    world.cluster.net.heal();
    for id in world.cluster.ids() {
        world.cluster.boot(id).await;
        world
            .cluster
            .set_sync_ms_max(id, crate::cluster::SYNC_MS_MAX);
    }
    if !serves_again(world).await {
        let within = SERVE_WITHIN.as_secs();
        world
            .history
            .violation(format!("no write was served within {within} s of healing"));
        return;
    }
    if !caught_up(world).await {
        world
            .history
            .violation("the replicas did not reach the same applied index");
        return;
    }
    replicas_agree(world);
    nothing_acked_is_lost(world);
    locks_are_linearizable(world);
}

/// Whether a write is applied within [`SERVE_WITHIN`].
async fn serves_again(world: &World) -> bool {
    let deadline = tokio::time::Instant::now() + SERVE_WITHIN;
    while tokio::time::Instant::now() < deadline {
        let command = Command::GrantLease {
            lease_id: LeaseId(u128::from(world.rng.next_u64())),
            ttl_ms: 60_000,
            lock_order: LockOrder::default(),
            lock_delay_ms: 0,
        };
        let key = format!("heal-{}", world.rng.next_u64());
        if world.write_known(command, key).await {
            world.history.trace("heal: a write was served");
            return true;
        }
    }
    false
}

/// Whether every node has applied the same last entry, within
/// [`CATCH_UP_WITHIN`].
async fn caught_up(world: &World) -> bool {
    let deadline = tokio::time::Instant::now() + CATCH_UP_WITHIN;
    while tokio::time::Instant::now() < deadline {
        let applied: Vec<_> = world
            .cluster
            .ids()
            .into_iter()
            .map(|id| world.cluster.read(id, |s| s.last_applied))
            .collect();
        if applied.windows(2).all(|w| w[0] == w[1]) && applied[0].is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Every replica's table is the same, and keeps every invariant.
fn replicas_agree(world: &World) {
    let tables: Vec<(u64, String)> = world
        .cluster
        .ids()
        .into_iter()
        .filter_map(|id| {
            world.cluster.read(id, |state| {
                if let Err(broken) = state.table.check_invariants() {
                    world.history.violation(format!("n{id}'s table: {broken}"));
                }
                (id, serde_json::to_string(&state.table).unwrap_or_default())
            })
        })
        .collect();
    for pair in tables.windows(2) {
        if pair[0].1 != pair[1].1 {
            let (a, b) = (pair[0].0, pair[1].0);
            world.history.violation(format!(
                "n{a} and n{b} applied the same log to different tables"
            ));
        }
    }
}

/// The cluster's token counter is past every acked grant, and each
/// register holds a token no older than any write acked to it.
fn nothing_acked_is_lost(world: &World) {
    let Some(id) = world.cluster.ids().first().copied() else {
        return;
    };
    let lost: Vec<String> = world
        .cluster
        .read(id, |state| {
            let last = state.table.last_token().0;
            let grants = world.history.grants().into_iter();
            let lost_grants = grants.filter(|g| g.token > last).map(|g| {
                format!(
                    "grant of {} under {} (the counter is at {last})",
                    g.lock, g.token
                )
            });
            let puts = world.history.puts().into_iter();
            let lost_puts = puts.filter_map(|put| {
                let key = LockName::new(put.key.clone()).ok()?;
                let stored = state
                    .table
                    .fenced_value(&key)
                    .map_or(0, |v| v.fencing_token.0);
                (stored < put.token).then(|| {
                    format!(
                        "write of {} under {} (it holds {stored})",
                        put.key, put.token
                    )
                })
            });
            lost_grants.chain(lost_puts).collect()
        })
        .unwrap_or_default();
    for what in lost {
        world.history.violation(format!("acked and lost: {what}"));
    }
}

/// Each lock's history, as its clients saw it, is one a single correct
/// fenced mutex could have given. A lease may expire at any time after its
/// proven deadline: its expiry enters each history as an operation of
/// unknown outcome invoked then.
fn locks_are_linearizable(world: &World) {
    let (lock_ops, proven_until_us) = world.history.lock_ops();
    for (lock, mut ops) in lock_ops {
        let expiries = proven_until_us.iter().map(|(&lease, &until_us)| {
            Operation::unknown(SERVER, until_us, MutexInput::Expire { lease })
        });
        ops.extend(expiries);
        let verdict = check(&FencedMutex, &ops, SearchBudget::states(SEARCH_STATES_MAX));
        match verdict {
            Verdict::Linearizable { .. } => {}
            Verdict::Unknown { explored } => world.history.trace(format!(
                "lock {lock}: linearizability undecided after {explored} states"
            )),
            Verdict::Violation { stuck_at, .. } => {
                let stuck: Vec<String> =
                    stuck_at.iter().map(|&i| format!("{:?}", ops[i])).collect();
                world.history.violation(format!(
                    "lock {lock}: its history of {} operations is not linearizable; stuck at {}",
                    ops.len(),
                    stuck.join(", ")
                ));
            }
        }
    }
}
