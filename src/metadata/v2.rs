//! Zarr v2: `.zgroup`, `.zarray` and `.zattrs`.

use super::fill::fill_value_bytes;
use super::json::check_zarr_format;
use super::{
    read_json, ArrayMeta, ChunkKeyEncoding, CodecSpec, DataType, MetadataError, NodeMeta, Order,
};
use crate::store::{join_key, Store};
use serde_json::{Map, Value};

/// Where the documents of v2 nodes come from: the store's own files, or the store's
/// consolidated `.zmetadata`. `read` gives a document by key (`Ok(None)` when absent) and
/// `describe` names a key for messages.
pub struct Documents<'a> {
    /// Reads the JSON document stored under a key.
    pub read: &'a dyn Fn(&str) -> Result<Option<Value>, MetadataError>,
    /// Names a key for messages.
    pub describe: &'a dyn Fn(&str) -> String,
}

fn attributes(docs: &Documents, path: &str) -> Result<Value, MetadataError> {
    let key = join_key(path, ".zattrs");
    match (docs.read)(&key)? {
        None => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(MetadataError {
            path: (docs.describe)(&key),
            reason: "attributes are not a JSON object".into(),
        }),
    }
}

/// Reads a v2 node from its own files in the store.
pub fn read_node(store: &dyn Store, path: &str) -> Result<Option<NodeMeta>, MetadataError> {
    read_node_from(
        &Documents {
            read: &|key| read_json(store, key),
            describe: &|key| store.describe(key),
        },
        path,
    )
}

/// Reads a v2 node: an array when `.zarray` exists, a group when `.zgroup` exists.
pub fn read_node_from(docs: &Documents, path: &str) -> Result<Option<NodeMeta>, MetadataError> {
    let array_key = join_key(path, ".zarray");
    if let Some(doc) = (docs.read)(&array_key)? {
        let err = |reason: String| MetadataError {
            path: (docs.describe)(&array_key),
            reason,
        };
        let meta = parse_zarray(&doc, attributes(docs, path)?).map_err(err)?;
        return Ok(Some(NodeMeta::Array(Box::new(meta))));
    }
    let group_key = join_key(path, ".zgroup");
    if let Some(doc) = (docs.read)(&group_key)? {
        if let Err(reason) = check_zarr_format(&doc, 2) {
            return Err(MetadataError {
                path: (docs.describe)(&group_key),
                reason,
            });
        }
        return Ok(Some(NodeMeta::Group {
            attributes: attributes(docs, path)?,
        }));
    }
    Ok(None)
}

fn dims(doc: &Value, field: &str) -> Result<Vec<u64>, String> {
    doc.get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing or invalid {field:?}"))?
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("invalid {field:?} entry {v}"))
        })
        .collect()
}

