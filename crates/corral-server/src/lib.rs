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

mod config;
mod error;
#[cfg(test)]
mod error_test;
mod forward;
#[cfg(test)]
mod forward_test;
mod idempotency;
mod json;
mod lease_clock;
mod metrics;
mod node;
mod request_id;
mod routes;
mod sm_clock;
mod sweep;
#[cfg(test)]
mod term_test;
#[cfg(test)]
mod test_support;
mod wait_registry;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use openraft::BasicNode;

pub use corral_state::IDEMPOTENCY_WINDOW_MS_DEFAULT;

/// The default cap on keys of the fenced store.
pub const KV_KEYS_MAX_DEFAULT: usize = 100_000;
/// The default cap on bytes of the fenced store (keys plus JSON values):
/// it keeps snapshots small enough to ship to a lagging follower.
pub const KV_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

pub use config::{
    parse_initial_cluster, parse_lock_order, ClusterSpecError, LockOrderSpecError, ServerConfig,
};
pub use corral_raft::RaftSettings;
use lease_clock::LeaseClock;
use node::Node;
use wait_registry::WaitRegistry;

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
}

/// Runs a node until `shutdown` resolves, then stops it cleanly.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !config.initial_cluster.contains_key(&config.node_id) {
        return Err(ServeError::NotAMember(config.node_id));
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()?;
    let waits = WaitRegistry::default();
    let metrics = Arc::new(metrics::Metrics::new());
    let events = {
        let waits = waits.clone();
        let metrics = metrics.clone();
        Arc::new(move |notice: corral_raft::Notice<'_>| {
            if let corral_raft::Notice::Applied {
                ended,
                expired_lease,
                ..
            } = &notice
            {
                metrics.applied(ended, expired_lease.is_some());
            }
            waits.notify(notice)
        })
    };
    let faults = if config.test_faults {
        tracing::warn!(
            clock_offset_ms = config.test_clock_offset_ms,
            "TEST FAULTS ARE ON: POST /test/faults can partition this node and skew its clock. Never run a production node with --test-faults."
        );
        let faults = corral_raft::Faults::enabled();
        faults.set_clock_offset_ms(config.test_clock_offset_ms);
        faults
    } else {
        corral_raft::Faults::default()
    };
    let started = corral_raft::start(
        config.node_id,
        &config.data_dir,
        config.raft,
        http.clone(),
        faults.clone(),
        events,
        metrics.store.clone(),
    )
    .await?;
    let forwarder = forward::Forwarder::start()?;
    // The committed id on disk may be older than what this node applied
    // before a restart; reads wait until a cluster commit covers the whole
    // durable log and is applied.
    let (recovered_tx, recovered) = tokio::sync::watch::channel(false);
    let raft = started.raft.clone();
    tokio::spawn(async move {
        match raft.wait_for_recovery(None).await {
            Ok(_) => {
                let _ = recovered_tx.send(true);
            }
            Err(e) => tracing::warn!(error = %e, "recovery after start did not complete"),
        }
    });
    let node = Arc::new(Node {
        id: config.node_id,
        raft: started.raft.clone(),
        state: started.state,
        waits,
        clock: LeaseClock::default(),
        sm_clock: sm_clock::SmClock::default(),
        http,
        ttl_ms_min: config.ttl_ms_min(),
        lock_order: config.lock_order.clone(),
        idempotency_window_ms: config.idempotency_window_ms,
        kv_keys_max: config.kv_keys_max,
        kv_bytes_max: config.kv_bytes_max,
        faults,
        metrics: metrics.clone(),
        forwarder,
        recovered,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(node_id = config.node_id, listen = %config.listen, data_dir = %config.data_dir.display(), "corral node listening");
    let members = config
        .initial_cluster
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    // Every node may try: raft refuses all but the first, and a node that
    // has a log or a vote is never initialized again. In the background, so
    // that this node already answers its peers' votes.
    let raft = started.raft.clone();
    tokio::spawn(async move {
        if let Err(e) = corral_raft::initialize_once(&raft, members).await {
            tracing::error!(error = %e, "initializing the cluster failed");
        }
    });
    let sweep = tokio::spawn(sweep::run(node.clone()));
    let leaders = tokio::spawn(watch_leader(started.raft.clone(), metrics));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // Answers are small and written as soon as they are ready: Nagle's
    // algorithm would only hold them back.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
    });
    let server = axum::serve(listener, routes::router(node.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    // Requests still waiting for a lock get SHUTDOWN_DRAIN to finish; the
    // rest are dropped, and their waits are cancelled by the next leader's
    // sweep.
    let drained = {
        let stop = stopped(stop_rx);
        async move {
            stop.await;
            tokio::time::sleep(SHUTDOWN_DRAIN).await;
        }
    };
    let served = tokio::select! {
        served = server.into_future() => served,
        () = drained => {
            tracing::warn!("requests still open after {SHUTDOWN_DRAIN:?}; stopping anyway");
            Ok(())
        }
    };
    sweep.abort();
    leaders.abort();
    if let Err(e) = started.raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    tracing::info!(node_id = config.node_id, "corral node stopped");
    served.map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })
}

/// Counts and logs every change of the leader this node knows.
async fn watch_leader(raft: corral_raft::CorralRaft, metrics: Arc<metrics::Metrics>) {
    use openraft::async_runtime::WatchReceiver;
    // The server metrics change with the vote, role or membership only;
    // the full metrics change with every write.
    let mut watch = raft.server_metrics();
    let mut leader = watch.borrow_watched().current_leader;
    while watch.changed().await.is_ok() {
        let (now, term) = {
            let m = watch.borrow_watched();
            (m.current_leader, m.vote.leader_id.term)
        };
        if now != leader {
            tracing::info!(leader = ?now, term, "leader changed");
            metrics.leader_changed();
            leader = now;
        }
    }
}
