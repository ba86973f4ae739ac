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
//! request without entries (a commit update) repeats the log id the
//! follower last matched, so the follower leaves its answer out when it has
//! already answered that log id on this stream: the leader learns nothing
//! from it, and each write would otherwise cost two more messages, and two
//! more wake-ups of the leader, one per follower. The leader counts a
//! request as answered once an answer covers its last log id.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::errors::{Fatal, NetworkError, RPCError, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::time::Instant;

use crate::frame::{encode_frame, frames};
use crate::type_config::{CorralRaft, LogId, NodeId, TypeConfig};

/// Path of the append-entries stream.
pub const PATH_APPEND_STREAM: &str = "/raft/append-stream";

/// What the follower answers to each request of a stream.
type StreamReply = Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>;

/// The follower's side: feeds the requests framed in `body` to raft in
/// order and returns the framed answers, in the same order. Ends when the
/// leader closes its side, or at the first bad frame.
pub fn serve<B, E>(
    raft: CorralRaft,
    body: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send + 'static
where
    B: AsRef<[u8]> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let requests = frames::<AppendEntriesRequest<TypeConfig>, B, E>(body)
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
        let mut replies = std::pin::pin!(raft.stream_append(requests));
        let mut answered = Answered::default();
        while let Some(reply) = replies.next().await {
            let reply: StreamReply = reply;
            if !answered.tells_news(&reply) {
                continue;
            }
            let frame = match encode_frame(&reply) {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::error!(error = %e, "an append answer does not encode");
                    return;
                }
            };
            if frames_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(frames_rx, |mut frames_rx| async move {
        let frame = frames_rx.recv().await?;
        Some((Ok(frame), frames_rx))
    })
}

/// The highest log id a stream's answers have matched so far: `None`
/// before the first answer.
#[derive(Debug, Default)]
struct Answered(Option<Option<LogId>>);

impl Answered {
    /// Whether `matching` is answered already.
    fn covers(&self, matching: &Option<LogId>) -> bool {
        self.0.as_ref().is_some_and(|answered| matching <= answered)
    }

    /// Notes an answer matching `matching`; tells whether it goes beyond
    /// what was answered before.
    fn note(&mut self, matching: Option<LogId>) -> bool {
        let news = !self.covers(&matching);
        if news {
            self.0 = Some(matching);
        }
        news
    }

    /// Whether the leader must see `reply`: every error does, and a match
    /// only if it goes beyond what was answered. Notes what it lets by.
    fn tells_news(&mut self, reply: &StreamReply) -> bool {
        match reply {
            Ok(Ok(matching)) => self.note(*matching),
            _ => true,
        }
    }
}

/// The requests of a session that no answer covers yet, oldest first: when
/// each was sent, and the last log id it carries.
#[derive(Default)]
struct Outstanding {
    sent: VecDeque<(Instant, Option<LogId>)>,
    answered: Answered,
}

impl Outstanding {
    /// Notes a request sent now, unless it repeats a log id already
    /// answered: the follower leaves such an answer out.
    fn sent(&mut self, request: &AppendEntriesRequest<TypeConfig>) {
        let last = match request.entries.last() {
            Some(entry) => Some(entry.log_id),
            None if self.answered.covers(&request.prev_log_id) => return,
            None => request.prev_log_id,
        };
        self.sent.push_back((Instant::now(), last));
    }

    /// Clears the requests an answer matching `matching` covers.
    fn answered(&mut self, matching: Option<LogId>) {
        while self.sent.front().is_some_and(|(_, last)| *last <= matching) {
            self.sent.pop_front();
        }
        self.answered.note(matching);
    }

    /// When the oldest request no answer covers was sent.
    fn oldest(&self) -> Option<Instant> {
        self.sent.front().map(|(at, _)| *at)
    }
}

type Shared = Arc<Mutex<Outstanding>>;

fn outstanding(shared: &Shared) -> std::sync::MutexGuard<'_, Outstanding> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The leader's side of one session: what to send and what came back.
pub(crate) struct Session {
    target: NodeId,
    /// How long an answer may take after its request was sent.
    answer_within: Duration,
    /// Shared by the body, which notes each send, and the answers, which
    /// check and clear them.
    outstanding: Shared,
}

