//! What a run measured.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// The measurements of one run of one workload against one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// `corral` or `etcd`.
    pub target: String,
    /// What the workers did.
    pub workload: Workload,
    /// How many workers.
    pub workers: usize,
    /// How long it ran.
    pub seconds: f64,
    /// Completed acquire/release cycles.
    pub cycles: usize,
    /// Cycles per second (hand-offs per second when contended).
    pub cycles_per_second: f64,
    /// Acquire latency, median and 99th percentile, in ms.
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

/// What the failover workload measured: kill -9 of the leader, then the
/// time until an acquire succeeds through a surviving node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailoverReport {
    /// `corral`.
    pub target: String,
    /// Trials run.
    pub trials: usize,
    /// Seconds from each kill to the next successful acquire.
    pub seconds: Vec<f64>,
    /// Their median.
    pub median_seconds: f64,
    /// The slowest.
    pub max_seconds: f64,
}

impl FailoverReport {
    /// The report of these trials.
    pub fn of(target: &str, seconds: Vec<f64>) -> FailoverReport {
        FailoverReport {
            target: target.to_string(),
            trials: seconds.len(),
            median_seconds: median(&seconds).unwrap_or(0.0),
            max_seconds: seconds.iter().copied().reduce(f64::max).unwrap_or(0.0),
            seconds,
        }
    }
}

/// The median of `values` (the upper middle one of an even count), or
/// `None` when there are none.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// Latencies a run collected.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) acquire: Vec<Duration>,
    pub(crate) release: Vec<Duration>,
    pub(crate) errors: usize,
}

impl Samples {
    pub(crate) fn merge(&mut self, other: Samples) {
        self.acquire.extend(other.acquire);
        self.release.extend(other.release);
        self.errors += other.errors;
    }

    pub(crate) fn report(
        mut self,
        target: &str,
        workload: Workload,
        workers: usize,
        elapsed: Duration,
    ) -> Report {
        let seconds = elapsed.as_secs_f64();
        let cycles = self.release.len();
        Report {
            target: target.to_string(),
            workload,
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
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[at].as_secs_f64() * 1_000.0
}

#[cfg(test)]
#[path = "report_test.rs"]
mod tests;
