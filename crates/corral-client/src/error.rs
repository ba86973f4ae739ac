//! [`Error`]: every way a call can fail, mirroring the API's error codes.

use corral_api::{ErrorCode, ErrorDetail, FencingToken, WaitEdge};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock (or semaphore, or election) is held by others and the call
    /// would not wait.
    #[error("busy: {message}")]
    Busy {
        /// The newest token it is held under, when it has a holder.
        holder_token: Option<FencingToken>,
        /// The server's words.
        message: String,
    },
    /// The wait ran out before the grant.
    #[error("timed out waiting")]
    Timeout,
    /// Waiting would have closed a cycle of leases waiting for each other.
    #[error("deadlock: {message}")]
    Deadlock {
        /// The cycle, starting with this wait.
        cycle: Vec<WaitEdge>,
        /// The server's words.
        message: String,
    },
    /// The lease does not hold the lock (or lead the election).
    #[error("not the holder")]
    NotHolder,
    /// The lease is gone: expired, revoked, or its keepalives were not
    /// acked in time. Also the answer to an acquire whose grant arrived
    /// after the lease's proven deadline: that grant guards nothing.
    #[error("lease lost")]
    LeaseLost,
    /// No node answered in time, or a write's outcome is unknown after the
    /// retries ran out.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The server refused the request as malformed or out of bounds.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another refusal, with its API code.
    #[error("{message} ({code:?})")]
    Refused {
        /// The API error code.
        code: ErrorCode,
        /// The server's words.
        message: String,
        /// The whole error detail.
        detail: Box<ErrorDetail>,
    },
    /// The configuration is unusable (no endpoints, a bad URL).
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The error an API error body stands for.
    pub fn from_detail(detail: ErrorDetail) -> Error {
        match detail.code {
            ErrorCode::LockBusy => Error::Busy {
                holder_token: detail.holder_token,
                message: detail.message,
            },
            ErrorCode::WaitTimeout => Error::Timeout,
            ErrorCode::Deadlock => Error::Deadlock {
                cycle: detail.cycle.unwrap_or_default(),
                message: detail.message,
            },
            ErrorCode::NotHolder | ErrorCode::NotLeader => Error::NotHolder,
            ErrorCode::LeaseNotFound => Error::LeaseLost,
            ErrorCode::Unavailable => Error::Unavailable(detail.message),
            ErrorCode::InvalidArgument => Error::InvalidArgument(detail.message),
            code => Error::Refused {
                code,
                message: detail.message.clone(),
                detail: Box::new(detail),
            },
        }
    }

    /// Whether retrying the same call may succeed: the cluster was
    /// unreachable or had no leader.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
