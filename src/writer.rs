//! Writes into arrays: bytes land in in-memory ("dirty") decoded chunks, which are later
//! encoded with the array's own codecs and stored atomically (write-back).

use crate::array::{WriteBack, ZarrArray};
use crate::cache::ChunkBuf;
use crate::error::{FsError, FsResult};
use crate::geometry::Run;
use crate::reader::ChunkReader;
use crate::stats::Stats;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

/// Applies writes to arrays and writes dirty chunks back to the store: a chunk once its
/// bytes have all been written (on the decode pool, while the writer goes on), every other
/// one on close, fsync, idleness, memory pressure or unmount.
#[derive(Debug)]
pub struct ChunkWriter {
    reader: Arc<ChunkReader>,
    /// Dirty bytes (over all arrays) above which a writer flushes its array first.
    dirty_limit: u64,
    /// Chunks written over whole, to the thread that stores them.
    complete: Mutex<Sender<(Arc<ZarrArray>, Vec<u64>)>>,
}

/// Whether `chunk` holds the bytes of `runs` from `data` already.
fn runs_match(chunk: &[u8], runs: &[Run], data: &[u8]) -> bool {
    runs.iter().all(|run| {
        chunk[run.chunk_offset..run.chunk_offset + run.len]
            == data[run.out_offset..run.out_offset + run.len]
    })
}

/// Copies the bytes of `runs` from `data` into `chunk`.
fn apply_runs(chunk: &mut [u8], runs: &[Run], data: &[u8]) {
    for run in runs {
        chunk[run.chunk_offset..run.chunk_offset + run.len]
            .copy_from_slice(&data[run.out_offset..run.out_offset + run.len]);
    }
}

impl ChunkWriter {
    /// A writer sharing the reader's cache, pool and counters. Dirty chunks are pinned in
    /// memory up to half the cache budget.
    pub fn new(reader: Arc<ChunkReader>) -> Self {
        let dirty_limit = (reader.cache().budget() as u64 / 2).max(1);
        let (complete, received) = channel();
        let storer = reader.clone();
        // Its own thread, not the pool: a pool thread waiting for an array's write-back
        // could be handed another write-back of that array by rayon meanwhile.
        std::thread::Builder::new()
            .name("zarrfs-store".into())
            .spawn(move || store_complete_chunks(&storer, &received))
            .expect("spawn the write-back thread");
        ChunkWriter {
            reader,
            dirty_limit,
            complete: Mutex::new(complete),
        }
    }

    fn stats(&self) -> &Stats {
        self.reader.stats()
    }

    /// Writes `data` at byte `offset` of the array's flat C-order view. The view has a
    /// fixed size: writing past its end is EFBIG.
    pub fn write_flat(&self, array: &Arc<ZarrArray>, offset: u64, data: &[u8]) -> FsResult<()> {
        let total = array.grid.total_bytes();
        if offset.saturating_add(data.len() as u64) > total {
            return Err(FsError::new(
                libc::EFBIG,
                format!(
                    "{}: a write passing the end of the array ({total} bytes) is refused",
                    array.describe(),
                ),
            ));
        }
        let plan = array.grid.plan(offset, data.len() as u64);
        let groups: Vec<(u64, Vec<Run>, bool)> = plan
            .into_iter()
            .map(|g| {
                let written: usize = g.runs.iter().map(|r| r.len).sum();
                let whole = written == array.grid.valid_bytes_in_chunk(g.chunk);
                (g.chunk, g.runs, whole)
            })
            .collect();
        self.apply(array, &groups, data)
    }

