//! Byte ranges of objects read ahead of their readers (the inner chunks of a shard): each
//! range belongs to one version (ETag) of its object, is shared by every reader of a part
//! of it, and is let go once the parts it was read for have been taken, or after
//! [`KEPT`] if they never are.

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// The bytes of a range read ahead (or why they could not be read), for every reader.
pub type SharedRead = Shared<BoxFuture<'static, Result<Bytes, String>>>;

/// Reads ahead are kept for their readers this long at most.
pub const KEPT: Duration = Duration::from_secs(30);

/// One range of one version of an object, being read or read.
struct RangeAhead {
    etag: Option<String>,
    range: Range<u64>,
    /// The parts it was read for that no reader has taken yet.
    unread: Vec<Range<u64>>,
    started: Instant,
    bytes: SharedRead,
}

impl RangeAhead {
    fn holds(&self, etag: Option<&str>, part: &Range<u64>) -> bool {
        self.etag.as_deref() == etag && self.range.start <= part.start && part.end <= self.range.end
    }
}

/// The ranges read ahead, by key, and the keys whose parts are being planned (each with
/// what tells waiters that its plan ended).
#[derive(Default)]
pub struct RangesAhead {
    by_key: Mutex<HashMap<String, Vec<RangeAhead>>>,
    planning: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
}

impl std::fmt::Debug for RangesAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangesAhead")
            .field("keys", &self.by_key.lock().len())
            .finish_non_exhaustive()
    }
}

/// Marks a key as being planned until dropped, when its waiters are woken.
pub struct Planning {
    ahead: std::sync::Arc<RangesAhead>,
    key: String,
    _ended: tokio::sync::watch::Sender<()>,
}

impl Drop for Planning {
    fn drop(&mut self) {
        self.ahead.planning.lock().remove(&self.key);
    }
}

impl RangesAhead {
    /// Marks `key` as being planned; `None` when it already is (one plan at a time per key).
    pub fn plan(self: &std::sync::Arc<Self>, key: &str) -> Option<Planning> {
        let mut planning = self.planning.lock();
        if planning.contains_key(key) {
            return None;
        }
        let (ended, waiter) = tokio::sync::watch::channel(());
        planning.insert(key.to_string(), waiter);
        Some(Planning {
            ahead: self.clone(),
            key: key.to_string(),
            _ended: ended,
        })
    }

    /// Waits for the plan of `key` under way, if any, to end (a reader then finds the
    /// object's head known and its parts being read, instead of asking for them again).
    pub async fn plan_ended(&self, key: &str) {
        let waiter = self.planning.lock().get(key).cloned();
        if let Some(mut waiter) = waiter {
            // Fails once the plan's sender is gone, which is all this waits for.
            while waiter.changed().await.is_ok() {}
        }
    }

    /// How many ranges are held (those kept past [`KEPT`] aside).
    pub fn len(&self) -> usize {
        self.held().count()
    }

    /// How many bytes the ranges held span (those kept past [`KEPT`] aside).
    pub fn held_bytes(&self) -> u64 {
        self.held().map(|(start, end)| end - start).sum()
    }

    /// The bounds of the ranges held, not kept past [`KEPT`].
    fn held(&self) -> impl Iterator<Item = (u64, u64)> {
        let by_key = self.by_key.lock();
        let held: Vec<(u64, u64)> = by_key
            .values()
            .flatten()
            .filter(|r| r.started.elapsed() < KEPT)
            .map(|r| (r.range.start, r.range.end))
            .collect();
        held.into_iter()
    }

    /// The parts among `parts` of version `etag` of `key` that no range held covers.
    pub fn not_held(
        &self,
        key: &str,
        etag: Option<&str>,
        parts: Vec<Range<u64>>,
    ) -> Vec<Range<u64>> {
        let by_key = self.by_key.lock();
        let held = by_key.get(key);
        parts
            .into_iter()
            .filter(|part| !part.is_empty())
            .filter(|part| !held.is_some_and(|ranges| ranges.iter().any(|r| r.holds(etag, part))))
            .collect()
    }

