//! [`Client`]: one handle on a cluster, moving between its nodes.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_api::{
    Backup, ClusterView, ErrorBody, ErrorKind, GrantLeaseRequest, KvDeleteRequest, KvPutRequest,
    KvValue, KvWriteResponse, LeaseResponse, LeaseView, LockHistory, LockList, LockName, LockView,
    ValidateRequest, ValidateResponse,
};
use corral_api::{Fence, FencingToken, KvKey, LeaseId};
use rand::Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::error::Error;
use crate::lease::{Lease, LeaseOptions};
use crate::tls::TlsOptions;

/// How a [`Client`] retries: exponential backoff with full jitter, bounded
/// in attempts and in time.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// The most tries of one call, the first included.
    pub attempts: u32,
    /// The backoff before the second try; it doubles with each try.
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
    /// How long one call may take with all its tries, not counting the time
    /// a request may wait on the server.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause before try `attempt` (1 for the second try): a random
    /// duration up to `min(cap, base * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// A handle on a corral cluster. Cheap to clone; clones share the
/// connection pool and the node currently in use.
///
/// Any node serves any request. The client sticks to one node and moves to
/// the next on a connection error, a timeout or a `503`, backing off
/// between tries. Every write carries an `Idempotency-Key`, so a retried
/// write never applies twice. On a cluster with auth on, each request
/// carries the bearer token given to [`Client::with_token`].
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    endpoints: Vec<String>,
    current: AtomicUsize,
    retry: RetryPolicy,
    timeout: Duration,
    /// `Bearer <token>`, marked sensitive so that it is never printed (its
    /// `Debug` is `Sensitive`) nor logged.
    authorization: Option<HeaderValue>,
}

/// One HTTP call as the transport sends it.
pub(crate) struct Call<'a, B> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) body: Option<&'a B>,
    /// How long the server may hold the request (a wait), on top of the
    /// client's request timeout.
    pub(crate) server_wait: Duration,
    /// The time after which no new try starts.
    pub(crate) give_up_at: Option<Instant>,
    /// The longest one try may take, if shorter than the client's.
    pub(crate) try_timeout: Option<Duration>,
}

impl<'a, B> Call<'a, B> {
    pub(crate) fn new(method: Method, path: &'a str, body: Option<&'a B>) -> Call<'a, B> {
        Call {
            method,
            path,
            body,
            server_wait: Duration::ZERO,
            give_up_at: None,
            try_timeout: None,
        }
    }
}

