#!/usr/bin/env python3
"""Generate the committed Zarr v3 test fixtures (unsharded arrays).

Writes (after deleting) tests/fixtures/:

  v3.zarr/                    one store written by three independent writers:
      python/                 zarr-python 3 (its default codecs and explicit ones)
      tensorstore/            tensorstore's zarr3 driver (tensorstore/implicit has no
                              zarr.json: an implicit group)
      zarrs/                  zarr-python driving the zarrs codec pipeline (the zarrs Rust
                              crate encodes and decodes every chunk)
      mixed/                  a v3 group holding a v2 array and a v2 group holding a v3
                              array; a node holding both zarr.json and .zarray (v3 wins)
      consolidated/           an array described only by the root's consolidated metadata
      errors/                 a crc32c mismatch, a truncated chunk, an unknown codec
    The root zarr.json carries consolidated metadata (zarr.consolidate_metadata), less the
    two arrays whose metadata is edited afterwards into forms zarr-python cannot parse.
  v3-expected/<path>.npy      each array's values as zarr-python reads them (tensorstore
                              agrees where it reads the array), in the byte order of the
                              array's `bytes` codec, C order
  v3-manifest.json            one entry per array (see MANIFEST FORMAT)
  v3-groups.json              one entry per group: path, attributes as stored (bare NaN and
                              Infinity as Python writes them), implicit or not

Requirements: zarr-python 3.1.x, numpy, tensorstore, zarrs (tests/interop/requirements.txt).
Output is deterministic: fixed seeds, gzip headers with a zero mtime.

MANIFEST FORMAT (v3-manifest.json, a JSON list sorted by path):

  path              array path in the store, '/'-separated
  writer            "zarr-python" | "tensorstore" | "zarrs" | "edited" (metadata rewritten
                    after a writer wrote the chunks; see note)
  zarr_format       3, or 2 for the v2 array of the mixed tree
  shape, chunks     lists of ints ([] for 0-d)
  grid              chunks along each dimension
  dtype             NumPy type string of the views (byte order of the `bytes` codec)
  fill_value        fill_value as stored
  fill_hex          one element of fill value in the views' byte order, hex
  codecs            the `codecs` list as stored (v2: [compressor] or [])
  chunk_key_encoding  as stored (null for v2)
  dimension_names   as stored (null when absent)
  attributes        user attributes as stored (may hold NaN/Infinity)
  expected          path (from tests/fixtures) of the .npy with the full array, or null
  present_chunks    mount-style names ('.'-joined, "0" for 0-d) of the chunks stored
  stored_keys       their store keys relative to the array (e.g. "c/0/1", "c.0.1", "0.1")
  readers           independent readers that read the store exactly as expected:
                    subset of ["zarr-python", "tensorstore"]; "zarr-python-consolidated"
                    when zarr-python reads it only through the root's consolidated metadata
  error             null | "corrupt_chunks" | "unsupported_codec"
  bad_chunks        mount-style names whose reads must fail with EIO
  note              free text
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (  # noqa: E402  shared helpers of the v2 generator
    c_order,
    grid_of,
    identical,
    mount_name,
    rand_data,
    seed_for,
    smooth_data,
    zero_gzip_mtime,
)

warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
STORE = FIXTURES / "v3.zarr"
EXPECTED = FIXTURES / "v3-expected"
MANIFEST = FIXTURES / "v3-manifest.json"
GROUPS = FIXTURES / "v3-groups.json"

ZARRS = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True}
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOATS = ["float16", "float32", "float64", "complex64", "complex128"]
V3_TO_NUMPY = {"bool": "b1", **{t: f"{t[0]}{int(t.strip('uint')) // 8}" for t in INTS},
               "float16": "f2", "float32": "f4", "float64": "f8", "complex64": "c8", "complex128": "c16"}


def numpy_dtype(v3: str, big: bool) -> np.dtype:
    """The views' dtype of a v3 data type stored with a `bytes` codec of that endian."""
    dt = np.dtype(V3_TO_NUMPY[v3])
    return dt if dt.itemsize == 1 else dt.newbyteorder(">" if big else "<")


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------


