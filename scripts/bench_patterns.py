"""Access patterns other than whole-array scans, on the cube T (time × y × x, float32):
a slab, a time series of random pixels and a 2-D tile of one time step, read through mmap of
``data.npy`` or ``pread`` of ``data``, against zarr-python and tensorstore reading the same
selection in-process; and writes of a slab through ``numpy.memmap`` + ``fsync`` against
their ``a[sel] = x``. Imported by bench.py, whose worker process runs the ``pattern_*`` ops.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from pathlib import Path

PIXELS = 20
PAGE = 4096


def selections(shape: tuple[int, ...]) -> dict:
    """The selections of the scenarios on a cube of ``shape`` (slab and tile rows as slices,
    the pixels of the time series as (y, x) pairs, fixed by a seed)."""
    import numpy as np

    t, ny, nx = shape
    rng = np.random.default_rng(14)
    pixels = [(int(y), int(x)) for y, x in zip(rng.integers(0, ny, PIXELS),
                                                 rng.integers(0, nx, PIXELS))]
    return {
        "slab": (0, t, 300, 556, 700, 956),
        "tile": (t // 2, t // 2 + 1, 300, 812, 200, 712),
        "series": pixels,
    }


# Scenarios: key, label, how the mount is read, selection.
SCENARIOS = [
    ("slab_mmap", "slab `[:, 300:556, 700:956]` via `np.load(mmap_mode='r')`", "mmap", "slab"),
    ("slab_pread", "same slab via one `pread` of its whole rows per time step", "pread",
     "slab"),
    ("series_mmap", f"time series of {PIXELS} random pixels via mmap", "mmap", "series"),
    ("series_pread", f"time series of {PIXELS} random pixels via `pread` of 4 bytes each",
     "pread", "series"),
    ("tile_mmap", "tile `[T/2, 300:812, 200:712]` via mmap", "mmap", "tile"),
]

# Read-only mount configurations the scenarios run under.
MOUNTS = [
    ("ro", "`--read-only` (page cache, kept across opens)", ["--read-only"]),
    ("ro_direct", "`--read-only -o direct_io`", ["--read-only", "-o", "direct_io"]),
]


def chunks_touched(shape, chunks, kind: str, sel, whole_rows: bool) -> int:
    """Chunks a selection intersects; with ``whole_rows``, those of the whole rows along x
    it lies in (what a reader of 4 KiB pages through mmap, or of whole rows, touches)."""
    def span(lo, hi, c):
        return set(range(lo // c, (hi - 1) // c + 1))

    xs_all = set(range(-(-shape[2] // chunks[2])))
    if kind == "series":
        out = set()
        for y, x in sel:
            xs = xs_all if whole_rows else {x // chunks[2]}
            for tc in span(0, shape[0], chunks[0]):
                for xc in xs:
                    out.add((tc, y // chunks[1], xc))
        return len(out)
    t0, t1, y0, y1, x0, x1 = sel
    xs = xs_all if whole_rows else span(x0, x1, chunks[2])
    return len(span(t0, t1, chunks[0])) * len(span(y0, y1, chunks[1])) * len(xs)


def read_mount(via: str, kind: str, mount: str, shape: tuple[int, ...], sel) -> dict:
    """Worker side: reads the selection through the mounted array at ``mount``; returns the
    time and the SHA-256 of the values (C order)."""
    import numpy as np

    h = hashlib.sha256()
    t0 = time.perf_counter()
    if via == "mmap":
        a = np.load(os.path.join(mount, "data.npy"), mmap_mode="r")
        if kind == "series":
            parts = [np.array(a[:, y, x]) for y, x in sel]
        else:
            ts, te, y0, y1, x0, x1 = sel
            parts = [np.array(a[ts:te, y0:y1, x0:x1])]
    else:
        fd = os.open(os.path.join(mount, "data"), os.O_RDONLY)
        row, plane = shape[2] * 4, shape[1] * shape[2] * 4
        try:
            if kind == "series":
                parts = [np.frombuffer(b"".join(os.pread(fd, 4, t * plane + y * row + x * 4)
                                                for t in range(shape[0])), "<f4")
                         for y, x in sel]
            else:
                ts, te, y0, y1, x0, x1 = sel
                planes = [np.frombuffer(os.pread(fd, (y1 - y0) * row, t * plane + y0 * row),
                                        "<f4").reshape(y1 - y0, shape[2])[:, x0:x1]
                          for t in range(ts, te)]
                parts = [np.stack(planes)]
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - t0
    for p in parts:
        h.update(np.ascontiguousarray(p, dtype="<f4").tobytes())
    return {"seconds": elapsed, "sha256": h.hexdigest()}


def read_peer(lib: str, kind: str, store: str, sel, open_reader) -> dict:
    """Worker side: the same selection read twice in-process by a peer; the second read is
    timed (the first pays imports, thread pools and codec set-up)."""
    import numpy as np

    _, read = open_reader(lib, store)

    def once():
        if kind == "series":
            return [np.asarray(read((slice(None), y, x))) for y, x in sel]
        ts, te, y0, y1, x0, x1 = sel
        return [np.asarray(read((slice(ts, te), slice(y0, y1), slice(x0, x1))))]

    once()
    t0 = time.perf_counter()
    parts = once()
    elapsed = time.perf_counter() - t0
    h = hashlib.sha256()
    for p in parts:
        h.update(np.ascontiguousarray(p, dtype="<f4").tobytes())
    return {"seconds": elapsed, "sha256": h.hexdigest()}


def write_slab_mount(mount: str, sel, seed: int) -> dict:
    """Worker side: writes new values into the slab through ``numpy.memmap`` of
    ``data.npy`` (r+), then flushes and fsyncs; returns the time and the values' hash."""
    import numpy as np

    ts, te, y0, y1, x0, x1 = sel
    path = os.path.join(mount, "data.npy")
    a = np.load(path, mmap_mode="r+")
    x = slab_values(seed, (te - ts, y1 - y0, x1 - x0))
    t0 = time.perf_counter()
    a[ts:te, y0:y1, x0:x1] = x
    a.flush()
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - t0
    del a
    return {"seconds": elapsed, "sha256": hashlib.sha256(x.tobytes()).hexdigest()}


