"""Interop: writes through a zarrfs mount land in the Zarr v2 store exactly, in frames
that zarr-python, tensorstore and numcodecs (with the array's own compressor config) read.

Every test keeps a bit-exact shadow of what the array must hold, writes through the mount
(numpy.memmap on data, np.load(mmap_mode='r+') on data.npy, dd conv=notrunc and pwrite on
chunk files, cp), then unmounts and compares the store with the shadow."""

from __future__ import annotations

import concurrent.futures as cf
import errno
import math
import os
import signal
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from numcodecs import GZip, LZ4, Blosc, Zlib, Zstd

from conftest import (
    build_tensorstore_store,
    chunk_name,
    expected_chunk,
    grid_of,
    parse_fill,
    read_stats,
    tensorstore_read,
)
from write_checks import (
    bits_mismatch,
    check_stored_chunks,
    chunk_key_path,
    chunks_of_box,
    chunks_of_flat_range,
    daemon_pids,
    errname,
    errno_of,
    frames_of,
    make_array,
    random_array,
    random_bytes,
    read_mount_data,
    shadow_write_chunk,
    shadow_write_flat,
    stacks,
    tensorstore_mismatch,
    tensorstore_unsupported,
    zarr_mismatch,
    zarray_of,
)

ARR = "g/arr"


@dataclass
class Spec:
    id: str
    dtype: str
    shape: tuple
    chunks: tuple
    compressor: Any
    fill: Any
    order: str = "C"
    sep: str = "."


SPECS = [
    Spec("blosc-lz4-shuffle-i4", "<i4", (37, 50), (16, 16), Blosc("lz4", 5, Blosc.SHUFFLE), -1),
    Spec("blosc-zstd-bitshuffle-be-f8", ">f8", (33, 29), (10, 8), Blosc("zstd", 3, Blosc.BITSHUFFLE), 1.5),
    Spec("blosc-lz4hc-noshuffle-u2-F", "<u2", (25, 31), (8, 7), Blosc("lz4hc", 9, Blosc.NOSHUFFLE), 7,
         order="F"),
    Spec("blosc-blosclz-autoshuffle-be-c16-slash", ">c16", (14, 15), (4, 6),
         Blosc("blosclz", 5, Blosc.AUTOSHUFFLE), complex(1.0, -2.0), sep="/"),
    Spec("blosc-zlib-bitshuffle-u1-3d-F", "|u1", (9, 10, 11), (4, 4, 5), Blosc("zlib", 1, Blosc.BITSHUFFLE),
         3, order="F"),
    Spec("blosc-zstd-blocksize-be-u4", ">u4", (40, 70), (32, 32),
         Blosc("zstd", 1, Blosc.SHUFFLE, blocksize=1024), 9),
    Spec("zstd-checksum-u8-slash", "<u8", (40, 45), (16, 20), Zstd(level=3, checksum=True), 0, sep="/"),
    Spec("zstd-be-f4-F", ">f4", (21, 34), (8, 9), Zstd(level=-1), -0.5, order="F"),
    Spec("gzip-be-i2-F", ">i2", (30, 30), (7, 9), GZip(5), -3, order="F"),
    Spec("zlib-f4-F-slash", "<f4", (21, 34), (8, 8), Zlib(6), 0.0, order="F", sep="/"),
    Spec("lz4-u1-3d", "|u1", (5, 17, 13), (2, 6, 5), LZ4(1), 255),
    Spec("gzip-b1-F", "|b1", (19, 23), (6, 5), GZip(1), False, order="F"),
    Spec("none-be-i8", ">i8", (19, 23), (6, 6), None, 42),
]


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def random_box(shape, rng: np.random.Generator) -> tuple:
    out = []
    for s in shape:
        a = int(rng.integers(0, s))
        b = int(rng.integers(a + 1, s + 1))
        out.append(slice(a, b))
    return tuple(out)


def box_shape(box) -> tuple:
    return tuple(s.stop - s.start for s in box)


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
    assert r.returncode == 0, f"dd {' '.join(args)} of={dst}: exit {r.returncode}: {r.stderr}"