@dataclass
class Case:
    path: str
    writer: str  # "zarr-python" | "zarrs" | "tensorstore"
    shape: tuple
    chunks: tuple
    dtype: str  # v3 data type name, or a NumPy string for raw bytes ("V3")
    big: bool = False  # `bytes` codec endian big
    filters: list = field(default_factory=list)  # zarr-python array→array codecs
    compressors: Any = "default"  # zarr-python bytes→bytes codecs; "default" = zarr-python's
    ts_codecs: list | None = None  # tensorstore: the codecs list (bytes included)
    fill_value: Any = 0
    keys: dict | None = None  # chunk_key_encoding (None: the writer's default)
    dimension_names: list | None = None
    attributes: dict = field(default_factory=dict)
    data: str | Callable = "rand"  # "rand" | "smooth" | callable(rng) -> array
    regions: list | None = None  # None: write everything; else index boxes
    write_empty_chunks: bool = True
    post: Callable[["Case", Path], None] | None = None
    readers: tuple = ("zarr-python", "tensorstore")
    error: str | None = None
    bad_chunks: list = field(default_factory=list)
    note: str = ""


CASES: list[Case] = []


def add(*args, **kw) -> Case:
    CASES.append(Case(*args, **kw))
    return CASES[-1]


GROUP_ATTRS: dict[str, dict] = {
    "": {"title": "zarrfs v3 fixtures", "nan": float("nan"), "inf": float("inf"), "ninf": -float("inf")},
    "python": {"writer": "zarr-python"},
    "python/dtypes": {},
    "python/codecs": {"description": "one array per codec chain"},
    "python/layout": {},
    "python/fill": {},
    "tensorstore": {"writer": "tensorstore"},
    "zarrs": {"writer": "zarrs"},
    "zarrs/dtypes": {},
    "zarrs/codecs": {},
    "mixed": {"description": "a v3 group with v2 children"},
    "consolidated": {},
    "errors": {},
}
IMPLICIT_GROUPS = ["tensorstore/implicit"]
V2_GROUPS = {"mixed/v2_group": {"format": 2}}

# --- data types: every type through each writer, little- and big-endian ----
for t in ["bool"] + INTS + FLOATS:
    add(f"python/dtypes/{t}", "zarr-python", (13, 7), (4, 3), t, attributes={"data_type": t})
    add(f"zarrs/dtypes/{t}", "zarrs", (13, 7), (4, 3), t, compressors=[BloscCodec(cname="lz4", shuffle="shuffle")])
    ts_codecs = [{"name": "bytes", "configuration": {"endian": "big"}} if t not in ("bool", "int8", "uint8")
                 else {"name": "bytes"}, {"name": "gzip", "configuration": {"level": 5}}]
    add(f"tensorstore/{t}_be", "tensorstore", (13, 7), (4, 3), t, big=t not in ("bool", "int8", "uint8"),
        ts_codecs=ts_codecs)
    if t not in ("bool", "int8", "uint8"):
        add(f"python/dtypes/{t}_be", "zarr-python", (13, 7), (4, 3), t, big=True,
            compressors=[GzipCodec(level=1)])
        add(f"zarrs/dtypes/{t}_be", "zarrs", (13, 7), (4, 3), t, big=True, compressors=[ZstdCodec(level=3)])


def _raw(rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(rng.bytes(11 * 3), "V3").reshape(11)


add("python/dtypes/raw_bytes", "zarr-python", (11,), (4,), "V3", fill_value=b"\x01\x02\x03", data=_raw,
    readers=("zarr-python",), note="zarr-python's raw_bytes data type (an extension; tensorstore lacks it)")


def _as_r24(case: Case, adir: Path) -> None:
    doc = json.loads((adir / "zarr.json").read_text())
    doc["data_type"] = "r24"
    doc["fill_value"] = [1, 2, 3]
    (adir / "zarr.json").write_text(json.dumps(doc, indent=2))


add("python/dtypes/r24", "zarr-python", (11,), (4,), "V3", fill_value=b"\x01\x02\x03", data=_raw, post=_as_r24,
    readers=(), note="chunks written by zarr-python as raw_bytes, then data_type rewritten to the spec's r24 "
                     "and fill_value to its byte list: no writer here emits r<bits> and no reader here reads "
                     "it; the expected values are those written")

# --- codecs -------------------------------------------------------------------
CS, CC = (30, 25), (16, 16)
add("python/codecs/default", "zarr-python", CS, CC, "float32", data="smooth",
    note="zarr-python 3's defaults: bytes(little) + zstd(level 0)")
add("python/codecs/bytes_only", "zarr-python", CS, CC, "float32", compressors=None, data="smooth")
for cname, shuffle in [("lz4", "shuffle"), ("lz4hc", "noshuffle"), ("blosclz", "bitshuffle"), ("zstd", "shuffle"),
                       ("zlib", "bitshuffle")]:
    add(f"python/codecs/blosc_{cname}_{shuffle}", "zarr-python", CS, CC, "float32", data="smooth",
        compressors=[BloscCodec(cname=cname, clevel=5, shuffle=shuffle)])
add("python/codecs/blosc_typesize2_blocksize256", "zarr-python", CS, CC, "float32", data="smooth",
    compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=2, blocksize=256)],
    note="typesize 2 on 4-byte floats; 1024-byte chunks in 256-byte blocks")
