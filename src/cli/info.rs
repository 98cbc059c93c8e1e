//! `zarrfs info STORE`: one line per array.

use crate::codec::CodecChain;
use crate::geometry::ChunkGrid;
use crate::metadata::{self, json, ArrayMeta, Catalog, NodeMeta};
use crate::store::{join_key, DirectoryStore, Store};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

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

fn dims(values: &[u64]) -> String {
    let parts: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("({})", parts.join(", "))
}

/// The codec chain as zarrfs applies it, or why it cannot.
fn codecs(meta: &ArrayMeta) -> String {
    if let Some(reason) = &meta.unsupported {
        return format!("{} (not understood: {reason})", meta.codecs.summary());
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

/// The info line of one array: format, shape, dtype, chunks (and shards), codecs, fill
/// value, the stored size of its chunk (or shard) objects and what they decode to.
pub fn describe_array(store: &dyn Store, path: &str, meta: &ArrayMeta) -> Result<String> {
    // The stored objects: chunks, or whole shards of a sharded array.
    let object_shape = meta
        .sharding
        .as_ref()
        .map_or(&meta.chunk_shape, |s| &s.shard_shape);
    let objects = ChunkGrid::new(&meta.shape, object_shape, meta.dtype.size);
    let (stored, present) = chunk_objects(store, path)?;
    let decoded = object_shape
        .iter()
        .try_fold(meta.dtype.size as u64, |acc, &d| acc.checked_mul(d))
        .and_then(|bytes| bytes.checked_mul(present));
    let ratio = match decoded {
        Some(decoded) if stored > 0 => format!("{:.2}x", decoded as f64 / stored as f64),
        _ => "-".to_string(),
    };
    let mut line = format!(
        "/{path}  zarr_format={}  shape={}  dtype={}  chunks={}",
        meta.zarr_format,
        dims(&meta.shape),
        meta.dtype,
        dims(&meta.chunk_shape)
    );
    if let Some(sharding) = &meta.sharding {
        line.push_str(&format!("  shards={}", dims(&sharding.shard_shape)));
    }
    let objects_name = if meta.sharding.is_some() {
        "shards"
    } else {
        "chunks"
    };
    line.push_str(&format!(
        "  codecs={}  fill={}  stored={stored}B  decoded={}  ratio={ratio}  {objects_name}_present={present}/{}",
        codecs(meta),
        json::with_named_non_finite(&meta.fill_value),
        decoded.map_or_else(|| "-".to_string(), |d| format!("{d}B")),
        objects.num_chunks()
    ));
    Ok(line)
}

/// Walks the store and prints a line per array; stops quietly when the reader of its output
/// goes away (`zarrfs info STORE | head`).
pub fn run(store_dir: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let store: Arc<dyn Store> = Arc::new(
        DirectoryStore::open(store_dir)
            .with_context(|| format!("cannot open store {}", store_dir.display()))?,
    );
    let catalog = Catalog::open(store.clone());
    let mut pending = vec![(String::new(), catalog.root()?.meta)];
    while let Some((path, node)) = pending.pop() {
        match node {
            NodeMeta::Array(meta) => {
                let line = describe_array(store.as_ref(), &path, &meta)?;
                match writeln!(out, "{line}") {
                    Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other.context("writing to stdout")?,
                }
            }
            NodeMeta::Group { .. } => {
                let mut children = Vec::new();
                for name in catalog.child_names(&path)? {
                    let child = join_key(&path, &name);
                    match catalog.node(&child) {
                        Ok(Some(node)) => children.push((child, node.meta)),
                        Ok(None) => {}
                        Err(err) => eprintln!("zarrfs: warning: {err}"),
                    }
                }
                children.reverse();
                pending.extend(children);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{write_sample_store, SampleFormat};
    use serde_json::json;

    fn line_of(dir: &Path, path: &str) -> String {
        let store = DirectoryStore::open(dir).unwrap();
        let catalog = Catalog::open(Arc::new(store.clone()));
        let NodeMeta::Array(meta) = catalog.node(path).unwrap().unwrap().meta else {
            panic!("{path} is not an array");
        };
        describe_array(&store, path, &meta).unwrap()
    }

    #[test]
    fn v3_lines_give_format_codecs_fill_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        write_sample_store(dir.path(), SampleFormat::V3).unwrap();
        let line = line_of(dir.path(), "imaging/labels/regions");
        for part in [
            "zarr_format=3",
            "shape=(100, 120)",
            "dtype=<i2",
            "chunks=(50, 50)",
            "codecs=transpose(order=[1, 0]) → bytes(endian=little) → zstd(level=3,checksum=false)",
            "fill=-1",
            "decoded=30000B",
            "chunks_present=6/6",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let line = line_of(dir.path(), "climate/precipitation");
        assert!(line.contains("chunks_present=8/9"), "{line}");
        assert!(line.contains("decoded=131072B"), "{line}");
    }

    #[test]
    fn sharded_arrays_show_their_shards() {
        let dir = tempfile::tempdir().unwrap();
        let doc = json!({"zarr_format": 3, "node_type": "array", "shape": [16, 12],
            "data_type": "uint16", "fill_value": 0,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 6]}},
            "chunk_key_encoding": {"name": "default"},
            "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [4, 3],
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "index_location": "end"}}]});
        std::fs::write(dir.path().join("zarr.json"), doc.to_string()).unwrap();
        std::fs::create_dir_all(dir.path().join("c/0")).unwrap();
        std::fs::write(dir.path().join("c/0/0"), [0u8; 10]).unwrap();
        let line = line_of(dir.path(), "");
        for part in [
            "chunks=(4, 3)",
            "shards=(8, 6)",
            "codecs=sharding_indexed[bytes(endian=little)]",
            "decoded=96B",
            "shards_present=1/4",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }
}
