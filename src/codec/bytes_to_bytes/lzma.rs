//! LZMA codec (numcodecs `LZMA`: Python's `lzma.compress`/`lzma.decompress`) over liblzma:
//! `.xz` streams, legacy `.lzma` (alone) streams, format detection, and raw streams with an
//! explicit filter chain.

use liblzma::stream::{Action, Check, Status, Stream};
use serde_json::Value;

use super::lzma_filters::{FilterChain, FilterSpec};
use super::streams::{decode_streams, Sink, StreamDecoder};
use crate::codec::{int_field, BytesToBytesCodec, CodecError};

const CODEC: &str = "lzma";
/// Python's `lzma.FORMAT_AUTO`, `FORMAT_XZ`, `FORMAT_ALONE`, `FORMAT_RAW`.
const FORMAT_AUTO: i64 = 0;
const FORMAT_XZ: i64 = 1;
const FORMAT_ALONE: i64 = 2;
const FORMAT_RAW: i64 = 3;
/// liblzma's default preset.
const PRESET_DEFAULT: u32 = 6;

/// The LZMA codec: `format` (numcodecs default `FORMAT_XZ`), and the encoder's `check`,
/// `preset` and `filters` (a raw stream needs its filters to decode too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LzmaCodec {
    format: i64,
    filters: Option<FilterChain>,
    /// The encoder, or why numcodecs could not encode with these settings.
    encoder: Result<Encoder, String>,
}

/// How chunks are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Encoder {
    /// An `.xz` stream from a preset or the filter chain, with an integrity check (Python's
    /// `lzma.CHECK_*` code).
    Xz { preset: u32, check: i64 },
    /// A legacy `.lzma` stream.
    Alone { preset: u32 },
    /// A raw stream of the filter chain.
    Raw,
}

impl LzmaCodec {
    /// From numcodecs' configuration: `format` (0 auto, 1 xz, 2 alone, 3 raw; default 1),
    /// `check` (default -1), `preset` (default null), `filters` (default null).
    pub(crate) fn from_config(config: &Value) -> Result<Self, CodecError> {
        let format = int_field(CODEC, config, "format")?.unwrap_or(FORMAT_XZ);
        if !(FORMAT_AUTO..=FORMAT_RAW).contains(&format) {
            return Err(CodecError::config(
                CODEC,
                format!("invalid format {format}"),
            ));
        }
        let filters = FilterChain::parse(config.get("filters"))?;
        match (format, &filters) {
            (FORMAT_RAW, None) => {
                return Err(CodecError::config(CODEC, "FORMAT_RAW needs filters"));
            }
            (FORMAT_AUTO..=FORMAT_ALONE, Some(_)) => {
                // numcodecs hands the filters to lzma.decompress, which refuses them.
                return Err(CodecError::Unsupported(format!(
                    "lzma filters with format {format} (numcodecs cannot decode them)"
                )));
            }
            _ => {}
        }
        let encoder = Self::encoder_settings(format, config, filters.as_ref());
        Ok(LzmaCodec {
            format,
            filters,
            encoder,
        })
    }

