//! Replaying a remembered answer: a grant is replayed only while it is
//! still true.
//!
//! A retry with an idempotency key gets the first answer back and applies
//! nothing. For a grant that is not enough: the lease may have released the
//! lock, been re-granted it under a newer token, or ended since, and a
//! client that reads the replayed grant would believe it holds a lock that
//! is free or someone else's. So a remembered grant is checked against the
//! table first; the check reads the state only, so every replica answers
//! the same.

use super::LockTable;
use crate::command::Command;
use crate::lock::{Grant, Kind};
use crate::outcome::{Outcome, Refusal, Response};

impl LockTable {
    /// The remembered answer `response` to `command`, or, if it reports
    /// grants that no longer hold, the refusal that says why.
    pub(super) fn still_true(&self, command: &Command, response: Response) -> Response {
        let Some(kind) = granted_kind(command) else {
            return response;
        };
        let grants = match &response {
            Ok(Outcome::Granted(grant)) => std::slice::from_ref(grant),
            Ok(Outcome::GrantedAll { grants }) => grants.as_slice(),
            _ => return response,
        };
        match grants.iter().find_map(|g| self.gone(kind, g)) {
            Some(refusal) => Err(refusal),
            None => response,
        }
    }

    /// Why `grant` of `kind` no longer holds, if it does not.
    fn gone(&self, kind: Kind, grant: &Grant) -> Option<Refusal> {
        if !self.leases.contains_key(&grant.lease_id) {
            return Some(Refusal::LeaseNotFound);
        }
        let current = self
            .entry(kind, &grant.name)
            .and_then(|lock| lock.holders.get(&grant.lease_id));
        // The token names the grant: a re-grant of the same lock to the
        // same lease took a newer one, which the replay does not report.
        if current.is_some_and(|c| c.fencing_token == grant.fencing_token) {
            return None;
        }
        Some(match kind {
            Kind::Election => Refusal::NotLeader,
            Kind::Lock | Kind::Semaphore => Refusal::NotHolder,
        })
    }
}

/// What a command whose answer may be a grant grants; `None` for the
/// commands that answer no grant.
fn granted_kind(command: &Command) -> Option<Kind> {
    match command {
        Command::Acquire { .. } | Command::AcquireAll { .. } | Command::CancelWaitAll { .. } => {
            Some(Kind::Lock)
        }
        Command::AcquirePermits { .. } => Some(Kind::Semaphore),
        Command::Campaign { .. } | Command::Proclaim { .. } => Some(Kind::Election),
        Command::CancelWait { kind, .. } => Some(*kind),
        _ => None,
    }
}
