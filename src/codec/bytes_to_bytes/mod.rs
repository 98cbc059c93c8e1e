//! Bytes→bytes codecs: compressors and checksums over a chunk's encoded bytes.

mod blosc;
mod bz2;
mod checksum32;
mod crc32c_codec;
mod gzip;
mod lz4;
mod lzma;
mod lzma_filters;
mod shuffle;
mod streams;
mod zlib;
mod zstd_codec;

pub use blosc::{BloscBlocks, BloscCodec, BloscCompressor, BloscShuffle};
pub use bz2::Bz2Codec;
pub use checksum32::{Checksum, Checksum32Codec, Location};
pub use crc32c_codec::Crc32cCodec;
pub use gzip::GzipCodec;
pub use lz4::Lz4Codec;
pub use lzma::LzmaCodec;
pub use shuffle::ShuffleCodec;
pub use zlib::ZlibCodec;
pub use zstd_codec::ZstdCodec;

use super::CodecError;
use serde_json::Value;

/// A bytes-to-bytes codec (compressor) as used by Zarr v2 `compressor` and
/// Zarr v3 bytes->bytes codecs.
pub trait BytesToBytesCodec: Send + Sync + std::fmt::Debug {
    /// Short human description with parameters, e.g.
    /// "blosc(cname=lz4,clevel=5,shuffle=byte,blocksize=0)".
    fn describe(&self) -> String;
    /// Decode a whole encoded buffer.
    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Decode a whole encoded buffer whose decoded size is not known in advance, refusing
    /// ([`CodecError::Corrupt`]) to produce more than `max_len` bytes. Codecs that learn the
    /// decoded size from their input check it before allocating anything.
    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let out = self.decode(encoded)?;
        check_bound(&self.describe(), out.len(), max_len)?;
        Ok(out)
    }
    /// Decode into `out`, whose length is the exact expected decoded size; a
    /// different decoded size is [`CodecError::Corrupt`].
    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError>;
    /// Encode, producing exactly what numcodecs / zarr-python / tensorstore decode.
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Whether encoded buffers may be stored in blocks that decode on their own (see
    /// [`BloscBlocks`]).
    fn stores_blocks(&self) -> bool {
        false
    }
    /// The encoded size of `decoded_len` bytes, for codecs that tell it in advance
    /// (checksums, shuffles); `None` for compressors.
    fn encoded_len(&self, _decoded_len: usize) -> Option<usize> {
        None
    }
}

/// An error when `len` decoded bytes exceed `max_len`.
pub(crate) fn check_bound(codec: &str, len: usize, max_len: usize) -> Result<(), CodecError> {
    if len > max_len {
        return Err(CodecError::corrupt(
            codec,
            format!("decodes to {len} bytes, more than the {max_len} a chunk may hold"),
        ));
    }
    Ok(())
}

/// Build a codec from a Zarr v2 `compressor` JSON object, e.g.
/// `{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1,"blocksize":0}`: any numcodecs
/// bytes→bytes codec (see [`numcodecs_bytes_codec`]).
///
/// `itemsize` is the array dtype's item size, used as the blosc typesize
/// (unless the object carries an explicit `"typesize"`, as numcodecs allows)
/// and to resolve blosc AUTOSHUFFLE (-1). Unknown extra fields are tolerated.
pub fn v2_compressor(
    config: &Value,
    itemsize: usize,
) -> Result<Box<dyn BytesToBytesCodec>, CodecError> {
    let obj = config
        .as_object()
        .ok_or_else(|| CodecError::config("compressor", "expected a JSON object"))?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| CodecError::config("compressor", "missing string field \"id\""))?;
    numcodecs_bytes_codec(id, config, itemsize, NUMCODECS_SHUFFLE_ELEMENTSIZE)
        .unwrap_or_else(|| Err(CodecError::Unsupported(id.to_string())))
}

/// numcodecs' default `Shuffle` element size.
pub const NUMCODECS_SHUFFLE_ELEMENTSIZE: usize = 4;

