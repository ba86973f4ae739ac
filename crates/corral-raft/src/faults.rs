//! Faults a test injects into a node: the network partitions of the failure
//! tests, and a slow log sync.
//!
//! Always compiled in, switched on only by `corral server --test-faults`.
//! Switched off (the default) it blocks nothing, delays nothing, takes no
//! lock and loads no atomic: every check stops at a `None`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The faults of one node, shared by its network and its log flusher.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// `None` when faults are switched off.
    on: Option<Arc<Switched>>,
}

/// What a test has switched on.
#[derive(Debug, Default)]
struct Switched {
    /// The peers (by `host:port`) this node may not reach. A blocked call
    /// fails as a connection failure would, before anything is sent.
    blocked: RwLock<BTreeSet<String>>,
    /// How long the log flusher sleeps before each WAL sync; 0 for not at
    /// all. Entries appended meanwhile stay in the process's memory, so a
    /// kill -9 loses them, as a slow disk would make it.
    log_sync_delay_ms: AtomicU64,
    /// Whether every WAL sync fails, as on a disk that has died: raft
    /// stops the node, which must then say so on its health checks.
    log_sync_fails: AtomicBool,
    /// How far this node's wall clock is off, in ms: a clock that jumped.
    /// Only the wall clock moves, never an `Instant`.
    clock_offset_ms: AtomicI64,
}

impl Faults {
    /// Faults that a test may switch on.
    pub fn enabled() -> Faults {
        Faults {
            on: Some(Arc::default()),
        }
    }

    /// Whether a test may inject faults into this node.
    pub fn is_enabled(&self) -> bool {
        self.on.is_some()
    }

    /// Whether traffic to `addr` is dropped.
    pub fn blocks(&self, addr: &str) -> bool {
        self.on.as_ref().is_some_and(|on| {
            on.blocked
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
        let Some(on) = &self.on else {
            return false;
        };
        *on.blocked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = addrs.into_iter().collect();
        true
    }

    /// The peers traffic to is dropped.
    pub fn blocked(&self) -> Vec<String> {
        self.on.as_ref().map_or_else(Vec::new, |on| {
            on.blocked
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }

    /// Makes the log flusher sleep `delay_ms` before each WAL sync from now
    /// on (0: not at all); `false` if faults are switched off.
    pub fn set_log_sync_delay_ms(&self, delay_ms: u64) -> bool {
        self.set(|on| on.log_sync_delay_ms.store(delay_ms, Ordering::Relaxed))
    }

    /// How long the log flusher sleeps before each WAL sync, in ms.
    pub fn log_sync_delay_ms(&self) -> u64 {
        self.get(|on| on.log_sync_delay_ms.load(Ordering::Relaxed))
    }

    /// Makes every WAL sync fail from now on (or not); `false` if faults
    /// are switched off.
    pub fn set_log_sync_fails(&self, fails: bool) -> bool {
        self.set(|on| on.log_sync_fails.store(fails, Ordering::Relaxed))
    }

    /// Whether a test made WAL syncs fail.
    pub fn log_sync_fails(&self) -> bool {
        self.get(|on| on.log_sync_fails.load(Ordering::Relaxed))
    }

    /// Sets how far this node's wall clock is off, in ms; `false` if
    /// faults are switched off.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) -> bool {
        self.set(|on| on.clock_offset_ms.store(offset_ms, Ordering::Relaxed))
    }

    /// How far a test set this node's wall clock off, in ms; 0 otherwise.
    pub fn clock_offset_ms(&self) -> i64 {
        self.get(|on| on.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Changes what a test switched on; `false` if faults are off.
    fn set(&self, change: impl FnOnce(&Switched)) -> bool {
        self.on.as_deref().map(change).is_some()
    }

    /// Reads what a test switched on; the default when faults are off.
    fn get<T: Default>(&self, read: impl FnOnce(&Switched) -> T) -> T {
        self.on.as_deref().map(read).unwrap_or_default()
    }

    /// Sleeps for the log-sync delay, if a test set one. Called by the log
    /// flusher thread only: it blocks.
    pub(crate) fn delay_log_sync(&self) {
        let delay_ms = self.log_sync_delay_ms();
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
    }
}

#[cfg(test)]
#[path = "faults_test.rs"]
mod tests;