add("python/codecs/gzip_9", "zarr-python", CS, CC, "int32", data="smooth", compressors=[GzipCodec(level=9)])
add("python/codecs/zstd_checksum", "zarr-python", CS, CC, "float64", data="smooth",
    compressors=[ZstdCodec(level=3, checksum=True)])
add("python/codecs/zstd_neg", "zarr-python", CS, CC, "uint16", data="smooth", compressors=[ZstdCodec(level=-3)])
add("python/codecs/crc32c_after_zstd", "zarr-python", CS, CC, "float32", data="smooth",
    compressors=[ZstdCodec(level=1), Crc32cCodec()])
add("python/codecs/crc32c_after_blosc", "zarr-python", CS, CC, "int16", big=True, data="smooth",
    compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"), Crc32cCodec()])
add("python/codecs/crc32c_only", "zarr-python", (9, 5), (4, 4), "int64", compressors=[Crc32cCodec()])
add("python/codecs/transpose_2d", "zarr-python", (13, 11), (5, 4), "int32", filters=[TransposeCodec(order=(1, 0))])
add("python/codecs/transpose_3d_201_be", "zarr-python", (5, 6, 7), (2, 4, 3), "float64", big=True,
    filters=[TransposeCodec(order=(2, 0, 1))], compressors=[ZstdCodec(level=1)])
add("python/codecs/transpose_3d_120", "zarr-python", (5, 6, 7), (3, 2, 4), "uint16",
    filters=[TransposeCodec(order=(1, 2, 0))], compressors=[BloscCodec(cname="lz4", shuffle="shuffle")])
add("python/codecs/transpose_3d_021_c8", "zarr-python", (4, 5, 3), (3, 2, 2), "complex64",
    filters=[TransposeCodec(order=(0, 2, 1))], compressors=[GzipCodec(level=1)])
add("python/codecs/transpose_twice", "zarr-python", (4, 6, 5), (3, 4, 2), "int8",
    filters=[TransposeCodec(order=(1, 0, 2)), TransposeCodec(order=(2, 1, 0))], compressors=None)
add("zarrs/codecs/transpose_2d_be", "zarrs", (13, 11), (5, 4), "float32", big=True,
    filters=[TransposeCodec(order=(1, 0))], compressors=[ZstdCodec(level=2)])
add("zarrs/codecs/transpose_3d", "zarrs", (5, 6, 7), (2, 4, 3), "int64",
    filters=[TransposeCodec(order=(2, 1, 0))], compressors=[GzipCodec(level=6)])
add("zarrs/codecs/blosc_zstd_bitshuffle_blocksize", "zarrs", CS, CC, "float64", data="smooth",
    compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", blocksize=512)])
add("zarrs/codecs/blosc_blosclz_noshuffle", "zarrs", CS, CC, "uint8", data="smooth",
    compressors=[BloscCodec(cname="blosclz", clevel=9, shuffle="noshuffle")])
add("zarrs/codecs/zstd_checksum", "zarrs", CS, CC, "float32", data="smooth",
    compressors=[ZstdCodec(level=5, checksum=True)])
add("zarrs/codecs/gzip_crc32c", "zarrs", CS, CC, "int32", data="smooth", compressors=[GzipCodec(level=1), Crc32cCodec()])
add("zarrs/codecs/zero_d", "zarrs", (), (), "float64", compressors=[ZstdCodec(level=1)], fill_value=-1.5)
add("zarrs/codecs/dot_keys", "zarrs", (9, 8, 3), (4, 3, 2), "uint32",
    keys={"name": "default", "separator": "."}, compressors=[ZstdCodec(level=1)])
add("zarrs/codecs/v2_keys", "zarrs", (9, 8), (4, 3), "int16", keys={"name": "v2", "separator": "."},
    regions=[(slice(0, 4), slice(0, 8))])


def ts(path, shape, chunks, dtype, codecs, big=False, **kw) -> None:
    add(f"tensorstore/{path}", "tensorstore", shape, chunks, dtype, big=big, ts_codecs=codecs, **kw)


BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}
BYTES_BE = {"name": "bytes", "configuration": {"endian": "big"}}
ts("transpose_2d", (13, 11), (5, 4), "float32",
   [{"name": "transpose", "configuration": {"order": [1, 0]}}, BYTES_LE, {"name": "zstd", "configuration": {"level": 3}}])
ts("transpose_3d_be", (5, 6, 7), (2, 4, 3), "int16",
   [{"name": "transpose", "configuration": {"order": [1, 2, 0]}}, BYTES_BE,
    {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "typesize": 2,
                                         "blocksize": 0}}], big=True)
