"""Interop: zarrfs mounts of Zarr v2 stores read exactly what zarr-python reads."""

from __future__ import annotations

import concurrent.futures as cf
import errno
import json
import math
import os
import random
import subprocess
import time

import numpy as np
from pathlib import Path
import pytest
import zarr
from numcodecs import Zstd

from conftest import (
    ARRAY_FILES,
    FIXTURES,
    PAGE,
    V2_GROUPS,
    V2_MANIFEST,
    assert_identical,
    build_random_store,
    build_tensorstore_store,
    c_order,
    check_array_node,
    chunk_indices,
    chunk_name,
    copy_store,
    expect_eio,
    expected_chunk,
    fill_equivalent,
    mismatch,
    parse_fill,
    pread_exact,
    read_array_file,
    read_bytes,
    read_stats,
    tensorstore_read,
    zarr_read,
)

MANIFEST = json.loads(V2_MANIFEST.read_text())
GROUPS = json.loads(V2_GROUPS.read_text())
BY_PATH = {e["path"]: e for e in MANIFEST}
READABLE = [e for e in MANIFEST if e["error"] is None]
WITH_EXPECTED = [e for e in MANIFEST if e["expected"]]
LISTED = [e for e in MANIFEST if e["error"] != "malformed_metadata"]
UNSUPPORTED = [e for e in MANIFEST if e["error"] == "unsupported_codec"]
CORRUPT = [e for e in MANIFEST if e["error"] == "corrupt_chunks"]
MALFORMED = [e for e in MANIFEST if e["error"] == "malformed_metadata"]
# arrays whose store layout zarr-python 3 itself reads as intended
ZARR_READABLE = [e for e in READABLE if e["dimension_separator"] is not None]


def ids(entries):
    return [e["path"] for e in entries]


def expected_of(entry) -> np.ndarray:
    exp = np.load(FIXTURES / entry["expected"])
    assert exp.dtype.str == entry["dtype"] and list(exp.shape) == entry["shape"]
    return exp


def children(parent: str) -> set[str]:
    """Names directly below a group path, per manifest and groups file."""
    out = set()
    for p in [e["path"] for e in LISTED] + [g["path"] for g in GROUPS if g["path"]]:
        head, _, name = p.rpartition("/")
        if head == parent:
            out.add(name)
    return out


# ----------------------------------------------------------------------------
# tree structure
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS, ids=[g["path"] or "<root>" for g in GROUPS])
def test_group_listing_and_attrs(v2_mount, group):
    gdir = v2_mount.mnt / group["path"]
    assert gdir.is_dir(), f"group {group['path']!r} missing from mount"
    listing = set(os.listdir(gdir)) - ({".zarrfs"} if not group["path"] else set())
    want = children(group["path"]) | {"attrs.json"}
    assert listing == want, f"missing {sorted(want - listing)}, unexpected {sorted(listing - want)}"
    attrs = json.loads(read_bytes(gdir / "attrs.json"))
    assert attrs == group["attributes"]


@pytest.mark.parametrize("entry", LISTED, ids=ids(LISTED))
def test_array_listing(v2_mount, entry):
    adir = v2_mount.mnt / entry["path"]
    assert adir.is_dir(), f"array {entry['path']} missing from mount"
    assert set(os.listdir(adir)) == ARRAY_FILES
    for name in ("data", "data.npy", "meta.json", "attrs.json"):
        assert (adir / name).is_file(), name
    assert (adir / "chunks").is_dir()
    itemsize = np.dtype(entry["dtype"]).itemsize
    assert os.stat(adir / "data").st_size == math.prod(entry["shape"]) * itemsize
    names = set(os.listdir(adir / "chunks"))
    want = {chunk_name(i) for i in chunk_indices(entry["shape"], entry["chunks"])}
    assert names == want, f"chunks/: missing {sorted(want - names)[:8]}, unexpected {sorted(names - want)[:8]}"
    chunk_bytes = math.prod(entry["chunks"]) * itemsize
    for n in sorted(names):
        assert os.stat(adir / "chunks" / n).st_size == chunk_bytes, f"chunks/{n} st_size"


