//! Encoding a JSON fill value into the bytes of one element.

use super::dtype::{DataType, DtypeKind, Endian};
use serde_json::Value;

fn float_from_json(value: &Value) -> Result<f64, String> {
    if let Some(special) = super::json::non_finite(value) {
        return Ok(special);
    }
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other if other.starts_with("0x") => u64::from_str_radix(&other[2..], 16)
                .map(f64::from_bits)
                .map_err(|_| format!("bad hex fill value {other:?}")),
            other => other
                .parse::<f64>()
                .map_err(|_| format!("bad float fill value {other:?}")),
        },
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        other => Err(format!("bad float fill value {other}")),
    }
}

fn put_bytes(out: &mut Vec<u8>, little: &[u8], endian: Endian) {
    if endian == Endian::Big {
        out.extend(little.iter().rev());
    } else {
        out.extend_from_slice(little);
    }
}

fn float_bytes(value: f64, size: usize, hex_bits: Option<u64>, endian: Endian) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    match size {
        2 => {
            let bits = hex_bits
                .map(|b| b as u16)
                .unwrap_or_else(|| half::f16::from_f64(value).to_bits());
            put_bytes(&mut out, &bits.to_le_bytes(), endian)
        }
        4 => {
            let bits = hex_bits
                .map(|b| b as u32)
                .unwrap_or_else(|| (value as f32).to_bits());
            put_bytes(&mut out, &bits.to_le_bytes(), endian)
        }
        _ => {
            let bits = hex_bits.unwrap_or_else(|| value.to_bits());
            put_bytes(&mut out, &bits.to_le_bytes(), endian)
        }
    }
    out
}

fn hex_bits(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16).ok(),
        _ => None,
    }
}

fn integer_from_json(value: &Value, signed: bool) -> Result<i128, String> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.is_finite() {
                    Ok(f as i128)
                } else {
                    Err(format!("fill value {n} is not an integer"))
                }
            }
        }
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::String(s) => s
            .parse::<i128>()
            .map_err(|_| format!("bad integer fill value {s:?} (signed: {signed})")),
        other => Err(format!("bad integer fill value {other}")),
    }
}

/// The text NumPy makes of a number filling a string type (`np.array(0, "S1")` is `b"0"`),
/// as zarr-python 2 read the numeric fills older writers left on string arrays.
fn number_as_text(n: &serde_json::Number) -> String {
    n.to_string()
}

