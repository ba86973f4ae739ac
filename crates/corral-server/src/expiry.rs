//! The leader's sweep: expires leases whose deadline passed and cancels
//! waits whose request is gone.

use std::sync::Arc;
use std::time::Duration;

use corral_state::Command;
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

/// Runs the sweep until the process ends.
pub async fn run(node: Arc<Node>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep(&node);
    }
}

fn sweep(node: &Arc<Node>) {
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
        let mut orphaned = state.table.overdue_waiters(cutoff_ms);
        orphaned.truncate(CANCELS_PER_SWEEP_MAX);
        (due, orphaned)
    };
    for lease_id in due {
        tracing::info!(lease_id = %lease_id, term, "lease deadline passed; proposing expiry");
        spawn_proposal(node, Command::ExpireLease { lease_id });
    }
    for (lease_id, name) in orphaned {
        tracing::info!(lease_id = %lease_id, lock = %name, "cancelling a wait whose request is gone");
        spawn_proposal(node, Command::CancelWait { lease_id, name });
    }
}

fn spawn_proposal(node: &Arc<Node>, command: Command) {
    let node = node.clone();
    tokio::spawn(async move {
        match node.propose_here(command.clone()).await {
            Attempt::Done(Ok(_)) => {}
            Attempt::Done(Err(e)) => tracing::warn!(?command, error = %e, "sweep proposal failed"),
            Attempt::NotLeader => {
                tracing::debug!(?command, "lost leadership before the sweep proposal")
            }
        }
    });
}
