//! Serving HTTP (or HTTPS) on a listener, with limits a hostile client
//! cannot get around: a cap on open connections, a time limit on a
//! connection's first request (TLS handshake included) and on reading any
//! request's headers (a slow-loris client that trickles them is cut off),
//! a cap on concurrent HTTP/2 streams per connection, and a time limit on
//! a connection with no request open (HTTP/1 keep-alive waits are bounded
//! by the header timeout already; this bounds idle HTTP/2 connections).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::ServeError;
use corral_raft::tls::ServerTls;

/// The default cap on open connections of the client listener.
pub const CLIENT_CONNECTIONS_MAX_DEFAULT: usize = 4_096;
/// The cap on open connections of the peer listener: a few per member.
pub(crate) const PEER_CONNECTIONS_MAX: usize = 256;
/// The default time a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// The most concurrent HTTP/2 streams on one connection. A follower's
/// forwarding and replication each use one long-lived stream.
const H2_STREAMS_MAX: u32 = 256;
/// How often an idle HTTP/2 connection is pinged, and how long the answer
/// may take before the connection is closed.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the client listener keeps a connection with no request open.
pub(crate) const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most one warning per this long about refused connections.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The limits of one listener.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Open connections at most; more are closed as they arrive.
    pub connections_max: usize,
    /// The longest a connection may take to bring its first request to
    /// the router (TLS handshake included), and any request's headers to
    /// arrive, from the start of the request or of an idle keep-alive wait.
    pub header_read_timeout: Duration,
    /// How long a connection may stay with no request open (a streaming
    /// answer counts as open until its body ends); `None`: for ever, as
    /// on the peer listener, where peers keep their connections.
    pub idle_timeout: Option<Duration>,
}

/// A bound listener and its address, for its errors.
pub(crate) struct Listener {
    pub addr: SocketAddr,
    pub listener: TcpListener,
}

/// A listener bound to `addr`.
pub(crate) async fn bind(addr: SocketAddr) -> Result<Listener, ServeError> {
    let listener = TcpListener::bind(addr).await;
    let listener = listener.map_err(|source| ServeError::Listen { addr, source })?;
    Ok(Listener { addr, listener })
}

/// Serves `router` on `listener` (over TLS when `tls` is set) within
/// `limits` until `stop` turns true,
/// then lets open requests finish for at most `drain`.
pub(crate) async fn serve_until(
    listener: Listener,
    router: axum::Router,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> Result<(), ServeError> {
    let Listener { addr, listener } = listener;
    let builder = Arc::new(builder(limits));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let mut refusals = Refusals::new(addr);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors, say: wait rather than spin.
            Err(e) => {
                tracing::warn!(%addr, error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.refused(limits.connections_max);
            continue;
        };
        // Answers are small and written as soon as they are ready: Nagle's
        // algorithm would only hold them back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let watcher = graceful.watcher();
        let (builder, router, tls) = (builder.clone(), router.clone(), tls.clone());
        tokio::spawn(async move {
            let served = Served {
                builder: &builder,
                tls: tls.as_deref(),
                watcher,
                limits,
            };
            serve_connection(stream, router, served).await;
            drop(slot);
        });
    }
    // Closed now, so that new connections are refused (and retried on
    // another node) rather than left in the backlog while open ones drain.
    drop(listener);
    drained(graceful, addr, drain).await;
    Ok(())
}

/// The HTTP/1 and HTTP/2 (prior knowledge, as peers speak it) server of
/// every connection.
fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS_MAX)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// A connection on `I`, served by the router.
type Connection<I> =
    auto::Connection<'static, TokioIo<I>, TowerToHyperService<FirstRequestMarks>, TokioExecutor>;

/// One connection on `io`, served by `service`.
fn connect<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: FirstRequestMarks,
) -> Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .into_owned()
}

/// What a connection does, and when it last did it.
struct Activity {
    /// Whether a request ever reached the router.
    dispatched: AtomicBool,
    /// Requests whose answer has not ended yet.
    open: AtomicUsize,
    /// When the last one ended, in milliseconds since `started`.
    last_ms: AtomicU64,
    started: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            dispatched: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// How long the connection has had no request open.
    fn idle_for(&self) -> Duration {
        if self.open.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }
}

/// A request open on its connection, until its answer's body ends.
struct Open(Arc<Activity>);

