"""Interop: writes through a zarrfs mount to Zarr v3 arrays (made by zarr-python 3,
tensorstore and zarrs; many codecs, data types, big-endian, transpose, '.' and v2 keys) land
in the store so that zarr-python AND tensorstore read back exactly what was written.

Each test keeps a bit-exact shadow of the array, writes through the mount (numpy.memmap on
data, np.load(mmap_mode='r+') on data.npy, pwrite, dd on chunk files, cp of a whole data
file), unmounts, and compares the store with the shadow."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from conftest import chunk_indices, chunk_name, chunk_region, read_stats
from test_v2_write import box_shape, dd, pwrite_all, random_box, unmount_cleanly
from write_checks import (
    bits_mismatch,
    chunks_of_box,
    chunks_of_flat_range,
    errno_of,
    random_array,
    random_bytes,
    read_mount_data,
    shadow_write_chunk,
    shadow_write_flat,
)

ARR = "g/arr"
ZARRS = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True}
V3_TO_NUMPY = {"bool": "b1", "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1",
               "uint16": "u2", "uint32": "u4", "uint64": "u8", "float16": "f2", "float32": "f4", "float64": "f8",
               "complex64": "c8", "complex128": "c16"}
BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}
BYTES_BE = {"name": "bytes", "configuration": {"endian": "big"}}
BYTES = {"name": "bytes"}


def transpose(*order: int) -> dict:
    return {"name": "transpose", "configuration": {"order": list(order)}}


def blosc(cname: str, shuffle: str, typesize: int, clevel: int = 5, blocksize: int = 0) -> dict:
    return {"name": "blosc", "configuration": {"cname": cname, "clevel": clevel, "shuffle": shuffle,
                                               "typesize": typesize, "blocksize": blocksize}}


def zstd(level: int, checksum: bool = False) -> dict:
    return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}


GZIP = {"name": "gzip", "configuration": {"level": 5}}
CRC32C = {"name": "crc32c"}
DEFAULT_KEYS = {"name": "default", "configuration": {"separator": "/"}}
DOT_KEYS = {"name": "default", "configuration": {"separator": "."}}
V2_KEYS = {"name": "v2", "configuration": {"separator": "."}}
V2_SLASH_KEYS = {"name": "v2", "configuration": {"separator": "/"}}


@dataclass
class Spec:
    id: str
    writer: str  # "zarr-python" | "zarrs" | "tensorstore"
    data_type: str
    shape: tuple
    chunks: tuple
    codecs: list
    fill: Any
    keys: dict = None  # type: ignore[assignment]


SPECS = [
    Spec("python-default-zstd-f4-nan", "zarr-python", "float32", (37, 50), (16, 16),
         [BYTES_LE, zstd(0)], "NaN", DEFAULT_KEYS),
    Spec("python-blosc-lz4-be-i4-dot", "zarr-python", "int32", (33, 29), (10, 8),
         [BYTES_BE, blosc("lz4", "shuffle", 4)], -1, DOT_KEYS),
    Spec("python-transpose-gzip-u2-v2keys", "zarr-python", "uint16", (25, 31), (8, 7),
         [transpose(1, 0), BYTES_LE, GZIP], 7, V2_KEYS),
    Spec("python-transpose3d-zstdsum-crc-be-f8", "zarr-python", "float64", (9, 10, 11), (4, 4, 5),
         [transpose(2, 0, 1), BYTES_BE, zstd(3, True), CRC32C], "-Infinity", DEFAULT_KEYS),
    Spec("python-crc32c-c8-complex-fill", "zarr-python", "complex64", (14, 15), (4, 6),
         [BYTES_LE, CRC32C], [1.0, -2.0], DEFAULT_KEYS),
    Spec("python-gzip-be-f2-hexfill", "zarr-python", "float16", (21, 34), (8, 9),
         [BYTES_BE, GZIP], "0xb555", DOT_KEYS),
    Spec("zarrs-blosc-zstd-bitshuffle-f8-v2slash", "zarrs", "float64", (40, 45), (16, 20),
         [BYTES_LE, blosc("zstd", "bitshuffle", 8, blocksize=1024)], 1.5, V2_SLASH_KEYS),
    Spec("zarrs-transpose3d-bool", "zarrs", "bool", (5, 17, 13), (2, 6, 5),
         [transpose(1, 2, 0), BYTES, GZIP], True, DEFAULT_KEYS),
    Spec("zarrs-be-u8-zstd-crc", "zarrs", "uint64", (19, 23), (6, 6),
         [BYTES_BE, zstd(5), CRC32C], 42, DOT_KEYS),
    Spec("tensorstore-transpose-be-i2-blosc", "tensorstore", "int16", (30, 30), (7, 9),
         [transpose(1, 0), BYTES_BE, blosc("lz4hc", "noshuffle", 2, clevel=9)], -3, DEFAULT_KEYS),
    Spec("tensorstore-zstdsum-crc-f4-dot", "tensorstore", "float32", (21, 34), (8, 8),
         [BYTES_LE, zstd(3, True), CRC32C], "Infinity", DOT_KEYS),
    Spec("tensorstore-bytes-be-c16-v2keys", "tensorstore", "complex128", (19, 23), (6, 6),
         [BYTES_BE], ["NaN", 0.5], {"name": "v2"}),
    Spec("tensorstore-u1-3d-blosc-blosclz", "tensorstore", "uint8", (9, 10, 11), (4, 4, 5),
         [BYTES, blosc("blosclz", "bitshuffle", 1)], 255, DEFAULT_KEYS),
]


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def view_dtype(doc: dict) -> np.dtype:
    """The dtype of the mount's views: the data type in the `bytes` codec's byte order."""
    dt = np.dtype(V3_TO_NUMPY[doc["data_type"]])
    endian = next((c.get("configuration", {}).get("endian") for c in doc["codecs"] if c["name"] == "bytes"), None)
    return dt if dt.itemsize == 1 else dt.newbyteorder(">" if endian == "big" else "<")


def fill_of(doc: dict, dt: np.dtype) -> np.ndarray:
    fill = doc["fill_value"]
    special = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
    if isinstance(fill, str) and fill.startswith("0x"):
        return np.frombuffer(int(fill, 16).to_bytes(dt.itemsize, "big"), dt.newbyteorder(">")).astype(dt).reshape(())
    if isinstance(fill, list):
        return np.array(complex(special.get(fill[0], fill[0]), special.get(fill[1], fill[1])), dt)
    return np.array(special.get(fill, fill), dt)


def zarr_python_array(store: Path, spec: Spec):
    """Creates the array with zarr-python's API (the zarrs pipeline for writer "zarrs")."""
    from zarr.core.metadata.v3 import ArrayV3Metadata  # noqa: PLC0415

    doc = metadata_doc(spec)
    meta = ArrayV3Metadata.from_dict(doc)
    arr = zarr.create_array(str(store / ARR), shape=spec.shape, chunks=spec.chunks,
                            dtype=meta.data_type, fill_value=meta.fill_value,
                            filters=[c for c in meta.codecs if c.__class__.__name__ == "TransposeCodec"],
                            serializer=next(c for c in meta.codecs if c.__class__.__name__ == "BytesCodec"),
                            compressors=[c for c in meta.codecs if c.__class__.__name__ not in
                                         ("TransposeCodec", "BytesCodec")] or None,
                            chunk_key_encoding=spec.keys, attributes={"made_by": spec.writer})
    return arr


