#!/usr/bin/env bash
# Usage: scripts/make_venv.sh VENV_DIR REQUIREMENTS_FILE
# Creates (or re-creates, when the requirements or the Python version changed) a venv with
# python3.11 (else python3) and the given requirements.
set -euo pipefail

VENV="$1"
REQ="$2"
PY=""
for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1; then
        PY="$p"
        break
    fi
done
if [ -z "$PY" ]; then
    echo "make_venv.sh: no python3 found" >&2
    exit 1
fi
stamp="$(sha256sum "$REQ" | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "== creating $VENV ($PY)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$stamp" > "$VENV/.requirements-stamp"
fi
