//! Live counters served as `.zarrfs/stats`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the cache, the readers and the filesystem.
#[derive(Debug, Default)]
pub struct Stats {
    /// Chunk lookups served from the cache.
    pub cache_hits: AtomicU64,
    /// Chunk lookups that had to load (or wait for) a chunk.
    pub cache_misses: AtomicU64,
    /// Chunks evicted from the cache to respect its budget.
    pub cache_evictions: AtomicU64,
    /// Chunks decoded from the store.
    pub chunks_decoded: AtomicU64,
    /// Chunk reads that found no stored chunk (served as fill value).
    pub chunks_missing: AtomicU64,
    /// Chunks decoded ahead of the reader.
    pub chunks_prefetched: AtomicU64,
    /// Compressed bytes read from the store.
    pub store_bytes_read: AtomicU64,
    /// Bytes returned to readers.
    pub bytes_read: AtomicU64,
    /// Read requests served.
    pub read_requests: AtomicU64,
    /// Failed operations (decode errors, I/O errors).
    pub errors: AtomicU64,
    /// Chunks changed in memory and not yet written back.
    pub dirty_chunks: AtomicU64,
    /// Bytes held by dirty chunks.
    pub dirty_bytes: AtomicU64,
    /// Bytes accepted from writers.
    pub bytes_written: AtomicU64,
    /// Chunks encoded and stored.
    pub chunks_encoded: AtomicU64,
    /// Chunks deleted from the store because they became entirely fill value.
    pub chunks_deleted: AtomicU64,
    /// Encoded bytes written to the store.
    pub bytes_written_back: AtomicU64,
    /// Write-backs that failed (the chunk stays dirty and is retried).
    pub writeback_errors: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders `name value` lines, with the cache's current size appended.
    pub fn render(&self, cache_bytes: u64, cache_entries: u64, cache_budget: u64) -> String {
        let mut out = String::new();
        let rows = [
            ("cache_hits", self.cache_hits.load(Ordering::Relaxed)),
            ("cache_misses", self.cache_misses.load(Ordering::Relaxed)),
            (
                "cache_evictions",
                self.cache_evictions.load(Ordering::Relaxed),
            ),
            ("cache_bytes", cache_bytes),
            ("cache_entries", cache_entries),
            ("cache_budget_bytes", cache_budget),
            (
                "chunks_decoded",
                self.chunks_decoded.load(Ordering::Relaxed),
            ),
            (
                "chunks_missing",
                self.chunks_missing.load(Ordering::Relaxed),
            ),
            (
                "chunks_prefetched",
                self.chunks_prefetched.load(Ordering::Relaxed),
            ),
            (
                "store_bytes_read",
                self.store_bytes_read.load(Ordering::Relaxed),
            ),
            ("bytes_read", self.bytes_read.load(Ordering::Relaxed)),
            ("read_requests", self.read_requests.load(Ordering::Relaxed)),
            ("errors", self.errors.load(Ordering::Relaxed)),
            ("dirty_chunks", self.dirty_chunks.load(Ordering::Relaxed)),
            ("dirty_bytes", self.dirty_bytes.load(Ordering::Relaxed)),
            ("bytes_written", self.bytes_written.load(Ordering::Relaxed)),
            (
                "chunks_encoded",
                self.chunks_encoded.load(Ordering::Relaxed),
            ),
            (
                "chunks_deleted",
                self.chunks_deleted.load(Ordering::Relaxed),
            ),
            (
                "bytes_written_back",
                self.bytes_written_back.load(Ordering::Relaxed),
            ),
            (
                "writeback_errors",
                self.writeback_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, value) in rows {
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
        assert!(text
            .lines()
            .all(|l| l.split(' ').count() == 2
                && l.split(' ').nth(1).unwrap().parse::<u64>().is_ok()));
    }
}
