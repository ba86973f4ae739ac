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
        let got: Vec<Result<Vec<u64>, FrameError>> = frames(stream).collect().await;
        let got: Vec<Vec<u64>> = got.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, values, "chunks of {size}");
    }
}

#[tokio::test]
async fn a_cut_frame_is_an_error_and_ends_the_stream() {
    let mut bytes = encode_frame(&vec![1u64]).unwrap();
    let second = encode_frame(&vec![2u64]).unwrap();
    bytes.extend(&second[..second.len() - 1]);
    let got: Vec<Result<Vec<u64>, FrameError>> = frames(futures::stream::iter(chunks(bytes, 2)))
        .collect()
        .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().ok(), Some(&vec![1]));
    assert!(matches!(got[1], Err(FrameError::Truncated)));
}

#[tokio::test]
async fn bad_json_and_oversized_frames_end_the_stream() {
    let mut bytes = encode_frame(&vec![1u64]).unwrap();
    bytes.extend(3u32.to_be_bytes());
    bytes.extend(b"{x}");
    bytes.extend(encode_frame(&vec![2u64]).unwrap());
    let got: Vec<Result<Vec<u64>, FrameError>> = frames(futures::stream::iter(chunks(bytes, 7)))
        .collect()
        .await;
    assert_eq!(got.len(), 2, "nothing after the bad frame: {got:?}");
    assert!(matches!(got[1], Err(FrameError::Json(_))), "{got:?}");

    let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(futures::stream::iter(vec![Ok::<_, String>(huge)]))
            .collect()
            .await;
    assert!(matches!(got[0], Err(FrameError::TooLarge(_))), "{got:?}");
}

#[tokio::test]
async fn a_transport_error_ends_the_stream() {
    let mut items = chunks(encode_frame(&vec![7u64]).unwrap(), 100);
    items.push(Err("reset".to_string()));
    items.extend(chunks(encode_frame(&vec![8u64]).unwrap(), 100));
    let got: Vec<Result<Vec<u64>, FrameError>> =
        frames(futures::stream::iter(items)).collect().await;
    assert_eq!(got.len(), 2, "nothing after the transport error: {got:?}");
    assert_eq!(got[0].as_ref().ok(), Some(&vec![7]));
    assert!(matches!(&got[1], Err(FrameError::Transport(e)) if e == "reset"));
}
