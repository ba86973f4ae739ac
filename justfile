# Shortcuts for people who have `just`; the scripts work without it.

# Start the local 3-node cluster.
dev:
    ./deploy/dev.sh

# Run every test, as CI does.
test:
    ./deploy/test.sh

# Format, lint and doc-link checks, as CI does.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Failure tests with a seed, for at least MINUTES each (3 and 5 nodes).
chaos SEED MINUTES:
    ./deploy/chaos.sh {{SEED}} {{MINUTES}}

# Seeds FIRST.. of the deterministic simulation, COUNT of them, optimized.
sim FIRST COUNT:
    ./deploy/sim.sh {{FIRST}} {{COUNT}}

# corral against etcd on this machine; writes docs/benchmarks.md.
bench SECONDS="10":
    ./deploy/bench.sh {{SECONDS}}

# The whole CI run.
ci:
    bash .ci/run
