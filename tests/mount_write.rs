//! Writes through a real mount: random writes against an in-memory shadow (surviving a
//! remount), fill-chunk deletion, fixed sizes, refused namespace changes, write-back errors
//! reported to fsync, and crash safety.

mod common;

use common::*;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Arrays covering blosc, zstd, gzip, zlib, lz4, no compressor, F order, big-endian,
/// '/' separators, legacy nested keys and edge chunks.
const WRITE_ARRAYS: &[&str] = &[
    "compressors/blosc_lz4_shuffle",
    "compressors/blosc_zstd_bitshuffle",
    "compressors/zstd_1",
    "compressors/gzip_1",
    "compressors/zlib_1",
    "compressors/lz4_1",
    "compressors/raw",
    "layout/order_F_3d_f8_be",
    "layout/order_F_2d_u1",
    "dtypes/i4_be",
    "layout/edge_2d",
    "layout/sep_slash_2d",
    "layout/legacy_nested_2d",
];

struct Subject {
    array: FixtureArray,
    shadow: Vec<u8>,
    data: File,
    npy: File,
    npy_header: u64,
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn random_writes_match_a_shadow_and_survive_remount() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v2.zarr"), store.path());
    let all = manifest();
    let mount = Mount::new(
        store.path(),
        &[
            "--rw",
            "--writeback-delay",
            "300ms",
            "--cache-size",
            "256KiB",
        ],
    );
    let mut subjects: Vec<Subject> = WRITE_ARRAYS
        .iter()
        .map(|path| {
            let array = all
                .iter()
                .find(|a| a.path() == *path)
                .map(|a| FixtureArray {
                    entry: a.entry.clone(),
                })
                .unwrap();
            let shadow = array.expected().unwrap().data;
            let dir = mount.path(path);
            let npy = open_rw(&dir.join("data.npy"));
            let npy_len = npy.metadata().unwrap().len();
            Subject {
                data: open_rw(&dir.join("data")),
                npy_header: npy_len - shadow.len() as u64,
                npy,
                shadow,
                array,
            }
        })
        .collect();
    let mut seed = 0x2545F4914F6CDD1Du64;
    for op in 0..4000 {
        let s = &mut subjects[(rng(&mut seed) % WRITE_ARRAYS.len() as u64) as usize];
        let total = s.shadow.len() as u64;
        let k = s.array.itemsize();
        let (shape, chunks, grid) = (
            s.array.dims("shape"),
            s.array.dims("chunks"),
            s.array.dims("grid"),
        );
        let chunk_bytes = chunks.iter().product::<u64>() as usize * k;
        match rng(&mut seed) % 6 {
            0 | 1 => {
                let offset = rng(&mut seed) % total;
                let len = 1 + rng(&mut seed) % (total - offset).min(3 * chunk_bytes as u64);
                let bytes: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
                if op % 2 == 0 {
                    s.data.write_all_at(&bytes, offset).unwrap();
                } else {
                    s.npy.write_all_at(&bytes, s.npy_header + offset).unwrap();
                }
                s.shadow[offset as usize..(offset + len) as usize].copy_from_slice(&bytes);
            }
            2 => {
                let positions = grid_positions(&grid);
                let idx = &positions[(rng(&mut seed) % positions.len() as u64) as usize];
                let offset = (rng(&mut seed) % chunk_bytes as u64) as usize;
                let len = 1 + (rng(&mut seed) % (chunk_bytes - offset) as u64) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
                let path = mount
                    .path(s.array.path())
                    .join("chunks")
                    .join(chunk_name(idx));
                open_rw(&path).write_all_at(&bytes, offset as u64).unwrap();
                let sources = chunk_element_sources(&shape, &chunks, idx);
                for (i, byte) in bytes.iter().enumerate() {
                    let at = offset + i;
                    if let Some(flat) = sources[at / k] {
                        s.shadow[flat as usize * k + at % k] = *byte;
                    }
                }
            }
            3 => {
                let positions = grid_positions(&grid);
                let idx = &positions[(rng(&mut seed) % positions.len() as u64) as usize];
                let path = mount
                    .path(s.array.path())
                    .join("chunks")
                    .join(chunk_name(idx));
                let mut got = vec![0u8; chunk_bytes];
                File::open(&path)
                    .unwrap()
                    .read_exact_at(&mut got, 0)
                    .unwrap();
                for (e, source) in chunk_element_sources(&shape, &chunks, idx)
                    .iter()
                    .enumerate()
                {
                    if let Some(flat) = source {
                        let f = *flat as usize;
                        assert_eq!(
                            &got[e * k..(e + 1) * k],
                            &s.shadow[f * k..(f + 1) * k],
                            "op {op}: {} chunk {idx:?}",
                            s.array.path()
                        );
                    }
                }
            }
            4 => {
                let offset = rng(&mut seed) % total;
                let len = 1 + rng(&mut seed) % (total - offset).min(2 * chunk_bytes as u64);
                let mut got = vec![0u8; len as usize];
                s.data.read_exact_at(&mut got, offset).unwrap();
                assert_eq!(
                    got,
                    s.shadow[offset as usize..(offset + len) as usize],
                    "op {op}: {} at {offset}+{len}",
                    s.array.path()
                );
            }
            _ => {
                if rng(&mut seed).is_multiple_of(4) {
                    s.data.sync_all().unwrap();
                }
                let mut got = vec![0u8; total as usize];
                s.npy.read_exact_at(&mut got, s.npy_header).unwrap();
                assert_eq!(got, s.shadow, "op {op}: {} npy", s.array.path());
            }
        }
    }
    let shadows: Vec<(String, Vec<u8>)> = subjects
        .drain(..)
        .map(|s| (s.array.path().to_string(), s.shadow))
        .collect();
    drop(mount);
    let again = Mount::new(store.path(), &["--read-only"]);
    for (path, shadow) in &shadows {
        let got = std::fs::read(again.path(path).join("data")).unwrap();
        assert_eq!(&got, shadow, "{path} after remount");
    }
    // No temporary file is left in the store.
    let mut pending = vec![store.path().to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            assert!(
                !entry.file_name().to_string_lossy().contains("zarrfs-tmp"),
                "{:?}",
                entry.path()
            );
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
        }
    }
}

