//! [`Transport`]: how raft's RPCs reach a peer, in corral's types. The
//! simulation implements it; [`TransportNetwork`] turns any transport into
//! openraft's network, each call bounded by openraft's RPC timeout. (The
//! HTTP network, [`crate::PeerNetwork`], implements openraft's network
//! itself, for its pipelined replication stream.)

use std::future::Future;

use futures::future::Either;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesResponse, SnapshotResponse, VoteResponse};
use openraft::BasicNode;

use crate::network::{RpcReply, SnapshotHeader, SnapshotReply};
use crate::replica::{AppendRequest, VoteRpc};
use crate::type_config::{NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// A peer RPC that did not reach its target, or whose answer was lost.
#[derive(Clone, Debug, thiserror::Error)]
#[error("peer {target} did not answer: {reason}")]
pub struct PeerUnreachable {
    /// The peer.
    pub target: NodeId,
    /// Why.
    pub reason: String,
}

/// Carries raft's RPCs from one node to its peers.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Sends an append (or heartbeat) to `target`.
    fn append(
        &self,
        target: NodeId,
        request: AppendRequest,
    ) -> impl Future<Output = Result<RpcReply<AppendEntriesResponse<TypeConfig>>, PeerUnreachable>> + Send;

    /// Asks `target` for its vote.
    fn vote(
        &self,
        target: NodeId,
        request: VoteRpc,
    ) -> impl Future<Output = Result<RpcReply<VoteResponse<TypeConfig>>, PeerUnreachable>> + Send;

    /// Sends `target` a whole snapshot.
    fn snapshot(
        &self,
        target: NodeId,
        header: SnapshotHeader,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<SnapshotReply, PeerUnreachable>> + Send;
}

/// openraft's network over a [`Transport`].
#[derive(Clone)]
pub struct TransportNetwork<T> {
    transport: T,
}

impl<T: Transport> TransportNetwork<T> {
    /// The network of one node over `transport`.
    pub fn new(transport: T) -> TransportNetwork<T> {
        TransportNetwork { transport }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for TransportNetwork<T> {
    type Network = TransportConnection<T>;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> TransportConnection<T> {
        TransportConnection {
            transport: self.transport.clone(),
            target,
        }
    }
}

/// The raft client for one peer over a [`Transport`].
pub struct TransportConnection<T> {
    transport: T,
    target: NodeId,
}

/// The answer of a call bounded by `option`'s timeout, as openraft takes
/// it. A peer's raft error cannot travel as a remote error in this openraft
/// version; the peer is as good as unreachable for this call.
async fn bounded<R>(
    target: NodeId,
    option: &RPCOption,
    call: impl Future<Output = Result<RpcReply<R>, PeerUnreachable>>,
) -> Result<R, RPCError<TypeConfig>> {
    let ttl = option.hard_ttl();
    match tokio::time::timeout(ttl, call).await {
        Err(_) => Err(RPCError::Network(NetworkError::new(&PeerUnreachable {
            target,
            reason: format!("no answer within {ttl:?}"),
        }))),
        Ok(Err(lost)) => Err(RPCError::Unreachable(Unreachable::new(&lost))),
        Ok(Ok(Err(refused))) => Err(RPCError::Unreachable(Unreachable::new(&refused))),
        Ok(Ok(Ok(reply))) => Ok(reply),
    }
}

impl<T: Transport> RaftNetworkV2<TypeConfig> for TransportConnection<T> {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = self.transport.append(self.target, rpc);
        bounded(self.target, &option, call).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRpc,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = self.transport.vote(self.target, rpc);
        bounded(self.target, &option, call).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta,
        };
        // The simulation's tables are small: sent whole.
        let data = snapshot.snapshot.read_all().map_err(|e| {
            let lost = PeerUnreachable {
                target: self.target,
                reason: e.to_string(),
            };
            StreamingError::Network(NetworkError::new(&lost))
        })?;
        let target = self.target;
        let ttl = option.hard_ttl();
        let call = tokio::time::timeout(ttl, self.transport.snapshot(target, header, data));
        let (cancel, call) = (std::pin::pin!(cancel), std::pin::pin!(call));
        // `select` polls the cancel first, every time: a simulation takes
        // the same branch in every run of a seed.
        let unreachable = |reason: String| PeerUnreachable { target, reason };
        match futures::future::select(cancel, call).await {
            Either::Left((closed, _)) => Err(StreamingError::Closed(closed)),
            Either::Right((Err(_), _)) => Err(StreamingError::Network(NetworkError::new(
                &unreachable(format!("no answer within {ttl:?}")),
            ))),
            Either::Right((Ok(Err(lost)), _)) => {
                Err(StreamingError::Unreachable(Unreachable::new(&lost)))
            }
            Either::Right((Ok(Ok(Err(fatal))), _)) => Err(StreamingError::Unreachable(
                Unreachable::new(&unreachable(fatal.to_string())),
            )),
            Either::Right((Ok(Ok(Ok(reply))), _)) => Ok(reply),
        }
    }
}
