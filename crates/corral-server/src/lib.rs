//! A corral node: the HTTP API v1, the peer endpoints, forwarding to the
//! leader, keepalives and lease expiry, around a replicated lock table.
//!
//! - `routes`: the axum router (public API and `/raft/*`).
//! - `Node`: a node's raft, applied state, and how requests reach the
//!   leader.
//! - `LeaseClock` and `sweep`: lease deadlines on the leader, and the
//!   sweep that proposes expiries; `sm_clock`: state-machine time on the
//!   leader, which follows its monotonic clock.
//! - `WaitRegistry`: requests waiting for locks, woken by applied events.
//! - `ApiError`: every failure, mapped once to its code and status.
//! - `auth`: bearer tokens, the rule of every route (`routes::rules`), and
//!   the caller each write carries to apply.

mod auth;
pub mod backup;
mod config;
mod error;
#[cfg(test)]
mod error_test;
mod forward;
#[cfg(test)]
mod forward_test;
mod idempotency;
mod identity;
mod join;
#[cfg(test)]
mod join_test;
mod json;
mod listener;
mod members;
mod membership;
#[cfg(test)]
mod membership_test;
mod metrics;
#[cfg(test)]
mod metrics_test;
mod node;
mod request_id;
mod routes;
mod sweep;
mod systemd;
#[cfg(test)]
mod term_test;
#[cfg(test)]
mod test_support;
mod wait_registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{
    RootTokenError, TOKEN_HOLDS_MAX_DEFAULT, TOKEN_KV_KEYS_MAX_DEFAULT, TOKEN_LEASES_MAX_DEFAULT,
    TOKEN_QUOTAS_DEFAULT,
};
pub use corral_state::{
    Quotas, IDEMPOTENCY_WINDOW_MS_DEFAULT, QUEUES_MAX_DEFAULT, QUEUE_ITEMS_MAX_DEFAULT,
};

/// The default cap on keys of the fenced store.
pub const KV_KEYS_MAX_DEFAULT: usize = 100_000;
/// The default cap on bytes of the fenced store (keys plus JSON values):
/// it keeps snapshots small enough to ship to a lagging follower.
pub const KV_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

pub use config::{
    parse_initial_cluster, parse_lock_order, ClusterSpecError, LockOrderSpecError, ServerConfig,
};
use corral_leader::LeaseClock;
pub use corral_raft::tls::{TlsError, TlsFiles};
pub use corral_raft::RaftSettings;
pub use listener::{CLIENT_CONNECTIONS_MAX_DEFAULT, HEADER_READ_TIMEOUT_MS_DEFAULT};
use node::Node;
use wait_registry::WaitRegistry;

/// The exit status of a node removed from the cluster (`EX_CONFIG`): its
/// supervisor must not restart it (the systemd unit says so).
pub const EXIT_REMOVED: i32 = 78;