ts("zstd_checksum_crc32c", CS, CC, "float64",
   [BYTES_LE, {"name": "zstd", "configuration": {"level": 3, "checksum": True}}, {"name": "crc32c"}], data="smooth")
ts("blosc_zlib_noshuffle", CS, CC, "uint16",
   [BYTES_LE, {"name": "blosc", "configuration": {"cname": "zlib", "clevel": 1, "shuffle": "noshuffle",
                                                   "typesize": 2, "blocksize": 0}}], data="smooth")
ts("dot_keys_nan", (10, 9), (4, 4), "float32", [BYTES_LE], fill_value="NaN",
   keys={"name": "default", "configuration": {"separator": "."}}, regions=[(slice(0, 4), slice(0, 9))],
   dimension_names=["y", "x"])
ts("v2_keys", (10, 9), (4, 4), "complex128", [BYTES_BE], big=True, fill_value=["NaN", "-Infinity"],
   keys={"name": "v2"}, regions=[(slice(4, 10), slice(4, 9))])
ts("zero_d", (), (), "int16", [BYTES_LE, {"name": "zstd", "configuration": {"level": 3, "checksum": True}}],
   fill_value=-7)
ts("implicit/arr", (6, 6), (4, 4), "uint32", [BYTES_LE], fill_value=4294967295,
   regions=[(slice(0, 3), slice(0, 6))], note="its parent directory has no zarr.json: an implicit group")
ts("four_d_dimension_names", (3, 4, 2, 5), (2, 3, 2, 2), "int8", [{"name": "bytes"}],
   dimension_names=["t", None, "y", "x"])

# --- layout: keys, shapes, missing and edge chunks ---------------------------
add("python/layout/dot_keys", "zarr-python", (10, 9, 4), (4, 4, 3), "int32",
    keys={"name": "default", "separator": "."}, regions=[(slice(0, 4), slice(0, 9), slice(0, 4))])
add("python/layout/v2_keys_dot", "zarr-python", (10, 9), (4, 4), "float32", keys={"name": "v2", "separator": "."},
    compressors=[BloscCodec(cname="lz4", shuffle="shuffle")])
add("python/layout/v2_keys_slash", "zarr-python", (10, 9), (4, 4), "float32", keys={"name": "v2", "separator": "/"})
add("python/layout/one_d", "zarr-python", (100,), (7,), "int64", regions=[(slice(10, 40),)])
add("python/layout/four_d", "zarr-python", (3, 4, 2, 5), (2, 3, 2, 2), "uint8",
    dimension_names=["t", "z", "y", "x"], attributes={"units": "counts"})
add("python/layout/zero_d", "zarr-python", (), (), "float32", fill_value=2.5)
add("python/layout/zero_d_missing", "zarr-python", (), (), "int32", fill_value=-3, regions=[],
    note="0-d array never written: its one chunk is missing")
add("python/layout/zero_size", "zarr-python", (0, 5), (2, 2), "float32", regions=[])
add("python/layout/chunk_larger_than_array", "zarr-python", (3, 5), (8, 8), "int16", fill_value=-1)
add("python/layout/empty_chunks_skipped", "zarr-python", (12, 12), (4, 4), "int32", fill_value=9,
    data=lambda rng: np.where(np.indices((12, 12))[0] < 4, 9, np.arange(144).reshape(12, 12)).astype("<i4"),
    write_empty_chunks=False, note="write_empty_chunks=False: chunks equal to fill_value are not stored")
add("python/layout/dimension_names_partial", "zarr-python", (6, 4), (3, 3), "uint32",
    dimension_names=["rows", None], attributes={"nan": float("nan"), "list": [1, float("inf")]},
    readers=("zarr-python",), note="tensorstore rejects the bare NaN of its attributes as invalid JSON")

