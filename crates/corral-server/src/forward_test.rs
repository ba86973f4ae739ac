//! The forwarding stream: the leader's side on its own, and both sides
//! over real HTTP/2 on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use corral_api::ErrorKind;
use corral_raft::codec::Encoding;
use corral_raft::frame::{encode_frame, frames};
use corral_state::{Command, LeaseId, LockOrder, Outcome, Response};
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::forward::{
    answer_all, serve, Forwarded, Forwarder, Forwarding, NotSent, Numbered, Pending,
    PATH_PROPOSE_STREAM,
};
use crate::node::{Attempt, PeerReply, Submission};

/// What a follower frames its stream in to a leader it has not heard from.
const BINARY: Encoding = Encoding::MessagePack;
const PATIENCE: Duration = Duration::from_secs(10);

fn grant(n: u64) -> Forwarded {
    Forwarded {
        submission: Submission::from(Command::GrantLease {
            lease_id: LeaseId(u128::from(n)),
            ttl_ms: n,
            lock_order: LockOrder::default(),
            lock_delay_ms: 0,
        }),
        request_id: None,
    }
}

/// A leader that grants each lease asked for, some later than others, so
/// that answers come out of order.
async fn granting(command: Forwarded) -> PeerReply<Response> {
    let Command::GrantLease {
        lease_id, ttl_ms, ..
    } = command.submission.command
    else {
        panic!("only lease grants are forwarded here");
    };
    tokio::time::sleep(Duration::from_millis((7 - ttl_ms % 7) * 10)).await;
    PeerReply::Done(Ok(Ok(Outcome::LeaseGranted { lease_id, ttl_ms })))
}

/// The lease a forwarded grant came back with.
fn granted(forwarding: Forwarding) -> u128 {
    match forwarding {
        Ok(Attempt::Done(Ok(Ok(Outcome::LeaseGranted { lease_id, .. })))) => lease_id.0,
        Ok(Attempt::Done(other)) => panic!("not granted: {other:?}"),
        Ok(Attempt::NotLeader) => panic!("not granted: not leader"),
        Err(e) => panic!("not sent: {e}"),
    }
}

/// Whether the answer says the command may have applied.
fn may_have_applied(forwarding: &Forwarding) -> bool {
    matches!(
        forwarding,
        Ok(Attempt::Done(Err(error)))
            if matches!(error.kind(), ErrorKind::Unavailable { .. })
                && error.to_string().contains("may still apply")
    )
}

/// How a test leader, which names no format in its answers (as a node
/// older than format 2 would not), reads a stream: in the format the
/// stream's request names. The forwarder sends the first stream in the
/// newest format, and later ones in JSON.
fn encoding_of(headers: &HeaderMap) -> Encoding {
    Encoding::of_format(corral_raft::format_named(headers).unwrap_or(0))
}

/// Serves `router` on a loopback port; its address.
async fn listen(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A leader whose stream breaks 100 ms after it opens, answering nothing.
fn breaking_body() -> Body {
    Body::from_stream(futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err::<Vec<u8>, _>(std::io::Error::other("the leader went away"))
    }))
}

/// What the leader's side answers, in order, to a body of `chunks`.
async fn answers_to(chunks: Vec<Vec<u8>>) -> Vec<Numbered<PeerReply<Response>>> {
    let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, String>));
    let out: Vec<Vec<u8>> = serve(granting, BINARY, body)
        .map(|frame| frame.unwrap_or_else(|never| match never {}))
        .collect()
        .await;
    let out = futures::stream::iter(out.into_iter().map(Ok::<_, String>));
    let frames: Vec<Vec<Numbered<PeerReply<Response>>>> = frames(BINARY, out)
        .map(|frame| frame.expect("a good frame"))
        .collect()
        .await;
    frames.into_iter().flatten().collect()
}

#[tokio::test]
async fn the_leader_answers_each_command_by_its_number_then_ends() {
    let chunks = vec![
        encode_frame(
            BINARY,
            &vec![Numbered(10, grant(1)), Numbered(11, grant(2))],
        )
        .expect("encode"),
        encode_frame(BINARY, &vec![Numbered(12, grant(3))]).expect("encode"),
    ];
    let answers = answers_to(chunks).await;
    let mut seen: Vec<(u64, u128)> = answers
        .into_iter()
        .map(|Numbered(seq, reply)| (seq, granted(Ok(Attempt::from(reply)))))
        .collect();
    // The later the lease, the sooner its answer.
    assert_eq!(seen.first(), Some(&(12, 3)));
    seen.sort_unstable();
    assert_eq!(seen, vec![(10, 1), (11, 2), (12, 3)]);
}

