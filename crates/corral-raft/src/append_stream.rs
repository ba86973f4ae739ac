//! Pipelined replication: one long-lived HTTP/2 request per replication
//! session carries a stream of append-entries requests, and its response
//! carries their answers, in order.
//!
//! With one request per call, a follower's next entries wait until the
//! previous call's answer is back, and that answer waits for the follower's
//! log sync. A stream lets the leader send entries (and commit updates)
//! while earlier ones are still syncing. The follower hands the stream to
//! `Raft::stream_append`, which submits each request in order and answers
//! each once its entries are durable.
//!
//! Each message on the wire is a [`crate::frame`].
//!
//! An answer says how far the follower's log matches the leader's. A
//! request without entries (the commit update after each write) repeats the
//! log id the follower last matched, so its answer tells the leader nothing
//! new. The follower holds such an answer back for at most [`HOLD`] and
//! sends it in one chunk with the next answer: one message, and one wake-up
//! of the leader, instead of two. Every request is still answered, in order.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::errors::{Fatal, NetworkError, RPCError, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::time::Instant;

use crate::codec::Encoding;
use crate::frame::{encode_frame, frames};
use crate::type_config::{CorralRaft, LogId, NodeId, TypeConfig};

/// Path of the append-entries stream.
pub const PATH_APPEND_STREAM: &str = "/raft/append-stream";

/// What the follower answers to each request of a stream.
type StreamReply = Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>;

/// How long a follower holds back an answer that repeats its last match,
/// waiting for the next answer to send it with: a few writes' time at low
/// load, and far below the 75 ms in which the leader wants each answer.
pub const HOLD: Duration = Duration::from_millis(5);

/// The follower's side: feeds the requests framed in `body` to raft in
/// order and returns the framed answers, in the same order. Ends when the
/// leader closes its side, or at the first bad frame.
pub fn serve<B, E>(
    raft: CorralRaft,
    encoding: Encoding,
    body: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send + 'static
where
    B: AsRef<[u8]> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let requests = frames::<AppendEntriesRequest<TypeConfig>, B, E>(encoding, body)
        .take_while(|request| {
            if let Err(e) = request {
                tracing::debug!(error = %e, "append stream from the leader ended");
            }
            std::future::ready(request.is_ok())
        })
        .filter_map(|request| std::future::ready(request.ok()));
    // Raft's answer stream borrows the raft handle, so a task that owns a
    // handle drives it and passes the frames on.
    let (frames_tx, frames_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        let replies = std::pin::pin!(raft.stream_append(requests));
        send_answers(replies, encoding, frames_tx).await;
    });
    futures::stream::unfold(frames_rx, |mut frames_rx| async move {
        let frame = frames_rx.recv().await?;
        Some((Ok(frame), frames_rx))
    })
}