def write_slab_peer(lib: str, store: str, sel, seed: int) -> dict:
    """Worker side: a peer writes the same values into the slab of ``store`` in-process."""
    ts, te, y0, y1, x0, x1 = sel
    x = slab_values(seed, (te - ts, y1 - y0, x1 - x0))
    index = (slice(ts, te), slice(y0, y1), slice(x0, x1))
    if lib == "tensorstore":
        import tensorstore as ts_

        arr = ts_.open({"driver": "zarr", "kvstore": {"driver": "file", "path": store}},
                       read=True, write=True).result()
        t0 = time.perf_counter()
        arr[index].write(x).result()
    else:
        import zarr

        arr = zarr.open_array(store, mode="r+")
        t0 = time.perf_counter()
        arr[index] = x
    return {"seconds": time.perf_counter() - t0,
            "sha256": hashlib.sha256(x.tobytes()).hexdigest()}


def slab_values(seed: int, shape) -> "np.ndarray":
    import numpy as np

    return np.random.default_rng(seed).normal(0, 1, shape).astype("<f4")


def read_slab_back(store: str, sel) -> str:
    """SHA-256 of the slab of ``store`` as zarr-python reads it."""
    import numpy as np
    import zarr

    ts, te, y0, y1, x0, x1 = sel
    v = zarr.open_array(store, mode="r")[ts:te, y0:y1, x0:x1]
    return hashlib.sha256(np.ascontiguousarray(v, dtype="<f4").tobytes()).hexdigest()


