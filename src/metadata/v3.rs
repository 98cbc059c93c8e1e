//! Zarr v3: `zarr.json` of groups and arrays.
//!
//! What the views show is decided here: the chunk files are the chunks of the regular grid,
//! or for an array stored in shards (a lone `sharding_indexed` codec) its inner chunks; the
//! views hold elements in the byte order of the `bytes` codec that serialises those chunks.

use super::fill::fill_value_bytes;
use super::json::check_zarr_format;
use super::{
    ArrayMeta, ChunkKeyEncoding, CodecSpec, DataType, DtypeKind, NodeMeta, Order, Sharding,
};
use serde_json::{Map, Value};

/// The name of a v3 node's metadata document.
pub const DOCUMENT: &str = "zarr.json";

/// Top-level fields of an array's `zarr.json` this parser knows.
const ARRAY_FIELDS: [&str; 11] = [
    "zarr_format",
    "node_type",
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "attributes",
    "dimension_names",
    "storage_transformers",
];

/// Parses a `zarr.json` document into a node.
pub fn parse_node(doc: &Value) -> Result<NodeMeta, String> {
    check_zarr_format(doc, 3)?;
    match doc.get("node_type").and_then(Value::as_str) {
        Some("group") => Ok(NodeMeta::Group {
            attributes: attributes(doc)?,
        }),
        Some("array") => Ok(NodeMeta::Array(Box::new(parse_array(doc)?))),
        Some(other) => Err(format!("unknown node_type {other:?}")),
        None => Err("missing \"node_type\"".into()),
    }
}

fn attributes(doc: &Value) -> Result<Value, String> {
    match doc.get("attributes") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err("attributes are not a JSON object".into()),
    }
}

fn dims(value: Option<&Value>, what: &str) -> Result<Vec<u64>, String> {
    value
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing or invalid {what}"))?
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("invalid {what} entry {v}"))
        })
        .collect()
}

/// Whether an extension object may be ignored by a reader that does not know it.
fn may_ignore(extension: &Value) -> bool {
    extension.get("must_understand").and_then(Value::as_bool) == Some(false)
}

/// The name of a named object (`"name"` or `{"name": …}`).
fn name_of(value: &Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("name").and_then(Value::as_str))
}

/// The `bytes` codec's endian among `codecs`, looking inside a sharding codec's inner codecs.
fn declared_endian(codecs: &[Value]) -> Option<&str> {
    codecs.iter().find_map(|codec| match name_of(codec) {
        Some("bytes") => codec
            .get("configuration")
            .and_then(|c| c.get("endian"))
            .and_then(Value::as_str),
        Some("sharding_indexed") => codec
            .get("configuration")
            .and_then(|c| c.get("codecs"))
            .and_then(Value::as_array)
            .and_then(|inner| declared_endian(inner)),
        _ => None,
    })
}

