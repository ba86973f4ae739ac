//! The one RocksDB database of a node, its column families, and
//! [`RocksDisk`]: the [`Disk`] of a real node, with group commit.
//!
//! A buffered write goes into RocksDB's memtable and WAL buffer (no system
//! call). A sync request hands its callback to one flusher thread, which
//! takes every callback waiting at that moment, writes and syncs the WAL
//! once, and only then calls them all. One fsync covers every write that
//! arrived while the previous one ran, so throughput grows with load while
//! each entry is still on disk before openraft is told so.
//!
//! A failure test may slow the flusher down ([`Faults`]'s log-sync delay),
//! to leave acknowledged entries in this node's memory when it is killed.

use std::path::Path;
use std::sync::{mpsc, Arc, Weak};
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::codec::Encoding;
use crate::disk::{Disk, Durability, Family, KeyValue, Op, SyncDone, Visit};
use crate::faults::Faults;

/// Raft log entries, keyed by big-endian index so that key order is log
/// order.
const CF_LOG: &str = "log";
/// Raft metadata: vote, committed log id, last purged log id.
const CF_META: &str = "meta";
/// The current snapshot of the state machine: its meta and its data.
const CF_SNAPSHOT: &str = "snapshot";

/// Why the node's database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// What was read from disk could not be decoded.
    #[error("corrupt {what} in the database: {source}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoding error.
        source: crate::codec::CodecError,
    },
    /// A value could not be encoded for disk. Returned, never a panic: a
    /// panic in a raft task would stop the node without saying why.
    #[error("{what} does not encode: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// The encoding error.
        source: crate::codec::CodecError,
    },
    /// What was read from disk decodes but breaks an invariant.
    #[error("invalid state in the database: {0}")]
    Invalid(String),
    /// The disk failed (a simulated disk of a crashed node, say).
    #[error("disk: {0}")]
    Failed(String),
    /// A value was written in a format this version does not read: by a
    /// newer corral.
    #[error("{what} in the database has format {format}; this corral reads formats 0 to {DISK_FORMAT}: run a newer corral on this folder")]
    Format {
        /// What was being read.
        what: &'static str,
        /// Its format.
        format: u8,
    },
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

/// Old WAL files kept to be written over instead of deleted.
///
/// Syncing a write that lengthens a file also writes the file's inode, one
/// more round trip to the disk; a write over an old file's bytes leaves its
/// length alone, so the sync writes only the data. On the bench machine this
/// takes a log sync from about 280 to 200 µs.
const WAL_FILES_RECYCLED: usize = 4;
/// The log's memtable. When it fills it is flushed and the WAL moves to the
/// next file, so WAL files become old (and reusable) every few MiB of log.
const LOG_MEMTABLE_BYTES: usize = 4 << 20;

/// Opens (or creates) the database under `dir`.
fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_recycle_log_file_num(WAL_FILES_RECYCLED);
    // A flush takes every column family, so a WAL file is free for reuse
    // once the log's memtable is flushed: the small metadata writes alone
    // would never fill theirs, and would keep every WAL file alive.
    options.set_atomic_flush(true);
    // Writes stay in RocksDB's WAL buffer until the log flusher writes and
    // syncs it (`flush_wal(true)`): one `write` per sync instead of one per
    // append and per committed-id update, and none on the runtime thread.
    // Only what a sync covers is ever acknowledged; a write with
    // `set_sync(true)` (vote, truncation, snapshot) flushes the buffer too.
    options.set_manual_wal_flush(true);
    let families = [CF_LOG, CF_META, CF_SNAPSHOT].into_iter().map(|name| {
        let mut family = Options::default();
        if name == CF_LOG {
            family.set_write_buffer_size(LOG_MEMTABLE_BYTES);
        }
        ColumnFamilyDescriptor::new(name, family)
    });
    let db = DB::open_cf_descriptors(&options, dir, families)?;
    Ok(Arc::new(db))
}

/// A column family that `open_db` created.
fn cf(db: &DB, family: Family) -> &ColumnFamily {
    let name = match family {
        Family::Log => CF_LOG,
        Family::Meta => CF_META,
        Family::Snapshot => CF_SNAPSHOT,
    };
    db.cf_handle(name)
        .expect("open_db creates every column family")
}

/// A node's RocksDB database as its [`Disk`].
pub struct RocksDisk {
    db: Arc<DB>,
    flusher: mpsc::Sender<SyncDone>,
}

impl RocksDisk {
    /// Opens (or creates) the database under `dir`, and starts its flusher
    /// thread, which records each sync's time in `fsync_seconds`.
    pub fn open(
        dir: &Path,
        fsync_seconds: Histogram,
        faults: Faults,
    ) -> Result<RocksDisk, StoreError> {
        let db = open_db(dir)?;
        let (flusher, callbacks) = mpsc::channel();
        // Weak: the database closes when the disk is dropped, on the
        // thread that drops it, not later on this one (a RocksDB closed
        // during process exit aborts in its static destructors).
        let flush_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("corral-log-flush".into())
            .spawn(move || flush_loop(&flush_db, &callbacks, &fsync_seconds, &faults))
            .map_err(|e| StoreError::Failed(format!("spawning the log flusher: {e}")))?;
        Ok(RocksDisk { db, flusher })
    }
}

