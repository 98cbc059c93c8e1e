#!/usr/bin/env python3
"""Benchmark harness of zarrfs: reads through the mount against in-process Zarr readers.

Run it through ``bash scripts/bench.sh`` (which builds release and prepares the venv); every
argument is passed on. One run:

1. writes the datasets with zarr-python (Zarr v2 directory stores, one per dataset) into the
   work directory, reusing stores whose generation parameters have not changed:

   A  float32 8192x16384, chunks 1024x1024, blosc lz4 + byte shuffle, smooth values + noise
   B  A's values, zstd level 3
   C  float64 4096x4096, chunks 512x512, gzip level 5
   D  uint16 512x512x512, chunks 128x128x128, blosc zstd + bit shuffle
   U  A's values uncompressed (the FUSE ceiling), plus a plain raw file of the same bytes
   S  A's values as Zarr v3, sharded: shards 2048x2048 of 512x512 inner chunks, blosc lz4
   V  A's values as Zarr v3 with zarr-python 3's default codecs (zstd)
   T  float32 cube 240x1024x1024, chunks 24x128x128, blosc lz4 + shuffle (scenario 9)

2. puts every store file in the page cache, then measures, each at least ``--repeats`` times
   (median reported):

   1  sequential read of ``data`` through a fresh mount (cold chunk cache): cat, dd bs=1M
   2  the same re-read with the chunk cache warm
   3  in-process peers on the same store: zarr-python, zarr-python + zarrs, tensorstore
   4  limits: zarrfs-decode-bench (zarrfs's codecs on all cores, no FUSE), cat of U through
      the mount, cat of a plain raw file from the page cache
   5  10,000 random 4 KiB preads on ``data``, cold and warm, against zarr-python
   6  ``cat chunks/*`` against zarr-python reading chunk by chunk
   7  writing a whole array through ``data`` (skipped, with the reason, while the mount
      refuses writes)
   8  peak RSS of the daemon with ``--cache-size 128MiB``
   9  on T (scripts/bench_patterns.py): a slab, a time series of 20 pixels and a tile, read
      through mmap of ``data.npy`` and ``pread`` of ``data`` on read-only mounts (page cache
      and direct I/O), cold and warm, against zarr-python and tensorstore reading the same
      selection; chunks decoded against chunks touched; the slab written through
      ``numpy.memmap`` + fsync against their ``a[sel] = x``

   S and V take scenarios 1-4 (S also 6, and the bytes one inner chunk file reads from the
   store); T takes scenario 9 only.

   plus daemon CPU (user+sys from /proc/PID/stat), the read request size the daemon sees,
   per-thread CPU and run-state sampling of one cold read, and a perf profile when perf works;
   then the levers: cold and warm ``cat data`` of A and D under other mount options (page
   cache, direct I/O, kernel read-ahead raised through the mount's bdi, thread count, cache
   size) and, with ``--levers-commits``, through the daemon built at other commits.

3. checks that the bytes read through the mount equal zarr-python's array (SHA-256) and fails
   the run otherwise.

4. writes BENCHMARKS.md and docs/bench.png (a full run) or, with ``--quick``, the same files
   under the quick work directory; raw results go to ``results.json`` in the work directory.
   BENCHMARKS.md's Levers section ends with docs/bench-levers.md, copied verbatim (lever
   results kept by hand: code changes measured with ``--levers-commits``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 1
MiB = 1 << 20
PAGE = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")
RANDOM_READS = 10_000
RSS_CACHE_SIZE = 128 * MiB
RSS_SLACK = 64 * MiB
FOREIGN_LIMIT = 0.25  # cores other processes may use during a measurement block
UNSYMBOLIZED = "unnamed code in the zarrfs binary (self time; zstd's assembly decoder)"
ON_DECODE_THREADS = "all samples on the decode threads (zarrfs-decode-*)"
# Code paths whose inclusive share of the daemon's perf samples the report shows (label, regex
# on the symbol); they overlap (a page fault inside a decode counts in both).
PERF_PATHS = [
    ("decoding (codec entry points, incl. their page faults)",
     r"BytesCodec>::decode_into$|blosc_decompress_ctx$|\] ZSTD_decompress|miniz_oxide::inflate|"
     r"\] LZ4_decompress"),
    ("reading chunk files (kernel filemap_read)", r"\] filemap_read$"),
    ("page faults on fresh memory (asm_exc_page_fault)", r"\] asm_exc_page_fault$"),
    ("replies to the kernel (fuse_dev_write)", r"\] fuse_dev_write$"),
    ("planning request/read-ahead ranges (ChunkGrid::plan*)", r"ChunkGrid::plan(_in_order)?$"),
    ("cache/plan hashing (hash_one)", r"BuildHasher::hash_one$"),
    ("user-space copies (memmove)", r"\] __memmove"),
    ("zeroing buffers (memset)", r"\] __memset"),
]


# Run-time levers measured on A and D (cold and warm `cat data`): key, label, mount arguments,
# kernel read-ahead (read_ahead_kb of the mount's bdi) to set after mounting, or None; the
# kernel's fs.fuse.max_pages_limit while mounting, or None for the run's setting.
RUNTIME_LEVERS = [
    ("default", "writable mount, `-o rw` (direct I/O, chunk cache only)", [], None, None),
    ("pages256", "writable mount, kernel's default request limit "
     "(`fs.fuse.max_pages_limit` 256: 1 MiB requests)", [], None, 256),
    ("ro", "`--read-only`, zarrfs's default (page cache + keep_cache)", ["--read-only"], None,
     None),
    ("ro_ra1024", "`--read-only`, bdi `read_ahead_kb` raised to 1024", ["--read-only"], 1024,
     None),
    ("ro_direct", "`--read-only -o direct_io`", ["--read-only", "-o", "direct_io"], None, None),
    ("kernel_cache", "`-o kernel_cache` (writable, page cache, no keep_cache)",
     ["-o", "kernel_cache"], None, None),
    ("threads1", "`--threads 1` (1 decode thread, 2 FUSE threads)", ["--threads", "1"], None,
     None),
    ("threads4", "`--threads 4` (4 decode + 4 FUSE threads on 2 cores)", ["--threads", "4"],
     None, None),
    ("cache128", "`--cache-size 128MiB`", ["--cache-size", "128MiB"], None, None),
    ("keep_scans", "`--keep-scans` (plain LRU: a pass caches every chunk it decodes)",
     ["--keep-scans"], None, None),
]
# The kernel's limit on the pages one FUSE request carries (Linux >= 6.13); read when a
# connection is created.
MAX_PAGES_LIMIT = Path("/proc/sys/fs/fuse/max_pages_limit")
LEVER_DATASETS = ("A", "D")
# Datasets measured in every scenario; S and V are read whole and (S) by chunk files, T is
# the cube of the access-pattern scenarios.
FULL_SETS = ("A", "B", "C", "D", "U")
PEER_LIBS = ("zarr", "zarrs", "tensorstore")
LEVERS_DOC = ROOT / "docs" / "bench-levers.md"


class BenchError(Exception):
    """A failure that ends the run (wrong bytes, a tool that does not work)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class Dataset:
    """One benchmark array: what zarr-python writes and how it is described."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    codec: str  # key into CODECS
    values: str  # key into VALUE_GENERATORS
    description: str
    zarr_format: int = 2
    shards: tuple[int, ...] | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * int(self.dtype[-1])

    @property
    def itemsize(self) -> int:
        return int(self.dtype[-1])

    @property
    def num_chunks(self) -> int:
        return math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks))

    def params(self) -> dict:
        return {**asdict(self), "generator": GENERATOR_VERSION}


def dataset_specs(quick: bool) -> dict[str, Dataset]:
    """The five datasets; ``quick`` divides each array's size by 16 (chunking unchanged)."""
    a_shape = (2048, 4096) if quick else (8192, 16384)
    c_shape = (1024, 1024) if quick else (4096, 4096)
    d_shape = (128, 256, 256) if quick else (512, 512, 512)
    smooth = "smooth values with noise"
    return {
        "A": Dataset("A", "<f4", a_shape, (1024, 1024), "blosc-lz4-shuffle", "field2d",
                     f"float32, {smooth}, blosc lz4 + shuffle"),
        "B": Dataset("B", "<f4", a_shape, (1024, 1024), "zstd3", "field2d",
                     "A's values, zstd level 3"),
        "C": Dataset("C", "<f8", c_shape, (512, 512), "gzip5", "field2d",
                     f"float64, {smooth}, gzip level 5"),
        "D": Dataset("D", "<u2", d_shape, (128, 128, 128), "blosc-zstd-bitshuffle", "volume3d",
                     "uint16 volume, blosc zstd + bitshuffle"),
        "U": Dataset("U", "<f4", a_shape, (1024, 1024), "none", "field2d",
                     "A's values uncompressed (FUSE ceiling)"),
        "S": Dataset("S", "<f4", a_shape, (512, 512), "v3-blosc-lz4-shuffle", "field2d",
                     "A's values as Zarr v3, shards 2048×2048 of 512×512 inner chunks, "
                     "sharded blosc lz4 + shuffle", zarr_format=3,
                     shards=(2048, 2048)),
        "V": Dataset("V", "<f4", a_shape, (1024, 1024), "v3-default", "field2d",
                     "A's values as Zarr v3 with zarr-python's default codecs, zstd",
                     zarr_format=3),
        "T": Dataset("T", "<f4", cube_shape(quick), (24, 128, 128), "blosc-lz4-shuffle",
                     "cube3d", "float32 time × y × x cube, blosc lz4 + shuffle"),
    }


def cube_shape(quick: bool) -> tuple[int, int, int]:
    """The cube of the access-pattern scenarios (a quarter of the planes in a quick run)."""
    return (60, 1024, 1024) if quick else (240, 1024, 1024)


def make_codec(key: str):
    import numcodecs

    return {
        "blosc-lz4-shuffle": lambda: numcodecs.Blosc(cname="lz4", clevel=5,
                                                     shuffle=numcodecs.Blosc.SHUFFLE),
        "zstd3": lambda: numcodecs.Zstd(level=3),
        "gzip5": lambda: numcodecs.GZip(level=5),
        "blosc-zstd-bitshuffle": lambda: numcodecs.Blosc(cname="zstd", clevel=5,
                                                         shuffle=numcodecs.Blosc.BITSHUFFLE),
        "none": lambda: None,
        "v3-blosc-lz4-shuffle": lambda: zarr_codecs().BloscCodec(cname="lz4", clevel=5,
                                                                 shuffle="shuffle"),
        "v3-default": lambda: "auto",
    }[key]()


def zarr_codecs():
    import zarr.codecs

    return zarr.codecs


def field2d(shape, dtype, rows: slice, seed: int):
    """A smooth 2-D field plus small Gaussian noise, rows ``rows`` only."""
    import numpy as np

    y = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
    x = np.arange(shape[1], dtype=np.float64)[None, :]
    smooth = 10.0 * np.sin(x / 700.0 + y / 1300.0) + 5.0 * np.cos(y / 450.0 - x / 2100.0)
    rng = np.random.default_rng([seed, rows.start])
    noise = rng.normal(0.0, 0.05, size=(rows.stop - rows.start, shape[1]))
    return (smooth + noise).astype(dtype)


def volume3d(shape, dtype, rows: slice, seed: int):
    """A smooth 3-D uint16 volume plus small integer noise, planes ``rows`` only."""
    import numpy as np

    z = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None, None]
    y = np.arange(shape[1], dtype=np.float64)[None, :, None]
    x = np.arange(shape[2], dtype=np.float64)[None, None, :]
    smooth = 2000.0 + 1500.0 * np.sin(x / 40.0) * np.cos(y / 55.0) * np.sin(z / 70.0 + 0.3)
    rng = np.random.default_rng([seed, rows.start])
    noise = rng.integers(-8, 9, size=(rows.stop - rows.start, shape[1], shape[2]))
    return np.clip(smooth + noise, 0, 65535).astype(dtype)


def cube3d(shape, dtype, rows: slice, seed: int):
    """A smooth float32 field over (time, y, x) plus small noise, time steps ``rows`` only."""
    import numpy as np

    t = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None, None]
    y = np.arange(shape[1], dtype=np.float32)[None, :, None]
    x = np.arange(shape[2], dtype=np.float32)[None, None, :]
    smooth = 10.0 * np.sin(x / 90.0 + t / 30.0) * np.cos(y / 70.0 - t / 50.0)
    rng = np.random.default_rng([seed, rows.start])
    noise = rng.normal(0.0, 0.05, size=(rows.stop - rows.start, shape[1], shape[2]))
    return (smooth + noise.astype(np.float32)).astype(dtype)


