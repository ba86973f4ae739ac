//! Fencing tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A fencing token: the value of the cluster-wide grant counter taken by one
/// grant.
///
/// Every grant of every lock takes the next value, in log order, so tokens rise
/// strictly across all locks, leaders, restarts and snapshots and are never
/// reused. A resource that remembers the highest token it has seen can refuse
/// writes from a stale owner.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The token after this one.
    pub fn next(self) -> FencingToken {
        // u64 cannot run out at any realistic grant rate (a million grants a
        // second for half a million years); overflow would be a bug.
        FencingToken(
            self.0
                .checked_add(1)
                .expect("fencing token counter overflow"),
        )
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
