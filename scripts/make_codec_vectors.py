#!/usr/bin/env python3
"""Write codec test vectors for src/codec: frames encoded by numcodecs.

For each bytes codec case NAME this writes tests/data/codec/NAME.enc (the
encoded frame) and tests/data/codec/NAME.raw (the decoded bytes). numcodecs'
filters, whose decoding depends on element types, go to filters.json (per case:
codec config, the input's dtype, the input, what numcodecs encodes it to and what
it decodes that to, base64), and numpy's casts between every pair of numeric
types to casts.json. Requires numpy and numcodecs. Run from anywhere:

    python scripts/make_codec_vectors.py
"""

import base64
import bz2
import json
import lzma
import pathlib
import warnings

import numcodecs
import numpy as np
from numcodecs import (
    BZ2, CRC32, CRC32C, GZip, LZ4, LZMA, Adler32, AsType, BitRound, Blosc, Delta,
    FixedScaleOffset, Fletcher32, JenkinsLookup3, PackBits, Quantize, Shuffle, Zlib, Zstd, blosc,
)

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
    for old in OUT.glob("*.json"):
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

    write_bz2_lzma()
    write_shuffle_and_checksums()
    write_filters()
    write_casts()

    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"numcodecs {numcodecs.__version__}: wrote {len(list(OUT.iterdir()))} files, {total} bytes")


def checked(name, codec, raw):
    """Encode `raw` with a numcodecs codec, check it decodes back, and write the pair."""
    enc = bytes(codec.encode(raw))
    assert bytes(codec.decode(enc)) == bytes(raw), name
    write(name, raw, enc)


def write_bz2_lzma():
    text = sample(4, 4096).tobytes()
    checked("bz2_l1", BZ2(level=1), text)
    checked("bz2_l9", BZ2(level=9), text)
    checked("bz2_empty", BZ2(), b"")
    # Two streams and bytes that are no stream: Python's bz2 joins the streams, ignores the rest.
    enc = bz2.compress(text[:1000]) + bz2.compress(text[1000:]) + b"trailing bytes"
    assert BZ2().decode(enc) == text
    write("bz2_two_streams_garbage", text, enc)

    checked("lzma_xz", LZMA(), text)
    checked("lzma_xz_p9e", LZMA(preset=9 | lzma.PRESET_EXTREME), text)
    checked("lzma_xz_sha256", LZMA(check=lzma.CHECK_SHA256, preset=1), text)
    checked("lzma_xz_empty", LZMA(), b"")
    enc = lzma.compress(text[:1000]) + lzma.compress(text[1000:]) + b"\0\0\0\0trailing"
    assert LZMA().decode(enc) == text
    write("lzma_xz_two_streams", text, enc)
    checked("lzma_alone", LZMA(format=lzma.FORMAT_ALONE, preset=2), text)
    raw = LZMA(format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_DELTA, "dist": 4}, {"id": lzma.FILTER_LZMA2, "preset": 1}])
    checked("lzma_raw_delta_lzma2", raw, text)
    lzma1 = LZMA(format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "preset": 1, "lc": 0, "lp": 2, "pb": 2}])
    checked("lzma_raw_lzma1", lzma1, text)
    x86 = LZMA(format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_X86, "start_offset": 16}, {"id": lzma.FILTER_LZMA2}])
    checked("lzma_raw_x86_lzma2", x86, bytes(range(256)) * 8 + b"\xe8\x00\x01\x00\x00" * 50)


def write_shuffle_and_checksums():
    rng = np.random.default_rng(99)
    for size in [2, 4, 8]:
        checked(f"shuffle_e{size}", Shuffle(elementsize=size), rng.integers(0, 256, 96 * size, "u1").tobytes())
    data = rng.integers(0, 256, 1001, "u1").tobytes()
    checked("crc32", CRC32(), data)
    checked("crc32_end", CRC32(location="end"), data)
    checked("adler32", Adler32(), data)
    checked("adler32_end", Adler32(location="end"), data)
    checked("crc32c", CRC32C(), data)
    checked("crc32c_start", CRC32C(location="start"), data)
    checked("fletcher32", Fletcher32(), data[:1000])
    checked("fletcher32_odd", Fletcher32(), data[:37])
    # Large words in blocks past 360 words: the sums fold.
    checked("fletcher32_long", Fletcher32(), (b"\xff\xfe" * 5000) + data)
    checked("jenkins_lookup3", JenkinsLookup3(), data[:37])
    checked("jenkins_lookup3_12", JenkinsLookup3(), data[:24])
    checked("jenkins_lookup3_initval", JenkinsLookup3(initval=5), data)
    checked("jenkins_lookup3_empty", JenkinsLookup3(), b"")


