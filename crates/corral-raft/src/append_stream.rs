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
//! Each message on the wire is a frame: a 4-byte big-endian length, then
//! that many bytes of JSON.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::errors::{Fatal, NetworkError, RPCError, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::type_config::{CorralRaft, NodeId, TypeConfig};

/// Path of the append-entries stream.
pub const PATH_APPEND_STREAM: &str = "/raft/append-stream";

/// The largest frame accepted: a batch of entries, far above what openraft
/// sends in one request.
const FRAME_BYTES_MAX: usize = 256 << 20;

/// What the follower answers to each request of a stream.
type StreamReply = Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame claims more bytes than [`FRAME_BYTES_MAX`].
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    /// A frame's JSON does not decode as what was expected.
    #[error("frame does not decode: {0}")]
    Json(#[from] serde_json::Error),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Encodes `value` as one frame.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; 4];
    serde_json::to_writer(&mut frame, value)?;
    let len = frame.len() - 4;
    let len = u32::try_from(len)
        .ok()
        .filter(|_| len <= FRAME_BYTES_MAX)
        .ok_or(FrameError::TooLarge(len))?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Cuts a byte stream, which arrives in chunks of any size, into frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, decoded; `None` until one has arrived.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Option<Result<T, FrameError>> {
        let pending = &self.buffer[self.start..];
        let header: [u8; 4] = pending.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(header) as usize;
        if len > FRAME_BYTES_MAX {
            return Some(Err(FrameError::TooLarge(len)));
        }
        let body = pending.get(4..4 + len)?;
        let decoded = serde_json::from_slice(body).map_err(FrameError::from);
        self.start += 4 + len;
        if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Some(decoded)
    }

    /// Whether bytes of an unfinished frame are waiting.
    pub fn is_inside_frame(&self) -> bool {
        self.start < self.buffer.len()
    }
}

/// The decoded frames of a byte stream. Ends at the first bad frame or
/// transport error, with it.
pub fn frames<T, B, E>(
    bytes: impl Stream<Item = Result<B, E>> + Unpin,
) -> impl Stream<Item = Result<T, String>>
where
    T: DeserializeOwned,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    futures::stream::unfold(Some((bytes, FrameReader::default())), |state| async move {
        let (mut bytes, mut reader) = state?;
        loop {
            if let Some(frame) = reader.next_frame::<T>() {
                return match frame {
                    Ok(value) => Some((Ok(value), Some((bytes, reader)))),
                    Err(e) => Some((Err(e.to_string()), None)),
                };
            }
            match bytes.next().await {
                Some(Ok(chunk)) => reader.push(chunk.as_ref()),
                Some(Err(e)) => return Some((Err(e.to_string()), None)),
                None if reader.is_inside_frame() => {
                    return Some((Err(FrameError::Truncated.to_string()), None))
                }
                None => return None,
            }
        }
    })
}

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
        while let Some(reply) = replies.next().await {
            let reply: StreamReply = reply;
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

/// When each request still unanswered was sent, oldest first.
type SentTimes = Arc<Mutex<VecDeque<Instant>>>;

fn sent_times(sent: &SentTimes) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
    sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The leader's side of one session: what to send and what came back.
pub(crate) struct Session {
    pub(crate) target: NodeId,
    /// How long an answer may take after its request was sent.
    pub(crate) answer_within: Duration,
}

impl Session {
    /// Frames `requests` into a request body, noting when each is handed
    /// to the transport. `check` may refuse a request (a test partition),
    /// which ends the body with an error.
    pub(crate) fn body<S>(
        requests: S,
        sent: SentTimes,
        check: impl Fn() -> Result<(), std::io::Error> + Send + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        requests.map(move |request| {
            check()?;
            let frame = encode_frame(&request).map_err(std::io::Error::other)?;
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
        sent: SentTimes,
    ) -> impl Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> + Send + 'static
    where
        B: AsRef<[u8]> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let replies = Box::pin(frames::<StreamReply, B, E>(bytes));
        futures::stream::unfold(Some((replies, sent, self)), |state| async move {
            let (mut replies, sent, session) = state?;
            loop {
                let oldest = sent_times(&sent).front().copied();
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
                        sent_times(&sent).pop_front();
                        // A raft error of the follower cannot travel as a
                        // remote error in this openraft version.
                        reply.map_err(|fatal| RPCError::Unreachable(Unreachable::new(&fatal)))
                    }
                };
                let next = item.is_ok().then_some((replies, sent, session));
                return Some((item, next));
            }
        })
    }
}

