//! Zstandard codec (numcodecs `Zstd` and the Zarr v3 `zstd` codec).
//!
//! Frames normally record their decoded size; frames without it (streaming
//! writers) are decoded too. Concatenated frames decode to their
//! concatenation, as in libzstd.

use serde_json::Value;
use zstd::zstd_safe;

use crate::codec::{
    alloc_zeroed, bool_field, int_field, size_mismatch, BytesToBytesCodec, CodecError,
};

const CODEC: &str = "zstd";

/// The zstd codec: compression `level` (0 = libzstd default, negative =
/// fast modes) and whether frames carry a content checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdCodec {
    level: i32,
    checksum: bool,
}

impl ZstdCodec {
    /// Create a zstd codec; `level` must be within libzstd's supported range.
    pub fn new(level: i32, checksum: bool) -> Result<Self, CodecError> {
        let range = zstd_safe::min_c_level()..=zstd_safe::max_c_level();
        if !range.contains(&level) {
            return Err(CodecError::config(
                CODEC,
                format!(
                    "level must be {}..={}, got {level}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(Self { level, checksum })
    }

    /// From a config object with optional "level" (default 0) and
    /// "checksum" (default false).
    pub(crate) fn from_config(codec: &str, config: &Value) -> Result<Self, CodecError> {
        // libzstd clamps levels to its range, for numcodecs as for zarrs.
        let range = i64::from(zstd_safe::min_c_level())..=i64::from(zstd_safe::max_c_level());
        let level = int_field(codec, config, "level")?
            .unwrap_or(0)
            .clamp(*range.start(), *range.end());
        let checksum = bool_field(codec, config, "checksum")?.unwrap_or(false);
        Self::new(level as i32, checksum)
    }

    /// Total decoded size declared by the frame headers, if every frame
    /// declares one (skippable frames count as empty).
    fn declared_size(encoded: &[u8]) -> Result<Option<u64>, CodecError> {
        if encoded.is_empty() {
            return Err(CodecError::corrupt(CODEC, "empty input"));
        }
        let mut rest = encoded;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let size = zstd_safe::get_frame_content_size(rest)
                .map_err(|_| CodecError::corrupt(CODEC, "not a valid zstd frame"))?;
            let Some(size) = size else {
                return Ok(None);
            };
            total = total
                .checked_add(size)
                .ok_or_else(|| CodecError::corrupt(CODEC, "declared sizes overflow"))?;
            let frame_len = zstd_safe::find_frame_compressed_size(rest)
                .map_err(|_| CodecError::corrupt(CODEC, "truncated or invalid frame"))?;
            rest = rest.get(frame_len.max(1)..).unwrap_or_default();
        }
        Ok(Some(total))
    }
}

fn corrupt(e: std::io::Error) -> CodecError {
    CodecError::corrupt(CODEC, e.to_string())
}

impl BytesToBytesCodec for ZstdCodec {
    fn describe(&self) -> String {
        format!("zstd(level={},checksum={})", self.level, self.checksum)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        match Self::declared_size(encoded)? {
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| {
                    CodecError::corrupt(CODEC, format!("declared size {n} is too large"))
                })?;
                super::check_bound(CODEC, n, max_len)?;
                let mut out = alloc_zeroed(CODEC, n)?;
                self.decode_into(encoded, &mut out)?;
                Ok(out)
            }
            None => {
                use std::io::Read;
                let decoder = zstd::stream::read::Decoder::new(encoded).map_err(corrupt)?;
                let mut out = Vec::new();
                decoder
                    .take((max_len as u64).saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(corrupt)?;
                super::check_bound(CODEC, out.len(), max_len)?;
                Ok(out)
            }
        }
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if let Some(n) = Self::declared_size(encoded)? {
            if n != out.len() as u64 {
                return Err(CodecError::corrupt(
                    CODEC,
                    format!(
                        "frame declares {n} decoded bytes, expected {} bytes",
                        out.len()
                    ),
                ));
            }
        }
        let written = zstd::bulk::decompress_to_buffer(encoded, out).map_err(corrupt)?;
        if written != out.len() {
            return Err(size_mismatch(CODEC, written, out.len()));
        }
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let err = |e: std::io::Error| CodecError::encode(CODEC, e.to_string());
        let mut c = zstd::bulk::Compressor::new(self.level).map_err(err)?;
        c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(self.checksum))
            .map_err(err)?;
        c.set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(true))
            .map_err(err)?;
        c.compress(decoded).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, noise, sample};
    use std::io::Write;