def b64(buf):
    return base64.b64encode(bytes(buf)).decode()


# Values that test wrap-around, rounding ties, NaN, infinities and out-of-range conversions.
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 1.7, -1.7, 127.5, 128.0, -128.5, 255.5, 256.0,
               300.7, -300.7, 32767.5, 65504.0, 65519.99, 65520.0, 1e5, 2.0**31 + 0.5,
               -(2.0**31) - 0.5, 4294967295.5, 1e10, -1e10, 2.0**63, -(2.0**63), 2.0**64,
               1e300, 5e-324, 6e-8, 3e-8, 1 / 3, np.nan, np.inf, -np.inf]
EDGE_INTS = [0, 1, -1, 127, 128, -128, 255, 256, 32767, 32768, -32768, 65535, 65536,
             2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**53 + 1, 2**63 - 1, -(2**63),
             (1 << 60) + (1 << 36) + 1, 123456789]
# NaN payloads, quiet and signalling, by bit pattern.
NAN_BITS = {"<f2": [0x7C01, 0xFE00, 0x7E01], "<f4": [0x7FA00001, 0xFFC00000, 0x7FC12345],
            "<f8": [0x7FF4000000000001, 0xFFF8000000000000, 0x7FF8123456789ABC]}


def edge_values(dtype):
    dt = np.dtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind == "b":
            return np.array([False, True, True, False], dt)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            ints = [v for v in EDGE_INTS if info.min <= v <= info.max]
            return np.array(ints, dt)
        if dt.kind == "f":
            base = np.array(EDGE_FLOATS, "f8").astype(dt)
            nans = np.array(NAN_BITS["<" + dt.str[1:]], f"<u{dt.itemsize}").view("<" + dt.str[1:])
            return np.concatenate([base, nans]).astype(dt)
        parts = np.array(EDGE_FLOATS, "f8").astype(f"f{dt.itemsize // 2}")
        return (parts + 1j * parts[::-1]).astype(dt)


CAST_TYPES = ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8",
              "<f2", "<f4", "<f8", "<c8", "<c16", ">i4", ">f8"]


def write_casts():
    """numpy's astype between every pair of numeric types, on edge values."""
    values, casts = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for src in CAST_TYPES:
            x = edge_values(src)
            values[src] = b64(x.tobytes())
            casts[src] = {dst: b64(x.astype(dst).tobytes()) for dst in CAST_TYPES}
    (OUT / "casts.json").write_text(json.dumps({"values": values, "casts": casts}, indent=0) + "\n")


