#!/usr/bin/env bash
# Runs the property tests of tests/fuzz/ (random and mutated bytes thrown at every metadata
# parser and codec decoder: no panic, no allocation beyond the bound) for much longer than
# `cargo test` does: rounds of CASES cases per property, each round with fresh random
# seeds, until SECONDS have passed. Stops at the first failure, which proptest prints
# with its smallest failing input.
#
#   bash scripts/fuzz.sh                 # 10 minutes, 20,000 cases per property per round
#   bash scripts/fuzz.sh 3600 50000      # an hour
set -euo pipefail

SECONDS_LIMIT="${1:-600}"
CASES="${2:-20000}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi

# The fuzz profile: optimised, with overflow checks and debug assertions.
cargo test --profile fuzz --test fuzz --no-run
deadline=$((SECONDS + SECONDS_LIMIT))
round=0
while [ "$SECONDS" -lt "$deadline" ]; do
    round=$((round + 1))
    echo "== fuzz round $round: $CASES cases per property ($((deadline - SECONDS)) s left)"
    PROPTEST_CASES="$CASES" RUST_BACKTRACE=0 cargo test --profile fuzz --test fuzz -- --quiet
done
echo "fuzz: $round rounds of $CASES cases per property, no failure"
