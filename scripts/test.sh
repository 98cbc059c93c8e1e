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

echo "== pytest tests/interop"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
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
