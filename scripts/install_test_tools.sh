#!/usr/bin/env bash
# Install the external exercisers that the interop suite drives through a real
# mount (tests/interop/test_exercisers.py):
#   - fsx (File System eXerciser, crates.io), built into target/tools with
#     `cargo install --locked --root target/tools`, so nothing global is assumed;
#   - fio (Debian package), installed with apt when missing.
# Safe to run repeatedly: does nothing when both are present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FSX_VERSION="0.3.2"
TOOLS="$ROOT/target/tools"

log() { printf 'install_test_tools: %s\n' "$*" >&2; }
have_cmd() { command -v "$1" >/dev/null 2>&1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if have_cmd sudo; then
        SUDO=(sudo)
    else
        log "not root and sudo is not available"
        exit 1
    fi
fi

# fio
if ! have_cmd fio; then
    log "installing fio"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends fio
fi
log "fio: $(fio --version)"

# fsx
if ! have_cmd cargo && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
fsx="$TOOLS/bin/fsx"
if [ ! -x "$fsx" ] || [ "$("$fsx" --version 2>/dev/null)" != "fsx $FSX_VERSION" ]; then
    log "building fsx $FSX_VERSION into $TOOLS"
    cargo install fsx --locked --version "=$FSX_VERSION" --root "$TOOLS" --force
fi
log "fsx: $("$fsx" --version)"
