//! The v3 `crc32c` codec: the bytes followed by their CRC-32C (Castagnoli), little-endian,
//! checked on every decode (numcodecs' `crc32c` with its default location).

use super::checksum32::Checksum32Codec;
use crate::codec::{BytesToBytesCodec, CodecError};

/// Appends and checks a CRC-32C.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc32cCodec;

impl BytesToBytesCodec for Crc32cCodec {
    fn describe(&self) -> String {
        Checksum32Codec::CRC32C.describe()
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        Checksum32Codec::CRC32C.decode(encoded)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        Checksum32Codec::CRC32C.decode_into(encoded, out)
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        Checksum32Codec::CRC32C.encode(decoded)
    }

    fn encoded_len(&self, decoded_len: usize) -> Option<usize> {
        Checksum32Codec::CRC32C.encoded_len(decoded_len)
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
