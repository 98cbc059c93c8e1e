//! `zarrfs info STORE`: one line per array.

use crate::geometry::ChunkGrid;
use crate::metadata::{self, ArrayMeta, Catalog, NodeMeta};
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

/// The info line of one array.
pub fn describe_array(store: &dyn Store, path: &str, meta: &ArrayMeta) -> Result<String> {
    let grid = ChunkGrid::new(&meta.shape, &meta.chunk_shape, meta.dtype.size);
    let (stored, present) = chunk_objects(store, path)?;
    let logical = present * grid.chunk_bytes() as u64;
    let ratio = if stored > 0 {
        format!("{:.2}x", logical as f64 / stored as f64)
    } else {
        "-".to_string()
    };
    let shape: Vec<String> = meta.shape.iter().map(u64::to_string).collect();
    let chunks: Vec<String> = meta.chunk_shape.iter().map(u64::to_string).collect();
    Ok(format!(
        "/{path}  shape=({})  dtype={}  chunks=({})  codecs={}  stored={}B  ratio={}  chunks_present={}/{}",
        shape.join(", "),
        meta.dtype,
        chunks.join(", "),
        meta.codecs.summary(),
        stored,
        ratio,
        present,
        grid.num_chunks()
    ))
}

/// Walks the store and prints a line per array.
pub fn run(store_dir: &Path) -> Result<()> {
    let store: Arc<dyn Store> = Arc::new(
        DirectoryStore::open(store_dir)
            .with_context(|| format!("cannot open store {}", store_dir.display()))?,
    );
    let catalog = Catalog::open(store.clone());
    let mut pending = vec![(String::new(), catalog.root()?.meta)];
    while let Some((path, node)) = pending.pop() {
        match node {
            NodeMeta::Array(meta) => println!("{}", describe_array(store.as_ref(), &path, &meta)?),
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
