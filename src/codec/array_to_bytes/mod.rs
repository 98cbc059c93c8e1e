//! Array→bytes codecs: they serialise a chunk of elements into bytes (one per chain):
//! `bytes`, and `sharding_indexed` ([`sharding`]).

pub mod sharding;

pub use sharding::{ShardIndex, ShardIndexCodec, ShardingCodec};

pub mod vlen;

use super::{ChunkRepr, CodecError};
use crate::metadata::Endian;

/// A codec from chunks of elements to bytes.
pub trait ArrayToBytesCodec: Send + Sync + std::fmt::Debug {
    /// Short description with parameters, e.g. `bytes(endian=little)`.
    fn describe(&self) -> String;
    /// Encodes a C-order chunk of `repr` into bytes.
    fn encode(&self, chunk: &[u8], repr: &ChunkRepr) -> Result<Vec<u8>, CodecError>;
    /// Decodes bytes into `out`, a chunk of `repr`.
    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError>;
    /// Whether chunks of `repr` are encoded as their own bytes, unchanged.
    fn is_identity_for(&self, _repr: &ChunkRepr) -> bool {
        false
    }
    /// The encoded size of a chunk of `repr`, for codecs whose output size is fixed.
    fn encoded_len(&self, _repr: &ChunkRepr) -> Option<usize> {
        None
    }
}

/// The `bytes` codec: elements in a fixed byte order. Zarr v2 chunks are always this codec
/// in the dtype's declared order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesCodec {
    /// The stored byte order; `None` for codecs configured without one (one-byte types).
    endian: Option<Endian>,
}

impl BytesCodec {
    /// The codec storing elements in `endian` order.
    pub fn new(endian: Option<Endian>) -> Self {
        BytesCodec { endian }
    }

    /// From a v3 configuration: `{"endian": "little" | "big"}` (optional).
    pub fn from_v3(configuration: &serde_json::Value) -> Result<Self, CodecError> {
        match configuration.get("endian") {
            None | Some(serde_json::Value::Null) => Ok(Self::new(None)),
            Some(v) => match v.as_str() {
                Some("little") => Ok(Self::new(Some(Endian::Little))),
                Some("big") => Ok(Self::new(Some(Endian::Big))),
                _ => Err(CodecError::config(
                    "bytes",
                    format!("endian must be \"little\" or \"big\", got {v}"),
                )),
            },
        }
    }

    /// The size of the units whose bytes are swapped between orders (a complex number's two
    /// halves are swapped separately); `None` when nothing is swapped.
    fn swap_unit(&self, repr: &ChunkRepr) -> Result<Option<usize>, CodecError> {
        let dtype = &repr.dtype;
        let Some(unit) = dtype.swap_unit() else {
            return Ok(None);
        };
        // The specification asks multi-byte types for an endian; without one, zarr-python
        // (and so the stores it reads) takes little-endian, as the data view does.
        let stored = self.endian.unwrap_or(Endian::Little);
        Ok((stored != dtype.endian).then_some(unit))
    }
}

fn swap_bytes(data: &mut [u8], unit: usize) {
    for element in data.chunks_exact_mut(unit) {
        element.reverse();
    }
}

impl ArrayToBytesCodec for BytesCodec {
    fn describe(&self) -> String {
        match self.endian {
            Some(Endian::Big) => "bytes(endian=big)".into(),
            Some(_) => "bytes(endian=little)".into(),
            None => "bytes".into(),
        }
    }

    fn encode(&self, chunk: &[u8], repr: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        repr.checked_bytes("bytes", chunk.len())?;
        let mut out = chunk.to_vec();
        if let Some(unit) = self.swap_unit(repr)? {
            swap_bytes(&mut out, unit);
        }
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        repr.checked_bytes("bytes", out.len())?;
        if encoded.len() != out.len() {
            return Err(CodecError::corrupt(
                "bytes",
                format!(
                    "chunk holds {} bytes, expected {}",
                    encoded.len(),
                    out.len()
                ),
            ));
        }
        out.copy_from_slice(encoded);
        if let Some(unit) = self.swap_unit(repr)? {
            swap_bytes(out, unit);
        }
        Ok(())
    }

    fn is_identity_for(&self, repr: &ChunkRepr) -> bool {
        matches!(self.swap_unit(repr), Ok(None))
    }

    fn encoded_len(&self, repr: &ChunkRepr) -> Option<usize> {
        repr.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::DataType;

    fn repr(dtype: &str, n: usize) -> ChunkRepr {
        ChunkRepr {
            shape: vec![n],
            dtype: DataType::parse_numpy(dtype).unwrap(),
        }
    }

    #[test]
    fn swaps_only_when_the_orders_differ() {
        let little = BytesCodec::new(Some(Endian::Little));
        let big = BytesCodec::new(Some(Endian::Big));
        let r = repr("<i4", 2);
        let chunk: Vec<u8> = [1i32, -2].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(little.encode(&chunk, &r).unwrap(), chunk);
        assert!(little.is_identity_for(&r));
        assert!(!big.is_identity_for(&r));
        let stored = big.encode(&chunk, &r).unwrap();
        let want: Vec<u8> = [1i32, -2].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(stored, want);
        let mut back = vec![0; 8];
        big.decode_into(&stored, &r, &mut back).unwrap();
        assert_eq!(back, chunk);
        // Complex numbers swap each half.
        let c = repr("<c8", 1);
        let chunk: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let want: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(big.encode(&chunk, &c).unwrap(), want);
        // One-byte types need no endian; larger ones without one are little-endian.
        let none = BytesCodec::new(None);
        assert!(none.is_identity_for(&repr("|u1", 3)));
        assert!(none.is_identity_for(&repr("<i4", 2)));
        assert_eq!(none.encode(&chunk, &c).unwrap(), chunk);
        assert!(little.decode_into(&[0; 7], &r, &mut [0; 8]).is_err());
    }
}