impl Client {
    /// A client for the nodes at `endpoints`: `host:port` (plain HTTP) or
    /// full `http://` or `https://` URLs. It starts with the first.
    pub fn new<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::with_retry(endpoints, RetryPolicy::default())
    }

    /// A client with its own retry policy.
    pub fn with_retry<I, S>(endpoints: I, retry: RetryPolicy) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::with_tls(endpoints, retry, &TlsOptions::default())
    }

    /// A client with its own retry policy and TLS settings. With any TLS
    /// option set, endpoints given as `host:port` are reached over
    /// `https://`; explicit `http://` and `https://` URLs are kept. A TLS
    /// file that cannot be read or parsed is an [`Error::Config`] naming
    /// it.
    pub fn with_tls<I, S>(
        endpoints: I,
        retry: RetryPolicy,
        tls: &TlsOptions,
    ) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scheme = if tls.is_set() { "https" } else { "http" };
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .filter_map(|e| endpoint_url(e.as_ref(), scheme))
            .collect();
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoints".into()));
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        let http = tls.build(builder)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                current: AtomicUsize::new(0),
                retry,
                timeout: Duration::from_secs(10),
                authorization: None,
            }),
        })
    }

    /// This client with a bearer token, sent as `Authorization: Bearer
    /// <token>` with every request: the secret a cluster with auth on
    /// gave when the token was added. The new handle shares the
    /// connection pool but not the node in use with `self`'s other clones,
    /// which keep their own token (or none). The token is never printed
    /// nor logged. A token that is blank or not a valid header value
    /// (printable ASCII, spaces and tabs) is an [`Error::Config`], which
    /// does not show it.
    pub fn with_token(self, token: impl Into<String>) -> Result<Client, Error> {
        let token = token.into();
        if token.trim().is_empty() {
            return Err(Error::Config("the token is empty".into()));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::Config("the token is not a valid header value (ASCII only)".into())
            })?;
        authorization.set_sensitive(true);
        let inner = &self.inner;
        Ok(Client {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                endpoints: inner.endpoints.clone(),
                current: AtomicUsize::new(inner.current.load(Ordering::Relaxed)),
                retry: inner.retry.clone(),
                timeout: inner.timeout,
                authorization: Some(authorization),
            }),
        })
    }

    /// Whether requests carry a bearer token.
    pub fn has_token(&self) -> bool {
        self.inner.authorization.is_some()
    }

    /// The endpoints, in order.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The endpoint the next call goes to first.
    pub fn current_endpoint(&self) -> &str {
        let i = self.inner.current.load(Ordering::Relaxed) % self.inner.endpoints.len();
        &self.inner.endpoints[i]
    }

    /// Grants a lease of `ttl` and keeps it alive in the background.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Lease, Error> {
        self.grant_lease_with(ttl, LeaseOptions::default()).await
    }

    /// Grants a lease with a lock order or a lock-delay.
    pub async fn grant_lease_with(
        &self,
        ttl: Duration,
        options: LeaseOptions,
    ) -> Result<Lease, Error> {
        let request = GrantLeaseRequest {
            ttl_ms: ttl.as_millis() as u64,
            lock_order: options.lock_order,
            lock_delay_ms: options.lock_delay.map(|d| d.as_millis() as u64),
        };
        // The lease is good until the send time of its grant plus ttl, on
        // this process's monotonic clock.
        let sent_at = Instant::now();
        let granted: LeaseResponse = self
            .write(Call::new(Method::POST, "/v1/leases", Some(&request)))
            .await?;
        Ok(Lease::start(self.clone(), granted.lease_id, ttl, sent_at))
    }

    /// Grants a lease that this client does not keep alive: for a caller
    /// that sends its own keepalives (or lets it expire).
    pub async fn grant_lease_id(&self, ttl: Duration) -> Result<LeaseResponse, Error> {
        let request = GrantLeaseRequest {
            ttl_ms: ttl.as_millis() as u64,
            lock_order: None,
            lock_delay_ms: None,
        };
        self.write(Call::new(Method::POST, "/v1/leases", Some(&request)))
            .await
    }

    /// Renews a lease once; `Ok` means the leader acked it. Each try takes
    /// at most `try_timeout`, so that a node cut off from the leader (which
    /// may take seconds to say so) does not use up the lease's time.
    pub async fn keepalive(
        &self,
        lease_id: LeaseId,
        give_up_at: Instant,
        try_timeout: Duration,
    ) -> Result<(), Error> {
        let path = format!("/v1/leases/{lease_id}/keepalive");
        let mut call = Call::new(Method::POST, &path, None::<&()>);
        call.give_up_at = Some(give_up_at);
        call.try_timeout = Some(try_timeout);
        let _: LeaseResponse = self.read(call).await?;
        Ok(())
    }

    /// Ends a lease now, releasing all it holds.
    pub async fn revoke(&self, lease_id: LeaseId) -> Result<(), Error> {
        let path = format!("/v1/leases/{lease_id}");
        let answer: Result<serde_json::Value, Error> = self
            .write(Call::new(Method::DELETE, &path, None::<&()>))
            .await;
        match answer {
            // A retry after the first try ended it finds it gone.
            Ok(_) | Err(Error::LeaseLost) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A lease as the cluster knows it.
    pub async fn lease(&self, lease_id: LeaseId) -> Result<LeaseView, Error> {
        let path = format!("/v1/leases/{lease_id}");
        self.read(Call::new(Method::GET, &path, None::<&()>)).await
    }

    /// One lock, its holders and queue.
    pub async fn lock(&self, name: &LockName) -> Result<LockView, Error> {
        let path = format!("/v1/locks?name={}", encode(name.as_str()));
        self.read(Call::new(Method::GET, &path, None::<&()>)).await
    }

    /// A lock's recent events, oldest first.
    pub async fn lock_history(&self, name: &LockName) -> Result<LockHistory, Error> {
        let path = format!("/v1/locks/history?name={}", encode(name.as_str()));
        self.read(Call::new(Method::GET, &path, None::<&()>)).await
    }

    /// The locks in use whose names start with `prefix`.
    pub async fn locks(&self, prefix: &str) -> Result<LockList, Error> {
        let path = format!("/v1/locks?prefix={}", encode(prefix));
        self.read(Call::new(Method::GET, &path, None::<&()>)).await
    }

    /// A backup of the whole table, taken on the leader after a read
    /// barrier (a cluster admin's token, with auth on). Check it with
    /// `corral snapshot save`, which writes it to a file.
    pub async fn backup(&self) -> Result<Backup, Error> {
        self.read(Call::new(Method::GET, "/v1/snapshot", None::<&()>))
            .await
    }

    /// The cluster as the current node sees it.
    pub async fn cluster(&self) -> Result<ClusterView, Error> {
        self.read(Call::new(Method::GET, "/v1/cluster", None::<&()>))
            .await
    }

    /// Whether `token` is the one `name` is held under right now.
    pub async fn validate(
        &self,
        name: &LockName,
        token: FencingToken,
    ) -> Result<ValidateResponse, Error> {
        let request = ValidateRequest {
            name: name.clone(),
            fencing_token: token,
        };
        self.read(Call::new(
            Method::POST,
            "/v1/locks/validate",
            Some(&request),
        ))
        .await
    }

    /// Reads a key of the fenced store; `None` when it does not exist.
    pub async fn kv_get(&self, key: &KvKey) -> Result<Option<KvValue>, Error> {
        let path = format!("/v1/kv?key={}", encode(key.as_str()));
        match self.read(Call::new(Method::GET, &path, None::<&()>)).await {
            Ok(value) => Ok(Some(value)),
            Err(Error::Refused {
                kind: ErrorKind::KeyNotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a key of the fenced store under `fence`.
    pub async fn kv_put(
        &self,
        key: &KvKey,
        value: &str,
        fence: Fence,
    ) -> Result<KvWriteResponse, Error> {
        let request = KvPutRequest {
            key: key.clone(),
            value: value.to_string(),
            fence,
        };
        self.write(Call::new(Method::PUT, "/v1/kv", Some(&request)))
            .await
    }

    /// Deletes a key of the fenced store under `fence`.
    pub async fn kv_delete(&self, key: &KvKey, fence: Fence) -> Result<KvWriteResponse, Error> {
        let request = KvDeleteRequest {
            key: key.clone(),
            fence,
        };
        self.write(Call::new(Method::DELETE, "/v1/kv", Some(&request)))
            .await
    }

    /// Sends a read (or anything safe to repeat), with failover and
    /// retries.
    pub(crate) async fn read<B: Serialize, T: DeserializeOwned>(
        &self,
        call: Call<'_, B>,
    ) -> Result<T, Error> {
        self.send(call, None).await
    }

    /// Sends a write under a fresh idempotency key, kept for every retry,
    /// so that the write applies at most once.
    pub(crate) async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        call: Call<'_, B>,
    ) -> Result<T, Error> {
        let key = idempotency_key();
        self.send(call, Some(&key)).await
    }

    /// Tries `call` on one node after another, with backoff between tries,
    /// until one answers for good or the retry budget is spent.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        call: Call<'_, B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, Error> {
        let inner = &self.inner;
        debug_assert!(!inner.endpoints.is_empty(), "Client::new requires one");
        let started = Instant::now();
        let give_up_at = call
            .give_up_at
            .unwrap_or(started + inner.retry.budget + call.server_wait);
        let mut last = String::new();
        for attempt in 0..inner.retry.attempts.max(1) {
            if attempt > 0 {
                let pause = inner.retry.backoff(attempt);
                if Instant::now() + pause >= give_up_at {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let index = inner.current.load(Ordering::Relaxed);
            let endpoint = &inner.endpoints[index % inner.endpoints.len()];
            let remaining = give_up_at.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let timeout =
                (call.try_timeout.unwrap_or(inner.timeout) + call.server_wait).min(remaining);
            match self
                .try_once(&call, endpoint, timeout, idempotency_key)
                .await
            {
                ControlFlow::Break(answer) => return answer,
                ControlFlow::Continue(why) => last = why,
            }
            // Move on to the next node, unless another call already did.
            let next = (index + 1) % inner.endpoints.len();
            let _ =
                inner
                    .current
                    .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
            tracing::debug!(endpoint = %endpoint, error = %last, "call failed; trying the next node");
        }
        Err(Error::Unavailable(if last.is_empty() {
            "no try left in the retry budget".into()
        } else {
            last
        }))
    }

    /// One try of `call` at `endpoint`: `Break` with the caller's answer (a
    /// success, or an error no other try would change), `Continue` with
    /// why it failed when another node may answer.
    async fn try_once<B: Serialize, T: DeserializeOwned>(
        &self,
        call: &Call<'_, B>,
        endpoint: &str,
        timeout: Duration,
        idempotency_key: Option<&str>,
    ) -> ControlFlow<Result<T, Error>, String> {
        let request = self.request(call, endpoint, timeout, idempotency_key);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return ControlFlow::Continue(format!("{endpoint}: {e}")),
        };
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return ControlFlow::Break(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Unavailable(format!("bad answer from {endpoint}: {e}"))),
            );
        }
        let error = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Error::from(body.error),
            Err(_) => Error::Unavailable(format!("{endpoint} answered {status}")),
        };
        if error.is_transient() {
            ControlFlow::Continue(error.to_string())
        } else {
            ControlFlow::Break(Err(error))
        }
    }

    /// The HTTP request of one try of `call` at `endpoint`.
    fn request<B: Serialize>(
        &self,
        call: &Call<'_, B>,
        endpoint: &str,
        timeout: Duration,
        idempotency_key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), format!("{endpoint}{}", call.path))
            .timeout(timeout);
        if let Some(body) = call.body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        request
    }
}

