//! Paths resolved beneath a directory without ever leaving it: `openat2(2)` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, or, on kernels without it, a walk that opens one
//! component at a time with `O_NOFOLLOW` and resolves symbolic links itself. Either way a
//! symbolic link, `..` or absolute path that would lead outside fails with
//! [`LEADS_OUTSIDE`]. Plus the descriptor-based calls the directory store is built on.

use std::ffi::{CStr, CString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a path was refused when it leads outside the directory it is resolved beneath.
pub const LEADS_OUTSIDE: &str =
    "a symbolic link, '..' or absolute path leads outside the store; refused";

/// How many symbolic links one resolution may follow (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Set once `openat2` turned out to be missing (ENOSYS): the walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// The C string of a name or relative path.
pub fn c_path(path: &str) -> io::Result<CString> {
    CString::new(if path.is_empty() { "." } else { path })
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a store key"))
}

/// Turns the kernel's "escapes" error into the store's own refusal (EIO for callers).
fn refuse_escape(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(libc::EXDEV) {
        io::Error::other(LEADS_OUTSIDE)
    } else {
        err
    }
}

/// Opens `path` (relative, '/'-separated; "" is `dir` itself) beneath `dir` with `flags`
/// (`O_CLOEXEC` is added), following symbolic links only while they stay beneath `dir`.
pub fn open_beneath(dir: BorrowedFd, path: &str, flags: i32) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2_beneath(dir, path, flags) {
            Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            result => return result.map_err(refuse_escape),
        }
    }
    walk_beneath(dir, path, flags).map_err(refuse_escape)
}

/// `openat2(dir, path, {flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS})`.
pub(super) fn openat2_beneath(dir: BorrowedFd, path: &str, flags: i32) -> io::Result<OwnedFd> {
    let c_path = c_path(path)?;
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let mut attempts = 0;
    loop {
        // SAFETY: c_path is NUL-terminated and how is a valid open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c_path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let err = io::Error::last_os_error();
        attempts += 1;
        // EAGAIN: a rename or mount raced with the resolution of "..": try again.
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if attempts < 16 => continue,
            _ => return Err(err),
        }
    }
}

/// `openat(dir, name, flags, mode)`.
pub fn openat(dir: BorrowedFd, name: &CStr, flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: name is NUL-terminated; the mode is passed as the variadic argument.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        if fd >= 0 {
            // SAFETY: openat returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The target of the symbolic link `name` in `dir`; `Ok(None)` when `name` is no link.
fn readlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf is writable for buf.len() bytes; name is NUL-terminated.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINVAL) => Ok(None),
                _ => Err(err),
            };
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(Some(buf));
        }
        if buf.len() >= 1 << 16 {
            return Err(errno(libc::ENAMETOOLONG));
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// Pushes the components of `path` onto `pending` (a stack: the first component last),
/// leaving out empty ones and ".".
fn push_components(pending: &mut Vec<Vec<u8>>, path: &[u8]) {
    let start = pending.len();
    pending.extend(
        path.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec),
    );
    pending[start..].reverse();
}

/// The fallback of [`open_beneath`] for kernels without `openat2`: one component at a time
/// with `O_NOFOLLOW`, symbolic links resolved here (absolute targets refused), ".." taken
/// from the walk's own stack so that it never climbs above `dir`.
pub(super) fn walk_beneath(dir: BorrowedFd, path: &str, flags: i32) -> io::Result<OwnedFd> {
    if path.starts_with('/') {
        return Err(errno(libc::EXDEV));
    }
    let mut pending = Vec::new();
    push_components(&mut pending, path.as_bytes());
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component == b".." {
            if stack.pop().is_none() {
                return Err(errno(libc::EXDEV));
            }
            continue;
        }
        let current = stack.last().map_or(dir, |fd| fd.as_fd());
        let name = CString::new(component)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))?;
        let last = pending.is_empty();
        let opened = if last {
            openat(current, &name, flags | libc::O_NOFOLLOW, 0)
        } else {
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            openat(current, &name, flags, 0)
        };
        let failure = match opened {
            Ok(fd) if !last => {
                stack.push(fd);
                continue;
            }
            // O_PATH | O_NOFOLLOW opens a symbolic link itself rather than failing.
            Ok(fd) if flags & libc::O_PATH == 0 || !fstat(fd.as_fd())?.file_type().is_symlink() => {
                return Ok(fd)
            }
            Ok(_) => errno(libc::ELOOP),
            Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => err,
            Err(err) => return Err(err),
        };
        let target = readlinkat(current, &name)?.ok_or(failure)?;
        push_link(&mut pending, &target, &mut links)?;
    }
    // Every component was a directory the walk went into or out of: open where it ended.
    let current = stack.last().map_or(dir, |fd| fd.as_fd());
    openat(current, c".", flags, 0)
}

/// Continues a walk through a symbolic link's (relative) target.
fn push_link(pending: &mut Vec<Vec<u8>>, target: &[u8], links: &mut usize) -> io::Result<()> {
    *links += 1;
    if *links > MAX_LINKS {
        return Err(errno(libc::ELOOP));
    }
    if target.first() == Some(&b'/') {
        return Err(errno(libc::EXDEV));
    }
    push_components(pending, target);
    Ok(())
}

