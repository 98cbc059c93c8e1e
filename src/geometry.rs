//! Chunk geometry: maps byte ranges of the flat C-order view onto chunks and contiguous
//! runs inside their decoded (C-order, full chunk shape) buffers.

use std::collections::HashMap;

/// One contiguous copy between a decoded chunk buffer and a request buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Byte offset inside the decoded chunk.
    pub chunk_offset: usize,
    /// Byte offset inside the request buffer.
    pub out_offset: usize,
    /// Number of bytes.
    pub len: usize,
}

/// All runs of one request that fall into one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRuns {
    /// Linear (C-order) position of the chunk in the grid.
    pub chunk: u64,
    /// Copies, in increasing request order.
    pub runs: Vec<Run>,
}

/// One contiguous piece of a request, taken from (or put into) one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Index of the chunk in [`ReadPlan::chunks`].
    pub slot: u32,
    /// Byte offset inside the decoded chunk.
    pub chunk_offset: usize,
    /// Number of bytes.
    pub len: usize,
}

/// A request as pieces in request order (each starts where the previous one ended) and
/// the distinct chunks they come from, in first-touch order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Linear positions of the chunks touched.
    pub chunks: Vec<u64>,
    /// The pieces, in request order.
    pub pieces: Vec<Piece>,
}

/// Slots of the chunks met so far: a short list searched linearly (a request usually
/// touches a few chunks, revisited row after row), a hash map past that.
#[derive(Default)]
struct Slots {
    chunks: Vec<u64>,
    index: Option<HashMap<u64, u32>>,
    last: Option<(u64, u32)>,
}

impl Slots {
    const LINEAR_LIMIT: usize = 32;

    fn slot(&mut self, linear: u64) -> u32 {
        if let Some((chunk, slot)) = self.last {
            if chunk == linear {
                return slot;
            }
        }
        let found = match &self.index {
            Some(index) => index.get(&linear).copied(),
            None => self
                .chunks
                .iter()
                .position(|&c| c == linear)
                .map(|i| i as u32),
        };
        let slot = found.unwrap_or_else(|| {
            let slot = self.chunks.len() as u32;
            self.chunks.push(linear);
            if let Some(index) = &mut self.index {
                index.insert(linear, slot);
            } else if self.chunks.len() > Self::LINEAR_LIMIT {
                self.index = Some(
                    self.chunks
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| (c, i as u32))
                        .collect(),
                );
            }
            slot
        });
        self.last = Some((linear, slot));
        slot
    }
}

/// The regular chunk grid of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGrid {
    shape: Vec<u64>,
    chunk_shape: Vec<u64>,
    grid_shape: Vec<u64>,
    itemsize: u64,
    /// Dimensions after `merge_dim` are covered whole by every chunk.
    merge_dim: usize,
    /// Elements in one index step of `merge_dim` (product of the later extents).
    inner: u64,
    /// C-order element strides inside a chunk.
    chunk_strides: Vec<u64>,
}

impl ChunkGrid {
    /// A grid for `shape` cut into `chunk_shape` (same rank, non-zero extents).
    pub fn new(shape: &[u64], chunk_shape: &[u64], itemsize: usize) -> Self {
        assert_eq!(shape.len(), chunk_shape.len(), "rank mismatch");
        let grid_shape = shape
            .iter()
            .zip(chunk_shape)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let ndim = shape.len();
        let mut merge_dim = ndim.saturating_sub(1);
        while merge_dim > 0 && chunk_shape[merge_dim] == shape[merge_dim] {
            merge_dim -= 1;
        }
        let inner = shape.iter().skip(merge_dim + 1).product();
        let mut chunk_strides = vec![1u64; ndim];
        for i in (0..ndim.saturating_sub(1)).rev() {
            chunk_strides[i] = chunk_strides[i + 1] * chunk_shape[i + 1];
        }
        ChunkGrid {
            shape: shape.to_vec(),
            chunk_shape: chunk_shape.to_vec(),
            grid_shape,
            itemsize: itemsize as u64,
            merge_dim,
            inner,
            chunk_strides,
        }
    }

