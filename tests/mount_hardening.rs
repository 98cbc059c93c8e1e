//! Hardening through real mounts: the daemon stays inside its store (no FIFO, socket,
//! device or link out of it is ever read or written through), reads are bounded before they
//! start, mount points inside the store and second writers are refused, write-back keeps
//! owners and modes, the kernel enforces the store's permissions for other users, logs are
//! private and never opened through a link, and a bad node is logged once.
//!
//! Every operation that could block has a watchdog that kills the daemon and fails.
//! Tests that need root (chown, mknod, other users) say so and pass when not root.

mod common;

use common::*;
use serde_json::json;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Memory the daemons of the tests below may map: far below what a read without bound
/// would take, far above what a daemon needs.
const DAEMON_ADDRESS_SPACE: u64 = 4 << 30;

/// Peak memory a daemon that read nothing large may reach.
const SMALL_DAEMON: u64 = 256 << 20;

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Mounts a store, making the mount point's directory traversable by every user.
fn mount(store: &Path, extra: &[&str]) -> Mount {
    let mount = Mount::with_memory_limit(store, extra, Some(DAEMON_ADDRESS_SPACE));
    fs::set_permissions(mount.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    mount
}

#[test]
fn fifos_sockets_and_devices_are_refused_not_waited_on() {
    let (_dir, store) = new_store();
    let array = store.join("a");
    write_array(&array, &[60], &[10], json!({}));
    for name in ["0", "1", "2"] {
        mkfifo(&array.join(name));
    }
    let _socket = std::os::unix::net::UnixListener::bind(array.join("3")).unwrap();
    fs::write(array.join("5"), chunk_values(50)).unwrap();
    let group = store.join("g");
    fs::create_dir_all(group.join("b")).unwrap();
    fs::write(group.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    mkfifo(&group.join("b/.zarray"));
    if is_root() {
        // A device node in the store: /dev/zero's numbers.
        let c = CString::new(array.join("4").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: c is a NUL-terminated path.
        let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
        assert_eq!(made, 0, "mknod");
    } else {
        println!("not root: no device node in the store");
    }
    let mount = mount(&store, &["--threads", "2"]);
    let point = mount.point.clone();
    let (chunks, root, listed_group) = mount.within(20, "reading FIFOs and sockets", move || {
        let readers: Vec<_> = (0..5)
            .map(|c| {
                let path = point.join(format!("a/chunks/{c}"));
                std::thread::spawn(move || read_errno(path))
            })
            .collect();
        let chunks: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        let root: Vec<String> = fs::read_dir(&point)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let group: Vec<String> = fs::read_dir(point.join("g"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        (chunks, root, group)
    });
    for (c, result) in chunks.iter().enumerate() {
        if c == 4 && !is_root() {
            continue;
        }
        assert_eq!(result, &Err(Some(libc::EIO)), "chunk {c}");
    }
    assert!(root.contains(&"a".to_string()) && root.contains(&"g".to_string()));
    assert!(!listed_group.contains(&"b".to_string()), "{listed_group:?}");
    assert_eq!(
        fs::read(mount.path("a/chunks/5")).unwrap(),
        chunk_values(50)
    );
    let log = mount.log();
    for (name, kind) in [("a/0", "FIFO"), ("a/3", "socket"), ("g/b/.zarray", "FIFO")] {
        let path = store.join(name).display().to_string();
        assert!(
            log.lines().any(|l| l.contains(&path) && l.contains(kind)),
            "{name} ({kind}) in\n{log}"
        );
    }
    if is_root() {
        assert!(log.contains("character device"), "{log}");
    }
    assert!(mount.daemon_peak_memory() < SMALL_DAEMON);
    let point = mount.point.clone();
    let unmounted = mount.within(20, "unmounting", move || {
        zarrfs(&["umount", point.to_str().unwrap()])
            .status
            .success()
    });
    assert!(unmounted, "clean unmount");
}

#[test]
fn links_out_of_the_store_are_not_followed_and_links_inside_are() {
    let (dir, store) = new_store();
    let outside = dir.path().join("outside");
    write_array(&outside.join("o"), &[10], &[10], json!({}));
    fs::write(outside.join("o/0"), chunk_values(100)).unwrap();
    fs::write(outside.join("secret"), chunk_values(-1)).unwrap();
    symlink(outside.join("o"), store.join("absolute")).unwrap();
    symlink("../outside/o", store.join("relative")).unwrap();
    let array = store.join("a");
    write_array(&array, &[40], &[10], json!({}));
    symlink("/dev/zero", array.join("0")).unwrap();
    symlink("../../outside/secret", array.join("1")).unwrap();
    fs::write(array.join("real"), chunk_values(20)).unwrap();
    symlink("real", array.join("2")).unwrap();
    symlink("a", store.join("alias")).unwrap();
    let mount = mount(&store, &["--read-only"]);
    let point = mount.point.clone();
    let (root, absolute, relative, chunks) = mount.within(20, "reading links", move || {
        let root: Vec<String> = fs::read_dir(&point)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let chunks: Vec<_> = (0..3)
            .map(|c| read_errno(point.join(format!("a/chunks/{c}"))))
            .collect();
        let absolute = fs::metadata(point.join("absolute")).map_err(|e| e.kind());
        let relative = fs::metadata(point.join("relative")).map_err(|e| e.kind());
        (root, absolute, relative, chunks)
    });
    assert!(root.contains(&"alias".to_string()), "{root:?}");
    for name in ["absolute", "relative"] {
        assert!(!root.contains(&name.to_string()), "{name} listed: {root:?}");
    }
    assert_eq!(absolute.unwrap_err(), ErrorKind::NotFound);
    assert_eq!(relative.unwrap_err(), ErrorKind::NotFound);
    assert_eq!(chunks[0], Err(Some(libc::EIO)), "/dev/zero");
    assert_eq!(chunks[1], Err(Some(libc::EIO)), "a file outside");
    assert_eq!(chunks[2], Ok(chunk_values(20)), "a link inside");
    assert_eq!(
        fs::read(mount.path("alias/chunks/2")).unwrap(),
        chunk_values(20)
    );
    let log = mount.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&store.join("a/1").display().to_string())
                && l.contains("outside the store")),
        "{log}"
    );
    assert!(mount.daemon_peak_memory() < SMALL_DAEMON);
}

#[test]
fn links_back_to_a_directory_above_are_not_shown_and_the_tree_ends() {
    // Two groups, each with a link to the store's root, and one to its own parent group.
    let (_dir, store) = new_store();
    for group in ["g", "h"] {
        fs::create_dir(store.join(group)).unwrap();
        fs::write(store.join(group).join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
        symlink("..", store.join(group).join("up")).unwrap();
    }
    fs::create_dir(store.join("g/inner")).unwrap();
    symlink("..", store.join("g/inner/back")).unwrap();
    write_array(&store.join("g/a"), &[10], &[10], json!({}));
    fs::write(store.join("g/a/0"), chunk_values(5)).unwrap();
    symlink("g", store.join("alias")).unwrap();
    fs::create_dir(store.join("bad")).unwrap();
    fs::write(store.join("bad/.zarray"), "{").unwrap();
    let mount = mount(&store, &["--read-only"]);
    let point = mount.point.clone();
    let (paths, up) = mount.within(30, "walking the tree", move || {
        let mut paths = Vec::new();
        let mut todo = vec![point.clone()];
        while let Some(dir) = todo.pop() {
            if paths.len() > 1000 {
                return (paths, Err(None));
            }
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path.clone());
                }
                paths.push(path.strip_prefix(&point).unwrap().display().to_string());
            }
        }
        (
            paths,
            fs::metadata(point.join("g/up")).map_err(|e| e.raw_os_error()),
        )
    });
    assert!(paths.len() < 1000, "an endless tree: {:?}…", &paths[..20]);
    for hidden in ["g/up", "h/up", "g/inner/back"] {
        assert!(!paths.contains(&hidden.to_string()), "{hidden}: {paths:?}");
    }
    // A link to a directory that is not above it is a directory like any other.
    assert!(paths.contains(&"alias/a/data".to_string()), "{paths:?}");
    assert_eq!(
        fs::read(mount.path("alias/a/chunks/0")).unwrap(),
        chunk_values(5)
    );
    assert!(up.is_err(), "g/up looked up by name: {up:?}");
    let log = mount.log();
    let bad = store.join("bad/.zarray").display().to_string();
    assert_eq!(log.lines().filter(|l| l.contains(&bad)).count(), 1, "{log}");
    assert!(
        log.lines().any(|l| l.contains("leads back")),
        "the loop is logged:\n{log}"
    );
    assert!(log.lines().count() < 20, "{log}");
}