def metadata_doc(spec: Spec) -> dict:
    return {"zarr_format": 3, "node_type": "array", "shape": list(spec.shape), "data_type": spec.data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(spec.chunks)}},
            "chunk_key_encoding": spec.keys, "fill_value": spec.fill, "codecs": spec.codecs,
            "attributes": {"made_by": spec.writer}}


def make_v3_array(store: Path, spec: Spec, init: str, rng: np.random.Generator) -> np.ndarray:
    """Creates the array with its writer and fills part of it ("partial": a box, so some
    chunks stay missing; "full"; "none"); returns the shadow of what it holds."""
    (store / "g").mkdir(parents=True, exist_ok=True)
    (store / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    (store / "g" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    doc = metadata_doc(spec)
    dt = view_dtype(doc)
    shadow = np.full(spec.shape, fill_of(doc, dt), dt)
    vals = random_array(dt, spec.shape, rng)
    box = ... if init == "full" else tuple(slice(0, min(s, c * math.ceil(math.ceil(s / c) * 2 / 3)))
                                          for s, c in zip(spec.shape, spec.chunks))
    if spec.writer == "tensorstore":
        import tensorstore as ts  # noqa: PLC0415

        md = {k: v for k, v in doc.items() if k not in ("zarr_format", "node_type")}
        t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / ARR)},
                     "metadata": md}, create=True).result()
        if init != "none":
            t[box].write(vals[box]).result()
    else:
        with zarr.config.set(ZARRS if spec.writer == "zarrs" else {}):
            arr = zarr_python_array(store, spec)
            written = json.loads((store / ARR / "zarr.json").read_text())
            if written["fill_value"] != spec.fill:  # zarr-python keeps no NaN payload: as specified
                written["fill_value"] = spec.fill
                (store / ARR / "zarr.json").write_text(json.dumps(written, indent=2))
                arr = zarr.open_array(str(store / ARR), mode="r+")
            if init != "none":
                arr[box] = vals[box]
    if init != "none":
        shadow[box] = vals[box]
    return shadow