def unmount_cleanly(m) -> None:
    m.stop()
    r = m.umount_result
    assert r is not None, f"`zarrfs umount` timed out\nlog:\n{m.log.read_text(errors='replace')[-3000:]}"
    assert r.returncode == 0, (f"`zarrfs umount` exited {r.returncode}: {r.stderr}\n"
                               f"log:\n{m.log.read_text(errors='replace')[-3000:]}")


def check_store(store: Path, path: str, shadow: np.ndarray, touched: set,
                frames_before: dict | None = None) -> list[str]:
    """zarr-python and tensorstore read the shadow from the store; numcodecs decodes every
    chunk file with the array's compressor config."""
    problems = []
    m = zarr_mismatch(store, path, shadow)
    if m:
        problems.append(f"zarr-python: {m}")
    if tensorstore_unsupported(zarray_of(store, path)["compressor"]) is None:
        try:
            m = tensorstore_mismatch(store, path, shadow)
        except Exception as e:  # noqa: BLE001
            m = f"open/read failed: {e!r}"
        if m:
            problems.append(f"tensorstore: {m}")
    problems += [f"numcodecs: {p}" for p in check_stored_chunks(store, path, shadow, touched, frames_before)]
    return problems


def check_mount_view(adir: Path, shadow: np.ndarray, chunks, fill, which: set) -> list[str]:
    problems = []
    m = bits_mismatch(read_mount_data(adir, shadow.dtype, shadow.shape), shadow)
    if m:
        problems.append(f"data: {m}")
    npy = np.load(adir / "data.npy")
    m = bits_mismatch(npy, shadow)
    if m:
        problems.append(f"data.npy: {m}")
    for idx in sorted(which):
        want = expected_chunk(shadow, idx, chunks, fill)
        raw = (adir / "chunks" / chunk_name(idx)).read_bytes()
        if len(raw) != want.nbytes:
            problems.append(f"chunks/{chunk_name(idx)}: {len(raw)} bytes, expected {want.nbytes}")
            continue
        m = bits_mismatch(np.frombuffer(raw, shadow.dtype).reshape(want.shape), want)
        if m:
            problems.append(f"chunks/{chunk_name(idx)}: {m}")
    return problems


