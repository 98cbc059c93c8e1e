//! The virtual file tree: groups and arrays of the store become directories; each array
//! holds `data`, `data.npy`, `chunks/<i.j…>`, `meta.json` and `attrs.json`; the root holds
//! `.zarrfs/stats`. Nodes are discovered lazily, on lookup or listing.
//!
//! Inode numbers: nodes are numbered from 1 (the root) in a table; chunk files, which can
//! number in the millions, get computed numbers (high bit set, array id, chunk position)
//! and take no table space.

pub mod npy;

use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use crate::metadata::{self, NodeMeta};
use crate::reader::ChunkReader;
use crate::store::{join_key, Store};
use crate::writer::ChunkWriter;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;
const CHUNK_INO_FLAG: u64 = 1 << 63;
const CHUNK_ARRAY_SHIFT: u32 = 40;
const MAX_CHUNK_ARRAYS: u64 = 1 << (63 - CHUNK_ARRAY_SHIFT);
/// Preferred I/O size reported for the data views (readers size their buffers by it).
pub const PREFERRED_IO_SIZE: u32 = 1 << 20;

/// Whether an entry is a directory or a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
}

/// Attributes of a node, independent of the FUSE binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits.
    pub perm: u16,
    /// Modification time.
    pub mtime: SystemTime,
    /// Preferred I/O block size.
    pub blksize: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Entry name.
    pub name: String,
    /// File or directory.
    pub kind: EntryKind,
}

/// How the kernel should cache an open file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Bypass the page cache (for files whose size changes, like `stats`).
    pub direct_io: bool,
    /// Keep cached pages across opens (safe when nothing changes underneath).
    pub keep_cache: bool,
}

#[derive(Debug)]
enum NodeKind {
    Group {
        path: String,
        mtime: SystemTime,
    },
    ArrayDir {
        array: Arc<ZarrArray>,
    },
    ChunksDir {
        array: Arc<ZarrArray>,
    },
    Data {
        array: Arc<ZarrArray>,
    },
    Npy {
        array: Arc<ZarrArray>,
        header: Arc<Vec<u8>>,
    },
    Document {
        content: Arc<Vec<u8>>,
        mtime: SystemTime,
    },
    ControlDir,
    Stats,
}

#[derive(Debug)]
struct Node {
    parent: u64,
    kind: NodeKind,
}

#[derive(Debug)]
enum FileTarget {
    Flat {
        array: Arc<ZarrArray>,
        header: Option<Arc<Vec<u8>>>,
    },
    Chunk {
        array: Arc<ZarrArray>,
        linear: u64,
    },
    Bytes(Arc<Vec<u8>>),
}

#[derive(Debug, Default)]
struct Sequential {
    next_offset: u64,
    prefetched_to: u64,
}

#[derive(Debug)]
struct OpenFile {
    target: FileTarget,
    writable: bool,
    sequential: Mutex<Sequential>,
}

impl OpenFile {
    fn array(&self) -> Option<&Arc<ZarrArray>> {
        match &self.target {
            FileTarget::Flat { array, .. } | FileTarget::Chunk { array, .. } => Some(array),
            FileTarget::Bytes(_) => None,
        }
    }
}

/// A request to drop cached pages of an inode: (inode, offset, length; 0 = to the end).
pub type Invalidation = (u64, i64, i64);

/// Options of the tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    /// Refuse every write.
    pub read_only: bool,
}

/// The virtual file tree over one store.
#[derive(Debug)]
pub struct Tree {
    store: Arc<dyn Store>,
    options: TreeOptions,
    reader: Arc<ChunkReader>,
    nodes: RwLock<Vec<Arc<Node>>>,
    children: RwLock<HashMap<(u64, String), u64>>,
    arrays: RwLock<Vec<Arc<ZarrArray>>>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    mount_time: SystemTime,
    writer: ChunkWriter,
    /// Directory inode of each array, by array id.
    array_dirs: RwLock<HashMap<u32, u64>>,
    invalidations: Mutex<Option<Sender<Invalidation>>>,
    /// Whether the kernel lets direct-I/O files be mmap()ed.
    direct_io_allowed: std::sync::atomic::AtomicBool,
}

fn json_document(value: &Value) -> Arc<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    Arc::new(text)
}

