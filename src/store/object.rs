//! A store in S3-compatible or HTTP object storage, through the `object_store` crate.
//!
//! Callers stay synchronous: each call runs its requests on the store's own runtime (see
//! [`super::runtime`]) and waits for them. At most `max_requests` requests are in flight
//! (object_store's `LimitStore`); object_store retries 5xx, throttling and dropped
//! connections with back-off, and each request has a timeout. A request that finally fails
//! is an error naming the key and the status, which callers turn into EIO and log once.
//!
//! Lookups are by key (GET, or HEAD for sizes); listings happen only when a directory is
//! listed. Absent keys and object heads are remembered for the TTL. Reads record the ETag of
//! what they read, and a write of that key is conditional on it (`If-Match`, or
//! `If-None-Match: *` for a key read as absent), so a chunk another node changed meanwhile
//! is refused rather than overwritten.

use super::ahead::{self, RangesAhead, SharedRead};
use super::disk_cache::DiskCache;
use super::metered::Counters;
use super::runtime::Runtime;
use super::{
    ranges, too_large, ListEntry, ObjectInfo, ObjectVersion, OpenObject, PartPlan, Profile, Store,
};
use bytes::Bytes;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutMode, PutOptions, UpdateVersion};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a remote store behaves, from the command line.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Requests in flight at most.
    pub max_requests: usize,
    /// How long absent keys, object heads and disk-cache entries are trusted unchecked.
    pub ttl: Duration,
    /// Longest wait for one request (retries add to it, within `deadline`).
    pub request_timeout: Duration,
    /// Whether the store refuses writes (HTTP stores).
    pub read_only: bool,
    /// Whether the server lists keys (S3 does; a plain HTTP server does not, and there only
    /// consolidated metadata tells which nodes a group has).
    pub listable: bool,
    /// Bytes of object ranges read ahead of their readers held at most (a quarter of the
    /// chunk cache's budget: they wait in memory for their readers).
    pub max_ahead_bytes: u64,
}

/// What a read of a key knew about the stored object, for conditional writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    /// Read as absent: a write must create it.
    Absent,
    /// Read with this ETag: a write must replace exactly that version.
    ETag(String),
}

/// What a whole-object read found: the bytes (`None`: absent) and their version, if the
/// server tells it.
#[derive(Debug)]
struct Fetched {
    bytes: Option<Bytes>,
    version: Option<Version>,
}

impl Fetched {
    const ABSENT: Fetched = Fetched {
        bytes: None,
        version: Some(Version::Absent),
    };
}

/// An object's size, modification time and ETag.
#[derive(Debug, Clone)]
struct Head {
    info: ObjectInfo,
    etag: Option<String>,
}

/// A value remembered for the TTL.
type Timed<T> = (Instant, T);

/// A whole-object read started ahead of its caller.
type Pending = tokio::task::JoinHandle<io::Result<Fetched>>;

/// The state requests share (on the runtime's threads too).
struct Inner {
    name: String,
    store: Arc<dyn object_store::ObjectStore>,
    options: RemoteOptions,
    counters: Arc<Counters>,
    disk: Option<DiskCache>,
    /// Whether the server honours conditional writes (until it says it does not).
    conditional: AtomicBool,
    /// Object heads, or `None` for absent objects, by key.
    heads: Mutex<lru::LruCache<String, Timed<Option<Head>>>>,
    /// Whether keys are prefixes (a listing under them has objects).
    prefixes: Mutex<lru::LruCache<String, Timed<bool>>>,
    /// The version each key had when last read or written here.
    versions: Mutex<lru::LruCache<String, Version>>,
    /// Reads started ahead of their callers, by key.
    pending: Mutex<HashMap<String, (Instant, Pending)>>,
    /// Keys a caller is reading whole from the server now (a read ahead of them would read
    /// them twice).
    reading: Mutex<std::collections::HashSet<String>>,
    /// Ranges of objects read ahead of their readers.
    ahead: Arc<RangesAhead>,
}

/// A store in object storage.
#[derive(Debug)]
pub struct ObjectStore {
    inner: Arc<Inner>,
    runtime: Arc<Runtime>,
}

/// Names the store only: the client's configuration holds credentials, never shown.
impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Remembered keys per cache (heads, prefixes, versions).
const REMEMBERED: usize = 1 << 20;

