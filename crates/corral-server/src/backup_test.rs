//! Backups: what is written reads back, and what is damaged is refused
//! before anything is written.

use corral_api::Backup;
use corral_state::{
    Command, FencingToken, LeaseId, LockName, LockOrder, LockTable, Mode, Proposal,
};

use super::*;
use crate::test_support::TempDir;

/// A table where one lease holds `a` under token 1.
fn table() -> LockTable {
    let mut table = LockTable::new();
    let lease_id = LeaseId(7);
    table.apply(Proposal::new(
        1_000,
        Command::GrantLease {
            lease_id,
            ttl_ms: 10_000,
            lock_order: LockOrder::None,
            lock_delay_ms: 0,
        },
    ));
    table.apply(Proposal::new(
        1_000,
        Command::Acquire {
            lease_id,
            name: LockName::new("a").expect("a name"),
            mode: Mode::Exclusive,
            wait_ms: 0,
        },
    ));
    table
}

fn write(dir: &TempDir, backup: &Backup) -> std::path::PathBuf {
    let path = dir.0.join("backup.json");
    std::fs::write(&path, serde_json::to_vec(backup).expect("encodes")).expect("written");
    path
}

#[test]
fn a_backup_reads_back_and_restores_bumped() {
    let dir = TempDir::new("backup");
    let backup = backup_of(&table()).expect("a backup");
    assert_eq!(backup.last_token, FencingToken(1));
    let file = write(&dir, &backup);
    let (_, read) = read_backup_file(&file).expect("reads");
    assert_eq!(read, table());
    let data = dir.0.join("n1");
    let from = restore_into(&file, &data, 1_000).expect("restored");
    assert_eq!(from, FencingToken(1_001));
    let seed = read_seed(&data).expect("a seed").expect("there");
    assert_eq!(seed.last_token(), FencingToken(1_001));
}

#[test]
fn a_damaged_backup_is_refused_and_nothing_is_written() {
    let dir = TempDir::new("backup-damaged");
    let good = backup_of(&table()).expect("a backup");
    let mut damaged = good.clone();
    damaged.table = damaged.table.replacen("\"a\"", "\"b\"", 1);
    let mut newer = good.clone();
    newer.version = 99;
    for (backup, want) in [(damaged, "checksum"), (newer, "version")] {
        let file = write(&dir, &backup);
        let data = dir.0.join("n1");
        let error = restore_into(&file, &data, 0).expect_err("refused");
        assert!(error.to_string().contains(want), "{error}");
        assert!(!data.exists(), "nothing written");
    }
    let file = dir.0.join("truncated.json");
    let bytes = serde_json::to_vec(&good).expect("encodes");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("written");
    assert!(matches!(
        restore_into(&file, &dir.0.join("n2"), 0),
        Err(BackupError::Format(_))
    ));
    assert!(!dir.0.join("n2").exists());
}

#[test]
fn a_restore_goes_only_into_an_empty_folder_and_not_too_far() {
    let dir = TempDir::new("backup-used");
    let file = write(&dir, &backup_of(&table()).expect("a backup"));
    let used = dir.0.join("used");
    std::fs::create_dir_all(&used).expect("a folder");
    std::fs::write(used.join("CURRENT"), "x").expect("a file");
    assert!(matches!(
        restore_into(&file, &used, 0),
        Err(BackupError::NotEmpty(_))
    ));
    assert!(!used.join(SEED_FILE).exists());
    let fresh = dir.0.join("fresh");
    assert!(matches!(
        restore_into(&file, &fresh, u64::MAX),
        Err(BackupError::Bump)
    ));
}
