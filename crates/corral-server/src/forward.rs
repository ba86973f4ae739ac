//! Forwarding proposals to the leader over one long-lived stream.
//!
//! A follower forwards each write's command to the leader. An HTTP call per
//! command (or per batch) costs both nodes a request's worth of work:
//! headers, routing, a task, a response. Instead each follower keeps one
//! HTTP/2 request open to the leader, `/raft/propose-stream`: its body
//! carries batches of numbered commands, and its response carries their
//! answers, numbered, as each one commits. Commands that wait at the same
//! time go in one batch; alone, a command goes at once. The leader proposes
//! every command as it arrives, so one slow write holds back no other.
//!
//! Each message on the wire is a [`corral_raft::frame`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use corral_raft::codec::Encoding;
use corral_raft::frame::{encode_frame, frames, FrameError};
use corral_raft::{PeerClients, PeerFormats};
use corral_state::Response;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::node::{Attempt, PeerReply, Submission, LEADER_WAIT};
use crate::request_id;

/// Path of the leader's propose stream.
pub(crate) const PATH_PROPOSE_STREAM: &str = "/raft/propose-stream";
/// The most commands in one batch.
pub(crate) const BATCH_MAX: usize = 256;
/// The most commands a follower has on their way to the leader (queued,
/// or sent and not answered); past it, requests get 503 at once instead of
/// growing memory.
pub(crate) const QUEUED_MAX: usize = 16_384;
/// The most proposals of one propose stream the leader runs at once; past
/// it, it reads no more of the stream until some are answered.
pub(crate) const RUNNING_PER_STREAM_MAX: usize = 4 * BATCH_MAX;
/// How long after it went a command's answer (or the stream's opening)
/// may take before the stream is given up: the leader bounds each write by
/// [`LEADER_WAIT`] itself.
const ANSWER_WITHIN: Duration = LEADER_WAIT.saturating_add(Duration::from_secs(1));

/// One forwarded command, with the id of the request it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Forwarded {
    /// The command and its idempotency key.
    pub submission: Submission,
    /// The id of the client's request, for the leader's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A command or its answer, with the number that pairs them on a stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Numbered<T>(pub u64, pub T);

/// How a forwarded command fared: the leader's answer, or `Err` when it
/// was not sent at all (safe to retry).
pub(crate) type Forwarding = Result<Attempt<Response>, NotSent>;

/// Why a command never reached the leader. Nothing of it can apply, so
/// the caller may send it again, to this leader or the next.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum NotSent {
    /// The task that sends commands is gone (the node is shutting down).
    #[error("the forwarding task stopped")]
    TaskStopped,
    /// The sending task ended without answering.
    #[error("the forwarding task dropped the command")]
    Dropped,
    /// The stream to the leader closed before the command went.
    #[error("the stream to the leader closed")]
    StreamClosed,
    /// The command's batch does not encode as a frame.
    #[error("the command does not encode: {0}")]
    Encode(#[source] Arc<FrameError>),
    /// No connection to the leader could be opened.
    #[error("leader unreachable: {0}")]
    Unreachable(#[source] Arc<reqwest::Error>),
    /// The leader refused the stream before it read any command: another
    /// cluster, this node removed, or a format it does not read (an older
    /// node, which the next stream is framed for).
    #[error("the leader refused the stream: {0}")]
    Refused(u16),
}

struct Queued {
    addr: String,
    command: Forwarded,
    answer: oneshot::Sender<Forwarding>,
}

/// The queue of commands waiting to be forwarded, and the task that sends
/// them.
#[derive(Clone)]
pub(crate) struct Forwarder {
    queue: mpsc::Sender<Queued>,
    /// One permit per command on its way, held until it is answered or
    /// its caller gives up.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    /// Starts the sending task, on the peers' HTTP/2 client.
    pub(crate) fn start(peers: PeerClients) -> Forwarder {
        let (queue, commands) = mpsc::channel(QUEUED_MAX);
        tokio::spawn(send_batches(peers, commands));
        let slots = Arc::new(tokio::sync::Semaphore::new(QUEUED_MAX));
        Forwarder { queue, slots }
    }

    /// Forwards `submission` to the leader at `addr`, waiting at most
    /// `timeout` for its answer.
    pub(crate) async fn forward(
        &self,
        addr: &str,
        submission: Submission,
        timeout: Duration,
    ) -> Forwarding {
        // Held to the end of the call: the leader pushing back shows here,
        // not as a growing backlog behind the queue.
        let Ok(_slot) = self.slots.try_acquire() else {
            return Ok(Attempt::Done(Err(too_many_waiting())));
        };
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            addr: addr.to_string(),
            command: Forwarded {
                submission,
                request_id: request_id::current(),
            },
            answer,
        };
        match self.queue.try_send(queued) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Ok(Attempt::Done(Err(too_many_waiting())))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(NotSent::TaskStopped),
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(forwarding)) => forwarding,
            Ok(Err(_)) => Err(NotSent::Dropped),
            // It may have been sent, so its outcome is unknown.
            Err(_) => Ok(Attempt::Done(Err(ApiError::unavailable(
                "the leader did not answer in time; the write may still apply",
                None,
            )))),
        }
    }
}

