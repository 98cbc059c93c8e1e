//! An opened array: metadata, chunk grid and codec chain over a store, producing decoded
//! chunks (or their fill value when absent).

use crate::cache::ChunkBuf;
use crate::codec::array_to_bytes::sharding::chunks_per_shard;
use crate::codec::array_to_bytes::vlen::VlenChain;
use crate::codec::{CodecChain, CodecError, ShardIndexCodec};
use crate::error::{FsError, FsResult};
use crate::geometry::ChunkGrid;
use crate::metadata::ArrayMeta;
use crate::stats::Stats;
use crate::store::{join_key, ObjectInfo, ObjectVersion, OpenObject, Store};
pub use crate::stored::WriteBack;
use crate::stored::{read_exact_at, OpenStored, StoredChunks, Update};
use parking_lot::Mutex;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use std::time::{Instant, SystemTime};

/// Chunks changed in memory and not yet written back, with the bookkeeping around them.
#[derive(Debug, Default)]
pub struct DirtyState {
    /// Decoded (C-order, full chunk) buffers by linear chunk position.
    pub chunks: HashMap<u64, ChunkBuf>,
    /// Bumped whenever a write-back lands, so that stale decodes are not cached.
    pub generation: u64,
    /// When the array was last written.
    pub last_write: Option<Instant>,
    /// The last write-back failure, until a write-back succeeds.
    pub failure: Option<FsError>,
    /// Bytes written into each dirty chunk since it last became complete (or dirty): a
    /// chunk written over whole is stored at once, while the writer goes on.
    pub written: HashMap<u64, usize>,
}

/// What was last read of a stored chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing: the chunk was absent (its fill value was shown).
    Absent,
    /// This version, settled (see [`crate::stored::settled`]).
    Version(ObjectVersion),
    /// A version that cannot be told apart from a later rewrite (modified too recently, or
    /// not told by the store).
    Unknown,
}

/// Most stored chunks of one array whose reads are remembered (see [`SeenChunks`]); past
/// that, changes are no longer told.
const MAX_SEEN_CHUNKS: usize = 4096;

/// The stored chunks of an array read so far, for telling whether one of them changed in
/// the store since: the kernel's cached pages of the array's views may hold them.
#[derive(Debug, Default)]
struct SeenChunks {
    chunks: HashMap<u64, Seen>,
    /// Bumped whenever a chunk read before is found changed in the store.
    epoch: u64,
    /// More chunks were read than are remembered: changes cannot be told.
    overflowed: bool,
    /// When the chunks read were last compared with the store.
    swept: Option<Instant>,
}

/// A chunk as loaded from the store.
#[derive(Debug)]
pub struct Loaded {
    /// The decoded chunk.
    pub buf: ChunkBuf,
    /// Whether to keep it in the cache (the shared fill-value buffer of absent chunks is not).
    pub cacheable: bool,
    /// The version of the stored object it was decoded from, when the store tells it.
    pub version: Option<ObjectVersion>,
}

/// The order in which chunk files are being opened, as far as it can be told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WalkOrder {
    /// No walk (first open, or a jump): nothing is read ahead.
    #[default]
    Unknown,
    /// A walk whose steps so far fit both orders.
    Either,
    /// Linear grid order (`0.0`, `0.1`, … `0.10`).
    Grid,
    /// Byte order of the names, as a shell glob lists them (`0.0`, `0.1`, `0.10`, … `0.2`).
    Names,
}

#[derive(Debug, Default)]
struct ChunkWalk {
    last: Option<u64>,
    order: WalkOrder,
}

/// How an array's chunks decode.
#[derive(Debug)]
pub enum Decoding {
    /// Fixed-size elements, through the array's codec chain.
    Fixed(CodecChain),
    /// Variable-length elements, to one JSON text each.
    Variable(VlenChain),
}