VALUE_GENERATORS = {"field2d": field2d, "volume3d": volume3d, "cube3d": cube3d}


def store_path(work: Path, name: str) -> Path:
    return work / f"{name}.zarr"


def raw_path(work: Path, name: str) -> Path:
    return work / f"{name}.raw"


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".params.json")


def is_current(path: Path, params: dict) -> bool:
    try:
        # Compare as JSON (tuples come back as lists).
        return (path.exists()
                and json.loads(stamp_path(path).read_text()) == json.loads(json.dumps(params)))
    except (OSError, ValueError):
        return False


def generate(work: Path, specs: dict[str, Dataset], wanted: list[str], raw_for: set[str]):
    """Writes the stores in ``wanted`` (and raw files for ``raw_for``) that are missing or stale.
    Datasets sharing a value generator and shape are written from the same bands of values."""
    import numpy as np
    import zarr

    groups: dict[tuple, list[str]] = {}
    for name in wanted:
        spec = specs[name]
        groups.setdefault((spec.values, spec.shape, spec.dtype), []).append(name)
    for (values, shape, dtype), names in groups.items():
        todo_stores = [n for n in names if not is_current(store_path(work, n), specs[n].params())]
        todo_raw = [n for n in names if n in raw_for
                    and not is_current(raw_path(work, n), specs[n].params())]
        if not todo_stores and not todo_raw:
            continue
        log(f"writing datasets {', '.join(todo_stores + [r + '.raw' for r in todo_raw])}")
        arrays = {}
        for n in todo_stores:
            spec = specs[n]
            path = store_path(work, n)
            shutil.rmtree(path, ignore_errors=True)
            stamp_path(path).unlink(missing_ok=True)
            arrays[n] = zarr.create_array(
                store=str(path), shape=spec.shape, chunks=spec.chunks, dtype=spec.dtype,
                compressors=make_codec(spec.codec), filters=None if spec.zarr_format == 2
                else "auto", fill_value=0, zarr_format=spec.zarr_format, shards=spec.shards,
                overwrite=True,
            )
        raws = {}
        for n in todo_raw:
            stamp_path(raw_path(work, n)).unlink(missing_ok=True)
            raws[n] = open(raw_path(work, n), "wb")
        band = max((specs[n].shards or specs[n].chunks)[0] for n in names)
        seed = 20240 + sum(map(ord, values))
        for start in range(0, shape[0], band):
            rows = slice(start, min(start + band, shape[0]))
            block = VALUE_GENERATORS[values](shape, np.dtype(dtype), rows, seed)
            for arr in arrays.values():
                arr[rows] = block
            for f in raws.values():
                f.write(np.ascontiguousarray(block).tobytes())
        for n, f in raws.items():
            f.close()
            stamp_path(raw_path(work, n)).write_text(json.dumps(specs[n].params()))
        for n in todo_stores:
            stamp_path(store_path(work, n)).write_text(json.dumps(specs[n].params()))


def metadata_file(store: Path) -> Path:
    """The array metadata document of a store whose root is an array (v2 or v3)."""
    v3 = store / "zarr.json"
    return v3 if v3.exists() else store / ".zarray"


def stored_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def warm_page_cache(*paths: Path) -> float:
    """Reads every file under ``paths`` so that later reads come from the page cache."""
    t0 = time.perf_counter()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while fh.read(8 * MiB):
                    pass
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# /proc helpers


def read_proc_stat(pid: int | str, tid: int | str | None = None) -> tuple[str, str, float]:
    """(comm, state, user+sys seconds) of a process or one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, fields[0], (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu(pid: int) -> float:
    return read_proc_stat(pid)[2]


def proc_status(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    total = sum(vals[:8])
    idle = vals[3] + vals[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def thread_cpu(pid: int) -> dict[str, float]:
    """user+sys seconds of each thread of ``pid``, keyed by tid:comm."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm, _, cpu = read_proc_stat(pid, tid)
        except OSError:
            continue
        out[f"{tid}:{comm}"] = cpu
    return out


def thread_group(comm: str) -> str:
    return re.sub(r"[-_]?\d+$", "", comm)


class ThreadSampler(threading.Thread):
    """Samples the run state of every thread of the daemon (and of a client) every few ms."""

    def __init__(self, daemon_pid: int, interval: float = 0.002):
        super().__init__(daemon=True)
        self.daemon_pid = daemon_pid
        self.client_pid: int | None = None
        self.interval = interval
        self.stop = threading.Event()
        self.samples = 0
        self.running_hist: dict[int, int] = {}
        self.running_by_group: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            running = 0
            pids = [(self.daemon_pid, "daemon")]
            if self.client_pid:
                pids.append((self.client_pid, "client"))
            for pid, who in pids:
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    try:
                        comm, state, _ = read_proc_stat(pid, tid)
                    except (OSError, ValueError):
                        continue
                    if state == "R":
                        running += 1
                        group = f"{who}:{thread_group(comm)}"
                        self.running_by_group[group] = self.running_by_group.get(group, 0) + 1
            self.samples += 1
            self.running_hist[running] = self.running_hist.get(running, 0) + 1
            time.sleep(self.interval)


# --------------------------------------------------------------------------------------------
# Mounts and timed commands


def mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == str(path) for line in f)


class Mount:
    """A zarrfs daemon serving ``store`` on ``mountpoint`` (fresh each time: cold cache).
    Writable (``-o rw``, which every zarrfs build understands; the measured configuration,
    direct I/O) unless ``extra`` holds ``--read-only``."""

    def __init__(self, bench: "Bench", store: Path, *extra: str, binary: Path | None = None,
                 read_ahead_kb: int | None = None, max_pages_limit: int | None = None):
        self.bench = bench
        self.store = store
        self.path = bench.mnt
        self.extra = list(extra) if "--read-only" in extra else ["-o", "rw", *extra]
        self.binary = binary or bench.zarrfs
        self.read_ahead_kb = read_ahead_kb
        self.max_pages_limit = max_pages_limit
        self.saved_read_ahead: tuple[Path, str] | None = None
        self.pid = 0
        self.last_cpu = 0.0

    def __enter__(self) -> "Mount":
        if mounted(self.path):
            subprocess.run([str(self.binary), "umount", str(self.path)], check=False)
        cmd = [str(self.binary), "mount", str(self.store), str(self.path),
               "--log", str(self.bench.work / "zarrfs.log"), *self.extra]
        if self.max_pages_limit is None:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        else:
            # The kernel reads the limit when the connection is created, so it is set for
            # this mount only and put back once the mount is up.
            with max_pages_limit(self.max_pages_limit):
                proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"zarrfs mount failed: {proc.stderr.strip()}")
        self.pid = self._find_daemon()
        if self.read_ahead_kb is not None:
            knob = self.bdi_read_ahead_file()
            self.saved_read_ahead = (knob, knob.read_text().strip())
            knob.write_text(f"{self.read_ahead_kb}\n")
        return self

    def bdi_read_ahead_file(self) -> Path:
        """The kernel read-ahead knob of the mount's backing device: its bdi is named after
        the device number that /proc/self/mountinfo lists for the mount point."""
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split(" ")
                if fields[4] == str(self.path):
                    return Path(f"/sys/class/bdi/{fields[2]}/read_ahead_kb")
        raise BenchError(f"{self.path} is not in /proc/self/mountinfo")

    def read_ahead(self) -> int | None:
        try:
            return int(self.bdi_read_ahead_file().read_text().split()[0])
        except (OSError, ValueError, IndexError, BenchError):
            return None

    def _find_daemon(self) -> int:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if (len(argv) > 3 and argv[1] == b"mount" and argv[3] == os.fsencode(self.path)
                    and argv[0] == os.fsencode(self.binary)):
                return int(entry)
        raise BenchError(f"no zarrfs daemon found for {self.path}")

    def stats(self) -> dict[str, int]:
        text = (self.path / ".zarrfs" / "stats").read_text()
        return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line)}

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def hwm(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def unmount(self) -> None:
        if self.saved_read_ahead:
            knob, value = self.saved_read_ahead
            self.saved_read_ahead = None
            try:
                knob.write_text(value + "\n")
            except OSError:
                pass
        if mounted(self.path):
            proc = subprocess.run([str(self.binary), "umount", str(self.path)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise BenchError(f"zarrfs umount failed: {proc.stderr.strip()}")
        # Wait for the daemon to exit, noting its CPU time to the last reading (it is not our
        # child, so its CPU would otherwise count as someone else's; see Bench.guarded).
        deadline = time.time() + 30
        while self.pid and time.time() < deadline:
            try:
                _, state, cpu = read_proc_stat(self.pid)
            except (OSError, ValueError):
                break
            self.last_cpu = cpu
            if state == "Z":
                break
            time.sleep(0.02)
        if self.pid:
            self.bench.daemon_cpu_total += self.last_cpu
            self.pid = 0

    def __exit__(self, *exc) -> None:
        self.unmount()


def read_max_pages_limit() -> int | None:
    """The kernel's ``fs.fuse.max_pages_limit``, or None where it has no such setting."""
    try:
        return int(MAX_PAGES_LIMIT.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class max_pages_limit:
    """Context manager: the kernel's ``fs.fuse.max_pages_limit`` is ``pages`` meanwhile (no-op
    where the kernel has no such setting)."""

    def __init__(self, pages: int):
        self.pages = pages
        self.saved: str | None = None

    def __enter__(self):
        if MAX_PAGES_LIMIT.exists():
            self.saved = MAX_PAGES_LIMIT.read_text().strip()
            MAX_PAGES_LIMIT.write_text(f"{self.pages}\n")
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            MAX_PAGES_LIMIT.write_text(self.saved + "\n")


class pinned_to_one_cpu:
    """Context manager: this process and all threads of ``pid`` run on one CPU meanwhile."""

    def __init__(self, pid: int):
        self.pid = pid
        self.saved: dict[int, set[int]] = {}

    def __enter__(self):
        cpu = {min(os.sched_getaffinity(0))}
        tids = [0] + [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        for tid in tids:
            try:
                self.saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpu)
            except OSError:
                pass
        return self

    def __exit__(self, *exc):
        for tid, cpus in self.saved.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def run_timed(argv: list[str], mount: Mount | None = None, sampler_hook=None) -> dict:
    """Runs a command to completion; wall time, its own CPU, the daemon's CPU, machine busy time
    and the daemon's counter deltas."""
    before_stats = mount.stats() if mount else {}
    d0 = mount.cpu() if mount else 0.0
    busy0, total0 = system_busy()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if sampler_hook:
        sampler_hook(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    busy1, total1 = system_busy()
    d1 = mount.cpu() if mount else 0.0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[:2])} ... exited {proc.returncode}: {err.strip()}")
    out = {
        "wall": wall,
        "client_cpu": usage.ru_utime + usage.ru_stime,
        "daemon_cpu": d1 - d0,
        "system_busy": busy1 - busy0,
        "system_capacity": total1 - total0,
    }
    if mount:
        after = mount.stats()
        out["stats"] = {k: after[k] - before_stats.get(k, 0) for k in after}
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def summarize_runs(runs: list[dict], nbytes: int) -> dict:
    wall = median([r["wall"] for r in runs])
    cpu = median([(r["client_cpu"] + r["daemon_cpu"]) / r["wall"] for r in runs])
    out = {
        "runs": runs,
        "seconds": wall,
        "gb_s": nbytes / wall / 1e9,
        "cpu_per_wall": cpu,
        "daemon_cpu_per_wall": median([r["daemon_cpu"] / r["wall"] for r in runs]),
        "system_busy_per_wall": median([r["system_busy"] / r["wall"] for r in runs]),
        # CPU that neither the daemon nor the reader used: other processes on the machine.
        "foreign_cpu_per_wall": max(
            (r["system_busy"] - r["client_cpu"] - r["daemon_cpu"]) / r["wall"] for r in runs),
    }
    stats = [r.get("stats") for r in runs if r.get("stats")]
    if stats:
        reqs = median([s["read_requests"] for s in stats])
        out["read_requests"] = reqs
        out["avg_request_bytes"] = median(
            [s["bytes_read"] / max(1, s["read_requests"]) for s in stats])
        out["chunks_decoded"] = median([s["chunks_decoded"] for s in stats])
        out["chunks_prefetched"] = median([s["chunks_prefetched"] for s in stats])
        out["cache_hits"] = median([s["cache_hits"] for s in stats])
        out["cache_misses"] = median([s["cache_misses"] for s in stats])
    return out


# --------------------------------------------------------------------------------------------
# In-process peers (run in a child interpreter each, so every library starts fresh)


def flat_selection(shape: tuple[int, ...], start: int, count: int) -> tuple:
    """The basic selection covering elements [start, start + count) of the C-order flat view,
    when that range is one rectangular block (true for aligned 4 KiB ranges here)."""
    import numpy as np

    idx = np.unravel_index(start, shape)
    for k in range(len(shape) - 1, -1, -1):
        inner = math.prod(shape[k + 1:])
        if count % inner == 0 and start % inner == 0 and idx[k] + count // inner <= shape[k]:
            return (tuple(int(i) for i in idx[:k]) + (slice(int(idx[k]), int(idx[k]) + count // inner),)
                    + (slice(None),) * (len(shape) - k - 1))
    raise ValueError(f"range {start}+{count} is not a block of {shape}")


def open_reader(lib: str, store: str):
    """A function reading a selection of the array at ``store`` with ``lib``."""
    if lib == "tensorstore":
        import tensorstore as ts

        driver = "zarr3" if (Path(store) / "zarr.json").exists() else "zarr"
        arr = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": store}},
                      read=True).result()
        return arr, lambda sel=...: arr[sel].read().result()
    import zarr

    if lib == "zarrs":
        import zarrs  # noqa: F401  (registers the pipeline)

        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                         "codec_pipeline.strict": True})
    arr = zarr.open_array(store, mode="r")
    return arr, lambda sel=...: arr[sel]


def worker(task: dict) -> dict:
    """Runs one in-process measurement described by ``task``; returns JSON-able results."""
    import numpy as np

    op, lib, store = task["op"], task.get("lib", "zarr"), task.get("store")
    if op.startswith("pattern_"):
        import bench_patterns

        return bench_patterns.worker(task, open_reader)
    if op == "read_all":
        _, read = open_reader(lib, store)
        times, result = [], None
        for _ in range(task["repeats"]):
            result = None
            t0 = time.perf_counter()
            result = read()
            times.append(time.perf_counter() - t0)
        data = np.ascontiguousarray(result)
        return {"times": times, "sha256": hashlib.sha256(memoryview(data).cast("B")).hexdigest()}
    if op == "random":
        arr, read = open_reader(lib, store)
        shape = tuple(arr.shape)
        itemsize = np.dtype(task["dtype"]).itemsize
        offsets = task["offsets"]
        lat, h = [], hashlib.sha256()
        for off in offsets:
            sel = flat_selection(shape, off // itemsize, task["size"] // itemsize)
            t0 = time.perf_counter_ns()
            block = read(sel)
            lat.append((time.perf_counter_ns() - t0) / 1000)
            h.update(np.ascontiguousarray(block).tobytes())
        return {"latency_us": lat, "sha256": h.hexdigest()}
    if op == "chunkwise":
        arr, read = open_reader(lib, store)
        grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks)]
        import itertools

        sels = [tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, arr.chunks))
                for index in itertools.product(*grid)]
        times = []
        for _ in range(task["repeats"]):
            t0 = time.perf_counter()
            for sel in sels:
                read(sel)
            times.append(time.perf_counter() - t0)
        return {"times": times, "chunks": len(sels)}
    if op == "write":
        import zarr

        meta = Path(task["template"]) / ".zarray"
        x = np.fromfile(task["raw"], dtype=task["dtype"]).reshape(task["shape"])
        times = []
        for _ in range(task["repeats"]):
            dest = Path(task["scratch"])
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            shutil.copy(meta, dest / ".zarray")
            if lib == "tensorstore":
                import tensorstore as ts

                arr = ts.open({"driver": "zarr", "kvstore": {"driver": "file",
                                                             "path": str(dest)}},
                              read=True, write=True).result()
                t0 = time.perf_counter()
                arr.write(x).result()
            else:
                arr = zarr.open_array(str(dest), mode="r+")
                t0 = time.perf_counter()
                arr[...] = x
            times.append(time.perf_counter() - t0)
        back = np.ascontiguousarray(zarr.open_array(str(dest), mode="r")[...])
        return {"times": times, "sha256": hashlib.sha256(memoryview(back).cast("B")).hexdigest()}
    raise ValueError(f"unknown worker op {op}")


