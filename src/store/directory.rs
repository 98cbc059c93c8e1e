//! The directory store: keys map to files under a root, and the store never leaves it:
//! every key is resolved beneath a descriptor of the root opened once (see
//! [`super::beneath`]), only regular files are read (FIFOs, sockets and devices are refused
//! without blocking), reads are bounded before they start, and writes go through descriptors
//! of directories resolved the same way.

use super::beneath::{self, open_beneath};
use super::{
    join_key, too_large, FsStats, ListEntry, ObjectInfo, ObjectVersion, OpenObject, Profile, Store,
};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The size, mtime, owner and mode of a file or directory.
fn info_of(meta: &fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        size: if meta.is_dir() { 0 } else { meta.len() },
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        is_prefix: meta.is_dir(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o777,
    }
}

/// The version of a stored file, from its metadata.
fn version_of(meta: &fs::Metadata) -> ObjectVersion {
    ObjectVersion {
        len: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        identity: (meta.dev(), meta.ino()),
    }
}

/// A file of a directory store, open: replacing the file (the store's writers rename a new
/// file over it) leaves the open one as it was.
#[derive(Debug)]
struct OpenFile {
    file: File,
    version: ObjectVersion,
}

impl OpenObject for OpenFile {
    fn len(&self) -> u64 {
        self.version.len
    }

    fn version(&self) -> Option<ObjectVersion> {
        Some(self.version)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(done)
    }
}

/// Marker inside the names of temporary files written before an atomic rename.
pub const TEMP_MARKER: &str = ".zarrfs-tmp-";

/// Why a directory reached through a symbolic link is not shown when it is one of the
/// directories above it.
pub const LOOPS_BACK: &str =
    "a symbolic link leads back to a directory above it (a loop); not shown";

static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A store backed by a local directory tree, reached through a descriptor of its root
/// opened once: renaming the root or mounting over it does not change what is served.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: PathBuf,
    fd: Arc<OwnedFd>,
    /// How long what is read from it stays trusted (see [`Profile::revalidate_after`]).
    revalidate_after: Option<Duration>,
}

/// What a stored file is, for messages: the kinds of file that are never read.
fn file_kind(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

fn refused_kind(meta: &fs::Metadata) -> io::Error {
    io::Error::other(format!("{}, not a regular file; refused", file_kind(meta)))
}

fn not_found_as_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err)
            if err.kind() == io::ErrorKind::NotFound
                || err.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Splits a key into its parent prefix and its name, refusing names no object can have.
fn split_key(key: &str) -> io::Result<(&str, CString)> {
    let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{key:?} names no object"),
        ));
    }
    Ok((parent, beneath::c_path(name)?))
}

/// Gives a file just written the owner, group and mode of `like`, as far as this process
/// may: root sets all three; another user sets the group of files it owns (when it is a
/// member of that group) and the mode. Best effort: a refusal leaves what was created.
fn take_owner_and_mode(fd: BorrowedFd, like: &fs::Metadata) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 || like.uid() == euid {
        let uid = if euid == 0 { like.uid() } else { u32::MAX };
        // SAFETY: fchown on a descriptor this process owns; -1 leaves the owner as it is.
        let _ = unsafe { libc::fchown(fd.as_raw_fd(), uid, like.gid()) };
    }
    // SAFETY: fchmod on a descriptor this process owns.
    let _ = unsafe { libc::fchmod(fd.as_raw_fd(), like.mode() & 0o777) };
}