/// The store path of a key ("" is the root).
fn path(key: &str) -> io::Result<Path> {
    Path::parse(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// The status of a failed request, for messages: the HTTP status when there was one, else
/// the innermost cause (connection refused, timed out…).
fn reason(err: &object_store::Error) -> String {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => "404 Not Found".into(),
        E::Precondition { .. } => "412 Precondition Failed".into(),
        E::NotModified { .. } => "304 Not Modified".into(),
        E::AlreadyExists { .. } => "409 Conflict".into(),
        E::PermissionDenied { .. } => "403 Forbidden".into(),
        E::Unauthenticated { .. } => "401 Unauthorized".into(),
        _ => {
            let text = err.to_string();
            if let Some(at) = text.find("status code: ") {
                let status = &text[at + 13..];
                return status
                    .split(':')
                    .next()
                    .unwrap_or(status)
                    .trim()
                    .to_string();
            }
            let mut source: &dyn std::error::Error = err;
            while let Some(next) = source.source() {
                source = next;
            }
            let retries = text
                .find(", after ")
                .and_then(|at| text[at + 2..].split(',').next())
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            format!("{source}{retries}")
        }
    }
}

impl Inner {
    /// A failure of `operation` on `key`, for the caller (EIO) and its log line.
    fn failure(&self, operation: &str, err: &object_store::Error) -> io::Error {
        Counters::add(&self.counters.failures, 1);
        io::Error::other(format!("{operation} failed: {}", reason(err)))
    }

    fn fresh<T: Clone>(
        &self,
        cache: &Mutex<lru::LruCache<String, Timed<T>>>,
        key: &str,
    ) -> Option<T> {
        let mut cache = cache.lock();
        match cache.get(key) {
            Some((at, value)) if at.elapsed() < self.options.ttl => Some(value.clone()),
            _ => None,
        }
    }

    fn remember_head(&self, key: &str, head: Option<Head>) {
        self.heads
            .lock()
            .put(key.to_string(), (Instant::now(), head));
    }

    /// The disk-cache entry holding the head of `key` (its size and modification time,
    /// under its ETag); no object key holds a NUL.
    fn head_entry(key: &str) -> String {
        format!("\0head\0{key}")
    }

    /// The head of `key` kept in the disk cache, while confirmed within the TTL: a remount
    /// trusting the disk cache opens objects without a HEAD each.
    fn head_from_disk(&self, key: &str) -> Option<Head> {
        let entry = self.disk.as_ref()?.get(&Self::head_entry(key))?;
        if entry.validated.elapsed().ok()? >= self.options.ttl {
            return None;
        }
        let (size, mtime_ns): (u64, u64) = serde_json::from_slice(&entry.bytes).ok()?;
        Some(Head {
            info: ObjectInfo {
                size,
                mtime: std::time::UNIX_EPOCH + Duration::from_nanos(mtime_ns),
                is_prefix: false,
                ..owner_and_mode(false)
            },
            etag: Some(entry.etag),
        })
    }

    /// Keeps the head of `key` in the disk cache (when the server gave an ETag).
    fn keep_head_on_disk(&self, key: &str, head: &Head) {
        if let (Some(disk), Some(etag)) = (&self.disk, &head.etag) {
            let since = head.info.mtime.duration_since(std::time::UNIX_EPOCH);
            let mtime_ns = since.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let bytes = serde_json::to_vec(&(head.info.size, mtime_ns)).expect("two numbers");
            disk.put(&Self::head_entry(key), etag, &bytes);
        }
    }

    /// Forgets the head of `key`, here and on disk (the object changed).
    fn forget_head(&self, key: &str) {
        self.heads.lock().pop(key);
        if let Some(disk) = &self.disk {
            disk.remove(&Self::head_entry(key));
        }
    }

    fn remember_version(&self, key: &str, version: Version) {
        self.versions.lock().put(key.to_string(), version);
    }

    fn head_of(meta: &object_store::ObjectMeta) -> Head {
        Head {
            info: ObjectInfo {
                size: meta.size,
                mtime: meta.last_modified.into(),
                is_prefix: false,
                ..owner_and_mode(false)
            },
            etag: meta.e_tag.clone(),
        }
    }

    /// Reads a whole object of at most `max_len` bytes; its bytes are `None` when absent.
    /// Served from the disk cache while its entry is younger than the TTL, else revalidated
    /// with `If-None-Match`. The version read is for the caller to record once it has the
    /// bytes (a read started ahead may never be handed to anyone).
    async fn fetch(self: Arc<Self>, key: String, max_len: u64) -> io::Result<Fetched> {
        let found = |bytes: Bytes, etag: Option<String>| Fetched {
            bytes: Some(bytes),
            version: etag.map(Version::ETag),
        };
        if let Some(None) = self.fresh(&self.heads, &key) {
            Counters::add(&self.counters.negative_hits, 1);
            return Ok(Fetched::ABSENT);
        }
        let cached = self.disk.as_ref().and_then(|disk| disk.get(&key));
        if let Some(entry) = &cached {
            let age = entry.validated.elapsed().unwrap_or(Duration::MAX);
            if age < self.options.ttl && entry.bytes.len() as u64 <= max_len {
                Counters::add(&self.counters.disk_cache_hits, 1);
                return Ok(found(
                    Bytes::from(entry.bytes.clone()),
                    Some(entry.etag.clone()),
                ));
            }
        }
        let options = GetOptions {
            if_none_match: cached.as_ref().map(|entry| entry.etag.clone()),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path(&key)?, options).await {
            Ok(result) => result,
            Err(err @ object_store::Error::NotModified { .. }) => {
                let Some(entry) = cached else {
                    return Err(self.failure("GET", &err));
                };
                Counters::add(&self.counters.disk_cache_revalidated, 1);
                if let Some(disk) = &self.disk {
                    disk.confirm(&key);
                }
                return Ok(found(Bytes::from(entry.bytes), Some(entry.etag)));
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.remember_head(&key, None);
                if let Some(disk) = &self.disk {
                    disk.remove(&key);
                }
                return Ok(Fetched::ABSENT);
            }
            Err(err) => return Err(self.failure("GET", &err)),
        };
        if result.meta.size > max_len {
            return Err(too_large(result.meta.size, max_len));
        }
        let head = Self::head_of(&result.meta);
        let bytes = result.bytes().await.map_err(|e| self.failure("GET", &e))?;
        Counters::add(&self.counters.bytes_fetched, bytes.len() as u64);
        if let (Some(etag), Some(disk)) = (&head.etag, &self.disk) {
            disk.put(&key, etag, &bytes);
        }
        let etag = head.etag.clone();
        self.remember_head(&key, Some(head));
        Ok(found(bytes, etag))
    }

    /// Reads `key` into `buf` from the disk cache when its entry was confirmed within the
    /// TTL (and fits `max_len`); whether it did.
    fn fresh_from_disk(&self, key: &str, buf: &mut Vec<u8>, max_len: u64) -> bool {
        let Some(disk) = &self.disk else {
            return false;
        };
        let ttl = self.options.ttl;
        let fresh = |t: std::time::SystemTime| t.elapsed().is_ok_and(|age| age < ttl);
        if !disk.confirmed(key).is_some_and(fresh) {
            return false;
        }
        match disk.get_into(key, buf) {
            Some((etag, validated)) if fresh(validated) && buf.len() as u64 <= max_len => {
                Counters::add(&self.counters.disk_cache_hits, 1);
                self.remember_version(key, Version::ETag(etag));
                true
            }
            _ => false,
        }
    }

    /// The head of an object (`None` when absent), remembered for the TTL.
    async fn head(&self, key: &str) -> io::Result<Option<Head>> {
        if let Some(known) = self.known_head(key) {
            return Ok(known);
        }
        let head = match self.store.head(&path(key)?).await {
            Ok(meta) => Some(Self::head_of(&meta)),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(err) => return Err(self.failure("HEAD", &err)),
        };
        if let Some(head) = &head {
            self.keep_head_on_disk(key, head);
        }
        self.remember_head(key, head.clone());
        Ok(head)
    }

    /// The head of an object as known without a request (remembered, or kept on disk, within
    /// the TTL); `None` when a request is needed, `Some(None)` when known absent.
    fn known_head(&self, key: &str) -> Option<Option<Head>> {
        if let Some(head) = self.fresh(&self.heads, key) {
            if head.is_none() {
                Counters::add(&self.counters.negative_hits, 1);
            }
            return Some(head);
        }
        let head = self.head_from_disk(key)?;
        Counters::add(&self.counters.disk_cache_hits, 1);
        self.remember_head(key, Some(head.clone()));
        Some(Some(head))
    }

    /// Reads the first or last (`at_end`) `n` bytes of `key` without knowing its size, and
    /// learns its head from the answer (remembered, and kept on disk, as a HEAD's); the bytes
    /// are kept on disk as the range they turned out to be. `None` when absent.
    async fn get_unsized(
        &self,
        key: &str,
        n: u64,
        at_end: bool,
    ) -> io::Result<Option<(Head, Bytes)>> {
        let range = match at_end {
            true => GetRange::Suffix(n),
            false => GetRange::Bounded(0..n),
        };
        let options = GetOptions {
            range: Some(range),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path(key)?, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                self.remember_head(key, None);
                return Ok(None);
            }
            Err(err) => return Err(self.failure("GET", &err)),
        };
        let head = Self::head_of(&result.meta);
        let read = result.range.clone();
        let bytes = result.bytes().await.map_err(|e| self.failure("GET", &e))?;
        Counters::add(&self.counters.bytes_fetched, bytes.len() as u64);
        self.keep_head_on_disk(key, &head);
        self.remember_head(key, Some(head.clone()));
        if let (Some(disk), Some(etag)) = (&self.disk, &head.etag) {
            if let Some(entry) = Self::range_entry(key, Some(etag), &read) {
                disk.put(&entry, etag, &bytes);
            }
        }
        Ok(Some((head, bytes)))
    }

    /// Whether objects lie under `key/`, remembered for the TTL. (A prefix some servers
    /// keep listing after its last object went proves nothing: objects are looked for.)
    async fn is_prefix(&self, key: &str) -> io::Result<bool> {
        if !self.options.listable {
            return Ok(false);
        }
        if let Some(known) = self.fresh(&self.prefixes, key) {
            return Ok(known);
        }
        use futures::StreamExt;
        let prefix = path(key)?;
        let mut listing = self.store.list(Some(&prefix));
        let found = loop {
            match listing.next().await {
                None => break false,
                Some(Ok(meta)) if meta.location != prefix => break true,
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(self.failure("LIST", &err)),
            }
        };
        self.prefixes
            .lock()
            .put(key.to_string(), (Instant::now(), found));
        Ok(found)
    }

    /// The disk-cache entry of `part` of the version `etag` of `key` (ranges of one version
    /// never change, so they are kept under that version).
    fn range_entry(key: &str, etag: Option<&str>, part: &Range<u64>) -> Option<String> {
        etag.map(|etag| format!("{key}#{etag}#{}-{}", part.start, part.end))
    }

    /// Reads `range` of the version `etag` of `key` and keeps each of its parts `kept` in
    /// the disk cache as an entry of its own (a range that is its only part is looked for
    /// there first).
    async fn read_range_keeping(
        &self,
        key: &str,
        etag: Option<&str>,
        range: Range<u64>,
        kept: &[Range<u64>],
    ) -> io::Result<Bytes> {
        if let (Some(disk), [only]) = (&self.disk, kept) {
            let entry = Self::range_entry(key, etag, only).filter(|_| *only == range);
            if let Some(entry) = entry.and_then(|entry| disk.get(&entry)) {
                Counters::add(&self.counters.disk_cache_hits, 1);
                return Ok(Bytes::from(entry.bytes));
            }
        }
        let options = GetOptions {
            if_match: etag.map(str::to_string),
            range: Some(GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let fetched = async {
            let result = self.store.get_opts(&path(key)?, options).await;
            match result {
                Ok(result) => result.bytes().await.map_err(|e| self.failure("GET", &e)),
                Err(object_store::Error::Precondition { .. }) => {
                    // The next open asks for the object's head anew.
                    self.forget_head(key);
                    Err(io::Error::other(
                        "the object changed while open (412 Precondition Failed); open it again",
                    ))
                }
                Err(err) => Err(self.failure("GET", &err)),
            }
        }
        .await?;
        Counters::add(&self.counters.bytes_fetched, fetched.len() as u64);
        if let (Some(disk), Some(etag)) = (&self.disk, etag) {
            for part in kept {
                let entry = Self::range_entry(key, Some(etag), part);
                if let (Some(entry), Some(bytes)) =
                    (entry, ahead::slice(&fetched, range.start, part))
                {
                    disk.put(&entry, etag, &bytes);
                }
            }
        }
        Ok(fetched)
    }

    /// Starts reading `request` of the version `etag` of `key` on the runtime, keeping its
    /// parts `kept` in the disk cache; every reader of a part shares the result.
    fn start_read(
        self: &Arc<Self>,
        key: &str,
        etag: Option<&str>,
        request: Range<u64>,
        kept: Vec<Range<u64>>,
    ) -> SharedRead {
        let (inner, key, etag) = (self.clone(), key.to_string(), etag.map(str::to_string));
        let task = tokio::spawn(async move {
            inner
                .read_range_keeping(&key, etag.as_deref(), request, &kept)
                .await
        });
        async move {
            match task.await {
                Ok(Ok(bytes)) => Ok(bytes),
                Ok(Err(err)) => Err(err.to_string()),
                Err(err) => Err(err.to_string()),
            }
        }
        .boxed()
        .shared()
    }

    /// Reads the parts of `key` that `plan` names ahead of their readers (see
    /// [`Store::prefetch_parts`]): the object's head (remembered for the TTL; learnt from
    /// the first part's read when the plan can name that part without the object's size),
    /// the plan's first part when it needs one, then the parts, touching ones in one request, not
    /// waiting for them. The plan ends (`planning` is dropped) once they are being read;
    /// parts already being read, or kept on disk, are not read again.
    async fn read_parts_ahead(
        self: Arc<Self>,
        key: String,
        max_len: u64,
        plan: Box<dyn PartPlan>,
        planning: ahead::Planning,
    ) -> io::Result<()> {
        let _planning = planning;
        // Without the object's head, the first part (named from the object's end or start)
        // is read without it and tells it: one round trip instead of two.
        let (head, unsized_first) = match (self.known_head(&key), plan.first_unsized()) {
            (Some(None), _) => return Ok(()),
            (Some(Some(head)), _) => (head, None),
            (None, Some((n, at_end))) => match self.get_unsized(&key, n, at_end).await? {
                Some((head, bytes)) => (head, Some(bytes)),
                None => return Ok(()),
            },
            (None, None) => match self.head(&key).await? {
                Some(head) => (head, None),
                None => return Ok(()),
            },
        };
        let len = head.info.size;
        if len > max_len {
            return Ok(());
        }
        let etag = head.etag.as_deref();
        let Some(version) = version_of(len, etag) else {
            // Without an ETag nothing read could be tied to a version (nor an index kept):
            // its readers read on demand, as they would without this plan.
            return Ok(());
        };
        let first_range = match unsized_first {
            Some(_) => None,
            None => plan.first(len, version),
        };
        let first = match (unsized_first, first_range.clone()) {
            (Some(bytes), _) => Some(bytes),
            (None, Some(range)) => {
                let (start, read) = self.ahead.get_or_start(
                    &key,
                    etag,
                    &range,
                    range.clone(),
                    vec![range.clone()],
                    |request, kept| self.start_read(&key, etag, request, kept),
                );
                let bytes = read.await.map_err(io::Error::other)?;
                ahead::slice(&bytes, start, &range)
            }
            (None, None) => None,
        };
        let parts = plan.parts(len, version, first.as_deref());
        if let Some(range) = first_range {
            // The plan has what it needed (a shard's index, now cached by the plan).
            self.ahead.take(&key, etag, &[range]);
        }
        let parts: Vec<Range<u64>> = self
            .ahead
            .not_held(&key, etag, parts)
            .into_iter()
            .filter(|part| {
                let entry = Self::range_entry(&key, etag, part);
                !matches!((&self.disk, entry), (Some(disk), Some(entry)) if disk.confirmed(&entry).is_some())
            })
            .collect();
        let room = (4 * self.options.max_requests).saturating_sub(self.ahead.len());
        let mut bytes_room = self
            .options
            .max_ahead_bytes
            .saturating_sub(self.ahead.held_bytes());
        // Only parts that touch share a request: the bytes of a gap (another chunk's, as a
        // rule) would be read again when their own turn comes.
        for request in ranges::merge_within(&parts, 0).into_iter().take(room) {
            let Some(left) = bytes_room.checked_sub(request.end - request.start) else {
                break;
            };
            bytes_room = left;
            let within = ranges::inside(&request, &parts);
            let part = within[0].clone();
            // The read runs on its own; readers find it by the part they want.
            let _read =
                self.ahead
                    .get_or_start(&key, etag, &part, request, within, |request, kept| {
                        self.start_read(&key, etag, request, kept)
                    });
        }
        Ok(())
    }
}

/// Marks a key as being read by a caller until dropped.
struct Reading<'a> {
    keys: &'a Mutex<std::collections::HashSet<String>>,
    key: String,
}

impl<'a> Reading<'a> {
    fn new(keys: &'a Mutex<std::collections::HashSet<String>>, key: &str) -> Self {
        keys.lock().insert(key.to_string());
        Reading {
            keys,
            key: key.to_string(),
        }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.key);
    }
}

