//! [`SimRng`]: the one source of the simulation's choices, seeded. Shared
//! by every part of a run; the run is on one thread, so the order of draws,
//! and so every choice, follows from the seed.

use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The seeded generator of one run.
#[derive(Clone)]
pub(crate) struct SimRng(Arc<Mutex<SmallRng>>);

impl SimRng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> SimRng {
        SimRng(Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))))
    }

    fn with<T>(&self, draw: impl FnOnce(&mut SmallRng) -> T) -> T {
        let mut rng = self.0.lock().unwrap_or_else(|p| p.into_inner());
        draw(&mut rng)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.with(|rng| rng.random_range(0..n))
    }

    /// A number in `low..=high`.
    pub(crate) fn between(&self, low: u64, high: u64) -> u64 {
        debug_assert!(low <= high);
        low + self.below(high - low + 1)
    }

    /// True with probability `per_mille` / 1000.
    pub(crate) fn chance(&self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A fresh 64-bit value (ids, keys).
    pub(crate) fn next_u64(&self) -> u64 {
        self.with(|rng| rng.random())
    }
}
