//! Block-by-block decoding for sequential readers. A blosc chunk is stored as blocks that
//! decode on their own into consecutive parts of the C-order chunk; a reader walking an
//! array in C order needs, at any moment, the same few rows of every chunk in a row of
//! chunks. Decoding just those blocks, right before they are copied into replies, keeps
//! the decoded bytes in the CPU's caches, where whole chunks (a row of them is often tens
//! of MiB) have left them by the time the reader gets to their last rows. Blocks are held
//! by the reader's [`BlockStream`], not by the chunk cache. Chunks that decode whole only
//! are read the same way in parts ([`BlockStream::in_parts`]) when a band of them is wider
//! than the cache: memory is then bounded at the price of decoding each chunk once per part.

use crate::array::ZarrArray;
use crate::cache::ChunkBuf;
use crate::codec::BloscBlocks;
use crate::error::{FsError, FsResult};
use crate::stats::Stats;
use crate::store::OpenObject;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes read first from a stored chunk: its header and, for most chunks, all its block
/// offsets.
const HEADER_BYTES: usize = 4096;

thread_local! {
    /// A block's stored bytes and the one-block frame built from them, per decoding thread.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether block `block` of chunk `chunk` lies behind a reader at `position` (chunks per
/// band, band, block of the reader's rows in that band).
fn behind((per_band, band, current): (u64, u64, u64), chunk: u64, block: u64) -> bool {
    let chunk_band = chunk / per_band;
    chunk_band < band || (chunk_band == band && block < current)
}

/// A stored chunk opened for reads of its blocks: its location, the open object (every
/// block is read from the version whose header was read) and where its blocks lie.
#[derive(Debug)]
struct StoredBlocks {
    location: String,
    object: Box<dyn OpenObject>,
    blocks: BloscBlocks,
}

/// Chunks one stream keeps open at most; further chunks of its bands are decoded whole (a
/// band across a very wide array would otherwise hold a file per chunk).
const MAX_OPEN_CHUNKS: usize = 512;

/// A stored chunk a stream holds open, counted among the stream's open chunks until dropped.
#[derive(Debug)]
struct OpenChunk {
    stored: StoredBlocks,
    open_chunks: Arc<AtomicUsize>,
}

impl Drop for OpenChunk {
    fn drop(&mut self) {
        self.open_chunks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Opens stored chunk `linear` and reads where its blocks lie, from its header and block
/// offsets only; `None` when the chunk is absent.
fn read_index(array: &ZarrArray, linear: u64, stats: &Stats) -> FsResult<Option<StoredBlocks>> {
    let Some((location, object)) = array.open_stored(linear, stats)? else {
        return Ok(None);
    };
    let size = object.len();
    let corrupt = |err: crate::codec::CodecError| {
        Stats::add(&stats.errors, 1);
        FsError::io(format!("chunk {}: {err}", array.describe_chunk(linear)))
    };
    let mut head = vec![0u8; HEADER_BYTES.min(size as usize)];
    array.read_stored_at((&location, &*object), 0, &mut head, stats)?;
    let need = BloscBlocks::index_len(&head).map_err(corrupt)?;
    if need > size as usize {
        return Err(corrupt(crate::codec::CodecError::corrupt(
            "blosc",
            "block offsets past the end of the chunk",
        )));
    }
    if need > head.len() {
        head.resize(need, 0);
        array.read_stored_at((&location, &*object), 0, &mut head, stats)?;
    }
    let blocks = BloscBlocks::parse(&head[..need], size as usize).map_err(corrupt)?;
    Ok(Some(StoredBlocks {
        location,
        object,
        blocks,
    }))
}

/// One block of a decoded chunk: the bytes of `buf` from `offset` on (a decoded block, or a
/// window into a whole chunk when the chunk could not be decoded by blocks).
#[derive(Clone, Debug)]
pub struct BlockBuf {
    /// The bytes.
    pub buf: ChunkBuf,
    /// Where the block starts in `buf`.
    pub offset: usize,
}

/// A chunk's stored form as far as a stream needs it.
#[derive(Clone, Debug)]
enum Frame {
    /// Absent: every block shows the fill value.
    Missing,
    /// Decodable by blocks of the stream's size: the chunk, open, and where its blocks lie.
    Blocks(Arc<OpenChunk>),
    /// Decoded whole (its blocks differ from the stream's): the decoded chunk.
    Whole(ChunkBuf),
}

#[derive(Debug)]
enum Slot<T> {
    Loading,
    Ready(T),
}

#[derive(Debug, Default)]
struct StreamState {
    /// Write-back generation of the array the held blocks belong to.
    generation: u64,
    /// Where the reader is: chunks per band, its band and the block of its rows there.
    position: Option<(u64, u64, u64)>,
    frames: HashMap<u64, Slot<Frame>>,
    blocks: HashMap<(u64, u64), Slot<BlockBuf>>,
}

/// The blocks one sequential reader of an array is about to read, decoded on demand or
/// ahead on a thread pool; each block is decoded once while held.
#[derive(Debug)]
pub struct BlockStream {
    array: Arc<ZarrArray>,
    stats: Arc<Stats>,
    /// Decoded size of a block (the first stored chunk's blosc block size, or of a part).
    block_bytes: usize,
    /// Whether blocks are parts of chunks decoded whole (see [`BlockStream::in_parts`]).
    in_parts: bool,
    state: Mutex<StreamState>,
    changed: Condvar,
    /// Buffers of blocks let go of, for the next decodes.
    spare: Mutex<Vec<Vec<u8>>>,
    /// Stored chunks held open (see [`MAX_OPEN_CHUNKS`]).
    open_chunks: Arc<AtomicUsize>,
    /// Buffers of blocks let go of kept at most (an eighth of the cache's budget).
    max_spare: usize,
    max_open_chunks: usize,
}

impl BlockStream {
    /// A stream over `array` when its chunks decode by blocks, of the size the stored chunk
    /// `probe` uses (learnt once per array), keeping at most `spare_bytes` of block buffers
    /// for reuse. `Ok(None)` when that chunk is absent (another may tell), `Err(())` when
    /// the array's chunks decode whole only.
    #[allow(clippy::result_unit_err)]
    pub fn open(
        array: &Arc<ZarrArray>,
        probe: u64,
        stats: &Arc<Stats>,
        spare_bytes: usize,
    ) -> Result<Option<Self>, ()> {
        if !array.may_decode_by_blocks() {
            return Err(());
        }
        // The chunk read to learn the block size is the stream's first open chunk.
        let mut probed = None;
        let block_bytes = match array.scan_block_bytes.get() {
            Some(known) => *known,
            None => {
                let Some(stored) = read_index(array, probe, stats).map_err(|_| ())? else {
                    return Ok(None);
                };
                let chunk_bytes = array.grid.chunk_bytes();
                let blocks = &stored.blocks;
                let size = (blocks.decoded_len() == chunk_bytes
                    && blocks.block_size() < chunk_bytes)
                    .then_some(blocks.block_size());
                probed = Some(stored);
                *array.scan_block_bytes.get_or_init(|| size)
            }
        };
        let block_bytes = block_bytes.ok_or(())?;
        let stream = Self::new(array, stats, block_bytes, spare_bytes, false);
        if let Some(stored) = probed.filter(|stored| stream.opens_by_blocks(stored)) {
            let frame = stream.open_chunk(stored);
            stream.state.lock().frames.insert(probe, Slot::Ready(frame));
        }
        Ok(Some(stream))
    }

    /// A stream over `array` reading its chunks in parts of `part_bytes` (whole rows of a
    /// chunk, say): each part decodes its chunk whole and keeps only its own bytes, so that a
    /// band of chunks wider than the cache is never held whole, at the price of decoding
    /// each chunk once per part. For chunks that do not decode by blocks.
    pub fn in_parts(
        array: &Arc<ZarrArray>,
        part_bytes: usize,
        stats: &Arc<Stats>,
        spare_bytes: usize,
    ) -> Self {
        let part_bytes = part_bytes.clamp(1, array.grid.chunk_bytes().max(1));
        Self::new(array, stats, part_bytes, spare_bytes, true)
    }

    fn new(
        array: &Arc<ZarrArray>,
        stats: &Arc<Stats>,
        block_bytes: usize,
        spare_bytes: usize,
        in_parts: bool,
    ) -> Self {
        BlockStream {
            array: array.clone(),
            stats: stats.clone(),
            block_bytes,
            in_parts,
            state: Mutex::new(StreamState::default()),
            changed: Condvar::new(),
            spare: Mutex::new(Vec::new()),
            open_chunks: Arc::new(AtomicUsize::new(0)),
            max_spare: (spare_bytes / block_bytes.max(1)).clamp(2, 64),
            max_open_chunks: MAX_OPEN_CHUNKS,
        }
    }

    /// Whether an opened stored chunk decodes by this stream's blocks.
    fn opens_by_blocks(&self, stored: &StoredBlocks) -> bool {
        stored.blocks.decoded_len() == self.array.grid.chunk_bytes()
            && stored.blocks.block_size() == self.block_bytes
    }

    /// The frame of a stored chunk opened by blocks, counted among the open chunks.
    fn open_chunk(&self, stored: StoredBlocks) -> Frame {
        self.open_chunks.fetch_add(1, Ordering::Relaxed);
        Frame::Blocks(Arc::new(OpenChunk {
            stored,
            open_chunks: self.open_chunks.clone(),
        }))
    }

    /// Decoded bytes per block (the last block of a chunk may be shorter).
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// The blocks holding bytes `start..end` of a decoded chunk, as block indices.
    pub fn blocks_of(&self, start: usize, end: usize) -> std::ops::Range<u64> {
        if end <= start {
            return 0..0;
        }
        (start / self.block_bytes) as u64..end.div_ceil(self.block_bytes) as u64
    }

    /// Forgets every held block if the array's write-back generation is no longer
    /// `generation` (blocks decoded before a write-back may show superseded bytes).
    pub fn sync_generation(&self, generation: u64) {
        let mut state = self.state.lock();
        if state.generation != generation {
            state.generation = generation;
            state.frames.clear();
            state.blocks.clear();
            self.changed.notify_all();
        }
    }

    /// Block `block` of chunk `linear`, decoding it (and reading the chunk) if needed.
    pub fn block(&self, linear: u64, block: u64) -> FsResult<BlockBuf> {
        self.get_or_load(
            |s| &mut s.blocks,
            (linear, block),
            || self.load_block(linear, block),
        )
    }

    /// Starts decoding the listed blocks on `pool` (those not held or loading already), in
    /// order; the caller bounds how many it lists.
    pub fn prefetch(
        self: &Arc<Self>,
        pool: &rayon::ThreadPool,
        blocks: impl IntoIterator<Item = (u64, u64)>,
    ) {
        for key in blocks {
            if self.state.lock().blocks.contains_key(&key) {
                continue;
            }
            let stream = self.clone();
            pool.spawn(move || {
                // The reader may have passed it while the decode waited for a thread.
                if !stream.is_behind(key.0, key.1) {
                    let loaded = crate::isolation::isolate_fallible("read-ahead", || {
                        stream.block(key.0, key.1)
                    });
                    if let Err(err) = loaded {
                        crate::report::warn_in("read-ahead", &err.message);
                    }
                }
            });
        }
    }

    /// Records that the reader is at block `block` of the chunks of band `band` (bands of
    /// `chunks_per_band` chunks) and lets go of the decoded blocks behind it, and of the
    /// stored chunks (closing them) of bands it has passed; the buffers serve the next
    /// decodes.
    pub fn advance(&self, chunks_per_band: u64, band: u64, block: u64) {
        let position = (chunks_per_band.max(1), band, block);
        let mut state = self.state.lock();
        state.position = Some(position);
        let passed: Vec<BlockBuf> = state
            .blocks
            .extract_if(|&(chunk, b), slot| {
                matches!(slot, Slot::Ready(_)) && behind(position, chunk, b)
            })
            .filter_map(|(_, slot)| match slot {
                Slot::Ready(block) => Some(block),
                Slot::Loading => None,
            })
            .collect();
        // A chunk stays open while the reader is in its band, so that all its blocks are
        // read from one version of it.
        let chunks: HashSet<u64> = state.blocks.keys().map(|&(chunk, _)| chunk).collect();
        let band_start = band * position.0;
        state.frames.retain(|&chunk, slot| {
            matches!(slot, Slot::Loading) || chunk >= band_start || chunks.contains(&chunk)
        });
        drop(state);
        let mut spare = self.spare.lock();
        for block in passed {
            if let Ok(buf) = Arc::try_unwrap(block.buf) {
                if buf.capacity() >= self.block_bytes && spare.len() < self.max_spare {
                    spare.push(buf);
                }
            }
        }
    }

    /// Whether the reader has passed block `block` of chunk `chunk`.
    fn is_behind(&self, chunk: u64, block: u64) -> bool {
        let position = self.state.lock().position;
        position.is_some_and(|position| behind(position, chunk, block))
    }

    /// The listed blocks that are decoded already, in the same order (`None` for the
    /// others).
    pub fn ready(&self, blocks: impl IntoIterator<Item = (u64, u64)>) -> Vec<Option<BlockBuf>> {
        let state = self.state.lock();
        blocks
            .into_iter()
            .map(|key| match state.blocks.get(&key) {
                Some(Slot::Ready(block)) => Some(block.clone()),
                _ => None,
            })
            .collect()
    }

    fn frame(&self, linear: u64) -> FsResult<Frame> {
        self.get_or_load(|s| &mut s.frames, linear, || self.load_frame(linear))
    }

    /// Reads where a stored chunk's blocks lie (its header and block offsets only) and keeps
    /// it open; a chunk whose blocks differ from the stream's, or one found while the stream
    /// holds [`MAX_OPEN_CHUNKS`] open, is decoded whole.
    fn load_frame(&self, linear: u64) -> FsResult<Frame> {
        let array = &self.array;
        if self.open_chunks.load(Ordering::Relaxed) < self.max_open_chunks {
            let Some(stored) = read_index(array, linear, &self.stats)? else {
                return Ok(Frame::Missing);
            };
            if self.opens_by_blocks(&stored) {
                return Ok(self.open_chunk(stored));
            }
        }
        let mut encoded = Vec::new();
        let Some(location) = array.read_stored(linear, &self.stats, &mut encoded)? else {
            return Ok(Frame::Missing);
        };
        let decoded = array.decode_stored(linear, &location, &encoded, Vec::new(), &self.stats)?;
        Ok(Frame::Whole(Arc::new(decoded)))
    }

    fn load_block(&self, linear: u64, block: u64) -> FsResult<BlockBuf> {
        let chunk_bytes = self.array.grid.chunk_bytes();
        let start = block as usize * self.block_bytes;
        if start >= chunk_bytes {
            return Err(FsError::io(format!(
                "block {block} lies beyond chunk {}",
                self.array.describe_chunk(linear)
            )));
        }
        let len = self.block_bytes.min(chunk_bytes - start);
        if self.in_parts {
            return self.load_part(linear, start..start + len);
        }
        Ok(match self.frame(linear)? {
            Frame::Missing => BlockBuf {
                buf: self.array.fill_chunk(),
                offset: start,
            },
            Frame::Whole(buf) => BlockBuf { buf, offset: start },
            Frame::Blocks(stored) => {
                let StoredBlocks {
                    location,
                    object,
                    blocks,
                } = &stored.stored;
                let mut out = match self.spare.lock().pop() {
                    Some(buf) => buf,
                    None => vec![0u8; self.block_bytes],
                };
                out.resize(len, 0);
                // Edge padding is left as stored: flat views never show it.
                SCRATCH.with(|scratch| -> FsResult<()> {
                    let (stored_bytes, frame) = &mut *scratch.borrow_mut();
                    let range = blocks.stored_range(block as usize);
                    stored_bytes.resize(range.len(), 0);
                    self.array.read_stored_at(
                        (location, &**object),
                        range.start as u64,
                        stored_bytes,
                        &self.stats,
                    )?;
                    blocks
                        .decode_block(block as usize, stored_bytes, frame, &mut out)
                        .map_err(|err| {
                            Stats::add(&self.stats.errors, 1);
                            FsError::io(format!(
                                "chunk {}: {err}",
                                self.array.describe_chunk(linear)
                            ))
                        })
                })?;
                Stats::add(&self.stats.blocks_decoded, 1);
                BlockBuf {
                    buf: Arc::new(out),
                    offset: 0,
                }
            }
        })
    }

    /// Bytes `part` of chunk `linear`, decoded whole into this thread's scratch.
    fn load_part(&self, linear: u64, part: std::ops::Range<usize>) -> FsResult<BlockBuf> {
        thread_local! {
            /// A chunk's stored bytes and the chunk decoded whole, per decoding thread.
            static WHOLE: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let array = &self.array;
        let mut out = self.spare.lock().pop().unwrap_or_default();
        out.clear();
        WHOLE.with(|scratch| -> FsResult<()> {
            let (encoded, decoded) = &mut *scratch.borrow_mut();
            match array.read_stored(linear, &self.stats, encoded)? {
                None => out.extend_from_slice(&array.fill_chunk()[part]),
                Some(location) => {
                    let buffer = std::mem::take(decoded);
                    let whole =
                        array.decode_stored(linear, &location, encoded, buffer, &self.stats)?;
                    out.extend_from_slice(&whole[part]);
                    *decoded = whole;
                }
            }
            Ok(())
        })?;
        Ok(BlockBuf {
            buf: Arc::new(out),
            offset: 0,
        })
    }

    /// Single-flight lookup in one of the state's maps: waits for a load in progress, or
    /// loads in this thread. A load that finishes after the generation changed is returned
    /// but not kept.
    fn get_or_load<K: Hash + Eq + Copy, T: Clone>(
        &self,
        map: fn(&mut StreamState) -> &mut HashMap<K, Slot<T>>,
        key: K,
        load: impl FnOnce() -> FsResult<T>,
    ) -> FsResult<T> {
        let mut state = self.state.lock();
        loop {
            match map(&mut state).get(&key) {
                Some(Slot::Ready(value)) => return Ok(value.clone()),
                Some(Slot::Loading) => self.changed.wait(&mut state),
                None => break,
            }
        }
        map(&mut state).insert(key, Slot::Loading);
        let generation = state.generation;
        drop(state);
        // A panicking load fails like any other, so that waiters never wait on it forever.
        let result = crate::isolation::isolate_fallible("reading by blocks", load);
        let mut state = self.state.lock();
        if state.generation == generation {
            match &result {
                Ok(value) => {
                    map(&mut state).insert(key, Slot::Ready(value.clone()));
                }
                Err(_) => {
                    map(&mut state).remove(&key);
                }
            }
        }
        self.changed.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::v2::parse_zarray;
    use crate::store::DirectoryStore;
    use serde_json::json;
    use std::time::SystemTime;

    /// Values of a float32 chunk of 262,144 values (1 MiB: c-blosc makes it four 256 KiB
    /// blocks, the forced block size times the type size).
    fn chunk(seed: u32) -> Vec<u8> {
        (0..1u32 << 18)
            .flat_map(|i| {
                let noise = i.wrapping_mul(2_654_435_761).rotate_left(seed) % 1000;
                ((i / 64 * seed) as f32 + noise as f32 / 1000.0).to_le_bytes()
            })
            .collect()
    }

    /// Every block of chunk `linear` read through `stream`, the first one before `between`
    /// runs.
    fn read_blocks(stream: &BlockStream, linear: u64, between: impl FnOnce()) -> Vec<u8> {
        let blocks = stream.blocks_of(0, 1 << 20);
        assert_eq!(blocks, 0..4);
        let mut got = Vec::new();
        let mut between = Some(between);
        for block in blocks {
            let block = stream.block(linear, block).unwrap();
            got.extend_from_slice(&block.buf[block.offset..block.offset + stream.block_bytes()]);
            if let Some(between) = between.take() {
                between();
            }
        }
        got
    }

    /// A float32 array of two such chunks, blosc-lz4 compressed.
    fn blosc_array() -> (tempfile::TempDir, Arc<ZarrArray>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = parse_zarray(
            &json!({"zarr_format": 2, "shape": [1 << 19], "chunks": [1 << 18], "dtype": "<f4",
                    "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
                                   "blocksize": 1 << 16},
                    "fill_value": 0, "order": "C", "filters": null}),
            json!({}),
        )
        .unwrap();
        let store = Arc::new(DirectoryStore::open(dir.path()).unwrap());
        let array = Arc::new(ZarrArray::new(0, store, "", meta, SystemTime::now()));
        (dir, array)
    }

    #[test]
    fn the_chunk_probed_for_the_block_size_is_read_from_the_version_probed() {
        let (dir, array) = blosc_array();
        let stats = Arc::new(Stats::default());
        let (old, new) = (chunk(5), chunk(11));
        array.write_back_chunk(0, &old, false).unwrap();
        let stream = BlockStream::open(&array, 0, &stats, 1 << 20)
            .unwrap()
            .unwrap();
        let header_read = stats.store_bytes_read.load(Ordering::Relaxed);
        assert!(header_read > 0, "the probe read the chunk's header");
        let stored = std::fs::metadata(dir.path().join("0")).unwrap().len();
        // Replaced before any block is read: the probed version stays open, unread again.
        array.write_back_chunk(0, &new, false).unwrap();
        assert!(read_blocks(&stream, 0, || ()) == old);
        let read = stats.store_bytes_read.load(Ordering::Relaxed) - header_read;
        assert!(
            read < stored,
            "{read} bytes of blocks: the header was not read again"
        );
    }

    #[test]
    fn a_chunk_replaced_while_read_by_blocks_reads_as_the_version_opened() {
        let (_dir, array) = blosc_array();
        let stats = Arc::new(Stats::default());
        let (old, new) = (chunk(3), chunk(17));
        array.write_back_chunk(0, &old, false).unwrap();
        let stream = BlockStream::open(&array, 0, &stats, 1 << 20)
            .unwrap()
            .unwrap();
        // Another writer renames a new version over the chunk after the first block was
        // read: the new version's blocks lie elsewhere.
        let got = read_blocks(&stream, 0, || {
            array.write_back_chunk(0, &new, false).unwrap();
        });
        assert!(
            got == old,
            "every block of the version whose header was read"
        );
        assert_eq!(stats.errors.load(std::sync::atomic::Ordering::Relaxed), 0);
        let stream = BlockStream::open(&array, 0, &stats, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(
            read_blocks(&stream, 0, || ()) == new,
            "a stream opened later reads the new one"
        );
    }

    #[test]
    fn chunks_beyond_the_open_limit_are_decoded_whole() {
        let (_dir, array) = blosc_array();
        let stats = Arc::new(Stats::default());
        let chunks = [chunk(3), chunk(17)];
        for (linear, bytes) in chunks.iter().enumerate() {
            array.write_back_chunk(linear as u64, bytes, false).unwrap();
        }
        let mut stream = BlockStream::open(&array, 0, &stats, 1 << 20)
            .unwrap()
            .unwrap();
        stream.max_open_chunks = 1;
        for (linear, expected) in chunks.iter().enumerate() {
            assert!(
                &read_blocks(&stream, linear as u64, || ()) == expected,
                "chunk {linear}"
            );
        }
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        assert_eq!(count(&stats.blocks_decoded), 4, "chunk 0 by blocks");
        assert_eq!(count(&stats.chunks_decoded), 1, "chunk 1 whole");
        assert_eq!(stream.open_chunks.load(Ordering::Relaxed), 1);
        stream.advance(2, 1, 0);
        assert_eq!(
            stream.open_chunks.load(Ordering::Relaxed),
            0,
            "closed once passed"
        );
    }
}
