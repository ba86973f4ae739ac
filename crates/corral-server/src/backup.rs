//! Backups and restores.
//!
//! A backup is the whole table at one log position ([`corral_api::Backup`]),
//! taken on the leader after a read barrier. Restoring it is offline: `corral
//! snapshot restore` checks it, raises its token counter (see
//! [`BUMP_TOKENS_DEFAULT`]), and leaves it as a seed in a new node's empty
//! data folder. Each node of the new cluster gets the same seed; the first
//! leader proposes it as
//! [`Command::Restore`](corral_state::Command::Restore), the first command
//! that grants anything, and the leader takes no client write until it is
//! applied.

use std::path::Path;

use corral_api::{Backup, BACKUP_FORMAT, BACKUP_VERSION};
use corral_state::{FencingToken, LockTable};

/// How far a restore raises the token counter by default: 10^12, which
/// covers 10,000 grants a second for three years after the backup was
/// taken. Size it as the old cluster's peak grant rate times the longest
/// it may have run after the backup, with a margin; tokens are 64-bit, so
/// a large bump costs nothing.
pub const BUMP_TOKENS_DEFAULT: u64 = 1_000_000_000_000;
/// The seed's file name in a node's data folder.
pub(crate) const SEED_FILE: &str = "restore.seed";

/// Why a backup cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not a backup of a format this version reads.
    #[error("not a corral backup this version reads: {0}")]
    Format(String),
    /// The table does not match its checksum: damaged or truncated.
    #[error("the backup's checksum does not match: the file is damaged or truncated")]
    Checksum,
    /// The table does not decode, or breaks an invariant.
    #[error("the backup's table is not valid: {0}")]
    Table(String),
    /// The data folder is not empty: a restore goes into a new node only.
    #[error("{0} is not empty: restore into a new, empty data folder")]
    NotEmpty(String),
    /// The bump would take the counter past what a restore takes.
    #[error(
        "--bump-tokens takes the token counter past {}",
        corral_state::TOKENS_LEFT_MIN
    )]
    Bump,
}

/// The SHA-256 of `bytes`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A backup of `table`.
pub(crate) fn backup_of(table: &LockTable) -> Result<Backup, BackupError> {
    let text = serde_json::to_string(table).map_err(|e| BackupError::Table(e.to_string()))?;
    Ok(Backup {
        format: BACKUP_FORMAT.into(),
        version: BACKUP_VERSION,
        taken_at_ms: table.now_ms(),
        last_token: table.last_token(),
        sha256: sha256_hex(text.as_bytes()),
        table: text,
    })
}

/// Checks a backup's format, version, checksum and table; the table.
pub fn check_backup(backup: &Backup) -> Result<LockTable, BackupError> {
    if backup.format != BACKUP_FORMAT {
        return Err(BackupError::Format(format!("format {:?}", backup.format)));
    }
    if backup.version != BACKUP_VERSION {
        let known = format!(
            "version {}, this version reads {BACKUP_VERSION}",
            backup.version
        );
        return Err(BackupError::Format(known));
    }
    if sha256_hex(backup.table.as_bytes()) != backup.sha256 {
        return Err(BackupError::Checksum);
    }
    let mut table: LockTable =
        serde_json::from_str(&backup.table).map_err(|e| BackupError::Table(e.to_string()))?;
    table.rebuild_derived();
    table
        .check_invariants()
        .map_err(|e| BackupError::Table(e.to_string()))?;
    Ok(table)
}

/// Reads a backup file and checks it.
pub fn read_backup_file(path: &Path) -> Result<(Backup, LockTable), BackupError> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| BackupError::Io { what, source }
    };
    let bytes = std::fs::read(path).map_err(io("reading"))?;
    let backup: Backup =
        serde_json::from_slice(&bytes).map_err(|e| BackupError::Format(e.to_string()))?;
    let table = check_backup(&backup)?;
    Ok((backup, table))
}

/// Writes the backup in `file` as the seed of a new node in `data_dir`,
/// its token counter raised by `bump`; the counter the restored cluster
/// starts from. Nothing is written unless the file checks out and the
/// folder is new (absent or empty).
pub fn restore_into(file: &Path, data_dir: &Path, bump: u64) -> Result<FencingToken, BackupError> {
    let (_, mut table) = read_backup_file(file)?;
    table.bump_tokens(bump);
    if table.last_token().0 > corral_state::TOKENS_LEFT_MIN {
        return Err(BackupError::Bump);
    }
    let io = |what: &str| {
        let what = format!("{what} {}", data_dir.display());
        move |source| BackupError::Io { what, source }
    };
    let used = std::fs::read_dir(data_dir).map(|mut entries| entries.next().is_some());
    if used.unwrap_or(false) {
        return Err(BackupError::NotEmpty(data_dir.display().to_string()));
    }
    std::fs::create_dir_all(data_dir).map_err(io("creating"))?;
    let seed = backup_of(&table)?;
    let bytes = serde_json::to_vec(&seed).map_err(|e| BackupError::Table(e.to_string()))?;
    let partial = data_dir.join(format!("{SEED_FILE}.partial"));
    std::fs::write(&partial, bytes).map_err(io("writing the seed in"))?;
    std::fs::rename(&partial, data_dir.join(SEED_FILE)).map_err(io("writing the seed in"))?;
    Ok(table.last_token())
}

/// The seed in `data_dir`, if a restore left one.
pub(crate) fn read_seed(data_dir: &Path) -> Result<Option<LockTable>, BackupError> {
    let path = data_dir.join(SEED_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_backup_file(&path).map(|(_, table)| Some(table))
}

#[cfg(test)]
#[path = "backup_test.rs"]
mod tests;
