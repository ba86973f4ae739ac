//! Snapshots on a node's disk, as chunks.
//!
//! A snapshot's data (the format byte, then the encoded lock table) is cut
//! into chunks of at most [`CHUNK_BYTES`], each compressed with LZ4 and
//! stored under its snapshot's id and its index. The head names the
//! current snapshot: its meta, id and number of chunks. So a snapshot is
//! built, sent and installed one chunk at a time: the table is encoded
//! straight into chunks (no copy of the table, no buffer of the whole
//! encoding), a follower gets one HTTP request per chunk, and it decodes
//! from the chunks on its disk as they are read.
//!
//! Chunks are written before the head that names them, and the head is
//! synced: a crash leaves the old snapshot current, and chunks no head
//! names, which the next open deletes.

use std::io::{Read, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::disk::{Disk, Durability, Family, Op};
use crate::rocks::{decode, encode, format_of, StoreError};
use crate::type_config::SnapshotMeta;

/// The most bytes of a snapshot's data in one chunk, before compression:
/// what a node holds of a snapshot in memory at a time, and about what one
/// peer request carries.
pub const CHUNK_BYTES: usize = 8 << 20;
/// The most chunks of one snapshot: 128 GiB of encoded table.
pub const CHUNKS_MAX: u32 = 16_384;
/// The most bytes of one stored chunk: LZ4's worst case for a full chunk,
/// and its 4-byte length.
pub const STORED_CHUNK_BYTES_MAX: usize = CHUNK_BYTES + CHUNK_BYTES / 255 + 16 + 4;

/// The head: which snapshot is current.
const KEY_HEAD: &[u8] = b"head";
/// The one value a snapshot was before chunks (meta and data): read once,
/// on open, and written again as chunks.
const KEY_WHOLE: &[u8] = b"current";
/// Chunks: this prefix, the snapshot id and the chunk index, big-endian.
const CHUNK_PREFIX: &[u8] = b"chunk/";

/// What the head records.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    meta: SnapshotMeta,
    id: u64,
    chunks: u32,
}

/// Which chunks a snapshot's data is in. Also where a chunk goes on the
/// wire: its snapshot id, its index and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSpan {
    /// The snapshot's id: random, drawn by the node that built it.
    pub id: u64,
    /// How many chunks it has.
    pub chunks: u32,
}

/// A snapshot's data: its chunks on a disk. Cloning gives another handle
/// to the same chunks.
#[derive(Clone)]
pub struct SnapshotChunks {
    disk: Arc<dyn Disk>,
    /// Which chunks.
    pub span: ChunkSpan,
}

impl std::fmt::Debug for SnapshotChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotChunks")
            .field("span", &self.span)
            .finish()
    }
}

fn chunk_key(id: u64, index: u32) -> Vec<u8> {
    let mut key = CHUNK_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The first key of snapshot `id`'s chunks and the first after them.
fn chunk_range(id: u64) -> (Vec<u8>, Vec<u8>) {
    let start = chunk_key(id, 0);
    let end = match id.checked_add(1) {
        Some(next) => chunk_key(next, 0),
        None => [CHUNK_PREFIX, &[0xff; 13]].concat(),
    };
    (start, end)
}

impl SnapshotChunks {
    /// Chunk `index` as stored (compressed): what is sent to a peer.
    pub fn stored_chunk(&self, index: u32) -> Result<Vec<u8>, StoreError> {
        let key = chunk_key(self.span.id, index);
        self.disk.get(Family::Snapshot, &key)?.ok_or_else(|| {
            let id = self.span.id;
            StoreError::Invalid(format!("chunk {index} of snapshot {id:016x} is missing"))
        })
    }

    /// The data, read chunk by chunk as it is consumed.
    pub fn reader(&self) -> ChunkReader {
        ChunkReader {
            chunks: self.clone(),
            next: 0,
            chunk: Vec::new(),
            at: 0,
        }
    }

    /// All of the data in one buffer: for a peer too old for chunks, and
    /// the simulation's transport.
    pub fn read_all(&self) -> Result<Vec<u8>, StoreError> {
        let mut data = Vec::new();
        self.reader()
            .read_to_end(&mut data)
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(data)
    }

    /// Decodes the data as `T`, reading one chunk at a time.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
    ) -> Result<T, StoreError> {
        let mut reader = self.reader();
        let mut format = [0u8; 1];
        reader
            .read_exact(&mut format)
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let decoded = match format_of(what, format[0])? {
            (encoding, true) => encoding.decode_from(reader),
            // Format 0: JSON from its first byte.
            (encoding, false) => encoding.decode_from(std::io::Cursor::new(format).chain(reader)),
        };
        decoded.map_err(|source| StoreError::Corrupt { what, source })
    }
}

