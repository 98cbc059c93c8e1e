//! Key/value access to a Zarr store. The directory store maps keys to files under a root.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Size and modification time of a stored object or prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object size in bytes (0 for prefixes).
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
    /// Whether the key names a prefix ("directory") rather than an object.
    pub is_prefix: bool,
}

/// One child of a listed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Name relative to the listed prefix (no separators).
    pub name: String,
    /// Whether the child is itself a prefix.
    pub is_prefix: bool,
}

/// What tells versions of a stored object apart: replacing it (a new file renamed over it)
/// changes its identity, rewriting it in place its modification time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Size in bytes.
    pub len: u64,
    /// Last modification time.
    pub mtime: SystemTime,
    /// The file's identity (device and inode).
    pub identity: (u64, u64),
}

/// A stored object opened for reads at offsets: every read sees the version that was opened,
/// even when the object is replaced meanwhile.
pub trait OpenObject: Send + Sync + std::fmt::Debug {
    /// The object's size in bytes.
    fn len(&self) -> u64;
    /// Whether the object is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads from `offset` into `buf`; returns how many bytes were read (fewer than
    /// `buf.len()` only at the object's end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The version opened, when the store can tell (what is derived from an object may be
    /// kept for as long as its version stays the same).
    fn version(&self) -> Option<ObjectVersion> {
        None
    }
}

/// An object held in memory.
impl OpenObject for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.as_slice().len());
        let n = buf.len().min(self.as_slice().len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A Zarr store: objects addressed by '/'-separated keys.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads a whole object; `Ok(None)` when it does not exist.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Reads a whole object into `buf` (replacing its contents, reusing its allocation);
    /// `Ok(false)` when it does not exist.
    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> io::Result<bool> {
        match self.get(key)? {
            Some(bytes) => {
                buf.clear();
                buf.extend_from_slice(&bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// Opens an object for reads at offsets, all of the version opened; `Ok(None)` when
    /// the object is absent. By default the object is read whole into memory.
    fn open(&self, key: &str) -> io::Result<Option<Box<dyn OpenObject>>> {
        Ok(self
            .get(key)?
            .map(|bytes| Box::new(bytes) as Box<dyn OpenObject>))
    }
    /// Size and mtime of an object or prefix; `Ok(None)` when absent.
    fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>>;
    /// Lists the direct children of a prefix ("" is the root).
    fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>>;
    /// A short description for log lines (the store location for a given key).
    fn describe(&self, key: &str) -> String;
    /// Replaces an object atomically: readers and crashes see either the old or the new
    /// bytes. With `durable`, the change itself is also made durable (directory synced).
    fn put(&self, key: &str, bytes: &[u8], durable: bool) -> io::Result<()>;
    /// Deletes an object (absent is fine). With `durable`, the removal is synced.
    fn delete(&self, key: &str, durable: bool) -> io::Result<()>;
    /// Removes temporary objects left by an interrupted writer of an earlier session;
    /// returns how many were removed.
    fn remove_stale_temporaries(&self) -> io::Result<usize>;
}

/// A file of a directory store, open: replacing the file (the store's writers rename a new
/// file over it) leaves the open one as it was.
#[derive(Debug)]
struct OpenFile {
    file: fs::File,
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

static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// A store backed by a local directory tree.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    /// Opens a directory store; fails when `root` is not a directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        let meta = fs::metadata(root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(DirectoryStore {
            root: root.to_path_buf(),
        })
    }

    /// The directory this store reads from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of a key.
    pub fn path_of(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(key)
        }
    }
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

impl Store for DirectoryStore {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        not_found_as_none(fs::read(self.path_of(key)))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> io::Result<bool> {
        use std::io::Read;
        let Some(mut file) = not_found_as_none(fs::File::open(self.path_of(key)))? else {
            return Ok(false);
        };
        buf.clear();
        if let Ok(meta) = file.metadata() {
            buf.reserve(meta.len() as usize);
        }
        file.read_to_end(buf)?;
        Ok(true)
    }

    fn open(&self, key: &str) -> io::Result<Option<Box<dyn OpenObject>>> {
        let Some(file) = not_found_as_none(fs::File::open(self.path_of(key)))? else {
            return Ok(None);
        };
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Ok(None);
        }
        use std::os::unix::fs::MetadataExt;
        Ok(Some(Box::new(OpenFile {
            file,
            version: ObjectVersion {
                len: meta.len(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                identity: (meta.dev(), meta.ino()),
            },
        })))
    }

    fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        Ok(
            not_found_as_none(fs::metadata(self.path_of(key)))?.map(|m| ObjectInfo {
                size: if m.is_dir() { 0 } else { m.len() },
                mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                is_prefix: m.is_dir(),
            }),
        )
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>> {
        let Some(entries) = not_found_as_none(fs::read_dir(self.path_of(prefix)))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_prefix = match entry.file_type() {
                Ok(t) if t.is_symlink() => entry.path().is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => false,
            };
            out.push(ListEntry { name, is_prefix });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn describe(&self, key: &str) -> String {
        self.path_of(key).display().to_string()
    }

    fn put(&self, key: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        use std::io::Write;
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        fs::create_dir_all(&dir)?;
        let counter = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(
            ".{name}{TEMP_MARKER}{}-{counter}",
            std::process::id()
        ));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            if durable {
                sync_dir(&dir)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn delete(&self, key: &str, durable: bool) -> io::Result<()> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        }
        if durable {
            sync_dir(path.parent().unwrap_or(&self.root))?;
        }
        Ok(())
    }

    fn remove_stale_temporaries(&self) -> io::Result<usize> {
        let own = format!("{TEMP_MARKER}{}-", std::process::id());
        let mut removed = 0;
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push(entry.path()),
                    Ok(_)
                        if name.contains(TEMP_MARKER)
                            && !name.contains(&own)
                            && fs::remove_file(entry.path()).is_ok() =>
                    {
                        tracing::info!("removed leftover temporary {}", entry.path().display());
                        removed += 1;
                    }
                    _ => {}
                }
            }
        }
        Ok(removed)
    }
}

