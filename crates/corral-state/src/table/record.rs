//! Writing each lock's timeline from what a command did.

use super::LockTable;
use crate::command::Command;
use crate::lease::LeaseId;
use crate::lock::{Grant, Kind, LockName};
use crate::outcome::{Event, Outcome, Refusal, Response, ReturnReason};
use crate::timeline::TimelineKind;
use crate::token::FencingToken;
use crate::work::ClaimedItem;

/// What a command is about, taken before it is applied (apply consumes it).
pub(super) enum Subject {
    /// A command the timelines do not record: leases granted, semaphores,
    /// elections, lock orders and lock-delays lifted.
    None,
    /// An acquire of these locks.
    Acquire(LeaseId, Vec<LockName>),
    /// A release of a lock.
    Release(LeaseId, LockName),
    /// A lease ended: expired (`true`) or revoked.
    EndLease(LeaseId, bool),
    /// A lease's waits for these locks withdrawn, by a single cancel or an
    /// acquire-all's.
    Cancel(LeaseId, Vec<LockName>),
    /// A fenced write under a lock.
    Write(LockName, FencingToken),
    /// A claim of a queue's items by a lease.
    Claim(LockName, LeaseId),
    /// An ack (`true`), extend or nack of a queue's item under a token.
    ItemToken(LockName, FencingToken, bool),
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
            Command::Claim {
                queue, lease_id, ..
            } => Subject::Claim(queue.clone(), *lease_id),
            Command::Ack {
                queue,
                fencing_token,
                ..
            } => Subject::ItemToken(queue.clone(), *fencing_token, true),
            Command::ExtendClaim {
                queue,
                fencing_token,
                ..
            }
            | Command::Nack {
                queue,
                fencing_token,
                ..
            } => Subject::ItemToken(queue.clone(), *fencing_token, false),
            _ => Subject::None,
        }
    }
}

impl LockTable {
    /// Appends to the timelines what a command did: first what let go of
    /// locks, then the grants it caused, then what the asker got. That
    /// order is the order in which a reader of one lock's timeline sees
    /// the lock change hands.
    pub(super) fn record(
        &mut self,
        subject: &Subject,
        response: &Response,
        events: &[Event],
        token_before: FencingToken,
    ) {
        self.record_let_go(subject, response);
        for event in events {
            self.record_event(event);
        }
        self.record_answer(subject, response, token_before);
    }

    /// Records the locks the command itself let go of or stopped waiting
    /// for.
    fn record_let_go(&mut self, subject: &Subject, response: &Response) {
        match (subject, response) {
            (Subject::Release(lease, name), Ok(Outcome::Released)) => {
                self.note(name, TimelineKind::Released, Some(*lease), None)
            }
            (Subject::EndLease(lease, expired), Ok(Outcome::LeaseEnded { released, .. })) => {
                let kind = if *expired {
                    TimelineKind::Expired
                } else {
                    TimelineKind::Revoked
                };
                self.note_each(released, kind, *lease);
            }
            (Subject::Cancel(lease, names), Ok(Outcome::WaitCancelled)) => {
                self.note_each(names, TimelineKind::WaitEnded, *lease);
            }
            _ => {}
        }
    }

    /// Records one event of the command: a waiter granted, a wait ended.
    fn record_event(&mut self, event: &Event) {
        match event {
            Event::Granted {
                kind: Kind::Lock,
                grant,
            } => self.note_grant(grant, grant.lease_id),
            Event::GrantedAll(grants) => {
                for grant in grants {
                    self.note_grant(grant, grant.lease_id);
                }
            }
            Event::WaitEnded {
                kind: Kind::Lock,
                lease_id,
                name,
            } => self.note(name, TimelineKind::WaitEnded, Some(*lease_id), None),
            Event::Withdrawn { lease_id, names } => {
                self.note_each(names, TimelineKind::WaitEnded, *lease_id);
            }
            Event::ItemsClaimed {
                queue,
                lease_id,
                items,
                ..
            } => self.note_claims(queue, *lease_id, items),
            Event::ItemReturned {
                queue,
                fencing_token,
                reason,
                ..
            } => {
                let kind = match reason {
                    ReturnReason::Deadline => TimelineKind::ItemTimedOut,
                    ReturnReason::LeaseEnded => TimelineKind::ItemLeaseLost,
                    ReturnReason::Nacked => TimelineKind::ItemNacked,
                };
                self.note(queue, kind, None, Some(*fencing_token));
            }
            Event::ItemLeft { queue, .. } => {
                self.note(queue, TimelineKind::ItemDeadLettered, None, None)
            }
            _ => {}
        }
    }