/// Parses an array's `zarr.json`. What a reader may not ignore but zarrfs does not know (a
/// data type, a storage transformer, an extension) leaves the array listed with
/// [`ArrayMeta::unsupported`] set; malformed documents are an error.
pub fn parse_array(doc: &Value) -> Result<ArrayMeta, String> {
    let mut unsupported: Vec<String> = Vec::new();
    let shape = dims(doc.get("shape"), "\"shape\"")?;
    let grid = doc.get("chunk_grid").ok_or("missing \"chunk_grid\"")?;
    let grid_shape = match name_of(grid) {
        Some("regular") => dims(
            grid.get("configuration").and_then(|c| c.get("chunk_shape")),
            "chunk_grid chunk_shape",
        )?,
        other => {
            unsupported.push(format!("chunk grid {}", other.unwrap_or("without a name")));
            shape.iter().map(|&d| d.max(1)).collect()
        }
    };
    if grid_shape.len() != shape.len() {
        return Err(format!(
            "shape {shape:?} and chunk shape {grid_shape:?} differ in rank"
        ));
    }
    if grid_shape.contains(&0) {
        return Err(format!("chunk shape {grid_shape:?} has a zero extent"));
    }
    let codecs: Vec<Value> = doc
        .get("codecs")
        .and_then(Value::as_array)
        .ok_or("missing \"codecs\" list")?
        .clone();
    let big_endian = declared_endian(&codecs) == Some("big");
    let data_type_value = doc.get("data_type").ok_or("missing \"data_type\"")?;
    let dtype = DataType::parse_v3(data_type_value, big_endian).unwrap_or_else(|reason| {
        unsupported.push(reason);
        DataType {
            kind: DtypeKind::Raw,
            size: 1,
            endian: super::Endian::NotApplicable,
        }
    });
    let (chunk_shape, sharding, chunk_codecs) = match codecs.as_slice() {
        [only] if name_of(only) == Some("sharding_indexed") => {
            let configuration = only.get("configuration").cloned().unwrap_or(Value::Null);
            let inner = dims(configuration.get("chunk_shape"), "sharding chunk_shape")?;
            if inner.len() != grid_shape.len()
                || inner.contains(&0)
                || grid_shape.iter().zip(&inner).any(|(s, c)| s % c != 0)
            {
                return Err(format!(
                    "shard shape {grid_shape:?} is not a multiple of inner chunk shape {inner:?}"
                ));
            }
            let inner_codecs = configuration
                .get("codecs")
                .and_then(Value::as_array)
                .ok_or("sharding_indexed without a \"codecs\" list")?
                .clone();
            (
                inner,
                Some(Sharding {
                    shard_shape: grid_shape,
                    configuration,
                }),
                inner_codecs,
            )
        }
        _ => (grid_shape, None, codecs),
    };
    super::check_sizes(&shape, &chunk_shape, dtype.size)?;
    if let Some(sharding) = &sharding {
        super::check_sizes(&shape, &sharding.shard_shape, dtype.size)?;
    }
    let key_encoding = chunk_key_encoding(doc.get("chunk_key_encoding"))?;
    let fill_value = doc.get("fill_value").cloned().unwrap_or(Value::Null);
    let fill_bytes = if unsupported.is_empty() {
        fill_value_bytes(&fill_value, &dtype)?
    } else {
        vec![0; dtype.size]
    };
    let dimension_names = match doc.get("dimension_names") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) if names.len() == shape.len() => {
            Some(Value::Array(names.clone()))
        }
        Some(other) => return Err(format!("invalid dimension_names {other}")),
    };
    if let Some(transformers) = doc.get("storage_transformers").and_then(Value::as_array) {
        for transformer in transformers.iter().filter(|t| !may_ignore(t)) {
            unsupported.push(format!(
                "storage transformer {}",
                name_of(transformer).unwrap_or("without a name")
            ));
        }
    }
    if let Some(fields) = doc.as_object() {
        for (key, value) in fields {
            if !ARRAY_FIELDS.contains(&key.as_str()) && !may_ignore(value) {
                unsupported.push(format!("extension field {key:?}"));
            }
        }
    }
    Ok(ArrayMeta {
        zarr_format: 3,
        shape,
        chunk_shape,
        dtype,
        fill_value,
        fill_bytes,
        order: Order::C,
        key_encoding,
        codecs: CodecSpec::V3 {
            codecs: chunk_codecs,
        },
        attributes: attributes(doc)?,
        dimension_names,
        sharding,
        document: doc.clone(),
        unsupported: (!unsupported.is_empty()).then(|| unsupported.join(", ")),
    })
}

