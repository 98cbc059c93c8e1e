"""Variable-length elements through real mounts: `data.jsonl` (one JSON value per element,
C order) and `chunks/<key>.jsonl`, compared with zarr-python (and numcodecs for the object
codecs zarr-python 3 no longer reads); read-only on every mount; cat, grep and wc work."""

from __future__ import annotations

import base64
import errno
import json
import os
import subprocess

import numcodecs
import numpy as np
import pytest
import zarr

from conftest import chunk_indices, chunk_name, chunk_region


def lines(path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def element(x):
    if isinstance(x, bytes):
        return base64.b64encode(x).decode()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x.item() if isinstance(x, np.generic) else x


def expected_chunk_lines(values: np.ndarray, idx, chunks, fill) -> list:
    out = np.empty(chunks, dtype=object)
    out[...] = fill
    region = chunk_region(idx, values.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in region)] = values[region]
    return [element(x) for x in out.reshape(-1)]


def write_v2_object_array(adir, values: np.ndarray, chunks, codec, fill, order="C", compressor=None,
                          padding=""):
    """A v2 |O array written chunk by chunk with numcodecs, as zarr-python 2 wrote them."""
    adir.mkdir(parents=True)
    (adir / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": list(values.shape), "chunks": list(chunks), "dtype": "|O",
        "compressor": compressor.get_config() if compressor else None, "fill_value": fill,
        "order": order, "filters": [codec.get_config()]}))
    for idx in chunk_indices(values.shape, chunks):
        if idx and idx[0] == 1:
            continue  # the second row of chunks stays absent
        block = np.empty(chunks, dtype=object)
        for i in np.ndindex(*chunks):
            block[i] = padding if fill is None else fill
        region = chunk_region(idx, values.shape, chunks)
        block[tuple(slice(0, r.stop - r.start) for r in region)] = values[region]
        data = codec.encode(np.asfortranarray(block) if order == "F" else block)
        if compressor:
            data = compressor.encode(data)
        (adir / ".".join(map(str, idx))).write_bytes(data)


@pytest.mark.parametrize("fmt", [2, 3])
def test_strings_match_zarr_python(fmt, tmp_path, mounter):
    store = tmp_path / "s.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=fmt)
    rng = np.random.default_rng(fmt)
    words = ["", "a", "hé", "日本", "x\"y\\z", "line\nbreak", "tab\t"]
    for name, shape, chunks, fill in [("s1", (11,), (4,), None), ("s2", (5, 7), (2, 3), "zz")]:
        a = root.create_array(name, shape=shape, chunks=chunks, dtype=str, fill_value=fill)
        values = np.array(rng.choice(words, size=shape), dtype=object)
        a[: shape[0] - 1] = values[: shape[0] - 1]
    m = mounter(store, "--read-only")
    for name in ("s1", "s2"):
        a = zarr.open_array(str(store / name), mode="r", zarr_format=fmt)
        want = [element(x) for x in np.asarray(a[...]).reshape(-1)]
        assert lines(m / name / "data.jsonl") == want, name
        assert sorted(os.listdir(m / name)) == ["attrs.json", "chunks", "data.jsonl", "meta.json"]
        values = np.asarray(a[...], dtype=object)
        fill = a.fill_value if a.fill_value is not None else ""
        for idx in chunk_indices(a.shape, a.chunks):
            got = lines(m / name / "chunks" / f"{chunk_name(idx)}.jsonl")
            assert got == expected_chunk_lines(values, idx, a.chunks, element(fill)), (name, idx)
        meta = json.loads((m / name / "meta.json").read_text())
        assert meta["variable_length"] == ("text" if fmt == 3 else "object")
        assert os.stat(m / name / "data.jsonl").st_size == len((m / name / "data.jsonl").read_bytes())


