//! numpy's element arithmetic, as numcodecs' filters rely on it: elements of every numeric
//! [`DataType`] loaded exactly, numpy's casts between types (`astype` and array assignment),
//! type promotion, arithmetic carried out in a given type (integers wrap around, floats round
//! to the type's width, ties to even), and the element types numcodecs configurations name.
//!
//! Float→integer conversions of NaN, infinities and values out of the target's range are
//! undefined in C, and numpy's results for them differ between CPUs and even between
//! positions in one array (vectorised and scalar loops): [`cast`] has no result for them.
//! Finite values whose truncation fits a 32-bit (for 1- to 4-byte targets) or 64-bit integer
//! wrap around to the target as numpy's conversions do. NaN payloads move between float
//! widths as numpy moves them: its half-precision routines keep them, its C casts between
//! `f4` and `f8` quiet them.

use crate::codec::CodecError;
use crate::metadata::{DataType, DtypeKind, Endian};

/// An element value: integers exactly, floats and complex parts as `f64` (exact for every
/// width; a NaN keeps its source's payload, shifted into place).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// A boolean (0 or 1) or an integer.
    Int(i128),
    /// A real float.
    Float(f64),
    /// A complex number.
    Complex(f64, f64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
            Num::Complex(re, im) => write!(f, "({re}{im:+}j)"),
        }
    }
}

/// Whether numcodecs' numeric filters can work on elements of `dtype`.
pub(crate) fn is_numeric(dtype: DataType) -> bool {
    matches!(
        dtype.kind,
        DtypeKind::Bool | DtypeKind::Int | DtypeKind::UInt | DtypeKind::Float | DtypeKind::Complex
    )
}

/// The little-endian (native) type of `kind` and `size`.
pub(crate) fn native(kind: DtypeKind, size: usize) -> DataType {
    DataType {
        kind,
        size,
        endian: if size == 1 {
            Endian::NotApplicable
        } else {
            Endian::Little
        },
    }
}

/// Parses an element type as numpy's `np.dtype()` accepts it in numcodecs configurations:
/// type strings (`<i4`, `|u1`, `f8`), names (`int32`, `float64`, `bool`) and one-letter
/// codes (`i`, `d`, `<f`); native order is little-endian. Non-numeric types are unsupported.
pub(crate) fn parse_dtype(codec: &str, text: &str) -> Result<DataType, CodecError> {
    let unsupported = || CodecError::Unsupported(format!("{codec} with dtype {text:?}"));
    if let Ok(dtype) = DataType::parse_numpy(text) {
        return if is_numeric(dtype) {
            Ok(dtype)
        } else {
            Err(unsupported())
        };
    }
    let (order, rest) = match text.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (Some(c), &text[1..]),
        _ => (None, text),
    };
    use DtypeKind::*;
    let (kind, size) = match rest {
        "bool" | "bool_" | "?" => (Bool, 1),
        "int8" | "byte" | "b" => (Int, 1),
        "int16" | "short" | "h" => (Int, 2),
        "int32" | "intc" | "i" => (Int, 4),
        "int64" | "int" | "long" | "longlong" | "intp" | "l" | "q" | "p" => (Int, 8),
        "uint8" | "ubyte" | "B" => (UInt, 1),
        "uint16" | "ushort" | "H" => (UInt, 2),
        "uint32" | "uintc" | "I" => (UInt, 4),
        "uint64" | "uint" | "ulong" | "ulonglong" | "uintp" | "L" | "Q" | "P" => (UInt, 8),
        "float16" | "half" | "e" => (Float, 2),
        "float32" | "single" | "f" => (Float, 4),
        "float64" | "float" | "double" | "d" => (Float, 8),
        "complex64" | "csingle" | "F" => (Complex, 8),
        "complex128" | "complex" | "cdouble" | "D" => (Complex, 16),
        _ => return Err(unsupported()),
    };
    // Names take no byte order; one-letter codes do.
    if order.is_some() && rest.len() > 1 {
        return Err(unsupported());
    }
    let mut dtype = native(kind, size);
    if order == Some('>') && size > 1 {
        dtype.endian = Endian::Big;
    }
    Ok(dtype)
}

