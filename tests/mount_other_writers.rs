//! Another program writing a local store while it is mounted: after `--ttl`, fresh opens
//! show chunks it replaced, rewrote or created (in `data` and in `chunks/`), and a write
//! through a writable mount builds on the chunk as stored now, whatever the TTL.

mod common;

use common::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The TTL the read-only mount is given, and how long the test waits past it.
const TTL: &str = "200ms";
const PAST_TTL: Duration = Duration::from_millis(400);

/// A v2 store with one uncompressed array `a` of eight `<i2` in chunks of four: chunk 0
/// stored as `first`, chunk 1 absent (fill value 0).
fn store(first: [i16; 4]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(
        dir.path().join("a/.zarray"),
        r#"{"zarr_format": 2, "shape": [8], "chunks": [4], "dtype": "<i2",
            "compressor": null, "fill_value": 0, "order": "C", "filters": null}"#,
    )
    .unwrap();
    write_chunk(dir.path(), "0", first, true);
    dir
}

/// Stores chunk `name` of array `a` as another program would: written aside and renamed
/// over the old one (`atomic`, as zarr-python does) or rewritten in place. The file is
/// dated a minute ago, as an older chunk would be: only its identity (a new inode) or its
/// contents tell it apart.
fn write_chunk(store: &Path, name: &str, values: [i16; 4], atomic: bool) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = store.join("a").join(name);
    let written = if atomic {
        store.join("a").join(format!(".{name}.partial"))
    } else {
        path.clone()
    };
    std::fs::write(&written, bytes).unwrap();
    let file = OpenOptions::new().write(true).open(&written).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    drop(file);
    if atomic {
        std::fs::rename(&written, &path).unwrap();
    }
}

/// Elements of little-endian `<i2` bytes.
fn elements(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks(2)
        .map(|e| i16::from_le_bytes([e[0], e[1]]))
        .collect()
}

/// Reads a file of the mount afresh (a new open).
fn read(mount: &Mount, rel: &str) -> Vec<i16> {
    elements(&std::fs::read(mount.path(rel)).unwrap())
}

