//! Inner chunks stored in shards (`sharding_indexed`). Reading an inner chunk reads its
//! shard's index (a ranged read of its fixed size at the start or end of the shard, kept in
//! an [`IndexCache`] while the shard is unchanged) and then that chunk's bytes only. Writing
//! back rewrites each shard once with all its updated inner chunks, copying the others'
//! stored bytes as they are.

use super::index_cache::ShardKey;
use super::{io_error, read_exact_at, IndexCache, Keys, OpenStored, Update, WriteBack};
use crate::codec::{ShardIndex, ShardIndexCodec};
use crate::error::{FsError, FsResult};
use crate::geometry::ChunkGrid;
use crate::stats::Stats;
use crate::store::{ObjectInfo, ObjectVersion, OpenObject, PartPlan};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where an inner chunk lies: its shard and its position among the shard's inner chunks.
struct Place {
    /// The shard's linear position in the shard grid.
    shard: u64,
    /// The shard's store key.
    key: String,
    /// The inner chunk's position in the shard (C order).
    within: usize,
}

/// An inner chunk found in its shard: its location for messages, the open shard and where
/// the chunk's bytes lie in it.
struct Found {
    what: String,
    shard: Box<dyn OpenObject>,
    range: Range<u64>,
}

/// Inner chunks stored in shards.
#[derive(Debug)]
pub struct ShardedChunks {
    keys: Keys,
    /// The grid of inner chunks.
    grid: ChunkGrid,
    /// The grid of shards.
    shards: ChunkGrid,
    /// Inner chunks per shard along each axis.
    per_shard: Vec<u64>,
    /// The codec of shard indexes; `None` when the configuration is unusable.
    index: Option<Arc<ShardIndexCodec>>,
    /// The size the inner codecs give every chunk, when they fix it.
    fixed_len: Option<usize>,
    cache: Arc<IndexCache>,
    /// Tells this array's shards apart from other arrays' in the cache.
    id: u64,
}

/// A part of an open shard, read as an object of its own.
#[derive(Debug)]
struct Part {
    shard: Box<dyn OpenObject>,
    range: Range<u64>,
}

impl OpenObject for Part {
    fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len().saturating_sub(offset);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.shard
            .read_at(self.range.start.saturating_add(offset), &mut buf[..n])
    }

    /// The version of the shard it lies in.
    fn version(&self) -> Option<ObjectVersion> {
        self.shard.version()
    }
}

