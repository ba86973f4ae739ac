//! The newest raft log entries, kept in memory beside RocksDB.
//!
//! Every entry is read back soon after it is appended: once per follower by
//! the leader's replication streams, and once by the state machine on every
//! node. Answering those reads from memory saves a RocksDB scan and a
//! decode per read. The tail only answers a read when it holds every entry
//! asked for, exactly as they are on disk; anything else goes to RocksDB.

use std::collections::VecDeque;

use crate::type_config::Entry;

/// At most this many entries are kept.
const TAIL_ENTRIES_MAX: usize = 4096;
/// At most this many bytes of encoded entries are kept.
const TAIL_BYTES_MAX: usize = 16 << 20;

/// A run of consecutive log entries, the newest appended, with the encoded
/// size of each.
#[derive(Default)]
pub(crate) struct LogTail {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl LogTail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    /// Records entries just written to disk, with their encoded sizes. They
    /// replace any kept entry at their indexes or after; a gap before them
    /// drops everything older.
    pub(crate) fn appended(&mut self, entries: Vec<(Entry, usize)>) {
        let Some(first) = entries.first().map(|(e, _)| e.log_id.index) else {
            return;
        };
        match self.last_index() {
            Some(last) if first <= last => self.keep_before(first),
            Some(last) if first > last.saturating_add(1) => self.clear(),
            _ => {}
        }
        for (entry, size) in entries {
            // A batch that is not itself consecutive is not kept at all.
            if self
                .last_index()
                .is_some_and(|last| entry.log_id.index != last.saturating_add(1))
            {
                self.clear();
                return;
            }
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.entries.len() > TAIL_ENTRIES_MAX || self.bytes > TAIL_BYTES_MAX {
            self.pop_front();
        }
    }

    /// Forgets every entry after `last` (all of them if `None`).
    pub(crate) fn truncated_after(&mut self, last: Option<u64>) {
        match last {
            Some(last) => self.keep_before(last.saturating_add(1)),
            None => self.clear(),
        }
    }

    /// Forgets every entry up to and including `index`.
    pub(crate) fn purged_up_to(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    /// The entries `start..=end`, if every one of them is kept.
    pub(crate) fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        if start > end {
            return Some(Vec::new());
        }
        let first = self.first_index()?;
        let last = self.last_index()?;
        if start < first || end > last {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(
            self.entries
                .range(from..=to)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }

    fn keep_before(&mut self, index: u64) {
        while self.last_index().is_some_and(|last| last >= index) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
#[path = "log_tail_test.rs"]
mod tests;
