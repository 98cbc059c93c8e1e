//! numcodecs' filters as array→array codecs (Zarr v2 `filters`, Zarr v3 `numcodecs.<id>`), and
//! what they share.
//!
//! A numcodecs filter sees bytes: decoding views its input as its own encoded type (`astype`)
//! and yields elements of its own decoded type (`dtype`), encoding the reverse, whatever
//! element type the stage before or after it declares. zarr-python chains them so: in Zarr v2
//! every stage hands the next its bytes, and the last one's bytes are the chunk's; in Zarr v3 the
//! `bytes` codec hands the filters the stored bytes unchanged, and the outermost filter's
//! elements are assigned to the array by value (see [`outermost_filter_dtype`]).

use super::numeric::{self, parse_dtype, Num};
use super::{
    ArrayToArrayCodec, AsTypeCodec, BitRoundCodec, CategorizeCodec, DeltaCodec,
    FixedScaleOffsetCodec, PackBitsCodec, QuantizeCodec,
};
use crate::codec::{ChunkRepr, CodecError};
use crate::metadata::{DataType, DtypeKind};
use serde_json::Value;

/// Filters zarrfs refuses, with the reason: they decode to objects or variable-length
/// elements, or decoding them would run code.
const REFUSED: &[(&str, &str)] = &[
    ("pickle", "decoding a pickle runs arbitrary code"),
    ("msgpack2", "it decodes to Python objects"),
    ("json2", "it decodes to Python objects"),
    ("vlen-utf8", "it decodes to variable-length strings"),
    ("vlen-bytes", "it decodes to variable-length bytes"),
    ("vlen-array", "it decodes to variable-length arrays"),
];

/// The numcodecs filter `id` configured by `config`, for chunks arriving as `incoming` (the
/// decoded side); `None` when `id` is not a numcodecs array→array filter.
pub fn numcodecs_filter(
    id: &str,
    config: &Value,
    incoming: &ChunkRepr,
    zarr_format: u8,
) -> Option<Result<Box<dyn ArrayToArrayCodec>, CodecError>> {
    fn boxed<C: ArrayToArrayCodec + 'static>(
        codec: Result<C, CodecError>,
    ) -> Result<Box<dyn ArrayToArrayCodec>, CodecError> {
        codec.map(|c| Box::new(c) as Box<dyn ArrayToArrayCodec>)
    }
    if let Some((_, reason)) = REFUSED.iter().find(|(name, _)| *name == id) {
        return Some(Err(CodecError::Unsupported(format!("{id}: {reason}"))));
    }
    if !(config.is_object() || config.is_null()) {
        return Some(Err(CodecError::config(
            id,
            "configuration must be a JSON object",
        )));
    }
    Some(match id {
        "delta" => boxed(DeltaCodec::from_config(config)),
        "fixedscaleoffset" => boxed(FixedScaleOffsetCodec::from_config(config)),
        "quantize" => match QuantizeCodec::from_config(config) {
            // zarr-python 3 gives quantize no encoded type: its bytes codec decodes the stored
            // bytes as the array's type, which fails when astype's size differs.
            Ok(codec) if zarr_format == 3 && codec.resizes() => {
                Err(CodecError::Unsupported(format!(
                    "{} in Zarr v3 (zarr-python cannot read it)",
                    codec.describe()
                )))
            }
            codec => boxed(codec),
        },
        "astype" => boxed(AsTypeCodec::from_config(config, incoming.dtype)),
        "packbits" => Ok(Box::new(PackBitsCodec) as Box<dyn ArrayToArrayCodec>),
        "categorize" => boxed(CategorizeCodec::from_config(config)),
        "bitround" => {
            if zarr_format == 3 && incoming.dtype.kind == DtypeKind::Int {
                // zarr-python 3 views signed integers as floats of their width to "decode"
                // them, then assigns those floats to the array by value.
                return Some(Err(CodecError::Unsupported(format!(
                    "bitround over {} elements",
                    incoming.dtype
                ))));
            }
            boxed(BitRoundCodec::from_config(config, incoming.dtype))
        }
        _ => return None,
    })
}

/// In a Zarr v3 `codecs` list, the element type zarr-python's outermost numcodecs filter
/// decodes to (transposes before it keep their elements), when it differs from `array`:
/// zarr-python assigns those elements to the array by value, so the chain casts them.
pub fn outermost_filter_dtype(
    codecs: &[Value],
    array: &ChunkRepr,
) -> Result<Option<DataType>, CodecError> {
    let Some(entry) = codecs
        .iter()
        .find(|entry| entry.get("name").and_then(Value::as_str) != Some("transpose"))
    else {
        return Ok(None);
    };
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let configuration = entry.get("configuration").unwrap_or(&Value::Null);
    let Some(id) = name.strip_prefix("numcodecs.") else {
        return Ok(None);
    };
    match numcodecs_filter(id, configuration, array, 3) {
        Some(filter) => Ok(filter?.decodes_to().filter(|dtype| *dtype != array.dtype)),
        None => Ok(None),
    }
}

