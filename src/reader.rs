//! Range reads over arrays: decodes the chunks a request touches in parallel through the
//! cache, copies contiguous runs into the reply, and decodes ahead of sequential readers.

use crate::array::{WalkOrder, ZarrArray};
use crate::blocks::{BlockBuf, BlockStream};
use crate::cache::{Admission, ChunkBuf, ChunkCache, ChunkKey};
use crate::error::FsResult;
use crate::geometry::ReadPlan;
use crate::stats::Stats;
use crate::store::Profile;
use parking_lot::Mutex;
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunks a sequential reader of a flat view keeps while it reads their band, valid for
/// one write-back generation of the array.
#[derive(Debug, Default)]
pub struct HeldChunks {
    chunks: std::collections::HashMap<u64, ChunkBuf>,
    generation: u64,
}

impl HeldChunks {
    /// Whether no chunk is held.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Lets go of every chunk, offering the buffers to `cache` for reuse.
    pub fn clear(&mut self, cache: &ChunkCache) {
        self.retain(0..0, cache);
    }

    /// Keeps only the chunks whose linear positions lie in `range`; the others' buffers are
    /// offered to `cache` for reuse (taken when the cache no longer holds them either).
    pub fn retain(&mut self, range: std::ops::Range<u64>, cache: &ChunkCache) {
        let dropped: Vec<u64> = self
            .chunks
            .keys()
            .filter(|chunk| !range.contains(chunk))
            .copied()
            .collect();
        for chunk in dropped {
            if let Some(buf) = self.chunks.remove(&chunk) {
                cache.recycle(buf);
            }
        }
    }
}

/// Where a request's bytes of one chunk come from.
enum Source {
    /// The whole decoded chunk.
    Whole(ChunkBuf),
    /// Consecutive blocks of the chunk, from block `first` on.
    Blocks {
        first: usize,
        block_bytes: usize,
        blocks: Vec<BlockBuf>,
    },
}

/// Shared machinery for reading decoded chunk data.
#[derive(Debug)]
pub struct ChunkReader {
    cache: Arc<ChunkCache>,
    pool: Arc<rayon::ThreadPool>,
    stats: Arc<Stats>,
    pending_prefetches: Arc<AtomicUsize>,
    max_pending_prefetches: usize,
    /// Chunks whose decode ahead is queued and has not started (then the cache shows it).
    queued: Arc<Mutex<HashSet<ChunkKey>>>,
    /// How many chunks ahead of the decodes a sequential reader's stored chunks are read
    /// (stores whose reads are round trips; 0 for local ones).
    fetch_ahead: usize,
    /// How long a cached chunk is served before it is checked against its stored version
    /// again (local stores with a TTL; `None`: cached chunks are trusted).
    revalidate_after: Option<Duration>,
}

impl ChunkReader {
    /// A reader decoding on `pool` into `cache`.
    pub fn new(cache: Arc<ChunkCache>, pool: Arc<rayon::ThreadPool>, stats: Arc<Stats>) -> Self {
        let max_pending_prefetches = 2 * pool.current_num_threads() + 2;
        ChunkReader {
            cache,
            pool,
            stats,
            pending_prefetches: Arc::new(AtomicUsize::new(0)),
            max_pending_prefetches,
            queued: Arc::new(Mutex::new(HashSet::new())),
            fetch_ahead: 0,
            revalidate_after: None,
        }
    }

    /// A reader with its own counters, a cache of `cache_budget` bytes and a pool of
    /// `threads` decode threads.
    pub fn with_budget(
        cache_budget: usize,
        threads: usize,
    ) -> Result<Self, rayon::ThreadPoolBuildError> {
        let stats = Arc::new(Stats::default());
        let cache = Arc::new(ChunkCache::new(cache_budget, stats.clone()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("zarrfs-decode-{i}"))
            // A job's panic is logged by the panic hook; the pool must not abort for it.
            .panic_handler(drop)
            .build()?;
        Ok(Self::new(cache, Arc::new(pool), stats))
    }

    /// Sizes read-ahead for a store: decodes stay as few as keep the decoders busy, and on a
    /// store whose reads are round trips the stored chunks after them are read ahead, as many
    /// as its profile keeps in flight (within a quarter of the cache budget, see
    /// [`Self::prefetch_list`]). On a local store with a TTL, cached chunks are checked
    /// against their stored versions once per TTL (see [`Profile::revalidate_after`]).
    pub fn for_store(mut self, profile: Profile) -> Self {
        if profile.remote {
            self.fetch_ahead = profile.requests_in_flight;
        } else {
            self.revalidate_after = profile.revalidate_after;
        }
        self
    }

    /// How a sequential scan of `array` admits the chunks it decodes: kept from the second
    /// pass on, unless the array is larger than the whole cache (then never).
    pub fn scan_admission(&self, array: &ZarrArray) -> Admission {
        let whole = array.grid.num_chunks() as u128 * array.grid.chunk_bytes() as u128;
        if whole > self.cache.budget() as u128 {
            Admission::Stream
        } else {
            Admission::Scan
        }
    }

    /// How many chunks read-ahead reaches beyond the reader: decodes in flight, or on a
    /// remote store the stored chunks read ahead of them.
    pub fn prefetch_depth(&self) -> u64 {
        self.max_pending_prefetches.max(self.fetch_ahead) as u64
    }

    /// How many chunks decodes reach beyond a sequential reader, on any store: decoded
    /// chunks wait in memory, so only as many as keep the decoders busy.
    pub fn decode_depth(&self) -> u64 {
        self.max_pending_prefetches as u64
    }

    /// The cache as reads see it: cached chunks checked against the store as the store's
    /// profile says.
    fn checked(&self) -> Checked<'_> {
        Checked {
            cache: &self.cache,
            stats: &self.stats,
            max_age: self.revalidate_after,
            current: false,
        }
    }