@pytest.mark.parametrize("entry", LISTED, ids=ids(LISTED))
def test_meta_and_attrs(v2_mount, entry):
    adir = v2_mount.mnt / entry["path"]
    meta = json.loads(read_bytes(adir / "meta.json"))
    for key in ("shape", "chunks", "dtype", "zarr_format"):
        assert meta.get(key) == entry[key], f"meta.json {key}: got {meta.get(key)!r}, expected {entry[key]!r}"
    assert meta.get("order") == "C", "the views are C order"
    stored = meta.get("stored", {})
    assert stored.get("order") == entry["order"], f"meta.json stored order: {stored!r}"
    dt = np.dtype(entry["dtype"])
    assert "fill_value" in meta, "meta.json lacks fill_value"
    assert fill_equivalent(meta["fill_value"], entry["fill_value"], dt), \
        f"meta.json fill_value: got {meta['fill_value']!r}, expected {entry['fill_value']!r}"
    codecs = stored.get("codecs")
    assert isinstance(codecs, list), f"meta.json stored codecs is not a list: {codecs!r}"
    if entry["compressor"] is not None:
        cid = entry["compressor"]["id"]
        names = [c.get("id", c.get("name")) if isinstance(c, dict) else c for c in codecs]
        assert cid in names, f"meta.json stored codecs {codecs!r} do not mention compressor {cid!r}"
    attrs = json.loads(read_bytes(adir / "attrs.json"))
    assert attrs == entry["attributes"]


@pytest.mark.parametrize("entry", MALFORMED, ids=ids(MALFORMED))
def test_malformed_node_absent(v2_mount, entry):
    p = v2_mount.mnt / entry["path"]
    parent = p.parent
    assert not os.path.lexists(p), f"{entry['path']} has malformed metadata but is in the mount"
    assert p.name not in os.listdir(parent)
    # its healthy siblings are still there
    assert (parent / "ok_sibling" / "data").is_file()


# ----------------------------------------------------------------------------
# data, data.npy, chunks of readable arrays
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", READABLE, ids=ids(READABLE))
def test_data_matches_expected(v2_mount, entry):
    exp = expected_of(entry)
    got = read_array_file(v2_mount.mnt / entry["path"] / "data", exp.dtype, exp.shape)
    assert_identical(got, exp, f"{entry['path']}/data")


@pytest.mark.parametrize("entry", ZARR_READABLE, ids=ids(ZARR_READABLE))
def test_data_matches_zarr_python(v2_mount, entry):
    """The mount agrees with zarr-python reading the very same store copy."""
    ref = zarr_read(zarr.open_array(str(v2_mount.store / entry["path"]), mode="r"))
    dt = np.dtype(entry["dtype"])
    got = read_array_file(v2_mount.mnt / entry["path"] / "data", dt, tuple(entry["shape"]))
    assert_identical(got, ref, f"{entry['path']}/data vs zarr-python")
    npy = np.load(v2_mount.mnt / entry["path"] / "data.npy", mmap_mode="r")
    assert npy.dtype.str == dt.str
    assert_identical(c_order(npy), ref, f"{entry['path']}/data.npy vs zarr-python")


@pytest.mark.parametrize("entry", READABLE, ids=ids(READABLE))
def test_data_npy(v2_mount, entry):
    exp = expected_of(entry)
    path = v2_mount.mnt / entry["path"] / "data.npy"
    npy = np.load(path, mmap_mode="r")
    assert isinstance(npy, np.memmap) or npy.size == 0
    assert npy.dtype.str == exp.dtype.str, f"dtype {npy.dtype.str} != {exp.dtype.str}"
    assert npy.shape == exp.shape
    assert_identical(c_order(npy), exp, f"{entry['path']}/data.npy (mmap)")
    del npy
    full = np.load(path)
    assert_identical(full, exp, f"{entry['path']}/data.npy (read)")
    # header + exactly the bytes of `data`
    raw = read_bytes(path)
    assert len(raw) == os.stat(path).st_size
    assert raw[:6] == b"\x93NUMPY"
    body = read_bytes(v2_mount.mnt / entry["path"] / "data")
    assert raw.endswith(body) and len(raw) - len(body) in range(10, 65536)
    assert (len(raw) - len(body)) % 64 == 0, "NPY spec: magic + header length must be a multiple of 64"


