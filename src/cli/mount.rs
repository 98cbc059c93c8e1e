//! `zarrfs mount` and `zarrfs umount`: option handling, checks, daemonising, the FUSE
//! session and clean shutdown on SIGINT/SIGTERM.

use super::MountArgs;
use crate::fuse::ZarrFs;
use crate::metadata;
use crate::reader::ChunkReader;
use crate::store::remote::{self, Location};
use crate::store::{DirectoryStore, RemoteOptions, Store};
use crate::tree::perms::Ownership;
use crate::tree::{CacheMode, Tree, TreeOptions};
use crate::units::{parse_duration, parse_size};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_CACHE_SIZE: u64 = 1 << 30;
/// The largest chunk read by default, whatever the cache size.
const MAX_DEFAULT_CHUNK_SIZE: u64 = 4 << 30;
const DEFAULT_DISK_CACHE_SIZE: u64 = 10 << 30;

/// Where the store is.
#[derive(Debug, Clone)]
pub enum StoreSpec {
    /// A local directory (absolute).
    Directory(PathBuf),
    /// Object storage.
    Remote(Location),
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Directory(path) => write!(f, "{}", path.display()),
            StoreSpec::Remote(location) => write!(f, "{}", location.url),
        }
    }
}

/// Everything a mount needs, after parsing and checking the command line.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The store.
    pub store: StoreSpec,
    /// How an object store is reached (unused for directories).
    pub remote: RemoteOptions,
    /// Never use consolidated metadata.
    pub ignore_consolidated: bool,
    /// Mount point (absolute).
    pub mountpoint: PathBuf,
    /// Refuse writes.
    pub read_only: bool,
    /// Decoded-chunk cache budget in bytes.
    pub cache_size: u64,
    /// Largest decoded chunk read, in bytes.
    pub max_chunk_size: u64,
    /// Decode threads.
    pub threads: usize,
    /// Let other users access the mount.
    pub allow_other: bool,
    /// Let root access the mount.
    pub allow_root: bool,
    /// Idle time after which written chunks are stored.
    pub writeback_delay: Duration,
    /// Page-cache policy of the data views.
    pub cache_mode: CacheMode,
    /// Cache the chunks of sequential passes at once instead of from their second pass.
    pub keep_scans: bool,
    /// Owners and modes shown instead of the store's.
    pub ownership: Ownership,
}

/// Parses permission bits written in octal (`0640`, `640`, `0o640`).
fn parse_mode(name: &str, value: &str) -> Result<u32> {
    u32::from_str_radix(value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|&mode| mode <= 0o777)
        .ok_or_else(|| anyhow!("invalid {name}={value} (octal permission bits, e.g. 0640)"))
}

/// Parses a numeric user or group id.
fn parse_id(name: &str, value: &str) -> Result<u32> {
    value
        .parse()
        .map_err(|_| anyhow!("invalid {name}={value} (a numeric id)"))
}

