//! Lock ordering: the cluster's ranks by name prefix, and a lease's
//! promise to take names in byte order.
//!
//! Leases that all take their locks in one total order can never wait in a
//! circle. For a lexicographic lease the order is (rank, name), with names
//! that match no prefix ranked after every prefix; for other leases only
//! two ranked names are compared.

use std::cmp::Ordering;

use super::LockTable;
use crate::lease::{Lease, LockOrder};
use crate::lock::LockName;
use crate::outcome::{Outcome, Refusal, Response};
use crate::{LOCK_NAME_BYTES_MAX, LOCK_ORDER_PREFIXES_MAX};

impl LockTable {
    pub(super) fn set_lock_order(&mut self, prefixes: Vec<String>) -> Response {
        check_lock_order(&prefixes).map_err(|e| Refusal::Invalid {
            reason: e.to_string(),
        })?;
        self.lock_order = prefixes;
        Ok(Outcome::LockOrderSet)
    }

    /// The rank of `name`: the position of the first prefix it starts with.
    pub fn rank(&self, name: &LockName) -> Option<usize> {
        self.lock_order
            .iter()
            .position(|prefix| name.as_str().starts_with(prefix.as_str()))
    }

    /// The refusal of `lease` taking `name`, if that would break an order:
    /// `name` is ordered before a lock the lease holds or waits for.
    pub(super) fn order_violation(&self, lease: &Lease, name: &LockName) -> Option<Refusal> {
        lease
            .holds
            .iter()
            .chain(&lease.waits)
            .find(|other| self.order(lease.lock_order, name, other) == Some(Ordering::Less))
            .map(|held| Refusal::OrderViolation {
                name: name.clone(),
                held: held.clone(),
            })
    }

    /// How `a` and `b` are ordered for a lease keeping `order`; `None` when
    /// they are not ordered at all.
    fn order(&self, order: LockOrder, a: &LockName, b: &LockName) -> Option<Ordering> {
        let (rank_a, rank_b) = (self.rank(a), self.rank(b));
        match order {
            LockOrder::Lexicographic => {
                let key = |rank: Option<usize>, name| (rank.unwrap_or(usize::MAX), name);
                Some(key(rank_a, a).cmp(&key(rank_b, b)))
            }
            LockOrder::None => Some(rank_a?.cmp(&rank_b?)),
        }
    }
}

/// Why a list of prefixes is not a cluster lock order. Its text is the
/// reason a refused `SetLockOrder` answers with, so it stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockOrderError {
    /// More than [`LOCK_ORDER_PREFIXES_MAX`] prefixes.
    #[error("at most {LOCK_ORDER_PREFIXES_MAX} lock order prefixes, got {count}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A prefix that is empty or longer than a lock name may be.
    #[error("a lock order prefix is 1 to {LOCK_NAME_BYTES_MAX} bytes, got {prefix:?}")]
    BadPrefix {
        /// The prefix at fault.
        prefix: String,
    },
    /// A prefix given twice, which would have two ranks.
    #[error("lock order prefix {prefix:?} is given twice")]
    Repeated {
        /// The prefix at fault.
        prefix: String,
    },
}

/// Checks a cluster lock order: at most [`LOCK_ORDER_PREFIXES_MAX`]
/// distinct prefixes of 1 to [`LOCK_NAME_BYTES_MAX`] bytes.
pub fn check_lock_order(prefixes: &[String]) -> Result<(), LockOrderError> {
    if prefixes.len() > LOCK_ORDER_PREFIXES_MAX {
        return Err(LockOrderError::TooMany {
            count: prefixes.len(),
        });
    }
    for (i, prefix) in prefixes.iter().enumerate() {
        if prefix.is_empty() || prefix.len() > LOCK_NAME_BYTES_MAX {
            return Err(LockOrderError::BadPrefix {
                prefix: prefix.clone(),
            });
        }
        if prefixes[..i].contains(prefix) {
            return Err(LockOrderError::Repeated {
                prefix: prefix.clone(),
            });
        }
    }
    Ok(())
}
