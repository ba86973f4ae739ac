#!/usr/bin/env bash
# Installs what building and testing corral needs beyond the Rust
# toolchain: libclang, which rocksdb's bindgen loads to generate the RocksDB
# bindings; and for the tests, headless Chromium with chromedriver (the
# status page's browser test), promtool (the alert rules' test) and
# systemd-analyze (the systemd unit's test).
# Safe to run again: it installs only what is missing.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "corral: cargo not found. Install the Rust toolchain first (https://rustup.rs)." >&2
    exit 1
fi

# libclang itself (libclang.so, libclang-14.so.1, ...), not libclang-cpp,
# which a fresh machine may have without it.
have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    local dir
    for dir in /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu; do
        compgen -G "$dir/libclang.so*" >/dev/null && return 0
        compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null && return 0
    done
    return 1
}

missing=()
have_libclang || missing+=(libclang-dev)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# systemd-analyze checks deploy/systemd/corral.service (tests/deploy.rs).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

if [ ${#missing[@]} -gt 0 ]; then
    install="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "corral: installing ${missing[*]}..." >&2
        bash -c "$install" >&2
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "corral: installing ${missing[*]} with sudo..." >&2
        sudo bash -c "$install" >&2
    else
        echo "corral: building and testing corral needs ${missing[*]}. Run this as root, then try again:" >&2
        echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi
