//! Helpers shared by the mount tests: a mount guard, NPY parsing and the fixture manifest.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the zarrfs binary.
pub fn zarrfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args(args)
        .output()
        .expect("run zarrfs")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A live mount, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub point: PathBuf,
}

impl Mount {
    /// Mounts `store` (daemon mode: returns once live) with extra arguments.
    pub fn new(store: &Path, extra: &[&str]) -> Mount {
        Self::with_memory_limit(store, extra, None)
    }

    /// Like [`Mount::new`], with the daemon's address space limited to `limit` bytes (so that
    /// a daemon that would allocate without bound dies instead of exhausting the machine).
    pub fn with_memory_limit(store: &Path, extra: &[&str], limit: Option<u64>) -> Mount {
        Self::with_options(store, extra, limit, &[])
    }

    /// Like [`Mount::with_memory_limit`], with extra environment variables for the daemon.
    pub fn with_options(
        store: &Path,
        extra: &[&str],
        limit: Option<u64>,
        env: &[(&str, &str)],
    ) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let log = dir.path().join("zarrfs.log");
        let mut args = vec![
            "mount",
            store.to_str().unwrap(),
            point.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut command = Command::new(env!("CARGO_BIN_EXE_zarrfs"));
        command.args(&args).envs(env.iter().copied());
        if let Some(limit) = limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        }
        let out = command.output().expect("run zarrfs");
        assert!(
            out.status.success(),
            "mount failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Mount {
            dir,
            store: store.to_path_buf(),
            point,
        }
    }

    /// Mounts a private copy of the committed v2 fixture store.
    pub fn v2_fixtures(extra: &[&str]) -> (tempfile::TempDir, Mount) {
        Mount::fixture_copy("v2.zarr", extra)
    }

    /// Mounts a private copy of a committed fixture store (`v2.zarr`, `v3.zarr`).
    pub fn fixture_copy(store: &str, extra: &[&str]) -> (tempfile::TempDir, Mount) {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&fixtures().join(store), copy.path());
        let mount = Mount::new(copy.path(), extra);
        (copy, mount)
    }

    /// Path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zarrfs.log")).unwrap_or_default()
    }

    /// The process id of the daemon serving this mount.
    pub fn daemon_pid(&self) -> Option<u32> {
        daemon_pid(&self.point)
    }

    /// Kills the daemon and detaches the mount point: for tests whose watchdog fired.
    pub fn kill(&self) {
        if let Some(pid) = self.daemon_pid() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.point)
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Runs `f` in a thread and returns its result; when it takes longer than `secs`, kills
    /// the daemon (so that nothing stays blocked) and fails naming `what`.
    pub fn within<T: Send + 'static>(
        &self,
        secs: u64,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        match within(secs, f) {
            Some(value) => value,
            None => {
                let log = self.log();
                self.kill();
                panic!("{what}: still blocked after {secs} s\nlog:\n{log}");
            }
        }
    }

    /// The daemon's peak resident memory in bytes (VmHWM).
    pub fn daemon_peak_memory(&self) -> u64 {
        let pid = self.daemon_pid().expect("daemon running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }
}

/// Runs `f` in a thread; `None` when it has not finished after `secs` (the thread is left).
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive.recv_timeout(Duration::from_secs(secs)).ok()
}

/// The process id of a zarrfs daemon serving `point`, found by its command line (any form:
/// `zarrfs mount`, the mount.fuse3 form, mount.zarrfs).
pub fn daemon_pid(point: &Path) -> Option<u32> {
    zarrfs_processes(point, false).into_iter().next()
}

/// The process ids of zarrfs processes for `point`: its daemon, or (`watchers`) the
/// processes `-o auto_unmount` leaves to watch it (named zarrfs-watch).
pub fn zarrfs_processes(point: &Path, watchers: bool) -> Vec<u32> {
    let Some(point) = point.to_str() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            if (comm.trim() == "zarrfs-watch") != watchers {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let ours = args.first()?.ends_with(b"zarrfs")
                && !args.contains(&&b"umount"[..])
                && args.contains(&point.as_bytes());
            ours.then_some(pid)
        })
        .collect()
}

