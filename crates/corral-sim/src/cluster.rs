//! [`Cluster`]: the simulated nodes, each a real openraft core with
//! corral's stores and state machine, on a [`SimDisk`] and the [`Net`].
//! A node lives until it crashes; it restarts on what its disk kept. While
//! it leads, it runs corral's sweep and answers keepalives
//! ([`Duties`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use corral_leader::{learn_leases, LeaseClock};
use corral_raft::{
    raft_config, start_on, AppliedState, EventSink, NodeId, NodeParts, Notice, RaftSettings,
    Replica, StateMachineStore, StoreMetrics,
};
use tokio::task::JoinHandle;

use crate::clock::WallClocks;
use crate::disk::{Platter, SimDisk};
use crate::history::History;
use crate::leader::Duties;
use crate::net::{Net, SimTransport};
use crate::rng::SimRng;

/// The raft settings of a simulated cluster: corral's defaults, with a
/// snapshot every few dozen entries, so that snapshots, purges and
/// snapshot installs on lagging nodes happen in every run.
pub(crate) fn settings() -> RaftSettings {
    RaftSettings {
        snapshot_logs: 40,
        ..RaftSettings::default()
    }
}

/// The longest a healthy sync takes.
pub(crate) const SYNC_MS_MAX: u64 = 2;

/// One life of a node.
struct Life {
    duties: Duties,
    disk: SimDisk,
    sweep: JoinHandle<()>,
}

/// One node: its current life, if it is up, and what its disk kept.
struct SimNode {
    life: Option<Life>,
    platter: Platter,
}

/// The nodes of one run. Shared by the clients and the faults; its lock is
/// never held across an await.
pub(crate) struct Cluster {
    nodes: Mutex<BTreeMap<NodeId, SimNode>>,
    pub(crate) net: Net,
    pub(crate) clocks: WallClocks,
    history: History,
    rng: SimRng,
}

impl Cluster {
    /// `size` nodes on empty disks, started and initialized as one cluster.
    pub(crate) async fn start(size: u64, net: Net, history: History, rng: SimRng) -> Cluster {
        let nodes = (1..=size).map(|id| {
            let node = SimNode {
                life: None,
                platter: Platter::default(),
            };
            (id, node)
        });
        let cluster = Cluster {
            nodes: Mutex::new(nodes.collect()),
            net,
            clocks: WallClocks::drifting(1..=size, &rng),
            history,
            rng,
        };
        for id in 1..=size {
            cluster.boot(id).await;
        }
        let members = (1..=size).map(|id| (id, format!("sim-{id}"))).collect();
        if let Some(replica) = cluster.replica(1) {
            // Refused only when already initialized, which a new cluster
            // is not; then the run's checks find a cluster that never
            // serves.
            let _ = replica.initialize_once(&members).await;
        }
        cluster
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<NodeId, SimNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node ids.
    pub(crate) fn ids(&self) -> Vec<NodeId> {
        self.nodes().keys().copied().collect()
    }

    /// Starts a life of node `id` on what its disk kept, unless it is up.
    pub(crate) async fn boot(&self, id: NodeId) {
        let platter = match self.nodes().get(&id) {
            Some(node) if node.life.is_none() => node.platter.clone(),
            _ => return,
        };
        let disk = SimDisk::new(platter, self.rng.clone(), SYNC_MS_MAX);
        let lease_clock = Arc::<LeaseClock>::default();
        let parts = NodeParts {
            disk: Arc::new(disk.clone()),
            network: SimTransport {
                from: id,
                net: self.net.clone(),
            },
            events: self.notices(lease_clock.clone()),
            metrics: StoreMetrics::default(),
        };
        let config = raft_config(settings()).expect("the simulation's raft settings are valid");
        let started = start_on(id, config, parts).await;
        // A disk that cannot be read back is a bug of the stores: the run
        // fails on it, with the seed.
        let started = started.unwrap_or_else(|e| panic!("node {id} does not start: {e}"));
        self.net.attach(id, started.raft.clone());
        let duties = Duties {
            id,
            replica: started.raft,
            state: started.state,
            sm_clock: Arc::default(),
            lease_clock,
            recovered: Arc::default(),
            clocks: self.clocks.clone(),
            net: self.net.clone(),
        };
        let sweep = tokio::spawn(duties.clone().sweep());
        tokio::spawn(duties.clone().recover());
        if let Some(node) = self.nodes().get_mut(&id) {
            node.life = Some(Life {
                duties,
                disk,
                sweep,
            });
        }
    }

    /// Tells the history of every lease expiry a node applies, and the
    /// node's lease clock of every lease granted and ended, as corral's
    /// server does.
    fn notices(&self, lease_clock: Arc<LeaseClock>) -> EventSink {
        let history = self.history.clone();
        Arc::new(move |notice| {
            learn_leases(&lease_clock, &notice);
            if let Notice::Applied {
                expired_lease: Some(lease_id),
                ..
            } = notice
            {
                history.expired(lease_id.0 as u64);
            }
        })
    }

    /// Kills node `id` at once: its raft stops, and its disk keeps what
    /// was synced and `torn_writes` of the writes after.
    pub(crate) fn crash(&self, id: NodeId, torn_writes: usize) -> Option<usize> {
        let mut nodes = self.nodes();
        let node = nodes.get_mut(&id)?;
        let life = node.life.take()?;
        life.sweep.abort();
        self.net.detach(id);
        let lost = life.disk.unsynced_writes().saturating_sub(torn_writes);
        node.platter = life.disk.crash(torn_writes);
        // Its tasks end on their own once the disk refuses them; the
        // shutdown just makes it sooner.
        tokio::spawn(async move {
            let _ = life.duties.replica.shutdown().await;
        });
        Some(lost)
    }

    /// The leader duties of node `id`, if it is up.
    pub(crate) fn duties(&self, id: NodeId) -> Option<Duties> {
        let nodes = self.nodes();
        Some(nodes.get(&id)?.life.as_ref()?.duties.clone())
    }

    /// The running replica of node `id`.
    pub(crate) fn replica(&self, id: NodeId) -> Option<Replica> {
        Some(self.duties(id)?.replica)
    }

    /// The applied state of node `id`, if it is up.
    pub(crate) fn state(&self, id: NodeId) -> Option<StateMachineStore> {
        Some(self.duties(id)?.state)
    }

    /// Makes node `id`'s syncs take up to `sync_ms_max`.
    pub(crate) fn set_sync_ms_max(&self, id: NodeId, sync_ms_max: u64) {
        if let Some(life) = self.nodes().get(&id).and_then(|n| n.life.as_ref()) {
            life.disk.set_sync_ms_max(sync_ms_max);
        }
    }

    /// The node that leads now, as the nodes that are up see it: the one
    /// that says it leads in the highest term.
    pub(crate) fn leader(&self) -> Option<Duties> {
        self.nodes()
            .values()
            .filter_map(|node| {
                let duties = &node.life.as_ref()?.duties;
                let term = duties.replica.leader_term()?;
                Some((term, duties.clone()))
            })
            .max_by_key(|(term, duties)| (*term, duties.id))
            .map(|(_, duties)| duties)
    }

    /// Reads node `id`'s applied state.
    pub(crate) fn read<T>(&self, id: NodeId, read: impl FnOnce(&AppliedState) -> T) -> Option<T> {
        let state = self.state(id)?;
        let guard = state.read();
        Some(read(&guard))
    }
}