/// Turns `mount` arguments (flags and `-o` options) into a [`MountConfig`].
pub fn parse_config(args: &MountArgs) -> Result<MountConfig> {
    let mut read_only = args.read_only;
    let mut keep_scans = args.keep_scans;
    let mut cache_size = args
        .cache_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut max_chunk_size = args
        .max_chunk_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut threads = args.threads;
    let mut writeback_delay = args
        .writeback_delay
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let (mut allow_other, mut allow_root) = (false, false);
    let mut cache_mode = CacheMode::Auto;
    let mut ownership = Ownership {
        file_mode: args
            .file_mode
            .as_deref()
            .map(|m| parse_mode("--file-mode", m))
            .transpose()?,
        dir_mode: args
            .dir_mode
            .as_deref()
            .map(|m| parse_mode("--dir-mode", m))
            .transpose()?,
        ..Ownership::default()
    };
    for option in args
        .options
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
    {
        match option.split_once('=') {
            Some(("cache_size", value)) => {
                cache_size = Some(parse_size(value).map_err(|e| anyhow!(e))?)
            }
            Some(("max_chunk_size", value)) => {
                max_chunk_size = Some(parse_size(value).map_err(|e| anyhow!(e))?)
            }
            Some(("writeback_delay", value)) => {
                writeback_delay = Some(parse_duration(value).map_err(|e| anyhow!(e))?)
            }
            Some(("threads", value)) => {
                threads = Some(
                    value
                        .parse()
                        .map_err(|_| anyhow!("invalid threads={value}"))?,
                )
            }
            Some(("uid", value)) => ownership.uid = Some(parse_id("uid", value)?),
            Some(("gid", value)) => ownership.gid = Some(parse_id("gid", value)?),
            Some(("umask", value)) => ownership.umask = Some(parse_mode("umask", value)?),
            Some(("file_mode", value)) => {
                ownership.file_mode = Some(parse_mode("file_mode", value)?)
            }
            Some(("dir_mode", value)) => ownership.dir_mode = Some(parse_mode("dir_mode", value)?),
            Some(_) if option.starts_with("x-") => {}
            Some(_) => bail!("unknown mount option {option:?}"),
            None => match option {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "allow_other" => allow_other = true,
                "allow_root" => allow_root = true,
                "keep_scans" => keep_scans = true,
                "direct_io" => cache_mode = CacheMode::DirectIo,
                "kernel_cache" => cache_mode = CacheMode::KernelCache,
                // Permissions are always checked by the kernel (default_permissions).
                "defaults"
                | "noauto"
                | "auto"
                | "nofail"
                | "user"
                | "users"
                | "_netdev"
                | "nodev"
                | "nosuid"
                | "noexec"
                | "noatime"
                | "default_permissions" => {}
                _ => bail!("unknown mount option {option:?}"),
            },
        }
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let store = parse_store(args)?;
    let remote = RemoteOptions {
        max_requests: args.max_requests.unwrap_or(64),
        ttl: parse_option_duration(&args.ttl, Duration::from_secs(1))?,
        request_timeout: parse_option_duration(&args.request_timeout, Duration::from_secs(30))?,
        read_only: false,
        listable: true,
    };
    if remote.max_requests == 0 {
        bail!("--max-requests must be at least 1");
    }
    // An https:// store takes no writes.
    let read_only = read_only
        || matches!(&store, StoreSpec::Remote(location) if !location.url.starts_with("s3://"));
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| anyhow!("mount point {}: {e}", args.mountpoint.display()))?;
    Ok(MountConfig {
        store,
        remote,
        ignore_consolidated: args.no_consolidated,
        mountpoint,
        read_only,
        cache_size: cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
        max_chunk_size: max_chunk_size.unwrap_or_else(|| {
            cache_size
                .unwrap_or(DEFAULT_CACHE_SIZE)
                .min(MAX_DEFAULT_CHUNK_SIZE)
        }),
        threads,
        allow_other,
        allow_root,
        writeback_delay: writeback_delay.unwrap_or(Duration::from_secs(3)),
        cache_mode,
        keep_scans,
        ownership,
    })
}

/// A duration option, or its default.
fn parse_option_duration(value: &Option<String>, default: Duration) -> Result<Duration> {
    value
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow!(e))
        .map(|d| d.unwrap_or(default))
}

/// The store named on the command line: a URL of object storage, or a directory.
fn parse_store(args: &MountArgs) -> Result<StoreSpec> {
    let text = args.store.to_string_lossy();
    if !remote::is_url(&text) {
        if args.endpoint.is_some() || args.anonymous || args.disk_cache.is_some() {
            bail!("--endpoint, --anonymous and --disk-cache apply to s3:// and https:// stores");
        }
        return std::fs::canonicalize(&args.store)
            .map(StoreSpec::Directory)
            .map_err(|e| anyhow!("store {}: {e}", args.store.display()));
    }
    let disk_cache = match &args.disk_cache {
        Some(dir) => {
            let size = args
                .disk_cache_size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| anyhow!(e))?
                .unwrap_or(DEFAULT_DISK_CACHE_SIZE);
            Some((dir.clone(), size))
        }
        None => None,
    };
    Ok(StoreSpec::Remote(Location {
        url: text.into_owned(),
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        anonymous: args.anonymous,
        disk_cache,
    }))
}

/// Decodes the octal escapes (`\040`) of /proc/self/mountinfo paths.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..(i + 4).min(field.len())], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is currently a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mp| Path::new(&unescape_mount_path(mp)) == path)
}

