//! Zarr metadata: discovering groups and arrays in a store and normalising them into
//! [`ArrayMeta`], whatever the on-disk format.

pub mod catalog;
pub mod dtype;
pub mod fill;
pub mod json;
pub mod v2;
pub mod v3;

use crate::store::{join_key, Store};
pub use catalog::{Catalog, Consolidated, Located, Origin};
pub use dtype::{DataType, DtypeKind, Endian, VariableKind};
use serde_json::{json, Value};

/// Memory layout of elements inside a stored chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Row-major (last index varies fastest).
    C,
    /// Column-major (first index varies fastest).
    F,
}

/// How chunk grid indices become store keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKeyEncoding {
    /// Zarr v2: indices joined by the separator, no prefix. `None` means the metadata did not
    /// say, so both `.` and the legacy nested `/` layout are accepted.
    V2 {
        /// Declared `dimension_separator`.
        separator: Option<char>,
    },
    /// Zarr v3 default encoding: `c` then the indices, joined by the separator.
    Default {
        /// `/` or `.`.
        separator: char,
    },
}

impl ChunkKeyEncoding {
    /// The key of grid position `index` relative to the array, using `fallback_separator`
    /// when a v2 encoding leaves the separator open.
    pub fn key(&self, index: &[u64], fallback_separator: char) -> String {
        let (prefix, sep) = match *self {
            ChunkKeyEncoding::V2 { separator } => ("", separator.unwrap_or(fallback_separator)),
            ChunkKeyEncoding::Default { separator } => ("c", separator),
        };
        let mut key = String::from(prefix);
        if index.is_empty() {
            if prefix.is_empty() {
                key.push('0');
            }
            return key;
        }
        for (i, idx) in index.iter().enumerate() {
            if i > 0 || !prefix.is_empty() {
                key.push(sep);
            }
            key.push_str(&idx.to_string());
        }
        key
    }
}

/// The codecs of an array, as declared (interpreted by the codec module).
#[derive(Debug, Clone, PartialEq)]
pub enum CodecSpec {
    /// Zarr v2 `filters` then `compressor`.
    V2 {
        /// Filter configurations (`filters`, empty when null).
        filters: Vec<Value>,
        /// Compressor configuration, `None` when null.
        compressor: Option<Value>,
    },
    /// Zarr v3 `codecs` of the chunks the views show: the array's own list, or for a
    /// sharded array the codecs of its inner chunks (see [`ArrayMeta::sharding`]).
    V3 {
        /// The codec entries (`{"name": …, "configuration": …}`), in encoding order.
        codecs: Vec<Value>,
    },
}

impl CodecSpec {
    /// The codec configurations as a JSON list, in application order (encode direction).
    pub fn to_json(&self) -> Value {
        match self {
            CodecSpec::V2 {
                filters,
                compressor,
            } => Value::Array(filters.iter().chain(compressor.iter()).cloned().collect()),
            CodecSpec::V3 { codecs } => Value::Array(codecs.clone()),
        }
    }

    /// A compact description, e.g. `blosc(lz4)` or `none`.
    pub fn summary(&self) -> String {
        let list = self.to_json();
        let names: Vec<String> = list
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| {
                        let id = c
                            .get("id")
                            .or_else(|| c.get("name"))
                            .and_then(Value::as_str)
                            .unwrap_or("?");
                        match c.get("cname").and_then(Value::as_str) {
                            Some(cname) => format!("{id}({cname})"),
                            None => id.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join("+")
        }
    }
}

/// A normalised description of one array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayMeta {
    /// 2 or 3.
    pub zarr_format: u8,
    /// Array shape in elements.
    pub shape: Vec<u64>,
    /// Regular chunk shape in elements (same rank as `shape`).
    pub chunk_shape: Vec<u64>,
    /// Element type and declared byte order.
    pub dtype: DataType,
    /// The fill value as declared.
    pub fill_value: Value,
    /// One element of fill value, encoded in the declared byte order.
    pub fill_bytes: Vec<u8>,
    /// Element order inside stored chunks.
    pub order: Order,
    /// How chunk keys are formed.
    pub key_encoding: ChunkKeyEncoding,
    /// Declared codecs.
    pub codecs: CodecSpec,
    /// User attributes (a JSON object).
    pub attributes: Value,
    /// v3 `dimension_names`, when declared.
    pub dimension_names: Option<Value>,
    /// For a v3 array stored in shards (`sharding_indexed`): the shard's shape and its codec
    /// configuration; `chunk_shape` and `codecs` then describe the inner chunks.
    pub sharding: Option<Sharding>,
    /// The array's own metadata document as stored (`.zarray` or `zarr.json`).
    pub document: Value,
    /// Why the array's chunks cannot be read (an unknown data type or extension), if so.
    pub unsupported: Option<String>,
}

/// How a sharded v3 array stores its inner chunks in shards.
#[derive(Debug, Clone, PartialEq)]
pub struct Sharding {
    /// Shape of a shard, in elements (a multiple of the inner chunk shape).
    pub shard_shape: Vec<u64>,
    /// The `sharding_indexed` configuration as declared.
    pub configuration: Value,
}