#[test]
fn read_only_mounts_show_what_another_program_stored_after_the_ttl() {
    let store = store([1, 2, 3, 4]);
    let mount = Mount::new(store.path(), &["--ttl", TTL]);
    assert_eq!(read(&mount, "a/chunks/0"), [1, 2, 3, 4]);
    assert_eq!(read(&mount, "a/chunks/1"), [0; 4]);
    assert_eq!(read(&mount, "a/data"), [1, 2, 3, 4, 0, 0, 0, 0]);
    // Replaced atomically (same size and date, another file), and created where there was
    // none.
    write_chunk(store.path(), "0", [5, 6, 7, 8], true);
    write_chunk(store.path(), "1", [9, 10, 11, 12], true);
    std::thread::sleep(PAST_TTL);
    assert_eq!(read(&mount, "a/data"), [5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(read(&mount, "a/chunks/0"), [5, 6, 7, 8]);
    assert_eq!(read(&mount, "a/chunks/1"), [9, 10, 11, 12]);
    // Rewritten in place (the same file, another date).
    let file = OpenOptions::new()
        .write(true)
        .open(store.path().join("a/0"))
        .unwrap();
    file.write_all_at(&[13, 0, 14, 0], 0).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    drop(file);
    std::thread::sleep(PAST_TTL);
    assert_eq!(read(&mount, "a/chunks/0"), [13, 14, 7, 8]);
    assert_eq!(read(&mount, "a/data"), [13, 14, 7, 8, 9, 10, 11, 12]);
    // Deleted: the fill value again.
    std::fs::remove_file(store.path().join("a/1")).unwrap();
    std::thread::sleep(PAST_TTL);
    assert_eq!(read(&mount, "a/data"), [13, 14, 7, 8, 0, 0, 0, 0]);
    assert_eq!(read(&mount, "a/chunks/1"), [0; 4]);
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    assert!(
        !stats.contains("chunks_stale 0\n"),
        "stale chunks counted:\n{stats}"
    );
    // Nothing changed since: after the TTL, an open keeps the kernel's cached pages and
    // the reads never reach the daemon.
    std::thread::sleep(PAST_TTL);
    let served = counter(&mount, "bytes_read");
    assert_eq!(read(&mount, "a/data"), [13, 14, 7, 8, 0, 0, 0, 0]);
    assert_eq!(
        counter(&mount, "bytes_read"),
        served,
        "served from the page cache"
    );
}

/// A counter of the mount's `.zarrfs/stats`.
fn counter(mount: &Mount, name: &str) -> u64 {
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn writes_build_on_the_chunk_stored_now_and_unsaved_chunks_win() {
    let store = store([1, 2, 3, 4]);
    // A TTL far longer than the test: a read-modify-write checks the store regardless.
    let mount = Mount::new(
        store.path(),
        &["--rw", "--ttl", "1h", "--writeback-delay", "1h"],
    );
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mount.path("a/data"))
        .unwrap();
    let mut bytes = [0u8; 16];
    data.read_exact_at(&mut bytes, 0).unwrap();
    assert_eq!(elements(&bytes), [1, 2, 3, 4, 0, 0, 0, 0], "cached");
    // Another program replaces chunk 0; one element is then written through the mount.
    write_chunk(store.path(), "0", [5, 6, 7, 8], true);
    data.write_all_at(&100i16.to_le_bytes(), 2).unwrap();
    data.sync_all().unwrap();
    let stored = std::fs::read(store.path().join("a/0")).unwrap();
    assert_eq!(elements(&stored), [5, 100, 7, 8], "the other write is kept");
    // Also through a chunk file, after the mount itself stored the chunk.
    write_chunk(store.path(), "0", [21, 22, 23, 24], false);
    let chunk = OpenOptions::new()
        .write(true)
        .open(mount.path("a/chunks/0"))
        .unwrap();
    chunk.write_all_at(&200i16.to_le_bytes(), 6).unwrap();
    chunk.sync_all().unwrap();
    let stored = std::fs::read(store.path().join("a/0")).unwrap();
    assert_eq!(elements(&stored), [21, 22, 23, 200]);
    // A chunk with unsaved writes through the mount: its write-back wins (per chunk).
    data.write_all_at(&300i16.to_le_bytes(), 0).unwrap();
    write_chunk(store.path(), "0", [31, 32, 33, 34], true);
    data.sync_all().unwrap();
    let stored = std::fs::read(store.path().join("a/0")).unwrap();
    assert_eq!(
        elements(&stored),
        [300, 22, 23, 200],
        "last write-back wins"
    );
}

/// Replaces the store document `rel` atomically with `text`.
fn replace_document(store: &Path, rel: &str, text: &str) {
    let aside = store.join(format!("{rel}.partial"));
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, store.join(rel)).unwrap();
}

/// The JSON an `attrs.json` of the mount holds, read afresh.
fn attributes(mount: &Mount, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(mount.path(rel)).unwrap()).unwrap()
}

