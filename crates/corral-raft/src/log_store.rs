//! The raft log in RocksDB, with group commit.
//!
//! `append` writes entries into RocksDB (its memtable and WAL buffer, no
//! system call) and hands its flush callback to one flusher thread. The
//! flusher takes every callback waiting at that moment, writes and syncs the
//! WAL once, and only then reports them all durable. One fsync covers every
//! append that arrived while the previous one ran, so throughput grows with
//! load while each entry is still on disk before openraft is told so.
//!
//! The newest entries are also kept in a [`LogTail`], which answers the
//! reads of replication and apply that follow every append.
//!
//! A failure test may slow the flusher down ([`Faults`]'s log-sync delay),
//! to leave acknowledged entries in this node's memory when it is killed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::faults::Faults;
use crate::log_tail::LogTail;
use crate::rocks::{cf, decode, encode, StoreError, CF_LOG, CF_META};
use crate::type_config::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The raft log store of one node. Cloning it gives another handle to the
/// same log; it also serves as its own reader.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: mpsc::Sender<IOFlushed<TypeConfig>>,
    /// The newest entries, so that reading them back skips RocksDB.
    tail: Arc<Mutex<LogTail>>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, fsync_seconds: Histogram, faults: Faults) -> LogStore {
        let (flusher, callbacks) = mpsc::channel();
        // Weak: the database closes when the stores are dropped, on the
        // thread that drops them, not later on this one (a RocksDB closed
        // during process exit aborts in its static destructors).
        let flush_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("corral-log-flush".into())
            .spawn(move || flush_loop(&flush_db, &callbacks, &fsync_seconds, &faults))
            .expect("spawn the log flusher thread");
        LogStore {
            db,
            flusher,
            tail: Arc::default(),
        }
    }

    /// The in-memory tail. A panic while it was held may have left it half
    /// updated, so it is then emptied: reads go to RocksDB.
    fn tail(&self) -> MutexGuard<'_, LogTail> {
        self.tail.lock().unwrap_or_else(|poisoned| {
            let mut tail = poisoned.into_inner();
            tail.truncated_after(None);
            tail
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static [u8],
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.db.get_cf(cf(&self.db, CF_META), key)? {
            None => Ok(None),
            Some(bytes) => decode(what, &bytes).map(Some),
        }
    }

    fn put_meta_synced<T: serde::Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
    ) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .put_cf_opt(cf(&self.db, CF_META), key, encode(what, value)?, &options)?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StoreError> {
        let mut iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, bytes) = item?;
                let entry: Entry = decode("log entry", &bytes)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    fn read_range(&self, start: u64, end_inclusive: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let mode = IteratorMode::From(&start.to_be_bytes(), Direction::Forward);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, CF_LOG), mode) {
            let (key, bytes) = item?;
            let index = index_of_key(&key)?;
            if end_inclusive.is_some_and(|end| index > end) {
                break;
            }
            entries.push(decode("log entry", &bytes)?);
        }
        Ok(entries)
    }
}

/// Syncs the WAL once for every batch of waiting callbacks, then reports
/// them. Ends when every `LogStore` handle is dropped.
fn flush_loop(
    db: &Weak<DB>,
    callbacks: &mpsc::Receiver<IOFlushed<TypeConfig>>,
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
        for callback in batch {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(format!("syncing the raft log: {e}"))),
            };
            callback.io_completed(result);
        }
    }
}

fn index_of_key(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Invalid(format!("a log key of {} bytes, not 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, std::io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end_inclusive = match range.end_bound() {
            Bound::Included(&i) => Some(i),
            Bound::Excluded(&0) => return Ok(Vec::new()),
            Bound::Excluded(&i) => Some(i - 1),
            Bound::Unbounded => None,
        };
        if let Some(end) = end_inclusive {
            if let Some(entries) = self.tail().get(start, end) {
                return Ok(entries);
            }
        }
        Ok(self.read_range(start, end_inclusive)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, std::io::Error> {
        Ok(self.get_meta(KEY_VOTE, "vote")?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, std::io::Error> {
        let last_purged_log_id: Option<LogId> =
            self.get_meta(KEY_LAST_PURGED, "last purged log id")?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), std::io::Error> {
        Ok(self.put_meta_synced(KEY_VOTE, "vote", vote)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), std::io::Error> {
        // Not synced, and written out only with the next sync: a lost
        // committed id is recomputed by the cluster; it only lets a
        // restarted node re-apply sooner. Until the cluster has, the node
        // serves no reads (corral-server's `Node::read_index_here`).
        let value = encode("committed log id", &committed)?;
        self.db
            .put_cf(cf(&self.db, CF_META), KEY_COMMITTED, value)
            .map_err(StoreError::from)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, std::io::Error> {
        Ok(self
            .get_meta::<Option<LogId>>(KEY_COMMITTED, "committed log id")?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), std::io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        let mut written = Vec::new();
        for entry in entries {
            let bytes = encode("log entry", &entry)?;
            batch.put_cf(log, entry.log_id.index.to_be_bytes(), &bytes);
            written.push((entry, bytes.len()));
        }
        // Readable now, durable once the flusher has written and synced the
        // WAL.
        self.db.write(batch).map_err(StoreError::from)?;
        self.tail().appended(written);
        self.flusher
            .send(callback)
            .map_err(|_| std::io::Error::other("the log flusher thread is gone"))?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), std::io::Error> {
        // Forgotten in memory first, so no reader sees them there once they
        // are gone from disk.
        self.tail().truncated_after(last_log_id.map(|id| id.index));
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            from.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(cf(&self.db, CF_LOG), u64::MAX.to_be_bytes());
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(StoreError::from)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), std::io::Error> {
        self.tail().purged_up_to(log_id.index);
        let mut batch = WriteBatch::default();
        let last_purged = encode("last purged log id", &log_id)?;
        batch.put_cf(cf(&self.db, CF_META), KEY_LAST_PURGED, last_purged);
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            0u64.to_be_bytes(),
            log_id.index.saturating_add(1).to_be_bytes(),
        );
        self.db.write(batch).map_err(StoreError::from)?;
        Ok(())
    }
}
