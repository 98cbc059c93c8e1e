//! numcodecs' `PackBits` filter: booleans packed eight to a byte, after a byte that counts
//! the padding bits of the last one.

use super::numeric::native;
use super::ArrayToArrayCodec;
use crate::codec::{alloc_zeroed, ChunkRepr, CodecError};
use crate::metadata::{DataType, DtypeKind};

const CODEC: &str = "packbits";

/// Bit packing of the chunk's bytes viewed as booleans (any non-zero byte is true), most
/// significant bit first, as `numpy.packbits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackBitsCodec;

/// The packed size of `count` booleans: the padding byte and `ceil(count / 8)` bytes.
fn packed_len(count: usize) -> usize {
    1 + count.div_ceil(8)
}

impl ArrayToArrayCodec for PackBitsCodec {
    fn describe(&self) -> String {
        CODEC.into()
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        Ok(ChunkRepr {
            shape: vec![packed_len(decoded.size(CODEC)?)],
            dtype: native(DtypeKind::UInt, 1),
        })
    }

    fn decodes_to(&self) -> Option<DataType> {
        Some(native(DtypeKind::Bool, 1))
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        decoded.checked_bytes(CODEC, chunk.len())?;
        let mut out = alloc_zeroed(CODEC, packed_len(chunk.len()))?;
        out[0] = ((8 - chunk.len() % 8) % 8) as u8;
        for (bits, byte) in chunk.chunks(8).zip(&mut out[1..]) {
            *byte = bits
                .iter()
                .enumerate()
                .fold(0u8, |acc, (i, &b)| acc | (u8::from(b != 0) << (7 - i)));
        }
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        decoded.checked_bytes(CODEC, out.len())?;
        let Some((&padding, packed)) = encoded.split_first() else {
            return Err(CodecError::corrupt(CODEC, "no padding byte"));
        };
        let unpacked = packed.len().saturating_mul(8);
        // numpy's `dec[:-n]` leaves nothing when n exceeds the bits.
        let count = unpacked.saturating_sub(usize::from(padding));
        if count != out.len() {
            return Err(CodecError::corrupt(
                CODEC,
                format!("{count} booleans for a chunk of {} bytes", out.len()),
            ));
        }
        for (i, value) in out.iter_mut().enumerate() {
            *value = (packed[i / 8] >> (7 - i % 8)) & 1;
        }
        Ok(())
    }
}
