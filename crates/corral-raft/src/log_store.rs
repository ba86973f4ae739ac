//! The raft log on a [`Disk`], with group commit.
//!
//! `append` writes entries to the disk buffered (in RocksDB, its memtable
//! and WAL buffer: no system call) and asks the disk for a sync, whose
//! completion reports them durable to openraft: many appends share one
//! sync, and no entry is reported durable before a sync covers it.
//!
//! The newest entries are also kept in a [`LogTail`], which answers the
//! reads of replication and apply that follow every append.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use crate::disk::{Disk, Durability, Family, Op};
use crate::log_tail::LogTail;
use crate::rocks::{decode, encode, StoreError};
use crate::type_config::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The raft log store of one node. Cloning it gives another handle to the
/// same log; it also serves as its own reader.
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn Disk>,
    /// The newest entries, so that reading them back skips the disk.
    tail: Arc<Mutex<LogTail>>,
}

impl LogStore {
    /// The log on `disk`.
    pub fn new(disk: Arc<dyn Disk>) -> LogStore {
        LogStore {
            disk,
            tail: Arc::default(),
        }
    }

    /// The in-memory tail. A panic while it was held may have left it half
    /// updated, so it is then emptied: reads go to the disk.
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
        match self.disk.get(Family::Meta, key)? {
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
        let put = Op::Put(Family::Meta, key.to_vec(), encode(what, value)?);
        self.disk.write(vec![put], Durability::Synced)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StoreError> {
        match self.disk.last(Family::Log)? {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: Entry = decode("log entry", &bytes)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    fn read_range(&self, start: u64, end_inclusive: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        let mut visit = |key: &[u8], bytes: &[u8]| {
            let index = index_of_key(key)?;
            if end_inclusive.is_some_and(|end| index > end) {
                return Ok(false);
            }
            entries.push(decode("log entry", bytes)?);
            Ok(true)
        };
        self.disk
            .scan_from(Family::Log, &start.to_be_bytes(), &mut visit)?;
        Ok(entries)
    }
}

/// The log id of the entry stored at `index` on `disk`, if there is one.
pub(crate) fn stored_log_id(disk: &dyn Disk, index: u64) -> Result<Option<LogId>, StoreError> {
    match disk.get(Family::Log, &index.to_be_bytes())? {
        None => Ok(None),
        Some(bytes) => Ok(Some(decode::<Entry>("log entry", &bytes)?.log_id)),
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
        let put = Op::Put(Family::Meta, KEY_COMMITTED.to_vec(), value);
        Ok(self.disk.write(vec![put], Durability::Buffered)?)
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
        let mut ops = Vec::new();
        let mut written = Vec::new();
        for entry in entries {
            let bytes = encode("log entry", &entry)?;
            let key = entry.log_id.index.to_be_bytes().to_vec();
            written.push((entry, bytes.len()));
            ops.push(Op::Put(Family::Log, key, bytes));
        }
        // Readable now, durable once the disk has synced.
        self.disk.write(ops, Durability::Buffered)?;
        self.tail().appended(written);
        self.disk.sync_then(Box::new(move |synced| {
            let synced =
                synced.map_err(|e| std::io::Error::other(format!("syncing the raft log: {e}")));
            callback.io_completed(synced);
        }));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), std::io::Error> {
        // Forgotten in memory first, so no reader sees them there once they
        // are gone from disk.
        self.tail().truncated_after(last_log_id.map(|id| id.index));
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let end = u64::MAX.to_be_bytes().to_vec();
        let ops = vec![
            Op::DeleteRange(Family::Log, from.to_be_bytes().to_vec(), end.clone()),
            Op::Delete(Family::Log, end),
        ];
        Ok(self.disk.write(ops, Durability::Synced)?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), std::io::Error> {
        self.tail().purged_up_to(log_id.index);
        let last_purged = encode("last purged log id", &log_id)?;
        let end = log_id.index.saturating_add(1).to_be_bytes().to_vec();
        let ops = vec![
            Op::Put(Family::Meta, KEY_LAST_PURGED.to_vec(), last_purged),
            Op::DeleteRange(Family::Log, 0u64.to_be_bytes().to_vec(), end),
        ];
        Ok(self.disk.write(ops, Durability::Buffered)?)
    }
}
