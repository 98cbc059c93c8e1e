//! numcodecs' `Quantize` filter: floats rounded to a power-of-two grid fine enough for
//! `digits` decimal digits (lossy; decoding only converts the type back).

use super::numcodecs::{
    cast, cast_elements, dtype_field, map_elements, require_kind, required_dtype, Elementwise,
    PyNumber,
};
use super::numeric::{self, Op};
use crate::codec::{int_field, CodecError};
use crate::metadata::{DataType, DtypeKind};
use serde_json::Value;

const CODEC: &str = "quantize";

/// Quantization to `digits` decimal digits, from floats of `dtype` to floats of `astype`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeCodec {
    digits: i64,
    dtype: DataType,
    astype: DataType,
}

impl QuantizeCodec {
    /// From numcodecs' configuration: `digits`, `dtype` (required), `astype` (default
    /// `dtype`); both float types.
    pub fn from_config(config: &Value) -> Result<Self, CodecError> {
        let float = [DtypeKind::Float];
        let dtype = require_kind(CODEC, required_dtype(CODEC, config, "dtype")?, &float)?;
        let astype = match dtype_field(CODEC, config, "astype")? {
            Some(astype) => require_kind(CODEC, astype, &float)?,
            None => dtype,
        };
        let digits = int_field(CODEC, config, "digits")?
            .ok_or_else(|| CodecError::config(CODEC, "missing \"digits\""))?;
        Ok(QuantizeCodec {
            digits,
            dtype,
            astype,
        })
    }

    /// Whether encoded elements have another size than decoded ones.
    pub fn resizes(&self) -> bool {
        self.astype.size != self.dtype.size
    }

    /// The grid's scale, `2.0 ** bits`, computed as numcodecs computes it with Python floats.
    fn scale(&self) -> Result<f64, CodecError> {
        let precision = 10f64.powf(-(self.digits as f64));
        let exp = precision.log10();
        let exp = if exp < 0.0 { exp.floor() } else { exp.ceil() };
        let bits = 10f64.powf(-exp).log2().ceil();
        let scale = 2f64.powf(bits);
        if !scale.is_finite() || scale == 0.0 {
            return Err(CodecError::encode(
                CODEC,
                format!("digits = {} is out of range", self.digits),
            ));
        }
        Ok(scale)
    }
}

impl Elementwise for QuantizeCodec {
    const CODEC: &'static str = CODEC;

    fn description(&self) -> String {
        format!(
            "quantize(digits={},dtype={},astype={})",
            self.digits, self.dtype, self.astype
        )
    }

    fn types(&self) -> (DataType, DataType) {
        (self.dtype, self.astype)
    }

    fn encode_elements(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let d = self.dtype;
        // `scale * arr` and `/ scale` compute in the array's float type.
        let (_, scale) = PyNumber::Float(self.scale()?)
            .with_array_of(d)
            .ok_or_else(|| CodecError::encode(CODEC, format!("no scale for {d}")))?;
        map_elements(CODEC, chunk, d, out, self.astype, |x| {
            let scaled = numeric::rint(numeric::apply(Op::Mul, scale, x, d));
            let quantized = numeric::apply(Op::Div, scaled, scale, d);
            cast(quantized, d, self.astype).map_err(|reason| CodecError::encode(CODEC, reason))
        })
    }

    fn decode_elements(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let error = |reason| CodecError::corrupt(CODEC, reason);
        cast_elements(CODEC, encoded, self.astype, out, self.dtype, error)
    }
}
