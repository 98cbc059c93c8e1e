#!/usr/bin/env bash
# Build zarrfs, run the Rust tests, then the Python interop suite against the
# release binary. Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/install_deps.sh
# fsx (into target/tools) and fio, driven by tests/interop/test_exercisers.py
bash scripts/install_test_tools.sh

if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi

echo "== cargo build --release"
cargo build --release
echo "== cargo test"
cargo test --workspace

# Python venv for the interop suite, rebuilt when the requirements change.
VENV="$ROOT/target/venv"
REQ="$ROOT/tests/interop/requirements.txt"
bash "$ROOT/scripts/make_venv.sh" "$VENV" "$REQ"

# An S3 server on loopback (SeaweedFS) for tests/interop/test_s3.py, stopped on exit.
echo "== starting SeaweedFS"
S3_STATE="$(mktemp -d)"
log="$(mktemp)"
trap '"$VENV/bin/python" "$ROOT/scripts/s3_server.py" stop "$S3_STATE"; rm -rf "$S3_STATE" "$log"' EXIT
s3_env="$("$VENV/bin/python" "$ROOT/scripts/s3_server.py" start "$S3_STATE")"
eval "$s3_env"
export ZARRFS_S3_STATE="$S3_STATE" ZARRFS_REQUIRE_S3=1

echo "== pytest tests/interop"
set +e
# The timeout only guards against a wedged mount hanging the run forever.
# ZARRFS_REQUIRE_TOOLS: a missing fsx or fio fails the exerciser tests instead of skipping them.
ZARRFS_BIN="$ROOT/target/release/zarrfs" FSX_BIN="$ROOT/target/tools/bin/fsx" ZARRFS_REQUIRE_TOOLS=1 timeout --kill-after=30 1800 \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/interop 2>&1 | tee "$log"
rc="${PIPESTATUS[0]}"
set -e
summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped|deselected)|no tests ran' "$log" | tail -n 1 || true)"
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
echo "${summary:-pytest printed no summary (exit $rc)}"
exit "$rc"
