//! Variable-length elements: numcodecs' object codecs `vlen-utf8`, `vlen-bytes`,
//! `vlen-array` and `json2` (Zarr v2 `|O` arrays) and the v3 `vlen-utf8`/`vlen-bytes`
//! array→bytes codecs. Chunks decode to one JSON value per element (text as strings, bytes
//! as base64, JSON objects as themselves), never to fixed-size bytes. Object codecs that
//! would run code or rebuild arbitrary objects (`pickle`, `msgpack2`) are refused.

use super::super::bytes_to_bytes::{v2_compressor, v3_bytes_codec, BytesToBytesCodec};
use super::super::chain::v3_entry;
use super::super::f_to_c_order;
use super::super::CodecError;
use crate::metadata::{json, ArrayMeta, CodecSpec, DataType, DtypeKind, Order};
use base64::Engine;
use serde_json::Value;
use std::borrow::Cow;

/// How one element is framed and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlenCodec {
    /// Length-prefixed UTF-8 text.
    Utf8,
    /// Length-prefixed bytes, shown as base64.
    Bytes,
    /// Length-prefixed arrays of numbers of this type, shown as JSON lists.
    Array(DataType),
    /// The whole chunk as one JSON document (numcodecs `json2`).
    Json,
}

/// Object codecs that are refused, with why.
const REFUSED: [(&str, &str); 2] = [
    ("pickle", "pickled objects would run code"),
    ("msgpack2", "msgpack objects are not decoded"),
];

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

impl VlenCodec {
    /// The object codec a v2 filter or v3 codec entry names; `Ok(None)` when it is none.
    pub fn from_name(name: &str, configuration: &Value) -> Result<Option<Self>, CodecError> {
        if let Some((_, why)) = REFUSED.iter().find(|(refused, _)| *refused == name) {
            return Err(CodecError::Unsupported(format!("{name} ({why})")));
        }
        Ok(match name {
            "vlen-utf8" => Some(Self::Utf8),
            "vlen-bytes" => Some(Self::Bytes),
            "json2" => Some(Self::Json),
            "vlen-array" => {
                let dtype = configuration
                    .get("dtype")
                    .and_then(Value::as_str)
                    .ok_or_else(|| CodecError::config(name, "missing \"dtype\""))?;
                let dtype = DataType::parse_numpy(dtype)
                    .map_err(|reason| CodecError::config(name, reason))?;
                if !matches!(
                    dtype.kind,
                    DtypeKind::Bool | DtypeKind::Int | DtypeKind::UInt | DtypeKind::Float
                ) {
                    return Err(CodecError::config(name, format!("elements of {dtype}")));
                }
                Some(Self::Array(dtype))
            }
            _ => None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Utf8 => "vlen-utf8",
            Self::Bytes => "vlen-bytes",
            Self::Array(_) => "vlen-array",
            Self::Json => "json2",
        }
    }

    /// Decodes the `count` elements of a chunk, one JSON text per element.
    pub fn decode(&self, data: &[u8], count: usize) -> Result<Vec<String>, CodecError> {
        let corrupt = |why: String| CodecError::corrupt(self.name(), why);
        if *self == Self::Json {
            return self.decode_json(data, count);
        }
        let items = read_u32(data, 0).ok_or_else(|| corrupt("no item count".into()))? as usize;
        if items != count {
            return Err(corrupt(format!("{items} items, expected {count}")));
        }
        // Every item takes at least its 4-byte length: a chunk cannot hold more.
        let mut out = Vec::with_capacity(count.min(data.len() / 4));
        let mut at = 4usize;
        for i in 0..count {
            let len = read_u32(data, at)
                .ok_or_else(|| corrupt(format!("item {i}: truncated length")))?
                as usize;
            let start = at + 4;
            let item = start
                .checked_add(len)
                .and_then(|end| data.get(start..end))
                .ok_or_else(|| corrupt(format!("item {i}: {len} bytes past the end")))?;
            at = start + len;
            out.push(match self {
                Self::Utf8 => {
                    let text =
                        std::str::from_utf8(item).map_err(|e| corrupt(format!("item {i}: {e}")))?;
                    Value::String(text.to_string()).to_string()
                }
                Self::Bytes => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(item))
                        .to_string()
                }
                Self::Array(dtype) => array_item(item, dtype)
                    .ok_or_else(|| corrupt(format!("item {i}: {len} bytes of {dtype}")))?,
                Self::Json => unreachable!("decoded above"),
            });
        }
        Ok(out)
    }

    /// numcodecs `json2`: `[element…, dtype, shape]`, the elements nested as the shape says.
    fn decode_json(&self, data: &[u8], count: usize) -> Result<Vec<String>, CodecError> {
        let corrupt = |why: String| CodecError::corrupt("json2", why);
        let doc = json::parse(data).map_err(|e| corrupt(e.to_string()))?;
        let mut items = match doc {
            Value::Array(items) if items.len() >= 2 => items,
            _ => return Err(corrupt("not a list ending in dtype and shape".into())),
        };
        let shape = items.pop().expect("two items");
        items.pop();
        let dims = match &shape {
            Value::Array(dims) => dims.len(),
            _ => return Err(corrupt(format!("bad shape {shape}"))),
        };
        // Every element takes at least a byte of the document.
        let mut flat = Vec::with_capacity(count.min(data.len()));
        flatten(items, dims.saturating_sub(1), &mut flat);
        if flat.len() != count {
            return Err(corrupt(format!("{} items, expected {count}", flat.len())));
        }
        Ok(flat.iter().map(json::to_python_line).collect())
    }
}

