//! LRU cache of decoded chunks, bounded in bytes, with single-flight loading: concurrent
//! requests for the same chunk wait for one decode instead of decoding it twice.
//!
//! The cache resists sequential scans: a chunk decoded for a scan is held only until the
//! scan has passed it, and its memory then serves the scan's next decodes; a chunk scanned
//! a second time while its key is still remembered is kept like any other. A single pass
//! over an array therefore neither evicts the hot chunks of other readers nor faults in a
//! cache's worth of fresh memory, while arrays read again and again become cached.

use crate::error::{FsError, FsResult};
use crate::stats::Stats;
use crate::store::ObjectVersion;
use lru::LruCache;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Identifies a chunk: (array id, linear chunk position).
pub type ChunkKey = (u32, u64);

/// A decoded chunk: full chunk shape, C order, declared byte order.
pub type ChunkBuf = Arc<Vec<u8>>;

/// How a chunk decoded on a miss enters the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Kept in LRU order like every chunk (random access, writes, single chunks).
    Keep,
    /// Decoded for a sequential scan: held until the scan releases it (see
    /// [`ChunkCache::release_scanned`]), unless it was scanned recently before or another
    /// reader used it meanwhile; then it is kept.
    Scan,
    /// Decoded for a sequential scan of an array larger than the whole cache: held until
    /// the scan releases it even when scanned before, since a pass over such an array
    /// would only push out everything else (its own chunks included) before it came back.
    Stream,
}

impl Admission {
    /// Whether the chunk is decoded for a sequential scan.
    pub fn is_scan(self) -> bool {
        self != Admission::Keep
    }
}

/// Keys of released scan chunks remembered, so that a second scan keeps what it decodes.
const REMEMBERED_SCANS: usize = 1 << 16;

/// What a cached chunk was decoded from, for checks against the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The version of the stored object it was decoded from; `None` when not known (stored
    /// by this mount, or modified too recently to be told apart from a rewrite in place):
    /// such a chunk is decoded again at its first check.
    pub version: Option<ObjectVersion>,
    /// When it was decoded or last found current.
    pub checked: Instant,
}

struct Entry {
    buf: ChunkBuf,
    stamp: Stamp,
}

struct CacheState {
    lru: LruCache<ChunkKey, Entry>,
    bytes: usize,
    /// Held chunks decoded for a scan and not used by anyone else since.
    scanned: HashSet<ChunkKey>,
    /// Keys of chunks released after a scan, most recent first.
    released: LruCache<ChunkKey, ()>,
}

#[derive(Default)]
struct Flight {
    result: Mutex<Option<FsResult<ChunkBuf>>>,
    ready: Condvar,
}

/// Resolves a flight even if the loader panics, so waiters never hang.
struct FlightGuard<'a> {
    cache: &'a ChunkCache,
    key: ChunkKey,
    flight: Arc<Flight>,
    done: bool,
}

impl FlightGuard<'_> {
    fn finish(&mut self, result: FsResult<ChunkBuf>) {
        *self.flight.result.lock() = Some(result);
        self.flight.ready.notify_all();
        self.cache.inflight.lock().remove(&self.key);
        self.done = true;
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Err(FsError::io("chunk loader panicked")));
        }
    }
}

