//! Durability and coherence: write-back on close, fsync, idle time and unmount, and
//! invalidation of the kernel's cached pages of files that alias written bytes.

use super::{chunk_file_name, chunk_ino, NodeKind, Tree, DISCARD_FILE, ROOT_INO};
use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use crate::store::join_key;
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, Instant};

/// A request to drop cached pages of an inode: (inode, offset, length; 0 = to the end).
pub type Invalidation = (u64, i64, i64);

/// Invalidations for the background thread, with where to say they are done.
pub(super) type Batch = (Vec<Invalidation>, mpsc::SyncSender<()>);

/// How long a write waits for the kernel to drop the pages of its aliases. Invalidating a
/// page waits for its lock, which a request in flight on it holds (the write of another
/// view, say, itself waiting for its own aliases): past this time the write is answered
/// anyway, so that two such writes never wait for each other forever.
const ALIAS_WAIT: Duration = Duration::from_secs(3);

/// Which view of an array a write went through.
#[derive(Debug, Clone, Copy)]
pub(super) enum Written {
    /// `data` or `data.npy` (`name`), at `offset` of the flat view (past any header).
    Flat {
        name: &'static str,
        offset: u64,
        len: u64,
    },
    /// A chunk file.
    Chunk(u64),
}

impl Tree {
    /// Drops the kernel's cached pages of the other files showing the bytes a write
    /// changed, and returns once they are gone, so that a read through any view after the
    /// write is answered sees it. Needed under direct I/O too: pages of live mmap()s of
    /// the other views stay in the page cache.
    pub(super) fn invalidate_aliases(&self, array: &ZarrArray, written: Written) {
        let Some(sender) = self.invalidations.lock().clone() else {
            return;
        };
        let Some(&dir) = self.array_dirs.read().get(&array.id) else {
            return;
        };
        let ((offset, len), view, chunks) = match written {
            Written::Flat { name, offset, len } => (
                (offset, len),
                Some(name),
                array.grid.chunks_touching(offset, len),
            ),
            Written::Chunk(linear) => (array.grid.flat_span(linear), None, Vec::new()),
        };
        let flat_views: Vec<u64> = {
            let children = self.children.read();
            ["data", "data.npy"]
                .into_iter()
                .filter(|name| Some(*name) != view)
                .filter_map(|name| children.get(&(dir, name.to_string())).copied())
                .collect()
        };
        let mut batch = Vec::new();
        for ino in flat_views {
            // The NPY view is the flat view shifted by its header.
            let shift = match self.node(ino).as_deref() {
                Ok(super::Node {
                    kind: NodeKind::Npy { header, .. },
                    ..
                }) => header.len() as u64,
                _ => 0,
            };
            batch.push((ino, (offset + shift) as i64, len as i64));
        }
        batch.extend(
            chunks
                .into_iter()
                .filter_map(|linear| chunk_ino(array.id, linear).ok())
                .map(|ino| (ino, 0, 0)),
        );
        if batch.is_empty() {
            return;
        }
        let (done, finished) = mpsc::sync_channel(1);
        if sender.send((batch, done)).is_ok()
            && finished.recv_timeout(ALIAS_WAIT) == Err(mpsc::RecvTimeoutError::Timeout)
        {
            let message = format!(
                "{}: the kernel took over {} s to drop cached pages of views written \
                 through another; reads right after such writes may have shown old bytes",
                array.describe(),
                ALIAS_WAIT.as_secs()
            );
            if crate::report::first(&message) {
                tracing::warn!("{message}");
            }
        }
    }

    /// Drops the kernel's cached pages of an inode (without waiting for it).
    fn invalidate_inode(&self, ino: u64) {
        if let Some(sender) = self.invalidations.lock().clone() {
            let (done, _finished) = mpsc::sync_channel(1);
            let _ = sender.send((vec![(ino, 0, 0)], done));
        }
    }

