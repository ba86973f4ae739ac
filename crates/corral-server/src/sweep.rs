//! The leader's sweep: expires leases whose deadline passed, cancels waits
//! whose request is gone, lifts lock-delays that ran out, returns queue
//! items whose claims ran out (and hands ready items to waiting claims),
//! writes the configured lock order into the replicated state, and turns
//! auth on with its root token file.
//!
//! Waits and lock-delays are judged by the leader's state-machine clock
//! (`sm_clock.rs`), the time their deadlines are written in, never by
//! its wall clock, which may jump. Expiries are bound to the term whose
//! lease deadlines decided them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_state::{ClaimId, Command, Kind, LeaseId, LockName, Response};
use tokio::time::Instant;

use corral_raft::LeaderId;

use crate::node::{Attempt, Node};

/// How often the leader looks for due leases.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// The most expiries proposed in one sweep; the rest wait for the next.
pub(crate) const EXPIRIES_PER_SWEEP_MAX: usize = 1_000;
/// How long past its deadline a wait is left to the request that asked for
/// it before the leader cancels it (the request's node may have died).
pub(crate) const ORPHAN_WAIT_GRACE_MS: u64 = 2_000;
/// The most orphaned waits cancelled in one sweep.
pub(crate) const CANCELS_PER_SWEEP_MAX: usize = 100;

/// The most queue ticks, and the most orphaned claim waits withdrawn, in
/// one sweep.
pub(crate) const QUEUE_TICKS_PER_SWEEP_MAX: usize = 100;

/// Commands of one sort in flight, by what they name, so that a slow
/// commit does not get the same command proposed again every sweep.
struct Pending<K>(Arc<Mutex<HashSet<K>>>);

impl<K> Default for Pending<K> {
    fn default() -> Pending<K> {
        Pending(Arc::default())
    }
}

impl<K> Clone for Pending<K> {
    fn clone(&self) -> Pending<K> {
        Pending(self.0.clone())
    }
}

impl<K: std::hash::Hash + Eq + Clone> Pending<K> {
    /// Of `keys`, the first `max` not in flight, now marked in flight.
    fn start(&self, mut keys: Vec<K>, max: usize) -> Vec<K> {
        let mut pending = self.0.lock().expect("pending lock");
        keys.retain(|key| !pending.contains(key));
        keys.truncate(max);
        pending.extend(keys.iter().cloned());
        keys
    }

    /// `key`'s command was answered.
    fn done(&self, key: &K) {
        self.0.lock().expect("pending lock").remove(key);
    }
}

/// Orphaned waits whose cancel is in flight.
type Cancelling = Pending<(Kind, LeaseId, LockName)>;

/// What the sweep has proposed and not yet seen answered, so that a slow
/// commit does not get the same command proposed again every sweep.
#[derive(Default)]
struct InFlight {
    cancelling: Cancelling,
    /// Queues whose tick is in flight.
    ticking: Pending<LockName>,
    /// Orphaned claim waits whose withdrawal is in flight.
    withdrawing: Pending<(LockName, LeaseId, ClaimId)>,
    lifting: Arc<AtomicBool>,
    ordering: Arc<AtomicBool>,
    enabling: Arc<AtomicBool>,
    restoring: Arc<AtomicBool>,
}

/// Runs the sweep until the process ends.
pub(crate) async fn run(node: Arc<Node>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = InFlight::default();
    loop {
        tick.tick().await;
        sweep(&node, &in_flight);
    }
}

/// What one sweep decided, under one read of the state.
struct Decisions {
    due: Vec<LeaseId>,
    orphaned: Vec<(Kind, LeaseId, LockName)>,
    /// Queues with an overdue claim, or a ready item and a waiting claim.
    ticks: Vec<LockName>,
    /// Claim waits whose request is gone.
    orphaned_claims: Vec<(LockName, LeaseId, ClaimId)>,
    lift: bool,
    reorder: bool,
    enable_auth: Option<corral_state::TokenHash>,
}

fn sweep(node: &Arc<Node>, in_flight: &InFlight) {
    restore_seed(node, &in_flight.restoring);
    let Some(leader) = node.leadership() else {
        node.clock.clear();
        node.sm_clock.clear();
        return;
    };
    let decided = decide(node, &leader, in_flight);
    if decided.lift {
        propose_once(
            node,
            &in_flight.lifting,
            "lock-delay lift",
            Command::LiftLockDelays,
        );
    }
    if decided.reorder {
        let command = Command::SetLockOrder {
            prefixes: node.lock_order.clone(),
        };
        propose_once(node, &in_flight.ordering, "lock order", command);
    }
    if let Some(root_hash) = decided.enable_auth {
        let command = Command::EnableAuth { root_hash };
        propose_once(node, &in_flight.enabling, "auth", command);
    }
    for lease_id in decided.due {
        expire(node, &leader, lease_id);
    }
    for key in decided.orphaned {
        cancel_orphan(node, &in_flight.cancelling, key);
    }
    for queue in decided.ticks {
        let command = Command::TickQueue {
            queue: queue.clone(),
        };
        propose_pending(node, &in_flight.ticking, queue, "queue tick", command);
    }
    for (queue, lease_id, claim_id) in decided.orphaned_claims {
        tracing::info!(lease_id = %lease_id, queue = %queue, claim_id = %claim_id, "withdrawing a claim wait whose request is gone");
        let command = Command::CancelClaimWait {
            queue: queue.clone(),
            lease_id,
            claim_id,
        };
        let key = (queue, lease_id, claim_id);
        propose_pending(
            node,
            &in_flight.withdrawing,
            key,
            "claim wait withdrawal",
            command,
        );
    }
}

