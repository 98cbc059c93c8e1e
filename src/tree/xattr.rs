//! Extended attributes: an array's directory, its `chunks/` and its files (`data`,
//! `data.npy`, `data.jsonl`, every chunk file) carry the array's description as
//! `user.zarr.*`, the same fields `meta.json` holds, for programs that would rather not
//! parse JSON. Read-only.

use super::{NodeKind, Tree, CHUNK_INO_FLAG};
use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use serde_json::Value;
use std::sync::Arc;

/// The namespace of zarrfs's attributes.
pub const PREFIX: &str = "user.zarr.";

/// The fields of `meta.json` shown as attributes, when the array has them (`unsupported`:
/// why zarrfs cannot read it; its dtype is then left out).
const FIELDS: &[&str] = &[
    "unsupported",
    "zarr_format",
    "shape",
    "chunks",
    "shards",
    "dtype",
    "fill_value",
    "order",
    "dimension_names",
];

/// The fields that are lists of dimensions, shown comma-separated (`24,90,180`).
const DIMENSIONS: &[&str] = &["shape", "chunks", "shards"];

/// An attribute's value: dimensions comma-separated, text as it is, anything else (a
/// complex fill value, dimension names) as compact JSON.
fn value_text(field: &str, value: &Value) -> String {
    match value {
        Value::Array(items) if DIMENSIONS.contains(&field) => items
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Tree {
    /// The array an inode belongs to, and the chunk it is (chunk files).
    fn xattr_subject(&self, ino: u64) -> FsResult<Option<(Arc<ZarrArray>, Option<u64>)>> {
        if ino & CHUNK_INO_FLAG != 0 {
            let (array, linear) = self.decode_chunk_ino(ino)?;
            return Ok(Some((array, Some(linear))));
        }
        Ok(match &self.node(ino)?.kind {
            NodeKind::ArrayDir { array }
            | NodeKind::ChunksDir { array }
            | NodeKind::Data { array }
            | NodeKind::Npy { array, .. }
            | NodeKind::JsonLines { array } => Some((array.clone(), None)),
            _ => None,
        })
    }

    /// The extended attributes of an inode, by name; none for groups and documents.
    pub fn xattrs(&self, ino: u64) -> FsResult<Vec<(String, Vec<u8>)>> {
        let Some((array, chunk)) = self.xattr_subject(ino)? else {
            return Ok(Vec::new());
        };
        let meta = array.meta.to_json();
        let mut attrs: Vec<(String, Vec<u8>)> = FIELDS
            .iter()
            .filter_map(|&field| Some((field, meta.get(field)?)))
            .filter(|(field, value)| !value.is_null() || *field == "fill_value")
            .map(|(field, value)| {
                let text = value_text(field, value);
                (format!("{PREFIX}{field}"), text.into_bytes())
            })
            .collect();
        if let Some(codecs) = meta.pointer("/stored/codecs") {
            attrs.push((format!("{PREFIX}codecs"), codecs.to_string().into_bytes()));
        }
        if let Some(linear) = chunk {
            let index = array.grid.chunk_index(linear);
            let text = index
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            attrs.push((format!("{PREFIX}chunk"), text.into_bytes()));
        }
        Ok(attrs)
    }

    /// One extended attribute of an inode (ENODATA when it has no such attribute).
    pub fn xattr(&self, ino: u64, name: &str) -> FsResult<Vec<u8>> {
        self.xattrs(ino)?
            .into_iter()
            .find_map(|(attr, value)| (attr == name).then_some(value))
            .ok_or_else(|| FsError::new(libc::ENODATA, format!("no attribute {name}")))
    }

    /// The error for setting or removing an attribute: EROFS on a read-only mount, else
    /// ENOTSUP (attributes show the metadata; they are not stored).
    pub fn xattr_change_error(&self) -> FsError {
        if self.options.read_only {
            FsError::read_only("mounted read-only")
        } else {
            FsError::new(libc::ENOTSUP, "extended attributes are read-only")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{tree, walk};
    use super::*;

    fn attr(tree: &Tree, path: &str, name: &str) -> String {
        let ino = walk(tree, path).ino;
        String::from_utf8(tree.xattr(ino, &format!("{PREFIX}{name}")).unwrap()).unwrap()
    }

    #[test]
    fn arrays_and_their_files_describe_the_array() {
        let (_dir, tree) = tree(true);
        for path in [
            "climate/temperature",
            "climate/temperature/data",
            "climate/temperature/data.npy",
            "climate/temperature/chunks/3.1.1",
        ] {
            assert_eq!(attr(&tree, path, "shape"), "24,90,180", "{path}");
            assert_eq!(attr(&tree, path, "chunks"), "6,45,90");
            assert_eq!(attr(&tree, path, "dtype"), "<f4");
            assert_eq!(attr(&tree, path, "order"), "C");
            assert_eq!(attr(&tree, path, "zarr_format"), "2");
        }
        assert_eq!(attr(&tree, "counts/data", "dtype"), ">i4");
        assert_eq!(
            attr(&tree, "climate/temperature/chunks/3.1.1", "chunk"),
            "3,1,1"
        );
        let data = walk(&tree, "climate/temperature/data").ino;
        assert_eq!(
            tree.xattr(data, "user.zarr.nope").unwrap_err().errno,
            libc::ENODATA
        );
        let names: Vec<String> = tree
            .xattrs(data)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            names.contains(&"user.zarr.fill_value".to_string()),
            "{names:?}"
        );
        assert!(!names.contains(&"user.zarr.chunk".to_string()));
        let doc = walk(&tree, "climate/temperature/meta.json").ino;
        assert!(tree.xattrs(doc).unwrap().is_empty());
        assert_eq!(tree.xattr_change_error().errno, libc::EROFS);
    }
}
