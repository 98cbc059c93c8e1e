"""The programs in examples/ (C, R, shell, Python without zarr) read a mounted store and
print what they read; every value must be what zarr-python reads from the same store.

gcc and Rscript come from Debian (scripts/install_deps.sh installs build-essential and
r-base-core); without them these tests are skipped, unless ZARRFS_REQUIRE_TOOLS=1
(scripts/test.sh sets it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from numcodecs import Blosc, Zlib, Zstd

from conftest import REPO, Mount, expected_chunk, zarr_read

EXAMPLES = REPO / "examples"

# name: (dtype, shape, chunks, compressor, dimension names)
ARRAYS = {
    "temperature": ("<f4", (4, 5, 6), (2, 3, 4), Blosc("lz4", 5, Blosc.SHUFFLE),
                    ["time", "lat", "lon"]),
    "counts": (">i4", (7, 9), (3, 4), Zlib(level=1), ["y", "x"]),
    "pressure": (">f8", (6,), (4,), Zstd(level=1), ["level"]),
    "levels": (">u2", (5, 3), (2, 2), None, ["station", "band"]),
}


def values_for(dtype: str, shape: tuple) -> np.ndarray:
    """Values with a fractional part (floats) or a sign (signed integers) to get wrong."""
    n = int(np.prod(shape))
    base = np.arange(n, dtype=np.float64)
    if dtype[1] == "f":
        data = np.sin(base) * 1000 + base / 7
    elif dtype[1] == "i":
        data = (base - n / 2) * 40503
    else:
        data = base * 977 % 65535
    return data.astype(dtype).reshape(shape)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("examples") / "ex.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    group = root.create_group("climate", attributes={"title": "examples"})
    for name, (dtype, shape, chunks, compressor, dims) in ARRAYS.items():
        array = group.create_array(name, shape=shape, chunks=chunks, dtype=dtype,
                                   compressors=compressor, fill_value=0,
                                   attributes={"_ARRAY_DIMENSIONS": dims, "units": "u"})
        array[...] = values_for(dtype, shape)
    return path


@pytest.fixture(scope="module")
def mounted(store, zarrfs, tmp_path_factory):
    base = tmp_path_factory.mktemp("examples-mount")
    m = Mount(store, base / "mnt", base / "zarrfs.log", zarrfs).start()
    yield m.mnt / "climate"
    m.stop()


def expected(store: Path, name: str) -> np.ndarray:
    return zarr_read(zarr.open_array(str(store / "climate" / name), mode="r"))


def require(program: str) -> str:
    path = shutil.which(program)
    if path:
        return path
    msg = f"{program} not installed (bash scripts/install_deps.sh)"
    if os.environ.get("ZARRFS_REQUIRE_TOOLS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def run(argv: list) -> str:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{argv}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def fields(text: str) -> dict[str, list[str]]:
    """`key value value…` lines as a dict."""
    return {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}


def check(out: dict[str, list[str]], exp: np.ndarray, rtol: float, what: str) -> None:
    """The shape (if printed), dtype, first elements and sum (if printed) against `exp`."""
    if "shape" in out:
        assert [int(s) for s in out["shape"]] == list(exp.shape), what
    assert out["dtype"] == [exp.dtype.str], what
    first = np.array([float(v) for v in out["first"]])
    want = exp.reshape(-1)[:8].astype(np.float64)
    np.testing.assert_allclose(first, want, rtol=rtol, atol=0, err_msg=f"{what}: first")
    if "sum" in out:
        total = float(out["sum"][0])
        np.testing.assert_allclose(total, exp.astype(np.float64).sum(), rtol=1e-12,
                                   err_msg=f"{what}: sum")


@pytest.mark.parametrize("name", ARRAYS)
def test_c_reads_data_through_mmap_with_the_dtype_from_xattrs(name, mounted, store, tmp_path):
    gcc = require("gcc")
    binary = tmp_path / "read_array"
    run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", binary, EXAMPLES / "read_array.c"])
    out = fields(run([binary, mounted / name]))
    check(out, expected(store, name), 0, f"C, {name}")


@pytest.mark.parametrize("name", ARRAYS)
def test_r_reads_data_with_readbin_in_either_byte_order(name, mounted, store):
    rscript = require("Rscript")
    out = fields(run([rscript, EXAMPLES / "read_array.R", mounted / name]))
    check(out, expected(store, name), 0, f"R, {name}")


# Inner chunks and edge chunks (the part outside the array shows the fill value).
@pytest.mark.parametrize("name,chunk", [("temperature", (1, 0, 1)), ("temperature", (1, 1, 1)),
                                        ("counts", (1, 1)), ("pressure", (1,)), ("levels", (2, 1))])
def test_shell_reads_a_chunk_with_dd_and_od(name, chunk, mounted, store):
    chunk_name = ".".join(map(str, chunk))
    out = fields(run(["sh", EXAMPLES / "read_chunk.sh", mounted / name, chunk_name]))
    assert out["chunk"] == [chunk_name]
    exp = expected(store, name)
    # The chunk file is the whole chunk in C order. od prints floats to about 7 digits.
    want = expected_chunk(exp, chunk, ARRAYS[name][2], np.zeros((), exp.dtype))
    check(out, want, 1e-6 if exp.dtype.kind == "f" else 0, f"shell, {name} {chunk_name}")


def test_python_builds_an_xarray_dataset_without_zarr(mounted, store):
    out = run([sys.executable, EXAMPLES / "xarray_dataset.py", mounted])
    per_array: dict[str, dict[str, list[str]]] = {}
    for line in out.splitlines():
        name, key, *values = line.split()
        per_array.setdefault(name, {})[key] = values
    assert sorted(per_array) == sorted(ARRAYS)
    for name, (_, _, _, _, dims) in ARRAYS.items():
        assert per_array[name]["dims"] == dims, name
        check(per_array[name], expected(store, name), 0, f"Python, {name}")