#[test]
fn chunks_that_become_fill_are_deleted() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v2.zarr"), store.path());
    let mount = Mount::new(store.path(), &["--rw"]);
    let array = manifest()
        .into_iter()
        .find(|a| a.path() == "compressors/zstd_1")
        .unwrap();
    let chunk_bytes = array.dims("chunks").iter().product::<u64>() as usize * array.itemsize();
    let key = store.path().join("compressors/zstd_1/0.0");
    assert!(key.exists());
    let fill = array.entry["fill_value"].as_f64().unwrap_or(0.0);
    assert_eq!(fill, 0.0, "fixture fill is zero");
    let file = open_rw(&mount.path("compressors/zstd_1/chunks/0.0"));
    file.write_all_at(&vec![0u8; chunk_bytes], 0).unwrap();
    file.sync_all().unwrap();
    assert!(
        !key.exists(),
        "an all-fill chunk must be deleted from the store"
    );
    let got = std::fs::read(mount.path("compressors/zstd_1/chunks/0.0")).unwrap();
    assert!(got.iter().all(|&b| b == 0));
}

#[test]
fn sizes_are_fixed_and_namespace_changes_refused() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v2.zarr"), store.path());
    let mount = Mount::new(store.path(), &["--rw"]);
    let data = mount.path("dtypes/u1/data");
    let original = std::fs::read(&data).unwrap();
    let err = OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(3)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert!(
        mount.log().contains("fixed size"),
        "truncate is logged:\n{}",
        mount.log()
    );
    // Refusals repeated at other sizes and offsets are logged once each, not per request.
    let file = open_rw(&data);
    for k in 0..100u64 {
        let past = original.len() as u64 + k;
        let err = file.set_len(past + 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        let err = file.write_all_at(b"x", past).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    }
    let log = mount.log();
    let count = |words: &str| log.lines().filter(|l| l.contains(words)).count();
    assert_eq!(count("fixed size"), 1, "{log}");
    assert_eq!(count("past the end"), 1, "{log}");
    // O_TRUNC changes nothing; same-size copies overwrite.
    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&data)
            .unwrap(),
    );
    assert_eq!(std::fs::read(&data).unwrap(), original);
    let replacement: Vec<u8> = original.iter().map(|b| b.wrapping_add(1)).collect();
    let source = mount.dir.path().join("replacement.raw");
    std::fs::write(&source, &replacement).unwrap();
    let status = Command::new("cp").arg(&source).arg(&data).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&data).unwrap(), replacement);
    // The NPY header is immutable; rewriting it unchanged is fine.
    let npy = open_rw(&mount.path("dtypes/u1/data.npy"));
    let mut header = vec![0u8; 16];
    npy.read_exact_at(&mut header, 0).unwrap();
    npy.write_all_at(&header, 0).unwrap();
    let err = npy.write_all_at(b"X", 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    let eperm =
        |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPERM));
    eperm(File::create(mount.path("dtypes/new")).map(drop));
    eperm(std::fs::create_dir(mount.path("dtypes/newdir")));
    eperm(std::fs::remove_file(&data));
    eperm(std::fs::rename(&data, mount.path("dtypes/u1/moved")));
    eperm(std::fs::remove_dir(mount.path("dtypes/u1/chunks")));
}

#[test]
fn arrays_with_unsupported_codecs_refuse_writes() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v2.zarr"), store.path());
    let mount = Mount::new(store.path(), &["--rw"]);
    for path in [
        "errors/unsupported_codec/data",
        "errors/unsupported_filter/chunks/0.0",
    ] {
        let err = OpenOptions::new()
            .write(true)
            .open(mount.path(path))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{path}: {err}");
    }
    assert!(mount.log().contains("cannot write"), "{}", mount.log());
}

