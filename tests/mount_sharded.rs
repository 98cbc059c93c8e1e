//! Mounts the committed Zarr v3 sharding fixtures (written by zarr-python and tensorstore)
//! for real and checks every view against the values both read when they wrote them; and
//! the damaged shards: EIO for the affected inner chunks only.

mod common;

use common::*;
use std::fs::File;
use std::io::Read;
use zarrfs::metadata::fill::fill_value_bytes;
use zarrfs::metadata::DataType;

const MANIFEST: &str = "v3-sharded-manifest.json";

fn read_all(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Mounts a private copy of the sharding fixture store.
fn mount(extra: &[&str]) -> (tempfile::TempDir, Mount) {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v3-sharded.zarr"), copy.path());
    let mount = Mount::new(copy.path(), extra);
    (copy, mount)
}

fn stat(mount: &Mount, name: &str) -> u64 {
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap()
        .parse()
        .unwrap()
}

fn fill_of(array: &FixtureArray) -> Vec<u8> {
    let dtype = DataType::parse_numpy(array.entry["dtype"].as_str().unwrap()).unwrap();
    fill_value_bytes(&array.entry["fill_value"], &dtype).unwrap()
}

/// The bytes chunk file `idx` must hold: the expected values, fill value outside the array.
fn expected_chunk(array: &FixtureArray, expected: &[u8], idx: &[u64]) -> Vec<u8> {
    let (shape, chunks, k) = (array.dims("shape"), array.dims("chunks"), array.itemsize());
    let fill = fill_of(array);
    chunk_element_sources(&shape, &chunks, idx)
        .into_iter()
        .flat_map(|source| match source {
            Some(flat) => expected[flat as usize * k..(flat as usize + 1) * k].to_vec(),
            None => fill.clone(),
        })
        .collect()
}

fn grid(array: &FixtureArray) -> Vec<u64> {
    let (shape, chunks) = (array.dims("shape"), array.dims("chunks"));
    shape
        .iter()
        .zip(&chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .collect()
}

#[test]
fn every_array_reads_as_its_writer_wrote_it() {
    let (_copy, mount) = mount(&["--read-only"]);
    let mut checked = 0;
    for array in manifest_named(MANIFEST)
        .iter()
        .filter(|a| a.strings("bad_chunks").is_empty() && a.strings("bad_shards").is_empty())
    {
        let path = array.path();
        let expected = array.expected().unwrap();
        let dir = mount.path(path);
        assert_eq!(
            read_all(&dir.join("data")).unwrap(),
            expected.data,
            "{path}: data"
        );
        let npy = parse_npy(&read_all(&dir.join("data.npy")).unwrap());
        assert_eq!(npy.descr, array.entry["dtype"].as_str().unwrap(), "{path}");
        assert_eq!(npy.shape, array.dims("shape"), "{path}");
        assert_eq!(npy.data, expected.data, "{path}: data.npy");
        let meta: serde_json::Value =
            serde_json::from_slice(&read_all(&dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["chunks"], array.entry["chunks"], "{path}");
        assert_eq!(
            meta.get("shards").unwrap_or(&serde_json::Value::Null),
            &array.entry["shards"],
            "{path}"
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.join("chunks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<String> = grid_positions(&grid(array))
            .iter()
            .map(|i| chunk_name(i))
            .collect();
        want.sort();
        assert_eq!(names, want, "{path}: inner chunk files");
        for idx in grid_positions(&grid(array)) {
            let name = chunk_name(&idx);
            assert_eq!(
                read_all(&dir.join("chunks").join(&name)).unwrap(),
                expected_chunk(array, &expected.data, &idx),
                "{path}: chunk {name}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 13);
    assert!(!mount.log().contains("WARN"), "{}", mount.log());
}

/// The (offset, size) index entries of a shard whose index of `n` entries (and a CRC-32C)
/// lies at its start.
fn index_at_start(shard: &[u8], n: usize) -> Vec<(u64, u64)> {
    (0..n)
        .map(|i| {
            let at = |k: usize| u64::from_le_bytes(shard[k * 8..k * 8 + 8].try_into().unwrap());
            (at(2 * i), at(2 * i + 1))
        })
        .collect()
}

#[test]
fn one_inner_chunk_reads_the_shard_index_and_its_own_bytes_only() {
    let (copy, mount) = mount(&["--read-only"]);
    // Inner chunk (2, 1, 3) of zp/f4_start_blosc_3d: the last in grid and name order (no
    // read-ahead after it), inner chunk (0, 1, 1) of shard (1, 0, 1), which holds 2x2x2.
    let shard = std::fs::read(copy.path().join("zp/f4_start_blosc_3d/c/1/0/1")).unwrap();
    let index_len = 8 * 16 + 4;
    let (_, nbytes) = index_at_start(&shard, 8)[3];
    assert!(nbytes > 0 && (index_len as u64 + nbytes) < shard.len() as u64);
    assert_eq!(stat(&mount, "store_bytes_read"), 0);
    let bytes = read_all(&mount.path("zp/f4_start_blosc_3d/chunks/2.1.3")).unwrap();
    assert_eq!(bytes.len(), 2 * 3 * 2 * 4);
    assert_eq!(
        stat(&mount, "store_bytes_read"),
        index_len as u64 + nbytes,
        "the index and the chunk's bytes, out of a shard of {} bytes",
        shard.len()
    );
}

#[test]
fn the_first_inner_chunk_read_from_a_fresh_mount_reads_nothing_ahead() {
    let (copy, mount) = mount(&["--read-only"]);
    // Inner chunk (0, 0, 0): the first, which chunk files after it in both orders follow.
    let shard = std::fs::read(copy.path().join("zp/f4_start_blosc_3d/c/0/0/0")).unwrap();
    let index_len = 8 * 16 + 4;
    let (_, nbytes) = index_at_start(&shard, 8)[0];
    let bytes = read_all(&mount.path("zp/f4_start_blosc_3d/chunks/0.0.0")).unwrap();
    assert_eq!(bytes.len(), 2 * 3 * 2 * 4);
    assert_eq!(stat(&mount, "chunks_prefetched"), 0);
    assert_eq!(stat(&mount, "store_bytes_read"), index_len as u64 + nbytes);
}

/// The store key of the shard holding inner chunk `idx`.
fn shard_key(array: &FixtureArray, idx: &[u64]) -> String {
    let per: Vec<u64> = array
        .dims("shards")
        .iter()
        .zip(array.dims("chunks"))
        .map(|(s, c)| s / c)
        .collect();
    let parts: Vec<String> = idx
        .iter()
        .zip(&per)
        .map(|(i, n)| (i / n).to_string())
        .collect();
    format!("c/{}", parts.join("/"))
}

#[test]
fn damaged_shards_fail_their_inner_chunks_only() {
    // Direct I/O: each read is one request, so each failure is one line.
    let (_copy, mount) = mount(&["--read-only", "-o", "direct_io"]);
    let bad_arrays: Vec<FixtureArray> = manifest_named(MANIFEST)
        .into_iter()
        .filter(|a| !a.strings("bad_shards").is_empty())
        .collect();
    assert_eq!(bad_arrays.len(), 6);
    for array in &bad_arrays {
        let path = array.path();
        let expected = array.expected().unwrap();
        let bad = array.strings("bad_chunks");
        assert!(!bad.is_empty(), "{path}");
        for idx in grid_positions(&grid(array)) {
            let name = chunk_name(&idx);
            let result = read_all(&mount.path(path).join("chunks").join(&name));
            if !bad.contains(&name) {
                let got = result.unwrap_or_else(|e| panic!("{path} chunk {name}: {e}"));
                assert_eq!(
                    got,
                    expected_chunk(array, &expected.data, &idx),
                    "{path} {name}"
                );
                continue;
            }
            let err = result.expect_err(&format!("{path} chunk {name} must fail"));
            assert_eq!(err.raw_os_error(), Some(libc::EIO), "{path} chunk {name}");
            let named = format!("{path}/{} (inner chunk {name})", shard_key(array, &idx));
            let lines = mount
                .log()
                .lines()
                .filter(|l| l.contains("read: chunk") && l.contains(&named))
                .count();
            assert_eq!(lines, 1, "{named}:\n{}", mount.log());
        }
        let err = read_all(&mount.path(path).join("data")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{path}: data");
    }
    // The daemon is up and the rest of the store reads.
    assert!(stat(&mount, "errors") > 0);
    let good = manifest_named(MANIFEST)
        .into_iter()
        .find(|a| a.path() == "zp/i4_end_zstd_edges")
        .unwrap();
    assert_eq!(
        read_all(&mount.path("zp/i4_end_zstd_edges/data")).unwrap(),
        good.expected().unwrap().data
    );
}
