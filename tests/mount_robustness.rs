//! Robustness through real mounts: a panic fails its request alone; with `kernel_cache`, a
//! write is seen through every view once answered; a store deleted while mounted fails
//! reads and writes and is not recreated.
//!
//! Every step runs under a watchdog that kills the daemon and fails instead of hanging.

mod common;

use common::*;
use serde_json::json;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A store of four `<i4` arrays of 40 values in raw chunks of 10, chunk `i` of each holding
/// `10 i .. 10 i + 10`.
fn four_arrays(store: &Path, names: [&str; 4]) {
    for name in names {
        let array = store.join(name);
        write_array(&array, &[40], &[10], json!({}));
        for i in 0..4 {
            fs::write(array.join(i.to_string()), chunk_values(10 * i)).unwrap();
        }
    }
}

/// Waits up to 10 s for `path` to hold `bytes`.
fn wait_for_content(path: &Path, bytes: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if fs::read(path).is_ok_and(|held| held == bytes) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_panic_fails_its_request_alone() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: panics are injected in debug builds only");
        return;
    }
    let (_dir, store) = new_store();
    four_arrays(&store, ["a", "b", "c", "boom"]);
    let mount = Mount::with_options(
        &store,
        &["-o", "rw", "--writeback-delay", "300ms"],
        None,
        &[("ZARRFS_TEST_PANIC_ON", "lookup:boom,decode:a/1,encode:b/2")],
    );
    let pid = mount.daemon_pid().expect("daemon");
    let (point, stored) = (mount.point.clone(), store.clone());
    let eio = Err(Some(libc::EIO));
    mount.within(60, "requests after panics", move || {
        let at = |rel: &str| point.join(rel);
        // More panics than the daemon has request threads, each with the tree's locks held.
        for _ in 0..8 {
            let err = fs::metadata(at("boom")).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EIO));
        }
        let whole: Vec<u8> = (0..4).flat_map(|i| chunk_values(10 * i)).collect();
        assert_eq!(fs::read(at("c/data")).unwrap(), whole, "a first lookup");
        // Decoding chunk 1 of `a` panics: in the request's thread (one chunk), on the decode
        // pool (a read of several) and ahead of a reader (opening chunk 0 starts the next).
        for _ in 0..3 {
            assert_eq!(read_errno(at("a/chunks/1")), eio);
            assert_eq!(read_errno(at("a/data")), eio);
            assert_eq!(fs::read(at("a/chunks/0")).unwrap(), chunk_values(0));
        }
        assert_eq!(fs::read(at("a/chunks/3")).unwrap(), chunk_values(30));
        // Encoding chunk 2 of `b` panics: its write-back fails, the others' do not.
        let open = |rel: &str| OpenOptions::new().write(true).open(at(rel)).unwrap();
        let b0 = open("b/chunks/0");
        b0.write_all_at(&chunk_values(100), 0).unwrap();
        b0.sync_all().unwrap();
        assert_eq!(fs::read(stored.join("b/0")).unwrap(), chunk_values(100));
        let b2 = open("b/chunks/2");
        b2.write_all_at(&chunk_values(200), 0).unwrap();
        assert_eq!(b2.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
        // The idle write-back meets the same panic at every turn and still stores the rest.
        let b3 = open("b/chunks/3");
        b3.write_all_at(&chunk_values(300), 0).unwrap();
        assert!(
            wait_for_content(&stored.join("b/3"), &chunk_values(300)),
            "the idle write-back stored nothing"
        );
        assert_eq!(fs::read(at("b/chunks/2")).unwrap(), chunk_values(200));
        assert_eq!(fs::read(stored.join("b/2")).unwrap(), chunk_values(20));
        drop((b0, b2, b3));
    });
    assert!(is_alive(pid), "the daemon died");
    let log = mount.log();
    for stage in ["lookup of boom", "decode of chunk", "encode of chunk"] {
        let lines = log
            .lines()
            .filter(|line| line.contains(&format!("injected panic: {stage}")))
            .count();
        assert_eq!(lines, 1, "{stage}: one log line each\n{log}");
    }
}

