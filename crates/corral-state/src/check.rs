//! Checks of a command's fields, in one place: the HTTP route refuses a
//! request with these words before proposing it, and the state machine
//! refuses a command that got past a route with the same words.

use std::collections::BTreeSet;

use crate::{LockName, ACQUIRE_ALL_NAMES_MAX, ELECTION_VALUE_BYTES_MAX, SEMAPHORE_LIMIT_MAX};

/// A field of a command out of its range. The message names the field as
/// the HTTP request spells it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A semaphore's limit is 0 or above [`SEMAPHORE_LIMIT_MAX`].
    #[error("field `limit`: must be from 1 to {SEMAPHORE_LIMIT_MAX}, got {limit}")]
    SemaphoreLimit {
        /// The limit asked for.
        limit: u32,
    },
    /// An acquire of permits asks for 0, or more than the limit.
    #[error("field `permits`: must be from 1 to the limit {limit}, got {permits}")]
    Permits {
        /// The semaphore's limit asked for.
        limit: u32,
        /// The permits asked for.
        permits: u32,
    },
    /// An acquire-all names no lock, or more than [`ACQUIRE_ALL_NAMES_MAX`].
    #[error("field `names`: must hold 1 to {ACQUIRE_ALL_NAMES_MAX} lock names, got {count}")]
    NamesCount {
        /// How many names it gave.
        count: usize,
    },
    /// An acquire-all names one lock twice.
    #[error("field `names`: {name} is given twice")]
    NameTwice {
        /// The name given twice.
        name: LockName,
    },
    /// An election value longer than [`ELECTION_VALUE_BYTES_MAX`].
    #[error("field `value`: must be at most {ELECTION_VALUE_BYTES_MAX} bytes, got {bytes}")]
    ElectionValue {
        /// Its length in bytes.
        bytes: usize,
    },
}

impl From<FieldError> for crate::Refusal {
    fn from(e: FieldError) -> crate::Refusal {
        crate::Refusal::Invalid {
            reason: e.to_string(),
        }
    }
}

/// Checks a semaphore acquire's `limit` and `permits`.
pub fn check_permits(limit: u32, permits: u32) -> Result<(), FieldError> {
    if !(1..=SEMAPHORE_LIMIT_MAX).contains(&limit) {
        return Err(FieldError::SemaphoreLimit { limit });
    }
    if !(1..=limit).contains(&permits) {
        return Err(FieldError::Permits { limit, permits });
    }
    Ok(())
}

/// The names of an acquire-all as a set, or why the list is refused: empty,
/// too long, or naming a lock twice.
pub fn check_acquire_all_names(names: &[LockName]) -> Result<BTreeSet<LockName>, FieldError> {
    if names.is_empty() || names.len() > ACQUIRE_ALL_NAMES_MAX {
        return Err(FieldError::NamesCount { count: names.len() });
    }
    let set: BTreeSet<LockName> = names.iter().cloned().collect();
    if set.len() < names.len() {
        // The first name given twice in sorted order, so that a retry
        // that lists the names differently is told the same.
        let mut sorted = names.to_vec();
        sorted.sort();
        let twice = sorted.windows(2).find(|w| w[0] == w[1]);
        let name = twice.map_or_else(|| sorted[0].clone(), |w| w[0].clone());
        return Err(FieldError::NameTwice { name });
    }
    debug_assert_eq!(set.len(), names.len());
    Ok(set)
}

/// Checks an election value's length.
pub fn check_election_value(value: &str) -> Result<(), FieldError> {
    if value.len() > ELECTION_VALUE_BYTES_MAX {
        return Err(FieldError::ElectionValue { bytes: value.len() });
    }
    Ok(())
}

#[cfg(test)]
#[path = "check_test.rs"]
mod tests;
