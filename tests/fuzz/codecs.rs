//! Every codec decoder takes random and mutated encodings without panicking or allocating at
//! once more than a bound of the input's size and the chunk's declared size: each v2
//! compressor and filter id, each v3 codec name, whole chains of them, the vlen decoders
//! and the shard index decoder. Compression bombs (32 MiB of zeros in a few bytes) are
//! among the inputs.

use super::alloc::largest_during;
use super::corpus::{apply, edits, Edit, CORPUS};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::LazyLock;
use zarrfs::codec::array_to_bytes::vlen::{VlenChain, VlenCodec};
use zarrfs::codec::{
    numcodecs_bytes_codec, v3_bytes_codec, BytesToBytesCodec, ChunkRepr, CodecChain,
    ShardIndexCodec,
};
use zarrfs::metadata::{v2, ArrayMeta, DataType};

/// The most a chain may allocate at once decoding a chunk: a few times the chunk's declared
/// size (an array→array stage may hold elements of up to 16 bytes for 1) and the input's
/// size, and twice what a stage of unknown output size may decode to (a few MiB).
fn chain_bound(chunk_bytes: usize, input: usize) -> usize {
    16 * chunk_bytes + 4 * input + (5 << 20)
}

/// The most a codec may allocate at once decoding to at most `max_len` bytes.
fn decode_bound(max_len: usize, input: usize) -> usize {
    2 * max_len + 4 * input + (1 << 20)
}

/// Most a bounded decode may return.
const MAX_LEN: usize = 1 << 20;

/// Compressors as v2 `compressor`s (and `numcodecs.<id>` configurations).
const COMPRESSORS: &[&str] = &[
    r#"{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1}"#,
    r#"{"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2}"#,
    r#"{"id": "blosc", "cname": "blosclz", "clevel": 9, "shuffle": 0}"#,
    r#"{"id": "blosc", "cname": "lz4hc", "clevel": 5, "shuffle": -1}"#,
    r#"{"id": "blosc", "cname": "zlib", "clevel": 1, "shuffle": 1, "blocksize": 256}"#,
    r#"{"id": "blosc", "cname": "snappy", "clevel": 1, "shuffle": 1}"#,
    r#"{"id": "zstd", "level": 1}"#,
    r#"{"id": "zstd", "level": 3, "checksum": true}"#,
    r#"{"id": "gzip", "level": 1}"#,
    r#"{"id": "zlib", "level": 1}"#,
    r#"{"id": "lz4", "acceleration": 1}"#,
    r#"{"id": "bz2", "level": 1}"#,
    r#"{"id": "lzma", "preset": 0}"#,
    r#"{"id": "lzma", "format": 2, "preset": 0}"#,
    r#"{"id": "lzma", "format": 0, "preset": 0}"#,
    r#"{"id": "lzma", "format": 3, "filters": [{"id": 3, "dist": 4}, {"id": 33, "preset": 0}]}"#,
    r#"{"id": "lzma", "format": 3, "filters": [{"id": 4611686018427387905, "preset": 0}]}"#,
];

/// Bytes→bytes filters (v2 `filters` entries).
const BYTES_FILTERS: &[&str] = &[
    r#"{"id": "shuffle", "elementsize": 4}"#,
    r#"{"id": "crc32"}"#,
    r#"{"id": "crc32", "location": "end"}"#,
    r#"{"id": "adler32"}"#,
    r#"{"id": "crc32c", "location": "end"}"#,
    r#"{"id": "fletcher32"}"#,
    r#"{"id": "jenkins_lookup3", "initval": 7}"#,
];