impl ShardedChunks {
    pub(super) fn new(
        keys: Keys,
        grid: ChunkGrid,
        shard_shape: &[u64],
        index: Option<ShardIndexCodec>,
        fixed_len: Option<usize>,
        cache: Arc<IndexCache>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let per_shard = shard_shape
            .iter()
            .zip(grid.chunk_shape())
            .map(|(s, &c)| (s / c.max(1)).max(1))
            .collect();
        let shards = ChunkGrid::new(grid.shape(), shard_shape, grid.itemsize());
        ShardedChunks {
            keys,
            grid,
            shards,
            per_shard,
            index: index.map(Arc::new),
            fixed_len,
            cache,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn place(&self, linear: u64) -> Place {
        let inner = self.grid.chunk_index(linear);
        let shard_index: Vec<u64> = inner
            .iter()
            .zip(&self.per_shard)
            .map(|(i, n)| i / n)
            .collect();
        let within = inner
            .iter()
            .zip(&self.per_shard)
            .fold(0u64, |acc, (i, n)| acc * n + i % n);
        Place {
            shard: self.shards.chunk_linear(&shard_index).unwrap_or(0),
            key: self.keys.key(&shard_index, '.'),
            within: within as usize,
        }
    }

    /// The inner chunk at position `within` of shard `shard`, if it lies inside the array.
    fn inner_chunk(&self, shard: u64, within: usize) -> Option<u64> {
        let mut local = vec![0u64; self.per_shard.len()];
        let mut rest = within as u64;
        for axis in (0..local.len()).rev() {
            local[axis] = rest % self.per_shard[axis];
            rest /= self.per_shard[axis];
        }
        let index: Vec<u64> = self
            .shards
            .chunk_index(shard)
            .iter()
            .zip(&self.per_shard)
            .zip(&local)
            .map(|((s, n), l)| s * n + l)
            .collect();
        self.grid.chunk_linear(&index)
    }

    fn describe_place(&self, place: &Place, linear: u64) -> String {
        format!(
            "{} (inner chunk {})",
            self.keys.store.describe(&place.key),
            self.grid.chunk_name(linear)
        )
    }

    fn index_codec(&self, what: &str) -> FsResult<&ShardIndexCodec> {
        self.index
            .as_deref()
            .ok_or_else(|| FsError::io(format!("chunk {what}: unusable sharding configuration")))
    }

    fn open_shard(&self, place: &Place) -> FsResult<Option<Box<dyn OpenObject>>> {
        self.keys
            .store
            .open(&place.key, self.keys.max_len)
            .map_err(|err| io_error(&*self.keys.store, &place.key, &err))
    }

    /// The index of an open shard: from the cache while the shard is the version it was
    /// read from, else read (and counted in `stats`) and decoded.
    fn shard_index(
        &self,
        place: &Place,
        shard: &dyn OpenObject,
        what: &str,
        stats: &Stats,
    ) -> FsResult<Arc<ShardIndex>> {
        let version = shard.version();
        let cache_key = (self.id, place.shard);
        if let Some(index) = version.and_then(|v| self.cache.get(cache_key, v)) {
            return Ok(index);
        }
        let codec = self.index_codec(what)?;
        let fail = |why: String| FsError::io(format!("chunk {what}: shard index: {why}"));
        let range = codec.range(shard.len()).map_err(|e| fail(e.to_string()))?;
        let mut encoded = vec![0u8; codec.encoded_len()];
        read_exact_at(shard, range.start, &mut encoded).map_err(fail)?;
        Stats::add(&stats.store_bytes_read, encoded.len() as u64);
        remember_index(
            codec,
            &self.cache,
            cache_key,
            version,
            &encoded,
            shard.len(),
        )
        .map_err(fail)
    }

    /// Opens the shard of chunk `linear` and finds where the chunk lies in it; `None` when
    /// the shard or the chunk is absent.
    fn locate(&self, linear: u64, stats: &Stats) -> FsResult<Option<Found>> {
        let place = self.place(linear);
        let what = self.describe_place(&place, linear);
        let Some(shard) = self.open_shard(&place)? else {
            return Ok(None);
        };
        let index = self.shard_index(&place, &*shard, &what, stats)?;
        let range = index
            .chunk(place.within, self.fixed_len)
            .map_err(|e| FsError::io(format!("chunk {what}: {e}")))?;
        Ok(range.map(|range| Found { what, shard, range }))
    }

    pub(super) fn read(
        &self,
        linear: u64,
        buf: &mut Vec<u8>,
        stats: &Stats,
    ) -> FsResult<Option<(String, Option<ObjectVersion>)>> {
        let Some(Found { what, shard, range }) = self.locate(linear, stats)? else {
            return Ok(None);
        };
        // The range lies inside the shard (checked against its size), so the store justifies
        // the allocation.
        buf.resize((range.end - range.start) as usize, 0);
        read_exact_at(&*shard, range.start, buf)
            .map_err(|why| FsError::io(format!("chunk {what}: {why}")))?;
        Stats::add(&stats.store_bytes_read, buf.len() as u64);
        Ok(Some((what, shard.version())))
    }

    /// Starts reading the stored bytes of inner chunks `linears` ahead of their decoders on
    /// a store whose reads are round trips: per shard, its index unless cached, then those
    /// chunks' ranges, touching ones in one request; returns at once. Index bytes read are
    /// counted in `stats`.
    pub(super) fn prefetch(&self, linears: &[u64], stats: &Arc<Stats>) {
        let Some(codec) = &self.index else {
            return;
        };
        if linears.is_empty() || !self.keys.store.profile().remote {
            return;
        }
        let mut by_shard: BTreeMap<u64, (String, Vec<usize>)> = BTreeMap::new();
        for &linear in linears {
            let place = self.place(linear);
            let (_, within) = by_shard
                .entry(place.shard)
                .or_insert_with(|| (place.key, Vec::new()));
            within.push(place.within);
        }
        for (shard, (key, within)) in by_shard {
            let plan = ShardPlan {
                codec: codec.clone(),
                cache: self.cache.clone(),
                cache_key: (self.id, shard),
                fixed_len: self.fixed_len,
                within,
                stats: stats.clone(),
            };
            self.keys
                .store
                .prefetch_parts(&key, self.keys.max_len, Box::new(plan));
        }
    }

    /// Inner chunks per shard along the first axis.
    pub(super) fn bands_per_shard(&self) -> u64 {
        self.per_shard.first().copied().unwrap_or(1)
    }

    /// The version of the shard holding chunk `linear` as stored now, `None` when absent.
    pub(super) fn version(&self, linear: u64) -> FsResult<Option<ObjectVersion>> {
        let place = self.place(linear);
        let store = &self.keys.store;
        store
            .object_version(&place.key)
            .map_err(|err| io_error(&**store, &place.key, &err))
    }

    pub(super) fn open(&self, linear: u64, stats: &Stats) -> FsResult<Option<OpenStored>> {
        Ok(self
            .locate(linear, stats)?
            .map(|Found { what, shard, range }| (what, Box::new(Part { shard, range }) as _)))
    }

    pub(super) fn info(&self, linear: u64) -> FsResult<Option<ObjectInfo>> {
        let place = self.place(linear);
        let store = &self.keys.store;
        store
            .object_info(&place.key)
            .map_err(|err| io_error(&**store, &place.key, &err))
    }

    pub(super) fn key(&self, linear: u64) -> String {
        self.place(linear).key
    }

    pub(super) fn describe(&self, linear: u64) -> String {
        self.describe_place(&self.place(linear), linear)
    }

    pub(super) fn write_back(
        &self,
        updates: &[Update],
        durable: bool,
        stats: &Stats,
    ) -> Vec<FsResult<WriteBack>> {
        let mut by_shard: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, (linear, _)) in updates.iter().enumerate() {
            by_shard
                .entry(self.place(*linear).shard)
                .or_default()
                .push(i);
        }
        let groups: Vec<Vec<usize>> = by_shard.into_values().collect();
        let done: Vec<(Vec<usize>, FsResult<()>)> = groups
            .into_par_iter()
            .map(|members| {
                let result = self.rewrite_shard(updates, &members, durable, stats);
                (members, result)
            })
            .collect();
        let mut results: Vec<Option<FsResult<WriteBack>>> = vec![None; updates.len()];
        for (members, result) in done {
            for i in members {
                results[i] = Some(result.clone().map(|()| match &updates[i].1 {
                    Some(bytes) => WriteBack::Stored(bytes.len()),
                    None => WriteBack::Deleted,
                }));
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every update belongs to a shard"))
            .collect()
    }

    /// Rewrites one shard with the updates `members` (indices into `updates`, all of that
    /// shard): their new bytes, the other inner chunks' bytes as stored, a new index. A
    /// shard left without chunks is removed. Stored inner chunks of the array that cannot
    /// be kept (an unreadable index, a bad entry) make it fail: nothing is lost.
    fn rewrite_shard(
        &self,
        updates: &[Update],
        members: &[usize],
        durable: bool,
        stats: &Stats,
    ) -> FsResult<()> {
        let store = &self.keys.store;
        let first = updates[members[0]].0;
        let place = self.place(first);
        let path = store.describe(&place.key);
        let codec = self.index_codec(&self.describe_place(&place, first))?;
        let mut chunks: Vec<Option<&[u8]>> = vec![None; codec.chunks()];
        let mut updated = vec![false; codec.chunks()];
        for &i in members {
            let within = self.place(updates[i].0).within;
            chunks[within] = updates[i].1.as_deref();
            updated[within] = true;
        }
        let old = store
            .get(&place.key, self.keys.max_len)
            .map_err(|err| io_error(&**store, &place.key, &err))?;
        if let Some(old) = &old {
            Stats::add(&stats.store_bytes_read, old.len() as u64);
            let index = codec.decode_shard(old).map_err(|e| e.to_string());
            for within in (0..chunks.len()).filter(|&w| !updated[w]) {
                let kept = match &index {
                    Ok(index) => index
                        .chunk(within, self.fixed_len)
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err.clone()),
                };
                match (kept, self.inner_chunk(place.shard, within)) {
                    (Ok(range), _) => {
                        chunks[within] = range.map(|r| &old[r.start as usize..r.end as usize]);
                    }
                    // Outside the array: nothing can read it, nothing is lost.
                    (Err(_), None) => {}
                    (Err(err), Some(inner)) => {
                        return Err(FsError::io(format!(
                            "cannot rewrite shard {path}: inner chunk {} cannot be kept: {err}",
                            self.grid.chunk_name(inner)
                        )))
                    }
                }
            }
        }
        let result = if chunks.iter().all(Option::is_none) {
            store
                .delete(&place.key, durable)
                .map_err(|e| FsError::from_io(&format!("deleting shard {path}"), &e))
        } else {
            let shard = codec
                .assemble(&chunks)
                .map_err(|e| FsError::io(format!("shard {path}: {e}")))?;
            store
                .put(&place.key, &shard, Some(&self.keys.like), durable)
                .map_err(|e| FsError::from_io(&format!("writing shard {path}"), &e))
        };
        self.cache.remove((self.id, place.shard));
        result
    }
}

/// Decodes the index `encoded` of a shard of `shard_len` bytes and keeps it in `cache`
/// under `key` when the shard's `version` is known.
fn remember_index(
    codec: &ShardIndexCodec,
    cache: &IndexCache,
    key: ShardKey,
    version: Option<ObjectVersion>,
    encoded: &[u8],
    shard_len: u64,
) -> Result<Arc<ShardIndex>, String> {
    let index = Arc::new(
        codec
            .decode(encoded, shard_len)
            .map_err(|e| e.to_string())?,
    );
    if let Some(version) = version {
        cache.insert(key, version, index.clone(), std::time::SystemTime::now());
    }
    Ok(index)
}

/// The inner chunks of one shard to read ahead: its index first, unless cached for the
/// shard's version, then those chunks' ranges.
struct ShardPlan {
    codec: Arc<ShardIndexCodec>,
    cache: Arc<IndexCache>,
    cache_key: ShardKey,
    fixed_len: Option<usize>,
    /// The chunks' positions in the shard.
    within: Vec<usize>,
    stats: Arc<Stats>,
}

impl PartPlan for ShardPlan {
    fn first(&self, len: u64, version: ObjectVersion) -> Option<Range<u64>> {
        match self.cache.get(self.cache_key, version) {
            Some(_) => None,
            None => self.codec.range(len).ok(),
        }
    }

    fn first_unsized(&self) -> Option<(u64, bool)> {
        Some((self.codec.encoded_len() as u64, self.codec.at_end()))
    }

    fn parts(&self, len: u64, version: ObjectVersion, first: Option<&[u8]>) -> Vec<Range<u64>> {
        let index = match first {
            None => self.cache.get(self.cache_key, version),
            Some(encoded) => {
                Stats::add(&self.stats.store_bytes_read, encoded.len() as u64);
                let (codec, cache, key) = (&self.codec, &self.cache, self.cache_key);
                remember_index(codec, cache, key, Some(version), encoded, len).ok()
            }
        };
        let Some(index) = index else {
            // A bad index: the reads that need it say why.
            return Vec::new();
        };
        self.within
            .iter()
            .filter_map(|&within| index.chunk(within, self.fixed_len).ok().flatten())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::array::{WriteBack, ZarrArray};
    use crate::cache::ChunkBuf;
    use crate::metadata::v3::parse_array;
    use crate::stats::Stats;
    use crate::store::{DirectoryStore, Store};
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::SystemTime;

    /// A 6x8 `<u2` array in 4x4 shards of 2x2 inner chunks (edge shards on the first axis),
    /// fill 9, inner codecs as given.
    fn array(location: &str, inner: Value) -> (tempfile::TempDir, Arc<DirectoryStore>, ZarrArray) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DirectoryStore::open(dir.path()).unwrap());
        let meta = parse_array(&json!({
            "zarr_format": 3, "node_type": "array", "shape": [6, 8], "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 9,
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [2, 2], "codecs": inner, "index_location": location,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}]}}]
        }))
        .unwrap();
        let array = ZarrArray::new(0, store.clone(), "", meta, SystemTime::now());
        assert_eq!(array.codec_problem(), None);
        (dir, store, array)
    }

    /// Dates a shard an hour back: the index of a shard modified just now is not kept.
    fn backdate(store: &DirectoryStore, key: &str) {
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(store.root().join(key))
            .and_then(|f| f.set_modified(an_hour_ago))
            .unwrap();
    }

    fn plain() -> Value {
        json!([{"name": "bytes", "configuration": {"endian": "little"}}])
    }

    fn chunk(seed: u16) -> ChunkBuf {
        Arc::new(
            (0..4u16)
                .flat_map(|i| (seed * 10 + i).to_le_bytes())
                .collect(),
        )
    }

    fn load(array: &ZarrArray, linear: u64, stats: &Stats) -> Vec<u8> {
        array.load_chunk(linear, stats).unwrap().buf.to_vec()
    }

    fn write(array: &ZarrArray, chunks: &[(u64, ChunkBuf)]) -> Vec<WriteBack> {
        let results = array.write_back_chunks(chunks, false, &Stats::default());
        results.into_iter().map(Result::unwrap).collect()
    }

    /// The stored bytes of inner chunk `within` of a shard.
    fn stored_part(shard: &[u8], location: &str, within: usize) -> Vec<u8> {
        let index = if location == "end" {
            &shard[shard.len() - 68..]
        } else {
            &shard[..68]
        };
        let entry = |k: usize| u64::from_le_bytes(index[8 * k..8 * k + 8].try_into().unwrap());
        let (offset, len) = (entry(2 * within) as usize, entry(2 * within + 1) as usize);
        shard[offset..offset + len].to_vec()
    }

    #[test]
    fn an_inner_chunk_read_reads_the_index_once_and_its_own_bytes() {
        for location in ["start", "end"] {
            let (_dir, store, a) = array(location, plain());
            // Inner chunks (0, 0) and (1, 1) of shard (0, 0); (2, 3) of shard (1, 1).
            write(&a, &[(0, chunk(1)), (5, chunk(2)), (11, chunk(3))]);
            backdate(&store, "c/0/0");
            let shard = store.get("c/0/0", u64::MAX).unwrap().unwrap();
            assert_eq!(shard.len(), 68 + 16, "{location}");
            let stats = Stats::default();
            assert_eq!(load(&a, 5, &stats), *chunk(2));
            assert_eq!(stats.store_bytes_read.load(Ordering::Relaxed), 68 + 8);
            assert_eq!(load(&a, 0, &stats), *chunk(1));
            assert_eq!(
                stats.store_bytes_read.load(Ordering::Relaxed),
                68 + 16,
                "{location}: the index is read once"
            );
            assert_eq!(load(&a, 1, &stats), [9, 0].repeat(4), "absent inner chunk");
            assert_eq!(load(&a, 11, &stats), *chunk(3));
            assert_eq!(
                load(&a, 8, &stats),
                [9, 0].repeat(4),
                "absent in a stored shard"
            );
            assert_eq!(load(&a, 2, &stats), [9, 0].repeat(4), "absent shard");
            assert_eq!(stats.chunks_missing.load(Ordering::Relaxed), 3);
            assert_eq!(a.chunk_store_key(5), "c/0/0");
            assert!(a.describe_chunk(5).ends_with("c/0/0 (inner chunk 1.1)"));
        }
    }

    #[test]
    fn a_shard_replaced_by_another_writer_is_read_anew() {
        let (_dir, store, a) = array("end", plain());
        write(&a, &[(0, chunk(1))]);
        backdate(&store, "c/0/0");
        let stats = Stats::default();
        assert_eq!(load(&a, 0, &stats), *chunk(1));
        assert_eq!(load(&a, 0, &stats), *chunk(1));
        assert_eq!(
            stats.store_bytes_read.load(Ordering::Relaxed),
            68 + 2 * 8,
            "the index is kept"
        );
        // Another array object (another writer) moves the chunk and adds one.
        let (_dir2, _, other) = array("end", plain());
        let writer = ZarrArray::new(1, store.clone(), "", other.meta.clone(), SystemTime::now());
        write(&writer, &[(0, chunk(4)), (1, chunk(5))]);
        assert_eq!(load(&a, 0, &stats), *chunk(4));
        assert_eq!(load(&a, 1, &stats), *chunk(5));
    }

    #[test]
    fn write_back_rewrites_each_shard_once_copying_untouched_chunks() {
        for location in ["start", "end"] {
            let inner = json!([{"name": "bytes", "configuration": {"endian": "big"}},
                               {"name": "zstd", "configuration": {"level": 3, "checksum": false}}]);
            let (_dir, store, a) = array(location, inner);
            write(&a, &[(0, chunk(1)), (1, chunk(2)), (4, chunk(3))]);
            let before = store.get("c/0/0", u64::MAX).unwrap().unwrap();
            // Chunk 1 changes, chunk 4 becomes fill: chunk 0 keeps its stored bytes.
            let fill = a.fill_chunk();
            assert_eq!(*fill, [0u8, 9].repeat(4), "big-endian views");
            let outcome = write(&a, &[(1, chunk(7)), (4, fill.clone())]);
            assert!(matches!(outcome[0], WriteBack::Stored(_)));
            assert_eq!(outcome[1], WriteBack::Deleted);
            let after = store.get("c/0/0", u64::MAX).unwrap().unwrap();
            assert_eq!(
                stored_part(&after, location, 0),
                stored_part(&before, location, 0),
                "{location}: copied as stored"
            );
            let stats = Stats::default();
            assert_eq!(load(&a, 0, &stats), *chunk(1));
            assert_eq!(load(&a, 1, &stats), *chunk(7));
            assert_eq!(load(&a, 4, &stats), *fill);
            let index = if location == "end" {
                &after[after.len() - 68..]
            } else {
                &after[..68]
            };
            assert_eq!(
                index[32..48],
                [0xFF; 16],
                "{location}: inner chunk 4 (1, 0) absent"
            );
            // The last chunks become fill: the shard leaves the store.
            write(&a, &[(0, fill.clone()), (1, fill.clone())]);
            assert_eq!(store.get("c/0/0", u64::MAX).unwrap(), None, "{location}");
            assert_eq!(load(&a, 0, &stats), *fill);
        }
    }

    #[test]
    fn bad_entries_fail_their_chunk_only_and_are_never_dropped() {
        let (_dir, store, a) = array("end", plain());
        write(&a, &[(0, chunk(1)), (1, chunk(2))]);
        let mut shard = store.get("c/0/0", u64::MAX).unwrap().unwrap();
        // Inner chunk 1 points past the end of the shard; the checksum is made to fit.
        let at = shard.len() - 68;
        shard[at + 16..at + 24].copy_from_slice(&1000u64.to_le_bytes());
        let crc = crc32c::crc32c(&shard[at..at + 64]);
        shard[at + 64..].copy_from_slice(&crc.to_le_bytes());
        store.put("c/0/0", &shard, None, false).unwrap();
        let stats = Stats::default();
        assert_eq!(load(&a, 0, &stats), *chunk(1));
        let err = a.load_chunk(1, &stats).unwrap_err();
        assert_eq!(err.errno, libc::EIO);
        assert!(
            err.message.contains("c/0/0 (inner chunk 0.1)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("outside the shard"), "{}", err.message);
        // Rewriting the shard would lose inner chunk 1: refused, the shard stays as it is.
        let results = a.write_back_chunks(&[(0, chunk(3))], false, &Stats::default());
        let err = results[0].as_ref().unwrap_err();
        assert!(
            err.message.contains("inner chunk 0.1 cannot be kept"),
            "{}",
            err.message
        );
        assert_eq!(store.get("c/0/0", u64::MAX).unwrap().unwrap(), shard);
        // Writing the bad chunk whole replaces it.
        write(&a, &[(0, chunk(3)), (1, chunk(4))]);
        assert_eq!(load(&a, 1, &stats), *chunk(4));
    }

    #[test]
    fn an_unreadable_index_fails_every_chunk_of_its_shard() {
        let (_dir, store, a) = array("start", plain());
        write(&a, &[(0, chunk(1)), (11, chunk(2))]);
        let mut shard = store.get("c/0/0", u64::MAX).unwrap().unwrap();
        shard[3] ^= 0x40;
        store.put("c/0/0", &shard, None, false).unwrap();
        let stats = Stats::default();
        for linear in [0, 1, 4, 5] {
            let err = a.load_chunk(linear, &stats).unwrap_err();
            assert!(err.message.contains("checksum mismatch"), "{}", err.message);
        }
        assert_eq!(load(&a, 11, &stats), *chunk(2), "another shard");
        // A truncated shard, shorter than its index.
        store.put("c/0/0", &shard[..40], None, false).unwrap();
        let err = a.load_chunk(0, &stats).unwrap_err();
        assert!(
            err.message.contains("cannot hold its index"),
            "{}",
            err.message
        );
    }

    #[test]
    fn blosc_inner_chunks_read_by_blocks_from_their_shard() {
        let inner = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                           {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                            "shuffle": "shuffle", "typesize": 2, "blocksize": 0}}]);
        let (_dir, _store, a) = array("start", inner);
        assert!(a.may_decode_by_blocks());
        write(&a, &[(5, chunk(6))]);
        let stats = Stats::default();
        let (location, object) = a.open_stored(5, &stats).unwrap().unwrap();
        assert!(location.ends_with("(inner chunk 1.1)"), "{location}");
        let mut stored = vec![0u8; object.len() as usize];
        a.read_stored_at((&location, &*object), 0, &mut stored, &stats)
            .unwrap();
        let decoded = a
            .decode_stored(5, &location, &stored, Vec::new(), &stats)
            .unwrap();
        assert_eq!(decoded, *chunk(6));
        let mut past = [0u8; 1];
        assert!(a
            .read_stored_at((&location, &*object), object.len(), &mut past, &stats)
            .is_err());
        assert!(a.open_stored(0, &stats).unwrap().is_none());
    }

    /// A plan run by an [`ObservedStore`]: the key, whether a first part was read, the parts.
    type Planned = (String, bool, Vec<std::ops::Range<u64>>);

    /// A directory store whose opens take `open_delay` and note the thread they ran on;
    /// with `remote`, it says its reads are round trips and runs each plan of parts to read
    /// ahead at once, noting its key, whether it read a first part, and the parts.
    #[derive(Debug)]
    struct ObservedStore {
        inner: DirectoryStore,
        open_delay: std::time::Duration,
        remote: bool,
        threads: parking_lot::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
        planned: parking_lot::Mutex<Vec<Planned>>,
    }

    impl ObservedStore {
        fn new(dir: &std::path::Path, open_delay: std::time::Duration, remote: bool) -> Self {
            ObservedStore {
                inner: DirectoryStore::open(dir).unwrap(),
                open_delay,
                remote,
                threads: Default::default(),
                planned: Default::default(),
            }
        }
    }

    impl Store for ObservedStore {
        fn get(&self, key: &str, max_len: u64) -> std::io::Result<Option<Vec<u8>>> {
            self.inner.get(key, max_len)
        }
        fn open(
            &self,
            key: &str,
            max_len: u64,
        ) -> std::io::Result<Option<Box<dyn crate::store::OpenObject>>> {
            std::thread::sleep(self.open_delay);
            self.threads.lock().insert(std::thread::current().id());
            self.inner.open(key, max_len)
        }
        fn info(&self, key: &str) -> std::io::Result<Option<crate::store::ObjectInfo>> {
            self.inner.info(key)
        }
        fn list(&self, prefix: &str) -> std::io::Result<Vec<crate::store::ListEntry>> {
            self.inner.list(prefix)
        }
        fn describe(&self, key: &str) -> String {
            self.inner.describe(key)
        }
        fn put(
            &self,
            key: &str,
            bytes: &[u8],
            like: Option<&str>,
            durable: bool,
        ) -> std::io::Result<()> {
            self.inner.put(key, bytes, like, durable)
        }
        fn delete(&self, key: &str, durable: bool) -> std::io::Result<()> {
            self.inner.delete(key, durable)
        }
        fn remove_stale_temporaries(&self) -> std::io::Result<usize> {
            Ok(0)
        }
        fn profile(&self) -> crate::store::Profile {
            crate::store::Profile {
                remote: self.remote,
                ..crate::store::Profile::LOCAL
            }
        }
        fn prefetch_parts(&self, key: &str, max_len: u64, plan: Box<dyn crate::store::PartPlan>) {
            let object = self.inner.open(key, max_len).unwrap().unwrap();
            let len = object.len();
            let version = object.version().expect("a directory store tells versions");
            let first = plan.first(len, version).map(|range| {
                let mut bytes = vec![0u8; (range.end - range.start) as usize];
                object.read_at(range.start, &mut bytes).unwrap();
                bytes
            });
            let parts = plan.parts(len, version, first.as_deref());
            self.planned
                .lock()
                .push((key.to_string(), first.is_some(), parts));
        }
    }

    #[test]
    fn remote_stores_are_told_the_ranges_of_inner_chunks_to_read_ahead() {
        let (dir, store, a) = array("end", plain());
        write(&a, &[(0, chunk(1)), (5, chunk(2)), (11, chunk(3))]);
        backdate(&store, "c/0/0");
        backdate(&store, "c/1/1");
        let local = Arc::new(ObservedStore::new(dir.path(), Default::default(), false));
        let over = |store: Arc<ObservedStore>| {
            ZarrArray::new(1, store, "", a.meta.clone(), SystemTime::now())
        };
        let stats = Arc::new(Stats::default());
        over(local.clone()).prefetch_stored(&[0, 5], &stats);
        assert!(
            local.planned.lock().is_empty(),
            "a local store reads on demand"
        );

        let remote = Arc::new(ObservedStore::new(dir.path(), Default::default(), true));
        let array = over(remote.clone());
        // Inner chunk 1 is absent from its shard; 0 and 5 share one.
        array.prefetch_stored(&[0, 1, 5, 11], &stats);
        let planned = std::mem::take(&mut *remote.planned.lock());
        let keys: Vec<(&str, bool, usize)> = planned
            .iter()
            .map(|(key, first, parts)| (key.as_str(), *first, parts.len()))
            .collect();
        assert_eq!(keys, [("c/0/0", true, 2), ("c/1/1", true, 1)]);
        for ((key, _, parts), expected) in planned.iter().zip([vec![1, 2], vec![3]]) {
            let shard = store.get(key, u64::MAX).unwrap().unwrap();
            for (part, seed) in parts.iter().zip(expected) {
                let stored = &shard[part.start as usize..part.end as usize];
                assert_eq!(stored, &chunk(seed)[..], "{key} {part:?}");
            }
        }
        assert_eq!(stats.store_bytes_read.load(Ordering::Relaxed), 2 * 68);
        // The indexes are known now: only the chunks' ranges are read.
        array.prefetch_stored(&[5], &stats);
        let planned = remote.planned.lock().clone();
        assert_eq!(planned.len(), 1);
        assert!(!planned[0].1, "no index read again");
        assert_eq!(stats.store_bytes_read.load(Ordering::Relaxed), 2 * 68);
    }

    #[test]
    fn a_band_of_inner_chunks_is_read_in_parallel() {
        use crate::cache::Admission;
        use crate::reader::ChunkReader;
        let (dir, _store, a) = array("end", plain());
        let values: Vec<u8> = (0..96u8).collect();
        let chunks: Vec<(u64, ChunkBuf)> = (0..12u64)
            .map(|linear| {
                let index = a.grid.chunk_index(linear);
                let mut chunk = Vec::new();
                for row in 0..2 {
                    let at = ((index[0] * 2 + row) * 8 + index[1] * 2) as usize * 2;
                    chunk.extend_from_slice(&values[at..at + 4]);
                }
                (linear, Arc::new(chunk))
            })
            .collect();
        write(&a, &chunks);
        let slow = Arc::new(ObservedStore::new(
            dir.path(),
            std::time::Duration::from_millis(5),
            false,
        ));
        let array = Arc::new(ZarrArray::new(
            1,
            slow.clone(),
            "",
            a.meta.clone(),
            SystemTime::now(),
        ));
        let reader = ChunkReader::with_budget(1 << 20, 4).unwrap();
        let got = reader.read_flat(&array, 0, 96, Admission::Keep).unwrap();
        assert_eq!(got, values);
        let threads = slow.threads.lock().len();
        assert!(threads > 1, "12 inner chunks read on {threads} thread(s)");
    }
}
