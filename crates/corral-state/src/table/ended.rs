//! The holds a command ends, reported with the command's result so that a
//! node can measure hold times without reading the table itself.

use super::LockTable;
use crate::command::Command;
use crate::lock::{Grant, Kind};
use crate::outcome::{EndedHold, HoldEnd};

impl LockTable {
    /// The grants `command` ends if it succeeds, taken before it applies.
    pub(super) fn holds_ended_by(&self, command: &Command) -> Vec<(Kind, Grant, HoldEnd)> {
        let (lease_id, reason) = match command {
            Command::Release { lease_id, .. } | Command::Resign { lease_id, .. } => {
                (*lease_id, HoldEnd::Released)
            }
            Command::ExpireLease { lease_id } => (*lease_id, HoldEnd::Expired),
            Command::RevokeLease { lease_id } => (*lease_id, HoldEnd::Revoked),
            _ => return Vec::new(),
        };
        let Some(lease) = self.leases.get(&lease_id) else {
            return Vec::new();
        };
        let only = match command {
            Command::Release { name, kind, .. } => Some((*kind, name)),
            Command::Resign { name, .. } => Some((Kind::Election, name)),
            _ => None,
        };
        let mut holding = Vec::new();
        for kind in Kind::ALL {
            for name in lease.held(kind) {
                if only.is_some_and(|only| only != (kind, name)) {
                    continue;
                }
                let grant = self
                    .entry(kind, name)
                    .and_then(|lock| lock.holders.get(&lease_id));
                if let Some(grant) = grant {
                    holding.push((kind, grant.clone(), reason));
                }
            }
        }
        holding
    }

    /// The holds of `holding` that are gone now, with how long they lasted.
    pub(super) fn ended(&self, holding: Vec<(Kind, Grant, HoldEnd)>) -> Vec<EndedHold> {
        holding
            .into_iter()
            .filter(|(kind, grant, _)| {
                self.entry(*kind, &grant.name)
                    .and_then(|lock| lock.holders.get(&grant.lease_id))
                    .is_none_or(|now| now.fencing_token != grant.fencing_token)
            })
            .map(|(kind, grant, reason)| EndedHold {
                kind,
                held_ms: self.now_ms.saturating_sub(grant.granted_at_ms),
                grant,
                reason,
            })
            .collect()
    }
}