/// The version a read of `len` bytes with `etag` stands for (the ETag's hash as identity),
/// when the server gave an ETag.
fn version_of(len: u64, etag: Option<&str>) -> Option<ObjectVersion> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(etag?);
    Some(ObjectVersion {
        len,
        mtime: std::time::SystemTime::UNIX_EPOCH,
        identity: (hash, len),
    })
}

/// The owner (this daemon's user) and mode (rw-r--r--, directories rwxr-xr-x) shown for
/// objects and prefixes, which carry neither.
fn owner_and_mode(prefix: bool) -> ObjectInfo {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    ObjectInfo {
        size: 0,
        mtime: std::time::UNIX_EPOCH,
        is_prefix: prefix,
        uid,
        gid,
        mode: if prefix { 0o755 } else { 0o644 },
    }
}

impl ObjectStore {
    /// A store over `store` (already confined to the store's prefix), named `name` in
    /// messages, with its requests on `runtime`.
    pub fn new(
        name: String,
        store: Arc<dyn object_store::ObjectStore>,
        runtime: Runtime,
        options: RemoteOptions,
        counters: Arc<Counters>,
        disk: Option<DiskCache>,
    ) -> Self {
        let remembered = NonZeroUsize::new(REMEMBERED).expect("non-zero");
        ObjectStore {
            inner: Arc::new(Inner {
                name,
                store,
                options,
                counters,
                disk,
                conditional: AtomicBool::new(true),
                heads: Mutex::new(lru::LruCache::new(remembered)),
                prefixes: Mutex::new(lru::LruCache::new(remembered)),
                versions: Mutex::new(lru::LruCache::new(remembered)),
                pending: Mutex::new(HashMap::new()),
                reading: Mutex::default(),
                ahead: Arc::default(),
            }),
            runtime: Arc::new(runtime),
        }
    }