impl DirectoryStore {
    /// Opens a directory store; fails when `root` is not a directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
            .open(root)
            .map_err(|err| match err.raw_os_error() {
                Some(libc::ENOTDIR) => io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a directory", root.display()),
                ),
                _ => err,
            })?;
        Ok(DirectoryStore {
            root: root.to_path_buf(),
            fd: Arc::new(dir.into()),
            revalidate_after: None,
        })
    }

    /// The store, its readers checking what they cached against what is stored once
    /// `ttl` has passed since they last did (see [`Profile::revalidate_after`]); without
    /// this, what was read is kept until remounted.
    pub fn with_revalidation(mut self, ttl: Duration) -> Self {
        self.revalidate_after = Some(ttl);
        self
    }

    /// The directory this store reads from (as given; the store itself uses the
    /// descriptor opened then).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens `key` beneath the root with `flags`.
    fn open_key(&self, key: &str, flags: i32) -> io::Result<OwnedFd> {
        open_beneath(self.fd.as_fd(), key, flags)
    }

    /// Opens the directory of a prefix for reading its entries, syncing it and working in it.
    fn open_dir(&self, prefix: &str) -> io::Result<File> {
        self.open_key(
            prefix,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
        )
        .map(File::from)
    }

    /// Opens a stored object for reading: `Ok(None)` when absent or a prefix; refused when
    /// it is not a regular file or holds more than `max_len` bytes. Nothing blocks: FIFOs
    /// are opened non-blocking and refused.
    fn open_object(&self, key: &str, max_len: u64) -> io::Result<Option<(File, fs::Metadata)>> {
        let opened = self.open_key(key, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = match not_found_as_none(opened) {
            Ok(Some(fd)) => File::from(fd),
            Ok(None) => return Ok(None),
            // Opening a socket fails with ENXIO.
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) => {
                return Err(io::Error::other(
                    "a socket or device, not a regular file; refused",
                ))
            }
            Err(err) => return Err(err),
        };
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(refused_kind(&meta));
        }
        if meta.len() > max_len {
            return Err(too_large(meta.len(), max_len));
        }
        Ok(Some((file, meta)))
    }

    /// Takes the store's advisory lock for the life of this store and its clones: shared
    /// (`exclusive == false`) or exclusive. `Ok(false)` when another holder keeps it.
    pub fn lock(&self, exclusive: bool) -> io::Result<bool> {
        let operation = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on the root descriptor this store owns.
        match beneath::check(unsafe { libc::flock(self.fd.as_raw_fd(), operation | libc::LOCK_NB) })
        {
            Ok(()) => Ok(true),
            Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Whether `dir` is the store's root directory or lies beneath it: compared by device and
    /// inode, from `dir` up to `/`, so that links and bind mounts are seen through.
    pub fn contains_dir(&self, dir: &Path) -> io::Result<bool> {
        let id = |meta: &fs::Metadata| (meta.dev(), meta.ino());
        let root = id(&beneath::fstat(self.fd.as_fd())?);
        let mut current: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?
            .into();
        let mut current_id = id(&beneath::fstat(current.as_fd())?);
        loop {
            if current_id == root {
                return Ok(true);
            }
            let parent =
                beneath::openat(current.as_fd(), c"..", libc::O_PATH | libc::O_DIRECTORY, 0)?;
            let parent_id = id(&beneath::fstat(parent.as_fd())?);
            if parent_id == current_id {
                return Ok(false);
            }
            (current, current_id) = (parent, parent_id);
        }
    }

    /// The directory of a prefix, for writing into it: missing directories are created
    /// beneath the root, each with the mode (and, where this process may, the owner) of the
    /// directory it is made in.
    fn dir_for_write(&self, prefix: &str) -> io::Result<File> {
        match self.open_dir(prefix) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            result => return result,
        }
        let mut dir = self.open_dir("")?;
        let mut path = String::new();
        for name in prefix.split('/').filter(|c| !c.is_empty()) {
            path = join_key(&path, name);
            dir = match self.open_dir(&path) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    let created = beneath::mkdirat(dir.as_fd(), &beneath::c_path(name)?, 0o700);
                    match created {
                        Err(err) if err.raw_os_error() != Some(libc::EEXIST) => return Err(err),
                        Err(_) => self.open_dir(&path)?,
                        Ok(()) => {
                            let made = self.open_dir(&path)?;
                            take_owner_and_mode(made.as_fd(), &dir.metadata()?);
                            // The new directory's entry is made durable at once: a durable
                            // write into it (a v3 key such as `c/3/0`) syncs only its own
                            // directory.
                            dir.sync_all()?;
                            made
                        }
                    }
                }
                result => result?,
            };
        }
        Ok(dir)
    }

    /// Metadata of a stored regular file, if there is one under `key`.
    fn regular_file_metadata(&self, key: &str) -> Option<fs::Metadata> {
        let fd = self.open_key(key, libc::O_PATH).ok()?;
        beneath::fstat(fd.as_fd())
            .ok()
            .filter(fs::Metadata::is_file)
    }

    /// Removes leftover temporaries of other processes in `dir` (the prefix `key`) and
    /// below, not following symbolic links; adds to `removed`.
    fn remove_temporaries_in(&self, dir: File, key: &str, own: &str, removed: &mut usize) {
        let Ok(handle) = dir.try_clone() else {
            return;
        };
        let Ok(entries) = beneath::read_dir(handle.into()) else {
            return;
        };
        for (name, kind) in entries {
            let Ok(c_name) = CString::new(name.clone()) else {
                continue;
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            let is_dir = match kind {
                libc::DT_DIR => true,
                libc::DT_UNKNOWN => {
                    beneath::stat_entry(dir.as_fd(), &c_name).is_ok_and(|m| m.is_dir())
                }
                _ => false,
            };
            if is_dir {
                let flags =
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                if let Ok(sub) = beneath::openat(dir.as_fd(), &c_name, flags, 0) {
                    self.remove_temporaries_in(
                        File::from(sub),
                        &join_key(key, &name),
                        own,
                        removed,
                    );
                }
            } else if name.contains(TEMP_MARKER)
                && !name.contains(own)
                && beneath::unlinkat(dir.as_fd(), &c_name).is_ok()
            {
                tracing::info!(
                    "removed leftover temporary {}",
                    self.describe(&join_key(key, &name))
                );
                *removed += 1;
            }
        }
    }
}

