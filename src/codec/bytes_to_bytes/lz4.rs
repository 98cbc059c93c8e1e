//! numcodecs `LZ4` codec: a 4-byte little-endian decoded size followed by
//! one raw LZ4 block.

use serde_json::Value;

use crate::codec::{alloc_zeroed, int_field_in, size_mismatch, BytesToBytesCodec, CodecError};

const CODEC: &str = "lz4";
const HEADER_LEN: usize = 4;
/// Largest input an LZ4 block can hold (LZ4_MAX_INPUT_SIZE).
const MAX_INPUT: usize = 0x7E00_0000;
/// Upper bound on the LZ4 block compression ratio (each extra length byte
/// adds at most 255 output bytes), used to reject absurd size headers.
const MAX_RATIO: usize = 255;

/// The numcodecs LZ4 codec. `acceleration` is recorded for the configuration
/// only: the encoder always produces standard (acceleration 1) LZ4 blocks,
/// which every LZ4 decoder reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lz4Codec {
    acceleration: i32,
}

impl Lz4Codec {
    /// Create an LZ4 codec with the given numcodecs `acceleration`.
    pub fn new(acceleration: i32) -> Self {
        Self { acceleration }
    }

    /// From a config object with optional integer "acceleration" (default 1).
    pub(crate) fn from_config(codec: &str, config: &Value) -> Result<Self, CodecError> {
        let acc = int_field_in(
            codec,
            config,
            "acceleration",
            i64::from(i32::MIN),
            i64::from(i32::MAX),
        )?
        .unwrap_or(1);
        Ok(Self::new(acc as i32))
    }

    /// Split the size header from the block.
    fn split(encoded: &[u8]) -> Result<(usize, &[u8]), CodecError> {
        if encoded.len() < HEADER_LEN {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "input of {} bytes is shorter than the size header",
                    encoded.len()
                ),
            ));
        }
        let (hdr, block) = encoded.split_at(HEADER_LEN);
        let n = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        Ok((n, block))
    }
}

impl BytesToBytesCodec for Lz4Codec {
    fn describe(&self) -> String {
        format!("lz4(acceleration={})", self.acceleration)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let (n, block) = Self::split(encoded)?;
        super::check_bound(CODEC, n, max_len)?;
        if n > block.len().saturating_mul(MAX_RATIO).saturating_add(16) {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "header claims {n} decoded bytes, impossible from a {}-byte block",
                    block.len()
                ),
            ));
        }
        let mut out = alloc_zeroed(CODEC, n)?;
        self.decode_into(encoded, &mut out)?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (n, block) = Self::split(encoded)?;
        if n != out.len() {
            return Err(size_mismatch(CODEC, n, out.len()));
        }
        let written = lz4_flex::block::decompress_into(block, out)
            .map_err(|e| CodecError::corrupt(CODEC, e.to_string()))?;
        if written != out.len() {
            return Err(size_mismatch(CODEC, written, out.len()));
        }
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        if decoded.len() > MAX_INPUT {
            return Err(CodecError::encode(
                CODEC,
                format!(
                    "input of {} bytes exceeds the LZ4 maximum of {MAX_INPUT}",
                    decoded.len()
                ),
            ));
        }
        let bound = lz4_flex::block::get_maximum_output_size(decoded.len());
        let mut out = vec![0u8; HEADER_LEN + bound];
        out[..HEADER_LEN].copy_from_slice(&(decoded.len() as u32).to_le_bytes());
        let n = lz4_flex::block::compress_into(decoded, &mut out[HEADER_LEN..])
            .map_err(|e| CodecError::encode(CODEC, e.to_string()))?;
        out.truncate(HEADER_LEN + n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, noise, sample};

    #[test]
    fn round_trip() {
        let c = Lz4Codec::new(1);
        for len in [0usize, 1, 3, 12, 13, 100, 65_536, 300_001] {
            for data in [sample(len), noise(len as u64, len), vec![7u8; len]] {
                let enc = c.encode(&data).unwrap();
                assert_eq!(&enc[..4], &(len as u32).to_le_bytes());
                assert_eq!(c.decode(&enc).unwrap(), data);
                let mut out = vec![0u8; len];
                c.decode_into(&enc, &mut out).unwrap();
                assert_eq!(out, data);
            }
        }
    }

    #[test]
    fn decodes_numcodecs_frames() {
        assert_decodes_vectors(&Lz4Codec::new(1), &["lz4_a1", "lz4_a10", "lz4_empty"]);
    }

    #[test]
    fn rejects_bad_blocks() {
        let c = Lz4Codec::new(1);
        let data = sample(20_000);
        let enc = c.encode(&data).unwrap();
        // Header larger or smaller than the block really holds.
        for n in [data.len() + 1, data.len() - 1, 0] {
            let mut bad = enc.clone();
            bad[..4].copy_from_slice(&(n as u32).to_le_bytes());
            assert!(
                matches!(c.decode(&bad), Err(CodecError::Corrupt { .. })),
                "{n}"
            );
        }
        // Absurd header for a tiny block.
        let mut bad = vec![0xff, 0xff, 0xff, 0x7f];
        bad.extend_from_slice(&enc[4..40]);
        assert!(matches!(c.decode(&bad), Err(CodecError::Corrupt { .. })));
        for seed in 0..300 {
            let mut junk = noise(seed, 400);
            junk[..4].copy_from_slice(&1000u32.to_le_bytes());
            let _ = c.decode(&junk);
        }
    }
}
