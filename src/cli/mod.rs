//! Command line: `mount`, `umount`, `info`, `sample`, `completions` and `man`; the forms
//! mount(8) uses (`zarrfs STORE MNT -o OPTS` from mount.fuse3, `mount.zarrfs`) are turned
//! into `mount` by [`helper`].

pub mod docs;
pub mod helper;
pub mod info;
pub mod logging;
pub mod mount;
pub mod mounts;
pub mod options;
pub mod output;
pub mod umount;
pub mod watch;

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// `zarrfs --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ZARRFS_GIT_COMMIT"),
    ")"
);

/// What `zarrfs --help` adds about the forms mount(8) uses.
const MOUNT_FORMS: &str =
    "As mount(8) runs it: `zarrfs STORE MOUNTPOINT -o OPTIONS` (mount.fuse3, for \
fstab entries and `mount -t fuse.zarrfs`), or zarrfs linked as mount.zarrfs, mounts as `zarrfs \
mount` does; there `rw` is what mount(8) passes to every mount, and `-o writable` asks for writes.";

/// Mount Zarr stores as plain files.
#[derive(Debug, Parser)]
#[command(name = "zarrfs", version = VERSION, propagate_version = true, about, long_about = None,
          after_help = MOUNT_FORMS)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a Zarr store (read-only unless --rw); returns once the mount is live unless
    /// --foreground.
    Mount(Box<MountArgs>),
    /// Unmount a zarrfs mount point, writing back what was written first.
    Umount(UmountArgs),
    /// Show a store's groups and arrays as a tree: shape, dtype, chunks, codecs, fill
    /// value, stored and decoded sizes.
    Info(InfoArgs),
    /// Write a small demo store (nested groups; blosc, zstd and gzip arrays) into a new or
    /// empty directory.
    Sample {
        /// Directory to create the store in (absent or empty).
        dir: PathBuf,
        /// Zarr format of the store: 3 (zarr.json) or 2 (.zarray).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
        format: u8,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page of zarrfs or of one subcommand (roff: `zarrfs man | man -l -`),
    /// or write them all into a directory.
    Man {
        /// The subcommand whose page to print (mount, umount, info, …).
        subcommand: Option<String>,
        /// Write zarrfs.1 and a zarrfs-SUBCOMMAND.1 per subcommand into this directory.
        #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
        out_dir: Option<PathBuf>,
    },
}