fn chunk_ino(array_id: u32, linear: u64) -> FsResult<u64> {
    if u64::from(array_id) >= MAX_CHUNK_ARRAYS || linear >= (1 << CHUNK_ARRAY_SHIFT) {
        return Err(FsError::new(libc::EOVERFLOW, "chunk number too large"));
    }
    Ok(CHUNK_INO_FLAG | (u64::from(array_id) << CHUNK_ARRAY_SHIFT) | linear)
}

impl Tree {
    /// Opens the tree over a store whose root is a Zarr group or array.
    pub fn new(
        store: Arc<dyn Store>,
        reader: Arc<ChunkReader>,
        options: TreeOptions,
    ) -> FsResult<Self> {
        let tree = Tree {
            store,
            options,
            writer: ChunkWriter::new(reader.clone()),
            array_dirs: RwLock::new(HashMap::new()),
            invalidations: Mutex::new(None),
            direct_io_allowed: std::sync::atomic::AtomicBool::new(false),
            reader,
            nodes: RwLock::new(Vec::new()),
            children: RwLock::new(HashMap::new()),
            arrays: RwLock::new(Vec::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mount_time: SystemTime::now(),
        };
        let root = match metadata::read_node(tree.store.as_ref(), "") {
            Ok(Some(node)) => tree.node_kind_for("", node)?,
            Ok(None) => {
                return Err(FsError::invalid(format!(
                    "{} is not a Zarr store (no .zgroup, .zarray or zarr.json)",
                    tree.store.describe("")
                )))
            }
            Err(err) => return Err(FsError::invalid(err.to_string())),
        };
        if let NodeKind::ArrayDir { array } = &root {
            tree.array_dirs.write().unwrap().insert(array.id, ROOT_INO);
        }
        tree.nodes.write().unwrap().push(Arc::new(Node {
            parent: ROOT_INO,
            kind: root,
        }));
        Ok(tree)
    }

    /// The shared chunk reader.
    pub fn reader(&self) -> &Arc<ChunkReader> {
        &self.reader
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.options.read_only
    }

    fn mtime_of(&self, key: &str) -> SystemTime {
        self.store
            .info(key)
            .ok()
            .flatten()
            .map(|i| i.mtime)
            .unwrap_or(self.mount_time)
    }

    fn node_kind_for(&self, path: &str, node: NodeMeta) -> FsResult<NodeKind> {
        Ok(match node {
            NodeMeta::Group { .. } => NodeKind::Group {
                path: path.to_string(),
                mtime: self.mtime_of(&join_key(path, ".zgroup")),
            },
            NodeMeta::Array(meta) => {
                let mut arrays = self.arrays.write().unwrap();
                let id = arrays.len() as u32;
                let mtime = self.mtime_of(&join_key(path, ".zarray"));
                let array = Arc::new(ZarrArray::new(id, self.store.clone(), path, *meta, mtime));
                arrays.push(array.clone());
                NodeKind::ArrayDir { array }
            }
        })
    }

    fn node(&self, ino: u64) -> FsResult<Arc<Node>> {
        if ino == 0 || ino & CHUNK_INO_FLAG != 0 {
            return Err(FsError::not_found(format!("no node {ino}")));
        }
        self.nodes
            .read()
            .unwrap()
            .get((ino - 1) as usize)
            .cloned()
            .ok_or_else(|| FsError::not_found(format!("no node {ino}")))
    }

    fn array_by_id(&self, id: u32) -> FsResult<Arc<ZarrArray>> {
        self.arrays
            .read()
            .unwrap()
            .get(id as usize)
            .cloned()
            .ok_or_else(|| FsError::not_found(format!("no array {id}")))
    }

    fn decode_chunk_ino(&self, ino: u64) -> FsResult<(Arc<ZarrArray>, u64)> {
        let id = ((ino & !CHUNK_INO_FLAG) >> CHUNK_ARRAY_SHIFT) as u32;
        let linear = ino & ((1 << CHUNK_ARRAY_SHIFT) - 1);
        let array = self.array_by_id(id)?;
        if linear >= array.grid.num_chunks() {
            return Err(FsError::not_found(format!("no chunk inode {ino}")));
        }
        Ok((array, linear))
    }

    fn group_attributes(&self, path: &str) -> FsResult<Value> {
        match metadata::read_node(self.store.as_ref(), path) {
            Ok(Some(NodeMeta::Group { attributes })) => Ok(attributes),
            Ok(_) => Ok(Value::Object(Default::default())),
            Err(err) => Err(FsError::io(err.to_string())),
        }
    }

    /// Works out what `name` under `parent` is, without registering it.
    fn resolve_child(&self, parent: u64, node: &Node, name: &str) -> FsResult<Option<NodeKind>> {
        Ok(match &node.kind {
            NodeKind::Group { path, mtime } => match name {
                "attrs.json" => Some(NodeKind::Document {
                    content: json_document(&self.group_attributes(path)?),
                    mtime: *mtime,
                }),
                ".zarrfs" if parent == ROOT_INO => Some(NodeKind::ControlDir),
                _ if name.starts_with('.') || metadata::is_metadata_name(name) => None,
                _ => {
                    let child = join_key(path, name);
                    match metadata::read_node(self.store.as_ref(), &child) {
                        Ok(Some(meta)) => Some(self.node_kind_for(&child, meta)?),
                        Ok(None) => None,
                        Err(err) => {
                            tracing::warn!("{err}; left out of the mount");
                            None
                        }
                    }
                }
            },
            NodeKind::ArrayDir { array } => {
                let array = array.clone();
                match name {
                    ".zarrfs" if parent == ROOT_INO => Some(NodeKind::ControlDir),
                    "data" => Some(NodeKind::Data { array }),
                    "data.npy" => Some(NodeKind::Npy {
                        header: Arc::new(npy::npy_header(&array.meta.dtype, &array.meta.shape)),
                        array,
                    }),
                    "chunks" => Some(NodeKind::ChunksDir { array }),
                    "meta.json" => Some(NodeKind::Document {
                        content: json_document(&array.meta.to_json()),
                        mtime: array.mtime,
                    }),
                    "attrs.json" => Some(NodeKind::Document {
                        content: json_document(&array.meta.attributes),
                        mtime: array.mtime,
                    }),
                    _ => None,
                }
            }
            NodeKind::ControlDir => (name == "stats").then_some(NodeKind::Stats),
            _ => None,
        })
    }

    /// Returns the inode of `name` under `parent`, registering it on first sight.
    fn child_ino(&self, parent: u64, name: &str) -> FsResult<u64> {
        let node = self.node(parent)?;
        if let NodeKind::ChunksDir { array } = &node.kind {
            let linear = array
                .grid
                .parse_chunk_name(name)
                .ok_or_else(|| FsError::not_found(format!("no chunk {name}")))?;
            return chunk_ino(array.id, linear);
        }
        if !matches!(
            node.kind,
            NodeKind::Group { .. } | NodeKind::ArrayDir { .. } | NodeKind::ControlDir
        ) {
            return Err(FsError::new(libc::ENOTDIR, "not a directory"));
        }
        let key = (parent, name.to_string());
        if let Some(&ino) = self.children.read().unwrap().get(&key) {
            return Ok(ino);
        }
        let kind = self
            .resolve_child(parent, &node, name)?
            .ok_or_else(|| FsError::not_found(format!("no entry {name}")))?;
        let mut children = self.children.write().unwrap();
        if let Some(&ino) = children.get(&key) {
            return Ok(ino);
        }
        let mut nodes = self.nodes.write().unwrap();
        let array_id = match &kind {
            NodeKind::ArrayDir { array } => Some(array.id),
            _ => None,
        };
        nodes.push(Arc::new(Node { parent, kind }));
        let ino = nodes.len() as u64;
        children.insert(key, ino);
        if let Some(id) = array_id {
            self.array_dirs.write().unwrap().insert(id, ino);
        }
        Ok(ino)
    }

    /// Looks up `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let ino = self.child_ino(parent, name)?;
        self.getattr(ino)
    }

