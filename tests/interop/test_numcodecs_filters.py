"""Interop: arrays zarr-python writes with numcodecs' filters, compressors and checksums, in
Zarr v2 (`filters`/`compressor`) and Zarr v3 (`numcodecs.<id>` codecs).

Every view of every array read through a mount equals what zarr-python reads; values written
through the mount read back in zarr-python as zarr-python would read them had it written
them itself (lossy filters round the same way); a corrupted checksum fails the reads of that
chunk only, with EIO and a log line naming it."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs.numcodecs as v3codecs
from zarr.codecs import BytesCodec

from conftest import (
    c_order,
    chunk_indices,
    chunk_name,
    expect_eio,
    expected_chunk,
    mismatch,
    read_array_file,
    read_bytes,
)

# zarr-python warns that numcodecs.* codecs are not in the v3 spec; that is what is tested.
pytestmark = pytest.mark.filterwarnings("ignore:Numcodecs codecs are not in the Zarr version 3")
RNG = np.random.default_rng(2024)
N = 1000
CHUNK = 300
WALK = np.cumsum(RNG.normal(size=N)) * 3 + 1000
SMALL = (np.cumsum(RNG.integers(-3, 4, N)) % 100).astype("<i8")
# Compressors and checksums: id and configuration as numcodecs writes them.
BZ2 = {"id": "bz2", "level": 9}
LZMA_XZ = {"id": "lzma", "format": 1, "check": -1, "preset": None, "filters": None}
LZMA_RAW = {"id": "lzma", "format": 3, "check": -1, "preset": None,
            "filters": [{"id": 3, "dist": 8}, {"id": 33, "preset": 1}]}


@dataclass
class Case:
    """One array: its dtype, filters and compressors (numcodecs configurations, in encoding
    order), values, for v3 the bytes codec's byte order, and whether the filters lose
    precision."""

    name: str
    dtype: str
    filters: list[dict]
    compressors: list[dict]
    values: Any
    order: str = "C"
    shape: tuple = (N,)
    chunks: tuple = (CHUNK,)
    endian: str = "little"
    lossy: bool = False

    def data(self, changed: bool = False) -> np.ndarray:
        """The values zarr-python writes, or (`changed`) other values written later."""
        v = np.asarray(self.values)
        if changed:
            v = ~v if v.dtype.kind == "b" else v + 1 if v.dtype.kind in "iu" else v * 1.01
        return v.reshape(self.shape).astype(self.dtype)

    def zarr_round_trips(self, fmt: int) -> bool:
        """Whether zarr-python reads back what it writes: not for v3 numcodecs filters over a
        big-endian bytes codec (it encodes values, then decodes the stored bytes as the
        filter's own little-endian type)."""
        return not (fmt == 3 and self.endian == "big" and self.filters)


CASES = [
    Case("delta_i2_i1", "<i2", [{"id": "delta", "dtype": "<i2", "astype": "|i1"}],
         [{"id": "zlib", "level": 1}], SMALL),
    Case("delta_i8", "<i8", [{"id": "delta", "dtype": "<i8"}], [BZ2], SMALL * 10**12),
    Case("delta_shuffle_u4", "<u4", [{"id": "delta", "dtype": "<u4"}],
         [{"id": "shuffle", "elementsize": 4}, LZMA_XZ], SMALL * 1000),
    Case("delta_f4", "<f4", [{"id": "delta", "dtype": "<f4"}], [], WALK),
    Case("delta_be_2d_f", ">i4", [{"id": "delta", "dtype": ">i4"}], [{"id": "zstd", "level": 5}],
         SMALL[:900], order="F", shape=(30, 30), chunks=(16, 12), endian="big"),
    Case("fso_f8_u2", "<f8", [{"id": "fixedscaleoffset", "offset": 900, "scale": 100,
                               "dtype": "<f8", "astype": "<u2"}], [{"id": "blosc"}], WALK, lossy=True),
    Case("fso_f4_i2", "<f4", [{"id": "fixedscaleoffset", "offset": 1000, "scale": 10,
                               "dtype": "<f4", "astype": "<i2"}], [], WALK, lossy=True),
    Case("fso_i4_u1", "<i4", [{"id": "fixedscaleoffset", "offset": 20, "scale": 2,
                               "dtype": "<i4", "astype": "|u1"}], [{"id": "gzip", "level": 9}], SMALL, lossy=True),
    Case("quantize_f8", "<f8", [{"id": "quantize", "digits": 3, "dtype": "<f8"}], [LZMA_RAW], WALK, lossy=True),
    Case("quantize_f4_f2", "<f4", [{"id": "quantize", "digits": 1, "dtype": "<f4", "astype": "<f2"}],
         [{"id": "lz4", "acceleration": 1}], WALK / 100, lossy=True),
    Case("bitround_f4", "<f4", [{"id": "bitround", "keepbits": 5}], [{"id": "zlib", "level": 9}], WALK, lossy=True),
    Case("bitround_f8", "<f8", [{"id": "bitround", "keepbits": 20}], [BZ2], WALK, lossy=True),
    Case("packbits", "|b1", [{"id": "packbits"}], [{"id": "crc32"}], SMALL % 3 == 0),
    Case("astype_f8_f4", "<f8", [{"id": "astype", "encode_dtype": "<f4", "decode_dtype": "<f8"}],
         [{"id": "adler32"}], WALK, lossy=True),
    Case("astype_i4_u1", "<i4", [{"id": "astype", "encode_dtype": "|u1", "decode_dtype": "<i4"}],
         [{"id": "fletcher32"}], SMALL),
    Case("delta_i4_big_bytes", "<i4", [{"id": "delta", "dtype": "<i4"}], [{"id": "zlib", "level": 5}],
         SMALL * 5, endian="big"),
    Case("bz2_1", "<i4", [], [{"id": "bz2", "level": 1}], SMALL * 7),
    Case("lzma_alone", "<f8", [], [{"id": "lzma", "format": 2, "check": -1, "preset": 6, "filters": None}], WALK),
    Case("lzma_sha256_p9", "<u2", [], [{"id": "lzma", "format": 1, "check": 10, "preset": 9,
                                        "filters": None}], SMALL),
    Case("lzma_raw", ">f8", [], [LZMA_RAW], WALK, endian="big"),
    Case("shuffle_f8", "<f8", [], [{"id": "shuffle", "elementsize": 8}], WALK),
    Case("crc32_end", "<i2", [], [{"id": "zstd", "level": 1}, {"id": "crc32", "location": "end"}], SMALL),
    Case("adler32_end", "<u8", [], [{"id": "adler32", "location": "end"}], SMALL),
    Case("crc32c_start", "<f4", [], [{"id": "crc32c", "location": "start"}], WALK),
    Case("fletcher32_odd", "|u1", [], [{"id": "fletcher32"}], SMALL),
    Case("jenkins", "<c8", [], [{"id": "jenkins_lookup3", "initval": 7}], WALK + 1j * WALK[::-1]),
]

V3_CLASSES = {
    "delta": v3codecs.Delta, "fixedscaleoffset": v3codecs.FixedScaleOffset,
    "quantize": v3codecs.Quantize, "bitround": v3codecs.BitRound,
    "packbits": v3codecs.PackBits, "astype": v3codecs.AsType, "blosc": v3codecs.Blosc,
    "lz4": v3codecs.LZ4, "zstd": v3codecs.Zstd, "zlib": v3codecs.Zlib, "gzip": v3codecs.GZip,
    "bz2": v3codecs.BZ2, "lzma": v3codecs.LZMA, "shuffle": v3codecs.Shuffle,
    "crc32": v3codecs.CRC32, "crc32c": v3codecs.CRC32C, "adler32": v3codecs.Adler32,
    "fletcher32": v3codecs.Fletcher32, "jenkins_lookup3": v3codecs.JenkinsLookup3,
}
# Zarr v3 has no Fortran order; zarr-python 3 cannot read a v3 quantize whose astype has
# another size (it decodes the stored bytes as the array's type).
V3_CASES = [c for c in CASES if c.order == "C" and c.name != "quantize_f4_f2"]


def numcodecs_of(config: dict):
    return numcodecs.get_codec(dict(config))


def v3_codec(config: dict):
    config = dict(config)
    return V3_CLASSES[config.pop("id")](**config)


def create(store: Path, case: Case, fmt: int) -> zarr.Array:
    common = dict(shape=case.shape, chunks=case.chunks, dtype=case.dtype, fill_value=0,
                  zarr_format=fmt, overwrite=True)
    if fmt == 2:
        compressors = [numcodecs_of(c) for c in case.compressors]
        filters = [numcodecs_of(f) for f in case.filters] + compressors[:-1]
        return zarr.create_array(store, name=case.name, filters=filters or None,
                                 compressors=compressors[-1] if compressors else None,
                                 order=case.order, **common)
    return zarr.create_array(store, name=case.name,
                             filters=[v3_codec(f) for f in case.filters] or None,
                             compressors=[v3_codec(c) for c in case.compressors] or None,
                             serializer=BytesCodec(endian=case.endian), **common)


def view_dtype(case: Case, fmt: int) -> np.dtype:
    """The element type of the mount's views: v2's declared dtype; for v3 the data type in
    the byte order of the bytes codec."""
    dt = np.dtype(case.dtype)
    if fmt == 3 and dt.itemsize > 1:
        dt = dt.newbyteorder("<" if case.endian == "little" else ">")
    return dt


def zarr_values(store: Path, case: Case, fmt: int) -> np.ndarray:
    arr = zarr.open_array(store, path=case.name, mode="r")
    return c_order(arr[...]).astype(view_dtype(case, fmt))


def check_views(mnt: Path, store: Path, case: Case, fmt: int) -> list[str]:
    """Every view of the mounted array against zarr-python's read of the store."""
    exp = zarr_values(store, case, fmt)
    adir = mnt / case.name
    dt = exp.dtype
    problems = []
    got = read_array_file(adir / "data", dt, case.shape)
    if m := mismatch(got, exp):
        problems.append(f"data: {m}")
    npy = np.load(adir / "data.npy", mmap_mode="r")
    if m := mismatch(c_order(npy), exp):
        problems.append(f"data.npy: {m}")
    del npy
    for idx in chunk_indices(case.shape, case.chunks):
        ec = expected_chunk(exp, idx, case.chunks, np.zeros((), dt))
        data = np.frombuffer(read_bytes(adir / "chunks" / chunk_name(idx)), dt).reshape(ec.shape)
        if m := mismatch(data, ec):
            problems.append(f"chunks/{chunk_name(idx)}: {m}")
    meta = json.loads(read_bytes(adir / "meta.json"))
    if meta.get("dtype") != dt.str or meta.get("zarr_format") != fmt:
        problems.append(f"meta.json dtype {meta.get('dtype')} format {meta.get('zarr_format')}")
    return [f"v{fmt} {case.name}: {p}" for p in problems]


@pytest.fixture(scope="module", params=[2, 3], ids=["v2", "v3"])
def written(request, tmp_path_factory):
    """A store with every case, written by zarr-python."""
    fmt = request.param
    base = tmp_path_factory.mktemp(f"numcodecs_v{fmt}")
    store = base / "store.zarr"
    zarr.create_group(store, zarr_format=fmt)
    for case in CASES if fmt == 2 else V3_CASES:
        create(store, case, fmt)[...] = case.data()
    return fmt, store


def test_stores_name_codecs_as_zarr_python_writes_them(written):
    """The store declares what this test means to test: v2 filters/compressor by numcodecs
    id, v3 `numcodecs.<id>` names in zarr-python's order of kinds."""
    fmt, store = written
    case = next(c for c in CASES if c.name == "delta_shuffle_u4")
    if fmt == 2:
        meta = json.loads((store / case.name / ".zarray").read_text())
        assert [f["id"] for f in meta["filters"]] == ["delta", "shuffle"]
        assert meta["compressor"]["id"] == "lzma"
    else:
        meta = json.loads((store / case.name / "zarr.json").read_text())
        names = [c["name"] for c in meta["codecs"]]
        assert names == ["numcodecs.delta", "bytes", "numcodecs.shuffle", "numcodecs.lzma"]


def test_every_view_reads_what_zarr_python_reads(written, mounter):
    fmt, store = written
    mnt = mounter(store, "--read-only").mnt
    problems = []
    for case in CASES if fmt == 2 else V3_CASES:
        problems += check_views(mnt, store, case, fmt)
    assert not problems, "\n".join(problems)


def test_writes_read_back_in_zarr_python_as_its_own(written, mounter, tmp_path):
    """New values written through the mount read back in zarr-python exactly as the same
    values written by zarr-python itself (lossy filters round them the same way)."""
    fmt, original = written
    store = tmp_path / "store.zarr"
    reference = tmp_path / "reference.zarr"
    shutil.copytree(original, store)
    shutil.copytree(original, reference)
    cases = CASES if fmt == 2 else V3_CASES
    m = mounter(store, "--rw")
    for case in cases:
        new = case.data(changed=True).astype(view_dtype(case, fmt))
        arr = np.memmap(m.mnt / case.name / "data", dtype=new.dtype, mode="r+", shape=new.shape)
        arr[...] = new
        arr.flush()
        del arr
        zarr.open_array(reference, path=case.name, mode="r+")[...] = case.data(changed=True)
    m.stop()
    problems = []
    for case in cases:
        got = zarr_values(store, case, fmt)
        if case.zarr_round_trips(fmt):
            if msg := mismatch(got, zarr_values(reference, case, fmt)):
                problems.append(f"v{fmt} {case.name}: {msg}")
        if not case.lossy and (msg := mismatch(got, case.data(changed=True).astype(got.dtype))):
            problems.append(f"v{fmt} {case.name} (lossless): {msg}")
    assert not problems, "\n".join(problems)


CHECKSUMS = [{"id": "crc32"}, {"id": "adler32", "location": "end"}, {"id": "crc32c"},
             {"id": "fletcher32"}, {"id": "jenkins_lookup3"}]


@pytest.mark.parametrize("fmt", [2, 3], ids=["v2", "v3"])
def test_a_corrupted_checksum_fails_that_chunk_only(fmt, mounter, tmp_path):
    store = tmp_path / "store.zarr"
    zarr.create_group(store, zarr_format=fmt)
    cases = [Case(f"sum_{c['id']}", "<i4", [], [c], SMALL[:900], shape=(900,)) for c in CHECKSUMS]
    for case in cases:
        create(store, case, fmt)[...] = case.data()
    for case in cases:
        key = "1" if fmt == 2 else "c/1"
        path = store / case.name / key
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    m = mounter(store, "--read-only")
    for case in cases:
        adir = m.mnt / case.name
        exp = case.data()
        for i in (0, 2):
            got = np.frombuffer(read_bytes(adir / "chunks" / str(i)), "<i4")
            assert (got == exp[i * CHUNK:(i + 1) * CHUNK]).all(), f"v{fmt} {case.name} chunk {i}"
        expect_eio(lambda: read_bytes(adir / "chunks" / "1"), f"v{fmt} {case.name} chunks/1")
        expect_eio(lambda: read_bytes(adir / "data"), f"v{fmt} {case.name} data")
    log = m.log.read_text()
    for case in cases:
        lines = [ln for ln in log.splitlines() if f"{case.name}/{'1' if fmt == 2 else 'c/1'}" in ln]
        assert any("checksum mismatch" in ln for ln in lines), f"v{fmt} {case.name}: no log line\n{log[-3000:]}"


def test_codecs_that_cannot_be_decoded_safely_are_refused(mounter, tmp_path):
    """A numeric array whose .zarray names pickle, or whose zarr.json names a codec zarrfs
    does not know, stays listed, fails its reads with EIO and says why in the log."""
    store = tmp_path / "store.zarr"
    zarr.create_group(store, zarr_format=2)
    a = zarr.create_array(store, name="pickled", shape=(10,), chunks=(5,), dtype="<i4",
                          compressors=None, zarr_format=2, fill_value=0)
    a[...] = np.arange(10)
    meta = json.loads((store / "pickled" / ".zarray").read_text())
    meta["filters"] = [{"id": "pickle", "protocol": 5}]
    (store / "pickled" / ".zarray").write_text(json.dumps(meta))
    m = mounter(store, "--read-only")
    assert "pickled" in os.listdir(m.mnt)
    expect_eio(lambda: read_bytes(m.mnt / "pickled" / "data"), "pickled data")
    log = m.log.read_text().splitlines()
    assert any("pickled" in ln and "pickle" in ln.split("pickled", 1)[1] for ln in log), log


def test_categorized_text_reads_and_writes_as_zarr_python(mounter, tmp_path):
    """v2 fixed-length text stored by `categorize`: codes decode to their labels (unknown
    text to ""), in either byte order and code width; writes are encoded the same way."""
    store = tmp_path / "store.zarr"
    zarr.create_group(store, zarr_format=2)
    words = np.array(["a", "ccc", "", "bb", "a", "zz", "été", "bb", "ccc"])
    cases = {"u1": ("<U3", "|u1"), "u2_big": (">U3", "<u2")}
    for name, (dtype, astype) in cases.items():
        codec = numcodecs.Categorize(labels=["a", "bb", "ccc", "été"], dtype=dtype,
                                     astype=astype)
        a = zarr.create_array(store, name=name, shape=(9,), chunks=(4,), dtype=dtype,
                              zarr_format=2, compressors=numcodecs.Zlib(), filters=[codec],
                              fill_value="")
        a[:8] = words[:8].astype(dtype)
    m = mounter(store, "--rw")
    for name, (dtype, _) in cases.items():
        want = c_order(zarr.open_array(store, path=name, mode="r")[...]).astype(dtype)
        assert want.tolist() == ["a", "ccc", "", "bb", "a", "", "été", "bb", ""], name
        got = read_array_file(m.mnt / name / "data", np.dtype(dtype), (9,))
        assert mismatch(got, want) is None, name
        chunk = np.frombuffer(read_bytes(m.mnt / name / "chunks" / "1"), dtype)
        assert chunk.tolist() == ["a", "", "été", "bb"], name
        new = np.array(["bb", "a", "x", "ccc", "été", "", "a", "a", "bb"], dtype)
        with open(m.mnt / name / "data", "r+b") as f:
            f.write(new.tobytes())
    m.stop()
    for name in cases:
        got = zarr.open_array(store, path=name, mode="r")[...]
        assert got.tolist() == ["bb", "a", "", "ccc", "été", "", "a", "a", "bb"], name
