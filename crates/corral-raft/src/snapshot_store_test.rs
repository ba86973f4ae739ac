use std::sync::Arc;

use super::*;
use crate::rocks::{test_disk, FailingWrites};
use crate::type_config::TypeConfig;

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 1, index)),
        last_membership: Default::default(),
    }
}

/// Bytes that do not compress much, as a real table's ids do not.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn chunk_ids(disk: &Arc<dyn Disk>) -> Vec<u64> {
    let mut ids = Vec::new();
    disk.scan_from(Family::Snapshot, CHUNK_PREFIX, &mut |key, _| {
        let Some(id) = key.strip_prefix(CHUNK_PREFIX) else {
            return Ok(false);
        };
        let id = u64::from_be_bytes(id[..8].try_into().expect("8 bytes"));
        if ids.last() != Some(&id) {
            ids.push(id);
        }
        Ok(true)
    })
    .expect("scan");
    ids
}

/// Data written across chunk boundaries reads back whole, a chunk at a
/// time; each stored chunk is within the bound a peer's is held to.
#[test]
fn data_round_trips_through_chunks() {
    round_trips_through_chunks(ChunkWriter::new);
}

/// The same through a writer that compresses and stores its chunks on a
/// thread of its own: the same chunks, in order.
#[test]
fn data_round_trips_through_chunks_stored_on_a_thread() {
    round_trips_through_chunks(|disk, id| ChunkWriter::on_a_thread(disk, id).expect("thread"));
}

fn round_trips_through_chunks(writer_of: impl Fn(Arc<dyn Disk>, u64) -> ChunkWriter) {
    let dir = tempfile::TempDir::new().unwrap();
    let disk = test_disk(dir.path());
    let data = noise(5 * CHUNK_BYTES + 12_345);
    let mut writer = writer_of(disk.clone(), 7);
    for piece in data.chunks(1_000_003) {
        writer.write_all(piece).expect("written");
    }
    let (chunks, stored_bytes) = writer.finish().expect("finished");
    assert_eq!(chunks.span, ChunkSpan { id: 7, chunks: 6 });
    let mut stored_total = 0;
    for index in 0..6 {
        let stored = chunks.stored_chunk(index).expect("stored");
        assert!(stored.len() <= STORED_CHUNK_BYTES_MAX);
        stored_total += stored.len() as u64;
    }
    assert_eq!(stored_total, stored_bytes);
    assert_eq!(chunks.read_all().expect("read"), data);
    let empty = writer_of(disk, 8).finish().expect("finished").0;
    assert_eq!(empty.span.chunks, 1, "even no data is one chunk");
    assert!(empty.read_all().expect("read").is_empty());
}

/// A chunk from a peer is refused out of bounds, and one whose length
/// prefix claims more than a chunk holds fails to read, before anything
/// of that size is allocated.
#[test]
fn chunks_out_of_bounds_are_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let disk = test_disk(dir.path());
    let span = ChunkSpan { id: 1, chunks: 2 };
    assert!(store_chunk(disk.as_ref(), span, 2, vec![0; 8]).is_err());
    let too_many = ChunkSpan {
        id: 1,
        chunks: CHUNKS_MAX + 1,
    };
    assert!(store_chunk(disk.as_ref(), too_many, 0, vec![0; 8]).is_err());
    let huge = vec![0; STORED_CHUNK_BYTES_MAX + 1];
    assert!(store_chunk(disk.as_ref(), span, 0, huge).is_err());
    let mut lying = u32::MAX.to_le_bytes().to_vec();
    lying.extend([0; 16]);
    store_chunk(disk.as_ref(), span, 0, lying).expect("kept: it is checked when read");
    store_chunk(disk.as_ref(), span, 1, vec![1, 2]).expect("kept");
    let chunks = chunks_on(disk, span);
    let read = chunks.read_all().expect_err("a chunk that claims 4 GiB");
    assert!(read.to_string().contains("bytes"), "{read}");
}

/// A new current snapshot deletes the chunks of the one it replaces; a
/// restart deletes chunks no head names, and writes a snapshot stored
/// whole (before chunks) as chunks.
#[test]
fn replaced_and_stray_chunks_go_and_a_whole_snapshot_becomes_chunks() {
    let dir = tempfile::TempDir::new().unwrap();
    let disk = test_disk(dir.path());
    let first = write_whole(disk.clone(), 1, b"\x02first").expect("written");
    make_current(&disk, &meta(5), &first).expect("current");
    let second = write_whole(disk.clone(), 2, b"\x02second").expect("written");
    make_current(&disk, &meta(6), &second).expect("current");
    assert_eq!(chunk_ids(&disk), vec![2]);
    write_whole(disk.clone(), 3, b"cut short").expect("written");
    tidy(&disk, 4).expect("tidied");
    assert_eq!(chunk_ids(&disk), vec![2]);
    let (stored, chunks) = current(&disk).expect("read").expect("a snapshot");
    assert_eq!(
        (stored, chunks.read_all().expect("read")),
        (meta(6), b"\x02second".to_vec())
    );

    // A node of the format before chunks kept one value: meta and data.
    let meta_bytes = encode("snapshot meta", &meta(9)).expect("encodes");
    let mut whole = (meta_bytes.len() as u64).to_be_bytes().to_vec();
    whole.extend(&meta_bytes);
    whole.extend(b"{\"old\":1}");
    let put = Op::Put(Family::Snapshot, KEY_WHOLE.to_vec(), whole);
    disk.write(vec![put], Durability::Synced).expect("written");
    tidy(&disk, 4).expect("tidied");
    assert_eq!(disk.get(Family::Snapshot, KEY_WHOLE).expect("read"), None);
    assert_eq!(chunk_ids(&disk), vec![4]);
    let (stored, chunks) = current(&disk).expect("read").expect("a snapshot");
    assert_eq!(stored, meta(9));
    assert_eq!(chunks.read_all().expect("read"), b"{\"old\":1}".to_vec());
    let old: serde_json::Value = chunks.decode("snapshot data").expect("format 0 decodes");
    assert_eq!(old["old"], 1);
}

/// A chunk the thread cannot store stops the encoding at the next chunk
/// handed over, and `finish` says why, instead of the encoder waiting on a
/// thread that is gone.
#[test]
fn a_chunk_the_thread_cannot_store_fails_the_writer() {
    let dir = tempfile::TempDir::new().unwrap();
    let disk = FailingWrites::after(test_disk(dir.path()), 1);
    let mut writer = ChunkWriter::on_a_thread(disk, 9).expect("thread");
    let data = noise(CHUNK_BYTES);
    let mut refused = None;
    for round in 0..(CHUNKS_QUEUED_MAX + 8) {
        if let Err(e) = writer.write_all(&data) {
            refused = Some((round, e));
            break;
        }
    }
    let (round, _) = refused.expect("a write fails once the thread stopped");
    assert!(round >= 1, "the first chunk was stored");
    let Err(e) = writer.finish() else {
        panic!("finish must fail")
    };
    assert!(e.to_string().contains("the disk is full"), "{e}");
}
