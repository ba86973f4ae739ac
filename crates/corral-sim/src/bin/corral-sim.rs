//! `corral-sim FIRST_SEED COUNT [--nodes N] [--faults-ms MS] [--trace]`: runs seeds
//! FIRST_SEED.. of the simulation and prints runs per second; for a
//! failure, its seed, its violations and the end of its trace. Exits 1 if
//! any seed failed.

use std::time::Instant;

use corral_sim::{run, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let flag = |name: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1)?.parse().ok()
    };
    let first = number(0, 1);
    let count = number(1, 100);
    let mut scenario = Scenario::default();
    scenario.nodes = flag("--nodes").unwrap_or(scenario.nodes);
    scenario.faults_ms = flag("--faults-ms").unwrap_or(scenario.faults_ms);
    let started = Instant::now();
    let mut failed = Vec::new();
    let show_trace = args.iter().any(|a| a == "--trace");
    let mut grants = 0;
    for seed in first..first + count {
        let report = run(seed, scenario);
        grants += report.grants;
        if show_trace {
            println!("seed {seed}: trace hash {:016x}", report.trace_hash);
            for line in &report.trace {
                println!("  {line}");
            }
        }
        if !report.passed() {
            println!("seed {seed} FAILED:");
            for violation in &report.violations {
                println!("  {violation}");
            }
            println!("  last events of the trace:");
            let tail = report.trace.len().saturating_sub(40);
            for line in &report.trace[tail..] {
                println!("    {line}");
            }
            failed.push(seed);
        }
        let done = seed - first + 1;
        if done % 1000 == 0 {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!("... {done} runs, {} failed, {rate:.1} runs/s", failed.len());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} runs ({} nodes, {} ms of faults each, {grants} grants) in {secs:.1} s: {:.1} runs/s; {} failed {failed:?}",
        scenario.nodes,
        scenario.faults_ms,
        count as f64 / secs,
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
