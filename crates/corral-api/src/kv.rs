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
    /// The key.
    pub key: KvKey,
    /// The lock and token the delete is made under.
    pub fence: Fence,
}

/// The answer to a fenced write or delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvWriteResponse {
    /// The key.
    pub key: KvKey,
    /// The token it was written under, now the key's highest.
    pub fencing_token: FencingToken,
}

/// `GET /v1/kv?key=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvValue {
    /// The key.
    pub key: KvKey,
    /// Its value.
    pub value: String,
    /// The token of the write that set it.
    pub fencing_token: FencingToken,
    /// The lock that write was fenced by.
    pub lock: LockName,
}

/// `POST /v1/locks/validate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// The lock.
    pub name: LockName,
    /// The token to check.
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
