//! The one RocksDB database of a node and its column families.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

/// Raft log entries, keyed by big-endian index so that key order is log
/// order.
pub(crate) const CF_LOG: &str = "log";
/// Raft metadata: vote, committed log id, last purged log id.
pub(crate) const CF_META: &str = "meta";
/// The current snapshot of the state machine: its meta and its data.
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

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
        source: serde_json::Error,
    },
    /// A value could not be encoded for disk. Returned, never a panic: a
    /// panic in a raft task would stop the node without saying why.
    #[error("{what} does not encode: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// The encoding error.
        source: serde_json::Error,
    },
    /// What was read from disk decodes but breaks an invariant.
    #[error("invalid state in the database: {0}")]
    Invalid(String),
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
pub(crate) fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
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
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .expect("open_db creates every column family")
}

/// Decodes a JSON value read from disk.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

/// Encodes a value for disk. The round-trip property tests show that every
/// value of our types encodes; should one not, it is an error for the
/// caller to return, so that the node reports a storage error instead of a
/// raft task panicking.
pub(crate) fn encode<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { what, source })
}