fn chunk_key_encoding(value: Option<&Value>) -> Result<ChunkKeyEncoding, String> {
    let Some(value) = value else {
        return Ok(ChunkKeyEncoding::Default { separator: '/' });
    };
    let separator = match value.get("configuration").and_then(|c| c.get("separator")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "/" => Some('/'),
        Some(Value::String(s)) if s == "." => Some('.'),
        Some(other) => return Err(format!("invalid chunk key separator {other}")),
    };
    match name_of(value) {
        Some("default") => Ok(ChunkKeyEncoding::Default {
            separator: separator.unwrap_or('/'),
        }),
        Some("v2") => Ok(ChunkKeyEncoding::V2 {
            separator: Some(separator.unwrap_or('.')),
        }),
        other => Err(format!(
            "unsupported chunk_key_encoding {}",
            other.unwrap_or("without a name")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn array() -> Value {
        json!({
            "zarr_format": 3, "node_type": "array", "shape": [10, 7],
            "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": "NaN",
            "codecs": [{"name": "bytes", "configuration": {"endian": "big"}},
                       {"name": "zstd", "configuration": {"level": 0, "checksum": false}}],
            "attributes": {"a": 1},
            "dimension_names": ["y", null]
        })
    }

    fn parse(doc: &Value) -> ArrayMeta {
        match parse_node(doc).unwrap() {
            NodeMeta::Array(meta) => *meta,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_full_array() {
        let meta = parse(&array());
        assert_eq!(meta.shape, [10, 7]);
        assert_eq!(meta.chunk_shape, [4, 3]);
        assert_eq!(meta.dtype.numpy_str(), ">f4");
        assert_eq!(meta.fill_bytes, f32::NAN.to_be_bytes());
        assert_eq!(meta.chunk_key(&[1, 2], '.'), "c/1/2");
        assert_eq!(meta.chunk_key(&[], '.'), "c");
        assert_eq!(meta.attributes, json!({"a": 1}));
        assert_eq!(meta.unsupported, None);
        let described = meta.to_json();
        assert_eq!(described["dimension_names"], json!(["y", null]));
        assert_eq!(described["order"], "C");
        assert_eq!(described["stored"]["codecs"][1]["name"], "zstd");
    }

    #[test]
    fn key_encodings() {
        let mut doc = array();
        doc["chunk_key_encoding"] = json!({"name": "default", "configuration": {"separator": "."}});
        assert_eq!(parse(&doc).chunk_key(&[1, 2], '/'), "c.1.2");
        doc["chunk_key_encoding"] = json!({"name": "v2", "configuration": {"separator": "."}});
        assert_eq!(parse(&doc).chunk_key(&[1, 2], '/'), "1.2");
        doc["chunk_key_encoding"] = json!({"name": "v2"});
        assert_eq!(parse(&doc).chunk_key(&[], '/'), "0");
        doc["chunk_key_encoding"] = json!({"name": "fancy"});
        assert!(parse_node(&doc).is_err());
    }

    #[test]
    fn sharded_arrays_show_their_inner_chunks() {
        let mut doc = array();
        doc["chunk_grid"]["configuration"]["chunk_shape"] = json!([8, 6]);
        doc["codecs"] = json!([{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [4, 3],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}],
            "index_location": "end"}}]);
        let meta = parse(&doc);
        assert_eq!(meta.chunk_shape, [4, 3]);
        assert_eq!(meta.dtype.numpy_str(), "<f4");
        assert_eq!(meta.sharding.as_ref().unwrap().shard_shape, [8, 6]);
        assert_eq!(
            meta.codecs,
            CodecSpec::V3 {
                codecs: vec![json!({"name": "bytes", "configuration": {"endian": "little"}})]
            }
        );
        assert_eq!(meta.to_json()["shards"], json!([8, 6]));
        doc["codecs"][0]["configuration"]["chunk_shape"] = json!([3, 3]);
        assert!(
            parse_node(&doc).is_err(),
            "shards must hold whole inner chunks"
        );
    }

    #[test]
    fn what_cannot_be_ignored_leaves_the_array_listed_but_unreadable() {
        for (field, value, what) in [
            ("data_type", json!("float4_e2m1"), "float4_e2m1"),
            (
                "data_type",
                json!({"name": "custom", "configuration": {}}),
                "custom",
            ),
            (
                "storage_transformers",
                json!([{"name": "chunk-manifest"}]),
                "chunk-manifest",
            ),
            (
                "new_extension",
                json!({"must_understand": true}),
                "new_extension",
            ),
            (
                "chunk_grid",
                json!({"name": "rectilinear", "configuration": {}}),
                "rectilinear",
            ),
        ] {
            let mut doc = array();
            doc[field] = value;
            let meta = parse(&doc);
            let reason = meta.unsupported.unwrap_or_default();
            assert!(reason.contains(what), "{field}: {reason}");
        }
        let mut doc = array();
        doc["storage_transformers"] = json!([{"name": "x", "must_understand": false}]);
        doc["optional_extension"] = json!({"must_understand": false, "anything": 1});
        assert_eq!(parse(&doc).unsupported, None);
    }

    #[test]
    fn raw_bits_and_fill_forms() {
        let mut doc = array();
        doc["data_type"] = json!("r16");
        doc["fill_value"] = json!([1, 255]);
        let meta = parse(&doc);
        assert_eq!(meta.dtype.numpy_str(), "|V2");
        assert_eq!(meta.fill_bytes, [1, 255]);
        doc["data_type"] = json!({"name": "raw_bytes", "configuration": {"length_bytes": 3}});
        doc["fill_value"] = json!("AQID");
        let meta = parse(&doc);
        assert_eq!(meta.dtype.numpy_str(), "|V3");
        assert_eq!(meta.fill_bytes, [1, 2, 3]);
        doc["data_type"] = json!({"name": "raw_bytes", "configuration": {}});
        assert!(parse(&doc).unsupported.is_some());
        doc["data_type"] = json!("float32");
        doc["fill_value"] = json!("0x7fc00001");
        assert_eq!(parse(&doc).fill_bytes, 0x7fc0_0001u32.to_be_bytes());
        doc["data_type"] = json!("complex64");
        doc["fill_value"] = json!(["Infinity", -1.5]);
        let fill = parse(&doc).fill_bytes;
        assert_eq!(&fill[..4], &f32::INFINITY.to_be_bytes());
        assert_eq!(&fill[4..], &(-1.5f32).to_be_bytes());
        doc["data_type"] = json!("int16");
        doc["fill_value"] = json!(40000);
        assert!(parse_node(&doc).is_err());
    }

    #[test]
    fn groups_and_bad_documents() {
        let group = json!({"zarr_format": 3, "node_type": "group", "attributes": {"t": 1}});
        assert_eq!(
            parse_node(&group).unwrap(),
            NodeMeta::Group {
                attributes: json!({"t": 1})
            }
        );
        for doc in [
            json!({"zarr_format": 2, "node_type": "group"}),
            json!({"zarr_format": 3, "node_type": "thing"}),
            json!({"zarr_format": 3}),
            json!({"zarr_format": 3, "node_type": "group", "attributes": [1]}),
        ] {
            assert!(parse_node(&doc).is_err(), "{doc}");
        }
        for doc in [json!([3]), json!("zarr"), json!(null)] {
            assert_eq!(parse_node(&doc).unwrap_err(), "not a JSON object");
        }
        let mut doc = array();
        doc["shape"] = json!([10]);
        assert!(parse_node(&doc).is_err());
        doc = array();
        doc["dimension_names"] = json!(["a"]);
        assert!(parse_node(&doc).is_err());
    }
}
