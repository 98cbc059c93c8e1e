#!/usr/bin/env python3
"""Dask workers reading a Zarr array in S3 through a zarrfs mount, against Dask reading the
same bucket with zarr-python.

Every worker process opens MOUNT/ARRAY/data.npy with ``np.load(mmap_mode='r')``: the array
is a plain memory-mapped file to them, and the zarrfs daemon (one per node) fetches and
decodes the chunks, for every worker at once, with one chunk cache. The same reduction is
then computed with ``dask.array.from_zarr`` on the bucket (each worker fetching and decoding
its own chunks) and the results compared.

    zarrfs mount s3://BUCKET/STORE MOUNT --read-only [--endpoint URL]
    python examples/dask_s3.py MOUNT ARRAY s3://BUCKET/STORE [--endpoint URL] [--workers 4]

ARRAY is the array's path inside the store ("" when the store is the array). Credentials
come from the usual AWS variables, as for zarrfs. Needs dask[array], distributed, zarr and
s3fs (see examples/requirements.txt).
"""

import argparse
import time

import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster


class Mapped:
    """``np.load(path, mmap_mode='r')``, done in the process that reads it: sent to a worker
    as its path (a memmap itself would be pickled with all its bytes)."""

    _opened = {}

    def __init__(self, path):
        self.path = path
        array = self._array()
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def _array(self):
        if self.path not in Mapped._opened:
            Mapped._opened[self.path] = np.load(self.path, mmap_mode="r")
        return Mapped._opened[self.path]

    def __getitem__(self, key):
        return np.array(self._array()[key])

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state):
        self.__dict__.update(state, ndim=len(state["shape"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mount")
    parser.add_argument("array")
    parser.add_argument("url", help="the same store in S3, for dask.array.from_zarr")
    parser.add_argument("--endpoint", help="S3-compatible endpoint, as given to zarrfs")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    npy = f"{args.mount.rstrip('/')}/{args.array.strip('/')}/data.npy".replace("//", "/")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client:
        client.run(lambda: None)  # workers up before either is timed
        mapped = Mapped(npy)
        # Bands of whole rows (about 32 MiB each): each task reads a contiguous part of the
        # file, which zarrfs decodes ahead of it.
        row_bytes = mapped.dtype.itemsize * int(np.prod(mapped.shape[1:], dtype=np.int64))
        rows = max(1, (32 << 20) // max(row_bytes, 1))
        chunks = (rows,) + mapped.shape[1:] if mapped.ndim else ()

        # Through the mount: each task maps the file in its worker and reads its band.
        through_mount = da.from_array(mapped, chunks=chunks, name="zarrfs-mount",
                                      asarray=False, lock=False)
        t0 = time.perf_counter()
        mean_mount, max_mount = client.compute(
            [through_mount.mean(dtype="f8"), through_mount.max()], sync=True)
        t_mount = time.perf_counter() - t0

        # zarr-python in every worker, on the bucket.
        options = {"client_kwargs": {"endpoint_url": args.endpoint}} if args.endpoint else {}
        url = f"{args.url.rstrip('/')}/{args.array.strip('/')}".rstrip("/")
        direct = da.from_zarr(url, storage_options=options)
        t0 = time.perf_counter()
        mean_zarr, max_zarr = client.compute([direct.mean(dtype="f8"), direct.max()], sync=True)
        t_zarr = time.perf_counter() - t0

    print(f"through the zarrfs mount : mean {mean_mount:.6g} max {max_mount:.6g} "
          f"in {t_mount:.2f} s")
    print(f"dask.array.from_zarr     : mean {mean_zarr:.6g} max {max_zarr:.6g} "
          f"in {t_zarr:.2f} s")
    assert np.isclose(mean_mount, mean_zarr, rtol=1e-9, atol=0) and max_mount == max_zarr, \
        "results differ"


if __name__ == "__main__":
    main()
