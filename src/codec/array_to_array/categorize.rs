//! numcodecs' `Categorize` filter: fixed-length text stored as the 1-based position of its
//! label in a list of labels (0 for text that is no label, which decodes to "").

use super::numeric::{self, is_numeric, parse_dtype, Num};
use super::ArrayToArrayCodec;
use crate::codec::{alloc_zeroed, ChunkRepr, CodecError};
use crate::metadata::fill::text_element;
use crate::metadata::{DataType, DtypeKind, Endian};
use serde_json::Value;

const CODEC: &str = "categorize";

/// Text elements of `dtype` (`<U<n>` or `>U<n>`) stored as integers of `astype`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorizeCodec {
    /// The labels, each as the element of `dtype` it decodes to (cut to the type's length, as
    /// numpy assigns it).
    labels: Vec<Vec<u8>>,
    /// The labels' text, to compare elements with.
    texts: Vec<String>,
    dtype: DataType,
    astype: DataType,
}

/// The characters of a UTF-32 element without its trailing NULs (numpy compares text so).
fn element_text(element: &[u8], endian: Endian) -> Option<String> {
    let mut chars: Vec<char> = element
        .chunks_exact(4)
        .map(|c| {
            let bytes = [c[0], c[1], c[2], c[3]];
            let code = match endian {
                Endian::Big => u32::from_be_bytes(bytes),
                _ => u32::from_le_bytes(bytes),
            };
            char::from_u32(code)
        })
        .collect::<Option<_>>()?;
    while chars.last() == Some(&'\0') {
        chars.pop();
    }
    Some(chars.into_iter().collect())
}

impl CategorizeCodec {
    /// From numcodecs' configuration: `labels` (strings), `dtype` (fixed-length text; object
    /// arrays decode to Python objects and are unsupported), `astype` (an integer type,
    /// `|u1` when absent).
    pub fn from_config(config: &Value) -> Result<Self, CodecError> {
        let texts: Vec<String> = config
            .get("labels")
            .and_then(Value::as_array)
            .ok_or_else(|| CodecError::config(CODEC, "\"labels\" must be a list"))?
            .iter()
            .map(|label| label.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| CodecError::config(CODEC, "labels must be strings"))?;
        let dtype_text = config
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| CodecError::config(CODEC, "missing \"dtype\""))?;
        let dtype = DataType::parse_numpy(dtype_text)
            .ok()
            .filter(|d| d.kind == DtypeKind::Unicode)
            .ok_or_else(|| {
                CodecError::Unsupported(format!(
                    "{CODEC} to {dtype_text} (it decodes to Python objects)"
                ))
            })?;
        let astype = match config.get("astype").and_then(Value::as_str) {
            Some(text) => parse_dtype(CODEC, text)?,
            None => parse_dtype(CODEC, "|u1")?,
        };
        if !is_numeric(astype) || !matches!(astype.kind, DtypeKind::Int | DtypeKind::UInt) {
            return Err(CodecError::Unsupported(format!("{CODEC} as {astype}")));
        }
        let labels = texts
            .iter()
            .map(|text| text_element(text, &dtype))
            .collect();
        Ok(CategorizeCodec {
            labels,
            texts,
            dtype,
            astype,
        })
    }

    fn count(&self, decoded: &ChunkRepr) -> Result<usize, CodecError> {
        if decoded.dtype != self.dtype {
            return Err(CodecError::Unsupported(format!(
                "{CODEC} to {} in an array of {}",
                self.dtype, decoded.dtype
            )));
        }
        Ok(decoded.size(CODEC)? / self.dtype.size.max(1))
    }
}

impl ArrayToArrayCodec for CategorizeCodec {
    fn describe(&self) -> String {
        format!(
            "{CODEC}({} labels, {} as {})",
            self.labels.len(),
            self.dtype,
            self.astype
        )
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        Ok(ChunkRepr {
            shape: vec![self.count(decoded)?],
            dtype: self.astype,
        })
    }

