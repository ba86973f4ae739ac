use super::*;
use proptest::prelude::*;

const JSON: Encoding = Encoding::Json;
const BOTH: [Encoding; 2] = [Encoding::Json, Encoding::MessagePack];

fn encoding(binary: bool) -> Encoding {
    BOTH[usize::from(binary)]
}

fn chunks(bytes: Vec<u8>, size: usize) -> Vec<Result<Vec<u8>, String>> {
    bytes.chunks(size).map(|c| Ok(c.to_vec())).collect()
}

#[tokio::test]
async fn frames_survive_any_chunking() {
    let values: Vec<Vec<u64>> = vec![vec![], vec![1], vec![2, 3, 4], (0..1000).collect()];
    for encoding in BOTH {
        let mut bytes = Vec::new();
        for v in &values {
            bytes.extend(encode_frame(encoding, v).unwrap());
        }
        for size in [1, 3, 4, 5, 64, bytes.len()] {
            let stream = futures::stream::iter(chunks(bytes.clone(), size));
            let got: Vec<Result<Vec<u64>, FrameError>> = frames(encoding, stream).collect().await;
            let got: Vec<Vec<u64>> = got.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(got, values, "{encoding:?} in chunks of {size}");
        }
    }
}

#[tokio::test]
async fn a_cut_frame_is_an_error_and_ends_the_stream() {
    let mut bytes = encode_frame(JSON, &vec![1u64]).unwrap();
    let second = encode_frame(JSON, &vec![2u64]).unwrap();
    bytes.extend(&second[..second.len() - 1]);
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(JSON, futures::stream::iter(chunks(bytes, 2)))
            .collect()
            .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().ok(), Some(&vec![1]));
    assert!(matches!(got[1], Err(FrameError::Truncated)));
}

#[tokio::test]
async fn bad_json_and_oversized_frames_end_the_stream() {
    let mut bytes = encode_frame(JSON, &vec![1u64]).unwrap();
    bytes.extend(3u32.to_be_bytes());
    bytes.extend(b"{x}");
    bytes.extend(encode_frame(JSON, &vec![2u64]).unwrap());
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(JSON, futures::stream::iter(chunks(bytes, 7)))
            .collect()
            .await;
    assert_eq!(got.len(), 2, "nothing after the bad frame: {got:?}");
    assert!(matches!(got[1], Err(FrameError::Codec(_))), "{got:?}");

    let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(JSON, futures::stream::iter(vec![Ok::<_, String>(huge)]))
            .collect()
            .await;
    assert!(matches!(got[0], Err(FrameError::TooLarge(_))), "{got:?}");
}

#[tokio::test]
async fn a_transport_error_ends_the_stream() {
    let mut items = chunks(encode_frame(JSON, &vec![7u64]).unwrap(), 100);
    items.push(Err("reset".to_string()));
    items.extend(chunks(encode_frame(JSON, &vec![8u64]).unwrap(), 100));
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(JSON, futures::stream::iter(items)).collect().await;
    assert_eq!(got.len(), 2, "nothing after the transport error: {got:?}");
    assert_eq!(got[0].as_ref().ok(), Some(&vec![7]));
    assert!(matches!(&got[1], Err(FrameError::Transport(e)) if e == "reset"));
}

// Fuzzing: bytes from a peer that is broken or hostile, fed to the decoders
// of both peer streams of this crate (append requests, and their answers).

/// What an append stream's response carries.
type AppendAnswer = Result<
    openraft::raft::StreamAppendResult<crate::type_config::TypeConfig>,
    openraft::errors::Fatal<crate::type_config::TypeConfig>,
>;
type AppendRequest = openraft::raft::AppendEntriesRequest<crate::type_config::TypeConfig>;

/// Any JSON value, small: the body of a frame that is well-formed but
/// rarely what the reader expects.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A piece of a hostile stream: a valid frame of any JSON, a length
/// prefix with that many random bytes, a bare prefix of any size, or
/// random bytes.
fn segment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (json_value(), any::<bool>()).prop_map(|(v, binary)| {
            encode_frame(encoding(binary), &v).expect("a JSON value encodes")
        }),
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|body| {
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend(body);
            frame
        }),
        any::<u32>().prop_map(|len| len.to_be_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}

/// Random bytes, or a stream of segments.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(segment(), 0..8).prop_map(|s| s.concat()),
    ]
}

/// `bytes` cut into chunks of `sizes`, taken in turn.
fn cut(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        chunks.push(chunk.to_vec());
        rest = tail;
    }
    chunks
}

/// What `frames` makes of `chunks` as `T`, after checking its shape: the
/// stream ends, and only its last item may be an error.
fn through_frames<T: DeserializeOwned>(
    encoding: Encoding,
    chunks: &[Vec<u8>],
) -> Result<Vec<Result<T, FrameError>>, TestCaseError> {
    let stream = futures::stream::iter(chunks.iter().map(|c| Ok::<_, String>(c.clone())));
    let items: Vec<Result<T, FrameError>> =
        futures::executor::block_on(frames(encoding, stream).collect());
    let errors = items.iter().filter(|item| item.is_err()).count();
    prop_assert!(errors <= 1, "at most one error, and it ends the stream");
    if errors == 1 {
        prop_assert!(
            items.last().is_some_and(Result::is_err),
            "the error is last"
        );
    }
    Ok(items)
}

