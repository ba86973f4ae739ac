//! Joining a running cluster. A node started with `--join` and no cluster
//! identity yet serves only the join handshake and its health until an
//! admin's add reaches it through the leader (`POST /raft/join`, with the
//! cluster's identity in the peer headers). It then keeps that identity and
//! starts as any node does, with an empty log the leader fills.
//!
//! The handshake is also served by a running node (`routes/peer.rs`), so
//! that an add sent again finds the node it added before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{ErrorKind, JoinRequest, MemberSelf};
use serde_json::json;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::listener;
use crate::ServeError;

/// The peer endpoint of the handshake.
pub(crate) const PATH_JOIN: &str = "/raft/join";
/// How long the leader waits for a joining node to answer.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handshake's handler needs while the node waits.
pub(crate) struct Waiting {
    own: MemberSelf,
    /// Whether peers have a listener apart: auth needs it.
    peers_apart: bool,
    data_dir: std::path::PathBuf,
    joined: Mutex<Option<String>>,
    done: watch::Sender<bool>,
}

/// The TLS of the client and peer listeners, loaded.
pub(crate) type ListenerTls = (
    Option<Arc<corral_raft::tls::ServerTls>>,
    Option<Arc<corral_raft::tls::ServerTls>>,
);

/// Waits until the leader adds this node, and returns the cluster's
/// identity it was told; `None` if `stop` came first.
pub(crate) async fn wait_to_be_added(
    config: &ServerConfig,
    (tls, peer_tls): ListenerTls,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<String>, ServeError> {
    let (waiting, done_rx) = Waiting::new(config);
    let stopping = waiting.clone();
    let watch_stop = tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        let _ = stopping.done.send(true);
    });
    tracing::info!(
        node_id = config.node_id,
        "waiting to be added to a cluster (--join): run `corral cluster add` against it"
    );
    let limits = listener::Limits {
        connections_max: listener::PEER_CONNECTIONS_MAX,
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        idle_timeout: Some(listener::CLIENT_IDLE_TIMEOUT),
    };
    let drain = Duration::from_millis(100);
    let router = router(waiting.clone());
    let served = match config.peer_listen {
        None => {
            let client = listener::bind(config.listen).await?;
            listener::serve_until(client, router, limits, tls, done_rx, drain).await
        }
        Some(peer_addr) => {
            let client = listener::bind(config.listen).await?;
            let peer = listener::bind(peer_addr).await?;
            let clients =
                listener::serve_until(client, router.clone(), limits, tls, done_rx.clone(), drain);
            let peers = listener::serve_until(peer, router, limits, peer_tls, done_rx, drain);
            tokio::try_join!(clients, peers).map(|_| ())
        }
    };
    watch_stop.abort();
    served?;
    let joined = waiting.joined.lock().unwrap_or_else(|p| p.into_inner());
    Ok(joined.clone())
}

impl Waiting {
    /// A node of `config` waiting to be added, and the watch that turns
    /// true once it was.
    pub(crate) fn new(config: &ServerConfig) -> (Arc<Waiting>, watch::Receiver<bool>) {
        let (done, done_rx) = watch::channel(false);
        let waiting = Waiting {
            own: MemberSelf {
                node_id: config.node_id,
                client_addr: config.client_addr(),
            },
            peers_apart: config.peer_listen.is_some(),
            data_dir: config.data_dir.clone(),
            joined: Mutex::new(None),
            done,
        };
        (Arc::new(waiting), done_rx)
    }
}

/// The handshake, and health answers for probes while the node waits.
pub(crate) fn router(waiting: Arc<Waiting>) -> Router {
    Router::new()
        .route(PATH_JOIN, post(join))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(not_ready))
        .with_state(waiting)
}

async fn not_ready() -> ApiError {
    ApiError::unavailable("this node waits to be added to a cluster (--join)", None)
}

/// Takes the cluster's identity from the adding leader, once.
async fn join(
    State(waiting): State<Arc<Waiting>>,
    headers: HeaderMap,
    Json(request): Json<JoinRequest>,
) -> Result<Json<MemberSelf>, ApiError> {
    check_addressee(&waiting.own, &request)?;
    if request.auth_enabled && !waiting.peers_apart {
        return Err(join_failed(
            "auth is on in the cluster and this node serves peers on its client listener: start it with --peer-listen".into(),
        ));
    }
    let cluster_id = headers
        .get(corral_raft::CLUSTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| ApiError::invalid("a join carries the cluster's identity"))?;
    let mut joined = waiting.joined.lock().unwrap_or_else(|p| p.into_inner());
    match joined.as_deref() {
        Some(id) if id != cluster_id => {
            return Err(join_failed("this node joined another cluster".into()))
        }
        Some(_) => {}
        None => {
            crate::identity::adopt(&waiting.data_dir, cluster_id).map_err(ApiError::internal)?;
            tracing::info!(cluster_id, "added to a cluster: starting");
            *joined = Some(cluster_id.to_string());
            let _ = waiting.done.send(true);
        }
    }
    Ok(Json(waiting.own.clone()))
}

/// Refuses a join meant for another node id.
pub(crate) fn check_addressee(own: &MemberSelf, request: &JoinRequest) -> Result<(), ApiError> {
    if request.node_id == own.node_id {
        return Ok(());
    }
    Err(join_failed(format!(
        "this node is node {}, not node {}",
        own.node_id, request.node_id
    )))
}

pub(crate) fn join_failed(message: String) -> ApiError {
    ApiError::new(ErrorKind::JoinFailed, message)
}