impl Session {
    /// A session to `target` whose answers must come within
    /// `answer_within` of their requests.
    pub(crate) fn new(target: NodeId, answer_within: Duration) -> Session {
        Session {
            target,
            answer_within,
            outstanding: Shared::default(),
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
        let shared = self.outstanding.clone();
        requests.map(move |request| {
            check()?;
            let frame = encode_frame(&request).map_err(std::io::Error::other)?;
            outstanding(&shared).sent(&request);
            Ok(frame)
        })
    }

    /// The answers framed in `bytes`, in order. A request that no answer
    /// covers within `answer_within` of its sending, a transport error or a
    /// bad frame ends the stream with an error.
    pub(crate) fn answers<B, E>(
        self,
        bytes: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> + Send + 'static
    where
        B: AsRef<[u8]> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let replies = Box::pin(frames::<StreamReply, B, E>(bytes));
        futures::stream::unfold(Some((replies, self)), |state| async move {
            let (mut replies, session) = state?;
            let shared = &session.outstanding;
            loop {
                let oldest = outstanding(shared).oldest();
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
                        if let Ok(Ok(matching)) = &reply {
                            outstanding(shared).answered(*matching);
                        }
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
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::type_config::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::type_config::{Entry, Vote};

    fn log_id(index: u64) -> LogId {
        LogId::new(LeaderIdOf::<TypeConfig>::new_committed(1, 1), index)
    }

    /// A request of entries `first..=last` after `first - 1`, or a commit
    /// update after `prev` when `last` is `None`.
    fn request(prev: Option<u64>, last: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
        let first = prev.map_or(1, |p| p + 1);
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: prev.map(log_id),
            leader_commit: prev.map(log_id),
            entries: last
                .map(|last| {
                    (first..=last)
                        .map(|i| Entry::new_blank(log_id(i)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn matched(index: Option<u64>) -> StreamReply {
        Ok(Ok(index.map(log_id)))
    }

    fn framed(replies: &[StreamReply]) -> Vec<Result<Vec<u8>, String>> {
        replies
            .iter()
            .map(|r| Ok(encode_frame(r).unwrap()))
            .collect()
    }

    fn outstanding_of(session: &Session) -> usize {
        outstanding(&session.outstanding).sent.len()
    }

    #[tokio::test]
    async fn the_body_frames_each_request_and_notes_when_it_went() {
        let session = Session::new(2, Duration::from_secs(5));
        let requests = futures::stream::iter(vec![request(None, None), request(None, None)]);
        let body: Vec<_> = session.body(requests, || Ok(())).collect().await;
        assert_eq!(body.len(), 2);
        assert_eq!(outstanding_of(&session), 2, "nothing is answered yet");
        let bytes: Vec<Result<Vec<u8>, String>> =
            body.into_iter().map(|frame| Ok(frame.unwrap())).collect();
        let decoded: Vec<Result<AppendEntriesRequest<TypeConfig>, String>> =
            frames(futures::stream::iter(bytes)).collect().await;
        assert!(decoded
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.entries.is_empty())));
    }

    #[tokio::test]
    async fn a_refused_request_ends_the_body_with_an_error() {
        let session = Session::new(2, Duration::from_secs(5));
        let requests = futures::stream::iter(vec![request(None, None)]);
        let refuse = || Err(std::io::Error::other("partitioned"));
        let body: Vec<_> = session.body(requests, refuse).collect().await;
        assert!(body[0].is_err());
        assert_eq!(outstanding_of(&session), 0, "nothing was sent");
    }

    #[test]
    fn the_follower_leaves_out_only_answers_that_repeat_a_match() {
        let mut answered = Answered::default();
        let conflict: StreamReply = Ok(Err(openraft::raft::StreamAppendError::Conflict(log_id(2))));
        let told: Vec<bool> = [
            matched(None),
            matched(None),
            matched(Some(3)),
            matched(Some(3)),
            matched(Some(5)),
            conflict,
        ]
        .iter()
        .map(|reply| answered.tells_news(reply))
        .collect();
        assert_eq!(told, [true, false, true, false, true, true]);
    }

    /// Requests as the leader sends them, answered as the follower answers
    /// them: every request is covered, though two answers are left out.
    #[tokio::test]
    async fn answers_left_out_by_the_follower_still_cover_every_request() {
        let session = Session::new(2, Duration::from_secs(5));
        let shared = session.outstanding.clone();
        let requests = [
            request(None, Some(3)),
            request(Some(3), None),
            request(Some(3), Some(4)),
            request(Some(4), None),
        ];
        // The first two go out before any answer is back.
        for r in &requests[..2] {
            outstanding(&shared).sent(r);
        }
        let mut follower = Answered::default();
        let replies: Vec<StreamReply> = [3, 3, 4, 4]
            .into_iter()
            .map(|i| matched(Some(i)))
            .filter(|reply| follower.tells_news(reply))
            .collect();
        assert_eq!(replies.len(), 2);
        let mut answers = Box::pin(session.answers(futures::stream::iter(framed(&replies))));
        assert!(matches!(answers.next().await, Some(Ok(Ok(Some(_))))));
        assert_eq!(outstanding(&shared).sent.len(), 0, "3 covers both");
        outstanding(&shared).sent(&request(Some(3), None));
        assert_eq!(
            outstanding(&shared).sent.len(),
            0,
            "a commit update after 3 is not awaited: 3 is answered"
        );
        outstanding(&shared).sent(&requests[2]);
        outstanding(&shared).sent(&requests[3]);
        assert_eq!(outstanding(&shared).sent.len(), 2, "4 is not answered yet");
        assert!(matches!(answers.next().await, Some(Ok(Ok(Some(_))))));
        assert_eq!(outstanding(&shared).sent.len(), 0, "4 covers both");
        assert!(answers.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_overdue_answer_fails_the_session() {
        let session = Session::new(2, Duration::from_millis(75));
        outstanding(&session.outstanding).sent(&request(None, Some(1)));
        let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
        let mut answers = Box::pin(session.answers(silent));
        let first = answers.next().await.expect("an error, not the end");
        assert!(matches!(first, Err(RPCError::Network(_))), "{first:?}");
        assert!(answers.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_waits_without_failing() {
        let session = Session::new(2, Duration::from_millis(75));
        let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
        let mut answers = Box::pin(session.answers(silent));
        let waited = tokio::time::timeout(Duration::from_secs(5), answers.next()).await;
        assert!(
            waited.is_err(),
            "no answer and no error while nothing is sent"
        );
    }
}
