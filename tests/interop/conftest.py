"""Fixtures and helpers for the zarrfs interop suite.

The suite needs the zarrfs binary: set ZARRFS_BIN to its path (scripts/test.sh
does).  Without ZARRFS_BIN, target/release/zarrfs is used when it exists, and
the tests that mount are skipped otherwise.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from numcodecs import GZip, LZ4, Blosc, Zlib, Zstd

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
V2_STORE = FIXTURES / "v2.zarr"
V2_MANIFEST = FIXTURES / "v2-manifest.json"
V2_GROUPS = FIXTURES / "v2-groups.json"

MOUNT_TIMEOUT = 30
PAGE = 4096
ARRAY_FILES = {"data", "data.npy", "chunks", "meta.json", "attrs.json"}


# ----------------------------------------------------------------------------
# comparison helpers
# ----------------------------------------------------------------------------


def c_order(x: Any) -> np.ndarray:
    """C-contiguous copy that keeps 0-d arrays 0-d."""
    return np.array(x, copy=True, order="C")


def zarr_read(arr: zarr.Array) -> np.ndarray:
    """Full read through zarr-python with the array's exact dtype.

    zarr-python returns 0-d reads as native-order numpy scalars; restore the
    declared byte order so that byte-level comparisons are meaningful.
    """
    out = c_order(arr[...])
    dt = np.dtype(arr.dtype.str) if hasattr(arr.dtype, "str") else np.dtype(arr.dtype)
    if out.dtype != dt:
        assert out.ndim == 0 and out.dtype == dt.newbyteorder("="), (out.dtype, dt)
        out = out.astype(dt)
    return out


def mismatch(got: np.ndarray, exp: np.ndarray) -> str | None:
    """None when identical (dtype incl. byte order, shape, bits; NaN == NaN).

    Otherwise a short human readable description of the first difference.
    """
    if got.dtype != exp.dtype:
        return f"dtype {got.dtype.str} != expected {exp.dtype.str}"
    if got.shape != exp.shape:
        return f"shape {got.shape} != expected {exp.shape}"
    g = c_order(got).reshape(-1)
    e = c_order(exp).reshape(-1)
    if g.dtype.kind in "fc":
        n = g.dtype.itemsize if g.dtype.kind == "f" else g.dtype.itemsize // 2
        bo = g.dtype.byteorder if g.dtype.byteorder in "<>" else "<"
        fg, fe = g.view(f"{bo}f{n}"), e.view(f"{bo}f{n}")
        ng, ne = np.isnan(fg), np.isnan(fe)
        ug = fg.view(np.uint8).reshape(-1, n)
        ue = fe.view(np.uint8).reshape(-1, n)
        bad = (ng != ne) | (~ng & ~ne & np.any(ug != ue, axis=1))
        per = 1 if g.dtype.kind == "f" else 2
        if bad.any():
            i = int(np.argmax(bad)) // per
            return (f"{int(bad.sum())} differing values; first at flat index {i} "
                    f"({tuple(int(x) for x in np.unravel_index(i, exp.shape))}): got {g[i]!r} expected {e[i]!r}")
        return None
    if g.tobytes() != e.tobytes():
        bad = g.view(np.uint8).reshape(-1, g.dtype.itemsize) != e.view(np.uint8).reshape(-1, e.dtype.itemsize)
        bad = bad.any(axis=1)
        i = int(np.argmax(bad))
        return (f"{int(bad.sum())} differing values; first at flat index {i} "
                f"({tuple(int(x) for x in np.unravel_index(i, exp.shape))}): got {g[i]!r} expected {e[i]!r}")
    return None


def assert_identical(got: np.ndarray, exp: np.ndarray, what: str) -> None:
    msg = mismatch(got, exp)
    assert msg is None, f"{what}: {msg}"


def parse_fill(fill: Any, dtype: np.dtype) -> np.ndarray:
    """JSON fill_value (as in .zarray) -> 0-d array of dtype; null -> zeros."""

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


def fill_equivalent(got: Any, want: Any, dtype: np.dtype) -> bool:
    """Does a meta.json fill_value describe the same value as the .zarray one?"""
    if want is None:
        return got is None or (not isinstance(got, (list, dict)) and _fill_is_zero(got, dtype))
    try:
        return mismatch(parse_fill(got, dtype), parse_fill(want, dtype)) is None
    except Exception:
        return False


def _fill_is_zero(got: Any, dtype: np.dtype) -> bool:
    try:
        return mismatch(parse_fill(got, dtype), np.zeros((), dtype)) is None
    except Exception:
        return False


def grid_of(shape, chunks) -> list[int]:
    return [math.ceil(s / c) for s, c in zip(shape, chunks)]


def chunk_indices(shape, chunks) -> list[tuple[int, ...]]:
    if len(shape) == 0:
        return [()]
    if math.prod(shape) == 0:
        return []
    return [tuple(int(i) for i in idx) for idx in np.ndindex(*grid_of(shape, chunks))]


def chunk_name(idx: tuple[int, ...]) -> str:
    return ".".join(map(str, idx)) if idx else "0"


def chunk_region(idx, shape, chunks) -> tuple[slice, ...]:
    return tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))


def expected_chunk(full: np.ndarray, idx, chunks, fill: np.ndarray) -> np.ndarray:
    """What chunks/<name> must contain: full chunk shape, C order, padded with fill."""
    out = np.full(tuple(chunks), fill, dtype=full.dtype)
    reg = chunk_region(idx, full.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in reg)] = full[reg]
    return out


def read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_array_file(path: Path, dtype: np.dtype, shape) -> np.ndarray:
    """np.memmap of a flat data file (plain read for zero-size arrays)."""
    n = math.prod(shape) * dtype.itemsize
    if n == 0:
        data = read_bytes(path)
        assert data == b"", f"{path}: zero-size array but read {len(data)} bytes"
        return np.zeros(shape, dtype)
    m = np.memmap(path, dtype=dtype, mode="r", shape=tuple(shape))
    try:
        return c_order(m)
    finally:
        del m


def expect_eio(fn, what: str) -> None:
    try:
        fn()
    except OSError as e:
        assert e.errno == errno.EIO, f"{what}: expected EIO, got {errno.errorcode.get(e.errno, e.errno)}: {e}"
    else:
        raise AssertionError(f"{what}: expected OSError(EIO), read succeeded")


def pread_exact(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = b""
        while len(out) < length:
            chunk = os.pread(fd, length - len(out), offset + len(out))
            if not chunk:
                break
            out += chunk
        return out
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------
# mounting
# ----------------------------------------------------------------------------


def zarrfs_bin() -> Path:
    env = os.environ.get("ZARRFS_BIN")
    if env:
        p = Path(env)
        if not p.is_absolute():
            p = (Path.cwd() / p).resolve()
        if not (p.is_file() and os.access(p, os.X_OK)):
            pytest.fail(f"ZARRFS_BIN={env} is not an executable file")
        return p
    p = REPO / "target" / "release" / "zarrfs"
    if p.is_file() and os.access(p, os.X_OK):
        return p
    pytest.skip("ZARRFS_BIN not set and target/release/zarrfs not built")


def _run(cmd: list, timeout: float = MOUNT_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "<no log>"


@dataclass
class Mount:
    store: Path
    mnt: Path
    log: Path
    bin: Path
    args: list = field(default_factory=list)
    umount_result: subprocess.CompletedProcess | None = None

    def start(self) -> "Mount":
        self.mnt.mkdir(parents=True, exist_ok=True)
        cmd = [self.bin, "mount", self.store, self.mnt, "--log", self.log, *self.args]
        try:
            r = _run(cmd)
        except subprocess.TimeoutExpired:
            self.force_unmount()
            pytest.fail(f"`{' '.join(map(str, cmd))}` did not return within {MOUNT_TIMEOUT}s\n"
                        f"log:\n{_tail(self.log)}")
        if r.returncode != 0:
            self.force_unmount()
            pytest.fail(f"`{' '.join(map(str, cmd))}` exited {r.returncode}\nstdout:\n{r.stdout}\n"
                        f"stderr:\n{r.stderr}\nlog:\n{_tail(self.log)}")
        if not os.path.ismount(self.mnt):
            self.force_unmount()
            pytest.fail(f"`zarrfs mount` returned 0 but {self.mnt} is not a mount point\n"
                        f"stderr:\n{r.stderr}\nlog:\n{_tail(self.log)}")
        return self

    def stop(self) -> None:
        if not os.path.ismount(self.mnt):
            return
        try:
            self.umount_result = _run([self.bin, "umount", self.mnt])
        except subprocess.TimeoutExpired:
            self.umount_result = None
        self.force_unmount()

    def force_unmount(self) -> None:
        for cmd in (["fusermount3", "-u", self.mnt], ["fusermount", "-u", self.mnt], ["umount", self.mnt],
                    ["umount", "-l", self.mnt], ["fusermount3", "-uz", self.mnt]):
            if not os.path.ismount(self.mnt):
                return
            try:
                _run(cmd, timeout=20)
            except (subprocess.TimeoutExpired, FileNotFoundError):
                pass
            time.sleep(0.1)

    def __truediv__(self, other: str) -> Path:
        return self.mnt / other


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


@pytest.fixture(scope="session")
def zarrfs() -> Path:
    return zarrfs_bin()


@pytest.fixture(scope="session")
def manifest() -> list[dict]:
    return json.loads(V2_MANIFEST.read_text())


@pytest.fixture(scope="session")
def groups() -> list[dict]:
    return json.loads(V2_GROUPS.read_text())


@pytest.fixture(scope="session")
def v2_mount(zarrfs, tmp_path_factory):
    """The committed v2 fixture store, copied to a temp dir and mounted."""
    base = tmp_path_factory.mktemp("v2")
    store = copy_store(V2_STORE, base / "store.zarr")
    m = Mount(store, base / "mnt", base / "zarrfs.log", zarrfs).start()
    yield m
    m.stop()


@pytest.fixture
def mounter(zarrfs, tmp_path):
    """Factory: mounter(store, *extra_args) -> Mount; all unmounted at teardown."""
    mounts: list[Mount] = []

    def make(store: Path, *args: str, name: str = "mnt") -> Mount:
        m = Mount(Path(store), tmp_path / name, tmp_path / f"{name}.log", zarrfs, list(args)).start()
        mounts.append(m)
        return m

    yield make
    for m in reversed(mounts):
        m.stop()


# ----------------------------------------------------------------------------
# random stores written at test time
# ----------------------------------------------------------------------------

RANDOM_DTYPES = ["|b1", "|i1", "|u1"] + [f"{bo}{t}" for t in
                                          ["i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
                                          for bo in "<>"]
BLOSC_CNAMES = ["lz4", "lz4hc", "blosclz", "zstd", "zlib"]


def random_compressor(rng: np.random.Generator):
    k = int(rng.integers(0, 7))
    if k == 0:
        return None
    if k in (1, 2):
        return Blosc(cname=BLOSC_CNAMES[int(rng.integers(0, 5))], clevel=int(rng.integers(0, 10)),
                     shuffle=int(rng.integers(-1, 3)), blocksize=int(rng.choice([0, 0, 256, 1024, 65536])))
    if k == 3:
        return Zstd(level=int(rng.choice([-3, 1, 3, 9])), checksum=bool(rng.integers(0, 2)))
    if k == 4:
        return Zlib(level=int(rng.integers(1, 10)))
    if k == 5:
        return GZip(level=int(rng.integers(1, 10)))
    return LZ4(acceleration=int(rng.integers(1, 5)))


def random_values(dt: np.dtype, shape, rng: np.random.Generator) -> np.ndarray:
    n = math.prod(shape)
    nat = dt.newbyteorder("=")
    if dt.kind == "b":
        v = rng.random(n) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(nat)
        v = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=nat)
    elif dt.kind == "f":
        v = (rng.standard_normal(n) * 1000).astype(nat)
        if n:
            v[rng.random(n) < 0.05] = np.nan
            v[rng.random(n) < 0.03] = -np.inf
    else:
        half = f"f{dt.itemsize // 2}"
        v = (rng.standard_normal(n).astype(half).astype(np.complex128)
             + 1j * rng.standard_normal(n).astype(half)).astype(nat)
    return np.asarray(v).astype(dt).reshape(tuple(shape))


def random_fill(dt: np.dtype, rng: np.random.Generator):
    k = int(rng.integers(0, 4))
    if k == 0:
        return None
    if k == 1:
        return 0
    if dt.kind == "f" and k == 2:
        return float(rng.choice([np.nan, np.inf, -np.inf, -0.0]))
    v = random_values(dt, (1,), rng)[0]
    if dt.kind == "f" and np.isnan(v):
        return float("nan")
    return v.item()


@dataclass
class RandomArray:
    path: str
    dtype: np.dtype
    shape: tuple
    chunks: tuple
    order: str
    fill_value: Any
    attributes: dict
    separator: str


@dataclass
class RandomStore:
    seed: int
    store: Path
    arrays: list
    groups: dict  # path -> attributes


def build_random_store(root_dir: Path, seed: int, n_arrays: int = 18, stress: bool = False) -> RandomStore:
    """A store with random arrays (shapes, chunks, dtypes, codecs, orders, fills, partial writes)."""
    rng = np.random.default_rng(seed)
    store = root_dir / f"random-{seed}.zarr"
    group_paths = ["", "g", "g/h", "k"]
    groups = {gp: {"seed": seed, "group": gp, "r": int(rng.integers(0, 1000))} for gp in group_paths}
    root = zarr.open_group(str(store), mode="w", zarr_format=2, attributes=groups[""])
    for gp in group_paths[1:]:
        root.create_group(gp, attributes=groups[gp])
    arrays = []
    for i in range(n_arrays):
        dt = np.dtype(RANDOM_DTYPES[int(rng.integers(0, len(RANDOM_DTYPES)))])
        ndim = int(rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4]))
        shape = tuple(int(rng.integers(1, 14)) if rng.random() > 0.04 else 0 for _ in range(ndim))
        chunks = tuple(int(rng.integers(1, max(s, 1) + 4)) for s in shape)
        order = "F" if rng.random() < 0.35 else "C"
        sep = "/" if rng.random() < 0.35 else "."
        fill = random_fill(dt, rng)
        wec = bool(rng.random() < 0.7)
        gp = group_paths[int(rng.integers(0, len(group_paths)))]
        name = f"a{i:02d}_{dt.str.replace('<', 'le').replace('>', 'be').replace('|', '')}"
        path = f"{gp}/{name}" if gp else name
        attrs = {"i": i, "dtype": dt.str, "shape": list(shape), "pi": 3.14159, "s": "x" * int(rng.integers(0, 5))}
        arr = root.create_array(path, shape=shape, chunks=chunks, dtype=dt, compressors=random_compressor(rng),
                                fill_value=fill, order=order, attributes=attrs,
                                chunk_key_encoding={"name": "v2", "separator": sep},
                                config={"write_empty_chunks": wec})
        vals = random_values(dt, shape, rng)
        mode = int(rng.integers(0, 3))
        if mode == 0 or ndim == 0:
            arr[...] = vals
        elif mode == 1 and math.prod(shape):
            for _ in range(int(rng.integers(1, 4))):  # random boxes, some chunks stay missing
                sl = []
                for s in shape:
                    a = int(rng.integers(0, s))
                    b = int(rng.integers(a + 1, s + 1))
                    sl.append(slice(a, b))
                arr[tuple(sl)] = vals[tuple(sl)]
        arrays.append(RandomArray(path, dt, shape, chunks, order, fill, attrs, sep))
    if stress:
        dt = np.dtype("<f8")
        arr = root.create_array("stress", shape=(300, 300), chunks=(64, 64), dtype=dt,
                                compressors=Blosc("lz4", 5, 1), fill_value=0.0, attributes={"stress": True})
        arr[...] = np.random.default_rng(seed + 1).standard_normal((300, 300))
        arrays.append(RandomArray("stress", dt, (300, 300), (64, 64), "C", 0.0, {"stress": True}, "."))
    return RandomStore(seed, store, arrays, groups)


def random_tensorstore_compressor(rng: np.random.Generator) -> dict | None:
    """A compressor config that tensorstore's zarr (v2) driver writes."""
    k = int(rng.integers(0, 6))
    if k == 0:
        return None
    if k in (1, 2):
        return {"id": "blosc", "cname": BLOSC_CNAMES[int(rng.integers(0, 5))],
                "clevel": int(rng.integers(0, 10)), "shuffle": int(rng.integers(-1, 3)),
                "blocksize": int(rng.choice([0, 0, 256, 4096]))}
    if k == 3:
        return {"id": "zstd", "level": int(rng.choice([-3, 1, 3, 9]))}
    if k == 4:
        return {"id": "zlib", "level": int(rng.integers(1, 10))}
    return {"id": "gzip", "level": int(rng.integers(1, 10))}


