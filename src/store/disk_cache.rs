//! A local disk cache of stored objects (chunks, shard ranges, metadata), shared by every
//! mount on the node that names the same directory and kept across remounts.
//!
//! Each entry is one file, `objects/<hash>`, written aside and renamed into place: a header
//! (magic, then a JSON line with the store, key, ETag, length and CRC-32C of the bytes) and
//! the object's bytes. A file that does not check out (partial, corrupt, another key) is
//! removed and the object fetched again. The files' access times order them for eviction
//! (least recently used first) and their modification times say when the server last
//! confirmed the ETag. Size is bounded in bytes: whichever mount finds the directory over
//! its bound trims it, under an exclusive `flock` of `DIR/lock` so that one mount at a time
//! does.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, FileTimes};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 8] = b"ZARRFSC1";
/// Bytes read first from an entry: the magic and the header line, and the start of the
/// object's bytes.
const HEAD_BYTES: usize = 4096;

/// What an entry says about the bytes it holds.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    store: String,
    key: String,
    etag: String,
    len: u64,
    crc32c: u32,
}

/// An entry read back: the object's bytes, its ETag and when the server last confirmed it.
#[derive(Debug)]
pub struct Entry {
    /// The object's ETag when it was stored.
    pub etag: String,
    /// When the server last said this is the current version.
    pub validated: SystemTime,
    /// The object's bytes.
    pub bytes: Vec<u8>,
}

/// The disk cache of one store.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    limit: u64,
    /// Identifies the store in every entry (several stores may share the directory).
    store: String,
    /// Bytes this process added since it last trimmed the directory.
    added: AtomicU64,
}

/// Bytes of an entry read (and checked) at a time.
const CHECKED_PIECE: usize = 256 << 10;

/// Where an entry's bytes are read to.
trait Destination {
    /// Makes room for `len` bytes, or says why it cannot hold them.
    fn prepare(&mut self, len: usize) -> Result<(), String>;
    /// Bytes `range` of the room, to read into.
    fn part(&mut self, range: std::ops::Range<usize>) -> &mut [u8];
}

/// A buffer that takes the entry's size, reusing its allocation.
impl Destination for Vec<u8> {
    fn prepare(&mut self, len: usize) -> Result<(), String> {
        self.clear();
        if self.capacity() < len {
            // A fresh allocation: growing the old one would copy its stale bytes.
            *self = Vec::with_capacity(len);
        }
        Ok(())
    }

    fn part(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        // Grown piece by piece: each piece is zeroed right before it is read into.
        if self.len() < range.end {
            self.resize(range.end, 0);
        }
        &mut self[range]
    }
}

/// Room of a fixed size, which must be the entry's.
impl Destination for [u8] {
    fn prepare(&mut self, len: usize) -> Result<(), String> {
        if self.len() != len {
            return Err(format!(
                "holds {len} bytes, {} expected: damaged",
                self.len()
            ));
        }
        Ok(())
    }

    fn part(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        &mut self[range]
    }
}

/// How recent an entry's access time is kept at least: reads within it leave it alone.
const ACCESS_GRAIN: Duration = Duration::from_secs(60);

/// Temporary files older than this are leftovers of a writer that died.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

impl DiskCache {
    /// Opens (creating) the cache in `dir`, bounded to `limit` bytes, for the store named
    /// `store`; trims it to its bound.
    pub fn open(dir: &Path, limit: u64, store: &str) -> io::Result<Self> {
        for sub in ["objects", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            limit,
            store: store.to_string(),
            added: AtomicU64::new(0),
        };
        cache.trim()?;
        Ok(cache)
    }