/// The `N` bytes at the start of `bytes` as an integer in `big`- or little-endian order.
macro_rules! read_int {
    ($t:ty, $bytes:expr, $big:expr) => {{
        let mut b = [0u8; std::mem::size_of::<$t>()];
        b.copy_from_slice(&$bytes[..std::mem::size_of::<$t>()]);
        if $big {
            <$t>::from_be_bytes(b)
        } else {
            <$t>::from_le_bytes(b)
        }
    }};
}

/// Writes an integer's bytes in `big`- or little-endian order at the start of `out`.
macro_rules! write_int {
    ($value:expr, $out:expr, $big:expr) => {{
        let b = if $big {
            $value.to_be_bytes()
        } else {
            $value.to_le_bytes()
        };
        $out[..b.len()].copy_from_slice(&b);
    }};
}

/// The bits of a float of `size` bytes (2, 4 or 8) at the start of `bytes`, exactly.
fn read_float(bytes: &[u8], size: usize, big: bool) -> f64 {
    match size {
        2 => f16_bits_to_f64(read_int!(u16, bytes, big)),
        4 => f32_bits_to_f64(read_int!(u32, bytes, big)),
        _ => f64::from_bits(read_int!(u64, bytes, big)),
    }
}

/// Writes `x` (of the domain of floats of `size` bytes) as such a float.
fn write_float(x: f64, size: usize, out: &mut [u8], big: bool) {
    match size {
        2 => write_int!(f64_to_f16_bits(x), out, big),
        4 => write_int!(f64_to_f32_bits(x), out, big),
        _ => write_int!(x.to_bits(), out, big),
    }
}

/// Loads one element of `dtype` from `bytes` (at least `dtype.size` long), exactly.
pub(crate) fn load(bytes: &[u8], dtype: DataType) -> Num {
    let big = dtype.endian == Endian::Big;
    match (dtype.kind, dtype.size) {
        (DtypeKind::Bool, _) => Num::Int(i128::from(bytes[0] != 0)),
        (DtypeKind::Int, 1) => Num::Int(i128::from(bytes[0] as i8)),
        (DtypeKind::Int, 2) => Num::Int(i128::from(read_int!(i16, bytes, big))),
        (DtypeKind::Int, 4) => Num::Int(i128::from(read_int!(i32, bytes, big))),
        (DtypeKind::Int, _) => Num::Int(i128::from(read_int!(i64, bytes, big))),
        (DtypeKind::Float, size) => Num::Float(read_float(bytes, size, big)),
        (DtypeKind::Complex, size) => {
            let half = size / 2;
            Num::Complex(
                read_float(bytes, half, big),
                read_float(&bytes[half..], half, big),
            )
        }
        // Unsigned integers (and types the filters never accept) as raw unsigned values.
        (_, 1) => Num::Int(i128::from(bytes[0])),
        (_, 2) => Num::Int(i128::from(read_int!(u16, bytes, big))),
        (_, 4) => Num::Int(i128::from(read_int!(u32, bytes, big))),
        (_, _) => Num::Int(i128::from(read_int!(u64, bytes, big))),
    }
}

/// Stores `value`, which is of `dtype`'s domain (see [`cast`]), as one element of `dtype`.
pub(crate) fn store(value: Num, dtype: DataType, out: &mut [u8]) {
    let big = dtype.endian == Endian::Big;
    match (dtype.kind, value) {
        (DtypeKind::Bool, v) => out[0] = u8::from(is_nonzero(v)),
        (DtypeKind::Float, v) => write_float(real(v), dtype.size, out, big),
        (DtypeKind::Complex, v) => {
            let half = dtype.size / 2;
            let (re, im) = match v {
                Num::Complex(re, im) => (re, im),
                other => (real(other), 0.0),
            };
            write_float(re, half, out, big);
            write_float(im, half, &mut out[half..], big);
        }
        (_, v) => {
            let i = match v {
                Num::Int(i) => i,
                other => real(other) as i128,
            };
            // Integers wrap to the element's width.
            match dtype.size {
                1 => out[0] = i as u8,
                2 => write_int!(i as u16, out, big),
                4 => write_int!(i as u32, out, big),
                _ => write_int!(i as u64, out, big),
            }
        }
    }
}