    /// The read of a range covering `part` of version `etag` of `key`: one held, or
    /// `read(request, unread)` started now for `request` (which covers `part`) and held for
    /// the parts `unread`.
    pub fn get_or_start(
        &self,
        key: &str,
        etag: Option<&str>,
        part: &Range<u64>,
        request: Range<u64>,
        unread: Vec<Range<u64>>,
        read: impl FnOnce(Range<u64>, Vec<Range<u64>>) -> SharedRead,
    ) -> (u64, SharedRead) {
        let mut by_key = self.by_key.lock();
        for ranges in by_key.values_mut() {
            ranges.retain(|r| r.started.elapsed() < KEPT);
        }
        by_key.retain(|_, ranges| !ranges.is_empty());
        let ranges = by_key.entry(key.to_string()).or_default();
        if let Some(held) = ranges.iter().find(|r| r.holds(etag, part)) {
            return (held.range.start, held.bytes.clone());
        }
        let bytes = read(request.clone(), unread.clone());
        ranges.push(RangeAhead {
            etag: etag.map(str::to_string),
            range: request.clone(),
            unread,
            started: Instant::now(),
            bytes: bytes.clone(),
        });
        (request.start, bytes)
    }

    /// For each of `wanted` (ranges of version `etag` of `key`), the read held that covers
    /// it and where that read starts; the parts taken are no longer waited for.
    pub fn take(
        &self,
        key: &str,
        etag: Option<&str>,
        wanted: &[Range<u64>],
    ) -> Vec<Option<(u64, SharedRead)>> {
        let mut by_key = self.by_key.lock();
        let Some(ranges) = by_key.get_mut(key) else {
            return vec![None; wanted.len()];
        };
        let found = wanted
            .iter()
            .map(|part| {
                if part.is_empty() {
                    return None;
                }
                let held = ranges.iter_mut().find(|r| r.holds(etag, part))?;
                held.unread
                    .retain(|p| !(part.start <= p.start && p.end <= part.end));
                Some((held.range.start, held.bytes.clone()))
            })
            .collect();
        ranges.retain(|r| !r.unread.is_empty());
        if ranges.is_empty() {
            by_key.remove(key);
        }
        found
    }

    /// Forgets every range of `key` (it was replaced or deleted here).
    pub fn forget(&self, key: &str) {
        self.by_key.lock().remove(key);
    }
}

/// `part` of the bytes `read` that start at offset `start`, if they hold it.
pub fn slice(read: &Bytes, start: u64, part: &Range<u64>) -> Option<Bytes> {
    let from = usize::try_from(part.start.checked_sub(start)?).ok()?;
    let to = from.checked_add(usize::try_from(part.end - part.start).ok()?)?;
    (to <= read.len()).then(|| read.slice(from..to))
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn ready(bytes: &'static [u8]) -> SharedRead {
        async move { Ok(Bytes::from_static(bytes)) }
            .boxed()
            .shared()
    }

    #[test]
    fn a_range_serves_each_part_and_goes_once_all_are_taken() {
        let ahead = RangesAhead::default();
        let (start, _) = ahead.get_or_start(
            "k",
            Some("e1"),
            &(10..12),
            10..20,
            vec![10..12, 15..20],
            |_, _| ready(b"0123456789"),
        );
        assert_eq!(start, 10);
        // Another part inside the range finds it; nothing new is started.
        let (start, _) =
            ahead.get_or_start("k", Some("e1"), &(15..20), 15..20, vec![15..20], |_, _| {
                panic!("already held")
            });
        assert_eq!(start, 10);
        assert_eq!(
            ahead.not_held("k", Some("e1"), vec![12..14, 19..21]),
            [19..21]
        );
        // Another version of the object is another range.
        assert_eq!(ahead.not_held("k", Some("e2"), vec![12..14]), [12..14]);
        assert!(ahead.take("k", Some("e2"), &[12..14])[0].is_none());
        let taken = ahead.take("k", Some("e1"), &[10..12]);
        let (start, read) = taken[0].clone().unwrap();
        let bytes = futures::executor::block_on(read).unwrap();
        assert_eq!(slice(&bytes, start, &(10..12)).unwrap(), &b"01"[..]);
        assert_eq!(slice(&bytes, start, &(18..21)), None, "past the bytes read");
        assert_eq!(ahead.len(), 1, "15..20 not taken yet");
        ahead.take("k", Some("e1"), &[15..20]);
        assert_eq!(ahead.len(), 0);
        assert!(ahead.take("k", Some("e1"), &[15..20])[0].is_none());
    }

    #[test]
    fn one_plan_per_key_at_a_time_and_readers_wait_for_it() {
        let ahead = std::sync::Arc::new(RangesAhead::default());
        let first = ahead.plan("k").unwrap();
        assert!(ahead.plan("k").is_none());
        assert!(ahead.plan("other").is_some());
        let waiting = {
            let ahead = ahead.clone();
            std::thread::spawn(move || futures::executor::block_on(ahead.plan_ended("k")))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !waiting.is_finished(),
            "the reader waits while the plan runs"
        );
        drop(first);
        waiting.join().unwrap();
        futures::executor::block_on(ahead.plan_ended("k"));
        assert!(ahead.plan("k").is_some());
    }
}
