//! `zarrfs mount`: checks before anything is mounted, daemonising, the FUSE session, the
//! service manager's readiness notification and clean shutdown on SIGINT, SIGTERM and
//! SIGHUP.

use super::logging::{self, default_log_path, open_log};
use super::mounts::{self, SUBTYPE};
use super::options::{parse_config, MountConfig};
use super::{output, MountArgs};
use crate::fuse::ZarrFs;
use crate::metadata;
use crate::reader::ChunkReader;
use crate::store::{remote, DirectoryStore, RemoteOptions, Store};
use crate::tree::{Tree, TreeOptions};
use crate::units::format_size;
use anyhow::{anyhow, bail, Result};
use sd_notify::NotifyState;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `zarrfs mount`: checks, then serves in the foreground or in a daemon that reports back
/// once the mount is live.
pub fn run(args: MountArgs) -> Result<()> {
    let mut config = parse_config(&args)?;
    let checked = check(&mut config)?;
    if config.fake {
        return Ok(());
    }
    if config.foreground {
        logging::init(&config.log_filter);
        start_watcher(&config)?;
        return serve(&config, open_store(&config, checked)?, &mut None);
    }
    let log_path = match &config.log {
        Some(path) => path.clone(),
        None => default_log_path(&config.mountpoint)?,
    };
    let log = open_log(&log_path)?;
    output::error(&format!("logging to {}", log_path.display()));
    let (read_end, write_end) = pipe()?;
    // SAFETY: no other threads exist yet in this process, so the child may continue freely.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            detach(&log);
            drop(log);
            logging::init(&config.log_filter);
            let mut ready = Some(File::from(write_end));
            let served = start_watcher(&config)
                .and_then(|()| open_store(&config, checked))
                .and_then(|store| serve(&config, store, &mut ready));
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
            match answer.trim() {
                "OK" => Ok(()),
                "" => bail!("mount failed; see {}", log_path.display()),
                failure => bail!("{failure}"),
            }
        }
    }
}

/// With `-o auto_unmount`, starts the process that unmounts the mount if this one dies
/// (see [`super::watch`]); before any thread starts.
fn start_watcher(config: &MountConfig) -> Result<()> {
    if config.auto_unmount {
        super::watch::start(&config.mountpoint)?;
    }
    Ok(())
}

/// A pipe: (read end, write end), both close-on-exec.
pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes the forked daemon a session of its own with stdin on /dev/null and stdout and
/// stderr on its log.
fn detach(log: &File) {
    use std::os::fd::AsRawFd;
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
}

/// Checks the store and mount point before mounting, with one clear message per problem,
/// resolves both paths in `config`, and takes a directory store's lock (see
/// [`lock_store`]); returns the directory store opened, to serve. An object store is opened
/// by [`open_store`] in the daemon (its runtime's threads would not survive the fork), and
/// its root checked when the tree is built.
pub fn check(config: &mut MountConfig) -> Result<Option<DirectoryStore>> {
    if let Some(location) = &mut config.location {
        // The daemon works from `/`: a relative disk cache would be looked for there.
        if let Some((dir, _)) = &mut location.disk_cache {
            *dir = std::path::absolute(&*dir)
                .map_err(|e| anyhow!("disk cache {}: {e}", dir.display()))?;
        }
        config.mountpoint = mount_point(config)?;
        warn_if_larger_than_memory(config.cache_size);
        return Ok(None);
    }
    config.store = std::fs::canonicalize(&config.store)
        .map_err(|e| anyhow!("store {}: {e}", config.store.display()))?;
    config.mountpoint = mount_point(config)?;
    let store = DirectoryStore::open(&config.store)
        .map_err(|e| anyhow!("store {}: {e}", config.store.display()))?;
    let consolidated = metadata::Consolidated::for_store(&store, !config.ignore_consolidated);
    if let Err(err) =
        metadata::Catalog::with_consolidated(Arc::new(store.clone()), consolidated).root()
    {
        bail!("{err}");
    }
    if !config.read_only {
        check_writable(&config.store)?;
    }
    // The kernel deadlocks when the daemon reaches its store through its own mount.
    match store.contains_dir(&config.mountpoint) {
        Ok(false) => {}
        Ok(true) => bail!(
            "mount point {} is inside the store {} it would serve; choose one outside the store",
            config.mountpoint.display(),
            config.store.display()
        ),
        Err(err) => bail!("mount point {}: {err}", config.mountpoint.display()),
    }
    warn_if_larger_than_memory(config.cache_size);
    lock_store(&store, config.read_only)?;
    Ok(Some(store))
}

