//! Read-ahead that follows the reader: slabs and time series decode the chunks they touch,
//! each once, and random reads start no decode ahead.

use super::tests::{stat, walk};
use super::{Tree, TreeOptions};
use crate::reader::ChunkReader;
use crate::store::DirectoryStore;
use serde_json::json;
use std::sync::Arc;

/// 48×64×64 float32 in 8×16×16 chunks: 6×4×4 chunks, 16 KiB per plane, 256 bytes per row.
const SHAPE: [u64; 3] = [48, 64, 64];
const PLANE: u64 = 64 * 64 * 4;
const ROW: u64 = 64 * 4;

fn value(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 7) as u8
}

/// A store holding the cube at `cube/`, every chunk stored (zlib).
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cube")).unwrap();
    let zarray = json!({"zarr_format": 2, "shape": SHAPE, "chunks": [8, 16, 16],
        "dtype": "<f4", "compressor": {"id": "zlib", "level": 1}, "fill_value": 0,
        "order": "C", "filters": null});
    std::fs::write(dir.path().join("cube/.zarray"), zarray.to_string()).unwrap();
    let tree = open_tree(dir.path());
    let data = walk(&tree, "cube/data");
    let (fh, _) = tree.open(data.ino, true).unwrap();
    let bytes: Vec<u8> = (0..data.size).map(value).collect();
    tree.write(fh, 0, &bytes).unwrap();
    tree.release(fh);
    tree.flush_all(true).unwrap();
    dir
}

fn open_tree(dir: &std::path::Path) -> Tree {
    let store = Arc::new(DirectoryStore::open(dir).unwrap());
    let reader = Arc::new(ChunkReader::with_budget(1 << 26, 2).unwrap());
    Tree::new(store, reader, TreeOptions::default()).unwrap()
}

/// Reads `[offset, offset + len)` of the cube through `fh` and checks the bytes.
fn read(tree: &Tree, fh: u64, offset: u64, len: u32) {
    let got = tree.read(fh, offset, len).unwrap();
    let expected: Vec<u8> = (offset..offset + u64::from(len)).map(value).collect();
    assert!(got == expected, "bytes at {offset}");
}

#[test]
fn a_slab_read_as_mmap_does_decodes_each_chunk_it_touches_once() {
    let dir = store();
    let tree = open_tree(dir.path());
    let (fh, _) = tree.open(walk(&tree, "cube/data").ino, false).unwrap();
    // Rows 20..44 of every plane, in requests of 4 rows (1 KiB) that continue one another,
    // as page faults through mmap arrive: a run per plane, a plane apart.
    for t in 0..SHAPE[0] {
        for rows in (20..44).step_by(4) {
            read(&tree, fh, t * PLANE + rows * ROW, 4 * ROW as u32);
        }
    }
    tree.reader.wait_for_prefetches();
    // Whole rows of y-chunks 1 and 2: 6 × 2 × 4 chunks.
    assert_eq!(stat(&tree, "chunks_decoded"), 48, "no band read ahead");
    assert!(
        stat(&tree, "chunks_prefetched") >= 24,
        "the next planes' chunks ahead"
    );
    tree.release(fh);
}

#[test]
fn a_time_series_decodes_its_chunks_ahead_of_the_reader() {
    let dir = store();
    let tree = open_tree(dir.path());
    let (fh, _) = tree.open(walk(&tree, "cube/data").ino, false).unwrap();
    for t in 0..SHAPE[0] {
        read(&tree, fh, t * PLANE + 37 * ROW + 5 * 4, 4);
    }
    tree.reader.wait_for_prefetches();
    assert_eq!(stat(&tree, "chunks_decoded"), 6, "one chunk per 8 planes");
    assert_eq!(
        stat(&tree, "chunks_prefetched"),
        5,
        "all but the first, once two equal strides were seen"
    );
    tree.release(fh);
}

#[test]
fn random_reads_start_no_decode_ahead() {
    let dir = store();
    let tree = open_tree(dir.path());
    let (fh, _) = tree.open(walk(&tree, "cube/data").ino, false).unwrap();
    let size = SHAPE.iter().product::<u64>() * 4;
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        read(&tree, fh, (x >> 11) % (size - 64), 64);
    }
    tree.reader.wait_for_prefetches();
    assert_eq!(stat(&tree, "chunks_prefetched"), 0);
    tree.release(fh);
}
