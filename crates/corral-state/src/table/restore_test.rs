//! Restoring a backup into a new cluster.

use super::super::story::{id, name, Story};
use crate::*;

/// A backup: lease 1 holds `invoice/1` under token 1.
fn backup() -> LockTable {
    let mut s = Story::new();
    s.lease(1);
    assert_eq!(s.token(1, "invoice/1"), FencingToken(1));
    s.table
}

#[test]
fn a_restored_cluster_grants_above_the_bumped_counter() {
    let mut table = backup();
    table.bump_tokens(1_000);
    let mut s = Story::new();
    let restored = s.run(Command::Restore {
        table: Box::new(table),
    });
    assert_eq!(
        restored.response,
        Ok(Outcome::Restored {
            last_token: FencingToken(1_001)
        })
    );
    assert_eq!(restored.lease_change, Some(LeaseChange::Replaced));
    assert!(s.table.is_restored());
    assert_eq!(s.holder("invoice/1"), Some(id(1)), "the locks are as saved");
    assert_eq!(s.token(1, "invoice/2"), FencingToken(1_002));
    // Nothing restores over it now.
    let again = s.run(Command::Restore {
        table: Box::new(backup()),
    });
    assert!(matches!(again.response, Err(Refusal::Invalid { .. })));
    assert_eq!(again.lease_change, None);
}

#[test]
fn a_cluster_that_granted_anything_takes_no_restore() {
    let mut s = Story::new();
    s.lease(9);
    s.token(9, "x");
    let restore = s.run(Command::Restore {
        table: Box::new(backup()),
    });
    assert!(matches!(restore.response, Err(Refusal::Invalid { .. })));
    assert_eq!(s.holder("x"), Some(id(9)));
    assert!(s.table.lock(&name("invoice/1")).is_none());
}

#[test]
fn a_counter_bumped_too_far_is_refused() {
    let mut table = backup();
    table.bump_tokens(u64::MAX);
    let mut s = Story::new();
    let restore = s.run(Command::Restore {
        table: Box::new(table),
    });
    assert!(matches!(restore.response, Err(Refusal::Invalid { .. })));
    assert_eq!(s.table.last_token(), FencingToken(0));
}

#[test]
fn restored_time_never_goes_back() {
    let mut s = Story::new();
    s.now_ms = 50_000;
    s.run(Command::LiftLockDelays);
    let restored = s.run(Command::Restore {
        table: Box::new(backup()),
    });
    assert!(restored.response.is_ok());
    assert_eq!(s.table.now_ms(), 50_000);
}