/// The store to serve: the directory store [`check`] opened, or the object store, opened
/// now.
pub fn open_store(config: &MountConfig, checked: Option<DirectoryStore>) -> Result<Arc<dyn Store>> {
    if let Some(store) = checked {
        return Ok(Arc::new(store.with_revalidation(config.remote.ttl)));
    }
    let Some(location) = &config.location else {
        bail!("store {} was not checked", config.store.display());
    };
    let options = RemoteOptions {
        read_only: config.read_only,
        ..config.remote.clone()
    };
    Ok(Arc::new(
        remote::open(location, options).map_err(|e| anyhow!("store {}: {e}", location.url))?,
    ))
}

/// The mount point, resolved: an existing directory with nothing mounted on it. A dead
/// zarrfs mount there (its daemon gone) is cleared with `--force`, else refused saying how
/// to clear it.
fn mount_point(config: &MountConfig) -> Result<PathBuf> {
    let given = &config.mountpoint;
    let point =
        mounts::resolve(given).map_err(|e| anyhow!("mount point {}: {e}", given.display()))?;
    let shown = point.display();
    if mounts::is_dead(&point) {
        match mounts::find(&point) {
            Some(entry) if entry.is_zarrfs() && config.force => {
                mounts::unmount(&point, true)
                    .map_err(|e| anyhow!("cannot clear the dead zarrfs mount on {shown}: {e}"))?;
                output::error(&format!(
                    "cleared the dead zarrfs mount of {} on {shown}",
                    entry.source
                ));
            }
            Some(entry) if entry.is_zarrfs() => bail!(
                "mount point {shown} holds a dead zarrfs mount of {} (its daemon is gone): clear \
                 it with `zarrfs umount {shown}`, or mount with --force",
                entry.source
            ),
            _ => bail!(
                "mount point {shown} is a dead FUSE mount (Transport endpoint is not connected); \
                 unmount it first (fusermount3 -u {shown})"
            ),
        }
    }
    if !point.is_dir() {
        bail!("mount point {shown} is not a directory");
    }
    if let Some(entry) = mounts::find(&point) {
        bail!(
            "mount point {shown} is already mounted ({} of {})",
            entry.fstype,
            entry.source
        );
    }
    Ok(point)
}