    /// Writes `data` at `offset` of one decoded chunk file (fixed size: past its end is EFBIG).
    pub fn write_chunk(
        &self,
        array: &Arc<ZarrArray>,
        linear: u64,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let size = array.grid.chunk_bytes() as u64;
        if offset.saturating_add(data.len() as u64) > size {
            return Err(FsError::new(
                libc::EFBIG,
                format!(
                    "{}: a write passing the end of the chunk ({size} bytes) is refused",
                    array.describe_chunk(linear),
                ),
            ));
        }
        let run = Run {
            chunk_offset: offset as usize,
            out_offset: 0,
            len: data.len(),
        };
        self.apply(
            array,
            &[(linear, vec![run], data.len() as u64 == size)],
            data,
        )
    }

    /// Applies per-chunk runs: chunks neither dirty nor wholly overwritten are decoded first
    /// from what is stored now (in parallel, outside the lock), then every change is made under the array's lock so
    /// readers see the whole write or none of it.
    fn apply(
        &self,
        array: &Arc<ZarrArray>,
        groups: &[(u64, Vec<Run>, bool)],
        data: &[u8],
    ) -> FsResult<()> {
        if groups.is_empty() {
            return Ok(());
        }
        loop {
            let (generation, need): (u64, Vec<u64>) = {
                let dirty = array.dirty.lock();
                let need = groups
                    .iter()
                    .filter(|(linear, _, whole)| !whole && !dirty.chunks.contains_key(linear))
                    .map(|(linear, _, _)| *linear)
                    .collect();
                (dirty.generation, need)
            };
            // A read-modify-write starts from the chunk as stored now, not from a cached
            // version another program may have replaced since.
            let bases = self.reader.current_stored_chunks(array, &need)?;
            let mut dirty = array.dirty.lock();
            if dirty.generation != generation {
                continue; // a write-back landed meanwhile: the decoded bases may be stale
            }
            let mut bases = need
                .iter()
                .copied()
                .zip(bases)
                .collect::<std::collections::HashMap<u64, ChunkBuf>>();
            let mut added = 0u64;
            let mut complete = Vec::new();
            for (linear, runs, _) in groups {
                // Bytes equal to those stored leave a clean chunk clean: a writer of whole
                // pages (memory-mapped writes) writes the neighbours of what it changed back
                // as they were.
                let unchanged = bases
                    .get(linear)
                    .is_some_and(|base| runs_match(base, runs, data));
                if unchanged && !dirty.chunks.contains_key(linear) {
                    continue;
                }
                let entry = dirty.chunks.entry(*linear).or_insert_with(|| {
                    added += 1;
                    bases.remove(linear).unwrap_or_else(|| array.fill_chunk())
                });
                let chunk = Arc::make_mut(entry).as_mut_slice();
                apply_runs(chunk, runs, data);
                array.mask_padding(*linear, chunk);
                self.reader.cache().invalidate((array.id, *linear));
                let written = dirty.written.entry(*linear).or_default();
                *written += runs.iter().map(|r| r.len).sum::<usize>();
                if *written >= array.grid.valid_bytes_in_chunk(*linear) {
                    dirty.written.remove(linear);
                    complete.push(*linear);
                }
            }
            dirty.last_write = Some(Instant::now());
            drop(dirty);
            if !complete.is_empty() {
                self.write_back_in_background(array, complete);
            }
            let stats = self.stats();
            Stats::add(&stats.dirty_chunks, added);
            Stats::add(&stats.dirty_bytes, added * array.grid.chunk_bytes() as u64);
            Stats::add(&stats.bytes_written, data.len() as u64);
            break;
        }
        if self.stats().dirty_bytes.load(Ordering::Relaxed) > self.dirty_limit {
            self.flush_array(array, false)?;
        }
        Ok(())
    }

    /// Has `chunks` (written over whole) stored in the background; a failure stays with the
    /// array and is returned by the next flush, as the chunks stay dirty.
    fn write_back_in_background(&self, array: &Arc<ZarrArray>, chunks: Vec<u64>) {
        let _ = self.complete.lock().send((array.clone(), chunks));
    }