/// A fresh idempotency key: 128 random bits in hex.
fn idempotency_key() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// Percent-encodes a query value (`/` kept: it means nothing there).
pub(crate) fn encode(value: &str) -> String {
    percent_encode(value, b"/")
}

/// Percent-encodes `value` as one path segment: `/` too. A value that
/// cannot be one (empty, `.` or `..`, which URLs resolve away) is an
/// [`Error::InvalidArgument`].
pub(crate) fn segment(value: &str) -> Result<String, Error> {
    if matches!(value, "" | "." | "..") {
        return Err(Error::InvalidArgument(format!(
            "{value:?} cannot be named in a URL path"
        )));
    }
    Ok(percent_encode(value, b""))
}

/// Percent-encodes every byte of `value` but the unreserved ones and
/// `keep`.
fn percent_encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ if keep.contains(&byte) => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `endpoint` as a base URL: trimmed, without a trailing `/`, and with
/// `scheme` unless it names `http` or `https`; `None` when it has no
/// address.
fn endpoint_url(endpoint: &str, scheme: &str) -> Option<String> {
    let endpoint = endpoint.trim();
    let (scheme, address) = ["http", "https"]
        .into_iter()
        .find_map(|s| {
            let address = endpoint.strip_prefix(s)?.strip_prefix("://")?;
            Some((s, address))
        })
        .unwrap_or((scheme, endpoint));
    let address = address.trim_end_matches('/');
    (!address.is_empty()).then(|| format!("{scheme}://{address}"))
}

#[cfg(test)]
#[path = "client_test.rs"]
mod tests;
