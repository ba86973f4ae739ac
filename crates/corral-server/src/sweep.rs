//! The leader's sweep: expires leases whose deadline passed, cancels waits
//! whose request is gone, lifts lock-delays that ran out, and writes the
//! configured lock order into the replicated state.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_state::{Command, Kind, LeaseId, LockName, Response};
use tokio::time::Instant;

use crate::node::{wall_clock_ms, Attempt, Node};

/// How often the leader looks for due leases.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// The most expiries proposed in one sweep; the rest wait for the next.
pub const EXPIRIES_PER_SWEEP_MAX: usize = 1_000;
/// How long past its deadline a wait is left to the request that asked for
/// it before the leader cancels it (the request's node may have died).
pub const ORPHAN_WAIT_GRACE_MS: u64 = 2_000;
/// The most orphaned waits cancelled in one sweep.
pub const CANCELS_PER_SWEEP_MAX: usize = 100;

/// Orphaned waits whose cancel is in flight, so that a slow commit does not
/// get the same cancel proposed again every sweep.
type Cancelling = Arc<Mutex<HashSet<(Kind, LeaseId, LockName)>>>;

/// What the sweep has proposed and not yet seen answered, so that a slow
/// commit does not get the same command proposed again every sweep.
#[derive(Default)]
struct InFlight {
    cancelling: Cancelling,
    lifting: Arc<AtomicBool>,
    ordering: Arc<AtomicBool>,
}

/// Runs the sweep until the process ends.
pub async fn run(node: Arc<Node>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = InFlight::default();
    loop {
        tick.tick().await;
        sweep(&node, &in_flight);
    }
}

fn sweep(node: &Arc<Node>, in_flight: &InFlight) {
    let Some(term) = node.leader_term() else {
        node.clock.clear();
        return;
    };
    let cancelling = &in_flight.cancelling;
    let (due, orphaned, lift, reorder) = {
        let state = node.state.read();
        let live = state
            .table
            .leases()
            .map(|(id, lease)| (*id, Duration::from_millis(lease.ttl_ms)));
        let due = node
            .clock
            .take_due(term, live, Instant::now(), EXPIRIES_PER_SWEEP_MAX);
        let cutoff_ms = wall_clock_ms().saturating_sub(ORPHAN_WAIT_GRACE_MS);
        let mut pending = cancelling.lock().expect("cancelling lock");
        let mut orphaned = state.table.overdue_waiters(cutoff_ms);
        orphaned.retain(|key| !pending.contains(key));
        orphaned.truncate(CANCELS_PER_SWEEP_MAX);
        pending.extend(orphaned.iter().cloned());
        drop(pending);
        let lift = state.table.has_due_lock_delays(wall_clock_ms());
        let reorder = state.table.lock_order() != node.lock_order.as_slice();
        if reorder && !state.table.lock_order().is_empty() {
            tracing::warn!(
                replicated = ?state.table.lock_order(),
                configured = ?node.lock_order,
                "this leader's --lock-order differs from the cluster's; replacing it (give every node the same value)"
            );
        }
        (due, orphaned, lift, reorder)
    };
    if lift {
        propose_once(
            node,
            &in_flight.lifting,
            "lock-delay lift",
            Command::LiftLockDelays,
        );
    }
    if reorder {
        let command = Command::SetLockOrder {
            prefixes: node.lock_order.clone(),
        };
        propose_once(node, &in_flight.ordering, "lock order", command);
    }
    for lease_id in due {
        tracing::info!(lease_id = %lease_id, term, "lease deadline passed; proposing expiry");
        let node = node.clone();
        tokio::spawn(async move {
            let attempt = node.propose_here(Command::ExpireLease { lease_id }).await;
            if let Attempt::NotLeader = attempt {
                // Refused before it was appended: propose it again next time
                // if this node still leads.
                node.clock.unmark(term, lease_id);
            }
            log_failure("expiry", &attempt);
        });
    }
    for (kind, lease_id, name) in orphaned {
        tracing::info!(lease_id = %lease_id, %kind, name = %name, "cancelling a wait whose request is gone");
        let (node, cancelling) = (node.clone(), cancelling.clone());
        tokio::spawn(async move {
            let key = (kind, lease_id, name);
            let command = Command::CancelWait {
                lease_id,
                name: key.2.clone(),
                kind,
            };
            let attempt = node.propose_here(command).await;
            log_failure("orphaned wait cancel", &attempt);
            cancelling.lock().expect("cancelling lock").remove(&key);
        });
    }
}

/// Proposes `command` unless the last one of its sort is still in flight.
fn propose_once(node: &Arc<Node>, busy: &Arc<AtomicBool>, what: &'static str, command: Command) {
    if busy.swap(true, Ordering::AcqRel) {
        return;
    }
    let (node, busy) = (node.clone(), busy.clone());
    tokio::spawn(async move {
        let attempt = node.propose_here(command).await;
        log_failure(what, &attempt);
        busy.store(false, Ordering::Release);
    });
}

fn log_failure(what: &str, attempt: &Attempt<Response>) {
    match attempt {
        Attempt::Done(Ok(_)) => {}
        Attempt::Done(Err(e)) => tracing::warn!(error = %e, "sweep {what} failed"),
        Attempt::NotLeader => tracing::debug!("sweep {what} refused: not leader"),
    }
}
