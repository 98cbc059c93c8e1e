//! `zarrfs umount` and what it recovers from: only zarrfs mounts are unmounted; a dead mount
//! (daemon SIGKILLed) is cleared without a write-back, and `zarrfs mount` over one says how
//! to clear it or clears it with `--force`; `--lazy` detaches a busy mount; `--discard`
//! drops chunks whose write-back keeps failing and names them; a writable mount of a store
//! on a read-only file system is refused before anything is mounted.

mod common;

use common::{daemon_pid, is_alive, mount_entry, wait_for, zarrfs, Cleanup, Tmpfs};
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A sample store in `root`, a mount point and a log path beside it.
fn sample_in(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let store = root.join("s.zarr");
    // Version 2: the tests name stored chunk keys such as `counts/1`.
    assert!(
        zarrfs(&["sample", "--format", "2", store.to_str().unwrap()])
            .status
            .success()
    );
    let point = root.join("mnt");
    std::fs::create_dir(&point).unwrap();
    (store, point, root.join("zarrfs.log"))
}

/// `zarrfs ARGS…` with paths; (success, stderr).
fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mount(store: &Path, point: &Path, log: &Path, extra: &[&str]) -> (bool, String) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"mount", &store, &point, &"--log", &log];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    run(&args)
}

#[test]
fn only_zarrfs_mounts_are_unmounted() {
    let Some(tmpfs) = Tmpfs::new("1m") else {
        eprintln!("skipping: cannot mount a tmpfs (not root)");
        return;
    };
    let (ok, stderr) = run(&[&"umount", &tmpfs.path()]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a zarrfs one"), "{stderr}");
    assert_eq!(
        mount_entry(tmpfs.path()).unwrap().0,
        "tmpfs",
        "still mounted"
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(&[&"umount", &dir.path()]);
    assert!(!ok && stderr.contains("is not mounted"), "{stderr}");
}

#[test]
fn a_dead_mount_is_named_cleared_and_mounted_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, point, log) = sample_in(dir.path());
    let _cleanup = Cleanup(&point);
    let kill_daemon = || {
        let pid = daemon_pid(&point).expect("daemon");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        assert!(wait_for(10, || !is_alive(pid)));
        let err = std::fs::metadata(&point).unwrap_err();
        let dead = [libc::ENOTCONN, libc::ECONNABORTED];
        assert!(dead.contains(&err.raw_os_error().unwrap()), "{err}");
    };
    assert!(mount(&store, &point, &log, &[]).0);
    kill_daemon();
    let (ok, stderr) = mount(&store, &point, &log, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("dead zarrfs mount") && stderr.contains("zarrfs umount"),
        "{stderr}"
    );
    let (ok, stderr) = run(&[&"umount", &point]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("without write-back"), "{stderr}");
    assert!(mount_entry(&point).is_none());
    // Mounted again, killed again, and cleared by the next mount.
    assert!(mount(&store, &point, &log, &[]).0);
    kill_daemon();
    let (ok, stderr) = mount(&store, &point, &log, &["--force"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cleared the dead zarrfs mount"), "{stderr}");
    assert_eq!(
        std::fs::read(point.join("counts/data")).unwrap().len(),
        4000
    );
    assert!(run(&[&"umount", &point]).0);
}

#[test]
fn a_busy_mount_is_detached_with_lazy() {
    let dir = tempfile::tempdir().unwrap();
    let (store, point, log) = sample_in(dir.path());
    let _cleanup = Cleanup(&point);
    assert!(mount(&store, &point, &log, &[]).0);
    let pid = daemon_pid(&point).expect("daemon");
    let open = std::fs::File::open(point.join("counts/data")).unwrap();
    let (ok, stderr) = run(&[&"umount", &point]);
    assert!(!ok);
    assert!(stderr.contains("--lazy"), "says how: {stderr}");
    assert!(mount_entry(&point).is_some());
    let (ok, stderr) = run(&[&"umount", &"-z", &point]);
    assert!(ok, "{stderr}");
    assert!(mount_entry(&point).is_none(), "detached at once");
    let mut first = [0u8; 8];
    open.read_exact_at(&mut first, 0).unwrap();
    assert_eq!(first, [0, 0, 0, 0, 0, 0, 0, 1], "counts[0..2] = 0, 1 (>i4)");
    assert!(is_alive(pid), "serves the open file");
    drop(open);
    assert!(
        wait_for(10, || !is_alive(pid)),
        "daemon exits after the last close"
    );
}

/// A writable mount whose write-backs fail (its store's file system went read-only) with two
/// unsaved chunks: `zarrfs umount` keeps it; `zarrfs umount --discard` drops exactly those
/// chunks, names them, and unmounts; the store is unchanged.
#[test]
fn discard_drops_unsaved_chunks_and_names_them() {
    let Some(tmpfs) = Tmpfs::new("16m") else {
        eprintln!("skipping: cannot mount a tmpfs (not root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = sample_in(tmpfs.path());
    let (point, log) = (dir.path().join("mnt"), dir.path().join("zarrfs.log"));
    std::fs::create_dir(&point).unwrap();
    let _cleanup = Cleanup(&point);
    let before = std::fs::read(store.join("counts/1")).unwrap();
    let (ok, stderr) = mount(&store, &point, &log, &["--rw", "--writeback-delay", "1h"]);
    assert!(ok, "{stderr}");
    tmpfs.remount(true);
    let write = |path: &str, offset: u64| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(point.join(path))
            .unwrap();
        file.write_all_at(b"XXXXXXXX", offset).unwrap();
        // The write-back at close fails: the chunk stays in memory.
        drop(file);
    };
    write("counts/data", 1100); // chunk 1 of counts
    write("climate/temperature/chunks/1.0.1", 0);
    let (ok, stderr) = run(&[&"umount", &point]);
    assert!(!ok, "unmounted with unsaved chunks");
    assert!(
        stderr.contains("still mounted") && stderr.contains("--discard"),
        "{stderr}"
    );
    assert!(mount_entry(&point).is_some());
    let (ok, stderr) = run(&[&"umount", &"--discard", &point]);
    assert!(ok, "{stderr}");
    let dropped: BTreeSet<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("zarrfs: dropped unsaved chunk "))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        dropped,
        BTreeSet::from(["/counts/chunks/1", "/climate/temperature/chunks/1.0.1"]),
        "{stderr}"
    );
    assert!(mount_entry(&point).is_none());
    tmpfs.remount(false);
    assert_eq!(std::fs::read(store.join("counts/1")).unwrap(), before);
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.contains("discarded unsaved chunk /counts/chunks/1"),
        "{text}"
    );
}

