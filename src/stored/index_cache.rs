//! Shard indexes kept between reads, so that reading inner chunks one after another reads
//! each shard's index once. Entries are tied to the version of the shard they were read
//! from (size, modification time, identity) and dropped when a read finds another version.
//! A shard rewritten in place keeps its identity, and a rewrite of the same size within the
//! file system's timestamp granularity would keep its modification time too: indexes of
//! shards modified less than [`RACY_WINDOW`] ago are therefore not kept (as git treats
//! "racily clean" files).

use crate::codec::ShardIndex;
use crate::store::ObjectVersion;
use lru::LruCache;
use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// Identifies a shard: the id of its array's stored chunks and the shard's linear position.
pub type ShardKey = (u64, u64);

/// Bytes the process-wide cache holds at most: indexes take 16 bytes per inner chunk, so
/// this keeps the indexes of about two million inner chunks, apart from the chunk cache's
/// budget.
pub const SHARED_BUDGET: usize = 32 << 20;

/// How recently a shard may have been modified for its index to be kept: longer than any
/// file system's timestamp granularity (FAT's two seconds).
pub const RACY_WINDOW: Duration = Duration::from_secs(3);

/// Whether `version`, read at `now`, tells its contents apart from any later rewrite: it
/// was modified at least [`RACY_WINDOW`] before (a rewrite in place of the same size within
/// the file system's timestamp granularity would keep size, modification time and identity).
pub fn settled(version: &ObjectVersion, now: SystemTime) -> bool {
    now.duration_since(version.mtime)
        .is_ok_and(|age| age >= RACY_WINDOW)
}

/// Bytes counted for an entry besides its index entries (key, version, bookkeeping).
const ENTRY_OVERHEAD: usize = 96;

#[derive(Debug)]
struct State {
    lru: LruCache<ShardKey, (ObjectVersion, Arc<ShardIndex>)>,
    bytes: usize,
}

/// A byte-bounded LRU of decoded shard indexes.
#[derive(Debug)]
pub struct IndexCache {
    budget: usize,
    state: Mutex<State>,
}

fn cost(index: &ShardIndex) -> usize {
    index.heap_bytes() + ENTRY_OVERHEAD
}

impl IndexCache {
    /// A cache holding at most `budget` bytes of indexes.
    pub fn new(budget: usize) -> Self {
        IndexCache {
            budget,
            state: Mutex::new(State {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The cache every array of the process shares (see [`SHARED_BUDGET`]).
    pub fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<IndexCache>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(IndexCache::new(SHARED_BUDGET)))
            .clone()
    }

    /// The index of shard `key` if it was read from `version` of the shard; an entry of
    /// another version is dropped.
    pub fn get(&self, key: ShardKey, version: ObjectVersion) -> Option<Arc<ShardIndex>> {
        let mut state = self.state.lock();
        match state.lru.get(&key) {
            Some((seen, index)) if *seen == version => Some(index.clone()),
            Some(_) => {
                if let Some((_, stale)) = state.lru.pop(&key) {
                    state.bytes -= cost(&stale);
                }
                None
            }
            None => None,
        }
    }

    /// Keeps the index read from `version` of shard `key`, evicting the least recently used
    /// ones to stay within the budget; not when the shard was modified less than
    /// [`RACY_WINDOW`] before `now`.
    pub fn insert(
        &self,
        key: ShardKey,
        version: ObjectVersion,
        index: Arc<ShardIndex>,
        now: SystemTime,
    ) {
        let size = cost(&index);
        if size > self.budget || !settled(&version, now) {
            return;
        }
        let mut state = self.state.lock();
        if let Some((_, old)) = state.lru.pop(&key) {
            state.bytes -= cost(&old);
        }
        while state.bytes + size > self.budget {
            match state.lru.pop_lru() {
                Some((_, (_, old))) => state.bytes -= cost(&old),
                None => break,
            }
        }
        state.bytes += size;
        state.lru.put(key, (version, index));
    }

    /// Forgets shard `key` (after it was rewritten or removed).
    pub fn remove(&self, key: ShardKey) {
        let mut state = self.state.lock();
        if let Some((_, old)) = state.lru.pop(&key) {
            state.bytes -= cost(&old);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ShardIndexCodec;
    use serde_json::json;

    fn index(chunks: usize) -> Arc<ShardIndex> {
        let codec = ShardIndexCodec::new(&json!({}), &[chunks]).unwrap();
        Arc::new(
            codec
                .decode_shard(&codec.assemble(&vec![None; chunks]).unwrap())
                .unwrap(),
        )
    }

    fn version(len: u64) -> ObjectVersion {
        ObjectVersion {
            len,
            mtime: SystemTime::UNIX_EPOCH - Duration::from_secs(1000 + len),
            identity: (1, len),
        }
    }

    /// Long after the versions of these tests were written.
    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn indexes_of_shards_modified_just_now_are_not_kept() {
        let cache = IndexCache::new(1 << 20);
        let v = version(10);
        let recent = v.mtime + RACY_WINDOW - Duration::from_millis(1);
        cache.insert((1, 0), v, index(4), recent);
        assert!(cache.get((1, 0), v).is_none());
        cache.insert((1, 0), v, index(4), v.mtime - Duration::from_secs(9));
        assert!(cache.get((1, 0), v).is_none(), "modified in the future");
        cache.insert((1, 0), v, index(4), v.mtime + RACY_WINDOW);
        assert!(cache.get((1, 0), v).is_some());
    }

    #[test]
    fn entries_serve_their_version_only() {
        let cache = IndexCache::new(1 << 20);
        cache.insert((1, 0), version(10), index(4), NOW);
        assert!(cache.get((1, 0), version(10)).is_some());
        assert!(cache.get((2, 0), version(10)).is_none(), "another array");
        assert!(cache.get((1, 0), version(11)).is_none(), "another version");
        assert!(
            cache.get((1, 0), version(10)).is_none(),
            "the stale entry is gone"
        );
        assert_eq!(cache.bytes(), 0);
        cache.insert((1, 1), version(10), index(4), NOW);
        cache.remove((1, 1));
        assert!(cache.get((1, 1), version(10)).is_none());
    }

    #[test]
    fn the_budget_bounds_the_bytes_held() {
        let one = cost(&index(64));
        let cache = IndexCache::new(3 * one);
        for shard in 0..10 {
            cache.insert((1, shard), version(5), index(64), NOW);
            assert!(cache.bytes() <= 3 * one);
        }
        assert!(cache.get((1, 9), version(5)).is_some(), "most recent kept");
        assert!(cache.get((1, 0), version(5)).is_none(), "oldest evicted");
        cache.insert((1, 99), version(5), index(1 << 16), NOW);
        assert!(
            cache.get((1, 99), version(5)).is_none(),
            "larger than the budget"
        );
    }
}