impl Open {
    fn begin(activity: &Arc<Activity>) -> Open {
        activity.dispatched.store(true, Ordering::Relaxed);
        activity.open.fetch_add(1, Ordering::AcqRel);
        Open(activity.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let now_ms = self.0.started.elapsed().as_millis() as u64;
        self.0.last_ms.fetch_max(now_ms, Ordering::AcqRel);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router of one connection, which records its activity.
#[derive(Clone)]
struct FirstRequestMarks {
    router: axum::Router,
    activity: Arc<Activity>,
}

type Answer = axum::response::Response;
type AnswerFuture = Pin<Box<dyn Future<Output = Result<Answer, std::convert::Infallible>> + Send>>;

impl<B> tower::Service<axum::http::Request<B>> for FirstRequestMarks
where
    axum::Router:
        tower::Service<axum::http::Request<B>, Response = Answer, Error = std::convert::Infallible>,
    <axum::Router as tower::Service<axum::http::Request<B>>>::Future: Send + 'static,
{
    type Response = Answer;
    type Error = std::convert::Infallible;
    type Future = AnswerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<axum::http::Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let open = Open::begin(&self.activity);
        let answer = self.router.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            // The request stays open until its body ends or is dropped: a
            // stream that outlives its headers is not idle.
            Ok(answer.map(|body| {
                let body = http_body_util::BodyExt::map_frame(body, move |frame| {
                    let _open = &open;
                    frame
                });
                axum::body::Body::new(body)
            }))
        })
    }
}

/// How one connection is served.
struct Served<'a> {
    builder: &'a auto::Builder<TokioExecutor>,
    tls: Option<&'a ServerTls>,
    watcher: Watcher,
    limits: Limits,
}

/// Serves one accepted connection: over TLS when `tls` is set. A
/// connection whose first request has not reached the router within the
/// header timeout (a client that says nothing, half a TLS handshake or
/// half an HTTP/2 preface) is closed: the server's own header timeout
/// starts only once it knows the protocol. So is one that stays idle past
/// the idle timeout.
async fn serve_connection(stream: TcpStream, router: axum::Router, served: Served<'_>) {
    let Served {
        builder,
        tls,
        watcher,
        limits,
    } = served;
    let deadline = Instant::now() + limits.header_read_timeout;
    let activity = Arc::new(Activity::new());
    let service = FirstRequestMarks {
        router,
        activity: activity.clone(),
    };
    let served = async {
        match tls {
            None => watcher.watch(connect(builder, stream, service)).await,
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.config());
                let stream = acceptor.accept(stream).await?;
                watcher.watch(connect(builder, stream, service)).await
            }
        }
    };
    let silent = async {
        tokio::time::sleep_until(deadline).await;
        if activity.dispatched.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = served => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = silent => tracing::debug!("a connection sent no request in time; closed"),
        () = idle(&activity, limits.idle_timeout) => tracing::debug!("an idle connection closed"),
    }
}

/// Resolves once the connection has had no request open for `limit`;
/// never without one.
async fn idle(activity: &Activity, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        let idle_for = activity.idle_for();
        if idle_for >= limit {
            return;
        }
        tokio::time::sleep(limit - idle_for).await;
    }
}

/// Waits for open connections to finish, at most `drain`.
async fn drained(graceful: GracefulShutdown, addr: SocketAddr, drain: Duration) {
    // Requests still waiting for a lock get `drain` to finish; the rest
    // are dropped, and their waits are cancelled by the next leader's
    // sweep.
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(%addr, "requests still open after {drain:?}; stopping anyway");
    }
}

/// Connections refused because the listener was full, warned of now and
/// then.
struct Refusals {
    addr: SocketAddr,
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Refusals {
    fn new(addr: SocketAddr) -> Refusals {
        Refusals {
            addr,
            since_warning: 0,
            warned_at: None,
        }
    }

    fn refused(&mut self, connections_max: usize) {
        self.since_warning += 1;
        let due = self
            .warned_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL);
        if due {
            tracing::warn!(
                addr = %self.addr,
                refused = self.since_warning,
                connections_max,
                "connections refused: the listener has as many open as it allows"
            );
            self.since_warning = 0;
            self.warned_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
#[path = "listener_test.rs"]
mod tests;