    /// Drops the array's dirty chunks: what was written to them is lost and reads show the
    /// stored chunks again. Returns their positions, in order.
    pub fn discard(&self, array: &Arc<ZarrArray>) -> Vec<u64> {
        let _serialised = array.flush_lock.lock();
        let mut dirty = array.dirty.lock();
        let mut dropped: Vec<u64> = dirty.chunks.drain().map(|(linear, _)| linear).collect();
        dropped.sort_unstable();
        for &linear in &dropped {
            self.reader.cache().invalidate((array.id, linear));
        }
        dirty.generation += 1;
        dirty.failure = None;
        let count = dropped.len() as u64;
        let stats = self.stats();
        stats.dirty_chunks.fetch_sub(count, Ordering::Relaxed);
        stats
            .dirty_bytes
            .fetch_sub(count * array.grid.chunk_bytes() as u64, Ordering::Relaxed);
        Stats::add(&stats.chunks_discarded, count);
        tracing::debug!("{}: dropped {count} unsaved chunks", array.describe());
        dropped
    }

    /// Encodes and stores every dirty chunk of the array (in parallel). With `durable`, the
    /// store's directories are synced too. A chunk that fails stays dirty and the first
    /// error is returned (ENOSPC and similar errnos are kept).
    pub fn flush_array(&self, array: &Arc<ZarrArray>, durable: bool) -> FsResult<()> {
        write_back(&self.reader, array, None, durable)
    }
}

/// Stores the chunks sent by writers as they complete them (those of one array sent
/// meanwhile together), until the writer is dropped.
fn store_complete_chunks(reader: &ChunkReader, received: &Receiver<(Arc<ZarrArray>, Vec<u64>)>) {
    while let Ok((array, mut chunks)) = received.recv() {
        let mut others = Vec::new();
        while let Ok((next, more)) = received.try_recv() {
            if Arc::ptr_eq(&next, &array) {
                chunks.extend(more);
            } else {
                others.push((next, more));
            }
        }
        for (array, chunks) in std::iter::once((array, chunks)).chain(others) {
            if let Err(err) = write_back(reader, &array, Some(&chunks), false) {
                tracing::debug!("write-back of complete chunks: {}", err.message);
            }
        }
    }
}

