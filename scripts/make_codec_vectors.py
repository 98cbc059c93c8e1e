#!/usr/bin/env python3
"""Write codec test vectors for src/codec: frames encoded by numcodecs.

For each case NAME this writes tests/data/codec/NAME.enc (the encoded frame)
and tests/data/codec/NAME.raw (the decoded bytes). Requires numpy and
numcodecs. Run from anywhere:

    python scripts/make_codec_vectors.py
"""

import pathlib

import numcodecs
import numpy as np
from numcodecs import GZip, LZ4, Blosc, Zlib, Zstd, blosc

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "codec"

DTYPES = {1: "u1", 4: "<u4", 8: "<f8"}


def sample(itemsize, n_bytes=256):
    """Compressible but non-trivial little-endian data of the given item size."""
    n = n_bytes // itemsize
    rng = np.random.default_rng(1234 + itemsize)
    if itemsize == 8:
        # Quantized random walk: shuffle-friendly exponents, zero low bytes.
        arr = (np.round(np.cumsum(rng.normal(size=n)) * 4) / 4).astype("<f8")
    elif itemsize == 4:
        arr = (np.arange(n) // 3 + rng.integers(0, 2, size=n)).astype("<u4")
    else:
        arr = ((np.arange(n) // 16 + (rng.integers(0, 20, size=n) == 0)) % 256).astype("u1")
    return arr


def write(name, raw, enc):
    raw = bytes(raw)
    enc = bytes(enc)
    (OUT / f"{name}.raw").write_bytes(raw)
    (OUT / f"{name}.enc").write_bytes(enc)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.enc"):
        old.unlink()
    for old in OUT.glob("*.raw"):
        old.unlink()

    for cname in ["lz4", "lz4hc", "blosclz", "zstd", "zlib"]:
        for shuffle in [0, 1, 2]:
            for itemsize in [1, 4, 8]:
                arr = sample(itemsize)
                codec = Blosc(cname=cname, clevel=5, shuffle=shuffle)
                enc = codec.encode(arr)
                assert codec.decode(enc) == arr.tobytes()
                assert enc[2] & 0x02 == 0, "frame must be compressed, not stored"
                write(f"blosc_{cname}_s{shuffle}_i{itemsize}", arr.tobytes(), enc)

    arr = sample(1)
    write("blosc_lz4_auto_i1", arr.tobytes(), Blosc(shuffle=Blosc.AUTOSHUFFLE).encode(arr))
    arr = sample(4, 2048)
    write(
        "blosc_zstd_bs256_i4",
        arr.tobytes(),
        Blosc(cname="zstd", shuffle=1, blocksize=256).encode(arr),
    )
    empty = np.zeros(0, dtype="u1")
    write("blosc_lz4_empty", b"", Blosc().encode(empty))
    # Compressed by several threads: blocks land in the frame in the order they finish.
    arr = sample(4, 1 << 18)
    blosc.set_nthreads(4)
    blosc.use_threads = True
    for _ in range(100):
        enc = Blosc(cname="lz4", clevel=5, shuffle=1, blocksize=16384).encode(arr)
        nblocks = -(-len(arr.tobytes()) // 16384)
        starts = np.frombuffer(enc[16:16 + 4 * nblocks], dtype="<u4")
        if np.any(np.diff(starts.astype(np.int64)) < 0):
            break
    else:
        raise SystemExit("blosc kept the blocks in order; no out-of-order frame to test")
    blosc.use_threads = None
    write("blosc_threads", arr.tobytes(), enc)

    text = sample(4, 512).tobytes()
    write("zstd_l0", text, Zstd(level=0).encode(text))
    write("zstd_l5_checksum", text, Zstd(level=5, checksum=True).encode(text))
    write("zstd_lneg", text, Zstd(level=-3).encode(text))
    write("zstd_empty", b"", Zstd().encode(b""))

    write("gzip_l1", text, GZip(level=1).encode(text))
    write("gzip_l9", text, GZip(level=9).encode(text))
    write("gzip_empty", b"", GZip().encode(b""))
    # A member with an FNAME header field, as the gzip command line tool writes.
    import gzip
    import io

    bio = io.BytesIO()
    with gzip.GzipFile(filename="chunk.bin", mode="wb", fileobj=bio, mtime=0) as f:
        f.write(text)
    write("gzip_named", text, bio.getvalue())

    write("zlib_l1", text, Zlib(level=1).encode(text))
    write("zlib_l9", text, Zlib(level=9).encode(text))
    write("zlib_empty", b"", Zlib().encode(b""))

    write("lz4_a1", text, LZ4(acceleration=1).encode(text))
    write("lz4_a10", text, LZ4(acceleration=10).encode(text))
    write("lz4_empty", b"", LZ4().encode(b""))

    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"numcodecs {numcodecs.__version__}: wrote {len(list(OUT.iterdir()))} files, {total} bytes")


if __name__ == "__main__":
    main()
