//! The v3 `crc32c` codec: the bytes followed by their CRC-32C (Castagnoli), little-endian,
//! checked on every decode.

use crate::codec::{size_mismatch, BytesToBytesCodec, CodecError};

const CODEC: &str = "crc32c";

/// Appends and checks a CRC-32C.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc32cCodec;

impl Crc32cCodec {
    /// The checked payload of `encoded`.
    fn payload(encoded: &[u8]) -> Result<&[u8], CodecError> {
        let Some(split) = encoded.len().checked_sub(4) else {
            return Err(CodecError::corrupt(
                CODEC,
                format!("{} bytes cannot hold a checksum", encoded.len()),
            ));
        };
        let (payload, stored) = encoded.split_at(split);
        let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(payload);
        if stored != computed {
            return Err(CodecError::corrupt(
                CODEC,
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        Ok(payload)
    }
}

impl BytesToBytesCodec for Crc32cCodec {
    fn describe(&self) -> String {
        CODEC.into()
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(Self::payload(encoded)?.to_vec())
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let payload = Self::payload(encoded)?;
        if payload.len() != out.len() {
            return Err(size_mismatch(CODEC, payload.len(), out.len()));
        }
        out.copy_from_slice(payload);
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(decoded.len() + 4);
        out.extend_from_slice(decoded);
        out.extend_from_slice(&crc32c::crc32c(decoded).to_le_bytes());
        Ok(out)
    }

    fn encoded_len(&self, decoded_len: usize) -> Option<usize> {
        decoded_len.checked_add(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_the_castagnoli_checksum_and_checks_it() {
        // The CRC-32C check value of "123456789" is 0xE3069283.
        let encoded = Crc32cCodec.encode(b"123456789").unwrap();
        assert_eq!(&encoded[9..], &0xE306_9283u32.to_le_bytes());
        assert_eq!(Crc32cCodec.decode(&encoded).unwrap(), b"123456789");
        let mut out = [0u8; 9];
        Crc32cCodec.decode_into(&encoded, &mut out).unwrap();
        assert_eq!(&out, b"123456789");
        for i in 0..encoded.len() {
            let mut bad = encoded.clone();
            bad[i] ^= 1;
            assert!(Crc32cCodec.decode(&bad).is_err(), "flip at {i}");
        }
        assert!(Crc32cCodec.decode(&[1, 2, 3]).is_err());
        assert!(Crc32cCodec.decode_into(&encoded, &mut [0u8; 8]).is_err());
        assert_eq!(Crc32cCodec.encoded_len(10), Some(14));
    }
}