/// Checks the mount point, and a directory store, before mounting, with one clear message
/// per problem; a directory store is opened, checked and locked (see [`lock_store`]) and
/// returned, to serve. An object store is opened by [`open_store`] in the daemon (its
/// runtime's threads would not survive the fork).
pub fn check(config: &MountConfig) -> Result<Option<DirectoryStore>> {
    if !config.mountpoint.is_dir() {
        bail!(
            "mount point {} is not a directory",
            config.mountpoint.display()
        );
    }
    if is_mount_point(&config.mountpoint) {
        bail!(
            "mount point {} is already mounted",
            config.mountpoint.display()
        );
    }
    let StoreSpec::Directory(root) = &config.store else {
        return Ok(None);
    };
    let store = DirectoryStore::open(root).map_err(|e| anyhow!("store {}: {e}", root.display()))?;
    check_root(config, Arc::new(store.clone()))?;
    // The kernel deadlocks when the daemon reaches its store through its own mount.
    match store.contains_dir(&config.mountpoint) {
        Ok(false) => {}
        Ok(true) => bail!(
            "mount point {} is inside the store {} it would serve; choose one outside the store",
            config.mountpoint.display(),
            root.display()
        ),
        Err(err) => bail!("mount point {}: {err}", config.mountpoint.display()),
    }
    lock_store(&store, config.read_only)?;
    Ok(Some(store))
}

/// Fails unless the store's root is a Zarr node.
fn check_root(config: &MountConfig, store: Arc<dyn Store>) -> Result<()> {
    let consolidated =
        metadata::Consolidated::for_store(store.as_ref(), !config.ignore_consolidated);
    match metadata::Catalog::with_consolidated(store, consolidated).root() {
        Ok(_) => Ok(()),
        Err(err) => bail!("{err}"),
    }
}

/// The store to serve: the directory store [`check`] opened, or the object store, opened
/// now.
pub fn open_store(config: &MountConfig, checked: Option<DirectoryStore>) -> Result<Arc<dyn Store>> {
    if let Some(store) = checked {
        return Ok(Arc::new(store));
    }
    let StoreSpec::Remote(location) = &config.store else {
        bail!("store {} was not checked", config.store);
    };
    let options = RemoteOptions {
        read_only: config.read_only,
        ..config.remote.clone()
    };
    // Its root is checked when the tree is built (one read of the metadata).
    Ok(Arc::new(
        remote::open(location, options).map_err(|e| anyhow!("store {}: {e}", location.url))?,
    ))
}

/// Takes the store's lock for the life of the mount: a writable mount needs the store to
/// itself, read-only mounts share it with each other (zarrfs mounts only; other programs
/// do not look at the lock). A holder is given a second to go (a daemon still exiting
/// after its unmount).
fn lock_store(store: &DirectoryStore, read_only: bool) -> Result<()> {
    let display = store.root().display();
    let mut locked = store.lock(!read_only);
    for _ in 0..20 {
        if !matches!(locked, Ok(false)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        locked = store.lock(!read_only);
    }
    match locked {
        Ok(true) => Ok(()),
        Ok(false) if read_only => bail!(
            "store {display} is mounted writable by another zarrfs; a writable mount has its \
             store to itself"
        ),
        Ok(false) => bail!(
            "store {display} is already mounted by another zarrfs; a writable mount needs its \
             store to itself (read-only mounts can share it)"
        ),
        Err(err) => bail!("cannot lock store {display}: {err}"),
    }
}

/// Where the daemon logs by default: a directory only its user can write
/// (`/var/log/zarrfs` for root, else `$XDG_STATE_HOME/zarrfs` or `~/.local/state/zarrfs`),
/// in a file named after the mount point.
fn default_log_path(mountpoint: &Path) -> Result<PathBuf> {
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
fn open_log(path: &Path) -> Result<File> {
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

/// Logs to stderr; by default info and above, but object_store's line per retried request
/// only as warnings (a request that finally fails is logged once, with its key, by zarrfs).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,fuser=error,object_store=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// `zarrfs mount`: checks, then serves in the foreground or in a daemon that reports back
/// once the mount is live.
pub fn run(args: MountArgs) -> Result<()> {
    let config = parse_config(&args)?;
    let checked = check(&config)?;
    if args.foreground {
        init_logging();
        return serve(&config, open_store(&config, checked)?, &mut None);
    }
    let log_path = match &args.log {
        Some(path) => path.clone(),
        None => default_log_path(&config.mountpoint)?,
    };
    let log = open_log(&log_path)?;
    eprintln!("zarrfs: logging to {}", log_path.display());
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we own.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other threads exist yet in this process, so the child may continue freely.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            // SAFETY: plain syscalls on descriptors this process owns.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::close(null);
                }
                libc::dup2(log.as_raw_fd(), 1);
                libc::dup2(log.as_raw_fd(), 2);
            }
            drop(log);
            init_logging();
            let mut ready = Some(File::from(write_end));
            let served =
                open_store(&config, checked).and_then(|store| serve(&config, store, &mut ready));
            let code = match served {
                Ok(()) => 0,
                Err(err) => {
                    tracing::error!("{err:#}");
                    if let Some(mut ready) = ready {
                        let _ = writeln!(ready, "{err:#}");
                    }
                    1
                }
            };
            std::process::exit(code);
        }
        _child => {
            drop(write_end);
            drop(log);
            let mut answer = String::new();
            let _ = File::from(read_end).read_to_string(&mut answer);
            let answer = answer.trim();
            if answer == "OK" || answer.starts_with("OK\n") {
                Ok(())
            } else if answer.is_empty() {
                bail!("mount failed; see {}", log_path.display())
            } else {
                bail!("{}", answer.trim_start_matches("OK").trim())
            }
        }
    }
}