#[test]
fn attributes_another_program_changed_show_after_the_ttl() {
    let store = store([1, 2, 3, 4]);
    std::fs::write(store.path().join("a/.zattrs"), r#"{"units": "m"}"#).unwrap();
    let mount = Mount::new(store.path(), &["--ttl", TTL]);
    assert_eq!(
        attributes(&mount, "a/attrs.json"),
        serde_json::json!({"units": "m"})
    );
    assert_eq!(attributes(&mount, "attrs.json"), serde_json::json!({}));
    replace_document(
        store.path(),
        "a/.zattrs",
        r#"{"units": "km", "long_name": "distance"}"#,
    );
    replace_document(store.path(), ".zattrs", r#"{"title": "new"}"#);
    std::thread::sleep(PAST_TTL);
    assert_eq!(
        attributes(&mount, "a/attrs.json"),
        serde_json::json!({"units": "km", "long_name": "distance"})
    );
    assert_eq!(
        attributes(&mount, "attrs.json"),
        serde_json::json!({"title": "new"})
    );
    // Its size too, once the kernel's cached attributes expire (after a second).
    std::thread::sleep(Duration::from_millis(1100));
    let size = std::fs::metadata(mount.path("a/attrs.json")).unwrap().len();
    assert_eq!(
        size,
        std::fs::read(mount.path("a/attrs.json")).unwrap().len() as u64
    );
}

#[test]
fn v3_root_attributes_another_program_changed_show_after_the_ttl() {
    let store = tempfile::tempdir().unwrap();
    let group = |attributes: &str| {
        format!(r#"{{"zarr_format": 3, "node_type": "group", "attributes": {attributes}}}"#)
    };
    std::fs::write(store.path().join("zarr.json"), group(r#"{"a": 1}"#)).unwrap();
    let mount = Mount::new(store.path(), &["--ttl", TTL]);
    assert_eq!(
        attributes(&mount, "attrs.json"),
        serde_json::json!({"a": 1})
    );
    replace_document(
        store.path(),
        "zarr.json",
        &group(r#"{"a": 2, "b": [1, 2]}"#),
    );
    std::thread::sleep(PAST_TTL);
    assert_eq!(
        attributes(&mount, "attrs.json"),
        serde_json::json!({"a": 2, "b": [1, 2]})
    );
}

#[test]
fn inner_chunks_of_a_replaced_shard_show_after_the_ttl() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v3-sharded.zarr"), store.path());
    let array = store.path().join("zp/f4_start_blosc_3d");
    let mount = Mount::new(store.path(), &["--ttl", TTL]);
    let chunk = |name: &str| {
        std::fs::read(mount.path(&format!("zp/f4_start_blosc_3d/chunks/{name}"))).unwrap()
    };
    // Inner chunk 0.0.0 is the first of shard 0/0/0; 0.0.2 the first of shard 0/0/1.
    let first = chunk("0.0.0");
    let other = chunk("0.0.2");
    assert_ne!(first, other);
    let aside = array.join("c/0/0/.0.partial");
    std::fs::copy(array.join("c/0/0/1"), &aside).unwrap();
    std::fs::rename(&aside, array.join("c/0/0/0")).unwrap();
    std::thread::sleep(PAST_TTL);
    assert_eq!(chunk("0.0.0"), other, "the shard's new inner chunk");
}

/// Another program rewrites the array's `.zarray` (a larger shape, a new fill value) and
/// stores a chunk of the new shape: once the kernel's entries and the TTL have passed, the
/// array is shown anew (a new inode): `data`, `data.npy`, `meta.json` and `chunks/` follow the
/// new metadata; a file opened before keeps the array it opened.
#[test]
fn an_array_whose_metadata_another_program_changed_is_shown_anew_after_the_ttl() {
    let store = store([1, 2, 3, 4]);
    let mount = Mount::new(store.path(), &["--ttl", TTL]);
    assert_eq!(read(&mount, "a/data"), [1, 2, 3, 4, 0, 0, 0, 0]);
    let before = std::fs::metadata(mount.path("a")).unwrap();
    let held = std::fs::File::open(mount.path("a/data")).unwrap();
    replace_document(
        store.path(),
        "a/.zarray",
        r#"{"zarr_format": 2, "shape": [12], "chunks": [4], "dtype": "<i2",
            "compressor": null, "fill_value": 7, "order": "C", "filters": null}"#,
    );
    write_chunk(store.path(), "2", [9, 10, 11, 12], true);
    // The kernel keeps entries and attributes for a second; the TTL is shorter.
    std::thread::sleep(Duration::from_millis(1100) + PAST_TTL);
    let after = std::fs::metadata(mount.path("a")).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&before),
        std::os::unix::fs::MetadataExt::ino(&after),
        "a changed array is a new node"
    );
    assert_eq!(
        read(&mount, "a/data"),
        [1, 2, 3, 4, 7, 7, 7, 7, 9, 10, 11, 12]
    );
    assert_eq!(std::fs::metadata(mount.path("a/data")).unwrap().len(), 24);
    assert_eq!(read(&mount, "a/chunks/2"), [9, 10, 11, 12]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mount.path("a/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["shape"], serde_json::json!([12]));
    let npy = std::fs::read(mount.path("a/data.npy")).unwrap();
    assert_eq!(
        elements(&npy[npy.len() - 24..]),
        [1, 2, 3, 4, 7, 7, 7, 7, 9, 10, 11, 12]
    );
    // The file opened before reads the array as it was opened: eight elements.
    let mut old = vec![0u8; 32];
    let n = held.read_at(&mut old, 0).unwrap();
    assert_eq!(elements(&old[..n]), [1, 2, 3, 4, 0, 0, 0, 0]);
    // Unchanged metadata keeps the node.
    std::thread::sleep(Duration::from_millis(1100) + PAST_TTL);
    let again = std::fs::metadata(mount.path("a")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&after),
        std::os::unix::fs::MetadataExt::ino(&again)
    );
}
