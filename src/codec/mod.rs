//! Chunk codecs, grouped by what they map, as in the Zarr v3 model: array→array codecs
//! ([`array_to_array`]: transpose and numcodecs' filters), one array→bytes codec
//! ([`array_to_bytes`]: `bytes`), and bytes→bytes codecs ([`bytes_to_bytes`]: blosc, zstd,
//! gzip, zlib, lz4, bz2, lzma, shuffle and checksums). A [`chain::CodecChain`] composes them
//! into the codec of one array; it is itself array→bytes. Zarr v2 `filters`/`compressor`/
//! `order` map onto the same chain.
//!
//! Every decoder validates its input: garbage, truncated frames and frames whose decoded size
//! differs from the expected one yield [`CodecError::Corrupt`], never a panic or an
//! out-of-bounds read.

pub mod array_to_array;
pub mod array_to_bytes;
pub mod bytes_to_bytes;
pub mod chain;
#[cfg(test)]
mod chain_numcodecs_tests;

pub use array_to_array::{c_to_f_order, f_to_c_order, ArrayToArrayCodec};
pub use array_to_bytes::{ArrayToBytesCodec, ShardIndex, ShardIndexCodec, ShardingCodec};
pub use bytes_to_bytes::{
    numcodecs_bytes_codec, v2_compressor, v3_bytes_codec, BloscBlocks, BloscCodec, BloscCompressor,
    BloscShuffle, BytesToBytesCodec, GzipCodec, Lz4Codec, ZlibCodec, ZstdCodec,
};
pub use chain::{ChunkRepr, CodecChain};

use serde_json::Value;

/// Errors from encoding/decoding or configuring a codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Unknown codec id or unsupported option; the message names the codec.
    #[error("unsupported codec {0}")]
    Unsupported(String),
    /// A codec configuration field is missing, mistyped or out of range.
    #[error("invalid {codec} configuration: {reason}")]
    Config {
        /// Codec name.
        codec: String,
        /// What is wrong with the configuration.
        reason: String,
    },
    /// The encoded input is garbage, truncated, or decodes to the wrong size.
    #[error("{codec} decode failed: {reason}")]
    Corrupt {
        /// Codec name.
        codec: String,
        /// What went wrong.
        reason: String,
    },
    /// Encoding failed.
    #[error("{codec} encode failed: {reason}")]
    Encode {
        /// Codec name.
        codec: String,
        /// What went wrong.
        reason: String,
    },
}

impl CodecError {
    pub(crate) fn config(codec: &str, reason: impl Into<String>) -> Self {
        CodecError::Config {
            codec: codec.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(codec: &str, reason: impl Into<String>) -> Self {
        CodecError::Corrupt {
            codec: codec.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn encode(codec: &str, reason: impl Into<String>) -> Self {
        CodecError::Encode {
            codec: codec.to_string(),
            reason: reason.into(),
        }
    }
}

/// Read an optional integer field of a configuration object.
pub(crate) fn int_field(codec: &str, config: &Value, key: &str) -> Result<Option<i64>, CodecError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            CodecError::config(codec, format!("\"{key}\" must be an integer, got {v}"))
        }),
    }
}

/// Read an optional integer field and check it lies in `lo..=hi`.
pub(crate) fn int_field_in(
    codec: &str,
    config: &Value,
    key: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<i64>, CodecError> {
    match int_field(codec, config, key)? {
        Some(v) if !(lo..=hi).contains(&v) => Err(CodecError::config(
            codec,
            format!("\"{key}\" = {v} is outside {lo}..={hi}"),
        )),
        other => Ok(other),
    }
}

/// Read an optional boolean field of a configuration object.
pub(crate) fn bool_field(
    codec: &str,
    config: &Value,
    key: &str,
) -> Result<Option<bool>, CodecError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| {
            CodecError::config(codec, format!("\"{key}\" must be a boolean, got {v}"))
        }),
    }
}

/// Allocate a zeroed buffer of `len` bytes, reporting allocation failure
/// (e.g. an absurd size claimed by a corrupt header) as [`CodecError::Corrupt`].
///
/// The size is first tried with a fallible reservation; the buffer itself then
/// comes from the zeroed allocator, which maps large buffers lazily, so a
/// bogus size that the decoder then rejects costs no page touching.
pub(crate) fn alloc_zeroed(codec: &str, len: usize) -> Result<Vec<u8>, CodecError> {
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(len).map_err(|_| {
        CodecError::corrupt(
            codec,
            format!("cannot allocate {len} bytes for decoded data"),
        )
    })?;
    drop(probe);
    Ok(vec![0u8; len])
}

/// Error for a decoded size different from the expected one.
pub(crate) fn size_mismatch(codec: &str, got: usize, expected: usize) -> CodecError {
    CodecError::corrupt(
        codec,
        format!("decoded size {got} bytes differs from expected {expected} bytes"),
    )
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Deterministic pseudo-random bytes (xorshift), for garbage inputs.
    pub fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Compressible test data: a slowly varying numeric ramp with some noise.
    pub fn sample(len: usize) -> Vec<u8> {
        let n = noise(len as u64 + 7, len);
        (0..len)
            .map(|i| if i % 7 == 0 { n[i] } else { (i / 13) as u8 })
            .collect()
    }

    /// Read a test vector file from tests/data/codec.
    pub fn vector(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/codec")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Asserts that what `codec` encodes decodes back, through both decode paths and through
    /// `reference` (another implementation of the format), for lengths from 0 to 200,000.
    pub fn assert_round_trips(
        codec: &dyn super::BytesToBytesCodec,
        reference: impl Fn(&[u8]) -> Vec<u8>,
    ) {
        for len in [0usize, 1, 2, 100, 4097, 200_000] {
            let data = sample(len);
            let enc = codec.encode(&data).unwrap();
            assert_eq!(codec.decode(&enc).unwrap(), data, "{len} bytes");
            let mut out = vec![0u8; len];
            codec.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data, "{len} bytes");
            assert_eq!(reference(&enc), data, "{len} bytes, reference decoder");
        }
    }

    /// Asserts that `codec` decodes each test vector `<stem>.enc` to `<stem>.raw`, both into a
    /// new buffer and into one of the decoded size.
    pub fn assert_decodes_vectors(codec: &dyn super::BytesToBytesCodec, stems: &[&str]) {
        for stem in stems {
            let enc = vector(&format!("{stem}.enc"));
            let raw = vector(&format!("{stem}.raw"));
            assert_eq!(codec.decode(&enc).unwrap(), raw, "{stem}");
            let mut out = vec![0u8; raw.len()];
            codec.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, raw, "{stem}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_codec_name() {
        let e = CodecError::corrupt("zstd", "bad magic");
        assert_eq!(e.to_string(), "zstd decode failed: bad magic");
        let e = CodecError::config("blosc", "x");
        assert_eq!(e.to_string(), "invalid blosc configuration: x");
        let e = CodecError::encode("lz4", "y");
        assert_eq!(e.to_string(), "lz4 encode failed: y");
        assert_eq!(
            CodecError::Unsupported("bz2".into()).to_string(),
            "unsupported codec bz2"
        );
    }
}
