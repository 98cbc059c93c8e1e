//! Open files of the tree: reads (with read-ahead for sequential readers), writes, and
//! the fixed sizes of the data views.

use super::sync::Written;
use super::{Attr, CacheMode, EntryKind, NodeKind, OpenOptions, Tree, CHUNK_INO_FLAG};
use crate::array::ZarrArray;
use crate::blocks::BlockStream;
use crate::cache::Admission;
use crate::error::{FsError, FsResult};
use crate::pattern::AccessPattern;
use crate::reader::HeldChunks;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub(super) enum FileTarget {
    Flat {
        array: Arc<ZarrArray>,
        header: Option<Arc<Vec<u8>>>,
    },
    Chunk {
        array: Arc<ZarrArray>,
        linear: u64,
    },
    Bytes(Arc<Vec<u8>>),
    /// [`super::DISCARD_FILE`]: the chunks a write to this handle dropped, one per line.
    Discard(Mutex<Vec<u8>>),
}

#[derive(Debug, Default)]
pub(super) struct Sequential {
    pub(super) next_offset: u64,
    pub(super) prefetched_to: u64,
    /// Band of the previous sequential read of a flat view.
    pub(super) band: Option<u64>,
    /// Whether that band is read by blocks.
    pub(super) band_by_blocks: bool,
    /// Offset in the flat view up to which blocks have been started.
    pub(super) blocks_started_to: u64,
    /// Band of the last byte the latest sequential read reached (past `band` when a read
    /// spans bands).
    pub(super) reached_band: u64,
    /// Whether read-ahead may decode whole chunks beyond the band being read (whole): the
    /// next band is taken whole too, or the array's chunks do not decode by blocks.
    pub(super) whole_beyond_band: bool,
    /// The reader's access pattern over the flat view.
    pub(super) pattern: AccessPattern,
}

/// How many chunk positions a reader looks through for a stored chunk that tells whether
/// the array's chunks decode by blocks.
const PROBED_CHUNKS: u64 = 256;

/// How far ahead of a reader blocks are decoded at least (bytes of the flat view).
const BLOCKS_AHEAD_BYTES: u64 = 16 << 20;

/// A read from the start of a flat view this long is a scan (the first window of the
/// kernel's read-ahead; a shorter read there, such as `np.load` reading an NPY header, is
/// not).
const SCAN_FROM_START: u64 = 128 << 10;

/// Most predicted ranges of a reader's pattern looked at per request.
const PREDICTIONS_PER_READ: usize = 64;

/// Most chunks in a band (a row of chunks along the first axis) for scans to read it as a
/// band. Reading ahead, holding and releasing by bands costs work and memory per chunk of
/// the band; an array whose rows cross more chunks (shape `[3, 2^32]` in chunks `[3, 4]`
/// has 2^30 per band) is read ahead as its reader's pattern predicts, as random readers
/// are, so that a read costs what it touches.
const MAX_BAND_CHUNKS: u64 = 1 << 16;

/// A run of contiguous reads of a flat view this long (at least) is a scan: the flat bytes
/// of an index along the first axis (up to 4 MiB), which touch every chunk of a band
/// anyway. Shorter runs (the rows of a slab or a tile inside one plane) read ahead only what
/// their pattern touches next.
fn scan_threshold(array: &ZarrArray) -> u64 {
    array.grid.row_bytes().min(4 << 20)
}

/// Whether a sequential reader of a flat view can read chunks by blocks.
#[derive(Debug, Default)]
pub(super) enum Blocks {
    /// Not known yet.
    #[default]
    Untried,
    /// The array's chunks do not decode by blocks.
    Unavailable,
    /// The reader's blocks.
    Stream(Arc<BlockStream>),
}

impl Sequential {
    /// Records a read of `[offset, end)`; returns whether it continues the previous one (or
    /// starts at the beginning).
    fn advance(&mut self, offset: u64, end: u64) -> bool {
        let sequential = offset == self.next_offset || offset == 0;
        self.next_offset = end;
        sequential
    }
}

#[derive(Debug)]
pub(super) struct OpenFile {
    pub(super) target: FileTarget,
    pub(super) writable: bool,
    pub(super) sequential: Mutex<Sequential>,
    /// Chunks of the band a sequential reader of a flat view is in.
    pub(super) held: Mutex<HeldChunks>,
    /// Blocks a sequential reader of a flat view reads chunks by.
    pub(super) blocks: Mutex<Blocks>,
}