    /// Records each claimed item's claim, under its token.
    fn note_claims(&mut self, queue: &LockName, lease: LeaseId, items: &[ClaimedItem]) {
        for item in items {
            let token = Some(item.fencing_token);
            self.note(queue, TimelineKind::ItemClaimed, Some(lease), token);
        }
    }

    /// Records what the asker got: new grants, a place in a queue, or a
    /// refusal a lock's reader should see.
    fn record_answer(
        &mut self,
        subject: &Subject,
        response: &Response,
        token_before: FencingToken,
    ) {
        match (subject, response) {
            (Subject::Acquire(lease, _), Ok(Outcome::Granted(grant))) => {
                self.note_new_grants(std::slice::from_ref(grant), *lease, token_before);
            }
            (Subject::Acquire(lease, _), Ok(Outcome::GrantedAll { grants })) => {
                self.note_new_grants(grants, *lease, token_before);
            }
            (Subject::Acquire(lease, names), Ok(Outcome::Queued { .. })) => {
                let waits = self
                    .lease(*lease)
                    .map(|l| l.waits.clone())
                    .unwrap_or_default();
                for name in names.iter().filter(|n| waits.contains(n)) {
                    self.note(name, TimelineKind::Queued, Some(*lease), None);
                }
            }
            (Subject::Acquire(lease, names), Err(Refusal::Deadlock { .. })) => {
                self.note_each(names, TimelineKind::RefusedDeadlock, *lease);
            }
            (Subject::Acquire(lease, _), Err(Refusal::OrderViolation { name, .. })) => {
                self.note(name, TimelineKind::RefusedOrder, Some(*lease), None)
            }
            (Subject::Write(lock, token), Err(Refusal::StaleToken { .. })) => {
                self.note(lock, TimelineKind::StaleWriteRefused, None, Some(*token))
            }
            (Subject::Claim(queue, lease), Ok(Outcome::Claimed { items })) => {
                self.note_claims(queue, *lease, items);
            }
            (Subject::ItemToken(queue, token, true), Ok(Outcome::Acked)) => {
                self.note(queue, TimelineKind::ItemAcked, None, Some(*token))
            }
            (Subject::ItemToken(queue, token, _), Err(Refusal::StaleClaim { .. })) => {
                self.note(queue, TimelineKind::StaleClaimRefused, None, Some(*token))
            }
            _ => {}
        }
    }

    /// Records the grants of an answer that this command made: an answer
    /// with the grant the lease already had is no event.
    fn note_new_grants(&mut self, grants: &[Grant], lease: LeaseId, token_before: FencingToken) {
        for grant in grants.iter().filter(|g| g.fencing_token > token_before) {
            self.note_grant(grant, lease);
        }
    }

    /// Records `grant` as granted to `lease` under its token.
    fn note_grant(&mut self, grant: &Grant, lease: LeaseId) {
        debug_assert!(
            grant.fencing_token <= self.last_token,
            "a recorded grant took a token already handed out"
        );
        let token = Some(grant.fencing_token);
        self.note(&grant.name, TimelineKind::Granted, Some(lease), token);
    }

    /// Records the same event, without a token, for each of `names`.
    fn note_each(&mut self, names: &[LockName], kind: TimelineKind, lease: LeaseId) {
        for name in names {
            self.note(name, kind, Some(lease), None);
        }
    }

    /// Appends one event to `name`'s timeline at state-machine time.
    fn note(
        &mut self,
        name: &LockName,
        kind: TimelineKind,
        lease: Option<LeaseId>,
        token: Option<FencingToken>,
    ) {
        self.timelines.record(name, self.now_ms, kind, lease, token);
    }
}
