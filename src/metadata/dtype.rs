//! Fixed-size numeric data types as NumPy type strings (`<f4`, `|b1`, `>c16`).

use std::fmt;

/// The family of a numeric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeKind {
    /// `b`: one byte per boolean.
    Bool,
    /// `i`: signed integer.
    Int,
    /// `u`: unsigned integer.
    UInt,
    /// `f`: IEEE float (2, 4 or 8 bytes).
    Float,
    /// `c`: complex, two floats (8 or 16 bytes).
    Complex,
    /// `V`: raw bytes with no interpretation (v3 `r<bits>`).
    Raw,
}

/// Byte order of the stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// `<`
    Little,
    /// `>`
    Big,
    /// `|` (single-byte types)
    NotApplicable,
}

/// A numeric element type with its declared byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataType {
    /// Type family.
    pub kind: DtypeKind,
    /// Bytes per element.
    pub size: usize,
    /// Declared byte order.
    pub endian: Endian,
}

impl DataType {
    /// Parses a NumPy type string such as `<f8`, `|u1`, `>i2`, `b1`.
    pub fn parse_numpy(text: &str) -> Result<Self, String> {
        let (endian_char, rest) = match text.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (Some(c), &text[1..]),
            _ => (None, text),
        };
        let mut chars = rest.chars();
        let kind_char = chars
            .next()
            .ok_or_else(|| format!("empty dtype {text:?}"))?;
        let size: usize = chars
            .as_str()
            .parse()
            .map_err(|_| format!("unsupported dtype {text:?}"))?;
        let kind = match kind_char {
            'V' => DtypeKind::Raw,
            'b' => DtypeKind::Bool,
            'i' => DtypeKind::Int,
            'u' => DtypeKind::UInt,
            'f' => DtypeKind::Float,
            'c' => DtypeKind::Complex,
            _ => return Err(format!("unsupported dtype {text:?}")),
        };
        let valid = match kind {
            DtypeKind::Bool => size == 1,
            DtypeKind::Int | DtypeKind::UInt => matches!(size, 1 | 2 | 4 | 8),
            DtypeKind::Float => matches!(size, 2 | 4 | 8),
            DtypeKind::Complex => matches!(size, 8 | 16),
            DtypeKind::Raw => size >= 1,
        };
        if !valid {
            return Err(format!("unsupported dtype {text:?}"));
        }
        let endian = if size == 1 || kind == DtypeKind::Raw {
            Endian::NotApplicable
        } else {
            match endian_char {
                Some('>') => Endian::Big,
                Some('<') | Some('=') | None => Endian::Little,
                Some('|') => return Err(format!("dtype {text:?} needs a byte order")),
                Some(_) => unreachable!("matched above"),
            }
        };
        Ok(DataType { kind, size, endian })
    }

    /// Parses a Zarr v3 data type name (`float32`, `uint8`, `bool`, `complex128`, ...),
    /// whose byte order is decided by the `bytes` codec (`big` selects `Endian::Big`).
    pub fn parse_v3(name: &str, big_endian: bool) -> Result<Self, String> {
        let (kind, size) = match name {
            "bool" => (DtypeKind::Bool, 1),
            "int8" => (DtypeKind::Int, 1),
            "int16" => (DtypeKind::Int, 2),
            "int32" => (DtypeKind::Int, 4),
            "int64" => (DtypeKind::Int, 8),
            "uint8" => (DtypeKind::UInt, 1),
            "uint16" => (DtypeKind::UInt, 2),
            "uint32" => (DtypeKind::UInt, 4),
            "uint64" => (DtypeKind::UInt, 8),
            "float16" => (DtypeKind::Float, 2),
            "float32" => (DtypeKind::Float, 4),
            "float64" => (DtypeKind::Float, 8),
            "complex64" => (DtypeKind::Complex, 8),
            "complex128" => (DtypeKind::Complex, 16),
            raw if raw.starts_with('r') => match raw[1..].parse::<usize>() {
                Ok(bits) if bits > 0 && bits % 8 == 0 => (DtypeKind::Raw, bits / 8),
                _ => return Err(format!("unsupported data type {name:?}")),
            },
            _ => return Err(format!("unsupported data type {name:?}")),
        };
        let endian = if size == 1 || kind == DtypeKind::Raw {
            Endian::NotApplicable
        } else if big_endian {
            Endian::Big
        } else {
            Endian::Little
        };
        Ok(DataType { kind, size, endian })
    }

    /// The NumPy type string, e.g. `<f4`, `|u1`.
    pub fn numpy_str(&self) -> String {
        let order = match self.endian {
            Endian::Little => '<',
            Endian::Big => '>',
            Endian::NotApplicable => '|',
        };
        let kind = match self.kind {
            DtypeKind::Bool => 'b',
            DtypeKind::Int => 'i',
            DtypeKind::UInt => 'u',
            DtypeKind::Float => 'f',
            DtypeKind::Complex => 'c',
            DtypeKind::Raw => 'V',
        };
        format!("{order}{kind}{}", self.size)
    }

    /// Whether stored bytes are big-endian.
    pub fn is_big_endian(&self) -> bool {
        self.endian == Endian::Big
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.numpy_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_supported_numpy_types() {
        for (text, size) in [
            ("|b1", 1),
            ("b1", 1),
            ("|i1", 1),
            ("<i2", 2),
            (">i4", 4),
            ("<i8", 8),
            ("|u1", 1),
            (">u2", 2),
            ("<u4", 4),
            (">u8", 8),
            ("<f2", 2),
            (">f4", 4),
            ("<f8", 8),
            ("<c8", 8),
            (">c16", 16),
        ] {
            let dt = DataType::parse_numpy(text).unwrap();
            assert_eq!(dt.size, size, "{text}");
        }
        assert_eq!(DataType::parse_numpy(">f4").unwrap().numpy_str(), ">f4");
        assert_eq!(DataType::parse_numpy("b1").unwrap().numpy_str(), "|b1");
        assert_eq!(DataType::parse_numpy("<u1").unwrap().numpy_str(), "|u1");
    }

    #[test]
    fn rejects_unsupported_types() {
        for text in [
            "<U5", "|S3", "<M8[ns]", "<f3", "<i3", "", "<c4", "|f4", "x", "|V0",
        ] {
            assert!(DataType::parse_numpy(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parses_v3_names() {
        let dt = DataType::parse_v3("float64", true).unwrap();
        assert_eq!(dt.numpy_str(), ">f8");
        assert_eq!(
            DataType::parse_v3("uint8", true).unwrap().numpy_str(),
            "|u1"
        );
        assert!(DataType::parse_v3("string", false).is_err());
        assert_eq!(DataType::parse_v3("r16", true).unwrap().numpy_str(), "|V2");
        assert_eq!(DataType::parse_numpy("|V3").unwrap().numpy_str(), "|V3");
        for bad in ["r0", "r7", "r", "rx"] {
            assert!(DataType::parse_v3(bad, false).is_err(), "{bad}");
        }
    }
}