impl FileTarget {
    /// The file's fixed size in bytes.
    fn size(&self) -> u64 {
        match self {
            FileTarget::Flat { array, header } => {
                header.as_ref().map_or(0, |h| h.len() as u64) + array.grid.total_bytes()
            }
            FileTarget::Chunk { array, .. } => array.grid.chunk_bytes() as u64,
            FileTarget::Bytes(content) => content.len() as u64,
            FileTarget::Discard(dropped) => dropped.lock().len() as u64,
        }
    }

    /// The file's path in the mount, for log lines.
    fn label(&self) -> String {
        let under = |array: &ZarrArray, rest: &str| {
            format!("/{}", crate::store::join_key(&array.path, rest))
        };
        match self {
            FileTarget::Flat {
                array,
                header: None,
            } => under(array, "data"),
            FileTarget::Flat { array, .. } => under(array, "data.npy"),
            FileTarget::Chunk { array, linear } => {
                under(array, &format!("chunks/{}", array.grid.chunk_name(*linear)))
            }
            FileTarget::Bytes(_) => "a metadata file".to_string(),
            FileTarget::Discard(_) => format!("/{}", super::DISCARD_FILE),
        }
    }
}

impl OpenFile {
    pub(super) fn array(&self) -> Option<&Arc<ZarrArray>> {
        match &self.target {
            FileTarget::Flat { array, .. } | FileTarget::Chunk { array, .. } => Some(array),
            FileTarget::Bytes(_) | FileTarget::Discard(_) => None,
        }
    }
}

/// Entries kept in a map of [`due`] before those older than the TTL are pruned.
const DUE_ENTRIES: usize = 1 << 16;

/// Whether `key` was last recorded in `checked` at least `ttl` before `now` (or never);
/// then records `now`. Entries older than `ttl` count as never, so they are pruned once the
/// map grows large (and all dropped when that frees too few: a key forgotten is only
/// checked once more).
fn due<K: std::hash::Hash + Eq>(
    checked: &mut std::collections::HashMap<K, Instant>,
    key: K,
    now: Instant,
    ttl: std::time::Duration,
) -> bool {
    if checked.len() >= DUE_ENTRIES {
        checked.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        if checked.len() >= DUE_ENTRIES / 2 {
            // Opened faster than pruning pays: start afresh (the next opens check again).
            checked.clear();
        }
    }
    let due = checked
        .get(&key)
        .is_none_or(|at| now.saturating_duration_since(*at) >= ttl);
    if due {
        checked.insert(key, now);
    }
    due
}

/// The bytes of `content` a read of `size` bytes at `offset` returns.
fn slice_at(content: &[u8], offset: u64, size: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(content.len());
    let end = usize::try_from(offset.saturating_add(size))
        .unwrap_or(usize::MAX)
        .min(content.len());
    &content[start..end]
}

impl Tree {
    /// Opens a file; `write` when the caller wants write access.
    pub fn open(&self, ino: u64, write: bool) -> FsResult<(u64, OpenOptions)> {
        let (target, options) = if ino & CHUNK_INO_FLAG != 0 {
            let (array, linear) = self.decode_chunk_ino(ino)?;
            if array.meta.dtype.is_variable() {
                return self
                    .open_json_lines(&array, write, |lines| lines.chunks[linear as usize].clone());
            }
            let options = self.chunk_open_options(&array, linear, ino);
            if !write {
                self.reader.prefetch_after_chunk(&array, linear);
            }
            (FileTarget::Chunk { array, linear }, options)
        } else {
            let node = self.node(ino)?;
            match &node.kind {
                NodeKind::Data { array } => (
                    FileTarget::Flat {
                        array: array.clone(),
                        header: None,
                    },
                    self.view_open_options(array, ino),
                ),
                NodeKind::Npy { array, header } => (
                    FileTarget::Flat {
                        array: array.clone(),
                        header: Some(header.clone()),
                    },
                    self.view_open_options(array, ino),
                ),
                NodeKind::JsonLines { array } => {
                    return self.open_json_lines(array, write, |lines| lines.data.clone());
                }
                NodeKind::Document { content, .. } => {
                    if write {
                        return Err(FsError::new(libc::EACCES, "read-only file"));
                    }
                    (FileTarget::Bytes(content.clone()), OpenOptions::default())
                }
                NodeKind::Attributes { path, shown } => {
                    if write {
                        return Err(FsError::new(libc::EACCES, "read-only file"));
                    }
                    // Its size changes when the attributes do: reads must not stop at a
                    // size the kernel cached.
                    let (content, _) = self.current_attributes(path, shown);
                    (
                        FileTarget::Bytes(content),
                        OpenOptions {
                            direct_io: true,
                            keep_cache: false,
                        },
                    )
                }
                NodeKind::Stats => {
                    if write {
                        return Err(FsError::new(libc::EACCES, "read-only file"));
                    }
                    (
                        FileTarget::Bytes(Arc::new(self.stats_text())),
                        OpenOptions {
                            direct_io: true,
                            keep_cache: false,
                        },
                    )
                }
                NodeKind::Discard => (
                    FileTarget::Discard(Mutex::new(Vec::new())),
                    OpenOptions {
                        direct_io: true,
                        keep_cache: false,
                    },
                ),
                _ => return Err(FsError::new(libc::EISDIR, "is a directory")),
            }
        };
        if write && self.options.read_only {
            return Err(FsError::read_only("mounted read-only"));
        }
        if let (true, FileTarget::Flat { array, .. } | FileTarget::Chunk { array, .. }) =
            (write, &target)
        {
            // Nothing could be stored with codecs zarrfs cannot run: refuse up front rather
            // than accept bytes that can never be written back.
            if let Some(reason) = array.codec_problem() {
                return Err(FsError::io(format!(
                    "{}: cannot write: {reason}",
                    target.label()
                )));
            }
        }
        Ok((self.register_open(target, write), options))
    }

