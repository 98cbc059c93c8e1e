"""Metadata as other writers leave it, compared with what zarr-python reads.

Numbers are kept exactly (fills and attributes), Python's bare NaN/Infinity are accepted,
codec settings that only matter to an encoder do not stop decoding, directories without
`.zgroup` are implicit groups and stores holding only `.zmetadata` mount.
"""

from __future__ import annotations

import json
import math
import struct

import numcodecs
import numpy as np
import zarr

from conftest import assert_identical, zarr_read


def random_doubles(rng: np.random.Generator, n: int) -> list[float]:
    bits = rng.integers(0, 2**64, size=4 * n, dtype=np.uint64)
    values = [v for v in bits.view(np.float64).tolist() if math.isfinite(v)]
    return values[:n]


def write_json(path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def zarray(dtype: str, shape, chunks, fill, compressor=None) -> dict:
    return {"zarr_format": 2, "shape": list(shape), "chunks": list(chunks), "dtype": dtype,
            "compressor": compressor, "fill_value": fill, "order": "C", "filters": None}


def test_random_doubles_in_attrs_and_fills_match_zarr_python(tmp_path, mounter):
    rng = np.random.default_rng(11)
    store = tmp_path / "store.zarr"
    doubles = random_doubles(rng, 10_000)
    write_json(store / ".zgroup", {"zarr_format": 2})
    write_json(store / ".zattrs", {"values": doubles, "netcdf_fill": 9.969209968386869e+36})
    fills = doubles[:400]
    for i, v in enumerate(fills):
        dtype = ["<f8", ">f8", "<f4", "<f2"][i % 4]
        write_json(store / "fills" / f"a{i}" / ".zarray", zarray(dtype, [3], [2], v))
    write_json(store / "fills" / ".zgroup", {"zarr_format": 2})
    m = mounter(store, "--read-only")

    got = json.loads((m / "attrs.json").read_text())
    assert [struct.pack("<d", v) for v in got["values"]] == [struct.pack("<d", v) for v in doubles]
    assert got["netcdf_fill"] == 9.969209968386869e+36
    for i in range(len(fills)):
        path = f"fills/a{i}"
        expected = zarr_read(zarr.open_array(str(store / path), mode="r", zarr_format=2))
        data = np.frombuffer((m / path / "data").read_bytes(), expected.dtype)
        assert_identical(data, expected, f"{path} data")
        npy = np.load(m / path / "data.npy")
        assert_identical(npy, expected, f"{path} data.npy")
        chunk = np.frombuffer((m / path / "chunks" / "1").read_bytes(), expected.dtype)
        assert_identical(chunk, np.full(2, expected[0], dtype=expected.dtype), f"{path} chunk padding")


def test_bare_non_finite_numbers_match_zarr_python(tmp_path, mounter):
    store = tmp_path / "store.zarr"
    write_json(store / ".zgroup", {"zarr_format": 2})
    attrs = {"missing": math.nan, "range": [-math.inf, math.inf], "nested": {"x": [math.nan]}}
    (store / ".zattrs").write_text(json.dumps(attrs))  # bare NaN, as Python writes it
    write_json(store / "g" / ".zgroup", {"zarr_format": 2})
    (store / "g" / ".zattrs").write_text(json.dumps({"scale": math.inf}))
    arr = zarr.create_array(str(store / "g" / "arr"), shape=(5,), chunks=(2,), dtype="<f8",
                            fill_value=np.nan, zarr_format=2, compressors=None)
    arr[:3] = [1.0, -math.inf, 2.5]
    meta = json.loads((store / "g" / "arr" / ".zarray").read_text())
    meta["fill_value"] = math.nan
    (store / "g" / "arr" / ".zarray").write_text(json.dumps(meta))
    assert "NaN" in (store / "g" / "arr" / ".zarray").read_text()
    m = mounter(store, "--read-only")

    text = (m / "attrs.json").read_text()
    assert "NaN" in text and '"NaN"' not in text
    got = json.loads(text)
    assert math.isnan(got["missing"]) and got["range"] == [-math.inf, math.inf]
    assert math.isnan(got["nested"]["x"][0])
    assert json.loads((m / "g" / "attrs.json").read_text()) == {"scale": math.inf}
    expected = zarr_read(zarr.open_array(str(store / "g" / "arr"), mode="r", zarr_format=2))
    assert_identical(np.load(m / "g" / "arr" / "data.npy"), expected, "g/arr")


def test_encoder_only_settings_read_and_write_like_numcodecs(tmp_path, mounter):
    store = tmp_path / "store.zarr"
    values = np.arange(64, dtype="<i4").reshape(8, 8) * 7
    configs = {
        "gzip": {"id": "gzip", "level": -1},
        "zlib": {"id": "zlib", "level": -1},
        "zstd": {"id": "zstd", "level": 100},
        "zstd_negative": {"id": "zstd", "level": -200000},
    }
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    for name, config in configs.items():
        valid = dict(config, level=1)
        a = root.create_array(name, shape=values.shape, chunks=(4, 4), dtype="<i4",
                              compressors=numcodecs.get_codec(valid), fill_value=0)
        a[...] = values
        meta = json.loads((store / name / ".zarray").read_text())
        meta["compressor"] = config
        (store / name / ".zarray").write_text(json.dumps(meta))
    m = mounter(store, "--rw")
    for name in configs:
        expected = zarr_read(zarr.open_array(str(store / name), mode="r", zarr_format=2))
        assert_identical(np.load(m / name / "data.npy"), expected, name)
        with open(m / name / "data", "r+b") as f:
            f.seek(4 * 9)
            f.write(np.array([-5], "<i4").tobytes())
            f.flush()
            import os
            os.fsync(f.fileno())
    m.stop()
    for name in configs:
        got = zarr.open_array(str(store / name), mode="r", zarr_format=2)[...]
        want = values.copy()
        want[1, 1] = -5
        assert_identical(got, want, f"{name} after write")


def test_a_bytes_codec_without_configuration_reads_as_zarr_python_reads_it(tmp_path, mounter):
    """v3 `{"name": "bytes"}` on multi-byte types (outside the specification, which asks for
    an endian): zarr-python takes little-endian."""
    store = tmp_path / "store.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=3)
    values = {"i2": np.array([1, -2, 3], "<i2"), "c8": np.array([1.5 - 2j, 3j], "<c8")}
    for name, v in values.items():
        a = zarr.create_array(str(store / name), shape=v.shape, chunks=v.shape, dtype=v.dtype,
                              compressors=None)
        a[...] = v
        meta = json.loads((store / name / "zarr.json").read_text())
        meta["codecs"] = [{"name": "bytes"}]
        (store / name / "zarr.json").write_text(json.dumps(meta))
    m = mounter(store, "--read-only")
    for name, v in values.items():
        expected = zarr_read(zarr.open_array(str(store / name), mode="r"))
        assert_identical(expected, v, f"{name} through zarr-python")
        assert_identical(np.load(m / name / "data.npy"), expected, name)


def test_implicit_groups_and_consolidated_only_stores_match_zarr_python(tmp_path, mounter):
    store = tmp_path / "store.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.attrs["title"] = "t"
    a = root.create_group("sub").create_array("arr", shape=(6, 4), chunks=(4, 3), dtype="<u2",
                                               fill_value=9)
    a[:5] = np.arange(20, dtype="<u2").reshape(5, 4)
    zarr.consolidate_metadata(str(store), zarr_format=2)
    # Implicit group: the per-node .zgroup of "sub" removed.
    (store / "sub" / ".zgroup").unlink()
    m = mounter(store, "--read-only", name="implicit")
    expected = zarr_read(zarr.open_array(str(store / "sub" / "arr"), mode="r", zarr_format=2))
    assert_identical(np.load(m / "sub" / "arr" / "data.npy"), expected, "implicit sub/arr")
    m.stop()

    # Consolidated only: every per-node document below the root removed.
    for doc in list(store.rglob(".z*")):
        if doc.parent != store:
            doc.unlink()
    opened = zarr.open_consolidated(str(store), mode="r", zarr_format=2)
    expected = zarr_read(opened["sub/arr"])
    m = mounter(store, "--read-only", name="consolidated")
    assert_identical(np.load(m / "sub" / "arr" / "data.npy"), expected, "consolidated sub/arr")
    assert json.loads((m / "attrs.json").read_text()) == {"title": "t"}
    assert json.loads((m / "sub" / "arr" / "meta.json").read_text())["shape"] == [6, 4]


def test_fixed_length_fills_longer_than_their_type_are_cut_as_zarr_python_cuts_them(tmp_path,
                                                                                 mounter):
    """A byte-string or text fill longer than the type (other writers leave such): NumPy, and
    so zarr-python, cut it to the type's length; the missing chunks read as that fill."""
    store = tmp_path / "store.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=2)
    docs = {"s2": ("|S2", "YWJj"), "u2": ("<U2", "long"), "u2_big": (">U2", "éèê")}
    for name, (dtype, fill) in docs.items():
        write_json(store / name / ".zarray", {
            "zarr_format": 2, "shape": [5], "chunks": [2], "dtype": dtype, "compressor": None,
            "fill_value": fill, "order": "C", "filters": None})
        # The first chunk stored, the others missing.
        (store / name / "0").write_bytes(np.array(["x", "y"], dtype).tobytes())
    m = mounter(store, "--read-only")
    for name, (dtype, _) in docs.items():
        expected = zarr_read(zarr.open_array(str(store / name), mode="r", zarr_format=2))
        assert len(expected[2]) == 2, f"{name}: zarr-python cut the fill"
        assert_identical(np.load(m / name / "data.npy"), expected, name)
