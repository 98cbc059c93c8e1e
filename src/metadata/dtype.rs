//! Fixed-size data types, as NumPy lays them out: numbers (`<f4`, `|b1`, `>c16`), dates and
//! durations (`<M8[10ms]`, `<m8[ns]`), fixed-length bytes (`|S5`) and text (`<U3`, UTF-32),
//! raw bytes (`|V3`) and structured records. Parsed from Zarr v2 `dtype` strings or field
//! lists and from Zarr v3 `data_type` names.

use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;

/// The family of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// `M`: datetime64, an 8-byte count of `unit`s since 1970-01-01.
    DateTime(TimeUnit),
    /// `m`: timedelta64, an 8-byte count of `unit`s.
    TimeDelta(TimeUnit),
    /// `S`: fixed-length bytes, padded with NULs.
    Bytes,
    /// `U`: fixed-length text, 4 bytes (UTF-32) per character, padded with NULs.
    Unicode,
    /// `V`: raw bytes with no interpretation (v3 `r<bits>`, `raw_bytes`).
    Raw,
    /// A record of named fields laid out one after the other (interned: one copy of each
    /// distinct layout lives for the life of the process).
    Structured(&'static Record),
    /// Variable-length elements (v2 `|O` with an object codec, v3 `string` and `bytes`):
    /// shown as JSON lines, not as fixed-size views.
    Variable(VariableKind),
}

/// What the elements of a variable-length array are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariableKind {
    /// Text (v3 `string`).
    Text,
    /// Bytes (v3 `bytes`).
    Bytes,
    /// Decided by the array's object codec (v2 `|O`).
    Object,
}

/// The unit of a datetime64 or timedelta64: `count` times a base unit (`10ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeUnit {
    /// Base unit as NumPy names it (`Y M W D h m s ms us ns ps fs as`), empty for the
    /// generic unit.
    pub base: &'static str,
    /// Multiplier of the base unit.
    pub count: u32,
}

const TIME_UNITS: [&str; 13] = [
    "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
];

impl TimeUnit {
    /// Parses `10ms`, `ns`, `` (generic).
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (count, base) = text.split_at(digits);
        let count = if count.is_empty() {
            1
        } else {
            count
                .parse::<u32>()
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| format!("bad time unit multiplier in {text:?}"))?
        };
        let base = if base.is_empty() && count == 1 {
            ""
        } else {
            TIME_UNITS
                .iter()
                .find(|&&unit| unit == base)
                .copied()
                .ok_or_else(|| format!("unknown time unit {text:?}"))?
        };
        Ok(TimeUnit { base, count })
    }

    /// The unit as NumPy writes it inside brackets (`10ms`, `ns`).
    fn text(&self) -> String {
        match self.count {
            1 => self.base.to_string(),
            n => format!("{n}{}", self.base),
        }
    }

    /// The bracketed suffix of a NumPy type string (`[10ms]`, empty for the generic unit).
    fn suffix(&self) -> String {
        if self.base.is_empty() {
            String::new()
        } else {
            format!("[{}]", self.text())
        }
    }
}

/// One field of a structured type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Element type.
    pub dtype: DataType,
    /// Shape of a sub-array field (empty for a scalar field).
    pub shape: Vec<u64>,
}

/// The fields of a structured type, packed one after the other (as a Zarr v2 field list
/// declares them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Fields in order.
    pub fields: Vec<Field>,
}

impl Record {
    /// The one shared copy of this layout.
    fn intern(self) -> &'static Record {
        static INTERNED: Mutex<Option<HashSet<&'static Record>>> = Mutex::new(None);
        let mut interned = INTERNED.lock();
        let set = interned.get_or_insert_with(HashSet::new);
        if let Some(&known) = set.get(&self) {
            return known;
        }
        let leaked: &'static Record = Box::leak(Box::new(self));
        set.insert(leaked);
        leaked
    }
}

/// Byte order of the stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `<`
    Little,
    /// `>`
    Big,
    /// `|` (single-byte and byte-string types, records)
    NotApplicable,
}

/// A data type with its declared byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataType {
    /// Type family.
    pub kind: DtypeKind,
    /// Bytes per element.
    pub size: usize,
    /// Declared byte order.
    pub endian: Endian,
}

/// The largest element zarrfs accepts (a record or string of 16 MiB).
const MAX_ITEMSIZE: usize = 16 << 20;

fn endian_of(prefix: Option<char>, text: &str) -> Result<Endian, String> {
    match prefix {
        Some('>') => Ok(Endian::Big),
        Some('<') | Some('=') | None => Ok(Endian::Little),
        _ => Err(format!("dtype {text:?} needs a byte order")),
    }
}

