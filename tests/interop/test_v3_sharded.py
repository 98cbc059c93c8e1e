"""Interop: Zarr v3 sharded arrays (`sharding_indexed`). zarr-python-written sharded arrays
read exactly through the mount (data, data.npy and every inner chunk file), and writes
through the mount (numpy.memmap, dd of the whole data file, chunk file writes; index at the
start and at the end) land in shards that zarr-python and tensorstore read back identically:
untouched inner chunks keep their stored bytes, and a shard made all fill leaves the store."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import google_crc32c  # a dependency of zarr-python
import numpy as np
import pytest
import zarr
from zarr.codecs import ShardingCodec

from conftest import FIXTURES, chunk_indices, chunk_name, expected_chunk, read_stats
from write_checks import (
    bits_mismatch,
    random_array,
    random_bytes,
    read_mount_data,
    shadow_write_chunk,
    shadow_write_flat,
)

MANIFEST = json.loads((FIXTURES / "v3-sharded-manifest.json").read_text())
GOOD = [e for e in MANIFEST if not e["bad_shards"]]
ARR = "g/arr"
ABSENT = 2**64 - 1


def b(endian: str = "little") -> dict:
    return {"name": "bytes", "configuration": {"endian": endian}}


ZSTD = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
GZIP = {"name": "gzip", "configuration": {"level": 1}}
CRC = {"name": "crc32c"}


def blosc(typesize: int) -> dict:
    return {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                               "typesize": typesize, "blocksize": 0}}


@dataclass
class Spec:
    id: str
    dtype: str          # v3 data_type
    shape: tuple
    shards: tuple
    inner: tuple
    codecs: list        # inner codecs
    location: str
    fill: object

    @property
    def sharding(self) -> dict:
        return {"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(self.inner), "codecs": self.codecs,
            "index_codecs": [b(), CRC], "index_location": self.location}}

    def view_dtype(self) -> np.dtype:
        dt = np.dtype(self.dtype)
        if dt.itemsize == 1:
            return dt
        return dt.newbyteorder(">" if self.codecs[0]["configuration"]["endian"] == "big" else "<")


SPECS = [
    Spec("end-zstd-i4", "int32", (37, 26), (16, 12), (8, 4), [b(), ZSTD], "end", -1),
    Spec("start-blosc-f4", "float32", (30, 41), (10, 16), (5, 8), [b(), blosc(4)], "start", 0.0),
    Spec("end-gzip-big-u2-3d", "uint16", (9, 10, 11), (4, 6, 4), (2, 3, 2), [b("big"), GZIP],
         "end", 7),
    Spec("start-crc-big-f8", "float64", (21, 17), (8, 8), (4, 4), [b("big"), CRC], "start", 1.5),
    Spec("end-plain-u1-1d", "uint8", (250,), (64,), (16,), [b()], "end", 255),
]


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def create(store: Path, spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """The array written by zarr-python: a box of random values, some shards left missing.
    Returns what it holds, in the views' byte order."""
    dt = spec.view_dtype()
    root = zarr.open_group(str(store), mode="a", zarr_format=3)
    arr = root.create_array(ARR, shape=spec.shape, chunks=spec.shards, dtype=spec.dtype,
                            fill_value=spec.fill, serializer=ShardingCodec.from_dict(spec.sharding),
                            compressors=None)
    shadow = np.full(spec.shape, spec.fill, dtype=dt)
    box = tuple(slice(0, max(1, s * 3 // 5)) for s in spec.shape)
    vals = random_array(dt, spec.shape, rng)
    if dt.kind == "f":
        vals[np.isnan(vals)] = 0  # NaN payloads do not survive zarr-python's float path
    arr[box] = vals[box]
    shadow[box] = vals[box]
    return shadow


def zarr_read(store: Path, dt: np.dtype) -> np.ndarray:
    return np.asarray(zarr.open_array(str(store / ARR), mode="r")[...])


def tensorstore_read(store: Path) -> np.ndarray:
    import tensorstore as ts  # noqa: PLC0415

    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / ARR)}},
                read=True).result()
    return np.asarray(t.read().result())