# ----------------------------------------------------------------------------
# the store after unmount
# ----------------------------------------------------------------------------


def chunk_key(doc: dict, idx: tuple) -> str:
    enc = doc.get("chunk_key_encoding") or {"name": "default"}
    sep = (enc.get("configuration") or {}).get("separator", "/" if enc["name"] == "default" else ".")
    if enc["name"] == "v2":
        return sep.join(map(str, idx)) if idx else "0"
    return sep.join(["c", *map(str, idx)])


def stored_keys(adir: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(adir):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), adir).replace(os.sep, "/")
            if rel != "zarr.json":
                out.add(rel)
    return out


def frame_problems(frame: bytes, codecs: list, itemsize: int) -> list[str]:
    """Does a stored chunk carry the settings of the array's own codecs (crc32c trailer,
    blosc typesize and shuffle, zstd checksum flag)?"""
    out = []
    names = [c["name"] for c in codecs]
    if names and names[-1] == "crc32c":
        frame = frame[:-4]  # zarr-python checks the checksum when it reads
        codecs = codecs[:-1]
    compressors = [c for c in codecs if c["name"] in ("blosc", "zstd", "gzip")]
    if not compressors:
        return out
    cfg = compressors[-1]
    conf = cfg.get("configuration", {})
    if cfg["name"] == "blosc":
        flags, typesize = frame[2], frame[3]
        if "typesize" in conf and typesize != conf["typesize"]:  # tensorstore omits it for noshuffle
            out.append(f"blosc typesize {typesize}, configured {conf['typesize']}")
        want = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 4}[conf["shuffle"]]
        if typesize > 1 or want != 1:
            if flags & 0x5 != want:
                out.append(f"blosc shuffle flags {flags & 0x5:#x}, configured {conf['shuffle']}")
    elif cfg["name"] == "zstd":
        if frame[:4] != b"\x28\xb5\x2f\xfd":
            out.append(f"zstd magic {frame[:4].hex()}")
        elif bool(frame[4] & 0x4) != bool(conf.get("checksum", False)):
            out.append(f"zstd checksum flag {bool(frame[4] & 0x4)}, configured {conf.get('checksum')}")
    elif frame[:2] != b"\x1f\x8b":
        out.append(f"gzip magic {frame[:2].hex()}")
    return out


