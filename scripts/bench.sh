#!/usr/bin/env bash
# Benchmark zarrfs against in-process Zarr readers and write BENCHMARKS.md and
# docs/bench.png. Installs what is missing, builds release, prepares a Python venv
# (target/bench-venv) and hands over to scripts/bench.py with the same arguments:
#
#   bash scripts/bench.sh                 # full run (~4 GB of data under target/bench-data)
#   bash scripts/bench.sh --quick         # 1/16-size smoke run, report under target/bench-data-quick
#   bash scripts/bench.sh --only A,C      # a subset of the datasets
#   bash scripts/bench.sh --levers-only --only A,D --levers-commits c34ca54,HEAD
#                                         # levers only: other mount options, other commits
#   bash scripts/bench.sh --help          # every option
#   bash scripts/bench.sh --s3 [--quick]  # S3: zarrfs against zarr-python (obstore, s3fs) and
#                                         # tensorstore on a SeaweedFS bucket, with and without
#                                         # 20 ms per request; disk cache vs directory store
#                                         # (scripts/bench_s3.py --help)
#
# Must run as root (or with sudo available for the installs) on a machine with /dev/fuse.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -f scripts/install_deps.sh ]; then
    bash scripts/install_deps.sh
fi
if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi

# Tools the harness shells out to: cat and dd (coreutils). perf is used when present
# (optional profile in the report) and is not installed here.
if ! command -v cat >/dev/null 2>&1 || ! command -v dd >/dev/null 2>&1; then
    SUDO=()
    [ "$(id -u)" -ne 0 ] && SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends coreutils
fi

echo "== cargo build --release"
cargo build --release --bins

VENV="$ROOT/target/bench-venv"
REQ="$ROOT/scripts/bench-requirements.txt"
bash "$ROOT/scripts/make_venv.sh" "$VENV" "$REQ"

if [ "${1:-}" = "--s3" ]; then
    shift
    echo "== scripts/bench_s3.py $*"
    exec "$VENV/bin/python" scripts/bench_s3.py "$@"
fi
echo "== scripts/bench.py $*"
exec "$VENV/bin/python" scripts/bench.py "$@"