def shard_index(shard: bytes, spec: Spec) -> list[tuple[int, int]]:
    n = math.prod(s // c for s, c in zip(spec.shards, spec.inner))
    size = 16 * n + 4
    raw = shard[:size] if spec.location == "start" else shard[-size:]
    assert struct.unpack("<I", raw[-4:])[0] == google_crc32c.value(raw[:-4]), "index checksum"
    vals = struct.unpack(f"<{2 * n}Q", raw[:-4])
    return [(vals[2 * i], vals[2 * i + 1]) for i in range(n)]


def stored_inner_chunks(store: Path, spec: Spec) -> dict:
    """Every stored inner chunk's bytes, by (shard key, position in the shard)."""
    out = {}
    base = store / ARR
    for p in sorted(base.rglob("*")):
        if p.is_file() and p.name != "zarr.json":
            shard = p.read_bytes()
            for j, (off, n) in enumerate(shard_index(shard, spec)):
                if off != ABSENT:
                    out[(str(p.relative_to(base)), j)] = shard[off:off + n]
    return out


def shard_of(idx, spec: Spec) -> tuple:
    per = [s // c for s, c in zip(spec.shards, spec.inner)]
    return tuple(i // n for i, n in zip(idx, per))


def check_views(adir: Path, shadow: np.ndarray, inner, fill, which) -> list[str]:
    problems = []
    m = bits_mismatch(read_mount_data(adir, shadow.dtype, shadow.shape), shadow)
    if m:
        problems.append(f"data: {m}")
    m = bits_mismatch(np.load(adir / "data.npy"), shadow)
    if m:
        problems.append(f"data.npy: {m}")
    for idx in which:
        want = expected_chunk(shadow, idx, inner, fill)
        raw = (adir / "chunks" / chunk_name(idx)).read_bytes()
        m = bits_mismatch(np.frombuffer(raw, shadow.dtype).reshape(want.shape), want)
        if m:
            problems.append(f"chunks/{chunk_name(idx)}: {m}")
    return problems


# ----------------------------------------------------------------------------
# reads
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", GOOD, ids=[e["path"] for e in GOOD])
def test_committed_fixtures_read_as_expected_by_zarr_python_and_tensorstore(entry):
    import tensorstore as ts  # noqa: PLC0415

    path = FIXTURES / "v3-sharded.zarr" / entry["path"]
    exp = np.load(FIXTURES / entry["expected"])
    assert exp.dtype.str == entry["dtype"]
    m = bits_mismatch(np.asarray(zarr.open_array(str(path), mode="r")[...]), exp)
    assert m is None, f"zarr-python: {m}"
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}, read=True).result()
    m = bits_mismatch(np.asarray(t.read().result()), exp)
    assert m is None, f"tensorstore: {m}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_zarr_python_sharded_arrays_read_exactly(spec, mounter, tmp_path):
    store = tmp_path / "store.zarr"
    shadow = create(store, spec, rng_for(spec.id))
    m = bits_mismatch(zarr_read(store, shadow.dtype), shadow)
    assert m is None, f"zarr-python itself: {m}"
    mnt = mounter(store, "--read-only")
    adir = mnt.mnt / ARR
    every = chunk_indices(spec.shape, spec.inner)
    assert sorted(os.listdir(adir / "chunks")) == sorted(chunk_name(i) for i in every)
    problems = check_views(adir, shadow, spec.inner, np.array(spec.fill, shadow.dtype), every)
    assert not problems, "\n".join(problems)
    meta = json.loads((adir / "meta.json").read_text())
    assert meta["chunks"] == list(spec.inner) and meta["shards"] == list(spec.shards)
    assert meta["dtype"] == shadow.dtype.str


# ----------------------------------------------------------------------------
# writes
# ----------------------------------------------------------------------------


def pwrite_all(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
    finally:
        os.close(fd)


def dd(src: Path, dst: Path, *args: str) -> None:
    r = subprocess.run(["dd", f"if={src}", f"of={dst}", "conv=notrunc", "status=none", *args],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"dd {' '.join(args)} of={dst}: {r.stderr}"


def unmount(m) -> None:
    m.stop()
    assert m.umount_result is not None and m.umount_result.returncode == 0, (
        f"umount: {m.umount_result}\nlog:\n{m.log.read_text(errors='replace')[-3000:]}")


def check_store(store: Path, shadow: np.ndarray) -> list[str]:
    problems = []
    for name, read in (("zarr-python", lambda: zarr_read(store, shadow.dtype)),
                       ("tensorstore", lambda: tensorstore_read(store))):
        try:
            m = bits_mismatch(read(), shadow)
        except Exception as e:  # noqa: BLE001
            m = f"read failed: {e!r}"
        if m:
            problems.append(f"{name}: {m}")
    return problems


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_writes_land_in_the_shards(spec, mounter, tmp_path):
    rng = rng_for("write " + spec.id)
    store = tmp_path / "store.zarr"
    shadow = create(store, spec, rng)
    dt = shadow.dtype
    inner = spec.inner
    chunk_nbytes = math.prod(inner) * dt.itemsize
    zarr_json = (store / ARR / "zarr.json").read_bytes()
    m = mounter(store, "--rw")
    adir = m.mnt / ARR
    steps = []

    # 1. numpy.memmap slabs on data: rows of the first axis across every shard column
    mapped = np.memmap(adir / "data", dtype=dt, mode="r+", shape=spec.shape)
    for start in (1, spec.shape[0] // 2):
        box = (slice(start, start + 3),) + tuple(slice(0, s) for s in spec.shape[1:])
        vals = random_array(dt, mapped[box].shape, rng)
        mapped[box] = vals
        shadow[box] = vals
        steps.append(f"memmap {box}")
    mapped.flush()
    del mapped

    # 2. pwrite at an unaligned offset of data
    off = int(rng.integers(0, shadow.nbytes - 1))
    data = random_bytes(dt, int(min(shadow.nbytes - off, 2 * chunk_nbytes + 3)), rng)
    pwrite_all(adir / "data", off, data)
    shadow_write_flat(shadow, off, data)
    steps.append(f"pwrite data @{off}+{len(data)}")

    # 3. dd of a whole inner chunk file (the last: edge padding dropped), part of another
    grid = [math.ceil(s / c) for s, c in zip(spec.shape, inner)]
    last = tuple(g - 1 for g in grid)
    src = tmp_path / "chunk.bin"
    data = random_bytes(dt, chunk_nbytes, rng)
    src.write_bytes(data)
    dd(src, adir / "chunks" / chunk_name(last), f"bs={chunk_nbytes}")
    shadow_write_chunk(shadow, last, inner, 0, data)
    idx = tuple(int(rng.integers(0, g)) for g in grid)
    coff = int(rng.integers(0, chunk_nbytes - 1))
    data = random_bytes(dt, int(rng.integers(1, chunk_nbytes - coff + 1)), rng)
    pwrite_all(adir / "chunks" / chunk_name(idx), coff, data)
    shadow_write_chunk(shadow, idx, inner, coff, data)
    steps += [f"dd chunks/{chunk_name(last)}", f"pwrite chunks/{chunk_name(idx)} @{coff}"]

    problems = check_views(adir, shadow, inner, np.array(spec.fill, dt), [last, idx])
    assert not problems, f"{spec.id} through the mount after {steps}:\n" + "\n".join(problems)
    unmount(m)
    assert (store / ARR / "zarr.json").read_bytes() == zarr_json, "zarr.json changed"
    problems = check_store(store, shadow)
    assert not problems, f"{spec.id} store after {steps}:\n" + "\n".join(problems)

    # 4. dd of the whole data file, then the first shard made all fill through data
    m = mounter(store, "--rw", name="mnt2")
    adir = m.mnt / ARR
    new = random_array(dt, spec.shape, rng)
    src = tmp_path / "whole.bin"
    src.write_bytes(new.tobytes())
    dd(src, adir / "data", "bs=1M")
    shadow[...] = new
    first = tuple(slice(0, s) for s in spec.shards)
    mapped = np.memmap(adir / "data", dtype=dt, mode="r+", shape=spec.shape)
    mapped[first] = np.array(spec.fill, dt)
    mapped.flush()
    del mapped
    shadow[first] = np.array(spec.fill, dt)
    stats = read_stats(m.mnt)
    unmount(m)
    assert stats.get("writeback_errors", 0) == 0, stats
    first_shard = store / ARR / "c" / "/".join("0" for _ in spec.shape)
    assert not first_shard.exists(), f"{first_shard.name}: all fill, still stored"
    problems = check_store(store, shadow)
    assert not problems, f"{spec.id} store after dd of data:\n" + "\n".join(problems)


@pytest.mark.parametrize("location", ["start", "end"])
def test_untouched_inner_chunks_keep_their_stored_bytes(location, mounter, tmp_path):
    # gzip: zarr-python's members carry the time of writing, zarrfs's none, so an inner chunk
    # encoded again would differ even with the same deflate stream.
    spec = Spec(f"keep-{location}", "int16", (16, 16), (8, 8), (4, 4), [b(), GZIP], location, 0)
    rng = rng_for(spec.id)
    store = tmp_path / "store.zarr"
    shadow = create(store, spec, rng)
    shadow[...] = random_array(shadow.dtype, spec.shape, rng)
    zarr.open_array(str(store / ARR), mode="r+")[...] = shadow
    before = stored_inner_chunks(store, spec)
    m = mounter(store, "--rw")
    # One element of inner chunk (1, 2), in shard (0, 1), and a whole inner chunk (3, 0)
    # rewritten with fill: dropped from shard (1, 0).
    itemsize = shadow.dtype.itemsize
    value = np.array([1234], shadow.dtype).tobytes()
    pwrite_all(m.mnt / ARR / "data", (5 * 16 + 9) * itemsize, value)
    shadow_write_flat(shadow, (5 * 16 + 9) * itemsize, value)
    pwrite_all(m.mnt / ARR / "chunks" / "3.0", 0, bytes(16 * itemsize))
    shadow[12:16, 0:4] = 0
    unmount(m)
    after = stored_inner_chunks(store, spec)
    for (key, j), stored in before.items():
        idx = (int(key.split("/")[1]) * 2 + j // 2, int(key.split("/")[2]) * 2 + j % 2)
        if idx == (1, 2):
            assert after[(key, j)] != stored, "the written inner chunk is re-encoded"
        elif idx == (3, 0):
            assert (key, j) not in after, "an inner chunk made all fill is dropped"
        else:
            assert after[(key, j)] == stored, f"inner chunk {idx} ({key} #{j}) was re-encoded"
    problems = check_store(store, shadow)
    assert not problems, "\n".join(problems)
    assert shard_of((3, 0), spec) == (1, 0)