impl DataType {
    /// A type of `kind` and `size` bytes in byte order `endian` (ignored where a type has
    /// none: one-byte types, byte strings, raw bytes and records).
    fn new(kind: DtypeKind, size: usize, endian: Endian) -> Self {
        let endian = match kind {
            DtypeKind::Bytes
            | DtypeKind::Raw
            | DtypeKind::Structured(_)
            | DtypeKind::Variable(_) => Endian::NotApplicable,
            _ if size == 1 => Endian::NotApplicable,
            _ => endian,
        };
        DataType { kind, size, endian }
    }

    /// Parses a NumPy type string such as `<f8`, `|u1`, `>i2`, `b1`, `<M8[10ms]`, `|S5`,
    /// `>U3`, `|V4`.
    pub fn parse_numpy(text: &str) -> Result<Self, String> {
        let unsupported = || format!("unsupported dtype {text:?}");
        let (prefix, rest) = match text.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (Some(c), &text[1..]),
            _ => (None, text),
        };
        let mut chars = rest.chars();
        let kind_char = chars
            .next()
            .ok_or_else(|| format!("empty dtype {text:?}"))?;
        let body = chars.as_str();
        if kind_char == 'O' && body.is_empty() {
            return Ok(Self::variable(VariableKind::Object));
        }
        if let 'M' | 'm' = kind_char {
            let unit = match body.strip_prefix('8') {
                Some("") => TimeUnit::parse("")?,
                Some(bracketed) => TimeUnit::parse(
                    bracketed
                        .strip_prefix('[')
                        .and_then(|u| u.strip_suffix(']'))
                        .ok_or_else(unsupported)?,
                )?,
                None => return Err(unsupported()),
            };
            let kind = if kind_char == 'M' {
                DtypeKind::DateTime(unit)
            } else {
                DtypeKind::TimeDelta(unit)
            };
            return Ok(Self::new(kind, 8, endian_of(prefix, text)?));
        }
        let size: usize = body.parse().map_err(|_| unsupported())?;
        let (kind, size) = match kind_char {
            'b' if size == 1 => (DtypeKind::Bool, 1),
            'i' if matches!(size, 1 | 2 | 4 | 8) => (DtypeKind::Int, size),
            'u' if matches!(size, 1 | 2 | 4 | 8) => (DtypeKind::UInt, size),
            'f' if matches!(size, 2 | 4 | 8) => (DtypeKind::Float, size),
            'c' if matches!(size, 8 | 16) => (DtypeKind::Complex, size),
            'S' | 'a' if (1..=MAX_ITEMSIZE).contains(&size) => (DtypeKind::Bytes, size),
            'V' if (1..=MAX_ITEMSIZE).contains(&size) => (DtypeKind::Raw, size),
            'U' if (1..=MAX_ITEMSIZE / 4).contains(&size) => (DtypeKind::Unicode, 4 * size),
            _ => return Err(unsupported()),
        };
        let endian = if size == 1 || matches!(kind, DtypeKind::Bytes | DtypeKind::Raw) {
            Endian::NotApplicable
        } else {
            endian_of(prefix, text)?
        };
        Ok(Self::new(kind, size, endian))
    }

    /// Parses a Zarr v2 `dtype`: a NumPy type string, or a structured type as a list of
    /// `[name, type]` / `[name, type, shape]` fields (types nest).
    pub fn parse_v2(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(text) => Self::parse_numpy(text),
            Value::Array(fields) => {
                let fields = fields
                    .iter()
                    .map(|field| {
                        let parts = field.as_array().filter(|p| (2..=3).contains(&p.len()));
                        let parts = parts.ok_or_else(|| format!("bad structured field {field}"))?;
                        let name = parts[0]
                            .as_str()
                            .ok_or_else(|| format!("bad field name in {field}"))?;
                        let shape = match parts.get(2) {
                            None => Vec::new(),
                            Some(Value::Array(dims)) => dims
                                .iter()
                                .map(Value::as_u64)
                                .collect::<Option<Vec<u64>>>()
                                .ok_or_else(|| format!("bad field shape in {field}"))?,
                            Some(other) => return Err(format!("bad field shape {other}")),
                        };
                        Ok(Field {
                            name: name.to_string(),
                            dtype: Self::parse_v2(&parts[1])?,
                            shape,
                        })
                    })
                    .collect::<Result<Vec<Field>, String>>()?;
                Self::structured(fields)
            }
            other => Err(format!("unsupported dtype {other}")),
        }
    }

    /// A variable-length type (NumPy's object dtype holds a pointer per element).
    pub fn variable(kind: VariableKind) -> Self {
        Self::new(DtypeKind::Variable(kind), 8, Endian::NotApplicable)
    }

    /// Whether elements have no fixed size (shown as JSON lines).
    pub fn is_variable(&self) -> bool {
        matches!(self.kind, DtypeKind::Variable(_))
    }

    /// A packed record of `fields`; names must be distinct and the size reasonable.
    pub fn structured(fields: Vec<Field>) -> Result<Self, String> {
        if fields.is_empty() {
            return Err("a structured dtype without fields".into());
        }
        let mut size: usize = 0;
        for (i, field) in fields.iter().enumerate() {
            if fields[..i].iter().any(|f| f.name == field.name) {
                return Err(format!("duplicate field name {:?}", field.name));
            }
            let count = field.shape.iter().try_fold(1usize, |acc, &d| {
                usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
            });
            size = count
                .and_then(|c| c.checked_mul(field.dtype.size))
                .and_then(|bytes| size.checked_add(bytes))
                .filter(|&s| s <= MAX_ITEMSIZE)
                .ok_or_else(|| format!("structured dtype larger than {MAX_ITEMSIZE} bytes"))?;
        }
        if size == 0 {
            return Err("a structured dtype of zero bytes".into());
        }
        Ok(Self::new(
            DtypeKind::Structured(Record { fields }.intern()),
            size,
            Endian::NotApplicable,
        ))
    }

    /// Parses a Zarr v3 `data_type`, whose byte order is decided by the `bytes` codec (`big`
    /// selects `Endian::Big`): a name (`float32`, `uint8`, `bool`, `complex128`, `r16`, …) or
    /// a named object (`numpy.datetime64`, `numpy.timedelta64`, `fixed_length_utf32`,
    /// `null_terminated_bytes`, `raw_bytes`, `structured`).
    pub fn parse_v3(value: &Value, big_endian: bool) -> Result<Self, String> {
        let endian = if big_endian {
            Endian::Big
        } else {
            Endian::Little
        };
        let (name, configuration) = match value {
            Value::String(name) => (name.as_str(), &Value::Null),
            Value::Object(object) => (
                object
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("data type without a name: {value}"))?,
                object.get("configuration").unwrap_or(&Value::Null),
            ),
            other => return Err(format!("unsupported data type {other}")),
        };
        let length = || {
            configuration
                .get("length_bytes")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_ITEMSIZE).contains(n))
                .ok_or_else(|| format!("{name} without a valid length_bytes"))
        };
        let time_unit = || -> Result<TimeUnit, String> {
            let base = configuration
                .get("unit")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{name} without a unit"))?;
            let count = match configuration.get("scale_factor") {
                None | Some(Value::Null) => 1,
                Some(v) => v
                    .as_u64()
                    .filter(|&c| c > 0 && c <= u64::from(u32::MAX))
                    .ok_or_else(|| format!("bad scale_factor {v}"))?,
            };
            TimeUnit::parse(&format!("{count}{base}"))
        };
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
            "numpy.datetime64" => (DtypeKind::DateTime(time_unit()?), 8),
            "numpy.timedelta64" => (DtypeKind::TimeDelta(time_unit()?), 8),
            "fixed_length_utf32" => match length()? {
                n if n % 4 == 0 => (DtypeKind::Unicode, n),
                n => return Err(format!("fixed_length_utf32 of {n} bytes")),
            },
            "null_terminated_bytes" => (DtypeKind::Bytes, length()?),
            "raw_bytes" => (DtypeKind::Raw, length()?),
            "structured" => return Self::parse_v3_structured(configuration, big_endian),
            "string" | "variable_length_utf8" => return Ok(Self::variable(VariableKind::Text)),
            "bytes" | "variable_length_bytes" => return Ok(Self::variable(VariableKind::Bytes)),
            raw if raw.starts_with('r') => match raw[1..].parse::<usize>() {
                Ok(bits) if bits > 0 && bits % 8 == 0 && bits / 8 <= MAX_ITEMSIZE => {
                    (DtypeKind::Raw, bits / 8)
                }
                _ => return Err(format!("unsupported data type {name:?}")),
            },
            _ => return Err(format!("unsupported data type {name:?}")),
        };
        Ok(Self::new(kind, size, endian))
    }

    fn parse_v3_structured(configuration: &Value, big_endian: bool) -> Result<Self, String> {
        let fields = configuration
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("structured data type without fields")?
            .iter()
            .map(|field| {
                let parts = field
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| format!("bad structured field {field}"))?;
                Ok(Field {
                    name: parts[0]
                        .as_str()
                        .ok_or_else(|| format!("bad field name in {field}"))?
                        .to_string(),
                    dtype: Self::parse_v3(&parts[1], big_endian)?,
                    shape: Vec::new(),
                })
            })
            .collect::<Result<Vec<Field>, String>>()?;
        Self::structured(fields)
    }

    fn order_char(&self) -> char {
        match self.endian {
            Endian::Little => '<',
            Endian::Big => '>',
            Endian::NotApplicable => '|',
        }
    }

    /// The NumPy type string (`dtype.str`), e.g. `<f4`, `|u1`, `<M8[10ms]`, `>U3`; a record
    /// is `|V<itemsize>`.
    pub fn numpy_str(&self) -> String {
        let order = self.order_char();
        let size = self.size;
        match &self.kind {
            DtypeKind::Bool => format!("{order}b{size}"),
            DtypeKind::Int => format!("{order}i{size}"),
            DtypeKind::UInt => format!("{order}u{size}"),
            DtypeKind::Float => format!("{order}f{size}"),
            DtypeKind::Complex => format!("{order}c{size}"),
            DtypeKind::DateTime(unit) => format!("{order}M8{}", unit.suffix()),
            DtypeKind::TimeDelta(unit) => format!("{order}m8{}", unit.suffix()),
            DtypeKind::Bytes => format!("|S{size}"),
            DtypeKind::Unicode => format!("{order}U{}", size / 4),
            DtypeKind::Raw | DtypeKind::Structured(_) => format!("|V{size}"),
            DtypeKind::Variable(_) => "|O".to_string(),
        }
    }

    /// The type as a Zarr v2 `dtype` (and `meta.json`'s `descr`): the type string, or for a
    /// record its list of `[name, type(, shape)]` fields.
    pub fn descr_json(&self) -> Value {
        match &self.kind {
            DtypeKind::Structured(record) => Value::Array(
                record
                    .fields
                    .iter()
                    .map(|field| {
                        let mut entry = vec![json!(field.name), field.dtype.descr_json()];
                        if !field.shape.is_empty() {
                            entry.push(json!(field.shape));
                        }
                        Value::Array(entry)
                    })
                    .collect(),
            ),
            _ => Value::String(self.numpy_str()),
        }
    }

    /// The `descr` of an NPY header as NumPy writes it (a Python literal): `'<f4'`, or for a
    /// record `[('a', '<i4'), ('b', '<f8', (2,))]`.
    pub fn npy_descr(&self) -> String {
        match &self.kind {
            DtypeKind::Structured(record) => {
                let fields: Vec<String> = record
                    .fields
                    .iter()
                    .map(|field| {
                        let shape = match field.shape.as_slice() {
                            [] => String::new(),
                            [one] => format!(", ({one},)"),
                            dims => format!(
                                ", ({})",
                                dims.iter()
                                    .map(u64::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        };
                        format!(
                            "({}, {}{shape})",
                            python_str(&field.name),
                            field.dtype.npy_descr()
                        )
                    })
                    .collect();
                format!("[{}]", fields.join(", "))
            }
            _ => format!("'{}'", self.numpy_str()),
        }
    }

    /// The size of the units whose bytes reverse between byte orders: the element, each half
    /// of a complex number, each character of text; `None` for types with no byte order.
    pub fn swap_unit(&self) -> Option<usize> {
        match (&self.kind, self.endian) {
            (_, Endian::NotApplicable) => None,
            (DtypeKind::Complex, _) => Some(self.size / 2),
            (DtypeKind::Unicode, _) => Some(4),
            _ => Some(self.size),
        }
    }

    /// Whether stored bytes are big-endian.
    pub fn is_big_endian(&self) -> bool {
        self.endian == Endian::Big
    }
}

/// A Python string literal of `text` (as `repr` writes simple names).
fn python_str(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
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
        for (text, size, back) in [
            ("|b1", 1, "|b1"),
            ("b1", 1, "|b1"),
            ("|i1", 1, "|i1"),
            ("<i2", 2, "<i2"),
            (">i4", 4, ">i4"),
            ("<i8", 8, "<i8"),
            ("<u1", 1, "|u1"),
            (">u2", 2, ">u2"),
            ("<u4", 4, "<u4"),
            (">u8", 8, ">u8"),
            ("<f2", 2, "<f2"),
            (">f4", 4, ">f4"),
            ("<f8", 8, "<f8"),
            ("<c8", 8, "<c8"),
            (">c16", 16, ">c16"),
            ("<M8[ns]", 8, "<M8[ns]"),
            (">M8[10ms]", 8, ">M8[10ms]"),
            ("<m8[D]", 8, "<m8[D]"),
            ("<M8", 8, "<M8"),
            ("|S5", 5, "|S5"),
            ("<S5", 5, "|S5"),
            ("<U3", 12, "<U3"),
            (">U1", 4, ">U1"),
            ("|V3", 3, "|V3"),
        ] {
            let dt = DataType::parse_numpy(text).unwrap();
            assert_eq!(dt.size, size, "{text}");
            assert_eq!(dt.numpy_str(), back, "{text}");
        }
    }

    #[test]
    fn rejects_unsupported_types() {
        for text in [
            "<f3", "<i3", "", "<c4", "|f4", "x", "|V0", "|S0", "<U0", "|O4", "<M8[xs]", "<M4",
            "<M8[0ms]", "<m8[ms", "|U3", "|O8",
        ] {
            assert!(DataType::parse_numpy(text).is_err(), "{text}");
        }
    }

    #[test]
    fn structured_types_nest_and_describe_themselves_as_numpy_does() {
        let value = json!([
            ["a", "<i4"],
            ["b", ">f8", [2]],
            ["c", [["x", "|u1"], ["y", "<U2"]]]
        ]);
        let dt = DataType::parse_v2(&value).unwrap();
        assert_eq!(dt.size, 4 + 16 + 9);
        assert_eq!(dt.numpy_str(), "|V29");
        assert_eq!(dt.descr_json(), value);
        assert_eq!(
            dt.npy_descr(),
            "[('a', '<i4'), ('b', '>f8', (2,)), ('c', [('x', '|u1'), ('y', '<U2')])]"
        );
        for bad in [
            json!([]),
            json!([["a", "<i4"], ["a", "<i2"]]),
            json!([["a"]]),
            json!([["a", "<i4", [4294967296u64, 4294967296u64]]]),
            json!([["a", "<q4"]]),
        ] {
            assert!(DataType::parse_v2(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_v3_names() {
        let dt = |v: Value, big| DataType::parse_v3(&v, big).unwrap().numpy_str();
        assert_eq!(dt(json!("float64"), true), ">f8");
        assert_eq!(dt(json!("uint8"), true), "|u1");
        assert_eq!(dt(json!("r16"), true), "|V2");
        assert_eq!(
            dt(
                json!({"name": "numpy.datetime64", "configuration": {"unit": "ms", "scale_factor": 10}}),
                false
            ),
            "<M8[10ms]"
        );
        assert_eq!(
            dt(
                json!({"name": "numpy.timedelta64", "configuration": {"unit": "ns", "scale_factor": 1}}),
                true
            ),
            ">m8[ns]"
        );
        assert_eq!(
            dt(
                json!({"name": "fixed_length_utf32", "configuration": {"length_bytes": 12}}),
                false
            ),
            "<U3"
        );
        assert_eq!(
            dt(
                json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 5}}),
                false
            ),
            "|S5"
        );
        assert_eq!(
            dt(
                json!({"name": "raw_bytes", "configuration": {"length_bytes": 3}}),
                false
            ),
            "|V3"
        );
        let record = DataType::parse_v3(
            &json!({"name": "structured", "configuration": {"fields": [["a", "int16"], ["b", "float32"]]}}),
            false,
        )
        .unwrap();
        assert_eq!(record.npy_descr(), "[('a', '<i2'), ('b', '<f4')]");
        assert!(DataType::parse_v3(&json!("string"), false)
            .unwrap()
            .is_variable());
        assert!(DataType::parse_v3(&json!("variable_length_bytes"), false)
            .unwrap()
            .is_variable());
        assert!(DataType::parse_numpy("|O").unwrap().is_variable());
        for bad in [
            json!("strings"),
            json!("r0"),
            json!("r7"),
            json!({"name": "fixed_length_utf32", "configuration": {"length_bytes": 6}}),
            json!({"name": "numpy.datetime64", "configuration": {"unit": "parsec"}}),
            json!({"name": "raw_bytes"}),
        ] {
            assert!(DataType::parse_v3(&bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn swap_units() {
        let unit = |s: &str| DataType::parse_numpy(s).unwrap().swap_unit();
        assert_eq!(unit("<c16"), Some(8));
        assert_eq!(unit(">U3"), Some(4));
        assert_eq!(unit("<M8[s]"), Some(8));
        assert_eq!(unit("|S4"), None);
        assert_eq!(unit("|u1"), None);
    }
}
