//! Writing each lock's timeline from what a command did.

use super::LockTable;
use crate::command::Command;
use crate::lease::LeaseId;
use crate::lock::{Kind, LockName};
use crate::outcome::{Event, Outcome, Refusal, Response};
use crate::timeline::TimelineKind;
use crate::token::FencingToken;

/// What a command is about, taken before it is applied (apply consumes it).
pub(super) enum Subject {
    /// Not about locks.
    None,
    /// An acquire of these locks.
    Acquire(LeaseId, Vec<LockName>),
    /// A release of a lock.
    Release(LeaseId, LockName),
    /// A lease ended: expired or revoked.
    EndLease(LeaseId, bool),
    /// A wait withdrawn.
    Cancel(LeaseId, Vec<LockName>),
    /// A fenced write under a lock.
    Write(LockName, FencingToken),
}

impl Subject {
    pub(super) fn of(command: &Command) -> Subject {
        match command {
            Command::Acquire { lease_id, name, .. } => {
                Subject::Acquire(*lease_id, vec![name.clone()])
            }
            Command::AcquireAll {
                lease_id, names, ..
            } => Subject::Acquire(*lease_id, names.clone()),
            Command::Release {
                lease_id,
                name,
                kind: Kind::Lock,
                ..
            } => Subject::Release(*lease_id, name.clone()),
            Command::ExpireLease { lease_id } => Subject::EndLease(*lease_id, true),
            Command::RevokeLease { lease_id } => Subject::EndLease(*lease_id, false),
            Command::CancelWait {
                lease_id,
                name,
                kind: Kind::Lock,
            } => Subject::Cancel(*lease_id, vec![name.clone()]),
            Command::CancelWaitAll { lease_id, names } => Subject::Cancel(*lease_id, names.clone()),
            Command::KvPut { fence, .. } | Command::KvDelete { fence, .. } => {
                Subject::Write(fence.lock.clone(), fence.fencing_token)
            }
            _ => Subject::None,
        }
    }
}

impl LockTable {
    /// Appends to the timelines what a command did: first what let go of
    /// locks, then the grants it caused, then what the asker got.
    pub(super) fn record(
        &mut self,
        subject: &Subject,
        response: &Response,
        events: &[Event],
        token_before: FencingToken,
    ) {
        let at = self.now_ms;
        let note = |table: &mut LockTable, name: &LockName, kind, lease, token| {
            table.timelines.record(name, at, kind, lease, token);
        };
        match (subject, response) {
            (Subject::Release(lease, name), Ok(Outcome::Released)) => {
                note(self, name, TimelineKind::Released, Some(*lease), None)
            }
            (Subject::EndLease(lease, expired), Ok(Outcome::LeaseEnded { released, .. })) => {
                let kind = if *expired {
                    TimelineKind::Expired
                } else {
                    TimelineKind::Revoked
                };
                for name in released {
                    note(self, name, kind, Some(*lease), None);
                }
            }
            (Subject::Cancel(lease, names), Ok(Outcome::WaitCancelled)) => {
                for name in names {
                    note(self, name, TimelineKind::WaitEnded, Some(*lease), None);
                }
            }
            _ => {}
        }
        for event in events {
            match event {
                Event::Granted {
                    kind: Kind::Lock,
                    grant,
                } => note(
                    self,
                    &grant.name,
                    TimelineKind::Granted,
                    Some(grant.lease_id),
                    Some(grant.fencing_token),
                ),
                Event::GrantedAll(grants) => {
                    for g in grants {
                        note(
                            self,
                            &g.name,
                            TimelineKind::Granted,
                            Some(g.lease_id),
                            Some(g.fencing_token),
                        );
                    }
                }
                Event::WaitEnded {
                    kind: Kind::Lock,
                    lease_id,
                    name,
                } => note(self, name, TimelineKind::WaitEnded, Some(*lease_id), None),
                Event::Withdrawn { lease_id, names } => {
                    for name in names {
                        note(self, name, TimelineKind::WaitEnded, Some(*lease_id), None);
                    }
                }
                _ => {}
            }
        }
        match (subject, response) {
            (Subject::Acquire(lease, _), Ok(Outcome::Granted(_) | Outcome::GrantedAll { .. })) => {
                let grants = match response {
                    Ok(Outcome::Granted(g)) => std::slice::from_ref(g),
                    Ok(Outcome::GrantedAll { grants }) => grants.as_slice(),
                    _ => &[],
                };
                // An answer with the grant the lease already had is no event.
                for g in grants.iter().filter(|g| g.fencing_token > token_before) {
                    note(
                        self,
                        &g.name,
                        TimelineKind::Granted,
                        Some(*lease),
                        Some(g.fencing_token),
                    );
                }
            }
            (Subject::Acquire(lease, names), Ok(Outcome::Queued { .. })) => {
                let waits = self
                    .lease(*lease)
                    .map(|l| l.waits.clone())
                    .unwrap_or_default();
                for name in names.iter().filter(|n| waits.contains(*n)) {
                    note(self, name, TimelineKind::Queued, Some(*lease), None);
                }
            }
            (Subject::Acquire(lease, names), Err(Refusal::Deadlock { .. })) => {
                for name in names {
                    note(
                        self,
                        name,
                        TimelineKind::RefusedDeadlock,
                        Some(*lease),
                        None,
                    );
                }
            }
            (Subject::Acquire(lease, _), Err(Refusal::OrderViolation { name, .. })) => {
                note(self, name, TimelineKind::RefusedOrder, Some(*lease), None)
            }
            (Subject::Write(lock, token), Err(Refusal::StaleToken { .. })) => note(
                self,
                lock,
                TimelineKind::StaleWriteRefused,
                None,
                Some(*token),
            ),
            _ => {}
        }
    }
}