fn is_nonzero(v: Num) -> bool {
    match v {
        Num::Int(i) => i != 0,
        Num::Float(x) => x != 0.0,
        Num::Complex(re, im) => re != 0.0 || im != 0.0,
    }
}

fn real(v: Num) -> f64 {
    match v {
        Num::Int(i) => int_to_f64(i),
        Num::Float(x) | Num::Complex(x, _) => x,
    }
}

/// Wraps an integer to the range of `dtype` (two's complement truncation).
fn wrap(i: i128, dtype: DataType) -> i128 {
    let bits = 8 * dtype.size.min(16) as u32;
    if bits >= 128 {
        return i;
    }
    match dtype.kind {
        DtypeKind::Int => (i << (128 - bits)) >> (128 - bits),
        DtypeKind::Bool => i128::from(i != 0),
        _ => i & ((1i128 << bits) - 1),
    }
}

/// An integer (within 64 bits, signed or not) rounded to `f64` by the hardware.
fn int_to_f64(i: i128) -> f64 {
    match i64::try_from(i) {
        Ok(i) => i as f64,
        Err(_) => i as u64 as f64,
    }
}

/// An integer (within 64 bits, signed or not) rounded to `f32` by the hardware.
fn int_to_f32(i: i128) -> f32 {
    match i64::try_from(i) {
        Ok(i) => i as f32,
        Err(_) => i as u64 as f32,
    }
}

/// Rounds `x` to a float of `size` bytes (ties to even).
fn round_float(x: f64, size: usize) -> f64 {
    match size {
        2 => f16_bits_to_f64(f64_to_f16_bits(x)),
        4 => f32_bits_to_f64(f64_to_f32_bits(x)),
        _ => x,
    }
}

/// numpy's cast of a value of type `from` to type `to` (`astype`, array assignment); `None`
/// for a float that cannot be converted to an integer type (see the module's documentation).
pub(crate) fn cast(value: Num, from: DataType, to: DataType) -> Option<Num> {
    if from.kind == to.kind && from.size == to.size {
        return Some(value);
    }
    let component = |size: usize| {
        if to.kind == DtypeKind::Complex {
            size / 2
        } else {
            size
        }
    };
    let from_float_size = if from.kind == DtypeKind::Complex {
        from.size / 2
    } else {
        from.size
    };
    Some(match (to.kind, value) {
        (DtypeKind::Bool, v) => Num::Int(i128::from(is_nonzero(v))),
        (DtypeKind::Float | DtypeKind::Complex, v) => {
            let size = component(to.size);
            let convert = |v: Num| match v {
                // Integers round once, straight to the target width.
                Num::Int(i) if size == 8 => int_to_f64(i),
                Num::Int(i) => round_float(f64::from(int_to_f32(i)), size),
                Num::Float(x) | Num::Complex(x, _) => convert_float(x, from_float_size, size),
            };
            match (to.kind, v) {
                (DtypeKind::Complex, Num::Complex(re, im)) => Num::Complex(
                    convert_float(re, from_float_size, size),
                    convert_float(im, from_float_size, size),
                ),
                (DtypeKind::Complex, v) => Num::Complex(convert(v), 0.0),
                (_, v) => Num::Float(convert(v)),
            }
        }
        (_, Num::Int(i)) => Num::Int(wrap(i, to)),
        (_, Num::Float(x) | Num::Complex(x, _)) => Num::Int(wrap(float_to_int(x, to)?, to)),
    })
}

