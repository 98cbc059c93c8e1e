"""S3 side of the interop suite: the SeaweedFS server (started by scripts/test.sh, or here
when it did not), uploads, mounts of s3:// stores and tree comparisons."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, Mount

sys.path.insert(0, str(REPO / "scripts"))
import s3_server  # noqa: E402


@dataclass
class S3:
    """A running S3 server: its endpoint, bucket and state directory."""

    endpoint: str
    bucket: str
    state: Path

    def client(self):
        return s3_server.client(self.endpoint)

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def new_prefix(self, name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}"

    def upload(self, local: Path, prefix: str) -> int:
        """Uploads every file under `local` to `prefix/…`; returns how many."""
        files = [p for p in local.rglob("*") if p.is_file()]
        client = self.client()

        def put(path: Path) -> None:
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))
        return len(files)

    def keys(self, prefix: str) -> set[str]:
        client = self.client()
        out, token = set(), None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": prefix + "/"}
            if token:
                kw["ContinuationToken"] = token
            page = client.list_objects_v2(**kw)
            out |= {o["Key"][len(prefix) + 1:] for o in page.get("Contents", [])}
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    def get(self, key: str) -> bytes | None:
        client = self.client()
        try:
            return client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def put(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body)

    def stop(self) -> None:
        s3_server.stop(self.state)

    def restart(self) -> None:
        s3_server.start(self.state, self.bucket, restart=True)

    def storage_options(self) -> dict:
        """fsspec/s3fs options reaching this server."""
        return {
            "key": s3_server.ACCESS_KEY,
            "secret": s3_server.SECRET_KEY,
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": s3_server.REGION},
        }


def start_or_join(tmp_path_factory) -> tuple[S3 | None, bool]:
    """The server scripts/test.sh started (ZARRFS_S3_ENDPOINT), else one started now (and
    whether it was); None when SeaweedFS is not installed."""
    endpoint = os.environ.get("ZARRFS_S3_ENDPOINT")
    if endpoint:
        return S3(endpoint, os.environ.get("ZARRFS_S3_BUCKET", "zarrfs"),
                  Path(os.environ["ZARRFS_S3_STATE"])), False
    if not (shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")):
        return None, False
    state = tmp_path_factory.mktemp("seaweedfs")
    endpoint = s3_server.start(state, "zarrfs")
    os.environ.update(s3_server.environment(endpoint))
    return S3(endpoint, "zarrfs", state), True


def s3_mount(zarrfs: Path, s3: S3, prefix: str, where: Path, *args: str) -> Mount:
    """Mounts s3://bucket/prefix at `where`/mnt (log `where`/zarrfs.log)."""
    where.mkdir(parents=True, exist_ok=True)
    return Mount(s3.url(prefix), where / "mnt", where / "zarrfs.log", zarrfs,
                 ["--endpoint", s3.endpoint, *args]).start()


def read_or_errno(path: Path) -> bytes | int:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return e.errno or errno.EIO


def compare_trees(got: Path, want: Path) -> list[str]:
    """Differences between two mounted trees: listings, then every file's bytes (or errno)."""
    problems = []
    for dirpath, dirnames, filenames in os.walk(want):
        rel = Path(dirpath).relative_to(want)
        if rel.parts[:1] == (".zarrfs",):
            continue
        try:
            listed = sorted(os.listdir(got / rel))
        except OSError as e:
            problems.append(f"{rel}: listing failed: {e}")
            continue
        if listed != sorted(dirnames + filenames):
            problems.append(f"{rel}: lists {listed}, expected {sorted(dirnames + filenames)}")
        for name in filenames:
            a, b = read_or_errno(got / rel / name), read_or_errno(want / rel / name)
            if a != b:
                show = lambda v: f"errno {v}" if isinstance(v, int) else f"{len(v)} bytes"  # noqa: E731
                problems.append(f"{rel / name}: {show(a)}, expected {show(b)}")
    return problems


def skip_or_fail(reason: str):
    if os.environ.get("ZARRFS_REQUIRE_S3"):
        pytest.fail(reason)
    pytest.skip(reason)