/// numcodecs' bytes→bytes codec `id` configured by `config` (a v2 `compressor` or filter,
/// or the configuration of a v3 `numcodecs.<id>`): blosc, zstd, gzip, zlib, lz4, bz2, lzma,
/// shuffle, crc32, crc32c, adler32, fletcher32, jenkins_lookup3; `None` for other ids.
/// `typesize` is blosc's element size unless configured; `elementsize` is shuffle's.
pub fn numcodecs_bytes_codec(
    id: &str,
    config: &Value,
    typesize: usize,
    elementsize: usize,
) -> Option<Result<Box<dyn BytesToBytesCodec>, CodecError>> {
    fn boxed<C: BytesToBytesCodec + 'static>(codec: C) -> Box<dyn BytesToBytesCodec> {
        Box::new(codec)
    }
    let empty = Value::Object(Default::default());
    Some(match id {
        "blosc" => decode_whatever_the_settings(
            BloscCodec::from_v2(config, typesize),
            BloscCodec::from_v2(&empty, typesize),
        ),
        "zstd" => decode_whatever_the_settings(
            ZstdCodec::from_config(id, config),
            ZstdCodec::from_config(id, &empty),
        ),
        "gzip" => decode_whatever_the_settings(
            GzipCodec::from_config(id, config),
            GzipCodec::from_config(id, &empty),
        ),
        "zlib" => decode_whatever_the_settings(
            ZlibCodec::from_config(id, config),
            ZlibCodec::from_config(id, &empty),
        ),
        "lz4" => decode_whatever_the_settings(
            Lz4Codec::from_config(id, config),
            Lz4Codec::from_config(id, &empty),
        ),
        "bz2" => decode_whatever_the_settings(
            Bz2Codec::from_config(id, config),
            Bz2Codec::from_config(id, &empty),
        ),
        "lzma" => LzmaCodec::from_config(config).map(boxed),
        "shuffle" => ShuffleCodec::from_config(config, elementsize).map(boxed),
        _ => return Checksum32Codec::from_config(id, config).map(|codec| codec.map(boxed)),
    })
}

/// A codec whose stored frames describe themselves, configured with settings that only an
/// encoder uses and that cannot be encoded with (numcodecs could not either): it decodes
/// like the codec and refuses to encode, saying why.
#[derive(Debug)]
struct DecodeOnly {
    codec: Box<dyn BytesToBytesCodec>,
    reason: String,
}

impl BytesToBytesCodec for DecodeOnly {
    fn describe(&self) -> String {
        format!("{} (decode only: {})", self.codec.describe(), self.reason)
    }
    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.codec.decode(encoded)
    }
    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        self.codec.decode_bounded(encoded, max_len)
    }
    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        self.codec.decode_into(encoded, out)
    }
    fn encode(&self, _decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        Err(CodecError::Encode {
            codec: self.codec.describe(),
            reason: self.reason.clone(),
        })
    }
    fn stores_blocks(&self) -> bool {
        self.codec.stores_blocks()
    }
    fn encoded_len(&self, decoded_len: usize) -> Option<usize> {
        self.codec.encoded_len(decoded_len)
    }
}

/// `configured` when its settings are valid; otherwise, for codecs whose decoding needs none
/// of them, `with_defaults` made decode-only: decoders never reject a setting they do not use.
fn decode_whatever_the_settings<C: BytesToBytesCodec + 'static>(
    configured: Result<C, CodecError>,
    with_defaults: Result<C, CodecError>,
) -> Result<Box<dyn BytesToBytesCodec>, CodecError> {
    match configured {
        Ok(codec) => Ok(Box::new(codec)),
        Err(err @ CodecError::Config { .. }) => Ok(Box::new(DecodeOnly {
            codec: Box::new(with_defaults?),
            reason: err.to_string(),
        })),
        Err(err) => Err(err),
    }
}

