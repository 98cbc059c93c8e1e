//! Access patterns of one reader: which bytes of a flat view it will ask for next.
//!
//! Requests are grouped into runs: ranges that continue one another (a little disorder, as
//! the kernel's asynchronous read-ahead delivers, is allowed). Runs that start at a fixed
//! distance from the previous one form a strided pattern: a slab read through mmap is a run
//! per time step, a time series one element per plane, the rows of a tile one short run per
//! row. Once two equal strides are seen, the next runs are predicted (as long as the
//! previous run, and no further than the previous group of runs with one stride went, so
//! that a slab read row by row does not run past its last row on every plane). Inside a run
//! that grows request by request, the bytes just ahead are predicted (up to where the
//! previous run ended, once there is one). Random reads predict nothing.

use std::ops::Range;

/// Most runs predicted ahead of the current one.
const MAX_RUNS_AHEAD: u64 = 4096;

/// Most bytes predicted ahead of a growing run that no earlier run bounds.
const MAX_WINDOW: u64 = 4 << 20;

/// The state of one reader's pattern.
#[derive(Debug, Default, Clone)]
pub struct AccessPattern {
    /// The current run.
    run: Option<Range<u64>>,
    /// Requests in the current run.
    requests_in_run: u64,
    /// Length of the latest request.
    last_len: u64,
    /// Distance from the previous run's start to the current one's.
    stride: Option<i64>,
    /// Runs in the current group of runs a stride apart (the current one included).
    runs_in_group: u64,
    /// Length of the previous run.
    previous_run_len: u64,
    /// Runs in the previous group of at least three runs.
    previous_group_runs: Option<u64>,
    /// The next run to predict, counted from the current one (1: the one after).
    next_run: u64,
    /// Bytes of the current run predicted up to here.
    ahead_to: u64,
}

impl AccessPattern {
    /// Records a request for `[offset, end)`.
    pub fn note(&mut self, offset: u64, end: u64) {
        let len = end.saturating_sub(offset);
        self.last_len = len;
        if let Some(run) = &mut self.run {
            let continues =
                offset <= run.end.saturating_add(len) && end.saturating_add(len) >= run.start;
            if continues {
                run.start = run.start.min(offset);
                run.end = run.end.max(end);
                self.requests_in_run += 1;
                return;
            }
            let stride = offset as i64 - run.start as i64;
            if self.stride == Some(stride) {
                self.runs_in_group += 1;
                self.next_run = self.next_run.saturating_sub(1).max(1);
            } else {
                if self.runs_in_group >= 3 {
                    self.previous_group_runs = Some(self.runs_in_group);
                }
                self.stride = Some(stride);
                self.runs_in_group = 2;
                self.next_run = 1;
            }
            self.previous_run_len = run.end - run.start;
        }
        self.run = Some(offset..end);
        self.requests_in_run = 1;
        self.ahead_to = end;
    }

