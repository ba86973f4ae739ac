//! `ApiError`: a failed request, as the client will read it.
//!
//! An error is its wire form, [`ErrorDetail`] (a code with its fields, and
//! a message), from the moment it is made: a refusal of the state machine
//! becomes one here, with its own wording, and an error a leader answered a
//! forwarded request with is passed on unchanged, so a client gets the same
//! body from any node. What only the HTTP layer can fail at (a bad body, an
//! unknown route, no leader) has its constructor and its wording here. The
//! HTTP status is the kind's ([`ErrorKind::status`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use corral_api::{ErrorBody, ErrorDetail, ErrorKind};
use corral_state::Refusal;

/// A failed request: the error body it is answered with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.message)]
pub(crate) struct ApiError(pub ErrorDetail);

impl ApiError {
    /// An error of `kind`, in the words of `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError(ErrorDetail {
            message: message.into(),
            kind,
        })
    }

    /// The request is malformed or out of bounds; `message` names the
    /// field.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }

    /// The body is over `bytes_max`.
    pub(crate) fn body_too_large(bytes_max: usize) -> ApiError {
        let message = format!("request body is larger than {bytes_max} bytes");
        ApiError::new(ErrorKind::BodyTooLarge, message)
    }

    /// No such route.
    /// 401: no token, or one the cluster does not know.
    pub(crate) fn unauthenticated() -> ApiError {
        ApiError::new(
            ErrorKind::Unauthenticated,
            "this cluster needs a token: send `Authorization: Bearer <token>` with one it knows",
        )
    }

    /// 403: the token does not allow the request.
    pub(crate) fn permission_denied(reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            ErrorKind::PermissionDenied,
            format!("permission denied: {reason}"),
        )
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(ErrorKind::NotFound, "no such endpoint")
    }

    /// The route does not take this method.
    pub(crate) fn method_not_allowed() -> ApiError {
        let message = "this endpoint does not take that method";
        ApiError::new(ErrorKind::MethodNotAllowed, message)
    }

    /// The wait ran out before the grant.
    pub(crate) fn wait_timeout() -> ApiError {
        let message = "wait_ms ran out before the lock was granted";
        ApiError::new(ErrorKind::WaitTimeout, message)
    }

    /// A waiting acquire-all was withdrawn.
    pub(crate) fn wait_withdrawn() -> ApiError {
        let message =
            "the acquire-all was withdrawn: its lease released a lock the request counted as held";
        ApiError::new(ErrorKind::WaitWithdrawn, message)
    }

    /// No leader could be reached in time, or a write's outcome is unknown;
    /// `leader_id` is the leader last seen, if any.
    pub(crate) fn unavailable(reason: impl std::fmt::Display, leader_id: Option<u64>) -> ApiError {
        let message = format!("no leader reachable: {reason}");
        ApiError::new(ErrorKind::Unavailable { leader_id }, message)
    }

    /// A fault inside the node.
    pub(crate) fn internal(reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(ErrorKind::Internal, format!("internal error: {reason}"))
    }

    /// The code and its fields.
    pub(crate) fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The body this error is sent with.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.0.clone(),
        }
    }
}

/// A refusal, in its own words, under the code the API gives it.
impl From<corral_state::FieldError> for ApiError {
    fn from(e: corral_state::FieldError) -> ApiError {
        ApiError::invalid(e.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match ErrorKind::from(&refusal) {
            // A bug (see the mapping), reported as every internal error is.
            ErrorKind::Internal => ApiError::internal(refusal),
            kind => ApiError::new(kind, refusal.to_string()),
        }
    }
}

/// An error a peer answered with, passed on as it came.
impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> ApiError {
        ApiError(body.error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let kind = self.kind().clone();
        let mut response = (status, Json(self.body())).into_response();
        // For the metrics layer, which counts safety refusals by code.
        response.extensions_mut().insert(kind);
        response
    }
}
