#!/usr/bin/env bash
# Measures corral against etcd on this machine, in one run, at the same
# durability (both fsync every acknowledged write on a majority): starts an
# etcd and a corral of NODES nodes each (3, or 5) on loopback, runs each workload against
# both with the same client code (`corral bench`), stops both, and writes
# a report with the machine, the versions and the ratio table. It never
# writes docs/benchmarks.md, which is kept by hand from these reports.
#
# Usage: deploy/bench.sh [SECONDS_PER_RUN] [ROUNDS]   (defaults 10 and 3: a
# warm-up, ROUNDS rounds of the three workloads the targets name, the two
# 8-worker workloads once, the three inside corral's leader and inside a
# follower with no client HTTP (`corral bench --inside`, which is why the
# corral nodes run with --test-faults), then a keepalive run of 100 000 leases, one of
# 1 000 000 leases each holding a lock, the lock table and its snapshots at
# 10k, 100k and 1M leases, and 10 failover trials: 15 to 20
# minutes in all, after the build). Each target must hold in every round.
#
# Environment: NODES=3|5 (default 3): the size of both clusters.
# PARTS=all|compare (default all): compare runs only the workloads against
# etcd (the rounds and the 8-worker runs) and the inside ones, not the other
# corral-only ones, whose clusters are their own or none. OUT: the file written (default
# docs/benchmarks-full-NODES-nodes.md, or docs/benchmarks-etcd-NODES-nodes.md
# with PARTS=compare).
# Installs etcd (Debian packages etcd-server and etcd-client, 3.4) when
# missing. CORRAL: a corral binary to use instead of building the release
# one. Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
secs="${1:-10}"
rounds="${2:-3}"
nodes="${NODES:-3}"
parts="${PARTS:-all}"
case "$nodes" in 3 | 5) ;; *) echo "bench: NODES is 3 or 5, not $nodes" >&2; exit 2 ;; esac
case "$parts" in all | compare) ;; *) echo "bench: PARTS is all or compare" >&2; exit 2 ;; esac
case "$parts" in all) report=full ;; *) report=etcd ;; esac
out="${OUT:-docs/benchmarks-$report-$nodes-nodes.md}"
members=$(seq 1 "$nodes")
corral=$(corral_binary)

if ! command -v etcd >/dev/null 2>&1; then
    install="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server etcd-client"
    if [ "$(id -u)" = 0 ]; then
        bash -c "$install" >&2
    else
        sudo bash -c "$install" >&2
    fi
fi
# The Debian package starts its own etcd on 2379/2380; this run uses other
# ports and does not touch it.

work="$PWD/target/bench-run"
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# The members of a cluster, from a printf pattern of the node number:
# "1=127.0.0.1:27201,2=...".
cluster_of() {
    local list="" i
    for i in $members; do list="$list${list:+,}$(printf "$1" "$i" "$i")"; done
    echo "$list"
}

# etcd: clients on 23791-2379N, peers on 23801-2380N.
etcd_cluster=$(cluster_of "e%s=http://127.0.0.1:2380%s")
for i in $members; do
    etcd --name "e$i" --data-dir "$work/etcd/e$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" \
        --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" \
        --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$etcd_cluster" --initial-cluster-state new \
        --logger zap --log-level warn >"$work/etcd-e$i.log" 2>&1 &
    pids+=($!)
done
etcd_endpoints=$(cluster_of "http://127.0.0.1:2379%s%.0s")

# corral: clients on 27101-2710N, peers on 27201-2720N.
corral_cluster=$(cluster_of "%s=127.0.0.1:2720%s")
for i in $members; do
    "$corral" server --node-id "$i" --listen "127.0.0.1:2710$i" \
        --peer-listen "127.0.0.1:2720$i" \
        --data-dir "$work/corral/n$i" --initial-cluster "$corral_cluster" --test-faults \
        >"$work/corral-n$i.log" 2>&1 &
    pids+=($!)