    /// Reads started ahead are kept for their callers this long at most.
    const PENDING_KEPT: Duration = Duration::from_secs(30);

    /// The read of `key` started ahead, if any, taken out for this caller.
    fn take_pending(&self, key: &str) -> Option<Pending> {
        self.inner.pending.lock().remove(key).map(|(_, p)| p)
    }

    fn refuse_writes(&self) -> io::Result<()> {
        if self.inner.options.read_only {
            return Err(io::Error::new(
                io::ErrorKind::ReadOnlyFilesystem,
                "an HTTP store is read-only",
            ));
        }
        Ok(())
    }

    /// Writes `bytes` to `key` with `mode`; conditional modes the server does not
    /// implement fall back, once and for all, to plain overwrites (with a warning).
    async fn put_with(
        inner: &Inner,
        key: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> object_store::Result<object_store::PutResult> {
        let location = path(key).map_err(|e| object_store::Error::Generic {
            store: "zarrfs",
            source: Box::new(e),
        })?;
        let options = PutOptions {
            mode: mode.clone(),
            ..Default::default()
        };
        match inner
            .store
            .put_opts(&location, bytes.clone().into(), options)
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) if mode != PutMode::Overwrite => {
                if inner.conditional.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "{}: the server does not support conditional writes; writes from \
                         several nodes to one chunk can no longer be detected",
                        inner.name
                    );
                }
                inner.store.put(&location, bytes.into()).await
            }
            result => result,
        }
    }
}

