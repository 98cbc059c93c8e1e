//! Sizes a store declares and names it holds, through real mounts: chunks too large to
//! decode give EIO (other arrays unaffected, the daemon up), sizes that overflow leave the
//! array out with a warning, and names the mount cannot show are skipped with one warning.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;

/// Address space the daemons may map: a chunk of the sizes below would need far more.
const DAEMON_ADDRESS_SPACE: u64 = 4 << 30;

fn write_array(dir: &Path, shape: &[u64], chunks: &[u64], dtype: &str, fill: serde_json::Value) {
    fs::create_dir_all(dir).unwrap();
    let meta = json!({
        "zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
        "compressor": null, "fill_value": fill, "order": "C", "filters": null
    });
    fs::write(dir.join(".zarray"), meta.to_string()).unwrap();
}

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    write_array(&dir.path().join("ok"), &[4], &[4], "|u1", json!(3));
    dir
}

/// The errno of reading the first bytes of a file (`None` when the read succeeds).
fn errno_of(path: std::path::PathBuf) -> Option<i32> {
    within(20, move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        fs::File::open(path)
            .and_then(|mut f| f.read(&mut buf))
            .err()
            .and_then(|e| e.raw_os_error())
    })
    .expect("read did not return within 20 s")
}

#[test]
fn chunks_larger_than_the_limit_give_eio_and_nothing_else_breaks() {
    let store = store();
    let root = store.path();
    // 2^40 one-byte elements per chunk, absent (fill value); 2^33 with a 100-byte chunk.
    write_array(&root.join("tera"), &[1 << 41], &[1 << 40], "|u1", json!(7));
    write_array(&root.join("giga"), &[1 << 33], &[1 << 33], "|u1", json!(0));
    fs::write(root.join("giga/0"), [1u8; 100]).unwrap();
    let mount = Mount::with_memory_limit(
        root,
        &["--read-only", "--cache-size", "256MiB"],
        Some(DAEMON_ADDRESS_SPACE),
    );
    for array in ["tera", "giga"] {
        assert_eq!(
            errno_of(mount.path(&format!("{array}/chunks/0"))),
            Some(libc::EIO)
        );
        let data = mount.path(&format!("{array}/data"));
        assert_eq!(errno_of(data.clone()), Some(libc::EIO), "{array}");
        assert_eq!(errno_of(data), Some(libc::EIO), "{array} again");
        let meta = fs::read_to_string(mount.path(&format!("{array}/meta.json"))).unwrap();
        assert!(meta.contains("--max-chunk-size"), "{meta}");
    }
    assert_eq!(fs::read(mount.path("ok/data")).unwrap(), [3, 3, 3, 3]);
    let log = mount.log();
    assert_eq!(
        log.matches("tera/.zarray: cannot be read").count(),
        1,
        "{log}"
    );
    assert!(mount.daemon_pid().is_some_and(is_alive));

    // The limit is the user's to raise.
    drop(mount);
    let mount = Mount::new(root, &["--read-only", "--max-chunk-size", "16GiB"]);
    let meta = fs::read_to_string(mount.path("giga/meta.json")).unwrap();
    assert!(!meta.contains("max-chunk-size"), "{meta}");
}

#[test]
fn a_scan_of_rows_that_cross_a_billion_chunks_costs_what_it_reads() {
    let store = store();
    let root = store.path();
    // 2^30 chunks in each row of chunks, none stored: every element is the fill value.
    write_array(
        &root.join("wide"),
        &[3, 1 << 32],
        &[3, 4],
        "<f8",
        json!(0.25),
    );
    let mount = Mount::with_memory_limit(
        root,
        &["--read-only", "--cache-size", "64MiB"],
        Some(DAEMON_ADDRESS_SPACE),
    );
    let data = mount.path("wide/data");
    let read = within(60, move || {
        use std::io::Read;
        // Sequential reads, as `head -c 4MiB` makes them: a scan from the start.
        let mut file = fs::File::open(data).unwrap();
        let mut out = vec![0u8; 4 << 20];
        file.read_exact(&mut out).map(|()| out)
    })
    .expect("the reads did not return within 60 s")
    .unwrap();
    assert!(read
        .chunks(8)
        .all(|element| element == 0.25f64.to_le_bytes()));
    assert!(mount.daemon_pid().is_some_and(is_alive));
}

#[test]
fn sizes_that_overflow_leave_the_array_out_with_a_warning() {
    let store = store();
    let root = store.path();
    write_array(
        &root.join("cube"),
        &[1 << 30, 1 << 30, 1 << 30],
        &[1 << 30, 1 << 30, 1 << 30],
        "<i4",
        json!(0),
    );
    write_array(
        &root.join("wide"),
        &[u64::MAX, 4],
        &[1 << 20, 4],
        "<f8",
        json!(0),
    );
    write_array(
        &root.join("empty_but_wide"),
        &[0, u64::MAX, u64::MAX],
        &[1, 1, 1],
        "<f8",
        json!(0),
    );
    let mount = Mount::new(root, &["--read-only"]);
    let names: Vec<String> = fs::read_dir(mount.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for left_out in ["cube", "wide", "empty_but_wide"] {
        assert!(!names.contains(&left_out.to_string()), "{names:?}");
        assert_eq!(
            fs::metadata(mount.path(left_out))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
        assert!(
            mount.log().contains(&format!("{left_out}/.zarray")),
            "{}",
            mount.log()
        );
    }
    assert_eq!(fs::read(mount.path("ok/data")).unwrap(), [3, 3, 3, 3]);
}

#[test]
fn names_the_mount_cannot_show_are_skipped_with_one_warning() {
    use std::os::unix::ffi::OsStrExt;
    let store = store();
    let root = store.path();
    // A group directory named like the mount's own attrs.json, a hidden directory and one
    // whose name is not UTF-8, each holding an array.
    for name in ["attrs.json", ".hidden"] {
        write_array(&root.join(name).join("a"), &[1], &[1], "|u1", json!(1));
    }
    let bad = root.join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
    write_array(&bad.join("a"), &[1], &[1], "|u1", json!(1));
    let mount = Mount::new(root, &["--read-only"]);
    for _ in 0..3 {
        let mut names: Vec<String> = fs::read_dir(mount.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".zarrfs", "attrs.json", "ok"]);
    }
    assert_eq!(
        fs::read_to_string(mount.path("attrs.json")).unwrap(),
        "{}\n"
    );
    let log = mount.log();
    assert_eq!(
        log.matches("hidden by the mount's own attrs.json").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("names starting with '.' are not shown").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("is not UTF-8").count(), 1, "{log}");
}
