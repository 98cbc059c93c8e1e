//! The system's mounts as `/proc/self/mountinfo` lists them, zarrfs's among them, and
//! unmounting.

use std::io;
use std::path::{Path, PathBuf};

/// The type every zarrfs mount has in /proc/mounts (`findmnt -t fuse.zarrfs`).
pub const FS_TYPE: &str = "fuse.zarrfs";

/// The subtype zarrfs mounts with (the part of [`FS_TYPE`] after `fuse.`).
pub const SUBTYPE: &str = "zarrfs";

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its file system type, e.g. `fuse.zarrfs` or `tmpfs`.
    pub fstype: String,
    /// What is mounted (for zarrfs, the store).
    pub source: String,
}

impl MountEntry {
    /// Whether zarrfs serves this mount.
    pub fn is_zarrfs(&self) -> bool {
        self.fstype == FS_TYPE
    }
}

/// Decodes the octal escapes (`\040`) of /proc/self/mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'\\')
            .then(|| field.get(i + 1..i + 4))
            .flatten()
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line of /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT POINT OPTIONS
/// [OPTIONAL…] - TYPE SOURCE SUPER_OPTIONS`.
fn parse_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let point = before.split(' ').nth(4)?;
    let mut after = after.split(' ');
    Some(MountEntry {
        point: PathBuf::from(unescape(point)),
        fstype: unescape(after.next()?),
        source: unescape(after.next()?),
    })
}

/// Every mount of this process's mount namespace, in mount order.
pub fn mounts() -> io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// The mount on top at `point` (the last one mounted there), if any.
pub fn find(point: &Path) -> Option<MountEntry> {
    mounts()
        .ok()?
        .into_iter()
        .rev()
        .find(|entry| entry.point == point)
}

/// Whether `err` is what the kernel answers on a FUSE mount whose daemon is gone:
/// "Transport endpoint is not connected" (ENOTCONN), or ECONNABORTED while the connection
/// is being torn down.
fn is_disconnected(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOTCONN | libc::ECONNABORTED)
    )
}

/// Whether `point` is a mount whose daemon is gone.
pub fn is_dead(point: &Path) -> bool {
    std::fs::metadata(point).is_err_and(|err| is_disconnected(&err))
}

/// `path` made absolute with its directories resolved, without looking at its last
/// component (a dead mount cannot be looked at); resolved whole when that works.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(resolved) => Ok(resolved),
        Err(err) if is_disconnected(&err) => {
            let absolute = std::path::absolute(path)?;
            match (absolute.parent(), absolute.file_name()) {
                (Some(parent), Some(name)) => Ok(std::fs::canonicalize(parent)?.join(name)),
                _ => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

/// Unmounts `path`: with `lazy`, a busy mount point is detached at once and lives on until
/// its open files close. Tries umount2(2) (root), then fusermount3/fusermount.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: c_path is a valid NUL-terminated path.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let direct_error = io::Error::last_os_error();
    if direct_error.raw_os_error() != Some(libc::EPERM) {
        return Err(direct_error);
    }
    // Not root: the setuid helper unmounts FUSE mounts of their owner.
    let helper_ok = ["fusermount3", "fusermount"].iter().any(|tool| {
        std::process::Command::new(tool)
            .arg(if lazy { "-uz" } else { "-u" })
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if helper_ok {
        Ok(())
    } else {
        Err(direct_error)
    }
}

/// Waits up to 5 s for `point` to be unmounted; whether it was.
pub fn wait_until_unmounted(point: &Path) -> bool {
    for _ in 0..100 {
        if find(point).is_none() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let line = "36 35 0:42 / /mnt/a\\040b rw,nosuid shared:1 - fuse.zarrfs /data/x\\040y.zarr rw,user_id=0";
        assert_eq!(
            parse_line(line).unwrap(),
            MountEntry {
                point: "/mnt/a b".into(),
                fstype: "fuse.zarrfs".into(),
                source: "/data/x y.zarr".into(),
            }
        );
        assert!(parse_line(line).unwrap().is_zarrfs());
        let tmpfs = "40 35 0:50 / /tmp/t rw - tmpfs tmpfs rw,size=10k";
        assert!(!parse_line(tmpfs).unwrap().is_zarrfs());
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }
}
