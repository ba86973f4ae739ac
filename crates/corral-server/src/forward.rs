//! Forwarding proposals to the leader in batches.
//!
//! A follower forwards each write's command to the leader. One HTTP call
//! per command costs both nodes a request's worth of work, so commands
//! that wait at the same time share one call: at most
//! [`CALLS_IN_FLIGHT`] calls are out at once, and the commands that arrive
//! meanwhile go together in the next. Alone, a command goes at once; under
//! load, calls carry many. The leader proposes each command of a call
//! concurrently, and raft appends them together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_state::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::node::{Attempt, PeerReply, Submission};
use crate::request_id;

/// Path of the leader's batch propose RPC.
pub const PATH_PROPOSE_BATCH: &str = "/raft/propose-batch";
/// Calls to the leader that may be out at once.
pub const CALLS_IN_FLIGHT: usize = 4;
/// The most commands in one call.
pub const BATCH_MAX: usize = 256;

/// One forwarded command, with the id of the request it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forwarded {
    /// The command and its idempotency key.
    pub submission: Submission,
    /// The id of the client's request, for the leader's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// How a forwarded command fared: the leader's answer, or `Err` when the
/// call could not be sent at all (safe to retry).
pub type Forwarding = Result<Attempt<Response>, String>;

struct Queued {
    addr: String,
    command: Forwarded,
    timeout: Duration,
    answer: oneshot::Sender<Forwarding>,
}

/// The queue of commands waiting to be forwarded, and the task that sends
/// them.
#[derive(Clone)]
pub struct Forwarder {
    queue: mpsc::UnboundedSender<Queued>,
}

impl Forwarder {
    /// Starts the sending task.
    pub fn start(http: reqwest::Client) -> Forwarder {
        let (queue, commands) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(http, commands));
        Forwarder { queue }
    }

    /// Forwards `submission` to the leader at `addr`, waiting at most
    /// `timeout` for its answer.
    pub async fn forward(
        &self,
        addr: &str,
        submission: Submission,
        timeout: Duration,
    ) -> Forwarding {
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            addr: addr.to_string(),
            command: Forwarded {
                submission,
                request_id: request_id::current(),
            },
            timeout,
            answer,
        };
        if self.queue.send(queued).is_err() {
            return Err("the forwarding task stopped".into());
        }
        // Bounded as a single call would be, even when calls ahead of it
        // hang: then it may have been sent, so its outcome is unknown.
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(forwarding)) => forwarding,
            Ok(Err(_)) => Err("the forwarding task dropped the command".into()),
            Err(_) => Ok(Attempt::Done(Err(ApiError::unavailable(
                "the leader did not answer in time; the write may still apply",
                None,
            )))),
        }
    }
}

/// Takes the waiting commands as a call slot frees up, and sends them.
async fn send_batches(http: reqwest::Client, mut commands: mpsc::UnboundedReceiver<Queued>) {
    let slots = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    while let Some(first) = commands.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match commands.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        // Nearly always one leader; after a change, one call per address.
        let mut by_leader: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
        for queued in batch {
            by_leader
                .entry(queued.addr.clone())
                .or_default()
                .push(queued);
        }
        let slot = Arc::new(slot);
        for (addr, batch) in by_leader {
            tokio::spawn(send(http.clone(), addr, batch, slot.clone()));
        }
    }
}

/// Sends one call and hands each command its answer.
async fn send(
    http: reqwest::Client,
    addr: String,
    batch: Vec<Queued>,
    _slot: Arc<OwnedSemaphorePermit>,
) {
    let timeout = batch.iter().map(|q| q.timeout).max().unwrap_or_default();
    let (commands, answers): (Vec<Forwarded>, Vec<_>) =
        batch.into_iter().map(|q| (q.command, q.answer)).unzip();
    let sent = http
        .post(format!("http://{addr}{PATH_PROPOSE_BATCH}"))
        .timeout(timeout)
        .json(&commands)
        .send()
        .await;
    // Why no answer came: not sent at all (safe to retry), or sent and
    // lost (the commands may apply).
    let replies: Result<Vec<PeerReply<Response>>, (bool, String)> = match sent {
        Err(e) if e.is_connect() => Err((false, e.to_string())),
        Err(e) => Err((true, format!("leader did not answer: {e}"))),
        Ok(response) => response
            .json()
            .await
            .map_err(|e| (true, format!("bad answer from the leader: {e}"))),
    };
    let replies = match replies {
        Ok(replies) if replies.len() != answers.len() => Err((
            true,
            format!(
                "the leader answered {} of {} commands",
                replies.len(),
                answers.len()
            ),
        )),
        other => other,
    };
    match replies {
        Ok(replies) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = answer.send(Ok(Attempt::from(reply)));
            }
        }
        Err((sent, message)) => {
            for answer in answers {
                let failed = if sent {
                    Ok(Attempt::Done(Err(ApiError::unavailable(
                        message.clone(),
                        None,
                    ))))
                } else {
                    Err(message.clone())
                };
                let _ = answer.send(failed);
            }
        }
    }
}