/// How long open requests may run after a shutdown signal.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The node's id is not in the initial cluster.
    #[error("node id {0} is not in --initial-cluster")]
    NotAMember(u64),
    /// Raft or storage failed to start.
    #[error(transparent)]
    Start(#[from] corral_raft::StartError),
    /// The listener failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// A listener's TLS files do not load.
    #[error("TLS files: {0}")]
    Tls(#[from] TlsError),
    /// The peer CA also signs client certificates: any client could then
    /// act as a peer.
    #[error("--peer-ca is the same CA as --client-ca: every client certificate would pass as a peer; give peers a CA of their own")]
    PeerCaSharedWithClients,
    /// TLS needs the peers on a listener apart: the client listener's and
    /// the peer listener's are different.
    #[error("--tls-cert and --peer-tls-cert need --peer-listen")]
    TlsNeedsPeerListen,
    /// Auth with peers on the client listener would guard nothing: its
    /// `/raft/*` routes take forged commands from anyone.
    #[error("auth (--auth-root-token-file, or on in this cluster's state) needs --peer-listen: on a shared listener anyone could forge commands through /raft/*")]
    AuthNeedsPeerListen,
    /// The root token file does not load.
    #[error(transparent)]
    RootToken(#[from] auth::RootTokenError),
    /// This node was removed from the cluster: it stops for good.
    #[error("node {node_id} was removed from the cluster ({reason}); it stops for good: its id is never taken again. Wipe its data folder and add it under a new id to bring the machine back")]
    Removed {
        /// This node's id.
        node_id: u64,
        /// How it found out.
        reason: String,
    },
    /// The seed a restore left does not load.
    #[error("the restore seed in the data folder: {0}")]
    Seed(#[from] backup::BackupError),
}

/// Runs a node until `shutdown` resolves, then stops it cleanly.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_config(&config)?;
    let load = |files: &Option<TlsFiles>| match files {
        Some(files) => {
            corral_raft::tls::ServerTls::load(files.clone()).map(|tls| Some(Arc::new(tls)))
        }
        None => Ok(None),
    };
    let tls = load(&config.tls)?;
    let peer_tls = load(&config.peer_tls)?;
    if shares_a_ca(config.tls.as_ref(), config.peer_tls.as_ref()) {
        return Err(ServeError::PeerCaSharedWithClients);
    }
    if config.listen.ip().is_unspecified() && config.advertise.is_none() {
        tracing::warn!(listen = %config.listen, "--listen is a wildcard address and --advertise is not set: other nodes show clients an address they cannot reach");
    }
    let (stop_tx, stop) = stop_signal(shutdown);
    if config.join && identity::stored(&config.data_dir)?.is_none() {
        let tls = (tls.clone(), peer_tls.clone());
        if join::wait_to_be_added(&config, tls, stop.clone())
            .await?
            .is_none()
        {
            return Ok(());
        }
    }
    let node = Arc::new(start_node(&config).await?);
    if let Err(e) = check_started(&node, &config) {
        let _ = node.raft.shutdown().await;
        return Err(e);
    }
    let removal = node.peers.removal.clone();
    let stop_on_removal = tokio::spawn(async move {
        let why = removal.removed().await;
        tracing::error!(reason = %why, "this node was removed from the cluster: stopping");
        let _ = stop_tx.send(true);
    });
    let client = listener::bind(config.listen).await?;
    let peer = match config.peer_listen {
        Some(addr) => Some(listener::bind(addr).await?),
        None => None,
    };
    tracing::info!(node_id = config.node_id, listen = %config.listen, peer_listen = ?config.peer_listen, client_addr = %config.client_addr(), data_dir = %config.data_dir.display(), "corral node listening");
    if peer.is_none() {
        tracing::warn!("peers share the client listener: anyone who reaches it can call /raft/*, unauthenticated; serve peers apart with --peer-listen");
    }
    let tasks = spawn_background(&node, config.initial_cluster.clone());
    // Ready once it listens: peers can reach it, and a cluster that forms
    // needs the others started too, so waiting for a leader here would
    // hold a one-at-a-time start for ever.
    systemd::notify("READY=1");
    let serve = |listener, router, (connections_max, idle_timeout), tls, stop| {
        let limits = listener::Limits {
            connections_max,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            idle_timeout,
        };
        listener::serve_until(listener, router, limits, tls, stop, SHUTDOWN_DRAIN)
    };
    let clients = (
        config.client_connections_max,
        Some(listener::CLIENT_IDLE_TIMEOUT),
    );
    let served = match peer {
        None => serve(client, routes::router(node.clone()), clients, None, stop).await,
        Some(peer) => {
            let clients = serve(
                client,
                routes::client_router(node.clone()),
                clients,
                tls,
                stop.clone(),
            );
            let peers = serve(
                peer,
                routes::peer_router(node.clone()),
                (listener::PEER_CONNECTIONS_MAX, None),
                peer_tls,
                stop,
            );
            tokio::try_join!(clients, peers).map(|_| ())
        }
    };
    systemd::notify("STOPPING=1");
    stop_on_removal.abort();
    for task in tasks {
        task.abort();
    }
    if let Err(e) = node.raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    tracing::info!(node_id = config.node_id, "corral node stopped");
    served?;
    match node.peers.removal.reason() {
        Some(reason) => Err(ServeError::Removed {
            node_id: config.node_id,
            reason,
        }),
        None => Ok(()),
    }
}

/// Refuses to serve on a state that forbids it: a node removed from the
/// cluster, or auth on with the peers on the client listener.
fn check_started(node: &Node, config: &ServerConfig) -> Result<(), ServeError> {
    if node.is_retired(config.node_id) {
        return Err(ServeError::Removed {
            node_id: config.node_id,
            reason: "its own state says so".into(),
        });
    }
    // Auth may be on from another node's file: then this node needs its
    // peers apart too, whether or not it was given the file.
    let auth_on = node.state.read().table.tokens().enabled();
    if auth_on && config.peer_listen.is_none() {
        return Err(ServeError::AuthNeedsPeerListen);
    }
    Ok(())
}

/// Refuses a configuration whose parts do not fit together.
fn check_config(config: &ServerConfig) -> Result<(), ServeError> {
    if !config.join && !config.initial_cluster.contains_key(&config.node_id) {
        return Err(ServeError::NotAMember(config.node_id));
    }
    if (config.tls.is_some() || config.peer_tls.is_some()) && config.peer_listen.is_none() {
        return Err(ServeError::TlsNeedsPeerListen);
    }
    if config.auth_root_token_file.is_some() {
        if config.peer_listen.is_none() {
            return Err(ServeError::AuthNeedsPeerListen);
        }
        if config.peer_tls.is_none() {
            tracing::warn!("auth is on but peers talk plain HTTP: anyone who reaches --peer-listen can forge commands; add --peer-tls-cert, or keep the peer network closed");
        }
    }
    Ok(())
}

/// Whether the peer CA is the client CA, file for file: a client
/// certificate would then open the peer listener.
fn shares_a_ca(tls: Option<&TlsFiles>, peer_tls: Option<&TlsFiles>) -> bool {
    let ca = |files: Option<&TlsFiles>| files.and_then(|f| f.ca.as_ref()).map(std::fs::read);
    match (ca(tls), ca(peer_tls)) {
        (Some(Ok(client_ca)), Some(Ok(peer_ca))) => client_ca == peer_ca,
        _ => false,
    }
}

/// Becomes true once `shutdown` resolves, or the sender is told to stop.
fn stop_signal(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    Arc<tokio::sync::watch::Sender<bool>>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let on_shutdown = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = on_shutdown.send(true);
    });
    (stop_tx, stop_rx)
}

