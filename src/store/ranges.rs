//! Merging nearby byte ranges of one object into fewer requests, as zarr-python does for
//! the inner chunks of a shard: ranges at most [`MAX_GAP`] apart share a request, and no
//! request grows past [`MAX_REQUEST`] (a single larger range stays one request).

use std::ops::Range;

/// The largest gap between two ranges fetched by one request.
pub const MAX_GAP: u64 = 1 << 20;
/// The largest request merging several ranges.
pub const MAX_REQUEST: u64 = 16 << 20;

/// The requests that cover `ranges` (in any order, possibly overlapping): sorted, each the
/// union of ranges no more than [`MAX_GAP`] apart, none larger than [`MAX_REQUEST`] unless
/// a single range is.
pub fn merge(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    merge_within(ranges, MAX_GAP)
}

/// The requests that cover `ranges` as [`merge`] makes them, merging only ranges at most
/// `max_gap` apart.
pub fn merge_within(ranges: &[Range<u64>], max_gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
    sorted.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<u64>> = Vec::new();
    for range in sorted {
        match merged.last_mut() {
            Some(last)
                if range.start <= last.end.saturating_add(max_gap)
                    && range.end.max(last.end) - last.start <= MAX_REQUEST =>
            {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// The ranges among `ranges` that lie wholly inside `request` (the parts one merged request
/// serves), in their order.
pub fn inside(request: &Range<u64>, ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    ranges
        .iter()
        .filter(|r| request.start <= r.start && r.end <= request.end)
        .cloned()
        .collect()
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn nearby_ranges_share_a_request_up_to_its_limit() {
        // Two ranges 1 MiB apart merge; 1 MiB + 1 apart do not.
        assert_eq!(merge(&[0..10, 10 + MIB..20 + MIB]), [0..20 + MIB]);
        assert_eq!(
            merge(&[0..10, 11 + MIB..20 + MIB]),
            [0..10, 11 + MIB..20 + MIB]
        );
        // Unsorted and overlapping ranges, empty ones dropped.
        assert_eq!(merge(&[50..60, 0..10, 5..20, 30..30]), [0..60]);
        // 4 MiB ranges back to back: four per 16 MiB request.
        let ranges: Vec<_> = (0..6).map(|i| i * 4 * MIB..(i + 1) * 4 * MIB).collect();
        assert_eq!(merge(&ranges), [0..16 * MIB, 16 * MIB..24 * MIB]);
        // A single range larger than the limit stays whole.
        assert_eq!(merge(&[0..40 * MIB]), [0..40 * MIB]);
        // Without gaps, only ranges that touch share a request.
        assert_eq!(merge_within(&[0..10, 10..20, 21..30], 0), [0..20, 21..30]);
    }
}
