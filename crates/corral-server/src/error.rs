//! `ApiError`: every failure a handler can answer with, mapped once to the
//! error body and its HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use corral_api::{ErrorBody, ErrorCode, ErrorDetail, FencingToken};
use corral_state::{Refusal, WaitEdge};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or out of bounds.
    #[error("{0}")]
    InvalidArgument(String),
    /// The body is over the size limit.
    #[error("request body is larger than {} bytes", corral_api::BODY_BYTES_MAX)]
    BodyTooLarge,
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// The route does not take this method.
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// The lease does not exist.
    #[error("lease not found (never granted, revoked or expired)")]
    LeaseNotFound,
    /// The lock is held by another lease.
    #[error("lock is held by another lease under token {holder_token}")]
    LockBusy {
        /// The token it is held under.
        holder_token: FencingToken,
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
    /// A limit of the lock table.
    #[error("{0}")]
    LimitReached(String),
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
            ApiError::BodyTooLarge => ErrorCode::BodyTooLarge,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::LeaseNotFound => ErrorCode::LeaseNotFound,
            ApiError::LockBusy { .. } => ErrorCode::LockBusy,
            ApiError::WaitTimeout => ErrorCode::WaitTimeout,
            ApiError::NotHolder => ErrorCode::NotHolder,
            ApiError::Deadlock { .. } => ErrorCode::Deadlock,
            ApiError::ModeConflict(_) => ErrorCode::ModeConflict,
            ApiError::LimitReached(_) => ErrorCode::LimitReached,
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
                    ApiError::LockBusy { holder_token } => Some(*holder_token),
                    _ => None,
                },
                cycle: match self {
                    ApiError::Deadlock { cycle } => Some(cycle.clone()),
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
            ErrorCode::BodyTooLarge => ApiError::BodyTooLarge,
            ErrorCode::NotFound => ApiError::NotFound,
            ErrorCode::MethodNotAllowed => ApiError::MethodNotAllowed,
            ErrorCode::LeaseNotFound => ApiError::LeaseNotFound,
            ErrorCode::LockBusy => ApiError::LockBusy {
                holder_token: detail.holder_token.unwrap_or_default(),
            },
            ErrorCode::WaitTimeout => ApiError::WaitTimeout,
            ErrorCode::NotHolder => ApiError::NotHolder,
            ErrorCode::Deadlock => ApiError::Deadlock {
                cycle: detail.cycle.unwrap_or_default(),
            },
            ErrorCode::ModeConflict => ApiError::ModeConflict(detail.message),
            ErrorCode::LimitReached => ApiError::LimitReached(detail.message),
            ErrorCode::Unavailable => ApiError::unavailable(detail.message, detail.leader_id),
            ErrorCode::Internal => ApiError::Internal(detail.message),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::LeaseNotFound => ApiError::LeaseNotFound,
            Refusal::LockBusy { holder_token } => ApiError::LockBusy { holder_token },
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}
