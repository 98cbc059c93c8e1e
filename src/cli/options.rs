//! `zarrfs mount`'s flags and `-o` options turned into a [`MountConfig`]: zarrfs's own
//! options, FUSE's, and every option mount(8) and mount.fuse3 pass to a helper. Unknown
//! options are refused, all named in one line.

use super::logging::LogFilter;
use super::mounts::SUBTYPE;
use super::MountArgs;
use crate::store::remote::{self, Location};
use crate::store::RemoteOptions;
use crate::tree::perms::Ownership;
use crate::tree::CacheMode;
use crate::units::{parse_duration, parse_size};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_CACHE_SIZE: u64 = 1 << 30;
/// The largest chunk read by default, whatever the cache size.
const MAX_DEFAULT_CHUNK_SIZE: u64 = 4 << 30;
const DEFAULT_DISK_CACHE_SIZE: u64 = 10 << 30;
const DEFAULT_WRITEBACK_DELAY: Duration = Duration::from_secs(3);

/// Everything a mount needs, after parsing the command line.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Store directory (as given; [`super::mount`] resolves it), or the URL of an object
    /// store.
    pub store: PathBuf,
    /// Where an object store is (`None`: `store` is a directory).
    pub location: Option<Location>,
    /// How an object store is reached (unused for directories).
    pub remote: RemoteOptions,
    /// Never use consolidated metadata (`--no-consolidated`).
    pub ignore_consolidated: bool,
    /// Mount point (as given).
    pub mountpoint: PathBuf,
    /// Refuse writes (the default).
    pub read_only: bool,
    /// Decoded-chunk cache budget in bytes.
    pub cache_size: u64,
    /// Largest decoded chunk read, in bytes [default: the cache size, at most 4 GiB].
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
    /// Unmount when the daemon dies (a watcher process, see [`super::watch`]).
    pub auto_unmount: bool,
    /// The mount's source in /proc/mounts [default: the store's path].
    pub fsname: Option<String>,
    /// Whether programs may be run from the mount (`exec`, `noexec`; the last one given).
    pub exec: Option<bool>,
    /// Whether writes are synchronous (`sync`, `async`; the last one given).
    pub sync: Option<bool>,
    /// `dirsync`.
    pub dirsync: bool,
    /// The kernel's largest read request (`max_read=`).
    pub max_read: Option<u32>,
    /// Log file of the background daemon.
    pub log: Option<PathBuf>,
    /// What the daemon logs.
    pub log_filter: LogFilter,
    /// Stay in the foreground.
    pub foreground: bool,
    /// Clear a dead zarrfs mount on the mount point first.
    pub force: bool,
    /// Check everything, mount nothing (mount(8)'s `-f`).
    pub fake: bool,
}

/// Options mount(8) or mount.fuse3 pass that change nothing here: zarrfs mounts are always
/// `nodev,nosuid,noatime` with `default_permissions` (their files are regular files with
/// permission bits only, atimes are not kept, the kernel checks permissions), and the
/// rest concern mount(8) itself.
const NO_EFFECT: &[&str] = &[
    "default_permissions",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nostrictatime",
    "diratime",
    "nodiratime",
    "lazytime",
    "nolazytime",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "defaults",
    "silent",
    "loud",
];

/// Parses permission bits written in octal (`0640`, `640`, `0o640`).
fn parse_mode(name: &str, value: &str) -> Result<u32> {
    u32::from_str_radix(value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|&mode| mode <= 0o777)
        .ok_or_else(|| anyhow!("invalid {name}={value} (octal permission bits, e.g. 0640)"))
}

/// Parses a number of `what` (a user id, a thread count, …).
fn parse_number<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| anyhow!("invalid {name}={value} ({what})"))
}