/// Feeds `chunks` to a [`FrameReader`] as `T` until the first error,
/// checking after every push that its buffer is sized by the bytes that
/// arrived, never by a length prefix: at most twice those bytes (a
/// growing `Vec` doubles), and 8 when nearly none arrived.
fn through_reader<T: DeserializeOwned>(
    encoding: Encoding,
    chunks: &[Vec<u8>],
) -> Result<Vec<T>, TestCaseError> {
    let mut reader = FrameReader::new(encoding);
    let mut arrived = 0;
    let mut decoded = Vec::new();
    for chunk in chunks {
        reader.push(chunk);
        arrived += chunk.len();
        check_buffer(&reader, arrived)?;
        while let Some(frame) = reader.next_frame::<T>() {
            check_buffer(&reader, arrived)?;
            match frame {
                Ok(value) => decoded.push(value),
                Err(_) => return Ok(decoded),
            }
        }
    }
    Ok(decoded)
}

fn check_buffer(reader: &FrameReader, arrived: usize) -> Result<(), TestCaseError> {
    let capacity = reader.buffer.capacity();
    prop_assert!(
        capacity <= (2 * arrived).max(8),
        "a buffer of {} bytes after {} arrived",
        capacity,
        arrived
    );
    Ok(())
}

/// Both decoders of `bytes`, cut by `sizes`, as `T`: they agree on how
/// many frames decode before the first error or the end.
fn decode_both<T: DeserializeOwned>(
    encoding: Encoding,
    bytes: &[u8],
    sizes: &[usize],
) -> Result<Vec<Result<T, FrameError>>, TestCaseError> {
    let chunks = cut(bytes, sizes);
    let items = through_frames::<T>(encoding, &chunks)?;
    let read = through_reader::<T>(encoding, &chunks)?;
    prop_assert_eq!(read.len(), items.iter().filter(|i| i.is_ok()).count());
    Ok(items)
}

/// A way to damage a stream of valid frames.
#[derive(Clone, Debug)]
enum Corruption {
    /// XOR the byte at this index (modulo the length) with a non-zero mask.
    Flip(usize, u8),
    /// Keep only the bytes before this index (modulo the length).
    Truncate(usize),
    /// Give the first frame a length above the cap.
    HugePrefix(u32),
    /// Give the first frame a length within the cap but beyond the stream.
    LongPrefix(u32),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let cap = FRAME_BYTES_MAX as u32;
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Corruption::Flip(at, mask)),
        any::<usize>().prop_map(Corruption::Truncate),
        (cap + 1..=u32::MAX).prop_map(Corruption::HugePrefix),
        (1u32 << 16..=cap).prop_map(Corruption::LongPrefix),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, in any chunks, decode to frames or end with one
    /// `FrameError`, as every type a peer stream carries, without a panic
    /// and without a buffer sized by a length prefix. 256 cases: 0.1 s in
    /// a debug build.
    #[test]
    fn any_bytes_in_any_chunks_give_frames_or_an_error(
        bytes in hostile_bytes(),
        sizes in prop::collection::vec(1usize..64, 1..8),
        binary in any::<bool>(),
    ) {
        let encoding = encoding(binary);
        decode_both::<serde_json::Value>(encoding, &bytes, &sizes)?;
        decode_both::<AppendRequest>(encoding, &bytes, &sizes)?;
        decode_both::<AppendAnswer>(encoding, &bytes, &sizes)?;
    }

    /// Valid append frames, damaged, decode to an error (or, for a flip
    /// the JSON survives, to frames) without a panic: a length above the
    /// cap is refused before its bytes arrive, one within it but beyond the
    /// stream is truncation, and neither sizes a buffer. 256 cases: 0.6 s
    /// in a debug build.
    #[test]
    fn damaged_append_frames_are_errors(
        requests in prop::collection::vec(crate::encoding_test::append_request(), 1..3),
        damage in corruption(),
        sizes in prop::collection::vec(1usize..300, 1..4),
        binary in any::<bool>(),
    ) {
        let encoding = encoding(binary);
        let mut bytes = Vec::new();
        for request in &requests {
            bytes.extend(encode_frame(encoding, request).expect("every request encodes"));
        }
        let len = bytes.len();
        match damage {
            Corruption::Flip(at, mask) => bytes[at % len] ^= mask,
            Corruption::Truncate(at) => bytes.truncate(at % len),
            Corruption::HugePrefix(n) | Corruption::LongPrefix(n) => {
                bytes[..4].copy_from_slice(&n.to_be_bytes());
            }
        }
        let items = decode_both::<AppendRequest>(encoding, &bytes, &sizes)?;
        let first = items.first();
        match damage {
            Corruption::Flip(..) => {}
            Corruption::Truncate(_) => {
                let whole = items.iter().filter(|i| i.is_ok()).count();
                prop_assert!(whole < requests.len());
                let last = items.last();
                prop_assert!(
                    last.is_none_or(|l| matches!(l, Ok(_) | Err(FrameError::Truncated))),
                    "{:?}",
                    last
                );
            }
            Corruption::HugePrefix(_) => {
                prop_assert!(matches!(first, Some(Err(FrameError::TooLarge(_)))), "{:?}", first);
            }
            Corruption::LongPrefix(n) if n as usize > len - 4 => {
                prop_assert!(matches!(first, Some(Err(FrameError::Truncated))), "{:?}", first);
            }
            // Within the stream: the frame takes bytes of the next ones,
            // which rarely but possibly still decode.
            Corruption::LongPrefix(_) => {}
        }
    }
}
