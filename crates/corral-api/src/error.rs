//! The error body and its codes.

use serde::{Deserialize, Serialize};

use crate::{FencingToken, LockName, WaitEdge};

/// Every error answer: `{"error":{"code":"...","message":"..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// A sentence for people; may change between versions.
    pub message: String,
    /// With `lock_busy`: the newest token the lock is held under (absent
    /// when it is free but held back by lock-delay or by an acquire-all
    /// waiting ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_token: Option<FencingToken>,
    /// With `lock_busy`: when the lock's lock-delay ends, in Unix
    /// milliseconds of state-machine time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed_until_ms: Option<u64>,
    /// With `limit_mismatch`: the semaphore's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// With `order_violation` and `already_waiting`: the lock asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<LockName>,
    /// With `order_violation`: the lock the lease holds or waits for that
    /// `name` is ordered before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<LockName>,
    /// With `deadlock`: the cycle the wait would have closed, starting with
    /// the refused wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Vec<WaitEdge>>,
    /// With `stale_token`: the newest token the fencing lock is held under
    /// now (absent when it is free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_token: Option<FencingToken>,
    /// With `stale_token`: the highest token that wrote the key (absent
    /// when none has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_token: Option<FencingToken>,
    /// With `unavailable`: the leader's id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
}

/// The error codes of API v1, each with one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field is missing, mistyped or out of bounds, or the body is
    /// not JSON.
    InvalidArgument,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, but not for this method.
    MethodNotAllowed,
    /// 404: the lease does not exist (never granted, revoked or expired).
    LeaseNotFound,
    /// 409: the lock is held by another lease.
    LockBusy,
    /// 409: the wait ran out before the lock was granted.
    WaitTimeout,
    /// 409: the lease does not hold the lock.
    NotHolder,
    /// 409: waiting would close a cycle of leases waiting for each other.
    Deadlock,
    /// 409: the lease holds (or waits for) the lock in the other mode.
    ModeConflict,
    /// 409: the lease holds (or waits for) other permits of the semaphore.
    PermitsConflict,
    /// 409: the semaphore exists with another limit.
    LimitMismatch,
    /// 409: the lease already waits for the lock through another request.
    AlreadyWaiting,
    /// 409: the lock is ordered before one the lease holds or waits for.
    OrderViolation,
    /// 409: the lease does not lead the election.
    NotLeader,
    /// 409: a waiting acquire-all was withdrawn because its lease released
    /// a lock the request counted as held.
    WaitWithdrawn,
    /// 409: a fenced write's token is not the one its lock is held under
    /// now, or is below one that wrote the key before.
    StaleToken,
    /// 404: no such key in the fenced store.
    KeyNotFound,
    /// 413: the body is larger than the endpoint takes.
    BodyTooLarge,
    /// 422: the `Idempotency-Key` was used before for another request.
    IdempotencyMismatch,
    /// 429: a limit of the lock table was reached.
    LimitReached,
    /// 429: the fenced store holds as many keys as it may.
    TooManyKeys,
    /// 500: a fault inside the node; see its log.
    Internal,
    /// 503: no leader could be reached in time; the request may or may not
    /// have taken effect if it was a write, so retry it.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound | ErrorCode::LeaseNotFound | ErrorCode::KeyNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::LockBusy
            | ErrorCode::WaitTimeout
            | ErrorCode::NotHolder
            | ErrorCode::Deadlock
            | ErrorCode::ModeConflict
            | ErrorCode::PermitsConflict
            | ErrorCode::LimitMismatch
            | ErrorCode::AlreadyWaiting
            | ErrorCode::OrderViolation
            | ErrorCode::StaleToken
            | ErrorCode::NotLeader
            | ErrorCode::WaitWithdrawn => 409,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::IdempotencyMismatch => 422,
            ErrorCode::LimitReached | ErrorCode::TooManyKeys => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}