/// Allocations from this size up get their own mapping (glibc's `M_MMAP_THRESHOLD`).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: i32 = 4 << 20;

/// Lets the daemon hold as many open files as its hard limit allows: each sequential reader
/// of a flat view keeps the chunks of the band it reads by blocks open (up to 512), so that
/// each chunk is read as one version.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed; no other effects.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!(
                    "could not raise the open file limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Mounts `store` (as [`check`] opened and locked it) and serves until unmounted or
/// signalled; writes "OK" to `ready` and closes it once the mount is live (an error before
/// that is left for the caller to report).
pub fn serve(config: &MountConfig, store: Arc<dyn Store>, ready: &mut Option<File>) -> Result<()> {
    crate::isolation::log_panics();
    // Buffers of large chunks are mapped and unmapped rather than kept in malloc's heaps, so
    // the daemon's memory follows the cache budget (evicted buffers are recycled instead).
    // Smaller blocks stay in the heaps: among them the temporaries c-blosc allocates on every
    // decode (three blocks, at most 3 MiB with its own block sizes), which as fresh mappings
    // cost page faults and a TLB shootdown per chunk. The heaps give memory back only when
    // twice that lies free at their top, so those temporaries are not returned and faulted
    // in again block after block.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any worker thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD);
    }
    raise_open_file_limit();
    let reader = Arc::new(
        ChunkReader::with_budget(config.cache_size as usize, config.threads)?
            .for_store(store.profile()),
    );
    reader.cache().set_scan_resistance(!config.keep_scans);
    let tree = Arc::new(
        Tree::new(
            store.clone(),
            reader,
            TreeOptions {
                read_only: config.read_only,
                cache_mode: config.cache_mode,
                ownership: config.ownership,
                max_chunk_bytes: Some(config.max_chunk_size),
                ignore_consolidated: config.ignore_consolidated,
            },
        )
        .map_err(|e| anyhow!(e.message))?,
    );
    if !config.read_only {
        let store = store.clone();
        std::thread::Builder::new()
            .name("zarrfs-cleanup".into())
            .spawn(move || {
                if let Err(err) = store.remove_stale_temporaries() {
                    tracing::warn!("cleaning leftover temporaries: {err}");
                }
            })?;
        tree.start_idle_writeback(config.writeback_delay);
    }
    let fs = ZarrFs::new(tree.clone());
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = vec![
        fuser::MountOption::FSName(format!("zarrfs:{}", config.store)),
        fuser::MountOption::Subtype("zarrfs".into()),
        fuser::MountOption::NoAtime,
        // The kernel checks permissions against the owners and modes the tree shows.
        fuser::MountOption::DefaultPermissions,
        if config.read_only {
            fuser::MountOption::RO
        } else {
            fuser::MountOption::RW
        },
    ];
    fuse_config.acl = if config.allow_other {
        fuser::SessionACL::All
    } else if config.allow_root {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    fuse_config.n_threads = Some(config.threads.max(2));
    fuse_config.clone_fd = true;
    let mut session = fuser::Session::new(fs, &config.mountpoint, &fuse_config)
        .map_err(|e| anyhow!("cannot mount on {}: {e}", config.mountpoint.display()))?;
    let notifier = session.notifier();
    tree.set_invalidator(move |(ino, offset, len)| {
        let _ = notifier.inval_inode(fuser::INodeNo(ino), offset, len);
    });
    let mut unmounter = session.unmount_callable();
    let signal_tree = tree.clone();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let mountpoint = config.mountpoint.clone();
    std::thread::Builder::new()
        .name("zarrfs-signals".into())
        .spawn(move || {
            let mut detached = false;
            for signal in signals.forever() {
                tracing::info!(
                    "signal {signal}: writing back and unmounting {}",
                    mountpoint.display()
                );
                let flushed = signal_tree.flush_all(true);
                if let Err(err) = &flushed {
                    tracing::error!("write-back before unmount failed: {}", err.message);
                }
                if detached {
                    // A second signal while files still hold the detached mount: leave now.
                    std::process::exit(i32::from(flushed.is_err()));
                }
                match unmounter.unmount() {
                    Ok(()) => return,
                    Err(err) => {
                        // Files are still open: detach the mount point now (as libfuse does)
                        // and keep serving those files; the session ends, with a last
                        // write-back, when the last of them is closed.
                        tracing::warn!(
                            "unmount of {} failed ({err}); detaching it until its open files close",
                            mountpoint.display()
                        );
                        match unmount_path(&mountpoint, true) {
                            Ok(()) => detached = true,
                            Err(err) => {
                                tracing::error!("cannot detach {}: {err}", mountpoint.display())
                            }
                        }
                    }
                }
            }
        })?;
    tracing::info!(
        "mounted {} on {} (cache {} bytes, {} threads{})",
        config.store,
        config.mountpoint.display(),
        config.cache_size,
        config.threads,
        if config.read_only { ", read-only" } else { "" }
    );
    if let Some(mut ready) = ready.take() {
        let _ = ready.write_all(b"OK\n");
    }
    let result = session.run();
    // Whatever was written after the last flush (e.g. the kernel unmounted first).
    let flushed = tree.flush_all(true);
    result?;
    flushed.map_err(|e| anyhow!("write-back at exit failed: {}", e.message))?;
    tracing::info!("unmounted {}", config.mountpoint.display());
    Ok(())
}

