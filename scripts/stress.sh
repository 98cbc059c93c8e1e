#!/usr/bin/env bash
# Runs the stress tests of tests/stress.rs (release build) for longer than `cargo test`
# does: 8 readers and 2 writers over v2, v3 and sharded arrays and every view for SECONDS,
# every read checked against a shadow copy under a 10 s watchdog, with the default mount
# options and then with -o kernel_cache; and a crash loop of KILLS daemons killed during
# write-back, every fsynced write and every chunk checked after each remount.
#
#   bash scripts/stress.sh            # 60 s per mode, 20 kills
#   bash scripts/stress.sh 600 100
# Must run as root (or with /dev/fuse and fusermount3 usable).
set -euo pipefail

SECONDS_PER_MODE="${1:-60}"
KILLS="${2:-20}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi

run() {
    cargo test --release --test stress "$1" -- --nocapture --test-threads=1
}

cargo test --release --test stress --no-run
for options in "" "-o kernel_cache"; do
    echo "== readers and writers, ${SECONDS_PER_MODE} s, mount options: ${options:-default}"
    ZARRFS_STRESS_SECONDS="$SECONDS_PER_MODE" ZARRFS_STRESS_OPTIONS="$options" \
        run readers_and_writers_agree_with_a_shadow_copy
done
echo "== crash loop, $KILLS kills"
ZARRFS_STRESS_KILLS="$KILLS" run sigkill_during_write_back_loses_no_fsynced_write