/// Whether a process is running (not gone, nor a zombie).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// Whether the tests run as root (mounting for other users, chown, runuser).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let daemon = self.daemon_pid();
        let point = self.point.to_str().unwrap().to_string();
        let out = zarrfs(&["umount", &point]);
        if !out.status.success() {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&point)
                .stderr(std::process::Stdio::null())
                .status();
        }
        // The daemon writes back and exits after the unmount: wait for it (5 s at most).
        for _ in 0..250 {
            if !daemon.is_some_and(is_alive) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A parsed NPY file.
pub struct Npy {
    pub descr: String,
    pub shape: Vec<u64>,
    pub fortran: bool,
    pub header_len: usize,
    pub data: Vec<u8>,
}

/// Parses NPY bytes (versions 1–3).
pub fn parse_npy(bytes: &[u8]) -> Npy {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "NPY magic");
    let (dict_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + dict_len]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let fortran = header.contains("'fortran_order': True");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    Npy {
        descr,
        shape,
        fortran,
        header_len: start + dict_len,
        data: bytes[start + dict_len..].to_vec(),
    }
}

/// Whether two NumPy descrs name the same type (byte order is moot for 1-byte types).
pub fn same_descr(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let order = match s.chars().next() {
            Some('>') => '>',
            _ => '<',
        };
        let body = s.trim_start_matches(['<', '>', '|', '=']).to_string();
        (order, body)
    };
    let ((oa, ta), (ob, tb)) = (split(a), split(b));
    ta == tb && ((ta.ends_with('1') && ta.len() == 2) || oa == ob)
}

/// One array of the fixture manifest.
pub struct FixtureArray {
    pub entry: Value,
}