    /// Array shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Chunk shape.
    pub fn chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    /// Number of chunks along each dimension.
    pub fn grid_shape(&self) -> &[u64] {
        &self.grid_shape
    }

    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        self.itemsize as usize
    }

    /// Chunks in a band: a row of chunks along the first axis, which a C-order reader
    /// crosses all at once.
    pub fn chunks_per_band(&self) -> u64 {
        self.grid_shape.iter().skip(1).product()
    }

    /// Bytes of the flat view per index along the first axis.
    pub fn row_bytes(&self) -> u64 {
        self.shape.iter().skip(1).product::<u64>() * self.itemsize
    }

    /// Bytes of a decoded chunk per index along its first axis.
    pub fn chunk_row_bytes(&self) -> u64 {
        self.chunk_shape.iter().skip(1).product::<u64>() * self.itemsize
    }

    /// Size of the flat view in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.shape.iter().product::<u64>() * self.itemsize
    }

    /// Size of one decoded chunk in bytes.
    pub fn chunk_bytes(&self) -> usize {
        (self.chunk_shape.iter().product::<u64>() * self.itemsize) as usize
    }

    /// Number of grid positions.
    pub fn num_chunks(&self) -> u64 {
        self.grid_shape.iter().product()
    }

    /// Bytes of a chunk that lie inside the array (less than a full chunk at the edges).
    pub fn valid_bytes_in_chunk(&self, linear: u64) -> usize {
        let index = self.chunk_index(linear);
        let elements: u64 = index
            .iter()
            .zip(self.shape.iter().zip(&self.chunk_shape))
            .map(|(i, (s, c))| (*s - i * c).min(*c))
            .product();
        (elements * self.itemsize) as usize
    }

    /// The smallest byte range `(offset, len)` of the flat view holding every element of a
    /// chunk that lies inside the array.
    pub fn flat_span(&self, linear: u64) -> (u64, u64) {
        let index = self.chunk_index(linear);
        let flat = |coords: Vec<u64>| -> u64 {
            coords
                .iter()
                .zip(&self.shape)
                .fold(0, |flat, (c, s)| flat * s + c)
        };
        let corner = |past: u64| -> Vec<u64> {
            index
                .iter()
                .zip(self.chunk_shape.iter().zip(&self.shape))
                .map(|(i, (c, s))| ((i + past) * c).min(*s) - past)
                .collect()
        };
        let (first, last) = (flat(corner(0)), flat(corner(1)));
        (first * self.itemsize, (last + 1 - first) * self.itemsize)
    }

    /// Byte ranges `(offset, len)` of a decoded chunk that lie outside the array (the
    /// padding of edge chunks), merged and in increasing order; empty for inner chunks.
    pub fn padding_ranges(&self, linear: u64) -> Vec<(usize, usize)> {
        let ndim = self.shape.len();
        if ndim == 0 {
            return Vec::new();
        }
        let index = self.chunk_index(linear);
        let valid: Vec<u64> = (0..ndim)
            .map(|d| (self.shape[d] - index[d] * self.chunk_shape[d]).min(self.chunk_shape[d]))
            .collect();
        if valid == self.chunk_shape {
            return Vec::new();
        }
        let k = self.itemsize as usize;
        let last = self.chunk_shape[ndim - 1] as usize;
        let row_bytes = last * k;
        let rows: u64 = self.chunk_shape[..ndim - 1].iter().product();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let mut push = |start: usize, len: usize| match ranges.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => ranges.push((start, len)),
        };
        let mut coords = vec![0u64; ndim - 1];
        for row in 0..rows as usize {
            let inside = coords.iter().zip(&valid).all(|(c, v)| c < v);
            if !inside {
                push(row * row_bytes, row_bytes);
            } else if (valid[ndim - 1] as usize) < last {
                let keep = valid[ndim - 1] as usize * k;
                push(row * row_bytes + keep, row_bytes - keep);
            }
            for d in (0..ndim - 1).rev() {
                coords[d] += 1;
                if coords[d] < self.chunk_shape[d] {
                    break;
                }
                coords[d] = 0;
            }
        }
        ranges
    }

    /// Grid indices of a linear chunk position.
    pub fn chunk_index(&self, mut linear: u64) -> Vec<u64> {
        let mut index = vec![0; self.grid_shape.len()];
        for i in (0..self.grid_shape.len()).rev() {
            index[i] = linear % self.grid_shape[i];
            linear /= self.grid_shape[i];
        }
        index
    }

    /// Linear position of grid indices, `None` when outside the grid.
    pub fn chunk_linear(&self, index: &[u64]) -> Option<u64> {
        if index.len() != self.grid_shape.len() {
            return None;
        }
        let mut linear = 0u64;
        for (i, g) in index.iter().zip(&self.grid_shape) {
            if i >= g {
                return None;
            }
            linear = linear * g + i;
        }
        Some(linear)
    }

    /// The file name of a chunk: indices joined by '.', or "0" for a 0-d array.
    pub fn chunk_name(&self, linear: u64) -> String {
        if self.grid_shape.is_empty() {
            return "0".to_string();
        }
        let parts: Vec<String> = self
            .chunk_index(linear)
            .iter()
            .map(u64::to_string)
            .collect();
        parts.join(".")
    }

    /// Parses a chunk file name back to its linear position.
    pub fn parse_chunk_name(&self, name: &str) -> Option<u64> {
        if self.grid_shape.is_empty() {
            return (name == "0").then_some(0);
        }
        let mut index = Vec::with_capacity(self.grid_shape.len());
        for part in name.split('.') {
            if part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
                return None;
            }
            index.push(part.parse::<u64>().ok()?);
        }
        self.chunk_linear(&index)
    }

    /// Splits the flat byte range `[offset, offset + len)` (clipped to the array) into copies
    /// per chunk. Chunks appear in the order the request first touches them.
    pub fn plan(&self, offset: u64, len: u64) -> Vec<ChunkRuns> {
        let plan = self.plan_in_order(offset, len);
        let mut groups: Vec<ChunkRuns> = plan
            .chunks
            .iter()
            .map(|&chunk| ChunkRuns {
                chunk,
                runs: Vec::new(),
            })
            .collect();
        let mut out_offset = 0;
        for piece in plan.pieces {
            groups[piece.slot as usize].runs.push(Run {
                chunk_offset: piece.chunk_offset,
                out_offset,
                len: piece.len,
            });
            out_offset += piece.len;
        }
        groups
    }

    /// Maps a flat byte range onto pieces of decoded chunks in request order (clipped to
    /// the array's size), so that a reply is assembled by appending them one after another.
    pub fn plan_in_order(&self, offset: u64, len: u64) -> ReadPlan {
        let end = offset.saturating_add(len).min(self.total_bytes());
        if offset >= end {
            return ReadPlan::default();
        }
        let k = self.itemsize;
        if self.shape.is_empty() {
            return ReadPlan {
                chunks: vec![0],
                pieces: vec![Piece {
                    slot: 0,
                    chunk_offset: offset as usize,
                    len: (end - offset) as usize,
                }],
            };
        }
        let m = self.merge_dim;
        let mut slots = Slots::default();
        let mut pieces = Vec::new();
        let mut element = offset / k;
        let element_end = end.div_ceil(k);
        let skip_first = offset % k;
        // Position of `element`: index along dims 0..=m split into chunk coordinate and
        // coordinate inside the chunk, plus `r`, the offset inside the merged trailing
        // dims. Computed once, then advanced run by run without divisions.
        let mut r = element % self.inner;
        let mut q = element / self.inner;
        let mut index = vec![0u64; m + 1];
        for i in (0..=m).rev() {
            index[i] = q % self.shape[i];
            q /= self.shape[i];
        }
        let mut coord: Vec<u64> = (0..=m).map(|i| index[i] / self.chunk_shape[i]).collect();
        let mut within: Vec<u64> = (0..=m)
            .map(|i| index[i] - coord[i] * self.chunk_shape[i])
            .collect();
        let mut grid_strides = vec![1u64; m + 1];
        let trailing: u64 = self.grid_shape[m + 1..].iter().product();
        grid_strides[m] = trailing;
        for i in (0..m).rev() {
            grid_strides[i] = grid_strides[i + 1] * self.grid_shape[i + 1];
        }
        while element < element_end {
            let mut linear = 0u64;
            let mut local = r;
            for i in 0..=m {
                linear += coord[i] * grid_strides[i];
                local += within[i] * self.chunk_strides[i];
            }
            let chunk_end_m = ((coord[m] + 1) * self.chunk_shape[m]).min(self.shape[m]);
            let run_elements =
                ((chunk_end_m - index[m]) * self.inner - r).min(element_end - element);
            let mut chunk_offset = local * k;
            let mut run_len = run_elements * k;
            if element == offset / k {
                chunk_offset += skip_first;
                run_len -= skip_first;
            }
            if element + run_elements == element_end && !end.is_multiple_of(k) {
                run_len -= k - end % k;
            }
            pieces.push(Piece {
                slot: slots.slot(linear),
                chunk_offset: chunk_offset as usize,
                len: run_len as usize,
            });
            element += run_elements;
            if element >= element_end {
                break;
            }
            // The run ended at the chunk's edge along dim m: step to the next chunk, or
            // past the array's edge, carrying into the earlier dims like an odometer.
            r = 0;
            index[m] = chunk_end_m;
            if index[m] < self.shape[m] {
                coord[m] += 1;
                within[m] = 0;
                continue;
            }
            let mut i = m;
            loop {
                index[i] = 0;
                coord[i] = 0;
                within[i] = 0;
                if i == 0 {
                    break;
                }
                i -= 1;
                index[i] += 1;
                within[i] += 1;
                if within[i] == self.chunk_shape[i] {
                    within[i] = 0;
                    coord[i] += 1;
                }
                if index[i] < self.shape[i] {
                    break;
                }
            }
        }
        ReadPlan {
            chunks: slots.chunks,
            pieces,
        }
    }

    /// Distinct chunks touched by a flat byte range, in first-touch order.
    pub fn chunks_touching(&self, offset: u64, len: u64) -> Vec<u64> {
        self.plan_in_order(offset, len).chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: element-by-element mapping of flat C-order bytes to chunk bytes.
    fn reference_bytes(
        grid: &ChunkGrid,
        chunks: &HashMap<u64, Vec<u8>>,
        offset: u64,
        len: u64,
    ) -> Vec<u8> {
        let k = grid.itemsize() as u64;
        let end = (offset + len).min(grid.total_bytes());
        let mut out = Vec::new();
        for byte in offset..end {
            let mut e = byte / k;
            let mut idx = vec![0; grid.shape().len()];
            for i in (0..idx.len()).rev() {
                idx[i] = e % grid.shape()[i];
                e /= grid.shape()[i];
            }
            let cidx: Vec<u64> = idx
                .iter()
                .zip(grid.chunk_shape())
                .map(|(i, c)| i / c)
                .collect();
            let mut local = 0;
            for i in 0..idx.len() {
                local = local * grid.chunk_shape()[i] + (idx[i] - cidx[i] * grid.chunk_shape()[i]);
            }
            let linear = grid.chunk_linear(&cidx).unwrap();
            out.push(chunks[&linear][(local * k + byte % k) as usize]);
        }
        out
    }

    fn planned_bytes(
        grid: &ChunkGrid,
        chunks: &HashMap<u64, Vec<u8>>,
        offset: u64,
        len: u64,
    ) -> Vec<u8> {
        let end = (offset + len).min(grid.total_bytes());
        let mut out = vec![0xEEu8; end.saturating_sub(offset) as usize];
        let mut covered = 0;
        for group in grid.plan(offset, len) {
            for run in group.runs {
                let src = &chunks[&group.chunk][run.chunk_offset..run.chunk_offset + run.len];
                out[run.out_offset..run.out_offset + run.len].copy_from_slice(src);
                covered += run.len;
            }
        }
        assert_eq!(
            covered,
            out.len(),
            "runs must cover the request exactly once"
        );
        out
    }

    fn random_chunks(grid: &ChunkGrid, seed: &mut u64) -> HashMap<u64, Vec<u8>> {
        (0..grid.num_chunks())
            .map(|c| {
                let bytes = (0..grid.chunk_bytes())
                    .map(|_| {
                        *seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (*seed >> 33) as u8
                    })
                    .collect();
                (c, bytes)
            })
            .collect()
    }

    #[test]
    fn plans_match_reference_on_many_shapes() {
        let cases: &[(&[u64], &[u64], usize)] = &[
            (&[10], &[3], 4),
            (&[10], &[16], 2),
            (&[7, 5], &[3, 2], 1),
            (&[7, 5], &[3, 5], 8),
            (&[7, 5], &[7, 5], 2),
            (&[4, 6], &[5, 8], 4),
            (&[5, 4, 3], &[2, 4, 3], 2),
            (&[5, 4, 3], &[2, 3, 2], 3),
            (&[3, 2, 4, 5], &[2, 2, 3, 5], 1),
            (&[0, 4], &[2, 2], 4),
            // Over 32 chunks in one request: slots found through the hash map.
            (&[40, 9], &[1, 2], 2),
            (&[6, 5, 7, 3], &[4, 2, 3, 3], 2),
        ];
        let mut seed = 42;
        for (shape, chunks, itemsize) in cases {
            let grid = ChunkGrid::new(shape, chunks, *itemsize);
            let data = random_chunks(&grid, &mut seed);
            let total = grid.total_bytes();
            let mut ranges = vec![
                (0, total),
                (0, total + 10),
                (1, 1),
                (total / 3, total / 2 + 1),
            ];
            for start in (0..total).step_by(3) {
                ranges.push((start, 7));
            }
            for (offset, len) in ranges {
                assert_eq!(
                    planned_bytes(&grid, &data, offset, len),
                    reference_bytes(&grid, &data, offset, len),
                    "shape {shape:?} chunks {chunks:?} k {itemsize} range {offset}+{len}"
                );
            }
        }
    }

    #[test]
    fn zero_dim_array_has_one_chunk() {
        let grid = ChunkGrid::new(&[], &[], 8);
        assert_eq!(grid.total_bytes(), 8);
        assert_eq!(grid.num_chunks(), 1);
        assert_eq!(grid.chunk_name(0), "0");
        assert_eq!(grid.parse_chunk_name("0"), Some(0));
        let plan = grid.plan(2, 100);
        assert_eq!(
            plan[0].runs,
            vec![Run {
                chunk_offset: 2,
                out_offset: 0,
                len: 6
            }]
        );
    }

    #[test]
    fn valid_bytes_shrink_at_edges() {
        let grid = ChunkGrid::new(&[10, 7], &[4, 3], 2);
        assert_eq!(grid.valid_bytes_in_chunk(0), 4 * 3 * 2);
        assert_eq!(
            grid.valid_bytes_in_chunk(grid.chunk_linear(&[2, 2]).unwrap()),
            2 * 2
        );
        assert_eq!(ChunkGrid::new(&[], &[], 8).valid_bytes_in_chunk(0), 8);
    }

    #[test]
    fn a_chunks_flat_span_runs_from_its_first_element_to_its_last() {
        let grid = ChunkGrid::new(&[10, 7], &[4, 3], 2);
        // Chunk (1, 1): elements (4..8, 3..6), flat 31 to 54.
        assert_eq!(
            grid.flat_span(grid.chunk_linear(&[1, 1]).unwrap()),
            (62, 48)
        );
        // Edge chunk (2, 2): elements (8..10, 6..7), flat 62 to 69.
        assert_eq!(
            grid.flat_span(grid.chunk_linear(&[2, 2]).unwrap()),
            (124, 16)
        );
        // Every byte a chunk's runs touch lies in its span.
        for linear in 0..grid.num_chunks() {
            let (start, len) = grid.flat_span(linear);
            for group in grid.plan(0, 140) {
                for run in group.runs.iter().filter(|_| group.chunk == linear) {
                    let at = run.out_offset as u64;
                    assert!(start <= at && at + run.len as u64 <= start + len);
                }
            }
        }
        assert_eq!(ChunkGrid::new(&[], &[], 8).flat_span(0), (0, 8));
    }

    #[test]
    fn padding_ranges_cover_exactly_the_outside() {
        for (shape, chunks, k) in [
            (vec![10u64, 7], vec![4u64, 3], 2usize),
            (vec![5, 4, 3], vec![2, 3, 2], 1),
            (vec![3], vec![5], 4),
            (vec![2, 2], vec![4, 4], 1),
        ] {
            let grid = ChunkGrid::new(&shape, &chunks, k);
            for linear in 0..grid.num_chunks() {
                let index = grid.chunk_index(linear);
                let mut outside = vec![false; grid.chunk_bytes()];
                for (start, len) in grid.padding_ranges(linear) {
                    outside[start..start + len]
                        .iter_mut()
                        .for_each(|b| *b = true);
                }
                let per_chunk: u64 = chunks.iter().product();
                for e in 0..per_chunk {
                    let mut rest = e;
                    let mut inside = true;
                    for d in (0..chunks.len()).rev() {
                        let local = rest % chunks[d];
                        rest /= chunks[d];
                        inside &= index[d] * chunks[d] + local < shape[d];
                    }
                    for b in 0..k {
                        assert_eq!(
                            outside[e as usize * k + b],
                            !inside,
                            "{shape:?} {chunks:?} chunk {linear} element {e}"
                        );
                    }
                }
            }
        }
        assert!(ChunkGrid::new(&[], &[], 4).padding_ranges(0).is_empty());
    }

    #[test]
    fn chunk_names_round_trip() {
        let grid = ChunkGrid::new(&[10, 20, 5], &[3, 7, 5], 4);
        assert_eq!(grid.grid_shape(), &[4, 3, 1]);
        for linear in 0..grid.num_chunks() {
            assert_eq!(
                grid.parse_chunk_name(&grid.chunk_name(linear)),
                Some(linear)
            );
        }
        assert_eq!(grid.chunk_name(5), "1.2.0");
        for bad in ["4.0.0", "1.2", "1.2.0.0", "a.b.c", "01.0.0", "", "1..0"] {
            assert_eq!(grid.parse_chunk_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn runs_are_whole_rows_not_elements() {
        let grid = ChunkGrid::new(&[8, 16], &[4, 8], 4);
        let plan = grid.plan(0, grid.total_bytes());
        assert_eq!(plan.len(), 4);
        assert!(plan.iter().all(|g| g.runs.iter().all(|r| r.len == 32)));
        let full_rows = ChunkGrid::new(&[8, 16], &[4, 16], 4);
        let plan = full_rows.plan(0, full_rows.total_bytes());
        assert_eq!(plan.len(), 2);
        assert!(plan
            .iter()
            .all(|g| g.runs.len() == 1 && g.runs[0].len == 256));
    }
}