    /// Registers an open file; returns its handle.
    fn register_open(&self, target: FileTarget, writable: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(
            fh,
            Arc::new(OpenFile {
                target,
                writable,
                sequential: Mutex::new(Sequential::default()),
                held: Mutex::new(HeldChunks::default()),
                blocks: Mutex::new(Blocks::default()),
            }),
        );
        fh
    }

    /// Opens a JSON lines view (read-only on every mount: EROFS for writers).
    fn open_json_lines(
        &self,
        array: &ZarrArray,
        write: bool,
        pick: impl Fn(&crate::jsonl::JsonLines) -> Arc<Vec<u8>>,
    ) -> FsResult<(u64, OpenOptions)> {
        if write {
            return Err(FsError::read_only(
                "JSON lines of variable-length elements are read-only",
            ));
        }
        let content = pick(self.json_lines(array)?.as_ref());
        Ok((
            self.register_open(FileTarget::Bytes(content), false),
            OpenOptions {
                direct_io: false,
                keep_cache: true,
            },
        ))
    }

    /// A chunk file's options: those of the data views, except that on a writable mount the
    /// chunk files of edge chunks use direct I/O where mmap() still works. Bytes written
    /// into their padding are dropped (it shows the fill value), and the kernel would keep
    /// them in the pages of the file written, which cannot be dropped before the write is
    /// answered.
    fn chunk_open_options(&self, array: &ZarrArray, linear: u64, ino: u64) -> OpenOptions {
        let options = self.view_open_options(array, ino);
        let grid = &array.grid;
        if options.direct_io
            || self.options.read_only
            || !self.direct_io_allowed.load(Ordering::Relaxed)
            || grid.valid_bytes_in_chunk(linear) == grid.chunk_bytes()
        {
            return options;
        }
        OpenOptions {
            direct_io: true,
            keep_cache: false,
        }
    }

    /// Records whether the kernel allows mmap() of direct-I/O files.
    pub fn set_direct_io_allowed(&self, allowed: bool) {
        self.direct_io_allowed.store(allowed, Ordering::Relaxed);
    }

    /// Read-only mounts use the page cache and keep it across opens. Writable mounts use
    /// direct I/O where mmap() still works, so that `data`, `data.npy` and the chunk files,
    /// which show the same bytes, never disagree; otherwise aliases are invalidated.
    fn data_open_options(&self) -> OpenOptions {
        let direct_io = match self.options.cache_mode {
            CacheMode::Auto => {
                !self.options.read_only && self.direct_io_allowed.load(Ordering::Relaxed)
            }
            CacheMode::DirectIo => true,
            CacheMode::KernelCache => false,
        };
        OpenOptions {
            direct_io,
            keep_cache: self.options.read_only && !direct_io,
        }
    }

