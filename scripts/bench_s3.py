#!/usr/bin/env python3
"""S3 benchmark of zarrfs (``bash scripts/bench.sh --s3``): the datasets of scripts/bench.py
(A by default) in a SeaweedFS bucket on loopback, read whole

  - through a fresh zarrfs mount (``cat data``, cold chunk cache),
  - by zarr-python with its own S3 access (obstore, and fsspec/s3fs),
  - by tensorstore's s3 driver,

each with no added latency and with DELAY ms per request (a delaying proxy on loopback in
front of the server, used for both); then warm reads from zarrfs's disk cache (a remount
trusting it, --ttl 3600s) against the directory store. Medians of --repeats runs, taken in
rounds (every reader once per round), are printed and written to OUT/report.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402
import s3_server  # noqa: E402

BUCKET = "zarrfs"
ZARRFS = ROOT / "target" / "release" / "zarrfs"


def upload(s3, local: Path, prefix: str) -> None:
    files = [p for p in local.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(local).as_posix()}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


class Mount:
    """A zarrfs mount for one measurement (unmounted on exit)."""

    def __init__(self, out: Path, store: str, *args: str):
        self.point = out / "mnt"
        self.point.mkdir(parents=True, exist_ok=True)
        self.argv = [str(ZARRFS), "mount", store, str(self.point), "--read-only",
                     "--log", str(out / "zarrfs.log"), *args]

    def __enter__(self) -> Path:
        subprocess.run(self.argv, check=True, stderr=subprocess.DEVNULL)
        return self.point

    def __exit__(self, *exc) -> None:
        subprocess.run([str(ZARRFS), "umount", str(self.point)], check=False)


PEER_READ = r"""
import os, sys, time, zarr
lib, endpoint, prefix, driver = sys.argv[1:5]
t0 = time.perf_counter()
if lib == "tensorstore":
    import tensorstore as ts
    spec = {"driver": driver, "kvstore": {"driver": "s3", "bucket": "%(bucket)s",
            "path": prefix + "/", "endpoint": endpoint, "aws_region": "us-east-1"}}
    ts.open(spec, read=True).result().read().result()
else:
    if lib == "obstore":
        from obstore.store import S3Store
        store = zarr.storage.ObjectStore(S3Store("%(bucket)s", prefix=prefix, endpoint=endpoint,
            virtual_hosted_style_request=False, client_options={"allow_http": True}),
            read_only=True)
    else:
        store = zarr.storage.FsspecStore.from_url("s3://%(bucket)s/" + prefix, read_only=True,
            storage_options={"client_kwargs": {"endpoint_url": endpoint}})
    zarr.open_array(store, mode="r")[...]
print(time.perf_counter() - t0)
""" % {"bucket": BUCKET}


def peer(lib: str, endpoint: str, prefix: str, driver: str) -> float:
    """Seconds `lib` takes to read the whole array; `driver` is tensorstore's (zarr or zarr3)."""
    out = subprocess.run([sys.executable, "-c", PEER_READ, lib, endpoint, prefix, driver], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def medians_interleaved(runs: int, measures: dict) -> dict:
    """The median of `runs` runs of each measure, taken in rounds (each measure once per
    round), so that a change in the machine's load falls on every reader alike."""
    times = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/16-size datasets")
    parser.add_argument("--only", default="A", help="datasets, e.g. A,C (default A)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delay-ms", type=int, default=20)
    parser.add_argument("--max-requests", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench-s3")
    args = parser.parse_args()
    out = args.out.resolve()
    work = ROOT / "target" / ("bench-data-quick" if args.quick else "bench-data")
    work.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",")
    specs = bench.dataset_specs(args.quick)
    bench.generate(work, specs, names, set())

    state = out / "seaweedfs"
    endpoint = s3_server.start(state, BUCKET)
    os.environ.update(s3_server.environment(endpoint))
    port = int(endpoint.rsplit(":", 1)[1])
    proxies, lines = {}, []
    try:
        for delay in (0, args.delay_ms):
            listen = s3_server.free_ports(1)[0]
            proxies[delay] = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "delay_proxy.py"), str(listen),
                 str(port), str(delay)])
            proxies[delay].endpoint = f"http://127.0.0.1:{listen}"
        time.sleep(0.5)
        s3 = s3_server.client(endpoint)
        lines += ["| dataset | reader | added latency | seconds (median) |", "|---|---|---|---|"]
        for name in names:
            prefix = f"bench-{name}{'-quick' if args.quick else ''}"
            upload(s3, bench.store_path(work, name), prefix)
            driver = "zarr3" if (bench.store_path(work, name) / "zarr.json").exists() else "zarr"
            for delay, proxy in proxies.items():
                url = f"s3://{BUCKET}/{prefix}"
                mount_args = ["--endpoint", proxy.endpoint, "--max-requests",
                              str(args.max_requests)]

                def zarrfs_cold() -> float:
                    with Mount(out, url, *mount_args) as mnt:
                        return timed(["cat", str(mnt / "data")])

                measures = {"zarrfs cat data": zarrfs_cold}
                for lib in ("obstore", "fsspec", "tensorstore"):
                    label = {"obstore": "zarr-python (obstore)",
                             "fsspec": "zarr-python (fsspec/s3fs)"}.get(lib, lib)
                    measures[label] = (lambda lib=lib, endpoint=proxy.endpoint:
                                       peer(lib, endpoint, prefix, driver))
                results = medians_interleaved(args.repeats, measures)
                for reader, seconds in results.items():
                    lines.append(f"| {name} | {reader} | {delay} ms | {seconds:.2f} |")
                    print(lines[-1], flush=True)
            # Warm reads: a disk cache filled once, trusted for an hour, against the store
            # directory (its files in the page cache), each through a fresh mount.
            cache = out / "disk-cache"
            disk_args = ["--endpoint", endpoint, "--disk-cache", str(cache),
                         "--disk-cache-size", "4GiB", "--ttl", "3600s"]
            with Mount(out, f"s3://{BUCKET}/{prefix}", *disk_args) as mnt:
                timed(["cat", str(mnt / "data")])
            bench.warm_page_cache(bench.store_path(work, name))

            def disk_warm() -> float:
                with Mount(out, f"s3://{BUCKET}/{prefix}", *disk_args) as mnt:
                    return timed(["cat", str(mnt / "data")])

            def directory() -> float:
                with Mount(out, str(bench.store_path(work, name))) as mnt:
                    return timed(["cat", str(mnt / "data")])

            warm = medians_interleaved(args.repeats, {"zarrfs, disk cache (warm)": disk_warm,
                                                      "zarrfs, directory store": directory})
            for reader, seconds in warm.items():
                lines.append(f"| {name} | {reader} | - | {seconds:.2f} |")
                print(lines[-1], flush=True)
    finally:
        for proxy in proxies.values():
            proxy.kill()
        s3_server.stop(state)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