/// Array→array filters; `DTYPE` stands for the array's type.
const ARRAY_FILTERS: &[&str] = &[
    r#"{"id": "delta", "dtype": "DTYPE"}"#,
    r#"{"id": "delta", "dtype": "DTYPE", "astype": "<i2"}"#,
    r#"{"id": "fixedscaleoffset", "offset": 1000, "scale": 10, "dtype": "DTYPE", "astype": "<i4"}"#,
    r#"{"id": "quantize", "digits": 3, "dtype": "DTYPE"}"#,
    r#"{"id": "bitround", "keepbits": 5}"#,
    r#"{"id": "packbits"}"#,
    r#"{"id": "astype", "encode_dtype": "<f4", "decode_dtype": "DTYPE"}"#,
    r#"{"id": "astype", "encode_dtype": "|u1", "decode_dtype": "DTYPE"}"#,
];

/// Element types of the synthesized arrays.
const DTYPES: &[&str] = &[
    "|b1", "|u1", "<i2", ">i4", "<u8", "<f2", "<f4", ">f8", "<c8", "|S3", "<M8[ns]",
];

/// v3 codec entries; `DTYPE` stands for the array's NumPy type.
const V3_CODECS: &[&str] = &[
    r#"{"name": "bytes", "configuration": {"endian": "little"}}"#,
    r#"{"name": "bytes", "configuration": {"endian": "big"}}"#,
    r#"{"name": "transpose", "configuration": {"order": [1, 0]}}"#,
    r#"{"name": "transpose", "configuration": {"order": [0]}}"#,
    r#"{"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0}}"#,
    r#"{"name": "blosc", "configuration": {"cname": "zstd", "clevel": 1, "shuffle": "bitshuffle", "typesize": 1, "blocksize": 0}}"#,
    r#"{"name": "zstd", "configuration": {"level": 0, "checksum": true}}"#,
    r#"{"name": "gzip", "configuration": {"level": 1}}"#,
    r#"{"name": "crc32c"}"#,
    r#"{"name": "numcodecs.bz2", "configuration": {"level": 1}}"#,
    r#"{"name": "numcodecs.lzma", "configuration": {"preset": 0}}"#,
    r#"{"name": "numcodecs.zlib", "configuration": {"level": 1}}"#,
    r#"{"name": "numcodecs.lz4"}"#,
    r#"{"name": "numcodecs.shuffle", "configuration": {"elementsize": 2}}"#,
    r#"{"name": "numcodecs.adler32"}"#,
    r#"{"name": "numcodecs.fletcher32"}"#,
    r#"{"name": "numcodecs.delta", "configuration": {"dtype": "DTYPE"}}"#,
    r#"{"name": "numcodecs.astype", "configuration": {"encode_dtype": "<f8", "decode_dtype": "DTYPE"}}"#,
    r#"{"name": "numcodecs.bitround", "configuration": {"keepbits": 3}}"#,
    r#"{"name": "numcodecs.fixedscaleoffset", "configuration": {"offset": 5, "scale": 4, "dtype": "DTYPE", "astype": "<u2"}}"#,
    r#"{"name": "numcodecs.quantize", "configuration": {"digits": 2, "dtype": "DTYPE"}}"#,
    r#"{"name": "numcodecs.packbits"}"#,
    r#"{"name": "numcodecs.jenkins_lookup3"}"#,
    r#"{"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 1], "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1}}], "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}], "index_location": "start"}}"#,
    r#"{"name": "sharding_indexed", "configuration": {"chunk_shape": [1], "codecs": [{"name": "bytes"}, {"name": "numcodecs.bz2"}]}}"#,
];

fn config(template: &str, dtype: &str) -> Value {
    serde_json::from_str(&template.replace("DTYPE", dtype)).expect("a valid template")
}

