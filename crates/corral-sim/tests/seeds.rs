//! The fixed seeds CI runs, on 3 and on 5 nodes. A failing seed prints its
//! violations and the end of its trace; `deploy/sim.sh SEED 1 --trace`
//! replays it whole.

use corral_sim::{run, Report, Scenario};

/// Seeds per cluster size: what CI can run in about a minute each.
const SEEDS: u64 = 40;

fn failures(nodes: u64, first_seed: u64) -> Vec<String> {
    let scenario = Scenario {
        nodes,
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
