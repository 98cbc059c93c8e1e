"""Opens the arrays of one group of a zarrfs mount with NumPy and xarray, without zarr.

Each array directory holds `data.npy`, an ordinary NPY file that ``np.load(mmap_mode="r")``
maps without reading it; `data` holds the same elements without a header, so
``np.memmap`` reads it given the dtype and shape of `meta.json`; `attrs.json` holds the
array's attributes, where xarray-style writers keep the dimension names
(``_ARRAY_DIMENSIONS``; Zarr v3 arrays name them in meta.json's ``dimension_names``).

    python examples/xarray_dataset.py /mnt/zarr/climate

Prints, per array, its shape, dtype and dimensions, its first elements and their sum.
"""

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr


def dimensions(array_dir: Path, meta: dict, rank: int) -> list[str]:
    """The array's dimension names: xarray's attribute, Zarr v3's names, or dim_0, dim_1, …"""
    attrs = json.loads((array_dir / "attrs.json").read_text())
    names = attrs.get("_ARRAY_DIMENSIONS") or meta.get("dimension_names") or []
    return [name or f"dim_{i}" for i, name in enumerate(names)] or [f"dim_{i}" for i in range(rank)]


def open_group(group_dir: Path) -> xr.Dataset:
    """A Dataset of every array directly in `group_dir`, read lazily from `data.npy`."""
    variables = {}
    for array_dir in sorted(p for p in group_dir.iterdir() if (p / "meta.json").is_file()):
        meta = json.loads((array_dir / "meta.json").read_text())
        # The flat view, mapped with the shape and dtype meta.json gives...
        flat = np.memmap(array_dir / "data", dtype=meta["dtype"], mode="r", shape=tuple(meta["shape"]))
        # ...holds what the NPY view holds, header aside.
        array = np.load(array_dir / "data.npy", mmap_mode="r")
        assert array.dtype == flat.dtype and array.shape == flat.shape
        attrs = json.loads((array_dir / "attrs.json").read_text())
        attrs.pop("_ARRAY_DIMENSIONS", None)
        variables[array_dir.name] = xr.Variable(dimensions(array_dir, meta, array.ndim), array, attrs)
    return xr.Dataset(variables)


def main() -> None:
    dataset = open_group(Path(sys.argv[1]))
    for name, variable in dataset.data_vars.items():
        values = variable.values.reshape(-1)
        print(name, "shape", *variable.shape)
        print(name, "dtype", variable.dtype.str)
        print(name, "dims", *variable.dims)
        print(name, "first", *(repr(float(v)) for v in values[:8]))
        print(name, "sum", repr(float(values.astype(np.float64).sum())))


if __name__ == "__main__":
    main()