# --- fill values ---------------------------------------------------------------
FS, FC = (9, 10), (4, 4)
MISSING = [(slice(0, 4), slice(0, 4)), (slice(8, 9), slice(8, 10))]


def fill_case(name: str, dtype: str, fill: Any, big: bool = False, **kw) -> Case:
    return add(f"python/fill/{name}", "zarr-python", FS, FC, dtype, big=big, fill_value=fill, regions=MISSING,
               compressors=[ZstdCodec(level=1)], **kw)


fill_case("nan_f4", "float32", float("nan"))
fill_case("inf_f8_be", "float64", float("inf"), big=True)
fill_case("neg_inf_f2", "float16", -float("inf"))
fill_case("neg_zero_f8", "float64", -0.0)
fill_case("complex_nan_inf", "complex64", complex(float("nan"), float("inf")))
fill_case("complex_be", "complex128", complex(1.5, -2.25), big=True)
fill_case("int64_min", "int64", -(2**63))
fill_case("uint64_max_be", "uint64", 2**64 - 1, big=True)
fill_case("bool_true", "bool", True)


def _hex_fill(hex_text: str) -> Callable[[Case, Path], None]:
    def edit(case: Case, adir: Path) -> None:
        doc = json.loads((adir / "zarr.json").read_text())
        doc["fill_value"] = hex_text
        (adir / "zarr.json").write_text(json.dumps(doc, indent=2))
    return edit


fill_case("hex_nan_payload_f4", "float32", 0.0, post=_hex_fill("0x7fc00001"),
          note="fill_value edited to a hex bit pattern after writing: a NaN with a payload")
fill_case("hex_f8_be", "float64", 0.0, big=True, post=_hex_fill("0xfff0000000000001"),
          note="fill_value edited to a hex bit pattern after writing: a signalling NaN")
fill_case("hex_f2", "float16", 0.0, post=_hex_fill("0x7e01"),
          note="fill_value edited to a hex bit pattern: a float16 NaN with a payload, which tensorstore keeps "
               "and zarr-python drops (it reads 0x7e00 where chunks are missing); expected holds the declared bits")

# --- mixed v2/v3 tree, consolidated metadata, errors ---------------------------
add("mixed/v2_array", "zarr-python", (7, 6), (3, 4), "int16", big=True, compressors=None,
    note="a Zarr v2 array (.zarray, '>i2', no compressor) inside a v3 group")
add("mixed/v2_group/v3_array", "zarr-python", (7, 6), (3, 4), "float32", note="a v3 array inside a v2 group")


def _add_zarray(case: Case, adir: Path) -> None:
    """A second, v2 description of another array in the same directory, with its chunk."""
    zarray = {"zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "<f8", "compressor": None,
              "fill_value": 0.0, "order": "C", "filters": None, "dimension_separator": "."}
    (adir / ".zarray").write_text(json.dumps(zarray, indent=4))
    (adir / "0").write_bytes(np.array([7.0, 8.0], "<f8").tobytes())


add("mixed/zarr_json_and_zarray", "zarr-python", (5, 4), (2, 2), "uint16", post=_add_zarray,
    note="also holds a .zarray (and its chunk 0) describing another array: zarr.json wins, as in zarr-python")
add("consolidated/only_in_consolidated", "zarr-python", (6, 5), (4, 4), "float32",
    readers=("zarr-python-consolidated",),
    note="its zarr.json is removed after consolidation: only the root's consolidated metadata describes it")


def _flip_crc(case: Case, adir: Path) -> None:
    p = adir / "c" / "1" / "0"
    b = bytearray(p.read_bytes())
    b[0] ^= 0xFF
    p.write_bytes(bytes(b))


def _truncate(case: Case, adir: Path) -> None:
    p = adir / "c" / "0" / "1"
    p.write_bytes(p.read_bytes()[:7])


def _unknown_codec(case: Case, adir: Path) -> None:
    doc = json.loads((adir / "zarr.json").read_text())
    doc["codecs"].append({"name": "unknown_codec", "configuration": {}})
    (adir / "zarr.json").write_text(json.dumps(doc, indent=2))


add("errors/crc32c_mismatch", "zarr-python", (8, 8), (4, 4), "int32", compressors=[Crc32cCodec()], post=_flip_crc,
    error="corrupt_chunks", bad_chunks=["1.0"], readers=(),
    note="chunk c/1/0 has its first byte flipped: the crc32c check fails")
