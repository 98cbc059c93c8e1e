//! Where an array's chunks lie in the store: one object per chunk ([`ChunkObjects`]), or
//! the inner chunks of a sharded array inside its shards ([`ShardedChunks`]). An opened array reads,
//! opens, dates, names and writes back its stored chunks through [`StoredChunks`], by
//! linear position in its chunk grid, and sees encoded bytes only: decoding and encoding
//! stay with the array.

mod index_cache;
mod objects;
mod shards;

pub use index_cache::{settled, IndexCache, RACY_WINDOW, SHARED_BUDGET};
pub use objects::ChunkObjects;
pub use shards::ShardedChunks;

use crate::codec::ShardIndexCodec;
use crate::error::FsResult;
use crate::geometry::ChunkGrid;
use crate::metadata::{ArrayMeta, ChunkKeyEncoding};
use crate::stats::Stats;
use crate::store::{join_key, ObjectInfo, ObjectVersion, OpenObject, Store};
use std::io;
use std::sync::Arc;

/// What writing a chunk back did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBack {
    /// The chunk was encoded and stored: its encoded size in bytes.
    Stored(usize),
    /// The chunk was all fill value and was removed from the store.
    Deleted,
}

/// A chunk to write back: its linear position and its new stored bytes (`None`: it is all
/// fill value and leaves the store).
pub type Update = (u64, Option<Vec<u8>>);

/// A chunk's stored bytes opened for reads of parts of them, with their location for
/// messages.
pub type OpenStored = (String, Box<dyn OpenObject>);

/// How an array's chunks are stored.
#[derive(Debug)]
pub enum StoredChunks {
    /// One object per chunk.
    Objects(ChunkObjects),
    /// Inner chunks in shards.
    Shards(Box<ShardedChunks>),
}

/// The store, the array's prefix and its key encoding: what turns grid positions into keys.
#[derive(Debug)]
struct Keys {
    store: Arc<dyn Store>,
    path: String,
    encoding: ChunkKeyEncoding,
    /// The most bytes one stored object (a chunk, or a shard) may hold: a larger one is
    /// refused unread.
    max_len: u64,
    /// The array's metadata document, whose mode and owner a new object takes.
    like: String,
}

impl Keys {
    /// The store key of grid position `index`, with `separator` where the encoding leaves
    /// it open.
    fn key(&self, index: &[u64], separator: char) -> String {
        join_key(&self.path, &self.encoding.key(index, separator))
    }
}

/// The most bytes a stored chunk of `decoded` bytes may hold: a worst case for its codecs'
/// output, with room to spare (half again, plus 64 KiB, and never below 1 MiB).
pub fn max_stored_chunk_bytes(decoded: u64) -> u64 {
    decoded
        .saturating_add(decoded / 2)
        .saturating_add(64 << 10)
        .max(1 << 20)
}