/// Proposes `command`, in flight under `key` until answered.
fn propose_pending<K>(
    node: &Arc<Node>,
    pending: &Pending<K>,
    key: K,
    what: &'static str,
    command: Command,
) where
    K: std::hash::Hash + Eq + Clone + Send + 'static,
{
    let (node, pending) = (node.clone(), pending.clone());
    tokio::spawn(async move {
        let attempt = node.propose_here(command).await;
        log_failure(what, &attempt);
        pending.done(&key);
    });
}

/// Reads the state once and decides what to propose: due expiries by the
/// term's lease deadlines, overdue waits and due lock-delays by its
/// state-machine clock (not before the clock is anchored), the lock order.
fn decide(node: &Arc<Node>, leader: &LeaderId, in_flight: &InFlight) -> Decisions {
    let state = node.state.read();
    let now = Instant::now();
    let due = corral_leader::due_leases(
        &node.clock,
        leader.term,
        &state,
        now,
        EXPIRIES_PER_SWEEP_MAX,
    );
    let now_ms = node.sm_now_ms_in(leader, &state);
    let orphaned = match now_ms {
        Some(now_ms) => state
            .table
            .overdue_waiters(now_ms.saturating_sub(ORPHAN_WAIT_GRACE_MS)),
        None => Vec::new(),
    };
    let orphaned = in_flight.cancelling.start(orphaned, CANCELS_PER_SWEEP_MAX);
    let (ticks, orphaned_claims) = match now_ms {
        Some(now_ms) => (
            state.table.queues_due(now_ms, QUEUE_TICKS_PER_SWEEP_MAX),
            state.table.orphaned_claims(
                now_ms.saturating_sub(ORPHAN_WAIT_GRACE_MS),
                QUEUE_TICKS_PER_SWEEP_MAX,
            ),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let ticks = in_flight.ticking.start(ticks, QUEUE_TICKS_PER_SWEEP_MAX);
    let orphaned_claims = in_flight
        .withdrawing
        .start(orphaned_claims, QUEUE_TICKS_PER_SWEEP_MAX);
    let lift = now_ms.is_some_and(|now_ms| state.table.has_due_lock_delays(now_ms));
    let reorder = state.table.lock_order() != node.lock_order.as_slice();
    if reorder && !state.table.lock_order().is_empty() {
        tracing::warn!(
            replicated = ?state.table.lock_order(),
            configured = ?node.lock_order,
            "this leader's --lock-order differs from the cluster's; replacing it (give every node the same value)"
        );
    }
    // Auth goes on once, by the first leader with a root token file.
    let enable_auth = node
        .auth
        .root_hash
        .filter(|_| !state.table.tokens().enabled());
    Decisions {
        due,
        orphaned,
        ticks,
        orphaned_claims,
        lift,
        reorder,
        enable_auth,
    }
}

/// Proposes the expiry of a lease whose deadline passed in term `leader`,
/// bound to that term: should the task stall while this node loses and
/// regains leadership, the new term has given the lease a fresh deadline
/// and may have acked keepalives under it, so the expiry must not be
/// appended there.
fn expire(node: &Arc<Node>, leader: &LeaderId, lease_id: LeaseId) {
    let term = leader.term;
    tracing::info!(lease_id = %lease_id, term, "lease deadline passed; proposing expiry");
    let (node, leader) = (node.clone(), *leader);
    tokio::spawn(async move {
        let attempt = node
            .propose_in(&leader, Command::ExpireLease { lease_id })
            .await;
        if let Attempt::NotLeader = attempt {
            // Refused before it was appended: propose it again next time
            // if this node still leads in this term.
            node.clock.unmark(term, lease_id);
        }
        log_failure("expiry", &attempt);
    });
}

/// Cancels a wait whose request is gone.
fn cancel_orphan(node: &Arc<Node>, cancelling: &Cancelling, key: (Kind, LeaseId, LockName)) {
    let (kind, lease_id, name) = &key;
    tracing::info!(lease_id = %lease_id, %kind, name = %name, "cancelling a wait whose request is gone");
    let command = Command::CancelWait {
        lease_id: *lease_id,
        name: name.clone(),
        kind: *kind,
    };
    propose_pending(node, cancelling, key, "orphaned wait cancel", command);
}

/// Proposes this node's restore seed, when it leads, while the cluster has
/// not applied a restore; forgets it (and its file) once it has, or once
/// the cluster has granted without it, which no restore can follow.
fn restore_seed(node: &Arc<Node>, busy: &Arc<AtomicBool>) {
    let Some(seed) = node.seed.lock().expect("seed lock").clone() else {
        return;
    };
    let (restored, fresh) = {
        let state = node.state.read();
        let table = &state.table;
        (
            table.is_restored(),
            table.last_token().0 == 0 && table.lease_count() == 0 && table.queues().is_empty(),
        )
    };
    if restored || !fresh {
        if !restored {
            tracing::error!("the cluster granted before this node's restore seed was applied: the backup is NOT restored");
        }
        *node.seed.lock().expect("seed lock") = None;
        let file = node.data_dir.join(crate::backup::SEED_FILE);
        if let Err(e) = std::fs::remove_file(&file) {
            tracing::warn!(error = %e, file = %file.display(), "removing the applied restore seed failed");
        }
        return;
    }
    if node.leadership().is_some() {
        let command = Command::Restore {
            table: Box::new((*seed).clone()),
        };
        propose_once(node, busy, "restore", command);
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