/// Takes the waiting commands and sends them down the stream to their
/// leader, opening one when there is none.
async fn send_batches(peers: PeerClients, mut commands: mpsc::Receiver<Queued>) {
    // Nearly always one leader; after a change, the stream to the old one
    // closes once it has answered what it was sent.
    let mut links: HashMap<String, Link> = HashMap::new();
    while let Some(first) = commands.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match commands.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let mut by_leader: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
        for queued in batch {
            by_leader
                .entry(queued.addr.clone())
                .or_default()
                .push(queued);
        }
        links.retain(|addr, link| link.is_open() && by_leader.contains_key(addr));
        for (addr, batch) in by_leader {
            links
                .entry(addr)
                .or_insert_with_key(|addr| Link::open(&peers, addr))
                .send(batch);
        }
    }
}

/// The 503 of a follower with [`QUEUED_MAX`] commands on their way.
fn too_many_waiting() -> ApiError {
    ApiError::unavailable(
        "too many requests are waiting to reach the leader; try again",
        None,
    )
}

/// Commands sent on a stream and not yet answered, by number.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) waiting: BTreeMap<u64, (Instant, oneshot::Sender<Forwarding>)>,
    /// The stream ended: nothing more is sent on it.
    closed: bool,
}

impl Pending {
    /// When the oldest unanswered command went.
    fn oldest(&self) -> Option<Instant> {
        self.waiting.first_key_value().map(|(_, (sent, _))| *sent)
    }

    /// Hands the command numbered `seq` its answer.
    fn answer(&mut self, seq: u64, forwarding: Forwarding) {
        match self.waiting.remove(&seq) {
            Some((_, answer)) => {
                let _ = answer.send(forwarding);
            }
            None => tracing::debug!(seq, "an answer for no forwarded command"),
        }
    }