    /// The encoder Python's `lzma.compress` would run with these settings, or why it raises.
    fn encoder_settings(
        format: i64,
        config: &Value,
        filters: Option<&FilterChain>,
    ) -> Result<Encoder, String> {
        let check = int_field(CODEC, config, "check")
            .map_err(|e| e.to_string())?
            .unwrap_or(-1);
        let preset = match config.get("preset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or_else(|| format!("invalid preset {v}"))?,
            ),
        };
        if preset.is_some() && filters.is_some() {
            return Err("both a preset and a filter chain".into());
        }
        let preset = preset.unwrap_or(PRESET_DEFAULT);
        if format != FORMAT_XZ && !matches!(check, -1 | 0) {
            return Err("integrity checks are only supported by FORMAT_XZ".into());
        }
        match format {
            FORMAT_XZ if xz_check(check).is_none() => Err(format!("unsupported check {check}")),
            FORMAT_XZ => Ok(Encoder::Xz { preset, check }),
            FORMAT_ALONE if filters.is_none() => Ok(Encoder::Alone { preset }),
            FORMAT_RAW => Ok(Encoder::Raw),
            _ => Err(format!("cannot compress in format {format}")),
        }
    }

    fn new_decoder(&self) -> Result<Stream, String> {
        let stream = match (self.format, &self.filters) {
            (FORMAT_AUTO, _) => Stream::new_auto_decoder(u64::MAX, 0),
            (FORMAT_ALONE, _) => Stream::new_lzma_decoder(u64::MAX),
            (FORMAT_RAW, Some(filters)) => {
                Stream::new_raw_decoder(&filters.build().map_err(|e| e.to_string())?)
            }
            _ => Stream::new_stream_decoder(u64::MAX, 0),
        };
        stream.map_err(|e| format!("cannot start a decoder: {e}"))
    }

    fn new_encoder(&self) -> Result<Stream, CodecError> {
        let encoder = self
            .encoder
            .as_ref()
            .map_err(|reason| CodecError::encode(CODEC, reason.clone()))?;
        let chain = || {
            self.filters
                .as_ref()
                .ok_or_else(|| CodecError::encode(CODEC, "no filter chain"))?
                .build()
        };
        let preset_options = |preset: u32| {
            FilterSpec::Lzma {
                lzma2: false,
                preset,
                settings: Vec::new(),
            }
            .lzma_options()
        };
        let stream = match encoder {
            Encoder::Xz { preset, check } => {
                let check = xz_check(*check).unwrap_or(Check::Crc64);
                match &self.filters {
                    Some(_) => Stream::new_stream_encoder(&chain()?, check),
                    None => Stream::new_easy_encoder(*preset, check),
                }
            }
            Encoder::Alone { preset } => Stream::new_lzma_encoder(&preset_options(*preset)?),
            Encoder::Raw => Stream::new_raw_encoder(&chain()?),
        };
        stream.map_err(|e| CodecError::encode(CODEC, format!("cannot start an encoder: {e}")))
    }
}

/// liblzma's integrity check for Python's check code (-1: the default, CRC64).
fn xz_check(code: i64) -> Option<Check> {
    match code {
        -1 | 4 => Some(Check::Crc64),
        0 => Some(Check::None),
        1 => Some(Check::Crc32),
        10 => Some(Check::Sha256),
        _ => None,
    }
}

impl StreamDecoder for Stream {
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize, bool), String> {
        let (before_in, before_out) = (self.total_in(), self.total_out());
        let status = self
            .process(input, output, Action::Run)
            .map_err(|e| format!("invalid lzma data: {e}"))?;
        Ok((
            (self.total_in() - before_in) as usize,
            (self.total_out() - before_out) as usize,
            status == Status::StreamEnd,
        ))
    }
}

