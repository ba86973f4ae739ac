# Shortcuts for people who have `just`; the scripts work without it.

# Start the local 3-node cluster.
dev:
    ./deploy/dev.sh

# Run every test, as CI does.
test:
    ./deploy/test.sh

# Format and lint checks, as CI does.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The whole CI run.
ci:
    bash .ci/run