/// Opens the node's storage, starts its raft and builds the node.
async fn start_node(config: &ServerConfig) -> Result<Node, ServeError> {
    let root_hash = match &config.auth_root_token_file {
        Some(path) => Some(auth::read_root_token(path)?),
        None => None,
    };
    let seed = backup::read_seed(&config.data_dir)?;
    let cluster_id =
        identity::cluster_id(&config.data_dir, &config.initial_cluster, seed.as_ref())?;
    let identity = corral_raft::PeerIdentity {
        cluster_id: cluster_id.clone(),
        node_id: config.node_id,
    };
    let peers = corral_raft::PeerClients::for_cluster(config.peer_tls.as_ref(), Some(&identity))?;
    let waits = WaitRegistry::default();
    let metrics = Arc::new(metrics::Metrics::new());
    let clock = Arc::new(LeaseClock::default());
    let faults = faults_of(config);
    let started = corral_raft::start(
        config.node_id,
        &config.data_dir,
        config.raft,
        peers.clone(),
        faults.clone(),
        event_sink(waits.clone(), metrics.clone(), clock.clone()),
        metrics.store.clone(),
    )
    .await?;
    Ok(Node {
        id: config.node_id,
        recovered: recovery_watch(started.raft.clone()),
        raft: started.raft,
        state: started.state,
        waits,
        clock,
        sm_clock: corral_leader::SmClock::default(),
        peers: peers.clone(),
        ttl_ms_min: config.ttl_ms_min(),
        lock_order: config.lock_order.clone(),
        idempotency_window_ms: config.idempotency_window_ms,
        kv_keys_max: config.kv_keys_max,
        kv_bytes_max: config.kv_bytes_max,
        queue_items_max: config.queue_items_max,
        queues_max: config.queues_max,
        faults,
        metrics,
        forwarder: forward::Forwarder::start(peers),
        client_addrs: members::ClientAddrs::new(config.node_id, config.client_addr()),
        body_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        auth: auth::AuthSettings {
            root_hash,
            quotas: config.token_quotas,
            metrics_protected: config.auth_metrics,
        },
        seed: std::sync::Mutex::new(seed.map(Arc::new)),
        membership_change: tokio::sync::Mutex::new(()),
        data_dir: config.data_dir.clone(),
        cluster_id,
    })
}

