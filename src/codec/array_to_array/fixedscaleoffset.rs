//! numcodecs' `FixedScaleOffset` filter: `round((x - offset) * scale)` stored as `astype`.

use super::numcodecs::{
    cast, dtype_field, map_elements, require_kind, required_dtype, Elementwise, PyNumber,
};
use super::numeric::{self, Num, Op};
use crate::codec::CodecError;
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

/// One step `value op number` on values of type `from`, computed in `result` with the number
/// converted to it, as numpy computes an array op a Python number.
#[derive(Debug, Clone, Copy)]
struct Step {
    op: Op,
    from: DataType,
    result: DataType,
    operand: Num,
}

impl Step {
    /// The step, or why numpy raises (an int out of an integer type's bounds).
    fn new(op: Op, from: DataType, number: PyNumber) -> Result<Self, String> {
        let (result, operand) = number.with_array_of(from).ok_or_else(|| {
            format!(
                "Python integer {} out of bounds for {from}",
                number.describe()
            )
        })?;
        Ok(Step {
            op,
            from,
            result,
            operand,
        })
    }

    fn apply(&self, value: Num) -> Result<Num, String> {
        let value = cast(value, self.from, self.result)?;
        Ok(numeric::apply(self.op, value, self.operand, self.result))
    }
}

impl Elementwise for FixedScaleOffsetCodec {
    const CODEC: &'static str = CODEC;

    fn description(&self) -> String {
        format!(
            "fixedscaleoffset(offset={},scale={},dtype={},astype={})",
            self.offset.describe(),
            self.scale.describe(),
            self.dtype,
            self.astype
        )
    }

    fn types(&self) -> (DataType, DataType) {
        (self.dtype, self.astype)
    }

    fn encode_elements(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let error = |reason| CodecError::encode(CODEC, reason);
        let shift = Step::new(Op::Sub, self.dtype, self.offset).map_err(error)?;
        let scale = Step::new(Op::Mul, shift.result, self.scale).map_err(error)?;
        map_elements(CODEC, chunk, self.dtype, out, self.astype, |x| {
            let scaled = scale.apply(shift.apply(x).map_err(error)?).map_err(error)?;
            cast(numeric::rint(scaled), scale.result, self.astype).map_err(error)
        })
    }

    fn decode_elements(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        // True division makes integers f8; floats stay in their own type.
        let t = match self.astype.kind {
            DtypeKind::Float => self.astype,
            _ => numeric::native(DtypeKind::Float, 8),
        };
        let error = |reason| CodecError::corrupt(CODEC, reason);
        let unscale = Step::new(Op::Div, t, self.scale).map_err(error)?;
        let unshift = Step::new(Op::Add, t, self.offset).map_err(error)?;
        map_elements(CODEC, encoded, self.astype, out, self.dtype, |e| {
            let scaled = unscale.apply(cast(e, self.astype, t).map_err(error)?);
            let value = unshift.apply(scaled.map_err(error)?).map_err(error)?;
            cast(value, t, self.dtype).map_err(error)
        })
    }
}
