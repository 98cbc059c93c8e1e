//! numcodecs' `Shuffle` codec: the bytes of `elementsize`-byte elements regrouped by byte
//! position (all first bytes, then all second bytes, …).

use serde_json::Value;

use crate::codec::{int_field, size_mismatch, BytesToBytesCodec, CodecError};

const CODEC: &str = "shuffle";

/// Byte shuffle of `elementsize`-byte elements; sizes up to 1 leave the bytes as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuffleCodec {
    elementsize: usize,
}

impl ShuffleCodec {
    /// From numcodecs' configuration: `elementsize`, `default` when absent (numcodecs' 4 in
    /// Zarr v2; zarr-python 3 fills in the array's element size).
    pub(crate) fn from_config(config: &Value, default: usize) -> Result<Self, CodecError> {
        let elementsize = match int_field(CODEC, config, "elementsize")? {
            None => default,
            Some(size) => usize::try_from(size.max(0))
                .map_err(|_| CodecError::config(CODEC, "elementsize out of range"))?,
        };
        Ok(ShuffleCodec { elementsize })
    }

    /// Checks that `len` bytes are whole elements.
    fn check(&self, len: usize) -> Result<usize, CodecError> {
        if self.elementsize > 1 && !len.is_multiple_of(self.elementsize) {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "{len} bytes are not a whole number of {}-byte elements",
                    self.elementsize
                ),
            ));
        }
        Ok(len / self.elementsize.max(1))
    }
}

impl BytesToBytesCodec for ShuffleCodec {
    fn describe(&self) -> String {
        format!("shuffle(elementsize={})", self.elementsize)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = crate::codec::alloc_zeroed(CODEC, encoded.len())?;
        self.decode_into(encoded, &mut out)?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if encoded.len() != out.len() {
            return Err(size_mismatch(CODEC, encoded.len(), out.len()));
        }
        let count = self.check(encoded.len())?;
        if self.elementsize <= 1 {
            out.copy_from_slice(encoded);
            return Ok(());
        }
        for (byte, plane) in encoded.chunks_exact(count.max(1)).enumerate() {
            for (i, &value) in plane.iter().enumerate() {
                out[i * self.elementsize + byte] = value;
            }
        }
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let count = self.check(decoded.len())?;
        if self.elementsize <= 1 {
            return Ok(decoded.to_vec());
        }
        let mut out = crate::codec::alloc_zeroed(CODEC, decoded.len())?;
        for (i, element) in decoded.chunks_exact(self.elementsize).enumerate() {
            for (byte, &value) in element.iter().enumerate() {
                out[byte * count + i] = value;
            }
        }
        Ok(out)
    }

    fn encoded_len(&self, decoded_len: usize) -> Option<usize> {
        Some(decoded_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, sample};
    use serde_json::json;

    #[test]
    fn regroups_bytes_by_position() {
        let c = ShuffleCodec::from_config(&json!({"elementsize": 2}), 4).unwrap();
        assert_eq!(c.encode(&[1, 2, 3, 4, 5, 6]).unwrap(), [1, 3, 5, 2, 4, 6]);
        assert_eq!(c.decode(&[1, 3, 5, 2, 4, 6]).unwrap(), [1, 2, 3, 4, 5, 6]);
        assert!(c.decode(&[1, 2, 3]).is_err());
        assert!(c.decode_into(&[1, 2], &mut [0; 4]).is_err());
        for size in [0, 1] {
            let c = ShuffleCodec::from_config(&json!({ "elementsize": size }), 4).unwrap();
            assert_eq!(c.encode(&[1, 2, 3]).unwrap(), [1, 2, 3]);
        }
        for size in [2, 3, 4, 8, 16] {
            let c = ShuffleCodec::from_config(&json!({ "elementsize": size }), 4).unwrap();
            let data = sample(size * 1000);
            assert_eq!(c.decode(&c.encode(&data).unwrap()).unwrap(), data);
        }
        assert_eq!(
            ShuffleCodec::from_config(&json!({}), 4)
                .unwrap()
                .elementsize,
            4
        );
    }

    #[test]
    fn decodes_numcodecs_frames() {
        for (size, stem) in [(2, "shuffle_e2"), (4, "shuffle_e4"), (8, "shuffle_e8")] {
            let c = ShuffleCodec::from_config(&json!({ "elementsize": size }), 4).unwrap();
            assert_decodes_vectors(&c, &[stem]);
            assert_eq!(
                c.encode(&crate::codec::test_util::vector(&format!("{stem}.raw")))
                    .unwrap(),
                crate::codec::test_util::vector(&format!("{stem}.enc"))
            );
        }
    }
}