# ----------------------------------------------------------------------------
# every codec, order, byte order and separator: memmap, data.npy, dd, pwrite
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_writes_land_in_the_store(spec, mounter, tmp_path):
    rng = rng_for(spec.id)
    store = tmp_path / "store.zarr"
    dt = np.dtype(spec.dtype)
    shape, chunks = spec.shape, spec.chunks
    shadow = make_array(store, ARR, dtype=spec.dtype, shape=shape, chunks=chunks, compressor=spec.compressor,
                        fill=spec.fill, order=spec.order, sep=spec.sep, init="partial", rng=rng)
    za = zarray_of(store, ARR)
    fill = parse_fill(za["fill_value"], dt)
    zarray_before = (store / ARR / ".zarray").read_bytes()
    frames_before = frames_of(store, ARR, shape)
    stored_before = set(frames_before)
    grid = grid_of(shape, chunks)
    chunk_nbytes = math.prod(chunks) * dt.itemsize
    nbytes = shadow.nbytes
    touched: set = set()
    steps: list[str] = []

    m = mounter(store, "--rw")
    adir = m.mnt / ARR

    def write_random_box(mapped: np.memmap, label: str) -> None:
        """Writes random values into a random box of a writable memory map and the shadow."""
        box = random_box(shape, rng)
        vals = random_array(dt, box_shape(box), rng)
        mapped[box] = vals
        mapped.flush()
        shadow[box] = vals
        touched.update(chunks_of_box(box, chunks))
        steps.append(f"{label}[{box}]")

    # 1. numpy.memmap(mode='r+') on data
    write_random_box(np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape), "memmap data")

    # 2. np.load(data.npy, mmap_mode='r+')
    npy = np.load(adir / "data.npy", mmap_mode="r+")
    assert npy.dtype.str == dt.str and npy.shape == shape, (npy.dtype.str, npy.shape)
    write_random_box(npy, "data.npy memmap ")
    del npy

    # 3. pwrite on data at an unaligned offset (splits elements at both ends)
    off = int(rng.integers(0, nbytes - 1))
    length = int(min(nbytes - off, rng.integers(1, 3 * chunk_nbytes)))
    data = random_bytes(dt, length, rng)
    pwrite_all(adir / "data", off, data)
    shadow_write_flat(shadow, off, data)
    touched |= chunks_of_flat_range(shape, chunks, dt.itemsize, off, length)
    steps.append(f"pwrite data @{off}+{length}")

    # 4. dd conv=notrunc: a whole edge chunk file (its padding bytes are dropped)
    last = tuple(g - 1 for g in grid)
    src = tmp_path / "chunk.bin"
    data = random_bytes(dt, chunk_nbytes, rng)
    src.write_bytes(data)
    dd(src, adir / "chunks" / chunk_name(last), f"bs={chunk_nbytes}")
    shadow_write_chunk(shadow, last, chunks, 0, data)
    touched.add(last)
    steps.append(f"dd whole chunks/{chunk_name(last)}")

    # 5. dd conv=notrunc: part of chunk 0 at a byte offset
    first = tuple(0 for _ in grid)
    off = int(rng.integers(0, chunk_nbytes - 1))
    length = int(rng.integers(1, chunk_nbytes - off + 1))
    data = random_bytes(dt, length, rng)
    src.write_bytes(data)
    dd(src, adir / "chunks" / chunk_name(first), f"bs={length}", "count=1", f"seek={off}", "oflag=seek_bytes")
    shadow_write_chunk(shadow, first, chunks, off, data)
    touched.add(first)
    steps.append(f"dd chunks/{chunk_name(first)} @{off}+{length}")

    # 6. pwrite on a random chunk file, possibly one missing from the store
    idx = tuple(int(rng.integers(0, g)) for g in grid)
    off = int(rng.integers(0, chunk_nbytes - 1))
    length = int(rng.integers(1, chunk_nbytes - off + 1))
    data = random_bytes(dt, length, rng)
    pwrite_all(adir / "chunks" / chunk_name(idx), off, data)
    shadow_write_chunk(shadow, idx, chunks, off, data)
    touched.add(idx)
    steps.append(f"pwrite chunks/{chunk_name(idx)} @{off}+{length}")

    # 7. a stored chunk rewritten to all fill_value through its chunk file: deleted
    candidates = sorted(stored_before - touched)
    gone = candidates[len(candidates) // 2] if candidates else None
    if gone is not None:
        fill_chunk = np.full(chunks, fill, dtype=dt).tobytes()
        pwrite_all(adir / "chunks" / chunk_name(gone), 0, fill_chunk)
        shadow_write_chunk(shadow, gone, chunks, 0, fill_chunk)
        touched.add(gone)
        steps.append(f"fill chunks/{chunk_name(gone)}")

    problems = check_mount_view(adir, shadow, chunks, fill, touched)
    assert not problems, f"{spec.id} through the mount after {steps}:\n" + "\n".join(problems)
    stats = read_stats(m.mnt)
    unmount_cleanly(m)
    assert stats.get("writeback_errors", 0) == 0, stats

    assert (store / ARR / ".zarray").read_bytes() == zarray_before, ".zarray changed"
    if gone is not None:
        key = chunk_key_path(store, ARR, gone, spec.sep)
        assert not key.exists(), f"chunk {gone} was rewritten to all fill_value but {key.name} is still stored"
    problems = check_store(store, ARR, shadow, touched, frames_before)
    assert not problems, f"{spec.id} store after {steps}:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------
# chunks that become all fill_value
# ----------------------------------------------------------------------------


def test_writes_to_a_tensorstore_written_store(mounter, tmp_path):
    """Ranges written into `data` of arrays that tensorstore wrote land in the store: tensorstore
    and zarr-python read the shadow back and numcodecs decodes every chunk file."""
    ts_store = build_tensorstore_store(tmp_path, 21, n_arrays=24)
    rng = rng_for("tensorstore-written")
    shadows = {a.path: tensorstore_read(ts_store.store / a.path, a.dtype) for a in ts_store.arrays}
    frames_before = {a.path: frames_of(ts_store.store, a.path, a.shape) for a in ts_store.arrays}
    touched: dict[str, set] = {a.path: set() for a in ts_store.arrays}
    m = mounter(ts_store.store, "--rw")
    for a in ts_store.arrays:
        shadow = shadows[a.path]
        nbytes = shadow.nbytes
        for _ in range(int(rng.integers(1, 4))):
            offset = int(rng.integers(0, nbytes)) // a.dtype.itemsize * a.dtype.itemsize
            length = int(rng.integers(1, nbytes - offset + 1))
            data = random_bytes(a.dtype, length, rng)
            pwrite_all(m.mnt / a.path / "data", offset, data)
            shadow_write_flat(shadow, offset, data)
            touched[a.path] |= chunks_of_flat_range(a.shape, a.chunks, a.dtype.itemsize, offset, len(data))
    unmount_cleanly(m)
    problems = []
    for a in ts_store.arrays:
        problems += [f"{a.path}: {p}" for p in check_store(ts_store.store, a.path, shadows[a.path],
                                                           touched[a.path], frames_before[a.path])]
    assert not problems, "\n".join(problems)


def test_chunk_rewritten_to_fill_is_deleted(mounter, tmp_path):
    rng = rng_for("fill")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (20, 20), (8, 8), np.dtype("<u2")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("zstd", 3, 1),
                        fill=5, init="full", rng=rng)
    assert len(frames_of(store, ARR, shape)) == 9
    m = mounter(store, "--rw")
    adir = m.mnt / ARR

    def key(idx):
        return chunk_key_path(store, ARR, idx, ".")

    # inner chunk (0,0) through the data file (one box = exactly that chunk), then fsync
    mm = np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape)
    mm[0:8, 0:8] = 5
    mm.flush()
    del mm
    shadow[0:8, 0:8] = 5
    fd = os.open(adir / "data", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    assert not key((0, 0)).exists(), "chunk 0.0 is all fill_value after fsync but still stored"

    # edge chunk (2,2) (valid 4x4) through its chunk file in several partial writes: the
    # padding can hold anything, only the valid region counts
    p = adir / "chunks" / "2.2"
    row = np.full(8, 5, dtype=dt).tobytes()
    fd = os.open(p, os.O_WRONLY)
    for r in range(8):
        os.pwrite(fd, row if r < 4 else np.arange(8, dtype=dt).tobytes(), r * 16)
    os.fsync(fd)
    os.close(fd)
    shadow[16:20, 16:20] = 5
    assert not key((2, 2)).exists(), "edge chunk 2.2 has only fill_value in the array but is still stored"

    # chunk (1,1) through data.npy, then back to a non-fill value: stored again
    npy = np.load(adir / "data.npy", mmap_mode="r+")
    npy[8:16, 8:16] = 5
    npy.flush()
    npy[9, 9] = 6
    npy.flush()
    del npy
    shadow[8:16, 8:16] = 5
    shadow[9, 9] = 6

    # chunk (2,0) set to fill, then written back to non-fill: must be stored again
    fd = os.open(adir / "chunks" / "2.0", os.O_WRONLY)
    os.pwrite(fd, np.full(chunks, 5, dtype=dt).tobytes(), 0)
    os.fsync(fd)
    assert not key((2, 0)).exists(), "chunk 2.0 is all fill_value after fsync but still stored"
    os.pwrite(fd, np.array([77], dtype=dt).tobytes(), 2)
    os.fsync(fd)
    os.close(fd)
    shadow[16:20, 0:8] = 5
    shadow[16, 1] = 77
    assert key((2, 0)).exists(), "chunk 2.0 holds a non-fill value again after fsync but is not stored"

    stats = read_stats(m.mnt)
    assert stats.get("chunks_deleted", 0) >= 3, stats
    unmount_cleanly(m)
    assert not key((0, 0)).exists() and not key((2, 2)).exists()
    assert key((1, 1)).exists() and key((2, 0)).exists()
    problems = check_store(store, ARR, shadow, {(0, 0), (2, 2), (1, 1), (2, 0)})
    assert not problems, "\n".join(problems)


def test_missing_chunk_written_with_fill_stays_missing(mounter, tmp_path):
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (16, 16), (8, 8), np.dtype("<f4")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Zstd(1),
                        fill=2.5, init="none", rng=rng_for("missing"))
    m = mounter(store, "--rw")
    pwrite_all(m.mnt / ARR / "chunks" / "1.1", 0, np.full(chunks, 2.5, dtype=dt).tobytes())
    mm = np.memmap(m.mnt / ARR / "data", dtype=dt, mode="r+", shape=shape)
    mm[0:8, 0:8] = 2.5
    mm[0:8, 8:16] = 1.0
    mm.flush()
    del mm
    shadow[0:8, 8:16] = 1.0
    unmount_cleanly(m)
    keys = frames_of(store, ARR, shape)
    assert set(keys) == {(0, 1)}, f"stored chunks {sorted(keys)}, expected only (0, 1)"
    problems = check_store(store, ARR, shadow, {(0, 1)})
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------
# whole-file overwrites, fixed sizes, read-only mounts
# ----------------------------------------------------------------------------


