#!/usr/bin/env bash
# Runs the failure tests (a 3-node, then a 5-node cluster) with a given
# seed, each for at least the given minutes, and prints their summaries.
# Usage: deploy/chaos.sh SEED MINUTES
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: deploy/chaos.sh SEED MINUTES" >&2
    exit 2
fi
bash deploy/setup.sh
CORRAL_CHAOS_SEED="$1" CORRAL_CHAOS_SECS="$(($2 * 60))" \
    cargo test -p corral --test chaos -- --nocapture --test-threads 1
