//! The listener's limits, on a loopback listener with a one-route router.

use std::time::Duration;

use axum::routing::get;
use tokio::time::Instant;

use super::{bind, serve_until, Limits};

/// Serves `/ok` on a free loopback port with `limits`; its address and the
/// switch that stops it.
async fn serve(limits: Limits) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.listener.local_addr().expect("an address");
    let router = axum::Router::new().route("/ok", get(|| async { "ok" }));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let drain = Duration::from_secs(1);
    tokio::spawn(serve_until(listener, router, limits, None, stop, drain));
    (format!("http://{addr}/ok"), stop_tx)
}

/// An HTTP/2 client (prior knowledge, as peers speak it) with its own
/// connection pool.
fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

/// With room for one connection, an idle HTTP/2 connection holds it only
/// until the idle timeout: then the server closes it, and another client
/// gets in. Without the timeout the slot stays taken.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_frees_its_slot() {
    let limits = |idle_timeout| Limits {
        connections_max: 1,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout,
    };
    for idle_timeout in [None, Some(Duration::from_millis(300))] {
        let (url, _stop) = serve(limits(idle_timeout)).await;
        let first = h2_client();
        let answer = first
            .get(&url)
            .send()
            .await
            .expect("the first client is served");
        assert_eq!(answer.text().await.expect("a body"), "ok");
        // The first client's pooled connection stays open on its side.
        let second = h2_client();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut served = false;
        while Instant::now() < deadline && !served {
            served = second.get(&url).send().await.is_ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            served,
            idle_timeout.is_some(),
            "idle timeout {idle_timeout:?}: the second client served: {served}"
        );
        drop(first);
    }
}