/// A small xorshift generator: the tests repeat exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn with_kernel_cache_a_write_is_seen_through_every_view_once_answered() {
    // 60×60 `<i4` in 16×16 chunks (edge chunks hold 12 rows or columns and padding): a run
    // of elements along a chunk's row shows at one offset of `data`, of `data.npy` and of
    // one chunk file, where its part in the padding always reads as the fill value (0).
    let (_dir, store) = new_store();
    let (side, chunk) = (60u64, 16u64);
    write_array(&store.join("a"), &[side, side], &[chunk, chunk], json!({}));
    let mount = Mount::new(&store, &["-o", "rw,kernel_cache"]);
    let point = mount.point.clone();
    let stale = mount.within(120, "writes and reads through aliases", move || {
        let open = |rel: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(point.join("a").join(rel))
                .unwrap()
        };
        let (data, npy) = (open("data"), open("data.npy"));
        let header = fs::metadata(point.join("a/data.npy")).unwrap().len() - side * side * 4;
        let grid = side.div_ceil(chunk);
        let chunks: Vec<fs::File> = (0..grid * grid)
            .map(|c| open(&format!("chunks/{}.{}", c / grid, c % grid)))
            .collect();
        // Every view's pages are cached before the first write.
        let mut whole = vec![0u8; (side * side * 4) as usize];
        data.read_exact_at(&mut whole, 0).unwrap();
        npy.read_exact_at(&mut whole, header).unwrap();
        for file in &chunks {
            file.read_exact_at(&mut whole[..(chunk * chunk * 4) as usize], 0)
                .unwrap();
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut stale = Vec::new();
        for round in 0..300u64 {
            let (c, li, lj) = (rng.below(grid * grid), rng.below(chunk), rng.below(chunk));
            let (i, j) = ((c / grid) * chunk + li, (c % grid) * chunk + lj);
            let len = 1 + rng.below(chunk - lj);
            // Elements of the run inside the array; the others are padding.
            let inside = if i < side {
                len.min(side.saturating_sub(j))
            } else {
                0
            };
            let bytes: Vec<u8> = (0..4 * len).map(|_| rng.below(256) as u8).collect();
            let mut shown = bytes.clone();
            shown[4 * inside as usize..].fill(0);
            let flat = (i * side + j) * 4;
            let views: [(&str, &fs::File, u64, u64); 3] = [
                ("data", &data, flat, inside),
                ("data.npy", &npy, header + flat, inside),
                (
                    "chunk file",
                    &chunks[c as usize],
                    (li * chunk + lj) * 4,
                    len,
                ),
            ];
            // Only a chunk file can write padding.
            let writer = if inside == len {
                (round % 3) as usize
            } else {
                2
            };
            let (_, file, offset, count) = views[writer];
            file.write_all_at(&bytes[..4 * count as usize], offset)
                .unwrap();
            for (name, file, offset, count) in views {
                let mut seen = vec![0u8; 4 * count as usize];
                file.read_exact_at(&mut seen, offset).unwrap();
                if seen != shown[..seen.len()] {
                    stale.push(format!(
                        "round {round}: {name} after a write through {}",
                        views[writer].0
                    ));
                }
            }
        }
        stale
    });
    assert!(stale.is_empty(), "{} stale reads: {stale:#?}", stale.len());
}

/// A Zarr v3 `int32` array of 40 values in chunks of 10 under `c/`, chunk `i` holding
/// `10 i .. 10 i + 10`.
fn v3_array(dir: &Path) {
    fs::create_dir_all(dir.join("c")).unwrap();
    let meta = json!({
        "zarr_format": 3, "node_type": "array", "shape": [40], "data_type": "int32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [10]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {}
    });
    fs::write(dir.join("zarr.json"), meta.to_string()).unwrap();
    for i in 0..4 {
        fs::write(dir.join(format!("c/{i}")), chunk_values(10 * i)).unwrap();
    }
}

