//! Extractors whose failures look like every other error: a JSON body, a
//! query string, and a lease id in the path.
//!
//! It reads at most [`BODY_BYTES_MAX`] bytes by default (413 beyond), accepts JSON
//! whatever the content type says (`curl -d` sends a form type), and names
//! the offending field in its 400 message.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use corral_api::BODY_BYTES_MAX;
use corral_state::LeaseId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A request body decoded from JSON, of at most `LIMIT` bytes.
pub(crate) struct JsonBody<T, const LIMIT: usize = BODY_BYTES_MAX>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request.into_body(), LIMIT).await?;
        decode(&bytes).map(JsonBody)
    }
}

/// Reads a whole body of at most `limit` bytes: 413 `body_too_large`
/// beyond it; 400 when it could not be read (the client stopped sending it,
/// or took longer than the body timeout).
pub(crate) async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(body, limit).await;
    read.map_err(|e| {
        let e = e.into_inner();
        if is_length_limit(e.as_ref()) {
            ApiError::body_too_large(limit)
        } else {
            ApiError::invalid(format!("the request body could not be read: {e}"))
        }
    })
}

/// Whether `e`, or an error it comes from, is a body over its limit.
fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A query string decoded into `T`; a query that does not decode is a 400
/// `invalid_argument` saying why.
pub(crate) struct QueryOf<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryOf<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        Ok(QueryOf(query))
    }
}

/// The one `{…}` segment of a path such as `/v1/leases/{id}`, parsed; a
/// malformed one is a 400 `invalid_argument` that says what it should be.
pub(crate) struct PathParam<T>(pub T);

/// What a path segment can be.
pub(crate) trait PathSegment: Sized {
    /// What the segment is, for the error.
    const WHAT: &'static str;
    /// Parses the segment.
    fn parse_segment(raw: String) -> Result<Self, String>;
}

impl PathSegment for LeaseId {
    const WHAT: &'static str = "lease id";
    fn parse_segment(raw: String) -> Result<LeaseId, String> {
        raw.parse().map_err(|e| format!("`{raw}`: {e}"))
    }
}

impl PathSegment for corral_state::TokenName {
    const WHAT: &'static str = "token name";
    fn parse_segment(raw: String) -> Result<corral_state::TokenName, String> {
        corral_state::TokenName::new(raw).map_err(|e| e.to_string())
    }
}

impl PathSegment for corral_state::LockName {
    const WHAT: &'static str = "name";
    fn parse_segment(raw: String) -> Result<corral_state::LockName, String> {
        corral_state::LockName::new(raw).map_err(|e| e.to_string())
    }
}

/// A node id.
impl PathSegment for u64 {
    const WHAT: &'static str = "node id";
    fn parse_segment(raw: String) -> Result<u64, String> {
        raw.parse().map_err(|e| format!("`{raw}`: {e}"))
    }
}

impl<S: Send + Sync, T: PathSegment> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        let value = T::parse_segment(raw)
            .map_err(|e| ApiError::invalid(format!("path {}: {e}", T::WHAT)))?;
        Ok(PathParam(value))
    }
}

/// Decodes `bytes`, naming the field at fault.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." || path == "?" {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("field `{path}`: {inner}"))
        }
    })
}