#[test]
fn write_back_errors_reach_fsync_and_nothing_is_lost() {
    // A tiny tmpfs that can be filled: needs root (as in CI).
    let area = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(area.path())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping: cannot mount a tmpfs (not root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _guard = Unmount(area.path());
    let store = area.path().join("store");
    copy_tree(
        &fixtures().join("v2.zarr/compressors/blosc_lz4_incompressible"),
        &store,
    );
    let mount = Mount::new(&store, &["--rw", "--writeback-delay", "3600s"]);
    let data = open_rw(&mount.path("data"));
    let total = data.metadata().unwrap().len() as usize;
    let mut seed = 99u64;
    let noise: Vec<u8> = (0..total).map(|_| rng(&mut seed) as u8).collect();
    // Fill the file system first, so that no write-back can land: neither those of chunks
    // written over whole, which start while the writer goes on, nor the one fsync asks for.
    let filler = area.path().join("filler");
    let mut f = File::create(&filler).unwrap();
    let block = vec![0xAAu8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    drop(f);
    data.write_all_at(&noise, 0).unwrap();
    let err = data.sync_all().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(mount.log().contains("write-back failed"), "{}", mount.log());
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("writeback_errors ") && l != "writeback_errors 0"),
        "{stats}"
    );
    // Still readable from memory, and stored once space is back.
    let mut got = vec![0u8; total];
    data.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(got, noise);
    std::fs::remove_file(&filler).unwrap();
    data.sync_all().unwrap();
    drop(data);
    drop(mount);
    let again = Mount::new(&store, &["--read-only"]);
    assert_eq!(std::fs::read(again.path("data")).unwrap(), noise);
}

#[test]
fn sigkill_during_writes_leaves_every_chunk_old_or_new() {
    let store = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v2.zarr/compressors/zstd_1"), store.path());
    let point = tempfile::tempdir().unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args(["mount", "-f", "--rw", "--writeback-delay", "50ms"])
        .arg(store.path())
        .arg(point.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let data_path = point.path().join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data_path.exists() {
        assert!(std::time::Instant::now() < deadline, "mount never came up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let data = open_rw(&data_path);
    let fixture = manifest()
        .into_iter()
        .find(|a| a.path() == "compressors/zstd_1")
        .unwrap();
    let (shape, chunks, k) = (
        fixture.dims("shape"),
        fixture.dims("chunks"),
        fixture.itemsize() as u64,
    );
    // One block per row, as wide as a chunk: each block lies inside a single chunk, whose
    // replacement is atomic (a write spanning chunks may land in one before the crash).
    let row_bytes = shape[1] * k;
    let block = chunks[1].min(shape[1]) * k;
    let blocks = shape[0];
    let block_offset = |b: u64| b * row_bytes;
    // Each round writes the round number into every byte of one block; a round's write is
    // durable once its fsync returned.
    let mut durable_round = vec![0u8; blocks as usize];
    let mut written_rounds: Vec<Vec<u8>> = vec![Vec::new(); blocks as usize];
    let killer = {
        let pid = daemon.id() as i32;
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
    };
    let mut round = 1u8;
    loop {
        let b = (round as u64 * 7) % blocks;
        if data
            .write_all_at(&vec![round; block as usize], block_offset(b))
            .is_err()
        {
            break;
        }
        written_rounds[b as usize].push(round);
        if data.sync_all().is_err() {
            break;
        }
        durable_round[b as usize] = round;
        round = if round == 255 { 1 } else { round + 1 };
    }
    killer.join().unwrap();
    let _ = daemon.wait();
    drop(data);
    let _ = Command::new("umount").arg("-l").arg(point.path()).status();
    let again = Mount::new(store.path(), &["--read-only"]);
    let got = std::fs::read(again.path("data")).expect("every chunk decodes after a crash");
    let original = fixture.expected().unwrap().data;
    for b in 0..blocks as usize {
        let at = block_offset(b as u64) as usize;
        let bytes = &got[at..at + block as usize];
        if bytes == &original[at..at + block as usize] {
            assert_eq!(durable_round[b], 0, "block {b}: an fsynced write was lost");
            continue;
        }
        let value = bytes[0];
        assert!(
            bytes.iter().all(|&x| x == value),
            "block {b} is torn: {bytes:?} original {:?} rounds {:?} durable {}",
            &original[at..at + block as usize],
            written_rounds[b],
            durable_round[b]
        );
        // The value is the last durable round or a later (not yet fsynced) one.
        let rounds = &written_rounds[b];
        let from = rounds
            .iter()
            .rposition(|&r| r == durable_round[b])
            .unwrap_or(0);
        assert!(
            rounds[from..].contains(&value),
            "block {b}: {value} not in {:?} (durable {})",
            &rounds[from..],
            durable_round[b]
        );
    }
    // The crash's leftover temporaries are cleaned at the next writable mount.
    drop(again);
    let _writable = Mount::new(store.path(), &["--rw"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for entry in std::fs::read_dir(store.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains("zarrfs-tmp"), "leftover {name}");
    }
}
