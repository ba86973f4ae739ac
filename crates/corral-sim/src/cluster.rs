//! [`Cluster`]: the simulated nodes, each a real openraft core with
//! corral's stores and state machine, on a [`SimDisk`] and the [`Net`].
//! A node lives until it crashes; it restarts on what its disk kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use corral_raft::{
    raft_config, start_on, AppliedState, NodeId, NodeParts, RaftSettings, Replica,
    StateMachineStore, StoreMetrics,
};

use corral_leader::SmClock;

use crate::disk::{Platter, SimDisk};
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
    replica: Replica,
    state: StateMachineStore,
    disk: SimDisk,
    /// State-machine time while it leads; a new life starts it anew, as a
    /// restarted process does.
    sm_clock: Arc<SmClock>,
}

/// The handles of a node that says it leads.
#[derive(Clone)]
pub(crate) struct LeaderNode {
    pub id: NodeId,
    pub replica: Replica,
    pub state: StateMachineStore,
    pub sm_clock: Arc<SmClock>,
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
    rng: SimRng,
}

impl Cluster {
    /// `size` nodes on empty disks, started and initialized as one cluster.
    pub(crate) async fn start(size: u64, net: Net, rng: SimRng) -> Cluster {
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
        let parts = NodeParts {
            disk: Arc::new(disk.clone()),
            network: SimTransport {
                from: id,
                net: self.net.clone(),
            },
            events: Arc::new(|_| {}),
            metrics: StoreMetrics::default(),
        };
        let config = raft_config(settings()).expect("the simulation's raft settings are valid");
        let started = start_on(id, config, parts).await;
        // A disk that cannot be read back is a bug of the stores: the run
        // fails on it, with the seed.
        let started = started.unwrap_or_else(|e| panic!("node {id} does not start: {e}"));
        self.net.attach(id, started.raft.clone());
        if let Some(node) = self.nodes().get_mut(&id) {
            node.life = Some(Life {
                replica: started.raft,
                state: started.state,
                disk,
                sm_clock: Arc::default(),
            });
        }
    }

    /// Kills node `id` at once: its raft stops, and its disk keeps what
    /// was synced and `torn_writes` of the writes after.
    pub(crate) fn crash(&self, id: NodeId, torn_writes: usize) -> Option<usize> {
        let mut nodes = self.nodes();
        let node = nodes.get_mut(&id)?;
        let life = node.life.take()?;
        self.net.detach(id);
        let lost = life.disk.unsynced_writes().saturating_sub(torn_writes);
        node.platter = life.disk.crash(torn_writes);
        // Its tasks end on their own once the disk refuses them; the
        // shutdown just makes it sooner.
        tokio::spawn(async move {
            let _ = life.replica.shutdown().await;
        });
        Some(lost)
    }

    /// The running replica of node `id`.
    pub(crate) fn replica(&self, id: NodeId) -> Option<Replica> {
        let nodes = self.nodes();
        let life = nodes.get(&id)?.life.as_ref()?;
        Some(life.replica.clone())
    }

    /// The applied state of node `id`, if it is up.
    pub(crate) fn state(&self, id: NodeId) -> Option<StateMachineStore> {
        let nodes = self.nodes();
        let life = nodes.get(&id)?.life.as_ref()?;
        Some(life.state.clone())
    }

    /// Makes node `id`'s syncs take up to `sync_ms_max`.
    pub(crate) fn set_sync_ms_max(&self, id: NodeId, sync_ms_max: u64) {
        if let Some(life) = self.nodes().get(&id).and_then(|n| n.life.as_ref()) {
            life.disk.set_sync_ms_max(sync_ms_max);
        }
    }

    /// The node that leads now, as the nodes that are up see it: the one
    /// that says it leads in the highest term.
    pub(crate) fn leader(&self) -> Option<LeaderNode> {
        self.nodes()
            .iter()
            .filter_map(|(id, node)| {
                let life = node.life.as_ref()?;
                let term = life.replica.leader_term()?;
                let leader = LeaderNode {
                    id: *id,
                    replica: life.replica.clone(),
                    state: life.state.clone(),
                    sm_clock: life.sm_clock.clone(),
                };
                Some((term, leader))
            })
            .max_by_key(|(term, leader)| (*term, leader.id))
            .map(|(_, leader)| leader)
    }

    /// Reads node `id`'s applied state.
    pub(crate) fn read<T>(&self, id: NodeId, read: impl FnOnce(&AppliedState) -> T) -> Option<T> {
        let state = self.state(id)?;
        let guard = state.read();
        Some(read(&guard))
    }
}
