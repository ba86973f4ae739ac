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
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::type_config::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::type_config::{LogId, TypeConfig};

    fn entry(term: u64, index: u64) -> (Entry, usize) {
        let log_id = LogId::new(LeaderIdOf::<TypeConfig>::new_committed(term, 1), index);
        (Entry::new_blank(log_id), 10)
    }

    fn run(first: u64, last: u64, term: u64) -> Vec<(Entry, usize)> {
        (first..=last).map(|i| entry(term, i)).collect()
    }

    fn indexes_and_terms(entries: &[Entry]) -> Vec<(u64, u64)> {
        entries
            .iter()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    #[test]
    fn answers_only_ranges_it_holds_whole() {
        let mut tail = LogTail::default();
        assert!(tail.get(1, 1).is_none());
        tail.appended(run(5, 9, 1));
        assert_eq!(tail.get(5, 9).map(|v| v.len()), Some(5));
        assert_eq!(tail.get(7, 8).map(|v| v.len()), Some(2));
        assert!(tail.get(4, 6).is_none(), "4 is only on disk");
        assert!(tail.get(8, 10).is_none(), "10 is not written yet");
        assert_eq!(tail.get(9, 8), Some(Vec::new()));
    }

    #[test]
    fn an_overwrite_replaces_the_entries_from_its_index_on() {
        let mut tail = LogTail::default();
        tail.appended(run(1, 6, 1));
        tail.appended(run(4, 5, 2));
        let kept = tail.get(1, 5).expect("1..=5 kept");
        assert_eq!(
            indexes_and_terms(&kept),
            vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]
        );
        assert!(tail.get(6, 6).is_none(), "the old 6 is gone");
        assert_eq!(tail.bytes, 50);
    }

    #[test]
    fn a_gap_drops_the_older_entries() {
        let mut tail = LogTail::default();
        tail.appended(run(1, 3, 1));
        tail.appended(run(10, 11, 1));
        assert!(tail.get(1, 1).is_none());
        assert_eq!(tail.get(10, 11).map(|v| v.len()), Some(2));
    }

    #[test]
    fn truncation_and_purge_forget_entries() {
        let mut tail = LogTail::default();
        tail.appended(run(1, 10, 1));
        tail.truncated_after(Some(7));
        assert!(tail.get(8, 8).is_none());
        tail.purged_up_to(3);
        assert!(tail.get(3, 3).is_none());
        assert_eq!(tail.get(4, 7).map(|v| v.len()), Some(4));
        assert_eq!(tail.bytes, 40);
        tail.truncated_after(None);
        assert!(tail.get(4, 4).is_none());
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn it_stays_within_its_bounds() {
        let mut tail = LogTail::default();
        let total = TAIL_ENTRIES_MAX as u64 + 100;
        tail.appended(run(1, total, 1));
        assert_eq!(tail.entries.len(), TAIL_ENTRIES_MAX);
        assert!(tail.get(100, 100).is_none());
        assert!(tail.get(101, total).is_some());
        let big: Vec<_> = (total + 1..=total + 3)
            .map(|i| (entry(1, i).0, TAIL_BYTES_MAX / 2))
            .collect();
        tail.appended(big);
        assert!(tail.bytes <= TAIL_BYTES_MAX);
        assert_eq!(tail.first_index(), Some(total + 2));
    }
}