    /// Open options of the data view `ino` of an array, with close-to-open consistency on
    /// stores that others write (see [`crate::store::Profile::revalidate_after`]): an open
    /// once that time has passed drops, for this open, the kernel's cached pages of the
    /// file when they may hold what changed in the store, so that reads after the open see
    /// what was stored before it. On a local store, that is when a stored chunk of the
    /// array read before has changed since the file's last open (see
    /// [`ZarrArray::stored_epoch`]; the cached chunks themselves are checked one by one as
    /// they are read; when changes cannot be told, as on a remote store). On a remote
    /// store, the first open of each file after that time drops its pages, and the first
    /// open of any view of the array the chunks cached from the store (unsaved ones stay).
    fn view_open_options(&self, array: &ZarrArray, ino: u64) -> OpenOptions {
        let mut options = self.data_open_options();
        let profile = self.store.profile();
        let Some(ttl) = profile.revalidate_after else {
            return options;
        };
        if profile.remote {
            let now = Instant::now();
            if due(&mut self.views_checked.lock(), array.id, now, ttl) {
                self.reader.cache().invalidate_array(array.id);
            }
            if due(&mut self.pages_checked.lock(), ino, now, ttl) {
                options.keep_cache = false;
            }
        } else if options.keep_cache {
            match array.stored_epoch(ttl) {
                Some(epoch) => {
                    let mut shown = self.pages_shown.lock();
                    if shown.len() >= DUE_ENTRIES {
                        // Forgotten files only lose their pages once.
                        shown.clear();
                    }
                    options.keep_cache = shown.insert(ino, epoch) == Some(epoch);
                }
                // Changes cannot be told: as on a remote store.
                None => {
                    if due(&mut self.pages_checked.lock(), ino, Instant::now(), ttl) {
                        options.keep_cache = false;
                    }
                }
            }
        }
        options
    }

    /// Closes a file handle; the last close of a written file starts its write-back.
    pub fn release(&self, fh: u64) {
        let file = self.files.lock().remove(&fh);
        let mut scanned = false;
        if let Some(file) = &file {
            {
                let mut held = file.held.lock();
                scanned = !held.is_empty();
                held.clear(self.reader.cache());
            }
            if let FileTarget::Flat { array, .. } = &file.target {
                array.note_scan_band(fh, None, Instant::now());
                self.remember_band_read_by_blocks(array, &file.sequential.lock(), None);
            }
            let mut blocks = file.blocks.lock();
            scanned |= matches!(*blocks, Blocks::Stream(_));
            *blocks = Blocks::Untried;
        }
        if let Some(array) = file.as_ref().filter(|f| f.writable).and_then(|f| f.array()) {
            if let Err(err) = self.writer.flush_array(array, false) {
                crate::report::warn_in("write-back on close", &err.message);
            }
        }
        if scanned {
            // The blocks and chunks a scan held were freed to the allocator's heaps.
            drop(file);
            crate::cache::return_free_memory();
        }
    }

