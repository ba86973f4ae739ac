//! [`Error`]: every way a call can fail. A refusal arrives as the API's one
//! error type, [`ErrorDetail`]; the refusals a caller acts on (busy, timed
//! out, deadlock, not the holder, lease lost, no or an unknown token, not
//! allowed) get variants of their own, and every other keeps its
//! [`ErrorKind`] with the fields of its code.

use corral_api::{ErrorDetail, ErrorKind, FencingToken, WaitEdge};

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
    /// Auth is on and the request carried no token, or one the cluster
    /// does not know (never added, or revoked): `401 unauthenticated`.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token does not allow the request: `403 permission_denied`. The
    /// server's words say what it lacks (and start with "permission
    /// denied").
    #[error("{0}")]
    PermissionDenied(String),
    /// Another refusal: its code, with the fields that come with it.
    #[error("{message} ({kind:?})")]
    Refused {
        /// The API error code and its fields.
        kind: ErrorKind,
        /// The server's words.
        message: String,
    },
    /// The configuration is unusable (no endpoints, a bad URL, a TLS file
    /// that cannot be read or parsed, a token that cannot be sent).
    #[error("client configuration: {0}")]
    Config(String),
}

/// The error an API error body stands for.
impl From<ErrorDetail> for Error {
    fn from(detail: ErrorDetail) -> Error {
        let ErrorDetail { message, kind } = detail;
        match kind {
            ErrorKind::LockBusy { holder_token, .. } => Error::Busy {
                holder_token,
                message,
            },
            ErrorKind::WaitTimeout => Error::Timeout,
            ErrorKind::Deadlock { cycle } => Error::Deadlock { cycle, message },
            ErrorKind::NotHolder | ErrorKind::NotLeader => Error::NotHolder,
            ErrorKind::LeaseNotFound => Error::LeaseLost,
            ErrorKind::Unavailable { .. } => Error::Unavailable(message),
            ErrorKind::InvalidArgument => Error::InvalidArgument(message),
            ErrorKind::Unauthenticated => Error::Unauthenticated(message),
            ErrorKind::PermissionDenied => Error::PermissionDenied(message),
            kind => Error::Refused { kind, message },
        }
    }
}

impl Error {
    /// Whether retrying the same call may succeed: the cluster was
    /// unreachable or had no leader.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