/// Unmounts `path`: with `lazy`, a busy mount point is detached at once and lives on until
/// its open files close. Tries umount2(2) (root), then fusermount3/fusermount.
fn unmount_path(path: &Path, lazy: bool) -> std::io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: c_path is a valid NUL-terminated path.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let direct_error = std::io::Error::last_os_error();
    let helper_ok = ["fusermount3", "fusermount"].iter().any(|tool| {
        std::process::Command::new(tool)
            .arg(if lazy { "-uz" } else { "-u" })
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if helper_ok {
        Ok(())
    } else {
        Err(direct_error)
    }
}

/// `zarrfs umount`: unmounts and waits until the mount point is free.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let path = std::fs::canonicalize(mountpoint)
        .map_err(|e| anyhow!("mount point {}: {e}", mountpoint.display()))?;
    if !is_mount_point(&path) {
        bail!("{} is not mounted", path.display());
    }
    // fsync of the mount root asks the daemon to write back every unsaved chunk; a failure
    // keeps the mount so nothing written is lost.
    File::open(&path)
        .and_then(|root| root.sync_all())
        .map_err(|e| {
            anyhow!(
                "write-back before unmounting {} failed: {e}; still mounted",
                path.display()
            )
        })?;
    unmount_path(&path, false).map_err(|e| anyhow!("cannot unmount {}: {e}", path.display()))?;
    for _ in 0..100 {
        if !is_mount_point(&path) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    bail!("{} is still mounted", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mount_path("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn parses_fstab_style_options() {
        let dir = tempfile::tempdir().unwrap();
        let args = MountArgs {
            store: dir.path().into(),
            mountpoint: dir.path().into(),
            foreground: false,
            read_only: false,
            cache_size: Some("2GiB".into()),
            max_chunk_size: None,
            threads: None,
            log: None,
            writeback_delay: None,
            keep_scans: false,
            file_mode: None,
            dir_mode: None,
            endpoint: None,
            region: None,
            anonymous: false,
            max_requests: None,
            ttl: None,
            request_timeout: None,
            disk_cache: None,
            disk_cache_size: None,
            no_consolidated: false,
            options: vec![
                "keep_scans".into(),
                "ro".into(),
                "cache_size=512MiB".into(),
                "allow_other".into(),
                "threads=3".into(),
            ],
        };
        let config = parse_config(&args).unwrap();
        assert!(config.read_only);
        assert_eq!(config.cache_size, 512 << 20);
        assert!(config.allow_other);
        assert_eq!(config.threads, 3);
        assert!(config.keep_scans);
        let bad = MountArgs {
            options: vec!["bogus".into()],
            ..args
        };
        assert!(parse_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }
}