    /// Length of the current run (0 before any request).
    pub fn run_len(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.end - r.start)
    }

    /// Whether the current run is a scan: at least `threshold` bytes read in several
    /// requests (a single request is a random read), or `from_start` bytes from the start.
    pub fn scanning(&self, threshold: u64, from_start: u64) -> bool {
        self.run.as_ref().is_some_and(|run| {
            let len = run.end - run.start;
            (len >= threshold && self.requests_in_run >= 2) || (run.start == 0 && len >= from_start)
        })
    }

    /// Whether two equal strides have been seen in a row.
    fn strided(&self) -> bool {
        self.runs_in_group >= 3
    }

    /// Where the bytes predicted inside the current run end: as far as the previous run
    /// went, once the pattern says runs repeat; else one request ahead of a run that grows.
    fn window_end(&self, run: &Range<u64>) -> u64 {
        let growing = self.requests_in_run >= 2;
        if self.previous_run_len > 0 {
            if self.strided() || growing {
                (run.start + self.previous_run_len).max(run.end)
            } else {
                run.end
            }
        } else if growing {
            run.end + self.last_len.min(MAX_WINDOW)
        } else {
            run.end
        }
    }

    /// The next predicted range not handed out yet (clipped to `[0, size)`), without
    /// consuming it; see [`Self::consume`].
    pub fn peek(&self, size: u64) -> Option<Range<u64>> {
        let run = self.run.as_ref()?;
        let window = self.ahead_to.max(run.end)..self.window_end(run).min(size);
        if !window.is_empty() {
            return Some(window);
        }
        if !self.strided() || self.next_run > self.runs_ahead() {
            return None;
        }
        let stride = self.stride?;
        let start = run.start as i128 + stride as i128 * self.next_run as i128;
        let len = self.previous_run_len.max(run.end - run.start);
        let start = u64::try_from(start).ok().filter(|&s| s < size)?;
        Some(start..start.saturating_add(len).min(size))
    }

    /// Marks the range [`Self::peek`] returned as handed out.
    pub fn consume(&mut self) {
        let Some(run) = self.run.clone() else { return };
        let window = self.window_end(&run);
        if self.ahead_to.max(run.end) < window {
            self.ahead_to = window;
        } else {
            self.next_run += 1;
        }
    }

    /// How many runs after the current one are predicted at most: the rest of a group as
    /// long as the previous one, when there was one.
    fn runs_ahead(&self) -> u64 {
        match self.previous_group_runs {
            Some(runs) => runs.saturating_sub(self.runs_in_group).min(MAX_RUNS_AHEAD),
            None => MAX_RUNS_AHEAD,
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    /// Every prediction handed out after each request, up to `per_request` a request.
    fn follow(requests: &[(u64, u64)], size: u64, per_request: usize) -> Vec<Vec<Range<u64>>> {
        let mut pattern = AccessPattern::default();
        requests
            .iter()
            .map(|&(offset, len)| {
                pattern.note(offset, offset + len);
                let mut out = Vec::new();
                while out.len() < per_request {
                    let Some(range) = pattern.peek(size) else {
                        break;
                    };
                    out.push(range);
                    pattern.consume();
                }
                out
            })
            .collect()
    }

    #[test]
    fn random_reads_predict_nothing() {
        let requests = [(900, 4), (17, 4), (5000, 4), (300, 4), (8000, 8)];
        assert!(follow(&requests, 10_000, 10).iter().all(Vec::is_empty));
    }

    #[test]
    fn a_time_series_predicts_the_next_planes() {
        // One element per plane of 1000 bytes.
        let requests: Vec<(u64, u64)> = (0..4).map(|t| (t * 1000 + 40, 4)).collect();
        let got = follow(&requests, 10_000, 3);
        assert!(
            got[0].is_empty() && got[1].is_empty(),
            "one stride is no pattern"
        );
        assert_eq!(got[2], [3040..3044, 4040..4044, 5040..5044]);
        assert_eq!(got[3], [6040..6044, 7040..7044, 8040..8044]);
        let rest = follow(&requests, 10_000, 100);
        assert_eq!(rest[2].last(), Some(&(9040..9044)), "never past the end");
        assert!(rest[3].is_empty(), "nothing is handed out twice");
    }

    #[test]
    fn a_slab_row_by_row_stops_where_the_previous_plane_did() {
        // Rows 3..7 (10 bytes of each 100-byte row) of planes of 1000 bytes.
        let mut requests = Vec::new();
        for plane in 0..3u64 {
            for row in 3..7u64 {
                requests.push((plane * 1000 + row * 100 + 20, 10));
            }
        }
        let got = follow(&requests, 100_000, 1000);
        // Plane 0: nothing bounds the rows yet.
        assert_eq!(got[2].first(), Some(&(620..630)));
        // Plane 1 on: rows up to 6 only, the extent of plane 0's group.
        let plane1: Vec<Range<u64>> = got[4..8].concat();
        assert_eq!(plane1, [1620..1630], "row 6 of plane 1, nothing past it");
        let plane2: Vec<Range<u64>> = got[8..].concat();
        assert_eq!(plane2, [2620..2630]);
    }

    #[test]
    fn runs_a_plane_apart_predict_the_next_runs_and_their_rest() {
        // A 300-byte run of each 1000-byte plane, in 100-byte requests (mmap of a slab).
        let mut requests = Vec::new();
        for plane in 0..4u64 {
            for part in 0..3u64 {
                requests.push((plane * 1000 + 200 + part * 100, 100));
            }
        }
        let got = follow(&requests, 1_000_000, 2);
        assert_eq!(
            got[1],
            [400..500],
            "a growing run predicts one request ahead"
        );
        assert_eq!(got[2], [500..600]);
        assert_eq!(got[4], [1400..1500], "the previous run bounds the next one");
        assert!(got[5].is_empty());
        // Third plane: the stride is confirmed, the next planes' runs are predicted.
        assert_eq!(got[6], [2300..2500, 3200..3500]);
        // Inside a run the previous run's length bounds the window.
        assert!(got[9..].concat().iter().all(|r| r.start % 1000 >= 200));
    }

    #[test]
    fn asynchronous_requests_out_of_order_stay_one_run() {
        let mut pattern = AccessPattern::default();
        for (offset, len) in [(0, 100), (200, 100), (100, 100), (300, 100)] {
            pattern.note(offset, offset + len);
        }
        assert_eq!(pattern.run_len(), 400);
        assert!(pattern.scanning(400, 400) && !pattern.scanning(401, 401));
    }

    #[test]
    fn one_read_is_a_scan_only_from_the_start() {
        let mut pattern = AccessPattern::default();
        pattern.note(5000, 9000);
        assert!(!pattern.scanning(1000, 100), "a random read");
        pattern.note(9000, 9100);
        assert!(pattern.scanning(1000, 100), "continued");
        pattern.note(0, 100);
        assert!(pattern.scanning(1000, 100), "from the start");
        pattern.note(5000, 5050);
        pattern.note(0, 99);
        assert!(!pattern.scanning(1000, 100), "too short");
    }

    #[test]
    fn backward_strides_are_followed() {
        let requests: Vec<(u64, u64)> = (0..3).map(|k| (9000 - k * 1000, 8)).collect();
        let got = follow(&requests, 10_000, 10);
        assert_eq!(
            got[2],
            [
                6000..6008,
                5000..5008,
                4000..4008,
                3000..3008,
                2000..2008,
                1000..1008,
                0..8
            ]
        );
    }
}
