use openraft::type_config::alias::LeaderIdOf;
use openraft::vote::RaftLeaderIdExt;

use super::*;

const BINARY: Encoding = Encoding::MessagePack;

fn heartbeat() -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: crate::type_config::Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    }
}

#[tokio::test]
async fn the_body_frames_each_request_and_notes_when_it_went() {
    let session = Session::new(2, Duration::from_secs(5), BINARY);
    let sent = session.sent.clone();
    let requests = futures::stream::iter(vec![heartbeat(), heartbeat()]);
    let body: Vec<_> = session.body(requests, || Ok(())).collect().await;
    assert_eq!(body.len(), 2);
    assert_eq!(sent_times(&sent).len(), 2);
    let bytes: Vec<Result<Vec<u8>, String>> =
        body.into_iter().map(|frame| Ok(frame.unwrap())).collect();
    let decoded: Vec<Result<AppendEntriesRequest<TypeConfig>, crate::frame::FrameError>> =
        frames(BINARY, futures::stream::iter(bytes)).collect().await;
    assert!(decoded
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.entries.is_empty())));
}

#[tokio::test]
async fn a_refused_request_ends_the_body_with_an_error() {
    let session = Session::new(2, Duration::from_secs(5), BINARY);
    let sent = session.sent.clone();
    let requests = futures::stream::iter(vec![heartbeat()]);
    let refuse = || Err(std::io::Error::other("partitioned"));
    let body: Vec<_> = session.body(requests, refuse).collect().await;
    assert!(body[0].is_err());
    assert!(sent_times(&sent).is_empty(), "nothing was sent");
}

#[tokio::test]
async fn answers_come_in_order_and_clear_their_send_times() {
    let session = Session::new(2, Duration::from_secs(5), BINARY);
    let sent = session.sent.clone();
    for _ in 0..2 {
        sent_times(&sent).push_back(Instant::now());
    }
    let replies: Vec<StreamReply> = vec![Ok(Ok(None)), Ok(Ok(None))];
    let bytes: Vec<Result<Vec<u8>, String>> = replies
        .iter()
        .map(|r| Ok(encode_frame(BINARY, r).unwrap()))
        .collect();
    let answers: Vec<_> = session
        .answers(futures::stream::iter(bytes))
        .collect()
        .await;
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(|a| matches!(a, Ok(Ok(None)))));
    assert!(sent_times(&sent).is_empty());
}

fn log_id(index: u64) -> LogId {
    LogId::new(LeaderIdOf::<TypeConfig>::new_committed(1, 1), index)
}

fn matched(index: u64) -> StreamReply {
    Ok(Ok(Some(log_id(index))))
}

/// The answers in each chunk `send_answers` sends for `replies`.
async fn chunks(replies: Vec<StreamReply>) -> Vec<usize> {
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel(64);
    send_answers(futures::stream::iter(replies), BINARY, frames_tx).await;
    let mut counts = Vec::new();
    while let Some(chunk) = frames_rx.recv().await {
        let frames: Vec<Result<StreamReply, crate::frame::FrameError>> =
            frames(BINARY, futures::stream::iter(vec![Ok::<_, String>(chunk)]))
                .collect()
                .await;
        assert!(frames.iter().all(Result::is_ok));
        counts.push(frames.len());
    }
    counts
}

#[test]
fn only_errors_and_new_matches_are_news() {
    let mut answered = Answered::default();
    let conflict: StreamReply = Ok(Err(openraft::raft::StreamAppendError::Conflict(log_id(2))));
    let news: Vec<bool> = [
        Ok(Ok(None)),
        Ok(Ok(None)),
        matched(3),
        matched(3),
        matched(5),
        conflict,
    ]
    .iter()
    .map(|reply| answered.tells_news(reply))
    .collect();
    assert_eq!(news, [true, false, true, false, true, true]);
}

#[tokio::test]
async fn a_repeated_match_goes_with_the_next_answer() {
    let replies = vec![matched(3), matched(3), matched(4), matched(4), matched(4)];
    assert_eq!(
        chunks(replies).await,
        [1, 2, 2],
        "every answer is sent; the repeats go with the next, the last ones at the end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_answer_goes_alone_after_the_hold() {
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel(64);
    let replies =
        futures::stream::iter(vec![matched(3), matched(3)]).chain(futures::stream::pending());
    let sending = tokio::spawn(send_answers(Box::pin(replies), BINARY, frames_tx));
    assert!(frames_rx.recv().await.is_some(), "the first answer at once");
    let started = Instant::now();
    assert!(
        frames_rx.recv().await.is_some(),
        "the repeat after the hold"
    );
    assert!(started.elapsed() >= HOLD);
    sending.abort();
}

#[tokio::test(start_paused = true)]
async fn an_overdue_answer_fails_the_session() {
    let session = Session::new(2, Duration::from_millis(75), BINARY);
    sent_times(&session.sent).push_back(Instant::now());
    let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
    let mut answers = Box::pin(session.answers(silent));
    let first = answers.next().await.expect("an error, not the end");
    assert!(matches!(first, Err(RPCError::Network(_))), "{first:?}");
    assert!(answers.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_waits_without_failing() {
    let session = Session::new(2, Duration::from_millis(75), BINARY);
    let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
    let mut answers = Box::pin(session.answers(silent));
    let waited = tokio::time::timeout(Duration::from_secs(5), answers.next()).await;
    assert!(
        waited.is_err(),
        "no answer and no error while nothing is sent"
    );
}