#[test]
fn reads_are_bounded_before_they_start() {
    let (_dir, store) = new_store();
    let array = store.join("a");
    write_array(&array, &[20], &[10], json!({}));
    File::create(array.join("0"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    fs::write(array.join("1"), chunk_values(10)).unwrap();
    let big = store.join("big");
    fs::create_dir(&big).unwrap();
    File::create(big.join(".zarray"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let mount = mount(&store, &["--read-only"]);
    let point = mount.point.clone();
    let (chunk, data, meta) = mount.within(30, "reading 2 GiB objects", move || {
        (
            read_errno(point.join("a/chunks/0")),
            read_errno(point.join("a/data")),
            fs::metadata(point.join("big")).map_err(|e| e.kind()),
        )
    });
    assert_eq!(chunk, Err(Some(libc::EIO)));
    assert_eq!(data, Err(Some(libc::EIO)));
    assert_eq!(meta.unwrap_err(), ErrorKind::NotFound);
    assert_eq!(
        fs::read(mount.path("a/chunks/1")).unwrap(),
        chunk_values(10)
    );
    let log = mount.log();
    for name in ["a/0", "big/.zarray"] {
        let path = store.join(name).display().to_string();
        assert!(
            log.lines()
                .any(|l| l.contains(&path) && l.contains("refused unread")),
            "{name} in\n{log}"
        );
    }
    let peak = mount.daemon_peak_memory();
    assert!(peak < SMALL_DAEMON, "peak memory {peak}");
}

#[test]
fn a_mount_point_inside_the_store_is_refused() {
    let (dir, store) = new_store();
    write_array(&store.join("a"), &[10], &[10], json!({}));
    fs::create_dir(store.join("sub")).unwrap();
    symlink(store.join("sub"), dir.path().join("via_link")).unwrap();
    for point in [
        store.clone(),
        store.join("sub"),
        store.join("a"),
        dir.path().join("via_link"),
    ] {
        let out = zarrfs(&[
            "mount",
            store.to_str().unwrap(),
            point.to_str().unwrap(),
            "--log",
            dir.path().join("log").to_str().unwrap(),
        ]);
        if out.status.success() {
            // Detach at once, before anything looks inside (that would deadlock).
            let c = CString::new(point.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: c is a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if let Some(pid) = daemon_pid(&point) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            panic!("mounted {} inside its own store", point.display());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("inside the store") && stderr.lines().count() == 1,
            "{}: {stderr}",
            point.display()
        );
    }
}

#[test]
fn writes_never_follow_a_link_out_of_the_store() {
    let (dir, store) = new_store();
    let array = store.join("a");
    write_array(
        &array,
        &[2, 10],
        &[1, 10],
        json!({"dimension_separator": "/"}),
    );
    fs::create_dir_all(array.join("0")).unwrap();
    fs::write(array.join("0/0"), chunk_values(0)).unwrap();
    let outside = dir.path().join("root_only");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    symlink("../../root_only", array.join("1")).unwrap();
    let mount = mount(&store, &["--rw"]);
    let point = mount.point.clone();
    let (inside, planted) = mount.within(30, "writing chunks", move || {
        let write = |name: &str, base| {
            let file = OpenOptions::new()
                .write(true)
                .open(point.join("a/chunks").join(name))?;
            file.write_all_at(&chunk_values(base), 0)?;
            file.sync_all()
        };
        (write("0.0", 7), write("1.0", 9))
    });
    inside.unwrap();
    assert_eq!(planted.unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(fs::read(array.join("0/0")).unwrap(), chunk_values(7));
    let written: Vec<_> = fs::read_dir(&outside).unwrap().collect();
    assert!(written.is_empty(), "written outside: {written:?}");
    assert!(
        mount.log().contains(&format!(
            "{}: {}",
            array.join("1/0").display(),
            "a symbolic link"
        )),
        "{}",
        mount.log()
    );
    mount.kill();
}

#[test]
fn write_back_keeps_owner_group_and_mode() {
    if !is_root() {
        println!("skipped: needs root (chown)");
        return;
    }
    let (_dir, store) = new_store();
    let array = store.join("a");
    write_array(&array, &[20], &[10], json!({}));
    fs::write(array.join("0"), chunk_values(0)).unwrap();
    let nobody = |path: &Path, mode| {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };
    nobody(&array.join("0"), 0o640);
    nobody(&array.join(".zarray"), 0o604);
    let mount = mount(&store, &["--rw"]);
    for name in ["0", "1"] {
        fs::write(mount.path(&format!("a/chunks/{name}")), chunk_values(3)).unwrap();
    }
    let point = mount.point.clone();
    let out = mount.within(30, "unmounting", move || {
        zarrfs(&["umount", point.to_str().unwrap()])
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, mode) in [("0", 0o640), ("1", 0o604)] {
        let meta = fs::metadata(array.join(name)).unwrap();
        assert_eq!(fs::read(array.join(name)).unwrap(), chunk_values(3));
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, mode),
            "chunk {name}"
        );
    }
}

/// Runs a shell command as user nobody; returns its success and stderr.
fn as_nobody(script: &str) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c", script])
        .output()
        .expect("runuser");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_kernel_enforces_the_stores_permissions_for_other_users() {
    if !is_root() {
        println!("skipped: needs root (runuser, chown)");
        return;
    }
    let (_dir, store) = new_store();
    let array = store.join("a");
    write_array(&array, &[20], &[10], json!({}));
    fs::write(array.join("0"), chunk_values(0)).unwrap();
    fs::set_permissions(array.join("0"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(array.join("1"), chunk_values(10)).unwrap();
    std::os::unix::fs::chown(array.join("1"), Some(65534), Some(65534)).unwrap();
    let mount = mount(&store, &["--rw", "-o", "allow_other"]);
    let chunks = mount.path("a/chunks").display().to_string();
    let data = mount.path("a/data").display().to_string();
    let write = |path: &str| {
        format!("yes | head -c 40 | dd of={path} bs=40 count=1 conv=notrunc status=none")
    };
    let checks = mount.within(60, "accesses as nobody", move || {
        [
            as_nobody(&format!("cat {chunks}/0 >/dev/null")),
            as_nobody(&format!("cat {chunks}/1 >/dev/null")),
            as_nobody(&write(&format!("{chunks}/1"))),
            as_nobody(&write(&format!("{chunks}/0"))),
            as_nobody(&write(&data)),
            as_nobody(&format!("stat -c %u:%g:%a {chunks}/1 {chunks}/0 {data}")),
        ]
    });
    let denied = |(ok, text): &(bool, String), what: &str| {
        assert!(!ok && text.contains("Permission denied"), "{what}: {text}");
    };
    denied(&checks[0], "reading a root-only chunk");
    assert!(
        checks[1].0,
        "reading a chunk others may read: {}",
        checks[1].1
    );
    assert!(checks[2].0, "writing nobody's chunk: {}", checks[2].1);
    denied(&checks[3], "writing a root-only chunk");
    denied(&checks[4], "writing data of a root-owned array");
    assert_eq!(checks[5].1, "65534:65534:644\n0:0:600\n0:0:644\n");
    let point = mount.point.clone();
    let out = mount.within(30, "unmounting", move || {
        zarrfs(&["umount", point.to_str().unwrap()])
    });
    assert!(out.status.success());
    assert_eq!(
        fs::read(array.join("1")).unwrap(),
        b"y\n".repeat(20),
        "nobody's write landed"
    );
    assert_eq!(fs::read(array.join("0")).unwrap(), chunk_values(0));

    // Shared mounts show the owner and modes they are told.
    let mount = mount_shared(&store);
    let chunks = mount.path("a/chunks").display().to_string();
    let checks = mount.within(60, "accesses as nobody", move || {
        [
            as_nobody(&format!("cat {chunks}/0 >/dev/null")),
            as_nobody(&format!("stat -c %u:%g:%a {chunks}/0 {chunks}/..")),
        ]
    });
    assert!(checks[0].0, "{}", checks[0].1);
    assert_eq!(checks[1].1, "65534:65534:600\n65534:65534:700\n");
}

fn mount_shared(store: &Path) -> Mount {
    mount(
        store,
        &["--rw", "-o", "allow_other,uid=65534,gid=65534,umask=077"],
    )
}

#[test]
fn a_writable_mount_has_its_store_to_itself() {
    let (dir, store) = new_store();
    write_array(&store.join("a"), &[10], &[10], json!({}));
    let try_mount = |extra: &[&str]| {
        let point = tempfile::tempdir_in(dir.path()).unwrap();
        let log = dir.path().join("second.log");
        let mut args = vec![
            "mount",
            store.to_str().unwrap(),
            point.path().to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = zarrfs(&args);
        if out.status.success() {
            let _ = zarrfs(&["umount", point.path().to_str().unwrap()]);
        }
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let writer = mount(&store, &["--rw"]);
    let (ok, stderr) = try_mount(&["--rw"]);
    assert!(
        !ok && stderr.contains("already mounted by another zarrfs"),
        "{stderr}"
    );
    let (ok, stderr) = try_mount(&["--read-only"]);
    assert!(!ok && stderr.contains("mounted writable"), "{stderr}");
    drop(writer);
    let reader = mount(&store, &["--read-only"]);
    let (ok, stderr) = try_mount(&["--read-only"]);
    assert!(ok, "readers share: {stderr}");
    let (ok, stderr) = try_mount(&["--rw"]);
    assert!(!ok && stderr.contains("already mounted"), "{stderr}");
    drop(reader);
    let (ok, stderr) = try_mount(&["--rw"]);
    assert!(ok, "free again: {stderr}");
}

#[test]
fn logs_are_private_and_never_opened_through_a_link() {
    let (dir, store) = new_store();
    write_array(&store.join("a"), &[10], &[10], json!({}));
    let victim = dir.path().join("victim");
    fs::write(&victim, b"untouched").unwrap();
    let point = dir.path().join("mnt");
    fs::create_dir(&point).unwrap();
    let link = dir.path().join("link.log");
    symlink(&victim, &link).unwrap();
    let (store_arg, point_arg) = (store.to_str().unwrap(), point.to_str().unwrap());
    let out = zarrfs(&[
        "mount",
        store_arg,
        point_arg,
        "--log",
        link.to_str().unwrap(),
    ]);
    if out.status.success() {
        let _ = zarrfs(&["umount", point_arg]);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");

    // The default: a directory only this user can write, a 0600 file named after the
    // mount point (as root, under /var/log/zarrfs; otherwise under $XDG_STATE_HOME).
    let state = dir.path().join("state");
    let default_mount = || {
        Command::new(env!("CARGO_BIN_EXE_zarrfs"))
            .args(["mount", store_arg, point_arg])
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap()
    };
    let out = default_mount();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let _ = zarrfs(&["umount", point_arg]);
    let log = PathBuf::from(
        stderr
            .trim()
            .strip_prefix("zarrfs: logging to ")
            .unwrap_or_else(|| panic!("{stderr}")),
    );
    let expected_dir = if is_root() {
        PathBuf::from("/var/log/zarrfs")
    } else {
        state.join("zarrfs")
    };
    assert_eq!(log.parent(), Some(expected_dir.as_path()));
    let dir_meta = fs::symlink_metadata(&expected_dir).unwrap();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(dir_meta.uid(), euid);
    assert_eq!(dir_meta.mode() & 0o022, 0, "no one else writes there");
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    let mut text = String::new();
    File::open(&log).unwrap().read_to_string(&mut text).unwrap();
    assert!(text.contains("mounted"), "{text}");
    // A link planted where the default log goes is not followed either.
    fs::remove_file(&log).unwrap();
    symlink(&victim, &log).unwrap();
    let out = default_mount();
    fs::remove_file(&log).unwrap();
    if out.status.success() {
        let _ = zarrfs(&["umount", point_arg]);
    }
    assert!(!out.status.success(), "logged through a link");
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
}

#[test]
fn a_bad_node_or_chunk_is_logged_once() {
    let (_dir, store) = new_store();
    fs::create_dir(store.join("bad")).unwrap();
    fs::write(store.join("bad/.zarray"), "{").unwrap();
    write_array(
        &store.join("a"),
        &[10],
        &[10],
        json!({"compressor": {"id": "zstd"}}),
    );
    fs::write(store.join("a/0"), b"not zstd").unwrap();
    let mount = mount(&store, &["--read-only"]);
    let point = mount.point.clone();
    mount.within(60, "looking up a bad node", move || {
        for _ in 0..200 {
            assert!(fs::metadata(point.join("bad")).is_err());
            assert!(fs::read_dir(&point).is_ok());
            assert!(fs::read(point.join("a/chunks/0")).is_err());
        }
    });
    let log = mount.log();
    for name in ["bad/.zarray", "a/0"] {
        let path = store.join(name).display().to_string();
        let lines = log.lines().filter(|l| l.contains(&path)).count();
        assert_eq!(lines, 1, "{name} in\n{log}");
    }
}
