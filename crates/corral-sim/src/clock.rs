//! Virtual time. tokio's clock is paused in a run and jumps to the next
//! timer whenever every task waits, so a run of minutes takes a moment.
//! Each node's wall clock is virtual time, drifting at its own rate, plus
//! its own offset, which a clock-jump fault moves. The nodes' monotonic
//! clocks are all virtual time: a rate drift between them is not modelled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use corral_raft::NodeId;
use tokio::time::Instant;

use crate::rng::SimRng;

/// The wall-clock time at which every run starts, in Unix milliseconds.
const EPOCH_MS: u64 = 1_800_000_000_000;

thread_local! {
    static START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Marks the start of a run on this thread.
pub(crate) fn start() {
    START.with(|start| start.set(Some(Instant::now())));
}

/// Virtual milliseconds since the run started.
pub(crate) fn elapsed_ms() -> u64 {
    elapsed_us() / 1_000
}

/// Virtual microseconds since the run started.
pub(crate) fn elapsed_us() -> u64 {
    let start = START.with(|start| start.get()).unwrap_or_else(Instant::now);
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The most a wall clock drifts, in parts per million either way.
const DRIFT_PPM_MAX: u64 = 1_000;

/// The nodes' wall clocks.
#[derive(Clone, Default)]
pub(crate) struct WallClocks {
    clocks: Arc<Mutex<BTreeMap<NodeId, WallClock>>>,
}

#[derive(Clone, Copy, Default)]
struct WallClock {
    offset_ms: i64,
    drift_ppm: i64,
}

impl WallClocks {
    /// Clocks for `ids`, each drifting at its own rate drawn from `rng`.
    pub(crate) fn drifting(ids: impl Iterator<Item = NodeId>, rng: &SimRng) -> WallClocks {
        let clocks = ids.map(|id| {
            let drift_ppm = rng.below(2 * DRIFT_PPM_MAX + 1) as i64 - DRIFT_PPM_MAX as i64;
            let clock = WallClock {
                offset_ms: 0,
                drift_ppm,
            };
            (id, clock)
        });
        WallClocks {
            clocks: Arc::new(Mutex::new(clocks.collect())),
        }
    }

    /// Node `id`'s wall clock now, in Unix milliseconds.
    pub(crate) fn now_ms(&self, id: NodeId) -> u64 {
        let clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        let clock = clocks.get(&id).copied().unwrap_or_default();
        let elapsed_ms = elapsed_ms();
        let drift_ms = elapsed_ms as i64 * clock.drift_ppm / 1_000_000;
        (EPOCH_MS + elapsed_ms).saturating_add_signed(clock.offset_ms + drift_ms)
    }

    /// Moves node `id`'s wall clock by `by_ms`.
    pub(crate) fn jump(&self, id: NodeId, by_ms: i64) {
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        clocks.entry(id).or_default().offset_ms += by_ms;
    }
}
