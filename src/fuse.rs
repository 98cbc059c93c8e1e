//! The thin `fuser` adapter: translates kernel requests into [`Tree`] calls and errors
//! into errnos. No filesystem logic lives here.

use crate::error::FsError;
use crate::tree::{Attr, EntryKind, Tree};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

const TTL: Duration = Duration::from_secs(1);
/// Largest request size asked of the kernel; it grants at most its `fs.fuse.max_pages_limit`
/// pages (1 MiB by default).
pub const MAX_IO_SIZE: u32 = 4 << 20;
/// Where the kernel publishes the most pages one FUSE request may carry (Linux ≥ 6.13).
const MAX_PAGES_LIMIT_PATH: &str = "/proc/sys/fs/fuse/max_pages_limit";

/// What ends the process once the session has ended (see [`ZarrFs::on_end`]); it is given
/// the result of the last write-back.
pub type EndHook = Box<dyn FnOnce(Result<(), FsError>) + Send>;

/// A mounted [`Tree`].
pub struct ZarrFs {
    tree: Arc<Tree>,
    end: Mutex<Option<EndHook>>,
}

impl std::fmt::Debug for ZarrFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrFs").field("tree", &self.tree).finish()
    }
}

impl ZarrFs {
    /// Wraps a tree.
    pub fn new(tree: Arc<Tree>) -> Self {
        ZarrFs {
            tree,
            end: Mutex::new(None),
        }
    }

    /// Runs `end` when the session ends, after the last write-back, instead of returning to
    /// fuser: fuser's `Session::run` unmounts the mount point once more as it returns, and
    /// after an unmount by the kernel (`zarrfs umount`, `fusermount3 -u`) that takes down
    /// whatever was mounted there since. `end` is expected to end the process.
    pub fn on_end(self, end: impl FnOnce(Result<(), FsError>) + Send + 'static) -> Self {
        *self.end.lock() = Some(Box::new(end));
        self
    }

    fn file_attr(&self, attr: &Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(attr.ino),
            size: attr.size,
            blocks: attr.size.div_ceil(512),
            atime: attr.mtime,
            mtime: attr.mtime,
            ctime: attr.mtime,
            crtime: attr.mtime,
            kind: match attr.kind {
                EntryKind::Directory => FileType::Directory,
                EntryKind::File => FileType::RegularFile,
            },
            perm: attr.perm,
            nlink: if attr.kind == EntryKind::Directory {
                2
            } else {
                1
            },
            uid: attr.uid,
            gid: attr.gid,
            rdev: 0,
            flags: 0,
            blksize: attr.blksize,
        }
    }
}

/// Logs an error worth a line (not plain "no such entry"; repeats rate-limited, see
/// [`crate::report`]) and converts it to an errno.
fn errno(op: &str, err: FsError) -> Errno {
    // Counted by the message alone, so that a problem already reported in the same words
    // (an array's metadata it cannot read, say) is not logged again for each request.
    if ![libc::ENOENT, libc::EPERM, libc::EROFS, libc::ENODATA].contains(&err.errno)
        && crate::report::first(&err.message)
    {
        tracing::warn!("{op}: {}", err.message);
    }
    Errno::from_i32(err.errno)
}

/// Runs the handler of one request: a panic in it fails that request alone (its reply,
/// dropped unanswered, goes out as EIO) and is logged once; the serving thread goes on.
fn guarded(op: &str, handler: impl FnOnce()) {
    if let Err(err) = crate::isolation::isolate(op, handler) {
        if crate::report::first(&err.message) {
            tracing::error!("{}", err.message);
        }
    }
}

/// Answers getxattr/listxattr: the size asked for with `size` 0, else the value, or ERANGE
/// when it does not fit.
fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len <= size {
        reply.data(value);
    } else {
        reply.error(Errno::ERANGE);
    }
}

/// Answers a request that returns nothing but success or an errno.
fn reply_empty(reply: ReplyEmpty, op: &str, result: Result<(), FsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(err) => reply.error(errno(op, err)),
    }
}

impl ZarrFs {
    /// The errno for a request that would create, remove or rename an entry.
    fn refuse_namespace_change(&self, op: &str) -> Errno {
        errno(op, self.tree.namespace_change_error())
    }
}

/// Logs how large a request the kernel lets a read or write carry, with the setting that
/// raises it when it is below [`MAX_IO_SIZE`].
fn log_request_size_limit() {
    let Some(pages) = std::fs::read_to_string(MAX_PAGES_LIMIT_PATH)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    else {
        return;
    };
    let limit = pages * page_size();
    if limit < u64::from(MAX_IO_SIZE) {
        tracing::info!(
            "the kernel caps FUSE requests at {} (fs.fuse.max_pages_limit = {pages}); \
             raising it to {} lets sequential reads and writes arrive in {} requests",
            crate::units::format_size(limit),
            u64::from(MAX_IO_SIZE) / page_size(),
            crate::units::format_size(u64::from(MAX_IO_SIZE)),
        );
    } else {
        tracing::info!(
            "FUSE requests carry up to {}",
            crate::units::format_size(u64::from(MAX_IO_SIZE))
        );
    }
}

/// The size of a memory page.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

