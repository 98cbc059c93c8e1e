//! Seeds for the properties: the metadata documents and stored chunks of the committed
//! fixture and conformance stores (every codec and layout zarrfs reads), and edits that
//! mutate them.

use proptest::prelude::*;
use std::fs;
use std::path::Path;
use std::sync::LazyLock;
use zarrfs::metadata::{json, v2, v3, ArrayMeta, NodeMeta};

/// An array of the stores, with some of its stored chunks (or shards).
pub struct StoredArray {
    /// Where it comes from, for failure messages.
    pub label: String,
    /// Its metadata.
    pub meta: ArrayMeta,
    /// Stored chunks.
    pub chunks: Vec<Vec<u8>>,
}

/// Metadata documents and arrays found in the committed stores.
pub struct Corpus {
    /// `.zarray`, `.zgroup`, `.zattrs`, `.zmetadata` and `zarr.json` documents.
    pub documents: Vec<Vec<u8>>,
    /// Arrays with at least one stored chunk.
    pub arrays: Vec<StoredArray>,
}

/// The seeds, read once.
pub static CORPUS: LazyLock<Corpus> = LazyLock::new(|| {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut corpus = Corpus {
        documents: Vec::new(),
        arrays: Vec::new(),
    };
    for stores in ["fixtures", "conformance/stores"] {
        walk(&tests.join(stores), &mut corpus);
    }
    assert!(corpus.arrays.len() > 100, "seeds missing");
    corpus
});

/// Largest seed file read.
const MAX_SEED: u64 = 256 << 10;
/// Stored chunks kept per array.
const CHUNKS_PER_ARRAY: usize = 3;
const DOCUMENTS: [&str; 5] = [".zarray", ".zgroup", ".zattrs", ".zmetadata", "zarr.json"];

fn walk(dir: &Path, corpus: &mut Corpus) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, corpus);
        } else if DOCUMENTS.contains(&name.as_str()) && small(&path) {
            let bytes = fs::read(&path).unwrap();
            if let Some(meta) = array_meta(&name, &bytes) {
                let mut chunks = Vec::new();
                stored_chunks(dir, &mut chunks);
                if !chunks.is_empty() {
                    corpus.arrays.push(StoredArray {
                        label: dir.display().to_string(),
                        meta,
                        chunks,
                    });
                }
            }
            corpus.documents.push(bytes);
        }
    }
}

fn small(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() <= MAX_SEED)
}

/// The metadata of an array document.
fn array_meta(name: &str, bytes: &[u8]) -> Option<ArrayMeta> {
    let doc = json::parse(bytes).ok()?;
    match name {
        ".zarray" => v2::parse_zarray(&doc, serde_json::json!({})).ok(),
        "zarr.json" => match v3::parse_node(&doc).ok()? {
            NodeMeta::Array(meta) => Some(*meta),
            NodeMeta::Group { .. } => None,
        },
        _ => None,
    }
}

/// Up to [`CHUNKS_PER_ARRAY`] stored chunks under an array's directory.
fn stored_chunks(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= CHUNKS_PER_ARRAY {
            return;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            stored_chunks(&path, out);
        } else if !DOCUMENTS.contains(&name.as_str()) && small(&path) {
            out.push(fs::read(&path).unwrap());
        }
    }
}

/// One change to a seed's bytes; positions wrap around its length.
#[derive(Debug, Clone)]
pub enum Edit {
    /// XOR one byte.
    Flip(usize, u8),
    /// Put eight bytes (little-endian) over the seed.
    Overwrite(usize, u64),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Cut the seed short.
    Truncate(usize),
    /// Repeat a range of the seed a few times in place.
    Repeat(usize, usize, u8),
}

/// Numbers that make decoders and parsers take unusual paths.
pub fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(0x7f),
        Just(0xff),
        Just(0x7fff_ffff),
        Just(0xffff_ffff),
        Just(1 << 32),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// A few edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Edit::Flip(at, x)),
        (any::<usize>(), interesting_u64()).prop_map(|(at, v)| Edit::Overwrite(at, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1..512usize, 1..8u8).prop_map(|(at, len, n)| Edit::Repeat(at, len, n)),
    ];
    prop::collection::vec(edit, 0..6)
}

/// `seed` with `edits` applied.
pub fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        let at = |pos: usize, len: usize| if len == 0 { 0 } else { pos % len };
        match edit {
            Edit::Flip(pos, x) if !bytes.is_empty() => {
                let i = at(*pos, bytes.len());
                bytes[i] ^= x;
            }
            Edit::Flip(..) => {}
            Edit::Overwrite(pos, value) => {
                let i = at(*pos, bytes.len());
                for (k, b) in value.to_le_bytes().into_iter().enumerate() {
                    match bytes.get_mut(i + k) {
                        Some(slot) => *slot = b,
                        None => bytes.push(b),
                    }
                }
            }
            Edit::Insert(pos, new) => {
                let i = at(*pos, bytes.len() + 1);
                bytes.splice(i..i, new.iter().copied());
            }
            Edit::Truncate(pos) => bytes.truncate(at(*pos, bytes.len() + 1)),
            Edit::Repeat(pos, len, times) => {
                let start = at(*pos, bytes.len() + 1);
                let end = (start + len).min(bytes.len());
                let part = bytes[start..end].to_vec();
                for _ in 0..*times {
                    bytes.splice(end..end, part.iter().copied());
                }
            }
        }
    }
    bytes
}
