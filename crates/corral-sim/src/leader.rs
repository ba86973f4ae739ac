//! What a simulated node does as leader by its own clock, by corral's
//! rules ([`corral_leader`]): the sweep that expires leases whose deadline
//! passed, bound to the term that decided it, and keepalives, acked only
//! after a quorum confirms the leadership.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_leader::{due_leases, renew_leases, stamp_ms, LeaseClock, SmClock};
use corral_raft::{LeaderId, NodeId, Replica, StateMachineStore, WriteError};
use corral_state::{Command, LeaseId, Proposal};
use tokio::time::Instant;

use crate::clock::WallClocks;
use crate::net::Net;

/// How often the leader looks for due leases, as corral's sweep does.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// The most expiries proposed in one sweep.
const EXPIRIES_PER_SWEEP_MAX: usize = 1_000;
/// How often a keepalive looks whether its node has recovered.
const RECOVERY_POLL: Duration = Duration::from_millis(20);
/// How long a leader's proposal or leadership check may take.
pub(crate) const LEADER_WAIT: Duration = Duration::from_secs(5);

/// The handles of one life of a node that its leader duties use.
#[derive(Clone)]
pub(crate) struct Duties {
    pub id: NodeId,
    pub replica: Replica,
    pub state: StateMachineStore,
    /// State-machine time while it leads; a new life starts it anew, as a
    /// restarted process does.
    pub sm_clock: Arc<SmClock>,
    /// Lease deadlines while it leads.
    pub lease_clock: Arc<LeaseClock>,
    /// Set once this life has recovered the state it had before its last
    /// restart, as corral's server marks it once per process.
    pub recovered: Arc<AtomicBool>,
    pub clocks: WallClocks,
    pub net: Net,
}

/// What a keepalive came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeptAlive {
    /// Renewed: the lease lives at least a ttl from when it was sent.
    Renewed,
    /// The lease is gone, or its expiry is under way.
    Gone,
    /// This node does not lead, or could not confirm it in time.
    NotLeader,
}

impl Duties {
    /// Marks the life recovered once raft says so.
    pub(crate) async fn recover(self) {
        if self.replica.wait_for_recovery().await.is_ok() {
            self.recovered.store(true, Ordering::Relaxed);
        }
    }

    /// Whether this life recovers within [`LEADER_WAIT`].
    async fn is_recovered(&self) -> bool {
        let deadline = Instant::now() + LEADER_WAIT;
        while !self.recovered.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(RECOVERY_POLL).await;
        }
        true
    }

    /// The sweep, until the node's life ends (its task is aborted).
    pub(crate) async fn sweep(self) {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            self.net.resumed(self.id).await;
            let Some(leader) = self.replica.leadership() else {
                self.lease_clock.clear();
                self.sm_clock.clear();
                continue;
            };
            let due = {
                let state = self.state.read();
                let now = Instant::now();
                due_leases(
                    &self.lease_clock,
                    leader.term,
                    &state,
                    now,
                    EXPIRIES_PER_SWEEP_MAX,
                )
            };
            for lease_id in due {
                tokio::spawn(self.clone().expire(leader, lease_id));
            }
        }
    }

    /// Proposes the expiry of `lease_id`, bound to the term that found it
    /// due; lifts the expiring mark if raft refused it before appending.
    async fn expire(self, leader: LeaderId, lease_id: LeaseId) {
        let command = Command::ExpireLease { lease_id };
        let written = self.propose_in(&leader, command).await;
        if let Err(WriteError::NotLeader) = written {
            self.lease_clock.unmark(leader.term, lease_id);
        }
    }

    /// Proposes `command` in leader term `leader`, stamped as a corral
    /// leader stamps it: by its monotonic clock, so that its wall clock's
    /// jumps move no window or deadline.
    pub(crate) async fn propose_in(
        &self,
        leader: &LeaderId,
        command: Command,
    ) -> Result<corral_state::Response, WriteError> {
        self.propose(leader, command, None).await
    }

    /// [`Duties::propose_in`] with an idempotency key.
    pub(crate) async fn propose(
        &self,
        leader: &LeaderId,
        command: Command,
        idempotency: Option<corral_state::Idempotency>,
    ) -> Result<corral_state::Response, WriteError> {
        self.net.resumed(self.id).await;
        let wall_ms = || self.clocks.now_ms(self.id);
        let (replica, state, clock) = (&self.replica, &self.state, &self.sm_clock);
        let now_ms = stamp_ms(replica, state, clock, leader, wall_ms, LEADER_WAIT).await;
        let proposal = Proposal {
            now_ms,
            command,
            idempotency,
            caller: None,
        };
        let written = tokio::time::timeout(LEADER_WAIT, replica.write_in_term(leader, proposal));
        written.await.unwrap_or(Err(WriteError::NoResponse))
    }

    /// Renews `lease_id` if this node leads, after confirming that with a
    /// quorum once it has recovered from its last restart, as corral's
    /// keepalive does.
    pub(crate) async fn keepalive(&self, lease_id: LeaseId) -> KeptAlive {
        self.net.resumed(self.id).await;
        if !self.is_recovered().await {
            return KeptAlive::NotLeader;
        }
        let confirmed = tokio::time::timeout(LEADER_WAIT, self.replica.read_index());
        if !matches!(confirmed.await, Ok(Ok(_))) {
            return KeptAlive::NotLeader;
        }
        let Some(term) = self.replica.leader_term() else {
            return KeptAlive::NotLeader;
        };
        let state = self.state.read();
        let now = Instant::now();
        match renew_leases(&self.lease_clock, term, &state, &[lease_id], now).as_deref() {
            Some([Some(_)]) => KeptAlive::Renewed,
            Some(_) => KeptAlive::Gone,
            None => KeptAlive::NotLeader,
        }
    }
}
