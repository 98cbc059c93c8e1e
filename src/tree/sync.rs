//! Durability and coherence: write-back on close, fsync, idle time and unmount, and
//! invalidation of the kernel's cached pages of files that alias written bytes.

use super::{chunk_file_name, chunk_ino, NodeKind, Tree, DISCARD_FILE, ROOT_INO};
use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use crate::store::join_key;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A request to drop cached pages of an inode: (inode, offset, length; 0 = to the end).
pub type Invalidation = (u64, i64, i64);

impl Tree {
    /// Drops the kernel's cached pages of the other files showing the same bytes as a
    /// written one: `written` names the flat view written (None: a chunk file). Needed under
    /// direct I/O too: pages of live mmap()s of the other views stay in the page cache.
    pub(super) fn invalidate_aliases(
        &self,
        array: &ZarrArray,
        written: Option<&str>,
        range: Option<(u64, u64)>,
    ) {
        let Some(sender) = self.invalidations.lock().unwrap().clone() else {
            return;
        };
        let Some(&dir) = self.array_dirs.read().unwrap().get(&array.id) else {
            return;
        };
        let aliases: Vec<u64> = {
            let children = self.children.read().unwrap();
            ["data", "data.npy"]
                .into_iter()
                .filter(|name| Some(*name) != written)
                .filter_map(|name| children.get(&(dir, name.to_string())).copied())
                .collect()
        };
        for ino in aliases {
            // The NPY view is the flat view shifted by its header.
            let shift = match self.node(ino).as_deref() {
                Ok(super::Node {
                    kind: NodeKind::Npy { header, .. },
                    ..
                }) => header.len() as i64,
                _ => 0,
            };
            let (offset, len) = match range {
                Some((o, l)) => (o as i64 + shift, l as i64),
                None => (0, 0),
            };
            let _ = sender.send((ino, offset, len));
        }
        if let Some((offset, len)) = range {
            for linear in array.grid.chunks_touching(offset, len) {
                if let Ok(ino) = chunk_ino(array.id, linear) {
                    let _ = sender.send((ino, 0, 0));
                }
            }
        }
    }

    /// Drops the kernel's cached pages of an inode.
    fn invalidate_inode(&self, ino: u64) {
        if let Some(sender) = self.invalidations.lock().unwrap().as_ref() {
            let _ = sender.send((ino, 0, 0));
        }
    }

    /// Routes page-cache invalidations to `apply` on a background thread (so that a
    /// request never waits on the kernel).
    pub fn set_invalidator(&self, apply: impl Fn(Invalidation) + Send + 'static) {
        let (sender, receiver) = std::sync::mpsc::channel::<Invalidation>();
        std::thread::Builder::new()
            .name("zarrfs-invalidate".into())
            .spawn(move || {
                for request in receiver {
                    apply(request);
                }
            })
            .expect("spawn invalidation thread");
        *self.invalidations.lock().unwrap() = Some(sender);
    }

    /// `close()` of a handle: a written array is written back and any failure returned.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let file = self.open_file(fh)?;
        match file.array() {
            Some(array) if file.writable => self.writer.flush_array(array, false),
            _ => Ok(()),
        }
    }

    /// `fsync()`: writes the file's array back and makes it durable.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = self.open_file(fh)?;
        match file.array() {
            Some(array) => self.writer.flush_array(array, true),
            None => Ok(()),
        }
    }

    /// `fsync()` on a directory: the root flushes everything; an array directory its array.
    pub fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        match &self.node(ino)?.kind {
            NodeKind::ArrayDir { array } | NodeKind::ChunksDir { array } => {
                self.writer.flush_array(array, true)
            }
            _ if ino == ROOT_INO => self.flush_all(true),
            _ => Ok(()),
        }
    }

    /// Writes back every array with unsaved chunks; returns the first failure.
    pub fn flush_all(&self, durable: bool) -> FsResult<()> {
        let arrays: Vec<Arc<ZarrArray>> = self.arrays.read().unwrap().clone();
        let mut first_error = None;
        for array in arrays {
            if let Err(err) = self.writer.flush_array(&array, durable) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Drops every chunk not written back yet (what was written to it is lost; reads show
    /// the stored chunk again) and says so in the log; returns their paths in the mount.
    pub fn discard_unsaved(&self) -> Vec<String> {
        let arrays: Vec<Arc<ZarrArray>> = self.arrays.read().unwrap().clone();
        let mut paths = Vec::new();
        for array in arrays {
            let dropped = self.writer.discard(&array);
            if dropped.is_empty() {
                continue;
            }
            self.invalidate_aliases(&array, None, None);
            for linear in dropped {
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
                let arrays: Vec<Arc<ZarrArray>> = tree.arrays.read().unwrap().clone();
                for array in arrays {
                    let due = {
                        let dirty = array.dirty.lock().unwrap();
                        !dirty.chunks.is_empty()
                            && dirty.last_write.is_none_or(|t| t.elapsed() >= delay)
                    };
                    if due {
                        if let Err(err) = tree.writer.flush_array(&array, false) {
                            crate::report::warn(&format!("idle write-back: {}", err.message));
                            array.dirty.lock().unwrap().last_write = Some(Instant::now());
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
