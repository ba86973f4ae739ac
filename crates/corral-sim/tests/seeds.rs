//! The fixed seeds CI runs, on 3 and on 5 nodes. A failing seed prints its
//! violations and the end of its trace; `deploy/sim.sh SEED 1 --trace`
//! replays it whole.

use corral_sim::{run, Report, Scenario};

/// Seeds per cluster size: the two sizes run side by side in under a
/// minute of CI.
const SEEDS: u64 = 50;

/// Virtual time with faults in each run of CI.
const FAULTS_MS: u64 = 20_000;

fn failures(nodes: u64, first_seed: u64) -> Vec<String> {
    let scenario = Scenario {
        nodes,
        faults_ms: FAULTS_MS,
        ..Scenario::default()
    };
    let reports: Vec<Report> = (first_seed..first_seed + SEEDS)
        .map(|seed| run(seed, scenario))
        .collect();
    let grants: usize = reports.iter().map(|r| r.grants).sum();
    assert!(
        grants > SEEDS as usize * 50,
        "the clients made too little progress to test anything: {grants} grants"
    );
    reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let tail = r.trace[r.trace.len().saturating_sub(30)..].join("\n");
            format!(
                "seed {} on {nodes} nodes: {:?}\n{tail}",
                r.seed, r.violations
            )
        })
        .collect()
}

#[test]
fn three_nodes_keep_every_guarantee() {
    let failed = failures(3, 1);
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn five_nodes_keep_every_guarantee() {
    let failed = failures(5, 1_000_001);
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// Seeds 124 and 150 (3 nodes, 30 s of faults) trip openraft's own debug
/// assertion that a node's submitted log IO never goes back, on the leader
/// of a new term: seed 124 at 29.7 s, `expect submitted:T7-N2.3299 <
/// new_submitted:T7-N2.3298` (openraft 0.10.0-alpha.37,
/// `io_progress.rs:126`). Release builds skip the assertion and the runs
/// pass every check. Its shape matches openraft's open issue 2118 (a new
/// leader's `UpdateIOProgress` for its log tail). Run it when openraft is
/// upgraded: `cargo test -p corral-sim -- --ignored`.
#[test]
#[ignore = "openraft 0.10.0-alpha.37: submitted log IO goes back on a new leader"]
fn seed_124_a_new_leaders_log_io_never_goes_back() {
    let report = run(124, Scenario::default());
    assert!(report.passed(), "{:?}", report.violations);
}

/// Seeds 45 (3 nodes) and 1000013 (5 nodes), 20 s of faults, with snapshot
/// ids drawn from the seeded generator: a follower whose syncs lag has
/// entries written but not synced that it already counts as committed; the
/// leader, which had purged past the follower's last acked entry, sends a
/// snapshot at or below them, and openraft on the follower answers at once
/// ("no need to install"). The leader counts the follower's log matched
/// through the snapshot; the follower crashes, loses the unsynced entries
/// and then reports a conflict at that very index: openraft's debug
/// assertion `follower log reversion is not allowed` (seed 45: matching
/// T11-N3.725, conflict 725), and in release builds a leader that never
/// replicates to that follower again. A snapshot's answer now leaves only
/// once the follower holds its last log id durably
/// (`Replica::once_durable`). A seed's schedule shifts with any change to
/// the draws, so this guards the fix only as long as the schedules stay.
#[test]
fn seeds_45_and_1000013_a_snapshot_answer_never_outruns_the_followers_sync() {
    for (seed, nodes) in [(45, 3), (1_000_013, 5)] {
        let scenario = Scenario {
            nodes,
            faults_ms: FAULTS_MS,
            ..Scenario::default()
        };
        let report = run(seed, scenario);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}
