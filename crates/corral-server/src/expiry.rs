//! The leader's sweep: expires leases whose deadline passed and cancels
//! waits whose request is gone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_state::{Command, LeaseId, LockName, Response};
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
type Cancelling = Arc<Mutex<HashSet<(LeaseId, LockName)>>>;

/// Runs the sweep until the process ends.
pub async fn run(node: Arc<Node>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cancelling = Cancelling::default();
    loop {
        tick.tick().await;
        sweep(&node, &cancelling);
    }
}

fn sweep(node: &Arc<Node>, cancelling: &Cancelling) {
    let Some(term) = node.leader_term() else {
        node.clock.clear();
        return;
    };
    let (due, orphaned) = {
        let state = node.state.read();
        let live = state
            .table
            .leases()
            .map(|(id, lease)| (*id, Duration::from_millis(lease.ttl_ms)));
        let due = node
            .clock
            .take_due(term, live, Instant::now(), EXPIRIES_PER_SWEEP_MAX);
        let cutoff_ms = wall_clock_ms().saturating_sub(ORPHAN_WAIT_GRACE_MS);
        let mut in_flight = cancelling.lock().expect("cancelling lock");
        let mut orphaned = state.table.overdue_waiters(cutoff_ms);
        orphaned.retain(|key| !in_flight.contains(key));
        orphaned.truncate(CANCELS_PER_SWEEP_MAX);
        in_flight.extend(orphaned.iter().cloned());
        (due, orphaned)
    };
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
    for (lease_id, name) in orphaned {
        tracing::info!(lease_id = %lease_id, lock = %name, "cancelling a wait whose request is gone");
        let (node, cancelling) = (node.clone(), cancelling.clone());
        tokio::spawn(async move {
            let key = (lease_id, name);
            let command = Command::CancelWait {
                lease_id,
                name: key.1.clone(),
            };
            let attempt = node.propose_here(command).await;
            log_failure("orphaned wait cancel", &attempt);
            cancelling.lock().expect("cancelling lock").remove(&key);
        });
    }
}

fn log_failure(what: &str, attempt: &Attempt<Response>) {
    match attempt {
        Attempt::Done(Ok(_)) => {}
        Attempt::Done(Err(e)) => tracing::warn!(error = %e, "sweep {what} failed"),
        Attempt::NotLeader => tracing::debug!("sweep {what} refused: not leader"),
    }
}
