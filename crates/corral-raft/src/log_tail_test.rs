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
