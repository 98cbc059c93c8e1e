//! numcodecs' `BitRound` filter: floats with their mantissa rounded to `keepbits` bits
//! (lossy; decoding leaves the bytes as they are).

use super::ArrayToArrayCodec;
use crate::codec::{int_field, ChunkRepr, CodecError};
use crate::metadata::{DataType, DtypeKind, Endian};
use serde_json::Value;

const CODEC: &str = "bitround";

/// Bit rounding of the chunk's own elements (numcodecs takes the type of the array it is
/// given); only floats can be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitRoundCodec {
    keepbits: u32,
    dtype: DataType,
}

impl BitRoundCodec {
    /// From numcodecs' configuration: `keepbits` (at least 0), over elements of `dtype`.
    pub fn from_config(config: &Value, dtype: DataType) -> Result<Self, CodecError> {
        let keepbits = int_field(CODEC, config, "keepbits")?
            .ok_or_else(|| CodecError::config(CODEC, "missing \"keepbits\""))?;
        let keepbits = u32::try_from(keepbits)
            .map_err(|_| CodecError::config(CODEC, "keepbits must be zero or positive"))?;
        Ok(BitRoundCodec { keepbits, dtype })
    }

    /// The mantissa bits of the float type, or why chunks cannot be encoded.
    fn mantissa_bits(&self) -> Result<u32, CodecError> {
        let bits = match (self.dtype.kind, self.dtype.size) {
            (DtypeKind::Float, 2) => 10,
            (DtypeKind::Float, 4) => 23,
            (DtypeKind::Float, 8) => 52,
            _ => {
                return Err(CodecError::encode(
                    CODEC,
                    format!("only floats can be bit-rounded, not {}", self.dtype),
                ))
            }
        };
        if self.keepbits > bits {
            return Err(CodecError::encode(
                CODEC,
                format!(
                    "keepbits {} exceeds the {bits} bits of {}",
                    self.keepbits, self.dtype
                ),
            ));
        }
        Ok(bits)
    }
}

/// Rounds one float of `size` bytes, given as its bits sign-extended to `i64`, dropping
/// `maskbits` mantissa bits as numcodecs does in integers of the float's width.
fn round_bits(b: i64, maskbits: u32, size: usize) -> i64 {
    let half_quantum1 = (1i64 << (maskbits - 1)) - 1;
    let rounded = b.wrapping_add(((b >> maskbits) & 1) + half_quantum1);
    let shift = 64 - 8 * size as u32;
    // Wrap to the float's width (numpy adds in that width), then clear the dropped bits.
    ((rounded << shift) >> shift) & (-1i64 << maskbits)
}

impl ArrayToArrayCodec for BitRoundCodec {
    fn describe(&self) -> String {
        format!("bitround(keepbits={})", self.keepbits)
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        Ok(decoded.clone())
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        decoded.checked_bytes(CODEC, chunk.len())?;
        let bits = self.mantissa_bits()?;
        let mut out = chunk.to_vec();
        if self.keepbits == bits {
            return Ok(out);
        }
        let size = self.dtype.size;
        let maskbits = bits - self.keepbits;
        let big = self.dtype.endian == Endian::Big;
        for element in out.chunks_exact_mut(size) {
            let mut le = [0u8; 8];
            le[..size].copy_from_slice(element);
            if big {
                le[..size].reverse();
            }
            let shift = 64 - 8 * size as u32;
            let b = (i64::from_le_bytes(le) << shift) >> shift;
            let mut rounded = round_bits(b, maskbits, size).to_le_bytes();
            if big {
                rounded[..size].reverse();
            }
            element.copy_from_slice(&rounded[..size]);
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
        decoded.checked_bytes(CODEC, encoded.len())?;
        out.copy_from_slice(encoded);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_in_the_mantissa() {
        // keepbits 0 of f4: 1.5 (mantissa 0x400000) is a tie, rounded to even 2.0; 1.25 down.
        let b = |x: f32| i64::from(x.to_bits() as i32);
        let r = |x: f32| f32::from_bits(round_bits(b(x), 23, 4) as u32);
        assert_eq!(r(1.5), 2.0);
        assert_eq!(r(1.25), 1.0);
        assert_eq!(r(1.75), 2.0);
        assert_eq!(r(-1.5), -2.0);
        assert_eq!(r(3.0), 2.0);
    }
}
