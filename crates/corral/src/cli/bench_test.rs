use super::*;

const KEEPALIVE: &str = r#"{"target":"corral","leases":100,"granted":100,"ttl_seconds":600.0,"batch":1000,"grant_seconds":1.0,"seconds":0.0,"lost":0,"renewals":0,"renewals_per_second":0.0,"batch_p50_ms":0.0,"batch_p99_ms":0.0,"leader_cpu_cores":null,"errors":0,"locks":100,"leader_rss_bytes_per_lease":null}"#;

const TABLE: &str = r#"{"leases":100,"rss_bytes_per_lease":900.0,"apply_seconds":0.1,"snapshot_bytes":50000,"encode_seconds":0.01,"restore_seconds":0.01}"#;

const FAILOVER: &str =
    r#"{"target":"corral","trials":1,"seconds":[1.1],"median_seconds":1.1,"max_seconds":1.1}"#;

/// A snapshots report: a keepalive report inside, and a table's
/// `snapshot_bytes` beside.
fn snapshots_line() -> String {
    format!(
        r#"{{"target":"corral","leases":100,"load":{KEEPALIVE},"snapshot_index":203,"snapshot_bytes":60000,"build_seconds":0.01,"snapshot_call_seconds":0.03,"join_seconds":0.9,"join_installed_snapshot":true,"add_seconds":1.2,"restart_seconds":0.7}}"#
    )
}

#[test]
fn each_kind_of_report_is_told_by_its_own_fields() {
    let text = [KEEPALIVE, "", TABLE, FAILOVER, &snapshots_line()].join("\n");
    let reports = parse_reports(&text).expect("parsed");
    assert_eq!(reports.keepalives.len(), 1);
    assert_eq!(reports.tables.len(), 1);
    assert_eq!(reports.failovers.len(), 1);
    assert_eq!(reports.snapshots.len(), 1);
    assert!(reports.runs.is_empty());
    let snapshots = &reports.snapshots[0];
    assert_eq!(snapshots.snapshot_bytes, 60_000);
    assert_eq!(snapshots.load.locks, 100);
    assert_eq!(snapshots.restart_seconds, 0.7);
}

#[test]
fn a_line_that_is_no_report_is_refused() {
    assert!(parse_reports("{\"leases\": \"many\"}").is_err());
    assert!(parse_reports("not json").is_err());
}