/// Metadata of an open descriptor (`fstat`; works on `O_PATH` descriptors).
pub fn fstat(fd: BorrowedFd) -> io::Result<Metadata> {
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: the File is never dropped, so the borrowed descriptor is not closed.
        unsafe { File::from_raw_fd(fd.as_raw_fd()) },
    );
    file.metadata()
}

/// Metadata of `name` in `dir`, not following a symbolic link.
pub fn stat_entry(dir: BorrowedFd, name: &CStr) -> io::Result<Metadata> {
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    File::from(fd).metadata()
}

/// One entry of a directory listing: its name and `d_type` (`DT_UNKNOWN` when the file
/// system does not tell).
pub type RawEntry = (Vec<u8>, u8);

/// The entries of an open directory (without "." and ".."). Takes the descriptor.
pub fn read_dir(dir: OwnedFd) -> io::Result<Vec<RawEntry>> {
    let raw = dir.into_raw_fd();
    // SAFETY: raw is an open directory descriptor this function owns; fdopendir takes it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the descriptor is still ours to close.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut entries = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir sets it only on error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: stream is a valid directory stream until closedir below.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) => Ok(()),
                _ => Err(err),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated; both are
        // read before the next readdir call.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes().to_vec(),
                (*entry).d_type,
            )
        };
        if name != b"." && name != b".." {
            entries.push((name, kind));
        }
    };
    // SAFETY: stream is valid and closed exactly once (closing the descriptor too).
    unsafe { libc::closedir(stream) };
    result.map(|()| entries)
}

/// Checks the result of a libc call returning 0 or -1.
pub fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: BorrowedFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })
}

/// `renameat(dir, from, dir, to)`: replaces `to` atomically.
pub fn renameat(dir: BorrowedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
}

/// `unlinkat(dir, name, 0)`.
pub fn unlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A store directory `s` holding `a/f`, inside links `in_dir -> a`, `in_file -> a/f`,
    /// `a/up -> ../a/f`, and escaping links `out -> ../outside`, `abs -> <absolute path>`,
    /// `a/esc -> ../../outside/secret`; plus `outside/secret` next to the store.
    fn layout() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        std::fs::create_dir_all(store.join("a")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), b"secret").unwrap();
        std::fs::write(store.join("a/f"), b"inside").unwrap();
        symlink("a", store.join("in_dir")).unwrap();
        symlink("a/f", store.join("in_file")).unwrap();
        symlink("../a/f", store.join("a/up")).unwrap();
        symlink("../outside", store.join("out")).unwrap();
        symlink(dir.path().join("outside/secret"), store.join("abs")).unwrap();
        symlink("../../outside/secret", store.join("a/esc")).unwrap();
        symlink("loop", store.join("loop")).unwrap();
        let root = File::open(&store).unwrap();
        (dir, root)
    }

    fn read(
        open: fn(BorrowedFd, &str, i32) -> io::Result<OwnedFd>,
        root: &File,
        path: &str,
    ) -> io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        File::from(open(root.as_fd(), path, libc::O_RDONLY | libc::O_CLOEXEC)?)
            .read_to_string(&mut text)?;
        Ok(text)
    }

    fn check_resolution(open: fn(BorrowedFd, &str, i32) -> io::Result<OwnedFd>) {
        let (_dir, root) = layout();
        for inside in ["a/f", "in_file", "in_dir/f", "a/up", "a/../a/f", "./a//f"] {
            assert_eq!(read(open, &root, inside).unwrap(), "inside", "{inside}");
        }
        for escaping in [
            "out/secret",
            "abs",
            "a/esc",
            "../outside/secret",
            "a/../../outside/secret",
        ] {
            let err = read(open, &root, escaping).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EXDEV), "{escaping}: {err}");
        }
        let missing = read(open, &root, "a/nope").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            read(open, &root, "loop").unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        // O_PATH opens resolve the same way; "" and "a/.." name the directory itself.
        let path = |p: &str| open(root.as_fd(), p, libc::O_PATH | libc::O_CLOEXEC);
        assert!(fstat(path("in_dir").unwrap().as_fd()).unwrap().is_dir());
        assert!(fstat(path("in_file").unwrap().as_fd()).unwrap().is_file());
        assert_eq!(path("out").unwrap_err().raw_os_error(), Some(libc::EXDEV));
        for itself in ["", "a/..", "."] {
            let fd = path(itself).unwrap();
            let (a, b) = (fstat(fd.as_fd()).unwrap(), root.metadata().unwrap());
            use std::os::unix::fs::MetadataExt;
            assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "{itself:?}");
        }
    }

    #[test]
    fn openat2_stays_beneath_the_root() {
        check_resolution(openat2_beneath);
    }

    #[test]
    fn the_walk_stays_beneath_the_root_like_openat2() {
        check_resolution(walk_beneath);
    }

    #[test]
    fn escapes_are_refused_as_such() {
        let (_dir, root) = layout();
        let err = open_beneath(root.as_fd(), "a/esc", libc::O_RDONLY).unwrap_err();
        assert_eq!(err.raw_os_error(), None, "EIO for callers, not EXDEV");
        assert!(err.to_string().contains("outside the store"), "{err}");
    }

    #[test]
    fn directories_list_without_dot_entries() {
        let (_dir, root) = layout();
        let fd = open_beneath(root.as_fd(), "a", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
        let mut names: Vec<String> = read_dir(fd)
            .unwrap()
            .into_iter()
            .map(|(name, _)| String::from_utf8(name).unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["esc", "f", "up"]);
    }
}
