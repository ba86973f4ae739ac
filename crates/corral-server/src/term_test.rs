//! An expiry decided in one leader term is never appended in a later one,
//! through the real write path: a one-node raft on RocksDB in a temporary
//! folder that loses its term to a newer vote and leads again in a newer
//! term, as a leader whose sweep task stalled across two elections would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use corral_raft::{LeaderId, Replica, ReplicatedNode, Vote, VoteRpc};
use corral_state::{Command, LeaseId, LockOrder, Proposal};

use crate::metrics::Metrics;
use crate::node::{answer_of, Attempt};
use crate::test_support::{start_raft, TempDir};

/// Starts the one node on `dir`, a cluster of its own.
async fn start(dir: &Path) -> ReplicatedNode {
    let started = start_raft(dir, &Metrics::new()).await;
    let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    started
        .raft
        .initialize_once(&members)
        .await
        .expect("initialized");
    started
}

/// Waits until the node leads, and returns its leader id.
async fn leadership(raft: &Replica) -> LeaderId {
    for _ in 0..200 {
        if let Some(leader) = raft.leadership() {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the one node never led");
}

fn proposal(command: Command) -> Proposal {
    Proposal {
        now_ms: 1,
        command,
        idempotency: None,
        caller: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_decided_in_one_term_is_refused_in_the_next() {
    let dir = TempDir::new("term-test");
    let lease_id = LeaseId(7);
    let node = start(&dir.0).await;
    let decided_in = leadership(&node.raft).await;
    let grant = Command::GrantLease {
        lease_id,
        ttl_ms: 5_000,
        lock_order: LockOrder::default(),
        lock_delay_ms: 0,
    };
    let granted = node.raft.write_in_term(&decided_in, proposal(grant)).await;
    assert!(matches!(answer_of(granted), Attempt::Done(Ok(Ok(_)))));

    // The node loses its term to a candidate of a newer one, and leads
    // again in a term after that when the candidate is never heard of.
    let leads_now = lead_again(&node, decided_in).await;
    let expire = || proposal(Command::ExpireLease { lease_id });
    let stale = node.raft.write_in_term(&decided_in, expire()).await;
    assert!(matches!(answer_of(stale), Attempt::NotLeader));
    assert!(
        node.state.read().table.lease(lease_id).is_some(),
        "not appended"
    );

    // Decided in the term that leads, it applies.
    let current = node.raft.write_in_term(&leads_now, expire()).await;
    assert!(matches!(answer_of(current), Attempt::Done(Ok(Ok(_)))));
    assert!(node.state.read().table.lease(lease_id).is_none());
    node.raft.shutdown().await.expect("shut down");
}

/// Asks the node for its vote for another candidate in the term after
/// `leader`'s, until it has stepped down and led again in a newer term;
/// returns its new leader id.
async fn lead_again(node: &ReplicatedNode, leader: LeaderId) -> LeaderId {
    for _ in 0..100 {
        let last_log_id = node.state.read().last_applied;
        let vote = Vote::new(leader.term + 1, leader.node_id + 1);
        // As a transfer of leadership, so that the leader's lease does not
        // refuse it.
        let mut request = VoteRpc::new(vote, last_log_id);
        request.leadership_transfer = true;
        let _ = node.raft.vote(request).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(now) = node.raft.leadership() {
            if now.term > leader.term {
                return now;
            }
        }
    }
    panic!("the node never led again in a newer term");
}