/// Appends the elements of `items`, nested `depth` levels below the top, in C order.
fn flatten(items: Vec<Value>, depth: usize, out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::Array(inner) if depth > 0 => flatten(inner, depth - 1, out),
            other => out.push(other),
        }
    }
}

/// A `vlen-array` element as a JSON list of numbers.
fn array_item(item: &[u8], dtype: &DataType) -> Option<String> {
    if !item.len().is_multiple_of(dtype.size) {
        return None;
    }
    let numbers: Vec<String> = item
        .chunks_exact(dtype.size)
        .map(|bytes| {
            let mut le = [0u8; 8];
            le[..bytes.len()].copy_from_slice(bytes);
            if dtype.is_big_endian() {
                le[..bytes.len()].reverse();
            }
            let raw = u64::from_le_bytes(le);
            let bits = 8 * dtype.size as u32;
            match dtype.kind {
                DtypeKind::Bool => (raw != 0).to_string(),
                DtypeKind::Int => (((raw << (64 - bits)) as i64) >> (64 - bits)).to_string(),
                DtypeKind::UInt => raw.to_string(),
                _ => {
                    let value = match dtype.size {
                        2 => half::f16::from_bits(raw as u16).to_f64(),
                        4 => f64::from(f32::from_bits(raw as u32)),
                        _ => f64::from_bits(raw),
                    };
                    json_number(value)
                }
            }
        })
        .collect();
    Some(format!("[{}]", numbers.join(", ")))
}

/// A float as Python's json writes it (`NaN`, `Infinity`, shortest round trip).
fn json_number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{value:?}")
    }
}

/// The codecs of a variable-length array: bytes→bytes codecs over the framed elements.
#[derive(Debug)]
pub struct VlenChain {
    codec: VlenCodec,
    bytes_to_bytes: Vec<Box<dyn BytesToBytesCodec>>,
    /// Elements per chunk (the full chunk shape).
    count: usize,
    /// For chunks stored in Fortran order (v2 `order: "F"`): the stored position of each
    /// element in C order.
    f_order_positions: Option<Vec<usize>>,
    /// The fill element's JSON text, for chunks not stored.
    fill: String,
}

