//! Side-by-side tables of corral and etcd runs, with the ratios the
//! performance targets are stated in.

use std::fmt::Write;

use crate::keepalive::KeepaliveReport;
use crate::report::{FailoverReport, Report};
use crate::workload::Workload;

/// A performance target: a ratio corral/etcd for one workload, which
/// every round must meet. (A median would let a bad round hide: on a
/// shared machine a target that holds only on the median does not hold.)
struct Goal {
    workload: Workload,
    workers: usize,
    what: &'static str,
    /// The ratio from a corral and an etcd report.
    ratio: fn(&Report, &Report) -> f64,
    /// Whether a higher ratio is better (throughput) or a lower one
    /// (latency): which round is the worst.
    higher_is_better: bool,
    /// The ratio a round must reach (at least, or at most).
    bound: f64,
}

impl Goal {
    fn met(&self, ratio: f64) -> bool {
        if self.higher_is_better {
            ratio >= self.bound
        } else {
            ratio <= self.bound
        }
    }

    /// The round that is furthest from the goal.
    fn worst(&self, ratios: &[f64]) -> Option<f64> {
        let fold = if self.higher_is_better {
            f64::min
        } else {
            f64::max
        };
        ratios.iter().copied().reduce(fold)
    }

    fn target(&self) -> String {
        let sign = if self.higher_is_better { ">=" } else { "<=" };
        format!("{sign} {}x", self.bound)
    }
}

const GOALS: [Goal; 4] = [
    Goal {
        workload: Workload::Uncontended,
        workers: 32,
        what: "cycles/s",
        ratio: |c, e| c.summary.cycles_per_second / e.summary.cycles_per_second,
        higher_is_better: true,
        bound: 4.0,
    },
    Goal {
        workload: Workload::Uncontended,
        workers: 32,
        what: "acquire p99",
        ratio: |c, e| c.summary.acquire_p99_ms / e.summary.acquire_p99_ms,
        higher_is_better: false,
        bound: 0.5,
    },
    Goal {
        workload: Workload::Uncontended,
        workers: 1,
        what: "acquire p50",
        ratio: |c, e| c.summary.acquire_p50_ms / e.summary.acquire_p50_ms,
        higher_is_better: false,
        bound: 0.6,
    },
    Goal {
        workload: Workload::Contended,
        workers: 32,
        what: "hand-offs/s",
        ratio: |c, e| c.summary.cycles_per_second / e.summary.cycles_per_second,
        higher_is_better: true,
        bound: 4.0,
    },
];

/// The runs of one workload against one target, in the order they ran.
fn runs<'a>(
    reports: &'a [Report],
    target: &'a str,
    workload: Workload,
    workers: usize,
) -> impl Iterator<Item = &'a Report> + 'a {
    reports.iter().filter(move |r| {
        r.target == target && r.workload == workload && r.summary.workers == workers
    })
}

fn workload_name(workload: Workload) -> &'static str {
    match workload {
        Workload::Uncontended => "uncontended",
        Workload::Contended => "contended",
        Workload::Queue => "queue",
    }
}

/// Markdown: every run's numbers, then each target with the worst of the
/// ratios its rounds measured (each round runs corral, then etcd; runs of
/// corral without an etcd twin are listed alone), then the keepalive and
/// failover runs against their targets.
pub fn markdown(
    reports: &[Report],
    keepalives: &[KeepaliveReport],
    failovers: &[FailoverReport],
) -> String {
    let mut out = String::new();
    runs_table(&mut out, reports);
    goals_table(&mut out, reports);
    for k in keepalives {
        keepalive_paragraph(&mut out, k);
    }
    for f in failovers {
        failover_paragraph(&mut out, f);
    }
    // One line per row and per paragraph (each after a blank line): a
    // field that wrote a newline would break the tables.
    debug_assert_eq!(
        out.lines().count(),
        2 + reports.len() + 3 + GOALS.len() + 2 * (keepalives.len() + failovers.len())
    );
    out
}