    /// Routes page-cache invalidations to `apply` on a background thread, which a writer
    /// waits for (3 s at most).
    pub fn set_invalidator(&self, apply: impl Fn(Invalidation) + Send + 'static) {
        let (sender, receiver) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("zarrfs-invalidate".into())
            .spawn(move || {
                for (batch, done) in receiver {
                    batch.into_iter().for_each(&apply);
                    let _ = done.send(());
                }
            })
            .expect("spawn invalidation thread");
        *self.invalidations.lock() = Some(sender);
    }

    /// `close()` of a handle: a written array is written back and any failure returned.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let file = self.open_file(fh)?;
        match file.array() {
            Some(array) if file.writable => self.write_back(array, false),
            _ => Ok(()),
        }
    }

    /// `fsync()`: writes the file's array back and makes it durable.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = self.open_file(fh)?;
        match file.array() {
            Some(array) => self.write_back(array, true),
            None => Ok(()),
        }
    }

    /// `fsync()` on a directory: the root flushes everything; an array directory its array.
    pub fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        match &self.node(ino)?.kind {
            NodeKind::ArrayDir { array } | NodeKind::ChunksDir { array } => {
                self.write_back(array, true)
            }
            _ if ino == ROOT_INO => self.flush_all(true),
            _ => Ok(()),
        }
    }

    /// Writes an array's unsaved chunks back: a panic on the way fails this write-back
    /// alone (the chunks stay unsaved), whichever thread runs it.
    fn write_back(&self, array: &Arc<ZarrArray>, durable: bool) -> FsResult<()> {
        let what = format!("write-back of {}", array.describe());
        crate::isolation::isolate_fallible(&what, || self.writer.flush_array(array, durable))
    }

    /// Writes back every array with unsaved chunks; returns the first failure.
    pub fn flush_all(&self, durable: bool) -> FsResult<()> {
        let arrays: Vec<Arc<ZarrArray>> = self.arrays.read().clone();
        let mut first_error = None;
        for array in arrays {
            if let Err(err) = self.write_back(&array, durable) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Drops every chunk not written back yet (what was written to it is lost; reads show
    /// the stored chunk again) and says so in the log; returns their paths in the mount.
    pub fn discard_unsaved(&self) -> Vec<String> {
        let arrays: Vec<Arc<ZarrArray>> = self.arrays.read().clone();
        let mut paths = Vec::new();
        for array in arrays {
            let dropped = self.writer.discard(&array);
            if dropped.is_empty() {
                continue;
            }
            for linear in dropped {
                self.invalidate_aliases(&array, Written::Chunk(linear));
                let path = format!(
                    "/{}",
                    join_key(
                        &array.path,
                        &format!("chunks/{}", chunk_file_name(&array, linear))
                    )
                );
                tracing::warn!("discarded unsaved chunk {path} (asked through {DISCARD_FILE})");
                if let Ok(ino) = chunk_ino(array.id, linear) {
                    self.invalidate_inode(ino);
                }
                paths.push(path);
            }
        }
        paths
    }

    /// Writes back arrays left unwritten for `delay`, from a background thread that ends
    /// with the tree.
    pub fn start_idle_writeback(self: &Arc<Self>, delay: Duration) {
        let tree: Weak<Tree> = Arc::downgrade(self);
        let tick = (delay / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::Builder::new()
            .name("zarrfs-writeback".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(tree) = tree.upgrade() else {
                    return;
                };
                let arrays: Vec<Arc<ZarrArray>> = tree.arrays.read().clone();
                for array in arrays {
                    let due = {
                        let dirty = array.dirty.lock();
                        !dirty.chunks.is_empty()
                            && dirty.last_write.is_none_or(|t| t.elapsed() >= delay)
                    };
                    if due {
                        if let Err(err) = tree.write_back(&array, false) {
                            crate::report::warn_in("idle write-back", &err.message);
                            array.dirty.lock().last_write = Some(Instant::now());
                        }
                    }
                }
            })
            .expect("spawn write-back thread");
    }

    /// The errno for creating, removing or renaming entries (never allowed).
    pub fn namespace_change_error(&self) -> FsError {
        if self.options.read_only {
            FsError::read_only("mounted read-only")
        } else {
            FsError::not_permitted(
                "entries cannot be created, removed or renamed in a zarrfs mount",
            )
        }
    }
}