done
corral_endpoints=$(cluster_of "127.0.0.1:2710%s%.0s")

ready() {
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "bench: not ready: $*" >&2
    return 1
}
ready etcdctl --endpoints "$etcd_endpoints" endpoint health
ready "$corral" --endpoints "$corral_endpoints" cluster status

# Which node leads each cluster.
etcd_leader() {
    for i in $members; do
        etcdctl --endpoints "http://127.0.0.1:2379$i" endpoint status 2>/dev/null |
            awk -F', ' -v n="$i" '$5 == "true" {print n}'
    done | head -1
}
leaders() {
    echo "corral node $(corral_leader "$corral" "$corral_endpoints"), etcd node $(etcd_leader)"
}
# A cluster can answer before it has elected a leader (five nodes take
# longer): wait for both, so that the leader really goes last.
for _ in $(seq 1 100); do
    if [ -n "$(corral_leader "$corral" "$corral_endpoints")" ] && [ -n "$(etcd_leader)" ]; then
        break
    fi
    sleep 0.2
done
# Each cluster's endpoints with its leader last (see leader_last in
# deploy/lib.sh), the same rule for both: at 32 workers each leader then
# serves 10 workers directly (6 of 5 nodes). $members unquoted: one
# argument per node.
# shellcheck disable=SC2086
corral_endpoints=$(leader_last "$(corral_leader "$corral" "$corral_endpoints")" "127.0.0.1:2710%s" $members)
# shellcheck disable=SC2086
etcd_endpoints=$(leader_last "$(etcd_leader)" "http://127.0.0.1:2379%s" $members)
leaders_at_start=$(leaders)

results="$work/results.jsonl"
run() {
    local workload=$1 workers=$2
    echo "bench: $workload, $workers workers, ${secs}s each: corral, then etcd" >&2
    "$corral" --endpoints "$corral_endpoints" --json bench \
        --workload "$workload" --workers "$workers" --duration "${secs}s" >>"$results"
    "$corral" --json bench --etcd "$etcd_endpoints" \
        --workload "$workload" --workers "$workers" --duration "${secs}s" >>"$results"
}
# Warm-up, not recorded: both clusters start cold (empty memtables, new
# connections, first leases), and the first measured run should not pay
# for that alone.
echo "bench: warm-up, 3s each" >&2
"$corral" --endpoints "$corral_endpoints" bench --workload uncontended --workers 32 --duration 3s >/dev/null
"$corral" bench --etcd "$etcd_endpoints" --workload uncontended --workers 32 --duration 3s >/dev/null
for round in $(seq 1 "$rounds"); do
    echo "bench: round $round of $rounds" >&2
    run uncontended 32
    run uncontended 1
    run contended 32
done
run uncontended 8
run contended 8
leaders_at_end=$(leaders)
# The same three workloads inside corral's leader and inside a follower
# (`POST /test/load`, which --test-faults opens): no client HTTP, so the
# difference to the rows above is what HTTP and the client cost.
inside_leader="127.0.0.1:2710$(corral_leader "$corral" "$corral_endpoints")"
inside_follower="${corral_endpoints%%,*}"
for node in "$inside_leader" "$inside_follower"; do
    for pair in "uncontended 32" "uncontended 1" "contended 32"; do
        read -r workload workers <<<"$pair"
        echo "bench: $workload, $workers workers, ${secs}s, inside corral node $node" >&2
        "$corral" --endpoints "$node" --json bench --inside \
            --workload "$workload" --workers "$workers" --duration "${secs}s" >>"$results"
    done