def test_cp_same_size_file_overwrites(mounter, tmp_path):
    rng = rng_for("cp")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (50, 70), (16, 32), np.dtype(">i4")
    make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("lz4", 5, 1), fill=0,
               init="partial", rng=rng)
    new = random_array(dt, shape, rng)
    src = tmp_path / "new.bin"
    src.write_bytes(new.tobytes())
    m = mounter(store, "--rw")
    adir = m.mnt / ARR
    r = subprocess.run(["cp", str(src), str(adir / "data")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"cp onto data: exit {r.returncode}: {r.stderr}"
    assert os.stat(adir / "data").st_size == new.nbytes
    mm = bits_mismatch(read_mount_data(adir, dt, shape), new)
    assert mm is None, f"data after cp: {mm}"

    # data.npy: a file np.save wrote for the same dtype and shape has the same header
    new2 = random_array(dt, shape, rng)
    npy_src = tmp_path / "new.npy"
    np.save(npy_src, new2)
    assert npy_src.stat().st_size == os.stat(adir / "data.npy").st_size
    r = subprocess.run(["cp", str(npy_src), str(adir / "data.npy")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"cp onto data.npy: exit {r.returncode}: {r.stderr}"
    mm = bits_mismatch(read_mount_data(adir, dt, shape), new2)
    assert mm is None, f"data after cp onto data.npy: {mm}"
    unmount_cleanly(m)
    problems = check_store(store, ARR, new2, chunks_of_box((slice(0, 50), slice(0, 70)), chunks))
    assert not problems, "\n".join(problems)


def test_truncate_to_another_size_is_einval(mounter, tmp_path):
    rng = rng_for("trunc")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (10, 12), (4, 5), np.dtype("<u2")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Zlib(1), fill=1,
                        init="full", rng=rng)
    m = mounter(store, "--rw")
    adir = m.mnt / ARR
    for name, size in (("data", shadow.nbytes), ("data.npy", os.stat(adir / "data.npy").st_size),
                       ("chunks/1.1", math.prod(chunks) * 2)):
        p = adir / name
        assert os.stat(p).st_size == size
        for other in (0, size - 1, size + 1, 2 * size):
            e = errno_of(lambda: os.truncate(p, other))
            assert e == errno.EINVAL, f"truncate({name}, {other}): {errname(e)}, expected EINVAL"
            fd = os.open(p, os.O_RDWR)
            try:
                e = errno_of(lambda: os.ftruncate(fd, other))
            finally:
                os.close(fd)
            assert e == errno.EINVAL, f"ftruncate({name}, {other}): {errname(e)}, expected EINVAL"
        os.truncate(p, size)  # to its own size: fine
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)  # O_TRUNC: accepted, changes nothing
        os.close(fd)
        with open(p, "wb"):  # what a shell's `>` does
            pass
        assert os.stat(p).st_size == size
    r = subprocess.run(["truncate", "-s", "1", str(adir / "data")], capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr, (r.returncode, r.stderr)
    mm = bits_mismatch(read_mount_data(adir, dt, shape), shadow)
    assert mm is None, f"data changed by truncate/O_TRUNC: {mm}"
    unmount_cleanly(m)
    problems = check_store(store, ARR, shadow, set())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("args", [[], ["-o", "ro"], ["--read-only"]], ids=["default", "o-ro", "read-only"])
def test_read_only_mount_is_erofs(args, mounter, tmp_path):
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (10, 12), (4, 5), np.dtype("<i2")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("zstd", 1, 2),
                        fill=0, init="partial", rng=rng_for("ro"))
    before = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    m = mounter(store, *args)
    adir = m.mnt / ARR
    for name in ("data", "data.npy", "chunks/0.0", "chunks/2.2"):
        p = adir / name
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
            e = errno_of(lambda: os.close(os.open(p, flags)))
            assert e == errno.EROFS, f"open({name}, {flags:#o}): {errname(e)}, expected EROFS"
        e = errno_of(lambda: os.truncate(p, os.stat(p).st_size))
        assert e == errno.EROFS, f"truncate({name}): {errname(e)}, expected EROFS"
    e = errno_of(lambda: np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape))
    assert e == errno.EROFS, f"np.memmap(r+): {errname(e)}, expected EROFS"
    r = subprocess.run(["dd", "if=/dev/zero", f"of={adir / 'data'}", "bs=1", "count=1", "conv=notrunc"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, (r.returncode, r.stderr)
    mm = bits_mismatch(read_mount_data(adir, dt, shape), shadow)
    assert mm is None, mm
    unmount_cleanly(m)
    after = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    assert after == before, "a read-only mount changed the store"


# ----------------------------------------------------------------------------
# concurrency and write-back triggers
# ----------------------------------------------------------------------------


def test_threads_write_different_bytes_of_one_chunk(mounter, tmp_path):
    """Eight threads, each owning every eighth element of one chunk, write their elements
    again and again (through data and through the chunk file, each its own fd); every
    thread's last write must land."""
    rng = rng_for("threads")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (100, 90), (64, 64), np.dtype("<u2")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("lz4", 5, 1),
                        fill=0, init="full", rng=rng)
    m = mounter(store, "--rw")
    adir = m.mnt / ARR
    nthreads, rounds = 8, 25
    # elements of chunk (0,0) (rows 0..63, cols 0..63), as (row, col)
    cells = [(r, c) for r in range(64) for c in range(64)]
    final = {}

    def worker(t: int) -> dict:
        trng = np.random.default_rng(1000 + t)
        mine = cells[t::nthreads]
        last = {}
        via_chunk = t % 2 == 1
        fd = os.open(adir / ("chunks/0.0" if via_chunk else "data"), os.O_WRONLY)
        try:
            for rnd in range(rounds):
                for (r, c) in mine[rnd % 3::3]:
                    v = int(trng.integers(0, 65536))
                    off = (r * 64 + c) * 2 if via_chunk else (r * shape[1] + c) * 2
                    os.pwrite(fd, int(v).to_bytes(2, "little"), off)
                    last[(r, c)] = v
                if rnd % 7 == 6:
                    os.fsync(fd)
        finally:
            os.close(fd)
        return last

    with cf.ThreadPoolExecutor(nthreads) as ex:
        for part in ex.map(worker, range(nthreads)):
            final.update(part)
    for (r, c), v in final.items():
        shadow[r, c] = v
    mm = bits_mismatch(read_mount_data(adir, dt, shape), shadow)
    assert mm is None, f"through the mount: {mm}"
    unmount_cleanly(m)
    problems = check_store(store, ARR, shadow, {(0, 0)})
    assert not problems, "\n".join(problems)


def wait_for(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_write_back_triggers(mounter, tmp_path):
    """fsync, close, the idle delay (file still open and mapped) and SIGTERM each store
    the written chunks."""
    rng = rng_for("triggers")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (32, 32), (8, 8), np.dtype("<i8")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=GZip(1), fill=-7,
                        init="full", rng=rng)
    m = mounter(store, "--rw", "--writeback-delay", "300ms")
    adir = m.mnt / ARR

    def stored_equals(box):
        got = zarr.open_array(str(store / ARR), mode="r")[box]
        return np.array_equal(np.asarray(got), shadow[box])

    # fsync
    fd = os.open(adir / "data", os.O_RDWR)
    v = random_array(dt, (8, 8), rng)
    for r in range(8):
        os.pwrite(fd, v[r].tobytes(), (r * 32) * 8)
    shadow[0:8, 0:8] = v
    os.fsync(fd)
    assert stored_equals((slice(0, 8), slice(0, 8))), "not stored after fsync"
    # idle delay with the file still open
    v = random_array(dt, (8,), rng)
    os.pwrite(fd, v.tobytes(), (8 * 32 + 8) * 8)
    shadow[8, 8:16] = v
    assert wait_for(lambda: stored_equals((8, slice(8, 16))), 10), "not stored 10s after the last write (delay 300ms)"
    # idle delay with a live shared mapping of the file
    mm = np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape)
    mm[20, 20] = 12345
    mm.flush()
    shadow[20, 20] = 12345
    assert wait_for(lambda: stored_equals((20, 20)), 10), "mmap write not stored 10s after msync (delay 300ms)"
    del mm
    os.close(fd)
    # close (the delay is long enough not to race: re-mount with 60s)
    unmount_cleanly(m)
    m = mounter(store, "--rw", "--writeback-delay", "60s", name="mnt2")
    adir = m.mnt / ARR
    with open(adir / "chunks" / "3.3", "r+b") as f:
        f.seek(8)
        f.write(np.array([99], dtype=dt).tobytes())
    shadow[24, 25] = 99
    assert wait_for(lambda: stored_equals((24, 25)), 10), "not stored 10s after close (delay 60s)"
    # SIGTERM right after a write and close
    with open(adir / "data", "r+b") as f:
        f.seek((31 * 32 + 31) * 8)
        f.write(np.array([4242], dtype=dt).tobytes())
    shadow[31, 31] = 4242
    sigterm_and_wait(m)
    assert stored_equals((31, 31)), "write lost on SIGTERM"
    problems = check_store(store, ARR, shadow, {(0, 0), (1, 1), (2, 2), (3, 3)})
    assert not problems, "\n".join(problems)


def sigterm_and_wait(m, fd: int | None = None) -> None:
    """SIGTERM the daemon of mount `m`: it must write back, unmount and exit (once `fd`, a
    file still open on the mount, is closed)."""
    pids = daemon_pids(m.mnt)
    assert len(pids) == 1, f"daemon pids for {m.mnt}: {pids}"
    os.kill(pids[0], signal.SIGTERM)
    unmounted = wait_for(lambda: not os.path.ismount(m.mnt), 10)
    if fd is not None:
        os.close(fd)
    gone = wait_for(lambda: not os.path.exists(f"/proc/{pids[0]}"), 20)
    log = m.log.read_text(errors="replace")[-3000:]
    if not gone:
        diag = stacks(pids)[:20000]
        os.kill(pids[0], signal.SIGTERM)  # a second one, in case only the first was lost
        assert False, (f"daemon {pids[0]} still running 20s after SIGTERM "
                       f"({'unmounted' if unmounted else 'still mounted'})\nlog:\n{log}\n{diag}")
    assert unmounted, f"{m.mnt} still mounted 10s after SIGTERM\nlog:\n{log}"


def test_sigterm_with_a_file_open(mounter, tmp_path):
    """SIGTERM while a process still has a file of the mount open (a shell in the mount,
    a long-running writer): the daemon writes back, detaches the mount and exits once the
    file is closed, rather than keep serving after a failed (EBUSY) unmount."""
    rng = rng_for("sigterm")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (16, 16), (8, 8), np.dtype("<i4")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Zlib(1), fill=0,
                        init="full", rng=rng)
    m = mounter(store, "--rw", "--writeback-delay", "60s")
    fd = os.open(m.mnt / ARR / "data", os.O_WRONLY)
    os.pwrite(fd, np.array([4242], dtype=dt).tobytes(), (15 * 16 + 15) * 4)
    shadow[15, 15] = 4242
    try:
        sigterm_and_wait(m, fd)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    problems = check_store(store, ARR, shadow, {(1, 1)})
    assert not problems, "\n".join(problems)