/// What the state machine tells as it applies: to the metrics, to the
/// lease deadlines (which the leader keeps), and to the requests waiting
/// for locks.
fn event_sink(
    waits: WaitRegistry,
    metrics: Arc<metrics::Metrics>,
    clock: Arc<LeaseClock>,
) -> corral_raft::EventSink {
    Arc::new(move |notice: corral_raft::Notice<'_>| {
        corral_leader::learn_leases(&clock, &notice);
        if let corral_raft::Notice::Applied {
            ended,
            expired_lease,
            queue,
            ..
        } = &notice
        {
            metrics.applied(ended, expired_lease.is_some());
            metrics.queue_applied(queue);
        }
        waits.notify(notice)
    })
}

/// The faults of a failure test, when `--test-faults` is on, loudly.
fn faults_of(config: &ServerConfig) -> corral_raft::Faults {
    if !config.test_faults {
        return corral_raft::Faults::default();
    }
    tracing::warn!(
        clock_offset_ms = config.test_clock_offset_ms,
        "TEST FAULTS ARE ON: POST /test/faults can partition this node and skew its clock. Never run a production node with --test-faults."
    );
    let faults = corral_raft::Faults::enabled();
    faults.set_clock_offset_ms(config.test_clock_offset_ms);
    faults
}

/// Becomes true once this node has recovered from its last restart. The
/// committed id on disk may be older than what this node applied before a
/// restart; reads wait until a cluster commit covers the whole durable log
/// and is applied.
fn recovery_watch(raft: corral_raft::Replica) -> tokio::sync::watch::Receiver<bool> {
    let (recovered_tx, recovered) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        match raft.wait_for_recovery().await {
            Ok(()) => {
                let _ = recovered_tx.send(true);
            }
            Err(e) => tracing::warn!(error = %e, "recovery after start did not complete"),
        }
    });
    recovered
}

/// Starts what runs beside the listener: the cluster's first
/// initialization, the lease sweep, the leader watch and the members'
/// client addresses.
fn spawn_background(
    node: &Arc<Node>,
    members: BTreeMap<corral_raft::NodeId, String>,
) -> [tokio::task::JoinHandle<()>; 4] {
    // Every node may try: raft refuses all but the first, and a node that
    // has a log or a vote is never initialized again. In the background, so
    // that this node already answers its peers' votes.
    // A joining node has no members to start with: the leader adds it.
    let raft = node.raft.clone();
    let initialize = tokio::spawn(async move {
        if members.is_empty() {
            return;
        }
        if let Err(e) = raft.initialize_once(&members).await {
            tracing::error!(error = %e, "initializing the cluster failed");
        }
    });
    let sweep = tokio::spawn(sweep::run(node.clone()));
    let leaders = tokio::spawn(watch_leader(node.raft.clone(), node.metrics.clone()));
    let members = tokio::spawn(members::learn(node.clone()));
    [initialize, sweep, leaders, members]
}

/// Counts and logs every change of the leader this node knows.
async fn watch_leader(raft: corral_raft::Replica, metrics: Arc<metrics::Metrics>) {
    raft.watch_leader(|leader, term| {
        tracing::info!(?leader, term, "leader changed");
        metrics.leader_changed();
    })
    .await;
}
