//! `corral snapshot save|restore`: back a cluster up to a file, and start
//! a new cluster from one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use corral_client::Client;
use corral_server::backup::{check_backup, restore_into, BUMP_TOKENS_DEFAULT};

use super::exit;

/// `corral snapshot ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum SnapshotCommand {
    /// Save a consistent backup of the cluster's table to FILE (from the
    /// leader, after a read barrier; a cluster admin's token with auth
    /// on). The file has a format version and a checksum.
    Save {
        /// Where to write it; replaced only once the whole backup checks.
        file: PathBuf,
    },
    /// Make a new node's data folder from a backup, offline. Run it for
    /// every node of the new cluster, with the same FILE, then start them
    /// with a new --initial-cluster: the first leader restores the
    /// backup before anything else.
    Restore {
        /// The backup `corral snapshot save` wrote.
        file: PathBuf,
        /// The new node's data folder: absent or empty.
        #[arg(long)]
        data_dir: PathBuf,
        /// How far to raise the token counter past the backup's, so that
        /// no token the old cluster handed out after the backup is handed
        /// out again: at least its peak grant rate times how long it ran
        /// after the backup. The default, 10^12, covers 10,000 grants a
        /// second for three years.
        #[arg(long, default_value_t = BUMP_TOKENS_DEFAULT)]
        bump_tokens: u64,
    },
}

/// Runs a snapshot command; its exit code.
pub(crate) async fn run(client: &Client, command: SnapshotCommand) -> anyhow::Result<i32> {
    match command {
        SnapshotCommand::Save { file } => save(client, &file).await,
        SnapshotCommand::Restore {
            file,
            data_dir,
            bump_tokens,
        } => {
            let from = restore_into(&file, &data_dir, bump_tokens)?;
            outln!(
                "restored into {}: the cluster's next token is above {}",
                data_dir.display(),
                from.0
            )?;
            Ok(exit::OK)
        }
    }
}

/// Downloads a backup, checks it, and writes it to `file` through a
/// temporary file in the same folder.
async fn save(client: &Client, file: &Path) -> anyhow::Result<i32> {
    let backup = match client.backup().await {
        Ok(backup) => backup,
        Err(e) => return Ok(exit::report(Some("taking a backup"), &e)),
    };
    check_backup(&backup).context("the backup the cluster sent does not check")?;
    let bytes = serde_json::to_vec(&backup)?;
    let partial = file.with_extension("partial");
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, file).with_context(|| format!("writing {}", file.display()))?;
    outln!(
        "saved {}: last token {}, taken at {} (Unix ms)",
        file.display(),
        backup.last_token.0,
        backup.taken_at_ms
    )?;
    Ok(exit::OK)
}
