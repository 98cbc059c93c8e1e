//! Command line: `mount`, `umount`, `info` and `sample`.

pub mod info;
pub mod mount;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Mount Zarr stores as plain files.
#[derive(Debug, Parser)]
#[command(name = "zarrfs", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a Zarr store; returns once the mount is live unless --foreground.
    Mount(Box<MountArgs>),
    /// Unmount a zarrfs mount point.
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// Print one line per array: path, shape, dtype, chunks, codecs, stored size.
    Info {
        /// The store directory.
        store: PathBuf,
    },
    /// Write a small demo store (nested groups; zstd, blosc, gzip, transposed and
    /// big-endian arrays; missing chunks).
    Sample {
        /// Directory to create the store in.
        dir: PathBuf,
        /// Zarr format of the store: 3 (zarr.json) or 2 (.zarray).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
        format: u8,
    },
}

/// Arguments of `zarrfs mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The Zarr store: a directory, s3://bucket/prefix, or https://host/path (read-only).
    pub store: PathBuf,
    /// Where to mount it (an existing directory).
    pub mountpoint: PathBuf,
    /// Stay in the foreground and log to stderr.
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Refuse all writes (EROFS).
    #[arg(long)]
    pub read_only: bool,
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
    /// Idle time after which written chunks are stored, e.g. 3s or 500ms [default: 3s].
    #[arg(long, value_name = "DURATION")]
    pub writeback_delay: Option<String>,
    /// Log file of the background daemon [default: <mount point>.log in /var/log/zarrfs for
    /// root, else in $XDG_STATE_HOME/zarrfs or ~/.local/state/zarrfs].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
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
    /// How long an object store's answers are trusted before being asked again (object
    /// sizes, absent keys, disk-cache entries) and how long cached chunks are kept before an
    /// open checks them again, e.g. 1s or 500ms [default: 1s].
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
    /// Mount options: ro, rw, allow_other, allow_root, cache_size=SIZE,
    /// max_chunk_size=SIZE, threads=N,
    /// writeback_delay=D, keep_scans, direct_io (bypass the page cache), kernel_cache
    /// (always use it), uid=N, gid=N, umask=M, file_mode=M, dir_mode=M (owners and modes
    /// shown instead of the store's).
    #[arg(short = 'o', value_name = "OPT[,OPT...]", value_delimiter = ',')]
    pub options: Vec<String>,
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Mount(args) => mount::run(*args),
        Command::Umount { mountpoint } => mount::unmount(&mountpoint),
        Command::Info { store } => info::run(&store),
        Command::Sample { dir, format } => {
            let format = if format == 2 {
                crate::sample::SampleFormat::V2
            } else {
                crate::sample::SampleFormat::V3
            };
            crate::sample::write_sample_store(&dir, format).map(|()| {
                println!("wrote sample store to {}", dir.display());
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("zarrfs: {err:#}");
            1
        }
    }
}