def check_store(store: Path, shadow: np.ndarray, doc_before: bytes) -> list[str]:
    """zarr-python and tensorstore read the shadow; stored keys are exactly the chunks that
    do not hold only fill value, under the array's key encoding, with its codecs' settings."""
    import tensorstore as ts  # noqa: PLC0415

    problems = []
    adir = store / ARR
    if (adir / "zarr.json").read_bytes() != doc_before:
        problems.append("zarr.json changed")
    doc = json.loads(doc_before)
    dt = view_dtype(doc)
    got = np.asarray(zarr.open_array(str(adir), mode="r")[...])
    m = bits_mismatch(got, shadow)
    if m:
        problems.append(f"zarr-python: {m}")
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(adir)}}, open=True,
                read=True).result()
    m = bits_mismatch(np.asarray(t.read().result()), shadow)
    if m:
        problems.append(f"tensorstore: {m}")
    chunks = tuple(doc["chunk_grid"]["configuration"]["chunk_shape"])
    fill = fill_of(doc, dt).tobytes()
    want_keys = set()
    for idx in chunk_indices(shadow.shape, chunks):
        region = np.ascontiguousarray(shadow[chunk_region(idx, shadow.shape, chunks) + (...,)])
        if region.tobytes() != fill * region.size:
            want_keys.add(chunk_key(doc, idx))
    have = stored_keys(adir)
    if have != want_keys:
        problems.append(f"stored keys: missing {sorted(want_keys - have)[:6]}, "
                        f"unexpected {sorted(have - want_keys)[:6]}")
    for key in sorted(have & want_keys):
        problems += [f"{key}: {p}" for p in frame_problems((adir / key).read_bytes(), doc["codecs"], dt.itemsize)]
    return problems


# ----------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_writes_land_in_the_store(spec, mounter, tmp_path):
    rng = rng_for(spec.id)
    store = tmp_path / "store.zarr"
    shadow = make_v3_array(store, spec, "partial", rng)
    doc_before = (store / ARR / "zarr.json").read_bytes()
    dt, shape, chunks = shadow.dtype, spec.shape, spec.chunks
    fill = fill_of(json.loads(doc_before), dt)
    grid = [math.ceil(s / c) for s, c in zip(shape, chunks)]
    chunk_nbytes = math.prod(chunks) * dt.itemsize
    steps: list[str] = []
    m = mounter(store, "--rw")
    adir = m.mnt / ARR

    def write_box(mapped, label: str) -> None:
        box = random_box(shape, rng)
        vals = random_array(dt, box_shape(box), rng)
        mapped[box] = vals
        mapped.flush()
        shadow[box] = vals
        steps.append(f"{label}[{box}]")

    write_box(np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape), "memmap data")
    npy = np.load(adir / "data.npy", mmap_mode="r+")
    assert npy.dtype.str == dt.str and npy.shape == shape, (npy.dtype.str, npy.shape)
    write_box(npy, "data.npy memmap")
    del npy

    off = int(rng.integers(0, shadow.nbytes - 1))
    data = random_bytes(dt, int(min(shadow.nbytes - off, rng.integers(1, 3 * chunk_nbytes))), rng)
    pwrite_all(adir / "data", off, data)
    shadow_write_flat(shadow, off, data)
    steps.append(f"pwrite data @{off}+{len(data)}")

    last = tuple(g - 1 for g in grid)
    src = tmp_path / "chunk.bin"
    data = random_bytes(dt, chunk_nbytes, rng)
    src.write_bytes(data)
    dd(src, adir / "chunks" / chunk_name(last), f"bs={chunk_nbytes}")
    shadow_write_chunk(shadow, last, chunks, 0, data)
    steps.append(f"dd chunks/{chunk_name(last)}")

    first = tuple(0 for _ in grid)
    off = int(rng.integers(0, chunk_nbytes - 1))
    data = random_bytes(dt, int(rng.integers(1, chunk_nbytes - off + 1)), rng)
    src.write_bytes(data)
    dd(src, adir / "chunks" / chunk_name(first), f"bs={len(data)}", "count=1", f"seek={off}", "oflag=seek_bytes")
    shadow_write_chunk(shadow, first, chunks, off, data)
    steps.append(f"dd chunks/{chunk_name(first)} @{off}+{len(data)}")

    # a chunk never written before, if any: pwrite creates it under the array's key
    idx = tuple(g - 1 for g in grid[:-1]) + (0,)
    off = int(rng.integers(0, chunk_nbytes - 1))
    data = random_bytes(dt, int(rng.integers(1, chunk_nbytes - off + 1)), rng)
    pwrite_all(adir / "chunks" / chunk_name(idx), off, data)
    shadow_write_chunk(shadow, idx, chunks, off, data)
    steps.append(f"pwrite chunks/{chunk_name(idx)} @{off}+{len(data)}")

    # a stored chunk rewritten to all fill value: gone from the store
    gone = tuple(min(1, g - 1) for g in grid)
    fill_chunk = np.full(chunks, fill, dtype=dt).tobytes()
    pwrite_all(adir / "chunks" / chunk_name(gone), 0, fill_chunk)
    shadow_write_chunk(shadow, gone, chunks, 0, fill_chunk)
    steps.append(f"fill chunks/{chunk_name(gone)}")

    got = read_mount_data(adir, dt, shape)
    mm = bits_mismatch(got, shadow)
    assert mm is None, f"{spec.id} through the mount after {steps}: {mm}"
    stats = read_stats(m.mnt)
    unmount_cleanly(m)
    assert stats.get("writeback_errors", 0) == 0, stats
    assert not (store / ARR / chunk_key(json.loads(doc_before), gone)).exists(), "all-fill chunk still stored"
    problems = check_store(store, shadow, doc_before)
    assert not problems, f"{spec.id} store after {steps}:\n" + "\n".join(problems)