impl BytesToBytesCodec for LzmaCodec {
    fn describe(&self) -> String {
        let mut text = format!("lzma(format={}", self.format);
        if let Ok(Encoder::Xz { preset, .. } | Encoder::Alone { preset }) = &self.encoder {
            text += &format!(",preset={preset}");
        }
        if let Some(filters) = &self.filters {
            text += &format!(",filters={}", filters.0.len());
        }
        text + ")"
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        let sink = Sink::Grow(&mut out, max_len);
        decode_streams(CODEC, false, encoded, sink, || self.new_decoder())?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        decode_streams(CODEC, false, encoded, Sink::Exact(out), || {
            self.new_decoder()
        })
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut stream = self.new_encoder()?;
        let mut out = Vec::with_capacity(decoded.len() / 2 + 128);
        loop {
            let consumed = stream.total_in() as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(4096));
            }
            let status = stream
                .process_vec(&decoded[consumed..], &mut out, Action::Finish)
                .map_err(|e| CodecError::encode(CODEC, e.to_string()))?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, noise, sample};
    use serde_json::json;

    fn codec(config: Value) -> LzmaCodec {
        LzmaCodec::from_config(&config).unwrap()
    }

    fn raw_chain() -> Value {
        json!([{"id": 3, "dist": 4}, {"id": 33, "preset": 1}])
    }

    #[test]
    fn decodes_numcodecs_frames() {
        for (config, stems) in [
            (
                json!({}),
                &[
                    "lzma_xz",
                    "lzma_xz_p9e",
                    "lzma_xz_sha256",
                    "lzma_xz_two_streams",
                    "lzma_xz_empty",
                ][..],
            ),
            (json!({"format": 2}), &["lzma_alone"][..]),
            (json!({"format": 0}), &["lzma_xz", "lzma_alone"][..]),
            (
                json!({"format": 3, "filters": raw_chain()}),
                &["lzma_raw_delta_lzma2"][..],
            ),
            (
                json!({"format": 3, "filters": [{"id": 4611686018427387905u64, "preset": 1, "lc": 0, "lp": 2, "pb": 2}]}),
                &["lzma_raw_lzma1"][..],
            ),
            (
                json!({"format": 3, "filters": [{"id": 4, "start_offset": 16}, {"id": 33}]}),
                &["lzma_raw_x86_lzma2"][..],
            ),
        ] {
            assert_decodes_vectors(&codec(config), stems);
        }
    }

    #[test]
    fn round_trips_every_format() {
        let data = sample(50_000);
        for config in [
            json!({}),
            json!({"preset": 0}),
            json!({"preset": 9, "check": 10}),
            json!({"check": 0}),
            json!({"check": 1, "preset": 2147483654u64}),
            json!({"format": 2, "preset": 3}),
            json!({"format": 3, "filters": raw_chain()}),
            json!({"format": 1, "filters": raw_chain(), "check": -1}),
        ] {
            let c = LzmaCodec::from_config(&config);
            let Ok(c) = c else {
                // xz with filters: numcodecs cannot decode it.
                assert!(matches!(c, Err(CodecError::Unsupported(_))), "{config}");
                continue;
            };
            let enc = c.encode(&data).unwrap();
            assert_eq!(c.decode(&enc).unwrap(), data, "{config}");
            let mut out = vec![0u8; data.len()];
            c.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data, "{config}");
        }
    }

    #[test]
    fn encoder_only_settings_never_stop_decoding() {
        let data = sample(1000);
        let stored = codec(json!({})).encode(&data).unwrap();
        for config in [
            json!({"check": 7}),
            json!({"preset": 99}),
            json!({"format": 0}),
        ] {
            let c = codec(config.clone());
            assert_eq!(c.decode(&stored).unwrap(), data, "{config}");
            assert!(
                matches!(c.encode(&data), Err(CodecError::Encode { .. })),
                "{config}"
            );
        }
        for bad in [
            json!({"format": 4}),
            json!({"format": 3}),
            json!({"format": 3, "filters": [{"id": 33, "bogus": 1}]}),
            json!({"format": 3, "filters": []}),
            json!({"format": 3, "filters": [{"id": 3, "dist": 0}]}),
            json!({"format": 3, "filters": [{"id": 99}]}),
        ] {
            assert!(LzmaCodec::from_config(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_and_truncated_streams() {
        let c = codec(json!({}));
        let data = noise(5, 10_000);
        let enc = c.encode(&data).unwrap();
        let corrupt = |r: Result<Vec<u8>, CodecError>| matches!(r, Err(CodecError::Corrupt { .. }));
        assert!(corrupt(c.decode(b"")));
        assert!(corrupt(c.decode(&enc[..enc.len() - 1])));
        let mut flipped = enc.clone();
        flipped[enc.len() / 2] ^= 0x40;
        assert!(corrupt(c.decode(&flipped)));
        // After a whole stream, a stream header that is not one is ignored; bytes too few to
        // be a header leave a stream that never ends (Python's lzma does the same).
        let mut trailing = enc.clone();
        trailing.extend_from_slice(b"\0\0\0\0garbage!");
        assert_eq!(c.decode(&trailing).unwrap(), data);
        assert!(corrupt(c.decode(&trailing[..trailing.len() - 1])));
        let mut out = vec![0u8; data.len() - 1];
        assert!(c.decode_into(&enc, &mut out).is_err());
        for seed in 0..100 {
            let _ = c.decode(&noise(seed, 200));
        }
    }
}
