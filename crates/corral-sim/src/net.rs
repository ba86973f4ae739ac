//! [`Net`]: the network between the simulated nodes. Each RPC crosses it
//! twice (request and answer); each crossing may be delayed, dropped or
//! duplicated, and a link may be cut one way or both. A dropped message is
//! never answered: the caller's RPC timeout ends the call, as on a real
//! network. A node that is down refuses at once. A paused node (a
//! process stopped by a long GC, a VM migration, SIGSTOP) neither sends nor
//! receives until it resumes: its messages wait, and arrive late.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use corral_raft::{
    AppendReply, AppendRequest, NodeId, PeerUnreachable, Replica, SnapshotHeader, SnapshotReply,
    Transport, VoteReply, VoteRpc,
};

use crate::rng::SimRng;

/// How messages fare on the network now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Weather {
    /// The longest one-way delay.
    pub delay_ms_max: u64,
    /// Messages lost, per thousand.
    pub loss_per_mille: u64,
    /// Requests delivered twice, per thousand.
    pub duplicate_per_mille: u64,
}

impl Weather {
    /// A healthy network: a few milliseconds, nothing lost.
    pub(crate) const CALM: Weather = Weather {
        delay_ms_max: 3,
        loss_per_mille: 0,
        duplicate_per_mille: 0,
    };
}

/// The simulated network, shared by every node of a run.
#[derive(Clone)]
pub(crate) struct Net {
    state: Arc<Mutex<NetState>>,
    rng: SimRng,
}

struct NetState {
    /// The running node behind each id; absent while it is down.
    nodes: BTreeMap<NodeId, Replica>,
    /// Cut links, from one node to another.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Paused nodes, until when.
    paused_until: BTreeMap<NodeId, Instant>,
    weather: Weather,
}

impl Net {
    pub(crate) fn new(rng: SimRng) -> Net {
        let state = NetState {
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            paused_until: BTreeMap::new(),
            weather: Weather::CALM,
        };
        Net {
            state: Arc::new(Mutex::new(state)),
            rng,
        }
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `replica` answers for `id` from now on.
    pub(crate) fn attach(&self, id: NodeId, replica: Replica) {
        self.state().nodes.insert(id, replica);
    }

    /// `id` is down: calls to it are refused.
    pub(crate) fn detach(&self, id: NodeId) {
        self.state().nodes.remove(&id);
    }

    /// Cuts the link from `from` to `to` (one way).
    pub(crate) fn cut(&self, from: NodeId, to: NodeId) {
        self.state().cut.insert((from, to));
    }

    /// Pauses node `id` for `for_ms`.
    pub(crate) fn pause(&self, id: NodeId, for_ms: u64) {
        let until = Instant::now() + Duration::from_millis(for_ms);
        self.state().paused_until.insert(id, until);
    }

    /// Returns once node `id` is not paused.
    pub(crate) async fn resumed(&self, id: NodeId) {
        loop {
            let until = self.state().paused_until.get(&id).copied();
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    /// Heals every link, resumes every node and calms the weather.
    pub(crate) fn heal(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.paused_until.clear();
        state.weather = Weather::CALM;
    }

    pub(crate) fn set_weather(&self, weather: Weather) {
        self.state().weather = weather;
    }

    /// Crosses from `from` to `to` once: after a delay (and once neither
    /// end is paused), or never when the link is cut or the message is
    /// lost.
    async fn cross(&self, from: NodeId, to: NodeId) -> Result<(), Lost> {
        let (cut, weather) = {
            let state = self.state();
            (state.cut.contains(&(from, to)), state.weather)
        };
        let delay_ms = self.rng.below(weather.delay_ms_max + 1);
        let lost = self.rng.chance(weather.loss_per_mille);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        self.resumed(from).await;
        self.resumed(to).await;
        if cut || lost {
            return Err(Lost);
        }
        Ok(())
    }

    /// One RPC from `from` to `to`: `serve` runs on the target's replica
    /// when the request arrives. A request may arrive twice; the second
    /// answer goes nowhere.
    async fn call<Q, R, F, Fut>(
        &self,
        from: NodeId,
        to: NodeId,
        request: Q,
        serve: F,
    ) -> Result<R, PeerUnreachable>
    where
        Q: Clone + Send + 'static,
        R: Send + 'static,
        F: Fn(Replica, Q) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let refused = |reason: &str| PeerUnreachable {
            target: to,
            reason: reason.to_string(),
        };
        if self.cross(from, to).await.is_err() {
            return never().await;
        }
        let Some(replica) = self.state().nodes.get(&to).cloned() else {
            return Err(refused("the node is down"));
        };
        let duplicate = self.rng.chance(self.state().weather.duplicate_per_mille);
        if duplicate {
            let net = self.clone();
            let (replica, request, serve) = (replica.clone(), request.clone(), serve.clone());
            tokio::spawn(async move {
                if net.cross(from, to).await.is_ok() {
                    let _ = serve(replica, request).await;
                }
            });
        }
        let answer = serve(replica, request).await;
        if self.cross(to, from).await.is_err() {
            return never().await;
        }
        Ok(answer)
    }
}

/// A message that never arrives.
struct Lost;

/// An answer that never comes: the caller's timeout decides.
async fn never<T>() -> T {
    std::future::pending().await
}

/// One node's end of the network.
#[derive(Clone)]
pub(crate) struct SimTransport {
    pub(crate) from: NodeId,
    pub(crate) net: Net,
}

impl Transport for SimTransport {
    async fn append(
        &self,
        target: NodeId,
        request: AppendRequest,
    ) -> Result<AppendReply, PeerUnreachable> {
        let serve = |replica: Replica, request| async move { replica.append(request).await };
        self.net.call(self.from, target, request, serve).await
    }

    async fn vote(&self, target: NodeId, request: VoteRpc) -> Result<VoteReply, PeerUnreachable> {
        let serve = |replica: Replica, request| async move { replica.vote(request).await };
        self.net.call(self.from, target, request, serve).await
    }

    async fn snapshot(
        &self,
        target: NodeId,
        header: SnapshotHeader,
        data: Vec<u8>,
    ) -> Result<SnapshotReply, PeerUnreachable> {
        let serve = |replica: Replica, (header, data): (SnapshotHeader, Vec<u8>)| async move {
            replica.install_snapshot(header, data).await
        };
        self.net
            .call(self.from, target, (header, data), serve)
            .await
    }
}
