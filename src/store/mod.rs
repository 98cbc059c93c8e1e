//! Key/value access to a Zarr store, behind one trait ([`Store`]): a local directory
//! ([`DirectoryStore`]), or S3-compatible and HTTP object storage ([`ObjectStore`], opened
//! from a URL by [`remote::open`]). Nothing above this module knows which; callers size
//! their read-ahead and choose where metadata comes from by the store's [`Profile`].

mod ahead;
mod beneath;
mod directory;
mod disk_cache;
mod metered;
mod object;
mod ranges;
pub mod remote;
mod runtime;

pub use directory::{DirectoryStore, LOOPS_BACK, TEMP_MARKER};
pub use object::{ObjectStore, RemoteOptions};
use std::io;
use std::time::SystemTime;

/// Size, modification time, owner and mode of a stored object or prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object size in bytes (0 for prefixes).
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
    /// Whether the key names a prefix ("directory") rather than an object.
    pub is_prefix: bool,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Permission bits (`0o777` at most).
    pub mode: u32,
}

/// Sizes of the file system a store lives on, as statvfs(3) gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Size in `fragment_size` units.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Free blocks unprivileged users may use.
    pub blocks_available: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Preferred block size.
    pub block_size: u32,
    /// Longest file name.
    pub name_max: u32,
    /// The unit of `blocks`.
    pub fragment_size: u32,
}

/// One child of a listed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Name relative to the listed prefix (no separators).
    pub name: String,
    /// Whether the child is itself a prefix.
    pub is_prefix: bool,
}

/// What tells versions of a stored object apart: replacing it (a new file renamed over it,
/// a new PUT) changes its identity, rewriting it in place its modification time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Size in bytes.
    pub len: u64,
    /// Last modification time.
    pub mtime: SystemTime,
    /// The object's identity (a file's device and inode; a hash of an object's ETag).
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
    /// Reads several parts at once, each as [`Self::read_at`] would (returning how many bytes
    /// each got); an object store fetches nearby parts with one request.
    fn read_many(&self, parts: &mut [(u64, &mut [u8])]) -> io::Result<Vec<usize>> {
        parts
            .iter_mut()
            .map(|(offset, buf)| self.read_at(*offset, buf))
            .collect()
    }
    /// The version opened, when the store can tell (what is derived from an object may be
    /// kept for as long as its version stays the same).
    fn version(&self) -> Option<ObjectVersion> {
        None
    }
}

/// What each request to a store costs, for callers that size their read-ahead and choose
/// where metadata comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Whether every request is a network round trip (object storage), not a local file.
    pub remote: bool,
    /// How many reads are worth keeping in flight for one sequential reader.
    pub requests_in_flight: usize,
    /// How long what was read stays trusted: an open after that sees what other writers
    /// (other nodes, other programs) stored since (close-to-open). On a local store each
    /// cached chunk is checked against its stored version at most once per this time; on a
    /// remote one (where each check is a round trip) an open after it drops the array's
    /// cached chunks. `None`: kept until remounted.
    pub revalidate_after: Option<std::time::Duration>,
}

impl Profile {
    /// A local directory: reads cost little more than the copy.
    pub const LOCAL: Profile = Profile {
        remote: false,
        requests_in_flight: 1,
        revalidate_after: None,
    };
}

/// How to read ahead parts of an object that the object itself locates (the inner chunks of
/// a shard, found through its index): given the object's size and version, maybe a first
/// part to read (the index), then the parts that follow from it.
pub trait PartPlan: Send + 'static {
    /// The part to read before the others can be named; `None` when none is needed (the
    /// index of this version is already known).
    fn first(&self, len: u64, version: ObjectVersion) -> Option<std::ops::Range<u64>>;
    /// The first part as it can be asked for before the object's size is known: its
    /// length and whether it ends the object (else it starts it). A store that does not
    /// know the object's size and version then learns them from this read instead of a
    /// HEAD first. `None` when the first part cannot be named so.
    fn first_unsized(&self) -> Option<(u64, bool)> {
        None
    }
    /// The parts to read ahead, given the first part's bytes when one was read.
    fn parts(
        &self,
        len: u64,
        version: ObjectVersion,
        first: Option<&[u8]>,
    ) -> Vec<std::ops::Range<u64>>;
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

/// The error for an object of `len` bytes, larger than the `max_len` a reader accepts.
pub fn too_large(len: u64, max_len: u64) -> io::Error {
    io::Error::other(format!(
        "{len} bytes, more than the {max_len} accepted here; refused unread"
    ))
}

