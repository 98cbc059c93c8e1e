"""Conformance corpus: stores other Zarr projects committed, read through zarrfs and
compared view by view with zarr-python (see tests/conformance/README.md).

One test per store: the store is copied to a temp dir, mounted read-only, and every array
found in it (its .zarray / zarr.json, or an entry of consolidated metadata) is read with
zarr-python (directly, else through the consolidated metadata) and through the mount.
Each array is classified

    exact                      every view equals zarr-python's values
    wrong                      some view differs (always a failure)
    missing                    not in the mount (or the mount of the store failed)
    eio                        in the mount, but reads fail with EIO
    unreadable-by-zarr-python  zarr-python cannot open or read it; zarrfs must then
                               leave it out or fail its reads with EIO

and compared with the `expect` recorded in tests/conformance/manifest.json: a store test
fails when an array expected `exact` is not, on any `wrong`, on an array missing from or
unknown to the manifest, and when the daemon dies. An array that became `exact` is only
reported, so that its `expect` can be raised. test_summary prints the totals and writes a
JSON report; `python tests/interop/test_conformance.py --update-manifest REPORT` copies
the observed statuses of a report into the manifest.
"""

from __future__ import annotations

import base64
import errno
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from conftest import (
    REPO,
    Mount,
    c_order,
    chunk_indices,
    chunk_name,
    chunk_region,
    copy_store,
    expected_chunk,
    mismatch,
    read_bytes,
)

CORPUS = REPO / "tests" / "conformance"
MANIFEST_PATH = CORPUS / "manifest.json"
MANIFEST = json.loads(MANIFEST_PATH.read_text())
EXACT, WRONG, MISSING, EIO, UNREADABLE = "exact", "wrong", "missing", "eio", "unreadable-by-zarr-python"
FAILED_MOUNT_PREFIX = "mount failed: "

RESULTS: dict[str, dict] = {}  # store path -> observed result, filled by test_store


# ----------------------------------------------------------------------------
# what zarr-python says
# ----------------------------------------------------------------------------


@dataclass
class Ref:
    """One array as zarr-python reads it; `error` set when it cannot."""

    path: str
    reach: list[str] = field(default_factory=list)  # "metadata", "group walk", "consolidated"
    error: str | None = None
    values: np.ndarray | None = None  # declared dtype, C order (object/str for vlen)
    vlen: bool = False
    chunks: tuple = ()  # the chunk files' shape: inner chunks of sharded arrays
    fill: Any = None
    attrs: dict = field(default_factory=dict)
    features: str = ""


def _load_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def metadata_arrays(store: Path, fmt: int) -> dict[str, str]:
    """Array paths named by metadata files: .zarray / zarr.json on disk, and entries of
    consolidated metadata (.zmetadata, or a v3 group's inline consolidated_metadata)."""
    found: dict[str, str] = {}
    for root, _dirs, files in os.walk(store):
        rel = Path(root).relative_to(store).as_posix()
        base = "" if rel == "." else rel + "/"
        if fmt == 2:
            if ".zarray" in files:
                found[base.rstrip("/")] = "metadata"
            cons = _load_json(Path(root) / ".zmetadata") if ".zmetadata" in files else None
            for key in (cons or {}).get("metadata", {}):
                if key == ".zarray" or key.endswith("/.zarray"):
                    found.setdefault((base + key[: -len(".zarray")]).rstrip("/"), "consolidated")
        elif "zarr.json" in files:
            meta = _load_json(Path(root) / "zarr.json")
            if not isinstance(meta, dict) or meta.get("node_type") != "group":
                found[base.rstrip("/")] = "metadata"
            cons = (meta or {}).get("consolidated_metadata") or {}
            for key, node in (cons.get("metadata") or {}).items():
                if isinstance(node, dict) and node.get("node_type") == "array":
                    found.setdefault(base + key, "consolidated")
    return found


def group_walk_reaches(zstore, path: str, fmt: int, opened: dict[str, bool]) -> bool:
    """Does a walk of groups from the root reach `path`: does zarr-python open every
    ancestor as a group? (Per ancestor, so that one unreadable sibling does not hide the
    rest, as it would in Group.members.) `opened` caches the answers."""
    if not path:
        return False
    parts = path.split("/")
    for i in range(len(parts)):
        gp = "/".join(parts[:i])
        if gp not in opened:
            try:
                zarr.open_group(zstore, path=gp, mode="r", zarr_format=fmt, use_consolidated=False)
                opened[gp] = True
            except Exception:  # noqa: BLE001 - no group there (implicit), or unreadable
                opened[gp] = False
        if not opened[gp]:
            return False
    return True


