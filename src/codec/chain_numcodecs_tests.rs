//! Chains with numcodecs filters and codecs, as zarr-python composes them in Zarr v2 and v3.

use super::{ChunkRepr, CodecChain, CodecError};
use crate::metadata::{DataType, Order};
use serde_json::{json, Value};

fn repr(shape: &[usize], dtype: &str) -> ChunkRepr {
    ChunkRepr {
        shape: shape.to_vec(),
        dtype: DataType::parse_numpy(dtype).unwrap(),
    }
}

fn v2(
    filters: Value,
    compressor: Value,
    order: Order,
    r: ChunkRepr,
) -> Result<CodecChain, CodecError> {
    let compressor = (!compressor.is_null()).then_some(compressor);
    CodecChain::from_v2(filters.as_array().unwrap(), compressor.as_ref(), order, r)
}

fn v3(codecs: Value, r: ChunkRepr) -> Result<CodecChain, CodecError> {
    let fill = vec![0; r.dtype.size];
    CodecChain::from_v3(codecs.as_array().unwrap(), r, &fill)
}

fn i4(values: &[i32], big: bool) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        })
        .collect()
}

#[test]
fn v2_filters_apply_to_the_flat_chunk_in_memory_order() {
    // A 2x3 F-order chunk: the delta runs down the columns, as the bytes lie in memory.
    let chain = v2(
        json!([{"id": "delta", "dtype": "<i4", "astype": "<i2"}]),
        Value::Null,
        Order::F,
        repr(&[2, 3], "<i4"),
    )
    .unwrap();
    let c_order = i4(&[0, 10, 20, 1, 11, 21], false);
    // Memory (F) order 0, 1, 10, 11, 20, 21: differences 0, 1, 9, 1, 9, 1 as i2.
    let stored: Vec<u8> = [0i16, 1, 9, 1, 9, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(chain.encode(&c_order).unwrap(), stored);
    assert_eq!(chain.decode(&stored).unwrap(), c_order);
}

#[test]
fn v2_chains_of_every_kind_round_trip() {
    let data: Vec<u8> = (0..240u32)
        .flat_map(|v| ((v * 7) % 1000).to_le_bytes())
        .collect();
    for (filters, compressor) in [
        (
            json!([{"id": "delta", "dtype": "<u4"}, {"id": "shuffle", "elementsize": 4}]),
            json!({"id": "zlib"}),
        ),
        (json!([{"id": "crc32"}]), json!({"id": "bz2", "level": 9})),
        (
            json!([{"id": "astype", "encode_dtype": "<u2", "decode_dtype": "<u4"}]),
            json!({"id": "lzma"}),
        ),
        (json!([]), json!({"id": "adler32"})),
        (json!([]), json!({"id": "fletcher32"})),
        (json!([]), json!({"id": "jenkins_lookup3", "initval": 3})),
        (
            json!([]),
            json!({"id": "lzma", "format": 3, "filters": [{"id": 33, "preset": 0}]}),
        ),
        (
            json!([{"id": "fixedscaleoffset", "offset": 0, "scale": 2, "dtype": "<u4", "astype": "<u2"}]),
            Value::Null,
        ),
    ] {
        let chain = v2(
            filters.clone(),
            compressor.clone(),
            Order::C,
            repr(&[12, 20], "<u4"),
        )
        .unwrap();
        let stored = chain.encode(&data).unwrap();
        assert_eq!(
            chain.decode(&stored).unwrap(),
            data,
            "{filters} {compressor}"
        );
    }
}

#[test]
fn v2_filters_out_of_order_or_unknown_are_errors() {
    for filters in [
        json!([{"id": "shuffle"}, {"id": "delta", "dtype": "<i4"}]),
        json!([{"id": "pickle"}]),
        json!([{"id": "vlen-utf8"}]),
        json!([{"id": "no-such-filter"}]),
    ] {
        assert!(
            v2(filters.clone(), Value::Null, Order::C, repr(&[4], "<i4")).is_err(),
            "{filters}"
        );
    }
}

#[test]
fn v3_numcodecs_filters_see_the_stored_bytes_and_cast_into_the_array() {
    // zarr-python's bytes codec hands numcodecs.delta the stored bytes as they are; the
    // delta's little-endian output is assigned to the big-endian array by value.
    let codecs = json!([
        {"name": "numcodecs.delta", "configuration": {"dtype": "<i4"}},
        {"name": "bytes", "configuration": {"endian": "big"}},
        {"name": "numcodecs.crc32", "configuration": {}},
    ]);
    let chain = v3(codecs, repr(&[4], ">i4")).unwrap();
    let diffs = i4(&[0, 3, 3, 3], false);
    let mut stored = crc32fast::hash(&diffs).to_le_bytes().to_vec();
    stored.extend_from_slice(&diffs);
    assert_eq!(chain.decode(&stored).unwrap(), i4(&[0, 3, 6, 9], true));
    assert_eq!(chain.encode(&i4(&[0, 3, 6, 9], true)).unwrap(), stored);
    assert!(chain
        .describe()
        .starts_with("cast(encode_dtype=<i4,decode_dtype=>i4) → delta"));
    // Without numcodecs filters the bytes codec converts as usual.
    let plain = v3(
        json!([{"name": "bytes", "configuration": {"endian": "big"}}]),
        repr(&[4], "<i4"),
    )
    .unwrap();
    assert_eq!(
        plain.encode(&i4(&[1, 2, 3, 4], false)).unwrap(),
        i4(&[1, 2, 3, 4], true)
    );
}

#[test]
fn v3_numcodecs_names_compose_with_transpose() {
    let data: Vec<u8> = (0..24i32).flat_map(|v| (v * v).to_le_bytes()).collect();
    for codecs in [
        json!([{"name": "transpose", "configuration": {"order": [1, 0]}},
               {"name": "numcodecs.delta", "configuration": {"dtype": "int32"}},
               {"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "numcodecs.bz2", "configuration": {"level": 5}}]),
        json!([{"name": "numcodecs.fixedscaleoffset",
                "configuration": {"offset": 0, "scale": 1, "dtype": "int32", "astype": "<i8"}},
               {"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "numcodecs.shuffle", "configuration": {}},
               {"name": "numcodecs.lzma", "configuration": {"preset": 1}},
               {"name": "numcodecs.fletcher32", "configuration": {}}]),
        json!([{"name": "numcodecs.astype", "configuration": {"encode_dtype": "<i2"}},
               {"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "numcodecs.blosc", "configuration": {"cname": "zstd", "clevel": 3, "shuffle": 2}},
               {"name": "numcodecs.adler32", "configuration": {"location": "end"}},
               {"name": "numcodecs.jenkins_lookup3", "configuration": {}}]),
        json!([{"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "numcodecs.zlib", "configuration": {"level": 8}},
               {"name": "numcodecs.crc32c", "configuration": {}}]),
    ] {
        let chain = v3(codecs.clone(), repr(&[4, 6], "<i4")).unwrap();
        let stored = chain.encode(&data).unwrap();
        assert_eq!(chain.decode(&stored).unwrap(), data, "{codecs}");
    }
}

#[test]
fn v3_numcodecs_names_zarrfs_cannot_read_are_errors() {
    for name in [
        "numcodecs.pcodec",
        "numcodecs.zfpy",
        "numcodecs.pickle",
        "numcodecs.nope",
    ] {
        let codecs =
            json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": name}]);
        let err = v3(codecs, repr(&[4], "<i4")).unwrap_err();
        assert!(matches!(err, CodecError::Unsupported(_)), "{name}: {err}");
    }
    // A numcodecs filter after the bytes codec is out of place.
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "numcodecs.delta", "configuration": {"dtype": "<i4"}}]);
    assert!(v3(codecs, repr(&[4], "<i4")).is_err());
}

#[test]
fn v3_numcodecs_filters_decoding_into_an_array_of_non_numbers_are_refused() {
    // Found by tests/fuzz: booleans cast into 3-byte strings read past each element.
    let codecs = json!([{"name": "numcodecs.packbits"},
                        {"name": "bytes", "configuration": {"endian": "little"}}]);
    let err = v3(codecs, repr(&[1], "|S3")).unwrap_err();
    assert!(matches!(err, CodecError::Unsupported(_)), "{err}");
}
