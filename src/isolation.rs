//! Panic isolation: a panic while serving one request (decoding a chunk, encoding one for
//! write-back, or anywhere else) fails that request alone with EIO and one log line; the
//! daemon, its threads and its locks (never poisoned: see `clippy.toml`) carry on.

use crate::error::{FsError, FsResult};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};

thread_local! {
    /// How many [`isolate`] calls this thread is inside.
    static ISOLATING: Cell<usize> = const { Cell::new(0) };
    /// What the hook saw of the last panic caught by [`isolate`] on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Where and why a panic happened, in one line.
fn describe(info: &PanicHookInfo) -> String {
    let message = payload_text(info.payload());
    match info.location() {
        Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
        None => message,
    }
}

/// The message a panic was raised with.
fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Replaces the default panic message on stderr with one log line per distinct panic
/// (thread, message, location). Panics [`isolate`] catches are left to its caller, whose
/// error carries the same words.
pub fn log_panics() {
    panic::set_hook(Box::new(|info| {
        let text = describe(info);
        if ISOLATING.get() > 0 {
            CAUGHT.set(Some(text));
            return;
        }
        let thread = std::thread::current();
        let message = format!(
            "panic in thread {}: {text}",
            thread.name().unwrap_or("unnamed")
        );
        if crate::report::first(&message) {
            tracing::error!("{message}");
        }
    }));
}

/// Runs `f`; a panic becomes an EIO error naming `what` and saying where it happened.
pub fn isolate<T>(what: &str, f: impl FnOnce() -> T) -> FsResult<T> {
    ISOLATING.set(ISOLATING.get() + 1);
    CAUGHT.set(None);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    ISOLATING.set(ISOLATING.get() - 1);
    result.map_err(|payload| {
        let text = CAUGHT
            .take()
            .unwrap_or_else(|| payload_text(payload.as_ref()));
        FsError::io(format!("{what}: panicked: {text}"))
    })
}

/// Like [`isolate`] for work that fails on its own: both failures become one error.
pub fn isolate_fallible<T>(what: &str, f: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
    isolate(what, f).and_then(|result| result)
}

/// Test hook, compiled into debug builds only: with `ZARRFS_TEST_PANIC_ON` set to
/// comma-separated `STAGE:KEY` pairs (`decode:a/0.0,encode:b/1`), `stage` of a chunk whose
/// store location ends with `KEY` panics, so that tests can check what a panic costs.
#[cfg(debug_assertions)]
pub fn inject(stage: &str, location: &str) {
    static TARGETS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let targets = TARGETS.get_or_init(|| {
        std::env::var("ZARRFS_TEST_PANIC_ON")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(stage, key)| (stage.to_string(), key.to_string()))
            .collect()
    });
    if targets
        .iter()
        .any(|(s, key)| s == stage && location.ends_with(key.as_str()))
    {
        panic!("injected panic: {stage} of {location}");
    }
}

/// Test hook of debug builds; nothing in release builds.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn inject(_stage: &str, _location: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_thread_goes_on() {
        let err = isolate("decoding chunk a/0", || -> u8 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(err.errno, libc::EIO);
        assert!(
            err.message
                .starts_with("decoding chunk a/0: panicked: boom 7"),
            "{}",
            err.message
        );
        assert_eq!(isolate("fine", || 3).unwrap(), 3);
        let failed = isolate_fallible("x", || -> FsResult<()> { Err(FsError::invalid("no")) });
        assert_eq!(failed.unwrap_err().errno, libc::EINVAL);
        assert_eq!(ISOLATING.get(), 0);
    }
}
