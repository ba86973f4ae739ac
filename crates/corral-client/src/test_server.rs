//! A canned HTTP server for the client's unit tests: it answers each
//! request in turn with a canned status and body, and hands back the
//! requests it read.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Client, RetryPolicy, TlsOptions};

/// A client of `endpoints` that gives up soon, so that a retry the test
/// did not expect ends as `Unavailable` rather than waiting out the
/// default budget.
pub(crate) fn client<S: AsRef<str>>(endpoints: &[S]) -> Client {
    let retry = RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
        budget: Duration::from_secs(2),
    };
    let endpoints = endpoints.iter().map(AsRef::as_ref);
    Client::with_tls(endpoints, retry, &TlsOptions::default()).unwrap()
}

/// An HTTP server on a port of its own that takes one connection, answers
/// its request with `status` and the JSON `body`, and hands back the
/// request it read.
pub(crate) async fn answer_once(status: &str, body: &str) -> (String, JoinHandle<String>) {
    let (endpoint, served) = answer_in_turn(vec![Reply::new(status, body)]).await;
    let first = tokio::spawn(async move { served.await.unwrap().remove(0) });
    (endpoint, first)
}

/// One canned answer: a status, a JSON body, and how long to wait before
/// sending it.
pub(crate) struct Reply {
    status: String,
    body: String,
    delay: Duration,
}

impl Reply {
    pub(crate) fn new(status: &str, body: &str) -> Reply {
        Reply {
            status: status.to_string(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// This answer, sent `delay` after the request was read.
    pub(crate) fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }
}

/// An HTTP server on a port of its own that takes one connection per reply,
/// in turn, answers each one's request with its reply, and hands back the
/// requests it read.
pub(crate) async fn answer_in_turn(replies: Vec<Reply>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let mut requests = Vec::new();
        for reply in replies {
            let (mut socket, _) = listener.accept().await.unwrap();
            requests.push(read_request(&mut socket).await);
            tokio::time::sleep(reply.delay).await;
            let response = format!(
                "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{}",
                reply.status,
                reply.body.len(),
                reply.body
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            let _ = socket.shutdown().await;
        }
        requests
    });
    (endpoint, served)
}

/// One request's head and body, as text.
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if bytes.len() >= head_end + 4 + length {
                return text;
            }
        }
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-request");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The body of a request read by [`answer_once`].
pub(crate) fn body_of(request: &str) -> &str {
    request.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}
