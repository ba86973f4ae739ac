//! `/v1/kv`: the fenced key-value store, and `/v1/locks/validate`.

use serde::{Deserialize, Serialize};

use crate::{Fence, FencingToken, KvKey, LockName};

/// `PUT /v1/kv`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvPutRequest {
    /// The key: 1 to 512 bytes, no control characters.
    pub key: KvKey,
    /// The value: a string of at most [`crate::KV_VALUE_BYTES_MAX`] bytes.
    pub value: String,
    /// The lock and token the write is made under.
    pub fence: Fence,
}

/// `DELETE /v1/kv`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvDeleteRequest {
    /// The key to delete. Its highest token stays (and counts against the
    /// store's limits), so a write fenced by an older token is still
    /// refused.
    pub key: KvKey,
    /// The lock and token the delete is made under.
    pub fence: Fence,
}

/// The answer to a fenced write or delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvWriteResponse {
    /// The key written or deleted, as the request named it.
    pub key: KvKey,
    /// The token it was written under, now the key's highest.
    pub fencing_token: FencingToken,
}

/// `GET /v1/kv?key=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvValue {
    /// The key asked for.
    pub key: KvKey,
    /// What the last write under a fence set it to.
    pub value: String,
    /// The token of the write that set it.
    pub fencing_token: FencingToken,
    /// The lock that write was fenced by.
    pub lock: LockName,
}

/// `POST /v1/locks/validate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// The lock the token was granted for.
    pub name: LockName,
    /// The token to check, as a grant of `name` returned it.
    pub fencing_token: FencingToken,
}

/// The answer to a validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateResponse {
    /// Whether the lock is held under that token right now.
    pub valid: bool,
    /// The newest token the lock is held under; null when it is free.
    pub current_token: Option<FencingToken>,
}
