use super::*;

#[test]
fn percentiles_pick_the_nearest_rank() {
    let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(percentile_ms(&mut samples, 0.50), 51.0);
    assert_eq!(percentile_ms(&mut samples, 0.99), 99.0);
    assert_eq!(percentile_ms(&mut [], 0.5), 0.0);
}

#[test]
fn a_summary_counts_cycles_by_releases() {
    let samples = CycleSamples {
        acquire: vec![Duration::from_millis(2); 10],
        release: vec![Duration::from_millis(1); 8],
        errors: 2,
    };
    let summary = samples.summary(4, Duration::from_secs(2));
    assert_eq!(summary.workers, 4);
    assert_eq!(summary.cycles, 8);
    assert_eq!(summary.cycles_per_second, 4.0);
    assert_eq!(summary.acquire_p50_ms, 2.0);
    assert_eq!(summary.release_p99_ms, 1.0);
    assert_eq!(summary.errors, 2);
}

#[test]
fn merged_samples_keep_every_worker() {
    let mut all = CycleSamples::default();
    for worker in 1..=3u64 {
        all.merge(CycleSamples {
            acquire: vec![Duration::from_millis(worker)],
            release: vec![Duration::from_millis(worker)],
            errors: 1,
        });
    }
    let summary = all.summary(3, Duration::ZERO);
    assert_eq!(summary.cycles, 3);
    assert_eq!(summary.errors, 3);
    assert_eq!(summary.acquire_p50_ms, 2.0);
    // No time elapsed: no rate, rather than a division by zero.
    assert_eq!(summary.cycles_per_second, 0.0);
}

#[test]
fn a_load_report_is_flat_json_and_reads_back() {
    let report = LoadReport {
        on_leader: true,
        cycles: CycleSummary {
            workers: 32,
            seconds: 8.0,
            cycles: 1000,
            cycles_per_second: 125.0,
            acquire_p50_ms: 0.5,
            ..CycleSummary::default()
        },
    };
    let json = serde_json::to_value(&report).unwrap();
    // The fields the docs' example shows sit at the top, not under
    // `cycles`.
    assert_eq!(json["on_leader"], true);
    assert_eq!(json["cycles_per_second"], 125.0);
    assert_eq!(json["cycles"], 1000);
    let back: LoadReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn a_load_request_is_uncontended_unless_it_says() {
    let request: LoadRequest =
        serde_json::from_str(r#"{"workers": 4, "duration_ms": 1000}"#).unwrap();
    assert!(!request.contended);
}