/// Refuses a writable mount of a store this process cannot write (a read-only file system,
/// no permission), before anything is mounted.
fn check_writable(store: &Path) -> Result<()> {
    let path = std::ffi::CString::new(store.as_os_str().as_encoded_bytes())?;
    // SAFETY: path is a valid NUL-terminated string; faccessat only reads it.
    let status =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if status != 0 {
        bail!(
            "cannot mount {} writable: {}; mount it read-only (without --rw)",
            store.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Warns when the cache budget is larger than the machine's memory.
fn warn_if_larger_than_memory(cache_size: u64) {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let memory = u64::try_from(pages).unwrap_or(0) * u64::try_from(page).unwrap_or(0);
    if memory > 0 && cache_size > memory {
        output::warning(&format!(
            "--cache-size {} is more than this machine's memory ({}); the daemon may run out \
             of memory before the cache is full",
            format_size(cache_size),
            format_size(memory)
        ));
    }
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

/// Tunes the allocator before any worker thread starts. Buffers of large chunks are mapped
/// and unmapped rather than kept in malloc's heaps, so the daemon's memory follows the
/// cache budget (evicted buffers are recycled instead). Smaller blocks stay in the heaps:
/// among them the temporaries c-blosc allocates on every decode (three blocks, at most
/// 3 MiB with its own block sizes), which as fresh mappings cost page faults and a TLB
/// shootdown per chunk. The heaps give memory back only when twice that lies free at their
/// top, so those temporaries are not returned and faulted in again block after block.
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any worker thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD);
    }
}

/// The FUSE session's options: the store as the source and `fuse.zarrfs` as the type in
/// /proc/mounts, permissions checked by the kernel, and the options asked for.
fn fuse_config(config: &MountConfig) -> fuser::Config {
    use fuser::MountOption;
    let source = config
        .fsname
        .clone()
        .unwrap_or_else(|| config.store.display().to_string());
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = vec![
        MountOption::FSName(source),
        // Handed to the kernel as well as to fusermount3 (fuser's Subtype reaches only
        // the latter), so that root's mounts too are of type fuse.zarrfs.
        MountOption::CUSTOM(format!("subtype={SUBTYPE}")),
        MountOption::NoAtime,
        // The kernel checks permissions against the owners and modes the tree shows.
        MountOption::DefaultPermissions,
        if config.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    let flags = [
        (config.exec == Some(true), MountOption::Exec),
        (config.exec == Some(false), MountOption::NoExec),
        (config.sync == Some(true), MountOption::Sync),
        (config.sync == Some(false), MountOption::Async),
        (config.dirsync, MountOption::DirSync),
    ];
    fuse_config.mount_options.extend(
        flags
            .into_iter()
            .filter_map(|(set, flag)| set.then_some(flag)),
    );
    if let Some(bytes) = config.max_read {
        fuse_config
            .mount_options
            .push(MountOption::CUSTOM(format!("max_read={bytes}")));
    }
    fuse_config.acl = if config.allow_other {
        fuser::SessionACL::All
    } else if config.allow_root {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    fuse_config.n_threads = Some(config.threads.max(2));
    fuse_config.clone_fd = true;
    fuse_config
}

/// Why mounting failed, naming what was refused: opening /dev/fuse without permission
/// says so.
fn mount_error(config: &MountConfig, err: std::io::Error) -> anyhow::Error {
    let point = config.mountpoint.display();
    if err.kind() == std::io::ErrorKind::PermissionDenied {
        let dev_fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse");
        if let Err(dev_err) = dev_fuse {
            return anyhow!("cannot mount on {point}: cannot open /dev/fuse: {dev_err}");
        }
    }
    anyhow!("cannot mount on {point}: {err}")
}

/// Mounts `store` (as [`check`] opened and locked it) and serves until unmounted or
/// signalled; writes "OK" to `ready` and closes it once the mount is live (an error before
/// that is left for the caller to report), and tells the service manager (sd_notify).
pub fn serve(config: &MountConfig, store: Arc<dyn Store>, ready: &mut Option<File>) -> Result<()> {
    crate::isolation::log_panics();
    tune_allocator();
    raise_open_file_limit();
    // Hold no directory busy (as daemons do): every path is absolute by now.
    std::env::set_current_dir("/")?;
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
    let ending = config.clone();
    let fs = ZarrFs::new(tree.clone()).on_end(move |flushed| {
        let ended = finish(&ending, flushed);
        if let Err(err) = &ended {
            tracing::error!("{err:#}");
        }
        std::process::exit(i32::from(ended.is_err()))
    });
    let mut session = fuser::Session::new(fs, &config.mountpoint, &fuse_config(config))
        .map_err(|e| mount_error(config, e))?;
    let notifier = session.notifier();
    tree.set_invalidator(move |(ino, offset, len)| {
        let _ = notifier.inval_inode(fuser::INodeNo(ino), offset, len);
    });
    handle_signals(
        config.mountpoint.clone(),
        tree.clone(),
        session.unmount_callable(),
    )?;
    crate::report::start_clock();
    tracing::info!(
        "mounted {} on {} (cache {}, {} threads{})",
        config.store.display(),
        config.mountpoint.display(),
        format_size(config.cache_size),
        config.threads,
        if config.read_only {
            ", read-only"
        } else {
            ", writable"
        }
    );
    if let Some(mut ready) = ready.take() {
        let _ = ready.write_all(b"OK\n");
    }
    notify(&[
        NotifyState::Ready,
        NotifyState::MainPid(std::process::id()),
        NotifyState::Status(&format!("serving {}", config.store.display())),
    ]);
    // The session normally ends in the hook above; run returns only when fuser fails.
    let result = session.run();
    let flushed = tree.flush_all(true);
    result?;
    finish(config, flushed)
}

/// The end of a session: tells the service manager and the log, with the last write-back's
/// result.
fn finish(config: &MountConfig, flushed: Result<(), crate::error::FsError>) -> Result<()> {
    notify(&[NotifyState::Stopping]);
    crate::report::flush(true);
    match flushed {
        Ok(()) => {
            tracing::info!("unmounted {}", config.mountpoint.display());
            Ok(())
        }
        Err(err) => Err(anyhow!("write-back at exit failed: {}", err.message)),
    }
}

/// Tells the service manager (systemd's `Type=notify`, when NOTIFY_SOCKET is set) how the
/// mount is doing.
fn notify(state: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {err}");
    }
}

/// On SIGINT, SIGTERM or SIGHUP: writes back and unmounts. Files still open detach the
/// mount point instead, and the daemon serves them until they close; a second signal then
/// makes it exit at once.
fn handle_signals(
    mountpoint: PathBuf,
    tree: Arc<Tree>,
    mut unmounter: fuser::SessionUnmounter,
) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("zarrfs-signals".into())
        .spawn(move || {
            let mut detached = false;
            for signal in signals.forever() {
                tracing::info!(
                    "signal {signal}: writing back and unmounting {}",
                    mountpoint.display()
                );
                let flushed = tree.flush_all(true);
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
                        tracing::warn!(
                            "unmount of {} failed ({err}); detaching it until its open files close",
                            mountpoint.display()
                        );
                        match mounts::unmount(&mountpoint, true) {
                            Ok(()) => detached = true,
                            Err(err) => {
                                tracing::error!("cannot detach {}: {err}", mountpoint.display())
                            }
                        }
                    }
                }
            }
        })?;
    Ok(())
}
