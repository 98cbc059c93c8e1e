//! Filesystem-level error type: every failure carries the errno it maps to.

use std::fmt;
use std::io;

/// An error surfaced to a FUSE caller: a message for the log and the errno for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    /// errno value returned to the kernel (e.g. `libc::EIO`).
    pub errno: i32,
    /// Human-readable reason, naming the file or chunk involved.
    pub message: String,
}

impl FsError {
    /// Builds an error with an explicit errno.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        FsError {
            errno,
            message: message.into(),
        }
    }

    /// EIO: data could not be read or decoded.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(libc::EIO, message)
    }

    /// ENOENT: no such entry.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(libc::ENOENT, message)
    }

    /// EINVAL: a request the file cannot honour (e.g. a size change).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, message)
    }

    /// EROFS: writing to a read-only mount.
    pub fn read_only(message: impl Into<String>) -> Self {
        Self::new(libc::EROFS, message)
    }

    /// EPERM: an operation the tree never allows (create, rename, unlink).
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(libc::EPERM, message)
    }

    /// Converts an I/O error on `what`, keeping ENOSPC and similar errnos.
    pub fn from_io(what: &str, err: &io::Error) -> Self {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        Self::new(errno, format!("{what}: {err}"))
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)
    }
}

impl std::error::Error for FsError {}

/// Result alias for filesystem operations.
pub type FsResult<T> = Result<T, FsError>;