done
if [ "$parts" = all ]; then
    echo "bench: queue, push/claim/ack by 8 workers on one queue, ${secs}s (corral)" >&2
    "$corral" --endpoints "$corral_endpoints" --json bench --workload queue \
        --workers 8 --duration "${secs}s" >>"$results"
    echo "bench: keepalive, 100000 leases of ttl 10s, kept alive 30s (corral)" >&2
    "$corral" --endpoints "$corral_endpoints" --json bench --workload keepalive \
        --leases 100000 --ttl 10s --duration 30s >>"$results" || true
    # The working set: a million leases, each holding a lock of its own
    # (about 2 minutes to fill, 1 to 2 kept alive).
    echo "bench: keepalive, 1000000 leases of ttl 120s each with a lock, kept alive 60s (corral)" >&2
    "$corral" --endpoints "$corral_endpoints" --json bench --workload keepalive --locks \
        --prefix working-set/ --leases 1000000 --ttl 120s --duration 60s >>"$results" || true
    for leases in 10000 100000 1000000; do
        echo "bench: lock table of $leases leases, one lock each (in one process)" >&2
        "$corral" --json bench --workload table --leases "$leases" >>"$results"
    done
    # Snapshots at the same sizes, each on a cluster of its own (3 nodes, then
    # a fourth that joins), started and stopped by the run, one at a time:
    # about 10 s at 10k, 30 s at 100k, and some minutes at 1M (four of them to
    # load the leases). The largest is 999 000: the cluster holds at most
    # 1 000 000 leases, and the run needs one for its marker and room for a
    # grant whose answer was lost.
    for leases in 10000 100000 999000; do
        echo "bench: snapshots of $leases leases, one lock each (corral, its own cluster)" >&2
        "$corral" --json bench --workload snapshots --leases "$leases" >>"$results"
    done
    echo "bench: failover, 10 kills of the leader (corral, its own cluster)" >&2
    "$corral" --json bench --workload failover --trials 10 >>"$results"
fi

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
{
    echo "# corral against etcd, $nodes nodes: a report of deploy/bench.sh"
    echo
    echo "Written by \`deploy/bench.sh\` on $(date -u +%Y-%m-%d). Both clusters ran at once"
    echo "on this machine, $nodes nodes each on loopback, data on the same disk; each"
    echo "workload ran ${secs} s against corral, then ${secs} s against etcd (the"
    echo "three the targets name in ${rounds} rounds; each target must hold in every"
    echo "round), through"
    echo "the same client code (\`corral bench\`, HTTP/1.1 keep-alive, worker i on"
    echo "endpoint i mod $nodes with the leader's endpoint last, one lease per worker,"
    echo "renewed at ttl/3). Both fsync every"
    echo "acknowledged write on a majority. Compare the ratios, not absolute"
    echo "numbers across runs."
    echo "The rows whose target is \`corral inside\` ran the same cycles inside one"
    echo "corral node (\`corral bench --inside\`, \`POST /test/load\`), with no client"
    echo "HTTP: what raft, the log and the state machine do on their own."
    if [ "$parts" = all ]; then
        echo "The \`queue\` row is corral alone (etcd has no"
        echo "queue): a cycle is a push, a claim and an ack on one work queue; its"
        echo "acquire columns are the claim, its release columns the ack."
    fi
    echo
    echo "- Machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
    echo "- corral: $(git rev-parse --short HEAD), release build"
    echo "- etcd: $(etcd --version | head -1 | sed 's/etcd Version: //'), JSON gateway (\`/v3/lease/grant\`, \`/v3/lock/lock\`, \`/v3/lock/unlock\`)"
    echo "- Leaders: $leaders_at_start at the start; $leaders_at_end after the 8-worker runs."
    echo "  Each cluster's endpoints were given with its leader last (corral"
    echo "  \`$corral_endpoints\`, etcd \`$etcd_endpoints\`), so that on both the"
    echo "  1-worker runs went through a follower, which forwards to the leader."
    echo
    "$corral" bench-report "$results"
} >"$out.new"
mv "$out.new" "$out"
cp "$results" "target/bench-results-$nodes-nodes.jsonl"
echo "bench: wrote $out (raw reports in target/bench-results-$nodes-nodes.jsonl)" >&2