#[tokio::test]
async fn the_leader_stops_reading_at_a_bad_frame_but_answers_what_it_took() {
    let bad = encode_frame(BINARY, &"not a batch").expect("encode");
    let chunks = vec![
        encode_frame(BINARY, &vec![Numbered(0, grant(1))]).expect("encode"),
        bad,
        encode_frame(BINARY, &vec![Numbered(1, grant(2))]).expect("encode"),
    ];
    let answers = answers_to(chunks).await;
    let seqs: Vec<u64> = answers.into_iter().map(|n| n.0).collect();
    assert_eq!(seqs, vec![0]);
}

#[tokio::test]
async fn many_commands_share_one_stream_and_each_gets_its_own_answer() {
    let streams = Arc::new(AtomicUsize::new(0));
    let opened = streams.clone();
    let router = Router::new().route(
        PATH_PROPOSE_STREAM,
        post(move |headers: HeaderMap, body: Body| {
            opened.fetch_add(1, Ordering::SeqCst);
            let encoding = encoding_of(&headers);
            async move { Body::from_stream(serve(granting, encoding, body.into_data_stream())) }
        }),
    );
    let addr = listen(router).await;
    let forwarder = Forwarder::start(corral_raft::PeerClients::new(None).expect("peer clients"));
    let forwards = (1..=50u64).map(|n| {
        let forwarder = forwarder.clone();
        let addr = addr.clone();
        async move {
            let answer = forwarder
                .forward(&addr, grant(n).submission, PATIENCE)
                .await;
            (n, granted(answer))
        }
    });
    for (n, lease) in futures::future::join_all(forwards).await {
        assert_eq!(u128::from(n), lease);
    }
    // And later ones too, on the same stream.
    let answer = forwarder
        .forward(&addr, grant(51).submission, PATIENCE)
        .await;
    assert_eq!(granted(answer), 51);
    assert_eq!(streams.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_leader_that_cannot_be_reached_is_safe_to_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let forwarder = Forwarder::start(corral_raft::PeerClients::new(None).expect("peer clients"));
    let answer = forwarder
        .forward(&addr, grant(1).submission, PATIENCE)
        .await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn a_broken_stream_fails_what_it_carried_and_the_next_command_opens_another() {
    let streams = Arc::new(AtomicUsize::new(0));
    let opened = streams.clone();
    let router = Router::new().route(
        PATH_PROPOSE_STREAM,
        post(move |headers: HeaderMap, body: Body| {
            let first = opened.fetch_add(1, Ordering::SeqCst) == 0;
            let encoding = encoding_of(&headers);
            async move {
                if first {
                    breaking_body()
                } else {
                    Body::from_stream(serve(granting, encoding, body.into_data_stream()))
                }
            }
        }),
    );
    let addr = listen(router).await;
    let forwarder = Forwarder::start(corral_raft::PeerClients::new(None).expect("peer clients"));
    let lost = forwarder
        .forward(&addr, grant(1).submission, PATIENCE)
        .await;
    assert!(may_have_applied(&lost), "{lost:?}");
    let answer = forwarder
        .forward(&addr, grant(2).submission, PATIENCE)
        .await;
    assert_eq!(granted(answer), 2);
    assert_eq!(streams.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_overdue_answer_ends_the_stream_and_an_idle_one_does_not() {
    let pending = Mutex::new(Pending::default());
    // Idle: nothing outstanding, so the silence is no failure.
    let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
    let idle = tokio::time::timeout(
        Duration::from_secs(60),
        answer_all(BINARY, silent, &pending),
    )
    .await;
    assert!(idle.is_err(), "an idle stream ended: {idle:?}");

    let (answer, answered) = oneshot::channel();
    pending
        .lock()
        .expect("lock")
        .waiting
        .insert(0, (Instant::now(), answer));
    let silent = futures::stream::pending::<Result<Vec<u8>, String>>();
    let why = answer_all(BINARY, silent, &pending).await;
    assert!(why.contains("overdue"), "{why}");
    drop(answered);
}

/// Any answer a leader can give a forwarded command: an outcome or a
/// refusal of any kind, an error of any kind (as the leader's HTTP layer
/// makes them), or "not the leader".
fn any_reply() -> impl proptest::strategy::Strategy<Value = PeerReply<Response>> {
    use proptest::prelude::*;
    // Each arm boxed: the derived strategies of the large enums are large
    // values, and a debug build's test thread has a small stack.
    prop_oneof![
        any::<Response>()
            .prop_map(|response| PeerReply::Done(Ok(response)))
            .boxed(),
        any::<corral_state::Refusal>()
            .prop_map(|refusal| PeerReply::Done(Err(ApiError::from(refusal).body())))
            .boxed(),
        any::<corral_api::ErrorDetail>()
            .prop_map(|error| PeerReply::Done(Err(corral_api::ErrorBody { error })))
            .boxed(),
        proptest::option::of(1u64..6)
            .prop_map(|leader_id| PeerReply::NotLeader { leader_id })
            .boxed(),
    ]
}

fn any_forwarded() -> impl proptest::strategy::Strategy<Value = Forwarded> {
    use proptest::prelude::*;
    let idempotency = proptest::option::of(any::<corral_state::Idempotency>());
    let caller = proptest::option::of(any::<corral_state::Bearer>());
    (any::<Command>(), idempotency, caller).prop_map(|(command, idempotency, caller)| Forwarded {
        submission: Submission {
            command,
            idempotency,
            caller,
        },
        request_id: None,
    })
}

/// The JSON of a value, to compare values that do not implement `Eq`.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("encodes")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any command crosses the forward stream to the leader, and the
    /// leader's answer to it, whatever it is, crosses back: the leader's
    /// real serving path, with the bytes cut into chunks of any size.
    #[test]
    fn any_command_and_any_answer_cross_the_forward_stream(
        batch in proptest::collection::vec((any_forwarded(), any_reply()), 1..12),
        chunk_bytes in 1usize..200,
    ) {
        let (commands, replies): (Vec<Forwarded>, Vec<PeerReply<Response>>) =
            batch.into_iter().unzip();
        let numbered: Vec<Numbered<Forwarded>> = commands
            .iter()
            .enumerate()
            .map(|(seq, command)| {
                let mut command = command.clone();
                command.request_id = Some(seq.to_string());
                Numbered(seq as u64, command)
            })
            .collect();
        let bytes = encode_frame(BINARY, &numbered).expect("every command encodes");
        let chunks: Vec<Vec<u8>> = bytes.chunks(chunk_bytes).map(<[u8]>::to_vec).collect();
        let replies = Arc::new(replies);
        let sent: Arc<Vec<String>> = Arc::new(commands.iter().map(|c| json(&c.submission)).collect());
        let leader_replies = replies.clone();
        let leader = move |forwarded: Forwarded| {
            let (replies, sent) = (leader_replies.clone(), sent.clone());
            async move {
                let seq: usize = forwarded.request_id.as_deref().unwrap_or("").parse().expect("numbered");
                assert_eq!(json(&forwarded.submission), sent[seq], "the command arrived as sent");
                replies[seq].clone()
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answers = runtime.block_on(answers_from(leader, chunks));
        proptest::prop_assert_eq!(answers.len(), replies.len());
        for Numbered(seq, answer) in answers {
            proptest::prop_assert_eq!(json(&answer), json(&replies[seq as usize]));
        }
    }
}

/// What `leader` answers, decoded on the follower's side, to a body of
/// `chunks`.
async fn answers_from<F, Fut>(leader: F, chunks: Vec<Vec<u8>>) -> Vec<Numbered<PeerReply<Response>>>
where
    F: Fn(Forwarded) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = PeerReply<Response>> + Send + 'static,
{
    let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, String>));
    let out: Vec<Result<Vec<u8>, String>> = serve(leader, BINARY, body)
        .map(|frame| Ok(frame.unwrap_or_else(|never| match never {})))
        .collect()
        .await;
    let frames: Vec<Vec<Numbered<PeerReply<Response>>>> =
        frames(BINARY, futures::stream::iter(out))
            .map(|frame| frame.expect("the leader's answers decode"))
            .collect()
            .await;
    frames.into_iter().flatten().collect()
}

/// A leader older than format 2 refuses the first stream (framed in the
/// newest format, to a peer not heard from): the command was not sent, so
/// it is safe to retry, and the next stream is framed in JSON, which that
/// leader reads.
#[tokio::test]
async fn a_stream_an_older_leader_refuses_is_safe_to_retry_in_json() {
    let formats_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = formats_seen.clone();
    let router = Router::new().route(
        PATH_PROPOSE_STREAM,
        post(move |headers: HeaderMap, body: Body| {
            let encoding = encoding_of(&headers);
            seen.lock().unwrap().push(encoding);
            async move {
                if encoding == Encoding::MessagePack {
                    let refused = axum::http::StatusCode::FORBIDDEN;
                    return axum::response::IntoResponse::into_response(refused);
                }
                let answers = serve(granting, encoding, body.into_data_stream());
                axum::response::IntoResponse::into_response(Body::from_stream(answers))
            }
        }),
    );
    let addr = listen(router).await;
    let forwarder = Forwarder::start(corral_raft::PeerClients::new(None).expect("peer clients"));
    let refused = forwarder
        .forward(&addr, grant(1).submission, PATIENCE)
        .await;
    assert!(matches!(refused, Err(NotSent::Refused(403))), "{refused:?}");
    let answer = forwarder
        .forward(&addr, grant(2).submission, PATIENCE)
        .await;
    assert_eq!(granted(answer), 2);
    let seen = formats_seen.lock().unwrap().clone();
    assert_eq!(seen, vec![Encoding::MessagePack, Encoding::Json]);
}
