//! The members' client addresses. With `--peer-listen`, the cluster's
//! membership holds the peer addresses only; each node asks the others, over
//! the peer connection, where they serve clients, so that `GET /v1/cluster`
//! shows both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_api::MemberSelf;
use corral_raft::NodeId;

use crate::node::Node;

/// The peer endpoint a member answers with its own client address.
pub(crate) const PATH_MEMBER: &str = "/raft/member";
/// How often a node asks the members whose client address it lacks.
const ASK_INTERVAL: Duration = Duration::from_secs(2);
/// Every this many intervals, it asks every member again: a member may
/// have restarted with another `--advertise`.
const REFRESH_INTERVALS: u32 = 30;
/// How long one question may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The client addresses learnt, this node's own included.
pub(crate) struct ClientAddrs {
    own: MemberSelf,
    learnt: Mutex<BTreeMap<NodeId, String>>,
}

impl ClientAddrs {
    /// This node's own, `client_addr`, and none learnt yet.
    pub(crate) fn new(node_id: NodeId, client_addr: String) -> ClientAddrs {
        let own = MemberSelf {
            node_id,
            client_addr,
        };
        ClientAddrs {
            own,
            learnt: Mutex::default(),
        }
    }

    /// What this node says of itself.
    pub(crate) fn own(&self) -> &MemberSelf {
        &self.own
    }

    /// Member `id`'s client address, if known.
    pub(crate) fn get(&self, id: NodeId) -> Option<String> {
        if id == self.own.node_id {
            return Some(self.own.client_addr.clone());
        }
        self.lock().get(&id).cloned()
    }

    pub(crate) fn learn(&self, id: NodeId, client_addr: String) {
        self.lock().insert(id, client_addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, String>> {
        self.learnt.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Asks the members for their client addresses, until the process ends.
pub(crate) async fn learn(node: Arc<Node>) {
    let mut tick = tokio::time::interval(ASK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u32.. {
        tick.tick().await;
        // A node that applied its own removal stops, without waiting for
        // a peer to refuse it.
        if node.is_retired(node.id) {
            node.peers
                .removal
                .report("this node applied the membership change that removed it");
        }
        let everyone = round % REFRESH_INTERVALS == 0;
        for member in node.raft.status().members {
            let known = node.client_addrs.get(member.id).is_some();
            if member.id != node.id && (everyone || !known) {
                ask(&node, member.id, &member.addr).await;
            }
        }
    }
}

/// Asks member `id` at peer address `addr`; a member that does not answer
/// is asked again next time.
async fn ask(node: &Node, id: NodeId, addr: &str) {
    let url = node.peers.url(addr, PATH_MEMBER);
    let answer = node.peers.http.get(url).timeout(ASK_TIMEOUT).send().await;
    let member = match answer {
        Ok(response) => response.json::<MemberSelf>().await,
        Err(e) => Err(e),
    };
    match member {
        Ok(member) if member.node_id == id => node.client_addrs.learn(id, member.client_addr),
        Ok(member) => tracing::warn!(
            member = id,
            answered = member.node_id,
            addr,
            "a member's peer address answers as another node"
        ),
        Err(e) => {
            tracing::debug!(member = id, error = %e, "asking a member for its client address")
        }
    }
}