/// Reads a snapshot's data across its chunks.
pub struct ChunkReader {
    chunks: SnapshotChunks,
    next: u32,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.next == self.chunks.span.chunks {
                return Ok(0);
            }
            let stored = self
                .chunks
                .stored_chunk(self.next)
                .map_err(std::io::Error::other)?;
            self.chunk = decompress(&stored)?;
            self.at = 0;
            self.next += 1;
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A stored chunk's data. Its length prefix is checked against
/// [`CHUNK_BYTES`] before anything is allocated: a chunk comes from a peer.
fn decompress(stored: &[u8]) -> std::io::Result<Vec<u8>> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let len = stored
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| invalid("a snapshot chunk shorter than its length".into()))?;
    if len > CHUNK_BYTES {
        return Err(invalid(format!("a snapshot chunk of {len} bytes")));
    }
    lz4_flex::block::decompress_size_prepended(stored).map_err(|e| invalid(e.to_string()))
}

/// Writes a snapshot's data into chunks on a disk as it is encoded.
pub struct ChunkWriter {
    /// The chunk being filled.
    buffer: Vec<u8>,
    /// Chunks handed to the sink so far.
    handed: u32,
    sink: ChunkSink,
}

/// Where full chunks go to be compressed and stored.
enum ChunkSink {
    /// Here, on the encoding thread.
    Here(ChunkStore),
    /// To a thread of their own, at most [`CHUNKS_QUEUED_MAX`] waiting, so
    /// that the encoding (which holds the state lock, and apply with it)
    /// does not wait for compression and disk writes as well. Emptied
    /// buffers come back for the next chunks.
    Thread {
        chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
        emptied: std::sync::mpsc::Receiver<Vec<u8>>,
        stored: std::thread::JoinHandle<std::io::Result<ChunkStore>>,
    },
}

/// Full chunks handed to a chunk thread and not yet taken by it: with the
/// one being filled and the one being compressed, at most 4 x
/// [`CHUNK_BYTES`] of a snapshot are in memory at once.
const CHUNKS_QUEUED_MAX: usize = 2;

/// Compresses chunks and stores them under a snapshot id.
struct ChunkStore {
    disk: Arc<dyn Disk>,
    id: u64,
    written: u32,
    stored_bytes: u64,
}

impl ChunkStore {
    fn new(disk: Arc<dyn Disk>, id: u64) -> ChunkStore {
        ChunkStore {
            disk,
            id,
            written: 0,
            stored_bytes: 0,
        }
    }

    /// Compresses `chunk` and stores it as the next one.
    fn put(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.written == CHUNKS_MAX {
            return Err(std::io::Error::other(format!(
                "a snapshot of more than {CHUNKS_MAX} chunks"
            )));
        }
        let stored = lz4_flex::block::compress_prepend_size(chunk);
        self.stored_bytes += stored.len() as u64;
        let put = Op::Put(Family::Snapshot, chunk_key(self.id, self.written), stored);
        self.disk
            .write(vec![put], Durability::Buffered)
            .map_err(std::io::Error::other)?;
        self.written += 1;
        Ok(())
    }
}

