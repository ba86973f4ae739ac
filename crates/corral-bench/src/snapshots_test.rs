use super::*;

fn report(leases: usize, installed: bool) -> SnapshotsReport {
    let load = KeepaliveReport {
        target: "corral".into(),
        leases,
        granted: leases,
        ttl_seconds: 600.0,
        batch: 1000,
        grant_seconds: 8.4,
        seconds: 0.0,
        lost: 0,
        renewals: 0,
        renewals_per_second: 0.0,
        batch_p50_ms: 0.0,
        batch_p99_ms: 0.0,
        leader_cpu_cores: None,
        errors: 0,
        locks: leases,
        leader_rss_bytes_per_lease: Some(1000.0),
    };
    SnapshotsReport {
        target: "corral".into(),
        leases,
        load,
        snapshot_index: 20_003,
        snapshot_bytes: 3 << 20,
        build_seconds: 0.061,
        snapshot_call_seconds: 0.08,
        join_seconds: 1.234,
        join_installed_snapshot: installed,
        add_seconds: 1.5,
        restart_seconds: 2.0,
    }
}

#[test]
fn a_row_shows_each_measurement_in_its_unit() {
    let table = snapshots_markdown(&[report(10_000, true)]);
    let row = table.lines().nth(2).expect("a row");
    assert_eq!(
        row,
        "| 10000 | 8 s | 3.0 MiB | 0.06 s | 1.23 s | 1.50 s | 2.00 s |"
    );
    let header_cells = table.lines().next().expect("a header").matches('|').count();
    assert_eq!(row.matches('|').count(), header_cells);
}

#[test]
fn a_new_node_that_replayed_the_log_says_so() {
    let table = snapshots_markdown(&[report(10, false)]);
    assert!(table.contains("1.23 s (from the log)"), "{table}");
}

#[test]
fn a_report_round_trips_through_its_json_line() {
    let line = serde_json::to_string(&report(100, true)).expect("encodes");
    let back: SnapshotsReport = serde_json::from_str(&line).expect("decodes");
    assert_eq!(back.snapshot_bytes, 3 << 20);
    assert_eq!(back.load.locks, 100);
    assert!(back.join_installed_snapshot);
}