@pytest.mark.parametrize("keys,want", [(DEFAULT_KEYS, "c/0/1"), (DOT_KEYS, "c.0.1"), (V2_KEYS, "0.1"),
                                       (V2_SLASH_KEYS, "0/1")], ids=["slash", "dot", "v2", "v2-slash"])
def test_new_chunks_are_created_under_the_arrays_keys(keys, want, mounter, tmp_path):
    spec = Spec("new-keys", "zarr-python", "int16", (6, 8), (3, 4), [BYTES_BE, zstd(1), CRC32C], -1, keys)
    store = tmp_path / "store.zarr"
    shadow = make_v3_array(store, spec, "none", rng_for("new"))
    doc_before = (store / ARR / "zarr.json").read_bytes()
    assert stored_keys(store / ARR) == set()
    m = mounter(store, "--rw")
    vals = np.arange(48, dtype=">i2").reshape(6, 8)
    vals[3:, :] = -1  # the second row of chunks stays fill: never stored
    (m.mnt / ARR / "data").write_bytes(vals.tobytes())  # open(O_TRUNC) + write: same size
    shadow[...] = vals
    unmount_cleanly(m)
    keys_now = stored_keys(store / ARR)
    assert keys_now == {chunk_key(json.loads(doc_before), (0, 0)), want}, keys_now
    problems = check_store(store, shadow, doc_before)
    assert not problems, "\n".join(problems)