impl ChunkWriter {
    /// A writer of snapshot `id`'s chunks, which compresses and stores
    /// each one on the caller's thread.
    pub fn new(disk: Arc<dyn Disk>, id: u64) -> ChunkWriter {
        ChunkWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            handed: 0,
            sink: ChunkSink::Here(ChunkStore::new(disk, id)),
        }
    }

    /// A writer of snapshot `id`'s chunks that compresses and stores them
    /// on a thread of its own, while the caller goes on encoding.
    pub fn on_a_thread(disk: Arc<dyn Disk>, id: u64) -> std::io::Result<ChunkWriter> {
        let (chunks, queued) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_QUEUED_MAX);
        let (give_back, emptied) = std::sync::mpsc::channel();
        let mut store = ChunkStore::new(disk, id);
        let stored = std::thread::Builder::new()
            .name("corral-snapshot-chunks".into())
            .spawn(move || {
                for mut chunk in queued {
                    store.put(&chunk)?;
                    chunk.clear();
                    // The writer may be finished and gone: the buffer is
                    // then dropped here.
                    let _ = give_back.send(chunk);
                }
                Ok(store)
            })?;
        Ok(ChunkWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            handed: 0,
            sink: ChunkSink::Thread {
                chunks,
                emptied,
                stored,
            },
        })
    }

    fn put_chunk(&mut self) -> std::io::Result<()> {
        self.handed += 1;
        match &mut self.sink {
            ChunkSink::Here(store) => {
                store.put(&self.buffer)?;
                self.buffer.clear();
                Ok(())
            }
            ChunkSink::Thread {
                chunks, emptied, ..
            } => {
                let next = emptied
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
                let full = std::mem::replace(&mut self.buffer, next);
                // Only fails once the thread has stopped on an error, which
                // `finish` returns.
                chunks
                    .send(full)
                    .map_err(|_| std::io::Error::other("the snapshot chunk thread stopped"))
            }
        }
    }

    /// Writes what is left; returns the chunks and their stored size in
    /// bytes. They are durable once the head that names them is written
    /// (synced).
    pub fn finish(mut self) -> Result<(SnapshotChunks, u64), StoreError> {
        let failed = |e: std::io::Error| StoreError::Failed(e.to_string());
        // Even no data is one chunk.
        let unsent = !self.buffer.is_empty() || self.handed == 0;
        let last = if unsent { self.put_chunk() } else { Ok(()) };
        let store = match self.sink {
            ChunkSink::Here(store) => store,
            ChunkSink::Thread { chunks, stored, .. } => {
                drop(chunks);
                let ended = stored
                    .join()
                    .map_err(|_| StoreError::Failed("the snapshot chunk thread panicked".into()))?;
                ended.map_err(failed)?
            }
        };
        last.map_err(failed)?;
        let span = ChunkSpan {
            id: store.id,
            chunks: store.written,
        };
        let chunks = SnapshotChunks {
            disk: store.disk,
            span,
        };
        Ok((chunks, store.stored_bytes))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == CHUNK_BYTES {
            self.put_chunk()?;
        }
        Ok(n)
    }

    /// The encoder writes a table a few bytes at a time, under the state
    /// lock: what fits in the chunk is appended at once, without the
    /// default's loop of `write` calls.
    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() < CHUNK_BYTES - self.buffer.len() {
            self.buffer.extend_from_slice(bytes);
            return Ok(());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.write(rest)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stores chunk `index` of snapshot `span` as a peer sent it (compressed).
pub(crate) fn store_chunk(
    disk: &dyn Disk,
    span: ChunkSpan,
    index: u32,
    stored: Vec<u8>,
) -> Result<(), StoreError> {
    if span.chunks > CHUNKS_MAX || index >= span.chunks || stored.len() > STORED_CHUNK_BYTES_MAX {
        return Err(StoreError::Invalid(format!(
            "chunk {index} of {} ({} bytes) is out of bounds",
            span.chunks,
            stored.len()
        )));
    }
    let put = Op::Put(Family::Snapshot, chunk_key(span.id, index), stored);
    disk.write(vec![put], Durability::Buffered)
}

/// Writes `data`, a whole snapshot's, as the chunks of snapshot `id`.
pub(crate) fn write_whole(
    disk: Arc<dyn Disk>,
    id: u64,
    data: &[u8],
) -> Result<SnapshotChunks, StoreError> {
    let mut writer = ChunkWriter::new(disk, id);
    writer
        .write_all(data)
        .map_err(|e| StoreError::Failed(e.to_string()))?;
    Ok(writer.finish()?.0)
}

/// The chunks of `span` on `disk`.
pub(crate) fn chunks_on(disk: Arc<dyn Disk>, span: ChunkSpan) -> SnapshotChunks {
    SnapshotChunks { disk, span }
}

/// The current snapshot's meta and chunks, if there is one.
pub(crate) fn current(
    disk: &Arc<dyn Disk>,
) -> Result<Option<(SnapshotMeta, SnapshotChunks)>, StoreError> {
    let Some(head) = disk.get(Family::Snapshot, KEY_HEAD)? else {
        return Ok(None);
    };
    let head: Head = decode("snapshot head", &head)?;
    let span = ChunkSpan {
        id: head.id,
        chunks: head.chunks,
    };
    Ok(Some((head.meta, chunks_on(disk.clone(), span))))
}

/// Makes `chunks` the current snapshot, with `meta`, and deletes the
/// chunks of the one it replaces. The caller checked that it is newer.
pub(crate) fn make_current(
    disk: &Arc<dyn Disk>,
    meta: &SnapshotMeta,
    chunks: &SnapshotChunks,
) -> Result<(), StoreError> {
    let replaced = current(disk)?.map(|(_, old)| old.span.id);
    let head = Head {
        meta: meta.clone(),
        id: chunks.span.id,
        chunks: chunks.span.chunks,
    };
    let put = Op::Put(
        Family::Snapshot,
        KEY_HEAD.to_vec(),
        encode("snapshot head", &head)?,
    );
    disk.write(vec![put], Durability::Synced)?;
    if let Some(old) = replaced.filter(|old| *old != chunks.span.id) {
        discard(disk.as_ref(), old)?;
    }
    Ok(())
}

/// Deletes snapshot `id`'s chunks.
pub(crate) fn discard(disk: &dyn Disk, id: u64) -> Result<(), StoreError> {
    let (start, end) = chunk_range(id);
    let delete = Op::DeleteRange(Family::Snapshot, start, end);
    disk.write(vec![delete], Durability::Buffered)
}

/// On open: writes a snapshot stored whole (before chunks) as chunks, and
/// deletes chunks that no head names (a build or a transfer cut short).
pub(crate) fn tidy(disk: &Arc<dyn Disk>, fresh_id: u64) -> Result<(), StoreError> {
    if let Some(whole) = disk.get(Family::Snapshot, KEY_WHOLE)? {
        let (meta, data) = split_whole(&whole)?;
        let chunks = write_whole(disk.clone(), fresh_id, data)?;
        make_current(disk, &meta, &chunks)?;
        let delete = Op::Delete(Family::Snapshot, KEY_WHOLE.to_vec());
        disk.write(vec![delete], Durability::Synced)?;
    }
    let kept = current(disk)?.map(|(_, chunks)| chunks.span.id);
    // One key read per snapshot id: the scan jumps past each id's chunks.
    let mut from = CHUNK_PREFIX.to_vec();
    for _ in 0..CHUNKS_MAX {
        let mut found = None;
        disk.scan_from(Family::Snapshot, &from, &mut |key, _| {
            let id = key.strip_prefix(CHUNK_PREFIX).and_then(|k| k.get(..8));
            found = id.map(|id| u64::from_be_bytes(id.try_into().unwrap_or_default()));
            Ok(false)
        })?;
        let Some(id) = found else { break };
        if Some(id) != kept {
            discard(disk.as_ref(), id)?;
        }
        from = chunk_range(id).1;
    }
    Ok(())
}

/// A snapshot stored whole: the meta's length (8 bytes, big-endian), the
/// meta, then the data.
fn split_whole(value: &[u8]) -> Result<(SnapshotMeta, &[u8]), StoreError> {
    let corrupt = || StoreError::Invalid("snapshot value is shorter than its header".into());
    let (len, rest) = value.split_at_checked(8).ok_or_else(corrupt)?;
    let len = u64::from_be_bytes(len.try_into().map_err(|_| corrupt())?);
    let len = usize::try_from(len).map_err(|_| corrupt())?;
    let (meta, data) = rest.split_at_checked(len).ok_or_else(corrupt)?;
    Ok((decode("snapshot meta", meta)?, data))
}

#[cfg(test)]
#[path = "snapshot_store_test.rs"]
mod tests;
