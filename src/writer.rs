//! Writes into arrays: bytes land in in-memory ("dirty") decoded chunks, which are later
//! encoded with the array's own codecs and stored atomically (write-back).

use crate::array::ZarrArray;
use crate::cache::ChunkBuf;
use crate::error::{FsError, FsResult};
use crate::geometry::Run;
use crate::reader::ChunkReader;
use crate::stats::Stats;
use rayon::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Applies writes to arrays and writes dirty chunks back to the store.
#[derive(Debug)]
pub struct ChunkWriter {
    reader: Arc<ChunkReader>,
    /// Dirty bytes (over all arrays) above which a writer flushes its array first.
    dirty_limit: u64,
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
        ChunkWriter {
            reader,
            dirty_limit,
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
                    "{}: write of {} bytes at {offset} passes the end of the array ({total} bytes)",
                    array.describe(),
                    data.len()
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
                    "{}: write of {} bytes at {offset} passes the end of the chunk ({size} bytes)",
                    array.describe_chunk(linear),
                    data.len()
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
    /// (in parallel, outside the lock), then every change is made under the array's lock so
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
                let dirty = array.dirty.lock().unwrap();
                let need = groups
                    .iter()
                    .filter(|(linear, _, whole)| !whole && !dirty.chunks.contains_key(linear))
                    .map(|(linear, _, _)| *linear)
                    .collect();
                (dirty.generation, need)
            };
            let bases = self.reader.stored_chunks(array, &need)?;
            let mut dirty = array.dirty.lock().unwrap();
            if dirty.generation != generation {
                continue; // a write-back landed meanwhile: the decoded bases may be stale
            }
            let mut bases = need
                .iter()
                .copied()
                .zip(bases)
                .collect::<std::collections::HashMap<u64, ChunkBuf>>();
            let mut added = 0u64;
            for (linear, runs, _) in groups {
                let entry = dirty.chunks.entry(*linear).or_insert_with(|| {
                    added += 1;
                    bases.remove(linear).unwrap_or_else(|| array.fill_chunk())
                });
                apply_runs(Arc::make_mut(entry).as_mut_slice(), runs, data);
                self.reader.cache().invalidate((array.id, *linear));
            }
            dirty.last_write = Some(Instant::now());
            drop(dirty);
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

    /// Encodes and stores every dirty chunk of the array (in parallel). With `durable`, the
    /// store's directories are synced too. A chunk that fails stays dirty and the first
    /// error is returned (ENOSPC and similar errnos are kept).
    pub fn flush_array(&self, array: &Arc<ZarrArray>, durable: bool) -> FsResult<()> {
        let _serialised = array.flush_lock.lock().unwrap();
        let snapshot: Vec<(u64, ChunkBuf)> = {
            let dirty = array.dirty.lock().unwrap();
            dirty.chunks.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        if snapshot.is_empty() {
            return Ok(());
        }
        let results: Vec<FsResult<usize>> = self.reader.pool().install(|| {
            snapshot
                .par_iter()
                .map(|(linear, buf)| array.write_back_chunk(*linear, buf, durable))
                .collect()
        });
        let stats = self.stats();
        let mut first_error = None;
        let mut dirty = array.dirty.lock().unwrap();
        for ((linear, buf), result) in snapshot.into_iter().zip(results) {
            match result {
                Ok(stored) => {
                    if stored == 0 {
                        Stats::add(&stats.chunks_deleted, 1);
                    } else {
                        Stats::add(&stats.chunks_encoded, 1);
                        Stats::add(&stats.bytes_written_back, stored as u64);
                    }
                    let unchanged = dirty
                        .chunks
                        .get(&linear)
                        .is_some_and(|current| Arc::ptr_eq(current, &buf));
                    if unchanged {
                        dirty.chunks.remove(&linear);
                        stats.dirty_chunks.fetch_sub(1, Ordering::Relaxed);
                        stats
                            .dirty_bytes
                            .fetch_sub(array.grid.chunk_bytes() as u64, Ordering::Relaxed);
                        if stored > 0 {
                            self.reader.cache().insert((array.id, linear), buf);
                        } else {
                            self.reader.cache().invalidate((array.id, linear));
                        }
                    }
                }
                Err(err) => {
                    Stats::add(&stats.writeback_errors, 1);
                    tracing::warn!("write-back failed, chunk kept dirty: {}", err.message);
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
                dirty.failure = None;
                Ok(())
            }
        }
    }
}