    /// The cache as a read-modify-write sees it: on a store whose cached chunks are
    /// revalidated, every cached chunk is checked whatever its age, and a miss decodes the
    /// chunk as stored now rather than waiting for a decode already under way (which may
    /// have opened an older version).
    fn checked_now(&self) -> Checked<'_> {
        Checked {
            max_age: self.revalidate_after.map(|_| Duration::ZERO),
            current: self.revalidate_after.is_some(),
            ..self.checked()
        }
    }

    /// The chunk cache.
    pub fn cache(&self) -> &Arc<ChunkCache> {
        &self.cache
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Waits until no decode started ahead of a reader is queued or running.
    #[cfg(test)]
    pub fn wait_for_prefetches(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.pending_prefetches.load(Ordering::Relaxed) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "prefetches never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The thread pool used for decoding and encoding.
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// One chunk as readers see it: its unsaved version if written, else decoded (cached as
    /// `admission` says).
    pub fn chunk(
        &self,
        array: &ZarrArray,
        linear: u64,
        admission: Admission,
    ) -> FsResult<ChunkBuf> {
        if let Some(buf) = array.dirty.lock().chunks.get(&linear) {
            return Ok(buf.clone());
        }
        self.stored_chunk_for(array, linear, admission)
    }

    /// The chunk as stored (ignoring unsaved writes), decoded through the cache.
    pub fn stored_chunk(&self, array: &ZarrArray, linear: u64) -> FsResult<ChunkBuf> {
        self.stored_chunk_for(array, linear, Admission::Keep)
    }

    /// The chunk as stored, decoded through the cache and admitted as `admission` says.
    fn stored_chunk_for(
        &self,
        array: &ZarrArray,
        linear: u64,
        admission: Admission,
    ) -> FsResult<ChunkBuf> {
        load_through_cache(&self.checked(), array, linear, admission, || true)
    }

    /// Loads several stored chunks, in parallel when more than one is missing from the cache.
    pub fn stored_chunks(
        &self,
        array: &Arc<ZarrArray>,
        wanted: &[u64],
        admission: Admission,
    ) -> FsResult<Vec<ChunkBuf>> {
        self.stored_chunks_checked(array, wanted, admission, &self.checked())
    }

    /// The stored chunks as they are in the store now, for a read-modify-write: on a store
    /// whose cached chunks are revalidated, each cached one is checked against its stored
    /// version whatever its age, so that a write never builds on a superseded chunk.
    pub fn current_stored_chunks(
        &self,
        array: &Arc<ZarrArray>,
        wanted: &[u64],
    ) -> FsResult<Vec<ChunkBuf>> {
        self.stored_chunks_checked(array, wanted, Admission::Keep, &self.checked_now())
    }

    fn stored_chunks_checked(
        &self,
        array: &Arc<ZarrArray>,
        wanted: &[u64],
        admission: Admission,
        checked: &Checked<'_>,
    ) -> FsResult<Vec<ChunkBuf>> {
        let load = |linear| load_through_cache(checked, array, linear, admission, || true);
        let mut found: Vec<Option<ChunkBuf>> = wanted
            .iter()
            .map(|&linear| checked.cached(array, linear, admission))
            .collect();
        let missing: Vec<usize> = (0..wanted.len()).filter(|&i| found[i].is_none()).collect();
        match missing.len() {
            0 => {}
            1 => found[missing[0]] = Some(load(wanted[missing[0]])?),
            _ => {
                let loaded: Vec<FsResult<ChunkBuf>> = self
                    .pool
                    .install(|| missing.par_iter().map(|&i| load(wanted[i])).collect());
                for (slot, result) in missing.iter().zip(loaded) {
                    found[*slot] = Some(result?);
                }
            }
        }
        Ok(found.into_iter().map(|b| b.expect("filled")).collect())
    }

    /// Reads `[offset, offset + len)` of the array's flat C-order view (clipped to its size);
    /// chunks decoded on the way enter the cache as `admission` says.
    pub fn read_flat(
        &self,
        array: &Arc<ZarrArray>,
        offset: u64,
        len: u64,
        admission: Admission,
    ) -> FsResult<Vec<u8>> {
        self.read_flat_holding(array, offset, len, admission, None, None)
    }

    /// [`Self::read_flat`] for a sequential reader that keeps the chunks it reads in `held`
    /// (taken from there first), so that a band of chunks larger than the cache is decoded
    /// once per pass instead of once per request. With `blocks`, chunks that are neither
    /// unsaved, held nor cached are read by the blocks the request needs.
    pub fn read_flat_holding(
        &self,
        array: &Arc<ZarrArray>,
        offset: u64,
        len: u64,
        admission: Admission,
        mut held: Option<&mut HeldChunks>,
        blocks: Option<&Arc<BlockStream>>,
    ) -> FsResult<Vec<u8>> {
        let plan = array.grid.plan_in_order(offset, len);
        let total: usize = plan.pieces.iter().map(|p| p.len).sum();
        let sources = loop {
            // Unsaved chunks are taken in one snapshot; if a write-back lands meanwhile the
            // snapshot may mix versions, so it is taken again.
            let (generation, mut bufs): (u64, Vec<Option<ChunkBuf>>) = {
                let dirty = array.dirty.lock();
                let bufs = plan
                    .chunks
                    .iter()
                    .map(|chunk| dirty.chunks.get(chunk).cloned())
                    .collect();
                (dirty.generation, bufs)
            };
            if let Some(held) = held.as_deref_mut() {
                if held.generation != generation {
                    // A write-back landed: what is held may be superseded.
                    held.chunks.clear();
                    held.generation = generation;
                }
                for (slot, chunk) in bufs.iter_mut().zip(&plan.chunks) {
                    if slot.is_none() {
                        *slot = held.chunks.get(chunk).cloned();
                    }
                }
            }
            let mut sources: Vec<Option<Source>> = Vec::with_capacity(bufs.len());
            if let Some(stream) = blocks {
                stream.sync_generation(generation);
                let checked = self.checked();
                for (slot, &chunk) in bufs.iter_mut().zip(&plan.chunks) {
                    if slot.is_none() {
                        *slot = checked.cached(array, chunk, admission);
                    }
                }
                sources.extend(bufs.into_iter().map(|b| b.map(Source::Whole)));
                self.fill_by_blocks(stream, &plan, &mut sources)?;
            } else {
                let wanted: Vec<u64> = plan
                    .chunks
                    .iter()
                    .zip(&bufs)
                    .filter(|(_, b)| b.is_none())
                    .map(|(&chunk, _)| chunk)
                    .collect();
                let mut stored = self.stored_chunks(array, &wanted, admission)?.into_iter();
                for slot in bufs.iter_mut().filter(|b| b.is_none()) {
                    *slot = stored.next();
                }
                sources.extend(bufs.into_iter().map(|b| b.map(Source::Whole)));
            }
            if array.dirty.lock().generation == generation {
                break sources
                    .into_iter()
                    .map(|b| b.expect("filled"))
                    .collect::<Vec<_>>();
            }
        };
        if let Some(held) = held {
            for (chunk, source) in plan.chunks.iter().zip(&sources) {
                if let Source::Whole(buf) = source {
                    held.chunks.entry(*chunk).or_insert_with(|| buf.clone());
                }
            }
        }
        // Pieces come in request order, so the reply is written once, never zeroed.
        let mut out = take_reply_buffer(total);
        for piece in &plan.pieces {
            match &sources[piece.slot as usize] {
                Source::Whole(buf) => {
                    out.extend_from_slice(&buf[piece.chunk_offset..piece.chunk_offset + piece.len])
                }
                Source::Blocks {
                    first,
                    block_bytes,
                    blocks,
                } => {
                    let (mut at, end) = (piece.chunk_offset, piece.chunk_offset + piece.len);
                    while at < end {
                        let index = at / block_bytes;
                        let block = &blocks[index - *first];
                        let within = at - index * block_bytes;
                        let n = (end - at).min(block_bytes - within);
                        let from = block.offset + within;
                        out.extend_from_slice(&block.buf[from..from + n]);
                        at += n;
                    }
                }
            }
        }
        Stats::add(&self.stats.bytes_read, out.len() as u64);
        Ok(out)
    }

    /// Fills the empty sources of a request with the blocks of their chunks that its
    /// pieces lie in, decoding the missing ones in parallel.
    fn fill_by_blocks(
        &self,
        stream: &Arc<BlockStream>,
        plan: &ReadPlan,
        sources: &mut [Option<Source>],
    ) -> FsResult<()> {
        let block_bytes = stream.block_bytes();
        // The bytes of each chunk the pieces touch (a chunk's pieces come in order).
        let mut ranges: Vec<Option<(usize, usize)>> = vec![None; sources.len()];
        for piece in &plan.pieces {
            let slot = piece.slot as usize;
            if sources[slot].is_none() {
                let end = piece.chunk_offset + piece.len;
                ranges[slot].get_or_insert((piece.chunk_offset, end)).1 = end;
            }
        }
        // Each chunk's blocks in order, chunk after chunk.
        let wanted: Vec<(u64, u64)> = ranges
            .iter()
            .zip(&plan.chunks)
            .filter_map(|(range, &chunk)| range.map(|r| (chunk, r)))
            .flat_map(|(chunk, (start, end))| {
                stream
                    .blocks_of(start, end)
                    .map(move |block| (chunk, block))
            })
            .collect();
        let mut loaded: Vec<Option<FsResult<BlockBuf>>> = stream
            .ready(wanted.iter().copied())
            .into_iter()
            .map(|ready| ready.map(Ok))
            .collect();
        let missing: Vec<usize> = (0..wanted.len()).filter(|&i| loaded[i].is_none()).collect();
        // The pool decodes all but the first; this thread decodes the first, then whatever
        // the pool has not started yet, and waits for the rest (a pool thread waiting for
        // another would leave a core idle).
        if missing.len() > 1 {
            stream.prefetch(&self.pool, missing[1..].iter().map(|&i| wanted[i]));
        }
        for &i in &missing {
            loaded[i] = Some(stream.block(wanted[i].0, wanted[i].1));
        }
        let mut loaded = loaded.into_iter().map(|l| l.expect("filled"));
        for (slot, range) in ranges.iter().enumerate() {
            let Some((start, end)) = *range else { continue };
            let blocks = stream.blocks_of(start, end);
            let count = (blocks.end - blocks.start) as usize;
            sources[slot] = Some(Source::Blocks {
                first: blocks.start as usize,
                block_bytes,
                blocks: loaded.by_ref().take(count).collect::<FsResult<_>>()?,
            });
        }
        Ok(())
    }

    /// Reads part of one decoded chunk (admitted to the cache as `admission` says).
    pub fn read_chunk(
        &self,
        array: &ZarrArray,
        linear: u64,
        offset: u64,
        len: u64,
        admission: Admission,
    ) -> FsResult<Vec<u8>> {
        let buf = self.chunk(array, linear, admission)?;
        let start = (offset as usize).min(buf.len());
        let end = (offset.saturating_add(len) as usize).min(buf.len());
        Stats::add(&self.stats.bytes_read, (end - start) as u64);
        let mut out = take_reply_buffer(end - start);
        out.extend_from_slice(&buf[start..end]);
        Ok(out)
    }

    /// The end of a scan's window of chunks ending at `to`: on a store whose reads are
    /// round trips, the end of that chunk's band of stored objects (see
    /// [`ZarrArray::chunks_per_object_band`]), so that their reads can be asked for whole.
    fn scan_window_end(&self, array: &ZarrArray, to: u64) -> u64 {
        let per_band = array.chunks_per_object_band().max(1);
        if self.fetch_ahead <= 1 || per_band <= 1 {
            return to;
        }
        to.div_ceil(per_band)
            .saturating_mul(per_band)
            .min(array.grid.num_chunks())
    }

    /// Starts background decodes, for the sequential reader `fh`, of the chunks `from..to`
    /// (linear grid positions) that are neither cached nor loading. Returns the position up
    /// to which every chunk has been started: less than `to` when enough decodes are
    /// already pending.
    pub fn prefetch_chunks(
        &self,
        array: &Arc<ZarrArray>,
        fh: u64,
        from: u64,
        to: u64,
        admission: Admission,
    ) -> u64 {
        let to = to.min(array.grid.num_chunks());
        // On a remote store the stored chunks after the decodes are read ahead too.
        let fetch_to = self.scan_window_end(array, to.saturating_add(self.fetch_ahead as u64));
        self.prefetch_list_decoding(array, from..fetch_to.max(to), to, admission, Some(fh))
            .unwrap_or(to)
    }

    /// Starts background decodes of the listed chunks that are neither cached, loading nor
    /// written. Decodes in flight hold memory beyond the cache, so at most an eighth of the
    /// budget is in flight: returns the first chunk left out for that reason. A decode
    /// started for the sequential reader `scan` is dropped if that reader has passed the
    /// chunk's band by the time a decoder is free (it read the chunk itself). On a remote
    /// store, the stored chunks of the listed ones left out are read ahead (up to
    /// `fetch_ahead` of them, within a quarter of the budget), for the decodes to come.
    pub fn prefetch_list(
        &self,
        array: &Arc<ZarrArray>,
        chunks: impl IntoIterator<Item = u64>,
        admission: Admission,
        scan: Option<u64>,
    ) -> Option<u64> {
        self.prefetch_list_decoding(array, chunks, u64::MAX, admission, scan)
    }

    /// [`Self::prefetch_list`], decoding none of the chunks from `decode_before` on (only
    /// reading them ahead, on a remote store).
    fn prefetch_list_decoding(
        &self,
        array: &Arc<ZarrArray>,
        chunks: impl IntoIterator<Item = u64>,
        decode_before: u64,
        admission: Admission,
        scan: Option<u64>,
    ) -> Option<u64> {
        let chunk_bytes = array.grid.chunk_bytes().max(1);
        let limit = self
            .max_pending_prefetches
            .min((self.cache.budget() / 8 / chunk_bytes).max(1));
        let mut chunks = chunks.into_iter().filter(|&linear| {
            !self.queued.lock().contains(&(array.id, linear))
                && !self.cache.is_present_or_loading((array.id, linear))
                && !array.dirty.lock().chunks.contains_key(&linear)
        });
        let mut decodes = Vec::new();
        let mut stopped = None;
        let mut fetches = Vec::new();
        while let Some(linear) = chunks.next() {
            if linear >= decode_before || self.pending_prefetches.load(Ordering::Relaxed) >= limit {
                let ahead = self.fetch_ahead.min(self.cache.budget() / 4 / chunk_bytes);
                let mut later = std::iter::once(linear).chain(chunks);
                fetches.extend(later.by_ref().take(ahead));
                // On to the end of the last one's band of stored objects (within a quarter
                // of the budget): a scan then asks for whole objects (all the inner chunks
                // of its shards), which a store reads in few requests.
                if let Some(&last) = fetches.last().filter(|_| ahead > 1) {
                    let band = |linear: u64| linear / array.chunks_per_object_band().max(1);
                    let room = (self.cache.budget() / 4 / chunk_bytes).saturating_sub(ahead);
                    fetches.extend(later.take(room).take_while(|&c| band(c) == band(last)));
                }
                stopped = Some(linear);
                break;
            }
            self.pending_prefetches.fetch_add(1, Ordering::Relaxed);
            self.queued.lock().insert((array.id, linear));
            Stats::add(&self.stats.chunks_prefetched, 1);
            decodes.push(linear);
        }
        // A store whose reads are round trips starts the reads now, not when a decoder gets
        // to them: those of the chunks to decode first.
        let wanted: Vec<u64> = decodes.iter().chain(&fetches).copied().collect();
        array.prefetch_stored(&wanted, &self.stats);
        for linear in decodes {
            let key = (array.id, linear);
            let (cache, stats, pending, queued, max_age) = (
                self.cache.clone(),
                self.stats.clone(),
                self.pending_prefetches.clone(),
                self.queued.clone(),
                self.revalidate_after,
            );
            let array = array.clone();
            self.pool.spawn(move || {
                let _started = DequeueOnDrop(&queued, key);
                let wanted = || !scan.is_some_and(|fh| array.scan_has_passed(fh, linear));
                let loaded = crate::isolation::isolate_fallible("read-ahead", || {
                    if !wanted() {
                        Stats::add(&stats.prefetches_dropped, 1);
                        return Ok(());
                    }
                    let checked = Checked {
                        cache: &cache,
                        stats: &stats,
                        max_age,
                        current: false,
                    };
                    load_through_cache(&checked, &array, linear, admission, wanted).map(drop)
                });
                if let Err(err) = loaded {
                    // Only a guess failed: the read that needs the chunk says why.
                    tracing::debug!("read-ahead: {}", err.message);
                }
                pending.fetch_sub(1, Ordering::Relaxed);
            });
        }
        stopped
    }

    /// Starts decoding the chunk files likely to be read after chunk `linear`: the next
    /// ones in the order the previous opens followed (grid order, or name order as in
    /// `cat chunks/*`), or in both while either fits. A first open, or one that follows no
    /// order, reads nothing ahead: one chunk file read from a fresh mount reads only its
    /// own chunk.
    pub fn prefetch_after_chunk(&self, array: &Arc<ZarrArray>, linear: u64) {
        let depth = self.prefetch_depth() as usize;
        let (grid_depth, name_depth) = match array.note_chunk_opened(linear) {
            WalkOrder::Grid => (depth, 0),
            WalkOrder::Names => (0, depth),
            WalkOrder::Either => (depth, depth),
            WalkOrder::Unknown => return,
        };
        let by_grid = (linear + 1..array.grid.num_chunks()).take(grid_depth);
        let by_name = array.chunks_after_in_name_order(linear, name_depth);
        self.prefetch_list(
            array,
            by_grid.chain(by_name),
            self.scan_admission(array),
            None,
        );
    }

    /// Tells the cache that a sequential reader has passed these chunks of `array`: those
    /// decoded only for such readers leave the cache and their memory is reused.
    pub fn release_scanned(&self, array: &ZarrArray, chunks: impl IntoIterator<Item = u64>) {
        let id = array.id;
        self.cache
            .release_scanned(chunks.into_iter().map(|linear| (id, linear)));
    }
}

/// Takes a chunk off the queue of decodes ahead once its task is done with it (the cache
/// or its single flight shows the chunk from the moment the task looks it up).
struct DequeueOnDrop<'a>(&'a Mutex<HashSet<ChunkKey>>, ChunkKey);