def consolidated_arrays(zstore, store: Path, fmt: int) -> dict[str, Any]:
    """The arrays zarr-python resolves through consolidated metadata (path -> zarr.Array)."""
    consolidated: dict[str, Any] = {}
    marker = ".zmetadata" if fmt == 2 else "zarr.json"
    for meta_file in sorted(store.rglob(marker)):
        rel = meta_file.parent.relative_to(store).as_posix()
        gpath = "" if rel == "." else rel
        try:
            g = zarr.open_group(zstore, path=gpath, mode="r", zarr_format=fmt, use_consolidated=True)
            cm = g.metadata.consolidated_metadata
            for key in cm.flattened_metadata if cm is not None else ():
                try:
                    node = g[key]
                except Exception:  # noqa: BLE001
                    continue
                if isinstance(node, zarr.Array):
                    consolidated.setdefault(f"{gpath}/{key}".strip("/"), node)
        except Exception:  # noqa: BLE001 - not a group, or no consolidated metadata
            continue
    return consolidated


def _codec_names(meta: dict) -> list[str]:
    """Codec/filter/compressor ids of an array's metadata document, inner codecs included."""
    out: list[str] = []

    def walk(c: Any) -> None:
        if isinstance(c, dict):
            name = c.get("name") or c.get("id")
            if name:
                out.append(str(name))
            for sub in ("codecs", "index_codecs"):
                for x in (c.get("configuration") or {}).get(sub, []) or []:
                    walk(x)

    for c in (meta.get("filters") or []) + [meta.get("compressor")] + list(meta.get("codecs") or []):
        walk(c)
    return out


def _bytes_endian(codecs: Any) -> str | None:
    """The `endian` of the array's bytes codec (the inner one of a sharded array)."""
    for c in codecs or []:
        if not isinstance(c, dict):
            continue
        cfg = c.get("configuration") or {}
        if c.get("name") == "bytes":
            return cfg.get("endian")
        if c.get("name") == "sharding_indexed":
            return _bytes_endian(cfg.get("codecs"))
    return None


def reference(zstore, path: str, fmt: int, consolidated: dict[str, Any]) -> Ref:
    ref = Ref(path)
    try:
        try:
            arr = zarr.open_array(zstore, path=path, mode="r", zarr_format=fmt)
        except Exception:
            if path not in consolidated:
                raise
            arr = consolidated[path]
        meta = arr.metadata.to_dict()
        dt = arr.dtype
        ref.vlen = not isinstance(dt, np.dtype) or dt.kind in "OT"
        if not ref.vlen and fmt == 3 and dt.itemsize > 1 and dt.kind not in "bV":
            endian = _bytes_endian(meta.get("codecs"))
            dt = dt.newbyteorder({"big": ">", "little": "<"}.get(endian, "="))
        values = np.asarray(arr[...])
        ref.values = values if ref.vlen else c_order(values).astype(dt)
        ref.chunks = tuple(arr.chunks)
        fill = arr.fill_value
        ref.fill = None if ref.vlen else np.asarray(0 if fill is None else fill).astype(dt)
        ref.attrs = dict(arr.attrs.asdict())
        dtype_name = meta.get("dtype") or meta.get("data_type")
        ref.features = (f"v{fmt} dtype {dtype_name if isinstance(dtype_name, str) else json.dumps(dtype_name)}"
                        f" codecs [{', '.join(_codec_names(meta))}]")
    except Exception as e:  # noqa: BLE001 - anything zarr-python cannot open or read
        ref.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return ref


