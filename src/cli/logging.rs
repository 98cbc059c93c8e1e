//! The daemon's log: where it goes (stderr in the foreground; else `--log`, by default a
//! file in a directory only the daemon's user can write, never opened through a symbolic
//! link) and what goes in it (`--log-level`, `-v`, RUST_LOG).

use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tracing_subscriber::EnvFilter;

/// What is logged when nothing says otherwise: zarrfs's information, fuser's errors.
const DEFAULT_FILTER: &str = "info,fuser=error";

/// What the daemon logs: tracing filter directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(Option<String>);

impl LogFilter {
    /// The filter of `-v` given `count` times: none leaves it to RUST_LOG; once logs
    /// zarrfs's debug events; twice, everything's trace events.
    pub fn from_verbosity(count: u8) -> Self {
        LogFilter(match count {
            0 => None,
            1 => Some("info,fuser=error,zarrfs=debug".into()),
            _ => Some("trace".into()),
        })
    }

    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or filter directives as RUST_LOG
    /// takes them.
    pub fn parse(text: &str) -> Result<Self> {
        EnvFilter::try_new(text).map_err(|e| anyhow!("invalid log level {text:?}: {e}"))?;
        Ok(LogFilter(Some(text.to_string())))
    }

    /// The filter in effect: this one, else RUST_LOG, else the default.
    fn env_filter(&self) -> EnvFilter {
        match &self.0 {
            Some(directives) => EnvFilter::new(directives),
            None => {
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
            }
        }
    }
}

/// Starts logging to stderr (the daemon's stderr is its log file).
pub fn init(filter: &LogFilter) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter.env_filter())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Where the daemon logs by default: a directory only its user can write
/// (`/var/log/zarrfs` for root, else `$XDG_STATE_HOME/zarrfs` or `~/.local/state/zarrfs`),
/// in a file named after the mount point.
pub fn default_log_path(mountpoint: &Path) -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let dir = if euid == 0 {
        PathBuf::from("/var/log/zarrfs")
    } else if let Some(state) = absolute("XDG_STATE_HOME") {
        state.join("zarrfs")
    } else if let Some(home) = absolute("HOME") {
        home.join(".local/state/zarrfs")
    } else {
        bail!("no HOME to keep the log in; pass --log FILE");
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("log directory {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        bail!(
            "log directory {} is not a directory only user {euid} can write; pass --log FILE",
            dir.display()
        );
    }
    let name: String = mountpoint
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Ok(dir.join(format!("{name}.log")))
}

/// Opens the daemon's log for appending, never through a symbolic link; created 0600.
pub fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => anyhow!(
                "cannot open log file {}: it is a symbolic link",
                path.display()
            ),
            _ => anyhow!("cannot open log file {}: {err}", path.display()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_garbage_does_not() {
        for good in ["debug", "warn", "zarrfs=trace,fuser=error"] {
            assert!(LogFilter::parse(good).is_ok(), "{good}");
        }
        assert!(LogFilter::parse("zarrfs=loud").is_err());
        assert_eq!(LogFilter::from_verbosity(0), LogFilter(None));
    }
}
