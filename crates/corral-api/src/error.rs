//! The error body, written once: [`ErrorDetail`] is what the deciding node
//! sends, what a forwarding node passes on unchanged, and what a client
//! reads.
//!
//! An error is a sentence for people (`message`) and an [`ErrorKind`] for
//! programs: the stable `code` and the fields that come with that code, and
//! only with it. On the wire the kind is flattened into the detail,
//! `{"code":"lock_busy","message":"...","holder_token":7}`, the shape API v1
//! has always had; the type makes sure that `holder_token` never comes with
//! any other code.
//!
//! The refusals of the state machine map to kinds in one place, `impl
//! From<&Refusal> for ErrorKind` below, and each kind has its HTTP status in
//! one place, [`ErrorKind::status`]. A refusal's wording is its own
//! `Display` (in `corral-state`), so it reads the same in a node's log and
//! in the client's error.

use corral_state::Refusal;
use serde::{Deserialize, Serialize};

use crate::{FencingToken, LeaseId, LockName};

mod wire;

/// Every error answer: `{"error":{"code":"...","message":"..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code, the sentence and the code's fields; the status line says
    /// the same as the code (see [`ErrorKind::status`]).
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`kind`) and for people (`message`).
///
/// Serialized with `code` first, then `message`, then the kind's fields
/// (see the `wire` module): the order API v1 has always written.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// A sentence for people; may change between versions.
    pub message: String,
    /// The code, and the fields that come with it.
    #[serde(flatten)]
    pub kind: ErrorKind,
}

/// The error codes of API v1, each with the fields it carries and one HTTP
/// status ([`ErrorKind::status`]).
///
/// Optional fields are left out of the JSON when absent, as they always
/// were; fields a code always has are always written.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: a field is missing, mistyped or out of bounds, or the body is
    /// not JSON; the message names the field.
    InvalidArgument,
    /// 401: auth is on and the request has no token, or one the cluster
    /// does not know (never added, or revoked).
    Unauthenticated,
    /// 403: the request's token does not allow it; the message says what
    /// it lacks.
    PermissionDenied,
    /// 409: a token with that name exists already.
    TokenExists,
    /// 404: no token with that name.
    TokenNotFound,
    /// 404: no such route.
    NotFound,
    /// 404: no such item in the queue: acked, dead-lettered, or never
    /// enqueued.
    ItemNotFound,
    /// 404: no member with that id.
    MemberNotFound,
    /// 409: another membership change is under way; retry once it ends.
    MembershipChangeInProgress,
    /// 409: the node id was a member before; ids are never reused.
    NodeIdRetired,
    /// 409: the change would leave too few reachable voters for a
    /// majority; `force` overrides.
    NoReachableMajority,
    /// 409: the node id is a member already, at another address.
    MemberExists,
    /// 409: the new node did not catch up in time; it stays a learner, and
    /// the same add may be sent again.
    LearnerLagging,
    /// 410: this peer was removed from the cluster; it must stop.
    NodeRemoved,
    /// 502: the node to add did not answer its join, or answered as
    /// another node, or belongs to another cluster.
    JoinFailed,
    /// 405: the route exists, but not for this method.
    MethodNotAllowed,
    /// 404: the lease does not exist (never granted, revoked or expired).
    LeaseNotFound,
    /// 409: the lock cannot be granted now and the request would not wait.
    LockBusy {
        /// The newest token the lock is held under; absent when it is free
        /// but held back by lock-delay or by an acquire-all waiting ahead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder_token: Option<FencingToken>,
        /// When the lock's lock-delay ends, in Unix milliseconds of
        /// state-machine time; absent when it is not delayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delayed_until_ms: Option<u64>,
    },
    /// 409: the wait ran out before the lock was granted.
    WaitTimeout,
    /// 409: the lease does not hold the lock.
    NotHolder,
    /// 409: waiting would close a cycle of leases waiting for each other.
    Deadlock {
        /// The cycle the wait would have closed, starting with the refused
        /// wait.
        #[serde(default)]
        cycle: Vec<WaitEdge>,
    },
    /// 409: the lease holds (or waits for) the lock in the other mode.
    ModeConflict,
    /// 409: the lease holds (or waits for) other permits of the semaphore.
    PermitsConflict,
    /// 409: the semaphore exists with another limit.
    LimitMismatch {
        /// The limit the semaphore is in use with.
        limit: u32,
    },
    /// 409: the lease already waits for the lock through another request.
    AlreadyWaiting {
        /// The lock the refused request asked for, which the lease waits
        /// for already.
        name: LockName,
    },
    /// 409: the lock is ordered before one the lease holds or waits for.
    OrderViolation {
        /// The lock the refused acquire asked for.
        name: LockName,
        /// The lock the lease holds or waits for that `name` is ordered
        /// before.
        held: LockName,
    },
    /// 409: the lease does not lead the election.
    NotLeader,
    /// 409: a waiting acquire-all was withdrawn because its lease released
    /// a lock the request counted as held.
    WaitWithdrawn,
    /// 409: a fenced write's token is not the one its lock is held under
    /// now, or is below one that wrote the key before.
    StaleToken {
        /// The newest token the fencing lock is held under now; absent when
        /// it is free.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current_token: Option<FencingToken>,
        /// The highest token that wrote the key; absent when none has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_token: Option<FencingToken>,
    },
    /// 404: no such key in the fenced store.
    KeyNotFound,
    /// 413: the body is larger than the endpoint takes.
    BodyTooLarge,
    /// 422: the `Idempotency-Key` was used before for another request.
    IdempotencyMismatch,
    /// 429: a limit of the lock table was reached; the message says which.
    LimitReached,
    /// 429: the fenced store holds as many keys (or bytes) as it may.
    TooManyKeys,
    /// 500: a fault inside the node; see its log.
    Internal,
    /// 503: no leader could be reached in time; the request may or may not
    /// have taken effect if it was a write, so retry it.
    Unavailable {
        /// The leader last seen, when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader_id: Option<u64>,
    },
}