/// Parses a `.zarray` document (with the array's attributes) into [`ArrayMeta`].
pub fn parse_zarray(doc: &Value, attributes: Value) -> Result<ArrayMeta, String> {
    check_zarr_format(doc, 2)?;
    let shape = dims(doc, "shape")?;
    let chunk_shape = dims(doc, "chunks")?;
    if shape.len() != chunk_shape.len() {
        return Err(format!(
            "shape {shape:?} and chunks {chunk_shape:?} differ in rank"
        ));
    }
    if chunk_shape.contains(&0) {
        return Err(format!("chunks {chunk_shape:?} has a zero extent"));
    }
    let dtype = DataType::parse_v2(doc.get("dtype").ok_or("missing \"dtype\"")?)?;
    let order = match doc.get("order").and_then(Value::as_str) {
        Some("C") | None => Order::C,
        Some("F") => Order::F,
        Some(other) => return Err(format!("invalid order {other:?}")),
    };
    let separator = match doc.get("dimension_separator") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "." => Some('.'),
        Some(Value::String(s)) if s == "/" => Some('/'),
        Some(other) => return Err(format!("invalid dimension_separator {other}")),
    };
    super::check_sizes(&shape, &chunk_shape, dtype.size)?;
    let fill_value = doc.get("fill_value").cloned().unwrap_or(Value::Null);
    let fill_bytes = fill_value_bytes(&fill_value, &dtype)?;
    let filters = match doc.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => return Err(format!("invalid filters {other}")),
    };
    let compressor = match doc.get("compressor") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(other) => return Err(format!("invalid compressor {other}")),
    };
    Ok(ArrayMeta {
        zarr_format: 2,
        shape,
        chunk_shape,
        dtype,
        fill_value,
        fill_bytes,
        order,
        key_encoding: ChunkKeyEncoding::V2 { separator },
        codecs: CodecSpec::V2 {
            filters,
            compressor,
        },
        attributes,
        dimension_names: None,
        sharding: None,
        document: doc.clone(),
        unsupported: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DirectoryStore;
    use serde_json::json;

    fn zarray() -> Value {
        json!({
            "zarr_format": 2, "shape": [10, 7], "chunks": [4, 3], "dtype": ">i2",
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0, "typesize": 2},
            "fill_value": 7, "order": "F", "filters": null, "dimension_separator": "/"
        })
    }

    #[test]
    fn parses_full_zarray() {
        let meta = parse_zarray(&zarray(), json!({"a": 1})).unwrap();
        assert_eq!(meta.shape, vec![10, 7]);
        assert_eq!(meta.chunk_shape, vec![4, 3]);
        assert_eq!(meta.dtype.numpy_str(), ">i2");
        assert_eq!(meta.order, Order::F);
        assert_eq!(meta.fill_bytes, vec![0, 7]);
        assert_eq!(meta.chunk_key(&[1, 2], '.'), "1/2");
        assert_eq!(meta.codecs.summary(), "blosc(lz4)");
        assert_eq!(meta.to_json()["dtype"], ">i2");
        assert_eq!(meta.attributes, json!({"a": 1}));
    }

    #[test]
    fn legacy_separator_and_zero_dim_keys() {
        let mut doc = zarray();
        doc.as_object_mut().unwrap().remove("dimension_separator");
        let meta = parse_zarray(&doc, json!({})).unwrap();
        assert_eq!(meta.key_encoding, ChunkKeyEncoding::V2 { separator: None });
        assert_eq!(meta.chunk_key(&[1, 2], '.'), "1.2");
        assert_eq!(meta.chunk_key(&[1, 2], '/'), "1/2");
        assert_eq!(meta.chunk_key(&[], '.'), "0");
    }

    #[test]
    fn rejects_bad_documents() {
        for (field, value) in [
            ("zarr_format", json!(3)),
            ("shape", json!([10])),
            ("chunks", json!([0, 3])),
            ("dtype", json!("|q8")),
            ("dtype", json!([["a", "<q4"]])),
            ("order", json!("K")),
            ("dimension_separator", json!("-")),
            ("fill_value", json!("abc")),
            ("shape", json!([1u64 << 40, 1u64 << 40])),
            ("chunks", json!([1u64 << 40, 1u64 << 40])),
        ] {
            let mut doc = zarray();
            doc[field] = value;
            assert!(parse_zarray(&doc, json!({})).is_err(), "{field}");
        }
        for doc in [json!([1, 2, 3]), json!("zarr"), json!(null)] {
            assert_eq!(
                parse_zarray(&doc, json!({})).unwrap_err(),
                "not a JSON object"
            );
        }
    }

    #[test]
    fn reads_nodes_from_a_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".zgroup"), br#"{"zarr_format": 2}"#).unwrap();
        std::fs::write(dir.path().join(".zattrs"), br#"{"title": "t"}"#).unwrap();
        std::fs::create_dir(dir.path().join("arr")).unwrap();
        std::fs::write(dir.path().join("arr/.zarray"), zarray().to_string()).unwrap();
        std::fs::create_dir(dir.path().join("bad")).unwrap();
        std::fs::write(dir.path().join("bad/.zarray"), b"{not json").unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        match read_node(&store, "").unwrap() {
            Some(NodeMeta::Group { attributes }) => assert_eq!(attributes["title"], "t"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            read_node(&store, "arr").unwrap(),
            Some(NodeMeta::Array(_))
        ));
        let err = read_node(&store, "bad").unwrap_err();
        assert!(err.path.ends_with("bad/.zarray"), "{}", err.path);
        assert_eq!(read_node(&store, "nothing").unwrap(), None);
    }
}