/// A Zarr array ready for chunk access.
#[derive(Debug)]
pub struct ZarrArray {
    /// Small integer identifying the array in cache keys and inode numbers.
    pub id: u32,
    /// Store key prefix of the array ("" when the store root is the array).
    pub path: String,
    /// Normalised metadata.
    pub meta: ArrayMeta,
    /// Chunk grid over the array.
    pub grid: ChunkGrid,
    /// Modification time of the array's metadata.
    pub mtime: SystemTime,
    codecs: Result<Decoding, String>,
    store: Arc<dyn Store>,
    /// Where the chunks lie in the store.
    stored: StoredChunks,
    fill_chunk: OnceLock<ChunkBuf>,
    /// Chunks written but not yet stored.
    pub dirty: Mutex<DirtyState>,
    /// Serialises write-backs of this array, so an older version never lands last.
    pub flush_lock: Mutex<()>,
    /// Chunk positions sorted by file name, and each position's rank in that order (built
    /// on first use; `None` for grids too large to be worth it).
    name_order: OnceLock<Option<(Vec<u64>, Vec<u32>)>>,
    /// How readers have been walking the chunk files, for read-ahead.
    chunk_walk: Mutex<ChunkWalk>,
    /// Whether the log already says that a band of this array exceeds the cache.
    pub warned_wide_band: AtomicBool,
    /// The size of the blocks its stored chunks decode in on their own, once a stored chunk
    /// has told (`None`: they decode whole only).
    pub scan_block_bytes: OnceLock<Option<usize>>,
    /// The band each sequential reader of a flat view is in and when it last read, by file
    /// handle.
    scan_bands: Mutex<HashMap<u64, (u64, Instant)>>,
    /// Store key of the metadata document the array was read from, when known.
    document: Option<String>,
    /// When the metadata document was last found in the store.
    present_at: Mutex<Option<Instant>>,
    /// The stored chunks read so far, and what of them.
    seen: Mutex<SeenChunks>,
}

/// How long the presence of an array's metadata document is trusted before reads and
/// writes look again (as long as the kernel trusts the attributes it is given).
pub const PRESENCE_TTL: Duration = Duration::from_secs(1);

/// How long a sequential reader that has stopped reading (but keeps its file open) still
/// keeps other passes from releasing the bands it has yet to read.
pub const IDLE_READER_GRACE: Duration = Duration::from_secs(2);

/// Largest grid for which the name order of chunk files is tabulated.
const MAX_NAME_ORDER_CHUNKS: u64 = 1 << 18;

impl ZarrArray {
    /// Opens an array; an unsupported codec is remembered and reported on every chunk read.
    pub fn new(
        id: u32,
        store: Arc<dyn Store>,
        path: &str,
        meta: ArrayMeta,
        mtime: SystemTime,
    ) -> Self {
        let grid = ChunkGrid::new(&meta.shape, &meta.chunk_shape, meta.dtype.size);
        let (codecs, index) = match &meta.unsupported {
            Some(reason) => (Err(format!("cannot be read: {reason}")), None),
            None if meta.dtype.is_variable() => {
                match VlenChain::from_meta(&meta)
                    .and_then(|c| Ok((c, Self::shard_index_of(&meta)?)))
                {
                    Ok((chain, index)) => (Ok(Decoding::Variable(chain)), index),
                    Err(err) => (Err(err.to_string()), None),
                }
            }
            None => match Self::codecs_of(&meta) {
                Ok((chain, index)) => (Ok(Decoding::Fixed(chain)), index),
                Err(err) => (Err(err.to_string()), None),
            },
        };
        let fixed_len = match &codecs {
            Ok(Decoding::Fixed(chain)) => chain.encoded_len(),
            _ => None,
        };
        let stored = StoredChunks::new(store.clone(), path, &meta, &grid, index, fixed_len);
        if let Err(reason) = &codecs {
            // The same words as the reads' EIO, which is then not logged again.
            let message = format!(
                "{}: {reason}",
                store.describe(&join_key(path, meta.document_name()))
            );
            crate::report::first(&message);
            tracing::warn!("{message}; reads of this array fail with EIO");
        }
        ZarrArray {
            id,
            path: path.to_string(),
            meta,
            grid,
            mtime,
            codecs,
            store,
            stored,
            fill_chunk: OnceLock::new(),
            dirty: Mutex::new(DirtyState::default()),
            flush_lock: Mutex::new(()),
            name_order: OnceLock::new(),
            chunk_walk: Mutex::new(ChunkWalk::default()),
            warned_wide_band: AtomicBool::new(false),
            scan_block_bytes: OnceLock::new(),
            scan_bands: Mutex::new(HashMap::new()),
            document: None,
            present_at: Mutex::new(None),
            seen: Mutex::new(SeenChunks::default()),
        }
    }

    /// The array as read from the metadata document `key` (its own, or consolidated
    /// metadata), whose presence [`Self::check_present`] checks.
    pub fn with_document(mut self, key: &str) -> Self {
        self.document = Some(key.to_string());
        self
    }

