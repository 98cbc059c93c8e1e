//! numcodecs' `Delta` filter: the first element, then the differences between neighbours.

use super::numcodecs::{
    cast, dtype_field, element_count, require_kind, required_dtype, Elementwise,
};
use super::numeric::{self, with_prim, Num, Op, Prim, WithPrim};
use crate::codec::CodecError;
use crate::metadata::{DataType, DtypeKind};
use serde_json::Value;

const CODEC: &str = "delta";

/// Delta encoding of the chunk's elements viewed as `dtype`, differences stored as `astype`.
///
/// Encoding takes differences in `dtype` (integers wrap around) and casts them to `astype`;
/// decoding accumulates in the type numpy's `cumsum(out=…)` uses, the promotion of `astype`
/// and `dtype`, casting each running sum to `dtype`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaCodec {
    dtype: DataType,
    astype: DataType,
}

impl DeltaCodec {
    /// From numcodecs' configuration: `dtype` (required), `astype` (default `dtype`).
    pub fn from_config(config: &Value) -> Result<Self, CodecError> {
        let kinds = [
            DtypeKind::Int,
            DtypeKind::UInt,
            DtypeKind::Float,
            DtypeKind::Complex,
        ];
        let dtype = require_kind(CODEC, required_dtype(CODEC, config, "dtype")?, &kinds)?;
        let astype = match dtype_field(CODEC, config, "astype")? {
            Some(astype) => require_kind(CODEC, astype, &kinds)?,
            None => dtype,
        };
        if (dtype.kind == DtypeKind::Complex) != (astype.kind == DtypeKind::Complex) {
            return Err(CodecError::Unsupported(format!(
                "delta from {dtype} to {astype}"
            )));
        }
        Ok(DeltaCodec { dtype, astype })
    }

    /// The first element as numpy's scalar assignment stores it, or an error where numpy
    /// raises (an integer out of range, a NaN or infinity into integers).
    fn first(&self, value: Num) -> Result<Num, CodecError> {
        let cast = cast(value, self.dtype, self.astype)
            .map_err(|reason| CodecError::encode(CODEC, reason))?;
        if !matches!(self.astype.kind, DtypeKind::Int | DtypeKind::UInt) {
            return Ok(cast);
        }
        let exact = match value {
            Num::Int(i) => Num::Int(i),
            Num::Float(x) if x.is_finite() => Num::Int(x.trunc() as i128),
            other => other,
        };
        if cast == exact {
            Ok(cast)
        } else {
            Err(CodecError::encode(
                CODEC,
                format!("first element {value} does not fit {}", self.astype),
            ))
        }
    }
}

impl DeltaCodec {
    /// The work for `dtype` and `astype` of one primitive type (either byte order), where
    /// numpy differences and sums in that type.
    fn same_type<'a>(
        &self,
        input: &'a [u8],
        output: &'a mut [u8],
        direction: Direction,
    ) -> Option<SameType<'a>> {
        let (d, a) = (self.dtype, self.astype);
        let primitive = with_prim(d, Probe).is_some();
        (primitive && d.kind == a.kind && d.size == a.size).then(|| {
            let (big_in, big_out) = match direction {
                Direction::Encode => (d.is_big_endian(), a.is_big_endian()),
                Direction::Decode => (a.is_big_endian(), d.is_big_endian()),
            };
            SameType {
                input,
                output,
                big_in,
                big_out,
                direction,
            }
        })
    }
}

/// Differencing (encoding) or summing (decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encode,
    Decode,
}

/// Checks that a type is primitive.
struct Probe;

impl WithPrim for Probe {
    type Output = ();
    fn call<T: Prim>(self) {}
}

/// Delta coding between buffers of one primitive type.
struct SameType<'a> {
    input: &'a [u8],
    output: &'a mut [u8],
    big_in: bool,
    big_out: bool,
    direction: Direction,
}

impl WithPrim for SameType<'_> {
    type Output = ();

    fn call<T: Prim>(self) {
        let size = std::mem::size_of::<T>();
        let mut previous: Option<T> = None;
        for (src, dst) in self
            .input
            .chunks_exact(size)
            .zip(self.output.chunks_exact_mut(size))
        {
            let value = T::read(src, self.big_in);
            let (result, carried) = match (self.direction, previous) {
                (_, None) => (value, value),
                (Direction::Encode, Some(prev)) => (value.sub(prev), value),
                (Direction::Decode, Some(sum)) => {
                    let sum = sum.add(value);
                    (sum, sum)
                }
            };
            result.write(dst, self.big_out);
            previous = Some(carried);
        }
    }
}

impl Elementwise for DeltaCodec {
    const CODEC: &'static str = CODEC;

    fn description(&self) -> String {
        format!("delta(dtype={},astype={})", self.dtype, self.astype)
    }

    fn types(&self) -> (DataType, DataType) {
        (self.dtype, self.astype)
    }

    fn encode_elements(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (d, a) = (self.dtype, self.astype);
        if let Some(work) = self.same_type(chunk, out, Direction::Encode) {
            with_prim(d, work);
            return Ok(());
        }
        let mut previous = None;
        for (src, dst) in chunk.chunks_exact(d.size).zip(out.chunks_exact_mut(a.size)) {
            let value = numeric::load(src, d);
            let encoded = match previous {
                None => self.first(value)?,
                Some(prev) => cast(numeric::apply(Op::Sub, value, prev, d), d, a)
                    .map_err(|reason| CodecError::encode(CODEC, reason))?,
            };
            numeric::store(encoded, a, dst);
            previous = Some(value);
        }
        Ok(())
    }

    fn decode_elements(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let count = element_count(CODEC, encoded, self.astype)?;
        if count != element_count(CODEC, out, self.dtype)? {
            return Err(CodecError::corrupt(
                CODEC,
                format!("{count} differences for a chunk of {} bytes", out.len()),
            ));
        }
        let (d, a) = (self.dtype, self.astype);
        if let Some(work) = self.same_type(encoded, out, Direction::Decode) {
            with_prim(d, work);
            return Ok(());
        }
        let sum_type = numeric::promote(a, d);
        let mut sum = None;
        for (src, dst) in encoded
            .chunks_exact(a.size)
            .zip(out.chunks_exact_mut(d.size))
        {
            let corrupt = |reason| CodecError::corrupt(CODEC, reason);
            let value = cast(numeric::load(src, a), a, sum_type).map_err(corrupt)?;
            let next = match sum {
                None => value,
                Some(sum) => numeric::apply(Op::Add, sum, value, sum_type),
            };
            numeric::store(cast(next, sum_type, d).map_err(corrupt)?, d, dst);
            sum = Some(next);
        }
        Ok(())
    }
}
