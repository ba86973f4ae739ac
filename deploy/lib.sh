# Helpers shared by deploy/bench.sh and deploy/profile.sh: sourced, never
# run. Each takes what it needs as arguments, so that a script's own
# variables stay its own.

# The corral binary to run: $CORRAL when set, else the release build, which
# this builds first (after deploy/setup.sh installs what the build needs).
corral_binary() {
    if [ -n "${CORRAL:-}" ]; then
        echo "$CORRAL"
        return
    fi
    bash deploy/setup.sh >&2
    cargo build --release -p corral >&2
    echo "${CARGO_TARGET_DIR:-target}/release/corral"
}

# The node that leads, as the first node that answers `corral cluster
# status` at ENDPOINTS says; empty while there is none.
# Usage: corral_leader CORRAL ENDPOINTS
corral_leader() {
    "$1" --endpoints "$2" cluster status 2>/dev/null |
        sed -n 's/^node [0-9]* says: leader \([0-9]*\),.*/\1/p' | head -1
}

# Waits up to 20 s for a corral leader at ENDPOINTS and prints it; fails
# with a message if none was elected.
# Usage: wait_corral_leader CORRAL ENDPOINTS
wait_corral_leader() {
    local leader="" _
    for _ in $(seq 1 100); do
        leader=$(corral_leader "$1" "$2")
        if [ -n "$leader" ]; then
            echo "$leader"
            return 0
        fi
        sleep 0.2
    done
    echo "no corral leader at $2" >&2
    return 1
}

# The endpoints of nodes MEMBERS (printf PATTERN with the node number),
# the node LEADER last. Worker i talks to the (i mod N)-th endpoint, and a
# write sent to a follower takes one more round trip, to the leader and
# back. With the leader last, a 1-worker run goes through a follower, as two
# of every three requests of a client that does not know the leader do,
# and which node won the election does not decide the 1-worker row.
# Usage: leader_last LEADER PATTERN MEMBER...
leader_last() {
    local leader=$1 pattern=$2 list="" i
    shift 2
    for i in "$@"; do
        if [ "$i" != "$leader" ]; then list="$list${list:+,}$(printf "$pattern" "$i")"; fi
    done
    if [ -n "$leader" ]; then list="$list,$(printf "$pattern" "$leader")"; fi
    echo "$list"
}