    fn dir_perm(&self) -> u16 {
        if self.options.read_only {
            0o555
        } else {
            0o755
        }
    }

    fn data_perm(&self) -> u16 {
        if self.options.read_only {
            0o444
        } else {
            0o644
        }
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        if ino & CHUNK_INO_FLAG != 0 {
            let (array, linear) = self.decode_chunk_ino(ino)?;
            return Ok(Attr {
                ino,
                kind: EntryKind::File,
                size: array.grid.chunk_bytes() as u64,
                perm: self.data_perm(),
                mtime: array.chunk_mtime(linear),
                blksize: PREFERRED_IO_SIZE,
            });
        }
        let node = self.node(ino)?;
        let dir = |mtime| Attr {
            ino,
            kind: EntryKind::Directory,
            size: 0,
            perm: self.dir_perm(),
            mtime,
            blksize: 4096,
        };
        let file = |size, perm, mtime| Attr {
            ino,
            kind: EntryKind::File,
            size,
            perm,
            mtime,
            blksize: PREFERRED_IO_SIZE,
        };
        Ok(match &node.kind {
            NodeKind::Group { mtime, .. } => dir(*mtime),
            NodeKind::ArrayDir { array } | NodeKind::ChunksDir { array } => dir(array.mtime),
            NodeKind::ControlDir => dir(self.mount_time),
            NodeKind::Data { array } => {
                file(array.grid.total_bytes(), self.data_perm(), array.mtime)
            }
            NodeKind::Npy { array, header } => file(
                header.len() as u64 + array.grid.total_bytes(),
                self.data_perm(),
                array.mtime,
            ),
            NodeKind::Document { content, mtime } => file(content.len() as u64, 0o444, *mtime),
            NodeKind::Stats => file(self.stats_text().len() as u64, 0o444, SystemTime::now()),
        })
    }