impl Store for ObjectStore {
    fn get(&self, key: &str, max_len: u64) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.get_into(key, &mut buf, max_len)?.then_some(buf))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>, max_len: u64) -> io::Result<bool> {
        let pending = self.take_pending(key);
        // From here until it has the bytes, a read ahead of the key would read it twice (a
        // damaged disk-cache entry is removed before it is fetched again).
        let _reading = pending
            .is_none()
            .then(|| Reading::new(&self.inner.reading, key));
        if pending.is_none() && self.inner.fresh_from_disk(key, buf, max_len) {
            return Ok(true);
        }
        let fetched = match pending {
            Some(pending) => self
                .runtime
                .run(async { pending.await.map_err(io::Error::other)? })?,
            None => self
                .runtime
                .run(self.inner.clone().fetch(key.to_string(), max_len))?,
        };
        if let Some(bytes) = &fetched.bytes {
            if bytes.len() as u64 > max_len {
                return Err(too_large(bytes.len() as u64, max_len));
            }
        }
        // What this caller gets is what a write of the key will be conditional on.
        match fetched.version {
            Some(version) => self.inner.remember_version(key, version),
            None => {
                self.inner.versions.lock().pop(key);
            }
        }
        match fetched.bytes {
            Some(bytes) => {
                // The object's own buffer when nothing else holds it: no copy.
                *buf = Vec::from(bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn prefetch(&self, key: &str, max_len: u64) {
        // A fresh disk-cache entry costs no request: its caller reads it.
        let ttl = self.inner.options.ttl;
        if let Some(disk) = &self.inner.disk {
            let confirmed = disk.confirmed(key).and_then(|t| t.elapsed().ok());
            if confirmed.is_some_and(|age| age < ttl) {
                return;
            }
        }
        let mut pending = self.inner.pending.lock();
        if pending.contains_key(key) || self.inner.reading.lock().contains(key) {
            return;
        }
        pending.retain(|_, (started, _)| started.elapsed() < Self::PENDING_KEPT);
        if pending.len() >= 4 * self.inner.options.max_requests {
            return;
        }
        let task = self
            .runtime
            .spawn(self.inner.clone().fetch(key.to_string(), max_len));
        pending.insert(key.to_string(), (Instant::now(), task));
    }

    fn prefetch_parts(&self, key: &str, max_len: u64, plan: Box<dyn PartPlan>) {
        // One plan per object at a time; its readers wait for it from now on.
        let Some(planning) = self.inner.ahead.plan(key) else {
            return;
        };
        let job = self
            .inner
            .clone()
            .read_parts_ahead(key.to_string(), max_len, plan, planning);
        drop(self.runtime.spawn(async move {
            if let Err(err) = job.await {
                // Only a guess failed: the read that needs the parts says why.
                tracing::debug!("read ahead: {err}");
            }
            Ok(())
        }));
    }

    fn open(&self, key: &str, max_len: u64) -> io::Result<Option<Box<dyn OpenObject>>> {
        let head = self.runtime.run(async {
            self.inner.ahead.plan_ended(key).await;
            self.inner.head(key).await
        })?;
        let Some(head) = head else {
            return Ok(None);
        };
        if head.info.size > max_len {
            return Err(too_large(head.info.size, max_len));
        }
        Ok(Some(Box::new(RemoteObject {
            inner: self.inner.clone(),
            runtime: self.runtime.clone(),
            key: key.to_string(),
            len: head.info.size,
            etag: head.etag,
        })))
    }

    fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        if key.is_empty() {
            return Ok(Some(owner_and_mode(true)));
        }
        self.runtime.run(async {
            if let Some(head) = self.inner.head(key).await? {
                return Ok(Some(head.info));
            }
            Ok(self
                .inner
                .is_prefix(key)
                .await?
                .then(|| owner_and_mode(true)))
        })
    }

    fn object_info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        let head = self.runtime.run(self.inner.head(key))?;
        Ok(head.map(|head| head.info))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>> {
        if !self.inner.options.listable {
            return Ok(Vec::new());
        }
        let location = if prefix.is_empty() {
            None
        } else {
            Some(path(prefix)?)
        };
        let listed = self.runtime.run(async {
            Ok(self
                .inner
                .store
                .list_with_delimiter(location.as_ref())
                .await)
        })?;
        let listed = match listed {
            Ok(listed) => listed,
            Err(err) => return Err(self.inner.failure("LIST", &err)),
        };
        let name = |p: &Path| p.filename().map(str::to_string);
        let mut entries: Vec<ListEntry> = listed
            .common_prefixes
            .iter()
            .filter_map(name)
            .map(|name| ListEntry {
                name,
                is_prefix: true,
            })
            .chain(listed.objects.iter().filter_map(|meta| {
                (Some(&meta.location) != location.as_ref())
                    .then(|| name(&meta.location))
                    .flatten()
                    .map(|name| ListEntry {
                        name,
                        is_prefix: false,
                    })
            }))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        Ok(entries)
    }

    fn describe(&self, key: &str) -> String {
        if key.is_empty() {
            self.inner.name.clone()
        } else {
            format!("{}/{key}", self.inner.name.trim_end_matches('/'))
        }
    }

    fn put(&self, key: &str, bytes: &[u8], _like: Option<&str>, _durable: bool) -> io::Result<()> {
        self.refuse_writes()?;
        let inner = &self.inner;
        let known = inner.versions.lock().get(key).cloned();
        let mode = match known {
            _ if !inner.conditional.load(Ordering::Relaxed) => PutMode::Overwrite,
            Some(Version::ETag(etag)) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag),
                version: None,
            }),
            Some(Version::Absent) => PutMode::Create,
            None => PutMode::Overwrite,
        };
        // A read of the old version started ahead must not be handed to a later caller.
        inner.pending.lock().remove(key);
        inner.ahead.forget(key);
        let payload = Bytes::copy_from_slice(bytes);
        let result = self
            .runtime
            .run(async { Ok(Self::put_with(inner, key, payload, mode).await) })?;
        inner.forget_head(key);
        match result {
            Ok(done) => {
                Counters::add(&inner.counters.bytes_put, bytes.len() as u64);
                match &done.e_tag {
                    Some(etag) => {
                        inner.remember_version(key, Version::ETag(etag.clone()));
                        if let Some(disk) = &inner.disk {
                            disk.put(key, etag, bytes);
                        }
                    }
                    None => {
                        inner.versions.lock().pop(key);
                    }
                }
                Ok(())
            }
            Err(
                err @ (object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }),
            ) => {
                Counters::add(&inner.counters.conflicts, 1);
                Err(io::Error::other(format!(
                    "PUT refused: {}: the object changed in the store since this mount read \
                     it (written by another node?); not overwritten",
                    reason(&err)
                )))
            }
            Err(err) => Err(inner.failure("PUT", &err)),
        }
    }

    fn delete(&self, key: &str, _durable: bool) -> io::Result<()> {
        self.refuse_writes()?;
        let inner = &self.inner;
        inner.pending.lock().remove(key);
        inner.ahead.forget(key);
        inner.forget_head(key);
        let result = self
            .runtime
            .run(async { Ok(inner.store.delete(&path(key)?).await) })?;
        match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                inner.remember_head(key, None);
                inner.remember_version(key, Version::Absent);
                if let Some(disk) = &inner.disk {
                    disk.remove(key);
                }
                Ok(())
            }
            Err(err) => Err(inner.failure("DELETE", &err)),
        }
    }

    fn remove_stale_temporaries(&self) -> io::Result<usize> {
        // Every write is one PUT: nothing is ever left half-written.
        Ok(0)
    }

    fn profile(&self) -> Profile {
        Profile {
            remote: true,
            requests_in_flight: self.inner.options.max_requests,
            revalidate_after: Some(self.inner.options.ttl),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters.rows()
    }
}

/// An object opened for ranged reads, all of the version (ETag) seen when it was opened.
#[derive(Debug)]
struct RemoteObject {
    inner: Arc<Inner>,
    runtime: Arc<Runtime>,
    key: String,
    len: u64,
    etag: Option<String>,
}

impl RemoteObject {
    /// `offset..offset + len` clipped to the object.
    fn clip(&self, offset: u64, len: usize) -> Range<u64> {
        let start = offset.min(self.len);
        start..offset.saturating_add(len as u64).min(self.len)
    }
}

impl OpenObject for RemoteObject {
    fn len(&self) -> u64 {
        self.len
    }

    fn version(&self) -> Option<ObjectVersion> {
        version_of(self.len, self.etag.as_deref())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut parts = [(offset, buf)];
        Ok(self.read_many(&mut parts)?[0])
    }

