//! `ApiError`: every failure a handler can answer with, mapped once to the
//! error body and its HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use corral_api::{ErrorBody, ErrorCode, ErrorDetail, FencingToken};
use corral_state::{LockName, Refusal, WaitEdge};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or out of bounds.
    #[error("{0}")]
    InvalidArgument(String),
    /// The body is over the size limit, in bytes.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// The route does not take this method.
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// The lease does not exist.
    #[error("lease not found (never granted, revoked or expired)")]
    LeaseNotFound,
    /// The lock is held by another lease, held back by lock-delay, or
    /// others wait ahead.
    #[error("{}", busy_message(*holder_token, *delayed_until_ms))]
    LockBusy {
        /// The newest token it is held under.
        holder_token: Option<FencingToken>,
        /// When its lock-delay ends.
        delayed_until_ms: Option<u64>,
    },
    /// The wait ran out first.
    #[error("wait_ms ran out before the lock was granted")]
    WaitTimeout,
    /// The lease does not hold the lock.
    #[error("the lease does not hold the lock")]
    NotHolder,
    /// Waiting would deadlock.
    #[error("waiting would close a cycle of leases waiting for each other; nothing was queued")]
    Deadlock {
        /// The cycle.
        cycle: Vec<WaitEdge>,
    },
    /// The lease holds or waits for the lock in the other mode.
    #[error("{0}")]
    ModeConflict(String),
    /// The lease holds or waits for other permits of the semaphore.
    #[error("{0}")]
    PermitsConflict(String),
    /// The semaphore has another limit.
    #[error("the semaphore exists with limit {limit}; every acquire must name the same limit while it is in use")]
    LimitMismatch {
        /// Its limit.
        limit: u32,
    },
    /// The lease waits for the lock through another request.
    #[error("the lease already waits for {name} through another request (an acquire-all and a single acquire, or two different acquire-alls)")]
    AlreadyWaiting {
        /// The lock.
        name: LockName,
    },
    /// The lock is ordered before one the lease holds or waits for.
    #[error("lock order: {name} is ordered before {held}, which the lease holds or waits for")]
    OrderViolation {
        /// The lock asked for.
        name: LockName,
        /// The lock it is ordered before.
        held: LockName,
    },
    /// A limit of the lock table.
    #[error("{0}")]
    LimitReached(String),
    /// A fenced write with a token that is not current.
    #[error("stale fencing token: the lock is held under {}, the key was last written under {}; a newer owner exists or the lock is not held", show(*current_token), show(*key_token))]
    StaleToken {
        /// The newest token the lock is held under now.
        current_token: Option<FencingToken>,
        /// The highest token that wrote the key.
        key_token: Option<FencingToken>,
    },
    /// No such key.
    #[error("no such key")]
    KeyNotFound,
    /// The lease does not lead the election.
    #[error("the lease does not lead the election (and is not a waiting candidate)")]
    NotLeader,
    /// A waiting acquire-all was withdrawn.
    #[error(
        "the acquire-all was withdrawn: its lease released a lock the request counted as held"
    )]
    WaitWithdrawn,
    /// The fenced store is full.
    #[error("{0}")]
    TooManyKeys(String),
    /// The idempotency key answered another request.
    #[error(
        "the Idempotency-Key was used before for another request; use a new key for a new request"
    )]
    IdempotencyMismatch,
    /// No leader could be reached in time.
    #[error("no leader reachable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
        /// The leader, if one is known.
        leader_id: Option<u64>,
    },
    /// A fault inside the node.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The code this error is sent with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ApiError::BodyTooLarge(_) => ErrorCode::BodyTooLarge,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::LeaseNotFound => ErrorCode::LeaseNotFound,
            ApiError::LockBusy { .. } => ErrorCode::LockBusy,
            ApiError::WaitTimeout => ErrorCode::WaitTimeout,
            ApiError::NotHolder => ErrorCode::NotHolder,
            ApiError::Deadlock { .. } => ErrorCode::Deadlock,
            ApiError::ModeConflict(_) => ErrorCode::ModeConflict,
            ApiError::PermitsConflict(_) => ErrorCode::PermitsConflict,
            ApiError::LimitMismatch { .. } => ErrorCode::LimitMismatch,
            ApiError::AlreadyWaiting { .. } => ErrorCode::AlreadyWaiting,
            ApiError::OrderViolation { .. } => ErrorCode::OrderViolation,
            ApiError::LimitReached(_) => ErrorCode::LimitReached,
            ApiError::StaleToken { .. } => ErrorCode::StaleToken,
            ApiError::KeyNotFound => ErrorCode::KeyNotFound,
            ApiError::NotLeader => ErrorCode::NotLeader,
            ApiError::WaitWithdrawn => ErrorCode::WaitWithdrawn,
            ApiError::TooManyKeys(_) => ErrorCode::TooManyKeys,
            ApiError::IdempotencyMismatch => ErrorCode::IdempotencyMismatch,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A no-leader error.
    pub fn unavailable(reason: impl Into<String>, leader_id: Option<u64>) -> ApiError {
        ApiError::Unavailable {
            reason: reason.into(),
            leader_id,
        }
    }

    /// The body this error is sent with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                holder_token: match self {
                    ApiError::LockBusy { holder_token, .. } => *holder_token,
                    _ => None,
                },
                delayed_until_ms: match self {
                    ApiError::LockBusy {
                        delayed_until_ms, ..
                    } => *delayed_until_ms,
                    _ => None,
                },
                limit: match self {
                    ApiError::LimitMismatch { limit } => Some(*limit),
                    _ => None,
                },
                name: match self {
                    ApiError::AlreadyWaiting { name } | ApiError::OrderViolation { name, .. } => {
                        Some(name.clone())
                    }
                    _ => None,
                },
                held: match self {
                    ApiError::OrderViolation { held, .. } => Some(held.clone()),
                    _ => None,
                },
                cycle: match self {
                    ApiError::Deadlock { cycle } => Some(cycle.clone()),
                    _ => None,
                },
                current_token: match self {
                    ApiError::StaleToken { current_token, .. } => *current_token,
                    _ => None,
                },
                key_token: match self {
                    ApiError::StaleToken { key_token, .. } => *key_token,
                    _ => None,
                },
                leader_id: match self {
                    ApiError::Unavailable { leader_id, .. } => *leader_id,
                    _ => None,
                },
            },
        }
    }

    /// Rebuilds the error a peer sent, so a forwarded request answers as if
    /// it were served here.
    pub fn from_body(body: ErrorBody) -> ApiError {
        let detail = body.error;
        match detail.code {
            ErrorCode::InvalidArgument => ApiError::InvalidArgument(detail.message),
            ErrorCode::BodyTooLarge => ApiError::BodyTooLarge(corral_api::BODY_BYTES_MAX),
            ErrorCode::NotFound => ApiError::NotFound,
            ErrorCode::MethodNotAllowed => ApiError::MethodNotAllowed,
            ErrorCode::LeaseNotFound => ApiError::LeaseNotFound,
            ErrorCode::LockBusy => ApiError::LockBusy {
                holder_token: detail.holder_token,
                delayed_until_ms: detail.delayed_until_ms,
            },
            ErrorCode::WaitTimeout => ApiError::WaitTimeout,
            ErrorCode::NotHolder => ApiError::NotHolder,
            ErrorCode::Deadlock => ApiError::Deadlock {
                cycle: detail.cycle.unwrap_or_default(),
            },
            ErrorCode::ModeConflict => ApiError::ModeConflict(detail.message),
            ErrorCode::PermitsConflict => ApiError::PermitsConflict(detail.message),
            ErrorCode::LimitMismatch => ApiError::LimitMismatch {
                limit: detail.limit.unwrap_or_default(),
            },
            ErrorCode::AlreadyWaiting => match detail.name {
                Some(name) => ApiError::AlreadyWaiting { name },
                None => ApiError::Internal(detail.message),
            },
            ErrorCode::OrderViolation => match (detail.name, detail.held) {
                (Some(name), Some(held)) => ApiError::OrderViolation { name, held },
                _ => ApiError::Internal(detail.message),
            },
            ErrorCode::LimitReached => ApiError::LimitReached(detail.message),
            ErrorCode::StaleToken => ApiError::StaleToken {
                current_token: detail.current_token,
                key_token: detail.key_token,
            },
            ErrorCode::KeyNotFound => ApiError::KeyNotFound,
            ErrorCode::NotLeader => ApiError::NotLeader,
            ErrorCode::WaitWithdrawn => ApiError::WaitWithdrawn,
            ErrorCode::TooManyKeys => ApiError::TooManyKeys(detail.message),
            ErrorCode::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            ErrorCode::Unavailable => ApiError::unavailable(detail.message, detail.leader_id),
            ErrorCode::Internal => ApiError::Internal(detail.message),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::LeaseNotFound => ApiError::LeaseNotFound,
            Refusal::LockBusy { holder_token } => ApiError::LockBusy {
                holder_token,
                delayed_until_ms: None,
            },
            Refusal::LockDelayed { until_ms } => ApiError::LockBusy {
                holder_token: None,
                delayed_until_ms: Some(until_ms),
            },
            Refusal::PermitsConflict { held } => ApiError::PermitsConflict(format!(
                "the lease holds or waits for {held} permits of the semaphore; release them or let the wait end first"
            )),
            Refusal::LimitMismatch { limit } => ApiError::LimitMismatch { limit },
            Refusal::AlreadyWaiting { name } => ApiError::AlreadyWaiting { name },
            Refusal::OrderViolation { name, held } => ApiError::OrderViolation { name, held },
            Refusal::Invalid { reason } => ApiError::InvalidArgument(reason),
            Refusal::StaleToken {
                lock_token,
                key_token,
            } => ApiError::StaleToken {
                current_token: lock_token,
                key_token,
            },
            Refusal::KeyNotFound => ApiError::KeyNotFound,
            Refusal::NotLeader => ApiError::NotLeader,
            Refusal::TooManyKeys { .. } => ApiError::TooManyKeys(refusal.to_string()),
            Refusal::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            Refusal::NotHolder => ApiError::NotHolder,
            Refusal::Deadlock { cycle } => ApiError::Deadlock { cycle },
            Refusal::ModeConflict { held } => ApiError::ModeConflict(format!(
                "the lease holds or waits for the lock in {held} mode; release it or let the wait end first"
            )),
            Refusal::LimitReached(limit) => ApiError::LimitReached(limit.to_string()),
            // The server checks ttl bounds and draws fresh ids before it
            // proposes, so these mean a bug, not bad input.
            Refusal::InvalidTtl { .. } | Refusal::LeaseExists => {
                ApiError::Internal(refusal.to_string())
            }
        }
    }
}

fn show(token: Option<FencingToken>) -> String {
    token.map_or("nothing".into(), |t| format!("token {t}"))
}

fn busy_message(holder_token: Option<FencingToken>, delayed_until_ms: Option<u64>) -> String {
    match (holder_token, delayed_until_ms) {
        (_, Some(until)) => format!(
            "lock is held back by lock-delay until {until} (Unix ms): a lease that held it expired"
        ),
        (Some(token), None) => format!("lock is held by another lease under token {token}"),
        (None, None) => {
            "lock is free but a request waiting for several locks at once is ahead in its queue"
                .into()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let code = self.code();
        let mut response = (status, Json(self.body())).into_response();
        // For the metrics layer, which counts safety refusals by code.
        response.extensions_mut().insert(code);
        response
    }
}
