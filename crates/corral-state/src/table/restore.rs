//! Restoring a backup: the whole table at once, into a new cluster.

use std::collections::BTreeSet;

use super::LockTable;
use crate::outcome::{Outcome, Refusal, Response};
use crate::token::FencingToken;

/// The highest token counter a restore takes, so that the counter never
/// runs out after it (half of `u64`).
pub const TOKENS_LEFT_MIN: u64 = u64::MAX / 2;

impl LockTable {
    /// Replaces this table with `table`, a backup's, if nothing was
    /// granted here yet and no restore applied before. The backup's state-
    /// machine time moves forward to this cluster's if it is behind, so
    /// time never goes back; its leases live on, and each gets a full ttl
    /// from the leader (which knows no deadline of theirs).
    pub(super) fn restore(&mut self, mut table: LockTable) -> Response {
        let fresh = self.last_token == FencingToken(0)
            && self.leases.is_empty()
            && self.kv.is_empty()
            && self.queues.is_empty();
        if self.restored || !fresh {
            return Err(Refusal::Invalid {
                reason: "a backup is restored only into a new cluster, before its first grant"
                    .into(),
            });
        }
        if table.last_token.0 > TOKENS_LEFT_MIN {
            return Err(Refusal::Invalid {
                reason: format!(
                    "the backup's token counter is past {TOKENS_LEFT_MIN}: bumped too far"
                ),
            });
        }
        table.rebuild_derived();
        if let Err(broken) = table.check_invariants() {
            return Err(Refusal::Invalid {
                reason: format!("the backup breaks an invariant: {broken}"),
            });
        }
        table.now_ms = table.now_ms.max(self.now_ms);
        table.restored = true;
        // Node ids belong to the cluster, not to its data: the new cluster
        // keeps its own.
        table.retired_nodes = std::mem::take(&mut self.retired_nodes);
        *self = table;
        Ok(Outcome::Restored {
            last_token: self.last_token,
        })
    }

    /// Raises the token counter by `by`, for a backup about to be restored:
    /// the old cluster may have handed out tokens after the backup was
    /// taken, and the restored one must never hand them out again.
    pub fn bump_tokens(&mut self, by: u64) {
        self.last_token = FencingToken(self.last_token.0.saturating_add(by));
    }

    /// Records that the nodes `ids` left the cluster's membership, for
    /// good. Called as a membership entry applies, with the ids the
    /// previous membership had and this one has not.
    pub fn retire_nodes(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.retired_nodes.extend(ids);
    }

    /// The node ids removed from the cluster, which it never takes again.
    pub fn retired_nodes(&self) -> &BTreeSet<u64> {
        &self.retired_nodes
    }

    /// Whether this table came from a backup.
    pub fn is_restored(&self) -> bool {
        self.restored
    }
}

#[cfg(test)]
#[path = "restore_test.rs"]
mod tests;
