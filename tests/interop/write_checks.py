"""Helpers for the write-path interop tests: stores made with zarr-python, a bit-exact
shadow of what an array must hold, and checks of the store after unmount (zarr-python,
tensorstore, numcodecs decoding every chunk file with the array's own compressor)."""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

from conftest import chunk_indices, chunk_region, parse_fill



def tensorstore_unsupported(cfg: dict | None) -> str | None:
    """Why tensorstore's zarr (v2) driver cannot open an array with this compressor."""
    if cfg is None:
        return None
    if cfg["id"] == "lz4":
        return "no numcodecs LZ4 compressor in tensorstore"
    if cfg["id"] == "zstd" and "checksum" in cfg:
        return "tensorstore rejects the zstd 'checksum' member that numcodecs writes"
    return None

BLOSC_COMPFORMAT = {"blosclz": 0, "lz4": 1, "lz4hc": 1, "snappy": 2, "zlib": 3, "zstd": 4}


# ----------------------------------------------------------------------------
# stores
# ----------------------------------------------------------------------------


def make_array(store: Path, path: str, *, dtype: str, shape, chunks, compressor, fill: Any,
               order: str = "C", sep: str = ".", init: str = "partial",
               rng: np.random.Generator) -> np.ndarray:
    """Create one v2 array with zarr-python and return its expected contents (C order).

    init: "full" writes every element, "partial" writes a box so that some chunks stay
    missing from the store, "none" leaves every chunk missing.
    """
    dt = np.dtype(dtype)
    root = zarr.open_group(str(store), mode="a", zarr_format=2)
    arr = root.create_array(path, shape=tuple(shape), chunks=tuple(chunks), dtype=dt,
                            compressors=compressor, fill_value=fill, order=order,
                            chunk_key_encoding={"name": "v2", "separator": sep},
                            attributes={"made_by": "interop"})
    zarray = json.loads((store / path / ".zarray").read_text())
    shadow = np.full(tuple(shape), parse_fill(zarray["fill_value"], dt), dtype=dt)
    vals = random_array(dt, shape, rng)
    if init == "full":
        arr[...] = vals
        shadow[...] = vals
    elif init == "partial":
        box = tuple(slice(0, max(1, (s * 2) // 3)) for s in shape)
        arr[box] = vals[box]
        shadow[box] = vals[box]
    return shadow


def random_array(dt: np.dtype, shape, rng: np.random.Generator) -> np.ndarray:
    """Random values of any dtype, bit patterns included (NaN payloads for floats);
    booleans are 0/1."""
    n = math.prod(shape) * dt.itemsize
    if dt.kind == "b":
        return (rng.random(tuple(shape)) < 0.5).astype(dt)
    return np.frombuffer(rng.bytes(n), dtype=dt).reshape(tuple(shape)).copy()


def random_bytes(dt: np.dtype, n: int, rng: np.random.Generator) -> bytes:
    """n raw bytes that are valid element bytes for dt (booleans 0/1)."""
    if dt.kind == "b":
        return (rng.random(n) < 0.5).astype(np.uint8).tobytes()
    return rng.bytes(n)


def zarray_of(store: Path, path: str) -> dict:
    return json.loads((store / path / ".zarray").read_text())


def chunk_key_path(store: Path, path: str, idx, sep: str) -> Path:
    return store / path / (sep.join(map(str, idx)) if idx else "0")


def stored_chunk_files(store: Path, path: str) -> set[str]:
    base = store / path
    out = set()
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            if not f.startswith("."):
                out.add(os.path.relpath(os.path.join(dirpath, f), base))
    return out


# ----------------------------------------------------------------------------
# shadow updates: the same bytes a write puts through the mount
# ----------------------------------------------------------------------------


def shadow_write_flat(shadow: np.ndarray, offset: int, data: bytes) -> None:
    """Apply a write at byte `offset` of the flat C-order `data` file."""
    flat = shadow.reshape(-1).view(np.uint8)  # shadow is C-contiguous: a view
    flat[offset:offset + len(data)] = np.frombuffer(data, np.uint8)


def shadow_write_chunk(shadow: np.ndarray, idx, chunks, offset: int, data: bytes) -> None:
    """Apply a write at byte `offset` of chunks/<idx>: a C-order decoded chunk of the full
    chunk shape, whose part outside the array (edge padding) is dropped."""
    reg = chunk_region(idx, shadow.shape, chunks)
    full = np.zeros(tuple(chunks), dtype=shadow.dtype)
    valid = tuple(slice(0, r.stop - r.start) for r in reg)
    full[valid] = shadow[reg]
    fb = full.reshape(-1).view(np.uint8)
    fb[offset:offset + len(data)] = np.frombuffer(data, np.uint8)
    shadow[reg] = full[valid]


def chunks_of_flat_range(shape, chunks, itemsize: int, offset: int, length: int) -> set[tuple]:
    """Grid indices of the chunks that bytes [offset, offset+length) of `data` touch."""
    if length <= 0:
        return set()
    first, last = offset // itemsize, (offset + length - 1) // itemsize
    out = set()
    for e in range(first, last + 1):
        pos = np.unravel_index(e, shape)
        out.add(tuple(int(p) // c for p, c in zip(pos, chunks)))
    return out


def chunks_of_box(box, chunks) -> set[tuple]:
    """Grid indices of the chunks that an index box (tuple of slices) touches."""
    ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(box, chunks)]
    return set(itertools.product(*ranges))


# ----------------------------------------------------------------------------
# comparisons
# ----------------------------------------------------------------------------


def as_dtype_bits(got: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Same values in byte order `dt`, bit for bit (a byte swap, never a float conversion)."""
    got = np.ascontiguousarray(got)
    if got.dtype.str == dt.str:
        return got
    if got.dtype.newbyteorder("=") == dt.newbyteorder("="):
        swapped = got.byteswap().view(got.dtype.newbyteorder())
        if swapped.dtype.str == dt.str:
            return swapped
    raise AssertionError(f"dtype {got.dtype.str} cannot be compared with {dt.str}")


def bits_mismatch(got: np.ndarray, exp: np.ndarray) -> str | None:
    """None when `got` holds exactly the bits of `exp` (shape and values; byte order may
    differ and is normalised without float conversion)."""
    if tuple(got.shape) != tuple(exp.shape):
        return f"shape {tuple(got.shape)} != expected {tuple(exp.shape)}"
    g = as_dtype_bits(got, exp.dtype)
    e = np.ascontiguousarray(exp)
    gb = g.reshape(-1).view(np.uint8).reshape(-1, exp.dtype.itemsize) if g.size else g
    eb = e.reshape(-1).view(np.uint8).reshape(-1, exp.dtype.itemsize) if e.size else e
    if g.tobytes() == e.tobytes():
        return None
    bad = np.any(gb != eb, axis=1)
    i = int(np.argmax(bad))
    pos = tuple(int(x) for x in np.unravel_index(i, exp.shape))
    return (f"{int(bad.sum())} of {bad.size} elements differ; first at {pos}: "
            f"got bytes {bytes(gb[i]).hex()} expected {bytes(eb[i]).hex()}")


def read_mount_data(adir: Path, dt: np.dtype, shape) -> np.ndarray:
    with open(adir / "data", "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=dt).reshape(tuple(shape))


# ----------------------------------------------------------------------------
# the store after unmount
# ----------------------------------------------------------------------------


def zarr_mismatch(store: Path, path: str, shadow: np.ndarray) -> str | None:
    got = zarr.open_array(str(store / path), mode="r")[...]
    got = np.asarray(got)
    return bits_mismatch(got, shadow)


def tensorstore_mismatch(store: Path, path: str, shadow: np.ndarray) -> str | None:
    import tensorstore as ts

    t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(store) + "/"},
                 "path": path}, open=True, read=True).result()
    got = t.read().result()
    return bits_mismatch(np.asarray(got), shadow)


def _blosc_expect(cfg: dict, itemsize: int) -> tuple[int, int]:
    """(shuffle flag bits, compformat) that numcodecs would write for this config."""
    sh = cfg.get("shuffle", 1)
    if sh == -1:
        sh = 2 if itemsize == 1 else 1
    bits = {0: 0, 1: 0x1, 2: 0x4}[sh]
    return bits, BLOSC_COMPFORMAT[cfg["cname"]]


def frame_problems(frame: bytes, cfg: dict | None, itemsize: int) -> list[str]:
    """Does a frame carry the array's own compressor settings in its header?"""
    if cfg is None:
        return []
    out = []
    cid = cfg["id"]
    if cid == "blosc":
        if len(frame) < 16:
            return [f"blosc frame of {len(frame)} bytes"]
        flags, typesize = frame[2], frame[3]
        want_bits, want_fmt = _blosc_expect(cfg, itemsize)
        if typesize != itemsize:
            out.append(f"blosc typesize {typesize}, array itemsize {itemsize}")
        if flags & 0x5 != want_bits:
            out.append(f"blosc shuffle flags {flags & 0x5:#x}, config shuffle={cfg.get('shuffle')} "
                       f"wants {want_bits:#x}")
        if not flags & 0x2 and flags >> 5 != want_fmt:
            out.append(f"blosc compressor format {flags >> 5}, config cname={cfg['cname']!r} "
                       f"wants {want_fmt}")
    elif cid == "zstd":
        if frame[:4] != b"\x28\xb5\x2f\xfd":
            out.append(f"zstd frame magic {frame[:4].hex()}")
        elif bool(frame[4] & 0x4) != bool(cfg.get("checksum", False)):
            out.append(f"zstd content checksum flag {bool(frame[4] & 0x4)}, "
                       f"config checksum={cfg.get('checksum', False)}")
    elif cid == "gzip":
        if frame[:2] != b"\x1f\x8b":
            out.append(f"gzip magic {frame[:2].hex()}")
    elif cid == "zlib":
        if len(frame) < 2 or (frame[0] & 0x0F) != 8 or ((frame[0] << 8) | frame[1]) % 31:
            out.append(f"zlib header {frame[:2].hex()}")
    return out


def check_stored_chunks(store: Path, path: str, shadow: np.ndarray, touched: set | None = None,
                        frames_before: dict | None = None) -> list[str]:
    """Decode every chunk file of the array with numcodecs and the array's own .zarray
    compressor config, and compare it with the shadow; missing chunks must be all-fill
    regions. Chunks written through the mount (`touched`, plus every chunk whose frame
    differs from `frames_before`: mmap write-back stores whole pages, so neighbours of a
    written byte may be re-encoded too) must also carry the array's compressor settings in
    their frame header and hold fill_value in their edge padding."""
    za = zarray_of(store, path)
    dt = np.dtype(za["dtype"])
    chunks = tuple(za["chunks"])
    sep = za.get("dimension_separator", ".")
    cfg = za.get("compressor")
    codec = numcodecs.get_codec(dict(cfg)) if cfg else None
    assert not za.get("filters"), "filters are not used by these tests"
    fill = parse_fill(za["fill_value"], dt)
    fill_bytes = np.full((), fill, dtype=dt).tobytes()
    touched = touched or set()
    problems = []
    for idx in chunk_indices(shadow.shape, chunks):
        key = chunk_key_path(store, path, idx, sep)
        reg = chunk_region(idx, shadow.shape, chunks)
        want = np.ascontiguousarray(shadow[reg])
        name = ".".join(map(str, idx))
        if not key.exists():
            if want.tobytes() != fill_bytes * want.size:
                problems.append(f"chunk {name}: missing from the store but not all fill_value")
            continue
        frame = key.read_bytes()
        written = idx in touched or (frames_before is not None and frames_before.get(idx) != frame)
        try:
            raw = codec.decode(frame) if codec else frame
        except Exception as e:  # noqa: BLE001
            problems.append(f"chunk {name}: numcodecs {cfg} cannot decode {len(frame)} bytes: {e!r}")
            continue
        raw = bytes(memoryview(raw).cast("B")) if not isinstance(raw, bytes) else raw
        n = math.prod(chunks) * dt.itemsize
        if len(raw) != n:
            problems.append(f"chunk {name}: decodes to {len(raw)} bytes, expected {n}")
            continue
        full = np.frombuffer(raw, dtype=dt).reshape(chunks, order=za["order"])
        valid = tuple(slice(0, r.stop - r.start) for r in reg)
        m = bits_mismatch(np.ascontiguousarray(full[valid]), want)
        if m:
            problems.append(f"chunk {name} ({'written' if written else 'untouched'}): {m}")
        if written:
            problems += [f"chunk {name}: {p}" for p in frame_problems(frame, cfg, dt.itemsize)]
            pad = np.ones(chunks, dtype=bool)
            pad[valid] = False
            if pad.any() and full[pad].tobytes() != fill_bytes * int(pad.sum()):
                problems.append(f"chunk {name}: edge padding is not fill_value")
    return problems


def frames_of(store: Path, path: str, shape) -> dict:
    za = zarray_of(store, path)
    sep = za.get("dimension_separator", ".")
    out = {}
    for idx in chunk_indices(shape, za["chunks"]):
        key = chunk_key_path(store, path, idx, sep)
        if key.exists():
            out[idx] = key.read_bytes()
    return out


# ----------------------------------------------------------------------------
# diagnostics for a wedged mount
# ----------------------------------------------------------------------------


def daemon_pids(mnt: Path) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"zarrfs" in c for c in cmd[:1]) and str(mnt).encode() in cmd:
            out.append(int(d))
    return out


def stacks(pids: list[int]) -> str:
    """Kernel stacks and wchan of every thread of `pids` (and of gdb, when present)."""
    parts = []
    for pid in pids:
        tdir = Path(f"/proc/{pid}/task")
        try:
            tids = sorted(os.listdir(tdir), key=int)
        except OSError:
            continue
        for tid in tids:
            try:
                comm = (tdir / tid / "comm").read_text().strip()
                wchan = (tdir / tid / "wchan").read_text().strip()
                stack = (tdir / tid / "stack").read_text().strip()
            except OSError as e:
                stack, comm, wchan = f"<{e}>", "?", "?"
            parts.append(f"pid {pid} tid {tid} ({comm}) wchan={wchan}\n{stack}")
        try:
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            parts.append(r.stdout[-20000:])
        except (FileNotFoundError, subprocess.TimeoutExpired):
            pass
    return "\n".join(parts)


def errno_of(fn) -> int | None:
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


def errname(n: int | None) -> str:
    return "no error" if n is None else errno.errorcode.get(n, str(n))