#[test]
fn a_store_deleted_while_mounted_fails_reads_and_writes_and_is_not_recreated() {
    let (_dir, store) = new_store();
    four_arrays(&store, ["a", "b", "c", "d"]);
    v3_array(&store.join("v"));
    // Chunk 3 of `a` and `v` is absent: read as the fill value, never cached.
    fs::remove_file(store.join("a/3")).unwrap();
    fs::remove_file(store.join("v/c/3")).unwrap();
    // Nothing is written back behind the test's back.
    let mount = Mount::new(&store, &["-o", "rw", "--writeback-delay", "3600"]);
    let (point, stored) = (mount.point.clone(), store.clone());
    let eio = Some(libc::EIO);
    mount.within(60, "reads and writes of a deleted store", move || {
        let at = |rel: &str| point.join(rel);
        let open = |rel: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(at(rel))
                .unwrap()
        };
        let errno = |result: std::io::Result<()>| result.unwrap_err().raw_os_error();
        let after_ttl =
            || std::thread::sleep(zarrfs::array::PRESENCE_TTL + Duration::from_millis(200));
        // Chunks cached, stored and unsaved, in a v2 and a v3 array.
        let mut unsaved = Vec::new();
        for array in ["a", "v"] {
            assert_eq!(
                fs::read(at(&format!("{array}/chunks/0"))).unwrap(),
                chunk_values(0)
            );
            assert_eq!(fs::read(at(&format!("{array}/chunks/3"))).unwrap(), [0; 40]);
            let stored_chunk = open(&format!("{array}/chunks/1"));
            stored_chunk.write_all_at(&[9; 4], 0).unwrap();
            stored_chunk.sync_all().unwrap();
            let file = open(&format!("{array}/chunks/2"));
            file.write_all_at(&[7; 4], 0).unwrap();
            // Held open: closing a written file writes its array back.
            unsaved.push(file);
            unsaved.push(stored_chunk);
        }
        fs::remove_dir_all(stored.join("a")).unwrap();
        fs::remove_dir_all(stored.join("v")).unwrap();
        // An absent chunk no longer reads as the fill value, at once: its array is gone.
        assert_eq!(read_errno(at("a/chunks/3")), Err(eio));
        assert_eq!(read_errno(at("v/chunks/3")), Err(eio));
        after_ttl();
        for array in ["a", "v"] {
            for view in ["chunks/0", "chunks/1", "chunks/2", "data", "data.npy"] {
                assert_eq!(
                    read_errno(at(&format!("{array}/{view}"))),
                    Err(eio),
                    "{array}/{view}"
                );
            }
        }
        for file in &unsaved {
            assert_eq!(errno(file.write_all_at(&[1; 4], 4)), eio);
            assert_eq!(errno(file.sync_all()), eio, "no write-back");
        }
        assert!(!stored.join("a").exists(), "a recreated");
        assert!(!stored.join("v").exists(), "v recreated");
        // The other arrays are untouched.
        let b = open("b/chunks/0");
        b.write_all_at(&[5; 4], 0).unwrap();
        b.sync_all().unwrap();
        assert_eq!(fs::read(stored.join("b/0")).unwrap()[..4], [5; 4]);
        // Then the whole store goes.
        fs::remove_dir_all(&stored).unwrap();
        assert_eq!(read_errno(at("b/chunks/3")), Err(eio), "absent now");
        after_ttl();
        assert_eq!(read_errno(at("b/chunks/0")), Err(eio), "cached");
        assert_eq!(errno(b.write_all_at(&[6; 4], 0)), eio);
        assert!(!stored.exists(), "store recreated");
        drop(unsaved);
    });
}