add("errors/truncated_zstd", "zarr-python", (8, 8), (4, 4), "int32", post=_truncate, error="corrupt_chunks",
    bad_chunks=["0.1"], readers=(), note="chunk c/0/1 truncated to 7 bytes")
add("errors/unknown_codec", "zarr-python", (8, 8), (4, 4), "int32", post=_unknown_codec, error="unsupported_codec",
    readers=(), note="an unknown bytes→bytes codec appended after writing: listed, every read EIO")
add("errors/ok_sibling", "zarr-python", (4,), (2,), "int8", note="a healthy array next to the broken ones")

# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------


def make_data(case: Case) -> np.ndarray:
    rng = np.random.default_rng(seed_for(case.path))
    dt = view_dtype(case)
    if callable(case.data):
        arr = np.asarray(case.data(rng))
    elif dt.kind == "V":
        arr = np.frombuffer(rng.bytes(math.prod(case.shape) * dt.itemsize), dt).reshape(case.shape)
    elif case.data == "smooth":
        arr = smooth_data(dt.str, case.shape, rng)
    else:
        arr = rand_data(dt.str, case.shape, rng)
    arr = c_order(arr.astype(dt))
    assert arr.shape == tuple(case.shape), (case.path, arr.shape)
    return arr


def view_dtype(case: Case) -> np.dtype:
    if case.dtype.startswith("V"):
        return np.dtype(case.dtype)
    if case.path == "mixed/v2_array":
        return np.dtype(">i2")
    return numpy_dtype(case.dtype, case.big)


def fill_array(case: Case, dt: np.dtype) -> np.ndarray:
    fill = case.fill_value
    if dt.kind == "V":
        return np.frombuffer(fill, dt).reshape(())
    if isinstance(fill, str):
        fill = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[fill]
    if isinstance(fill, list):
        num = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
        fill = complex(num.get(fill[0], fill[0]), num.get(fill[1], fill[1]))
    return np.array(fill, dt)


def write_zarr_python(root: zarr.Group, case: Case) -> zarr.Array:
    dt = view_dtype(case)
    kw: dict[str, Any] = {}
    if case.compressors != "default":
        kw["compressors"] = case.compressors
    if dt.kind == "V":
        dtype: Any = dt
    else:
        dtype = np.dtype(V3_TO_NUMPY[case.dtype])
        if dt.itemsize > 1:
            kw["serializer"] = BytesCodec(endian="big" if case.big else "little")
    if case.keys is not None:
        kw["chunk_key_encoding"] = case.keys
    if case.path == "mixed/v2_array":
        return zarr.create_array(str(STORE / case.path), shape=case.shape, chunks=case.chunks, dtype=dt,
                                 zarr_format=2, fill_value=case.fill_value, compressors=None,
                                 attributes=case.attributes)
    return zarr.create_array(
        str(STORE / case.path), shape=case.shape, chunks=case.chunks, dtype=dtype, filters=case.filters or None,
        fill_value=case.fill_value, dimension_names=case.dimension_names, attributes=case.attributes,
        config={"write_empty_chunks": case.write_empty_chunks}, **kw)


def write_tensorstore(case: Case):
    import tensorstore as ts  # noqa: PLC0415

    metadata: dict[str, Any] = {
        "shape": list(case.shape), "data_type": case.dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(case.chunks)}},
        "codecs": case.ts_codecs, "attributes": case.attributes,
    }
    if case.fill_value != 0:  # else tensorstore's default zero of the type
        metadata["fill_value"] = case.fill_value
    if case.keys is not None:
        metadata["chunk_key_encoding"] = case.keys
    if case.dimension_names is not None:
        metadata["dimension_names"] = case.dimension_names
    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(STORE / case.path)},
                    "metadata": metadata}, create=True).result()


def write_case(root: zarr.Group, case: Case) -> np.ndarray:
    """Creates the array with its writer and writes its data; returns what it must hold."""
    dt = view_dtype(case)
    data = make_data(case)
    intended = np.full(case.shape, fill_array(case, dt), dtype=dt)
    if case.writer == "tensorstore":
        arr = write_tensorstore(case)
    elif case.writer == "zarrs":
        with zarr.config.set(ZARRS):
            arr = write_zarr_python(root, case)
    else:
        arr = write_zarr_python(root, case)

    def put(sel):
        if case.writer == "tensorstore":
            arr[sel].write(data[sel]).result()
        elif case.writer == "zarrs":
            with zarr.config.set(ZARRS):
                arr[sel] = data[sel]
        else:
            arr[sel] = data[sel]
        intended[sel] = data[sel]

    if case.regions is None:
        put(...)
    for sel in case.regions or []:
        put(sel)
    return intended


