//! A seed replays the same run: two runs of it give the same trace.

use corral_sim::{run, Scenario};

#[test]
fn a_seed_replays_bit_for_bit() {
    let scenario = Scenario {
        faults_ms: 3_000,
        ..Scenario::default()
    };
    let first = run(2, scenario);
    let second = run(2, scenario);
    let diverge = first
        .trace
        .iter()
        .zip(&second.trace)
        .position(|(a, b)| a != b);
    assert_eq!(diverge, None, "the runs diverge at line {diverge:?}");
    assert_eq!(first.trace_hash, second.trace_hash);
}
