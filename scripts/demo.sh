#!/usr/bin/env bash
# Build zarrfs, write its sample store, mount it (read-only) and look around, then unmount.
# Under pipefail a pipeline fails when a reader stops early (SIGPIPE), so no pipeline here
# ends in a reader that stops before its writer is done (head, sed 1q...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/install_deps.sh
if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
cargo build --release
BIN="$ROOT/target/release/zarrfs"

WORK="$(mktemp -d -t zarrfs-demo.XXXXXX)"
STORE="$WORK/sample.zarr"
MNT="$WORK/mnt"
mkdir -p "$MNT"

is_mounted() { grep -qs " $1 " /proc/mounts; }

cleanup() {
    if is_mounted "$MNT"; then
        "$BIN" umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || true
    fi
    if is_mounted "$MNT"; then
        echo "warning: $MNT is still mounted; leaving $WORK in place" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }

section "zarrfs sample $STORE"
"$BIN" sample "$STORE"

section "zarrfs info"
"$BIN" info "$STORE"

section "zarrfs mount"
"$BIN" mount "$STORE" "$MNT"

section "ls -R (first 60 lines)"
ls -R "$MNT" >"$WORK/listing"
head -n 60 "$WORK/listing"

# The sample's 3-D blosc array; any other array of the mount will do if it is missing.
ARR="$MNT/climate/temperature"
if [ ! -f "$ARR/meta.json" ]; then
    ARR="$(dirname "$(find "$MNT" -name meta.json -not -path '*/.zarrfs/*' | sort | sed -n 1p)")"
fi
if [ -z "$ARR" ] || [ ! -f "$ARR/meta.json" ]; then
    echo "no array found in the mount" >&2
    exit 1
fi
section "${ARR#"$MNT"/}/meta.json"
cat "$ARR/meta.json"
echo

section "head -c 64 ${ARR#"$MNT"/}/data | od -t f4"
head -c 64 "$ARR/data" | od -A d -t f4

if command -v getfattr >/dev/null 2>&1; then
    section "getfattr -d -m user.zarr ${ARR#"$MNT"/}/data"
    getfattr --absolute-names -d -m user.zarr "$ARR/data"
fi

PY=""
for p in "$ROOT/target/venv/bin/python" python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' >/dev/null 2>&1; then
        PY="$p"
        break
    fi
done
if [ -n "$PY" ]; then
    section "numpy: np.load(data.npy, mmap_mode='r')"
    "$PY" - "$ARR/data.npy" <<'PYEOF'
import sys
import numpy as np
a = np.load(sys.argv[1], mmap_mode="r")
print("shape", a.shape, "dtype", a.dtype.str)
flat = a.reshape(-1)
print("first values", flat[:8].tolist())
if a.size and a.dtype.kind in "iufc":
    print("min", a.min(), "max", a.max())
PYEOF
else
    section "od data.npy (python3 with numpy not available)"
    head -c 192 "$ARR/data.npy" | od -A d -c
fi

if [ -f "$MNT/.zarrfs/stats" ]; then
    section ".zarrfs/stats"
    cat "$MNT/.zarrfs/stats"
fi

section "zarrfs umount"
"$BIN" umount "$MNT"
echo "done"
