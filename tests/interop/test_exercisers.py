"""External exercisers through a real writable mount: fsx (File System eXerciser, crates.io
`fsx`) and fio with crc32c verification, on the fixed-size `data` file of u1 arrays and on a
chunk file. After each run the store is checked against what the mount showed: zarr-python
reads it, numcodecs decodes every chunk with the array's compressor, and a remount (fio:
`verify_only`) sees the same bytes.

scripts/install_test_tools.sh installs both tools (fsx into target/tools/bin). Without them
these tests are skipped, unless ZARRFS_REQUIRE_TOOLS=1 (scripts/test.sh sets it).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from numcodecs import Blosc, Zstd

from conftest import REPO, read_stats
from write_checks import (
    check_stored_chunks,
    daemon_pids,
    make_array,
    stacks,
    zarr_mismatch,
    zarray_of,
)

FSX_VERSION = "fsx 0.3.2"
# Array under test: 1000 x 1100 u1 (1,100,000 bytes), 256 x 300 chunks: a 4 x 4 grid whose
# last row and column are edge chunks; every row of `data` crosses four chunks.
SHAPE, CHUNKS = (1000, 1100), (256, 300)
ARR = "arr"

# fsx "block mode": the file keeps its size. fsx neither creates, truncates nor extends
# it; it zeroes the whole file first, then works on [0, flen) with flen = the file's fixed
# size. Operations that change a size or allocation (truncate, posix_fallocate, punch_hole)
# and close/open are off, as block mode requires; everything else that does I/O is on:
# pread/pwrite, mmap reads and writes (msync after each mapwrite), msync(MS_INVALIDATE),
# fsync, fdatasync, sendfile, copy_file_range and posix_fadvise. Offsets and sizes are
# unaligned (align = 1), up to 64 KiB, so operations straddle chunks and pages.
FSX_TOML = """\
blockmode = true
flen = {flen}
nosizechecks = true
nomsyncafterwrite = false

[opsize]
min = 1
max = 65536
align = 1

[weights]
close_open = 0
truncate = 0
posix_fallocate = 0
punch_hole = 0
read = 10
write = 10
mapread = 10
mapwrite = 10
invalidate = 1
fsync = 1
fdatasync = 1
sendfile = 1
copy_file_range = 1
posix_fadvise = 1
"""


def require_tool(path: Path | None, name: str) -> Path:
    if path is not None and path.is_file() and os.access(path, os.X_OK):
        return path
    msg = f"{name} not installed (bash scripts/install_test_tools.sh)"
    if os.environ.get("ZARRFS_REQUIRE_TOOLS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def fsx() -> Path:
    env = os.environ.get("FSX_BIN")
    p = require_tool(Path(env) if env else REPO / "target" / "tools" / "bin" / "fsx", "fsx")
    v = subprocess.run([str(p), "--version"], capture_output=True, text=True).stdout.strip()
    assert v == FSX_VERSION, f"{p} is {v!r}, these tests are written for {FSX_VERSION}"
    return p


@pytest.fixture(scope="session")
def fio() -> Path:
    w = shutil.which("fio")
    return require_tool(Path(w) if w else None, "fio")


def u1_store(base: Path, name: str, compressor, fill: int, seed: int) -> tuple[Path, np.ndarray]:
    store = base / f"{name}.zarr"
    shadow = make_array(store, ARR, dtype="|u1", shape=SHAPE, chunks=CHUNKS, compressor=compressor, fill=fill,
                        init="partial", rng=np.random.default_rng(seed))
    return store, shadow


def run_tool(cmd: list, m, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run an exerciser; on a time-out, report the daemon's thread stacks and log."""
    try:
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        pids = daemon_pids(m.mnt)
        pytest.fail(f"`{' '.join(map(str, cmd))}` did not finish in {timeout}s (hang?)\n"
                    f"output:\n{(e.stdout or b'')[-3000:]!r}\nlog:\n{tail(m.log)}\n"
                    f"daemon stacks:\n{stacks(pids)[:20000]}")


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "<none>"


