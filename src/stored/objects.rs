//! Chunks stored one object each. A v2 array whose metadata leaves the key separator open
//! may use `.` or the legacy nested `/`: both keys are tried until a chunk found tells.

use super::{io_error, Keys, OpenStored, Update, WriteBack};
use crate::error::{FsError, FsResult};
use crate::geometry::ChunkGrid;
use crate::metadata::ChunkKeyEncoding;
use crate::stats::Stats;
use crate::store::{ObjectInfo, ObjectVersion};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// Chunks stored as objects of their own.
#[derive(Debug)]
pub struct ChunkObjects {
    keys: Keys,
    grid: ChunkGrid,
    /// For v2 arrays with no declared separator: 0 unknown, else the byte found in the store.
    legacy_separator: AtomicU8,
}

impl ChunkObjects {
    pub(super) fn new(keys: Keys, grid: ChunkGrid) -> Self {
        ChunkObjects {
            keys,
            grid,
            legacy_separator: AtomicU8::new(0),
        }
    }

    /// The store keys to try for a chunk, in order, each with the separator it uses.
    fn candidate_keys(&self, linear: u64) -> Vec<(String, u8)> {
        let index = self.grid.chunk_index(linear);
        let key = |sep: u8| (self.keys.key(&index, sep as char), sep);
        match self.keys.encoding {
            ChunkKeyEncoding::V2 { separator: None } if index.len() > 1 => {
                match self.legacy_separator.load(Ordering::Relaxed) {
                    b'/' => vec![key(b'/')],
                    b'.' => vec![key(b'.')],
                    _ => vec![key(b'.'), key(b'/')],
                }
            }
            _ => vec![key(b'.')],
        }
    }

    /// The first of a chunk's candidate keys at which `probe` finds it, with what it found
    /// there; learns from it which separator the array's chunks use. An error names the key.
    fn find<T>(
        &self,
        linear: u64,
        mut probe: impl FnMut(&str) -> std::io::Result<Option<T>>,
    ) -> FsResult<Option<(String, T)>> {
        let candidates = self.candidate_keys(linear);
        let probing = candidates.len() > 1;
        for (key, sep) in candidates {
            match probe(&key) {
                Ok(Some(found)) => {
                    if probing {
                        self.legacy_separator.store(sep, Ordering::Relaxed);
                    }
                    return Ok(Some((key, found)));
                }
                Ok(None) => continue,
                Err(err) => return Err(io_error(&*self.keys.store, &key, &err)),
            }
        }
        Ok(None)
    }

    pub(super) fn read(
        &self,
        linear: u64,
        buf: &mut Vec<u8>,
        stats: &Stats,
    ) -> FsResult<Option<(String, Option<ObjectVersion>)>> {
        let store = &self.keys.store;
        let max_len = self.keys.max_len;
        let found = self.find(linear, |key| store.get_into_versioned(key, buf, max_len))?;
        Ok(found.map(|(key, version)| {
            Stats::add(&stats.store_bytes_read, buf.len() as u64);
            (store.describe(&key), version)
        }))
    }

    /// The version of a stored chunk as stored now, `None` when absent.
    pub(super) fn version(&self, linear: u64) -> FsResult<Option<ObjectVersion>> {
        Ok(self
            .find(linear, |key| self.keys.store.object_version(key))?
            .map(|(_, version)| version))
    }

    pub(super) fn open(&self, linear: u64) -> FsResult<Option<OpenStored>> {
        let store = &self.keys.store;
        let found = self.find(linear, |key| store.open(key, self.keys.max_len))?;
        Ok(found.map(|(key, object)| (store.describe(&key), object)))
    }

    /// The key and object info of a stored chunk, `None` when absent.
    pub(super) fn info(&self, linear: u64) -> FsResult<Option<(String, ObjectInfo)>> {
        self.find(linear, |key| self.keys.store.object_info(key))
    }

    pub(super) fn key(&self, linear: u64) -> String {
        match self.info(linear) {
            Ok(Some((key, _))) => key,
            _ => self.candidate_keys(linear).swap_remove(0).0,
        }
    }

    /// Tells the store that chunk `linear` will be read soon.
    pub(super) fn prefetch(&self, linear: u64) {
        if let Some((key, _)) = self.candidate_keys(linear).first() {
            self.keys.store.prefetch(key, self.keys.max_len);
        }
    }

    pub(super) fn describe(&self, linear: u64) -> String {
        self.keys.store.describe(&self.key(linear))
    }

    pub(super) fn write_back(&self, updates: &[Update], durable: bool) -> Vec<FsResult<WriteBack>> {
        updates
            .par_iter()
            .map(|(linear, bytes)| self.write_back_one(*linear, bytes.as_deref(), durable))
            .collect()
    }

    fn write_back_one(
        &self,
        linear: u64,
        bytes: Option<&[u8]>,
        durable: bool,
    ) -> FsResult<WriteBack> {
        let store = &self.keys.store;
        let Some(bytes) = bytes else {
            for (key, _) in self.candidate_keys(linear) {
                store.delete(&key, durable).map_err(|e| {
                    FsError::from_io(&format!("deleting chunk {}", store.describe(&key)), &e)
                })?;
            }
            return Ok(WriteBack::Deleted);
        };
        let key = self.key(linear);
        store
            .put(&key, bytes, Some(&self.keys.like), durable)
            .map_err(|e| {
                FsError::from_io(&format!("writing chunk {}", store.describe(&key)), &e)
            })?;
        Ok(WriteBack::Stored(bytes.len()))
    }
}