/// A float of `from` bytes converted to `to` bytes as numpy converts it.
fn convert_float(x: f64, from: usize, to: usize) -> f64 {
    if x.is_nan() && ((from == 4 && to == 8) || (from == 8 && to == 4)) {
        // numpy casts between f4 and f8 with C casts, which quiet a signalling NaN.
        let quiet = f64::from_bits(x.to_bits() | (1 << 51));
        return round_float(quiet, to);
    }
    round_float(x, to)
}

/// Truncates `x` to an integer for a target of type `to`, as numpy does where its result is
/// defined: a finite value whose truncation fits the signed 32-bit (targets of 1 to 4 bytes)
/// or 64-bit integers the conversion goes through, or for unsigned targets the target itself.
fn float_to_int(x: f64, to: DataType) -> Option<i128> {
    let t = x.trunc();
    if !t.is_finite() {
        return None;
    }
    let t = t as i128;
    let bits = if to.size <= 4 { 32 } else { 64 };
    let lowest = -(1i128 << (bits - 1));
    let highest = match to.kind {
        DtypeKind::UInt if to.size >= 4 => (1i128 << bits) - 1,
        _ => (1i128 << (bits - 1)) - 1,
    };
    (lowest..=highest).contains(&t).then_some(t)
}

/// A primitive element type (integers, `f4`, `f8`) that filters compute with natively where
/// numpy computes in that same type: integers wrap around, floats round as the hardware does.
pub(crate) trait Prim: Copy {
    /// Reads an element from the start of `bytes`.
    fn read(bytes: &[u8], big: bool) -> Self;
    /// Writes the element at the start of `out`.
    fn write(self, out: &mut [u8], big: bool);
    /// `self + other` in the type.
    fn add(self, other: Self) -> Self;
    /// `self - other` in the type.
    fn sub(self, other: Self) -> Self;
}

macro_rules! prim_int {
    ($($t:ty),*) => {$(
        impl Prim for $t {
            fn read(bytes: &[u8], big: bool) -> Self {
                read_int!($t, bytes, big)
            }
            fn write(self, out: &mut [u8], big: bool) {
                write_int!(self, out, big)
            }
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn sub(self, other: Self) -> Self {
                self.wrapping_sub(other)
            }
        }
    )*};
}

prim_int!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! prim_float {
    ($($t:ty => $bits:ty),*) => {$(
        impl Prim for $t {
            fn read(bytes: &[u8], big: bool) -> Self {
                <$t>::from_bits(read_int!($bits, bytes, big))
            }
            fn write(self, out: &mut [u8], big: bool) {
                write_int!(self.to_bits(), out, big)
            }
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn sub(self, other: Self) -> Self {
                self - other
            }
        }
    )*};
}

prim_float!(f32 => u32, f64 => u64);

/// Work generic over a [`Prim`] type.
pub(crate) trait WithPrim {
    /// What the work gives.
    type Output;
    /// Does the work with elements of type `T`.
    fn call<T: Prim>(self) -> Self::Output;
}

/// Runs `work` with the primitive type of `dtype`; `None` for types without one (booleans,
/// `f2`, complex).
pub(crate) fn with_prim<W: WithPrim>(dtype: DataType, work: W) -> Option<W::Output> {
    Some(match (dtype.kind, dtype.size) {
        (DtypeKind::Int, 1) => work.call::<i8>(),
        (DtypeKind::Int, 2) => work.call::<i16>(),
        (DtypeKind::Int, 4) => work.call::<i32>(),
        (DtypeKind::Int, 8) => work.call::<i64>(),
        (DtypeKind::UInt, 1) => work.call::<u8>(),
        (DtypeKind::UInt, 2) => work.call::<u16>(),
        (DtypeKind::UInt, 4) => work.call::<u32>(),
        (DtypeKind::UInt, 8) => work.call::<u64>(),
        (DtypeKind::Float, 4) => work.call::<f32>(),
        (DtypeKind::Float, 8) => work.call::<f64>(),
        _ => return None,
    })
}