@pytest.mark.parametrize("entry", READABLE, ids=ids(READABLE))
def test_chunk_files(v2_mount, entry):
    exp = expected_of(entry)
    fill = parse_fill(entry["fill_value"], exp.dtype)
    cdir = v2_mount.mnt / entry["path"] / "chunks"
    errors = []
    for idx in chunk_indices(entry["shape"], entry["chunks"]):
        name = chunk_name(idx)
        want = expected_chunk(exp, idx, entry["chunks"], fill)
        data = read_bytes(cdir / name)
        if len(data) != want.nbytes:
            errors.append(f"chunks/{name}: {len(data)} bytes, expected {want.nbytes}")
            continue
        m = mismatch(np.frombuffer(data, exp.dtype).reshape(want.shape), want)
        if m:
            state = "present" if name in entry["present_chunks"] else "missing"
            errors.append(f"chunks/{name} ({state} in store): {m}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("entry", READABLE, ids=ids(READABLE))
def test_partial_reads(v2_mount, entry):
    """Unaligned preads of `data` return the right slices."""
    exp = expected_of(entry)
    flat = c_order(exp).tobytes()
    path = v2_mount.mnt / entry["path"] / "data"
    rng = random.Random(entry["path"])
    for _ in range(20):
        if not flat:
            break
        off = rng.randrange(0, len(flat))
        ln = rng.randrange(1, len(flat) - off + 1)
        assert pread_exact(path, off, ln) == flat[off:off + ln], f"pread({off}, {ln})"
    assert pread_exact(path, len(flat), 100) == b"", "read at EOF must return nothing"


# ----------------------------------------------------------------------------
# error cases
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", UNSUPPORTED, ids=ids(UNSUPPORTED))
def test_unsupported_codec_reads_fail_eio(v2_mount, entry):
    adir = v2_mount.mnt / entry["path"]
    assert adir.is_dir(), "array with an unsupported codec must still be listed"
    expect_eio(lambda: read_bytes(adir / "data"), f"{entry['path']}/data")
    expect_eio(lambda: read_bytes(adir / "data.npy"), f"{entry['path']}/data.npy")
    for name in entry["present_chunks"]:
        expect_eio(lambda: read_bytes(adir / "chunks" / name), f"{entry['path']}/chunks/{name}")


@pytest.mark.parametrize("entry", CORRUPT, ids=ids(CORRUPT))
def test_corrupt_chunks(v2_mount, entry):
    exp = expected_of(entry)
    dt = exp.dtype
    fill = parse_fill(entry["fill_value"], dt)
    adir = v2_mount.mnt / entry["path"]
    bad = set(entry["bad_chunks"])
    assert bad
    errors = []
    for idx in chunk_indices(entry["shape"], entry["chunks"]):
        name = chunk_name(idx)
        p = adir / "chunks" / name
        if name in bad:
            try:
                expect_eio(lambda: read_bytes(p), f"chunks/{name}")
            except AssertionError as e:
                errors.append(str(e))
        else:
            want = expected_chunk(exp, idx, entry["chunks"], fill)
            try:
                got = np.frombuffer(read_bytes(p), dt)
            except OSError as e:
                errors.append(f"chunks/{name} (good chunk) failed: {e!r}")
                continue
            m = mismatch(got.reshape(want.shape), want) if got.size == want.size else f"size {got.size}"
            if m:
                errors.append(f"chunks/{name}: {m}")

    # data: per 4 KiB page, fails iff the page touches a bad chunk
    mask = np.zeros(exp.shape, bool)
    for region in entry["bad_regions"]:
        mask[tuple(slice(a, b) for a, b in region)] = True
    mflat = mask.reshape(-1)
    flat = c_order(exp).tobytes()
    for off in range(0, len(flat), PAGE):
        end = min(off + PAGE, len(flat))
        touches = bool(mflat[off // dt.itemsize: -(-end // dt.itemsize)].any())
        what = f"data[{off}:{end}]"
        if touches:
            try:
                expect_eio(lambda: pread_exact(adir / "data", off, end - off), what)
            except AssertionError as e:
                errors.append(str(e))
        else:
            try:
                got = pread_exact(adir / "data", off, end - off)
            except OSError as e:
                errors.append(f"{what} touches only good chunks but failed: {e!r}")
                continue
            if got != flat[off:end]:
                errors.append(f"{what}: wrong bytes")
    try:
        expect_eio(lambda: read_bytes(adir / "data"), "data (whole file)")
        expect_eio(lambda: read_bytes(adir / "data.npy"), "data.npy (whole file)")
    except AssertionError as e:
        errors.append(str(e))
    assert not errors, "\n".join(errors)


def test_errors_do_not_break_the_mount(v2_mount):
    """After failing reads, the rest of the mount still works."""
    for entry in UNSUPPORTED + CORRUPT:
        try:
            read_bytes(v2_mount.mnt / entry["path"] / "data")
        except OSError:
            pass
    e = BY_PATH["errors/ok_sibling"]
    got = read_array_file(v2_mount.mnt / e["path"] / "data", np.dtype(e["dtype"]), tuple(e["shape"]))
    assert_identical(got, expected_of(e), "errors/ok_sibling/data")
    assert os.path.ismount(v2_mount.mnt)


# ----------------------------------------------------------------------------
# concurrency and stats
# ----------------------------------------------------------------------------


def test_concurrent_readers(v2_mount):
    """Many threads reading different and identical files at once stay consistent."""
    entries = [e for e in READABLE if math.prod(e["shape"]) > 0]
    flats = {e["path"]: c_order(expected_of(e)).tobytes() for e in entries}

    def worker(seed: int) -> list[str]:
        rng = random.Random(seed)
        errs = []
        for _ in range(60):
            e = entries[rng.randrange(len(entries))] if rng.random() < 0.7 else entries[seed % len(entries)]
            flat = flats[e["path"]]
            kind = rng.random()
            try:
                if kind < 0.5:
                    off = rng.randrange(len(flat))
                    ln = rng.randrange(1, len(flat) - off + 1)
                    if pread_exact(v2_mount.mnt / e["path"] / "data", off, ln) != flat[off:off + ln]:
                        errs.append(f"{e['path']}/data pread({off},{ln}) mismatch")
                elif kind < 0.8:
                    if read_bytes(v2_mount.mnt / e["path"] / "data") != flat:
                        errs.append(f"{e['path']}/data full read mismatch")
                else:
                    raw = read_bytes(v2_mount.mnt / e["path"] / "data.npy")
                    if not raw.endswith(flat):
                        errs.append(f"{e['path']}/data.npy mismatch")
            except OSError as ex:
                errs.append(f"{e['path']}: {ex!r}")
        return errs

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        errs = [x for r in pool.map(worker, range(16)) for x in r]
    assert not errs, "\n".join(errs[:20])


def test_stats_file(v2_mount):
    stats_path = v2_mount.mnt / ".zarrfs" / "stats"
    assert stats_path.is_file()
    before = read_stats(v2_mount.mnt)
    assert before, ".zarrfs/stats is empty"
    for e in READABLE[:20]:
        read_bytes(v2_mount.mnt / e["path"] / "data")
        for n in os.listdir(v2_mount.mnt / e["path"] / "chunks"):
            read_bytes(v2_mount.mnt / e["path"] / "chunks" / n)
    after = read_stats(v2_mount.mnt)
    assert set(before) <= set(after), "counters disappeared"
    assert any(after[k] > before[k] for k in before), \
        f"no counter changed after reading data: before={before} after={after}"


# ----------------------------------------------------------------------------
# mounts of freshly generated stores
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [101, 202, 303, 404])
def test_random_store(mounter, tmp_path, seed):
    rs = build_random_store(tmp_path, seed, stress=(seed == 101))
    extra = ("--threads", "2", "--cache-size", "1M") if seed == 202 else ()
    m = mounter(rs.store, *extra)
    failures: list[str] = []
    for a in rs.arrays:
        zmeta = json.loads((rs.store / a.path / ".zarray").read_text())
        exp = zarr_read(zarr.open_array(str(rs.store / a.path), mode="r"))
        check_array_node(m.mnt, a.path, exp, a.chunks, zmeta["fill_value"], a.order, a.attributes, failures)
    for gp, attrs in rs.groups.items():
        try:
            got = json.loads(read_bytes(m.mnt / gp / "attrs.json"))
            if got != attrs:
                failures.append(f"group {gp or '<root>'}: attrs.json {got} != {attrs}")
        except OSError as e:
            failures.append(f"group {gp or '<root>'}: attrs.json {e!r}")
    assert not failures, f"seed {seed}:\n" + "\n".join(failures)


@pytest.mark.parametrize("seed", [11, 12])
def test_tensorstore_written_store(mounter, tmp_path, seed):
    """Every file of arrays that tensorstore wrote shows exactly what tensorstore reads."""
    ts_store = build_tensorstore_store(tmp_path, seed)
    m = mounter(ts_store.store)
    failures: list[str] = []
    for a in ts_store.arrays:
        exp = tensorstore_read(ts_store.store / a.path, a.dtype)
        zmeta = json.loads((ts_store.store / a.path / ".zarray").read_text())
        check_array_node(m.mnt, a.path, exp, a.chunks, zmeta["fill_value"], a.order, {}, failures)
    assert not failures, f"seed {seed}:\n" + "\n".join(failures)


def test_concurrent_readers_large_array(mounter, tmp_path):
    """8 threads read random ranges and chunks of a 720 KB multi-chunk array."""
    rs = build_random_store(tmp_path, 7, n_arrays=0, stress=True)
    m = mounter(rs.store)
    exp = zarr_read(zarr.open_array(str(rs.store / "stress"), mode="r"))
    flat = exp.tobytes()
    fill = np.zeros((), exp.dtype)
    idxs = chunk_indices(exp.shape, (64, 64))
    chunk_bytes = {chunk_name(i): expected_chunk(exp, i, (64, 64), fill).tobytes() for i in idxs}

    def worker(seed: int) -> list[str]:
        rng = random.Random(seed)
        errs = []
        for _ in range(50):
            if rng.random() < 0.6:
                off = rng.randrange(len(flat))
                ln = rng.randrange(1, min(len(flat) - off, 200_000) + 1)
                if pread_exact(m.mnt / "stress" / "data", off, ln) != flat[off:off + ln]:
                    errs.append(f"data pread({off}, {ln}) mismatch")
            else:
                n = chunk_name(idxs[rng.randrange(len(idxs))])
                if read_bytes(m.mnt / "stress" / "chunks" / n) != chunk_bytes[n]:
                    errs.append(f"chunks/{n} mismatch")
        return errs

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        errs = [x for r in pool.map(worker, range(8)) for x in r]
    assert not errs, "\n".join(errs[:20])
    npy = np.load(m.mnt / "stress" / "data.npy", mmap_mode="r")
    assert_identical(c_order(npy), exp, "stress/data.npy")


# direct_io: every pass reaches the daemon (on a read-only mount's page cache, the passes
# that find pages cached never do, and the daemon keeps the chunks for them).
@pytest.mark.parametrize("options", [["-o", "direct_io"], ["--cache-size", "64KiB"], ["--keep-scans"]],
                         ids=["direct-io", "cache-smaller-than-a-band", "keep-scans"])
def test_concurrent_sequential_scans(mounter, tmp_path, options):
    """Sequential passes (flat view in several request sizes, .npy view, every chunk file in
    name order) run at once, twice; each returns what zarr-python decodes, whatever the
    cache releases behind them or holds for them."""
    rs = build_random_store(tmp_path, 11, n_arrays=0, stress=True)
    m = mounter(rs.store, *options)
    exp = zarr_read(zarr.open_array(str(rs.store / "stress"), mode="r"))
    flat = exp.tobytes()
    fill = np.zeros((), exp.dtype)
    idxs = chunk_indices(exp.shape, (64, 64))
    chunk_bytes = {chunk_name(i): expected_chunk(exp, i, (64, 64), fill).tobytes() for i in idxs}
    node = m.mnt / "stress"

    def stream(path: Path, block: int) -> bytes:
        out = bytearray()
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(block):
                out += chunk
        return bytes(out)

    def flat_pass(block: int) -> list[str]:
        got = stream(node / "data", block)
        return [] if got == flat else [f"data read in {block}-byte blocks differs"]

    def npy_pass() -> list[str]:
        got = stream(node / "data.npy", 100_000)
        return [] if got.endswith(flat) else ["data.npy differs"]

    def chunk_pass() -> list[str]:
        names = sorted(os.listdir(node / "chunks"))
        return [f"chunks/{n} differs" for n in names
                if stream(node / "chunks" / n, 1 << 20) != chunk_bytes[n]]

    jobs = [lambda b=b: flat_pass(b) for b in (4096, 10_000, 65536, 1 << 20)]
    jobs += [npy_pass, chunk_pass]
    for _ in range(2):
        with cf.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            errs = [x for r in pool.map(lambda job: job(), jobs) for x in r]
        assert not errs, "\n".join(errs)
    released = read_stats(m.mnt)["chunks_released_after_scan"]
    if "--keep-scans" in options:
        assert released == 0
    else:
        assert released > 0
    if "64KiB" in " ".join(options):
        log = m.log.read_text()
        # Logged once per array, naming whichever view (data or data.npy) got there first.
        warning = ": a row of chunks along the first axis holds 160 KiB, more than the 64 KiB cache"
        assert f"/stress/data{warning}" in log or f"/stress/data.npy{warning}" in log, log[-2000:]


def test_sequential_reads_by_blosc_blocks(mounter, tmp_path):
    """Chunks stored in several blosc blocks, read front to back by blocks (the first pass
    of a scan) and whole (the pass after it), show what zarr-python decodes."""
    from numcodecs import Blosc, Zlib  # noqa: PLC0415

    root = zarr.open_group(str(tmp_path / "blocks.zarr"), mode="w", zarr_format=2)
    specs = {
        # 256 KB chunks in 64 KiB blocks (lz4 splits its 16 KiB blocks by byte).
        "lz4": ((200, 3000), (64, 1000), "<f4", Blosc("lz4", 5, Blosc.SHUFFLE, blocksize=16384)),
        # 120 KB chunks in 8 KiB blocks, the last one shorter; bit shuffle.
        "zstd": ((40, 50, 300), (16, 25, 150), ">u2",
                 Blosc("zstd", 3, Blosc.BITSHUFFLE, blocksize=8192)),
        "zlib": ((90, 700), (30, 700), "<f8", Blosc("zlib", 1, Blosc.NOSHUFFLE, blocksize=32768)),
    }
    rng = np.random.default_rng(5)
    for name, (shape, chunks, dtype, compressor) in specs.items():
        arr = root.create_array(name, shape=shape, chunks=chunks, dtype=dtype,
                                compressors=compressor, fill_value=3)
        values = (rng.standard_normal(shape) * 100).astype(dtype)
        # The first chunk along the first axis stays absent.
        arr[chunks[0]:] = values[chunks[0]:]
    m = mounter(tmp_path / "blocks.zarr")
    for name in specs:
        exp = zarr_read(zarr.open_array(str(tmp_path / "blocks.zarr" / name), mode="r")).tobytes()
        for request in (4096, 100_000, 1 << 20, 1 << 20):
            with open(m.mnt / name / "data", "rb", buffering=0) as f:
                got = bytearray()
                while chunk := f.read(request):
                    got += chunk
            assert bytes(got) == exp, f"{name}: data in {request}-byte reads"
        npy = read_bytes(m.mnt / name / "data.npy")
        assert npy.endswith(exp), f"{name}: data.npy"
    stats = read_stats(m.mnt)
    assert stats["blocks_decoded"] > 0
    assert stats["errors"] == 0


def test_store_root_is_array(mounter, tmp_path):
    store = tmp_path / "rootarray.zarr"
    arr = zarr.create_array(str(store), shape=(7, 5), chunks=(3, 2), dtype=">f4", zarr_format=2,
                            compressors=Zstd(level=1), fill_value=-1.0, order="F",
                            attributes={"root": "array"})
    arr[:5, :3] = np.arange(15, dtype=">f4").reshape(5, 3)
    m = mounter(store)
    exp = zarr_read(zarr.open_array(str(store), mode="r"))
    failures: list[str] = []
    listing = set(os.listdir(m.mnt)) - {".zarrfs"}
    assert listing == ARRAY_FILES, f"root of an array store lists {sorted(listing)}"
    check_array_node(m.mnt, "", exp, (3, 2), -1.0, "F", {"root": "array"}, failures)
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------
# command line behaviour
# ----------------------------------------------------------------------------


def test_umount_command(zarrfs, tmp_path):
    store = copy_store(FIXTURES / "v2.zarr", tmp_path / "s.zarr")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        try:
            r = subprocess.run([str(zarrfs), "mount", str(store), str(mnt)], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`zarrfs mount` (no -f) did not return within 60s; mounted={os.path.ismount(mnt)}")
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt), "mount returned 0 but nothing is mounted"
        assert (mnt / "attrs.json").is_file()
        u = subprocess.run([str(zarrfs), "umount", str(mnt)], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert u.returncode == 0, f"zarrfs umount exited {u.returncode}: {u.stderr}"
        assert not os.path.ismount(mnt), "still mounted after `zarrfs umount`"
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_foreground_mount(zarrfs, tmp_path):
    store = copy_store(FIXTURES / "v2.zarr", tmp_path / "s.zarr")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([str(zarrfs), "mount", str(store), str(mnt), "-f", "--read-only"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt) and time.monotonic() < deadline:
            assert proc.poll() is None, f"foreground zarrfs exited early: {proc.communicate()[1][-2000:]!r}"
            time.sleep(0.05)
        assert os.path.ismount(mnt), "foreground mount never became live"
        assert proc.poll() is None, "-f must keep the process in the foreground while mounted"
        e = BY_PATH["dtypes/f8_be"]
        got = read_array_file(mnt / e["path"] / "data", np.dtype(e["dtype"]), tuple(e["shape"]))
        assert_identical(got, expected_of(e), "foreground dtypes/f8_be/data")
        u = subprocess.run([str(zarrfs), "umount", str(mnt)], capture_output=True, text=True, timeout=60)
        assert u.returncode == 0, u.stderr
        rc = proc.wait(timeout=30)
        assert rc == 0, f"foreground process exited {rc} after umount"
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_read_only_mount_rejects_writes(mounter, tmp_path):
    store = copy_store(FIXTURES / "v2.zarr", tmp_path / "s.zarr")
    m = mounter(store, "--read-only")
    e = BY_PATH["dtypes/i4_le"]
    p = m.mnt / e["path"] / "data"
    with pytest.raises(OSError) as info:
        with open(p, "r+b") as f:
            f.write(b"x")
            f.flush()
    assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), info.value
    with pytest.raises(OSError):
        (m.mnt / "new_file").write_bytes(b"x")
    got = read_array_file(p, np.dtype(e["dtype"]), tuple(e["shape"]))
    assert_identical(got, expected_of(e), "data after rejected write")
    assert (store / e["path"] / ".zarray").is_file()


def test_info_lists_every_array(zarrfs):
    r = subprocess.run([str(zarrfs), "info", "--json", str(FIXTURES / "v2.zarr")], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    arrays = {}
    pending = [json.loads(r.stdout)]
    while pending:
        node = pending.pop()
        if node["node"] == "array":
            arrays[node["path"].lstrip("/")] = node
        pending.extend(node.get("children", []))
    missing = [e["path"] for e in LISTED if e["path"] not in arrays]
    assert not missing, f"`zarrfs info` lists no {missing}"
    for e in LISTED:
        assert arrays[e["path"]]["shape"] == e["shape"], e["path"]


def test_sample_store_roundtrip(zarrfs, mounter, tmp_path):
    """`zarrfs sample --format 2` writes a store that zarr-python reads and zarrfs mounts
    identically."""
    d = tmp_path / "sample"
    r = subprocess.run([str(zarrfs), "sample", "--format", "2", str(d)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    arrays = []
    for zarray in sorted(d.rglob(".zarray")):
        rel = zarray.parent.relative_to(d).as_posix()
        arrays.append("" if rel == "." else rel)
    assert arrays, f"`zarrfs sample` wrote no Zarr v2 arrays under {d}: {sorted(p.name for p in d.rglob('*'))[:20]}"
    m = mounter(d)
    failures: list[str] = []
    for path in arrays:
        za = zarr.open_array(str(d / path) if path else str(d), mode="r")
        zmeta = json.loads((d / path / ".zarray").read_text())
        zattrs_p = d / path / ".zattrs"
        attrs = json.loads(zattrs_p.read_text()) if zattrs_p.exists() else {}
        check_array_node(m.mnt, path, zarr_read(za), tuple(zmeta["chunks"]), zmeta["fill_value"], zmeta["order"],
                         attrs, failures)
    assert not failures, "\n".join(failures)
