#!/usr/bin/env python3
"""Generate the committed Zarr v3 sharding fixtures.

Writes (after deleting them) into tests/fixtures/:

  v3-sharded.zarr/                 one Zarr v3 store: arrays written by zarr-python 3
                                   (zp/), by tensorstore (ts/), and damaged ones (bad/)
  v3-sharded-expected/<path>.npy   the full array each must read as (C order, the byte
                                   order of the views: the inner `bytes` codec's)
  v3-sharded-manifest.json         one entry per array (see MANIFEST FORMAT)

Requirements: zarr-python 3.1.x, tensorstore, numcodecs, numpy (tests/interop/requirements.txt).
Every array that is not damaged is read back by both zarr-python and tensorstore, which must
agree with the expected values. The output is deterministic: fixed seeds, and gzip headers
inside shards get a zero mtime.

MANIFEST FORMAT (a JSON list sorted by path):

  path            array path inside the store
  writer          "zarr-python" or "tensorstore" (bad/ arrays: written by zarr-python)
  shape           array shape
  chunks          shape of the chunk files: the inner chunks of a lone sharding codec, else
                  the chunk grid's (whole shards decoded)
  shards          shard shape for a lone sharding codec, else null
  dtype           NumPy dtype of the views (data, data.npy, chunks/*)
  fill_value      fill_value as in zarr.json
  index_location  "start" or "end" (of the outer sharding codec)
  expected        relative path (from tests/fixtures) of the .npy with the full array
  present_shards  store keys (relative to the array) of the shards in the store
  bad_chunks      mount chunk names whose reads must fail with EIO (bad/ arrays)
  bad_shards      store keys of the damaged shards (what the log lines name)
  note            what the case exercises
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import google_crc32c  # a dependency of zarr-python
import numpy as np
import zarr
from zarr.codecs import ShardingCodec, TransposeCodec

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
STORE = FIXTURES / "v3-sharded.zarr"
EXPECTED = FIXTURES / "v3-sharded-expected"
MANIFEST = FIXTURES / "v3-sharded-manifest.json"

ABSENT = 2**64 - 1


def b(endian: str = "little") -> dict:
    return {"name": "bytes", "configuration": {"endian": endian}}


CRC = {"name": "crc32c"}
ZSTD = {"name": "zstd", "configuration": {"level": 3, "checksum": False}}
GZIP = {"name": "gzip", "configuration": {"level": 5}}


def blosc(typesize: int, cname: str = "lz4", shuffle: str = "shuffle") -> dict:
    return {"name": "blosc", "configuration": {"cname": cname, "clevel": 5, "shuffle": shuffle,
                                               "typesize": typesize, "blocksize": 0}}


def sharding(inner, codecs, location="end", index_codecs=None) -> dict:
    return {"name": "sharding_indexed", "configuration": {
        "chunk_shape": list(inner), "codecs": codecs,
        "index_codecs": index_codecs if index_codecs is not None else [b(), CRC],
        "index_location": location}}


@dataclass
class Case:
    path: str
    writer: str
    data_type: str
    shape: tuple
    grid: tuple                  # chunk_grid chunk_shape (the shard shape when sharding is alone)
    codecs: list                 # the array's v3 codecs
    fill: Any
    note: str
    box: tuple | None = None     # region written (None: everything)
    points: int = 0              # write this many single elements instead
    damage: Callable | None = None
    bad_chunks: list = field(default_factory=list)
    bad_shards: list = field(default_factory=list)

    @property
    def lone(self) -> dict | None:
        return self.codecs[0] if len(self.codecs) == 1 and self.codecs[0]["name"] == "sharding_indexed" else None

    @property
    def outer(self) -> dict:
        return next(c for c in self.codecs if c["name"] == "sharding_indexed")

    def view_dtype(self) -> np.dtype:
        dt = np.dtype({"bool": "b1", "int8": "i1", "uint8": "u1"}.get(self.data_type, self.data_type))
        if dt.itemsize == 1:
            return dt
        inner = self.outer["configuration"]["codecs"]
        while inner[0]["name"] != "bytes":
            inner = [c for c in inner if c["name"] != "transpose"]
            if inner[0]["name"] == "sharding_indexed":
                inner = inner[0]["configuration"]["codecs"]
        return dt.newbyteorder(">" if inner[0]["configuration"]["endian"] == "big" else "<")


def values(case: Case, rng: np.random.Generator) -> np.ndarray:
    dt = case.view_dtype()
    n = math.prod(case.shape)
    if dt.kind == "b":
        v = rng.random(n) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(dt.newbyteorder("="))
        v = rng.integers(max(info.min, -30000), min(info.max, 30000), size=n, endpoint=True)
    else:
        v = np.round(rng.standard_normal(n) * 100, 3)
    return np.asarray(v).astype(dt).reshape(case.shape)


def fill_array(case: Case) -> np.ndarray:
    dt = case.view_dtype()
    f = case.fill
    if isinstance(f, str):
        f = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[f]
    return np.full(case.shape, f, dtype=dt)


# ----------------------------------------------------------------------------
# damage: edits of a stored shard (index entries are little-endian, crc32c)
# ----------------------------------------------------------------------------


def index_span(shard: bytes, location: str, n: int) -> slice:
    size = 16 * n + 4
    return slice(0, size) if location == "start" else slice(len(shard) - size, len(shard))


def read_index(shard: bytes, location: str, n: int) -> list[tuple[int, int]]:
    raw = shard[index_span(shard, location, n)][:-4]
    vals = struct.unpack(f"<{2 * n}Q", raw)
    return [(vals[2 * i], vals[2 * i + 1]) for i in range(n)]


def write_index(shard: bytes, location: str, entries: list[tuple[int, int]]) -> bytes:
    raw = struct.pack(f"<{2 * len(entries)}Q", *[x for e in entries for x in e])
    index = raw + struct.pack("<I", google_crc32c.value(raw))
    span = index_span(shard, location, len(entries))
    return shard[:span.start] + index + shard[span.stop:]


def per_shard(case: Case) -> int:
    cfg = case.outer["configuration"]
    return math.prod(g // c for g, c in zip(case.grid, cfg["chunk_shape"]))


def shard_path(case: Case, key: str) -> Path:
    return STORE / case.path / key


def flip_index_byte(case: Case) -> None:
    p = shard_path(case, "c/0/1")
    data = bytearray(p.read_bytes())
    span = index_span(bytes(data), "end", per_shard(case))
    data[span.start + 3] ^= 0x10
    p.write_bytes(bytes(data))


def point_outside(case: Case) -> None:
    p = shard_path(case, "c/1/0")
    data = p.read_bytes()
    entries = read_index(data, "end", per_shard(case))
    entries[0] = (len(data) + 100, entries[0][1])
    p.write_bytes(write_index(data, "end", entries))


def point_into_index(case: Case) -> None:
    p = shard_path(case, "c/1/1")
    data = p.read_bytes()
    n = per_shard(case)
    entries = read_index(data, "end", n)
    entries[3] = (len(data) - 16 * n - 4 - 2, entries[3][1])
    p.write_bytes(write_index(data, "end", entries))


def truncate_start_indexed(case: Case) -> None:
    p = shard_path(case, "c/0/0")
    data = p.read_bytes()
    p.write_bytes(data[:-5])


def truncate_end_indexed(case: Case) -> None:
    p = shard_path(case, "c/0/0")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def wrong_index_sizes(case: Case) -> None:
    # Shard c/0/0 is shorter than its index; c/1/1 carries an index of three entries.
    shard_path(case, "c/0/0").write_bytes(b"\0" * 20)
    p = shard_path(case, "c/1/1")
    data = p.read_bytes()
    n = per_shard(case)
    entries = read_index(data, "end", n)
    body = data[: -(16 * n + 4)]
    raw = struct.pack("<6Q", *[x for e in entries[:3] for x in e])
    p.write_bytes(body + raw + struct.pack("<I", google_crc32c.value(raw)))


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------

BAD_GRID = dict(data_type="int16", shape=(8, 8), grid=(4, 4), fill=-1)

CASES = [
    Case("zp/i4_end_zstd_edges", "zarr-python", "int32", (13, 11), (8, 8),
         [sharding((4, 4), [b(), ZSTD])], -1,
         "index at the end with crc32c; edge shards; a box written: sparse shards, a missing shard",
         box=(slice(0, 10), slice(0, 7))),
    Case("zp/f4_start_blosc_3d", "zarr-python", "float32", (5, 6, 7), (4, 6, 4),
         [sharding((2, 3, 2), [b(), blosc(4)], "start")], "NaN",
         "3-D, index at the start, blosc lz4 inner chunks, edge shards on two axes"),
    Case("zp/u2_big_gzip_1d", "zarr-python", "uint16", (50,), (20,),
         [sharding((5,), [b("big"), GZIP])], 7,
         "1-D, big-endian inner bytes, gzip, last shard partial",
         box=(slice(0, 33),)),
    Case("zp/f8_big_crc_index_big", "zarr-python", "float64", (9, 10), (6, 10),
         [sharding((3, 5), [b("big"), CRC], "end", [b("big"), CRC])], 0.5,
         "crc32c inner codec (fixed-size chunks), big-endian index and elements"),
    Case("zp/u1_sparse", "zarr-python", "uint8", (16, 16), (8, 8),
         [sharding((2, 2), [b(), ZSTD])], 0,
         "a few elements: most inner chunks absent, one shard missing", points=5),
    Case("zp/i2_transpose_inner_unchecked_index", "zarr-python", "int16", (10, 12), (5, 6),
         [sharding((5, 3), [{"name": "transpose", "configuration": {"order": [1, 0]}}, b(), ZSTD],
                   "start", [b()])],
         3, "inner transpose; index without a checksum, at the start"),
    Case("zp/i2_nested", "zarr-python", "int16", (12, 8), (8, 8),
         [sharding((4, 4), [sharding((2, 2), [b(), ZSTD])])], 0,
         "sharding nested in sharding: inner chunk files decode whole inner shards",
         box=(slice(0, 9), slice(0, 8))),
    Case("zp/u2_transpose_then_shard", "zarr-python", "uint16", (7, 8), (6, 8),
         [{"name": "transpose", "configuration": {"order": [1, 0]}},
          sharding((2, 2), [b()])], 3,
         "transpose before sharding: sharding is not alone, chunk files are whole decoded shards"),
    Case("zp/bool_gzip", "zarr-python", "bool", (30,), (16,),
         [sharding((4,), [b(), GZIP])], False, "booleans, gzip"),
    Case("ts/i4_end_zstd_edges", "tensorstore", "int32", (13, 11), (8, 8),
         [sharding((4, 4), [b(), ZSTD])], -1,
         "as zp/i4_end_zstd_edges, by tensorstore", box=(slice(0, 10), slice(0, 7))),
    Case("ts/f4_start_blosc", "tensorstore", "float32", (9, 7), (6, 4),
         [sharding((3, 2), [b(), blosc(4, "zstd", "bitshuffle")], "start")], "NaN",
         "index at the start, blosc zstd bitshuffle"),
    Case("ts/u2_big_gzip_3d", "tensorstore", "uint16", (5, 4, 6), (4, 4, 4),
         [sharding((2, 2, 2), [b("big"), GZIP])], 9,
         "3-D, big-endian, gzip, edge shards", box=(slice(0, 4), slice(0, 4), slice(0, 3))),
    Case("ts/i8_sparse_1d", "tensorstore", "int64", (20,), (8,),
         [sharding((2,), [b(), ZSTD])], 5, "a few elements, missing shards", points=3),
    Case("bad/crc_mismatch", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD])],
         note="an index byte of shard c/0/1 flipped: its crc32c fails, all its chunks fail",
         damage=flip_index_byte, bad_chunks=["0.2", "0.3", "1.2", "1.3"], bad_shards=["c/0/1"],
         **BAD_GRID),
    Case("bad/outside", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD])],
         note="the entry of one inner chunk of c/1/0 points past the end of the shard",
         damage=point_outside, bad_chunks=["2.0"], bad_shards=["c/1/0"], **BAD_GRID),
    Case("bad/overlap", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD])],
         note="the entry of one inner chunk of c/1/1 overlaps the index",
         damage=point_into_index, bad_chunks=["3.3"], bad_shards=["c/1/1"], **BAD_GRID),
    Case("bad/truncated_start", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD], "start")],
         note="c/0/0 (index at the start) cut short: the inner chunk stored last fails",
         damage=truncate_start_indexed, bad_shards=["c/0/0"], **BAD_GRID),
    Case("bad/truncated_end", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD])],
         note="c/0/0 (index at the end) cut in half: its index is unreadable",
         damage=truncate_end_indexed, bad_chunks=["0.0", "0.1", "1.0", "1.1"],
         bad_shards=["c/0/0"], **BAD_GRID),
    Case("bad/index_size", "zarr-python", codecs=[sharding((2, 2), [b(), ZSTD])],
         note="c/0/0 is shorter than its index; c/1/1 ends with an index of three entries",
         damage=wrong_index_sizes,
         bad_chunks=["0.0", "0.1", "1.0", "1.1", "2.2", "2.3", "3.2", "3.3"],
         bad_shards=["c/0/0", "c/1/1"], **BAD_GRID),
]


# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------


def write_zarr_python(root: zarr.Group, case: Case):
    outer_at = next(i for i, c in enumerate(case.codecs) if c["name"] == "sharding_indexed")
    filters = [TransposeCodec(order=c["configuration"]["order"]) for c in case.codecs[:outer_at]]
    arr = root.create_array(
        case.path, shape=case.shape, chunks=case.grid, dtype=case.data_type,
        fill_value=case.fill if case.fill != "NaN" else np.nan,
        serializer=ShardingCodec.from_dict(case.codecs[outer_at]),
        filters=filters or None, compressors=None, attributes={"writer": case.writer})
    return arr


def write_tensorstore(case: Case):
    import tensorstore as ts  # noqa: PLC0415

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(STORE / case.path)},
            "metadata": {"shape": list(case.shape), "data_type": case.data_type,
                         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(case.grid)}},
                         "chunk_key_encoding": {"name": "default"},
                         "fill_value": case.fill, "codecs": case.codecs,
                         "attributes": {"writer": case.writer}}}
    return ts.open(spec, create=True).result()


def write_case(root: zarr.Group, case: Case) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(case.path.encode()))
    data = values(case, rng)
    expected = fill_array(case)
    if case.points:
        flat = rng.choice(math.prod(case.shape), size=case.points, replace=False)
        sels = [np.unravel_index(int(i), case.shape) for i in sorted(flat)]
    else:
        sels = [case.box if case.box is not None else tuple(slice(None) for _ in case.shape)]
    arr = write_tensorstore(case) if case.writer == "tensorstore" else write_zarr_python(root, case)
    for sel in sels:
        if case.writer == "tensorstore":
            arr[sel].write(data[sel]).result()
        else:
            arr[sel] = data[sel]
        expected[sel] = data[sel]
    return expected


def gzip_inner(cfg: dict) -> bool:
    return any(c["name"] == "gzip" for c in cfg["configuration"]["codecs"])


def zero_gzip_mtimes(case: Case) -> None:
    """Zero the mtime of every gzip member inside the shards (sizes and offsets unchanged)."""
    if case.lone is None or not gzip_inner(case.lone):
        return
    cfg = case.lone["configuration"]
    n = per_shard(case)
    for p in sorted((STORE / case.path / "c").rglob("*")):
        if not p.is_file():
            continue
        data = bytearray(p.read_bytes())
        for off, size in read_index(bytes(data), cfg["index_location"], n):
            if off != ABSENT and data[off:off + 2] == b"\x1f\x8b":
                data[off + 4:off + 8] = b"\0\0\0\0"
        p.write_bytes(bytes(data))


def read_zarr_python(case: Case) -> np.ndarray:
    return np.asarray(zarr.open_array(str(STORE / case.path), mode="r")[...])


def read_tensorstore(case: Case) -> np.ndarray:
    import tensorstore as ts  # noqa: PLC0415

    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(STORE / case.path)}},
                read=True).result()
    return np.asarray(t.read().result())


def identical(a: np.ndarray, b_: np.ndarray) -> bool:
    return a.shape == b_.shape and np.array_equal(a.astype(b_.dtype), b_, equal_nan=b_.dtype.kind in "fc")


def truncated_bad_chunks(case: Case) -> list[str]:
    """The inner chunks of shard c/0/0 (index at the start) whose bytes now pass its end."""
    cfg = case.lone["configuration"]
    per = [g // c for g, c in zip(case.grid, cfg["chunk_shape"])]
    data = (STORE / case.path / "c/0/0").read_bytes()
    entries = read_index(data, "start", math.prod(per))
    return [".".join(str(x) for x in local)
            for (off, n), local in zip(entries, np.ndindex(*per))
            if off != ABSENT and off + n > len(data)]


def main() -> int:
    for p in (STORE, EXPECTED):
        if p.exists():
            shutil.rmtree(p)
    EXPECTED.mkdir(parents=True)
    root = zarr.open_group(str(STORE), mode="w", zarr_format=3,
                           attributes={"fixtures": "v3 sharding"})
    for group in ("zp", "ts", "bad"):
        root.create_group(group, attributes={"group": group})
    manifest = []
    for case in CASES:
        expected = write_case(root, case)
        zero_gzip_mtimes(case)
        if case.damage is None:
            for name, got in (("zarr-python", read_zarr_python(case)),
                              ("tensorstore", read_tensorstore(case))):
                assert identical(got, expected), f"{case.path}: {name} disagrees"
        else:
            case.damage(case)
            if case.damage is truncate_start_indexed:
                case.bad_chunks = truncated_bad_chunks(case)
                assert case.bad_chunks, case.path
        rel = f"v3-sharded-expected/{case.path}.npy"
        (FIXTURES / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(FIXTURES / rel, np.ascontiguousarray(expected))
        lone = case.lone
        outer = case.outer["configuration"]
        array_dir = STORE / case.path
        manifest.append({
            "path": case.path,
            "writer": case.writer,
            "shape": list(case.shape),
            "chunks": list(outer["chunk_shape"] if lone else case.grid),
            "shards": list(case.grid) if lone else None,
            "dtype": case.view_dtype().str,
            "fill_value": json.loads((array_dir / "zarr.json").read_text())["fill_value"],
            "index_location": outer.get("index_location", "end"),
            "expected": rel,
            "present_shards": sorted(str(p.relative_to(array_dir)) for p in array_dir.rglob("*")
                                     if p.is_file() and p.name != "zarr.json"),
            "bad_chunks": case.bad_chunks,
            "bad_shards": case.bad_shards,
            "note": case.note,
        })
    manifest.sort(key=lambda e: e["path"])
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(p.stat().st_size for p in STORE.rglob("*") if p.is_file())
    print(f"wrote {len(manifest)} arrays, {size} bytes of store")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
