//! What the commands print: to stdout through [`line`], whose failure when the reader has
//! gone (`zarrfs info | head -1`) ends the command quietly with status 0; messages to
//! stderr through [`error`] and [`warning`], which never fail.

use std::fmt::Display;
use std::io::{self, Write};

/// Prints one line on stdout.
pub fn line(text: impl Display) -> anyhow::Result<()> {
    writeln!(io::stdout().lock(), "{text}")?;
    Ok(())
}

/// Prints `text` as it is on stdout.
pub fn raw(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Whether `err` comes from writing to a pipe nobody reads any more.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints `zarrfs: MESSAGE` on stderr.
pub fn error(message: &str) {
    let _ = writeln!(io::stderr().lock(), "zarrfs: {message}");
}

/// Prints `zarrfs: warning: MESSAGE` on stderr.
pub fn warning(message: &str) {
    error(&format!("warning: {message}"));
}