    fn read_many(&self, parts: &mut [(u64, &mut [u8])]) -> io::Result<Vec<usize>> {
        let wanted: Vec<Range<u64>> = parts
            .iter()
            .map(|(offset, buf)| self.clip(*offset, buf.len()))
            .collect();
        let inner = &self.inner;
        let etag = self.etag.as_deref();
        let served: Vec<Option<Bytes>> = self.runtime.run(async {
            // Parts read ahead are taken from their reads (one that failed is read again);
            // a plan under way for the object names its parts first.
            inner.ahead.plan_ended(&self.key).await;
            let held = inner.ahead.take(&self.key, etag, &wanted);
            Ok(futures::future::join_all(held.into_iter().zip(&wanted).map(
                |(held, part)| async move {
                    let (start, read) = held?;
                    ahead::slice(&read.await.ok()?, start, part)
                },
            ))
            .await)
        })?;
        // Parts kept on disk as entries of their own are read straight into their buffers.
        let mut on_disk = vec![false; parts.len()];
        if let (Some(disk), Some(etag)) = (&inner.disk, etag) {
            for (i, ((_, buf), part)) in parts.iter_mut().zip(&wanted).enumerate() {
                let len = (part.end - part.start) as usize;
                if served[i].is_some() || len == 0 {
                    continue;
                }
                let entry = Inner::range_entry(&self.key, Some(etag), part);
                if entry.is_some_and(|entry| disk.read_into(&entry, &mut buf[..len]).is_some()) {
                    Counters::add(&inner.counters.disk_cache_hits, 1);
                    on_disk[i] = true;
                }
            }
        }
        let (requests, fetched) = self.runtime.run(async {
            let rest: Vec<Range<u64>> = wanted
                .iter()
                .zip(served.iter().zip(&on_disk))
                .filter(|(_, (served, on_disk))| served.is_none() && !**on_disk)
                .map(|(part, _)| part.clone())
                .collect();
            let requests = ranges::merge(&rest);
            // Each part is kept on disk as an entry of its own, as parts read ahead are: a
            // later read of it finds it whatever it is read with.
            let fetched: Vec<Bytes> =
                futures::future::try_join_all(requests.iter().map(|request| {
                    let within = ranges::inside(request, &rest);
                    async move {
                        inner
                            .read_range_keeping(&self.key, etag, request.clone(), &within)
                            .await
                    }
                }))
                .await?;
            Ok((requests, fetched))
        })?;
        let taken = served.iter().flatten().count() as u64;
        Counters::add(&inner.counters.parts_read_ahead, taken);
        let mut done = Vec::with_capacity(parts.len());
        for ((((_, buf), range), served), on_disk) in
            parts.iter_mut().zip(&wanted).zip(served).zip(on_disk)
        {
            if on_disk {
                done.push((range.end - range.start) as usize);
                continue;
            }
            let bytes = match served {
                Some(bytes) => bytes,
                None => {
                    let at = requests
                        .iter()
                        .position(|r| r.start <= range.start && range.end <= r.end)
                        .filter(|_| !range.is_empty());
                    let Some(at) = at else {
                        done.push(0);
                        continue;
                    };
                    let request = &requests[at];
                    ahead::slice(&fetched[at], request.start, range).ok_or_else(|| {
                        io::Error::other(format!(
                            "GET of {}..{} returned {} bytes",
                            request.start,
                            request.end,
                            fetched[at].len()
                        ))
                    })?
                }
            };
            buf[..bytes.len()].copy_from_slice(&bytes);
            done.push(bytes.len());
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    const ANY: u64 = u64::MAX;

    fn options(ttl: Duration) -> RemoteOptions {
        RemoteOptions {
            max_requests: 4,
            ttl,
            request_timeout: Duration::from_secs(5),
            read_only: false,
            listable: true,
            max_ahead_bytes: 1 << 30,
        }
    }

    /// A store over `memory`, caching on disk in `disk` when given.
    fn store_over(
        memory: &Arc<InMemory>,
        ttl: Duration,
        disk: Option<&std::path::Path>,
    ) -> ObjectStore {
        let disk = disk.map(|dir| DiskCache::open(dir, 1 << 20, "mem://test").unwrap());
        ObjectStore::new(
            "mem://test".into(),
            memory.clone(),
            Runtime::new(1, Duration::from_secs(10)).unwrap(),
            options(ttl),
            Arc::new(Counters::default()),
            disk,
        )
    }

    fn counter(store: &ObjectStore, name: &str) -> u64 {
        store
            .counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    /// Writes `bytes` at `key` behind the stores' backs (another node).
    fn put_behind(memory: &InMemory, key: &str, bytes: &'static [u8]) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(memory.put(&Path::from(key), bytes.into()))
            .unwrap();
    }

    #[test]
    fn debug_output_names_the_store_only() {
        let store = store_over(&Arc::new(InMemory::new()), Duration::ZERO, None);
        let shown = format!("{store:?}");
        assert!(
            shown.contains("mem://test") && !shown.contains("InMemory"),
            "{shown}"
        );
    }

    #[test]
    fn objects_prefixes_and_listings() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(&memory, Duration::ZERO, None);
        store.put("g/a/0.0", b"abc", None, false).unwrap();
        store.put("g/.zgroup", b"{}", None, false).unwrap();
        assert_eq!(store.get("g/a/0.0", ANY).unwrap().unwrap(), b"abc");
        assert_eq!(store.get("g/a/1.0", ANY).unwrap(), None);
        assert!(store.get("g/a/0.0", 2).is_err(), "larger than the bound");
        let info = store.info("g/a/0.0").unwrap().unwrap();
        assert_eq!((info.size, info.is_prefix), (3, false));
        assert!(store.info("g/a").unwrap().unwrap().is_prefix);
        assert!(
            store.object_info("g/a").unwrap().is_none(),
            "a prefix is no object"
        );
        assert_eq!(store.object_info("g/a/0.0").unwrap().unwrap().size, 3);
        assert!(store.info("g/none").unwrap().is_none());
        let entries: Vec<(String, bool)> = store
            .list("g")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_prefix))
            .collect();
        assert_eq!(entries, [(".zgroup".into(), false), ("a".into(), true)]);
        store.delete("g/a/0.0", false).unwrap();
        assert_eq!(store.get("g/a/0.0", ANY).unwrap(), None);
        assert!(
            store.info("g/a").unwrap().is_none(),
            "no object left under it"
        );
    }

    #[test]
    fn a_write_over_a_version_another_node_replaced_is_refused() {
        let memory = Arc::new(InMemory::new());
        let (a, b) = (
            store_over(&memory, Duration::ZERO, None),
            store_over(&memory, Duration::ZERO, None),
        );
        a.put("c/0", b"v1", None, false).unwrap();
        assert!(b.get("c/0", ANY).unwrap().is_some(), "b reads v1");
        a.put("c/0", b"v2", None, false).unwrap();
        let err = b.put("c/0", b"b's", None, false).unwrap_err();
        assert!(err.to_string().contains("412"), "{err}");
        assert_eq!(counter(&b, "store_conflicts"), 1);
        assert_eq!(
            a.get("c/0", ANY).unwrap().unwrap(),
            b"v2",
            "not overwritten"
        );
        // Read as absent, then created by another node: refused as well.
        assert!(b.get("c/1", ANY).unwrap().is_none());
        put_behind(&memory, "c/1", b"other");
        assert!(b.put("c/1", b"mine", None, false).is_err());
        // Once read again, the write goes through.
        assert!(b.get("c/0", ANY).unwrap().is_some());
        b.put("c/0", b"v3", None, false).unwrap();
        assert_eq!(a.get("c/0", ANY).unwrap().unwrap(), b"v3");
    }