impl Disk for RocksDisk {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(cf(&self.db, family), key)?)
    }

    fn last(&self, family: Family) -> Result<Option<KeyValue>, StoreError> {
        let mut iter = self.db.iterator_cf(cf(&self.db, family), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some((key.to_vec(), value.to_vec())))
            }
        }
    }

    fn scan_from(&self, family: Family, from: &[u8], visit: Visit<'_>) -> Result<(), StoreError> {
        let mode = IteratorMode::From(from, Direction::Forward);
        for item in self.db.iterator_cf(cf(&self.db, family), mode) {
            let (key, value) = item?;
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, ops: Vec<Op>, durability: Durability) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                Op::Put(family, key, value) => batch.put_cf(cf(&self.db, family), key, value),
                Op::Delete(family, key) => batch.delete_cf(cf(&self.db, family), key),
                Op::DeleteRange(family, start, end) => {
                    batch.delete_range_cf(cf(&self.db, family), start, end)
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        Ok(self.db.write_opt(batch, &options)?)
    }

    fn sync_then(&self, done: SyncDone) {
        if let Err(mpsc::SendError(done)) = self.flusher.send(done) {
            done(Err("the log flusher thread is gone".into()));
        }
    }
}

/// Syncs the WAL once for every batch of waiting callbacks, then calls
/// them. Ends when the disk is dropped.
fn flush_loop(
    db: &Weak<DB>,
    callbacks: &mpsc::Receiver<SyncDone>,
    fsync_seconds: &Histogram,
    faults: &Faults,
) {
    while let Ok(first) = callbacks.recv() {
        let mut batch = vec![first];
        batch.extend(callbacks.try_iter());
        // A test's slow disk; switched off, a check of `None`.
        faults.delay_log_sync();
        let started = Instant::now();
        let synced = match db.upgrade() {
            _ if faults.log_sync_fails() => Err("failed by a test fault".to_string()),
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        fsync_seconds.observe(started.elapsed().as_secs_f64());
        for done in batch {
            done(synced.clone());
        }
    }
}

/// The format of the values corral writes to disk (log entries, vote,
/// snapshots; a snapshot's data also travels to peers as is): one byte
/// before the encoded value. Format 2 is MessagePack (see [`crate::codec`]);
/// format 1 is JSON. Values written before formats were numbered are the
/// JSON alone, which never starts with a byte below 0x20 other than
/// whitespace: format 0.
pub const DISK_FORMAT: u8 = 2;

/// Decodes a value read from disk, of format 0 to [`DISK_FORMAT`]; one of
/// a newer format is refused with a message that says so.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let (encoding, body) = match bytes.first() {
        Some(&first) => match format_of(what, first)? {
            (encoding, true) => (encoding, &bytes[1..]),
            (encoding, false) => (encoding, bytes),
        },
        None => (Encoding::Json, bytes),
    };
    encoding
        .decode(body)
        .map_err(|source| StoreError::Corrupt { what, source })
}

/// What the first byte of a disk value says: its encoding, and whether the
/// byte is a format byte (formats 1 to [`DISK_FORMAT`]) or already the
/// value's own (format 0, JSON). A newer format is refused by name.
pub(crate) fn format_of(what: &'static str, first: u8) -> Result<(Encoding, bool), StoreError> {
    match first {
        1..=DISK_FORMAT => Ok((Encoding::of_format(first), true)),
        format if format < 0x20 && !b"\t\n\r".contains(&format) => {
            Err(StoreError::Format { what, format })
        }
        _ => Ok((Encoding::Json, false)),
    }
}

/// Encodes a value for disk. The round-trip property tests show that every
/// value of our types encodes; should one not, it is an error for the
/// caller to return, so that the node reports a storage error instead of a
/// raft task panicking.
pub(crate) fn encode<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![DISK_FORMAT];
    Encoding::of_format(DISK_FORMAT)
        .encode_into(&mut bytes, value)
        .map_err(|source| StoreError::Encode { what, source })?;
    Ok(bytes)
}

/// A value of the disk format as a node that reads at most `format` (of
/// peer formats: the same numbers) can read it: as it is, or decoded as
/// `T` and written again in JSON (format 1) for a node older than format 2.
pub(crate) fn readable_by<T: serde::Serialize + serde::de::DeserializeOwned>(
    format: u8,
    what: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if Encoding::of_format(format) == Encoding::of_format(DISK_FORMAT) {
        return Ok(bytes);
    }
    let value: T = decode(what, &bytes)?;
    let mut json = vec![1];
    Encoding::Json
        .encode_into(&mut json, &value)
        .map_err(|source| StoreError::Encode { what, source })?;
    Ok(json)
}

/// A RocksDB disk under `dir` for a test, with no faults.
#[cfg(test)]
pub(crate) fn test_disk(dir: &Path) -> Arc<dyn Disk> {
    let fsync_seconds = crate::StoreMetrics::default().log_fsync;
    Arc::new(RocksDisk::open(dir, fsync_seconds, Faults::default()).expect("open a database"))
}

/// A test's disk whose writes fail once the first `good` of them are done.
#[cfg(test)]
pub(crate) struct FailingWrites {
    disk: Arc<dyn Disk>,
    good: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl FailingWrites {
    /// `disk`, failing every write after the first `good`.
    pub(crate) fn after(disk: Arc<dyn Disk>, good: usize) -> Arc<dyn Disk> {
        Arc::new(FailingWrites {
            disk,
            good: good.into(),
        })
    }
}

#[cfg(test)]
impl Disk for FailingWrites {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.disk.get(family, key)
    }

    fn last(&self, family: Family) -> Result<Option<KeyValue>, StoreError> {
        self.disk.last(family)
    }

    fn scan_from(&self, family: Family, from: &[u8], visit: Visit<'_>) -> Result<(), StoreError> {
        self.disk.scan_from(family, from, visit)
    }

    fn write(&self, ops: Vec<Op>, durability: Durability) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let left = self.good.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Failed("the disk is full".into()));
        }
        self.good.store(left - 1, Ordering::SeqCst);
        self.disk.write(ops, durability)
    }

    fn sync_then(&self, done: SyncDone) {
        self.disk.sync_then(done)
    }
}