/// One row per run, in the order they ran.
fn runs_table(out: &mut String, reports: &[Report]) {
    out.push_str("| workload | workers | target | cycles/s | acquire p50 / p99 ms | release p50 / p99 ms | errors |\n");
    out.push_str("|---|---:|---|---:|---:|---:|---:|\n");
    for r in reports {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
            workload_name(r.workload),
            r.summary.workers,
            r.target,
            r.summary.cycles_per_second,
            r.summary.acquire_p50_ms,
            r.summary.acquire_p99_ms,
            r.summary.release_p50_ms,
            r.summary.release_p99_ms,
            r.summary.errors
        );
    }
}

/// One row per goal: the worst ratio of its rounds, each round's ratio,
/// and whether every round meets it.
fn goals_table(out: &mut String, reports: &[Report]) {
    out.push_str(
        "\n| target | corral / etcd (worst round) | each round | goal | met |\n|---|---:|---|---|---|\n",
    );
    for goal in &GOALS {
        // The n-th corral run pairs with the n-th etcd run of the same
        // workload: one round ran them back to back.
        let ratios: Vec<f64> = runs(reports, "corral", goal.workload, goal.workers)
            .zip(runs(reports, "etcd", goal.workload, goal.workers))
            .map(|(c, e)| (goal.ratio)(c, e))
            .collect();
        let name = format!(
            "{}, {} worker{}: {}",
            workload_name(goal.workload),
            goal.workers,
            if goal.workers == 1 { "" } else { "s" },
            goal.what
        );
        let target = goal.target();
        let Some(worst) = goal.worst(&ratios) else {
            let _ = writeln!(out, "| {name} | not run | - | {target} | - |");
            continue;
        };
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
        let met = if goal.met(worst) { "yes" } else { "**no**" };
        let _ = writeln!(
            out,
            "| {name} | {worst:.2}x | {} | {target} | {met} |",
            each.join(", ")
        );
    }
}

/// A keepalive run in a sentence, judged against its goal: none lost, the
/// leader under one core.
fn keepalive_paragraph(out: &mut String, k: &KeepaliveReport) {
    let cores = k
        .leader_cpu_cores
        .map_or("not measured".to_string(), |c| format!("{c:.2}"));
    let cpu_met =
        k.granted == k.leases && k.lost == 0 && k.leader_cpu_cores.is_some_and(|c| c < 1.0);
    // With locks, the working-set goal: under 1 KiB per lease and lock.
    let (locks, goal, met) = match k.locks {
        0 => (String::new(), "", cpu_met),
        locks => {
            let rss = k.leader_rss_bytes_per_lease;
            (
                format!(
                    " each taking a lock of its own ({locks} locks; leader memory {} per lease and lock),",
                    rss.map_or("not measured".to_string(), |b| format!("{b:.0} B"))
                ),
                ", under 1 KiB per lease and lock",
                cpu_met && k.locks == k.leases && rss.is_some_and(|b| b < 1024.0),
            )
        }
    };
    let _ = writeln!(
        out,
        "\nKeepalive: {} leases of ttl {:.0} s granted in {:.0} s,{locks} then kept alive {:.0} s in batches of {}: \
         {} lost, {:.0} renewals/s, batch call p50/p99 {:.1}/{:.1} ms, leader CPU {} cores, {} errors. \
         Goal (none lost, leader under one core{goal}): {}.",
        k.granted,
        k.ttl_seconds,
        k.grant_seconds,
        k.seconds,
        k.batch,
        k.lost,
        k.renewals_per_second,
        k.batch_p50_ms,
        k.batch_p99_ms,
        cores,
        k.errors,
        if met { "met" } else { "**not met**" }
    );
}

/// A failover run in a sentence, judged against its goal: a median under
/// 1.5 s.
fn failover_paragraph(out: &mut String, f: &FailoverReport) {
    let each: Vec<String> = f.seconds.iter().map(|s| format!("{s:.2}")).collect();
    let _ = writeln!(
        out,
        "\nFailover: kill -9 of the leader, then the next successful acquire through a survivor, {} trials: \
         median {:.2} s, slowest {:.2} s (each: {}). Goal (median under 1.5 s): {}.",
        f.trials,
        f.median_seconds,
        f.max_seconds,
        each.join(", "),
        if f.median_seconds < 1.5 { "met" } else { "**not met**" }
    );
}

#[cfg(test)]
#[path = "compare_test.rs"]
mod tests;