/// Build a codec from a Zarr v3 bytes->bytes codec entry: `name` plus its
/// `configuration` object (null or absent fields take the spec defaults).
///
/// Supported: "blosc" (cname, clevel, shuffle "noshuffle"/"shuffle"/"bitshuffle",
/// typesize, blocksize), "zstd" (level, checksum), "gzip" (level), "crc32c", and the
/// `numcodecs.<id>` names zarr-python 3 writes for numcodecs' bytes→bytes codecs (configured
/// as numcodecs configures them; blosc compresses bytes, typesize 1, as zarr-python hands
/// them). `itemsize` is the fallback blosc typesize when the configuration has none, and
/// shuffle's element size.
pub fn v3_bytes_codec(
    name: &str,
    configuration: &Value,
    itemsize: usize,
) -> Result<Box<dyn BytesToBytesCodec>, CodecError> {
    if !(configuration.is_object() || configuration.is_null()) {
        return Err(CodecError::config(
            name,
            "configuration must be a JSON object",
        ));
    }
    match name {
        "blosc" => decode_whatever_the_settings(
            BloscCodec::from_v3(configuration, itemsize),
            BloscCodec::from_v3(&Value::Null, itemsize),
        ),
        "zstd" => decode_whatever_the_settings(
            ZstdCodec::from_config(name, configuration),
            ZstdCodec::from_config(name, &Value::Null),
        ),
        "gzip" => decode_whatever_the_settings(
            GzipCodec::from_config(name, configuration),
            GzipCodec::from_config(name, &Value::Null),
        ),
        "crc32c" => Ok(Box::new(Crc32cCodec)),
        other => other
            .strip_prefix("numcodecs.")
            .and_then(|id| numcodecs_bytes_codec(id, configuration, 1, itemsize))
            .unwrap_or_else(|| Err(CodecError::Unsupported(other.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util;
    use serde_json::json;

    #[test]
    fn v2_dispatch_and_describe() {
        let c = v2_compressor(
            &json!({"id":"blosc","cname":"lz4","clevel":5,"shuffle":1,"blocksize":0}),
            4,
        )
        .unwrap();
        assert_eq!(
            c.describe(),
            "blosc(cname=lz4,clevel=5,shuffle=byte,typesize=4,blocksize=0)"
        );
        let c = v2_compressor(&json!({"id":"zstd","level":3}), 4).unwrap();
        assert_eq!(c.describe(), "zstd(level=3,checksum=false)");
        let c = v2_compressor(&json!({"id":"gzip","level":6}), 4).unwrap();
        assert_eq!(c.describe(), "gzip(level=6)");
        let c = v2_compressor(&json!({"id":"zlib"}), 4).unwrap();
        assert_eq!(c.describe(), "zlib(level=1)");
        let c = v2_compressor(&json!({"id":"lz4","acceleration":1}), 4).unwrap();
        assert_eq!(c.describe(), "lz4(acceleration=1)");
    }

    #[test]
    fn v2_unknown_and_bad_configs() {
        for id in ["pcodec", "zfpy", "delta", "pickle"] {
            match v2_compressor(&json!({ "id": id }), 1) {
                Err(CodecError::Unsupported(name)) => assert_eq!(name, id),
                other => panic!("unexpected {other:?}"),
            }
        }
        let err = v2_compressor(&json!({"id":"blosc","cname":"brotli"}), 1).unwrap_err();
        assert!(
            matches!(err, CodecError::Unsupported(ref m) if m.contains("brotli")),
            "{err}"
        );
        assert!(matches!(
            v2_compressor(&json!(null), 1),
            Err(CodecError::Config { .. })
        ));
        assert!(matches!(
            v2_compressor(&json!({"level":1}), 1),
            Err(CodecError::Config { .. })
        ));
        // Unknown extra fields are tolerated.
        v2_compressor(&json!({"id":"zlib","level":1,"extra":[1,2]}), 1).unwrap();
    }

    #[test]
    fn v3_dispatch() {
        let c = v3_bytes_codec(
            "blosc",
            &json!({"cname":"zstd","clevel":3,"shuffle":"bitshuffle","typesize":2,"blocksize":0}),
            8,
        )
        .unwrap();
        assert_eq!(
            c.describe(),
            "blosc(cname=zstd,clevel=3,shuffle=bit,typesize=2,blocksize=0)"
        );
        let c = v3_bytes_codec("zstd", &json!({"level":0,"checksum":true}), 1).unwrap();
        assert_eq!(c.describe(), "zstd(level=0,checksum=true)");
        let c = v3_bytes_codec("gzip", &json!({"level":5}), 1).unwrap();
        assert_eq!(c.describe(), "gzip(level=5)");
        assert_eq!(
            v3_bytes_codec("crc32c", &json!({}), 1).unwrap().describe(),
            "crc32c"
        );
        assert!(matches!(
            v3_bytes_codec("zlib", &json!({}), 1),
            Err(CodecError::Unsupported(_))
        ));
        assert!(matches!(
            v3_bytes_codec("gzip", &json!([1]), 1),
            Err(CodecError::Config { .. })
        ));
    }

    /// Settings only an encoder uses never stop decoding; those numcodecs maps are mapped the
    /// same way for writing, the others refuse to encode.
    #[test]
    fn encoder_settings_never_stop_decoding() {
        let data = test_util::sample(10_000);
        let decode_only = [
            json!({"id":"blosc","clevel":"high"}),
            json!({"id":"blosc","clevel":12}),
            json!({"id":"blosc","shuffle":7}),
            json!({"id":"blosc","blocksize":-3}),
            json!({"id":"gzip","level":12}),
            json!({"id":"zlib","level":-2}),
            json!({"id":"lz4","acceleration":"fast"}),
            json!({"id":"zstd","checksum":"yes"}),
        ];
        for config in &decode_only {
            let id = config["id"].as_str().unwrap();
            let codec = v2_compressor(config, 4).unwrap();
            let reference = v2_compressor(&json!({ "id": id }), 4).unwrap();
            let stored = reference.encode(&data).unwrap();
            assert_eq!(codec.decode(&stored).unwrap(), data, "{config}");
            let mut out = vec![0; data.len()];
            codec.decode_into(&stored, &mut out).unwrap();
            assert_eq!(out, data, "{config}");
            assert!(
                matches!(codec.encode(&data), Err(CodecError::Encode { .. })),
                "{config}"
            );
        }
        let shuffled = v3_bytes_codec("blosc", &json!({"shuffle": true}), 4).unwrap();
        let stored = v3_bytes_codec("blosc", &json!({}), 4)
            .unwrap()
            .encode(&data)
            .unwrap();
        assert_eq!(shuffled.decode(&stored).unwrap(), data);
        assert!(shuffled.encode(&data).is_err());
        // Mapped as numcodecs maps them: zlib's default level, libzstd's clamped range.
        for (config, described) in [
            (json!({"id":"gzip","level":-1}), "gzip(level=6)"),
            (json!({"id":"zlib","level":-1}), "zlib(level=6)"),
            (
                json!({"id":"zstd","level":100}),
                "zstd(level=22,checksum=false)",
            ),
            (
                json!({"id":"zstd","level":-1_000_000}),
                "zstd(level=-131072,checksum=false)",
            ),
        ] {
            let codec = v2_compressor(&config, 4).unwrap();
            assert_eq!(codec.describe(), described);
            assert_eq!(codec.decode(&codec.encode(&data).unwrap()).unwrap(), data);
        }
    }

    /// A stream decoding to more than the bound is refused: compression bombs cost nothing.
    #[test]
    fn bounded_decodes_refuse_bombs() {
        let zeros = vec![0u8; 8 << 20];
        for config in [
            json!({"id":"blosc"}),
            json!({"id":"zstd"}),
            json!({"id":"gzip"}),
            json!({"id":"zlib"}),
            json!({"id":"lz4"}),
            json!({"id":"bz2"}),
            json!({"id":"lzma","preset":0}),
            json!({"id":"lzma","format":2,"preset":0}),
        ] {
            let codec = v2_compressor(&config, 4).unwrap();
            let bomb = codec.encode(&zeros).unwrap();
            assert!(bomb.len() < zeros.len() / 8, "{config}");
            assert!(
                matches!(
                    codec.decode_bounded(&bomb, 1 << 20),
                    Err(CodecError::Corrupt { .. })
                ),
                "{config}"
            );
            assert_eq!(codec.decode_bounded(&bomb, zeros.len()).unwrap(), zeros);
        }
        // zstd frames that do not say their size are bounded while they stream.
        let mut streamed = Vec::new();
        {
            use std::io::Write;
            let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 1).unwrap();
            encoder.include_contentsize(false).unwrap();
            encoder.write_all(&zeros).unwrap();
            encoder.finish().unwrap();
        }
        let zstd = v2_compressor(&json!({"id":"zstd"}), 1).unwrap();
        assert!(zstd.decode_bounded(&streamed, 1 << 20).is_err());
        assert_eq!(zstd.decode_bounded(&streamed, zeros.len()).unwrap(), zeros);
    }

    /// Every codec must decode what it encodes, through both decode paths.
    #[test]
    fn all_codecs_round_trip() {
        let configs = [
            json!({"id":"blosc"}),
            json!({"id":"zstd"}),
            json!({"id":"gzip"}),
            json!({"id":"zlib"}),
            json!({"id":"lz4"}),
        ];
        for cfg in &configs {
            let c = v2_compressor(cfg, 4).unwrap();
            for len in [0usize, 1, 3, 4, 17, 1000, 65_537] {
                let data = test_util::sample(len);
                let enc = c.encode(&data).unwrap();
                assert_eq!(c.decode(&enc).unwrap(), data, "{} len {len}", c.describe());
                let mut out = vec![0xAA; len];
                c.decode_into(&enc, &mut out).unwrap();
                assert_eq!(out, data, "{} len {len}", c.describe());
            }
        }
    }

    /// Garbage, truncation and wrong expected sizes are errors for every codec.
    #[test]
    fn all_codecs_reject_bad_input() {
        let configs = [
            json!({"id":"blosc"}),
            json!({"id":"blosc","cname":"zstd","shuffle":2}),
            json!({"id":"zstd"}),
            json!({"id":"gzip"}),
            json!({"id":"zlib"}),
            json!({"id":"lz4"}),
        ];
        let data = test_util::sample(5000);
        for cfg in &configs {
            let c = v2_compressor(cfg, 4).unwrap();
            let name = c.describe();
            let enc = c.encode(&data).unwrap();
            for cut in [0, 1, 4, 15, 16, 17, enc.len() / 2, enc.len() - 1] {
                let r = c.decode(&enc[..cut]);
                assert!(
                    matches!(r, Err(CodecError::Corrupt { .. })),
                    "{name} cut {cut}: {r:?}"
                );
                let mut out = vec![0; data.len()];
                let r = c.decode_into(&enc[..cut], &mut out);
                assert!(
                    matches!(r, Err(CodecError::Corrupt { .. })),
                    "{name} cut {cut}: {r:?}"
                );
            }
            for expected in [0, 1, data.len() - 1, data.len() + 1, data.len() * 2] {
                let mut out = vec![0; expected];
                let r = c.decode_into(&enc, &mut out);
                assert!(
                    matches!(r, Err(CodecError::Corrupt { .. })),
                    "{name} expected {expected}: {r:?}"
                );
            }
            for seed in 0..200u64 {
                let junk = test_util::noise(seed, (seed as usize * 37) % 3000);
                // Must not panic; any Ok must at least have the right size.
                let _ = c.decode(&junk);
                let mut out = vec![0; 1000];
                let _ = c.decode_into(&junk, &mut out);
            }
            // Flip bytes one at a time in the frame; must never panic.
            for i in 0..enc.len().min(400) {
                let mut bad = enc.clone();
                bad[i] ^= 0x5A;
                let _ = c.decode(&bad);
                let mut out = vec![0; data.len()];
                let _ = c.decode_into(&bad, &mut out);
            }
        }
    }
}
