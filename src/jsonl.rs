//! JSON lines of variable-length arrays: `data.jsonl` (one JSON value per element, C order)
//! and one `chunks/<key>.jsonl` per chunk (full chunk shape, C order), built once from the
//! decoded chunks (in parallel) when one of them is first looked at.

use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use crate::geometry::ChunkGrid;
use crate::reader::ChunkReader;
use crate::stats::Stats;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The JSON lines of one array.
#[derive(Debug)]
pub struct JsonLines {
    /// `data.jsonl`.
    pub data: Arc<Vec<u8>>,
    /// `chunks/<key>.jsonl`, by linear chunk position.
    pub chunks: Vec<Arc<Vec<u8>>>,
}

/// The elements of one chunk: decoded JSON texts, or the fill element repeated.
enum ChunkElements {
    Stored(Vec<String>),
    Absent,
}

/// Builds the JSON lines of a variable-length array; fails (EIO, naming the array) when a
/// chunk cannot be decoded or when the text would exceed `limit` bytes.
pub fn build(array: &ZarrArray, reader: &ChunkReader, limit: usize) -> FsResult<JsonLines> {
    let chain = array.vlen_chain().ok_or_else(|| {
        FsError::io(format!(
            "{}: {}",
            array.describe(),
            array
                .codec_problem()
                .unwrap_or("not an array of variable-length elements")
        ))
    })?;
    let too_large = || {
        FsError::io(format!(
            "{}: its JSON lines would exceed {limit} bytes (the cache size; raise --cache-size)",
            array.describe()
        ))
    };
    let elements: u64 = array.meta.shape.iter().product();
    // Every line takes at least two bytes ("" or a digit, and the newline), twice over.
    if elements.saturating_mul(4) > limit as u64 {
        return Err(too_large());
    }
    let stats = reader.stats();
    let fill = chain.fill();
    let total = AtomicUsize::new(0);
    let decoded: Vec<FsResult<ChunkElements>> = reader.pool().install(|| {
        (0..array.grid.num_chunks())
            .into_par_iter()
            .map(|linear| {
                let mut encoded = Vec::new();
                if array.read_stored(linear, stats, &mut encoded)?.is_none() {
                    return Ok(ChunkElements::Absent);
                };
                let texts = chain.decode(&encoded, limit).map_err(|e| {
                    Stats::add(&stats.errors, 1);
                    FsError::io(format!("chunk {}: {e}", array.describe_chunk(linear)))
                })?;
                Stats::add(&stats.chunks_decoded, 1);
                let bytes: usize = texts.iter().map(|t| t.len() + 1).sum();
                if total.fetch_add(bytes, Ordering::Relaxed) + bytes > limit {
                    return Err(too_large());
                }
                Ok(ChunkElements::Stored(texts))
            })
            .collect()
    });
    let chunks: Vec<ChunkElements> = decoded.into_iter().collect::<FsResult<_>>()?;
    fn line<'a>(chunk: &'a ChunkElements, fill: &'a str, i: usize) -> &'a str {
        match chunk {
            ChunkElements::Stored(texts) => &texts[i],
            ChunkElements::Absent => fill,
        }
    }
    let mut chunk_texts = Vec::with_capacity(chunks.len());
    let mut chunk_bytes = 0usize;
    for chunk in &chunks {
        let mut text = Vec::new();
        for i in 0..chain.count() {
            text.extend_from_slice(line(chunk, fill, i).as_bytes());
            text.push(b'\n');
        }
        chunk_bytes = chunk_bytes.saturating_add(text.len());
        if chunk_bytes > limit {
            return Err(too_large());
        }
        chunk_texts.push(Arc::new(text));
    }
    // The array's elements in C order: the flat view's plan with one-byte elements.
    let grid = ChunkGrid::new(&array.meta.shape, &array.meta.chunk_shape, 1);
    let plan = grid.plan_in_order(0, grid.total_bytes());
    let mut data = Vec::new();
    for piece in &plan.pieces {
        let chunk = &chunks[plan.chunks[piece.slot as usize] as usize];
        for i in piece.chunk_offset..piece.chunk_offset + piece.len {
            data.extend_from_slice(line(chunk, fill, i).as_bytes());
            data.push(b'\n');
        }
        if data.len() > limit {
            return Err(too_large());
        }
    }
    Ok(JsonLines {
        data: Arc::new(data),
        chunks: chunk_texts,
    })
}
