//! The thin `fuser` adapter: translates kernel requests into [`Tree`] calls and errors
//! into errnos. No filesystem logic lives here.

use crate::error::FsError;
use crate::tree::{Attr, EntryKind, Tree};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyOpen, ReplyStatfs, Request,
};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(1);
/// Largest request size negotiated with the kernel.
pub const MAX_IO_SIZE: u32 = 1 << 20;

/// A mounted [`Tree`].
#[derive(Debug)]
pub struct ZarrFs {
    tree: Arc<Tree>,
    uid: u32,
    gid: u32,
}

impl ZarrFs {
    /// Wraps a tree; files are owned by `uid`/`gid`.
    pub fn new(tree: Arc<Tree>, uid: u32, gid: u32) -> Self {
        ZarrFs { tree, uid, gid }
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
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: attr.blksize,
        }
    }
}

/// Logs an error worth a line (not plain "no such entry") and converts it to an errno.
fn errno(op: &str, err: FsError) -> Errno {
    if err.errno != libc::ENOENT {
        tracing::warn!("{op}: {}", err.message);
    }
    Errno::from_i32(err.errno)
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
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        match self.tree.lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &self.file_attr(&attr), Generation(0)),
            Err(err) => reply.error(errno("lookup", err)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree.getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &self.file_attr(&attr)),
            Err(err) => reply.error(errno("getattr", err)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
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
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(err) => reply.error(errno("read", err)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.tree.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree.getattr(ino.0) {
            Ok(attr) if attr.kind == EntryKind::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(errno("opendir", err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
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
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }
}
