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
    if let Some(id) = stored(data_dir)? {
        return Ok(id);
    }
    if members.is_empty() {
        return Err(BackupError::Table(
            "this node has no cluster identity: it has not joined a cluster".into(),
        ));
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
    adopt(data_dir, &id)?;
    Ok(id)
}

/// The identity this node's data folder keeps, if it has one.
pub(crate) fn stored(data_dir: &Path) -> Result<Option<String>, BackupError> {
    let path = data_dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(Some(id.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BackupError::Io {
            what: format!("reading {}", path.display()),
            source,
        }),
    }
}

/// Keeps `id` as this node's cluster identity, synced: a joining node's,
/// told by the leader that adds it.
pub(crate) fn adopt(data_dir: &Path, id: &str) -> Result<(), BackupError> {
    let path = data_dir.join(IDENTITY_FILE);
    let io = |what: &'static str| {
        let what = format!("{what} {}", path.display());
        move |source| BackupError::Io { what, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io("creating the folder of"))?;
    let mut file = std::fs::File::create(&path).map_err(io("creating"))?;
    std::io::Write::write_all(&mut file, id.as_bytes()).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))
}