def finish_and_check_store(m, store: Path, what: str, arrays=((ARR, SHAPE, "|u1"),)) -> None:
    """Snapshot each array's `data` through the mount, unmount, and check that the store
    holds exactly the snapshots (zarr-python, numcodecs on every chunk file)."""
    snaps = {path: np.frombuffer((m.mnt / path / "data").read_bytes(), dt).reshape(shape).copy()
             for path, shape, dt in arrays}
    stats = read_stats(m.mnt)
    m.stop()
    r = m.umount_result
    assert r is not None and r.returncode == 0, f"{what}: zarrfs umount failed: {r and r.stderr}\n{tail(m.log)}"
    assert stats.get("writeback_errors", 0) == 0, f"{what}: write-back errors: {stats}"
    assert stats.get("errors", 0) == 0, f"{what}: errors counted: {stats}\n{tail(m.log)}"
    for path, snap in snaps.items():
        mm = zarr_mismatch(store, path, snap)
        assert mm is None, f"{what}: zarr-python reads {path} differently from the mount's last view: {mm}"
        grid = [range(-(-s // c)) for s, c in zip(snap.shape, zarray_of(store, path)["chunks"])]
        problems = check_stored_chunks(store, path, snap, touched=set(itertools.product(*grid)))
        assert not problems, f"{what}: {path}:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------
# fsx
# ----------------------------------------------------------------------------

FSX_CASES = [
    # (id, compressor, fill, mount args, target file, ops, seed)
    ("data-blosc-zstd", Blosc("zstd", 3, Blosc.SHUFFLE), 7, [], "data", 10_000, 42),
    # a cache smaller than four chunks (evictions, and dirty chunks written back under
    # memory pressure) and a short idle delay; fill 0, so fsx's initial zeroing of the
    # file deletes every chunk and its writes bring them back
    ("data-zstd-tiny-cache", Zstd(level=1), 0, ["--cache-size", "256KiB", "--writeback-delay", "100ms"],
     "data", 10_000, 7),
    # an inner chunk file (76,800 bytes), through the page cache (-o kernel_cache)
    ("chunk-blosc-lz4-kernel-cache", Blosc("lz4", 5, Blosc.BITSHUFFLE), 0, ["-o", "kernel_cache"], "chunks/1.2",
     5_000, 3),
]


@pytest.mark.parametrize("case", FSX_CASES, ids=[c[0] for c in FSX_CASES])
def test_fsx_block_mode(case, fsx, mounter, tmp_path):
    name, compressor, fill, args, target, nops, seed = case
    store, _ = u1_store(tmp_path, name, compressor, fill, seed)
    m = mounter(store, "--rw", *args)
    path = m.mnt / ARR / target
    size = path.stat().st_size
    conf = tmp_path / "fsx.toml"
    conf.write_text(FSX_TOML.format(flen=size))
    art = tmp_path / "fsx-artifacts"
    art.mkdir()
    cmd = [fsx, "-f", conf, "-N", nops, "-S", seed, "-P", art, path]
    r = run_tool(cmd, m, timeout=600)
    if r.returncode != 0 or "All operations completed A-OK!" not in r.stdout:
        arts = "\n".join(f"--- {p.name}\n{tail(p, 6000)}" for p in sorted(art.iterdir()) if p.suffix != ".fsxgood")
        pytest.fail(f"fsx on {target} ({size} bytes, seed {seed}) exited {r.returncode}\n"
                    f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-6000:]}\nartifacts:\n{arts}\n"
                    f"zarrfs log:\n{tail(m.log)}")
    assert path.stat().st_size == size, "fsx block mode changed the file size"
    finish_and_check_store(m, store, f"fsx {name}")


# ----------------------------------------------------------------------------
# fio
# ----------------------------------------------------------------------------

# Each job writes every block of the file once in random order with crc32c-verified blocks
# (verify headers carry offset, length and a checksum, so stale or misplaced data fails),
# then reads it all back and verifies; groups run one after the other (stonewall), each on
# the current contents. allow_file_create=0: fio must use the existing fixed-size file.
FIO_JOBS = """\
[global]
filename={path}
size={size}
allow_file_create=0
file_append=0
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=1
randseed=20240501
ioengine=psync
stonewall

[randwrite-4k-x2]
rw=randwrite
bs=4k
loops=2

[randwrite-4k-64k-backlog]
rw=randwrite
bsrange=4k-64k
verify_backlog=8

[randwrite-64k-sync]
rw=randwrite
bs=64k
fsync=3

[mmap-8k]
ioengine=mmap
rw=randwrite
bs=8k

[libaio-direct-qd8]
ioengine=libaio
iodepth=8
direct=1
rw=randwrite
bs=4k

[two-writers-same-chunks]
rw=randwrite
bsrange=4k-16k
numjobs=2
size={half}
offset_increment={half}
"""

# the persistence job: written before a remount, verified after it with verify_only
FIO_PERSIST = """\
[global]
filename={path}
size={size}
allow_file_create=0
verify=crc32c
verify_fatal=1
randrepeat=1
randseed=777
ioengine=psync

[persist]
rw=randwrite
bsrange=4k-64k
"""


def fio_run(fio: Path, jobfile: Path, m, *extra: str) -> subprocess.CompletedProcess:
    out = jobfile.with_suffix(".out")
    # cwd: fio leaves its verify state files (local-*-verify.state) there
    r = run_tool([fio, "--output", out, *extra, jobfile], m, timeout=600, cwd=jobfile.parent)
    r.stdout = out.read_text(errors="replace") if out.exists() else r.stdout
    return r


def fio_ok(r: subprocess.CompletedProcess, m, what: str) -> None:
    assert r.returncode == 0 and " err= 0" in r.stdout and "verify:" not in r.stdout, (
        f"{what}: fio exited {r.returncode}\n{r.stdout[-6000:]}\nstderr:\n{r.stderr[-3000:]}\n"
        f"zarrfs log:\n{tail(m.log)}")


@pytest.mark.parametrize("cache_opts", [[], ["-o", "kernel_cache"]], ids=["default", "kernel_cache"])
def test_fio_crc32c_verified_random_writes(cache_opts, fio, mounter, tmp_path):
    store, _ = u1_store(tmp_path, "fio", Blosc("zstd", 3, Blosc.SHUFFLE), 7, 11)
    m = mounter(store, "--rw", *cache_opts)
    path = m.mnt / ARR / "data"
    size = path.stat().st_size
    job = tmp_path / "jobs.fio"
    job.write_text(FIO_JOBS.format(path=path, size=size, half=size // 2))
    r = fio_run(fio, job, m)
    fio_ok(r, m, "fio jobs")
    # every job issued writes and read them all back
    for line in r.stdout.splitlines():
        if "issued rwts:" in line:
            total = line.split("total=")[1].split()[0].split(",")
            assert int(total[0]) > 0 and int(total[0]) == int(total[1]), f"reads != writes: {line}"
    assert path.stat().st_size == size
    finish_and_check_store(m, store, "fio jobs")


@pytest.mark.parametrize("engine", ["psync", "mmap"])
def test_fio_verify_after_remount(engine, fio, mounter, tmp_path):
    """Write with `engine` (and verify), unmount, remount, and verify every block again with
    plain preads (verify_only regenerates the same offsets and contents from the seed)."""
    store, _ = u1_store(tmp_path, "fio-persist", Zstd(level=3), 0, 12)
    m = mounter(store, "--rw")
    path = m.mnt / ARR / "data"
    size = path.stat().st_size
    job = tmp_path / "persist.fio"
    job.write_text(FIO_PERSIST.format(path=path, size=size))
    # control: the store does not hold fio's blocks yet, so verify_only must fail
    r = fio_run(fio, job, m, "--verify_only")
    assert r.returncode != 0 and "verify:" in r.stdout + r.stderr, \
        f"fio verify_only passed before anything was written: the check would prove nothing\n{r.stdout[-3000:]}"
    r = fio_run(fio, job, m, "--do_verify=1", f"--ioengine={engine}")
    fio_ok(r, m, f"fio write ({engine})")
    finish_and_check_store(m, store, "fio write")
    m2 = mounter(store, "--rw", name="mnt2")
    job.write_text(FIO_PERSIST.format(path=m2.mnt / ARR / "data", size=size))
    r = fio_run(fio, job, m2, "--verify_only", "--ioengine=psync")
    fio_ok(r, m2, f"fio verify_only after remount (written with {engine})")
    assert "issued rwts: total=" in r.stdout and "total=0," not in r.stdout, r.stdout[-3000:]


# three arrays written at once (one of them by two writers, one through mmap) under a cache
# that holds about two chunks: evictions and dirty-limit write-backs across arrays
FIO_ARRAYS = """\
[global]
allow_file_create=0
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=1
ioengine=psync
rw=randwrite
bsrange=1k-64k
bs_unaligned=1
loops=2

[a-lo]
filename={mnt}/a/data
size={half}

[a-hi]
filename={mnt}/a/data
offset={half}
size={half}

[b]
filename={mnt}/b/data
size={size}

[c-mmap]
ioengine=mmap
filename={mnt}/c/data
size={size}
"""


def test_fio_several_arrays_tiny_cache(fio, mounter, tmp_path):
    store = tmp_path / "three.zarr"
    shape, chunks = (700, 900), (128, 200)
    rng = np.random.default_rng(5)
    for name, comp in (("a", Blosc("lz4", 5, Blosc.SHUFFLE)), ("b", Zstd(level=3)),
                       ("c", Blosc("zstd", 1, Blosc.BITSHUFFLE))):
        make_array(store, name, dtype="<u2", shape=shape, chunks=chunks, compressor=comp, fill=0,
                   init="partial", rng=rng)
    m = mounter(store, "--rw", "--cache-size", "300KiB", "--writeback-delay", "50ms")
    size = 700 * 900 * 2
    job = tmp_path / "arrays.fio"
    job.write_text(FIO_ARRAYS.format(mnt=m.mnt, size=size, half=size // 2))
    r = fio_run(fio, job, m)
    fio_ok(r, m, "fio on three arrays")
    finish_and_check_store(m, store, "fio on three arrays",
                           arrays=[(n, shape, "<u2") for n in ("a", "b", "c")])