def fill_to_json(fill: Any, dt: np.dtype) -> Any:
    """A Python fill value as Zarr v2 JSON (NaN and infinities as strings, complex as a pair)."""

    def num(x: float) -> Any:
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x

    if fill is None:
        return None
    if dt.kind == "c":
        c = complex(fill)
        return [num(c.real), num(c.imag)]
    if dt.kind == "f":
        return num(float(fill))
    return fill


def build_tensorstore_store(root_dir: Path, seed: int, n_arrays: int = 40) -> RandomStore:
    """A Zarr v2 store written by tensorstore: random dtypes, codecs, orders, separators and
    fill values; some arrays written whole, others in boxes so that some chunks stay missing."""
    import tensorstore as ts  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    store = root_dir / f"tensorstore-{seed}.zarr"
    store.mkdir(parents=True)
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    arrays = []
    for i in range(n_arrays):
        dt = np.dtype(RANDOM_DTYPES[int(rng.integers(0, len(RANDOM_DTYPES)))])
        ndim = int(rng.choice([1, 2, 2, 3, 3, 4]))
        shape = tuple(int(rng.integers(1, 14)) for _ in range(ndim))
        chunks = tuple(int(rng.integers(1, s + 4)) for s in shape)
        order = "F" if ndim > 1 and rng.random() < 0.35 else "C"
        sep = "/" if rng.random() < 0.35 else "."
        fill = fill_to_json(random_fill(dt, rng), dt)
        name = f"t{i:02d}_{dt.str.replace('<', 'le').replace('>', 'be').replace('|', '')}"
        metadata = {"shape": list(shape), "chunks": list(chunks), "dtype": dt.str,
                    "compressor": random_tensorstore_compressor(rng), "order": order,
                    "fill_value": fill, "dimension_separator": sep}
        arr = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(store / name)},
                       "metadata": metadata}, create=True).result()
        vals = random_values(dt, shape, rng)
        if rng.random() < 0.5:
            arr[...] = vals
        else:
            for _ in range(int(rng.integers(1, 4))):
                box = []
                for n in shape:
                    a = int(rng.integers(0, n))
                    box.append(slice(a, int(rng.integers(a + 1, n + 1))))
                arr[tuple(box)] = vals[tuple(box)]
        arrays.append(RandomArray(name, dt, shape, chunks, order, fill, {}, sep))
    return RandomStore(seed, store, arrays, {"": {}})


