//! The fenced key-value store: records that only the current holder of a
//! lock may write, and never with a token lower than one that wrote before.

use serde::{Deserialize, Serialize};

use crate::lock::LockName;
use crate::token::FencingToken;

/// A key of the fenced store. Keys follow the rules of lock names: 1 to
/// 512 bytes of UTF-8 without control characters.
pub type KvKey = LockName;

/// The longest value, in bytes.
pub const KV_VALUE_BYTES_MAX: usize = 64 * 1024;

/// What a record counts against the store's byte cap: its key, and its
/// value as JSON (escapes included, as snapshots carry it).
pub(crate) fn kv_cost(key: &KvKey, record: &FencedValue) -> usize {
    key.as_str().len() + record.value.as_ref().map_or(0, |v| json_len(v))
}

/// The length of `value` as a JSON string.
pub(crate) fn json_len(value: &str) -> usize {
    serde_json::to_string(value).map_or(value.len(), |s| s.len())
}

/// The lock and token a write claims to be made under.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The lock that guards the key.
    pub lock: LockName,
    /// The token the writer holds that lock under.
    pub fencing_token: FencingToken,
}

/// A key's record. A deleted key keeps its record without a value, so that
/// the highest token that wrote it still refuses older writers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedValue {
    /// The value; `None` once deleted.
    pub value: Option<String>,
    /// The highest token that wrote (or deleted) the key.
    pub fencing_token: FencingToken,
    /// The lock that write was fenced by.
    pub lock: LockName,
    /// State-machine time of that write.
    pub written_at_ms: u64,
    /// The token that created the key, when auth was on: the key counts
    /// against its quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::auth::TokenName>,
}