    #[test]
    fn absent_keys_are_remembered_for_the_ttl() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(&memory, Duration::from_secs(3600), None);
        assert!(store.get("k", ANY).unwrap().is_none());
        put_behind(&memory, "k", b"new");
        assert!(store.get("k", ANY).unwrap().is_none(), "within the TTL");
        assert_eq!(counter(&store, "negative_cache_hits"), 1);
        let fresh = store_over(&memory, Duration::ZERO, None);
        assert_eq!(fresh.get("k", ANY).unwrap().unwrap(), b"new");
    }

    #[test]
    fn ranged_reads_of_parts_stay_on_the_version_opened() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(&memory, Duration::ZERO, None);
        store.put("s", b"0123456789", None, false).unwrap();
        let object = store.open("s", ANY).unwrap().unwrap();
        assert_eq!(object.len(), 10);
        let (mut a, mut b, mut c, mut d) = ([0u8; 3], [0u8; 2], [0u8; 4], [0u8; 4]);
        let done = object
            .read_many(&mut [
                (7, &mut a[..]),
                (1, &mut b[..]),
                (8, &mut c[..]),
                (12, &mut d[..]),
            ])
            .unwrap();
        assert_eq!(done, [3, 2, 2, 0]);
        assert_eq!((&a, &b, &c[..2]), (b"789", b"12", &b"89"[..]));
        put_behind(&memory, "s", b"abcdefghij");
        let err = object.read_at(0, &mut a).unwrap_err();
        assert!(err.to_string().contains("changed while open"), "{err}");
        assert!(store.open("missing", ANY).unwrap().is_none());
        assert!(store.open("s", 9).is_err(), "larger than the bound");
    }

    /// A plan naming fixed parts after an optional first one, noting the first one's bytes.
    struct FixedPlan {
        first: Option<Range<u64>>,
        parts: Vec<Range<u64>>,
        got_first: Arc<Mutex<Option<Vec<u8>>>>,
    }

    impl PartPlan for FixedPlan {
        fn first(&self, _: u64, _: ObjectVersion) -> Option<Range<u64>> {
            self.first.clone()
        }
        fn parts(&self, _: u64, _: ObjectVersion, first: Option<&[u8]>) -> Vec<Range<u64>> {
            *self.got_first.lock() = first.map(<[u8]>::to_vec);
            self.parts.clone()
        }
    }

    /// Waits until the plan of "s" has ended, `store` holds `ranges` ranges read ahead and
    /// has fetched `bytes` bytes.
    fn wait_for_reads_ahead(store: &ObjectStore, ranges: usize, bytes: u64) {
        let plan_ended = async {
            store.inner.ahead.plan_ended("s").await;
            Ok(())
        };
        store.runtime.run(plan_ended).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.inner.ahead.len() != ranges || counter(store, "store_bytes_fetched") != bytes {
            assert!(Instant::now() < deadline, "{:?}", store.counters());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn parts_planned_ahead_are_read_in_merged_requests_and_handed_to_their_readers() {
        let memory = Arc::new(InMemory::new());
        let bytes: &'static [u8] = (0..=255u8).cycle().take(3 << 20).collect::<Vec<_>>().leak();
        put_behind(&memory, "s", bytes);
        let store = store_over(&memory, Duration::from_secs(60), None);
        let len = bytes.len() as u64;
        let got_first = Arc::new(Mutex::new(None));
        // Parts that touch share a request: 0..100 and 100..300, not the one 2 MiB on.
        let far = (2 << 20) + 500..(2 << 20) + 600;
        let plan = |first: Option<Range<u64>>, parts: Vec<Range<u64>>| {
            let got_first = got_first.clone();
            Box::new(FixedPlan {
                first,
                parts,
                got_first,
            })
        };
        store.prefetch_parts(
            "s",
            ANY,
            plan(Some(len - 10..len), vec![0..100, 100..300, far.clone()]),
        );
        wait_for_reads_ahead(&store, 2, 10 + 300 + 100);
        assert_eq!(
            got_first.lock().as_deref(),
            Some(&bytes[bytes.len() - 10..])
        );
        // Planned again with one more part: only that one is read.
        store.prefetch_parts("s", ANY, plan(None, vec![0..100, 5000..5010]));
        wait_for_reads_ahead(&store, 3, 420);

        let object = store.open("s", ANY).unwrap().unwrap();
        for part in [0..100, 100..300, far, 5000..5010, 7000..7010] {
            let mut buf = vec![0u8; (part.end - part.start) as usize];
            assert_eq!(object.read_at(part.start, &mut buf).unwrap(), buf.len());
            assert_eq!(
                buf,
                bytes[part.start as usize..part.end as usize],
                "{part:?}"
            );
        }
        assert_eq!(counter(&store, "parts_read_ahead"), 4);
        assert_eq!(
            counter(&store, "store_bytes_fetched"),
            430,
            "only the part never planned was read on demand"
        );
        assert_eq!(store.inner.ahead.len(), 0, "every range let go once read");

        // A write forgets what was read ahead of the old version.
        store.prefetch_parts("s", ANY, plan(None, std::iter::once(0..100).collect()));
        wait_for_reads_ahead(&store, 1, 530);
        store.put("s", b"new", None, false).unwrap();
        assert_eq!(store.inner.ahead.len(), 0);
    }

    /// A plan whose first part is the object's last `n` bytes, named without its size.
    struct TailPlan {
        n: u64,
        parts: Vec<Range<u64>>,
        got_first: Arc<Mutex<Option<Vec<u8>>>>,
        asked_first_by_range: Arc<AtomicBool>,
    }

    impl PartPlan for TailPlan {
        fn first(&self, len: u64, _: ObjectVersion) -> Option<Range<u64>> {
            self.asked_first_by_range.store(true, Ordering::SeqCst);
            Some(len - self.n..len)
        }
        fn first_unsized(&self) -> Option<(u64, bool)> {
            Some((self.n, true))
        }
        fn parts(&self, _: u64, _: ObjectVersion, first: Option<&[u8]>) -> Vec<Range<u64>> {
            *self.got_first.lock() = first.map(<[u8]>::to_vec);
            self.parts.clone()
        }
    }

    #[test]
    fn a_first_part_named_from_the_end_is_read_without_a_head_and_tells_it() {
        let memory = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let bytes: &'static [u8] = (0..=255u8).cycle().take(3000).collect::<Vec<_>>().leak();
        put_behind(&memory, "s", bytes);
        let store = store_over(&memory, Duration::from_secs(60), Some(dir.path()));
        let (got_first, asked) = (Arc::new(Mutex::new(None)), Arc::new(AtomicBool::new(false)));
        let plan = TailPlan {
            n: 10,
            parts: std::iter::once(0..100).collect(),
            got_first: got_first.clone(),
            asked_first_by_range: asked.clone(),
        };
        assert!(store.inner.known_head("s").is_none(), "nothing known yet");
        store.prefetch_parts("s", ANY, Box::new(plan));
        wait_for_reads_ahead(&store, 1, 110);
        assert_eq!(got_first.lock().as_deref(), Some(&bytes[2990..]));
        assert!(
            !asked.load(Ordering::SeqCst),
            "the first part was read unsized"
        );
        let head = store.inner.known_head("s").unwrap().unwrap();
        assert_eq!(
            head.info.size, 3000,
            "the object's size learnt from that read"
        );
        // A remount trusting the disk cache finds the head and the last bytes there.
        let again = store_over(&memory, Duration::from_secs(60), Some(dir.path()));
        let object = again.open("s", ANY).unwrap().unwrap();
        let mut tail = [0u8; 10];
        assert_eq!(object.read_at(2990, &mut tail).unwrap(), 10);
        assert_eq!(tail, bytes[2990..]);
        assert_eq!(counter(&again, "store_bytes_fetched"), 0);
    }

    #[test]
    fn parts_read_ahead_are_bounded_in_bytes() {
        let memory = Arc::new(InMemory::new());
        let bytes: &'static [u8] = (0..=255u8).cycle().take(4096).collect::<Vec<_>>().leak();
        put_behind(&memory, "s", bytes);
        let store = ObjectStore::new(
            "mem://test".into(),
            memory.clone(),
            Runtime::new(1, Duration::from_secs(10)).unwrap(),
            RemoteOptions {
                max_ahead_bytes: 250,
                ..options(Duration::from_secs(60))
            },
            Arc::new(Counters::default()),
            None,
        );
        let plan = |parts: Vec<Range<u64>>| {
            Box::new(FixedPlan {
                first: None,
                parts,
                got_first: Default::default(),
            })
        };
        // Three parts apart, 100 bytes each: two fit in 250 bytes.
        store.prefetch_parts("s", ANY, plan(vec![0..100, 200..300, 400..500]));
        wait_for_reads_ahead(&store, 2, 200);
        assert_eq!(store.inner.ahead.held_bytes(), 200);
        // No room for another until a reader takes one.
        store.prefetch_parts("s", ANY, plan(std::iter::once(600..700).collect()));
        wait_for_reads_ahead(&store, 2, 200);
        let object = store.open("s", ANY).unwrap().unwrap();
        let mut buf = vec![0u8; 100];
        object.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, bytes[..100]);
        assert_eq!(store.inner.ahead.held_bytes(), 100, "taken and let go");
        store.prefetch_parts("s", ANY, plan(std::iter::once(600..700).collect()));
        wait_for_reads_ahead(&store, 2, 300);
        assert_eq!(counter(&store, "parts_read_ahead"), 1);
    }

    #[test]
    fn reads_started_ahead_are_handed_to_their_caller() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(&memory, Duration::ZERO, None);
        store.put("p/0", b"ahead", None, false).unwrap();
        store.prefetch("p/0", ANY);
        store.prefetch("p/1", ANY);
        assert_eq!(store.inner.pending.lock().len(), 2, "both started");
        // Replaced once the read ahead is done: the caller gets what was read ahead.
        std::thread::sleep(Duration::from_millis(200));
        put_behind(&memory, "p/0", b"later");
        let mut buf = Vec::new();
        assert!(store.get_into("p/0", &mut buf, ANY).unwrap());
        assert_eq!(buf, b"ahead");
        assert!(!store.get_into("p/1", &mut buf, ANY).unwrap());
        assert!(store.inner.pending.lock().is_empty());
    }

    #[test]
    fn no_read_ahead_of_a_key_a_caller_is_reading() {
        let memory = Arc::new(InMemory::new());
        put_behind(&memory, "k", b"bytes");
        let store = store_over(&memory, Duration::from_secs(60), None);
        let reading = Reading::new(&store.inner.reading, "k");
        store.prefetch("k", ANY);
        assert!(store.inner.pending.lock().is_empty(), "read twice");
        drop(reading);
        store.prefetch("k", ANY);
        assert_eq!(store.inner.pending.lock().len(), 1);
        assert_eq!(store.get("k", ANY).unwrap().unwrap(), b"bytes");
        assert!(store.inner.reading.lock().is_empty());
    }

    #[test]
    fn reads_ahead_never_handed_over_change_nothing() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(&memory, Duration::ZERO, None);
        let mut buf = Vec::new();
        store.put("k", b"v1", None, false).unwrap();
        assert!(store.get_into("k", &mut buf, ANY).unwrap());
        // Another node writes v2; a read ahead fetches it, but no caller takes it.
        put_behind(&memory, "k", b"v2");
        store.prefetch("k", ANY);
        std::thread::sleep(Duration::from_millis(200));
        // This mount's write is still conditional on v1, the version its caller read.
        assert!(store.put("k", b"mine", None, false).is_err());
        // A read ahead started before a write here is not handed over after it.
        assert!(store.get_into("k", &mut buf, ANY).unwrap());
        store.prefetch("k", ANY);
        store.put("k", b"mine", None, false).unwrap();
        assert!(store.get_into("k", &mut buf, ANY).unwrap());
        assert_eq!(buf, b"mine");
    }

    #[test]
    fn heads_kept_on_disk_open_objects_within_the_ttl_and_go_when_they_prove_stale() {
        let memory = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        put_behind(&memory, "s", &[7; 100]);
        let first = store_over(&memory, Duration::ZERO, Some(dir.path()));
        assert_eq!(first.open("s", ANY).unwrap().unwrap().len(), 100);
        assert_eq!(
            counter(&first, "disk_cache_hits"),
            0,
            "entries older than the TTL"
        );
        // A remount trusting the disk cache opens without a HEAD, even what changed since.
        put_behind(&memory, "s", &[8; 50]);
        let trusting = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        let stale = trusting.open("s", ANY).unwrap().unwrap();
        assert_eq!(stale.len(), 100);
        assert_eq!(counter(&trusting, "disk_cache_hits"), 1);
        // Its reads find the object changed (412): an error, and the next open asks anew.
        let mut buf = [0u8; 10];
        let err = stale.read_at(0, &mut buf).unwrap_err();
        assert!(err.to_string().contains("changed while open"), "{err}");
        let again = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        let fresh = again.open("s", ANY).unwrap().unwrap();
        assert_eq!(fresh.len(), 50);
        assert_eq!(fresh.read_at(0, &mut buf).unwrap(), 10);
        assert_eq!(buf, [8; 10]);
    }

    #[test]
    fn ranges_kept_on_disk_are_read_into_their_buffers_and_damaged_ones_fetched_again() {
        let memory = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let bytes: &'static [u8] = (0..=255u8).cycle().take(5000).collect::<Vec<_>>().leak();
        put_behind(&memory, "s", bytes);
        let parts = [100..300u64, 1000..1500];
        let read = |store: &ObjectStore| {
            let object = store.open("s", ANY).unwrap().unwrap();
            let mut first = vec![0u8; 200];
            let mut second = vec![0u8; 500];
            let got = object
                .read_many(&mut [(100, &mut first), (1000, &mut second)])
                .unwrap();
            assert_eq!(got, [200, 500]);
            assert_eq!(first, bytes[100..300]);
            assert_eq!(second, bytes[1000..1500]);
        };
        let first = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        read(&first);
        assert_eq!(
            counter(&first, "store_bytes_fetched"),
            1400,
            "one request, gap and all"
        );
        // A remount reads both from disk, no byte fetched.
        let second = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        read(&second);
        assert_eq!(counter(&second, "store_bytes_fetched"), 0);
        assert_eq!(
            counter(&second, "disk_cache_hits"),
            3,
            "the head and both ranges"
        );
        // A damaged entry is removed and its range fetched again; the other is read from disk.
        let etag = second.inner.head_from_disk("s").unwrap().etag.unwrap();
        let entry = Inner::range_entry("s", Some(&etag), &parts[1]).unwrap();
        let disk = second.inner.disk.as_ref().unwrap();
        let path = disk.path_of(&entry);
        let mut stored = std::fs::read(&path).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        std::fs::write(&path, &stored).unwrap();
        let third = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        read(&third);
        assert_eq!(counter(&third, "store_bytes_fetched"), 500);
    }

    #[test]
    fn the_disk_cache_serves_fresh_entries_and_revalidates_old_ones() {
        let memory = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let writer = store_over(&memory, Duration::ZERO, None);
        writer.put("a/0", b"one", None, false).unwrap();
        let first = store_over(&memory, Duration::ZERO, Some(dir.path()));
        assert_eq!(first.get("a/0", ANY).unwrap().unwrap(), b"one");
        // A remount trusting entries for an hour reads from disk, even what changed since.
        writer.put("a/0", b"two", None, false).unwrap();
        let trusting = store_over(&memory, Duration::from_secs(3600), Some(dir.path()));
        assert_eq!(trusting.get("a/0", ANY).unwrap().unwrap(), b"one");
        assert_eq!(counter(&trusting, "disk_cache_hits"), 1);
        // With no TTL the entry is checked: changed, fetched again; unchanged, confirmed.
        let checking = store_over(&memory, Duration::ZERO, Some(dir.path()));
        assert_eq!(checking.get("a/0", ANY).unwrap().unwrap(), b"two");
        assert_eq!(checking.get("a/0", ANY).unwrap().unwrap(), b"two");
        assert_eq!(counter(&checking, "disk_cache_revalidated"), 1);
        assert_eq!(counter(&checking, "disk_cache_hits"), 0);
    }
}