impl VlenChain {
    /// The chain of a variable-length array (v2 `|O` with an object codec as its first
    /// filter, or v3 `string`/`bytes` with `vlen-utf8`/`vlen-bytes`).
    pub fn from_meta(meta: &ArrayMeta) -> Result<Self, CodecError> {
        let count = meta
            .chunk_shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
            .ok_or_else(|| CodecError::config("chunks", "chunk shape overflows"))?;
        let (codec, bytes_to_bytes) = match &meta.codecs {
            CodecSpec::V2 {
                filters,
                compressor,
            } => {
                let (first, rest) = filters.split_first().ok_or_else(|| {
                    CodecError::Unsupported("an |O array without an object codec".into())
                })?;
                let id = first.get("id").and_then(Value::as_str).unwrap_or("");
                let codec = VlenCodec::from_name(id, first)?
                    .ok_or_else(|| CodecError::Unsupported(format!("{id} as an object codec")))?;
                if let Some(other) = rest.first() {
                    return Err(CodecError::Unsupported(format!(
                        "filter {} after an object codec",
                        other.get("id").and_then(Value::as_str).unwrap_or("?")
                    )));
                }
                let compressors = compressor
                    .iter()
                    .map(|c| v2_compressor(c, 1))
                    .collect::<Result<Vec<_>, _>>()?;
                (codec, compressors)
            }
            CodecSpec::V3 { codecs } => {
                let (first, rest) = codecs
                    .split_first()
                    .ok_or_else(|| CodecError::config("codecs", "empty codec list"))?;
                let (name, configuration) = v3_entry(first)?;
                let codec = VlenCodec::from_name(name, configuration)?.ok_or_else(|| {
                    CodecError::Unsupported(format!("{name} for variable-length elements"))
                })?;
                let compressors = rest
                    .iter()
                    .map(|entry| {
                        let (name, configuration) = v3_entry(entry)?;
                        v3_bytes_codec(name, configuration, 1)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (codec, compressors)
            }
        };
        let shape: Vec<usize> = meta.chunk_shape.iter().map(|&d| d as usize).collect();
        let f_order_positions = (meta.order == Order::F && shape.len() > 1).then(|| {
            let positions: Vec<u8> = (0..count as u64).flat_map(u64::to_le_bytes).collect();
            f_to_c_order(&positions, &shape, 8)
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
                .collect()
        });
        Ok(VlenChain {
            fill: fill_text(&meta.fill_value, &codec),
            codec,
            bytes_to_bytes,
            count,
            f_order_positions,
        })
    }

    /// Elements per chunk.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The JSON text of the fill element.
    pub fn fill(&self) -> &str {
        &self.fill
    }

    /// Decodes a stored chunk to the JSON texts of its elements (full chunk shape, C order),
    /// no stage decoding to more than `max_len` bytes.
    pub fn decode(&self, encoded: &[u8], max_len: usize) -> Result<Vec<String>, CodecError> {
        let mut stage: Cow<[u8]> = Cow::Borrowed(encoded);
        for codec in self.bytes_to_bytes.iter().rev() {
            stage = Cow::Owned(codec.decode_bounded(&stage, max_len)?);
        }
        let texts = self.codec.decode(&stage, self.count)?;
        Ok(match &self.f_order_positions {
            Some(positions) => positions.iter().map(|&p| texts[p].clone()).collect(),
            None => texts,
        })
    }
}

/// The fill element as zarr-python shows it: the declared value (a number filling text is
/// its text, as NumPy converts it), or an empty string (base64 of no bytes) when none is
/// declared; `null` for JSON objects.
fn fill_text(fill: &Value, codec: &VlenCodec) -> String {
    match (fill, codec) {
        (Value::Null, VlenCodec::Json | VlenCodec::Array(_)) => "null".into(),
        (Value::Null, _) => "\"\"".into(),
        (Value::Number(n), VlenCodec::Utf8) => Value::String(n.to_string()).to_string(),
        (Value::Number(n), VlenCodec::Bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(n.to_string()))
                .to_string()
        }
        (other, _) => json::to_python_line(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn framed(items: &[&[u8]]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for item in items {
            out.extend((item.len() as u32).to_le_bytes());
            out.extend_from_slice(item);
        }
        out
    }

    #[test]
    fn decodes_numcodecs_framing() {
        let data = framed(&["hé".as_bytes(), b"", b"x\"y"]);
        assert_eq!(
            VlenCodec::Utf8.decode(&data, 3).unwrap(),
            ["\"hé\"", "\"\"", "\"x\\\"y\""]
        );
        assert_eq!(
            VlenCodec::Bytes.decode(&framed(&[b"\x00\xff"]), 1).unwrap(),
            ["\"AP8=\""]
        );
        let ints: Vec<u8> = [1i16, -2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let codec = VlenCodec::from_name("vlen-array", &json!({"dtype": "<i2"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            codec.decode(&framed(&[&ints, b""]), 2).unwrap(),
            ["[1, -2]", "[]"]
        );
        let floats: Vec<u8> = [1.5f64, f64::NAN]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let codec = VlenCodec::from_name("vlen-array", &json!({"dtype": ">f8"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            codec.decode(&framed(&[&floats]), 1).unwrap(),
            ["[1.5, NaN]"]
        );
    }

    #[test]
    fn decodes_json2_documents_of_any_shape() {
        let doc = br#"[[{"a": 1}, "s"], [null, NaN], "|O", [2, 2]]"#;
        assert_eq!(
            VlenCodec::Json.decode(doc, 4).unwrap(),
            ["{\"a\":1}", "\"s\"", "null", "NaN"]
        );
        assert!(VlenCodec::Json.decode(doc, 3).is_err());
        assert!(VlenCodec::Json.decode(b"{}", 1).is_err());
    }

    #[test]
    fn bad_framing_is_an_error_never_a_panic() {
        let data = framed(&[b"abc", b"de"]);
        for cut in 0..data.len() {
            assert!(
                VlenCodec::Utf8.decode(&data[..cut], 2).is_err(),
                "cut {cut}"
            );
        }
        assert!(VlenCodec::Utf8.decode(&data, 3).is_err());
        assert!(VlenCodec::Utf8.decode(&framed(&[b"\xff"]), 1).is_err());
        let mut huge = framed(&[b"a"]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(VlenCodec::Bytes.decode(&huge, 1).is_err());
        for seed in 0..200u8 {
            let junk: Vec<u8> = (0..64).map(|i| i ^ seed.wrapping_mul(31)).collect();
            let _ = VlenCodec::Utf8.decode(&junk, 2);
            let _ = VlenCodec::Json.decode(&junk, 2);
        }
    }

    #[test]
    fn refuses_codecs_that_rebuild_objects() {
        for name in ["pickle", "msgpack2"] {
            assert!(matches!(
                VlenCodec::from_name(name, &json!({})),
                Err(CodecError::Unsupported(_))
            ));
        }
        assert_eq!(VlenCodec::from_name("zstd", &json!({})).unwrap(), None);
    }
}