    /// The `.zarrfs/stats` text.
    pub fn stats_text(&self) -> Vec<u8> {
        let cache = self.reader.cache();
        self.reader
            .stats()
            .render(
                cache.bytes() as u64,
                cache.len() as u64,
                cache.budget() as u64,
            )
            .into_bytes()
    }

    /// Lists a directory from position `offset`; `emit(entry, next_offset)` returns true
    /// when the reply buffer is full. Positions 0 and 1 are `.` and `..`.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        mut emit: impl FnMut(DirEntry, u64) -> bool,
    ) -> FsResult<()> {
        let node = self.node(ino)?;
        let dot = |name: &str, ino| DirEntry {
            ino,
            name: name.to_string(),
            kind: EntryKind::Directory,
        };
        let mut fixed = vec![dot(".", ino), dot("..", node.parent)];
        if let NodeKind::ChunksDir { array } = &node.kind {
            for (i, entry) in fixed.into_iter().enumerate().skip(offset as usize) {
                if emit(entry, i as u64 + 1) {
                    return Ok(());
                }
            }
            let first = offset.saturating_sub(2);
            for linear in first..array.grid.num_chunks() {
                let entry = DirEntry {
                    ino: chunk_ino(array.id, linear)?,
                    name: array.grid.chunk_name(linear),
                    kind: EntryKind::File,
                };
                if emit(entry, linear + 3) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let names: Vec<String> = match &node.kind {
            NodeKind::Group { path, .. } => {
                let mut names = vec!["attrs.json".to_string()];
                if ino == ROOT_INO {
                    names.push(".zarrfs".to_string());
                }
                let listed = self
                    .store
                    .list(path)
                    .map_err(|e| FsError::from_io(&self.store.describe(path), &e))?;
                names.extend(
                    listed
                        .into_iter()
                        .filter(|e| e.is_prefix && !e.name.starts_with('.'))
                        .map(|e| e.name),
                );
                names
            }
            NodeKind::ArrayDir { .. } => {
                let mut names: Vec<String> =
                    ["data", "data.npy", "chunks", "meta.json", "attrs.json"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                if ino == ROOT_INO {
                    names.push(".zarrfs".to_string());
                }
                names
            }
            NodeKind::ControlDir => vec!["stats".to_string()],
            _ => return Err(FsError::new(libc::ENOTDIR, "not a directory")),
        };
        for name in names {
            match self.child_ino(ino, &name) {
                Ok(child) => {
                    let kind = self.getattr(child)?.kind;
                    fixed.push(DirEntry {
                        ino: child,
                        name,
                        kind,
                    })
                }
                Err(err) if err.errno == libc::ENOENT => continue,
                Err(err) => return Err(err),
            }
        }
        for (i, entry) in fixed.into_iter().enumerate().skip(offset as usize) {
            if emit(entry, i as u64 + 1) {
                break;
            }
        }
        Ok(())
    }

    /// Opens a file; `write` when the caller wants write access.
    pub fn open(&self, ino: u64, write: bool) -> FsResult<(u64, OpenOptions)> {
        let (target, options) = if ino & CHUNK_INO_FLAG != 0 {
            let (array, linear) = self.decode_chunk_ino(ino)?;
            (
                FileTarget::Chunk { array, linear },
                self.data_open_options(),
            )
        } else {
            let node = self.node(ino)?;
            match &node.kind {
                NodeKind::Data { array } => (
                    FileTarget::Flat {
                        array: array.clone(),
                        header: None,
                    },
                    self.data_open_options(),
                ),
                NodeKind::Npy { array, header } => (
                    FileTarget::Flat {
                        array: array.clone(),
                        header: Some(header.clone()),
                    },
                    self.data_open_options(),
                ),
                NodeKind::Document { content, .. } => {
                    if write {
                        return Err(FsError::new(libc::EACCES, "read-only file"));
                    }
                    (FileTarget::Bytes(content.clone()), OpenOptions::default())
                }
                NodeKind::Stats => {
                    if write {
                        return Err(FsError::new(libc::EACCES, "read-only file"));
                    }
                    (
                        FileTarget::Bytes(Arc::new(self.stats_text())),
                        OpenOptions {
                            direct_io: true,
                            keep_cache: false,
                        },
                    )
                }
                _ => return Err(FsError::new(libc::EISDIR, "is a directory")),
            }
        };
        if write && self.options.read_only {
            return Err(FsError::read_only("mounted read-only"));
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().insert(
            fh,
            Arc::new(OpenFile {
                target,
                writable: write,
                sequential: Mutex::new(Sequential::default()),
            }),
        );
        Ok((fh, options))
    }

    /// Records whether the kernel allows mmap() of direct-I/O files.
    pub fn set_direct_io_allowed(&self, allowed: bool) {
        self.direct_io_allowed.store(allowed, Ordering::Relaxed);
    }

    /// Read-only mounts use the page cache and keep it across opens. Writable mounts use
    /// direct I/O where mmap() still works, so that `data`, `data.npy` and the chunk files,
    /// which show the same bytes, never disagree; otherwise aliases are invalidated.
    fn data_open_options(&self) -> OpenOptions {
        OpenOptions {
            direct_io: !self.options.read_only && self.direct_io_allowed.load(Ordering::Relaxed),
            keep_cache: self.options.read_only,
        }
    }

    /// Closes a file handle; the last close of a written file starts its write-back.
    pub fn release(&self, fh: u64) {
        let file = self.files.lock().unwrap().remove(&fh);
        if let Some(array) = file.as_ref().filter(|f| f.writable).and_then(|f| f.array()) {
            if let Err(err) = self.writer.flush_array(array, false) {
                tracing::warn!("write-back on close: {}", err.message);
            }
        }
    }

    fn open_file(&self, fh: u64) -> FsResult<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, "unknown file handle"))
    }

    /// Writes `data` at `offset` of an open file; returns the bytes written.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let file = self.open_file(fh)?;
        if !file.writable {
            return Err(FsError::new(libc::EBADF, "file not open for writing"));
        }
        match &file.target {
            FileTarget::Bytes(_) => return Err(FsError::new(libc::EACCES, "read-only file")),
            FileTarget::Chunk { array, linear } => {
                self.writer.write_chunk(array, *linear, offset, data)?;
                self.invalidate_aliases(array, None, None);
            }
            FileTarget::Flat { array, header } => {
                let header: &[u8] = header.as_ref().map(|h| h.as_slice()).unwrap_or(&[]);
                let header_len = header.len() as u64;
                let mut body = data;
                let mut body_offset = offset;
                if offset < header_len {
                    let overlap = ((header_len - offset) as usize).min(data.len());
                    if data[..overlap] != header[offset as usize..offset as usize + overlap] {
                        return Err(FsError::not_permitted(format!(
                            "{}: the NPY header of data.npy cannot change",
                            array.describe()
                        )));
                    }
                    body = &data[overlap..];
                    body_offset = header_len;
                }
                let data_offset = body_offset - header_len;
                self.writer.write_flat(array, data_offset, body)?;
                let which = if header_len > 0 {
                    Some("data.npy")
                } else {
                    Some("data")
                };
                self.invalidate_aliases(array, which, Some((data_offset, body.len() as u64)));
            }
        }
        Ok(data.len() as u32)
    }

    /// Drops the kernel's cached pages of the other files showing the same bytes as a
    /// written one: `written` names the flat view written (None: a chunk file).
    fn invalidate_aliases(
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
        let children = self.children.read().unwrap();
        let header_len = npy::npy_header(&array.meta.dtype, &array.meta.shape).len() as i64;
        for (name, shift) in [("data", 0i64), ("data.npy", header_len)] {
            if Some(name) == written {
                continue;
            }
            if let Some(&ino) = children.get(&(dir, name.to_string())) {
                let (offset, len) = match range {
                    Some((o, l)) => (o as i64 + shift, l as i64),
                    None => (0, 0),
                };
                let _ = sender.send((ino, offset, len));
            }
        }
        drop(children);
        if let Some((offset, len)) = range {
            for linear in array.grid.chunks_touching(offset, len) {
                if let Ok(ino) = chunk_ino(array.id, linear) {
                    let _ = sender.send((ino, 0, 0));
                }
            }
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
                            tracing::warn!("idle write-back: {}", err.message);
                            array.dirty.lock().unwrap().last_write = Some(Instant::now());
                        }
                    }
                }
            })
            .expect("spawn write-back thread");
    }

    /// `truncate()`: sizes are fixed, so only the current size is accepted.
    pub fn set_size(&self, ino: u64, size: u64) -> FsResult<Attr> {
        let attr = self.getattr(ino)?;
        if attr.kind == EntryKind::Directory {
            return Err(FsError::new(libc::EISDIR, "is a directory"));
        }
        if self.options.read_only {
            return Err(FsError::read_only("mounted read-only"));
        }
        if size != attr.size {
            return Err(FsError::invalid(format!(
                "truncate of inode {ino} to {size} bytes refused: zarrfs files have a fixed size ({} bytes)",
                attr.size
            )));
        }
        Ok(attr)
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

    fn readahead_window(&self, array: &ZarrArray) -> u64 {
        let grid = &array.grid;
        let band = grid.chunk_shape().first().copied().unwrap_or(1)
            * grid.shape().iter().skip(1).product::<u64>()
            * grid.itemsize() as u64;
        let budget = self.reader.cache().budget() as u64 / 4;
        band.max(4 * grid.chunk_bytes() as u64).min(budget)
    }

    /// Reads up to `size` bytes at `offset` from an open file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        crate::stats::Stats::add(&self.reader.stats().read_requests, 1);
        let file = self.open_file(fh)?;
        let size = u64::from(size);
        match &file.target {
            FileTarget::Bytes(content) => {
                let start = (offset as usize).min(content.len());
                let end = (offset.saturating_add(size) as usize).min(content.len());
                Ok(content[start..end].to_vec())
            }
            FileTarget::Chunk { array, linear } => {
                self.reader.read_chunk(array, *linear, offset, size)
            }
            FileTarget::Flat { array, header } => {
                let header: &[u8] = header.as_ref().map(|h| h.as_slice()).unwrap_or(&[]);
                let header_len = header.len() as u64;
                let end = offset
                    .saturating_add(size)
                    .min(header_len + array.grid.total_bytes());
                if offset >= end {
                    return Ok(Vec::new());
                }
                let data_start = offset.max(header_len) - header_len;
                let data_end = end.max(header_len) - header_len;
                self.read_ahead(&file, array, offset, end, data_end);
                if offset >= header_len {
                    return self
                        .reader
                        .read_flat(array, data_start, data_end - data_start);
                }
                let mut out = header[offset as usize..end.min(header_len) as usize].to_vec();
                out.extend(
                    self.reader
                        .read_flat(array, data_start, data_end - data_start)?,
                );
                Ok(out)
            }
        }
    }

    /// Starts decoding the chunks after a sequential read, up to the read-ahead window.
    fn read_ahead(
        &self,
        file: &OpenFile,
        array: &Arc<ZarrArray>,
        offset: u64,
        end: u64,
        data_end: u64,
    ) {
        let mut seq = file.sequential.lock().unwrap();
        let sequential = offset == seq.next_offset || offset == 0;
        seq.next_offset = end;
        if !sequential {
            seq.prefetched_to = 0;
            return;
        }
        let target = data_end + self.readahead_window(array);
        let start = seq.prefetched_to.max(data_end);
        if target > start {
            seq.prefetched_to = self.reader.prefetch(array, start, target - start);
        }
    }
}