    fn decodes_to(&self) -> Option<DataType> {
        Some(self.dtype)
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        decoded.checked_bytes(CODEC, chunk.len())?;
        let count = self.count(decoded)?;
        let width = self.astype.size;
        let mut out = alloc_zeroed(CODEC, count.saturating_mul(width))?;
        for (element, code) in chunk
            .chunks_exact(self.dtype.size)
            .zip(out.chunks_exact_mut(width))
        {
            let text = element_text(element, self.dtype.endian)
                .ok_or_else(|| CodecError::corrupt(CODEC, "an element that is not UTF-32"))?;
            // numcodecs assigns every label in turn: the last one equal wins.
            let position = self.texts.iter().rposition(|label| *label == text);
            let value = position.map_or(0, |i| i as i128 + 1);
            numeric::store(Num::Int(value), self.astype, code);
        }
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        decoded.checked_bytes(CODEC, out.len())?;
        let count = self.count(decoded)?;
        let width = self.astype.size;
        if encoded.len() != count.saturating_mul(width) {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "{} bytes for {count} codes of {}",
                    encoded.len(),
                    self.astype
                ),
            ));
        }
        for (code, element) in encoded
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(self.dtype.size))
        {
            let Num::Int(value) = numeric::load(code, self.astype) else {
                unreachable!("integer codes load as integers");
            };
            match usize::try_from(value - 1)
                .ok()
                .and_then(|i| self.labels.get(i))
            {
                Some(label) => element.copy_from_slice(label),
                None => element.fill(0),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repr(dtype: &str, n: usize) -> ChunkRepr {
        ChunkRepr {
            shape: vec![n],
            dtype: DataType::parse_numpy(dtype).unwrap(),
        }
    }

    fn text(words: &[&str], dtype: &str) -> Vec<u8> {
        let dtype = DataType::parse_numpy(dtype).unwrap();
        let mut out = Vec::new();
        for word in words {
            let mut element: Vec<u8> = word
                .chars()
                .flat_map(|c| match dtype.endian {
                    Endian::Big => (c as u32).to_be_bytes(),
                    _ => (c as u32).to_le_bytes(),
                })
                .collect();
            element.resize(dtype.size, 0);
            out.extend(element);
        }
        out
    }

    #[test]
    fn matches_numcodecs() {
        // numcodecs.Categorize(["ab", "c", "é"], "<U3").encode(["c", "ab", "zz", "", "é"])
        // is [2, 1, 0, 0, 3] (|u1); decode gives ["c", "ab", "", "", "é"].
        let codec = CategorizeCodec::from_config(
            &json!({"labels": ["ab", "c", "é"], "dtype": "<U3", "astype": "|u1"}),
        )
        .unwrap();
        let r = repr("<U3", 5);
        let encoded = codec
            .encode(&text(&["c", "ab", "zz", "", "é"], "<U3"), &r)
            .unwrap();
        assert_eq!(encoded, [2, 1, 0, 0, 3]);
        let mut out = vec![0xAA; r.bytes().unwrap()];
        codec.decode_into(&encoded, &r, &mut out).unwrap();
        assert_eq!(out, text(&["c", "ab", "", "", "é"], "<U3"));
        // Codes past the labels decode to "", and a short buffer is refused.
        codec.decode_into(&[9, 0, 1, 2, 3], &r, &mut out).unwrap();
        assert_eq!(out, text(&["", "", "ab", "c", "é"], "<U3"));
        assert!(codec.decode_into(&[1, 2], &r, &mut out).is_err());
    }

    #[test]
    fn wider_codes_big_endian_text_and_long_labels() {
        let codec = CategorizeCodec::from_config(
            &json!({"labels": ["long label", "x"], "dtype": ">U2", "astype": "<u2"}),
        )
        .unwrap();
        let r = repr(">U2", 2);
        let mut out = vec![0; 16];
        codec.decode_into(&[1, 0, 2, 0], &r, &mut out).unwrap();
        assert_eq!(out, text(&["lo", "x"], ">U2"));
        assert_eq!(codec.encode(&out, &r).unwrap(), [0, 0, 2, 0]);
    }

    #[test]
    fn object_text_and_float_codes_are_refused() {
        for config in [
            json!({"labels": ["a"], "dtype": "|O", "astype": "|u1"}),
            json!({"labels": ["a"], "dtype": "<U1", "astype": "<f4"}),
            json!({"labels": [1], "dtype": "<U1"}),
        ] {
            assert!(CategorizeCodec::from_config(&config).is_err(), "{config}");
        }
    }
}
