//! numcodecs' `AsType` filter, and the value cast zarr-python performs when it assigns a
//! filter's output to a Zarr v3 array.

use super::numcodecs::{cast_elements, dtype_field, Elementwise};
use super::numeric::is_numeric;
use crate::codec::CodecError;
use crate::metadata::DataType;
use serde_json::Value;

const CODEC: &str = "astype";

/// Elements of `decode_dtype` stored as `encode_dtype`, converted by value as numpy's
/// `astype` converts them (integers wrap around, floats round to nearest, floats to integers
/// truncate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsTypeCodec {
    encode_dtype: DataType,
    decode_dtype: DataType,
    /// How the codec is described: `astype` for the filter, `cast` for zarr-python's
    /// assignment.
    label: &'static str,
}

impl AsTypeCodec {
    /// From numcodecs' configuration: `encode_dtype` (required), `decode_dtype` (for
    /// zarr-python 3 the array's type when absent: `incoming`).
    pub fn from_config(config: &Value, incoming: DataType) -> Result<Self, CodecError> {
        let encode_dtype = dtype_field(CODEC, config, "encode_dtype")?
            .ok_or_else(|| CodecError::config(CODEC, "missing \"encode_dtype\""))?;
        let decode_dtype = dtype_field(CODEC, config, "decode_dtype")?.unwrap_or(incoming);
        if !is_numeric(decode_dtype) {
            return Err(CodecError::Unsupported(format!("astype to {decode_dtype}")));
        }
        Ok(AsTypeCodec {
            encode_dtype,
            decode_dtype,
            label: CODEC,
        })
    }

    /// The value cast from elements of `from` to an array of `to`; refused unless both are
    /// numbers (or booleans).
    pub fn cast(from: DataType, to: DataType) -> Result<Self, CodecError> {
        if !(is_numeric(from) && is_numeric(to)) {
            return Err(CodecError::Unsupported(format!(
                "numcodecs filters decoding {from} into an array of {to}"
            )));
        }
        Ok(AsTypeCodec {
            encode_dtype: from,
            decode_dtype: to,
            label: "cast",
        })
    }
}

impl Elementwise for AsTypeCodec {
    const CODEC: &'static str = CODEC;

    fn description(&self) -> String {
        format!(
            "{}(encode_dtype={},decode_dtype={})",
            self.label, self.encode_dtype, self.decode_dtype
        )
    }

    fn types(&self) -> (DataType, DataType) {
        (self.decode_dtype, self.encode_dtype)
    }

    fn encode_elements(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (from, to) = (self.decode_dtype, self.encode_dtype);
        let error = |reason| CodecError::encode(CODEC, reason);
        cast_elements(CODEC, chunk, from, out, to, error)
    }

    fn decode_elements(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (from, to) = (self.encode_dtype, self.decode_dtype);
        let error = |reason| CodecError::corrupt(CODEC, reason);
        cast_elements(CODEC, encoded, from, out, to, error)
    }
}