impl ArrayMeta {
    /// The name of the array's own metadata document: `.zarray` or `zarr.json`.
    pub fn document_name(&self) -> &'static str {
        if self.zarr_format == 3 {
            v3::DOCUMENT
        } else {
            ".zarray"
        }
    }

    /// The store key of a chunk relative to the array, using `separator` for v2 arrays whose
    /// metadata leaves the separator open.
    pub fn chunk_key(&self, index: &[u64], fallback_separator: char) -> String {
        self.key_encoding.key(index, fallback_separator)
    }

    /// The description served as `meta.json`: the views beside it (C order, the chunk files'
    /// shape, the dtype they hold), and under `"stored"` the store's own layout.
    pub fn to_json(&self) -> Value {
        let mut stored = json!({
            "order": match self.order { Order::C => "C", Order::F => "F" },
            "codecs": match &self.sharding {
                Some(sharding) => json!([{"name": "sharding_indexed", "configuration": sharding.configuration}]),
                None => self.codecs.to_json(),
            },
        });
        if let Some(encoding) = self.document.get("chunk_key_encoding") {
            stored["chunk_key_encoding"] = encoding.clone();
        }
        let mut meta = json!({
            "zarr_format": self.zarr_format,
            "shape": self.shape,
            "chunks": self.chunk_shape,
        });
        if let Some(sharding) = &self.sharding {
            meta["shards"] = json!(sharding.shard_shape);
        }
        meta["dtype"] = json!(self.dtype.numpy_str());
        match self.dtype.kind {
            DtypeKind::Structured(_) => meta["descr"] = self.dtype.descr_json(),
            DtypeKind::Variable(kind) => {
                meta["variable_length"] = json!(match kind {
                    VariableKind::Text => "text",
                    VariableKind::Bytes => "bytes",
                    VariableKind::Object => "object",
                });
                meta["views"] = json!(["data.jsonl", "chunks/<key>.jsonl"]);
            }
            _ => {}
        }
        meta["fill_value"] = json::with_named_non_finite(&self.fill_value);
        meta["order"] = json!("C");
        if let Some(names) = &self.dimension_names {
            meta["dimension_names"] = names.clone();
        }
        meta["stored"] = stored;
        if let Some(reason) = &self.unsupported {
            meta["dtype"] = Value::Null;
            meta["unsupported"] = json!(reason);
        }
        meta
    }
}

/// Checks that every size derived from an array's shape, chunk shape and element size fits:
/// the flat view's bytes (counting empty extents as 1, so that partial products fit too) in
/// a `u64`, a chunk's bytes in an `isize`, and the grid's positions in a `u64`.
pub fn check_sizes(shape: &[u64], chunk_shape: &[u64], itemsize: usize) -> Result<(), String> {
    let product = |dims: &[u64]| {
        dims.iter()
            .try_fold(itemsize as u64, |acc, &d| acc.checked_mul(d.max(1)))
    };
    if product(shape).is_none() {
        return Err(format!(
            "shape {shape:?} of {itemsize}-byte elements exceeds 2^64 bytes"
        ));
    }
    if product(chunk_shape).is_none_or(|bytes| bytes > isize::MAX as u64) {
        return Err(format!(
            "chunk shape {chunk_shape:?} of {itemsize}-byte elements is too large to address"
        ));
    }
    let positions = shape
        .iter()
        .zip(chunk_shape)
        .try_fold(1u64, |acc, (&s, &c)| {
            acc.checked_mul(s.div_ceil(c.max(1)).max(1))
        });
    if positions.is_none() {
        return Err(format!(
            "shape {shape:?} in chunks of {chunk_shape:?} has more than 2^64 chunks"
        ));
    }
    Ok(())
}

/// What a store path holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeMeta {
    /// A group with its attributes.
    Group {
        /// User attributes (a JSON object).
        attributes: Value,
    },
    /// An array.
    Array(Box<ArrayMeta>),
}

/// Why a node's metadata could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct MetadataError {
    /// The metadata document involved.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The largest metadata document read: 16 MiB, and 256 MiB for documents that may hold
/// consolidated metadata (`.zmetadata`, the root `zarr.json`), which describe every node.
/// Larger ones are refused unread.
pub fn max_document_bytes(key: &str) -> u64 {
    match key {
        ".zmetadata" | "zarr.json" => 256 << 20,
        _ if key.ends_with("/.zmetadata") => 256 << 20,
        _ => 16 << 20,
    }
}

/// Reads a JSON document, mapping I/O and syntax errors to [`MetadataError`].
pub(crate) fn read_json(store: &dyn Store, key: &str) -> Result<Option<Value>, MetadataError> {
    let max_len = max_document_bytes(key);
    let bytes = store.get(key, max_len).map_err(|e| MetadataError {
        path: store.describe(key),
        reason: e.to_string(),
    })?;
    match bytes {
        None => Ok(None),
        Some(bytes) => json::parse(&bytes).map(Some).map_err(|e| MetadataError {
            path: store.describe(key),
            reason: format!("invalid JSON: {e}"),
        }),
    }
}

/// Whether `name` is a metadata document rather than a child node or chunk.
pub fn is_metadata_name(name: &str) -> bool {
    matches!(
        name,
        ".zarray" | ".zgroup" | ".zattrs" | ".zmetadata" | "zarr.json"
    )
}

/// Key of a child of a node.
pub fn child_key(path: &str, name: &str) -> String {
    join_key(path, name)
}
