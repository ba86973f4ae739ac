#!/usr/bin/env bash
# Runs every test of corral: the state machine's unit and property tests,
# the storage conformance suite, and the integration tests, which start real
# 3-node clusters as separate processes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
if [ ! -d target/debug ]; then
    echo "corral: first build; compiling RocksDB from source takes about 9 minutes on 2 cores." >&2
fi
# Two test threads: each integration test runs three node processes, and
# the machine this is planned for has two cores.
cargo test --workspace -- --test-threads 2
