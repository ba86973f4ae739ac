#!/usr/bin/env bash
# Runs seeds of the deterministic simulation (crates/corral-sim), optimized:
#   deploy/sim.sh FIRST_SEED COUNT [--nodes 5] [--faults-ms 30000] [--trace]
# Prints runs per second; for a failure, its seed, what broke and the end
# of its trace. `deploy/sim.sh SEED 1 --trace` replays one seed whole.
set -euo pipefail
cd "$(dirname "$0")/.."
# Optimized, without the shipped binary's whole-program link, which would
# only make the build slower.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cargo run --quiet --release -p corral-sim --bin corral-sim -- "$@"