def test_zero_d_array_written_and_made_fill(mounter, tmp_path):
    spec = Spec("zero-d", "zarr-python", "float64", (), (), [BYTES_BE, GZIP], 0.25, DEFAULT_KEYS)
    store = tmp_path / "store.zarr"
    shadow = make_v3_array(store, spec, "none", rng_for("zero-d"))
    doc_before = (store / ARR / "zarr.json").read_bytes()
    m = mounter(store, "--rw")
    pwrite_all(m.mnt / ARR / "chunks" / "0", 0, np.array(3.5, ">f8").tobytes())
    shadow[()] = 3.5
    fd = os.open(m.mnt / ARR / "data", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    assert (store / ARR / "c").is_file(), stored_keys(store / ARR)
    problems = check_store(store, shadow, doc_before)
    assert not problems, "\n".join(problems)
    pwrite_all(m.mnt / ARR / "data", 0, np.array(0.25, ">f8").tobytes())
    shadow[()] = 0.25
    unmount_cleanly(m)
    assert stored_keys(store / ARR) == set()
    problems = check_store(store, shadow, doc_before)
    assert not problems, "\n".join(problems)


def test_cp_of_a_whole_data_file(mounter, tmp_path):
    spec = Spec("cp", "tensorstore", "float32", (50, 70), (16, 32),
                [transpose(1, 0), BYTES_BE, zstd(3), CRC32C], "NaN", DOT_KEYS)
    rng = rng_for("cp")
    store = tmp_path / "store.zarr"
    make_v3_array(store, spec, "partial", rng)
    doc_before = (store / ARR / "zarr.json").read_bytes()
    new = random_array(np.dtype(">f4"), spec.shape, rng)
    src = tmp_path / "new.bin"
    src.write_bytes(new.tobytes())
    m = mounter(store, "--rw")
    r = subprocess.run(["cp", str(src), str(m.mnt / ARR / "data")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert bits_mismatch(read_mount_data(m.mnt / ARR, new.dtype, spec.shape), new) is None
    unmount_cleanly(m)
    problems = check_store(store, new, doc_before)
    assert not problems, "\n".join(problems)


def test_chunk_made_all_fill_is_deleted(mounter, tmp_path):
    spec = Spec("fill", "zarrs", "uint16", (20, 20), (8, 8), [BYTES_LE, blosc("zstd", "shuffle", 2)], 5,
                DEFAULT_KEYS)
    store = tmp_path / "store.zarr"
    shadow = make_v3_array(store, spec, "full", rng_for("fill"))
    doc_before = (store / ARR / "zarr.json").read_bytes()
    assert len(stored_keys(store / ARR)) == 9
    m = mounter(store, "--rw")
    mm = np.memmap(m.mnt / ARR / "data", dtype="<u2", mode="r+", shape=spec.shape)
    mm[8:16, 8:16] = 5
    mm.flush()
    del mm
    shadow[8:16, 8:16] = 5
    fd = os.open(m.mnt / ARR / "data", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    assert not (store / ARR / "c" / "1" / "1").exists(), "chunk c/1/1 is all fill after fsync but still stored"
    # the edge chunk's padding does not count
    p = m.mnt / ARR / "chunks" / "2.2"
    fd = os.open(p, os.O_WRONLY)
    for r in range(8):
        os.pwrite(fd, np.full(8, 5, "<u2").tobytes() if r < 4 else np.arange(8, dtype="<u2").tobytes(), r * 16)
    os.fsync(fd)
    os.close(fd)
    shadow[16:20, 16:20] = 5
    assert not (store / ARR / "c" / "2" / "2").exists()
    stats = read_stats(m.mnt)
    assert stats.get("chunks_deleted", 0) >= 2, stats
    unmount_cleanly(m)
    problems = check_store(store, shadow, doc_before)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("args", [["-o", "ro"], ["--read-only"]], ids=["o-ro", "read-only"])
def test_read_only_mount_gives_erofs(args, mounter, tmp_path):
    spec = Spec("ro", "zarr-python", "float32", (10, 10), (4, 4), [BYTES_LE, zstd(0)], 0.0, DEFAULT_KEYS)
    store = tmp_path / "store.zarr"
    make_v3_array(store, spec, "full", rng_for("ro"))
    before = {k: (store / ARR / k).read_bytes() for k in stored_keys(store / ARR)}
    m = mounter(store, *args)
    for name in ("data", "data.npy", "chunks/1.1"):
        e = errno_of(lambda: os.open(m.mnt / ARR / name, os.O_WRONLY))
        assert e == errno.EROFS, f"{name}: {errno.errorcode.get(e, e)}"
    e = errno_of(lambda: np.memmap(m.mnt / ARR / "data", dtype="<f4", mode="r+", shape=(10, 10)))
    assert e == errno.EROFS, errno.errorcode.get(e, e)
    unmount_cleanly(m)
    assert {k: (store / ARR / k).read_bytes() for k in stored_keys(store / ARR)} == before