/// An element type field of a filter configuration (`None` when absent or null).
pub(super) fn dtype_field(
    codec: &str,
    config: &Value,
    key: &str,
) -> Result<Option<DataType>, CodecError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_dtype(codec, text).map(Some),
        Some(other) => Err(CodecError::config(
            codec,
            format!("\"{key}\" must be a dtype string, got {other}"),
        )),
    }
}

/// A required element type field.
pub(super) fn required_dtype(
    codec: &str,
    config: &Value,
    key: &str,
) -> Result<DataType, CodecError> {
    dtype_field(codec, config, key)?
        .ok_or_else(|| CodecError::config(codec, format!("missing \"{key}\"")))
}

/// A numcodecs filter that views a chunk as a flat array of one element type and maps it to
/// a flat array of another (delta, fixedscaleoffset, quantize, astype). Implementing it
/// makes an [`ArrayToArrayCodec`](super::ArrayToArrayCodec) that checks sizes and allocates
/// the encoded chunk.
pub(super) trait Elementwise: Send + Sync + std::fmt::Debug {
    /// The codec's name, for messages.
    const CODEC: &'static str;
    /// Short description with parameters.
    fn description(&self) -> String;
    /// The element type of decoded chunks, and that of encoded ones.
    fn types(&self) -> (DataType, DataType);
    /// Encodes the elements of `chunk` into `out`, sized for as many encoded elements.
    fn encode_elements(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError>;
    /// Decodes the elements of `encoded` into `out`, a decoded chunk of the right size.
    fn decode_elements(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError>;
}

impl<T: Elementwise> super::ArrayToArrayCodec for T {
    fn describe(&self) -> String {
        self.description()
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        let (dtype, astype) = self.types();
        elementwise_repr(T::CODEC, decoded, dtype, astype)
    }

    fn decodes_to(&self) -> Option<DataType> {
        Some(self.types().0)
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        decoded.checked_bytes(T::CODEC, chunk.len())?;
        let (dtype, astype) = self.types();
        let count = element_count(T::CODEC, chunk, dtype)?;
        let mut out = element_buffer(T::CODEC, count, astype)?;
        self.encode_elements(chunk, &mut out)?;
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        decoded.checked_bytes(T::CODEC, out.len())?;
        self.decode_elements(encoded, out)
    }
}

/// The encoded representation of a filter that views a chunk of `decoded` as elements of
/// `dtype` and encodes each into one of `astype`: the shape is kept when the element count
/// is, otherwise the chunk becomes one-dimensional (numcodecs flattens it).
pub(super) fn elementwise_repr(
    codec: &str,
    decoded: &ChunkRepr,
    dtype: DataType,
    astype: DataType,
) -> Result<ChunkRepr, CodecError> {
    let bytes = decoded.size(codec)?;
    if !bytes.is_multiple_of(dtype.size) {
        return Err(CodecError::config(
            codec,
            format!("chunks of {bytes} bytes are not a whole number of {dtype} elements"),
        ));
    }
    let count = bytes / dtype.size;
    let kept = decoded.shape.iter().product::<usize>() == count;
    let encoded = ChunkRepr {
        shape: if kept {
            decoded.shape.clone()
        } else {
            vec![count]
        },
        dtype: astype,
    };
    encoded.size(codec)?;
    Ok(encoded)
}

/// The number of `dtype` elements in `bytes`, which must hold a whole number of them.
pub(super) fn element_count(
    codec: &str,
    bytes: &[u8],
    dtype: DataType,
) -> Result<usize, CodecError> {
    if !bytes.len().is_multiple_of(dtype.size) {
        return Err(CodecError::corrupt(
            codec,
            format!(
                "{} bytes are not a whole number of {dtype} elements",
                bytes.len()
            ),
        ));
    }
    Ok(bytes.len() / dtype.size)
}

/// Maps each `from` element of `input` to a `to` element of `out`; both must hold the same
/// number of elements.
pub(super) fn map_elements(
    codec: &str,
    input: &[u8],
    from: DataType,
    out: &mut [u8],
    to: DataType,
    mut f: impl FnMut(Num) -> Result<Num, CodecError>,
) -> Result<(), CodecError> {
    let count = element_count(codec, input, from)?;
    let out_count = element_count(codec, out, to)?;
    if count != out_count {
        return Err(CodecError::corrupt(
            codec,
            format!("{count} encoded elements for {out_count} decoded ones"),
        ));
    }
    for (src, dst) in input
        .chunks_exact(from.size)
        .zip(out.chunks_exact_mut(to.size))
    {
        numeric::store(f(numeric::load(src, from))?, to, dst);
    }
    Ok(())
}

/// numpy's cast of `value` from `from` to `to`, or why it has no defined result.
pub(super) fn cast(value: Num, from: DataType, to: DataType) -> Result<Num, String> {
    numeric::cast(value, from, to).ok_or_else(|| {
        format!("{value} has no defined conversion to {to} (numpy's result varies by CPU)")
    })
}

/// numpy's cast of every `from` element of `input` to a `to` element of `out`; `error` says
/// why an element has no defined conversion. Copies or swaps bytes where only the byte order
/// differs.
pub(super) fn cast_elements(
    codec: &str,
    input: &[u8],
    from: DataType,
    out: &mut [u8],
    to: DataType,
    error: impl Fn(String) -> CodecError,
) -> Result<(), CodecError> {
    if from.kind == to.kind && from.size == to.size && input.len() == out.len() {
        out.copy_from_slice(input);
        if from.endian != to.endian {
            let unit = if from.kind == DtypeKind::Complex {
                from.size / 2
            } else {
                from.size
            };
            out.chunks_exact_mut(unit.max(1)).for_each(<[u8]>::reverse);
        }
        return Ok(());
    }
    map_elements(codec, input, from, out, to, |x| {
        cast(x, from, to).map_err(&error)
    })
}

/// A buffer of `count` elements of `dtype`; an error when the size overflows.
pub(super) fn element_buffer(
    codec: &str,
    count: usize,
    dtype: DataType,
) -> Result<Vec<u8>, CodecError> {
    let len = count
        .checked_mul(dtype.size)
        .ok_or_else(|| CodecError::config(codec, format!("{count} elements overflow")))?;
    crate::codec::alloc_zeroed(codec, len)
}

/// A number in a filter configuration as Python holds it: an int or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum PyNumber {
    /// A Python int (within 64 bits).
    Int(i128),
    /// A Python float.
    Float(f64),
}

impl PyNumber {
    /// A required number field.
    pub(super) fn field(codec: &str, config: &Value, key: &str) -> Result<Self, CodecError> {
        let bad = || CodecError::config(codec, format!("\"{key}\" must be a number"));
        let Some(Value::Number(n)) = config.get(key) else {
            return Err(bad());
        };
        if let Some(i) = n.as_i64() {
            return Ok(PyNumber::Int(i128::from(i)));
        }
        if let Some(u) = n.as_u64() {
            return Ok(PyNumber::Int(i128::from(u)));
        }
        let text = n.to_string();
        if !text.contains(['.', 'e', 'E']) {
            return Err(CodecError::Unsupported(format!(
                "{codec} with \"{key}\" = {text} (an integer beyond 64 bits)"
            )));
        }
        n.as_f64().map(PyNumber::Float).ok_or_else(bad)
    }

