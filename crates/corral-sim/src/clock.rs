//! Virtual time. tokio's clock is paused in a run and jumps to the next
//! timer whenever every task waits, so a run of minutes takes a moment.
//! Each node's wall clock is virtual time plus its own offset, which a
//! clock-jump fault moves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use corral_raft::NodeId;
use tokio::time::Instant;

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
    let start = START.with(|start| start.get()).unwrap_or_else(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The nodes' wall clocks.
#[derive(Clone, Default)]
pub(crate) struct WallClocks {
    offsets_ms: Arc<Mutex<BTreeMap<NodeId, i64>>>,
}

impl WallClocks {
    /// Node `id`'s wall clock now, in Unix milliseconds.
    pub(crate) fn now_ms(&self, id: NodeId) -> u64 {
        let offsets = self.offsets_ms.lock().unwrap_or_else(|p| p.into_inner());
        let offset_ms = offsets.get(&id).copied().unwrap_or(0);
        (EPOCH_MS + elapsed_ms()).saturating_add_signed(offset_ms)
    }

    /// Moves node `id`'s wall clock by `by_ms`.
    pub(crate) fn jump(&self, id: NodeId, by_ms: i64) {
        let mut offsets = self.offsets_ms.lock().unwrap_or_else(|p| p.into_inner());
        *offsets.entry(id).or_default() += by_ms;
    }
}
