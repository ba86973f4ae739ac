//! Side-by-side tables of corral and etcd runs, with the ratios the
//! performance targets are stated in.

use std::fmt::Write;

use crate::keepalive::KeepaliveReport;
use crate::report::{median, FailoverReport, Report};
use crate::workload::Workload;

/// A performance target: a ratio corral/etcd for one workload.
struct Goal {
    workload: Workload,
    workers: usize,
    what: &'static str,
    /// The ratio from a corral and an etcd report.
    ratio: fn(&Report, &Report) -> f64,
    /// Whether the ratio meets the target.
    met: fn(f64) -> bool,
    target: &'static str,
}

const GOALS: [Goal; 4] = [
    Goal {
        workload: Workload::Uncontended,
        workers: 32,
        what: "cycles/s",
        ratio: |c, e| c.cycles_per_second / e.cycles_per_second,
        met: |r| r >= 3.0,
        target: ">= 3x",
    },
    Goal {
        workload: Workload::Uncontended,
        workers: 32,
        what: "acquire p99",
        ratio: |c, e| c.acquire_p99_ms / e.acquire_p99_ms,
        met: |r| r <= 0.5,
        target: "<= 0.5x",
    },
    Goal {
        workload: Workload::Uncontended,
        workers: 1,
        what: "acquire p50",
        ratio: |c, e| c.acquire_p50_ms / e.acquire_p50_ms,
        met: |r| r <= 0.6,
        target: "<= 0.6x",
    },
    Goal {
        workload: Workload::Contended,
        workers: 32,
        what: "hand-offs/s",
        ratio: |c, e| c.cycles_per_second / e.cycles_per_second,
        met: |r| r >= 3.0,
        target: ">= 3x",
    },
];

/// The runs of one workload against one target, in the order they ran.
fn runs<'a>(
    reports: &'a [Report],
    target: &'a str,
    workload: Workload,
    workers: usize,
) -> impl Iterator<Item = &'a Report> + 'a {
    reports
        .iter()
        .filter(move |r| r.target == target && r.workload == workload && r.workers == workers)
}

fn workload_name(workload: Workload) -> &'static str {
    match workload {
        Workload::Uncontended => "uncontended",
        Workload::Contended => "contended",
    }
}

/// Markdown: every run's numbers, then each target with the median of the
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
            r.workers,
            r.target,
            r.cycles_per_second,
            r.acquire_p50_ms,
            r.acquire_p99_ms,
            r.release_p50_ms,
            r.release_p99_ms,
            r.errors
        );
    }
}

/// One row per goal: the median ratio of its rounds, each round's ratio,
/// and whether the median meets it.
fn goals_table(out: &mut String, reports: &[Report]) {
    out.push_str(
        "\n| target | corral / etcd (median) | each round | goal | met |\n|---|---:|---|---|---|\n",
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
        let Some(ratio) = median(&ratios) else {
            let _ = writeln!(out, "| {name} | not run | - | {} | - |", goal.target);
            continue;
        };
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
        let met = if (goal.met)(ratio) { "yes" } else { "**no**" };
        let _ = writeln!(
            out,
            "| {name} | {ratio:.2}x | {} | {} | {met} |",
            each.join(", "),
            goal.target
        );
    }
}

/// A keepalive run in a sentence, judged against its goal: none lost, the
/// leader under one core.
fn keepalive_paragraph(out: &mut String, k: &KeepaliveReport) {
    let cores = k
        .leader_cpu_cores
        .map_or("not measured".to_string(), |c| format!("{c:.2}"));
    let met = k.granted == k.leases && k.lost == 0 && k.leader_cpu_cores.is_some_and(|c| c < 1.0);
    let _ = writeln!(
        out,
        "\nKeepalive: {} leases of ttl {:.0} s granted in {:.0} s, then kept alive {:.0} s in batches of {}: \
         {} lost, {:.0} renewals/s, batch call p50/p99 {:.1}/{:.1} ms, leader CPU {} cores, {} errors. \
         Goal (none lost, leader under one core): {}.",
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
mod tests {
    use super::*;

    fn report(
        target: &str,
        workload: Workload,
        workers: usize,
        cps: f64,
        p50: f64,
        p99: f64,
    ) -> Report {
        Report {
            target: target.into(),
            workload,
            workers,
            seconds: 10.0,
            cycles: (cps * 10.0) as usize,
            cycles_per_second: cps,
            acquire_p50_ms: p50,
            acquire_p99_ms: p99,
            release_p50_ms: p50,
            release_p99_ms: p99,
            errors: 0,
        }
    }

    #[test]
    fn ratios_are_corral_over_etcd_and_judged_against_the_goals() {
        let reports = vec![
            report("corral", Workload::Uncontended, 32, 3000.0, 5.0, 10.0),
            report("etcd", Workload::Uncontended, 32, 1000.0, 10.0, 40.0),
            report("corral", Workload::Uncontended, 1, 400.0, 2.0, 3.0),
            report("etcd", Workload::Uncontended, 1, 300.0, 2.5, 4.0),
        ];
        let md = markdown(
            &reports,
            &[],
            &[FailoverReport::of("corral", vec![1.2, 1.0, 1.4])],
        );
        assert!(
            md.contains("| uncontended, 32 workers: cycles/s | 3.00x | 3.00x | >= 3x | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| uncontended, 32 workers: acquire p99 | 0.25x | 0.25x | <= 0.5x | yes |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| uncontended, 1 worker: acquire p50 | 0.80x | 0.80x | <= 0.6x | **no** |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| contended, 32 workers: hand-offs/s | not run | - |"),
            "{md}"
        );
        assert!(
            md.contains("| uncontended | 32 | corral | 3000 | 5.00 / 10.00 |"),
            "{md}"
        );
        assert!(md.contains("median 1.20 s, slowest 1.40 s"), "{md}");
    }

    #[test]
    fn rounds_pair_in_order_and_the_goal_is_judged_on_the_median_ratio() {
        // Rounds ran corral then etcd; the second round was a slow one for
        // corral. The mean ratio (2.93x) would miss the goal; the median
        // (3.20x) meets it, and every round's ratio is shown.
        let rounds = [(3200.0, 1000.0), (2100.0, 1000.0), (3500.0, 1000.0)];
        let reports: Vec<Report> = rounds
            .iter()
            .flat_map(|&(corral, etcd)| {
                [
                    report("corral", Workload::Contended, 32, corral, 50.0, 90.0),
                    report("etcd", Workload::Contended, 32, etcd, 150.0, 300.0),
                ]
            })
            .collect();
        let md = markdown(&reports, &[], &[]);
        assert!(
            md.contains(
                "| contended, 32 workers: hand-offs/s | 3.20x | 3.20x, 2.10x, 3.50x | >= 3x | yes |"
            ),
            "{md}"
        );
        // A corral run without its etcd twin is listed but not paired.
        let mut unpaired = reports.clone();
        unpaired.push(report("corral", Workload::Contended, 32, 9000.0, 1.0, 2.0));
        assert_eq!(markdown(&unpaired, &[], &[]).matches("9000").count(), 1);
        assert!(markdown(&unpaired, &[], &[]).contains("| 3.20x, 2.10x, 3.50x |"));
    }
}
