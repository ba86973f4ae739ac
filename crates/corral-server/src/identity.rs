//! The cluster's identity: 16 hex digits every peer request carries, so
//! that a node of another cluster (above all, of the cluster a backup was
//! taken from, on the addresses of the cluster restored from it) is
//! refused instead of voting or replicating its own log here.
//!
//! Made once, at a node's first start, from `--initial-cluster` and, for a
//! restored cluster, the backup's checksum; kept in the data folder.

use std::path::Path;

use corral_state::LockTable;

use crate::backup::BackupError;

/// The identity's file in a node's data folder.
const IDENTITY_FILE: &str = "cluster-id";

/// This node's cluster identity: the one its data folder keeps, or, at
/// first start, one made from the members and the restore seed, if any.
pub(crate) fn cluster_id(
    data_dir: &Path,
    members: &std::collections::BTreeMap<u64, String>,
    seed: Option<&LockTable>,
) -> Result<String, BackupError> {
    let path = data_dir.join(IDENTITY_FILE);
    let io = |what: &'static str| {
        let what = format!("{what} {}", path.display());
        move |source| BackupError::Io { what, source }
    };
    if path.exists() {
        let id = std::fs::read_to_string(&path).map_err(io("reading"))?;
        return Ok(id.trim().to_string());
    }
    let mut parts: Vec<u8> = members
        .iter()
        .map(|(id, addr)| format!("{id}={addr},"))
        .collect::<String>()
        .into_bytes();
    if let Some(table) = seed {
        let text = serde_json::to_vec(table).map_err(|e| BackupError::Table(e.to_string()))?;
        parts.extend_from_slice(b"restored:");
        parts.extend_from_slice(&text);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &parts);
    let id: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::create_dir_all(data_dir).map_err(io("creating the folder of"))?;
    std::fs::write(&path, &id).map_err(io("writing"))?;
    Ok(id)
}