    /// Ends the stream: every unanswered command gets `failed`.
    fn close(&mut self, failed: impl Fn() -> Forwarding) {
        self.closed = true;
        for (_, (_, answer)) in std::mem::take(&mut self.waiting) {
            let _ = answer.send(failed());
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A follower's stream to one leader.
struct Link {
    next_seq: u64,
    /// How this stream's frames are encoded, both ways.
    encoding: Encoding,
    body: mpsc::UnboundedSender<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
}

impl Link {
    /// Opens a stream to the leader at `addr`, and a task that reads its
    /// answers.
    fn open(peers: &PeerClients, addr: &str) -> Link {
        let format = peers.formats.sending(addr);
        let encoding = Encoding::of_format(format);
        let (body, frames_out) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let frames_out = futures::stream::unfold(frames_out, |mut frames_out| async move {
            let frame = frames_out.recv().await?;
            Some((Ok::<_, Infallible>(frame), frames_out))
        });
        // No timeout on the request as a whole: it lives as long as this
        // node forwards to that leader. Opening it and each answer are
        // bounded instead.
        let opening = peers
            .streams
            .post(peers.url(addr, PATH_PROPOSE_STREAM))
            .header(corral_raft::FORMAT_HEADER, u16::from(format))
            .body(reqwest::Body::wrap_stream(frames_out))
            .send();
        let learn = (peers.formats.clone(), addr.to_string());
        tokio::spawn(read_answers(opening, encoding, learn, pending.clone()));
        Link {
            next_seq: 0,
            encoding,
            body,
            pending,
        }
    }

    fn is_open(&self) -> bool {
        !lock(&self.pending).closed
    }

    /// Sends `batch` as one frame; a command that cannot be sent is
    /// answered `Err` at once.
    fn send(&mut self, batch: Vec<Queued>) {
        let mut pending = lock(&self.pending);
        if pending.closed {
            for queued in batch {
                let _ = queued.answer.send(Err(NotSent::StreamClosed));
            }
            return;
        }
        let first_seq = self.next_seq;
        self.next_seq += batch.len() as u64;
        let (commands, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .zip(first_seq..)
            .map(|(queued, seq)| (Numbered(seq, queued.command), (seq, queued.answer)))
            .unzip();
        let sent = encode_frame(self.encoding, &commands)
            .map_err(|e| NotSent::Encode(Arc::new(e)))
            .and_then(|frame| self.body.send(frame).map_err(|_| NotSent::StreamClosed));
        match sent {
            Ok(()) => {
                let now = Instant::now();
                for (seq, answer) in answers {
                    pending.waiting.insert(seq, (now, answer));
                }
            }
            Err(e) => {
                for (_, answer) in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Reads a stream's answers until it ends, then answers whatever is left
/// unanswered.
async fn read_answers(
    opening: impl Future<Output = Result<reqwest::Response, reqwest::Error>>,
    encoding: Encoding,
    (formats, addr): (PeerFormats, String),
    pending: Arc<Mutex<Pending>>,
) {
    let opening = async {
        let response = opening.await?;
        formats.learn(&addr, response.headers());
        Ok::<_, reqwest::Error>(response)
    };
    // Why it ended: `Err` when nothing reached the leader (safe to retry),
    // `Ok` with the reason when what was sent may apply.
    let ended: Result<String, NotSent> = match tokio::time::timeout(ANSWER_WITHIN, opening).await {
        Err(_) => Ok("the stream to the leader did not open in time".to_string()),
        Ok(Err(e)) if e.is_connect() => Err(NotSent::Unreachable(Arc::new(e))),
        Ok(Err(e)) => Ok(format!("the stream to the leader failed: {e}")),
        Ok(Ok(response)) if !response.status().is_success() => {
            Err(NotSent::Refused(response.status().as_u16()))
        }
        Ok(Ok(response)) => Ok(answer_all(encoding, response.bytes_stream(), &pending).await),
    };
    match &ended {
        Ok(why) => tracing::debug!(reason = %why, "the stream to the leader ended"),
        Err(e) => tracing::debug!(reason = %e, "the stream to the leader ended"),
    }
    lock(&pending).close(|| match &ended {
        Ok(why) => Ok(Attempt::Done(Err(ApiError::unavailable(
            format!("{why}; the write may still apply"),
            None,
        )))),
        Err(not_sent) => Err(not_sent.clone()),
    });
}

/// Hands out the answers framed in `bytes` until the stream ends, a frame
/// is bad, or an answer is overdue; says which.
pub(crate) async fn answer_all<B, E>(
    encoding: Encoding,
    bytes: impl Stream<Item = Result<B, E>> + Unpin,
    pending: &Mutex<Pending>,
) -> String
where
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let answers = frames::<Vec<Numbered<PeerReply<Response>>>, B, E>(encoding, bytes);
    let mut answers = std::pin::pin!(answers);
    loop {
        let oldest = lock(pending).oldest();
        // Nothing outstanding: look again after a while, since a command
        // may be sent meanwhile.
        let deadline = oldest.unwrap_or_else(Instant::now) + ANSWER_WITHIN;
        let frame = match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(frame) => frame,
            Err(_) if oldest.is_some() => return "an answer from the leader is overdue".into(),
            Err(_) => continue,
        };
        match frame {
            None => return "the leader closed the stream".into(),
            Some(Err(e)) => return format!("the stream from the leader broke: {e}"),
            Some(Ok(frame)) => {
                let mut pending = lock(pending);
                for Numbered(seq, reply) in frame {
                    pending.answer(seq, Ok(Attempt::from(reply)));
                }
            }
        }
    }
}

/// The leader's side: proposes each command framed in `body` as it comes,
/// with `propose`, and returns the framed answers in the order they are
/// ready, several to a frame when they are ready together. Ends once the
/// follower closes its side and every command has its answer, or at the
/// first bad frame.
pub(crate) fn serve<F, Fut, B, E>(
    propose: F,
    encoding: Encoding,
    body: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send + 'static
where
    F: Fn(Forwarded) -> Fut + Send + 'static,
    Fut: Future<Output = PeerReply<Response>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (answers_tx, answers_rx) = mpsc::unbounded_channel::<Numbered<PeerReply<Response>>>();
    tokio::spawn(async move {
        let batches = frames::<Vec<Numbered<Forwarded>>, B, E>(encoding, body);
        let mut batches = std::pin::pin!(batches);
        let mut running = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                batch = batches.next(), if open && running.len() < RUNNING_PER_STREAM_MAX => match batch {
                    Some(Ok(batch)) => {
                        for Numbered(seq, command) in batch {
                            let proposed = propose(command);
                            running.push(async move { Numbered(seq, proposed.await) });
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "propose stream from a follower broke");
                        open = false;
                    }
                    None => open = false,
                },
                Some(answer) = running.next(), if !running.is_empty() => {
                    if answers_tx.send(answer).is_err() {
                        return;
                    }
                }
                else => return,
            }
        }
    });
    futures::stream::unfold(answers_rx, move |mut answers_rx| async move {
        let mut ready = vec![answers_rx.recv().await?];
        while ready.len() < BATCH_MAX {
            match answers_rx.try_recv() {
                Ok(answer) => ready.push(answer),
                Err(_) => break,
            }
        }
        Some((Ok(encode_answers(encoding, ready)), answers_rx))
    })
}

/// One frame of answers. An answer that does not encode (the round-trip
/// tests say none does) is replaced by an internal error that says the
/// write may have applied, so that one bad answer neither ends the stream
/// nor takes the other answers of its frame with it.
fn encode_answers(encoding: Encoding, ready: Vec<Numbered<PeerReply<Response>>>) -> Vec<u8> {
    if let Ok(frame) = encode_frame(encoding, &ready) {
        return frame;
    }
    let answers: Vec<Numbered<PeerReply<Response>>> = ready
        .into_iter()
        .map(
            |Numbered(seq, reply)| match encode_frame(encoding, &reply) {
                Ok(_) => Numbered(seq, reply),
                Err(e) => {
                    tracing::error!(error = %e, seq, "a forwarded answer does not encode");
                    let error = ApiError::internal(format!(
                        "the leader's answer does not encode ({e}); the write may have applied"
                    ));
                    Numbered(seq, PeerReply::Done(Err(error.body())))
                }
            },
        )
        .collect();
    // Every answer left encodes on its own, so the frame does too: the
    // frame limit (256 MiB) is far above `BATCH_MAX` answers.
    encode_frame(encoding, &answers).unwrap_or_default()
}
