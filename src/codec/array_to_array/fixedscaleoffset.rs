//! numcodecs' `FixedScaleOffset` filter: `round((x - offset) * scale)` stored as `astype`.

use super::numcodecs::{
    cast, dtype_field, element_buffer, element_count, elementwise_repr, map_elements, require_kind,
    required_dtype, PyNumber,
};
use super::numeric::{self, Num, Op};
use super::ArrayToArrayCodec;
use crate::codec::{ChunkRepr, CodecError};
use crate::metadata::{DataType, DtypeKind};
use serde_json::Value;

const CODEC: &str = "fixedscaleoffset";
const REAL: [DtypeKind; 3] = [DtypeKind::Int, DtypeKind::UInt, DtypeKind::Float];

/// Scale and offset as numcodecs computes them with numpy 2: `offset` and `scale` are Python
/// numbers, so each step computes in the array's type (integers wrap around) unless a float
/// meets integers, which makes `f8`; decoding divides in `astype` when it is a float type and
/// in `f8` otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedScaleOffsetCodec {
    offset: PyNumber,
    scale: PyNumber,
    dtype: DataType,
    astype: DataType,
}

impl FixedScaleOffsetCodec {
    /// From numcodecs' configuration: `offset`, `scale`, `dtype` (required), `astype`
    /// (default `dtype`); real types only.
    pub fn from_config(config: &Value) -> Result<Self, CodecError> {
        let dtype = require_kind(CODEC, required_dtype(CODEC, config, "dtype")?, &REAL)?;
        let astype = match dtype_field(CODEC, config, "astype")? {
            Some(astype) => require_kind(CODEC, astype, &REAL)?,
            None => dtype,
        };
        Ok(FixedScaleOffsetCodec {
            offset: PyNumber::field(CODEC, config, "offset")?,
            scale: PyNumber::field(CODEC, config, "scale")?,
            dtype,
            astype,
        })
    }
}

/// `value op number` where `value` is of type `t`: the result and its type.
fn step(op: Op, value: Num, t: DataType, number: PyNumber) -> Result<(Num, DataType), String> {
    let (result_type, operand) = number
        .with_array_of(t)
        .ok_or_else(|| format!("Python integer {} out of bounds for {t}", number.describe()))?;
    let value = cast(value, t, result_type)?;
    Ok((numeric::apply(op, value, operand, result_type), result_type))
}

impl ArrayToArrayCodec for FixedScaleOffsetCodec {
    fn describe(&self) -> String {
        format!(
            "fixedscaleoffset(offset={},scale={},dtype={},astype={})",
            self.offset.describe(),
            self.scale.describe(),
            self.dtype,
            self.astype
        )
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        elementwise_repr(CODEC, decoded, self.dtype, self.astype)
    }

    fn decodes_to(&self) -> Option<DataType> {
        Some(self.dtype)
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        decoded.checked_bytes(CODEC, chunk.len())?;
        let count = element_count(CODEC, chunk, self.dtype)?;
        let mut out = element_buffer(CODEC, count, self.astype)?;
        map_elements(CODEC, chunk, self.dtype, &mut out, self.astype, |x| {
            let encode = || {
                let (shifted, t) = step(Op::Sub, x, self.dtype, self.offset)?;
                let (scaled, t) = step(Op::Mul, shifted, t, self.scale)?;
                cast(numeric::rint(scaled), t, self.astype)
            };
            encode().map_err(|reason| CodecError::encode(CODEC, reason))
        })?;
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        decoded.checked_bytes(CODEC, out.len())?;
        // True division makes integers f8; floats stay in their own type.
        let t = match self.astype.kind {
            DtypeKind::Float => self.astype,
            _ => numeric::native(DtypeKind::Float, 8),
        };
        let decode = |e: Num| {
            let (scaled, t) = step(Op::Div, cast(e, self.astype, t)?, t, self.scale)?;
            let (value, t) = step(Op::Add, scaled, t, self.offset)?;
            cast(value, t, self.dtype)
        };
        map_elements(CODEC, encoded, self.astype, out, self.dtype, |e| {
            decode(e).map_err(|reason| CodecError::corrupt(CODEC, reason))
        })
    }
}