/// Encodes and stores the dirty chunks of the array (`only` those listed, when given) in
/// parallel on the reader's pool, one write-back of the array at a time.
fn write_back(
    reader: &ChunkReader,
    array: &Arc<ZarrArray>,
    only: Option<&[u64]>,
    durable: bool,
) -> FsResult<()> {
    let _serialised = array.flush_lock.lock();
    let snapshot: Vec<(u64, ChunkBuf)> = {
        let dirty = array.dirty.lock();
        match only {
            Some(chunks) => chunks
                .iter()
                .filter_map(|k| dirty.chunks.get(k).map(|v| (*k, v.clone())))
                .collect(),
            None => dirty.chunks.iter().map(|(k, v)| (*k, v.clone())).collect(),
        }
    };
    if snapshot.is_empty() {
        return Ok(());
    }
    let stats = reader.stats().as_ref();
    let results: Vec<FsResult<WriteBack>> = reader
        .pool()
        .install(|| array.write_back_chunks(&snapshot, durable, stats));
    let mut first_error = None;
    let mut dirty = array.dirty.lock();
    for ((linear, buf), result) in snapshot.into_iter().zip(results) {
        match result {
            Ok(outcome) => {
                tracing::debug!("wrote back {}: {outcome:?}", array.describe_chunk(linear));
                match outcome {
                    WriteBack::Deleted => Stats::add(&stats.chunks_deleted, 1),
                    WriteBack::Stored(size) => {
                        Stats::add(&stats.chunks_encoded, 1);
                        Stats::add(&stats.bytes_written_back, size as u64);
                    }
                }
                let unchanged = dirty
                    .chunks
                    .get(&linear)
                    .is_some_and(|current| Arc::ptr_eq(current, &buf));
                if unchanged {
                    dirty.chunks.remove(&linear);
                    dirty.written.remove(&linear);
                    stats.dirty_chunks.fetch_sub(1, Ordering::Relaxed);
                    stats
                        .dirty_bytes
                        .fetch_sub(array.grid.chunk_bytes() as u64, Ordering::Relaxed);
                    if outcome != WriteBack::Deleted {
                        reader.cache().insert((array.id, linear), buf);
                    } else {
                        reader.cache().invalidate((array.id, linear));
                    }
                }
            }
            Err(err) => {
                Stats::add(&stats.writeback_errors, 1);
                crate::report::warn_in("write-back failed, chunk kept dirty", &err.message);
                first_error.get_or_insert(err);
            }
        }
    }
    dirty.generation += 1;
    match first_error {
        Some(err) => {
            dirty.failure = Some(err.clone());
            Err(err)
        }
        None => {
            if only.is_none() {
                dirty.failure = None;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Admission;
    use crate::metadata::v2::parse_zarray;
    use crate::store::{DirectoryStore, ListEntry, ObjectInfo, Store};
    use serde_json::json;
    use std::io;
    use std::sync::atomic::AtomicBool;
    use std::time::SystemTime;

    /// A directory store whose writes can be made to fail with ENOSPC.
    #[derive(Debug)]
    struct FlakyStore {
        inner: DirectoryStore,
        full: AtomicBool,
        puts: std::sync::atomic::AtomicUsize,
    }

    impl Store for FlakyStore {
        fn get(&self, key: &str, max_len: u64) -> io::Result<Option<Vec<u8>>> {
            self.inner.get(key, max_len)
        }
        fn info(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
            self.inner.info(key)
        }
        fn list(&self, prefix: &str) -> io::Result<Vec<ListEntry>> {
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
        ) -> io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put(key, bytes, like, durable)
        }
        fn delete(&self, key: &str, durable: bool) -> io::Result<()> {
            self.inner.delete(key, durable)
        }
        fn remove_stale_temporaries(&self) -> io::Result<usize> {
            Ok(0)
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<FlakyStore>,
        array: Arc<ZarrArray>,
        writer: ChunkWriter,
        reader: Arc<ChunkReader>,
    }

    /// A 10x7 `>i2` array in 4x3 chunks (edge chunks on both axes), fill 7, zstd.
    fn fixture(order: &str) -> Fixture {
        fixture_with(
            parse_zarray(
                &json!({"zarr_format": 2, "shape": [10, 7], "chunks": [4, 3], "dtype": ">i2",
                        "compressor": {"id": "zstd", "level": 1}, "fill_value": 7,
                        "order": order, "filters": null}),
                json!({}),
            )
            .unwrap(),
        )
    }

    /// The same array in Zarr v3, stored in 4x6 shards of 2x3 inner chunks (edge shards on
    /// both axes), the index at the start.
    fn sharded_fixture() -> Fixture {
        fixture_with(
            crate::metadata::v3::parse_array(&json!({
                "zarr_format": 3, "node_type": "array", "shape": [10, 7], "data_type": "int16",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 6]}},
                "chunk_key_encoding": {"name": "default"}, "fill_value": 7,
                "codecs": [{"name": "sharding_indexed", "configuration": {
                    "chunk_shape": [2, 3], "index_location": "start",
                    "codecs": [{"name": "bytes", "configuration": {"endian": "big"}},
                               {"name": "zstd", "configuration": {"level": 1}}],
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                     {"name": "crc32c"}]}}]
            }))
            .unwrap(),
        )
    }

    fn fixture_with(meta: crate::metadata::ArrayMeta) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FlakyStore {
            inner: DirectoryStore::open(dir.path()).unwrap(),
            full: AtomicBool::new(false),
            puts: Default::default(),
        });
        let array = Arc::new(ZarrArray::new(
            0,
            store.clone(),
            "",
            meta,
            SystemTime::now(),
        ));
        let reader = Arc::new(ChunkReader::with_budget(1 << 20, 2).unwrap());
        Fixture {
            _dir: dir,
            store,
            array,
            writer: ChunkWriter::new(reader.clone()),
            reader,
        }
    }

    fn fill_view(f: &Fixture) -> Vec<u8> {
        f.array.meta.fill_bytes.repeat(70)
    }

    /// Decodes what the store holds for the whole array (fill where chunks are absent).
    fn stored_view(f: &Fixture) -> Vec<u8> {
        let fresh = fixture_like(f);
        fresh
            .reader
            .read_flat(&fresh.array, 0, 140, Admission::Keep)
            .unwrap()
    }

    /// A second array object over the same store, with a cold cache.
    fn fixture_like(f: &Fixture) -> Fixture {
        let reader = Arc::new(ChunkReader::with_budget(1 << 20, 1).unwrap());
        let array = Arc::new(ZarrArray::new(
            1,
            f.store.clone(),
            "",
            f.array.meta.clone(),
            SystemTime::now(),
        ));
        Fixture {
            _dir: tempfile::tempdir().unwrap(),
            store: f.store.clone(),
            array,
            writer: ChunkWriter::new(reader.clone()),
            reader,
        }
    }

    #[test]
    fn writes_are_visible_at_once_and_stored_on_flush() {
        for (order, f) in [
            ("C", fixture("C")),
            ("F", fixture("F")),
            ("sharded", sharded_fixture()),
        ] {
            let mut shadow = fill_view(&f);
            for (offset, bytes) in [
                (3usize, vec![1u8, 2, 3, 4, 5]),
                (27, vec![9; 40]),
                (138, vec![8, 8]),
            ] {
                f.writer
                    .write_flat(&f.array, offset as u64, &bytes)
                    .unwrap();
                shadow[offset..offset + bytes.len()].copy_from_slice(&bytes);
                assert_eq!(
                    f.reader
                        .read_flat(&f.array, 0, 140, Admission::Keep)
                        .unwrap(),
                    shadow,
                    "{order}"
                );
            }
            assert!(
                !f.array.dirty.lock().chunks.is_empty(),
                "chunks written in part wait for a flush"
            );
            f.writer.flush_array(&f.array, true).unwrap();
            assert_eq!(stored_view(&f), shadow, "{order}: stored after flush");
            assert!(f.array.dirty.lock().chunks.is_empty());
            assert_eq!(
                f.reader
                    .read_flat(&f.array, 0, 140, Admission::Keep)
                    .unwrap(),
                shadow
            );
        }
    }

    #[test]
    fn chunk_file_writes_land_in_the_flat_view() {
        let f = fixture("C");
        let linear = f.array.grid.chunk_linear(&[1, 2]).unwrap();
        let chunk: Vec<u8> = (0..24u8).collect();
        f.writer.write_chunk(&f.array, linear, 0, &chunk).unwrap();
        f.writer.flush_array(&f.array, false).unwrap();
        let view = stored_view(&f);
        // Row 4, column 6 is element (0, 0) of chunk (1, 2).
        let at = (4 * 7 + 6) * 2;
        assert_eq!(&view[at..at + 2], &chunk[..2]);
        assert!(
            f.writer.write_chunk(&f.array, linear, 20, &[0; 5]).is_err(),
            "past the chunk end"
        );
    }

    #[test]
    fn a_chunk_written_over_whole_is_stored_while_the_writer_goes_on() {
        let f = fixture("C");
        // Chunk (0, 0) is rows 0..4 × columns 0..3: six bytes of each 14-byte row. Chunk
        // (0, 1) gets one row only.
        for row in 0..4u64 {
            f.writer
                .write_flat(&f.array, row * 14, &[row as u8; 6])
                .unwrap();
        }
        f.writer.write_flat(&f.array, 6, &[9; 2]).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let stats = f.reader.stats();
        while stats.chunks_encoded.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "the complete chunk was never stored"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(f.store.get("0.0", u64::MAX).unwrap().is_some());
        // Stored in order: the partial chunk, sent after it if at all, would be stored too.
        f.writer.write_flat(&f.array, 0, &[0; 0]).unwrap();
        assert_eq!(f.reader.stats().chunks_encoded.load(Ordering::Relaxed), 1);
        let dirty: Vec<u64> = f.array.dirty.lock().chunks.keys().copied().collect();
        assert_eq!(dirty, [1], "the partial chunk waits for a flush");
        assert_eq!(&stored_view(&f)[..6], &[0; 6]);
        f.writer.flush_array(&f.array, false).unwrap();
        assert_eq!(&stored_view(&f)[6..8], &[9, 9]);
    }

    #[test]
    fn fill_valued_chunks_are_deleted_from_the_store() {
        let f = fixture("C");
        f.writer.write_flat(&f.array, 0, &[0, 1]).unwrap();
        f.writer.flush_array(&f.array, false).unwrap();
        assert!(f.store.get("0.0", u64::MAX).unwrap().is_some());
        f.writer.write_flat(&f.array, 0, &[0, 7]).unwrap();
        f.writer.flush_array(&f.array, false).unwrap();
        assert_eq!(
            f.store.get("0.0", u64::MAX).unwrap(),
            None,
            "all-fill chunk is removed"
        );
        assert_eq!(f.reader.stats().chunks_deleted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bytes_written_as_stored_leave_their_chunks_clean() {
        for (what, f) in [("chunks", fixture("C")), ("shards", sharded_fixture())] {
            let mut view = fill_view(&f);
            for (i, b) in view.iter_mut().enumerate() {
                *b ^= (i % 5) as u8;
            }
            f.writer.write_flat(&f.array, 0, &view).unwrap();
            f.writer.flush_array(&f.array, false).unwrap();
            let puts = || f.store.puts.load(Ordering::SeqCst);
            let stored = puts();
            // Elements 1 to 5 of row 0: parts of the first two chunks, as stored.
            f.writer.write_flat(&f.array, 2, &view[2..12]).unwrap();
            assert!(
                f.array.dirty.lock().chunks.is_empty(),
                "{what}: still clean"
            );
            f.writer.flush_array(&f.array, false).unwrap();
            assert_eq!(puts(), stored, "{what}: nothing stored again");
            // The same write with element 4 changed: only its chunk becomes dirty.
            view[8] ^= 0x40;
            f.writer.write_flat(&f.array, 2, &view[2..12]).unwrap();
            let dirty: Vec<u64> = f.array.dirty.lock().chunks.keys().copied().collect();
            assert_eq!(dirty, [1], "{what}");
            f.writer.flush_array(&f.array, false).unwrap();
            assert_eq!(stored_view(&f), view, "{what}");
            assert_eq!(
                f.reader
                    .read_flat(&f.array, 0, 140, Admission::Keep)
                    .unwrap(),
                view,
                "{what}"
            );
        }
    }

    #[test]
    fn whole_chunk_writes_need_no_decode() {
        let f = fixture("C");
        f.store.put("0.0", b"garbage", None, false).unwrap();
        let err = f.writer.write_flat(&f.array, 0, &[1, 2]).unwrap_err();
        assert_eq!(
            err.errno,
            libc::EIO,
            "a partial write must decode the broken chunk"
        );
        // A write through the chunk file that covers it whole needs no decode.
        f.writer.write_chunk(&f.array, 0, 0, &[3u8; 24]).unwrap();
        f.writer.flush_array(&f.array, false).unwrap();
        assert_eq!(&stored_view(&f)[..6], &[3, 3, 3, 3, 3, 3]);
    }

    #[test]
    fn failed_write_back_is_reported_kept_and_retried() {
        for f in [fixture("C"), sharded_fixture()] {
            failed_write_back_is_reported_kept_and_retried_for(f);
        }
    }

    fn failed_write_back_is_reported_kept_and_retried_for(f: Fixture) {
        f.writer.write_flat(&f.array, 10, &[5, 5]).unwrap();
        f.store.full.store(true, Ordering::SeqCst);
        let err = f.writer.flush_array(&f.array, true).unwrap_err();
        assert_eq!(err.errno, libc::ENOSPC);
        assert_eq!(f.array.dirty.lock().chunks.len(), 1, "kept dirty");
        assert_eq!(
            f.reader
                .read_flat(&f.array, 10, 2, Admission::Keep)
                .unwrap(),
            vec![5, 5]
        );
        assert_eq!(f.reader.stats().writeback_errors.load(Ordering::Relaxed), 1);
        f.store.full.store(false, Ordering::SeqCst);
        f.writer.flush_array(&f.array, true).unwrap();
        assert_eq!(&stored_view(&f)[10..12], &[5, 5]);
        assert!(f.array.dirty.lock().failure.is_none());
    }

    #[test]
    fn concurrent_writers_to_one_chunk_lose_nothing() {
        for f in [fixture("C"), sharded_fixture()] {
            concurrent_writers_to_one_chunk_lose_nothing_for(f);
        }
    }

    fn concurrent_writers_to_one_chunk_lose_nothing_for(f: Fixture) {
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let f = &f;
                scope.spawn(move || {
                    for round in 0..50u8 {
                        // Thread t owns elements t, t+4, ... of row 0..4 (chunk 0.0 and 0.1).
                        for e in (t as u64..14).step_by(4) {
                            f.writer.write_flat(&f.array, e * 2, &[t, round]).unwrap();
                        }
                        if round % 10 == 0 {
                            f.writer.flush_array(&f.array, false).unwrap();
                        }
                    }
                });
            }
        });
        f.writer.flush_array(&f.array, false).unwrap();
        let view = stored_view(&f);
        for e in 0..14usize {
            assert_eq!(&view[e * 2..e * 2 + 2], &[(e % 4) as u8, 49], "element {e}");
        }
    }

    #[test]
    fn writes_past_the_end_are_refused() {
        let f = fixture("C");
        assert_eq!(
            f.writer
                .write_flat(&f.array, 139, &[1, 2])
                .unwrap_err()
                .errno,
            libc::EFBIG
        );
        assert!(f.array.dirty.lock().chunks.is_empty());
    }

    #[test]
    fn sharded_arrays_rewrite_each_shard_once() {
        let f = sharded_fixture();
        let values: Vec<u8> = (0..140u8).collect();
        f.writer.write_flat(&f.array, 0, &values).unwrap();
        assert_eq!(f.array.dirty.lock().chunks.len(), 15, "5x3 inner chunks");
        f.writer.flush_array(&f.array, false).unwrap();
        assert_eq!(
            f.store.puts.load(Ordering::SeqCst),
            6,
            "3x2 shards, one put each"
        );
        assert_eq!(stored_view(&f), values);
        assert_eq!(f.reader.stats().chunks_encoded.load(Ordering::Relaxed), 15);
        // Back to fill: every shard leaves the store.
        f.writer.write_flat(&f.array, 0, &fill_view(&f)).unwrap();
        f.writer.flush_array(&f.array, false).unwrap();
        for shard in ["c/0/0", "c/0/1", "c/1/0", "c/1/1", "c/2/0", "c/2/1"] {
            assert_eq!(f.store.get(shard, u64::MAX).unwrap(), None, "{shard}");
        }
        assert_eq!(f.reader.stats().chunks_deleted.load(Ordering::Relaxed), 15);
        assert_eq!(stored_view(&f), fill_view(&f));
    }
}