/// Frames each answer and sends it on, in order, holding back for at most
/// [`HOLD`] an answer that repeats the last match, to go in one chunk with
/// the next. Ends when the answers end (after sending what it holds), an
/// answer does not encode, or the receiver is gone.
async fn send_answers(
    mut replies: impl Stream<Item = StreamReply> + Unpin,
    encoding: Encoding,
    frames_tx: tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    let mut answered = Answered::default();
    let mut held: Vec<u8> = Vec::new();
    let mut held_since = Instant::now();
    loop {
        let next = if held.is_empty() {
            replies.next().await
        } else {
            match tokio::time::timeout_at(held_since + HOLD, replies.next()).await {
                Ok(next) => next,
                Err(_) => {
                    if frames_tx.send(std::mem::take(&mut held)).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        let Some(reply) = next else { break };
        let frame = match encode_frame(encoding, &reply) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(error = %e, "an append answer does not encode");
                return;
            }
        };
        if held.is_empty() {
            held_since = Instant::now();
        }
        held.extend_from_slice(&frame);
        if answered.tells_news(&reply) && frames_tx.send(std::mem::take(&mut held)).await.is_err() {
            return;
        }
    }
    if !held.is_empty() {
        let _ = frames_tx.send(held).await;
    }
}

/// The highest log id a stream's answers have matched so far: `None`
/// before the first answer.
#[derive(Debug, Default)]
struct Answered(Option<Option<LogId>>);

impl Answered {
    /// Whether the leader learns something from `reply`: every error, and a
    /// match beyond what was answered. Notes the match.
    fn tells_news(&mut self, reply: &StreamReply) -> bool {
        let Ok(Ok(matching)) = reply else {
            return true;
        };
        let news = self.0.as_ref().is_none_or(|answered| matching > answered);
        if news {
            self.0 = Some(*matching);
        }
        news
    }
}

/// When each request still unanswered was sent, oldest first.
type SentTimes = Arc<Mutex<VecDeque<Instant>>>;

fn sent_times(sent: &SentTimes) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
    sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The leader's side of one session: what to send and what came back.
pub(crate) struct Session {
    target: NodeId,
    /// How long an answer may take after its request was sent.
    answer_within: Duration,
    /// Shared by the body, which notes each send, and the answers, which
    /// check and clear them.
    sent: SentTimes,
    /// How frames are encoded both ways.
    encoding: Encoding,
}

impl Session {
    /// A session to `target` whose answers must come within
    /// `answer_within` of their requests.
    pub(crate) fn new(target: NodeId, answer_within: Duration, encoding: Encoding) -> Session {
        Session {
            target,
            answer_within,
            sent: SentTimes::default(),
            encoding,
        }
    }

    /// Frames `requests` into a request body, noting when each is handed
    /// to the transport. `check` may refuse a request (a test partition),
    /// which ends the body with an error.
    pub(crate) fn body<S>(
        &self,
        requests: S,
        check: impl Fn() -> Result<(), std::io::Error> + Send + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let (sent, encoding) = (self.sent.clone(), self.encoding);
        requests.map(move |request| {
            check()?;
            let frame = encode_frame(encoding, &request).map_err(std::io::Error::other)?;
            sent_times(&sent).push_back(Instant::now());
            Ok(frame)
        })
    }

    /// The answers framed in `bytes`, in order. An answer that is later
    /// than `answer_within` after its request, a transport error or a bad
    /// frame ends the stream with an error.
    pub(crate) fn answers<B, E>(
        self,
        bytes: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> + Send + 'static
    where
        B: AsRef<[u8]> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let replies = Box::pin(frames::<StreamReply, B, E>(self.encoding, bytes));
        futures::stream::unfold(Some((replies, self)), |state| async move {
            let (mut replies, session) = state?;
            let sent = &session.sent;
            loop {
                let oldest = sent_times(sent).front().copied();
                // Nothing outstanding: look again after a while, since a
                // request may be sent meanwhile.
                let deadline = oldest.unwrap_or_else(Instant::now) + session.answer_within;
                let reply = match tokio::time::timeout_at(deadline, replies.next()).await {
                    Ok(reply) => reply,
                    Err(_) if oldest.is_some() => {
                        let e = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "append answer overdue",
                        );
                        return Some((Err(RPCError::Network(NetworkError::new(&e))), None));
                    }
                    Err(_) => continue,
                };
                let item = match reply {
                    None => return None,
                    Some(Err(e)) => {
                        tracing::debug!(target_node = session.target, error = %e, "append stream failed");
                        let e = std::io::Error::other(e);
                        Err(RPCError::Network(NetworkError::new(&e)))
                    }
                    Some(Ok(reply)) => {
                        sent_times(sent).pop_front();
                        // A raft error of the follower cannot travel as a
                        // remote error in this openraft version.
                        reply.map_err(|fatal| RPCError::Unreachable(Unreachable::new(&fatal)))
                    }
                };
                let next = item.is_ok().then_some((replies, session));
                return Some((item, next));
            }
        })
    }
}

#[cfg(test)]
#[path = "append_stream_test.rs"]
mod tests;