/// Joins a prefix and a child name into a store key.
pub fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        store.put("a/0", b"0123456789", false).unwrap();
        let object = store.open("a/0").unwrap().unwrap();
        store.put("a/0", b"abc", false).unwrap();
        assert_reads_parts(&*object);
        let replaced = store.open("a/0").unwrap().unwrap();
        assert_eq!(replaced.len(), 3);
        assert_ne!(replaced.version(), object.version(), "another version");
        assert_eq!(
            store.open("a/0").unwrap().unwrap().version(),
            replaced.version(),
            "the same version"
        );
        assert!(store.open("a/1").unwrap().is_none());
        assert!(store.open("a").unwrap().is_none(), "a prefix is no object");
        assert_reads_parts(&b"0123456789".to_vec());
    }

    #[test]
    fn get_info_list_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("g/a")).unwrap();
        fs::write(dir.path().join("g/a/0.0"), b"abc").unwrap();
        let store = DirectoryStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g/a/0.0").unwrap().unwrap(), b"abc");
        assert_eq!(store.get("g/a/1.0").unwrap(), None);
        assert_eq!(store.get("g/a/0.0/x").unwrap(), None);
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
        store.put("a/b/0.0", b"one", false).unwrap();
        store.put("a/b/0.0", b"two", true).unwrap();
        assert_eq!(store.get("a/b/0.0").unwrap().unwrap(), b"two");
        let names: Vec<_> = store
            .list("a/b")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["0.0"], "no temporary is left behind");
        store.delete("a/b/0.0", true).unwrap();
        store.delete("a/b/0.0", false).unwrap();
        assert_eq!(store.get("a/b/0.0").unwrap(), None);
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
            store.put("file/0", b"x", false).is_err(),
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
}
