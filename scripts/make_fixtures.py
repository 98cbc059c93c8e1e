#!/usr/bin/env python3
"""Generate the committed Zarr v2 test fixtures.

Writes (after deleting them) into tests/fixtures/:

  v2.zarr/                    one Zarr v2 directory store with every case
  v2-expected/<path>.npy      the full decoded array of each case (C order,
                              exact dtype incl. byte order)
  v2-manifest.json            one entry per array node (see MANIFEST FORMAT)
  v2-groups.json              one entry per group: path and attributes

Requirements: zarr-python 3.x (<= 3.1.6), numcodecs, numpy; tensorstore is
used as an independent cross-check when it is importable.

The output is deterministic: fixed seeds, and gzip headers get a zero mtime.

MANIFEST FORMAT (v2-manifest.json is a JSON list sorted by path):

  path              array path inside the store, '/'-separated, no leading '/'
  shape, chunks     lists of ints ([] for 0-d); null for malformed metadata
  dtype             numpy dtype string, e.g. "<f4", ">i8", "|b1"
  order             "C" or "F" (memory order of the stored chunks)
  fill_value        fill_value exactly as in .zarray (null, number, "NaN",
                    "Infinity", "-Infinity", [re, im], true/false)
  zarr_format       2
  compressor        compressor config as in .zarray (or null)
  filters           filters as in .zarray (or null)
  dimension_separator  value of the key in .zarray, null when the key is absent
  chunk_key_separator  separator actually used by the chunk files on disk
  grid              number of chunks along each dimension
  attributes        the array's user attributes (attrs.json must equal them)
  expected          relative path (from tests/fixtures) of the .npy holding the
                    full array, or null
  error             null | "unsupported_codec" | "corrupt_chunks" |
                    "malformed_metadata"
  bad_chunks        mount-style chunk names ('.'-joined indices) whose reads
                    must fail with EIO
  bad_regions       for each bad chunk, [[start, stop], ...] per dimension of the
                    array region it covers (clipped to the shape)
  present_chunks    mount-style names of the chunk objects that exist in the
                    store (everything else is missing and reads as fill_value)
  note              free text

Semantics for consumers:
  * data / data.npy must equal the expected array (bytes in the declared byte
    order, C order).
  * chunks/<name> must equal the expected array's chunk region padded to the
    full chunk shape with fill_value (fill_value null means zero bytes), C order.
  * For "corrupt_chunks" the expected array holds the values originally
    written; only regions outside bad_regions are readable.
  * For "unsupported_codec" the node is listed but every read of data,
    data.npy or a chunk fails with EIO (all its chunks are present).
  * For "malformed_metadata" the node must not appear in the mount.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numcodecs
import numpy as np
import zarr
from numcodecs import GZip, LZ4, Blosc, Zlib, Zstd
from numcodecs.compat import ensure_bytes

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
STORE = FIXTURES / "v2.zarr"
EXPECTED = FIXTURES / "v2-expected"
MANIFEST = FIXTURES / "v2-manifest.json"
GROUPS = FIXTURES / "v2-groups.json"

NOSHUFFLE, SHUFFLE, BITSHUFFLE, AUTOSHUFFLE = 0, 1, 2, -1

# ----------------------------------------------------------------------------
# helpers shared by generation and verification
# ----------------------------------------------------------------------------


def c_order(x: Any) -> np.ndarray:
    """C-contiguous copy that keeps 0-d arrays 0-d (np.ascontiguousarray does not)."""
    return np.array(x, copy=True, order="C")


def zarr_result(x: Any, dt: np.dtype) -> np.ndarray:
    """zarr-python result as a C-order array; 0-d reads come back as native-order scalars."""
    arr = c_order(x)
    if arr.ndim == 0 and arr.dtype != dt and arr.dtype == dt.newbyteorder("="):
        arr = arr.astype(dt)
    return arr


def seed_for(path: str) -> int:
    return zlib.crc32(path.encode()) & 0xFFFFFFFF


def parse_fill(fill: Any, dtype: np.dtype) -> np.ndarray:
    """JSON fill_value -> 0-d array of dtype (null -> zeros)."""

    def num(x: Any) -> Any:
        if isinstance(x, str):
            return {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[x]
        return x

    if fill is None:
        return np.zeros((), dtype)
    if dtype.kind == "c":
        return np.array(complex(num(fill[0]), num(fill[1])), dtype)
    if dtype.kind == "b":
        return np.array(bool(fill), dtype)
    return np.array(num(fill), dtype)


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality: same dtype (incl. byte order), shape and bits; NaNs match NaNs."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a = c_order(a).reshape(-1)
    b = c_order(b).reshape(-1)
    if a.dtype.kind in "fc":
        n = a.dtype.itemsize if a.dtype.kind == "f" else a.dtype.itemsize // 2
        fdt = np.dtype(f"{a.dtype.byteorder if a.dtype.byteorder != '=' else '<'}f{n}")
        fa, fb = a.view(fdt), b.view(fdt)
        na, nb = np.isnan(fa), np.isnan(fb)
        if not np.array_equal(na, nb):
            return False
        ua = fa.view(np.uint8).reshape(-1, n)[~na]
        ub = fb.view(np.uint8).reshape(-1, n)[~nb]
        return bool(np.array_equal(ua, ub))
    return a.tobytes() == b.tobytes()


def grid_of(shape: list[int], chunks: list[int]) -> list[int]:
    return [math.ceil(s / c) for s, c in zip(shape, chunks)]


def all_chunk_indices(shape: list[int], chunks: list[int]) -> list[tuple[int, ...]]:
    if len(shape) == 0:
        return [()]
    return [tuple(int(x) for x in idx) for idx in np.ndindex(*grid_of(shape, chunks))]


def mount_name(idx: tuple[int, ...]) -> str:
    return ".".join(str(i) for i in idx) if idx else "0"


def chunk_region(idx: tuple[int, ...], shape, chunks) -> tuple[slice, ...]:
    return tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))


def expected_chunk(expected: np.ndarray, idx, chunks, fill: np.ndarray) -> np.ndarray:
    """Full chunk (C order) = array region padded with fill_value."""
    out = np.full(tuple(chunks), fill, dtype=expected.dtype)
    reg = chunk_region(idx, expected.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in reg)] = expected[reg]
    return out


def decode_chunk(meta: dict, raw: bytes) -> np.ndarray:
    """Reference decoder independent of zarr-python: bytes -> full C-order chunk."""
    buf: Any = raw
    if meta.get("compressor") is not None:
        buf = numcodecs.get_codec(dict(meta["compressor"])).decode(buf)
    for f in reversed(meta.get("filters") or []):
        buf = numcodecs.get_codec(dict(f)).decode(buf)
    dt = np.dtype(meta["dtype"])
    arr = np.frombuffer(ensure_bytes(buf), dtype=np.uint8)
    chunks = tuple(meta["chunks"])
    n = math.prod(chunks) * dt.itemsize
    if arr.size != n:
        raise ValueError(f"decoded chunk has {arr.size} bytes, expected {n}")
    return c_order(arr.view(dt).reshape(chunks, order=meta["order"]))


def chunk_file(array_dir: Path, idx: tuple[int, ...], sep: str) -> Path:
    if not idx:
        return array_dir / "0"
    return array_dir / sep.join(str(i) for i in idx)


def list_present(array_dir: Path, ndim: int, sep: str) -> list[tuple[int, ...]]:
    """Chunk objects present on disk (listing the directory, not guessing)."""
    found = []
    if ndim == 0:
        return [()] if (array_dir / "0").is_file() else []
    if sep == ".":
        for p in array_dir.iterdir():
            parts = p.name.split(".")
            if p.is_file() and len(parts) == ndim and all(x.isdigit() for x in parts):
                found.append(tuple(int(x) for x in parts))
    else:
        for root, _dirs, files in os.walk(array_dir):
            rel = Path(root).relative_to(array_dir).parts
            if len(rel) != ndim - 1 or not all(x.isdigit() for x in rel):
                continue
            for f in files:
                if f.isdigit():
                    found.append(tuple(int(x) for x in rel) + (int(f),))
    return sorted(found)


def reference_read(array_dir: Path, meta: dict, sep: str, skip=()) -> np.ndarray:
    """Assemble the full array from chunk files with the reference decoder."""
    dt = np.dtype(meta["dtype"])
    shape, chunks = list(meta["shape"]), list(meta["chunks"])
    fill = parse_fill(meta["fill_value"], dt)
    out = np.full(tuple(shape), fill, dtype=dt)
    for idx in all_chunk_indices(shape, chunks):
        if idx in skip:
            continue
        p = chunk_file(array_dir, idx, sep)
        if not p.is_file():
            continue
        ch = decode_chunk(meta, p.read_bytes())
        reg = chunk_region(idx, shape, chunks)
        out[reg] = ch[tuple(slice(0, r.stop - r.start) for r in reg)]
    return out


# ----------------------------------------------------------------------------
# data generators
# ----------------------------------------------------------------------------


def rand_data(dtype: str, shape, rng: np.random.Generator, specials: bool = True) -> np.ndarray:
    dt = np.dtype(dtype)
    shape = tuple(shape)
    n = math.prod(shape)
    if dt.kind == "b":
        flat = rng.random(n) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dt.newbyteorder("="))
        if specials and n >= 4:
            flat[:4] = [info.min, info.max, 0, 1]
    elif dt.kind == "f":
        nat = dt.newbyteorder("=")
        flat = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, size=n)).astype(nat)
        if specials and n >= 8:
            finfo = np.finfo(nat)
            flat[:8] = [np.nan, np.inf, -np.inf, -0.0, finfo.max, finfo.tiny, finfo.smallest_subnormal, -1.5]
    elif dt.kind == "c":
        half = np.dtype(f"f{dt.itemsize // 2}")
        re = rand_data(half.str, (n,), rng, specials)
        im = rand_data(half.str, (n,), rng, False)
        flat = (re.astype(np.complex128) + 1j * im.astype(np.complex128)).astype(dt.newbyteorder("="))
        if specials and n >= 3:
            flat[0] = complex(np.nan, 1.0)
            flat[1] = complex(1.0, -np.inf)
            flat[2] = complex(-0.0, 0.0)
    else:
        raise ValueError(dtype)
    return np.asarray(flat).astype(dt).reshape(shape)


def smooth_data(dtype: str, shape, rng: np.random.Generator) -> np.ndarray:
    """Compressible but non-trivial values."""
    dt = np.dtype(dtype)
    grids = np.indices(shape, dtype=np.float64)
    base = np.sin(sum((k + 1) * 0.3 * g for k, g in enumerate(grids))) * 100.0
    base = base + rng.standard_normal(tuple(shape)) * 0.01
    if dt.kind in "iu":
        base = np.round(base) + (128 if dt.kind == "u" else 0)
        base = np.clip(base, np.iinfo(dt).min, np.iinfo(dt).max)
    if dt.kind == "b":
        return (base > 0).astype(dt)
    return base.astype(dt)


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------


@dataclass
class Case:
    path: str
    shape: tuple
    chunks: tuple
    dtype: str
    compressor: Any = None
    filters: Any = None
    order: str = "C"
    fill_value: Any = 0
    separator: str = "."
    data: str | Callable = "rand"  # "rand" | "smooth" | callable(rng) -> array
    regions: list | None = None  # None: write everything; else list of index tuples
    write_empty_chunks: bool = True
    attributes: dict = field(default_factory=dict)
    post: Callable[["Case", Path], None] | None = None
    remove_chunks: list = field(default_factory=list)  # chunk indices deleted after writing
    error: str | None = None
    bad_chunks: list = field(default_factory=list)
    expected_available: bool = True
    zarr_readable: bool = True  # zarr-python reads the final store as expected
    garbage_padding: bool = False  # stored edge-chunk padding deliberately differs from fill_value
    note: str = ""


CASES: list[Case] = []


def add(*args, **kw) -> None:
    CASES.append(Case(*args, **kw))


# groups: path -> attributes
GROUP_ATTRS: dict[str, dict] = {
    "": {"title": "zarrfs v2 fixtures", "version": 1, "tags": ["zarr", "v2"]},
    "dtypes": {"description": "one array per dtype and byte order"},
    "compressors": {"description": "one array per compressor configuration"},
    "layout": {"description": "orders, separators, shapes"},
    "fill": {"description": "fill values and missing chunks"},
    "attrs": {"nested": {"a": [1, 2, {"b": None}], "c": "\u00e9\u00e8 \u2603"}, "float": 0.25, "flag": False},
    "attrs/bare_group": {},  # .zattrs removed after writing
    "attrs/empty_group": {"empty": True},
    "nested": {"level": 1},
    "nested/deep": {"level": 2},
    "nested/deep/deeper": {"level": 3},
    "errors": {"description": "nodes that must fail in controlled ways"},
}
GROUPS_WITHOUT_ZATTRS = {"attrs/bare_group"}

# --- dtypes -----------------------------------------------------------------
for base in ["b1", "i1", "u1"]:
    add(f"dtypes/{base}", (13, 7), (4, 3), "|" + base, Blosc("lz4", 5, SHUFFLE),
        attributes={"dtype": "|" + base})
for base in ["i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]:
    add(f"dtypes/{base}_le", (13, 7), (4, 3), "<" + base, Blosc("lz4", 5, SHUFFLE),
        attributes={"dtype": "<" + base})
    add(f"dtypes/{base}_be", (13, 7), (4, 3), ">" + base, Blosc("zstd", 3, BITSHUFFLE),
        attributes={"dtype": ">" + base})

# --- compressors ------------------------------------------------------------
CSHAPE, CCHUNKS, CDT = (30, 25), (16, 16), "<f4"
add("compressors/raw", CSHAPE, CCHUNKS, CDT, None, data="smooth")
for cname, clevel in [("lz4", 5), ("lz4hc", 9), ("blosclz", 1), ("zstd", 3), ("zlib", 6)]:
    for sname, shuf in [("noshuffle", NOSHUFFLE), ("shuffle", SHUFFLE), ("bitshuffle", BITSHUFFLE)]:
        add(f"compressors/blosc_{cname}_{sname}", CSHAPE, CCHUNKS, CDT,
            Blosc(cname, clevel, shuf), data="smooth")
add("compressors/blosc_lz4_autoshuffle", CSHAPE, CCHUNKS, CDT, Blosc("lz4", 5, AUTOSHUFFLE), data="smooth")
add("compressors/blosc_lz4_autoshuffle_u1", (40, 30), (16, 16), "|u1", Blosc("lz4", 5, AUTOSHUFFLE), data="smooth",
    note="AUTOSHUFFLE with itemsize 1 means bitshuffle")
add("compressors/blosc_zstd_blocksize256", CSHAPE, CCHUNKS, CDT, Blosc("zstd", 5, SHUFFLE, blocksize=256),
    data="smooth", note="1024-byte chunks split into 256-byte blosc blocks")
add("compressors/blosc_blosclz_blocksize4096", CSHAPE, CCHUNKS, CDT, Blosc("blosclz", 5, BITSHUFFLE, blocksize=4096),
    data="smooth", note="blocksize larger than the chunk")
add("compressors/blosc_lz4_clevel0", CSHAPE, CCHUNKS, CDT, Blosc("lz4", 0, SHUFFLE), data="smooth",
    note="clevel 0: blosc stores the data uncompressed (memcpy flag)")
add("compressors/blosc_zlib_clevel9_i8", (20, 20), (8, 8), "<i8", Blosc("zlib", 9, SHUFFLE), data="smooth")
add("compressors/blosc_lz4_incompressible", (40, 40), (32, 32), "|u1", Blosc("lz4", 5, NOSHUFFLE),
    data=lambda rng: rng.integers(0, 256, size=(40, 40), dtype=np.uint8),
    note="random bytes: blosc falls back to memcpy'd blocks")
add("compressors/blosc_lz4hc_bitshuffle_c16", (9, 11), (4, 4), "<c16", Blosc("lz4hc", 4, BITSHUFFLE))
add("compressors/zstd_1", CSHAPE, CCHUNKS, CDT, Zstd(level=1), data="smooth")
add("compressors/zstd_22", CSHAPE, CCHUNKS, CDT, Zstd(level=22), data="smooth")
add("compressors/zstd_neg5", CSHAPE, CCHUNKS, CDT, Zstd(level=-5), data="smooth", note="negative zstd level")
add("compressors/zstd_checksum", CSHAPE, CCHUNKS, CDT, Zstd(level=3, checksum=True), data="smooth",
    note="frames carry a content checksum")
add("compressors/zstd_incompressible", (40, 40), (32, 32), "|u1", Zstd(level=3),
    data=lambda rng: rng.integers(0, 256, size=(40, 40), dtype=np.uint8))
add("compressors/gzip_1", CSHAPE, CCHUNKS, CDT, GZip(level=1), data="smooth")
add("compressors/gzip_9", CSHAPE, CCHUNKS, ">i4", GZip(level=9), data="smooth")
add("compressors/zlib_1", CSHAPE, CCHUNKS, CDT, Zlib(level=1), data="smooth")
add("compressors/zlib_9", CSHAPE, CCHUNKS, "<u2", Zlib(level=9), data="smooth")
add("compressors/lz4_1", CSHAPE, CCHUNKS, CDT, LZ4(acceleration=1), data="smooth",
    note="numcodecs LZ4: 4-byte little-endian decoded size, then an LZ4 block")
add("compressors/lz4_10", CSHAPE, CCHUNKS, "<f8", LZ4(acceleration=10), data="smooth")

# --- layout -----------------------------------------------------------------
add("layout/order_F_2d_i4", (13, 11), (5, 4), "<i4", Blosc("lz4", 5, SHUFFLE), order="F")
add("layout/order_F_2d_u1", (9, 10), (4, 4), "|u1", None, order="F")
add("layout/order_F_3d_f8_be", (5, 6, 7), (2, 4, 3), ">f8", Zlib(level=5), order="F")
add("layout/order_F_3d_c8", (4, 5, 3), (3, 2, 2), "<c8", Zstd(level=3), order="F")
add("layout/order_F_4d_i2_be_slash", (3, 4, 2, 5), (2, 3, 2, 2), ">i2", None, order="F", separator="/")
add("layout/order_F_missing", (10, 9), (4, 4), "<f4", Blosc("lz4", 5, SHUFFLE), order="F", fill_value=float("nan"),
    regions=[(0, 0), (1, 2), (2, 1)])
add("layout/sep_dot_2d", (10, 10), (3, 4), "<i4", None, separator=".")
add("layout/sep_slash_2d", (10, 10), (3, 4), "<i4", None, separator="/")
add("layout/sep_slash_3d", (5, 6, 7), (2, 3, 4), "<u2", Blosc("zstd", 3, SHUFFLE), separator="/")
add("layout/sep_slash_1d", (10,), (3,), "<f8", None, separator="/")
add("layout/sep_slash_missing", (8, 8), (3, 3), "<i2", None, separator="/", fill_value=-1,
    regions=[(0, 1), (2, 2)])


def _drop_separator(case: Case, adir: Path) -> None:
    meta = json.loads((adir / ".zarray").read_text())
    del meta["dimension_separator"]
    (adir / ".zarray").write_text(json.dumps(meta, indent=4, sort_keys=True))


add("layout/legacy_nested_2d", (7, 9), (3, 4), "<i4", None, separator="/", post=_drop_separator,
    zarr_readable=False,
    note="written with '/' then dimension_separator removed from .zarray (old NestedDirectoryStore); "
         "chunk files are nested although the key is absent. zarr-python 3 reads it as all fill_value; "
         "the expected array is the data as written")
add("layout/legacy_nested_3d_F", (4, 5, 6), (2, 2, 4), ">f4", Zlib(level=3), order="F", separator="/",
    post=_drop_separator, zarr_readable=False,
    note="legacy nested, order F, big-endian; see legacy_nested_2d")
def _garbage_padding(case: Case, adir: Path) -> None:
    """Rewrite every edge chunk with its out-of-bounds padding set to a sentinel.

    The v2 spec leaves padding contents unspecified; readers must not expose it
    (chunk files show fill_value there).
    """
    meta = json.loads((adir / ".zarray").read_text())
    dt = np.dtype(meta["dtype"])
    sentinel = np.array(0x5A5A, dt)
    codec = numcodecs.get_codec(dict(meta["compressor"])) if meta["compressor"] else None
    n = 0
    for idx in all_chunk_indices(list(case.shape), list(case.chunks)):
        reg = chunk_region(idx, case.shape, case.chunks)
        inside = tuple(slice(0, r.stop - r.start) for r in reg)
        if all(r.stop - r.start == c for r, c in zip(reg, case.chunks)):
            continue
        p = chunk_file(adir, idx, case.separator)
        ch = decode_chunk(meta, p.read_bytes())
        keep = ch[inside].copy()
        ch[...] = sentinel
        ch[inside] = keep
        raw = ch.tobytes(order=meta["order"])
        p.write_bytes(bytes(codec.encode(raw)) if codec else raw)
        n += 1
    assert n > 0


add("layout/edge_padding_garbage", (5, 7), (3, 4), "<i2", Zlib(level=1), fill_value=-1, post=_garbage_padding,
    garbage_padding=True,
    note="edge chunks store 0x5A5A in their out-of-bounds padding; chunk files must show fill_value there")
add("layout/edge_padding_garbage_F", (5, 7, 3), (2, 4, 2), ">i4", None, order="F", fill_value=9,
    post=_garbage_padding, garbage_padding=True, note="as edge_padding_garbage, order F, big-endian, raw")
add("layout/edge_2d", (17, 23), (5, 7), "<u2", Zstd(level=3))
add("layout/one_d", (50,), (8,), "<i8", Blosc("lz4", 5, SHUFFLE))
add("layout/one_d_many", (100,), (3,), "|u1", None, note="34 chunks: names 0..33")
add("layout/three_d", (6, 7, 8), (4, 3, 5), "<f4", Blosc("zstd", 3, SHUFFLE))
add("layout/four_d", (3, 4, 5, 6), (2, 3, 2, 4), "<i2", Zlib(level=1))
add("layout/five_d", (2, 3, 2, 3, 2), (1, 2, 2, 2, 1), "<u4", None)
add("layout/zero_d", (), (), "<f8", GZip(level=5), data=lambda rng: np.array(3.25))
add("layout/zero_d_be_i4", (), (), ">i4", None, data=lambda rng: np.array(-123456, ">i4"))
add("layout/zero_d_missing", (), (), "<i2", Zlib(level=1), fill_value=7, regions=[],
    note="0-d array whose only chunk was never written")
add("layout/chunk_bigger_2d", (3, 5), (4, 8), "<i4", Blosc("lz4", 5, SHUFFLE), fill_value=-3,
    note="single chunk larger than the array")
add("layout/chunk_bigger_1d", (5,), (100,), "<f4", None, fill_value=0.5)
add("layout/grid_wide", (24, 38), (2, 2), "|u1", None, note="12x19 chunks: names like 3.17 and 11.18")
add("layout/single", (1,), (1,), "<f4", None)
add("layout/empty", (0, 4), (2, 2), "<f4", Blosc("lz4", 5, SHUFFLE), note="zero-size array: no chunks")
add("layout/unit_chunks", (3, 4), (1, 1), "<i2", None)
add("layout/multi_page_1d", (3000,), (700,), "<i4", Zlib(level=6),
    data=lambda rng: np.arange(3000, dtype="<i4") * 7 - 1000,
    note="12000 bytes: chunk boundaries fall inside 4 KiB pages")

# --- fill values ------------------------------------------------------------
FSHAPE, FCHUNKS = (10, 9), (4, 4)  # grid 3x3
FREG = [(0, 0), (1, 1), (2, 2), (0, 2)]
add("fill/null_i4", FSHAPE, FCHUNKS, "<i4", None, fill_value=None, regions=FREG,
    note="fill_value null: missing chunks read as zeros")
add("fill/null_f8", FSHAPE, FCHUNKS, "<f8", Zlib(level=1), fill_value=None, regions=FREG)
add("fill/zero_u2", FSHAPE, FCHUNKS, "<u2", None, fill_value=0, regions=FREG)
add("fill/int_i2", FSHAPE, FCHUNKS, "<i2", Blosc("lz4", 5, SHUFFLE), fill_value=-7, regions=FREG)
add("fill/int_i4_be", FSHAPE, FCHUNKS, ">i4", None, fill_value=16909060, regions=FREG,
    note="fill 0x01020304 must be encoded big-endian")
add("fill/u8_max", FSHAPE, FCHUNKS, "<u8", None, fill_value=2**64 - 1, regions=FREG)
add("fill/i8_min", FSHAPE, FCHUNKS, ">i8", None, fill_value=-(2**63), regions=FREG)
add("fill/f4_number", FSHAPE, FCHUNKS, "<f4", None, fill_value=1.5, regions=FREG)
add("fill/f2_number", FSHAPE, FCHUNKS, ">f2", None, fill_value=-2.25, regions=FREG)
add("fill/nan_f8", FSHAPE, FCHUNKS, "<f8", Blosc("zstd", 3, SHUFFLE), fill_value=float("nan"), regions=FREG)
add("fill/nan_f4_be", FSHAPE, FCHUNKS, ">f4", None, fill_value=float("nan"), regions=FREG)
add("fill/nan_f2", FSHAPE, FCHUNKS, "<f2", None, fill_value=float("nan"), regions=FREG)
add("fill/inf_f4", FSHAPE, FCHUNKS, "<f4", None, fill_value=float("inf"), regions=FREG)
add("fill/neginf_f8_be", FSHAPE, FCHUNKS, ">f8", None, fill_value=float("-inf"), regions=FREG)
add("fill/negzero_f8", FSHAPE, FCHUNKS, "<f8", None, fill_value=-0.0, regions=FREG,
    note="fill -0.0: sign bit must be set")
add("fill/complex_c16", FSHAPE, FCHUNKS, "<c16", None, fill_value=complex(1.5, -2.5), regions=FREG)
add("fill/complex_c8_be", FSHAPE, FCHUNKS, ">c8", None, fill_value=complex(-1.0, 0.25), regions=FREG)
add("fill/complex_nan_c16", FSHAPE, FCHUNKS, "<c16", None, fill_value=complex(float("nan"), float("-inf")),
    regions=FREG)
add("fill/bool_true", FSHAPE, FCHUNKS, "|b1", None, fill_value=True, regions=FREG)
add("fill/bool_false", FSHAPE, FCHUNKS, "|b1", Zlib(level=1), fill_value=False, regions=FREG)
add("fill/never_written", FSHAPE, FCHUNKS, "<f4", Blosc("lz4", 5, SHUFFLE), fill_value=42.0, regions=[],
    note="no chunk was ever written")
add("fill/partial_writes", FSHAPE, FCHUNKS, "<i4", None, fill_value=-99,
    regions=[(slice(1, 3), slice(2, 7)), (slice(9, 10), slice(8, 9))],
    note="unaligned writes: present chunks are partly fill_value")


def _skipped(rng: np.random.Generator) -> np.ndarray:
    a = rand_data("<i4", FSHAPE, rng)
    a[4:8, 0:4] = 5  # chunk (1, 0) equals fill: not stored with write_empty_chunks=False
    a[0:4, 4:8] = 5  # chunk (0, 1) too
    return a


add("fill/skipped_empty", FSHAPE, FCHUNKS, "<i4", Zlib(level=1), fill_value=5, data=_skipped,
    write_empty_chunks=False,
    note="written whole with write_empty_chunks=False: chunks equal to fill_value were not stored")

# --- attributes and nesting -------------------------------------------------
add("attrs/with_attrs", (4, 4), (2, 2), "<i4", None,
    attributes={"units": "m/s", "scale": 0.5, "offset": -3, "valid": True, "missing": None,
                "list": [1, "two", 3.0, [4]], "nested": {"x": {"y": {"z": "\u2713"}}}, "empty": {}})
add("attrs/no_zattrs", (4, 4), (2, 2), "<i4", None, attributes={},
    post=lambda c, d: (d / ".zattrs").unlink(missing_ok=True), note=".zattrs file absent: attrs.json is {}")
add("attrs/bare_group/arr", (5,), (2,), "<f8", None, attributes={"in": "bare group"})
add("nested/deep/deeper/arr", (6, 6), (4, 4), "<u4", Blosc("lz4", 5, SHUFFLE), attributes={"depth": 4})
add("nested/top_arr", (3,), (2,), "<i8", None)

# --- errors -----------------------------------------------------------------


def _set_meta(**changes):
    def post(case: Case, adir: Path) -> None:
        meta = json.loads((adir / ".zarray").read_text())
        meta.update(changes)
        (adir / ".zarray").write_text(json.dumps(meta, indent=4, sort_keys=True))

    return post


add("errors/unsupported_codec", (6, 5), (3, 3), "<i4", Zlib(level=1),
    post=_set_meta(compressor={"id": "zarrfs-test-unknown-codec", "level": 1}),
    error="unsupported_codec", expected_available=False, zarr_readable=False,
    note="compressor id edited to an unknown codec after writing; every chunk is present")
add("errors/unsupported_filter", (6, 5), (3, 3), "<i4", None,
    post=_set_meta(filters=[{"id": "zarrfs-test-unknown-filter"}]),
    error="unsupported_codec", expected_available=False, zarr_readable=False,
    note="filters edited to an unknown filter after writing; every chunk is present")

CORRUPT_SHAPE, CORRUPT_CHUNKS = (6, 4096), (1, 4096)


def _corrupt(case: Case, adir: Path) -> None:
    # chunk 1.0: garbage bytes; chunk 3.0: truncated to half (5.0 is removed via remove_chunks)
    (adir / "1.0").write_bytes(b"this is not a valid compressed chunk, just garbage\n" * 3)
    data = (adir / "3.0").read_bytes()
    (adir / "3.0").write_bytes(data[: len(data) // 2])


add("errors/corrupt_chunks", CORRUPT_SHAPE, CORRUPT_CHUNKS, "|u1", Blosc("lz4", 5, SHUFFLE), fill_value=7,
    data=lambda rng: (np.arange(6 * 4096) % 251).astype("|u1").reshape(CORRUPT_SHAPE),
    post=_corrupt, remove_chunks=[(5, 0)], error="corrupt_chunks", bad_chunks=["1.0", "3.0"], zarr_readable=False,
    note="1.0 holds garbage, 3.0 is truncated, 5.0 is missing (reads as fill 7); each chunk is exactly "
         "one 4096-byte page of data, so reads of data confined to pages of good chunks succeed")


def _raw_truncate(case: Case, adir: Path) -> None:
    data = (adir / "1.1").read_bytes()
    (adir / "1.1").write_bytes(data[:5])


add("errors/raw_truncated", (4, 6), (2, 3), "<i4", None, post=_raw_truncate, error="corrupt_chunks",
    bad_chunks=["1.1"], zarr_readable=False,
    note="no compressor; chunk 1.1 truncated to 5 bytes (size mismatch)")


def _wrong_size(case: Case, adir: Path) -> None:
    (adir / "0").write_bytes(zlib.compress(b"short"))


add("errors/decoded_size_mismatch", (8,), (4,), "<i4", Zlib(level=1), post=_wrong_size,
    error="corrupt_chunks", bad_chunks=["0"], zarr_readable=False,
    note="chunk 0 is a valid zlib stream that decodes to 5 bytes instead of 16")
add("errors/ok_sibling", (4,), (2,), "<i2", None, note="healthy array next to the broken ones")

MALFORMED = {
    "errors/malformed": b'{"zarr_format": 2, "shape": [4], this is not json\n',
    "errors/missing_shape": json.dumps({"zarr_format": 2, "chunks": [2], "dtype": "<i4", "compressor": None,
                                        "fill_value": 0, "filters": None, "order": "C"}, indent=4).encode(),
}

# ----------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------


def case_fill(case: Case, dt: np.dtype) -> np.ndarray:
    return np.zeros((), dt) if case.fill_value is None else np.array(case.fill_value, dt)


def region_to_index(reg, chunks) -> tuple[slice, ...]:
    if all(isinstance(r, int) for r in reg):  # chunk index
        return tuple(slice(i * c, (i + 1) * c) for i, c in zip(reg, chunks))
    return tuple(reg)


def make_data(case: Case) -> np.ndarray:
    rng = np.random.default_rng(seed_for(case.path))
    if callable(case.data):
        arr = np.asarray(case.data(rng))
    elif case.data == "smooth":
        arr = smooth_data(case.dtype, case.shape, rng)
    else:
        arr = rand_data(case.dtype, case.shape, rng)
    arr = arr.astype(np.dtype(case.dtype))
    assert arr.shape == tuple(case.shape), (case.path, arr.shape)
    return arr


def write_case(root: zarr.Group, case: Case) -> np.ndarray:
    """Create the array, write data; return the intended full array."""
    parent, name = case.path.rsplit("/", 1)
    grp = root[parent]
    dt = np.dtype(case.dtype)
    arr = grp.create_array(
        name=name,
        shape=case.shape,
        chunks=case.chunks,
        dtype=dt,
        compressors=case.compressor,
        filters=case.filters,
        fill_value=case.fill_value,
        order=case.order,
        chunk_key_encoding={"name": "v2", "separator": case.separator},
        attributes=case.attributes,
        config={"write_empty_chunks": case.write_empty_chunks},
    )
    data = make_data(case)
    intended = np.full(tuple(case.shape), case_fill(case, dt), dtype=dt)
    if case.regions is None:
        arr[...] = data
        intended[...] = data
    else:
        for reg in case.regions:
            sel = region_to_index(reg, case.chunks)
            arr[sel] = data[sel]
            intended[sel] = data[sel]
    back = arr[...]
    assert identical(zarr_result(back, dt), intended), f"{case.path}: zarr read-back differs"
    return intended


def zero_gzip_mtime(path: Path) -> None:
    b = bytearray(path.read_bytes())
    assert b[:2] == b"\x1f\x8b", path
    b[4:8] = b"\0\0\0\0"
    path.write_bytes(bytes(b))


def bad_region(name: str, shape, chunks) -> list[list[int]]:
    idx = tuple(int(x) for x in name.split(".")) if shape else ()
    return [[r.start, r.stop] for r in chunk_region(idx, shape, chunks)]


def try_tensorstore(path: Path, expected: np.ndarray) -> str:
    """Cross-check with tensorstore when it is available and supports the codec."""
    try:
        import tensorstore as ts  # noqa: PLC0415
    except ImportError:
        return "unavailable"
    try:
        t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}, open=True).result()
        got = np.asarray(t.read().result())
    except Exception as e:  # codec not supported by tensorstore etc.
        return f"skipped ({type(e).__name__})"
    if not identical(got.astype(expected.dtype), expected):
        raise AssertionError(f"tensorstore disagrees on {path}")
    return "ok"


def main() -> int:
    # Only this script's outputs: tests/fixtures holds other fixtures too.
    for path in (STORE, EXPECTED):
        if path.exists():
            shutil.rmtree(path)
    for path in (MANIFEST, GROUPS):
        path.unlink(missing_ok=True)
    EXPECTED.mkdir(parents=True)

    root = zarr.open_group(str(STORE), mode="w", zarr_format=2, attributes=GROUP_ATTRS[""])
    for gpath in sorted(p for p in GROUP_ATTRS if p):
        root.create_group(gpath, attributes=GROUP_ATTRS[gpath])

    intended: dict[str, np.ndarray] = {}
    for case in CASES:
        intended[case.path] = write_case(root, case)

    # normalise gzip headers for deterministic output
    for case in CASES:
        if isinstance(case.compressor, GZip):
            for p in (STORE / case.path).rglob("*"):
                if p.is_file() and not p.name.startswith("."):
                    zero_gzip_mtime(p)

    # post-processing (removed chunks, corruption, metadata edits)
    for case in CASES:
        for idx in case.remove_chunks:
            chunk_file(STORE / case.path, idx, case.separator).unlink()
            reg = chunk_region(idx, case.shape, case.chunks)
            exp = intended[case.path]
            exp[reg] = case_fill(case, exp.dtype)
        if case.post:
            case.post(case, STORE / case.path)
    for gpath in GROUPS_WITHOUT_ZATTRS:
        (STORE / gpath / ".zattrs").unlink()
    for mpath, content in MALFORMED.items():
        d = STORE / mpath
        d.mkdir(parents=True)
        (d / ".zarray").write_bytes(content)
        (d / ".zattrs").write_text("{}")
        (d / "0").write_bytes(np.arange(4, dtype="<i4").tobytes())

    # ---- verification and manifest ----
    manifest = []
    ts_report: dict[str, list[str]] = {}
    for case in CASES:
        adir = STORE / case.path
        meta = json.loads((adir / ".zarray").read_text())
        dt = np.dtype(meta["dtype"])
        assert dt == np.dtype(case.dtype) and meta["dtype"] == dt.str, (case.path, meta["dtype"])
        assert meta["order"] == case.order and meta["zarr_format"] == 2
        assert list(meta["shape"]) == list(case.shape) and list(meta["chunks"]) == list(case.chunks)
        sep_key = meta.get("dimension_separator")
        disk_sep = case.separator
        ndim = len(case.shape)
        present = list_present(adir, ndim, disk_sep)
        # nothing unexpected lying around
        if disk_sep == "." or ndim <= 1:
            stray = [p.name for p in adir.iterdir() if not p.name.startswith(".")
                     and (tuple(int(x) for x in p.name.split(".")) if ndim else ()) not in present]
            assert not stray, (case.path, stray)
        exp = intended[case.path]
        fill = parse_fill(meta["fill_value"], dt)
        bad_idx = {tuple(int(x) for x in b.split(".")) if ndim else () for b in case.bad_chunks}

        # which chunks were expected to be present
        all_idx = all_chunk_indices(list(case.shape), list(case.chunks))
        if math.prod(case.shape) == 0:
            all_idx = []
        if case.regions is None and case.write_empty_chunks:
            want_present = set(all_idx)
        elif case.regions is not None:
            want_present = set()
            for reg in case.regions:
                sel = region_to_index(reg, case.chunks)
                for idx in all_idx:
                    creg = chunk_region(idx, case.shape, case.chunks)
                    if all(max(a.start, b.start) < min(a.stop, b.stop) for a, b in zip(sel, creg)):
                        want_present.add(idx)
        else:  # write_empty_chunks=False: chunks equal to fill are not stored
            want_present = {idx for idx in all_idx
                            if not identical(expected_chunk(exp, idx, case.chunks, fill),
                                             np.full(tuple(case.chunks), fill, dt))}
            assert want_present != set(all_idx), case.path
        want_present -= set(case.remove_chunks)
        assert set(present) == want_present, (case.path, sorted(present), sorted(want_present))

        if case.error == "unsupported_codec":
            assert set(present) == set(all_idx), case.path
            try:
                zarr.open_array(str(adir), mode="r")[...]
            except Exception:
                pass
            else:
                raise AssertionError(f"{case.path}: zarr-python unexpectedly reads it")
        else:
            # reference decoder over the good chunks equals the expected array
            ref = reference_read(adir, meta, disk_sep, skip=bad_idx)
            for idx in all_idx:
                reg = chunk_region(idx, case.shape, case.chunks)
                if idx in bad_idx:
                    with_err = False
                    try:
                        decode_chunk(meta, chunk_file(adir, idx, disk_sep).read_bytes())
                    except Exception:
                        with_err = True
                    assert with_err, f"{case.path}: bad chunk {idx} decodes"
                    try:
                        zarr.open_array(str(adir), mode="r")[reg]
                    except Exception:
                        pass
                    else:
                        raise AssertionError(f"{case.path}: zarr-python reads bad chunk {idx}")
                    continue
                assert identical(ref[reg], exp[reg]), (case.path, idx)
                p = chunk_file(adir, idx, disk_sep)
                if p.is_file() and not case.garbage_padding:  # stored padding equals fill_value as well
                    assert identical(decode_chunk(meta, p.read_bytes()),
                                     expected_chunk(exp, idx, case.chunks, fill)), (case.path, idx, "padding")
                if case.error == "corrupt_chunks":  # zarr-python reads the good chunks
                    got = zarr_result(zarr.open_array(str(adir), mode="r")[reg], dt)
                    assert identical(got, exp[reg]), (case.path, idx)
            if case.zarr_readable:
                got = zarr_result(zarr.open_array(str(adir), mode="r")[...], dt)
                assert identical(got, exp), f"{case.path}: zarr-python differs from expected"
                ts_report.setdefault(try_tensorstore(adir, exp), []).append(case.path)

        expected_rel = None
        if case.expected_available:
            out = EXPECTED / (case.path + ".npy")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, c_order(exp), allow_pickle=False)
            back = np.load(out)
            assert identical(back, exp) and back.dtype.str == dt.str, case.path
            expected_rel = str(out.relative_to(FIXTURES)).replace(os.sep, "/")

        attrs_file = adir / ".zattrs"
        attrs = json.loads(attrs_file.read_text()) if attrs_file.exists() else {}
        assert attrs == case.attributes, case.path
        manifest.append({
            "path": case.path,
            "shape": list(case.shape),
            "chunks": list(case.chunks),
            "dtype": dt.str,
            "order": meta["order"],
            "fill_value": meta["fill_value"],
            "zarr_format": 2,
            "compressor": meta["compressor"],
            "filters": meta["filters"],
            "dimension_separator": sep_key,
            "chunk_key_separator": disk_sep,
            "grid": grid_of(list(case.shape), list(case.chunks)),
            "attributes": attrs,
            "expected": expected_rel,
            "error": case.error,
            "bad_chunks": list(case.bad_chunks),
            "bad_regions": [bad_region(b, list(case.shape), list(case.chunks)) for b in case.bad_chunks],
            "present_chunks": [mount_name(i) for i in present],
            "note": case.note,
        })

    for mpath in MALFORMED:
        try:
            zarr.open_array(str(STORE / mpath), mode="r")
        except Exception:
            pass
        else:
            raise AssertionError(f"{mpath}: zarr-python opens malformed metadata")
        manifest.append({
            "path": mpath, "shape": None, "chunks": None, "dtype": None, "order": None,
            "fill_value": None, "zarr_format": 2, "compressor": None, "filters": None,
            "dimension_separator": None, "chunk_key_separator": None, "grid": None, "attributes": {},
            "expected": None, "error": "malformed_metadata", "bad_chunks": [], "bad_regions": [],
            "present_chunks": [],
            "note": "invalid .zarray: the node must be left out of the mount (with a warning), the rest mounts",
        })

    manifest.sort(key=lambda e: e["path"])
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n")

    groups = []
    for gpath in sorted(GROUP_ATTRS):
        gdir = STORE / gpath if gpath else STORE
        assert (gdir / ".zgroup").is_file(), gpath
        za = gdir / ".zattrs"
        attrs = json.loads(za.read_text()) if za.exists() else {}
        assert attrs == GROUP_ATTRS[gpath], gpath
        if gpath not in GROUPS_WITHOUT_ZATTRS:
            assert zarr.open_group(str(gdir), mode="r").attrs.asdict() == attrs, gpath
        groups.append({"path": gpath, "attributes": attrs})
    GROUPS.write_text(json.dumps(groups, indent=2, ensure_ascii=False) + "\n")

    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    nfiles = sum(1 for p in FIXTURES.rglob("*") if p.is_file())
    print(f"wrote {len(manifest)} arrays ({len(MALFORMED)} malformed), {len(groups)} groups, "
          f"{nfiles} files, {total} bytes")
    for k, v in sorted(ts_report.items()):
        print(f"tensorstore cross-check {k}: {len(v)}" + (f" {v}" if k != "ok" else ""))
    assert total < 2_000_000, total
    return 0


if __name__ == "__main__":
    sys.exit(main())
