//! Warnings about problems that requests run into again and again (a malformed node looked
//! up, a damaged chunk read, a write-back that keeps failing): each is logged the first
//! time, then counted, and the count is logged ("repeated 13 times: …") at most once per
//! [`INTERVAL`] and by [`flush`], so that no user of a shared mount can grow the log at will.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::{Duration, Instant};

/// The least time between two lines about the same problem.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// How many distinct problems are remembered; past that, the counts are logged and
/// forgotten.
const REMEMBERED: usize = 4096;

#[derive(Debug)]
struct Seen {
    message: String,
    /// Occurrences since the last line about it.
    repeats: u64,
    logged_at: Instant,
}

static SEEN: Mutex<Option<HashMap<u64, Seen>>> = Mutex::new(None);

/// Logs the repeat count of `seen` if there is one.
fn log_repeats(seen: &mut Seen, now: Instant) {
    if seen.repeats > 0 {
        tracing::warn!("repeated {} times: {}", seen.repeats, seen.message);
        seen.repeats = 0;
        seen.logged_at = now;
    }
}

/// Logs `message` as a warning, or counts it when it was logged less than [`INTERVAL`] ago.
pub fn warn(message: &str) {
    if first(message) {
        tracing::warn!("{message}");
    }
}

/// Logs `context: message` as a warning the first time `message` is met, whatever the
/// context (an idle write-back, a close and an fsync meeting the same failure log it once).
pub fn warn_in(context: &str, message: &str) {
    if first(message) {
        tracing::warn!("{context}: {message}");
    }
}

/// Whether `message` is met for the first time (the caller logs it, at the level it
/// chooses); otherwise it is counted, and the count logged at most once per [`INTERVAL`].
pub fn first(message: &str) -> bool {
    let now = Instant::now();
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(message);
    let mut guard = SEEN.lock();
    let seen = guard.get_or_insert_with(HashMap::new);
    if let Some(entry) = seen.get_mut(&hash) {
        entry.repeats += 1;
        if now.duration_since(entry.logged_at) >= INTERVAL {
            log_repeats(entry, now);
        }
        return false;
    }
    if seen.len() >= REMEMBERED {
        seen.values_mut().for_each(|entry| log_repeats(entry, now));
        seen.clear();
    }
    seen.insert(
        hash,
        Seen {
            message: message.to_string(),
            repeats: 0,
            logged_at: now,
        },
    );
    true
}

/// Logs the counts not logged yet: with `all`, every one (at exit); else those of problems
/// last logged [`INTERVAL`] ago or more (from a clock).
pub fn flush(all: bool) {
    let now = Instant::now();
    let mut guard = SEEN.lock();
    for entry in guard.iter_mut().flat_map(|seen| seen.values_mut()) {
        if all || now.duration_since(entry.logged_at) >= INTERVAL {
            log_repeats(entry, now);
        }
    }
}

/// Logs the counts of [`flush`] every [`INTERVAL`], from a background thread.
pub fn start_clock() {
    let _ = std::thread::Builder::new()
        .name("zarrfs-report".into())
        .spawn(|| loop {
            std::thread::sleep(INTERVAL);
            flush(false);
        });
}

/// How many times `message` occurred since it was last logged (tests).
#[cfg(test)]
fn pending(message: &str) -> Option<u64> {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(message);
    let guard = SEEN.lock();
    guard.as_ref()?.get(&hash).map(|seen| seen.repeats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_then_logged_once() {
        let message = format!("node {:?}: malformed", std::thread::current().id());
        assert_eq!(pending(&message), None);
        for _ in 0..14 {
            warn(&message);
        }
        assert_eq!(pending(&message), Some(13));
        flush(false);
        assert_eq!(pending(&message), Some(13), "not due yet");
        flush(true);
        assert_eq!(pending(&message), Some(0));
    }
}