/// A Zarr store: objects addressed by '/'-separated keys. Whole-object reads take the
/// largest size the caller accepts (`max_len`): a larger object is refused before any of it
/// is read.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads a whole object; `Ok(None)` when it does not exist.
    fn get(&self, key: &str, max_len: u64) -> io::Result<Option<Vec<u8>>>;
    /// Reads a whole object into `buf` (replacing its contents, reusing its allocation);
    /// `Ok(false)` when it does not exist.
    fn get_into(&self, key: &str, buf: &mut Vec<u8>, max_len: u64) -> io::Result<bool> {
        match self.get(key, max_len)? {
            Some(bytes) => {
                buf.clear();
                buf.extend_from_slice(&bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// Reads a whole object into `buf` as [`Self::get_into`] does; `Ok(None)` when it does
    /// not exist, else the version read when the store tells it at no extra cost (a local
    /// file's, from the descriptor it was read through).
    fn get_into_versioned(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        max_len: u64,
    ) -> io::Result<Option<Option<ObjectVersion>>> {
        Ok(self.get_into(key, buf, max_len)?.then_some(None))
    }
    /// The version of an object as stored now, where telling it is cheap (a local file's
    /// stat); `Ok(None)` when it is absent, or when the store cannot tell cheaply (object
    /// stores: their readers revalidate by close-to-open instead, see [`Profile`]).
    fn object_version(&self, _key: &str) -> io::Result<Option<ObjectVersion>> {
        Ok(None)
    }
    /// Opens an object of at most `max_len` bytes for reads at offsets, all of the version
    /// opened; `Ok(None)` when the object is absent. By default the object is read whole
    /// into memory.
    fn open(&self, key: &str, max_len: u64) -> io::Result<Option<Box<dyn OpenObject>>> {
        Ok(self
            .get(key, max_len)?
            .map(|bytes| Box::new(bytes) as Box<dyn OpenObject>))
    }
    /// Size, mtime, owner and mode of an object or prefix; `Ok(None)` when absent.
    fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>>;
    /// Size, mtime, owner and mode of an object; `Ok(None)` when there is none (a prefix is
    /// none). Stores where telling prefixes costs a listing answer without one.
    fn object_info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        Ok(self.info(key)?.filter(|info| !info.is_prefix))
    }
    /// Lists the direct children of a prefix ("" is the root).
    fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>>;
    /// Whether the prefix `key` is, through symbolic links, the directory of one of the
    /// prefixes above it: a loop that would make the tree endless. Stores without links
    /// have none.
    fn loops_back(&self, _key: &str) -> io::Result<bool> {
        Ok(false)
    }
    /// A short description for log lines (the store location for a given key).
    fn describe(&self, key: &str) -> String;
    /// Replaces an object atomically: readers and crashes see either the old or the new
    /// bytes. The object keeps the mode and, where the writer may set them, the owner and
    /// group of the object it replaces; a new object takes those of `like` (e.g. the
    /// array's metadata document) when given and present. With `durable`, the change
    /// itself is also made durable (directory synced).
    fn put(&self, key: &str, bytes: &[u8], like: Option<&str>, durable: bool) -> io::Result<()>;
    /// Deletes an object (absent is fine). With `durable`, the removal is synced.
    fn delete(&self, key: &str, durable: bool) -> io::Result<()>;
    /// Removes temporary objects left by an interrupted writer of an earlier session;
    /// returns how many were removed.
    fn remove_stale_temporaries(&self) -> io::Result<usize>;
    /// Says that `key` will be read whole soon ([`Self::get_into`] with the same bound):
    /// a store whose reads are round trips starts reading it now.
    fn prefetch(&self, _key: &str, _max_len: u64) {}
    /// Says that parts of the object `key` (of at most `max_len` bytes), which `plan` names,
    /// will be read soon through [`Self::open`]: a store whose reads are round trips starts
    /// reading them now, without making its caller wait, parts that touch in one request.
    fn prefetch_parts(&self, _key: &str, _max_len: u64, _plan: Box<dyn PartPlan>) {}
    /// What requests cost.
    fn profile(&self) -> Profile {
        Profile::LOCAL
    }
    /// The store's own counters (requests, retries, bytes), as `name value` rows.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Sizes of the file system holding the store; `Ok(None)` when there is none to tell.
    fn fs_stats(&self) -> io::Result<Option<FsStats>> {
        Ok(None)
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
