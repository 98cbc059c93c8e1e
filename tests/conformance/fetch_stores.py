#!/usr/bin/env python3
"""(Re)create or verify tests/conformance/stores/ from the sources in manifest.json.

    python3 tests/conformance/fetch_stores.py [--repos DIR] [--verify] [NAME ...]

Each manifest entry names a GitHub repository, a commit and a path in it: a directory
that is the store, or a .zip / .tar.gz file holding it (`archive_root`: the directory
inside the archive that is the store, "" for the archive's root). Paths listed in
`excluded` (relative to the store) are left out; nothing else is changed. Blobs are
read with `git cat-file`, so no export filters or attributes touch their bytes.

--repos DIR   use existing clones DIR/<owner>/<name> (bare or not) instead of cloning
              each repository (blobless) from GitHub into a temporary directory
--verify      rebuild into a temporary directory and compare with the committed stores
NAME          only the stores whose `path` ends with NAME
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"


def git(gd: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(gd), *args], input=input, check=True,
                          capture_output=True).stdout


def repo_dir(repo: str, commit: str, repos: Path | None, cache: Path) -> Path:
    if repos is not None:
        gd = repos / repo
        if not gd.exists():
            sys.exit(f"{gd} does not exist")
        return gd
    gd = cache / repo
    if not gd.exists():
        subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none",
                        f"https://github.com/{repo}.git", str(gd)], check=True)
    try:
        git(gd, "cat-file", "-e", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:  # a commit no branch reaches any more
        git(gd, "fetch", "-q", "origin", commit)
    return gd


def tree_files(gd: Path, commit: str, path: str) -> dict[str, bytes]:
    """Every blob under `path` at `commit`, keyed by its path relative to `path`."""
    out = git(gd, "ls-tree", "-r", "-z", commit, "--", path).split(b"\0")
    entries = []
    for line in filter(None, out):
        meta, name = line.split(b"\t", 1)
        mode, kind, sha = meta.split()
        if kind != b"blob" or mode == b"120000":
            sys.exit(f"{path}: {name.decode()} is not a plain file")
        entries.append((name.decode()[len(path) + 1:], sha.decode()))
    return dict(zip([n for n, _ in entries], cat_blobs(gd, [s for _, s in entries])))


def cat_blobs(gd: Path, shas: list[str]) -> list[bytes]:
    raw = git(gd, "cat-file", "--batch", input="".join(s + "\n" for s in shas).encode())
    blobs, pos = [], 0
    for _ in shas:
        header_end = raw.index(b"\n", pos)
        size = int(raw[pos:header_end].split()[2])
        blobs.append(raw[header_end + 1:header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return blobs


def archive_files(data: bytes, name: str, root: str) -> dict[str, bytes]:
    """Files of a zip or tar.gz under `root`, in archive order (a later duplicate wins,
    as when unpacking)."""
    files: dict[str, bytes] = {}
    prefix = root.strip("/") + "/" if root.strip("/") else ""
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if not info.is_dir() and info.filename.startswith(prefix):
                    files[info.filename[len(prefix):]] = z.read(info)
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.startswith(prefix):
                    files[m.name[len(prefix):]] = t.extractfile(m).read()
    return files


def store_files(entry: dict, gd: Path) -> dict[str, bytes]:
    commit, src = entry["source_commit"], entry["source_path"]
    if entry.get("archive_root") is None:
        files = tree_files(gd, commit, src)
    else:
        files = archive_files(git(gd, "show", f"{commit}:{src}"), src, entry["archive_root"])
    excluded = entry.get("excluded", [])
    return {k: v for k, v in files.items()
            if not any(k == x or k.startswith(x.rstrip("/") + "/") for x in excluded)}


def write_store(dest: Path, files: dict[str, bytes]) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    for rel, data in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def compare(dest: Path, files: dict[str, bytes]) -> list[str]:
    have = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    problems = [f"missing {k}" for k in sorted(set(files) - set(have))]
    problems += [f"unexpected {k}" for k in sorted(set(have) - set(files))]
    problems += [f"differs {k}" for k in sorted(set(files) & set(have)) if have[k].read_bytes() != files[k]]
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repos", type=Path)
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    entries = [e for e in json.loads(MANIFEST.read_text())
               if not a.names or any(e["path"].endswith(n) for n in a.names)]
    bad = 0
    with tempfile.TemporaryDirectory() as cache:
        for e in entries:
            gd = repo_dir(e["source_repo"], e["source_commit"], a.repos, Path(cache))
            files = store_files(e, gd)
            dest = HERE / e["path"]
            if a.verify:
                problems = compare(dest, files)
                bad += bool(problems)
                print(f"{e['path']}: {'ok' if not problems else '; '.join(problems[:5])}")
            else:
                write_store(dest, files)
                print(f"{e['path']}: {len(files)} files, {sum(map(len, files.values()))} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
