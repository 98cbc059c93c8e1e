"""The committed fixtures agree with their manifest (no zarrfs binary needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import (
    FIXTURES,
    V2_GROUPS,
    V2_MANIFEST,
    V2_STORE,
    assert_identical,
    chunk_indices,
    chunk_name,
    zarr_read,
)

MANIFEST = json.loads(V2_MANIFEST.read_text())
GROUPS = json.loads(V2_GROUPS.read_text())
ARRAYS = [e for e in MANIFEST if e["error"] != "malformed_metadata"]


def listed_chunks(adir: Path, ndim: int, sep: str) -> set[str]:
    if ndim == 0:
        return {"0"} if (adir / "0").is_file() else set()
    out = set()
    for root, _dirs, files in os.walk(adir):
        rel = Path(root).relative_to(adir).as_posix()
        for f in files:
            if f.startswith("."):
                continue
            key = f if rel == "." else f"{rel}/{f}"
            out.add(".".join(key.split(sep)))
    return out


@pytest.mark.parametrize("entry", ARRAYS, ids=[e["path"] for e in ARRAYS])
def test_manifest_entry_matches_store(entry):
    adir = V2_STORE / entry["path"]
    zarray = json.loads((adir / ".zarray").read_text())
    assert zarray["shape"] == entry["shape"] and zarray["chunks"] == entry["chunks"]
    assert zarray["dtype"] == entry["dtype"] and zarray["order"] == entry["order"]
    assert zarray["fill_value"] == entry["fill_value"]
    assert zarray.get("dimension_separator") == entry["dimension_separator"]
    present = listed_chunks(adir, len(entry["shape"]), entry["chunk_key_separator"])
    assert present == set(entry["present_chunks"])
    grid = {chunk_name(i) for i in chunk_indices(entry["shape"], entry["chunks"])}
    assert present <= grid and set(entry["bad_chunks"]) <= present
    za = adir / ".zattrs"
    assert (json.loads(za.read_text()) if za.exists() else {}) == entry["attributes"]
    if entry["expected"]:
        exp = np.load(FIXTURES / entry["expected"])
        assert exp.dtype.str == entry["dtype"] and list(exp.shape) == entry["shape"]
        if entry["error"] is None and entry["dimension_separator"] is not None:
            assert_identical(zarr_read(zarr.open_array(str(adir), mode="r")), exp, entry["path"])


def test_malformed_nodes_are_not_valid_zarr():
    for e in MANIFEST:
        if e["error"] == "malformed_metadata":
            with pytest.raises(Exception):
                zarr.open_array(str(V2_STORE / e["path"]), mode="r")


def test_groups_file():
    for g in GROUPS:
        gdir = V2_STORE / g["path"]
        assert (gdir / ".zgroup").is_file()
        za = gdir / ".zattrs"
        assert (json.loads(za.read_text()) if za.exists() else {}) == g["attributes"]


def test_fixture_size_budget():
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 2_000_000, total
