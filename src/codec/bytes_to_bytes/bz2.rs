//! bzip2 codec (numcodecs `BZ2`: Python's `bz2.compress`/`bz2.decompress`), over libbzip2's
//! Rust port.

use bzip2::{Compress, Compression, Decompress, Status};
use serde_json::Value;

use super::streams::{decode_streams, Sink, StreamDecoder};
use crate::codec::{int_field_in, BytesToBytesCodec, CodecError};

const CODEC: &str = "bz2";

/// The bzip2 codec; `level` 1..=9 (numcodecs default 1), which only the encoder uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bz2Codec {
    level: u32,
}

impl Bz2Codec {
    /// From a configuration with an optional integer `level` 1..=9.
    pub(crate) fn from_config(codec: &str, config: &Value) -> Result<Self, CodecError> {
        let level = int_field_in(codec, config, "level", 1, 9)?.unwrap_or(1);
        Ok(Bz2Codec {
            level: level as u32,
        })
    }
}

impl StreamDecoder for Decompress {
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize, bool), String> {
        let (before_in, before_out) = (self.total_in(), self.total_out());
        let status = self
            .decompress(input, output)
            .map_err(|e| format!("invalid bzip2 data: {e}"))?;
        Ok((
            (self.total_in() - before_in) as usize,
            (self.total_out() - before_out) as usize,
            status == Status::StreamEnd,
        ))
    }
}

fn new_decoder() -> Result<Decompress, String> {
    Ok(Decompress::new(false))
}

impl BytesToBytesCodec for Bz2Codec {
    fn describe(&self) -> String {
        format!("bz2(level={})", self.level)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        let sink = Sink::Grow(&mut out, max_len);
        decode_streams(CODEC, true, encoded, sink, new_decoder)?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        decode_streams(CODEC, true, encoded, Sink::Exact(out), new_decoder)
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        // Python's bz2 module compresses with work factor 0, libbzip2's default of 30.
        let mut compress = Compress::new(Compression::new(self.level), 30);
        let mut out = Vec::with_capacity(decoded.len() / 2 + 64);
        loop {
            let consumed = compress.total_in() as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(4096));
            }
            let status = compress
                .compress_vec(&decoded[consumed..], &mut out, bzip2::Action::Finish)
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
    use crate::codec::test_util::{assert_decodes_vectors, assert_round_trips, noise};
    use std::io::Read;

    fn codec(level: u32) -> Bz2Codec {
        Bz2Codec::from_config(CODEC, &serde_json::json!({ "level": level })).unwrap()
    }

    #[test]
    fn round_trips_at_every_level() {
        for level in 1..=9 {
            assert_round_trips(&codec(level), |enc| {
                let mut check = Vec::new();
                bzip2::read::MultiBzDecoder::new(enc)
                    .read_to_end(&mut check)
                    .unwrap();
                check
            });
        }
        assert!(Bz2Codec::from_config(CODEC, &serde_json::json!({"level": 0})).is_err());
    }

    #[test]
    fn decodes_numcodecs_frames() {
        assert_decodes_vectors(
            &codec(1),
            &["bz2_l1", "bz2_l9", "bz2_empty", "bz2_two_streams_garbage"],
        );
    }

    #[test]
    fn rejects_bad_and_truncated_streams() {
        let c = codec(5);
        let data = noise(3, 20_000);
        let enc = c.encode(&data).unwrap();
        let corrupt = |r: Result<Vec<u8>, CodecError>| matches!(r, Err(CodecError::Corrupt { .. }));
        assert!(corrupt(c.decode(&enc[..enc.len() - 1])));
        assert!(corrupt(c.decode(b"BZh9garbage")));
        // A second stream that does not end is an error; one that is no stream is ignored.
        let mut two = enc.clone();
        two.extend_from_slice(&enc[..enc.len() / 2]);
        assert!(corrupt(c.decode(&two)));
        let mut trailing = enc.clone();
        trailing.extend_from_slice(b"not bzip2");
        assert_eq!(c.decode(&trailing).unwrap(), data);
        // Exact-size decoding: too little or too much output.
        assert!(corrupt(
            c.decode_into(&enc, &mut vec![0; data.len() - 1])
                .map(|_| vec![])
        ));
        assert!(corrupt(
            c.decode_into(&enc, &mut vec![0; data.len() + 1])
                .map(|_| vec![])
        ));
        assert_eq!(c.decode(b"").unwrap(), b"");
        for seed in 0..200 {
            let _ = c.decode(&noise(seed, 300));
        }
    }
}