/// The type numpy computes in when combining arrays of types `a` and `b` (native order).
pub(crate) fn promote(a: DataType, b: DataType) -> DataType {
    use DtypeKind::*;
    // The smallest float size that holds every integer of `size` bytes as numpy sees it.
    let float_for_int = |size: usize| match size {
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let (kind, size) = match ((a.kind, a.size), (b.kind, b.size)) {
        ((Bool, _), other) | (other, (Bool, _)) => other,
        ((Int, n), (Int, m)) => (Int, n.max(m)),
        ((UInt, n), (UInt, m)) => (UInt, n.max(m)),
        ((Int, n), (UInt, m)) | ((UInt, m), (Int, n)) => {
            if m < n {
                (Int, n)
            } else if m < 8 {
                (Int, 2 * m)
            } else {
                (Float, 8)
            }
        }
        ((Float, f), (Int | UInt, n)) | ((Int | UInt, n), (Float, f)) => {
            (Float, f.max(float_for_int(n)))
        }
        ((Complex, c), (Int | UInt, n)) | ((Int | UInt, n), (Complex, c)) => {
            (Complex, c.max(2 * float_for_int(n).max(4)))
        }
        ((Float, f), (Float, g)) => (Float, f.max(g)),
        ((Complex, c), (Float, f)) | ((Float, f), (Complex, c)) => (Complex, c.max(2 * f.max(4))),
        ((Complex, c), (Complex, d)) => (Complex, c.max(d)),
        (other, _) => other,
    };
    native(kind, size)
}

/// Arithmetic operations numcodecs' filters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b` (real types only)
    Mul,
    /// `a / b` (floats only)
    Div,
}

/// `a op b` computed in type `t` (both operands already of `t`'s domain): integers wrap
/// around, floats are rounded once to `t`'s width (what numpy's loops give: for `f2` and `f4`
/// a wider exact result rounded once equals numpy's narrower arithmetic). Complex numbers
/// take [`Op::Add`] and [`Op::Sub`] only.
pub(crate) fn apply(op: Op, a: Num, b: Num, t: DataType) -> Num {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) if t.kind != DtypeKind::Float => Num::Int(wrap(
            match op {
                Op::Add => x.wrapping_add(y),
                Op::Sub => x.wrapping_sub(y),
                Op::Mul => x.wrapping_mul(y),
                Op::Div => x.checked_div(y).unwrap_or(0),
            },
            t,
        )),
        (Num::Complex(ar, ai), Num::Complex(br, bi)) => {
            let size = t.size / 2;
            debug_assert!(matches!(op, Op::Add | Op::Sub), "complex {op:?}");
            let (re, im) = match op {
                Op::Sub => (ar - br, ai - bi),
                _ => (ar + br, ai + bi),
            };
            Num::Complex(round_float(re, size), round_float(im, size))
        }
        (a, b) => {
            let (x, y) = (real(a), real(b));
            let r = match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div => x / y,
            };
            Num::Float(round_float(r, t.size))
        }
    }
}

/// numpy's `around` (round half to even); integers are left as they are.
pub(crate) fn rint(a: Num) -> Num {
    match a {
        Num::Float(x) => Num::Float(x.round_ties_even()),
        other => other,
    }
}

/// A half-precision float, exactly (NaN payloads kept, as numpy's half routines keep them).
fn f16_bits_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let man = u64::from(h & 0x3ff);
    match exp {
        0 => sign * man as f64 * 2f64.powi(-24),
        0x1f => f64::from_bits((u64::from(h & 0x8000) << 48) | 0x7ff0_0000_0000_0000 | (man << 42)),
        _ => sign * (1024 + man) as f64 * 2f64.powi(i32::from(exp) - 25),
    }
}