/// Reads a whole file of `len` bytes (as fstat said) into `buf`, never past `max_len`: a
/// file that grew beyond it meanwhile is refused.
fn read_bounded(file: &File, len: u64, max_len: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.reserve(len as usize);
    file.take(max_len).read_to_end(buf)?;
    if buf.len() as u64 == max_len {
        let now = file.metadata()?.len();
        if now > max_len {
            buf.clear();
            return Err(too_large(now, max_len));
        }
    }
    Ok(())
}

impl Store for DirectoryStore {
    fn get(&self, key: &str, max_len: u64) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.get_into(key, &mut buf, max_len)?.then_some(buf))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>, max_len: u64) -> io::Result<bool> {
        Ok(self.get_into_versioned(key, buf, max_len)?.is_some())
    }

    fn get_into_versioned(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        max_len: u64,
    ) -> io::Result<Option<Option<ObjectVersion>>> {
        let Some((file, meta)) = self.open_object(key, max_len)? else {
            return Ok(None);
        };
        read_bounded(&file, meta.len(), max_len, buf)?;
        Ok(Some(Some(version_of(&meta))))
    }

    fn object_version(&self, key: &str) -> io::Result<Option<ObjectVersion>> {
        Ok(self
            .regular_file_metadata(key)
            .map(|meta| version_of(&meta)))
    }

    fn open(&self, key: &str, max_len: u64) -> io::Result<Option<Box<dyn OpenObject>>> {
        Ok(self.open_object(key, max_len)?.map(|(file, meta)| {
            Box::new(OpenFile {
                file,
                version: version_of(&meta),
            }) as Box<dyn OpenObject>
        }))
    }

    fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        let Some(fd) = not_found_as_none(self.open_key(key, libc::O_PATH))? else {
            return Ok(None);
        };
        let meta = beneath::fstat(fd.as_fd())?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(refused_kind(&meta));
        }
        Ok(Some(info_of(&meta)))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>> {
        let Some(dir) = not_found_as_none(self.open_dir(prefix))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, kind) in beneath::read_dir(dir.into())? {
            let name = match String::from_utf8(name) {
                Ok(name) => name,
                Err(bad) => {
                    let message = format!(
                        "{}: a name that is not UTF-8 ({}) is not shown",
                        self.describe(prefix),
                        String::from_utf8_lossy(bad.as_bytes())
                    );
                    if crate::report::first(&message) {
                        tracing::warn!("{message}");
                    }
                    continue;
                }
            };
            let is_prefix = match kind {
                libc::DT_DIR => true,
                libc::DT_REG => false,
                // Links (followed only while they stay in the store) and unknown types:
                // what they resolve to, when it is a directory or a regular file.
                libc::DT_LNK | libc::DT_UNKNOWN => {
                    let key = join_key(prefix, &name);
                    match self.info(&key) {
                        Ok(Some(info)) if info.is_prefix && self.loops_back(&key)? => {
                            crate::report::warn(&format!("{}: {LOOPS_BACK}", self.describe(&key)));
                            continue;
                        }
                        Ok(Some(info)) => info.is_prefix,
                        _ => continue,
                    }
                }
                // FIFOs, sockets and devices are neither objects nor prefixes.
                _ => continue,
            };
            out.push(ListEntry { name, is_prefix });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn loops_back(&self, key: &str) -> io::Result<bool> {
        if key.is_empty() {
            return Ok(false);
        }
        let identity = |key: &str| -> io::Result<Option<(u64, u64)>> {
            let Some(fd) = not_found_as_none(self.open_key(key, libc::O_PATH))? else {
                return Ok(None);
            };
            let meta = beneath::fstat(fd.as_fd())?;
            Ok(meta.is_dir().then(|| (meta.dev(), meta.ino())))
        };
        let Some(this) = identity(key)? else {
            return Ok(false);
        };
        let mut above = key;
        while !above.is_empty() {
            above = above.rsplit_once('/').map_or("", |(parent, _)| parent);
            if identity(above)? == Some(this) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn describe(&self, key: &str) -> String {
        if key.is_empty() {
            self.root.display().to_string()
        } else {
            self.root.join(key).display().to_string()
        }
    }

    fn put(&self, key: &str, bytes: &[u8], like: Option<&str>, durable: bool) -> io::Result<()> {
        let (prefix, name) = split_key(key)?;
        let dir = self.dir_for_write(prefix)?;
        let replaced = beneath::stat_entry(dir.as_fd(), &name)
            .ok()
            .filter(fs::Metadata::is_file);
        let template = replaced.or_else(|| like.and_then(|like| self.regular_file_metadata(like)));
        let counter = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = beneath::c_path(&format!(
            ".{}{TEMP_MARKER}{}-{counter}",
            name.to_string_lossy(),
            std::process::id()
        ))?;
        // Private until it has its final owner and mode; 0o666 less the umask without a model.
        let mode = if template.is_some() { 0o600 } else { 0o666 };
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let mut file = File::from(beneath::openat(dir.as_fd(), &temp, flags, mode)?);
        let result = (|| {
            file.write_all(bytes)?;
            if let Some(template) = &template {
                take_owner_and_mode(file.as_fd(), template);
            }
            file.sync_all()?;
            beneath::renameat(dir.as_fd(), &temp, &name)?;
            if durable {
                dir.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = beneath::unlinkat(dir.as_fd(), &temp);
        }
        result
    }

    fn delete(&self, key: &str, durable: bool) -> io::Result<()> {
        let (prefix, name) = split_key(key)?;
        let Some(dir) = not_found_as_none(self.open_dir(prefix))? else {
            return Ok(());
        };
        match beneath::unlinkat(dir.as_fd(), &name) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        }
        if durable {
            dir.sync_all()?;
        }
        Ok(())
    }

    fn remove_stale_temporaries(&self) -> io::Result<usize> {
        let own = format!("{TEMP_MARKER}{}-", std::process::id());
        let mut removed = 0;
        self.remove_temporaries_in(self.open_dir("")?, "", &own, &mut removed);
        Ok(removed)
    }

    fn profile(&self) -> Profile {
        Profile {
            revalidate_after: self.revalidate_after,
            ..Profile::LOCAL
        }
    }

    fn fs_stats(&self) -> io::Result<Option<FsStats>> {
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatvfs on the root descriptor this store owns, into `stats`.
        beneath::check(unsafe { libc::fstatvfs(self.fd.as_raw_fd(), &mut stats) })?;
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Some(FsStats {
            blocks: stats.f_blocks,
            blocks_free: stats.f_bfree,
            blocks_available: stats.f_bavail,
            files: stats.f_files,
            files_free: stats.f_ffree,
            block_size: narrow(stats.f_bsize),
            name_max: narrow(stats.f_namemax),
            fragment_size: narrow(stats.f_frsize),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No bound on reads.
    const ANY: u64 = u64::MAX;

    /// Reads of an open object: a middle part, a part crossing the end, past the end.
    fn assert_reads_parts(object: &dyn OpenObject) {
        assert_eq!(object.len(), 10);
        let mut buf = [0u8; 4];
        assert_eq!(object.read_at(3, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"3456");
        assert_eq!(object.read_at(8, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(object.read_at(12, &mut buf).unwrap(), 0);
    }

    #[test]
    fn open_objects_read_the_version_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        store.put("a/0", b"0123456789", None, false).unwrap();
        let object = store.open("a/0", ANY).unwrap().unwrap();
        store.put("a/0", b"abc", None, false).unwrap();
        assert_reads_parts(&*object);
        let replaced = store.open("a/0", ANY).unwrap().unwrap();
        assert_eq!(replaced.len(), 3);
        assert_ne!(replaced.version(), object.version(), "another version");
        assert_eq!(
            store.open("a/0", ANY).unwrap().unwrap().version(),
            replaced.version(),
            "the same version"
        );
        assert!(store.open("a/1", ANY).unwrap().is_none());
        assert!(
            store.open("a", ANY).unwrap().is_none(),
            "a prefix is no object"
        );
        assert_reads_parts(&b"0123456789".to_vec());
    }

    #[test]
    fn get_info_list_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("g/a")).unwrap();
        fs::write(dir.path().join("g/a/0.0"), b"abc").unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g/a/0.0", ANY).unwrap().unwrap(), b"abc");
        assert_eq!(store.get("g/a/1.0", ANY).unwrap(), None);
        assert_eq!(store.get("g/a/0.0/x", ANY).unwrap(), None);
        let info = store.info("g/a/0.0").unwrap().unwrap();
        assert_eq!(info.size, 3);
        assert!(!info.is_prefix);
        assert!(store.info("g").unwrap().unwrap().is_prefix);
        let names: Vec<_> = store
            .list("g")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["a"]);
        assert!(store.list("missing").unwrap().is_empty());
    }

    #[test]
    fn put_replaces_atomically_and_delete_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        store.put("a/b/0.0", b"one", None, false).unwrap();
        store.put("a/b/0.0", b"two", None, true).unwrap();
        assert_eq!(store.get("a/b/0.0", ANY).unwrap().unwrap(), b"two");
        let names: Vec<_> = store
            .list("a/b")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["0.0"], "no temporary is left behind");
        store.delete("a/b/0.0", true).unwrap();
        store.delete("a/b/0.0", false).unwrap();
        assert_eq!(store.get("a/b/0.0", ANY).unwrap(), None);
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("g/a")).unwrap();
        let stale = dir.path().join(format!("g/a/.0.0{TEMP_MARKER}999999999-3"));
        let own = dir
            .path()
            .join(format!("g/a/.0.1{TEMP_MARKER}{}-0", std::process::id()));
        fs::write(&stale, b"x").unwrap();
        fs::write(&own, b"x").unwrap();
        fs::write(dir.path().join("g/a/0.0"), b"keep").unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        assert_eq!(store.remove_stale_temporaries().unwrap(), 1);
        assert!(!stale.exists());
        assert!(own.exists(), "an in-flight temporary of this process stays");
        assert!(dir.path().join("g/a/0.0").exists());
    }

    #[test]
    fn put_reports_errors_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"").unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        assert!(
            store.put("file/0", b"x", None, false).is_err(),
            "parent is a file"
        );
    }

    #[test]
    fn open_rejects_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(DirectoryStore::open(&file).is_err());
        assert!(DirectoryStore::open(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn join_key_handles_root() {
        assert_eq!(join_key("", "a"), "a");
        assert_eq!(join_key("g", "a"), "g/a");
    }

    /// Runs `f` in a thread and fails (instead of hanging) when it takes over 10 seconds.
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || send.send(f()));
        receive
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("blocked for 10 s")
    }

    /// A store holding a FIFO `p`, a socket `s`, a regular file `f` (3 bytes), a file `out`
    /// outside it (as the store's sibling) linked to by `esc`, and `inside -> f`.
    fn odd_files() -> (
        tempfile::TempDir,
        DirectoryStore,
        std::os::unix::net::UnixListener,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        fs::create_dir(&root).unwrap();
        let fifo = CString::new(root.join("p").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: fifo is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let socket = std::os::unix::net::UnixListener::bind(root.join("s")).unwrap();
        fs::write(root.join("f"), b"abc").unwrap();
        fs::write(dir.path().join("out"), b"outside").unwrap();
        std::os::unix::fs::symlink("../out", root.join("esc")).unwrap();
        std::os::unix::fs::symlink("f", root.join("inside")).unwrap();
        let store = DirectoryStore::open(&root).unwrap();
        (dir, store, socket)
    }

    #[test]
    fn fifos_sockets_and_escaping_links_are_refused_without_blocking() {
        let (_dir, store, _socket) = odd_files();
        let refusals = within_10s(move || {
            let mut refusals = Vec::new();
            for key in ["p", "s", "esc"] {
                let mut buf = Vec::new();
                for err in [
                    store.get(key, ANY).map(drop),
                    store.get_into(key, &mut buf, ANY).map(drop),
                    store.open(key, ANY).map(drop),
                    store.info(key).map(drop),
                ] {
                    let err = err.unwrap_err();
                    assert_eq!(err.raw_os_error(), None, "{key}: EIO for callers");
                    refusals.push(format!("{key}: {err}"));
                }
            }
            assert_eq!(store.get("inside", ANY).unwrap().unwrap(), b"abc");
            refusals
        });
        assert!(refusals[0].contains("FIFO"), "{refusals:?}");
        assert!(refusals[4].contains("socket"), "{refusals:?}");
        assert!(refusals[8].contains("outside the store"), "{refusals:?}");
    }

    #[test]
    fn listings_leave_out_what_cannot_be_read_and_follow_links_inside() {
        let (_dir, store, _socket) = odd_files();
        fs::create_dir(store.root().join("d")).unwrap();
        std::os::unix::fs::symlink("d", store.root().join("d_link")).unwrap();
        std::os::unix::fs::symlink("..", store.root().join("parent")).unwrap();
        let entries = within_10s(move || store.list("").unwrap());
        let entries: Vec<(&str, bool)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.is_prefix))
            .collect();
        assert_eq!(
            entries,
            [
                ("d", true),
                ("d_link", true),
                ("f", false),
                ("inside", false)
            ]
        );
    }

    #[test]
    fn objects_larger_than_the_bound_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        store.put("a", b"0123456789", None, false).unwrap();
        assert_eq!(store.get("a", 10).unwrap().unwrap(), b"0123456789");
        assert_eq!(store.open("a", 10).unwrap().unwrap().len(), 10);
        let err = store.get("a", 9).unwrap_err();
        assert!(err.to_string().contains("refused unread"), "{err}");
        assert!(store.open("a", 9).is_err());
        // A sparse 2 GiB file costs nothing before it is refused.
        let big = File::create(dir.path().join("big")).unwrap();
        big.set_len(2 << 30).unwrap();
        let mut buf = Vec::new();
        assert!(store.get_into("big", &mut buf, 1 << 20).is_err());
        assert!(buf.capacity() < 1 << 20, "nothing reserved");
        // A file that grows past the bound after it was measured is not read past it.
        let mut grown = Vec::new();
        let file = File::open(dir.path().join("big")).unwrap();
        let err = read_bounded(&file, 10, 1 << 10, &mut grown).unwrap_err();
        assert!(err.to_string().contains("refused unread"), "{err}");
        assert!(grown.capacity() < 4 << 10);
    }

    #[test]
    fn writes_never_follow_a_link_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("a/0")).unwrap();
        std::os::unix::fs::symlink("../../outside/x", root.join("a/1")).unwrap();
        let store = DirectoryStore::open(&root).unwrap();
        let err = store.put("a/0/0", b"x", None, true).unwrap_err();
        assert_eq!(err.raw_os_error(), None, "EIO for callers: {err}");
        assert!(store.delete("a/0/0", true).is_err());
        // A link in place of the object itself is replaced, not written through.
        store.put("a/1", b"y", None, false).unwrap();
        assert_eq!(fs::read(root.join("a/1")).unwrap(), b"y");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside"
        );
        // Missing directories of nested keys are made beneath the root.
        store.put("b/c/0", b"z", None, false).unwrap();
        assert_eq!(store.get("b/c/0", ANY).unwrap().unwrap(), b"z");
    }

    #[test]
    fn written_objects_keep_their_mode_and_new_ones_take_the_model() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        let mode = |key: &str| fs::metadata(dir.path().join(key)).unwrap().mode() & 0o777;
        let set_mode = |key: &str, mode| {
            fs::set_permissions(dir.path().join(key), fs::Permissions::from_mode(mode)).unwrap()
        };
        store.put("meta", b"{}", None, false).unwrap();
        set_mode("meta", 0o604);
        store.put("a/0", b"x", Some("meta"), false).unwrap();
        assert_eq!(mode("a/0"), 0o604, "a new object takes the model's mode");
        set_mode("a/0", 0o640);
        store.put("a/0", b"y", Some("meta"), false).unwrap();
        assert_eq!(mode("a/0"), 0o640, "a replaced object keeps its mode");
        set_mode("a", 0o750);
        store.put("a/b/c/0", b"z", None, false).unwrap();
        assert_eq!(
            mode("a/b"),
            0o750,
            "new directories take their parent's mode"
        );
        assert_eq!(mode("a/b/c"), 0o750);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let path =
                CString::new(dir.path().join("a/0").into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: path is NUL-terminated.
            assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
            store.put("a/0", b"w", None, false).unwrap();
            let meta = fs::metadata(dir.path().join("a/0")).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o777),
                (65534, 65534, 0o640)
            );
        }
    }

    #[test]
    fn writable_mounts_lock_out_every_other_mount() {
        let dir = tempfile::tempdir().unwrap();
        let open = || DirectoryStore::open(dir.path()).unwrap();
        let (reader, other_reader, writer) = (open(), open(), open());
        assert!(reader.lock(false).unwrap());
        assert!(other_reader.lock(false).unwrap(), "readers share");
        assert!(!writer.lock(true).unwrap(), "no writer while read");
        drop((reader, other_reader));
        assert!(writer.lock(true).unwrap());
        assert!(!open().lock(true).unwrap(), "one writer");
        assert!(!open().lock(false).unwrap(), "no reader while written");
    }

    #[test]
    fn directories_inside_the_store_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir(dir.path().join("next")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), dir.path().join("link")).unwrap();
        let store = DirectoryStore::open(&root).unwrap();
        assert!(store.contains_dir(&root).unwrap());
        assert!(store.contains_dir(&root.join("a/b")).unwrap());
        assert!(store.contains_dir(&dir.path().join("link/b")).unwrap());
        assert!(!store.contains_dir(dir.path()).unwrap());
        assert!(!store.contains_dir(&dir.path().join("next")).unwrap());
        assert!(!store.contains_dir(Path::new("/")).unwrap());
    }
}
