use super::*;

#[test]
fn endpoints_become_base_urls() {
    assert_eq!(base_url("127.0.0.1:7101"), "http://127.0.0.1:7101");
    assert_eq!(base_url("http://h:1/"), "http://h:1");
    assert_eq!(base_url(" https://h:2 "), "https://h:2");
}

#[test]
fn a_metric_is_read_by_its_whole_name() {
    let text = "# TYPE corral_raft_snapshot_build_seconds histogram\n\
                corral_raft_snapshot_build_seconds_sum 1.5\n\
                corral_raft_snapshot_build_seconds_count 2\n\
                corral_raft_snapshot_bytes 6400000\n\
                corral_held{kind=\"lock\"} 3\n\
                # EOF\n";
    let value = |name| metric_value(text, name);
    assert_eq!(value("corral_raft_snapshot_build_seconds_sum"), Some(1.5));
    assert_eq!(value("corral_raft_snapshot_build_seconds_count"), Some(2.0));
    assert_eq!(value("corral_raft_snapshot_bytes"), Some(6_400_000.0));
    assert_eq!(value("corral_raft_snapshot"), None);
    assert_eq!(
        value("corral_held"),
        None,
        "a labelled sample needs its labels"
    );
}