def present_keys(adir: Path) -> list[str]:
    """Chunk object keys under an array directory (everything but metadata documents)."""
    out = []
    for dirpath, _dirs, files in os.walk(adir):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), adir).replace(os.sep, "/")
            if f not in ("zarr.json", ".zarray", ".zattrs") and not (adir / rel).is_dir():
                out.append(rel)
    return sorted(out)


def key_to_index(key: str, encoding: dict | None, ndim: int) -> tuple[int, ...]:
    if ndim == 0:
        return ()
    if encoding is None or encoding["name"] == "v2":
        sep = ((encoding or {}).get("configuration") or {}).get("separator", ".")
        return tuple(int(x) for x in key.split(sep))
    sep = (encoding.get("configuration") or {}).get("separator", "/")
    parts = key.split(sep)
    assert parts[0] == "c", key
    return tuple(int(x) for x in parts[1:])


def read_zarr(path: str, dt: np.dtype, consolidated: bool = False) -> np.ndarray:
    if consolidated:
        arr = zarr.open_group(str(STORE), mode="r", use_consolidated=True)[path]
    else:
        arr = zarr.open_array(str(STORE / path), mode="r")
    got = c_order(arr[...])
    if got.dtype != dt:
        assert got.dtype.newbyteorder("=") == dt.newbyteorder("=") or got.dtype.kind == dt.kind, (got.dtype, dt)
        got = got.astype(dt)
    return got


def read_tensorstore(path: str, dt: np.dtype, v2: bool) -> np.ndarray:
    import tensorstore as ts  # noqa: PLC0415

    t = ts.open({"driver": "zarr" if v2 else "zarr3", "kvstore": {"driver": "file", "path": str(STORE / path)}},
                open=True, read=True).result()
    return c_order(t.read().result()).astype(dt)