    /// The file of an entry (for tests that damage it).
    #[cfg(test)]
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.path(key)
    }

    /// The file of an entry.
    fn path(&self, key: &str) -> PathBuf {
        let hash = |seed: u64| {
            BuildHasherDefault::<DefaultHasher>::default().hash_one((seed, &self.store, key))
        };
        self.dir
            .join("objects")
            .join(format!("{:016x}{:016x}", hash(1), hash(2)))
    }

    /// The entry for `key`, if there is a sound one; a damaged one is removed.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let mut bytes = Vec::new();
        let (etag, validated) = self.get_into(key, &mut bytes)?;
        Some(Entry {
            etag,
            validated,
            bytes,
        })
    }

    /// Reads the entry for `key` into `buf` (reusing its allocation); returns its ETag and
    /// when it was last confirmed. A damaged entry is removed (and `buf` left unspecified).
    pub fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> Option<(String, SystemTime)> {
        self.read(key, buf)
    }

    /// Reads the entry for `key` into `out`, which must be its exact size (the entry of a
    /// range of an object, say); returns its ETag and when it was last confirmed. An entry
    /// of another size is damaged: removed, like one that does not check out.
    pub fn read_into(&self, key: &str, out: &mut [u8]) -> Option<(String, SystemTime)> {
        self.read(key, out)
    }

    fn read<D: Destination + ?Sized>(
        &self,
        key: &str,
        dest: &mut D,
    ) -> Option<(String, SystemTime)> {
        let path = self.path(key);
        let file = File::open(&path).ok()?;
        match self.read_entry(&file, key, dest) {
            Ok((etag, validated, accessed)) => {
                // Eviction orders entries by the minute: a later read need not say so again.
                let now = SystemTime::now();
                if now.duration_since(accessed).unwrap_or_default() > ACCESS_GRAIN {
                    let _ = file.set_times(FileTimes::new().set_accessed(now));
                }
                Some((etag, validated))
            }
            Err(why) => {
                tracing::warn!(
                    "disk cache: {} ({key}): {why}; removed, fetched again",
                    path.display()
                );
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// When the entry for `key` was last confirmed, if there is one (not checked).
    pub fn confirmed(&self, key: &str) -> Option<SystemTime> {
        fs::metadata(self.path(key)).ok()?.modified().ok()
    }

    /// Reads and checks an entry into `dest`: the header from the first block, then the
    /// object's bytes.
    fn read_entry<D: Destination + ?Sized>(
        &self,
        mut file: &File,
        key: &str,
        dest: &mut D,
    ) -> Result<(String, SystemTime, SystemTime), String> {
        let meta = file.metadata().map_err(|e| e.to_string())?;
        let validated = meta.modified().map_err(|e| e.to_string())?;
        let accessed = meta.accessed().map_err(|e| e.to_string())?;
        let mut head = vec![0u8; HEAD_BYTES.min(meta.len() as usize)];
        file.read_exact(&mut head).map_err(|e| e.to_string())?;
        let rest = head
            .strip_prefix(MAGIC)
            .ok_or("not a cache entry (magic)")?;
        let newline = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("header cut short")?;
        let header: Header =
            serde_json::from_slice(&rest[..newline]).map_err(|e| format!("damaged header: {e}"))?;
        if header.store != self.store || header.key != key {
            return Err("holds another object".into());
        }
        let start = MAGIC.len() + newline + 1;
        let stored = meta.len() - start as u64;
        if stored != header.len {
            return Err(format!("{stored} of {} bytes: partial", header.len));
        }
        let total = usize::try_from(header.len).map_err(|_| "too large")?;
        dest.prepare(total)?;
        let first = &head[start..];
        dest.part(0..first.len()).copy_from_slice(first);
        // Checked piece by piece as read, while each piece is in the CPU's caches.
        let mut crc = crc32c::crc32c(first);
        let mut at = first.len();
        while at < total {
            let piece = dest.part(at..total.min(at + CHECKED_PIECE));
            file.read_exact(piece).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => "cut short while read: partial".to_string(),
                _ => e.to_string(),
            })?;
            crc = crc32c::crc32c_append(crc, piece);
            at += piece.len();
        }
        if crc != header.crc32c {
            return Err("checksum mismatch: corrupt".into());
        }
        Ok((header.etag, validated, accessed))
    }

    /// Stores `bytes` as the version `etag` of `key` (validated now). Failures only cost a
    /// later fetch, so they are logged, not returned.
    pub fn put(&self, key: &str, etag: &str, bytes: &[u8]) {
        if bytes.len() as u64 > self.limit / 4 {
            return;
        }
        if let Err(err) = self.write_entry(key, etag, bytes) {
            if crate::report::first(&format!("disk cache {}: {err}", self.dir.display())) {
                tracing::warn!("disk cache {}: {err}", self.dir.display());
            }
            return;
        }
        let added = self.added.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if added + bytes.len() as u64 > self.limit / 16 {
            self.added.store(0, Ordering::Relaxed);
            if let Err(err) = self.trim() {
                tracing::warn!("disk cache {}: trimming: {err}", self.dir.display());
            }
        }
    }

    fn write_entry(&self, key: &str, etag: &str, bytes: &[u8]) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let header = Header {
            store: self.store.clone(),
            key: key.to_string(),
            etag: etag.to_string(),
            len: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        };
        let temp = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = File::create(&temp)?;
            let mut head = MAGIC.to_vec();
            serde_json::to_writer(&mut head, &header)?;
            head.push(b'\n');
            file.write_all(&head)?;
            file.write_all(bytes)?;
            fs::rename(&temp, self.path(key))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Records that the server confirmed the entry of `key` is current.
    pub fn confirm(&self, key: &str) {
        if let Ok(file) = File::options().write(true).open(self.path(key)) {
            let _ = file.set_times(FileTimes::new().set_modified(SystemTime::now()));
        }
    }

    /// Removes the entry of `key`, if any.
    pub fn remove(&self, key: &str) {
        let _ = fs::remove_file(self.path(key));
    }

    /// Brings the directory under its bound, least recently used entries first, down to
    /// seven eighths of it; removes stale temporaries. Skipped while another mount trims.
    pub fn trim(&self) -> io::Result<()> {
        let lock = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("lock"))?;
        // SAFETY: flock on a descriptor this function owns; released when it is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(());
        }
        let now = SystemTime::now();
        for temp in fs::read_dir(self.dir.join("tmp"))?.flatten() {
            let stale = temp
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TEMPORARY);
            if stale {
                let _ = fs::remove_file(temp.path());
            }
        }
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = fs::read_dir(self.dir.join("objects"))?
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.accessed().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.limit {
            return Ok(());
        }
        entries.sort();
        let target = self.limit / 8 * 7;
        for (_, len, path) in entries {
            if total <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), 1 << 20, "s3://b").unwrap();
        assert!(cache.get("a/0").is_none());
        cache.put("a/0", "\"e1\"", b"chunk bytes");
        let entry = cache.get("a/0").unwrap();
        assert_eq!(
            (entry.etag.as_str(), &entry.bytes[..]),
            ("\"e1\"", &b"chunk bytes"[..])
        );
        // Another store sharing the directory has its own entries.
        let other = DiskCache::open(dir.path(), 1 << 20, "s3://c").unwrap();
        assert!(other.get("a/0").is_none());
        // A flipped byte, then a cut file: detected, removed, a miss.
        let path = cache.path("a/0");
        let mut content = fs::read(&path).unwrap();
        let last = content.len() - 1;
        content[last] ^= 1;
        fs::write(&path, &content).unwrap();
        assert!(cache.get("a/0").is_none());
        assert!(!path.exists(), "a corrupt entry is removed");
        cache.put("a/0", "\"e1\"", b"chunk bytes");
        let content = fs::read(&path).unwrap();
        fs::write(&path, &content[..content.len() - 3]).unwrap();
        assert!(cache.get("a/0").is_none(), "a partial entry is a miss");
    }

    #[test]
    fn trimming_drops_least_recently_used_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), 64 << 10, "s3://b").unwrap();
        let bytes = vec![7u8; 10 << 10];
        for i in 0..6 {
            cache.put(&format!("k{i}"), "e", &bytes);
            // Distinct access times, oldest first; k0 is used again last.
            let old = SystemTime::now() - Duration::from_secs(100 - i);
            File::open(cache.path(&format!("k{i}")))
                .unwrap()
                .set_times(FileTimes::new().set_accessed(old))
                .unwrap();
        }
        assert!(cache.get("k0").is_some());
        // 70 KiB in a 64 KiB cache: down to 56 KiB, k1 and k2 (least recently used) go.
        cache.put("k6", "e", &bytes);
        cache.trim().unwrap();
        let kept: Vec<bool> = (0..7)
            .map(|i| cache.get(&format!("k{i}")).is_some())
            .collect();
        assert_eq!(kept, [true, false, false, true, true, true, true]);
    }
}