impl Drop for DequeueOnDrop<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

thread_local! {
    /// One reply buffer per serving thread, handed back after each reply is sent.
    static REPLY_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest reply buffer kept for reuse.
const MAX_KEPT_REPLY: usize = 8 << 20;

/// An empty buffer with room for `capacity` bytes, reusing this thread's last reply buffer.
fn take_reply_buffer(capacity: usize) -> Vec<u8> {
    let mut buf = REPLY_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    buf.clear();
    buf.reserve(capacity);
    buf
}

/// Hands a sent reply's buffer back for the next read on this thread, so that replies do
/// not fault in fresh pages each time.
pub fn recycle_reply_buffer(buf: Vec<u8>) {
    if buf.capacity() <= MAX_KEPT_REPLY {
        REPLY_BUFFER.with(|b| {
            let mut kept = b.borrow_mut();
            if buf.capacity() > kept.capacity() {
                *kept = buf;
            }
        });
    }
}

/// The chunk cache with how long a cached chunk is served before it is checked against
/// the store again (`None`: trusted until dropped).
struct Checked<'a> {
    cache: &'a ChunkCache,
    stats: &'a Stats,
    max_age: Option<Duration>,
    /// Whether a miss decodes the stored chunk itself instead of sharing a decode under way.
    current: bool,
}

