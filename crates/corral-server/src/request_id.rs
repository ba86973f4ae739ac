//! Request ids: each request gets one (the client's `X-Request-Id`, or a
//! new one), which names it in the logs of the node that took it, in the
//! logs of the leader it was forwarded to, and in the response.

use axum::http::HeaderMap;

/// The header that carries a request id.
pub(crate) const HEADER: &str = "x-request-id";

/// The longest request id taken from a client; longer ones are replaced.
const LEN_MAX: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// The request's id from its headers, if it is short printable ASCII, or a
/// new random one.
pub(crate) fn from_headers(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= LEN_MAX)
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Runs `future` as the request `id`.
pub(crate) async fn scope<F: std::future::Future>(id: String, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The id of the request this task serves, if any.
pub(crate) fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
#[path = "request_id_test.rs"]
mod tests;