    /// Fails (EIO) when the array's metadata document is gone from the store: the array,
    /// or the whole store, was deleted while mounted. Nothing is then served from the
    /// cache, filled in for absent chunks, or written back (which would recreate chunks
    /// without metadata). With `fresh`, the store is asked now; otherwise an answer less
    /// than [`PRESENCE_TTL`] old is trusted. Arrays not told their document pass.
    pub fn check_present(&self, fresh: bool) -> FsResult<()> {
        let Some(document) = &self.document else {
            return Ok(());
        };
        let now = Instant::now();
        if !fresh
            && self
                .present_at
                .lock()
                .is_some_and(|at| now.duration_since(at) < PRESENCE_TTL)
        {
            return Ok(());
        }
        match self.store.info(document) {
            Ok(Some(info)) if !info.is_prefix => {
                *self.present_at.lock() = Some(now);
                Ok(())
            }
            Ok(_) => Err(FsError::io(format!(
                "{}: no longer in the store (deleted while mounted); its reads and writes fail",
                self.describe()
            ))),
            Err(err) => Err(FsError::io(format!("{}: {err}", self.describe()))),
        }
    }

    /// The codecs of an array's chunks and, for a sharded array, of its shard indexes.
    fn codecs_of(meta: &ArrayMeta) -> Result<(CodecChain, Option<ShardIndexCodec>), CodecError> {
        Ok((CodecChain::from_meta(meta)?, Self::shard_index_of(meta)?))
    }