/// A new record of send times, shared by a session's body and answers.
pub(crate) fn new_sent_times() -> SentTimes {
    SentTimes::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(bytes: Vec<u8>, size: usize) -> Vec<Result<Vec<u8>, String>> {
        bytes.chunks(size).map(|c| Ok(c.to_vec())).collect()
    }

    #[tokio::test]
    async fn frames_survive_any_chunking() {
        let values: Vec<Vec<u64>> = vec![vec![], vec![1], vec![2, 3, 4], (0..1000).collect()];
        let mut bytes = Vec::new();
        for v in &values {
            bytes.extend(encode_frame(v).unwrap());
        }
        for size in [1, 3, 4, 5, 64, bytes.len()] {
            let stream = futures::stream::iter(chunks(bytes.clone(), size));
            let got: Vec<Result<Vec<u64>, String>> = frames(stream).collect().await;
            let got: Vec<Vec<u64>> = got.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(got, values, "chunks of {size}");
        }
    }

    #[tokio::test]
    async fn a_cut_frame_is_an_error_and_ends_the_stream() {
        let mut bytes = encode_frame(&vec![1u64]).unwrap();
        let second = encode_frame(&vec![2u64]).unwrap();
        bytes.extend(&second[..second.len() - 1]);
        let got: Vec<Result<Vec<u64>, String>> = frames(futures::stream::iter(chunks(bytes, 2)))
            .collect()
            .await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(vec![1]));
        assert!(got[1].as_ref().unwrap_err().contains("inside a frame"));
    }

    #[tokio::test]
    async fn bad_json_and_oversized_frames_end_the_stream() {
        let mut bytes = encode_frame(&vec![1u64]).unwrap();
        bytes.extend(3u32.to_be_bytes());
        bytes.extend(b"{x}");
        bytes.extend(encode_frame(&vec![2u64]).unwrap());
        let got: Vec<Result<Vec<u64>, String>> = frames(futures::stream::iter(chunks(bytes, 7)))
            .collect()
            .await;
        assert_eq!(got.len(), 2, "nothing after the bad frame: {got:?}");
        assert!(got[1].is_err());

        let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
        let got: Vec<Result<Vec<u64>, String>> =
            frames(futures::stream::iter(vec![Ok::<_, String>(huge)]))
                .collect()
                .await;
        assert!(got[0].as_ref().unwrap_err().contains("too large"));
    }

    #[tokio::test]
    async fn a_transport_error_ends_the_stream() {
        let mut items = chunks(encode_frame(&vec![7u64]).unwrap(), 100);
        items.push(Err("reset".to_string()));
        items.extend(chunks(encode_frame(&vec![8u64]).unwrap(), 100));
        let got: Vec<Result<Vec<u64>, String>> =
            frames(futures::stream::iter(items)).collect().await;
        assert_eq!(got, vec![Ok(vec![7]), Err("reset".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_overdue_answer_fails_the_session() {
        let sent = new_sent_times();
        sent_times(&sent).push_back(Instant::now());
        let session = Session {
            target: 2,
            answer_within: Duration::from_millis(75),
        };
        let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
        let mut answers = Box::pin(session.answers(silent, sent));
        let first = answers.next().await.expect("an error, not the end");
        assert!(matches!(first, Err(RPCError::Network(_))), "{first:?}");
        assert!(answers.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_waits_without_failing() {
        let sent = new_sent_times();
        let session = Session {
            target: 2,
            answer_within: Duration::from_millis(75),
        };
        let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
        let mut answers = Box::pin(session.answers(silent, sent));
        let waited = tokio::time::timeout(Duration::from_secs(5), answers.next()).await;
        assert!(
            waited.is_err(),
            "no answer and no error while nothing is sent"
        );
    }
}