def main() -> int:
    for p in (STORE, EXPECTED, MANIFEST, GROUPS):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    EXPECTED.mkdir(parents=True)
    root = zarr.open_group(str(STORE), mode="w", zarr_format=3, attributes=GROUP_ATTRS[""])
    for gpath in sorted(p for p in GROUP_ATTRS if p):
        root.create_group(gpath, attributes=GROUP_ATTRS[gpath])
    for gpath, attrs in V2_GROUPS.items():
        zarr.open_group(str(STORE / gpath), mode="w", zarr_format=2, attributes=attrs)

    intended = {}
    for case in CASES:
        intended[case.path] = write_case(root, case)
        if case.post is _as_r24:  # read back before its metadata is rewritten
            assert identical(read_zarr(case.path, view_dtype(case)), intended[case.path]), case.path

    for p in STORE.rglob("*"):  # deterministic gzip headers
        if p.is_file() and p.read_bytes()[:2] == b"\x1f\x8b":
            zero_gzip_mtime(p)
    late = {_as_r24, _unknown_codec}  # edits zarr-python cannot parse: after consolidating
    for case in CASES:
        if case.post and case.post not in late:
            case.post(case, STORE / case.path)
    zarr.consolidate_metadata(str(STORE))
    root_doc = json.loads((STORE / "zarr.json").read_text())
    for case in CASES:
        if case.post in late:
            case.post(case, STORE / case.path)
            # zarr-python could not read a consolidated document it cannot parse
            del root_doc["consolidated_metadata"]["metadata"][case.path]
    (STORE / "zarr.json").write_text(json.dumps(root_doc, indent=2))
    (STORE / "consolidated" / "only_in_consolidated" / "zarr.json").unlink()
    for gpath in IMPLICIT_GROUPS:
        assert not (STORE / gpath / "zarr.json").exists(), gpath

    manifest = []
    for case in CASES:
        adir = STORE / case.path
        dt = view_dtype(case)
        exp = intended[case.path]
        v2 = case.path == "mixed/v2_array"
        doc_path = adir / (".zarray" if v2 else "zarr.json")
        if case.path.startswith("consolidated/"):
            doc = json.loads((STORE / "zarr.json").read_text())["consolidated_metadata"]["metadata"][case.path]
        else:
            doc = json.loads(doc_path.read_text())
        encoding = None if v2 else doc.get("chunk_key_encoding")
        keys = [k for k in present_keys(adir) if not (case.post is _add_zarray and k == "0")]
        present = {key_to_index(k, encoding, len(case.shape)): k for k in keys}
        fill = fill_array(case, dt)
        if isinstance(doc["fill_value"], str) and doc["fill_value"].startswith("0x"):
            # the fill edited after writing: what no write covered reads as the new fill
            bits = int(doc["fill_value"], 16).to_bytes(dt.itemsize, "big")
            fill = np.frombuffer(bits if dt.byteorder == ">" else bits[::-1], dt).reshape(())
            written = np.zeros(case.shape, bool)
            for sel in case.regions or [...]:
                written[sel] = True
            exp[~written] = fill
        # chunks that hold only fill need not be stored; everything else must be
        for idx in (np.ndindex(*grid_of(case.shape, case.chunks)) if math.prod(case.shape) else []):
            idx = tuple(int(i) for i in idx)
            reg = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, case.chunks, case.shape))
            if idx not in present and not identical(c_order(exp[reg]), np.full(exp[reg].shape, fill, dt)):
                raise AssertionError(f"{case.path}: chunk {idx} missing but not all fill")
        readers = []
        if case.error is None and "zarr-python-consolidated" in case.readers:
            assert identical(read_zarr(case.path, dt, consolidated=True), exp), case.path
            readers.append("zarr-python-consolidated")
        if case.error is None and "zarr-python" in case.readers:
            got = read_zarr(case.path, dt)
            assert identical(got, exp), f"{case.path}: zarr-python reads other values"
            readers.append("zarr-python")
        if case.error is None and "tensorstore" in case.readers:
            got = read_tensorstore(case.path, dt, v2)
            assert identical(got, exp), f"{case.path}: tensorstore reads other values"
            readers.append("tensorstore")
        if case.error is not None:
            try:
                zarr.open_array(str(adir), mode="r")[...]
            except Exception:  # noqa: BLE001
                pass
            else:
                raise AssertionError(f"{case.path}: zarr-python reads a broken array")
        out = EXPECTED / (case.path + ".npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, exp, allow_pickle=False)
        attrs = doc.get("attributes", {}) if not v2 else json.loads((adir / ".zattrs").read_text())
        manifest.append({
            "path": case.path,
            "writer": "edited" if case.post in (_as_r24,) else case.writer,
            "zarr_format": 2 if v2 else 3,
            "shape": list(case.shape),
            "chunks": list(case.chunks),
            "grid": grid_of(case.shape, case.chunks),
            "dtype": dt.str,
            "fill_value": doc["fill_value"],
            "fill_hex": fill.tobytes().hex(),
            "codecs": ([doc["compressor"]] if doc["compressor"] else []) if v2 else doc["codecs"],
            "chunk_key_encoding": encoding,
            "dimension_names": None if v2 else doc.get("dimension_names"),
            "attributes": attrs,
            "expected": str(out.relative_to(FIXTURES)).replace(os.sep, "/"),
            "present_chunks": sorted(mount_name(i) for i in present),
            "stored_keys": sorted(present.values()),
            "readers": readers,
            "error": case.error,
            "bad_chunks": case.bad_chunks,
            "note": case.note,
        })
    manifest.sort(key=lambda e: e["path"])
    MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")

    groups = []
    for gpath in sorted(set(GROUP_ATTRS) | set(V2_GROUPS) | set(IMPLICIT_GROUPS)):
        gdir = STORE / gpath
        if gpath in V2_GROUPS:
            attrs = json.loads((gdir / ".zattrs").read_text())
        elif gpath in IMPLICIT_GROUPS:
            attrs = {}
        else:
            attrs = json.loads((gdir / "zarr.json").read_text()).get("attributes", {})
        groups.append({"path": gpath, "attributes": attrs, "implicit": gpath in IMPLICIT_GROUPS})
    GROUPS.write_text(json.dumps(groups, indent=1, ensure_ascii=False) + "\n")

    total = sum(p.stat().st_size for p in (STORE, EXPECTED) for p in p.rglob("*") if p.is_file())
    print(f"wrote {len(manifest)} arrays, {len(groups)} groups, {total} bytes")
    assert total < 1_000_000, total
    return 0


if __name__ == "__main__":
    sys.exit(main())