/// Chunk buffers released by the cache, kept for the next decode of the same size so that
/// decoding does not fault in fresh pages every time.
#[derive(Debug, Default)]
struct BufferPool {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

/// A new zero-filled buffer for a decoded chunk. Large ones are backed by huge pages where
/// the kernel allows and populated in one call, instead of one page fault per 4 KiB on
/// first write (which costs more than decoding a fast codec).
pub fn fresh_buffer(len: usize) -> Vec<u8> {
    let buf = vec![0u8; len];
    #[cfg(target_os = "linux")]
    if len >= 1 << 20 {
        const PAGE: usize = 4096;
        let start = buf.as_ptr() as usize;
        let begin = start.next_multiple_of(PAGE);
        let end = (start + len) / PAGE * PAGE;
        if end > begin {
            // SAFETY: the range lies inside `buf`, which this function owns; both advices
            // keep its contents (zeros) and only change how pages are provided.
            unsafe {
                libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE);
                libc::madvise(
                    begin as *mut libc::c_void,
                    end - begin,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    buf
}

/// Hands memory freed to the allocator's heaps back to the system (buffers smaller than
/// the mmap threshold, such as blosc blocks, stay in glibc's heaps once freed).
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The decoded-chunk cache.
pub struct ChunkCache {
    budget: usize,
    scan_resistant: AtomicBool,
    pool: Mutex<BufferPool>,
    state: Mutex<CacheState>,
    inflight: Mutex<HashMap<ChunkKey, Arc<Flight>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("budget", &self.budget)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl ChunkCache {
    /// A cache holding at most `budget` bytes of decoded chunks.
    pub fn new(budget: usize, stats: Arc<Stats>) -> Self {
        ChunkCache {
            budget,
            scan_resistant: AtomicBool::new(true),
            state: Mutex::new(CacheState {
                lru: LruCache::unbounded(),
                bytes: 0,
                scanned: HashSet::new(),
                released: LruCache::new(NonZeroUsize::new(REMEMBERED_SCANS).expect("non-zero")),
            }),
            inflight: Mutex::new(HashMap::new()),
            pool: Mutex::new(BufferPool::default()),
            stats,
        }
    }

    /// A buffer of `len` bytes for a decode: a recycled one when available (its contents
    /// are stale and must be overwritten entirely), else a fresh zero-filled one.
    pub fn take_buffer(&self, len: usize) -> Vec<u8> {
        let mut pool = self.pool.lock();
        match pool.free.iter().position(|b| b.len() == len) {
            Some(i) => {
                let buf = pool.free.swap_remove(i);
                pool.bytes -= buf.len();
                buf
            }
            None => {
                drop(pool);
                fresh_buffer(len)
            }
        }
    }

    /// Whether chunks decoded for scans are released once passed (the default) or kept
    /// like every other chunk.
    pub fn set_scan_resistance(&self, on: bool) {
        self.scan_resistant.store(on, Ordering::Relaxed);
    }

    /// Whether scan resistance is on (see [`Self::set_scan_resistance`]).
    pub fn scan_resistance(&self) -> bool {
        self.scan_resistant.load(Ordering::Relaxed)
    }

    /// Offers a chunk buffer that is no longer needed (evicted, or let go by a reader) for
    /// the next decodes; taken only when nobody else holds it, and the pool holds at most an
    /// eighth of the budget on top of the cache.
    pub fn recycle(&self, buf: ChunkBuf) {
        if let Ok(buf) = Arc::try_unwrap(buf) {
            let mut pool = self.pool.lock();
            if pool.bytes + buf.len() <= self.budget / 8 {
                pool.bytes += buf.len();
                pool.free.push(buf);
            }
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Number of chunks currently held.
    pub fn len(&self) -> usize {
        self.state.lock().lru.len()
    }

    /// Whether the cache holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a chunk is cached or being loaded (does not touch recency).
    pub fn is_present_or_loading(&self, key: ChunkKey) -> bool {
        self.state.lock().lru.contains(&key) || self.inflight.lock().contains_key(&key)
    }

    /// Returns a cached chunk, marking it recently used.
    pub fn get(&self, key: ChunkKey) -> Option<ChunkBuf> {
        self.lookup(key, Admission::Keep)
    }

    /// Returns a cached chunk, marking it recently used; a reader that is not scanning
    /// makes a scan's chunk an ordinary one.
    pub fn lookup(&self, key: ChunkKey, admission: Admission) -> Option<ChunkBuf> {
        let found = self.lookup_stamped(key, admission).map(|(buf, _)| buf);
        if found.is_some() {
            Stats::add(&self.stats.cache_hits, 1);
        }
        found
    }

    /// [`Self::lookup`] with what the chunk was decoded from, without counting a hit (the
    /// caller tells whether the chunk is still current).
    pub fn lookup_stamped(&self, key: ChunkKey, admission: Admission) -> Option<(ChunkBuf, Stamp)> {
        let mut state = self.state.lock();
        let found = state
            .lru
            .get(&key)
            .map(|entry| (entry.buf.clone(), entry.stamp));
        if found.is_some() && admission == Admission::Keep && !state.scanned.is_empty() {
            state.scanned.remove(&key);
        }
        found
    }

    /// Records that the cached `buf` of chunk `key` was found current at `now`.
    pub fn confirm(&self, key: ChunkKey, buf: &ChunkBuf, now: Instant) {
        if let Some(entry) = self.state.lock().lru.peek_mut(&key) {
            if Arc::ptr_eq(&entry.buf, buf) {
                entry.stamp.checked = now;
            }
        }
    }

    /// Drops the cached `buf` of chunk `key`, found superseded in the store (unless the
    /// cache holds another buffer for it by now).
    pub fn drop_stale(&self, key: ChunkKey, buf: &ChunkBuf) {
        let mut state = self.state.lock();
        if state
            .lru
            .peek(&key)
            .is_some_and(|entry| Arc::ptr_eq(&entry.buf, buf))
        {
            state.scanned.remove(&key);
            if let Some(old) = state.lru.pop(&key) {
                state.bytes -= old.buf.len();
            }
        }
    }

    /// Inserts (or replaces) a chunk whose stored version is not known, evicting least
    /// recently used ones to fit the budget. A chunk larger than the whole budget is not
    /// kept.
    pub fn insert(&self, key: ChunkKey, buf: ChunkBuf) {
        self.admit(key, buf, Admission::Keep);
    }

    /// Inserts a chunk decoded on a miss as `admission` says: a scan's chunk is marked for
    /// release unless its key was released by an earlier scan (see [`Admission`]).
    pub fn admit(&self, key: ChunkKey, buf: ChunkBuf, admission: Admission) {
        self.admit_from(key, buf, admission, None);
    }

    /// [`Self::admit`] for a chunk decoded from `version` of its stored object.
    pub fn admit_from(
        &self,
        key: ChunkKey,
        buf: ChunkBuf,
        admission: Admission,
        version: Option<ObjectVersion>,
    ) {
        let size = buf.len();
        let stamp = Stamp {
            version,
            checked: Instant::now(),
        };
        let mut state = self.state.lock();
        if let Some(old) = state.lru.pop(&key) {
            state.bytes -= old.buf.len();
        }
        let seen_before = state.released.pop(&key).is_some();
        let held_for_scan = self.scan_resistant.load(Ordering::Relaxed)
            && match admission {
                Admission::Keep => false,
                Admission::Scan => !seen_before,
                Admission::Stream => true,
            };
        if size > self.budget {
            state.scanned.remove(&key);
            return;
        }
        if held_for_scan {
            state.scanned.insert(key);
        } else {
            state.scanned.remove(&key);
        }
        let mut evicted = Vec::new();
        while state.bytes + size > self.budget {
            match state.lru.pop_lru() {
                Some((old_key, old)) => {
                    state.scanned.remove(&old_key);
                    state.bytes -= old.buf.len();
                    Stats::add(&self.stats.cache_evictions, 1);
                    evicted.push(old.buf);
                }
                None => break,
            }
        }
        state.bytes += size;
        state.lru.put(key, Entry { buf, stamp });
        drop(state);
        for old in evicted {
            self.recycle(old);
        }
    }

    /// Releases the chunks a scan has passed: those still held only for a scan leave the
    /// cache, their keys are remembered (a later scan keeps them) and their buffers serve
    /// the next decodes. Other chunks are untouched.
    pub fn release_scanned(&self, keys: impl IntoIterator<Item = ChunkKey>) {
        let mut released = Vec::new();
        {
            let mut state = self.state.lock();
            if state.scanned.is_empty() {
                return;
            }
            for key in keys {
                if !state.scanned.remove(&key) {
                    continue;
                }
                if let Some(old) = state.lru.pop(&key) {
                    state.bytes -= old.buf.len();
                    state.released.put(key, ());
                    released.push(old.buf);
                }
            }
        }
        Stats::add(
            &self.stats.chunks_released_after_scan,
            released.len() as u64,
        );
        for buf in released {
            self.recycle(buf);
        }
    }

    /// Remembers chunks a scan has passed without caching them (read by blocks), so that a
    /// later scan keeps them as it would keep chunks released after a scan.
    pub fn remember_scanned(&self, keys: impl IntoIterator<Item = ChunkKey>) {
        if !self.scan_resistant.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.state.lock();
        for key in keys {
            state.released.put(key, ());
        }
    }

    /// Whether a scan of this chunk would keep it: a scan passed it not long ago.
    pub fn remembers(&self, key: ChunkKey) -> bool {
        self.state.lock().released.contains(&key)
    }

    /// Drops a chunk from the cache.
    pub fn invalidate(&self, key: ChunkKey) {
        let mut state = self.state.lock();
        state.scanned.remove(&key);
        if let Some(old) = state.lru.pop(&key) {
            state.bytes -= old.buf.len();
        }
    }

    /// Drops every cached chunk of array `array`.
    pub fn invalidate_array(&self, array: u32) {
        let mut state = self.state.lock();
        let keys: Vec<ChunkKey> = state
            .lru
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| key.0 == array)
            .collect();
        for key in keys {
            state.scanned.remove(&key);
            if let Some(old) = state.lru.pop(&key) {
                state.bytes -= old.buf.len();
            }
        }
    }

    /// Returns the chunk, loading it with `load` on a miss. Concurrent callers for the same
    /// key share one load; errors are returned to every waiter. The loader decides whether
    /// its result is kept (by calling [`Self::insert`]).
    pub fn get_or_load(
        &self,
        key: ChunkKey,
        admission: Admission,
        load: impl FnOnce() -> FsResult<ChunkBuf>,
    ) -> FsResult<ChunkBuf> {
        if let Some(buf) = self.lookup(key, admission) {
            return Ok(buf);
        }
        Stats::add(&self.stats.cache_misses, 1);
        // Either another caller is loading this chunk (wait for it) or this one leads.
        let (flight, leader) = {
            let mut inflight = self.inflight.lock();
            if let Some(flight) = inflight.get(&key) {
                (flight.clone(), false)
            } else {
                // A load may have finished between the lookup above and taking this lock.
                if let Some(entry) = self.state.lock().lru.peek(&key) {
                    return Ok(entry.buf.clone());
                }
                let flight = Arc::new(Flight::default());
                inflight.insert(key, flight.clone());
                (flight, true)
            }
        };
        if !leader {
            let mut result = flight.result.lock();
            while result.is_none() {
                flight.ready.wait(&mut result);
            }
            return result.clone().expect("flight resolved");
        }
        let mut guard = FlightGuard {
            cache: self,
            key,
            flight,
            done: false,
        };
        let result = load();
        guard.finish(result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A loader result that is kept in the cache.
    fn loaded(cache: &ChunkCache, key: ChunkKey, bytes: Vec<u8>) -> FsResult<ChunkBuf> {
        let buf = Arc::new(bytes);
        cache.insert(key, buf.clone());
        Ok(buf)
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache = ChunkCache::new(300, Arc::new(Stats::default()));
        for i in 0..3 {
            cache
                .get_or_load((0, i), Admission::Keep, || {
                    loaded(&cache, (0, i), vec![i as u8; 100])
                })
                .unwrap();
        }
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get((0, 0)).is_some());
        cache
            .get_or_load((0, 3), Admission::Keep, || {
                loaded(&cache, (0, 3), vec![3; 100])
            })
            .unwrap();
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get((0, 1)).is_none(), "LRU entry must go first");
        assert!(cache.get((0, 0)).is_some());
        cache.insert((0, 9), Arc::new(vec![0; 1000]));
        assert!(cache.get((0, 9)).is_none(), "oversized chunk is not kept");
        assert!(cache.bytes() <= 300);
    }

    #[test]
    fn one_array_is_dropped_whole() {
        let cache = ChunkCache::new(1 << 20, Arc::new(Stats::default()));
        for key in [(0, 0), (0, 1), (1, 0)] {
            cache.insert(key, Arc::new(vec![1; 100]));
        }
        cache.invalidate_array(0);
        assert!(cache.get((0, 0)).is_none() && cache.get((0, 1)).is_none());
        assert!(cache.get((1, 0)).is_some());
        assert_eq!(cache.bytes(), 100);
    }

    #[test]
    fn single_flight_decodes_once() {
        let cache = Arc::new(ChunkCache::new(1 << 20, Arc::new(Stats::default())));
        let loads = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                let loads = loads.clone();
                std::thread::spawn(move || {
                    cache
                        .get_or_load((1, 7), Admission::Keep, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            loaded(&cache, (1, 7), vec![7; 64])
                        })
                        .unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(*h.join().unwrap(), vec![7; 64]);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn errors_reach_waiters_and_are_not_cached() {
        let cache = Arc::new(ChunkCache::new(1 << 20, Arc::new(Stats::default())));
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                cache.get_or_load((0, 1), Admission::Keep, || loaded(&cache, (0, 1), vec![1]))
            })
        };
        let first = cache.get_or_load((0, 1), Admission::Keep, || {
            std::thread::sleep(Duration::from_millis(50));
            Err(FsError::io("bad chunk"))
        });
        assert_eq!(first.unwrap_err().errno, libc::EIO);
        let second = waiter.join().unwrap();
        // The waiter either shared the failed flight or loaded afresh; the error is not cached.
        let third = cache
            .get_or_load((0, 1), Admission::Keep, || loaded(&cache, (0, 1), vec![2]))
            .unwrap();
        match second {
            Ok(buf) => {
                assert_eq!(*buf, vec![1]);
                assert_eq!(*third, vec![1]);
            }
            Err(e) => {
                assert_eq!(e.errno, libc::EIO);
                assert_eq!(*third, vec![2]);
            }
        }
    }

    #[test]
    fn panicking_loader_does_not_hang_waiters() {
        let cache = Arc::new(ChunkCache::new(1 << 20, Arc::new(Stats::default())));
        let c2 = cache.clone();
        let leader = std::thread::spawn(move || {
            let _ = c2.get_or_load((0, 5), Admission::Keep, || {
                std::thread::sleep(Duration::from_millis(50));
                panic!("boom")
            });
        });
        std::thread::sleep(Duration::from_millis(10));
        let result = cache.get_or_load((0, 5), Admission::Keep, || loaded(&cache, (0, 5), vec![5]));
        assert!(leader.join().is_err());
        // Either shared the failed flight (EIO) or loaded after it resolved.
        match result {
            Ok(buf) => assert_eq!(*buf, vec![5]),
            Err(e) => assert_eq!(e.errno, libc::EIO),
        }
    }

    #[test]
    fn evicted_buffers_are_recycled_unless_still_read() {
        // Budget 1000: ten chunks of 100 fill it; the pool may hold up to 125 bytes.
        let cache = ChunkCache::new(1000, Arc::new(Stats::default()));
        for i in 0..10 {
            cache.insert((0, i), Arc::new(vec![i as u8; 100]));
        }
        assert_eq!(
            cache.take_buffer(100),
            vec![0; 100],
            "nothing evicted yet: fresh"
        );
        let held = cache.get((0, 0)).unwrap(); // 0 becomes most recent; 1 is now oldest
        cache.insert((0, 10), Arc::new(vec![10; 100])); // evicts 1, unheld: recycled
        assert_eq!(cache.take_buffer(100), vec![1; 100]);
        assert_eq!(cache.take_buffer(100), vec![0; 100], "pool is empty again");
        for i in 11..20 {
            cache.insert((0, i), Arc::new(vec![i as u8; 100])); // evicts 2..9 then 0
        }
        assert_eq!(
            *held,
            vec![0; 100],
            "a buffer still being read is never reused"
        );
        assert_eq!(
            cache.take_buffer(100),
            vec![2; 100],
            "the first evicted is kept"
        );
        assert_eq!(
            cache.take_buffer(100),
            vec![0; 100],
            "the pool keeps at most budget/8: the rest were freed"
        );
        cache.insert((0, 20), Arc::new(vec![20; 100])); // evicts 10 into the pool
        assert_eq!(cache.take_buffer(50), vec![0; 50], "sizes must match");
        assert_eq!(cache.take_buffer(100), vec![10; 100]);
    }

    #[test]
    fn uncacheable_loads_are_not_kept() {
        let cache = ChunkCache::new(1 << 20, Arc::new(Stats::default()));
        let shared = Arc::new(vec![0u8; 16]);
        let got = cache
            .get_or_load((0, 0), Admission::Keep, || Ok(shared.clone()))
            .unwrap();
        assert!(Arc::ptr_eq(&got, &shared));
        assert!(cache.is_empty());
    }

    #[test]
    fn scans_release_what_they_passed_and_keep_what_they_see_again() {
        let cache = ChunkCache::new(1000, Arc::new(Stats::default()));
        cache.admit((0, 0), Arc::new(vec![0; 100]), Admission::Scan);
        cache.admit((0, 1), Arc::new(vec![1; 100]), Admission::Scan);
        cache.insert((0, 2), Arc::new(vec![2; 100]));
        assert_eq!(cache.len(), 3);
        cache.release_scanned([(0, 0), (0, 2)]);
        assert!(cache.get((0, 0)).is_none(), "a passed scan chunk leaves");
        assert!(cache.get((0, 2)).is_some(), "ordinary chunks stay");
        assert_eq!(cache.bytes(), 200);
        assert_eq!(
            cache.take_buffer(100),
            vec![0; 100],
            "its memory serves the next decode"
        );
        // Scanned again: remembered, so kept this time.
        cache.admit((0, 0), Arc::new(vec![9; 100]), Admission::Scan);
        cache.release_scanned([(0, 0)]);
        assert_eq!(cache.get((0, 0)).as_deref(), Some(&vec![9; 100]));
        // A reader that is not scanning makes a scan chunk an ordinary one.
        assert!(cache.lookup((0, 1), Admission::Scan).is_some());
        assert!(cache.get((0, 1)).is_some());
        cache.release_scanned([(0, 1)]);
        assert!(cache.get((0, 1)).is_some());
    }

    #[test]
    fn streams_are_released_even_when_seen_before() {
        let cache = ChunkCache::new(1000, Arc::new(Stats::default()));
        for _ in 0..3 {
            cache.admit((0, 0), Arc::new(vec![0; 100]), Admission::Stream);
            cache.release_scanned([(0, 0)]);
            assert!(cache.get((0, 0)).is_none());
        }
    }

    #[test]
    fn without_scan_resistance_scans_are_kept() {
        let cache = ChunkCache::new(1000, Arc::new(Stats::default()));
        cache.set_scan_resistance(false);
        cache.admit((0, 0), Arc::new(vec![0; 100]), Admission::Scan);
        cache.release_scanned([(0, 0)]);
        assert!(cache.get((0, 0)).is_some());
    }
}