def test_sharded_strings_and_bytes_match_zarr_python(tmp_path, mounter):
    """v3 variable-length elements in shards: each inner chunk read through the index."""
    import warnings

    from zarr.core.dtype import VariableLengthBytes

    store = tmp_path / "sharded.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    texts = np.array(["a", "bb", "", "é", "日本", "x\ny", "", "last"], dtype=object)
    blobs = np.array([b"x", b"", b"\0", b"yz", b"\xff" * 5, b"", b"q", b"end"], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = root.create_array("s", shape=(9,), chunks=(2,), shards=(4,), dtype=str)
        b = root.create_array("b", shape=(9,), chunks=(2,), shards=(4,),
                              dtype=VariableLengthBytes())
        # The last shard and the last inner chunks of the second stay absent (fill).
        s[:6] = texts[:6]
        b[:6] = blobs[:6]
    m = mounter(store, "--read-only")
    for name in ("s", "b"):
        a = zarr.open_array(str(store / name), mode="r")
        want = [element(x) for x in np.asarray(a[...]).reshape(-1)]
        assert lines(m / name / "data.jsonl") == want, name
        for idx in chunk_indices(a.shape, a.chunks):
            got = lines(m / name / "chunks" / f"{chunk_name(idx)}.jsonl")
            region = np.asarray(a[idx[0] * 2:idx[0] * 2 + 2]).reshape(-1)
            assert got[:len(region)] == [element(x) for x in region], (name, idx)


def test_object_codecs_match_numcodecs(tmp_path, mounter):
    store = tmp_path / "o.zarr"
    (store).mkdir()
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    rng = np.random.default_rng(3)
    text = np.array(rng.choice(["a", "bb", "ccc", "é"], size=(5, 4)), dtype=object)
    raw = np.array([bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in rng.integers(0, 6, 20)],
                   dtype=object).reshape(5, 4)
    arrays = np.empty((5, 4), dtype=object)
    for i in np.ndindex(5, 4):
        arrays[i] = rng.integers(-50, 50, size=int(rng.integers(0, 4))).astype("<i4")
    docs = np.empty((5, 4), dtype=object)
    for i in np.ndindex(5, 4):
        docs[i] = [{"k": int(i[0])}, "s", None, 1.5, [1, 2]][(i[0] + i[1]) % 5]
    cases = [
        ("utf8_f", text, numcodecs.VLenUTF8(), "", "F", numcodecs.Zlib(1)),
        ("bytes", raw, numcodecs.VLenBytes(), None, "C", numcodecs.Zstd(3)),
        ("vlen_array", arrays, numcodecs.VLenArray("<i4"), None, "C", None),
        ("json", docs, numcodecs.JSON(), None, "C", numcodecs.GZip(1)),
    ]
    padding = {"bytes": b"", "vlen_array": np.zeros(0, "<i4"), "json": None}
    for name, values, codec, fill, order, compressor in cases:
        write_v2_object_array(store / name, values, (2, 3), codec, fill, order, compressor,
                              padding.get(name, ""))
    m = mounter(store, "--read-only")
    for name, values, codec, fill, order, compressor in cases:
        zarray = json.loads((store / name / ".zarray").read_text())
        want = np.empty(values.shape, dtype=object)
        empty = {"bytes": b"", "vlen_array": None, "json": None}.get(name, "")
        want[...] = [[empty] * 4] * 5
        want[:2] = values[:2]
        want[4:] = values[4:]  # chunk row 2 (rows 4..5) is stored, row 1 (rows 2..3) is not
        got = lines(m / name / "data.jsonl")
        assert got == [element(x) for x in want.reshape(-1)], (name, zarray)


def test_views_are_read_only_and_usable_from_the_shell(tmp_path, mounter):
    store = tmp_path / "s.zarr"
    a = zarr.create_array(str(store), shape=(1000,), chunks=(128,), dtype=str, zarr_format=3)
    a[...] = np.array([f"station-{i:04d}" for i in range(1000)], dtype=object)
    m = mounter(store, "--rw")
    out = subprocess.run(["grep", "-c", "station-09", str(m / "data.jsonl")], capture_output=True, text=True)
    assert out.stdout.strip() == "100"
    out = subprocess.run(["wc", "-l", str(m / "data.jsonl")], capture_output=True, text=True)
    assert out.stdout.split()[0] == "1000"
    assert subprocess.run(["cat", str(m / "chunks" / "7.jsonl")], capture_output=True).returncode == 0
    for path in (m / "data.jsonl", m / "chunks" / "0.jsonl"):
        with pytest.raises(OSError) as e:
            open(path, "r+b")
        assert e.value.errno == errno.EROFS
    assert not (m / "data").exists() and not (m / "data.npy").exists()
