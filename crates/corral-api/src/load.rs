//! `POST /test/load` (only on a node started with `--test-faults`): the
//! bench's acquire/release cycle run inside a node, with no client HTTP in
//! front of it.
//!
//! Its numbers are compared with the bench's, so both count cycles and
//! quantiles with the same code: [`CycleSamples`] collects, and
//! [`CycleSamples::summary`] reduces, for the bench's client and for the
//! node alike.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most workers of one load run.
pub const LOAD_WORKERS_MAX: usize = 256;
/// The longest load run, in milliseconds.
pub const LOAD_DURATION_MS_MAX: u64 = 60_000;

/// `POST /test/load`: how many workers, for how long, and whether on one
/// name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    /// Concurrent workers, each with a lease of its own.
    pub workers: usize,
    /// How long the run lasts.
    pub duration_ms: u64,
    /// Every worker cycles on one name (hand-offs), instead of 16 names
    /// of its own.
    #[serde(default)]
    pub contended: bool,
}

/// The answer of `POST /test/load`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Whether the node led when the run began: its writes were proposed
    /// there, not forwarded.
    pub on_leader: bool,
    /// What the cycles measured.
    #[serde(flatten)]
    pub cycles: CycleSummary,
}

/// What a run of acquire/release cycles measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CycleSummary {
    /// How many workers.
    pub workers: usize,
    /// How long it ran.
    pub seconds: f64,
    /// Completed cycles: acquired, then released.
    pub cycles: usize,
    /// Cycles per second (hand-offs per second when contended).
    pub cycles_per_second: f64,
    /// Acquire latency, median, in ms.
    pub acquire_p50_ms: f64,
    /// Acquire latency, 99th percentile, in ms.
    pub acquire_p99_ms: f64,
    /// Release latency, median, in ms.
    pub release_p50_ms: f64,
    /// Release latency, 99th percentile, in ms.
    pub release_p99_ms: f64,
    /// Calls that failed.
    pub errors: usize,
}

/// The latencies of acquire/release cycles, as workers collect them.
#[derive(Debug, Default)]
pub struct CycleSamples {
    /// Each granted acquire's latency.
    pub acquire: Vec<Duration>,
    /// Each done release's latency: one per completed cycle.
    pub release: Vec<Duration>,
    /// Calls that failed.
    pub errors: usize,
}

impl CycleSamples {
    /// Adds another worker's samples.
    pub fn merge(&mut self, other: CycleSamples) {
        self.acquire.extend(other.acquire);
        self.release.extend(other.release);
        self.errors += other.errors;
    }

    /// The summary of `workers` workers' cycles over `elapsed`; a cycle
    /// counts once its release is done.
    pub fn summary(mut self, workers: usize, elapsed: Duration) -> CycleSummary {
        let seconds = elapsed.as_secs_f64();
        let cycles = self.release.len();
        CycleSummary {
            workers,
            seconds,
            cycles,
            cycles_per_second: if seconds > 0.0 {
                cycles as f64 / seconds
            } else {
                0.0
            },
            acquire_p50_ms: percentile_ms(&mut self.acquire, 0.50),
            acquire_p99_ms: percentile_ms(&mut self.acquire, 0.99),
            release_p50_ms: percentile_ms(&mut self.release, 0.50),
            release_p99_ms: percentile_ms(&mut self.release, 0.99),
            errors: self.errors,
        }
    }
}

/// The `q` quantile of `samples` (nearest rank), in milliseconds; 0
/// without samples.
pub fn percentile_ms(samples: &mut [Duration], q: f64) -> f64 {
    debug_assert!((0.0..=1.0).contains(&q), "a quantile is in [0, 1]: {q}");
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[at].as_secs_f64() * 1_000.0
}

#[cfg(test)]
#[path = "load_test.rs"]
mod tests;
