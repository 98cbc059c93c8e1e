#!/usr/bin/env bash
# Install what building zarrfs and running its tests needs on Debian 12:
# fuse3 (fusermount3, mount.fuse3), libfuse3-dev, pkg-config, build-essential
# (gcc, for the C example), attr (getfattr), r-base-core (Rscript, for the R
# example), a Python 3 with venv support, and /dev/fuse. Rust must already be installed (cargo on
# PATH or in ~/.cargo/bin). Safe to run repeatedly: apt is skipped entirely
# when nothing is missing.
set -euo pipefail

log() { printf 'install_deps: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        log "not root and sudo is not available"
        exit 1
    fi
fi

have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Same interpreter choice as scripts/test.sh: python3.11 preferred.
pick_python() {
    local p
    for p in python3.11 python3; do
        if have_cmd "$p"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

missing=()
have_cmd fusermount3 || missing+=(fuse3)
have_cmd pkg-config || missing+=(pkg-config)
if ! { have_cmd cc && have_cmd c++ && have_cmd make; }; then
    missing+=(build-essential)
fi
have_cmd getfattr || missing+=(attr)
have_cmd Rscript || missing+=(r-base-core)
if have_cmd dpkg-query && ! have_pkg libfuse3-dev; then
    missing+=(libfuse3-dev)
fi
if py="$(pick_python)"; then
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
        # Debian names the versioned venv package after the interpreter.
        ver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        missing+=("python${ver}-venv")
    fi
else
    missing+=(python3 python3-venv)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "system packages present"
fi

# /dev/fuse
if [ ! -c /dev/fuse ]; then
    "${SUDO[@]}" modprobe fuse >/dev/null 2>&1 || true
fi
if [ ! -c /dev/fuse ]; then
    log "creating /dev/fuse"
    "${SUDO[@]}" mknod -m 0666 /dev/fuse c 10 229
fi
if [ ! -c /dev/fuse ]; then
    log "/dev/fuse is not available"
    exit 1
fi

# Rust: use the toolchain that is already installed.
if ! have_cmd cargo && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
if ! have_cmd cargo; then
    log "cargo not found: install a Rust toolchain (cargo on PATH or in ~/.cargo/bin)"
    exit 1
fi
log "cargo: $(cargo --version)"