impl Checked<'_> {
    /// A cached chunk of `array`, if it is still what the store holds: one last checked at
    /// least `max_age` ago is compared with the stored object's version (one stat of a
    /// local file) and dropped when that changed, is gone, or was not known. Errors of the
    /// check drop it too: the load that follows reports them.
    fn cached(&self, array: &ZarrArray, linear: u64, admission: Admission) -> Option<ChunkBuf> {
        let key = (array.id, linear);
        let (buf, stamp) = self.cache.lookup_stamped(key, admission)?;
        if let Some(max_age) = self.max_age {
            let now = Instant::now();
            if now.saturating_duration_since(stamp.checked) >= max_age {
                Stats::add(&self.stats.chunks_revalidated, 1);
                let current = array.stored_version(linear).ok().flatten();
                if stamp.version.is_none() || current != stamp.version {
                    Stats::add(&self.stats.chunks_stale, 1);
                    tracing::debug!("changed in the store: {}", array.describe_chunk(linear));
                    self.cache.drop_stale(key, &buf);
                    return None;
                }
                self.cache.confirm(key, &buf, now);
            }
        }
        Stats::add(&self.stats.cache_hits, 1);
        Some(buf)
    }
}

/// Loads a stored chunk through the cache, a cached one checked as `checked` says. A
/// decode that raced with a write-back of the same array is returned but not cached, so
/// the cache never holds a superseded version; nor is one that `still_wanted` no longer
/// wants once decoded (a decode ahead of a sequential reader that read the chunk itself
/// meanwhile: its pass released the chunk). The stored version a chunk was decoded from is
/// kept with it when it is settled (see [`crate::stored::settled`]). Concurrent misses
/// share one decode, unless `checked` asks for the chunk as stored now.
fn load_through_cache(
    checked: &Checked<'_>,
    array: &ZarrArray,
    linear: u64,
    admission: Admission,
    still_wanted: impl Fn() -> bool,
) -> FsResult<ChunkBuf> {
    if let Some(buf) = checked.cached(array, linear, admission) {
        return Ok(buf);
    }
    let load = || {
        let (cache, stats) = (checked.cache, checked.stats);
        array.check_readable(stats)?;
        tracing::debug!("cache miss: {}", array.describe_chunk(linear));
        let generation = array.dirty.lock().generation;
        let buffer = cache.take_buffer(array.grid.chunk_bytes());
        let loaded = array.load_chunk_reusing(linear, stats, buffer)?;
        if loaded.cacheable && still_wanted() {
            let dirty = array.dirty.lock();
            if dirty.generation == generation {
                let now = std::time::SystemTime::now();
                let version = loaded
                    .version
                    .filter(|version| crate::stored::settled(version, now));
                cache.admit_from((array.id, linear), loaded.buf.clone(), admission, version);
            }
        }
        Ok(loaded.buf)
    };
    if checked.current {
        Stats::add(&checked.stats.cache_misses, 1);
        return load();
    }
    checked
        .cache
        .get_or_load((array.id, linear), admission, load)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DirectoryStore, ListEntry, ObjectInfo, Store};
    use parking_lot::Mutex;

    /// A directory store that says its reads are round trips, and records read-ahead hints.
    #[derive(Debug)]
    struct Remote {
        dir: DirectoryStore,
        hinted: Mutex<Vec<String>>,
    }

    impl Store for Remote {
        fn get(&self, key: &str, max_len: u64) -> std::io::Result<Option<Vec<u8>>> {
            self.dir.get(key, max_len)
        }
        fn info(&self, key: &str) -> std::io::Result<Option<ObjectInfo>> {
            self.dir.info(key)
        }
        fn list(&self, prefix: &str) -> std::io::Result<Vec<ListEntry>> {
            self.dir.list(prefix)
        }
        fn describe(&self, key: &str) -> String {
            self.dir.describe(key)
        }
        fn put(&self, _: &str, _: &[u8], _: Option<&str>, _: bool) -> std::io::Result<()> {
            unimplemented!()
        }
        fn delete(&self, _: &str, _: bool) -> std::io::Result<()> {
            unimplemented!()
        }
        fn remove_stale_temporaries(&self) -> std::io::Result<usize> {
            Ok(0)
        }
        fn prefetch(&self, key: &str, _: u64) {
            self.hinted.lock().push(key.to_string());
        }
        fn profile(&self) -> Profile {
            Profile {
                remote: true,
                requests_in_flight: 8,
                revalidate_after: None,
            }
        }
    }

    /// Writes chunk `name` of the store in `dir` as another program would: aside then
    /// renamed over (`atomic`) or in place, dated `age` ago.
    fn store_chunk(dir: &std::path::Path, name: &str, values: [i16; 4], atomic: bool, age: u64) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let path = dir.join(name);
        let written = if atomic {
            dir.join("aside")
        } else {
            path.clone()
        };
        std::fs::write(&written, bytes).unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(age);
        let file = std::fs::File::options().write(true).open(&written).unwrap();
        file.set_modified(when).unwrap();
        if atomic {
            std::fs::rename(&written, &path).unwrap();
        }
    }

    /// An uncompressed `<i2` array of `len` elements in chunks of four at the root of a
    /// directory store checked once per `ttl`, and a reader for it.
    fn revalidating(
        dir: &std::path::Path,
        ttl: Duration,
        len: u64,
    ) -> (Arc<ZarrArray>, ChunkReader) {
        let store: Arc<dyn Store> =
            Arc::new(DirectoryStore::open(dir).unwrap().with_revalidation(ttl));
        let meta = crate::metadata::v2::parse_zarray(
            &serde_json::json!({"zarr_format": 2, "shape": [len], "chunks": [4], "dtype": "<i2",
                "compressor": null, "fill_value": 0, "order": "C", "filters": null}),
            serde_json::json!({}),
        )
        .unwrap();
        let array = Arc::new(ZarrArray::new(
            0,
            store.clone(),
            "",
            meta,
            std::time::SystemTime::now(),
        ));
        let reader = ChunkReader::with_budget(1 << 20, 1)
            .unwrap()
            .for_store(store.profile());
        (array, reader)
    }

    #[test]
    fn cached_chunks_are_checked_against_the_store_once_per_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_millis(100);
        let (array, reader) = revalidating(dir.path(), ttl, 8);
        let read = || reader.read_flat(&array, 0, 8, Admission::Keep).unwrap();
        let counter = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let stats = reader.stats().clone();
        store_chunk(dir.path(), "0", [1, 2, 3, 4], true, 60);
        assert_eq!(read(), [1, 0, 2, 0, 3, 0, 4, 0]);
        // Replaced by another program (even with the same size and date): within the TTL
        // the cached chunk is served without asking the store.
        store_chunk(dir.path(), "0", [5, 6, 7, 8], true, 60);
        assert_eq!(read(), [1, 0, 2, 0, 3, 0, 4, 0]);
        assert_eq!(
            counter(&stats.chunks_revalidated),
            0,
            "the warm path stats nothing"
        );
        std::thread::sleep(ttl);
        assert_eq!(read(), [5, 0, 6, 0, 7, 0, 8, 0], "another identity");
        assert_eq!(counter(&stats.chunks_stale), 1);
        assert_eq!(read(), [5, 0, 6, 0, 7, 0, 8, 0]);
        assert_eq!(
            counter(&stats.chunks_revalidated),
            1,
            "checked once per TTL"
        );
        // Rewritten in place (same identity and size, another date).
        store_chunk(dir.path(), "0", [9, 9, 9, 9], false, 30);
        std::thread::sleep(ttl);
        assert_eq!(read(), [9, 0, 9, 0, 9, 0, 9, 0]);
        // Unchanged: confirmed, not decoded again.
        std::thread::sleep(ttl);
        let decoded = counter(&stats.chunks_decoded);
        assert_eq!(read(), [9, 0, 9, 0, 9, 0, 9, 0]);
        assert_eq!(counter(&stats.chunks_decoded), decoded);
        assert_eq!(counter(&stats.chunks_stale), 2);
        // A read-modify-write starts from the stored chunk whatever the TTL says.
        store_chunk(dir.path(), "0", [4, 3, 2, 1], true, 60);
        let bases = reader.current_stored_chunks(&array, &[0]).unwrap();
        assert_eq!(*bases[0], [4, 0, 3, 0, 2, 0, 1, 0]);
        // Deleted: the fill value after the TTL.
        std::fs::remove_file(dir.path().join("0")).unwrap();
        std::thread::sleep(ttl);
        assert_eq!(read(), [0; 8]);
    }

    #[test]
    fn recently_modified_chunks_are_decoded_again_at_their_first_check() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_millis(50);
        let (array, reader) = revalidating(dir.path(), ttl, 4);
        // Modified just now: a rewrite in place within the same clock tick would keep its
        // size, date and identity, so the version read is not trusted.
        store_chunk(dir.path(), "0", [1, 2, 3, 4], false, 0);
        reader.read_flat(&array, 0, 8, Admission::Keep).unwrap();
        std::fs::write(dir.path().join("0"), [7u8, 0, 7, 0, 7, 0, 7, 0]).unwrap();
        std::thread::sleep(ttl);
        let read = reader.read_flat(&array, 0, 8, Admission::Keep).unwrap();
        assert_eq!(read, [7, 0, 7, 0, 7, 0, 7, 0]);
    }

    /// An empty array of 64 one-element chunks on a [`Remote`] store, and a reader of
    /// `threads` decoders sized for it.
    fn remote_array(
        threads: usize,
    ) -> (tempfile::TempDir, Arc<Remote>, Arc<ZarrArray>, ChunkReader) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Remote {
            dir: DirectoryStore::open(dir.path()).unwrap(),
            hinted: Mutex::new(Vec::new()),
        });
        let meta = crate::metadata::v2::parse_zarray(
            &serde_json::json!({"zarr_format": 2, "shape": [64], "chunks": [1], "dtype": "<i2",
                "compressor": null, "fill_value": 0, "order": "C", "filters": null}),
            serde_json::json!({}),
        )
        .unwrap();
        let array = Arc::new(ZarrArray::new(
            0,
            store.clone(),
            "",
            meta,
            std::time::SystemTime::now(),
        ));
        let reader = ChunkReader::with_budget(1 << 20, threads)
            .unwrap()
            .for_store(store.profile());
        (dir, store, array, reader)
    }

    #[test]
    fn remote_stores_are_read_further_ahead_than_chunks_are_decoded() {
        let (_dir, store, array, reader) = remote_array(1);
        // The one decoder is busy: decodes queue up to their limit (2 × 1 + 2).
        let (release, busy) = std::sync::mpsc::channel::<()>();
        reader.pool().spawn(move || {
            let _ = busy.recv();
        });
        let stopped = reader.prefetch_list(&array, 0..64, Admission::Keep, None);
        assert_eq!(stopped, Some(4));
        let hinted: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(
            *store.hinted.lock(),
            hinted,
            "4 decodes, then 8 reads ahead"
        );
        assert_eq!(reader.prefetch_depth(), 8);
        drop(release);
        reader.wait_for_prefetches();
    }

    #[test]
    fn scans_on_remote_stores_decode_their_window_and_only_read_ahead_beyond_it() {
        let (_dir, store, array, reader) = remote_array(4);
        // A window of 2 chunks: both decoded (decoders are free), 8 more read ahead only.
        let started_to = reader.prefetch_chunks(&array, 1, 0, 2, Admission::Keep);
        assert_eq!(started_to, 2);
        reader.wait_for_prefetches();
        assert_eq!(reader.stats().chunks_prefetched.load(Ordering::Relaxed), 2);
        let hinted: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(*store.hinted.lock(), hinted);
    }
}
