//! The daemon's log (debug events with -v, --log-level, repeated problems counted) and the
//! smaller command line promises: errors that name /dev/fuse, durations in minutes, a
//! warning for a cache larger than memory, `zarrfs sample` into a non-empty directory.

mod common;

use common::{is_root, zarrfs, Mount};
use serde_json::json;
use std::path::Path;

/// A store with one array `a` of ten int32 in one zstd chunk.
fn one_array_store(chunk: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    let array = dir.path().join("a");
    std::fs::create_dir(&array).unwrap();
    let zarray = json!({"zarr_format": 2, "shape": [10], "chunks": [10], "dtype": "<i4",
        "compressor": {"id": "zstd", "level": 1}, "fill_value": 0, "order": "C",
        "filters": null});
    std::fs::write(array.join(".zarray"), zarray.to_string()).unwrap();
    std::fs::write(array.join("0"), chunk).unwrap();
    dir
}

/// Ten int32 encoded as zstd.
fn good_chunk() -> Vec<u8> {
    let values: Vec<u8> = (0..10i32).flat_map(i32::to_le_bytes).collect();
    zstd::encode_all(&values[..], 1).unwrap()
}

/// The daemon's log after unmounting.
fn log_after(mount: Mount) -> String {
    let log = mount.dir.path().join("zarrfs.log");
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("log");
    drop(std::fs::hard_link(&log, &kept));
    drop(mount);
    std::fs::read_to_string(kept).unwrap()
}

const DEBUG_EVENTS: [&str; 4] = ["lookup \"a\"", "cache miss:", "decoded ", "wrote back "];

/// Mounts writable with `extra`, reads and writes `a`; the log afterwards.
fn log_of_a_session(extra: &[&str]) -> String {
    let store = one_array_store(&good_chunk());
    let mut args = vec!["--rw"];
    args.extend_from_slice(extra);
    let mount = Mount::new(store.path(), &args);
    assert_eq!(std::fs::read(mount.path("a/data")).unwrap().len(), 40);
    std::fs::write(mount.path("a/chunks/0"), [7u8; 40]).unwrap();
    log_after(mount)
}

#[test]
fn verbose_logs_debug_events_and_the_default_does_not() {
    for flags in [&["-v"][..], &["--debug"], &["--log-level", "debug"]] {
        let log = log_of_a_session(flags);
        for event in DEBUG_EVENTS {
            assert!(log.contains(event), "{flags:?}: {event:?} in\n{log}");
        }
    }
    let quiet = log_of_a_session(&[]);
    assert!(quiet.contains("mounted"), "{quiet}");
    for event in DEBUG_EVENTS {
        assert!(!quiet.contains(event), "{event:?} without -v:\n{quiet}");
    }
    let bad = zarrfs(&[
        "mount",
        "/nonexistent",
        "/nonexistent",
        "--log-level",
        "zarrfs=loud",
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("invalid log level"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_repeated_problem_is_logged_once_then_counted() {
    let store = one_array_store(b"not zstd at all");
    // Direct I/O: one read request per read(2), so every read reaches the daemon once.
    let mount = Mount::new(store.path(), &["-o", "direct_io"]);
    for _ in 0..14 {
        let err = std::fs::read(mount.path("a/chunks/0")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
    }
    let chunk = store.path().join("a/0").display().to_string();
    let log = log_after(mount);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&chunk)).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(!lines[0].contains("repeated"), "{}", lines[0]);
    assert!(lines[1].contains("repeated 13 times: "), "{}", lines[1]);
}

#[test]
fn opening_dev_fuse_without_permission_names_it() {
    let runuser = Path::new("/usr/sbin/runuser");
    let dev_fuse_closed = std::fs::metadata("/dev/fuse")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0)
        .unwrap_or(false);
    if !is_root() || !runuser.exists() || !dev_fuse_closed {
        eprintln!("skipping: needs root, runuser and a /dev/fuse others cannot open");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = one_array_store(&good_chunk());
    let point = dir.path().join("mnt");
    std::fs::create_dir(&point).unwrap();
    for path in [dir.path(), store.path(), &point] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    let out = std::process::Command::new(runuser)
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_zarrfs"),
            "mount",
            "-f",
        ])
        .args([store.path(), &point])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot open /dev/fuse"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn durations_take_minutes() {
    let store = one_array_store(&good_chunk());
    for args in [
        &["--rw", "--writeback-delay", "1m"][..],
        &["--rw", "-o", "writeback_delay=1m"],
    ] {
        let mount = Mount::new(store.path(), args);
        std::fs::write(mount.path("a/chunks/0"), [1u8; 40]).unwrap();
    }
    let bad = zarrfs(&["mount", "/x", "/y", "--writeback-delay", "soon"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("invalid duration"),
        "{stderr}"
    );
}

#[test]
fn a_cache_larger_than_memory_warns() {
    let store = one_array_store(&good_chunk());
    let dir = tempfile::tempdir().unwrap();
    let point = dir.path().join("mnt");
    std::fs::create_dir(&point).unwrap();
    let log = dir.path().join("log");
    let out = zarrfs(&[
        "mount",
        store.path().to_str().unwrap(),
        point.to_str().unwrap(),
        "--cache-size",
        "1000TiB",
        "--log",
        log.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = zarrfs(&["umount", point.to_str().unwrap()]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --cache-size 1000 TiB is more than this machine's memory"),
        "{stderr}"
    );
    let fine = Mount::new(store.path(), &["--cache-size", "1MiB"]);
    drop(fine);
}

#[test]
fn sample_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep"), b"mine").unwrap();
    let out = zarrfs(&["sample", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is not empty"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let empty = tempfile::tempdir().unwrap();
    assert!(zarrfs(&["sample", empty.path().to_str().unwrap()])
        .status
        .success());
}
