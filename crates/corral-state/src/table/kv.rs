//! Fenced writes to the key-value store.

use super::LockTable;
use crate::auth::TokenName;
use crate::kv::{json_len, kv_cost, Fence, FencedValue, KvKey, KV_VALUE_BYTES_MAX};
use crate::outcome::{Outcome, Refusal, Response};

impl LockTable {
    /// Writes (`Some`) or deletes (`None`) `key` if `fence` is current: the
    /// lock is held under its token right now, and no higher token has
    /// written the key. A new key is refused once `keys_max` keys exist
    /// (deleted ones count: they keep their highest token), and any write
    /// that would take the store past `bytes_max`. A new key belongs to
    /// `owner`, and counts against its quota.
    pub(super) fn write_fenced(
        &mut self,
        key: KvKey,
        value: Option<String>,
        fence: Fence,
        (keys_max, bytes_max): (usize, usize),
        owner: Option<TokenName>,
    ) -> Response {
        if value.as_ref().is_some_and(|v| v.len() > KV_VALUE_BYTES_MAX) {
            return Err(Refusal::Invalid {
                reason: format!("a value is at most {KV_VALUE_BYTES_MAX} bytes"),
            });
        }
        let lock = self.locks.get(&fence.lock);
        let held = lock.is_some_and(|l| {
            l.holders
                .values()
                .any(|g| g.fencing_token == fence.fencing_token)
        });
        let key_token = self.kv.get(&key).map(|r| r.fencing_token);
        if !held || key_token.is_some_and(|t| t > fence.fencing_token) {
            return Err(Refusal::StaleToken {
                lock_token: lock.and_then(|l| l.newest_token()),
                key_token,
            });
        }
        if key_token.is_none() && value.is_none() {
            return Err(Refusal::KeyNotFound);
        }
        if key_token.is_none() && self.kv.len() >= keys_max {
            return Err(Refusal::TooManyKeys {
                limit: format!("at most {keys_max} keys"),
            });
        }
        let old_cost = self.kv.get(&key).map_or(0, |r| kv_cost(&key, r));
        let new_cost = key.as_str().len() + value.as_deref().map_or(0, json_len);
        if new_cost > old_cost && self.kv_bytes - old_cost + new_cost > bytes_max {
            return Err(Refusal::TooManyKeys {
                limit: format!("at most {bytes_max} bytes of keys and values"),
            });
        }
        let deleted = value.is_none();
        self.kv_bytes = self.kv_bytes - old_cost + new_cost;
        let owner = match self.kv.get(&key) {
            Some(record) => record.owner.clone(),
            None => {
                if let Some(owner) = &owner {
                    *self.owned_keys.entry(owner.clone()).or_default() += 1;
                }
                owner
            }
        };
        self.kv.insert(
            key.clone(),
            FencedValue {
                value,
                fencing_token: fence.fencing_token,
                lock: fence.lock,
                written_at_ms: self.now_ms,
                owner,
            },
        );
        Ok(Outcome::Written {
            key,
            fencing_token: fence.fencing_token,
            deleted,
        })
    }

    /// A key's record, deleted ones included.
    pub fn fenced_value(&self, key: &KvKey) -> Option<&FencedValue> {
        self.kv.get(key)
    }

    /// Whether `name` is held under `token` right now, and the newest token
    /// it is held under.
    pub fn validate(
        &self,
        name: &crate::LockName,
        token: crate::FencingToken,
    ) -> (bool, Option<crate::FencingToken>) {
        let lock = self.locks.get(name);
        let valid = lock.is_some_and(|l| l.holders.values().any(|g| g.fencing_token == token));
        (valid, lock.and_then(|l| l.newest_token()))
    }
}