    /// The codec of the shard index, for a sharded array.
    fn shard_index_of(meta: &ArrayMeta) -> Result<Option<ShardIndexCodec>, CodecError> {
        let Some(sharding) = &meta.sharding else {
            return Ok(None);
        };
        let dims = |dims: &[u64]| -> Result<Vec<usize>, CodecError> {
            dims.iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| CodecError::config("sharding_indexed", "shape too large"))
        };
        let per_shard = chunks_per_shard(&dims(&sharding.shard_shape)?, &dims(&meta.chunk_shape)?)?;
        Ok(Some(ShardIndexCodec::new(
            &sharding.configuration,
            &per_shard,
        )?))
    }

    /// Why chunks of this array cannot be decoded, if they cannot.
    pub fn codec_problem(&self) -> Option<&str> {
        self.codecs.as_ref().err().map(String::as_str)
    }

    /// Fails (EIO naming the array, counted as an error) when its chunks cannot be read:
    /// checked before anything of a chunk's size is allocated.
    pub fn check_readable(&self, stats: &Stats) -> FsResult<()> {
        match self.codec_problem() {
            None => Ok(()),
            Some(reason) => {
                Stats::add(&stats.errors, 1);
                Err(FsError::io(format!("{}: {reason}", self.describe())))
            }
        }
    }

    /// The codec chain of an array of fixed-size elements; an error naming the array when
    /// its chunks cannot be decoded to fixed-size elements.
    fn chain(&self) -> FsResult<&CodecChain> {
        match &self.codecs {
            Ok(Decoding::Fixed(chain)) => Ok(chain),
            Ok(Decoding::Variable(_)) => Err(FsError::io(format!(
                "{}: variable-length elements are shown as data.jsonl only",
                self.describe()
            ))),
            Err(reason) => Err(FsError::io(format!("{}: {reason}", self.describe()))),
        }
    }

    /// The codecs of an array of variable-length elements, if it is one and they are
    /// supported.
    pub fn vlen_chain(&self) -> Option<&VlenChain> {
        match &self.codecs {
            Ok(Decoding::Variable(chain)) => Some(chain),
            _ => None,
        }
    }

    /// The store key holding a chunk (the first candidate when none exists yet); for a
    /// sharded array, its shard.
    pub fn chunk_store_key(&self, linear: u64) -> String {
        self.stored.key(linear)
    }

    /// Size, modification time, owner and mode of the object holding a chunk (its shard for
    /// a sharded array); `None` when it is absent or cannot be told.
    pub fn stored_chunk_info(&self, linear: u64) -> Option<ObjectInfo> {
        self.stored.info(linear).ok().flatten()
    }

    /// The version of the object holding chunk `linear` (its shard for a sharded array) as
    /// stored now; `None` when it is absent or the store cannot tell cheaply.
    pub fn stored_version(&self, linear: u64) -> FsResult<Option<ObjectVersion>> {
        self.stored.version(linear)
    }

    /// A chunk-sized buffer filled with the fill value, shared by all absent chunks.
    pub fn fill_chunk(&self) -> ChunkBuf {
        self.fill_chunk
            .get_or_init(|| {
                let fill = &self.meta.fill_bytes;
                let bytes = self.grid.chunk_bytes();
                if fill.iter().all(|&b| b == 0) {
                    Arc::new(vec![0u8; bytes])
                } else {
                    Arc::new(fill.iter().copied().cycle().take(bytes).collect())
                }
            })
            .clone()
    }

    /// Overwrites the part of an edge chunk that lies outside the array with the fill value,
    /// so chunk files never show whatever a writer left there.
    pub fn mask_padding(&self, linear: u64, chunk: &mut [u8]) {
        let ranges = self.grid.padding_ranges(linear);
        if ranges.is_empty() {
            return;
        }
        let fill = self.fill_chunk();
        for (start, len) in ranges {
            chunk[start..start + len].copy_from_slice(&fill[start..start + len]);
        }
    }

    /// Up to `count` chunk positions whose file names follow that of `linear` in byte order
    /// (the order of a shell glob such as `chunks/*`).
    pub fn chunks_after_in_name_order(&self, linear: u64, count: usize) -> Vec<u64> {
        let table = self.name_order.get_or_init(|| {
            let total = self.grid.num_chunks();
            (total <= MAX_NAME_ORDER_CHUNKS).then(|| {
                let mut order: Vec<u64> = (0..total).collect();
                order.sort_by_cached_key(|&c| self.grid.chunk_name(c));
                let mut rank = vec![0u32; total as usize];
                for (position, &c) in order.iter().enumerate() {
                    rank[c as usize] = position as u32;
                }
                (order, rank)
            })
        });
        match table {
            Some((order, rank)) => {
                let at = rank[linear as usize] as usize + 1;
                order.iter().skip(at).take(count).copied().collect()
            }
            None => Vec::new(),
        }
    }

    /// Records that chunk `linear` was opened for reading; returns the order the opens
    /// have followed so far. A step that fits both orders keeps the previous verdict.
    pub fn note_chunk_opened(&self, linear: u64) -> WalkOrder {
        let mut walk = self.chunk_walk.lock();
        let previous = walk.last.replace(linear);
        walk.order = match previous {
            None => WalkOrder::Unknown,
            Some(previous) => {
                let by_grid = previous + 1 == linear;
                let by_names =
                    self.chunks_after_in_name_order(previous, 1).first() == Some(&linear);
                match (by_grid, by_names) {
                    (true, false) => WalkOrder::Grid,
                    (false, true) => WalkOrder::Names,
                    (true, true) if walk.order == WalkOrder::Unknown => WalkOrder::Either,
                    (true, true) => walk.order,
                    (false, false) => WalkOrder::Unknown,
                }
            }
        };
        walk.order
    }

    /// Records that the sequential reader `fh` is in `band` at `now` (`None`: it no longer
    /// reads sequentially); returns the lowest band another sequential reader is in, below
    /// which chunks may be released without taking them from under that reader. Readers
    /// idle for longer than [`IDLE_READER_GRACE`] do not count: they decode again what they
    /// come back to.
    pub fn note_scan_band(&self, fh: u64, band: Option<u64>, now: Instant) -> Option<u64> {
        let mut bands = self.scan_bands.lock();
        match band {
            Some(band) => bands.insert(fh, (band, now)),
            None => bands.remove(&fh),
        };
        bands
            .iter()
            .filter(|(&other, &(_, seen))| {
                other != fh && now.saturating_duration_since(seen) < IDLE_READER_GRACE
            })
            .map(|(_, &(band, _))| band)
            .min()
    }

    /// Whether the sequential reader `fh` is in a band after the one holding chunk `linear`.
    pub fn scan_has_passed(&self, fh: u64, linear: u64) -> bool {
        let band = linear / self.grid.chunks_per_band().max(1);
        self.scan_bands
            .lock()
            .get(&fh)
            .is_some_and(|&(reader_band, _)| reader_band > band)
    }

    /// The store location of a chunk, for log lines (for a sharded array, its shard and its
    /// name as an inner chunk).
    pub fn describe_chunk(&self, linear: u64) -> String {
        self.stored.describe(linear)
    }

    /// The store key of the array's metadata document.
    pub fn metadata_key(&self) -> String {
        join_key(&self.path, self.meta.document_name())
    }

    /// The store location of the array's metadata, for log lines.
    pub fn describe(&self) -> String {
        self.store.describe(&self.metadata_key())
    }

    /// Writes a decoded chunk back to the store with the array's own codecs, atomically;
    /// a chunk that is entirely fill value is deleted instead.
    pub fn write_back_chunk(
        &self,
        linear: u64,
        chunk: &[u8],
        durable: bool,
    ) -> FsResult<WriteBack> {
        let chunks = [(linear, Arc::new(chunk.to_vec()))];
        let stats = Stats::default();
        self.write_back_chunks(&chunks, durable, &stats)
            .pop()
            .expect("one result per chunk")
    }

    /// Writes decoded chunks back to the store with the array's own codecs (encoded in
    /// parallel on the current rayon pool): each stored object is replaced atomically, a
    /// shard once with all of its chunks given here; chunks that are entirely fill value
    /// leave the store. Returns one result per chunk, in order; a chunk that fails to
    /// encode is left as stored.
    pub fn write_back_chunks(
        &self,
        chunks: &[(u64, ChunkBuf)],
        durable: bool,
        stats: &Stats,
    ) -> Vec<FsResult<WriteBack>> {
        let codecs = match self.check_present(true).and_then(|()| self.chain()) {
            Ok(codecs) => codecs,
            Err(err) => return vec![Err(err); chunks.len()],
        };
        let fill = self.fill_chunk();
        let encoded: Vec<FsResult<Update>> = chunks
            .par_iter()
            .map(|(linear, chunk)| {
                if chunk.as_slice() == fill.as_slice() {
                    return Ok((*linear, None));
                }
                let what = format!("chunk {}", self.describe_chunk(*linear));
                crate::isolation::isolate_fallible(&what, || {
                    crate::isolation::inject("encode", &what);
                    codecs
                        .encode(chunk)
                        .map(|bytes| (*linear, Some(bytes)))
                        .map_err(|e| FsError::io(format!("{what}: {e}")))
                })
            })
            .collect();
        let updates: Vec<Update> = encoded
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut stored = self.stored.write_back(&updates, durable, stats).into_iter();
        encoded
            .into_iter()
            .map(|result| result.and_then(|_| stored.next().expect("one result per update")))
            .collect()
    }

    /// Loads and decodes one chunk (fill value when absent). Errors name the chunk file.
    pub fn load_chunk(&self, linear: u64, stats: &Stats) -> FsResult<Loaded> {
        self.load_chunk_reusing(linear, stats, Vec::new())
    }

    /// Like [`Self::load_chunk`], decoding into `buffer` (a recycled chunk buffer) when it
    /// has the chunk's size. Compressed bytes are read into a per-thread scratch buffer.
    pub fn load_chunk_reusing(
        &self,
        linear: u64,
        stats: &Stats,
        buffer: Vec<u8>,
    ) -> FsResult<Loaded> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let result = self.load_chunk_with(linear, stats, buffer, &mut scratch);
            if scratch.capacity() > 4 * self.grid.chunk_bytes().max(1 << 20) {
                *scratch = Vec::new();
            }
            result
        })
    }

    /// Reads the stored bytes of chunk `linear` into `encoded` (a reused buffer); returns
    /// their location for messages, `None` when the chunk is absent. Fails when the array's
    /// codecs are not supported.
    pub fn read_stored(
        &self,
        linear: u64,
        stats: &Stats,
        encoded: &mut Vec<u8>,
    ) -> FsResult<Option<String>> {
        Ok(self
            .read_stored_versioned(linear, stats, encoded)?
            .map(|(location, _)| location))
    }

    /// [`Self::read_stored`], also returning the version of the object read when the store
    /// tells it.
    fn read_stored_versioned(
        &self,
        linear: u64,
        stats: &Stats,
        encoded: &mut Vec<u8>,
    ) -> FsResult<Option<(String, Option<ObjectVersion>)>> {
        self.check_readable(stats)?;
        match self.stored.read_versioned(linear, encoded, stats) {
            Ok(Some(found)) => {
                self.note_read(linear, found.1);
                Ok(Some(found))
            }
            Ok(None) => {
                self.note_read_absent(linear);
                self.absent(stats)
            }
            Err(err) => {
                Stats::add(&stats.errors, 1);
                Err(err)
            }
        }
    }

    /// A chunk found absent: the fill value, unless the array itself is gone.
    fn absent<T>(&self, stats: &Stats) -> FsResult<Option<T>> {
        self.check_present(true)
            .inspect_err(|_| Stats::add(&stats.errors, 1))?;
        Stats::add(&stats.chunks_missing, 1);
        Ok(None)
    }

    /// Opens stored chunk `linear` for reads of parts of it, all of the version opened, with
    /// its location for messages; `None` when it is absent.
    pub fn open_stored(&self, linear: u64, stats: &Stats) -> FsResult<Option<OpenStored>> {
        self.check_readable(stats)?;
        match self
            .stored
            .open(linear, stats)
            .inspect_err(|_| Stats::add(&stats.errors, 1))?
        {
            Some(found) => {
                self.note_read(linear, found.1.version());
                Ok(Some(found))
            }
            None => {
                self.note_read_absent(linear);
                self.absent(stats)
            }
        }
    }

    /// Remembers that stored chunk `linear` was read, of `version` (see [`SeenChunks`]).
    fn note_read(&self, linear: u64, version: Option<ObjectVersion>) {
        let now = SystemTime::now();
        let seen = match version {
            Some(version) if crate::stored::settled(&version, now) => Seen::Version(version),
            _ => Seen::Unknown,
        };
        self.note_seen(linear, seen);
    }

    /// Remembers that stored chunk `linear` was found absent.
    fn note_read_absent(&self, linear: u64) {
        self.note_seen(linear, Seen::Absent);
    }

    fn note_seen(&self, linear: u64, seen: Seen) {
        let mut state = self.seen.lock();
        if state.overflowed {
            return;
        }
        if state.chunks.len() >= MAX_SEEN_CHUNKS && !state.chunks.contains_key(&linear) {
            state.overflowed = true;
            state.chunks = HashMap::new();
            return;
        }
        match state.chunks.insert(linear, seen) {
            Some(before) if before != seen || seen == Seen::Unknown => state.epoch += 1,
            _ => {}
        }
    }

    /// A number that changes whenever a stored chunk of the array read before is found
    /// changed in the store (replaced, rewritten, created or deleted): what was read of it
    /// may linger in the kernel's cached pages of the array's views. The chunks read are
    /// compared with the store (one stat each) at most once per `ttl`. `None` when changes
    /// cannot be told: more chunks read than are remembered ([`MAX_SEEN_CHUNKS`]).
    pub fn stored_epoch(&self, ttl: Duration) -> Option<u64> {
        let now = Instant::now();
        let read: Vec<(u64, Seen)> = {
            let mut state = self.seen.lock();
            if state.overflowed {
                return None;
            }
            if state
                .swept
                .is_some_and(|at| now.saturating_duration_since(at) < ttl)
            {
                return Some(state.epoch);
            }
            state.swept = Some(now);
            state.chunks.iter().map(|(&c, &s)| (c, s)).collect()
        };
        let changed: Vec<u64> = read
            .into_iter()
            .filter(
                |&(linear, seen)| match (seen, self.stored_version(linear)) {
                    (Seen::Absent, Ok(None)) => false,
                    (Seen::Version(seen), Ok(Some(current))) => seen != current,
                    _ => true,
                },
            )
            .map(|(linear, _)| linear)
            .collect();
        let mut state = self.seen.lock();
        if !changed.is_empty() {
            state.epoch += 1;
            // Told once: their next reads are remembered afresh.
            for linear in changed {
                state.chunks.remove(&linear);
            }
        }
        Some(state.epoch)
    }

    /// Reads exactly `buf.len()` bytes from `offset` of the stored chunk opened at
    /// `location`.
    pub fn read_stored_at(
        &self,
        (location, object): (&str, &dyn OpenObject),
        offset: u64,
        buf: &mut [u8],
        stats: &Stats,
    ) -> FsResult<()> {
        read_exact_at(object, offset, buf).map_err(|why| {
            Stats::add(&stats.errors, 1);
            FsError::io(format!("chunk {location}: {why}"))
        })?;
        Stats::add(&stats.store_bytes_read, buf.len() as u64);
        Ok(())
    }

    /// Whether the array's chunks may be stored in blocks that decode on their own (blosc in
    /// C order), before any chunk is read. Never on remote stores: there a chunk is fetched
    /// whole, ahead of its reader, and decoded whole.
    pub fn may_decode_by_blocks(&self) -> bool {
        !self.store.profile().remote && self.chain().is_ok_and(CodecChain::may_decode_by_blocks)
    }

    /// Chunks in a row of stored objects along the first axis (a band of shards, or of
    /// chunks), which a C-order scan crosses together.
    pub fn chunks_per_object_band(&self) -> u64 {
        self.grid
            .chunks_per_band()
            .saturating_mul(self.stored.bands_per_object())
    }

    /// Tells the store that stored chunks `linears` will be read soon (see
    /// [`StoredChunks::prefetch`]).
    pub fn prefetch_stored(&self, linears: &[u64], stats: &Arc<Stats>) {
        self.stored.prefetch(linears, stats);
    }

    /// Decodes a whole stored chunk read from `location` into `buffer` (a recycled chunk
    /// buffer when it has the chunk's size); edge padding shows the fill value.
    pub fn decode_stored(
        &self,
        linear: u64,
        location: &str,
        encoded: &[u8],
        buffer: Vec<u8>,
        stats: &Stats,
    ) -> FsResult<Vec<u8>> {
        let codecs = self.chain()?;
        let buffer = if buffer.len() == self.grid.chunk_bytes() {
            buffer
        } else {
            vec![0u8; self.grid.chunk_bytes()]
        };
        let what = format!("chunk {location}");
        let decoded = crate::isolation::isolate(&what, || {
            crate::isolation::inject("decode", &what);
            codecs.decode_reusing(encoded, buffer)
        });
        match decoded.map(|result| result.map_err(|err| format!("{what}: {err}"))) {
            Ok(Ok(mut decoded)) => {
                self.mask_padding(linear, &mut decoded);
                Stats::add(&stats.chunks_decoded, 1);
                tracing::debug!("decoded {location} ({} bytes stored)", encoded.len());
                Ok(decoded)
            }
            Ok(Err(message)) | Err(FsError { message, .. }) => {
                Stats::add(&stats.errors, 1);
                Err(FsError::io(message))
            }
        }
    }

    fn load_chunk_with(
        &self,
        linear: u64,
        stats: &Stats,
        buffer: Vec<u8>,
        encoded: &mut Vec<u8>,
    ) -> FsResult<Loaded> {
        let Some((location, version)) = self.read_stored_versioned(linear, stats, encoded)? else {
            return Ok(Loaded {
                buf: self.fill_chunk(),
                cacheable: false,
                version: None,
            });
        };
        Ok(Loaded {
            buf: Arc::new(self.decode_stored(linear, &location, encoded, buffer, stats)?),
            cacheable: true,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::v2::parse_zarray;
    use crate::store::DirectoryStore;
    use serde_json::json;
    use std::sync::atomic::Ordering;

    fn array(shape: &[u64], chunks: &[u64]) -> (tempfile::TempDir, ZarrArray) {
        let dir = tempfile::tempdir().unwrap();
        let meta = parse_zarray(
            &json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": "<i2",
                    "compressor": null, "fill_value": 3, "order": "C", "filters": null}),
            json!({}),
        )
        .unwrap();
        let store = Arc::new(DirectoryStore::open(dir.path()).unwrap());
        let array = ZarrArray::new(0, store, "", meta, SystemTime::now());
        (dir, array)
    }

    #[test]
    fn walk_order_is_told_from_successive_opens() {
        let (_dir, a) = array(&[3, 12], &[1, 1]);
        let open = |name: &str| a.note_chunk_opened(a.grid.parse_chunk_name(name).unwrap());
        assert_eq!(open("0.0"), WalkOrder::Unknown);
        assert_eq!(open("0.1"), WalkOrder::Either, "fits both orders");
        assert_eq!(open("0.10"), WalkOrder::Names);
        for name in ["0.11", "0.2", "0.3"] {
            assert_eq!(open(name), WalkOrder::Names);
        }
        assert_eq!(
            open("0.4"),
            WalkOrder::Names,
            "fits both: the verdict stays"
        );
        assert_eq!(open("2.0"), WalkOrder::Unknown, "a jump");
        assert_eq!(open("2.1"), WalkOrder::Either);
        assert_eq!(open("2.2"), WalkOrder::Grid);
    }

    #[test]
    fn idle_sequential_readers_stop_holding_back_releases() {
        let (_dir, a) = array(&[3, 12], &[1, 1]);
        let t0 = Instant::now();
        assert_eq!(a.note_scan_band(1, Some(0), t0), None, "alone");
        assert_eq!(a.note_scan_band(2, Some(2), t0), Some(0));
        assert_eq!(a.note_scan_band(3, Some(1), t0), Some(0));
        // Reader 1 stops reading; the others go on: after the grace reader 1 no longer counts.
        let mid = t0 + IDLE_READER_GRACE / 2;
        assert_eq!(a.note_scan_band(2, Some(2), mid), Some(0));
        assert_eq!(a.note_scan_band(3, Some(1), mid), Some(0));
        let later = t0 + IDLE_READER_GRACE;
        assert_eq!(a.note_scan_band(3, Some(1), later), Some(2));
        assert_eq!(a.note_scan_band(2, Some(2), later), Some(1));
        // Reader 1 comes back and counts again; readers that stop scanning never count.
        assert_eq!(a.note_scan_band(1, Some(0), later), Some(1));
        assert_eq!(a.note_scan_band(2, Some(2), later), Some(0));
        a.note_scan_band(1, None, later);
        a.note_scan_band(3, None, later);
        assert_eq!(a.note_scan_band(2, Some(2), later), None);
    }

    #[test]
    fn name_order_follows_byte_order_of_file_names() {
        let (_dir, a) = array(&[3, 12], &[1, 1]);
        let name = |c: u64| a.grid.chunk_name(c);
        let after: Vec<String> = a
            .chunks_after_in_name_order(a.grid.parse_chunk_name("0.1").unwrap(), 3)
            .into_iter()
            .map(name)
            .collect();
        assert_eq!(after, ["0.10", "0.11", "0.2"]);
        let last = a.grid.parse_chunk_name("2.9").unwrap();
        assert!(a.chunks_after_in_name_order(last, 5).is_empty());
    }

    #[test]
    fn the_stored_epoch_changes_when_a_chunk_read_before_changes() {
        let (dir, a) = array(&[8], &[4]);
        let stats = Stats::default();
        let store_chunk = |name: &str, byte: u8| {
            let aside = dir.path().join("aside");
            std::fs::write(&aside, [byte; 8]).unwrap();
            let file = std::fs::File::options().write(true).open(&aside).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(60))
                .unwrap();
            std::fs::rename(&aside, dir.path().join(name)).unwrap();
        };
        store_chunk("0", 1);
        let epoch = |a: &ZarrArray| a.stored_epoch(Duration::ZERO).unwrap();
        let start = epoch(&a);
        a.load_chunk(0, &stats).unwrap();
        a.load_chunk(1, &stats).unwrap();
        assert_eq!(epoch(&a), start, "nothing changed");
        store_chunk("1", 2);
        let created = epoch(&a);
        assert_ne!(created, start, "a chunk read absent was created");
        assert_eq!(epoch(&a), created, "told once");
        a.load_chunk(1, &stats).unwrap();
        assert_eq!(epoch(&a), created);
        store_chunk("0", 3);
        assert_ne!(epoch(&a), created, "replaced");
        // Swept at most once per TTL.
        let ttl = Duration::from_secs(3600);
        let swept = a.stored_epoch(ttl).unwrap();
        std::fs::remove_file(dir.path().join("1")).unwrap();
        assert_eq!(a.stored_epoch(ttl), Some(swept));
    }

    #[test]
    fn past_the_chunks_remembered_changes_cannot_be_told() {
        let (_dir, a) = array(&[MAX_SEEN_CHUNKS as u64 + 1], &[1]);
        let stats = Stats::default();
        for linear in 0..MAX_SEEN_CHUNKS as u64 {
            a.load_chunk(linear, &stats).unwrap();
        }
        assert!(a.stored_epoch(Duration::ZERO).is_some());
        a.load_chunk(MAX_SEEN_CHUNKS as u64, &stats).unwrap();
        assert_eq!(a.stored_epoch(Duration::ZERO), None);
    }

    #[test]
    fn missing_chunks_read_as_fill_with_masked_padding() {
        let (dir, a) = array(&[3, 5], &[2, 4]);
        let stats = Stats::default();
        let loaded = a.load_chunk(0, &stats).unwrap();
        assert!(!loaded.cacheable, "shared fill buffer");
        assert!(loaded.buf.chunks(2).all(|e| e == [3, 0]));
        // A stored edge chunk with garbage padding shows the fill value there.
        std::fs::write(dir.path().join("1.1"), [9u8; 16]).unwrap();
        let edge = a
            .load_chunk(a.grid.chunk_linear(&[1, 1]).unwrap(), &stats)
            .unwrap();
        let elements: Vec<&[u8]> = edge.buf.chunks(2).collect();
        assert_eq!(elements[0], [9, 9], "inside the array: (2, 4)");
        assert!(elements[1..].iter().all(|e| *e == [3, 0]), "{elements:?}");
        assert_eq!(stats.chunks_decoded.load(Ordering::Relaxed), 1);
        assert_eq!(stats.chunks_missing.load(Ordering::Relaxed), 1);
    }
}