def tensorstore_read(path: Path, dt: np.dtype) -> np.ndarray:
    """The whole array as tensorstore reads it, in the declared dtype (byte order included)."""
    import tensorstore as ts  # noqa: PLC0415

    arr = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}},
                  read=True).result()
    return c_order(arr.read().result()).astype(dt)


def check_array_node(mnt: Path, path: str, exp: np.ndarray, chunks, fill_json: Any, order: str,
                     attributes: dict, failures: list[str]) -> None:
    """Compare every file of one mounted array with the expected full array."""
    adir = mnt / path if path else mnt
    dt = exp.dtype
    fill = parse_fill(fill_json, dt)
    shape = exp.shape

    def fail(msg: str) -> None:
        failures.append(f"{path or '<root>'}: {msg}")

    try:
        listing = set(os.listdir(adir))
    except OSError as e:
        fail(f"listdir failed: {e!r}")
        return
    if not ARRAY_FILES <= listing:
        fail(f"listing {sorted(listing)} lacks {sorted(ARRAY_FILES - listing)}")
        return
    nbytes = math.prod(shape) * dt.itemsize
    try:
        size = os.stat(adir / "data").st_size
        if size != nbytes:
            fail(f"data st_size {size} != {nbytes}")
        got = read_array_file(adir / "data", dt, shape)
        m = mismatch(got, exp)
        if m:
            fail(f"data: {m}")
    except Exception as e:  # noqa: BLE001
        fail(f"data read failed: {e!r}")
    try:
        npy = np.load(adir / "data.npy", mmap_mode="r")
        m = mismatch(c_order(npy), exp)
        if m:
            fail(f"data.npy: {m}")
        del npy
    except Exception as e:  # noqa: BLE001
        fail(f"data.npy load failed: {e!r}")
    try:
        names = set(os.listdir(adir / "chunks"))
        want = {chunk_name(i) for i in chunk_indices(shape, chunks)}
        if names != want:
            fail(f"chunks/ listing: missing {sorted(want - names)[:5]}, unexpected {sorted(names - want)[:5]}")
        for idx in chunk_indices(shape, chunks):
            p = adir / "chunks" / chunk_name(idx)
            ec = expected_chunk(exp, idx, chunks, fill)
            data = read_bytes(p)
            if len(data) != ec.nbytes:
                fail(f"chunks/{chunk_name(idx)}: {len(data)} bytes, expected {ec.nbytes}")
                continue
            m = mismatch(np.frombuffer(data, dt).reshape(ec.shape), ec)
            if m:
                fail(f"chunks/{chunk_name(idx)}: {m}")
    except Exception as e:  # noqa: BLE001
        fail(f"chunks read failed: {e!r}")
    try:
        meta = json.loads(read_bytes(adir / "meta.json"))
        for key, want in (("shape", list(shape)), ("chunks", list(chunks)), ("dtype", dt.str),
                          ("order", "C"), ("zarr_format", 2)):
            if meta.get(key) != want:
                fail(f"meta.json {key}={meta.get(key)!r}, expected {want!r}")
        if "fill_value" not in meta or not fill_equivalent(meta["fill_value"], fill_json, dt):
            fail(f"meta.json fill_value={meta.get('fill_value')!r}, expected {fill_json!r}")
        stored = meta.get("stored", {})
        if stored.get("order") != order or "codecs" not in stored:
            fail(f"meta.json stored={stored!r}, expected order {order!r} and codecs")
    except Exception as e:  # noqa: BLE001
        fail(f"meta.json failed: {e!r}")
    try:
        attrs = json.loads(read_bytes(adir / "attrs.json"))
        if attrs != attributes:
            fail(f"attrs.json {attrs!r} != {attributes!r}")
    except Exception as e:  # noqa: BLE001
        fail(f"attrs.json failed: {e!r}")


def read_stats(mnt: Path) -> dict[str, float]:
    text = read_bytes(mnt / ".zarrfs" / "stats").decode()
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        assert len(parts) == 2, f"stats line is not `name value`: {line!r}"
        out[parts[0]] = float(parts[1])
    return out