impl ErrorKind {
    /// The HTTP status this kind is sent with: the one place that decides
    /// it (docs/api.md lists the same table).
    pub fn status(&self) -> u16 {
        use ErrorKind::*;
        match self {
            InvalidArgument => 400,
            Unauthenticated => 401,
            PermissionDenied => 403,
            NotFound | LeaseNotFound | KeyNotFound | TokenNotFound | MemberNotFound
            | ItemNotFound => 404,
            MethodNotAllowed => 405,
            LockBusy { .. }
            | WaitTimeout
            | NotHolder
            | Deadlock { .. }
            | ModeConflict
            | PermitsConflict
            | LimitMismatch { .. }
            | AlreadyWaiting { .. }
            | OrderViolation { .. }
            | StaleToken { .. }
            | NotLeader
            | WaitWithdrawn
            | TokenExists
            | MembershipChangeInProgress
            | NodeIdRetired
            | NoReachableMajority
            | MemberExists
            | LearnerLagging => 409,
            BodyTooLarge => 413,
            IdempotencyMismatch => 422,
            LimitReached | TooManyKeys => 429,
            NodeRemoved => 410,
            Internal => 500,
            JoinFailed => 502,
            Unavailable { .. } => 503,
        }
    }
}

/// Every refusal of the state machine as the API reports it. Exhaustive on
/// purpose: a new refusal does not compile until it has a kind here.
impl From<&Refusal> for ErrorKind {
    fn from(refusal: &Refusal) -> ErrorKind {
        match refusal {
            Refusal::LeaseNotFound => ErrorKind::LeaseNotFound,
            Refusal::LockBusy { holder_token } => ErrorKind::LockBusy {
                holder_token: *holder_token,
                delayed_until_ms: None,
            },
            // One code for both: to the client a delayed lock is a busy one
            // that says until when.
            Refusal::LockDelayed { until_ms } => ErrorKind::LockBusy {
                holder_token: None,
                delayed_until_ms: Some(*until_ms),
            },
            Refusal::NotHolder => ErrorKind::NotHolder,
            Refusal::Deadlock { cycle } => ErrorKind::Deadlock {
                cycle: cycle.iter().cloned().map(WaitEdge::from).collect(),
            },
            Refusal::ModeConflict { .. } => ErrorKind::ModeConflict,
            Refusal::PermitsConflict { .. } => ErrorKind::PermitsConflict,
            Refusal::LimitMismatch { limit } => ErrorKind::LimitMismatch { limit: *limit },
            Refusal::AlreadyWaiting { name } => ErrorKind::AlreadyWaiting { name: name.clone() },
            Refusal::OrderViolation { name, held } => ErrorKind::OrderViolation {
                name: name.clone(),
                held: held.clone(),
            },
            Refusal::StaleToken {
                lock_token,
                key_token,
            } => ErrorKind::StaleToken {
                current_token: *lock_token,
                key_token: *key_token,
            },
            Refusal::NotLeader => ErrorKind::NotLeader,
            Refusal::KeyNotFound => ErrorKind::KeyNotFound,
            Refusal::TooManyKeys { .. } => ErrorKind::TooManyKeys,
            Refusal::IdempotencyMismatch => ErrorKind::IdempotencyMismatch,
            Refusal::Invalid { .. } => ErrorKind::InvalidArgument,
            Refusal::LimitReached(_) => ErrorKind::LimitReached,
            Refusal::Unauthenticated => ErrorKind::Unauthenticated,
            Refusal::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Refusal::TokenExists => ErrorKind::TokenExists,
            Refusal::TokenNotFound => ErrorKind::TokenNotFound,
            Refusal::ItemNotFound => ErrorKind::ItemNotFound,
            Refusal::ClaimAlreadyWaiting { queue } => ErrorKind::AlreadyWaiting {
                name: queue.clone(),
            },
            // One code with the fenced store's: a token that is not the
            // current one.
            Refusal::StaleClaim { current_token } => ErrorKind::StaleToken {
                current_token: *current_token,
                key_token: None,
            },
            // The server checks ttl bounds and draws fresh ids before it
            // proposes, so these mean a bug, not bad input.
            Refusal::InvalidTtl { .. } | Refusal::LeaseExists => ErrorKind::Internal,
        }
    }
}

/// One edge of a deadlock's cycle: `lease_id` waits for the lock
/// `waits_for`, which `held_by` holds (or waits for ahead of it). The API's
/// own copy of `corral_state::WaitEdge` (see the crate docs for why).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEdge {
    /// The lease whose wait is an edge of the cycle.
    pub lease_id: LeaseId,
    /// The lock `lease_id` waits for.
    pub waits_for: LockName,
    /// The lease ahead of `lease_id` on `waits_for`: its holder, or a
    /// waiter queued before it.
    pub held_by: LeaseId,
}

impl From<corral_state::WaitEdge> for WaitEdge {
    fn from(edge: corral_state::WaitEdge) -> WaitEdge {
        // Destructured, so a new field in the state type does not compile
        // until it is carried over (or left out on purpose) here.
        let corral_state::WaitEdge {
            lease_id,
            waits_for,
            held_by,
        } = edge;
        WaitEdge {
            lease_id,
            waits_for,
            held_by,
        }
    }
}