/// Reads exactly `buf.len()` bytes from `offset` of an open object; an error says why not.
pub fn read_exact_at(object: &dyn OpenObject, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    match object.read_at(offset, buf) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(n) => Err(format!(
            "{n} of {} bytes at offset {offset}: the object ends before",
            buf.len()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// An `io::Error` on a key as an EIO naming the key's location.
fn io_error(store: &dyn Store, key: &str, err: &io::Error) -> crate::error::FsError {
    crate::error::FsError::io(format!("{}: {err}", store.describe(key)))
}

impl StoredChunks {
    /// The stored chunks of an array at `path` with chunk grid `grid`. A sharded array
    /// needs `index`, the codec of its shard indexes (without it, reads fail with EIO), and
    /// `fixed_len`, the size its inner codecs give every chunk when they fix it.
    pub fn new(
        store: Arc<dyn Store>,
        path: &str,
        meta: &ArrayMeta,
        grid: &ChunkGrid,
        index: Option<ShardIndexCodec>,
        fixed_len: Option<usize>,
    ) -> Self {
        let chunk_bound = max_stored_chunk_bytes(grid.chunk_bytes() as u64);
        let max_len = match &meta.sharding {
            None => chunk_bound,
            Some(sharding) => {
                let chunks_per_shard = sharding
                    .shard_shape
                    .iter()
                    .zip(&meta.chunk_shape)
                    .fold(1u64, |acc, (&s, &c)| acc.saturating_mul(s / c.max(1)));
                // Every inner chunk at its worst, and an index of 16 bytes each.
                chunk_bound
                    .saturating_add(16)
                    .saturating_mul(chunks_per_shard)
                    .saturating_add(1 << 20)
            }
        };
        let keys = Keys {
            store,
            path: path.to_string(),
            encoding: meta.key_encoding.clone(),
            max_len,
            like: join_key(path, meta.document_name()),
        };
        match &meta.sharding {
            None => StoredChunks::Objects(ChunkObjects::new(keys, grid.clone())),
            Some(sharding) => StoredChunks::Shards(Box::new(ShardedChunks::new(
                keys,
                grid.clone(),
                &sharding.shard_shape,
                index,
                fixed_len,
                IndexCache::shared(),
            ))),
        }
    }

    /// Reads the stored bytes of chunk `linear` into `buf` (a reused buffer); returns the
    /// chunk's location for messages, `None` when it is absent. Every byte read from the
    /// store is counted in `stats`.
    pub fn read(&self, linear: u64, buf: &mut Vec<u8>, stats: &Stats) -> FsResult<Option<String>> {
        Ok(self
            .read_versioned(linear, buf, stats)?
            .map(|(location, _)| location))
    }

    /// [`Self::read`], also returning the version of the object read (the chunk's, or its
    /// shard's) when the store tells it.
    pub fn read_versioned(
        &self,
        linear: u64,
        buf: &mut Vec<u8>,
        stats: &Stats,
    ) -> FsResult<Option<(String, Option<ObjectVersion>)>> {
        match self {
            StoredChunks::Objects(objects) => objects.read(linear, buf, stats),
            StoredChunks::Shards(shards) => shards.read(linear, buf, stats),
        }
    }

    /// The version of the object holding chunk `linear` (its shard for a sharded array) as
    /// stored now; `None` when absent or when the store cannot tell cheaply (see
    /// [`Store::object_version`]).
    pub fn version(&self, linear: u64) -> FsResult<Option<ObjectVersion>> {
        match self {
            StoredChunks::Objects(objects) => objects.version(linear),
            StoredChunks::Shards(shards) => shards.version(linear),
        }
    }

    /// Opens the stored bytes of chunk `linear` for reads of parts of them, all of the
    /// version opened; `None` when the chunk is absent.
    pub fn open(&self, linear: u64, stats: &Stats) -> FsResult<Option<OpenStored>> {
        match self {
            StoredChunks::Objects(objects) => objects.open(linear),
            StoredChunks::Shards(shards) => shards.open(linear, stats),
        }
    }

    /// Size and modification time of the object holding chunk `linear` (its shard for a
    /// sharded array); `None` when absent.
    pub fn info(&self, linear: u64) -> FsResult<Option<ObjectInfo>> {
        match self {
            StoredChunks::Objects(objects) => Ok(objects.info(linear)?.map(|(_, info)| info)),
            StoredChunks::Shards(shards) => shards.info(linear),
        }
    }

    /// Tells the store that chunks `linears` will be read soon: a store whose reads are
    /// round trips starts reading their objects (or their ranges in their shards) now.
    /// Shard index bytes read for it are counted in `stats`.
    pub fn prefetch(&self, linears: &[u64], stats: &Arc<Stats>) {
        match self {
            StoredChunks::Objects(objects) => {
                for &linear in linears {
                    objects.prefetch(linear);
                }
            }
            StoredChunks::Shards(shards) => shards.prefetch(linears, stats),
        }
    }

    /// How many bands of chunks (rows along the first axis) one stored object spans: a
    /// shard's inner chunks along the first axis, else 1. Reading them together lets a
    /// store read whole objects.
    pub fn bands_per_object(&self) -> u64 {
        match self {
            StoredChunks::Objects(_) => 1,
            StoredChunks::Shards(shards) => shards.bands_per_shard(),
        }
    }

    /// The store key of the object holding chunk `linear` (the first candidate when none
    /// exists yet).
    pub fn key(&self, linear: u64) -> String {
        match self {
            StoredChunks::Objects(objects) => objects.key(linear),
            StoredChunks::Shards(shards) => shards.key(linear),
        }
    }

    /// The location of chunk `linear`, for log lines: its object, or its shard and its
    /// name as an inner chunk.
    pub fn describe(&self, linear: u64) -> String {
        match self {
            StoredChunks::Objects(objects) => objects.describe(linear),
            StoredChunks::Shards(shards) => shards.describe(linear),
        }
    }

    /// Stores the given chunks, each atomically replacing what was stored (for a sharded
    /// array, each shard holding some of them is rewritten once with all of them). Returns
    /// one result per update, in order; runs on the current rayon pool.
    pub fn write_back(
        &self,
        updates: &[Update],
        durable: bool,
        stats: &Stats,
    ) -> Vec<FsResult<WriteBack>> {
        match self {
            StoredChunks::Objects(objects) => objects.write_back(updates, durable),
            StoredChunks::Shards(shards) => shards.write_back(updates, durable, stats),
        }
    }
}