/// Arguments of `zarrfs mount`.
#[derive(Debug, Args, Default, Clone)]
pub struct MountArgs {
    /// The Zarr store: a directory, s3://bucket/prefix, or https://host/path (read-only).
    pub store: PathBuf,
    /// Where to mount it (an existing directory outside the store).
    pub mountpoint: PathBuf,
    /// Stay in the foreground and log to stderr.
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Accept writes and store them in the store (same as -o rw).
    #[arg(long, conflicts_with = "read_only")]
    pub rw: bool,
    /// Refuse all writes with EROFS (the default).
    #[arg(long)]
    pub read_only: bool,
    /// Clear a dead zarrfs mount (its daemon gone) left on the mount point first.
    #[arg(long)]
    pub force: bool,
    /// Byte budget of the decoded-chunk cache, e.g. 512MiB or 2GiB [default: 1GiB].
    #[arg(long, value_name = "SIZE")]
    pub cache_size: Option<String>,
    /// Largest decoded chunk read, e.g. 8GiB [default: the cache size, at most 4GiB]; reads
    /// of arrays with larger chunks fail with EIO.
    #[arg(long, value_name = "SIZE")]
    pub max_chunk_size: Option<String>,
    /// Decode threads [default: number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Idle time after which written chunks are stored, e.g. 3s, 500ms or 1m [default: 3s].
    #[arg(long, value_name = "DURATION")]
    pub writeback_delay: Option<String>,
    /// Log file of the background daemon [default: <mount point>.log in /var/log/zarrfs for
    /// root, else in $XDG_STATE_HOME/zarrfs or ~/.local/state/zarrfs].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// What to log: error, warn, info, debug, trace, or filter directives as RUST_LOG takes
    /// them [default: RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log debug events (lookups, cache misses, decodes, write-backs); twice for trace.
    #[arg(short = 'v', long = "verbose", visible_alias = "debug", action = ArgAction::Count)]
    pub verbose: u8,
    /// Permission bits of every file, in octal (default: the store's).
    #[arg(long, value_name = "MODE")]
    pub file_mode: Option<String>,
    /// Permission bits of every directory, in octal (default: the store's).
    #[arg(long, value_name = "MODE")]
    pub dir_mode: Option<String>,
    /// Cache every chunk a sequential read decodes. By default a chunk decoded for a
    /// sequential pass is dropped once the reader has passed it (its memory serves the next
    /// decodes) and cached only when a later pass reads it again.
    #[arg(long)]
    pub keep_scans: bool,
    /// S3-compatible endpoint of an s3:// store (e.g. http://127.0.0.1:8333), addressed
    /// path-style.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region of an s3:// bucket [default: AWS_REGION, the profile's, else us-east-1].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Send unsigned requests (public buckets); no credentials are looked for.
    #[arg(long)]
    pub anonymous: bool,
    /// Requests to an object store in flight at most [default: 64].
    #[arg(long, value_name = "N")]
    pub max_requests: Option<usize>,
    /// How long what was read from the store is trusted before it is checked again: cached
    /// chunks (a local store's against their files, at most once per TTL each; an object
    /// store's on the first open after it), the kernel's cached pages (dropped by an open
    /// after it when they may be stale), an object store's answers (sizes, absent keys,
    /// disk-cache entries), e.g. 1s or 500ms [default: 1s].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Longest wait for one request to an object store [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Keep objects read from an object store in this local directory, shared by every
    /// mount naming it and kept across remounts.
    #[arg(long, value_name = "DIR")]
    pub disk_cache: Option<PathBuf>,
    /// Byte bound of --disk-cache, e.g. 20GiB [default: 10GiB].
    #[arg(long, value_name = "SIZE")]
    pub disk_cache_size: Option<String>,
    /// Ignore consolidated metadata (.zmetadata, consolidated_metadata in zarr.json): read
    /// each node's own documents.
    #[arg(long)]
    pub no_consolidated: bool,
    /// Mount options, comma-separated: zarrfs's own (ro, rw, writable, cache_size=,
    /// max_chunk_size=, threads=, writeback_delay=, ttl=, keep_scans, direct_io, kernel_cache, uid=, gid=,
    /// umask=, file_mode=, dir_mode=, log=, log_level=), FUSE's (allow_other,
    /// allow_root, auto_unmount, default_permissions, fsname=, subtype=zarrfs,
    /// max_read=) and those mount(8) passes (exec, noexec, sync, async, dirsync, atime,
    /// noatime, relatime, dev, nodev, suid, nosuid, auto, noauto, user, nouser, users,
    /// _netdev, nofail, defaults, x-*).
    #[arg(short = 'o', value_name = "OPT[,OPT...]", value_delimiter = ',')]
    pub options: Vec<String>,
    /// Set when mount(8) runs zarrfs (the mount.fuse3 form or mount.zarrfs): `rw`, which
    /// mount(8) passes to every mount not marked `ro`, does not make the mount writable.
    #[arg(long, hide = true)]
    pub mount_helper: bool,
    /// mount(8)'s `-f`: check everything, mount nothing.
    #[arg(long, hide = true)]
    pub fake: bool,
}

/// Arguments of `zarrfs umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach the mount point now even if files are open; the daemon serves them until they
    /// are closed.
    #[arg(short = 'z', long)]
    pub lazy: bool,
    /// Drop what cannot be written back (each dropped chunk is named) instead of staying
    /// mounted.
    #[arg(long)]
    pub discard: bool,
}

/// Arguments of `zarrfs info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The store directory.
    pub store: PathBuf,
    /// One JSON document: the tree of groups and arrays, with attributes.
    #[arg(long)]
    pub json: bool,
}

/// Parses the process's arguments, in any of the forms [`helper`] accepts.
pub fn parse() -> Cli {
    match helper::normalize(std::env::args_os().collect()) {
        Ok(args) => Cli::parse_from(args),
        Err(message) => {
            output::error(&message);
            std::process::exit(1);
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Mount(args) => mount::run(*args),
        Command::Umount(args) => umount::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Sample { dir, format } => {
            let format = if format == 2 {
                crate::sample::SampleFormat::V2
            } else {
                crate::sample::SampleFormat::V3
            };
            crate::sample::write_sample_store(&dir, format).and_then(|()| {
                output::line(format_args!("wrote sample store to {}", dir.display()))
            })
        }
        Command::Completions { shell } => docs::completions(shell),
        Command::Man {
            subcommand,
            out_dir,
        } => docs::man(subcommand.as_deref(), out_dir.as_deref()),
    };
    match result {
        Ok(()) => 0,
        // The reader of our output went away (`| head`): what it wanted it has.
        Err(err) if output::is_closed_pipe(&err) => 0,
        Err(err) => {
            output::error(&format!("{err:#}"));
            1
        }
    }
}