/// The bytes of a byte-string, raw or record fill: base64 text (zarr-python, v2 and v3), a
/// list of byte values (v3 raw bits); a number is its text for byte strings (as NumPy makes
/// it) and, when 0, all zeros for raw bytes and records. Byte strings are padded with NULs
/// or cut to the type's length, as NumPy (and so zarr-python) makes them.
fn byte_fill(value: &Value, dtype: &DataType) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let size = dtype.size;
    let mut bytes = match value {
        Value::Number(n) if dtype.kind == DtypeKind::Bytes => number_as_text(n).into_bytes(),
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("bad {dtype} fill value {value}"))?,
        Value::String(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("bad base64 fill value {text:?}: {e}"))?,
        Value::Number(n) if n.as_u64() == Some(0) => vec![0; size],
        other => return Err(format!("bad {dtype} fill value {other}")),
    };
    if dtype.kind == DtypeKind::Bytes {
        bytes.resize(size, 0);
    }
    if bytes.len() != size {
        return Err(format!(
            "{dtype} fill value of {} bytes for an element of {size}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// `text` as one element of the fixed-length text type `dtype` (`<U<n>`, `>U<n>`): UTF-32
/// characters in the type's byte order, padded with NULs or cut to the type's length, as
/// NumPy (and so zarr-python) assigns text to such an element.
pub fn text_element(text: &str, dtype: &DataType) -> Vec<u8> {
    let mut out = Vec::with_capacity(dtype.size);
    for c in text.chars().take(dtype.size / 4) {
        put_bytes(&mut out, &(c as u32).to_le_bytes(), dtype.endian);
    }
    out.resize(dtype.size, 0);
    out
}

/// A text fill: the string (or a number's text) as an element, see [`text_element`].
fn unicode_fill(value: &Value, dtype: &DataType) -> Result<Vec<u8>, String> {
    match value {
        Value::String(text) => Ok(text_element(text, dtype)),
        Value::Number(n) => Ok(text_element(&number_as_text(n), dtype)),
        other => Err(format!("bad {dtype} fill value {other}")),
    }
}

/// A datetime64/timedelta64 fill: the count as an integer, or NaT.
fn time_fill(value: &Value, dtype: &DataType) -> Result<Vec<u8>, String> {
    let count = match value {
        Value::String(s) if s == "NaT" => i64::MIN,
        other => i64::try_from(integer_from_json(other, true)?)
            .map_err(|_| format!("fill value {other} out of range for {dtype}"))?,
    };
    let mut out = Vec::with_capacity(8);
    put_bytes(&mut out, &count.to_le_bytes(), dtype.endian);
    Ok(out)
}

/// Encodes `value` (as found in `.zarray` or `zarr.json`) into one element of `dtype`.
/// `null` gives zeros.
pub fn fill_value_bytes(value: &Value, dtype: &DataType) -> Result<Vec<u8>, String> {
    if value.is_null() {
        return Ok(vec![0; dtype.size]);
    }
    let endian = dtype.endian;
    match &dtype.kind {
        DtypeKind::Bool => {
            let b = match value {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
                other => return Err(format!("bad bool fill value {other}")),
            };
            Ok(vec![u8::from(b)])
        }
        DtypeKind::Int | DtypeKind::UInt => {
            let signed = dtype.kind == DtypeKind::Int;
            let v = integer_from_json(value, signed)?;
            let bits = 8 * dtype.size as u32;
            let (min, max) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if v < min || v > max {
                return Err(format!(
                    "fill value {v} out of range for {}",
                    dtype.numpy_str()
                ));
            }
            let le = (v as u128).to_le_bytes();
            let mut out = Vec::with_capacity(dtype.size);
            put_bytes(&mut out, &le[..dtype.size], endian);
            Ok(out)
        }
        DtypeKind::Float => Ok(float_bytes(
            float_from_json(value)?,
            dtype.size,
            hex_bits(value),
            endian,
        )),
        DtypeKind::Bytes | DtypeKind::Raw | DtypeKind::Structured(_) => byte_fill(value, dtype),
        DtypeKind::Unicode => unicode_fill(value, dtype),
        DtypeKind::DateTime(_) | DtypeKind::TimeDelta(_) => time_fill(value, dtype),
        // Elements of variable length have no fixed bytes: their fill is the JSON value.
        DtypeKind::Variable(_) => Ok(Vec::new()),
        DtypeKind::Complex => {
            let half_size = dtype.size / 2;
            let (re, im) = match value {
                Value::Array(parts) if parts.len() == 2 => (&parts[0], &parts[1]),
                Value::Array(_) => return Err(format!("bad complex fill value {value}")),
                other => (other, &Value::Null),
            };
            let re_f = float_from_json(re)?;
            let im_f = if im.is_null() {
                0.0
            } else {
                float_from_json(im)?
            };
            let mut out = float_bytes(re_f, half_size, hex_bits(re), endian);
            out.extend(float_bytes(im_f, half_size, hex_bits(im), endian));
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dt(s: &str) -> DataType {
        DataType::parse_numpy(s).unwrap()
    }

    #[test]
    fn null_is_zero() {
        assert_eq!(
            fill_value_bytes(&Value::Null, &dt("<f8")).unwrap(),
            vec![0; 8]
        );
    }

    #[test]
    fn integers_respect_byte_order_and_range() {
        assert_eq!(
            fill_value_bytes(&json!(-2), &dt("<i2")).unwrap(),
            (-2i16).to_le_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!(258), &dt(">u4")).unwrap(),
            258u32.to_be_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!(u64::MAX), &dt("<u8")).unwrap(),
            u64::MAX.to_le_bytes()
        );
        assert!(fill_value_bytes(&json!(300), &dt("|u1")).is_err());
        assert!(fill_value_bytes(&json!(-1), &dt("<u2")).is_err());
        assert_eq!(
            fill_value_bytes(&json!(3.0), &dt("<i4")).unwrap(),
            3i32.to_le_bytes()
        );
    }

    #[test]
    fn float_specials() {
        let nan = fill_value_bytes(&json!("NaN"), &dt("<f4")).unwrap();
        assert!(f32::from_le_bytes(nan.try_into().unwrap()).is_nan());
        assert_eq!(
            fill_value_bytes(&json!("-Infinity"), &dt(">f8")).unwrap(),
            f64::NEG_INFINITY.to_be_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!("Infinity"), &dt("<f2")).unwrap(),
            half::f16::INFINITY.to_bits().to_le_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!(1.5), &dt("<f2")).unwrap(),
            half::f16::from_f32(1.5).to_bits().to_le_bytes()
        );
    }

    #[test]
    fn strings_dates_raw_and_records() {
        assert_eq!(
            fill_value_bytes(&json!("YWI="), &dt("|S4")).unwrap(),
            b"ab\0\0"
        );
        assert_eq!(fill_value_bytes(&json!(0), &dt("|S2")).unwrap(), [b'0', 0]);
        assert_eq!(
            fill_value_bytes(&json!(12), &dt("<U3")).unwrap(),
            [b'1', 0, 0, 0, b'2', 0, 0, 0, 0, 0, 0, 0]
        );
        // Longer than the type: cut, as NumPy casts it.
        assert_eq!(fill_value_bytes(&json!("YWJj"), &dt("|S2")).unwrap(), b"ab");
        assert_eq!(
            fill_value_bytes(&json!("xé"), &dt(">U3")).unwrap(),
            [0, 0, 0, b'x', 0, 0, 0, 0xe9, 0, 0, 0, 0]
        );
        assert_eq!(
            fill_value_bytes(&json!("long"), &dt("<U2")).unwrap(),
            [b'l', 0, 0, 0, b'o', 0, 0, 0]
        );
        assert_eq!(
            fill_value_bytes(&json!(5), &dt("<M8[10ms]")).unwrap(),
            5i64.to_le_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!("NaT"), &dt(">m8[ns]")).unwrap(),
            i64::MIN.to_be_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!(-9223372036854775808i64), &dt("<m8[ns]")).unwrap(),
            i64::MIN.to_le_bytes()
        );
        assert_eq!(
            fill_value_bytes(&json!("AAEC"), &dt("|V3")).unwrap(),
            [0, 1, 2]
        );
        assert_eq!(
            fill_value_bytes(&json!([7, 8]), &dt("|V2")).unwrap(),
            [7, 8]
        );
        let record = DataType::parse_v2(&json!([["a", "<i2"], ["b", "|u1"]])).unwrap();
        assert_eq!(
            fill_value_bytes(&json!("AQID"), &record).unwrap(),
            [1, 2, 3]
        );
        assert_eq!(fill_value_bytes(&Value::Null, &record).unwrap(), [0, 0, 0]);
        assert!(fill_value_bytes(&json!("AQ=="), &record).is_err());
    }

    #[test]
    fn complex_and_bool() {
        let c = fill_value_bytes(&json!([1.0, "NaN"]), &dt("<c8")).unwrap();
        assert_eq!(&c[..4], &1.0f32.to_le_bytes());
        assert!(f32::from_le_bytes(c[4..].try_into().unwrap()).is_nan());
        let c = fill_value_bytes(&json!(2.0), &dt(">c16")).unwrap();
        assert_eq!(&c[..8], &2.0f64.to_be_bytes());
        assert_eq!(&c[8..], &0.0f64.to_be_bytes());
        assert_eq!(fill_value_bytes(&json!(true), &dt("|b1")).unwrap(), vec![1]);
        assert!(fill_value_bytes(&json!("x"), &dt("|b1")).is_err());
    }
}