    #[test]
    fn round_trip_levels_and_checksum() {
        for level in [-5, 0, 1, 3, 19] {
            for checksum in [false, true] {
                let c = ZstdCodec::new(level, checksum).unwrap();
                for len in [0usize, 1, 5, 4096, 150_001] {
                    let data = sample(len);
                    let enc = c.encode(&data).unwrap();
                    assert_eq!(
                        ZstdCodec::declared_size(&enc).unwrap(),
                        Some(len as u64),
                        "content size recorded"
                    );
                    assert_eq!(c.decode(&enc).unwrap(), data);
                    let mut out = vec![0u8; len];
                    c.decode_into(&enc, &mut out).unwrap();
                    assert_eq!(out, data);
                }
            }
        }
        assert!(matches!(
            ZstdCodec::new(23, false),
            Err(CodecError::Config { .. })
        ));
    }

    #[test]
    fn checksum_flag_in_frame_header() {
        let data = sample(1000);
        let with = ZstdCodec::new(3, true).unwrap().encode(&data).unwrap();
        let without = ZstdCodec::new(3, false).unwrap().encode(&data).unwrap();
        // Frame header descriptor bit 2 is the content checksum flag.
        assert_eq!(with[4] & 0x04, 0x04);
        assert_eq!(without[4] & 0x04, 0);
        assert_eq!(with.len(), without.len() + 4);
        let mut bad = with.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ZstdCodec::new(3, true).unwrap().decode(&bad),
            Err(CodecError::Corrupt { .. })
        ));
    }

    /// Frames from a streaming writer lack the content size.
    #[test]
    fn frames_without_content_size() {
        let data = sample(70_000);
        let mut w = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        w.include_contentsize(false).unwrap();
        w.write_all(&data).unwrap();
        let enc = w.finish().unwrap();
        assert_eq!(ZstdCodec::declared_size(&enc).unwrap(), None);
        let c = ZstdCodec::new(0, false).unwrap();
        assert_eq!(c.decode(&enc).unwrap(), data);
        let mut out = vec![0u8; data.len()];
        c.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, data);
        for wrong in [0, 1, data.len() - 1, data.len() + 1] {
            let mut out = vec![0u8; wrong];
            assert!(matches!(
                c.decode_into(&enc, &mut out),
                Err(CodecError::Corrupt { .. })
            ));
        }
        for cut in [enc.len() - 1, enc.len() / 2, 6] {
            assert!(matches!(
                c.decode(&enc[..cut]),
                Err(CodecError::Corrupt { .. })
            ));
            assert!(c.decode_into(&enc[..cut], &mut out).is_err());
        }
    }

    #[test]
    fn concatenated_frames() {
        let c = ZstdCodec::new(3, false).unwrap();
        let (a, b) = (sample(1000), noise(4, 500));
        let mut enc = c.encode(&a).unwrap();
        enc.extend(c.encode(&b).unwrap());
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(c.decode(&enc).unwrap(), want);
    }

    #[test]
    fn decodes_numcodecs_frames() {
        assert_decodes_vectors(
            &ZstdCodec::new(0, false).unwrap(),
            &["zstd_l0", "zstd_l5_checksum", "zstd_lneg", "zstd_empty"],
        );
    }

    #[test]
    fn rejects_garbage() {
        let c = ZstdCodec::new(3, false).unwrap();
        assert!(matches!(c.decode(&[]), Err(CodecError::Corrupt { .. })));
        assert!(matches!(
            c.decode_into(&[], &mut []),
            Err(CodecError::Corrupt { .. })
        ));
        let mut out = vec![0u8; 100];
        for seed in 0..300 {
            let mut junk = noise(seed, 300);
            assert!(c.decode(&junk).is_err());
            // Valid magic, random body.
            junk[..4].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
            let _ = c.decode(&junk);
            let _ = c.decode_into(&junk, &mut out);
        }
        // A header declaring an absurd size fails cleanly.
        let enc = c.encode(&sample(300)).unwrap();
        let mut huge = vec![0x28, 0xb5, 0x2f, 0xfd, 0xE0];
        huge.extend(u64::MAX.to_le_bytes());
        huge.extend(&enc[enc.len() - 10..]);
        assert!(matches!(c.decode(&huge), Err(CodecError::Corrupt { .. })));
    }
}
