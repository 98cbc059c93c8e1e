//! Live counters served as `.zarrfs/stats`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Declares the counters once: the struct fields and the rows of [`Stats::render`], in the
/// order given.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Counters shared by the cache, the readers and the filesystem.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// Every counter with its name, in declaration order.
            fn rows(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Chunk lookups served from the cache.
    cache_hits,
    /// Chunk lookups that had to load (or wait for) a chunk.
    cache_misses,
    /// Chunks evicted from the cache to respect its budget.
    cache_evictions,
    /// Chunks a sequential scan released once it had passed them.
    chunks_released_after_scan,
    /// Chunks decoded from the store.
    chunks_decoded,
    /// Blocks of chunks decoded on their own for sequential readers (blosc blocks).
    blocks_decoded,
    /// Chunk reads that found no stored chunk (served as fill value).
    chunks_missing,
    /// Cached chunks checked against their stored version (at most once per `--ttl`, and
    /// before every read-modify-write).
    chunks_revalidated,
    /// Cached chunks dropped because the store held another version (or none).
    chunks_stale,
    /// Chunks decoded ahead of the reader.
    chunks_prefetched,
    /// Decodes ahead of a sequential reader dropped because it had read past them first.
    prefetches_dropped,
    /// Bytes read from the store for chunks: stored chunks, shard indexes, and shards read
    /// to be rewritten.
    store_bytes_read,
    /// Bytes returned to readers.
    bytes_read,
    /// Read requests served.
    read_requests,
    /// Failed operations (decode errors, I/O errors).
    errors,
    /// Chunks changed in memory and not yet written back.
    dirty_chunks,
    /// Bytes held by dirty chunks.
    dirty_bytes,
    /// Bytes accepted from writers.
    bytes_written,
    /// Chunks encoded and stored.
    chunks_encoded,
    /// Chunks deleted from the store because they became entirely fill value.
    chunks_deleted,
    /// Encoded bytes of the chunks written back (for a sharded array its inner chunks, not
    /// the index and the inner chunks copied into a rewritten shard).
    bytes_written_back,
    /// Write-backs that failed (the chunk stays dirty and is retried).
    writeback_errors,
    /// Dirty chunks dropped unsaved (`zarrfs umount --discard`).
    chunks_discarded,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders `name value` lines: every counter, then the cache's current size.
    pub fn render(&self, cache_bytes: u64, cache_entries: u64, cache_budget: u64) -> String {
        let mut out = String::new();
        let cache = [
            ("cache_bytes", cache_bytes),
            ("cache_entries", cache_entries),
            ("cache_budget_bytes", cache_budget),
        ];
        for (name, value) in self.rows().into_iter().chain(cache) {
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_name_value_lines() {
        let stats = Stats::default();
        Stats::add(&stats.cache_hits, 3);
        let text = stats.render(10, 2, 100);
        assert!(text.lines().any(|l| l == "cache_hits 3"));
        assert!(text.lines().any(|l| l == "cache_bytes 10"));
        assert!(text.lines().any(|l| l == "writeback_errors 0"));
        assert!(text.lines().any(|l| l == "chunks_released_after_scan 0"));
        assert!(text
            .lines()
            .all(|l| l.split(' ').count() == 2
                && l.split(' ').nth(1).unwrap().parse::<u64>().is_ok()));
    }
}
