use super::*;
use corral_api::CycleSummary;

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
        summary: CycleSummary {
            workers,
            seconds: 10.0,
            cycles: (cps * 10.0) as usize,
            cycles_per_second: cps,
            acquire_p50_ms: p50,
            acquire_p99_ms: p99,
            release_p50_ms: p50,
            release_p99_ms: p99,
            errors: 0,
        },
    }
}

/// Rounds of a corral run then an etcd run, `make` given the target and
/// its value of each pair.
fn rounds_of(pairs: &[(f64, f64)], make: impl Fn(&str, f64) -> Report) -> Vec<Report> {
    pairs
        .iter()
        .flat_map(|&(corral, etcd)| [make("corral", corral), make("etcd", etcd)])
        .collect()
}

#[test]
fn ratios_are_corral_over_etcd_and_judged_against_the_goals() {
    let reports = vec![
        report("corral", Workload::Uncontended, 32, 4000.0, 5.0, 10.0),
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
        md.contains("| uncontended, 32 workers: cycles/s | 4.00x | 4.00x | >= 4x | yes |"),
        "{md}"
    );
    assert!(
        md.contains("| uncontended, 32 workers: acquire p99 | 0.25x | 0.25x | <= 0.5x | yes |"),
        "{md}"
    );
    assert!(
        md.contains("| uncontended, 1 worker: acquire p50 | 0.80x | 0.80x | <= 0.6x | **no** |"),
        "{md}"
    );
    assert!(
        md.contains("| contended, 32 workers: hand-offs/s | not run | - |"),
        "{md}"
    );
    assert!(
        md.contains("| uncontended | 32 | corral | 4000 | 5.00 / 10.00 |"),
        "{md}"
    );
    assert!(md.contains("median 1.20 s, slowest 1.40 s"), "{md}");
}

#[test]
fn rounds_pair_in_order_and_every_round_must_meet_the_goal() {
    // Rounds ran corral then etcd; the second round was a slow one for
    // corral. Its median (4.20x) would meet the goal; the worst round
    // (3.10x) does not, so the goal is not met, and every round's ratio
    // is shown.
    let rounds = [(4200.0, 1000.0), (3100.0, 1000.0), (4500.0, 1000.0)];
    let reports = rounds_of(&rounds, |target, cps| {
        report(target, Workload::Contended, 32, cps, 50.0, 90.0)
    });
    let md = markdown(&reports, &[], &[]);
    assert!(
        md.contains(
            "| contended, 32 workers: hand-offs/s | 3.10x | 4.20x, 3.10x, 4.50x | >= 4x | **no** |"
        ),
        "{md}"
    );
    // A corral run without its etcd twin is listed but not paired.
    let mut unpaired = reports.clone();
    unpaired.push(report("corral", Workload::Contended, 32, 9000.0, 1.0, 2.0));
    assert_eq!(markdown(&unpaired, &[], &[]).matches("9000").count(), 1);
    assert!(markdown(&unpaired, &[], &[]).contains("| 4.20x, 3.10x, 4.50x |"));
}

#[test]
fn for_a_latency_the_worst_round_is_the_highest_ratio() {
    let rounds = [(0.50, 1.0), (0.58, 1.0), (0.55, 1.0)];
    let reports = rounds_of(&rounds, |target, p50| {
        report(target, Workload::Uncontended, 1, 700.0, p50, 2.0)
    });
    let md = markdown(&reports, &[], &[]);
    assert!(
        md.contains(
            "| uncontended, 1 worker: acquire p50 | 0.58x | 0.50x, 0.58x, 0.55x | <= 0.6x | yes |"
        ),
        "{md}"
    );
}
