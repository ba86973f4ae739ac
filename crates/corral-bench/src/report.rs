//! What a run measured.

use corral_api::CycleSummary;
use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// The measurements of one run of one workload against one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// `corral` or `etcd`; a run inside a corral node (`--inside`) says
    /// which node.
    pub target: String,
    /// What the workers did.
    pub workload: Workload,
    /// Cycles, their rate and latencies, and errors: counted as a node's
    /// `POST /test/load` counts them.
    #[serde(flatten)]
    pub summary: CycleSummary,
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
