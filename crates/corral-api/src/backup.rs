//! `GET /v1/snapshot`: a backup of the whole table, as `corral snapshot
//! save` writes it to a file and `corral snapshot restore` reads it.

use serde::{Deserialize, Serialize};

use crate::FencingToken;

/// What `format` says in every backup.
pub const BACKUP_FORMAT: &str = "corral-backup";
/// The backup format this version writes and reads.
pub const BACKUP_VERSION: u32 = 1;

/// A backup: the table's JSON as one string, with what a reader checks
/// before it trusts it.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Always [`BACKUP_FORMAT`].
    pub format: String,
    /// The format's version; a reader refuses one it does not know.
    pub version: u32,
    /// When it was taken, in Unix milliseconds of state-machine time.
    pub taken_at_ms: u64,
    /// The last fencing token handed out when it was taken.
    pub last_token: FencingToken,
    /// The SHA-256 of `table`'s bytes, in hex.
    pub sha256: String,
    /// The lock table, as JSON.
    pub table: String,
}
