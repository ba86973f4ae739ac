use super::*;

#[test]
fn percentiles_pick_the_nearest_rank() {
    let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(percentile_ms(&mut samples, 0.50), 51.0);
    assert_eq!(percentile_ms(&mut samples, 0.99), 99.0);
    assert_eq!(percentile_ms(&mut [], 0.5), 0.0);
}

#[test]
fn a_report_counts_cycles_by_releases() {
    let samples = Samples {
        acquire: vec![Duration::from_millis(2); 10],
        release: vec![Duration::from_millis(1); 8],
        errors: 2,
    };
    let report = samples.report("corral", Workload::Contended, 4, Duration::from_secs(2));
    assert_eq!(report.cycles, 8);
    assert_eq!(report.cycles_per_second, 4.0);
    assert_eq!(report.acquire_p50_ms, 2.0);
    assert_eq!(report.errors, 2);
}