/// A compression bomb for each compressor: an encoding of 32 MiB of zeros (of 8 MiB for
/// the formats that hold one stream only, whose decoders know their output size or are
/// bounded as they go). Streams of 1 MiB are repeated: numcodecs decodes them one after
/// another, and encoding less keeps the test quick.
static BOMBS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let one_stream = |template: &str| {
        !["gzip", "bz2", "lzma", "zstd"]
            .iter()
            .any(|id| template.contains(&format!("\"{id}\"")))
    };
    COMPRESSORS
        .iter()
        .map(|template| {
            let codec = bytes_codec(&config(template, "|u1"));
            // lzma's automatic format cannot encode; it decodes xz streams.
            let encode = |zeros: &[u8]| {
                let xz = || bytes_codec(&json!({"id": "lzma", "preset": 0}));
                codec.encode(zeros).or_else(|_| xz().encode(zeros)).unwrap()
            };
            if one_stream(template) {
                encode(&[0; 8 << 20])
            } else {
                encode(&[0; 1 << 20]).repeat(32)
            }
        })
        .collect()
});

fn bytes_codec(config: &Value) -> Box<dyn BytesToBytesCodec> {
    let id = config["id"].as_str().expect("an id");
    numcodecs_bytes_codec(id, config, 4, 4)
        .expect("a bytes codec")
        .expect("a valid configuration")
}

/// Deterministic bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Where a decoder's input comes from.
#[derive(Debug, Clone)]
enum Input {
    /// Random bytes.
    Random(Vec<u8>),
    /// A valid encoding of random data, edited.
    Encoded(u64, Vec<Edit>),
    /// A compression bomb, edited.
    Bomb(usize, Vec<Edit>),
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024).prop_map(Input::Random),
        (any::<u64>(), edits()).prop_map(|(seed, e)| Input::Encoded(seed, e)),
        (any::<usize>(), edits()).prop_map(|(i, e)| Input::Bomb(i, e)),
    ]
}