    pub(super) fn open_file(&self, fh: u64) -> FsResult<Arc<OpenFile>> {
        self.files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, "unknown file handle"))
    }

    /// Writes `data` at `offset` of an open file; returns the bytes written.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let file = self.open_file(fh)?;
        if !file.writable {
            return Err(FsError::new(libc::EBADF, "file not open for writing"));
        }
        if let FileTarget::Discard(dropped) = &file.target {
            let lines: String = self
                .discard_unsaved()
                .iter()
                .map(|path| format!("{path}\n"))
                .collect();
            dropped.lock().extend(lines.into_bytes());
            return Ok(data.len() as u32);
        }
        // Sizes are fixed: what passes the end is cut off, and a write wholly past it fails
        // (as at a file system's maximum file size).
        let size = file.target.size();
        if offset >= size && !data.is_empty() {
            return Err(FsError::new(
                libc::EFBIG,
                // The same words for every such write, so that it is logged once.
                format!(
                    "a write past the end of {} ({size} bytes) is refused",
                    file.target.label()
                ),
            ));
        }
        let data = &data[..data.len().min((size - offset.min(size)) as usize)];
        if let Some(array) = file.array() {
            array.check_present(false)?;
        }
        match &file.target {
            FileTarget::Bytes(_) | FileTarget::Discard(_) => {
                return Err(FsError::new(libc::EACCES, "read-only file"))
            }
            FileTarget::Chunk { array, linear } => {
                self.writer.write_chunk(array, *linear, offset, data)?;
                self.invalidate_aliases(array, Written::Chunk(*linear));
            }
            FileTarget::Flat { array, header } => {
                array.check_readable(self.reader.stats())?;
                let header: &[u8] = header.as_ref().map(|h| h.as_slice()).unwrap_or(&[]);
                let header_len = header.len() as u64;
                let mut body = data;
                let mut body_offset = offset;
                if offset < header_len {
                    let overlap = ((header_len - offset) as usize).min(data.len());
                    if data[..overlap] != header[offset as usize..offset as usize + overlap] {
                        return Err(FsError::not_permitted(format!(
                            "{}: the NPY header cannot change",
                            file.target.label()
                        )));
                    }
                    body = &data[overlap..];
                    body_offset = header_len;
                }
                let data_offset = body_offset - header_len;
                self.writer.write_flat(array, data_offset, body)?;
                let name = if header_len > 0 { "data.npy" } else { "data" };
                self.invalidate_aliases(
                    array,
                    Written::Flat {
                        name,
                        offset: data_offset,
                        len: body.len() as u64,
                    },
                );
            }
        }
        Ok(data.len() as u32)
    }

    /// `truncate()`: sizes are fixed, so only the current size is accepted.
    pub fn set_size(&self, ino: u64, size: u64) -> FsResult<Attr> {
        let attr = self.getattr(ino)?;
        if attr.kind == EntryKind::Directory {
            return Err(FsError::new(libc::EISDIR, "is a directory"));
        }
        if self.options.read_only {
            return Err(FsError::read_only("mounted read-only"));
        }
        if size != attr.size {
            return Err(FsError::invalid(format!(
                "truncate of inode {ino} refused: zarrfs files have a fixed size ({} bytes)",
                attr.size
            )));
        }
        Ok(attr)
    }

    /// Reads up to `size` bytes at `offset` from an open file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        crate::stats::Stats::add(&self.reader.stats().read_requests, 1);
        tracing::trace!("read of {size} bytes at {offset} (handle {fh})");
        let file = self.open_file(fh)?;
        if let Some(array) = file.array() {
            array.check_present(false)?;
        }
        let size = u64::from(size);
        match &file.target {
            FileTarget::Bytes(content) => Ok(slice_at(content, offset, size).to_vec()),
            FileTarget::Discard(dropped) => Ok(slice_at(&dropped.lock(), offset, size).to_vec()),
            FileTarget::Chunk { array, linear } => {
                let chunk_bytes = array.grid.chunk_bytes() as u64;
                if offset >= chunk_bytes {
                    return Ok(Vec::new());
                }
                let end = offset.saturating_add(size).min(chunk_bytes);
                let sequential = file.sequential.lock().advance(offset, end);
                let admission = if sequential {
                    self.reader.scan_admission(array)
                } else {
                    Admission::Keep
                };
                let out = self
                    .reader
                    .read_chunk(array, *linear, offset, size, admission)?;
                if sequential && end == chunk_bytes {
                    // Read through to its end: a scan of chunk files has passed this one.
                    self.reader.release_scanned(array, [*linear]);
                }
                Ok(out)
            }
            FileTarget::Flat { array, header } => {
                let header: &[u8] = header.as_ref().map(|h| h.as_slice()).unwrap_or(&[]);
                let header_len = header.len() as u64;
                let end = offset
                    .saturating_add(size)
                    .min(header_len + array.grid.total_bytes());
                if offset >= end {
                    return Ok(Vec::new());
                }
                let data_start = offset.max(header_len) - header_len;
                let data_end = end.max(header_len) - header_len;
                let (admission, blocks) = self.read_ahead(fh, &file, array, data_start..data_end);
                // A sequential reader keeps the chunks of its band (unless another read of
                // the same handle is using them right now).
                let mut held = if admission.is_scan() {
                    file.held.try_lock()
                } else {
                    None
                };
                let data = self.reader.read_flat_holding(
                    array,
                    data_start,
                    data_end - data_start,
                    admission,
                    held.as_deref_mut(),
                    blocks.as_ref(),
                )?;
                if offset >= header_len {
                    return Ok(data);
                }
                let mut out = header[offset as usize..end.min(header_len) as usize].to_vec();
                out.extend(data);
                Ok(out)
            }
        }
    }

    /// Starts decoding ahead of a reader. One that is not scanning (see [`scan_threshold`])
    /// gets the chunks its access pattern touches next (see [`crate::pattern`]), decoded in
    /// parallel and cached like random reads; random reads get none. A scan is read ahead
    /// band by band: a band is one row of
    /// chunks along the first axis, which a C-order reader needs all at once. The current
    /// band and the next ones are started: with scan resistance (the default) enough bands
    /// to keep every decode thread busy and the first chunks of the band after, else as
    /// many bands as fit in a quarter of the cache. The bands the reader has left are
    /// released. A band of blosc chunks that a scan reads for the first time is read by
    /// blocks instead (see [`crate::blocks`]): only the blocks of the next rows are decoded
    /// ahead. Returns how the chunks this read decodes enter the cache (as a scan's when
    /// sequential) and the blocks to read them by, if any.
    fn read_ahead(
        &self,
        fh: u64,
        file: &OpenFile,
        array: &Arc<ZarrArray>,
        data: std::ops::Range<u64>,
    ) -> (Admission, Option<Arc<BlockStream>>) {
        let mut seq = file.sequential.lock();
        seq.pattern.note(data.start, data.end);
        let threshold = scan_threshold(array);
        if array.grid.chunks_per_band() > MAX_BAND_CHUNKS
            || !seq
                .pattern
                .scanning(threshold, threshold.min(SCAN_FROM_START))
        {
            if seq.band.is_some() {
                self.remember_band_read_by_blocks(array, &seq, None);
                seq.prefetched_to = 0;
                seq.band = None;
                seq.band_by_blocks = false;
                seq.blocks_started_to = 0;
                array.note_scan_band(fh, None, Instant::now());
                file.held.lock().clear(self.reader.cache());
            }
            self.follow_pattern(array, &mut seq.pattern);
            return (Admission::Keep, None);
        }
        let grid = &array.grid;
        let chunks_per_band = grid.chunks_per_band();
        let band_bytes = grid.chunk_shape().first().copied().unwrap_or(1) * grid.row_bytes();
        let admission = self.reader.scan_admission(array);
        if band_bytes == 0 || chunks_per_band == 0 {
            return (admission, None);
        }
        let band = data.start / band_bytes;
        let budget = self.reader.cache().budget() as u64;
        let band_chunk_bytes = chunks_per_band * grid.chunk_bytes() as u64;
        let band_chunks = |band: u64| band * chunks_per_band..(band + 1) * chunks_per_band;
        if seq.band != Some(band) {
            self.remember_band_read_by_blocks(array, &seq, Some(band));
            file.held
                .lock()
                .retain(band_chunks(band), self.reader.cache());
            seq.band_by_blocks =
                self.reads_band_by_blocks(file, array, band_chunks(band), admission);
            // A band read whole (say, one chunk was cached) does not make the next ones
            // whole: read-ahead stops at its end unless the next is taken whole anyway.
            seq.whole_beyond_band = !seq.band_by_blocks
                && (!self.may_read_by_blocks(file, array)
                    || self.band_taken_whole(array, band_chunks(band + 1), admission));
            if band_chunk_bytes > budget
                && !seq.band_by_blocks
                && !array.warned_wide_band.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    "{}: a row of chunks along the first axis holds {}, more than the {} \
                     cache; each sequential reader holds one such row while it reads it \
                     (a larger --cache-size keeps rows for other readers too)",
                    file.target.label(),
                    crate::units::format_size(band_chunk_bytes),
                    crate::units::format_size(budget)
                );
            }
        }
        // Bands this reader has left are released, except those another sequential reader
        // of the array has yet to pass (it releases them when it does).
        let others = array.note_scan_band(fh, Some(band), Instant::now());
        let passed_by_all = others.map_or(band, |other| other.min(band));
        if let Some(previous) = seq.band.filter(|&previous| previous < passed_by_all) {
            self.reader.release_scanned(
                array,
                previous * chunks_per_band..passed_by_all * chunks_per_band,
            );
        }
        seq.band = Some(band);
        seq.reached_band = data.end.saturating_sub(1).max(data.start) / band_bytes;
        let stream = match &*file.blocks.lock() {
            Blocks::Stream(stream) if seq.band_by_blocks => Some(stream.clone()),
            _ => None,
        };
        if let Some(stream) = stream {
            seq.blocks_started_to =
                self.prefetch_blocks(array, &stream, data, seq.blocks_started_to, admission);
            return (admission, Some(stream));
        }
        // With scan resistance the window also reaches a few chunks into the band after,
        // so that decoders have work while the reader finishes a band.
        let (bands_ahead, beyond) = if self.reader.cache().scan_resistance() {
            let depth = self.reader.decode_depth();
            (depth.div_ceil(chunks_per_band), depth)
        } else {
            (budget / 4 / band_bytes.max(band_chunk_bytes), 0)
        };
        let from = seq.prefetched_to.max(band * chunks_per_band);
        let to = if seq.whole_beyond_band {
            (band + 1 + bands_ahead.max(1)) * chunks_per_band + beyond
        } else {
            (band + 1) * chunks_per_band
        };
        if to > from {
            seq.prefetched_to = self.reader.prefetch_chunks(array, fh, from, to, admission);
        }
        // A read reaching into a next band that is not taken whole reads that band's chunks
        // by blocks (this band's are cached or held by then), so as not to make it whole.
        let reaches_next = data.end > (band + 1) * band_bytes;
        if reaches_next
            && !seq.whole_beyond_band
            && self.reads_band_by_blocks(file, array, band_chunks(band + 1), admission)
        {
            if let Blocks::Stream(stream) = &*file.blocks.lock() {
                return (admission, Some(stream.clone()));
            }
        }
        (admission, None)
    }

    /// Starts decoding the chunks of the ranges a reader's pattern predicts, as far as the
    /// decodes in flight allow; what is not started now is looked at on the next read.
    fn follow_pattern(&self, array: &Arc<ZarrArray>, pattern: &mut AccessPattern) {
        let size = array.grid.total_bytes();
        for _ in 0..PREDICTIONS_PER_READ {
            let Some(range) = pattern.peek(size) else {
                return;
            };
            let chunks = array
                .grid
                .chunks_touching(range.start, range.end - range.start);
            if self
                .reader
                .prefetch_list(array, chunks, Admission::Keep, None)
                .is_some()
            {
                return;
            }
            pattern.consume();
        }
    }

    /// Chunks of bands read by blocks, from the reader's band up to `until` (exclusive; when
    /// `None`, up to the last band its latest read reached), were not cached: a later scan
    /// keeps them, as it keeps chunks released after a scan.
    pub(super) fn remember_band_read_by_blocks(
        &self,
        array: &ZarrArray,
        seq: &Sequential,
        until: Option<u64>,
    ) {
        if let (true, Some(band)) = (seq.band_by_blocks, seq.band) {
            let chunks_per_band = array.grid.chunks_per_band();
            let until = until.unwrap_or(seq.reached_band + 1).max(band + 1);
            let id = array.id;
            self.reader.cache().remember_scanned(
                (band * chunks_per_band..until * chunks_per_band).map(|chunk| (id, chunk)),
            );
        }
    }

    /// Whether a scan admitting chunks as `admission` says takes this chunk whole: it is
    /// cached or loading, or (unless the array is too large to cache) a scan passed it not
    /// long ago, so this one keeps it.
    fn read_whole_by_scans(&self, array: &ZarrArray, chunk: u64, admission: Admission) -> bool {
        let cache = self.reader.cache();
        cache.is_present_or_loading((array.id, chunk))
            || (admission != Admission::Stream && cache.remembers((array.id, chunk)))
    }

    /// Whether a scan of this file could read bands by blocks: with scan resistance, when
    /// the array's chunks may decode by blocks and the file has not found they do not.
    fn may_read_by_blocks(&self, file: &OpenFile, array: &ZarrArray) -> bool {
        self.reader.cache().scan_resistance()
            && (array.may_decode_by_blocks() || self.band_wider_than_cache(array))
            && !matches!(*file.blocks.lock(), Blocks::Unavailable)
    }

    /// Whether a band of the array's chunks holds more than the cache's budget.
    fn band_wider_than_cache(&self, array: &ZarrArray) -> bool {
        let band = array.grid.chunks_per_band() as u128 * array.grid.chunk_bytes() as u128;
        band > self.reader.cache().budget() as u128
    }

    /// The blocks of a band of chunks that do not decode by blocks, when the band is wider
    /// than the cache: parts of whole chunk rows such that a row of them across the band
    /// takes half the cache's budget.
    fn parts_of_wide_band(&self, array: &Arc<ZarrArray>) -> Blocks {
        if !self.band_wider_than_cache(array) {
            return Blocks::Unavailable;
        }
        let grid = &array.grid;
        let row = grid.chunk_row_bytes().max(1);
        let budget = self.reader.cache().budget() as u64;
        let part = (budget / 2 / grid.chunks_per_band().max(1)) / row * row;
        let spare = self.reader.cache().budget() / 8;
        let stream =
            BlockStream::in_parts(array, part.max(row) as usize, self.reader.stats(), spare);
        Blocks::Stream(Arc::new(stream))
    }

    /// Whether a scan takes the chunks `band` whole: one of them is unsaved, or taken whole
    /// by scans (see [`Self::read_whole_by_scans`]).
    fn band_taken_whole(
        &self,
        array: &ZarrArray,
        band: std::ops::Range<u64>,
        admission: Admission,
    ) -> bool {
        let band = band.start..band.end.min(array.grid.num_chunks());
        {
            let dirty = array.dirty.lock();
            if band.clone().any(|chunk| dirty.chunks.contains_key(&chunk)) {
                return true;
            }
        }
        band.into_iter()
            .any(|chunk| self.read_whole_by_scans(array, chunk, admission))
    }

    /// Whether the chunks `band` of a scan are read by blocks: only with scan resistance,
    /// when the array's chunks decode by blocks and none of these chunks is cached, loading,
    /// unsaved or (unless the array is too large to cache) kept by a scan that passed it
    /// before.
    fn reads_band_by_blocks(
        &self,
        file: &OpenFile,
        array: &Arc<ZarrArray>,
        band: std::ops::Range<u64>,
        admission: Admission,
    ) -> bool {
        let band = band.start..band.end.min(array.grid.num_chunks());
        if !self.may_read_by_blocks(file, array)
            || band.is_empty()
            || self.band_taken_whole(array, band.clone(), admission)
        {
            return false;
        }
        let mut blocks = file.blocks.lock();
        if let Blocks::Untried = *blocks {
            // The first stored chunk from the band on tells (absent ones show the fill value);
            // chunks that decode whole only are read in parts when a band is wider than the
            // cache.
            let probes = band.start..(band.start + PROBED_CHUNKS).min(array.grid.num_chunks());
            for chunk in probes {
                let spare = self.reader.cache().budget() / 8;
                match BlockStream::open(array, chunk, self.reader.stats(), spare) {
                    Ok(Some(stream)) => *blocks = Blocks::Stream(Arc::new(stream)),
                    Ok(None) => continue,
                    Err(()) => *blocks = self.parts_of_wide_band(array),
                }
                break;
            }
        }
        matches!(*blocks, Blocks::Stream(_))
    }

    /// The flat row before which the rows of blocks from the reader's (`band`, `block`) on
    /// fit in the cache's budget (the reader's own row of blocks at least): a band of many
    /// chunks is decoded a row of blocks at a time rather than held whole.
    fn blocks_within_budget(
        &self,
        array: &ZarrArray,
        stream: &BlockStream,
        band: u64,
        block: u64,
    ) -> u64 {
        let grid = &array.grid;
        let block_bytes = stream.block_bytes() as u64;
        let row_of_blocks = grid.chunks_per_band() * block_bytes;
        let rows_kept = (self.reader.cache().budget() as u64 / row_of_blocks.max(1)).max(1);
        let chunk_rows = grid.chunk_shape().first().copied().unwrap_or(1);
        let blocks_per_chunk = (grid.chunk_bytes() as u64).div_ceil(block_bytes).max(1);
        let next = block + rows_kept;
        let (band, block) = (band + next / blocks_per_chunk, next % blocks_per_chunk);
        band * chunk_rows + block * block_bytes / grid.chunk_row_bytes().max(1)
    }

    /// Starts decoding the blocks a sequential reader at `data` needs next, up to two rows
    /// of blocks ahead (a row of blocks is the same block of every chunk in a band), those
    /// from `started_to` on being new; lets go of the blocks behind the reader. Returns the
    /// offset up to which blocks are now started.
    fn prefetch_blocks(
        &self,
        array: &Arc<ZarrArray>,
        stream: &Arc<BlockStream>,
        data: std::ops::Range<u64>,
        started_to: u64,
        admission: Admission,
    ) -> u64 {
        let grid = &array.grid;
        let (inner, flat_row) = (grid.chunk_row_bytes(), grid.row_bytes());
        let chunk_rows = grid.chunk_shape().first().copied().unwrap_or(1);
        let chunks_per_band = grid.chunks_per_band();
        let rows_per_block = (stream.block_bytes() as u64 / inner.max(1)).max(1);
        // Behind the reader: earlier bands, and the blocks of its band before its row.
        let row = data.start / flat_row.max(1);
        let (band, row_in_chunk) = (row / chunk_rows, row % chunk_rows);
        let current_block = row_in_chunk * inner / stream.block_bytes() as u64;
        stream.advance(chunks_per_band, band, current_block);
        let ahead = (2 * rows_per_block * flat_row).max(BLOCKS_AHEAD_BYTES);
        let target = (data.end + ahead)
            .min(grid.total_bytes())
            .min(self.blocks_within_budget(array, stream, band, current_block) * flat_row);
        let from = started_to.max(data.start);
        if target <= from {
            return started_to;
        }
        // Rows `from..target` cover the same rows of every chunk in their bands: the blocks
        // of those rows, block by block across each band (reply order).
        let dirty: HashSet<u64> = array.dirty.lock().chunks.keys().copied().collect();
        let (first_row, end_row) = (from / flat_row, target.div_ceil(flat_row));
        let mut wanted = Vec::new();
        for band in first_row / chunk_rows..end_row.div_ceil(chunk_rows) {
            let band_row = band * chunk_rows;
            let rows =
                first_row.max(band_row) - band_row..end_row.min(band_row + chunk_rows) - band_row;
            let band_end = ((band + 1) * chunks_per_band).min(grid.num_chunks());
            let chunks: Vec<u64> = (band * chunks_per_band..band_end)
                .filter(|&chunk| {
                    !dirty.contains(&chunk) && !self.read_whole_by_scans(array, chunk, admission)
                })
                .collect();
            let (start, end) = ((rows.start * inner) as usize, (rows.end * inner) as usize);
            for block in stream.blocks_of(start, end.min(grid.chunk_bytes())) {
                wanted.extend(chunks.iter().map(|&chunk| (chunk, block)));
            }
        }
        // The window bounds the decodes in flight.
        stream.prefetch(self.reader.pool(), wanted);
        target
    }
}
