//! Idempotency keys: the first answer to a keyed request, remembered for a
//! while so that a retry gets it again instead of applying twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::outcome::Response;
use crate::{IDEMPOTENCY_BYTES_MAX, IDEMPOTENCY_KEYS_MAX};

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 256;

/// A request's idempotency key, as the proposal carries it.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// The client's key: 1 to [`IDEMPOTENCY_KEY_BYTES_MAX`] bytes of
    /// printable ASCII.
    pub key: String,
    /// A hash of what was asked (endpoint and body), computed by the node
    /// that took the request: the same key with another request is refused.
    pub fingerprint: u64,
    /// How long, in state-machine milliseconds, the answer is remembered.
    pub window_ms: u64,
}

/// Why a string is not an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes of printable ASCII")]
pub struct IdempotencyKeyError;

/// Checks an idempotency key.
pub fn check_idempotency_key(key: &str) -> Result<(), IdempotencyKeyError> {
    let printable = key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX || !printable {
        return Err(IdempotencyKeyError);
    }
    Ok(())
}

/// A stable 64-bit hash (FNV-1a) for request fingerprints: the same bytes
/// give the same value on every node and in every version.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The answer kept for retries of one key, with the fingerprint of the
/// request it answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    fingerprint: u64,
    expires_at_ms: u64,
    /// The size it counts against [`IDEMPOTENCY_BYTES_MAX`].
    bytes: usize,
    response: Response,
}

/// The remembered answers, by key, bounded in time, count and bytes; the
/// oldest to expire is forgotten first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RememberedResponses {
    by_key: BTreeMap<String, Remembered>,
    by_expiry: BTreeSet<(u64, String)>,
    bytes: usize,
}

/// What a keyed proposal finds.
pub(crate) enum Recall {
    /// The key is new: apply the command.
    New,
    /// The key answered this request before: here is the answer.
    Answered(Response),
    /// The key answered another request.
    Mismatch,
}

impl RememberedResponses {
    /// Forgets every answer whose window ended by `now_ms`.
    pub(crate) fn forget_expired(&mut self, now_ms: u64) {
        while let Some((expires_at_ms, _)) = self.by_expiry.first() {
            if *expires_at_ms > now_ms {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Whether `idempotency`'s key is new, answered this very request, or
    /// answered another one.
    pub(crate) fn recall(&self, idempotency: &Idempotency) -> Recall {
        match self.by_key.get(&idempotency.key) {
            None => Recall::New,
            Some(r) if r.fingerprint == idempotency.fingerprint => {
                Recall::Answered(r.response.clone())
            }
            Some(_) => Recall::Mismatch,
        }
    }

    /// Remembers the answer to a new keyed request until `now_ms` plus its
    /// window, forgetting the oldest answers to stay within bounds.
    pub(crate) fn remember(&mut self, idempotency: Idempotency, now_ms: u64, response: &Response) {
        let bytes = idempotency.key.len() + serde_json::to_vec(response).map_or(0, |v| v.len());
        let expires_at_ms = now_ms.saturating_add(idempotency.window_ms);
        // A restore that carries its own key may bring a table that
        // remembers that key: the new answer replaces the old one.
        if let Some(old) = self.by_key.remove(&idempotency.key) {
            self.by_expiry
                .remove(&(old.expires_at_ms, idempotency.key.clone()));
            self.bytes -= old.bytes;
        }
        while !self.by_key.is_empty()
            && (self.by_key.len() >= IDEMPOTENCY_KEYS_MAX
                || self.bytes + bytes > IDEMPOTENCY_BYTES_MAX)
        {
            self.forget_oldest();
        }
        self.by_expiry
            .insert((expires_at_ms, idempotency.key.clone()));
        self.bytes += bytes;
        self.by_key.insert(
            idempotency.key,
            Remembered {
                fingerprint: idempotency.fingerprint,
                expires_at_ms,
                bytes,
                response: response.clone(),
            },
        );
    }

    /// How many answers are remembered.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no answer is remembered.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.by_expiry.pop_first() {
            if let Some(r) = self.by_key.remove(&key) {
                self.bytes -= r.bytes;
            }
        }
    }

    /// Checks that the two indexes and the byte count agree.
    pub(crate) fn check(&self) -> Result<(), crate::table::BrokenInvariant> {
        let consistent = self.by_key.len() == self.by_expiry.len()
            && self
                .by_expiry
                .iter()
                .all(|(at, key)| self.by_key.get(key).is_some_and(|r| r.expires_at_ms == *at))
            && self.bytes == self.by_key.values().map(|r| r.bytes).sum::<usize>();
        if !consistent {
            return Err(crate::table::BrokenInvariant::Remembered);
        }
        Ok(())
    }
}
