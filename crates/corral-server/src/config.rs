//! What a node is told at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use corral_raft::{NodeId, RaftSettings};

/// The configuration of one node.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This node's id; a key of `initial_cluster`, unless it joins.
    pub node_id: NodeId,
    /// Where to listen for clients, and for peers too unless
    /// `peer_listen` is set.
    pub listen: SocketAddr,
    /// Where to listen for peers (raft and forwarding), apart from
    /// clients. `initial_cluster` then lists these addresses.
    pub peer_listen: Option<SocketAddr>,
    /// The `host:port` clients reach this node on, as the other members
    /// show it; `listen` when not set.
    pub advertise: Option<String>,
    /// Where the node keeps its RocksDB database.
    pub data_dir: PathBuf,
    /// Every member at first start: id to `host:port`. Used only to form
    /// the cluster once; a restarted node reads its membership from disk.
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// Join a running cluster (empty `initial_cluster`): wait, serving
    /// only the join handshake, until an admin adds this node.
    pub join: bool,
    /// TLS on the client listener (`ca`: the CA of required client
    /// certificates); plain HTTP when `None`.
    pub tls: Option<crate::TlsFiles>,
    /// Mutual TLS between peers, both ways: this node's certificate on its
    /// peer listener and on its connections to peers, and the CA every
    /// peer's certificate must be signed by; plain HTTP when `None`.
    pub peer_tls: Option<crate::TlsFiles>,
    /// The most connections the client listener keeps open (with one
    /// listener, peers' connections count too).
    pub client_connections_max: usize,
    /// How long a client may take to send a request's headers, in
    /// milliseconds.
    pub header_read_timeout_ms: u64,
    /// Raft timing and snapshots.
    pub raft: RaftSettings,
    /// The cluster's lock ranks, as name prefixes, lowest rank first. The
    /// leader writes its own into the replicated state, so every node
    /// should be given the same.
    pub lock_order: Vec<String>,
    /// How long answers to idempotency keys are remembered, in
    /// milliseconds of state-machine time.
    pub idempotency_window_ms: u64,
    /// The most keys the fenced store may hold (deleted ones count).
    pub kv_keys_max: usize,
    /// The most bytes the fenced store may hold (keys plus JSON values).
    pub kv_bytes_max: usize,
    /// The most items one work queue may hold.
    pub queue_items_max: usize,
    /// The most work queues there may be.
    pub queues_max: usize,
    /// The file of the root token's secret: auth goes on with it, for
    /// good, at the cluster's first start with it. Needs `peer_listen`.
    pub auth_root_token_file: Option<PathBuf>,
    /// The quotas of a token added without its own.
    pub token_quotas: corral_state::Quotas,
    /// Whether `/metrics` needs a token too (with auth on).
    pub auth_metrics: bool,
    /// Failure tests only: accept `POST /test/faults` (partitions, clock
    /// skew, a slow log sync). Off in production.
    pub test_faults: bool,
    /// Failure tests only: this node's wall clock is off by this much.
    pub test_clock_offset_ms: i64,
}

impl ServerConfig {
    /// The `host:port` clients reach this node on.
    pub fn client_addr(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The shortest lease ttl this cluster accepts: twice the longest
    /// election timeout, so that an ordinary election does not expire
    /// leases.
    pub fn ttl_ms_min(&self) -> u64 {
        2 * self.raft.election_timeout_max_ms
    }
}

/// Why a `--lock-order` value is malformed.
#[derive(Debug, thiserror::Error)]
#[error("--lock-order: {0} (expected prefix,prefix,...)")]
pub struct LockOrderSpecError(#[from] corral_state::LockOrderError);

/// Parses `--lock-order user/,cart/,inventory/` into prefixes.
pub fn parse_lock_order(spec: &str) -> Result<Vec<String>, LockOrderSpecError> {
    let prefixes: Vec<String> = spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    corral_state::check_lock_order(&prefixes)?;
    Ok(prefixes)
}

/// Why an `--initial-cluster` value is malformed.
#[derive(Debug, thiserror::Error)]
#[error("--initial-cluster: {0} (expected id=host:port,id=host:port,...)")]
pub struct ClusterSpecError(String);

/// Parses `1=127.0.0.1:7101,2=127.0.0.1:7102,...`.
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<NodeId, String>, ClusterSpecError> {
    let mut members = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| ClusterSpecError(format!("`{part}` has no `=`")))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| ClusterSpecError(format!("`{id}` is not a node id")))?;
        if addr.trim().is_empty() {
            return Err(ClusterSpecError(format!("node {id} has no address")));
        }
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(ClusterSpecError(format!("node {id} is listed twice")));
        }
    }
    if members.is_empty() {
        return Err(ClusterSpecError("no members".into()));
    }
    Ok(members)
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