/// A single-precision float, exactly (a NaN keeps its payload, unquieted).
fn f32_bits_to_f64(bits: u32) -> f64 {
    let f = f32::from_bits(bits);
    if f.is_nan() {
        let sign = u64::from(bits >> 31) << 63;
        return f64::from_bits(sign | 0x7ff0_0000_0000_0000 | (u64::from(bits & 0x7f_ffff) << 29));
    }
    f64::from(f)
}

/// `x` rounded to single precision (a NaN keeps the top of its payload, unquieted).
fn f64_to_f32_bits(x: f64) -> u32 {
    if x.is_nan() {
        let bits = x.to_bits();
        let payload = ((bits >> 29) & 0x7f_ffff) as u32;
        let sign = ((bits >> 63) as u32) << 31;
        return sign | 0x7f80_0000 | if payload == 0 { 0x40_0000 } else { payload };
    }
    (x as f32).to_bits()
}

/// `x` rounded to half precision, ties to even, as numpy's `npy_double_to_half`.
fn f64_to_f16_bits(x: f64) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 48) & 0x8000) as u16;
    if x.is_nan() {
        let payload = ((bits & 0x000f_ffff_ffff_ffff) >> 42) as u16;
        return sign + 0x7c00 + payload.max(1);
    }
    let a = x.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 2f64.powi(-14) {
        // Subnormal (or zero): a multiple of 2^-24; 1024 becomes the smallest normal.
        return sign | (a * 2f64.powi(24)).round_ties_even() as u16;
    }
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mut man = (a * 2f64.powi(10 - exp)).round_ties_even() as u16;
    let mut exp = exp;
    if man == 2048 {
        man = 1024;
        exp += 1;
    }
    sign | (((exp + 15) as u16) << 10) | (man - 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(text: &str) -> DataType {
        DataType::parse_numpy(text).unwrap()
    }

    #[test]
    fn parses_numpy_type_spellings() {
        for (text, expected) in [
            ("<i4", "<i4"),
            ("int32", "<i4"),
            ("i", "<i4"),
            (">f", ">f4"),
            ("float64", "<f8"),
            ("float", "<f8"),
            ("|u1", "|u1"),
            ("uint16", "<u2"),
            ("bool", "|b1"),
            ("?", "|b1"),
            ("b", "|i1"),
            ("B", "|u1"),
            ("e", "<f2"),
            ("complex64", "<c8"),
            ("int", "<i8"),
            ("=i2", "<i2"),
        ] {
            assert_eq!(
                parse_dtype("t", text).unwrap().numpy_str(),
                expected,
                "{text}"
            );
        }
        for bad in [
            "<U4",
            "|S3",
            "object",
            "O",
            "<M8[ns]",
            "x",
            "longdouble",
            ">int32",
        ] {
            assert!(
                matches!(parse_dtype("t", bad), Err(CodecError::Unsupported(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn loads_and_stores_every_type_exactly() {
        for (text, bytes) in [
            ("<i2", vec![0xfe, 0xff]),
            (">i2", vec![0xff, 0xfe]),
            ("<u4", vec![1, 2, 3, 0xf4]),
            (">u8", vec![0xff, 1, 2, 3, 4, 5, 6, 7]),
            ("<f2", vec![0x01, 0x7c]),
            ("<f2", vec![0x01, 0x00]),
            (">f4", vec![0x7f, 0x80, 0x00, 0x01]),
            ("<f8", 0.1f64.to_le_bytes().to_vec()),
            (">c8", vec![0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]),
            ("|b1", vec![1]),
        ] {
            let dtype = dt(text);
            let mut out = vec![0u8; dtype.size];
            store(load(&bytes, dtype), dtype, &mut out);
            assert_eq!(out, bytes, "{text}");
        }
        assert_eq!(load(&[0xfe, 0xff], dt("<i2")), Num::Int(-2));
        assert_eq!(load(&[0xfe, 0xff], dt("<u2")), Num::Int(65534));
        assert_eq!(load(&[0x00, 0x3c], dt("<f2")), Num::Float(1.0));
    }

    #[test]
    fn half_precision_rounds_to_nearest_even() {
        for (x, bits) in [
            (65504.0, 0x7bff),
            (65519.99, 0x7bff),
            (65520.0, 0x7c00),
            (2f64.powi(-24), 0x0001),
            (2f64.powi(-25), 0x0000),
            (2f64.powi(-25) * 1.000001, 0x0001),
            (1.0 + 2f64.powi(-11), 0x3c00),
            (1.0 + 2f64.powi(-11) + 2f64.powi(-40), 0x3c01),
            (-2.0, 0xc000),
            (f64::INFINITY, 0x7c00),
        ] {
            assert_eq!(f64_to_f16_bits(x), bits, "{x}");
        }
        for h in 0..=u16::MAX {
            if h & 0x7c00 != 0x7c00 || h & 0x3ff == 0 {
                assert_eq!(f64_to_f16_bits(f16_bits_to_f64(h)), h, "{h:#x}");
            }
        }
    }

    #[test]
    fn promotes_as_numpy() {
        for (a, b, expected) in [
            ("|i1", "<i2", "<i2"),
            ("|i1", "|u1", "<i2"),
            ("<u4", "<i2", "<i8"),
            ("<u8", "<i8", "<f8"),
            ("|u1", "<f2", "<f2"),
            ("<i2", "<f2", "<f4"),
            ("<i4", "<f4", "<f8"),
            ("<f4", "<f8", "<f8"),
            (">i4", ">i4", "<i4"),
            ("|b1", "<f2", "<f2"),
            ("<c8", "<f8", "<c16"),
        ] {
            assert_eq!(promote(dt(a), dt(b)).numpy_str(), expected, "{a} {b}");
        }
    }

    #[test]
    fn integer_arithmetic_wraps_and_floats_round() {
        assert_eq!(
            apply(Op::Add, Num::Int(127), Num::Int(1), dt("|i1")),
            Num::Int(-128)
        );
        assert_eq!(
            apply(Op::Sub, Num::Int(0), Num::Int(1), dt("<u2")),
            Num::Int(65535)
        );
        let third = apply(Op::Div, Num::Float(1.0), Num::Float(3.0), dt("<f4"));
        assert_eq!(third, Num::Float(f64::from(1.0f32 / 3.0)));
    }
}

#[cfg(test)]
mod numpy_casts {
    use super::*;
    use crate::codec::array_to_array::numcodecs::tests::b64;
    use crate::codec::test_util::vector;
    use serde_json::Value;

    /// numpy's `astype` between every pair of numeric types, on values at the edges (wrap
    /// around, ties, NaN payloads, infinities, values out of the target's range).
    #[test]
    fn casts_as_numpy() {
        let doc: Value = serde_json::from_slice(&vector("casts.json")).unwrap();
        let (mut pairs, mut undefined) = (0, 0);
        for (src, values) in doc["values"].as_object().unwrap() {
            let from = DataType::parse_numpy(src).unwrap();
            let values = b64(values);
            for (dst, expected) in doc["casts"][src].as_object().unwrap() {
                let to = DataType::parse_numpy(dst).unwrap();
                let expected = b64(expected);
                for (i, (x, want)) in values
                    .chunks_exact(from.size)
                    .zip(expected.chunks_exact(to.size))
                    .enumerate()
                {
                    let value = load(x, from);
                    let Some(converted) = cast(value, from, to) else {
                        // Undefined: only floats that are not finite or do not fit.
                        assert!(
                            matches!(value, Num::Float(_) | Num::Complex(..)),
                            "{src} -> {dst}"
                        );
                        undefined += 1;
                        continue;
                    };
                    let mut got = vec![0u8; to.size];
                    store(converted, to, &mut got);
                    assert_eq!(got, want, "{src} -> {dst}, value {i} ({x:02x?}: {value:?})");
                }
                pairs += 1;
            }
        }
        assert_eq!(pairs, 16 * 16);
        assert!(undefined < 1500, "{undefined} undefined conversions");
    }
}