/// Turns `mount` arguments (flags, then `-o` options in order) into a [`MountConfig`].
pub fn parse_config(args: &MountArgs) -> Result<MountConfig> {
    let location = parse_location(args)?;
    let remote = RemoteOptions {
        max_requests: args.max_requests.unwrap_or(64),
        ttl: parse_option_duration(&args.ttl, Duration::from_secs(1))?,
        request_timeout: parse_option_duration(&args.request_timeout, Duration::from_secs(30))?,
        read_only: false,
        listable: true,
        // Set from the cache's budget once it is known.
        max_ahead_bytes: 0,
    };
    if remote.max_requests == 0 {
        bail!("--max-requests must be at least 1");
    }
    let mut config = MountConfig {
        store: args.store.clone(),
        location,
        remote,
        ignore_consolidated: args.no_consolidated,
        mountpoint: args.mountpoint.clone(),
        read_only: !args.rw,
        cache_size: match &args.cache_size {
            Some(size) => parse_size(size).map_err(|e| anyhow!(e))?,
            None => DEFAULT_CACHE_SIZE,
        },
        max_chunk_size: 0,
        threads: 0,
        allow_other: false,
        allow_root: false,
        writeback_delay: match &args.writeback_delay {
            Some(delay) => parse_duration(delay).map_err(|e| anyhow!(e))?,
            None => DEFAULT_WRITEBACK_DELAY,
        },
        cache_mode: CacheMode::Auto,
        keep_scans: args.keep_scans,
        ownership: Ownership {
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
        },
        auto_unmount: false,
        fsname: None,
        exec: None,
        sync: None,
        dirsync: false,
        max_read: None,
        log: args.log.clone(),
        log_filter: LogFilter::from_verbosity(args.verbose),
        foreground: args.foreground,
        force: args.force,
        fake: args.fake,
    };
    let mut threads = args.threads;
    let mut unknown = Vec::new();
    for option in args
        .options
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
    {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        if !apply_option(&mut config, &mut threads, name, value, args.mount_helper)? {
            unknown.push(option);
        }
    }
    if !unknown.is_empty() {
        bail!("unknown mount option(s): {}", unknown.join(", "));
    }
    if let Some(level) = &args.log_level {
        config.log_filter = LogFilter::parse(level)?;
    }
    config.threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    if config.threads == 0 {
        bail!("--threads must be at least 1");
    }
    config.remote.max_ahead_bytes = config.cache_size / 4;
    if config.max_chunk_size == 0 {
        config.max_chunk_size = match &args.max_chunk_size {
            Some(size) => parse_size(size).map_err(|e| anyhow!(e))?,
            None => config.cache_size.min(MAX_DEFAULT_CHUNK_SIZE),
        };
    }
    // An https:// store takes no writes.
    if config
        .location
        .as_ref()
        .is_some_and(|location| !location.url.starts_with("s3://"))
    {
        config.read_only = true;
    }
    Ok(config)
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

/// Where an object store named by URL is; `None` when the store is a directory.
fn parse_location(args: &MountArgs) -> Result<Option<Location>> {
    let text = args.store.to_string_lossy();
    if !remote::is_url(&text) {
        if args.endpoint.is_some() || args.anonymous || args.disk_cache.is_some() {
            bail!("--endpoint, --anonymous and --disk-cache apply to s3:// and https:// stores");
        }
        return Ok(None);
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
    Ok(Some(Location {
        url: text.into_owned(),
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        anonymous: args.anonymous,
        disk_cache,
    }))
}

/// Applies one `-o` option; `Ok(false)` when it is not one zarrfs knows. In the forms
/// mount(8) runs (`mount_helper`), `rw` is what mount(8) passes to every mount not marked
/// `ro`, so only `writable` asks for writes there.
fn apply_option(
    config: &mut MountConfig,
    threads: &mut Option<usize>,
    name: &str,
    value: Option<&str>,
    mount_helper: bool,
) -> Result<bool> {
    match (name, value) {
        ("ro", None) => config.read_only = true,
        ("rw", None) if mount_helper => {}
        ("rw", None) => config.read_only = false,
        ("writable", None) => config.read_only = false,
        ("allow_other", None) => config.allow_other = true,
        ("allow_root", None) => config.allow_root = true,
        ("auto_unmount", None) => config.auto_unmount = true,
        ("keep_scans", None) => config.keep_scans = true,
        ("direct_io", None) => config.cache_mode = CacheMode::DirectIo,
        ("kernel_cache", None) => config.cache_mode = CacheMode::KernelCache,
        ("exec" | "noexec", None) => config.exec = Some(name == "exec"),
        ("sync" | "async", None) => config.sync = Some(name == "sync"),
        ("dirsync", None) => config.dirsync = true,
        ("max_read", Some(v)) => {
            config.max_read = Some(parse_number(name, v, "a number of bytes")?)
        }
        ("fsname", Some(v)) => config.fsname = Some(v.to_string()),
        ("subtype", Some(v)) if v == SUBTYPE => {}
        ("subtype", Some(v)) => {
            bail!("subtype={v} refused: zarrfs mounts are of type fuse.{SUBTYPE}")
        }
        ("cache_size", Some(v)) => config.cache_size = parse_size(v).map_err(|e| anyhow!(e))?,
        ("max_chunk_size", Some(v)) => {
            config.max_chunk_size = parse_size(v).map_err(|e| anyhow!(e))?
        }
        ("writeback_delay", Some(v)) => {
            config.writeback_delay = parse_duration(v).map_err(|e| anyhow!(e))?
        }
        ("ttl", Some(v)) => config.remote.ttl = parse_duration(v).map_err(|e| anyhow!(e))?,
        ("threads", Some(v)) => *threads = Some(parse_number(name, v, "a number")?),
        ("uid", Some(v)) => config.ownership.uid = Some(parse_number(name, v, "a numeric id")?),
        ("gid", Some(v)) => config.ownership.gid = Some(parse_number(name, v, "a numeric id")?),
        ("umask", Some(v)) => config.ownership.umask = Some(parse_mode(name, v)?),
        ("file_mode", Some(v)) => config.ownership.file_mode = Some(parse_mode(name, v)?),
        ("dir_mode", Some(v)) => config.ownership.dir_mode = Some(parse_mode(name, v)?),
        ("log", Some(v)) => config.log = Some(PathBuf::from(v)),
        ("log_level", Some(v)) => config.log_filter = LogFilter::parse(v)?,
        // fstab comments and options for other programs (systemd's x-systemd.*).
        ("comment", Some(_)) => {}
        _ if name.starts_with("x-") => {}
        (_, None) if NO_EFFECT.contains(&name) => {}
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &[&str]) -> MountArgs {
        MountArgs {
            store: "store".into(),
            mountpoint: "mnt".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            ..MountArgs::default()
        }
    }

    #[test]
    fn parses_zarrfs_options() {
        let config = parse_config(&MountArgs {
            cache_size: Some("2GiB".into()),
            ..args(&[
                "keep_scans",
                "cache_size=512MiB",
                "allow_other",
                "threads=3",
                "writeback_delay=1m",
                "ttl=250ms",
            ])
        })
        .unwrap();
        assert!(config.read_only, "read-only unless asked");
        assert_eq!(config.cache_size, 512 << 20);
        assert_eq!(
            config.remote.max_ahead_bytes,
            128 << 20,
            "reads ahead take a quarter of the cache's budget"
        );
        assert!(config.allow_other);
        assert_eq!(config.threads, 3);
        assert!(config.keep_scans);
        assert_eq!(config.writeback_delay, Duration::from_secs(60));
        assert_eq!(config.remote.ttl, Duration::from_millis(250));
    }

    #[test]
    fn writes_need_asking() {
        assert!(parse_config(&args(&[])).unwrap().read_only);
        assert!(!parse_config(&args(&["rw"])).unwrap().read_only);
        assert!(parse_config(&args(&["rw", "ro"])).unwrap().read_only);
        let flag = MountArgs {
            rw: true,
            ..args(&[])
        };
        assert!(!parse_config(&flag).unwrap().read_only);
        // mount(8) passes rw to every mount not marked ro.
        let helper = |options: &[&str]| MountArgs {
            mount_helper: true,
            ..args(options)
        };
        assert!(parse_config(&helper(&["rw"])).unwrap().read_only);
        assert!(
            !parse_config(&helper(&["rw", "writable"]))
                .unwrap()
                .read_only
        );
    }

    #[test]
    fn accepts_every_option_mount_passes() {
        let options = [
            "dev",
            "nodev",
            "suid",
            "nosuid",
            "exec",
            "noexec",
            "atime",
            "noatime",
            "relatime",
            "sync",
            "async",
            "auto",
            "noauto",
            "user",
            "nouser",
            "_netdev",
            "nofail",
            "defaults",
            "x-systemd.automount",
            "x-gvfs-show",
            "x-a=b",
            "default_permissions",
            "auto_unmount",
            "fsname=/data/x.zarr",
            "subtype=zarrfs",
            "uid=1000",
            "gid=100",
            "umask=022",
            "max_read=131072",
        ];
        let config = parse_config(&args(&options)).unwrap();
        assert!(config.auto_unmount);
        assert_eq!(config.fsname.as_deref(), Some("/data/x.zarr"));
        assert_eq!(config.ownership.uid, Some(1000));
        assert_eq!(config.max_read, Some(131072));
        // Opposites: the last one given wins, as with mount(8).
        assert_eq!((config.exec, config.sync), (Some(false), Some(false)));
    }

    #[test]
    fn names_every_unknown_option_in_one_line() {
        let err = parse_config(&args(&["ro", "bogus", "nofail", "frob=1"]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown mount option(s): bogus, frob=1");
        let err = parse_config(&args(&["subtype=other"])).unwrap_err();
        assert!(err.to_string().contains("fuse.zarrfs"), "{err}");
        assert!(parse_config(&args(&["ro=1"])).is_err());
    }
}
