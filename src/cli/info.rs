//! `zarrfs info STORE [--json]`: the store's groups and arrays as a tree. Each array is
//! described by a list of [`Field`]s, shown as `name=value` in the text tree and as keys of
//! its object in the JSON document, so a new field is one more entry in [`array_fields`].

use super::{output, InfoArgs};
use crate::codec::CodecChain;
use crate::geometry::ChunkGrid;
use crate::metadata::{self, ArrayMeta, Catalog, NodeMeta};
use crate::store::{join_key, DirectoryStore, Store};
use crate::units::format_size;
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// One fact about an array: its text in the tree (None: JSON only) and its JSON value
/// (None: text only).
#[derive(Debug)]
pub struct Field {
    name: &'static str,
    text: Option<String>,
    json: Option<Value>,
}

impl Field {
    /// A field shown in both forms.
    fn both(name: &'static str, text: impl Into<String>, json: Value) -> Self {
        Field {
            name,
            text: Some(text.into()),
            json: Some(json),
        }
    }
}

/// A JSON value as `info` shows it in text: strings bare, lists of numbers as a Python
/// tuple.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let items: Vec<String> = items.iter().map(Value::to_string).collect();
            let comma = if items.len() == 1 { "," } else { "" };
            format!("({}{comma})", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// Stored size and count of the chunk objects under an array.
fn chunk_objects(store: &dyn Store, prefix: &str) -> Result<(u64, u64)> {
    let (mut bytes, mut count) = (0u64, 0u64);
    let mut pending = vec![prefix.to_string()];
    while let Some(dir) = pending.pop() {
        for entry in store.list(&dir)? {
            let key = join_key(&dir, &entry.name);
            if entry.is_prefix {
                pending.push(key);
            } else if !metadata::is_metadata_name(&entry.name) && !entry.name.starts_with('.') {
                bytes += store.info(&key)?.map(|i| i.size).unwrap_or(0);
                count += 1;
            }
        }
    }
    Ok((bytes, count))
}

/// The codec chain as zarrfs applies it, or why it cannot.
fn codec_chain(meta: &ArrayMeta) -> String {
    if let Some(reason) = &meta.unsupported {
        return format!("{} (not understood: {reason})", meta.codecs.summary());
    }
    if meta.dtype.is_variable() {
        return meta.codecs.summary();
    }
    let chain = match CodecChain::from_meta(meta) {
        Ok(chain) => chain.describe(),
        Err(err) => format!("{} ({err})", meta.codecs.summary()),
    };
    match meta.sharding {
        Some(_) => format!("sharding_indexed[{chain}]"),
        None => chain,
    }
}

/// What `info` says about an array, in order.
pub fn array_fields(store: &dyn Store, path: &str, meta: &ArrayMeta) -> Result<Vec<Field>> {
    let described = meta.to_json();
    let mut fields: Vec<Field> = ["zarr_format", "shape", "chunks", "shards", "dtype"]
        .into_iter()
        .filter_map(|name| {
            let value = described.get(name).filter(|v| !v.is_null())?;
            Some(Field::both(name, text_of(value), value.clone()))
        })
        .collect();
    let codecs = described
        .pointer("/stored/codecs")
        .cloned()
        .unwrap_or(Value::Null);
    fields.push(Field::both("codecs", codec_chain(meta), codecs));
    let fill = described["fill_value"].clone();
    fields.push(Field::both("fill_value", text_of(&fill), fill));
    if let Some(names) = described.get("dimension_names") {
        fields.push(Field::both(
            "dimension_names",
            text_of(names),
            names.clone(),
        ));
    }
    if let Some(reason) = &meta.unsupported {
        fields.push(Field::both("unsupported", reason, json!(reason)));
    }
    let (stored, present) = chunk_objects(store, path)?;
    fields.push(Field::both("stored", format_size(stored), json!(stored)));
    let grid = ChunkGrid::new(&meta.shape, &meta.chunk_shape, meta.dtype.size);
    if !meta.dtype.is_variable() {
        let decoded = grid.total_bytes();
        fields.push(Field::both("decoded", format_size(decoded), json!(decoded)));
        if stored > 0 {
            let ratio = (present * grid.chunk_bytes() as u64) as f64 / stored as f64;
            fields.push(Field {
                name: "ratio",
                text: Some(format!("{ratio:.2}x")),
                json: None,
            });
        }
    }
    fields.push(Field::both(
        "chunks_present",
        format!("{present}/{}", grid.num_chunks()),
        json!({"present": present, "total": grid.num_chunks()}),
    ));
    fields.push(Field {
        name: "attributes",
        text: None,
        json: Some(meta.attributes.clone()),
    });
    Ok(fields)
}

/// The store walked from its root: text lines printed as they come, or a JSON tree.
struct Walk {
    store: Arc<dyn Store>,
    catalog: Catalog,
}

impl Walk {
    /// The children of the group at `path`, with their metadata; problems are warned about
    /// and the node left out.
    fn children(&self, path: &str) -> Result<Vec<(String, NodeMeta)>> {
        let mut children = Vec::new();
        for name in self.catalog.child_names(path)? {
            match self.catalog.node(&join_key(path, &name)) {
                Ok(Some(node)) => children.push((name, node.meta)),
                Ok(None) => {}
                Err(err) => output::warning(&err.to_string()),
            }
        }
        Ok(children)
    }

    /// Prints the node at `path` on one line after `prefix`, then its children below it.
    fn print(&self, path: &str, label: &str, node: &NodeMeta, prefix: &str) -> Result<()> {
        match node {
            NodeMeta::Array(meta) => {
                let fields = array_fields(self.store.as_ref(), path, meta)?;
                let texts: Vec<String> = fields
                    .iter()
                    .filter_map(|f| Some(format!("{}={}", f.name, f.text.as_ref()?)))
                    .collect();
                output::line(format_args!("{label}  {}", texts.join("  ")))
            }
            NodeMeta::Group { .. } => {
                output::line(label)?;
                let children = self.children(path)?;
                let last = children.len().saturating_sub(1);
                for (i, (name, child)) in children.iter().enumerate() {
                    let (branch, indent) = if i == last {
                        ("└── ", "    ")
                    } else {
                        ("├── ", "│   ")
                    };
                    let slash = if matches!(child, NodeMeta::Group { .. }) {
                        "/"
                    } else {
                        ""
                    };
                    let label = format!("{prefix}{branch}{name}{slash}");
                    let prefix = format!("{prefix}{indent}");
                    self.print(&join_key(path, name), &label, child, &prefix)?;
                }
                Ok(())
            }
        }
    }

    /// The node at `path` as a JSON object, with its children.
    fn json(&self, path: &str, node: &NodeMeta) -> Result<Value> {
        let mut object = Map::new();
        object.insert("path".into(), json!(format!("/{path}")));
        match node {
            NodeMeta::Array(meta) => {
                object.insert("node".into(), json!("array"));
                for field in array_fields(self.store.as_ref(), path, meta)? {
                    if let Some(value) = field.json {
                        object.insert(field.name.into(), value);
                    }
                }
            }
            NodeMeta::Group { attributes } => {
                object.insert("node".into(), json!("group"));
                object.insert("attributes".into(), attributes.clone());
                let mut children = Vec::new();
                for (name, child) in self.children(path)? {
                    children.push(self.json(&join_key(path, &name), &child)?);
                }
                object.insert("children".into(), Value::Array(children));
            }
        }
        Ok(Value::Object(object))
    }
}

/// `zarrfs info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let store: Arc<dyn Store> = Arc::new(
        DirectoryStore::open(&args.store)
            .with_context(|| format!("cannot open store {}", args.store.display()))?,
    );
    let walk = Walk {
        catalog: Catalog::open(store.clone()),
        store,
    };
    let root = walk.catalog.root()?.meta;
    if args.json {
        let document = walk.json("", &root)?;
        output::line(serde_json::to_string_pretty(&document)?)
    } else {
        walk.print("", "/", &root, "")
    }
}