def run_worker(task: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(task, f)
        task_file = f.name
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", task_file],
                              capture_output=True, text=True)
    finally:
        os.unlink(task_file)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    """Holds the configuration of one run and collects its results."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quick = args.quick
        self.work = Path(args.work_dir).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.mnt = self.work / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.repeats = args.repeats
        self.specs = dataset_specs(self.quick)
        self.selected = [n.strip().upper() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in self.selected if n not in self.specs]
        if unknown:
            raise BenchError(f"unknown dataset(s) {', '.join(unknown)}; choose from "
                             f"{','.join(self.specs)}")
        # U (and its raw file) is the ceiling that A's targets refer to.
        self.stores = list(self.selected)
        if args.levers_only:
            self.stores = [n for n in LEVER_DATASETS if n in self.selected]
        elif "A" in self.stores and "U" not in self.stores:
            self.stores.append("U")
        self.compressed = [n for n in self.selected if n != "U"]
        self.results: dict = {"datasets": {}, "seq": {}, "peers": {}, "limits": {}, "random": {},
                              "chunks": {}, "write": {}, "rss": {}, "validation": {},
                              "diagnostics": {}, "notes": [], "foreign_load": {}}
        self.zarrfs, self.decode_bench = self._snapshot_binaries()
        self.daemon_cpu_total = 0.0  # CPU of daemons that have exited (see Mount.unmount)
        # Writable mounts need --rw where the daemon mounts read-only by default.
        usage = subprocess.run([str(self.zarrfs), "mount", "--help"], capture_output=True,
                               text=True).stdout
        self.rw_args = ["--rw"] if "--rw" in usage else []
        self.error = BenchError
        self.log = log

    def store_path(self, name: str) -> Path:
        return store_path(self.work, name)

    def _snapshot_binaries(self) -> tuple[Path, Path]:
        """Copies the release binaries (or ``--binary``) into the work dir so a rebuild during
        the run cannot change what is measured."""
        bindir = self.work / "bin"
        bindir.mkdir(exist_ok=True)
        out = []
        for name in ("zarrfs", "zarrfs-decode-bench"):
            src = ROOT / "target" / "release" / name
            if name == "zarrfs" and self.args.binary:
                src = Path(self.args.binary).resolve()
            if not src.exists():
                raise BenchError(f"{src} missing: run cargo build --release")
            dst = bindir / name
            tmp = bindir / (name + ".tmp")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            out.append(dst)
        return out[0], out[1]

    # -- datasets ------------------------------------------------------------------------------

    def prepare(self) -> None:
        raw_for = {"U"} if "U" in self.stores else set()
        generate(self.work, self.specs, self.stores, raw_for)
        for name in self.stores:
            spec = self.specs[name]
            path = store_path(self.work, name)
            self.results["datasets"][name] = {
                "dtype": spec.dtype, "shape": list(spec.shape), "chunks": list(spec.chunks),
                "codec": spec.codec, "description": spec.description, "bytes": spec.nbytes,
                "stored_bytes": stored_bytes(path) - metadata_file(path).stat().st_size,
                "num_chunks": spec.num_chunks,
            }
        paths = [store_path(self.work, n) for n in self.stores]
        if "U" in self.stores:
            paths.append(raw_path(self.work, "U"))
        log(f"warming the page cache ({len(paths)} stores/files)")
        warm_page_cache(*paths)

    def warm(self, name: str) -> None:
        """Re-reads a store (cheap when resident) so that it is in the page cache."""
        warm_page_cache(store_path(self.work, name))

    # -- scenarios 1, 2 and part of 4 ----------------------------------------------------------

    def sequential(self, name: str) -> None:
        spec = self.specs[name]
        store = store_path(self.work, name)
        self.warm(name)
        cat_runs, dd_runs, warm_runs, hwm = [], [], [], []
        peer_runs: dict[str, list[dict]] = {lib: [] for lib in PEER_LIBS}
        mount_hash = None
        for rep in range(self.repeats):
            with Mount(self, store) as m:
                cat_runs.append(run_timed(["cat", str(m.path / "data")], m))
                hwm.append(m.hwm())
                if rep == self.repeats - 1:
                    # The second pass is the one that fills the chunk cache (a first pass
                    # only decodes through recycled memory); warm runs follow it.
                    second_pass = run_timed(["cat", str(m.path / "data")], m)
                    for _ in range(self.repeats):
                        warm_runs.append(run_timed(["cat", str(m.path / "data")], m))
                    mount_hash = sha256_file(m.path / "data")
            # Each round also times every peer once, so that zarrfs and the peers meet the
            # same state of the machine (cold times here are bimodal, see bench-levers.md).
            for lib in PEER_LIBS:
                if not peer_runs[lib] or "error" not in peer_runs[lib][-1]:
                    peer_runs[lib].append(self.peer_read_all(name, lib))
        self.summarize_peers(name, peer_runs)
        for _ in range(self.repeats):
            with Mount(self, store) as m:
                dd_runs.append(run_timed(["dd", f"if={m.path / 'data'}", "of=/dev/null",
                                          "bs=1M"], m))
        ro_runs = []
        with Mount(self, store, "--read-only") as m:
            run_timed(["cat", str(m.path / "data")], m)
            for _ in range(self.repeats):
                ro_runs.append(run_timed(["cat", str(m.path / "data")], m))
        seq = {
            "cold_cat": summarize_runs(cat_runs, spec.nbytes),
            "cold_dd": summarize_runs(dd_runs, spec.nbytes),
            "second_pass_cat": summarize_runs([second_pass], spec.nbytes),
            "warm_cat": summarize_runs(warm_runs, spec.nbytes),
            "warm_cat_ro": summarize_runs(ro_runs, spec.nbytes),
            "daemon_peak_rss": max(hwm),
        }
        self.results["seq"][name] = seq
        self.results["validation"].setdefault(name, {})["mount_data"] = mount_hash
        c = seq["cold_cat"]
        log(f"{name}: cold cat {c['seconds']:.3f}s {c['gb_s']:.2f} GB/s  dd "
            f"{seq['cold_dd']['gb_s']:.2f}  warm {seq['warm_cat']['gb_s']:.2f}  "
            f"warm ro {seq['warm_cat_ro']['gb_s']:.2f} GB/s  cpu/wall {c['cpu_per_wall']:.2f}  "
            f"avg request {c.get('avg_request_bytes', 0) / 1024:.0f} KiB")

    # -- scenario 3 ----------------------------------------------------------------------------

    def peer_read_all(self, name: str, lib: str) -> dict:
        """One timed whole-array read by a peer: the second of two reads in a fresh worker
        process (the first pays imports, thread pools and codec set-up)."""
        self.warm(name)
        return run_worker({"op": "read_all", "lib": lib, "store": str(store_path(self.work, name)),
                           "repeats": 2})

    def summarize_peers(self, name: str, runs: dict[str, list[dict]]) -> None:
        spec = self.specs[name]
        out = {}
        for lib, results in runs.items():
            failed = [r for r in results if "error" in r]
            if failed:
                res = {"error": failed[0]["error"]}
                log(f"{name}: {lib} failed: {res['error']}")
            else:
                times = [r["times"][-1] for r in results]
                shas = {r["sha256"] for r in results}
                res = {"times": times, "seconds": median(times),
                       "sha256": shas.pop() if len(shas) == 1 else "differs between runs"}
                res["gb_s"] = spec.nbytes / res["seconds"] / 1e9
                log(f"{name}: {lib} read-all {res['seconds']:.3f}s {res['gb_s']:.2f} GB/s")
            out[lib] = res
        self.results["peers"][name] = out
        self.results["validation"].setdefault(name, {}).update(
            {lib: r.get("sha256") for lib, r in out.items()})

    # -- scenario 4 ----------------------------------------------------------------------------

    def decode_limit(self, name: str) -> None:
        store = str(store_path(self.work, name))
        out = {}
        for mode, extra in (("load", []), ("decode", ["--decode-only"]), ("keep", ["--keep"])):
            self.warm(name)
            proc = subprocess.run([str(self.decode_bench), store, "--repeat", str(self.repeats),
                                   *extra], capture_output=True, text=True)
            if proc.returncode != 0:
                raise BenchError(f"zarrfs-decode-bench failed: {proc.stderr.strip()}")
            res = json.loads(proc.stdout)
            res.pop("store", None)
            out[mode] = res
        self.results["limits"].setdefault("decode", {})[name] = out
        log(f"{name}: decode limit {out['load']['gb_s']:.2f} GB/s (load+decode), "
            f"{out['decode']['gb_s']:.2f} GB/s (decode only), {out['keep']['gb_s']:.2f} GB/s "
            "(load+decode, chunks kept)")

    def raw_file_limit(self) -> None:
        raw = raw_path(self.work, "U")
        warm_page_cache(raw)
        runs = [run_timed(["cat", str(raw)]) for _ in range(self.repeats)]
        self.results["limits"]["raw_file_cat"] = summarize_runs(runs, raw.stat().st_size)
        log(f"raw file cat {self.results['limits']['raw_file_cat']['gb_s']:.2f} GB/s")

    # -- scenario 5 ----------------------------------------------------------------------------

    def random_reads(self, name: str) -> None:
        import numpy as np

        spec = self.specs[name]
        store = store_path(self.work, name)
        pages = spec.nbytes // PAGE
        n = min(RANDOM_READS, pages)
        cold_offsets = (np.random.default_rng(1).choice(pages, n, replace=False) * PAGE).tolist()
        warm_offsets = (np.random.default_rng(2).choice(pages, n, replace=False) * PAGE).tolist()
        self.warm(name)

        def preads(path: Path, offsets: list[int]) -> tuple[list[float], str]:
            fd = os.open(path, os.O_RDONLY)
            lat, h = [], hashlib.sha256()
            try:
                for off in offsets:
                    t0 = time.perf_counter_ns()
                    block = os.pread(fd, PAGE, off)
                    lat.append((time.perf_counter_ns() - t0) / 1000)
                    h.update(block)
            finally:
                os.close(fd)
            return lat, h.hexdigest()

        out = {}
        with Mount(self, store) as m:
            s0 = m.stats()
            lat, cold_hash = preads(m.path / "data", cold_offsets)
            s1 = m.stats()
            out["zarrfs_cold"] = self._latency(lat, s0, s1)
            run_timed(["cat", str(m.path / "data")], m)  # whole array into the chunk cache
            s0 = m.stats()
            lat, _ = preads(m.path / "data", warm_offsets)
            s1 = m.stats()
            out["zarrfs_warm"] = self._latency(lat, s0, s1)
            # The same again with the reader and every daemon thread on one CPU: no cross-CPU
            # wake-ups, so what is left is zarrfs's own request handling.
            with pinned_to_one_cpu(m.pid):
                s0 = m.stats()
                lat, _ = preads(m.path / "data", warm_offsets)
                s1 = m.stats()
            out["zarrfs_warm_pinned"] = self._latency(lat, s0, s1)
        k = min(self.args.peer_random, n)
        res = run_worker({"op": "random", "lib": "zarr", "store": str(store),
                          "dtype": spec.dtype, "offsets": cold_offsets[:k], "size": PAGE})
        if "error" in res:
            out["zarr"] = {"error": res["error"]}
        else:
            out["zarr"] = self._latency(res["latency_us"])
            # Same ranges, same bytes: compare with the first k reads through the mount.
            h = hashlib.sha256()
            with Mount(self, store) as m:
                fd = os.open(m.path / "data", os.O_RDONLY)
                for off in cold_offsets[:k]:
                    h.update(os.pread(fd, PAGE, off))
                os.close(fd)
            out["ranges_match"] = h.hexdigest() == res["sha256"]
        out["zarr_reads"] = k
        out["reads"] = n
        self.results["random"][name] = out
        log(f"{name}: random 4K p50/p99 µs cold {out['zarrfs_cold']['p50']:.0f}/"
            f"{out['zarrfs_cold']['p99']:.0f} warm {out['zarrfs_warm']['p50']:.0f}/"
            f"{out['zarrfs_warm']['p99']:.0f} zarr {out['zarr'].get('p50', float('nan')):.0f}/"
            f"{out['zarr'].get('p99', float('nan')):.0f}")

    @staticmethod
    def _latency(lat: list[float], s0: dict | None = None, s1: dict | None = None) -> dict:
        s = sorted(lat)
        out = {"p50": percentile(s, 0.5), "p99": percentile(s, 0.99),
               "mean": statistics.fmean(s), "max": s[-1]}
        if s0 and s1:
            reqs = s1["read_requests"] - s0["read_requests"] - 1  # minus the stats read
            out["daemon_requests"] = reqs
            out["avg_request_bytes"] = (s1["bytes_read"] - s0["bytes_read"]) / max(1, reqs)
            out["chunks_decoded"] = s1["chunks_decoded"] - s0["chunks_decoded"]
        return out

    # -- scenario 6 ----------------------------------------------------------------------------

    def chunk_files(self, name: str) -> None:
        spec = self.specs[name]
        store = store_path(self.work, name)
        self.warm(name)
        runs = []
        for _ in range(self.repeats):
            with Mount(self, store) as m:
                files = sorted(str(p) for p in (m.path / "chunks").iterdir())
                runs.append(run_timed(["cat", *files], m))
        chunk_bytes = math.prod(spec.chunks) * spec.itemsize * spec.num_chunks
        out = {"zarrfs_cat": summarize_runs(runs, chunk_bytes)}
        res = run_worker({"op": "chunkwise", "lib": "zarr", "store": str(store),
                          "repeats": self.repeats})
        if "error" not in res:
            res["seconds"] = median(res["times"])
            res["gb_s"] = chunk_bytes / res["seconds"] / 1e9
        out["zarr"] = res
        self.results["chunks"][name] = out
        log(f"{name}: cat chunks/* {out['zarrfs_cat']['seconds']:.3f}s, zarr chunk by chunk "
            f"{res.get('seconds', float('nan')):.3f}s")

    def inner_chunk_bytes(self, name: str) -> None:
        """Bytes read from the store for one inner chunk file of a sharded array on a fresh
        mount, against its shard's index plus that chunk's stored bytes."""
        store = store_path(self.work, name)
        spec = self.specs[name]
        per_shard = math.prod(s // c for s, c in zip(spec.shards, spec.chunks))
        shard = (store / "c" / "0" / "0").read_bytes()
        index_len = 16 * per_shard + 4  # little-endian (offset, nbytes) pairs + crc32c
        index = shard[-index_len:]
        nbytes = int.from_bytes(index[8:16], "little")
        runs = []
        for _ in range(self.repeats):
            with Mount(self, store) as m:
                before = m.stats()["store_bytes_read"]
                t0 = time.perf_counter()
                (m.path / "chunks" / "0.0").read_bytes()
                wall = time.perf_counter() - t0
                runs.append((m.stats()["store_bytes_read"] - before, wall))
        self.results.setdefault("inner_chunk", {})[name] = {
            "store_bytes_read": max(r[0] for r in runs), "index_bytes": index_len,
            "chunk_bytes": nbytes, "seconds": median([r[1] for r in runs])}
        log(f"{name}: one inner chunk read {max(r[0] for r in runs)} bytes from the store "
            f"(index {index_len} + chunk {nbytes})")

    # -- scenario 9 ----------------------------------------------------------------------------

    def patterns(self, name: str) -> None:
        import bench_patterns

        self.results.setdefault("patterns", {})[name] = {
            "reads": bench_patterns.run_reads(self, name, Mount, run_worker),
            "writes": (bench_patterns.run_writes(self, name, Mount, run_worker)
                       if not self.args.no_write else None),
        }

    # -- scenario 7 ----------------------------------------------------------------------------

    def write_supported(self, name: str) -> tuple[bool, str]:
        """Whether the mount accepts a write open of ``data`` (probed on a scratch copy)."""
        scratch = self.work / "write" / f"{name}.zarr"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        shutil.copy(store_path(self.work, name) / ".zarray", scratch / ".zarray")
        try:
            with Mount(self, scratch, *self.rw_args) as m:
                try:
                    fd = os.open(m.path / "data", os.O_WRONLY)
                except OSError as e:
                    return False, f"open(data, O_WRONLY) fails with {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})"
                os.close(fd)
                return True, "open for writing succeeds"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def write(self, name: str) -> None:
        spec = self.specs[name]
        ok, why = self.write_supported(name)
        if not ok:
            self.results["write"][name] = {"skipped": why}
            log(f"{name}: write skipped: {why}")
            return
        u_raw = raw_path(self.work, "U")
        same_as_u = (spec.values, spec.shape, spec.dtype) == (
            self.specs["U"].values, self.specs["U"].shape, self.specs["U"].dtype)
        raw = u_raw if same_as_u and is_current(u_raw, self.specs["U"].params()) \
            else self._raw_of(name)
        scratch = self.work / "write" / f"{name}.zarr"
        runs, sha = [], None
        for _ in range(self.repeats):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            shutil.copy(store_path(self.work, name) / ".zarray", scratch / ".zarray")
            m = Mount(self, scratch, *self.rw_args).__enter__()
            t0 = time.perf_counter()
            try:
                subprocess.run(["dd", f"if={raw}", f"of={m.path / 'data'}", "bs=4M",
                                "conv=notrunc"], check=True, stderr=subprocess.DEVNULL)
            finally:
                m.unmount()
            runs.append(time.perf_counter() - t0)
        back = run_worker({"op": "read_all", "lib": "zarr", "store": str(scratch), "repeats": 1})
        sha = back.get("sha256")
        expected = self.results["validation"].get(name, {}).get("zarr")
        peer, ts_peer = (
            run_worker({"op": "write", "lib": lib,
                        "template": str(store_path(self.work, name)), "raw": str(raw),
                        "dtype": spec.dtype, "shape": list(spec.shape),
                        "scratch": str(self.work / "write" / f"{name}-{lib}.zarr"),
                        "repeats": self.repeats})
            for lib in ("zarr", "tensorstore"))
        self.results["write"][name] = {
            "zarrfs_dd": {"times": runs, "seconds": median(runs),
                          "gb_s": spec.nbytes / median(runs) / 1e9},
            "zarr": {**peer, "seconds": median(peer.get("times", [])),
                     "gb_s": spec.nbytes / median(peer["times"]) / 1e9 if "times" in peer
                     else float("nan")},
            "tensorstore": {**ts_peer, "seconds": median(ts_peer.get("times", []))},
            "roundtrip_ok": sha is not None and sha == expected,
        }
        shutil.rmtree(self.work / "write", ignore_errors=True)
        if sha != expected:
            raise BenchError(f"{name}: array written through the mount differs from the source")

    def _raw_of(self, name: str) -> Path:
        import numpy as np
        import zarr

        path = self.work / f"{name}.write-source.raw"
        params = self.specs[name].params()
        if not is_current(path, params):
            np.ascontiguousarray(zarr.open_array(str(store_path(self.work, name)),
                                                 mode="r")[...]).tofile(path)
            stamp_path(path).write_text(json.dumps(params))
        return path

    # -- scenario 8 ----------------------------------------------------------------------------

    def rss(self, name: str) -> None:
        spec = self.specs[name]
        store = store_path(self.work, name)
        self.warm(name)
        peaks = []
        for _ in range(self.repeats):
            with Mount(self, store, "--cache-size", f"{RSS_CACHE_SIZE // MiB}MiB") as m:
                base = m.hwm()
                run_timed(["cat", str(m.path / "data")], m)
                peaks.append((m.hwm(), base, m.stats()["cache_bytes"]))
        self.results["rss"][name] = {
            "cache_size": RSS_CACHE_SIZE, "bytes_read": spec.nbytes,
            "peak": max(p[0] for p in peaks), "at_start": min(p[1] for p in peaks),
            "peaks": [p[0] for p in peaks],
            "cache_bytes_at_end": max(p[2] for p in peaks),
        }
        log(f"{name}: peak RSS with --cache-size 128MiB: "
            f"{self.results['rss'][name]['peak'] / MiB:.0f} MiB")

    # -- levers ------------------------------------------------------------------------------

    def _lever_block(self, name: str, configs: list[tuple[str, list[str], Path | None,
                                                          int | None, int | None]]) -> dict:
        """Cold and warm `cat data` of ``name`` under each configuration (key, mount arguments,
        binary, kernel read-ahead, kernel request limit), interleaved run by run so that drift affects them alike:
        every round mounts each configuration fresh for one cold read; the last round also
        re-reads ``repeats`` times on the same mount (warm)."""
        spec = self.specs[name]
        store = store_path(self.work, name)
        self.warm(name)
        cold: dict[str, list] = {k: [] for k, *_ in configs}
        warm: dict[str, list] = {k: [] for k, *_ in configs}
        hwm: dict[str, int] = {k: 0 for k, *_ in configs}
        ra: dict[str, int | None] = {}
        for rep in range(self.repeats):
            for key, extra, binary, read_ahead_kb, pages in configs:
                with Mount(self, store, *extra, binary=binary, read_ahead_kb=read_ahead_kb,
                           max_pages_limit=pages) as m:
                    ra[key] = m.read_ahead()
                    cold[key].append(run_timed(["cat", str(m.path / "data")], m))
                    hwm[key] = max(hwm[key], m.hwm())
                    if rep == self.repeats - 1:
                        for _ in range(self.repeats):
                            warm[key].append(run_timed(["cat", str(m.path / "data")], m))
        out = {}
        for key, *_ in configs:
            out[key] = {"cold": summarize_runs(cold[key], spec.nbytes),
                        "warm": summarize_runs(warm[key], spec.nbytes),
                        "read_ahead_kb": ra.get(key), "peak_rss": hwm[key]}
        return out

    def runtime_levers(self, name: str) -> None:
        res = self._lever_block(name, [(k, args, None, kb, pages)
                                       for k, _, args, kb, pages in RUNTIME_LEVERS])
        self.results.setdefault("levers", {}).setdefault("runtime", {})[name] = res
        log(f"{name}: levers: " + ", ".join(
            f"{k} {v['cold']['seconds']:.3f}/{v['warm']['seconds']:.3f}s" for k, v in res.items()))

    def commit_levers(self, name: str) -> None:
        builds = self.results["levers"]["builds"]
        res = self._lever_block(name, [(b["sha"], [], Path(b["binary"]), None, None)
                                       for b in builds])
        self.results["levers"].setdefault("commits", {})[name] = res
        log(f"{name}: commits: " + ", ".join(
            f"{k[:7]} {v['cold']['seconds']:.3f}/{v['warm']['seconds']:.3f}s"
            for k, v in res.items()))

    def build_commits(self, commits: list[str]) -> None:
        """Builds the daemon at each commit in a worktree under target/levers (one shared
        target directory, so only zarrfs itself is recompiled); binaries are kept by commit."""
        base = ROOT / "target" / "levers"
        tree, target = base / "src", base / "target"
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")

        def git(*argv: str, cwd: Path = ROOT) -> str:
            proc = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BenchError(f"git {' '.join(argv)}: {proc.stderr.strip()}")
            return proc.stdout.strip()

        builds: list[dict] = []
        for spec in commits:
            sha = git("rev-parse", "--verify", f"{spec}^{{commit}}")
            binary = base / "bin" / sha / "zarrfs"
            if not binary.exists():
                if not (tree / ".git").exists():
                    tree.parent.mkdir(parents=True, exist_ok=True)
                    git("worktree", "add", "--detach", "--force", str(tree), sha)
                else:
                    git("checkout", "--detach", "--force", sha, cwd=tree)
                log(f"building zarrfs at {sha[:7]}")
                proc = subprocess.run([cargo, "build", "--release", "--bin", "zarrfs"], cwd=tree,
                                      env={**os.environ, "CARGO_TARGET_DIR": str(target)},
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise BenchError(f"cargo build at {sha[:7]} failed: "
                                     f"{proc.stderr.strip().splitlines()[-1:]}")
                binary.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(target / "release" / "zarrfs", binary.with_suffix(".tmp"))
                os.replace(binary.with_suffix(".tmp"), binary)
            # What changed in the daemon since the previous build: the subjects of the
            # commits in between that touched src/ (or this commit's own subject first).
            subjects = ([git("log", "-1", "--format=%s", sha)] if not builds else
                        git("log", "--reverse", "--format=%s", f"{builds[-1]['sha']}..{sha}",
                            "--", "src").splitlines())
            builds.append({"spec": spec, "sha": sha, "short": sha[:7],
                           "subject": "; ".join(subjects) or "(no change under src/)",
                           "binary": str(binary)})
        self.results.setdefault("levers", {})["builds"] = builds

    # -- diagnostics ---------------------------------------------------------------------------

    def diagnostics(self, name: str) -> None:
        """Extra cold `cat data` runs: one with thread sampling and per-thread CPU, one under
        perf (daemon only, call graphs) when perf works."""
        store = store_path(self.work, name)
        self.warm(name)
        diag: dict = {}
        with Mount(self, store) as m:
            sampler = ThreadSampler(m.pid)
            cpu0 = thread_cpu(m.pid)
            sampler.start()

            def hook(pid: int) -> None:
                sampler.client_pid = pid

            res = run_timed(["cat", str(m.path / "data")], m, sampler_hook=hook)
            sampler.stop.set()
            sampler.join()
            cpu1 = thread_cpu(m.pid)
            groups: dict[str, float] = {}
            for key, val in cpu1.items():
                group = thread_group(key.split(":", 1)[1])
                groups[group] = groups.get(group, 0.0) + val - cpu0.get(key, 0.0)
            diag["wall"] = res["wall"]
            diag["client_cpu"] = res["client_cpu"]
            diag["daemon_cpu"] = res["daemon_cpu"]
            diag["thread_cpu"] = {g: v for g, v in groups.items() if v > 0}
            diag["samples"] = sampler.samples
            diag["running_hist"] = {str(k): v for k, v in sorted(sampler.running_hist.items())}
            diag["running_by_group"] = {k: v / max(1, sampler.samples)
                                        for k, v in sorted(sampler.running_by_group.items())}
            diag["stats"] = res["stats"]
            diag["kernel"] = self._fuse_kernel_settings(m.path)
        diag["perf"] = None if self.args.no_perf else self._perf_profile(store)
        self.results["diagnostics"][name] = diag
        busy = sum(v for k, v in sampler.running_hist.items() if k >= 2) / max(1, sampler.samples)
        log(f"{name}: diagnostics: {busy:.0%} of samples with ≥ 2 threads running; "
            f"daemon CPU {', '.join(f'{g} {v:.2f}s' for g, v in diag['thread_cpu'].items())}")

    @staticmethod
    def _fuse_kernel_settings(path: Path) -> dict:
        st = os.stat(path)
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
        out = {}
        for key, file in (("read_ahead_kb", f"/sys/class/bdi/{major}:{minor}/read_ahead_kb"),
                          ("max_background", f"/sys/fs/fuse/connections/{minor}/max_background"),
                          ("congestion_threshold",
                           f"/sys/fs/fuse/connections/{minor}/congestion_threshold")):
            try:
                out[key] = int(Path(file).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return out

    def _perf_profile(self, store: Path) -> dict | None:
        """Profiles the daemon during a cold `cat data`: inclusive shares of a few code paths
        and the top self-time symbols, as percentages of the daemon's samples."""
        perf = shutil.which("perf")
        if not perf:
            return None
        data = self.work / "perf.data"
        with Mount(self, store) as m:
            rec = subprocess.Popen([perf, "record", "-q", "-g", "-F", "1999", "-p", str(m.pid),
                                    "-o", str(data)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # perf attaches to every thread
            if rec.poll() is not None:
                return {"error": (rec.stderr.read().strip().splitlines()
                                  or ["perf record failed"])[-1]}
            subprocess.run(["cat", str(m.path / "data")], stdout=subprocess.DEVNULL, check=True)
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=60)
        if not data.exists():
            return {"error": "perf record wrote nothing"}

        def report(*extra: str) -> list[tuple[float, str]]:
            rep = subprocess.run([perf, "report", "-i", str(data), "--stdio", "-g", "none",
                                  "--percent-limit", "0.3", *extra],
                                 capture_output=True, text=True)
            rows = []
            for line in rep.stdout.splitlines():
                mm = re.match(r"\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(.*)", line)
                if mm:
                    rows.append((float(mm.group(1)), re.sub(r"\s+", " ", mm.group(3)).strip()))
            return rows

        children = report("--children", "--sort", "sym")
        selfs = report("--no-children", "--sort", "dso,sym")
        every_self = report("--no-children", "--sort", "dso,sym", "--percent-limit", "0")
        threads = report("--no-children", "--sort", "comm")
        data.unlink(missing_ok=True)
        Path(str(data) + ".old").unlink(missing_ok=True)
        paths = {}
        for label, pattern in PERF_PATHS:
            hits = [pct for pct, sym in children if re.search(pattern, sym)]
            paths[label] = max(hits) if hits else 0.0
        # zstd's assembly decoding loops carry no symbol sizes, so perf cannot name them.
        paths[UNSYMBOLIZED] = sum(pct for pct, sym in every_self
                                  if re.match(r"zarrfs \[\.\] 0x[0-9a-f]+$", sym))
        paths[ON_DECODE_THREADS] = sum(pct for pct, comm in threads
                                       if comm.startswith("zarrfs-decode"))
        return {"paths": paths, "top": selfs[:15]}

    # -- the run -------------------------------------------------------------------------------

    def validate(self) -> list[str]:
        problems = []
        for name, v in self.results["validation"].items():
            expected = v.get("zarr")
            if expected is None:
                problems.append(f"{name}: zarr-python could not read the array")
                continue
            if v.get("mount_data") != expected:
                problems.append(f"{name}: bytes of data through the mount differ from zarr-python")
            for lib in ("zarrs", "tensorstore"):
                if v.get(lib) and v[lib] != expected:
                    self.results["notes"].append(f"{name}: {lib} returned different bytes "
                                                 "than zarr-python")
        for name, r in self.results["random"].items():
            if r.get("ranges_match") is False:
                problems.append(f"{name}: random 4 KiB ranges differ from zarr-python's")
        return problems

    def wait_for_idle(self) -> None:
        """Waits (up to --idle-timeout s) until other processes use < 0.25 cores, so that
        the measurements are not shared with someone else's work."""
        deadline = time.time() + self.args.idle_timeout
        waited = False
        while True:
            b0, t0 = system_busy()
            time.sleep(2.0)
            b1, t1 = system_busy()
            cores = (b1 - b0) / 2.0
            if cores < FOREIGN_LIMIT:
                break
            if time.time() > deadline:
                self.results["notes"].append(
                    f"The machine was busy ({cores:.2f} cores used by other processes) when "
                    "measuring started; waited the full idle timeout.")
                break
            if not waited:
                log(f"machine busy ({cores:.2f} cores in use by others); waiting for it to idle")
                waited = True
        self.results["machine"]["busy_cores_at_start"] = cores

    def own_cpu(self) -> float:
        """CPU seconds used so far by this process, its reaped children and exited daemons."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + self.daemon_cpu_total

    def guarded(self, label: str, fn, *args) -> None:
        """Runs one measurement block; when other processes used ≥ 0.25 cores meanwhile (a
        shared machine), waits for the machine to idle and runs the block again, up to
        --retries times, then keeps the last attempt and notes its foreign load."""
        for attempt in range(self.args.retries + 1):
            t0, (busy0, _), own0 = time.time(), system_busy(), self.own_cpu()
            fn(*args)
            wall = time.time() - t0
            busy1, _ = system_busy()
            foreign = max(0.0, (busy1 - busy0 - (self.own_cpu() - own0)) / max(wall, 1e-3))
            self.results["foreign_load"][label] = {"cores": foreign, "attempts": attempt + 1}
            if foreign < FOREIGN_LIMIT:
                return
            if attempt < self.args.retries:
                log(f"{label}: other processes used {foreign:.2f} cores meanwhile; again")
                self.wait_for_idle()
        self.results["notes"].append(
            f"{label} was measured while other processes used {foreign:.2f} cores "
            f"(after {self.args.retries + 1} attempts).")

    def run(self) -> None:
        started = time.time()
        self.results["machine"] = machine_facts()
        self.results["config"] = {"quick": self.quick, "repeats": self.repeats,
                                  "selected": self.selected, "random_reads": RANDOM_READS,
                                  "peer_random": self.args.peer_random}
        commits = [c.strip() for c in (self.args.levers_commits or "").split(",") if c.strip()]
        if commits:
            self.build_commits(commits)
        self.prepare()
        self.wait_for_idle()
        g = self.guarded
        lever_sets = [n for n in LEVER_DATASETS if n in self.selected]
        if self.args.levers_only:
            for name in lever_sets:
                if not self.args.no_levers:
                    g(f"{name} run-time levers", self.runtime_levers, name)
                if commits:
                    g(f"{name} commit levers", self.commit_levers, name)
            self.results["machine"]["loadavg_end"] = os.getloadavg()
            self.results["elapsed_s"] = time.time() - started
            self.results["validation_problems"] = []
            return
        for name in self.stores:
            if name == "T":
                continue
            g(f"{name} sequential reads and in-process peers", self.sequential, name)
            g(f"{name} decode limit", self.decode_limit, name)
            if name in FULL_SETS and name != "U":
                g(f"{name} random reads", self.random_reads, name)
            if name in FULL_SETS + ("S",) and name != "U":
                g(f"{name} chunk files", self.chunk_files, name)
            if name == "S":
                g("S one inner chunk", self.inner_chunk_bytes, name)
        if "U" in self.stores:
            g("raw file", self.raw_file_limit)
        if "T" in self.stores:
            g("T access patterns", self.patterns, "T")
        write_names = ([n for n in self.compressed if n in FULL_SETS]
                       if not self.args.no_write else [])
        for name in write_names:
            g(f"{name} write", self.write, name)
            if "skipped" in self.results["write"][name]:
                for other in write_names:
                    self.results["write"][other] = self.results["write"][name]
                break
        if "A" in self.selected:
            g("A peak RSS", self.rss, "A")
        for name in lever_sets:
            if not self.args.no_levers:
                g(f"{name} run-time levers", self.runtime_levers, name)
            if commits:
                g(f"{name} commit levers", self.commit_levers, name)
        for name in self.stores:
            g(f"{name} diagnostics", self.diagnostics, name)
        self.results["machine"]["loadavg_end"] = os.getloadavg()
        self.results["elapsed_s"] = time.time() - started
        problems = self.validate()
        self.results["validation_problems"] = problems
        if problems:
            raise BenchError("; ".join(problems))


def machine_facts() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = proc_meminfo("MemTotal")
    versions = {}
    for mod in ("zarr", "numcodecs", "numpy", "tensorstore", "zarrs"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:  # noqa: BLE001
            versions[mod] = "?"
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
        rev = rev + (" + uncommitted changes in src/" if dirty else "")
    except OSError:
        rev = "?"
    return {
        "nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
        "memory_gib": round(mem / (1 << 30), 1), "python": platform.python_version(),
        "versions": versions, "zarrfs_revision": rev,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
    }


def proc_meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# Targets and report


def targets(r: dict) -> list[dict]:
    """The performance targets of the issue, each with the measured value and PASS/FAIL."""
    out = []

    def add(name: str, measured: float | None, limit: float | None, ok: bool | None,
            detail: str) -> None:
        status = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": name, "measured": measured, "limit": limit, "status": status,
                    "detail": detail})

    seq, peers, lim = r["seq"], r["peers"], r["limits"].get("decode", {})
    a = seq.get("A", {}).get("cold_cat")
    za = peers.get("A", {}).get("zarr", {}).get("seconds")
    if a and za:
        ratio = a["seconds"] / za
        add("A cold `cat data` time ≤ 0.8× zarr-python read-all", ratio, 0.8, ratio <= 0.8,
            f"{a['seconds']:.3f} s vs {za:.3f} s")
    else:
        add("A cold `cat data` time ≤ 0.8× zarr-python read-all", None, 0.8, None, "not measured")
    dl = lim.get("A", {}).get("load", {}).get("gb_s")
    kept = lim.get("A", {}).get("keep", {}).get("gb_s")
    if a and dl:
        ratio = a["gb_s"] / dl
        add("A cold `cat data` throughput ≥ 0.85× in-process decode limit", ratio, 0.85,
            ratio >= 0.85, f"{a['gb_s']:.2f} GB/s vs {dl:.2f} GB/s"
            + (f" (in-process with chunks kept: {kept:.2f} GB/s)" if kept else ""))
    else:
        add("A cold `cat data` throughput ≥ 0.85× in-process decode limit", None, 0.85, None,
            "not measured")
    for name in ("B", "C", "D"):
        for lib, label in (("tensorstore", "tensorstore"), ("zarrs", "zarrs")):
            c = seq.get(name, {}).get("cold_cat")
            p = peers.get(name, {}).get(lib, {}).get("seconds")
            title = f"{name} cold `cat data` time ≤ 1.0× {label}"
            if c and p:
                ratio = c["seconds"] / p
                add(title, ratio, 1.0, ratio <= 1.0, f"{c['seconds']:.3f} s vs {p:.3f} s")
            else:
                add(title, None, 1.0, None, "not measured")
    w = seq.get("A", {}).get("warm_cat")
    u = seq.get("U", {})
    ceiling = max([u[k]["gb_s"] for k in ("cold_cat", "warm_cat") if k in u], default=None)
    title = "A warm re-read ≥ 0.9× U through the mount (GB/s)"
    if w and ceiling:
        ratio = w["gb_s"] / ceiling
        add(title, ratio, 0.9, ratio >= 0.9,
            f"{w['gb_s']:.2f} GB/s vs {ceiling:.2f} GB/s (best of U cold/warm)")
    else:
        add(title, None, 0.9, None, "not measured")
    rnd = r["random"].get("A", {}).get("zarrfs_warm")
    title = "A random 4 KiB warm reads p50 ≤ 50 µs"
    if rnd:
        add(title, rnd["p50"], 50.0, rnd["p50"] <= 50.0, f"p50 {rnd['p50']:.1f} µs")
    else:
        add(title, None, 50.0, None, "not measured")
    rss = r["rss"].get("A")
    title = "daemon peak RSS ≤ cache + 64 MiB (`--cache-size 128MiB`, reading A)"
    if rss:
        limit = (rss["cache_size"] + RSS_SLACK) / MiB
        add(title, rss["peak"] / MiB, limit, rss["peak"] <= rss["cache_size"] + RSS_SLACK,
            f"{rss['peak'] / MiB:.0f} MiB vs {limit:.0f} MiB")
    else:
        add(title, None, None, None, "not measured")
    w = r["write"].get("A", {})
    if w.get("zarrfs_dd") and w.get("zarr", {}).get("seconds"):
        q = w["zarrfs_dd"]["seconds"] / w["zarr"]["seconds"]
        add("A `dd bs=4M` + umount ≤ 0.8× zarr-python `a[...] = x`", q, 0.8, q <= 0.8,
            f"{w['zarrfs_dd']['seconds']:.3f} s vs {w['zarr']['seconds']:.3f} s")
    s_cold = seq.get("S", {}).get("cold_cat")
    if s_cold:
        for lib, limit, label in (("tensorstore", 0.8, "tensorstore"),
                                  ("zarrs", 1.0, "zarr-python + zarrs pipeline")):
            p = peers.get("S", {}).get(lib, {}).get("seconds")
            q = s_cold["seconds"] / p if p else None
            add(f"S (sharded) cold `cat data` ≤ {limit}× {label}", q, limit,
                None if q is None else q <= limit,
                f"{s_cold['seconds']:.3f} s vs {fmt(p, 3)} s")
        if a:
            q = s_cold["seconds"] / a["seconds"]
            add("S cold `cat data` no slower than A (±10 %)", q, 1.1, q <= 1.1,
                f"{s_cold['seconds']:.3f} s vs {a['seconds']:.3f} s")
    inner = r.get("inner_chunk", {}).get("S")
    if inner:
        limit = inner["index_bytes"] + inner["chunk_bytes"]
        add("S one inner chunk file from a fresh mount reads ≤ index + that chunk (bytes)",
            inner["store_bytes_read"], limit, inner["store_bytes_read"] <= limit,
            f"{inner['store_bytes_read']} bytes read; index {inner['index_bytes']} + chunk "
            f"{inner['chunk_bytes']}")
    v_cold = seq.get("V", {}).get("cold_cat")
    vz = peers.get("V", {}).get("zarr", {}).get("seconds")
    if v_cold and vz:
        q = v_cold["seconds"] / vz
        add("V (v3, zstd) cold `cat data` ≤ 0.8× zarr-python", q, 0.8, q <= 0.8,
            f"{v_cold['seconds']:.3f} s vs {vz:.3f} s")
    import bench_patterns

    bench_patterns.targets(r, add)
    title = "A `cat data`: user+sys CPU ≥ 1.6× wall"
    if a:
        add(title, a["cpu_per_wall"], 1.6, a["cpu_per_wall"] >= 1.6,
            f"daemon {a['daemon_cpu_per_wall']:.2f} + cat "
            f"{a['cpu_per_wall'] - a['daemon_cpu_per_wall']:.2f} CPU-s per wall-s")
    else:
        add(title, None, 1.6, None, "not measured")
    return out


def spec_bytes(r: dict, name: str) -> int:
    return r["datasets"][name]["bytes"]


def fmt(v, digits=2, unit="") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}{unit}"


def write_report(r: dict, md_path: Path, png_path: Path, command: str) -> None:
    md_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    make_chart(r, png_path)
    tg = targets(r)
    m = r["machine"]
    L: list[str] = []
    add = L.append
    add("# zarrfs benchmarks")
    add("")
    add(f"Generated by `{command}`{' (quick smoke run: 1/16-size datasets)' if r['config']['quick'] else ''}"
        f" on {m['date']}; rerun it to regenerate this file and "
        f"[{png_path.name}]({os.path.relpath(png_path, md_path.parent)}). Every number is the "
        f"median of {r['config']['repeats']} runs from the same run of the script, with the store "
        "files in the page cache. GB/s = array bytes (decoded) / seconds / 10⁹. Whole-array "
        "reads alternate: each round is one cold `cat data` on a fresh mount followed by one "
        "read by each peer (the second read in a fresh process), so that both sides meet the "
        "same state of the machine.")
    add("")
    add(f"![throughput]({os.path.relpath(png_path, md_path.parent)})")
    add("")
    add("## Targets")
    add("")
    add("| target | measured | limit | result | detail |")
    add("|---|---:|---:|:---:|---|")
    for t in tg:
        add(f"| {t['target']} | {fmt(t['measured'])} | {fmt(t['limit'])} | **{t['status']}** | "
            f"{t['detail']} |")
    add("")
    add("## Machine")
    add("")
    add(f"- {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}")
    add(f"- load average at start / end: {', '.join(f'{x:.2f}' for x in m['loadavg_start'])} / "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_end', ()))}")
    fl = r.get("foreign_load", {})
    if fl:
        worst = max(fl, key=lambda k: fl[k]["cores"])
        again = [k for k, v in fl.items() if v["attempts"] > 1]
        add(f"- other processes' CPU use during each measurement block is checked (system busy "
            f"time minus the harness's, its children's and the daemons'); a block during which "
            f"others used ≥ {FOREIGN_LIMIT} cores is measured again once the machine is idle. "
            f"Blocks measured again: {', '.join(again) if again else 'none'}; highest "
            f"remaining foreign load: {fl[worst]['cores']:.2f} cores ({worst}).")
    limit = m.get("max_pages_limit") or {}
    if limit.get("machine"):
        page_kib = os.sysconf("SC_PAGESIZE") // 1024
        add(f"- FUSE request size: the kernel's `fs.fuse.max_pages_limit` was "
            + (f"raised from {limit['machine']} to {limit['run']} for the run and put back at "
               f"the end" if limit["run"] != limit["machine"] else f"{limit['run']}")
            + f", so reads of the flat views arrive in requests of up to "
            f"{min(limit['run'] * page_kib, 4096) // 1024} MiB (zarrfs asks for 4 MiB). The "
            "run-time levers below show the writable mount under the kernel's default of 256 "
            "pages (1 MiB).")
    add(f"- zarrfs {m['zarrfs_revision']}, release build; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    add("")
    add("## Datasets")
    add("")
    add("| | dtype | shape | chunks | codec | chunks | array MiB | stored MiB | ratio |")
    add("|---|---|---|---|---|---:|---:|---:|---:|")
    for name, d in r["datasets"].items():
        add(f"| {name} | {d['dtype']} | {'×'.join(map(str, d['shape']))} | "
            f"{'×'.join(map(str, d['chunks']))} | {d['description'].split(', ')[-1]} | "
            f"{d['num_chunks']} | {d['bytes'] / MiB:.0f} | {d['stored_bytes'] / MiB:.0f} | "
            f"{d['bytes'] / max(1, d['stored_bytes']):.2f} |")
    add("")
    add("## Sequential whole-array reads (scenarios 1–4)")
    add("")
    add("`vs zarr-python` is time ÷ zarr-python's `a[...]` time (lower is better); "
        "`vs limit` is GB/s ÷ the in-process decode limit (zarrfs's codecs on all cores, "
        "reading and decoding every chunk, no FUSE). CPU/wall counts the daemon plus the "
        "reading process (user+sys). The chunk cache resists scans: a cold pass decodes "
        "into recycled memory and keeps nothing it has passed, the second pass on the same "
        "mount fills the cache (its own row, one run), and the warm rows are the passes "
        "after it.")
    add("")
    add("| data | method | s | GB/s | vs zarr-python | vs limit | CPU/wall | avg request KiB |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in r["datasets"]:
        seq = r["seq"].get(name, {})
        peers = r["peers"].get(name, {})
        zt = peers.get("zarr", {}).get("seconds")
        lim = r["limits"].get("decode", {}).get(name, {})
        lg = lim.get("load", {}).get("gb_s")
        rows = [
            ("zarrfs `cat data`, cold", seq.get("cold_cat")),
            ("zarrfs `dd bs=1M`, cold", seq.get("cold_dd")),
            ("zarrfs `cat data`, second pass (fills the chunk cache; one run)",
             seq.get("second_pass_cat")),
            ("zarrfs `cat data`, warm chunk cache", seq.get("warm_cat")),
            ("zarrfs `cat data`, warm, `--read-only` (kernel page cache)", seq.get("warm_cat_ro")),
            ("zarr-python `a[...]`", peers.get("zarr")),
            ("zarr-python + zarrs pipeline", peers.get("zarrs")),
            ("tensorstore", peers.get("tensorstore")),
        ]
        if lim:
            rows.append(("limit: zarrfs codecs in-process, read+decode", lim.get("load")))
            rows.append(("limit: zarrfs codecs in-process, decode only", lim.get("decode")))
            rows.append(("zarrfs codecs in-process, read+decode, chunks kept (fresh memory, "
                         "as a cache)", lim.get("keep")))
        for label, res in rows:
            if not res:
                continue
            if "error" in res:
                add(f"| {name} | {label} | failed: {res['error'][:80]} | | | | | |")
                continue
            s = res["seconds"]
            add(f"| {name} | {label} | {fmt(s, 3)} | {fmt(res['gb_s'])} | "
                f"{fmt(s / zt if zt else None)} | {fmt(res['gb_s'] / lg if lg else None)} | "
                f"{fmt(res.get('cpu_per_wall'))} | "
                f"{fmt(res['avg_request_bytes'] / 1024 if 'avg_request_bytes' in res else None, 0)} |")
    raw = r["limits"].get("raw_file_cat")
    if raw:
        add(f"| – | limit: `cat` of a plain raw file ({r['datasets']['U']['bytes'] / MiB:.0f} MiB) "
            f"from the page cache | {fmt(raw['seconds'], 3)} | {fmt(raw['gb_s'])} | | | "
            f"{fmt(raw['cpu_per_wall'])} | |")
    add("")
    add("## Random 4 KiB reads (scenario 5)")
    add("")
    add(f"{r['config']['random_reads']:,} `pread`s of 4 KiB at random 4 KiB-aligned offsets of "
        "`data` through a fresh mount (cold), then another set after the whole array is in the "
        "chunk cache (warm). zarr-python reads the first "
        f"{r['config']['peer_random']:,} of the cold ranges as `a[sel]` (it has no chunk cache, so "
        "cold and warm are the same); the bytes are compared. Latencies in µs, per call, "
        "measured in Python around the call.")
    add("")
    add("| data | reader | p50 µs | p99 µs | mean µs | daemon requests | avg request KiB | chunks decoded |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, rr in r["random"].items():
        for key, label in (("zarrfs_cold", "zarrfs, cold"), ("zarrfs_warm", "zarrfs, warm"),
                           ("zarrfs_warm_pinned", "zarrfs, warm, reader + daemon on one CPU"),
                           ("zarr", "zarr-python")):
            v = rr.get(key, {})
            if "error" in v:
                add(f"| {name} | {label} | failed: {v['error'][:80]} | | | | | |")
                continue
            add(f"| {name} | {label} | {fmt(v.get('p50'), 1)} | {fmt(v.get('p99'), 1)} | "
                f"{fmt(v.get('mean'), 1)} | {v.get('daemon_requests', '–')} | "
                f"{fmt(v['avg_request_bytes'] / 1024 if 'avg_request_bytes' in v else None, 0)} | "
                f"{v.get('chunks_decoded', '–')} |")
    add("")
    add("## Chunk files (scenario 6)")
    add("")
    add("| data | reader | s | GB/s | vs zarr-python |")
    add("|---|---|---:|---:|---:|")
    for name, c in r["chunks"].items():
        z = c.get("zarr", {})
        zc = c["zarrfs_cat"]
        add(f"| {name} | zarrfs `cat chunks/*`, cold | {fmt(zc['seconds'], 3)} | {fmt(zc['gb_s'])} | "
            f"{fmt(zc['seconds'] / z['seconds'] if z.get('seconds') else None)} |")
        if "error" in z:
            add(f"| {name} | zarr-python chunk by chunk | failed: {z['error'][:80]} | | |")
        else:
            add(f"| {name} | zarr-python chunk by chunk | {fmt(z.get('seconds'), 3)} | "
                f"{fmt(z.get('gb_s'))} | 1.00 |")
    add("")
    add("## Writes (scenario 7)")
    add("")
    writes = r["write"]
    skipped = {w.get("skipped") for w in writes.values() if "skipped" in w}
    if not writes:
        add("Not run.")
    elif skipped:
        add(f"Skipped: the mount refuses writes ({'; '.join(sorted(skipped))}). The scenario "
            "runs by itself once the write path lands: `dd conv=notrunc bs=1M` of the whole "
            "array into `data` plus `zarrfs umount`, against zarr-python `a[...] = x`.")
    else:
        add("`dd if=RAW of=data bs=4M conv=notrunc` plus `zarrfs umount`, into a copy of the store "
            "holding only `.zarray`, against zarr-python's `a[...] = x` and tensorstore's "
            "`write(x)` into the same empty array (in-process, timed from the call). zarrfs "
            "stores each chunk atomically (temporary file, fsync, rename); the peers write "
            "their files without fsync.")
        add("")
        add("| data | writer | s | GB/s | vs zarr-python | round trip |")
        add("|---|---|---:|---:|---:|---|")
        for name, w in writes.items():
            zw, zp = w["zarrfs_dd"], w["zarr"]
            add(f"| {name} | zarrfs `dd` + umount | {fmt(zw['seconds'], 3)} | {fmt(zw['gb_s'])} | "
                f"{fmt(zw['seconds'] / zp['seconds'] if zp.get('seconds') else None)} | "
                f"{'ok' if w['roundtrip_ok'] else 'MISMATCH'} |")
            add(f"| {name} | zarr-python `a[...] = x` | {fmt(zp.get('seconds'), 3)} | "
                f"{fmt(zp.get('gb_s'))} | 1.00 | |")
            tw = w.get("tensorstore", {})
            if tw.get("seconds") == tw.get("seconds") and tw.get("seconds"):
                add(f"| {name} | tensorstore `write(x)` | {fmt(tw['seconds'], 3)} | "
                    f"{fmt(spec_bytes(r, name) / tw['seconds'] / 1e9)} | "
                    f"{fmt(tw['seconds'] / zp['seconds'] if zp.get('seconds') else None)} | |")
    add("")
    add("## Daemon memory (scenario 8)")
    add("")
    add("Peak RSS is the highest VmHWM over the runs (each run a fresh daemon reading the "
        "whole array once); the range over the runs is in brackets.")
    add("")
    add("| data | `--cache-size` | bytes read | peak RSS (VmHWM) MiB | RSS at start MiB | limit MiB |")
    add("|---|---:|---:|---:|---:|---:|")
    for name, v in r["rss"].items():
        spread = ""
        if v.get("peaks"):
            spread = f" [{min(v['peaks']) / MiB:.0f}–{max(v['peaks']) / MiB:.0f}]"
        add(f"| {name} | {v['cache_size'] / MiB:.0f} MiB | {v['bytes_read'] / MiB:.0f} MiB | "
            f"{v['peak'] / MiB:.0f}{spread} | {v['at_start'] / MiB:.0f} | "
            f"{(v['cache_size'] + RSS_SLACK) / MiB:.0f} |")
    for name, seq in r["seq"].items():
        add(f"| {name} | 1024 MiB (default) | {r['datasets'][name]['bytes'] / MiB:.0f} MiB | "
            f"{seq['daemon_peak_rss'] / MiB:.0f} | | |")
    add("")
    import bench_patterns

    L.extend(bench_patterns.report(r))
    add_diagnostics(L, r)
    add_levers(L, r, md_path)
    add("## Correctness")
    add("")
    add("For every dataset the SHA-256 of `data` read through the mount equals that of "
        "zarr-python's `a[...]` (the run fails otherwise), and the random 4 KiB ranges read "
        "through the mount equal zarr-python's reads of the same ranges.")
    for note in r.get("notes", []):
        add(f"- {note}")
    add("")
    add("## Rerun")
    add("")
    add("```sh")
    add("bash scripts/bench.sh                 # this report (~4 GB of data in target/bench-data;"
        f" this run took {r.get('elapsed_s', 0) / 60:.0f} min)")
    add("bash scripts/bench.sh --quick         # 1/16-size smoke run, report in target/bench-data-quick")
    add("bash scripts/bench.sh --only A,C      # a subset of the datasets")
    add("bash scripts/bench.sh --levers-only --no-levers --only A,D --levers-commits c34ca54,HEAD")
    add("                                      # code levers: the daemon at other commits")
    add("```")
    add("")
    md_path.write_text("\n".join(L))


def add_diagnostics(L: list[str], r: dict) -> None:
    diags = r.get("diagnostics") or {}
    if not diags:
        return
    add = L.append
    add("## Where the time goes")
    add("")
    add("Measured on extra cold `cat data` runs (not part of the medians above).")
    add("")
    add("**CPU budget of a cold `cat data`** (medians of the runs above). Decode CPU is what "
        "`zarrfs-decode-bench --keep` spends reading and decoding every chunk into memory it "
        "keeps, as the chunk cache does; the rest is FUSE request handling, planning, copies "
        "into replies, the kernel's copies and `cat`. With 2 cores, wall ≥ CPU / 2.")
    add("")
    add("| data | wall s | CPU s (daemon + cat) | CPU / wall | decode CPU s (chunks kept) | "
        "decode CPU s (buffers reused) | rest CPU s | rest CPU s per GiB |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in diags:
        c = r["seq"].get(name, {}).get("cold_cat")
        lim = r["limits"].get("decode", {}).get(name, {})
        if not c or not lim:
            continue
        cpu = median([x["client_cpu"] + x["daemon_cpu"] for x in c["runs"]])
        keep = lim.get("keep", {}).get("cpu_seconds")
        reuse = lim.get("load", {}).get("cpu_seconds")
        rest = cpu - keep if keep is not None else None
        gib = r["datasets"][name]["bytes"] / (1 << 30)
        add(f"| {name} | {fmt(c['seconds'], 3)} | {fmt(cpu)} | {fmt(c['cpu_per_wall'])} | "
            f"{fmt(keep)} | {fmt(reuse)} | {fmt(rest)} | "
            f"{fmt(rest / gib if rest is not None else None)} |")
    add("")
    add("**Threads and requests** during one cold `cat data` with a sampler reading "
        "/proc/PID/task/*/stat every 2 ms (the sampler itself costs a little CPU). "
        "“≥ 2 running” is the share of samples with at least two threads of the daemon or `cat` "
        "in state R (running or runnable), i.e. both cores wanted.")
    add("")
    add("| data | wall s | CPU s decode threads | CPU s FUSE threads | CPU s `cat` | "
        "mean running decode / FUSE / cat | ≥ 2 running | requests | avg request KiB | "
        "chunks decoded / by read-ahead | cache hits / misses |")
    add("|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|")
    for name, d in diags.items():
        s = d["stats"]
        n = max(1, d["samples"])
        busy = sum(v for k, v in d["running_hist"].items() if int(k) >= 2) / n
        rb = d["running_by_group"]
        tc = d["thread_cpu"]
        add(f"| {name} | {d['wall']:.3f} | {tc.get('zarrfs-decode', 0):.2f} | "
            f"{tc.get('fuser', 0):.2f} | {d['client_cpu']:.2f} | "
            f"{rb.get('daemon:zarrfs-decode', 0):.2f} / {rb.get('daemon:fuser', 0):.2f} / "
            f"{rb.get('client:cat', 0):.2f} | {busy:.0%} | {s['read_requests']} | "
            f"{s['bytes_read'] / max(1, s['read_requests']) / 1024:.0f} | "
            f"{s['chunks_decoded']} / {s['chunks_prefetched']} | "
            f"{s['cache_hits']} / {s['cache_misses']} |")
    k = next((d["kernel"] for d in diags.values() if d.get("kernel")), {})
    if k:
        add("")
        add("Kernel settings of the mount: " + ", ".join(f"`{a}` {b}" for a, b in k.items())
            + ".")
    perfs = {n: d["perf"] for n, d in diags.items() if d.get("perf") and "paths" in d["perf"]}
    if perfs:
        add("")
        add("**Daemon profile** (`perf record -g -p DAEMON` during another cold `cat data`): "
            "inclusive share of the daemon's samples spent under each code path. The paths "
            "overlap: a page fault taken while decoding counts in both rows.")
        add("")
        add("| code path | " + " | ".join(perfs) + " |")
        add("|---|" + "---:|" * len(perfs))
        for label in [lbl for lbl, _ in PERF_PATHS] + [UNSYMBOLIZED, ON_DECODE_THREADS]:
            add(f"| {label} | " + " | ".join(f"{p['paths'].get(label, 0):.1f}%"
                                              for p in perfs.values()) + " |")
        first = next(iter(perfs))
        add("")
        add(f"Top self-time symbols of the daemon for {first}:")
        add("")
        add("```")
        for pct, what in perfs[first]["top"]:
            add(f"{pct:6.2f}%  {what}")
        add("```")
    errors = {n: d["perf"]["error"] for n, d in diags.items() if d.get("perf") and "error" in d["perf"]}
    for n, e in errors.items():
        add(f"- perf on {n}: {e}")
    add("")


def _delta(value: float | None, base: float | None) -> str:
    """Time change against a baseline, in percent (negative = faster)."""
    if not value or not base:
        return "–"
    d = (value / base - 1) * 100
    return "±0%" if abs(d) < 0.5 else f"{d:+.0f}%".replace("-", "−")


def _lever_cells(v: dict) -> list[str]:
    c, w = v["cold"], v["warm"]
    return [fmt(c["seconds"], 3), fmt(c["gb_s"]), fmt(c["cpu_per_wall"]),
            fmt(c["avg_request_bytes"] / 1024 if "avg_request_bytes" in c else None, 0),
            fmt(w["seconds"], 3), fmt(w["gb_s"]), fmt(w["cpu_per_wall"]),
            fmt(v["peak_rss"] / MiB if v.get("peak_rss") else None, 0)]


def levers_tables(r: dict, command: str | None = None) -> list[str]:
    """Markdown tables of the run-time and (when measured) commit levers of a run."""
    L: list[str] = []
    add = L.append
    lev = r.get("levers") or {}
    runtime, commits = lev.get("runtime") or {}, lev.get("commits") or {}
    reps = r["config"]["repeats"]
    head = ("| cold s | cold GB/s | cold CPU/wall | cold avg request KiB | warm s | warm GB/s | "
            "warm CPU/wall | peak RSS MiB |")
    if runtime:
        add(f"**Run-time levers** (median of {reps} cold reads, each on a fresh mount, and of "
            f"{reps} warm re-reads on the last mount; configurations interleaved round by "
            "round; Δ = time against the writable mount of the same dataset, negative is "
            "faster). Kernel read-ahead is `read_ahead_kb` of the mount's bdi; it only acts "
            "on page-cache reads.")
        add("")
        add("| data | configuration | kernel read-ahead KiB " + head + " Δ cold | Δ warm |")
        add("|---|---|---:" + "|---:" * 8 + "|---:|---:|")
        labels = {k: label for k, label, *_ in RUNTIME_LEVERS}
        for name, res in runtime.items():
            base = res.get("default")
            for key, v in res.items():
                add(f"| {name} | {labels.get(key, key)} | {v.get('read_ahead_kb') or '–'} | "
                    + " | ".join(_lever_cells(v)) + f" | "
                    f"{_delta(v['cold']['seconds'], base and base['cold']['seconds'])} | "
                    f"{_delta(v['warm']['seconds'], base and base['warm']['seconds'])} |")
        add("")
    if commits:
        builds = {b["sha"]: b for b in lev.get("builds", [])}
        add(f"**Code levers: the daemon built at successive commits** (writable mount, `-o rw`, "
            f"so direct I/O; median of {reps} cold reads, each on a fresh mount, and of {reps} "
            "warm re-reads; binaries interleaved round by round; Δ = time against the row "
            "above, negative is faster).")
        add("")
        add("| data | commit | change (commits touching src/ since the row above) " + head + " Δ cold | Δ warm |")
        add("|---|---|---" + "|---:" * 8 + "|---:|---:|")
        for name, res in commits.items():
            prev = None
            for sha, v in res.items():
                b = builds.get(sha, {"short": sha[:7], "subject": ""})
                add(f"| {name} | `{b['short']}` | {b['subject']} | " + " | ".join(_lever_cells(v))
                    + f" | {_delta(v['cold']['seconds'], prev and prev['cold']['seconds'])} | "
                    f"{_delta(v['warm']['seconds'], prev and prev['warm']['seconds'])} |")
                prev = v
        add("")
    if command and (runtime or commits):
        m = r["machine"]
        add(f"Measured with `{command}` on {m['date']} ({m['nproc']} cores, Linux "
            f"{m['kernel']}).")
        add("")
    return L


def add_levers(L: list[str], r: dict, md_path: Path) -> None:
    """The Levers section: this run's run-time (and commit) levers, then the hand-maintained
    docs/bench-levers.md verbatim (code levers measured in separate runs, fixed settings)."""
    tables = levers_tables(r)
    doc = LEVERS_DOC.read_text().rstrip() if LEVERS_DOC.exists() else ""
    if not tables and not doc:
        return
    add = L.append
    add("## Levers")
    add("")
    add("What each setting or code change gave, including those that did not help. The first "
        "tables come from this run; the rest is kept in "
        f"[{LEVERS_DOC.name}]({os.path.relpath(LEVERS_DOC, md_path.parent)}) and copied here "
        "verbatim.")
    add("")
    L.extend(tables)
    if doc:
        L.extend(doc.splitlines())
        add("")


def make_chart(r: dict, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in r["datasets"] if n != "U" and n in r["seq"]]
    series = [
        ("zarrfs cat, cold", lambda n: r["seq"][n]["cold_cat"]["gb_s"]),
        ("zarrfs cat, warm", lambda n: r["seq"][n]["warm_cat"]["gb_s"]),
        ("zarr-python", lambda n: r["peers"][n]["zarr"].get("gb_s")),
        ("zarr-python + zarrs", lambda n: r["peers"][n]["zarrs"].get("gb_s")),
        ("tensorstore", lambda n: r["peers"][n]["tensorstore"].get("gb_s")),
        ("decode limit (in-process)", lambda n: r["limits"]["decode"][n]["load"]["gb_s"]),
        ("in-process, chunks kept", lambda n: r["limits"]["decode"][n]["keep"]["gb_s"]),
    ]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for i, (label, get) in enumerate(series):
        vals = []
        for n in names:
            try:
                vals.append(get(n) or 0.0)
            except KeyError:
                vals.append(0.0)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
    if "U" in r["seq"]:
        ax.axhline(r["seq"]["U"]["cold_cat"]["gb_s"], color="grey", ls="--", lw=1,
                   label="U (uncompressed) through the mount")
    if "raw_file_cat" in r["limits"]:
        ax.axhline(r["limits"]["raw_file_cat"]["gb_s"], color="black", ls=":", lw=1,
                   label="raw file, page cache")
    ax.set_xticks(x, [f"{n}\n{r['datasets'][n]['description'].split(', ')[-1]}" for n in names],
                  fontsize=8)
    ax.set_ylabel("GB/s (decoded bytes)")
    ax.set_title("Whole-array sequential read")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    rnames = list(r["random"])
    kinds = [("zarrfs_cold", "zarrfs cold"), ("zarrfs_warm", "zarrfs warm"),
             ("zarrfs_warm_pinned", "zarrfs warm, one CPU"), ("zarr", "zarr-python")]
    xr = np.arange(len(rnames))
    w2 = 0.8 / len(kinds)
    for i, (key, label) in enumerate(kinds):
        p50 = [r["random"][n].get(key, {}).get("p50", 0) or 0 for n in rnames]
        p99 = [r["random"][n].get(key, {}).get("p99", 0) or 0 for n in rnames]
        pos = xr + (i - (len(kinds) - 1) / 2) * w2
        bars = ax2.bar(pos, p50, w2, label=f"{label} p50")
        ax2.scatter(pos, p99, marker="_", s=120, color=bars.patches[0].get_facecolor()
                    if bars.patches else "k", zorder=3)
    ax2.axhline(50, color="red", ls=":", lw=1, label="50 µs target")
    ax2.set_yscale("log")
    ax2.set_xticks(xr, rnames)
    ax2.set_ylabel("µs per 4 KiB read (bar p50, tick p99)")
    ax2.set_title("Random 4 KiB reads")
    ax2.set_ylim(top=ax2.get_ylim()[1] * 20)
    ax2.legend(fontsize=7, loc="upper left", ncol=2)
    fig.suptitle(f"zarrfs, {r['machine']['nproc']} cores"
                 + (" (quick run)" if r["config"]["quick"] else ""))
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1/16-size datasets, report written inside the work directory")
    p.add_argument("--only", default="A,B,C,D,U,S,V,T",
                   help="comma-separated datasets to run (default A,B,C,D,U,S,V,T; A brings "
                   "U; T runs the access-pattern scenarios)")
    p.add_argument("--repeats", type=int, default=5, help="runs per measurement (median; ≥ 3)")
    p.add_argument("--work-dir", help="datasets, mount point and raw results "
                   "(default target/bench-data, or target/bench-data-quick with --quick)")
    p.add_argument("--out", help="report path (default BENCHMARKS.md; with --quick, in the work dir)")
    p.add_argument("--chart", help="chart path (default docs/bench.png; with --quick, in the work dir)")
    p.add_argument("--peer-random", type=int, default=2000,
                   help="how many of the random ranges zarr-python reads (default 2000)")
    p.add_argument("--no-perf", action="store_true", help="skip the perf profile")
    p.add_argument("--retries", type=int,
                   help="times a block is measured again when other processes used the CPUs "
                   "meanwhile (default 3, 1 with --quick)")
    p.add_argument("--idle-timeout", type=float, default=600,
                   help="seconds to wait for other processes to leave the CPUs idle (default 600)")
    p.add_argument("--no-write", action="store_true", help="skip the write scenario")
    p.add_argument("--no-levers", action="store_true",
                   help="skip the run-time levers (A and D read under other mount options)")
    p.add_argument("--levers-commits", metavar="REV,REV,...",
                   help="also build the daemon at these commits (in a worktree under "
                   "target/levers) and read A and D with each binary, e.g. c34ca54,HEAD")
    p.add_argument("--levers-only", action="store_true",
                   help="measure only the levers; write them to levers.md in the work dir "
                   "(BENCHMARKS.md is left alone)")
    p.add_argument("--max-pages-limit", type=int, default=1024, metavar="PAGES",
                   help="the kernel's fs.fuse.max_pages_limit during the run, put back at the "
                        "end (1024: reads of flat views arrive in 4 MiB requests; 0 leaves the "
                        "machine's setting)")
    p.add_argument("--binary", help="the zarrfs binary to measure (default: the release build)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report and chart from the work dir's results.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 3 and not args.quick:
        p.error("--repeats must be at least 3 (medians of fewer runs are not reported)")
    if args.retries is None:
        args.retries = 1 if args.quick else 3
    if not args.work_dir:
        args.work_dir = str(ROOT / "target" / ("bench-data-quick" if args.quick else "bench-data"))
    work = Path(args.work_dir)
    args.out = Path(args.out) if args.out else (work / "BENCHMARKS.md" if args.quick
                                                else ROOT / "BENCHMARKS.md")
    args.chart = Path(args.chart) if args.chart else (work / "bench.png" if args.quick
                                                      else ROOT / "docs" / "bench.png")
    return args


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--worker":
        task = json.loads(Path(argv[1]).read_text())
        print(json.dumps(worker(task)))
        return 0
    args = parse_args(argv)
    command = "bash scripts/bench.sh" + ("".join(f" {a}" for a in argv) if argv else "")
    results_path = Path(args.work_dir) / "results.json"
    if args.report_only:
        r = json.loads(results_path.read_text())
        write_report(r, args.out, args.chart, r.get("command", command))
        log(f"wrote {args.out} and {args.chart}")
        return 0
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise BenchError("/dev/fuse is not usable: run as root or install fuse3")
    bench = Bench(args)
    failed = None
    machine_limit = read_max_pages_limit()
    try:
        if args.max_pages_limit > 0:
            with max_pages_limit(args.max_pages_limit):
                bench.run()
        else:
            bench.run()
    except BenchError as e:
        failed = str(e)
    finally:
        if mounted(bench.mnt):
            subprocess.run([str(bench.zarrfs), "umount", str(bench.mnt)], check=False)
    bench.results["command"] = command
    bench.results.setdefault("machine", {})["max_pages_limit"] = {
        "machine": machine_limit,
        "run": args.max_pages_limit if args.max_pages_limit > 0 and machine_limit else machine_limit}
    results_path.write_text(json.dumps(bench.results, indent=1, default=str))
    if failed:
        log(f"FAILED: {failed} (raw results in {results_path})")
        return 1
    if args.levers_only:
        out = Path(args.work_dir) / "levers.md"
        out.write_text("\n".join(levers_tables(bench.results, command)) + "\n")
        log(f"wrote {out} in {bench.results['elapsed_s']:.0f} s")
        return 0
    write_report(bench.results, args.out, args.chart, command)
    for t in targets(bench.results):
        log(f"{t['status']:4}  {t['target']}: {t['detail']}")
    log(f"wrote {args.out} and {args.chart} in {bench.results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
