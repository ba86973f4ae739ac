//! A lock's timeline as `GET /v1/locks/history` sends it: the API's own
//! copy of `corral_state`'s timeline types (see the crate docs for why),
//! made from them by `From`.

use serde::{Deserialize, Serialize};

use crate::{FencingToken, LeaseId};

/// What happened to a lock, written in snake case (`granted`,
/// `refused_deadlock`, ...).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A lease joined the lock's queue.
    Queued,
    /// A lease was granted the lock.
    Granted,
    /// Its holder released it.
    Released,
    /// Its holder's lease expired.
    Expired,
    /// Its holder's lease was revoked.
    Revoked,
    /// A wait ended without a grant (it ran out, or was withdrawn).
    WaitEnded,
    /// A wait was refused: it would have closed a deadlock.
    RefusedDeadlock,
    /// An acquire was refused: it broke the lock order.
    RefusedOrder,
    /// A fenced write under the lock was refused as stale.
    StaleWriteRefused,
    /// Queues: an item was claimed under the token.
    ItemClaimed,
    /// Queues: the claim under the token acked its item.
    ItemAcked,
    /// Queues: the claim under the token gave its item back (a nack).
    ItemNacked,
    /// Queues: the claim under the token ran out; its item is back.
    ItemTimedOut,
    /// Queues: the claim under the token ended with its lease; its item is
    /// back.
    ItemLeaseLost,
    /// Queues: an item left for the dead-letter queue, or was dropped,
    /// after its last attempt.
    ItemDeadLettered,
    /// Queues: an ack, extend or nack under the token was refused: the
    /// claim was lost.
    StaleClaimRefused,
}

/// One event of a lock's timeline.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Its place among all timeline events of the cluster: it rises by one
    /// with each event of any lock, so gaps in one lock's timeline are
    /// other locks' events.
    pub seq: u64,
    /// When it happened, in Unix milliseconds of state-machine time.
    pub at_ms: u64,
    /// What happened to the lock.
    pub kind: TimelineKind,
    /// The lease concerned; absent when the event names none (a stale
    /// write is refused for its token, not for a lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// The token concerned: the token of a grant or of a refused write;
    /// absent for events without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
}

/// Exhaustive on purpose: a new kind in the state machine does not compile
/// until the API has it too.
impl From<corral_state::TimelineKind> for TimelineKind {
    fn from(kind: corral_state::TimelineKind) -> TimelineKind {
        use corral_state::TimelineKind as State;
        match kind {
            State::Queued => TimelineKind::Queued,
            State::Granted => TimelineKind::Granted,
            State::Released => TimelineKind::Released,
            State::Expired => TimelineKind::Expired,
            State::Revoked => TimelineKind::Revoked,
            State::WaitEnded => TimelineKind::WaitEnded,
            State::RefusedDeadlock => TimelineKind::RefusedDeadlock,
            State::RefusedOrder => TimelineKind::RefusedOrder,
            State::StaleWriteRefused => TimelineKind::StaleWriteRefused,
            State::ItemClaimed => TimelineKind::ItemClaimed,
            State::ItemAcked => TimelineKind::ItemAcked,
            State::ItemNacked => TimelineKind::ItemNacked,
            State::ItemTimedOut => TimelineKind::ItemTimedOut,
            State::ItemLeaseLost => TimelineKind::ItemLeaseLost,
            State::ItemDeadLettered => TimelineKind::ItemDeadLettered,
            State::StaleClaimRefused => TimelineKind::StaleClaimRefused,
        }
    }
}

impl From<corral_state::TimelineEvent> for TimelineEvent {
    fn from(event: corral_state::TimelineEvent) -> TimelineEvent {
        // Destructured, so a new field in the state type does not compile
        // until it is carried over (or left out on purpose) here.
        let corral_state::TimelineEvent {
            seq,
            at_ms,
            kind,
            lease_id,
            fencing_token,
        } = event;
        TimelineEvent {
            seq,
            at_ms,
            kind: kind.into(),
            lease_id,
            fencing_token,
        }
    }
}
