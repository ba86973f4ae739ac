#!/usr/bin/env bash
# Builds corral and starts a local 3-node cluster on 127.0.0.1:7101-7103,
# each node its own process, data and logs under data/dev. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
if [ ! -x target/debug/corral ]; then
    echo "corral: first build; compiling RocksDB from source takes about 9 minutes on 2 cores." >&2
fi
# The same build as the tests' (all targets of the workspace), so that
# RocksDB is compiled once for both.
cargo build --workspace --all-targets
exec target/debug/corral dev "$@"