impl Filesystem for ZarrFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(nearest) = config.set_max_readahead(MAX_IO_SIZE) {
            let _ = config.set_max_readahead(nearest);
        }
        if let Err(nearest) = config.set_max_write(MAX_IO_SIZE) {
            let _ = config.set_max_write(nearest);
        }
        let _ = config.set_max_background(64);
        log_request_size_limit();
        // O_TRUNC arrives with open() instead of as a truncate to 0, so that overwriting a
        // file of the same size (cp, shell redirection) works on fixed-size files.
        let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        // No file here has set-id bits or capabilities to clear on write: saying so spares
        // a getxattr("security.capability") round trip on every write(2) through the page
        // cache, which the kernel would otherwise ask now that getxattr is answered.
        let _ = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        // Direct I/O files that can still be mmap()ed keep every view of the same bytes
        // coherent on writable mounts.
        if config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok()
        {
            self.tree.set_direct_io_allowed(true);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        let flushed = crate::isolation::isolate_fallible("unmount", || self.tree.flush_all(true));
        if let Err(err) = &flushed {
            tracing::error!("write-back at unmount failed: {}", err.message);
        }
        if let Some(end) = self.end.get_mut().take() {
            end(flushed);
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        guarded("write", || match self.tree.write(fh.0, offset, data) {
            Ok(written) => reply.written(written),
            Err(err) => reply.error(errno("write", err)),
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        guarded("close", || {
            reply_empty(reply, "close", self.tree.flush(fh.0));
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        guarded("fsync", || {
            reply_empty(reply, "fsync", self.tree.fsync(fh.0));
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        guarded("fsyncdir", || {
            reply_empty(reply, "fsync", self.tree.fsyncdir(ino.0));
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        guarded("setattr", || {
            if mode.is_some() || uid.is_some() || gid.is_some() {
                return reply.error(errno(
                    "setattr",
                    FsError::not_permitted("modes and owners are fixed"),
                ));
            }
            let result = match size {
                Some(size) => self.tree.set_size(ino.0, size),
                None => self.tree.getattr(ino.0),
            };
            match result {
                Ok(attr) => reply.attr(&TTL, &self.file_attr(&attr)),
                Err(err) => reply.error(errno("truncate", err)),
            }
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_namespace_change("mknod"));
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_namespace_change("mkdir"));
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.refuse_namespace_change("unlink"));
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.refuse_namespace_change("rmdir"));
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_namespace_change("symlink"));
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(self.refuse_namespace_change("rename"));
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(self.refuse_namespace_change("link"));
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(self.refuse_namespace_change("create"));
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || {
            let Some(name) = name.to_str() else {
                return reply.error(Errno::ENOENT);
            };
            match self.tree.lookup(parent.0, name) {
                Ok(attr) => reply.entry(&TTL, &self.file_attr(&attr), Generation(0)),
                Err(err) => reply.error(errno("lookup", err)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || match self.tree.getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &self.file_attr(&attr)),
            Err(err) => reply.error(errno("getattr", err)),
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        guarded("open", || {
            let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
            match self.tree.open(ino.0, write) {
                Ok((fh, options)) => {
                    let mut fopen = FopenFlags::empty();
                    if options.direct_io {
                        fopen |= FopenFlags::FOPEN_DIRECT_IO;
                    }
                    if options.keep_cache {
                        fopen |= FopenFlags::FOPEN_KEEP_CACHE;
                    }
                    reply.opened(FileHandle(fh), fopen)
                }
                Err(err) => reply.error(errno("open", err)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        guarded("read", || match self.tree.read(fh.0, offset, size) {
            Ok(data) => {
                reply.data(&data);
                crate::reader::recycle_reply_buffer(data);
            }
            Err(err) => reply.error(errno("read", err)),
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        guarded("release", || {
            self.tree.release(fh.0);
            reply.ok();
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guarded("opendir", || match self.tree.getattr(ino.0) {
            Ok(attr) if attr.kind == EntryKind::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(errno("opendir", err)),
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        guarded("readdir", || {
            let result = self.tree.readdir(ino.0, offset, |entry, next| {
                let kind = match entry.kind {
                    EntryKind::Directory => FileType::Directory,
                    EntryKind::File => FileType::RegularFile,
                };
                reply.add(INodeNo(entry.ino), next, kind, &entry.name)
            });
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("readdir", err)),
            }
        });
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    /// The store's file system's sizes, so that `df` shows them for the mount.
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        guarded("statfs", || {
            let s = self.tree.fs_stats();
            reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                s.block_size.max(512),
                s.name_max.max(255),
                s.fragment_size.max(512),
            );
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        guarded("getxattr", || {
            let value = match name.to_str() {
                Some(name) => self.tree.xattr(ino.0, name),
                None => Err(FsError::new(libc::ENODATA, "no such attribute")),
            };
            match value {
                Ok(value) => reply_xattr(reply, &value, size),
                Err(err) => reply.error(errno("getxattr", err)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        guarded("listxattr", || match self.tree.xattrs(ino.0) {
            Ok(attrs) => {
                let mut names = Vec::new();
                for (name, _) in attrs {
                    names.extend_from_slice(name.as_bytes());
                    names.push(0);
                }
                reply_xattr(reply, &names, size);
            }
            Err(err) => reply.error(errno("listxattr", err)),
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(self.tree.xattr_change_error().errno));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(self.tree.xattr_change_error().errno));
    }
}