def write_filters():
    """numcodecs' array filters: input, what numcodecs encodes it to, what it decodes back."""
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.normal(size=200)) * 10 + 1000
    cases = []

    def case(name, codec, arr, undefined=False):
        """`undefined`: the encoding converts NaN, infinities or values out of range to
        integers, which numpy leaves to the CPU (zarrfs refuses to encode them)."""
        arr = np.asarray(arr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc = codec.encode(arr)
            dec = codec.decode(enc)
        config = codec.get_config()
        cases.append({"name": name, "config": config, "dtype": arr.dtype.str,
                      "raw": b64(arr.tobytes()), "enc": b64(np.asarray(enc).tobytes()),
                      "dec": b64(np.asarray(dec).tobytes()), "encode_undefined": undefined})

    ints = np.concatenate([np.arange(100, 140, 3), [127, -128, 0, 5, -7, 100, 32767, -32768]])
    case("delta_i2_i1", Delta(dtype="<i2", astype="|i1"), ints.astype("<i2"))
    case("delta_i4", Delta(dtype="<i4"), (ints * 70001).astype("<i4"))
    case("delta_i4_be", Delta(dtype=">i4", astype=">i2"), ints.astype(">i4"))
    case("delta_u1", Delta(dtype="|u1"), np.array([5, 3, 250, 4, 0, 255, 1], "u1"))
    case("delta_u2_i1", Delta(dtype="<u2", astype="|i1"), np.array([10, 20, 0, 65535, 65530], "<u2"))
    case("delta_i8_f8", Delta(dtype="<i8", astype="<f8"), (ints * 10**12).astype("<i8"))
    case("delta_f4", Delta(dtype="<f4"), walk.astype("<f4"))
    case("delta_f4_f8", Delta(dtype="<f4", astype="<f8"), walk.astype("<f4"))
    case("delta_f8_f4", Delta(dtype="<f8", astype="<f4"), walk)
    case("delta_f8_i4", Delta(dtype="<f8", astype="<i4"), walk)
    case("delta_f2", Delta(dtype="<f2"), (walk / 10).astype("<f2"))
    case("delta_f8_nan", Delta(dtype="<f8"), np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 2.0]))
    case("delta_c8", Delta(dtype="<c8"), (walk[:20] + 1j * walk[20:40]).astype("<c8"))

    floats = np.concatenate([np.linspace(1000, 1001, 20), [999.95, 1000.05, 1000.25, 1000.35]])
    nonfinite = np.concatenate([floats, [np.nan, np.inf, -np.inf, 1e30]])
    case("fso_doc", FixedScaleOffset(offset=1000, scale=10, dtype="<f8", astype="|u1"), floats)
    case("fso_nonfinite", FixedScaleOffset(offset=1000, scale=10, dtype="<f8", astype="|u1"),
         nonfinite, undefined=True)
    case("fso_zarrita", FixedScaleOffset(offset=1000, scale=10, dtype="<f4", astype="<i2"), walk.astype("<f4"))
    case("fso_f2_i1", FixedScaleOffset(offset=100, scale=0.5, dtype="<f2", astype="|i1"), (walk / 10).astype("<f2"))
    case("fso_i4_u1", FixedScaleOffset(offset=100, scale=1, dtype="<i4", astype="|u1"), ints.astype("<i4") + 30)
    case("fso_i4_float_offset", FixedScaleOffset(offset=0.5, scale=3, dtype="<i4", astype="<i2"), ints.astype("<i4"))
    case("fso_i2_wrap", FixedScaleOffset(offset=-30000, scale=2, dtype="<i2", astype="<i2"), ints.astype("<i2"))
    case("fso_f8_f4", FixedScaleOffset(offset=-3.25, scale=1.5, dtype="<f8", astype="<f4"), walk)
    case("fso_f8_u4", FixedScaleOffset(offset=0, scale=1e6, dtype="<f8", astype="<u4"), walk)
    case("fso_be", FixedScaleOffset(offset=1000, scale=100, dtype=">f8", astype=">i4"), walk.astype(">f8"))
    case("fso_f4_f2", FixedScaleOffset(offset=1000.5, scale=0.1, dtype="<f4", astype="<f2"), walk.astype("<f4"))

    for digits in [-1, 0, 1, 2, 3, 6]:
        case(f"quantize_f8_{digits}", Quantize(digits=digits, dtype="<f8"), walk / 7)
    case("quantize_f4_f2", Quantize(digits=2, dtype="<f4", astype="<f2"), (walk / 100).astype("<f4"))
    case("quantize_f2", Quantize(digits=1, dtype="<f2"), (walk / 100).astype("<f2"))
    case("quantize_be", Quantize(digits=3, dtype=">f8", astype=">f4"), (walk / 7).astype(">f8"))

    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, 3.0, 65504.0, 1e-7], "f8")
    for keep, dtype in [(3, "<f4"), (0, "<f4"), (23, "<f4"), (10, "<f8"), (51, "<f8"), (2, "<f2")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.concatenate([walk / 3, specials]).astype(dtype)
        case(f"bitround_{dtype[1:]}_{keep}", BitRound(keepbits=keep), values)

    for n in [7, 8, 17]:
        case(f"packbits_{n}", PackBits(), rng.integers(0, 2, n).astype(bool))

    case("astype_f8_f4", AsType(encode_dtype="<f4", decode_dtype="<f8"), walk)
    case("astype_i4_u1", AsType(encode_dtype="|u1", decode_dtype="<i4"), ints.astype("<i4"))
    case("astype_f8_f2", AsType(encode_dtype="<f2", decode_dtype="<f8"), walk)
    case("astype_i8_be_i2", AsType(encode_dtype=">i2", decode_dtype="<i8"), ints.astype("<i8"))
    case("astype_f8_i2", AsType(encode_dtype="<i2", decode_dtype="<f8"), floats * 30)
    case("astype_nonfinite", AsType(encode_dtype="<i2", decode_dtype="<f8"), nonfinite, undefined=True)

    (OUT / "filters.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