def numcodecs_reference(store: Path, path: str) -> Ref:
    """A v2 array as zarr-python 2 read it, chunk by chunk through numcodecs (compressor,
    then the filters in reverse), for arrays zarr-python 3 no longer reads (the manifest's
    `"reference": "numcodecs"`, with a note)."""
    import numcodecs

    ref = Ref(path)
    zarray = json.loads((store / path / ".zarray").read_text())
    dt = np.dtype(zarray["dtype"]) if isinstance(zarray["dtype"], str) else np.dtype([tuple(f) for f in zarray["dtype"]])
    shape, chunks = tuple(zarray["shape"]), tuple(zarray["chunks"])
    sep = zarray.get("dimension_separator") or "."
    values = np.empty(shape, dtype=dt)
    values[...] = zarray["fill_value"]
    for idx in chunk_indices(shape, chunks):
        key = store / path / sep.join(map(str, idx)) if idx else store / path / "0"
        if not key.is_file():
            continue
        data = key.read_bytes()
        if zarray.get("compressor"):
            data = numcodecs.get_codec(zarray["compressor"]).decode(data)
        for f in reversed(zarray.get("filters") or []):
            data = numcodecs.get_codec(f).decode(data)
        chunk = np.asarray(data).reshape(chunks, order=zarray.get("order", "C"))
        region = chunk_region(idx, shape, chunks)
        values[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    ref.values, ref.chunks, ref.vlen = values, chunks, dt.kind == "O"
    ref.fill = None if ref.vlen else np.asarray(zarray["fill_value"] or 0).astype(dt)
    za = store / path / ".zattrs"
    ref.attrs = json.loads(za.read_text()) if za.exists() else {}
    ref.features = f"v2 dtype {zarray['dtype']} (read through numcodecs)"
    return ref


# ----------------------------------------------------------------------------
# what the mount says
# ----------------------------------------------------------------------------


def nan_equal(a: Any, b: Any) -> bool:
    """JSON values equal, NaN == NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(nan_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def jsonl_value(x: Any) -> Any:
    """An element as data.jsonl holds it: strings as is, bytes as base64."""
    if isinstance(x, bytes):
        return base64.b64encode(x).decode()
    if isinstance(x, np.ndarray):  # vlen-array elements
        return x.tolist()
    return x.item() if isinstance(x, np.generic) else x


class Problems:
    """Collects what differs, classified: an EIO is `eio`, anything else `wrong`."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def run(self, what: str, fn) -> None:
        try:
            msg = fn()
        except OSError as e:
            kind = EIO if e.errno == errno.EIO else WRONG
            self.items.append((kind, f"{what}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}"))
            return
        except Exception as e:  # noqa: BLE001 - e.g. a bad NPY header or JSON
            self.items.append((WRONG, f"{what}: {type(e).__name__}: {e}"))
            return
        if msg:
            self.items.append((WRONG, f"{what}: {msg}"))

    def status(self, declared_unreadable: bool = False) -> str:
        """`wrong` when a view served differing content; `eio` when the array's contents are
        refused: reads fail with EIO, or meta.json declares the array `unsupported` (then what
        its listing says of the unreadable array is reported, not counted as wrong bytes)."""
        kinds = {k for k, _ in self.items}
        served = [what for k, what in self.items if k == WRONG and not what.startswith(("listing", "meta"))
                  and "ENOENT" not in what]
        if declared_unreadable and not served:
            return EIO
        if EIO in kinds and all(k == EIO or not what.startswith(("data", "chunks"))
                                for k, what in self.items):
            return EIO
        return WRONG if WRONG in kinds else EIO if EIO in kinds else EXACT


def check_array(adir: Path, ref: Ref) -> Problems:
    """Compare every view of one mounted array with zarr-python's reading."""
    p = Problems()
    exp = ref.values
    shape = exp.shape

    def listing() -> str | None:
        names = set(os.listdir(adir))
        want = {"data.jsonl"} if ref.vlen else {"data", "data.npy", "chunks"}
        want |= {"meta.json", "attrs.json"}
        unwanted = {"data", "data.npy"} & names if ref.vlen else set()
        if not want <= names or unwanted:
            return f"listing {sorted(names)}: lacks {sorted(want - names)}, should not have {sorted(unwanted)}"
        return None

    # Files are read with read() before anything maps them: a page that fails with EIO
    # under mmap is a SIGBUS, which would end the test run instead of classifying the array.
    def data() -> str | None:
        size = os.stat(adir / "data").st_size
        raw = read_bytes(adir / "data")
        if size != exp.nbytes or len(raw) != exp.nbytes:
            return f"st_size {size}, read {len(raw)} bytes, expected {exp.nbytes}"
        return mismatch(np.frombuffer(raw, exp.dtype).reshape(shape), exp)

    def npy() -> str | None:
        read_bytes(adir / "data.npy")
        m = np.load(adir / "data.npy", mmap_mode="r")
        try:
            return mismatch(c_order(m), exp)
        finally:
            del m

    def chunks() -> str | None:
        want = [chunk_name(i) for i in chunk_indices(shape, ref.chunks)]
        names = set(os.listdir(adir / "chunks"))
        if names != set(want):
            return f"listing: missing {sorted(set(want) - names)[:5]}, unexpected {sorted(names - set(want))[:5]}"
        for idx in chunk_indices(shape, ref.chunks):
            ec = expected_chunk(exp, idx, ref.chunks, ref.fill)
            raw = read_bytes(adir / "chunks" / chunk_name(idx))
            if len(raw) != ec.nbytes:
                return f"{chunk_name(idx)}: {len(raw)} bytes, expected {ec.nbytes}"
            m = mismatch(np.frombuffer(raw, exp.dtype).reshape(ec.shape), ec)
            if m:
                return f"{chunk_name(idx)}: {m}"
        return None

    def jsonl() -> str | None:
        lines = read_bytes(adir / "data.jsonl").decode().splitlines()
        want = [jsonl_value(x) for x in exp.reshape(-1)]
        got = [json.loads(line) for line in lines]
        if got != want:
            i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
            return f"{len(got)} lines for {len(want)} elements; first difference at {i}"
        return None

    def meta() -> str | None:
        m = json.loads(read_bytes(adir / "meta.json"))
        want = {"shape": list(shape), "chunks": list(ref.chunks)}
        if not ref.vlen:
            want["dtype"] = exp.dtype.str
        bad = {k: m.get(k) for k, v in want.items() if m.get(k) != v}
        return f"{bad} != {({k: want[k] for k in bad})}" if bad else None

    def attrs() -> str | None:
        got = json.loads(read_bytes(adir / "attrs.json"))
        return None if nan_equal(got, ref.attrs) else f"{got!r} != {ref.attrs!r}"

    p.run("listing", listing)
    views = [("data.jsonl", jsonl)] if ref.vlen else [("data", data), ("data.npy", npy), ("chunks", chunks)]
    for what, fn in views + [("meta.json", meta), ("attrs.json", attrs)]:
        p.run(what, fn)
    return p


def declares_unsupported(adir: Path) -> bool:
    """Whether the array's meta.json says zarrfs cannot read it."""
    try:
        return "unsupported" in json.loads(read_bytes(adir / "meta.json"))
    except (OSError, ValueError):
        return False


def read_cleanly(adir: Path) -> str:
    """How zarrfs treats an array zarr-python cannot read: 'absent' or 'eio' (clean), or
    'served' / 'error ...' (a failure: nothing can check what it serves)."""
    if not adir.is_dir():
        return "absent"
    for name in ("data", "data.jsonl"):
        if (adir / name).exists():
            try:
                read_bytes(adir / name)
            except OSError as e:
                return "eio" if e.errno == errno.EIO else f"error {errno.errorcode.get(e.errno, e.errno)}"
            return "served"
    return "absent"


def log_reason(log: Path, store: Path, path: str) -> str | None:
    """The last zarrfs log line naming the array, without timestamp and path."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    key = str(store / path) + "/" if path else str(store) + "/"
    hits = [ln.split(key, 1)[1] for ln in lines if key in ln and (" WARN " in ln or " ERROR " in ln)]
    return re.sub(r"^\S*: ", "", hits[-1]) if hits else None


# ----------------------------------------------------------------------------
# the tests
# ----------------------------------------------------------------------------


def told_copy(store: Path, path: str, told: dict, dest: Path) -> Path:
    """A copy of one v2 array with `told` merged into its .zarray, for zarr-python to read
    (the manifest's `zarr_python_metadata`: what zarr-python must be told to read an array
    as its writer meant, e.g. the key separator of a legacy nested store)."""
    copy_store(store / path, dest / path)
    zarray = dest / path / ".zarray"
    zarray.write_text(json.dumps({**json.loads(zarray.read_text()), **told}))
    return dest


def zarr_python_copy(store: Path, entry: dict, base: Path) -> Path:
    """The store as zarr-python reads it: the store itself, or (the manifest's
    `zarr_python_store_files`, with a `note`) a copy with documents added that zarr-python needs
    to open it as its writer meant, e.g. the root `.zgroup` of a store holding only
    consolidated metadata, which zarrfs opens without."""
    added = entry.get("zarr_python_store_files")
    if not added:
        return store
    copy = copy_store(store, base / "zarr-python-store")
    for name, doc in added.items():
        (copy / name).write_text(json.dumps(doc))
    return copy


def _mount(store: Path, base: Path, zarrfs: Path) -> tuple[Mount | None, str | None]:
    """Mount read-only; a failed mount is a result (every array missing), not an error."""
    m = Mount(store, base / "mnt", base / "zarrfs.log", zarrfs, ["--read-only"])
    try:
        return m.start(), None
    except pytest.fail.Exception as e:
        text = str(e)
        stderr = text.split("stderr:\n", 1)[1].split("\nlog:", 1)[0].strip() if "stderr:\n" in text else text
        return None, stderr.splitlines()[-1] if stderr else text.splitlines()[0]


@pytest.mark.filterwarnings("ignore")  # zarr-python's warnings about the stores' codecs and dtypes
@pytest.mark.parametrize("entry", MANIFEST, ids=[e["path"].removeprefix("stores/") for e in MANIFEST])
def test_store(entry, zarrfs, tmp_path):
    store = copy_store(CORPUS / entry["path"], tmp_path / "store")
    fmt = entry["zarr_format"]
    zstore = LocalStore(str(zarr_python_copy(store, entry, tmp_path)), read_only=True)
    found = metadata_arrays(store, fmt)
    consolidated = consolidated_arrays(zstore, store, fmt)
    opened: dict[str, bool] = {}
    refs: dict[str, Ref] = {}
    for path in sorted(set(found) | set(consolidated)):
        told = entry["arrays"].get(path, {}).get("zarr_python_metadata")
        rstore = LocalStore(str(told_copy(store, path, told, tmp_path / "told")), read_only=True) if told else zstore
        if entry["arrays"].get(path, {}).get("reference") == "numcodecs":
            ref = numcodecs_reference(store, path)
        else:
            ref = reference(rstore, path, fmt, consolidated)
        ref.reach = [r for r, hit in (("metadata", found.get(path) == "metadata"),
                                      ("group walk", group_walk_reaches(zstore, path, fmt, opened)),
                                      ("consolidated", path in consolidated or found.get(path) == "consolidated"))
                     if hit]
        refs[path] = ref

    mount, mount_error = _mount(store, tmp_path, zarrfs)
    mount_error = mount_error and mount_error.replace(str(store), "<store>")
    expected = entry["arrays"]
    observed: dict[str, dict] = {}
    failures: list[str] = []
    try:
        for path, ref in refs.items():
            adir = mount.mnt / path if mount else None
            obs: dict[str, Any] = {"reach": ref.reach, "features": ref.features}
            if ref.error is not None:
                obs["status"], obs["reason"] = UNREADABLE, ref.error
                if mount:
                    obs["zarrfs"] = read_cleanly(adir)
                    if obs["zarrfs"] not in ("absent", "eio"):
                        failures.append(f"{path}: zarr-python cannot read it, and zarrfs does not fail cleanly "
                                        f"(left out or EIO) but: {obs['zarrfs']}")
            elif mount is None:
                obs["status"], obs["reason"] = MISSING, FAILED_MOUNT_PREFIX + mount_error
            elif not adir.is_dir():
                obs["status"] = MISSING
                obs["reason"] = log_reason(mount.log, store, path) or "not in the mount"
            else:
                problems = check_array(adir, ref)
                obs["status"] = problems.status(declared_unreadable=declares_unsupported(adir))
                if problems.items:
                    obs["reason"] = "; ".join(m for _, m in problems.items)[:600]
                    if obs["status"] == EIO:
                        obs["reason"] = log_reason(mount.log, store, path) or obs["reason"]
            if "reason" in obs:  # no temp paths in reports (nor in the manifest)
                obs["reason"] = obs["reason"].replace(str(store), "<store>").replace(str(tmp_path), "<tmp>")
            if "zarr_python_metadata" in expected.get(path, {}):
                obs["zarr_python_metadata"] = expected[path]["zarr_python_metadata"]
            observed[path] = obs
        if mount is not None:
            try:
                read_bytes(mount.mnt / ".zarrfs" / "stats")
                alive = os.path.ismount(mount.mnt)
            except OSError:
                alive = False
            if not alive:
                failures.append(f"the zarrfs daemon died\nlog:\n{mount.log.read_text(errors='replace')[-3000:]}")
    finally:
        if mount is not None:
            mount.stop()

    notes = []
    if not observed:
        failures.append(f"no v{fmt} array found in the store")
    for path in sorted(set(expected) - set(observed)):
        failures.append(f"{path or '<root>'}: in the manifest but not found in the store")
    for path, obs in observed.items():
        want = expected.get(path, {}).get("expect")
        got = obs["status"]
        name = path or "<root>"
        if want is None:
            failures.append(f"{name}: not in the manifest (observed {got})")
        elif got == WRONG or (want == EXACT and got != EXACT):
            failures.append(f"{name}: expected {want}, got {got}: {obs.get('reason', '')}")
        elif got != want:
            notes.append(f"{name}: expected {want}, now {got}" + (" (raise its expect)" if got == EXACT else ""))
    RESULTS[entry["path"]] = {"mount_error": mount_error, "arrays": observed, "notes": notes}
    assert not failures, f"{entry['path']}:\n" + "\n".join(failures)


def test_summary(request, tmp_path_factory):
    """Totals over the stores tested in this session, and a JSON report."""
    if not RESULTS:
        pytest.skip("no store was tested")
    arrays = [(store, path, obs) for store, r in RESULTS.items() for path, obs in r["arrays"].items()]
    exact = sum(obs["status"] == EXACT for _, _, obs in arrays)
    lines = [f"conformance: {exact}/{len(arrays)} arrays exact ({len(RESULTS)} stores)"]
    counts: dict[str, int] = {}
    for _, _, obs in arrays:
        counts[obs["status"]] = counts.get(obs["status"], 0) + 1
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for store, path, obs in arrays:
        if obs["status"] != EXACT:
            tags = [f"zarrfs: {obs['zarrfs']}"] if "zarrfs" in obs else []
            if path and "group walk" not in obs["reach"]:
                tags.append(f"reached only through {' and '.join(obs['reach'])}")
            lines.append(f"  {obs['status']:<9} {store.removeprefix('stores/')}:{path or '<root>'}: "
                         f"{obs.get('reason', '')}" + "".join(f" [{t}]" for t in tags))
    for store, path, obs in arrays:
        if "zarr_python_metadata" in obs:
            lines.append(f"  note {store.removeprefix('stores/')}:{path or '<root>'}: {obs['status']} against zarr-python told "
                         f"{json.dumps(obs['zarr_python_metadata'])} (see its note in the manifest)")
    for store, r in RESULTS.items():
        lines += [f"  note {store.removeprefix('stores/')}:{n}" for n in r["notes"]]
    report = tmp_path_factory.getbasetemp() / "conformance-report.json"
    report.write_text(json.dumps(RESULTS, indent=1, default=str) + "\n")
    lines.append(f"report: {report}")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


def update_manifest(report_path: Path) -> None:
    """Copy the statuses observed in a report into the manifest's `expect` (and `reason`)
    fields; other per-array fields are kept."""
    report = json.loads(report_path.read_text())
    for entry in MANIFEST:
        r = report.get(entry["path"])
        if r is None:
            continue
        old = entry["arrays"]
        entry["arrays"] = {}
        for path, obs in sorted(r["arrays"].items()):
            kept = {k: v for k, v in old.get(path, {}).items() if k not in ("expect", "reason")}
            entry["arrays"][path] = {"expect": obs["status"], **({"reason": obs["reason"]} if "reason" in obs else {}),
                                     **kept}
    MANIFEST_PATH.write_text(dump_manifest(MANIFEST))


def dump_manifest(manifest: list[dict]) -> str:
    """The manifest as JSON, one line per field and per array."""
    def obj(items: dict, indent: str) -> str:
        body = ",\n".join(f"{indent}  {json.dumps(k)}: {v}" for k, v in items.items())
        return f"{{\n{body}\n{indent}}}" if body else "{}"

    entries = []
    for entry in manifest:
        fields = {k: json.dumps(v, ensure_ascii=False) for k, v in entry.items() if k != "arrays"}
        fields["arrays"] = obj({p: json.dumps(a, ensure_ascii=False) for p, a in entry["arrays"].items()}, "  ")
        entries.append(obj(fields, ""))
    return "[\n" + ",\n".join(entries) + "\n]\n"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--update-manifest":
        sys.exit("usage: test_conformance.py --update-manifest REPORT.json")
    update_manifest(Path(sys.argv[2]))