    /// numpy's result of an operation between an array of type `t` and this Python number
    /// (NEP 50: the number takes the array's type, except that a float makes integers `f8`),
    /// with the number converted to that type; `None` when an int does not fit an integer
    /// type (numpy raises OverflowError).
    pub(super) fn with_array_of(self, t: DataType) -> Option<(DataType, Num)> {
        let f8 = numeric::native(DtypeKind::Float, 8);
        match (t.kind, self) {
            (DtypeKind::Int | DtypeKind::UInt, PyNumber::Int(i)) => {
                let fits = numeric::cast(Num::Int(i), t, t) == Some(Num::Int(i));
                fits.then_some((t, Num::Int(i)))
            }
            (DtypeKind::Int | DtypeKind::UInt, PyNumber::Float(x)) => Some((f8, Num::Float(x))),
            (_, PyNumber::Int(i)) => {
                let i8 = numeric::native(DtypeKind::Int, 8);
                Some((t, numeric::cast(Num::Int(i), i8, t)?))
            }
            (_, PyNumber::Float(x)) => Some((t, numeric::cast(Num::Float(x), f8, t)?)),
        }
    }

    /// The number as JSON shows it.
    pub(super) fn describe(self) -> String {
        match self {
            PyNumber::Int(i) => i.to_string(),
            PyNumber::Float(x) => format!("{x:?}"),
        }
    }
}

/// Checks that `dtype` is one of `kinds`, for a filter that only handles those.
pub(super) fn require_kind(
    codec: &str,
    dtype: DataType,
    kinds: &[DtypeKind],
) -> Result<DataType, CodecError> {
    if kinds.contains(&dtype.kind) {
        Ok(dtype)
    } else {
        Err(CodecError::Unsupported(format!(
            "{codec} with dtype {dtype}"
        )))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::codec::test_util::vector;
    use base64::Engine;

    /// Decodes a base64 string of a test vector.
    pub(crate) fn b64(value: &Value) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap()
    }

    /// Every filter case numcodecs encoded: zarrfs encodes the input to the same bytes and
    /// decodes them to what numcodecs decodes.
    #[test]
    fn encodes_and_decodes_as_numcodecs() {
        let cases: Vec<Value> = serde_json::from_slice(&vector("filters.json")).unwrap();
        assert!(cases.len() > 40);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let config = &case["config"];
            let dtype = DataType::parse_numpy(case["dtype"].as_str().unwrap()).unwrap();
            let (raw, enc, dec) = (b64(&case["raw"]), b64(&case["enc"]), b64(&case["dec"]));
            let repr = ChunkRepr {
                shape: vec![raw.len() / dtype.size],
                dtype,
            };
            let id = config["id"].as_str().unwrap();
            let codec = numcodecs_filter(id, config, &repr, 2).unwrap().unwrap();
            assert_eq!(
                codec.encoded_repr(&repr).unwrap().bytes(),
                Some(enc.len()),
                "{name}"
            );
            match codec.encode(&raw, &repr) {
                // NaN, infinities or values out of range into integers: numpy's bytes vary.
                Err(CodecError::Encode { reason, .. }) if case["encode_undefined"] == true => {
                    assert!(reason.contains("no defined conversion"), "{name}: {reason}")
                }
                encoded => assert_eq!(encoded.unwrap(), enc, "{name}: encoded"),
            }
            let mut out = vec![0xAA; dec.len()];
            codec.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, dec, "{name}: decoded");
            assert!(
                codec.decode_into(&enc[1..], &repr, &mut out).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn refuses_filters_it_cannot_decode_safely() {
        let repr = ChunkRepr {
            shape: vec![4],
            dtype: DataType::parse_numpy("<i4").unwrap(),
        };
        for (id, config) in [
            ("pickle", serde_json::json!({})),
            ("msgpack2", serde_json::json!({})),
            (
                "categorize",
                serde_json::json!({"labels": ["a"], "dtype": "|O", "astype": "|u1"}),
            ),
            ("delta", serde_json::json!({"dtype": "|O"})),
            ("delta", serde_json::json!({"dtype": "|b1"})),
            (
                "fixedscaleoffset",
                serde_json::json!({"dtype": "<c8", "offset": 0, "scale": 1}),
            ),
            ("quantize", serde_json::json!({"digits": 2, "dtype": "<i4"})),
        ] {
            let err = numcodecs_filter(id, &config, &repr, 2)
                .unwrap()
                .unwrap_err();
            assert!(matches!(err, CodecError::Unsupported(_)), "{id}: {err}");
        }
        for (id, config) in [
            ("delta", serde_json::json!({})),
            (
                "fixedscaleoffset",
                serde_json::json!({"dtype": "<f8", "scale": 1}),
            ),
            ("bitround", serde_json::json!({"keepbits": -1})),
            ("astype", serde_json::json!({"decode_dtype": "<f8"})),
            ("delta", serde_json::json!([1])),
        ] {
            let err = numcodecs_filter(id, &config, &repr, 2)
                .unwrap()
                .unwrap_err();
            assert!(matches!(err, CodecError::Config { .. }), "{id}: {err}");
        }
        assert!(numcodecs_filter("zlib", &serde_json::json!({}), &repr, 2).is_none());
        // zarr-python 3 turns signed integers "decoded" by bitround into floats.
        let bitround = serde_json::json!({"keepbits": 3});
        assert!(numcodecs_filter("bitround", &bitround, &repr, 3)
            .unwrap()
            .is_err());
        assert!(numcodecs_filter("bitround", &bitround, &repr, 2)
            .unwrap()
            .is_ok());
        // zarr-python 3 cannot read a quantize whose astype has another size.
        let quantize = serde_json::json!({"digits": 2, "dtype": "<f4", "astype": "<f2"});
        let f4 = ChunkRepr {
            shape: vec![4],
            dtype: DataType::parse_numpy("<f4").unwrap(),
        };
        assert!(numcodecs_filter("quantize", &quantize, &f4, 3)
            .unwrap()
            .is_err());
        assert!(numcodecs_filter("quantize", &quantize, &f4, 2)
            .unwrap()
            .is_ok());
    }
}
