"""Fixed-size dtypes beyond numbers, v2 and v3, through real mounts: datetime64 and
timedelta64 of any unit and multiplier, byte strings, UTF-32 text of both byte orders, raw
bytes and structured records (sub-array fields, nested records). Every view is compared with
zarr-python, fills included, and writes through the mount are read back by zarr-python."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import zarr

from conftest import chunk_indices, chunk_name, chunk_region, mismatch, read_array_file, read_bytes

warnings.filterwarnings("ignore", module="zarr")

DTYPES_V2 = [
    "<M8[ns]", ">M8[10ms]", "<M8[D]", "<m8[s]", ">m8[25us]",
    "|S5", "<U3", ">U2", "|V3",
    [("a", "<i4"), ("b", ">f8")],
]
DTYPES_V3 = ["<M8[ns]", "<M8[10ms]", "<m8[us]", "|S5", "<U3", "|V3", [("a", "<i2"), ("b", "<f4")],
             [("x", "|u1"), ("rec", [("p", "<i2"), ("q", "|S2")])]]


def sample(dt: np.dtype, shape, rng: np.random.Generator) -> np.ndarray:
    """Random values of any fixed-size dtype: random bytes, made valid where a type needs it."""
    n = int(np.prod(shape))
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    values = raw.view(dt).reshape(shape).copy()
    if dt.kind == "U":  # valid code points only
        chars = rng.integers(32, 0x2FF, size=(n, dt.itemsize // 4), dtype="<u4")
        values = chars.view(f"<U{dt.itemsize // 4}").reshape(shape).astype(dt)
    if dt.kind in "mM":
        values = rng.integers(-10**12, 10**12, size=n).astype(dt).reshape(shape)
        values.reshape(-1)[0] = np.array("NaT", dt)
    return values


def fill_for(dt: np.dtype):
    if dt.kind in "mM":
        return np.array(7, dt)[()]
    if dt.kind == "S":
        return b"ab"
    if dt.kind == "U":
        return "z"
    return None


def expected_chunk(full: np.ndarray, idx, chunks, fill: np.ndarray) -> np.ndarray:
    out = np.empty(tuple(chunks), dtype=full.dtype)
    out[...] = fill
    reg = chunk_region(idx, full.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in reg)] = full[reg]
    return out


def check_views(adir, arr, failures: list[str]) -> None:
    exp = np.array(arr[...])
    dt = np.dtype(arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else arr.dtype)
    exp = exp.astype(dt)
    got = read_array_file(adir / "data", exp.dtype, exp.shape)
    if (m := mismatch(got, exp)) is not None:
        failures.append(f"{adir.name} data: {m}")
    npy = np.load(adir / "data.npy")
    if npy.dtype != exp.dtype:
        failures.append(f"{adir.name} data.npy dtype {npy.dtype} != {exp.dtype}")
    elif (m := mismatch(npy, exp)) is not None:
        failures.append(f"{adir.name} data.npy: {m}")
    fill = np.array(arr.fill_value if arr.fill_value is not None else np.zeros((), dt), dtype=dt)
    for idx in chunk_indices(exp.shape, arr.chunks):
        data = read_bytes(adir / "chunks" / chunk_name(idx))
        want = expected_chunk(exp, idx, arr.chunks, fill)
        if data != want.tobytes():
            failures.append(f"{adir.name} chunk {chunk_name(idx)} differs")
    meta = json.loads(read_bytes(adir / "meta.json"))
    if meta["dtype"] != exp.dtype.str:
        failures.append(f"{adir.name} meta.json dtype {meta['dtype']} != {exp.dtype.str}")


def build(store, fmt: int, dtypes, rng) -> list[str]:
    root = zarr.open_group(str(store), mode="w", zarr_format=fmt)
    names = []
    for i, spec in enumerate(dtypes):
        dt = np.dtype(spec)
        name = f"a{i}"
        a = root.create_array(name, shape=(7, 5), chunks=(3, 2), dtype=dt, fill_value=fill_for(dt))
        values = sample(dt, (7, 5), rng)
        a[:6, :] = values[:6, :]  # the last row of chunks stays absent: fill value
        names.append(name)
    return names


@pytest.mark.parametrize("fmt", [2, 3])
def test_every_view_of_every_dtype_matches_zarr_python(fmt, tmp_path, mounter):
    rng = np.random.default_rng(fmt)
    store = tmp_path / "store.zarr"
    names = build(store, fmt, DTYPES_V2 if fmt == 2 else DTYPES_V3, rng)
    m = mounter(store, "--read-only")
    failures: list[str] = []
    for name in names:
        arr = zarr.open_array(str(store / name), mode="r", zarr_format=fmt)
        check_views(m / name, arr, failures)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("fmt", [2, 3])
def test_writes_of_every_dtype_are_read_back_by_zarr_python(fmt, tmp_path, mounter):
    rng = np.random.default_rng(10 + fmt)
    store = tmp_path / "store.zarr"
    dtypes = DTYPES_V2 if fmt == 2 else DTYPES_V3
    names = build(store, fmt, dtypes, rng)
    m = mounter(store, "--rw")
    expected = {}
    for name, spec in zip(names, dtypes):
        dt = np.dtype(spec)
        arr = zarr.open_array(str(store / name), mode="r", zarr_format=fmt)
        want = np.array(arr[...]).astype(dt)
        new = sample(dt, (4, 3), rng)
        want[2:6, 1:4] = new
        mm = np.load(m / name / "data.npy", mmap_mode="r+")
        assert mm.dtype == dt
        mm[2:6, 1:4] = new
        mm.flush()
        del mm
        expected[name] = want
    m.stop()
    failures = []
    for name, want in expected.items():
        got = np.array(zarr.open_array(str(store / name), mode="r", zarr_format=fmt)[...]).astype(want.dtype)
        if (msg := mismatch(got, want)) is not None:
            failures.append(f"{name} ({want.dtype}): {msg}")
    assert not failures, "\n".join(failures)


def test_sub_array_fields_and_padding_fills_as_numpy_lays_them_out(tmp_path, mounter):
    """Sub-array fields and nested records in v2 (zarr-python 2 wrote them; zarr-python 3
    reads neither): a store written by hand, compared with NumPy's layout of the values."""
    dt = np.dtype([("id", "<u2"), ("pos", ">f4", (2, 3)), ("tag", "|S3"), ("rec", [("p", "<i2"), ("q", "|S2")])])
    rng = np.random.default_rng(5)
    values = rng.integers(0, 256, size=5 * dt.itemsize, dtype=np.uint8).view(dt).reshape(5)
    fill = rng.integers(0, 256, size=dt.itemsize, dtype=np.uint8).view(dt)[0]
    store = tmp_path / "store.zarr"
    adir = store / "rec"
    adir.mkdir(parents=True)
    import base64
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (adir / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [5], "chunks": [2], "dtype": [["id", "<u2"], ["pos", ">f4", [2, 3]], ["tag", "|S3"], ["rec", [["p", "<i2"], ["q", "|S2"]]]],
        "compressor": None, "fill_value": base64.b64encode(fill.tobytes()).decode(), "order": "C", "filters": None}))
    for i in (0, 1):  # chunk 2 (element 4 and padding) is absent
        (adir / str(i)).write_bytes(values[2 * i:2 * i + 2].tobytes())
    m = mounter(store, "--read-only")
    want = values.copy()
    want[4] = fill
    npy = np.load(m / "rec" / "data.npy")
    assert npy.dtype == dt, (npy.dtype, dt)
    assert npy.tobytes() == want.tobytes()
    assert (m / "rec" / "data").read_bytes() == want.tobytes()
    last = np.frombuffer((m / "rec" / "chunks" / "2").read_bytes(), dt)
    assert last.tobytes() == np.array([fill, fill], dt).tobytes()
    meta = json.loads((m / "rec" / "meta.json").read_text())
    assert meta["dtype"] == dt.str
    assert meta["descr"] == json.loads((adir / ".zarray").read_text())["dtype"]