/// The bytes of `input`; `encode` makes a valid encoding of a chunk's bytes, `compressor`
/// is the position in [`COMPRESSORS`] of the codec decoding, if any, whose bomb is taken.
fn input_bytes(
    input: &Input,
    chunk_bytes: usize,
    compressor: Option<usize>,
    encode: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Vec<u8> {
    match input {
        Input::Random(bytes) => bytes.clone(),
        Input::Encoded(seed, edits) => {
            let valid = encode(&noise(*seed, chunk_bytes)).unwrap_or_default();
            apply(&valid, edits)
        }
        Input::Bomb(i, edits) => apply(&BOMBS[compressor.unwrap_or(*i) % BOMBS.len()], edits),
    }
}

/// Decodes `encoded` with `chain`, checking the largest allocation against the bound.
fn check_chain(chain: &CodecChain, encoded: &[u8], what: &str) -> Result<(), TestCaseError> {
    let (_, largest) = largest_during(|| chain.decode(encoded));
    let limit = chain_bound(chain.chunk_bytes(), encoded.len());
    prop_assert!(
        largest <= limit,
        "{what}: {largest} bytes allocated at once (bound {limit}) decoding {} bytes",
        encoded.len()
    );
    Ok(())
}

/// Decodes `encoded` with a variable-length chain, checking the largest allocation.
fn check_vlen(chain: &VlenChain, encoded: &[u8], what: &str) -> Result<(), TestCaseError> {
    let (_, largest) = largest_during(|| chain.decode(encoded, MAX_LEN));
    let limit = decode_bound(MAX_LEN + 32 * chain.count(), encoded.len());
    prop_assert!(
        largest <= limit,
        "{what}: {largest} bytes allocated at once"
    );
    Ok(())
}

/// A small v2 array's metadata with these codecs.
fn v2_meta(
    dtype: &str,
    shape: &[u64],
    filters: Vec<Value>,
    compressor: Option<Value>,
    order: &str,
) -> Option<ArrayMeta> {
    let doc = json!({"zarr_format": 2, "shape": shape, "chunks": shape, "dtype": dtype,
        "fill_value": null, "order": order, "filters": filters, "compressor": compressor});
    v2::parse_zarray(&doc, json!({})).ok()
}

proptest! {
    #![proptest_config(super::config())]

    /// The stored chunks of the committed stores, edited.
    #[test]
    fn stored_chunks_edited(array in any::<usize>(), chunk in any::<usize>(), edits in edits()) {
        let arrays = &CORPUS.arrays;
        let array = &arrays[array % arrays.len()];
        let encoded = apply(&array.chunks[chunk % array.chunks.len()], &edits);
        if array.meta.dtype.is_variable() {
            if let Ok(chain) = VlenChain::from_meta(&array.meta) {
                check_vlen(&chain, &encoded, &array.label)?;
            }
        } else if let Ok(chain) = CodecChain::from_meta(&array.meta) {
            check_chain(&chain, &encoded, &array.label)?;
        }
    }

    /// v2 chains of filters and a compressor.
    #[test]
    fn v2_chains(
        dtype in prop::sample::select(DTYPES),
        shape in prop::collection::vec(1..24u64, 1..=3),
        array_filters in prop::collection::vec(prop::sample::select(ARRAY_FILTERS), 0..2),
        bytes_filters in prop::collection::vec(
            prop::sample::select([BYTES_FILTERS, COMPRESSORS].concat()), 0..3),
        compressor in prop::option::of(prop::sample::select(COMPRESSORS)),
        fortran in any::<bool>(),
        input in arb_input(),
    ) {
        let filters = array_filters.iter().chain(&bytes_filters)
            .map(|t| config(t, dtype)).collect();
        let order = if fortran { "F" } else { "C" };
        let compressor_config = compressor.map(|t| config(t, dtype));
        let Some(meta) = v2_meta(dtype, &shape, filters, compressor_config, order)
        else {
            return Ok(());
        };
        let Ok(chain) = CodecChain::from_meta(&meta) else {
            return Ok(());
        };
        let own = compressor.and_then(|c| COMPRESSORS.iter().position(|t| *t == c));
        let encoded = input_bytes(&input, chain.chunk_bytes(), own, |data| chain.encode(data).ok());
        check_chain(&chain, &encoded, &format!("{:?}", meta.codecs))?;
    }

    /// v3 codec lists, in any order (most are refused).
    #[test]
    fn v3_chains(
        dtype in prop::sample::select(&DTYPES[..10]),
        shape in prop::collection::vec(1..24usize, 1..=2),
        codecs in prop::collection::vec(prop::sample::select(V3_CODECS), 1..5),
        input in arb_input(),
    ) {
        let codecs: Vec<Value> = codecs.iter().map(|t| config(t, dtype)).collect();
        let dtype = DataType::parse_numpy(dtype).unwrap();
        let repr = ChunkRepr { shape, dtype };
        let fill = vec![0; dtype.size];
        let Ok(chain) = CodecChain::from_v3(&codecs, repr, &fill) else {
            return Ok(());
        };
        let encoded = input_bytes(&input, chain.chunk_bytes(), None, |data| chain.encode(data).ok());
        check_chain(&chain, &encoded, &Value::Array(codecs).to_string())?;
    }

    /// Each bytes→bytes codec alone, by v2 id and v3 name: bounded decodes and decodes
    /// into a buffer of the expected size.
    #[test]
    fn bytes_codecs(
        template in prop::sample::select([BYTES_FILTERS, COMPRESSORS].concat()),
        v3 in any::<bool>(),
        input in arb_input(),
        max_len in 0..MAX_LEN,
        out_len in 0..(64usize << 10),
    ) {
        let config = config(template, "|u1");
        let codec = if v3 {
            let name = format!("numcodecs.{}", config["id"].as_str().unwrap());
            v3_bytes_codec(&name, &config, 4).unwrap()
        } else {
            bytes_codec(&config)
        };
        let own = COMPRESSORS.iter().position(|t| *t == template);
        let encoded = input_bytes(&input, out_len, own, |data| codec.encode(data).ok());
        let (_, largest) = largest_during(|| codec.decode_bounded(&encoded, max_len));
        let limit = decode_bound(max_len, encoded.len());
        prop_assert!(largest <= limit, "{template}: {largest} bytes for a bound of {max_len}");
        let mut out = vec![0u8; out_len];
        let (_, largest) = largest_during(|| codec.decode_into(&encoded, &mut out));
        let limit = decode_bound(out_len, encoded.len());
        prop_assert!(largest <= limit, "{template}: {largest} bytes decoding into {out_len}");
    }

    /// The variable-length element decoders.
    #[test]
    fn vlen_decoders(
        kind in 0..5usize,
        count in prop_oneof![0..64usize, 0..1usize << 28],
        items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..64),
        edits in edits(),
    ) {
        let codec = match kind {
            0 => VlenCodec::Utf8,
            1 => VlenCodec::Bytes,
            2 => VlenCodec::Array(DataType::parse_numpy("<f8").unwrap()),
            3 => VlenCodec::Array(DataType::parse_numpy("|b1").unwrap()),
            _ => VlenCodec::Json,
        };
        // The item count a chunk declares is its element count, or any.
        let declared = if edits.is_empty() { count } else { items.len() };
        let mut framed = (declared as u32).to_le_bytes().to_vec();
        for item in &items {
            framed.extend((item.len() as u32).to_le_bytes());
            framed.extend(item);
        }
        if codec == VlenCodec::Json {
            // numcodecs' json2: the elements, then the dtype and the shape.
            let mut doc: Vec<Value> = items.iter().map(|i| json!(i.len())).collect();
            doc.extend([json!("|O"), json!([declared])]);
            framed = serde_json::to_vec(&doc).unwrap();
        }
        let encoded = apply(&framed, &edits);
        // Each element's text takes a few dozen bytes per stored byte at most.
        let (_, largest) = largest_during(|| codec.decode(&encoded, count));
        let limit = decode_bound(64 * encoded.len(), encoded.len());
        prop_assert!(largest <= limit, "{largest} bytes for {} of {count} elements", encoded.len());
    }

    /// The shard index decoder, over edited indexes of any shard length.
    #[test]
    fn shard_indexes(
        per_shard in prop::collection::vec(1..6usize, 1..=3),
        start in any::<bool>(),
        big in any::<bool>(),
        checksum in any::<bool>(),
        present in prop::collection::vec(prop::option::of(0..64usize), 0..216),
        edits in edits(),
        shard_len in any::<u64>(),
    ) {
        let endian = if big { "big" } else { "little" };
        let mut index_codecs = vec![json!({"name": "bytes", "configuration": {"endian": endian}})];
        if checksum {
            index_codecs.push(json!({"name": "crc32c"}));
        }
        let location = if start { "start" } else { "end" };
        let configuration = json!({"index_codecs": index_codecs, "index_location": location});
        let codec = ShardIndexCodec::new(&configuration, &per_shard).unwrap();
        let chunks: Vec<Option<Vec<u8>>> = (0..codec.chunks())
            .map(|i| present.get(i).copied().flatten().map(|len| vec![7; len]))
            .collect();
        let refs: Vec<Option<&[u8]>> = chunks.iter().map(Option::as_deref).collect();
        let shard = codec.assemble(&refs).unwrap();
        let range = codec.range(shard.len() as u64).unwrap();
        let encoded = apply(&shard[range.start as usize..range.end as usize], &edits);
        let shard_len = if edits.is_empty() { shard.len() as u64 } else { shard_len };
        let ((), largest) = largest_during(|| {
            if let Ok(index) = codec.decode(&encoded, shard_len) {
                for i in 0..codec.chunks() + 1 {
                    let _ = index.chunk(i, None);
                    let _ = index.chunk(i, Some(3));
                }
            }
            let _ = codec.decode_shard(&apply(&shard, &edits));
        });
        prop_assert!(largest <= decode_bound(16 * codec.chunks(), shard.len()), "{largest} bytes");
    }
}
