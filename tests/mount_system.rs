//! Mounting as the system does it: an /etc/fstab entry and `mount -t fuse.zarrfs` (mount(8)
//! runs mount.fuse3, which runs `zarrfs STORE MNT -o OPTS`), `mount.zarrfs` as a helper
//! name, every option mount(8) may pass, the mount's type and source in /proc/mounts,
//! systemd's readiness protocol, SIGHUP, the daemon's working directory and auto_unmount.

mod common;

use common::{
    daemon_pid, fixtures, is_root, mount_entry, wait_for, zarrfs_processes, Cleanup, Mount,
};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_zarrfs");

/// A sample store in a fresh directory, with a mount point beside it.
fn sample() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.zarr");
    let out = common::zarrfs(&["sample", store.to_str().unwrap()]);
    assert!(out.status.success());
    let point = dir.path().join("mnt");
    std::fs::create_dir(&point).unwrap();
    let text = |p: &Path| p.to_str().unwrap().to_string();
    (dir, text(&store), text(&point))
}

/// Runs `script` with sh in a private mount namespace where /usr/local/sbin holds only
/// `zarrfs` (mount(8) runs helpers with no PATH, so sh finds programs in the standard
/// directories only); returns its output. None when namespaces are not available.
fn in_namespace(dir: &Path, script: &str) -> Option<String> {
    let sbin = dir.join("sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::os::unix::fs::symlink(BIN, sbin.join("zarrfs")).unwrap();
    let script = format!(
        "set -u\nmount --bind {} /usr/local/sbin || exit 99\n{script}",
        sbin.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if out.status.code() == Some(99) {
        return None;
    }
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn an_fstab_entry_and_mount_t_mount_read_only_as_fuse_zarrfs() {
    if !is_root() {
        eprintln!("skipping: mount(8) and namespaces need root");
        return;
    }
    let (dir, store, point) = sample();
    let log = dir.path().join("zarrfs.log");
    let log = log.display();
    let fstab = dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{store} {point} fuse.zarrfs ro,allow_other,nofail,x-systemd.automount,log={log} 0 0\n"
        ),
    )
    .unwrap();
    let fstab = fstab.display();
    let script = format!(
        r#"
mount -T {fstab} {point}; echo "fstab mount: $?"
findmnt -n -o SOURCE,FSTYPE --target {point} -t fuse.zarrfs | sed 's/^/findmnt: /'
head -c 14 {point}/attrs.json; echo
zarrfs umount {point}; echo "umount: $?"
mount -t fuse.zarrfs {store} {point} -o uid=5,noexec,_netdev,log={log}; echo "mount -t: $?"
stat -c 'owner: %u' {point}/counts/data
findmnt -n -o OPTIONS --target {point} | tr , '\n' | grep -x noexec | sed 's/^/option: /'
dd if=/dev/zero of={point}/counts/data bs=4 count=1 conv=notrunc 2>/dev/null; echo "write to the rw default: $?"
zarrfs umount {point}; echo "umount: $?"
mount -t fuse.zarrfs {store} {point} -o writable,log={log}; echo "mount -o writable: $?"
dd if=/dev/zero of={point}/counts/data bs=4 count=1 conv=notrunc status=none; echo "write: $?"
zarrfs umount {point}; echo "umount: $?"
mount -t fuse.zarrfs {store} {point} -o bogus,frob=1,log={log} 2>&1 | sed 's/^/refused: /'
"#
    );
    let Some(out) = in_namespace(dir.path(), &script) else {
        eprintln!("skipping: no private mount namespace here");
        return;
    };
    for expected in [
        "fstab mount: 0".to_string(),
        format!("findmnt: {store} fuse.zarrfs"),
        "{\n  \"title\"".to_string(),
        "mount -t: 0".into(),
        "owner: 5".into(),
        "option: noexec".into(),
        "write to the rw default: 1".into(),
        "mount -o writable: 0".into(),
        "write: 0".into(),
        "refused: zarrfs: unknown mount option(s): bogus, frob=1".into(),
    ] {
        assert!(out.contains(&expected), "{expected:?} in\n{out}");
    }
    assert_eq!(out.matches("umount: 0").count(), 3, "{out}");
    assert_eq!(out.matches("refused: ").count(), 1, "one line: {out}");
    assert!(mount_entry(Path::new(&point)).is_none(), "left mounted");
}

#[test]
fn mount_zarrfs_works_as_mount8_runs_helpers() {
    let (dir, store, point) = sample();
    let _cleanup = Cleanup(Path::new(&point));
    let helper = dir.path().join("mount.zarrfs");
    std::os::unix::fs::symlink(BIN, &helper).unwrap();
    let log = dir.path().join("zarrfs.log");
    let options = format!("ro,log={}", log.display());
    // mount(8)'s -f: everything checked, nothing mounted.
    let fake = Command::new(&helper)
        .args([&store, &point, "-f", "-n", "-o", &options])
        .output()
        .unwrap();
    assert!(fake.status.success(), "{fake:?}");
    assert!(mount_entry(Path::new(&point)).is_none(), "-f mounted");
    let out = Command::new(&helper)
        .args([&store, &point, "-n", "-s", "-o", &options, "-t", "zarrfs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let entry = mount_entry(Path::new(&point));
    let unmounted = common::zarrfs(&["umount", &point]);
    assert_eq!(entry, Some(("fuse.zarrfs".into(), store.clone())));
    assert!(unmounted.status.success());
    let usage = Command::new(&helper).arg(&store).output().unwrap();
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: mount.zarrfs STORE"));
}

#[test]
fn every_option_mount_may_pass_is_accepted_and_unknown_ones_named() {
    let (dir, store, point) = sample();
    let _cleanup = Cleanup(Path::new(&point));
    let log = dir.path().join("zarrfs.log");
    let options = [
        "dev,nodev,suid,nosuid,exec,noexec,atime,noatime,relatime,sync,async,auto,noauto",
        "user,nouser,_netdev,nofail,defaults,x-systemd.automount,x-gvfs-show,x-a=b",
        "default_permissions,allow_root,auto_unmount,fsname=zarr-data,subtype=zarrfs",
        "uid=0,gid=0,umask=022,max_read=131072,rw",
    ]
    .join(",");
    let log_option = format!("log={}", log.display());
    // The mount.fuse3 form.
    let out = Command::new(BIN)
        .args([&store, &point, "-o", &options, "-o", &log_option])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let entry = mount_entry(Path::new(&point));
    let readable = std::fs::read(Path::new(&point).join("counts/data")).map(|b| b.len());
    let unmounted = common::zarrfs(&["umount", &point]);
    assert_eq!(entry, Some(("fuse.zarrfs".into(), "zarr-data".into())));
    assert_eq!(readable.unwrap(), 4000);
    assert!(unmounted.status.success(), "{unmounted:?}");
    let bad = common::zarrfs(&["mount", &store, &point, "-o", "ro,nofail,bogus,x-ok,frob=2"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert_eq!(stderr, "zarrfs: unknown mount option(s): bogus, frob=2\n");
    assert!(mount_entry(Path::new(&point)).is_none());
}

#[test]
fn mounts_show_as_fuse_zarrfs_with_the_store_as_source() {
    let store = fixtures().join("v2.zarr");
    let mount = Mount::new(&store, &[]);
    let out = Command::new("findmnt")
        .args(["-n", "-t", "fuse.zarrfs", "-o", "SOURCE", "--target"])
        .arg(&mount.point)
        .output()
        .unwrap();
    assert!(out.status.success(), "findmnt -t fuse.zarrfs: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        store.to_str().unwrap()
    );
}

/// Waits for one datagram on `socket`.
fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_daemon_notifies_readiness_leaves_its_directory_and_stops_on_sighup() {
    let (dir, store, point) = sample();
    let _cleanup = Cleanup(Path::new(&point));
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut daemon = Command::new(BIN)
        .args(["mount", "-f", &store, &point])
        .env("NOTIFY_SOCKET", &socket_path)
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = receive(&socket);
    // Ready means live: the mount answers at once.
    let live = std::fs::read(Path::new(&point).join("attrs.json")).is_ok();
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", daemon.id()));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGHUP) };
    let stopping = receive(&socket);
    let status = daemon.wait().unwrap();
    assert!(
        ready.contains("READY=1\n") && ready.contains(&format!("MAINPID={}\n", daemon.id())),
        "{ready:?}"
    );
    assert!(live, "READY=1 before the mount was live");
    assert_eq!(cwd.unwrap(), Path::new("/"));
    assert_eq!(stopping, "STOPPING=1\n");
    assert!(status.success(), "SIGHUP: {status}");
    assert!(mount_entry(Path::new(&point)).is_none(), "still mounted");
}

#[test]
fn auto_unmount_cleans_up_when_the_daemon_dies() {
    let (dir, store, point) = sample();
    let log = dir.path().join("zarrfs.log");
    let mount = || {
        let log = log.to_str().unwrap();
        let out = common::zarrfs(&["mount", &store, &point, "-o", "auto_unmount", "--log", log]);
        assert!(out.status.success(), "{out:?}");
    };
    let point = Path::new(&point);
    let _cleanup = Cleanup(point);
    let watchers_gone = || wait_for(10, || zarrfs_processes(point, true).is_empty());
    // Killed daemons, several times: the kernel answers ECONNABORTED for a moment first.
    for round in 0..5 {
        mount();
        // The watcher names itself as it starts, maybe after the mount is live.
        let one = wait_for(5, || zarrfs_processes(point, true).len() == 1);
        assert!(one, "one watcher: {:?}", zarrfs_processes(point, true));
        let pid = daemon_pid(point).expect("daemon");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let cleaned = wait_for(10, || mount_entry(point).is_none());
        assert!(cleaned, "round {round}: the mount outlived its daemon");
        assert!(watchers_gone(), "round {round}: the watcher stayed");
    }
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("auto_unmount: "));
    // A clean unmount leaves nothing behind either.
    mount();
    assert!(common::zarrfs(&["umount", point.to_str().unwrap()])
        .status
        .success());
    assert!(watchers_gone(), "the watcher outlived a clean unmount");
}
