//! gzip codec (RFC 1952, as numcodecs `GZip` and the Zarr v3 `gzip` codec
//! write). Decoding accepts multi-member streams and trailing zero padding,
//! like Python's `gzip` module, and verifies every member's CRC-32 and size.

use std::io::Write;

use flate2::Compression;
use serde_json::Value;

use super::zlib::{inflate_slice, inflate_vec};
use crate::codec::{size_mismatch, BytesToBytesCodec, CodecError};

const CODEC: &str = "gzip";

const FTEXT_MASK_RESERVED: u8 = 0xE0;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// The gzip codec; `level` 0..=9 (numcodecs default 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipCodec {
    level: u32,
}

impl GzipCodec {
    /// Create a gzip codec with compression `level` 0..=9.
    pub fn new(level: u32) -> Result<Self, CodecError> {
        Ok(Self {
            level: super::zlib::deflate_level(CODEC, level)?,
        })
    }

    /// From a config object with optional integer "level" (default 1; see
    /// [`super::zlib::level_field`]).
    pub(crate) fn from_config(codec: &str, config: &Value) -> Result<Self, CodecError> {
        Self::new(super::zlib::level_field(codec, config)?)
    }
}

/// Length of the gzip member header at the start of `input`.
fn header_len(input: &[u8]) -> Result<usize, CodecError> {
    let short = || CodecError::corrupt(CODEC, "truncated member header");
    if input.len() < 10 {
        return Err(short());
    }
    if input[0] != 0x1f || input[1] != 0x8b {
        return Err(CodecError::corrupt(CODEC, "not a gzip stream (bad magic)"));
    }
    if input[2] != 8 {
        return Err(CodecError::corrupt(
            CODEC,
            format!("unknown compression method {}", input[2]),
        ));
    }
    let flags = input[3];
    if flags & FTEXT_MASK_RESERVED != 0 {
        return Err(CodecError::corrupt(CODEC, "reserved header flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = input.get(pos..pos + 2).ok_or_else(short)?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = input.get(pos..).ok_or_else(short)?;
            let nul = rest.iter().position(|&b| b == 0).ok_or_else(short)?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > input.len() {
        return Err(short());
    }
    Ok(pos)
}

/// Check a member trailer (CRC-32 and size mod 2^32) against the data
/// decoded for that member; returns the trailer length.
fn check_trailer(trailer: &[u8], member_data: &[u8]) -> Result<usize, CodecError> {
    let t = trailer
        .get(..8)
        .ok_or_else(|| CodecError::corrupt(CODEC, "truncated member trailer"))?;
    let crc_stored = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let size_stored = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    if crc32fast::hash(member_data) != crc_stored {
        return Err(CodecError::corrupt(CODEC, "CRC-32 mismatch"));
    }
    if member_data.len() as u32 != size_stored {
        return Err(CodecError::corrupt(CODEC, "member size mismatch"));
    }
    Ok(8)
}

/// Whether the rest of the input is only zero padding (or nothing).
fn only_padding(rest: &[u8]) -> bool {
    rest.iter().all(|&b| b == 0)
}

impl BytesToBytesCodec for GzipCodec {
    fn describe(&self) -> String {
        format!("gzip(level={})", self.level)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            pos += header_len(&encoded[pos..])?;
            let start = out.len();
            pos += inflate_vec(CODEC, false, &encoded[pos..], &mut out, max_len)?;
            super::check_bound(CODEC, out.len(), max_len)?;
            pos += check_trailer(&encoded[pos..], &out[start..])?;
            if only_padding(&encoded[pos..]) {
                return Ok(out);
            }
        }
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let mut pos = 0;
        let mut written = 0;
        loop {
            pos += header_len(&encoded[pos..])?;
            let (consumed, n) = inflate_slice(CODEC, false, &encoded[pos..], &mut out[written..])?;
            pos += consumed;
            pos += check_trailer(&encoded[pos..], &out[written..written + n])?;
            written += n;
            if only_padding(&encoded[pos..]) {
                break;
            }
        }
        if written != out.len() {
            return Err(size_mismatch(CODEC, written, out.len()));
        }
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(decoded.len() / 2 + 64),
            Compression::new(self.level),
        );
        enc.write_all(decoded)
            .and_then(|()| enc.finish())
            .map_err(|e| CodecError::encode(CODEC, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, assert_round_trips, noise, sample};
    use std::io::Read;

    #[test]
    fn round_trip_levels() {
        for level in 0..=9 {
            assert_round_trips(&GzipCodec::new(level).unwrap(), |enc| {
                let mut check = Vec::new();
                flate2::read::GzDecoder::new(enc)
                    .read_to_end(&mut check)
                    .unwrap();
                check
            });
        }
        assert!(matches!(GzipCodec::new(10), Err(CodecError::Config { .. })));
    }

    #[test]
    fn decodes_numcodecs_frames() {
        assert_decodes_vectors(
            &GzipCodec::new(1).unwrap(),
            &["gzip_l1", "gzip_l9", "gzip_empty", "gzip_named"],
        );
    }

    #[test]
    fn multi_member_and_padding() {
        let c = GzipCodec::new(5).unwrap();
        let a = sample(3000);
        let b = noise(9, 1000);
        let mut enc = c.encode(&a).unwrap();
        enc.extend(c.encode(&b).unwrap());
        enc.extend([0u8; 7]);
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(c.decode(&enc).unwrap(), want);
        let mut out = vec![0u8; want.len()];
        c.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, want);
        // First member alone is too short; second pushes past a short buffer.
        let mut out = vec![0u8; want.len() - 1];
        assert!(matches!(
            c.decode_into(&enc, &mut out),
            Err(CodecError::Corrupt { .. })
        ));
        let mut out = vec![0u8; a.len()];
        assert!(matches!(
            c.decode_into(&enc, &mut out),
            Err(CodecError::Corrupt { .. })
        ));
    }

    #[test]
    fn rejects_bad_streams() {
        let c = GzipCodec::new(6).unwrap();
        let data = sample(30_000);
        let enc = c.encode(&data).unwrap();
        let is_corrupt =
            |r: Result<Vec<u8>, CodecError>| matches!(r, Err(CodecError::Corrupt { .. }));
        let n = enc.len();
        // Bad CRC, bad size, trailing garbage, bad magic, bad method.
        for (i, x) in [(n - 8, 1u8), (n - 4, 1), (0, 1), (2, 1), (3, 0x20)] {
            let mut bad = enc.clone();
            bad[i] ^= x;
            assert!(is_corrupt(c.decode(&bad)), "byte {i}");
            let mut out = vec![0u8; data.len()];
            assert!(c.decode_into(&bad, &mut out).is_err(), "byte {i}");
        }
        let mut long = enc.clone();
        long.extend_from_slice(b"xyz");
        assert!(is_corrupt(c.decode(&long)));
        // Header flags pointing past the end of the input.
        for flags in [FEXTRA, FNAME, FCOMMENT, FHCRC] {
            let hdr = [0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255];
            assert!(is_corrupt(c.decode(&hdr)));
        }
        for seed in 0..300 {
            let mut junk = noise(seed, 600);
            junk[..3].copy_from_slice(&[0x1f, 0x8b, 8]);
            junk[3] &= 0x1f;
            let _ = c.decode(&junk);
        }
    }
}