def test_memmap_without_flush_lands_on_unmount(mounter, tmp_path):
    """A numpy.memmap user who never calls flush(): the dirty pages reach the store by
    `zarrfs umount`."""
    rng = rng_for("noflush")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (64, 64), (16, 16), np.dtype("<f8")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("lz4", 5, 1),
                        fill=0.0, init="partial", rng=rng)
    m = mounter(store, "--rw", "--writeback-delay", "60s")
    mm = np.memmap(m.mnt / ARR / "data", dtype=dt, mode="r+", shape=shape)
    vals = random_array(dt, (30, 40), rng)
    mm[10:40, 5:45] = vals
    del mm
    shadow[10:40, 5:45] = vals
    unmount_cleanly(m)
    problems = check_store(store, ARR, shadow, chunks_of_box((slice(10, 40), slice(5, 45)), chunks))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cache_opts", [[], ["-o", "kernel_cache"], ["-o", "direct_io"]],
                         ids=["default", "kernel_cache", "direct_io"])
def test_views_stay_coherent(cache_opts, mounter, tmp_path):
    """Live mappings of data and data.npy, and reads of chunk files, see each other's
    writes (pwrite on any view; mmap writes once msync'ed), whatever the cache mode."""
    rng = rng_for("coherent")
    store = tmp_path / "store.zarr"
    shape, chunks, dt = (100, 110), (32, 40), np.dtype("<u2")
    shadow = make_array(store, ARR, dtype=dt.str, shape=shape, chunks=chunks, compressor=Blosc("zstd", 3, 1),
                        fill=7, init="full", rng=rng)
    m = mounter(store, "--rw", *cache_opts)
    adir = m.mnt / ARR
    d = np.memmap(adir / "data", dtype=dt, mode="r+", shape=shape)
    n = np.load(adir / "data.npy", mmap_mode="r+")
    ro = np.memmap(adir / "data", dtype=dt, mode="r", shape=shape)

    def chunk_value(idx, r, c):
        raw = pread_all(adir / "chunks" / chunk_name(idx))
        return int(np.frombuffer(raw, dt)[r * chunks[1] + c])

    problems = []

    def expect(what, got, want):
        if int(got) != want:
            problems.append(f"{what}: got {int(got)}, expected {want}")

    pwrite_all(adir / "chunks" / "0.0", (1 * 40 + 2) * 2, np.array([555], dt).tobytes())
    shadow[1, 2] = 555
    for name, view in (("data mmap", d), ("data.npy mmap", n), ("read-only data mmap", ro)):
        expect(f"{name} after pwrite on chunks/0.0", view[1, 2], 555)
    pwrite_all(adir / "data", (50 * 110 + 60) * 2, np.array([666], dt).tobytes())
    shadow[50, 60] = 666
    expect("data.npy mmap after pwrite on data", n[50, 60], 666)
    expect("chunks/1.1 after pwrite on data", chunk_value((1, 1), 50 - 32, 60 - 40), 666)
    d[70, 80] = 777
    d.flush()
    shadow[70, 80] = 777
    expect("chunks/2.2 after msync of a data mapping", chunk_value((2, 2), 70 - 64, 0), 777)
    expect("data.npy mmap after msync of a data mapping", n[70, 80], 777)
    expect("read-only data mmap after msync of a data mapping", ro[70, 80], 777)
    n[20, 20] = 999
    n.flush()
    shadow[20, 20] = 999
    expect("data mmap after msync of a data.npy mapping", d[20, 20], 999)
    expect("chunks/0.0 after msync of a data.npy mapping", chunk_value((0, 0), 20, 20), 999)
    del d, n, ro, view
    assert not problems, "\n".join(problems)
    unmount_cleanly(m)
    problems = check_store(store, ARR, shadow, {(0, 0), (1, 1), (2, 2)})
    assert not problems, "\n".join(problems)


def pread_all(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()