def worker(task: dict, open_reader) -> dict:
    """Runs one ``pattern_*`` op of bench.py's worker."""
    op, sel = task["op"], task.get("sel")
    if isinstance(sel, list) and sel and isinstance(sel[0], list):
        sel = [tuple(p) for p in sel]
    if op == "pattern_mount":
        return read_mount(task["via"], task["kind"], task["mount"], tuple(task["shape"]), sel)
    if op == "pattern_peer":
        return read_peer(task["lib"], task["kind"], task["store"], sel, open_reader)
    if op == "pattern_write_mount":
        return write_slab_mount(task["mount"], sel, task["seed"])
    if op == "pattern_write_peer":
        return write_slab_peer(task["lib"], task["store"], sel, task["seed"])
    if op == "pattern_read_back":
        return {"sha256": read_slab_back(task["store"], sel)}
    raise ValueError(f"unknown worker op {op}")


def copy_store(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def median(values):
    import statistics

    return statistics.median(values) if values else float("nan")


def ratio(a, b):
    return a / b if a and b else None


def run_reads(bench, name: str, Mount, run_worker) -> dict:
    """Cold (fresh mount) and warm (same mount, new process) reads of every scenario under
    every mount configuration, alternated with the peers round by round; chunks decoded
    from ``.zarrfs/stats``."""
    spec = bench.specs[name]
    store = bench.store_path(name)
    shape = spec.shape
    sels = selections(shape)
    out: dict = {}
    for key, label, via, kind in SCENARIOS:
        sel = sels[kind]
        res = {"label": label, "via": via, "kind": kind,
               "touched": chunks_touched(shape, spec.chunks, kind, sel, False),
               "touched_pages": chunks_touched(shape, spec.chunks, kind, sel,
                                               whole_rows=(via, kind) != ("pread", "series")),
               "mounts": {}, "peers": {}}
        runs = {m: {"cold": [], "warm": [], "decoded": [], "warm_decoded": [], "sha": set()}
                for m, *_ in MOUNTS}
        peers = {lib: [] for lib in ("zarr", "tensorstore")}
        for _ in range(bench.repeats):
            for mkey, _, args in MOUNTS:
                bench.warm(name)
                with Mount(bench, store, *args) as m:
                    task = {"op": "pattern_mount", "via": via, "kind": kind,
                            "mount": str(m.path), "shape": list(shape), "sel": sel}
                    s0 = m.stats()
                    cold = run_worker(task)
                    s1 = m.stats()
                    warm = run_worker(task)
                    s2 = m.stats()
                r = runs[mkey]
                for got in (cold, warm):
                    if "error" in got:
                        raise bench.error(f"{key} through the mount: {got['error']}")
                    r["sha"].add(got["sha256"])
                r["cold"].append(cold["seconds"])
                r["warm"].append(warm["seconds"])
                r["decoded"].append(s1["chunks_decoded"] - s0["chunks_decoded"])
                r["warm_decoded"].append(s2["chunks_decoded"] - s1["chunks_decoded"])
                r.setdefault("requests", []).append(s1["read_requests"] - s0["read_requests"])
            for lib in peers:
                peers[lib].append(run_worker({"op": "pattern_peer", "lib": lib, "kind": kind,
                                              "store": str(store), "sel": sel}))
        expected = None
        for lib, got in peers.items():
            errors = [g["error"] for g in got if "error" in g]
            if errors:
                res["peers"][lib] = {"error": errors[0]}
                continue
            res["peers"][lib] = {"seconds": median([g["seconds"] for g in got]),
                                 "times": [g["seconds"] for g in got]}
            if lib == "zarr":
                expected = got[0]["sha256"]
        for mkey, r in runs.items():
            if expected and r["sha"] != {expected}:
                raise bench.error(f"{key}: values read through the mount differ from "
                                  "zarr-python's")
            res["mounts"][mkey] = {
                "cold": median(r["cold"]), "warm": median(r["warm"]),
                "cold_times": r["cold"], "warm_times": r["warm"],
                "decoded": median(r["decoded"]), "warm_decoded": median(r["warm_decoded"]),
                "requests": median(r["requests"])}
        out[key] = res
        bench.log(f"{name} {key}: " + ", ".join(
            f"{m} cold {v['cold']:.3f}s warm {v['warm']:.3f}s decoded {v['decoded']:.0f}"
            for m, v in res["mounts"].items()) + ", " + ", ".join(
            f"{lib} {v.get('seconds', float('nan')):.3f}s" for lib, v in res["peers"].items())
            + f"; touched {res['touched']} ({res['touched_pages']} by pages)")
    return out


def run_writes(bench, name: str, Mount, run_worker) -> dict:
    """The slab written through numpy.memmap + fsync on a writable mount of a copy of the
    cube, against zarr-python's and tensorstore's ``a[sel] = x`` on copies; alternated round
    by round, each on a fresh copy."""
    spec = bench.specs[name]
    src = bench.store_path(name)
    sel = selections(spec.shape)["slab"]
    scratch = bench.work / "write" / f"{name}-slab.zarr"
    times = {"zarrfs": [], "zarr": [], "tensorstore": []}
    decoded, roundtrip = [], True
    for rep in range(bench.repeats):
        copy_store(src, scratch)
        bench.warm(name)
        with Mount(bench, scratch, *bench.rw_args) as m:
            s0 = m.stats()
            got = run_worker({"op": "pattern_write_mount", "mount": str(m.path), "sel": sel,
                              "seed": rep})
            s1 = m.stats()
        if "error" in got:
            raise bench.error(f"memmap slab write: {got['error']}")
        times["zarrfs"].append(got["seconds"])
        decoded.append(s1["chunks_decoded"] - s0["chunks_decoded"])
        back = run_worker({"op": "pattern_read_back", "store": str(scratch), "sel": sel})
        roundtrip &= back.get("sha256") == got["sha256"]
        for lib in ("zarr", "tensorstore"):
            copy_store(src, scratch)
            res = run_worker({"op": "pattern_write_peer", "lib": lib, "store": str(scratch),
                              "sel": sel, "seed": rep})
            times[lib].append(res.get("seconds", float("nan")) if "error" not in res
                              else float("nan"))
    shutil.rmtree(scratch, ignore_errors=True)
    if not roundtrip:
        raise bench.error("slab written through memmap reads back differently in zarr-python")
    out = {k: {"seconds": median(v), "times": v} for k, v in times.items()}
    out["decoded"] = median(decoded)
    out["touched"] = chunks_touched(spec.shape, spec.chunks, "slab", sel, False)
    out["touched_pages"] = chunks_touched(spec.shape, spec.chunks, "slab", sel, True)
    bench.log(f"{name} memmap slab write + fsync {out['zarrfs']['seconds']:.3f}s, zarr "
              f"{out['zarr']['seconds']:.3f}s, tensorstore {out['tensorstore']['seconds']:.3f}s; "
              f"decoded {out['decoded']:.0f}")
    return out


def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def report(r: dict) -> list[str]:
    """The report section of the access-pattern scenarios."""
    pat = r.get("patterns") or {}
    if not pat:
        return []
    L = ["## Slabs, time series and tiles (scenario 9)", ""]
    add = L.append
    for name, res in pat.items():
        reads = res.get("reads", {})
        d = r["datasets"].get(name, {})
        add(f"On {name} ({'×'.join(map(str, d.get('shape', [])))} float32 in "
            f"{'×'.join(map(str, d.get('chunks', [])))} chunks, blosc lz4). Cold: a fresh mount "
            "per run, store files in the page cache; warm: the same selection again in a new "
            "process on the same mount. zarr-python and tensorstore read the same selection "
            "in-process (the second of two reads in a fresh process). Chunks touched: those "
            "the selection intersects, and (mmap) those of the 4 KiB pages it lies in: a page "
            "is a whole row along x, 8 chunks wide, so mmap cannot touch fewer. Values are "
            "compared with zarr-python's.")
        add("")
        add("| scenario | mount | cold s | warm s | zarr-python s | tensorstore s | cold ÷ zarr-python "
            "| cold ÷ tensorstore | warm ÷ zarr-python | chunks decoded cold (warm) | chunks "
            "touched: selection / pages | requests |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
        for key, s in reads.items():
            zp = s["peers"].get("zarr", {}).get("seconds")
            tp = s["peers"].get("tensorstore", {}).get("seconds")
            for mkey, label, _ in MOUNTS:
                v = s["mounts"].get(mkey)
                if not v:
                    continue
                add(f"| {s['label']} | {label} | {fmt(v['cold'])} | {fmt(v['warm'])} | {fmt(zp)} | "
                    f"{fmt(tp)} | {fmt(ratio(v['cold'], zp), 2)} | {fmt(ratio(v['cold'], tp), 2)} | "
                    f"{fmt(ratio(v['warm'], zp), 2)} | {v['decoded']:.0f} ({v['warm_decoded']:.0f}) | "
                    f"{s['touched']} / {s['touched_pages']} | {v['requests']:.0f} |")
        add("")
        w = res.get("writes")
        if w:
            add("**Slab writes**: new values into the same slab through `numpy.memmap` of "
                "`data.npy` (r+) on a writable mount of a copy of the cube, then `flush` and "
                "`fsync` (timed from the assignment to the end of `fsync`), against "
                "zarr-python's and tensorstore's `a[sel] = x` on copies. The values are read "
                "back with zarr-python.")
            add("")
            add("| writer | s | ÷ zarr-python | chunks decoded | chunks touched: selection / pages |")
            add("|---|---:|---:|---:|---|")
            zp = w["zarr"]["seconds"]
            add(f"| zarrfs memmap + fsync | {fmt(w['zarrfs']['seconds'])} | "
                f"{fmt(ratio(w['zarrfs']['seconds'], zp), 2)} | {w['decoded']:.0f} | "
                f"{w['touched']} / {w['touched_pages']} |")
            add(f"| zarr-python `a[sel] = x` | {fmt(zp)} | 1.00 | | |")
            add(f"| tensorstore | {fmt(w['tensorstore']['seconds'])} | "
                f"{fmt(ratio(w['tensorstore']['seconds'], zp), 2)} | | |")
            add("")
    return L


def targets(r: dict, add) -> None:
    """The targets of the access-pattern scenarios (default read-only mount), through
    ``add(name, measured, limit, ok, detail)``."""
    for name, res in (r.get("patterns") or {}).items():
        for key, s in res.get("reads", {}).items():
            v = s["mounts"].get("ro")
            if not v:
                continue
            zp = s["peers"].get("zarr", {}).get("seconds")
            tp = s["peers"].get("tensorstore", {}).get("seconds")
            touched = s["touched_pages"]
            q = v["decoded"] / max(1, touched)
            add(f"{name} {key}: chunks decoded ≤ 1.2× chunks touched", q, 1.2, q <= 1.2,
                f"{v['decoded']:.0f} decoded, {touched} touched ({s['touched']} by the "
                "selection)")
            for what, t, limit, peer, label in (
                    ("cold", v["cold"], 0.8, zp, "zarr-python"),
                    ("cold", v["cold"], 1.0, tp, "tensorstore"),
                    ("warm", v["warm"], 0.2, zp, "zarr-python")):
                q = ratio(t, peer)
                add(f"{name} {key}: {what} ≤ {limit}× {label}", q, limit,
                    None if q is None else q <= limit, f"{fmt(t)} s vs {fmt(peer)} s")
        w = res.get("writes")
        if w:
            q = ratio(w["zarrfs"]["seconds"], w["zarr"]["seconds"])
            add(f"{name} memmap slab write + fsync ≤ 1.0× zarr-python `a[sel] = x`", q, 1.0,
                None if q is None else q <= 1.0,
                f"{fmt(w['zarrfs']['seconds'])} s vs {fmt(w['zarr']['seconds'])} s")