#[test]
fn a_writable_mount_of_a_read_only_store_is_refused_before_mounting() {
    let Some(tmpfs) = Tmpfs::new("8m") else {
        eprintln!("skipping: cannot mount a tmpfs (not root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = sample_in(tmpfs.path());
    let (point, log) = (dir.path().join("mnt"), dir.path().join("zarrfs.log"));
    std::fs::create_dir(&point).unwrap();
    let _cleanup = Cleanup(&point);
    tmpfs.remount(true);
    for writable in [&["--rw"][..], &["-o", "rw"]] {
        let (ok, stderr) = mount(&store, &point, &log, writable);
        assert!(!ok, "{writable:?} mounted a read-only store");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("Read-only file system"), "{stderr}");
        assert!(mount_entry(&point).is_none());
    }
    assert!(!log.exists(), "refused before the daemon started");
    let (ok, stderr) = mount(&store, &point, &log, &[]);
    assert!(ok, "read-only is fine: {stderr}");
    assert!(run(&[&"umount", &point]).0);
}

/// The daemon of an unmounted mount may still be ending when the same mount point is
/// mounted again: it must not take the new mount with it.
#[test]
fn a_mount_right_after_an_unmount_of_the_same_point_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (store, point, log) = sample_in(dir.path());
    let _cleanup = Cleanup(&point);
    assert!(mount(&store, &point, &log, &[]).0);
    for round in 0..30 {
        let old = daemon_pid(&point).expect("daemon");
        assert!(run(&[&"umount", &point]).0);
        let (ok, stderr) = mount(&store, &point, &log, &[]);
        assert!(ok, "round {round}: {stderr}");
        assert!(
            wait_for(10, || !is_alive(old)),
            "round {round}: old daemon stays"
        );
        assert!(
            mount_entry(&point).is_some(),
            "round {round}: the old daemon unmounted the new mount"
        );
    }
    assert!(run(&[&"umount", &point]).0);
}
