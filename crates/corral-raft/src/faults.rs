//! Faults a test injects into a node's traffic to its peers: the network
//! partitions of the failure tests.
//!
//! Always compiled in, switched on only by `corral server --test-faults`.
//! Switched off (the default) it blocks nothing and takes no lock.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// The peers (by `host:port`) this node may not reach. A blocked call
/// fails as a connection failure would, before anything is sent.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    blocked: Option<Arc<RwLock<BTreeSet<String>>>>,
}

impl Faults {
    /// Faults that a test may switch on.
    pub fn enabled() -> Faults {
        Faults {
            blocked: Some(Arc::default()),
        }
    }

    /// Whether a test may inject faults into this node.
    pub fn is_enabled(&self) -> bool {
        self.blocked.is_some()
    }

    /// Whether traffic to `addr` is dropped.
    pub fn blocks(&self, addr: &str) -> bool {
        self.blocked.as_ref().is_some_and(|blocked| {
            blocked
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(addr)
        })
    }

    /// Fails, as a connection failure would, if traffic to `addr` is
    /// dropped.
    pub fn check(&self, addr: &str) -> Result<(), std::io::Error> {
        match self.blocks(addr) {
            true => Err(std::io::Error::other("partitioned by a test fault")),
            false => Ok(()),
        }
    }

    /// Drops traffic to exactly these peers from now on; `false` if faults
    /// are switched off.
    pub fn set_blocked(&self, addrs: impl IntoIterator<Item = String>) -> bool {
        let Some(blocked) = &self.blocked else {
            return false;
        };
        *blocked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = addrs.into_iter().collect();
        true
    }

    /// The peers traffic to is dropped.
    pub fn blocked(&self) -> Vec<String> {
        self.blocked.as_ref().map_or_else(Vec::new, |blocked| {
            blocked
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_blocks_nothing_and_on_blocks_what_it_is_told() {
        let off = Faults::default();
        assert!(!off.set_blocked(["a:1".to_string()]));
        assert!(!off.blocks("a:1"));
        let on = Faults::enabled();
        assert!(on.set_blocked(["a:1".to_string()]));
        assert!(on.blocks("a:1") && !on.blocks("b:2"));
        on.set_blocked([]);
        assert!(!on.blocks("a:1"));
    }
}
