#!/usr/bin/env bash
# Where the time of corral's HTTP bench goes: starts a 3-node corral on
# loopback, runs one bench workload against it (worker i on endpoint i mod
# 3, the leader last, as deploy/bench.sh does), and prints the CPU seconds
# each node and the bench client used during the run. With perf installed,
# also the syscalls and context switches of each, and with PERF=1 a profile
# of a follower with DWARF call graphs (target/profile-run/follower.data;
# read it with `perf report -i ... --children`).
#
# Usage: deploy/profile.sh [SECONDS]   (default 8)
# Environment: WORKLOAD=uncontended|contended (default uncontended),
# WORKERS (default 32), PERF=1. CORRAL: a corral binary to use instead of
# building the release one. Loopback only; what it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
secs="${1:-8}"
workload="${WORKLOAD:-uncontended}"
workers="${WORKERS:-32}"
corral=$(corral_binary)
work="$PWD/target/profile-run"
rm -rf "$work"
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT

cluster="1=127.0.0.1:27221,2=127.0.0.1:27222,3=127.0.0.1:27223"
for i in 1 2 3; do
    "$corral" server --node-id "$i" --listen "127.0.0.1:2712$i" \
        --peer-listen "127.0.0.1:2722$i" --data-dir "$work/n$i" \
        --initial-cluster "$cluster" >"$work/n$i.log" 2>&1 &
    pids+=($!)
done
all="127.0.0.1:27121,127.0.0.1:27122,127.0.0.1:27123"
leader=$(wait_corral_leader "$corral" "$all")
endpoints=$(leader_last "$leader" "127.0.0.1:2712%s" 1 2 3)
# The follower profiled: the first of the nodes that do not lead.
follower=1
if [ "$leader" = 1 ]; then follower=2; fi

# A warm-up, then the measured run; the counters start once it has begun.
"$corral" --endpoints "$endpoints" bench --workload uncontended --workers 32 --duration 3s >/dev/null
"$corral" --endpoints "$endpoints" bench --workload "$workload" --workers "$workers" \
    --duration "${secs}s" >"$work/bench.txt" &
bench=$!
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
measured=$((secs > 3 ? secs - 2 : 1))
names=("node 1" "node 2" "node 3" "bench client")
watched=("${pids[@]}" "$bench")
before=()
for p in "${watched[@]}"; do before+=("$(ticks "$p")"); done
if command -v perf >/dev/null 2>&1; then
    for k in "${!watched[@]}"; do
        perf stat -x, -e raw_syscalls:sys_enter -e context-switches -p "${watched[$k]}" \
            -o "$work/stat-$k.csv" -- sleep "$measured" >/dev/null 2>&1 &
    done
    if [ "${PERF:-0}" = 1 ]; then
        perf record -F 299 --call-graph dwarf,16384 -p "${pids[$((follower - 1))]}" \
            -o "$work/follower.data" -- sleep "$measured" >/dev/null 2>&1 &
    fi
fi
sleep "$measured"
used=()
for k in "${!watched[@]}"; do used+=($(( $(ticks "${watched[$k]}") - ${before[$k]} ))); done
wait "$bench"
sleep 1
# The run's cycles per second (the table's sixth column), for CPU per cycle.
rate=$(awk 'END {print $6}' "$work/bench.txt")
echo "leader: node $leader; $workload, $workers workers; counted over ${measured}s of the run"
for k in "${!watched[@]}"; do
    awk -v t="${used[$k]}" -v hz="$hz" -v r="$rate" -v s="$measured" -v n="${names[$k]}" \
        'BEGIN {printf "%s: %.2f CPU-s, %.0f us per cycle\n", n, t / hz, t / hz / (r * s) * 1e6}'
done
for k in "${!watched[@]}"; do
    [ -f "$work/stat-$k.csv" ] || continue
    counts=$(awk -F, '$3 ~ /sys_enter|context-switches/ {printf "%s %s  ", $1, $3}' "$work/stat-$k.csv")
    echo "${names[$k]}: $counts"
done
cat "$work/bench.txt"