impl FixtureArray {
    pub fn path(&self) -> &str {
        self.entry["path"].as_str().unwrap()
    }
    pub fn error(&self) -> Option<&str> {
        self.entry["error"].as_str()
    }
    pub fn dims(&self, field: &str) -> Vec<u64> {
        self.entry[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }
    pub fn itemsize(&self) -> usize {
        let dtype = self.entry["dtype"].as_str().unwrap();
        dtype.trim_start_matches(['<', '>', '|'])[1..]
            .parse()
            .unwrap()
    }
    /// The expected array (C order, declared dtype), if the fixture has one.
    pub fn expected(&self) -> Option<Npy> {
        let rel = self.entry["expected"].as_str()?;
        Some(parse_npy(&std::fs::read(fixtures().join(rel)).unwrap()))
    }
    pub fn strings(&self, field: &str) -> Vec<String> {
        self.entry[field]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// All arrays of the committed v2 manifest.
pub fn manifest() -> Vec<FixtureArray> {
    manifest_named("v2-manifest.json")
}

/// All arrays of a committed manifest; Python's bare NaN and Infinity are accepted (they
/// parse as zarrfs parses them, so documents compare equal).
pub fn manifest_named(name: &str) -> Vec<FixtureArray> {
    let entries: Vec<Value> = serde_json::from_value(read_fixture_json(name)).unwrap();
    entries
        .into_iter()
        .map(|entry| FixtureArray { entry })
        .collect()
}

/// A committed JSON fixture file, parsed as zarrfs parses metadata.
pub fn read_fixture_json(name: &str) -> Value {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    zarrfs::metadata::json::parse(&bytes).unwrap()
}

/// The mount's file name of a chunk: indices joined by '.', "0" for a 0-d array.
pub fn chunk_name(idx: &[u64]) -> String {
    if idx.is_empty() {
        "0".into()
    } else {
        idx.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
    }
}

/// Chunk grid indices in C order for a grid shape.
pub fn grid_positions(grid: &[u64]) -> Vec<Vec<u64>> {
    let total: u64 = grid.iter().product();
    (0..total)
        .map(|mut linear| {
            let mut idx = vec![0; grid.len()];
            for d in (0..grid.len()).rev() {
                idx[d] = linear % grid[d];
                linear /= grid[d];
            }
            idx
        })
        .collect()
}

/// For each element of a chunk (C order over the chunk shape), the element's flat index in
/// the array, or `None` when it lies outside the array (edge padding).
pub fn chunk_element_sources(shape: &[u64], chunks: &[u64], index: &[u64]) -> Vec<Option<u64>> {
    let per_chunk: u64 = chunks.iter().product();
    (0..per_chunk)
        .map(|mut e| {
            let mut local = vec![0; chunks.len()];
            for d in (0..chunks.len()).rev() {
                local[d] = e % chunks[d];
                e /= chunks[d];
            }
            let mut flat = 0u64;
            for d in 0..chunks.len() {
                let g = index[d] * chunks[d] + local[d];
                if g >= shape[d] {
                    return None;
                }
                flat = flat * shape[d] + g;
            }
            Some(flat)
        })
        .collect()
}

/// Writes a `.zarray` for an `<i4` array of `shape` in `chunks`, raw (no compressor), fill 0.
pub fn write_array(dir: &Path, shape: &[u64], chunks: &[u64], extra: Value) {
    fs::create_dir_all(dir).unwrap();
    let mut meta = json!({
        "zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": "<i4",
        "compressor": null, "fill_value": 0, "order": "C", "filters": null
    });
    meta.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    fs::write(dir.join(".zarray"), meta.to_string()).unwrap();
}

/// A store (a group) in a fresh directory, traversable by every user.
pub fn new_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    fs::write(store.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    (dir, store)
}

/// Ten `<i4` values `base..base+10` as a raw 40-byte chunk.
pub fn chunk_values(base: i32) -> Vec<u8> {
    (base..base + 10).flat_map(i32::to_le_bytes).collect()
}

/// Reads a whole file, returning the errno of a failure.
pub fn read_errno(path: PathBuf) -> Result<Vec<u8>, Option<i32>> {
    fs::read(path).map_err(|e| e.raw_os_error())
}

/// The type and source /proc/self/mountinfo shows for the mount on top at `point`.
pub fn mount_entry(point: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().rev().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let at = before.split(' ').nth(4)?.replace("\\040", " ");
        let mut after = after.split(' ');
        let (fstype, source) = (after.next()?, after.next()?);
        (Path::new(&at) == point).then(|| (fstype.to_string(), source.replace("\\040", " ")))
    })
}

/// Runs the zarrfs binary with its stdout a pipe nobody reads any more (as `| head -1`
/// leaves it once head is done); its exit status and stderr.
pub fn zarrfs_into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe returned two descriptors this process owns.
    let (read_end, write_end) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read_end);
    let out = Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args(args)
        .stdout(std::process::Stdio::from(write_end))
        .output()
        .expect("run zarrfs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits up to `secs` seconds for `done`; whether it came true.
pub fn wait_for(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Detaches whatever is left mounted on a mount point when dropped, and ends the daemons
/// serving it (a failed test must not leave mounts or processes behind).
pub struct Cleanup<'a>(pub &'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for pid in [
            zarrfs_processes(self.0, true),
            zarrfs_processes(self.0, false),
        ]
        .concat()
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        while mount_entry(self.0).is_some() {
            let detached = Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status()
                .is_ok_and(|s| s.success());
            if !detached {
                break;
            }
        }
    }
}

/// A tmpfs mounted on a fresh directory (root only), unmounted on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m"); None when this process may not mount.
    pub fn new(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only (or writable again).
    pub fn remount(&self, read_only: bool) {
        let option = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let status = Command::new("mount")
            .args(["-o", option])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -o {option}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
