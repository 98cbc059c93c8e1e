//! The virtual file tree: groups and arrays of the store become directories; each array
//! holds `data`, `data.npy`, `chunks/<i.j…>`, `meta.json` and `attrs.json`; the root holds
//! `.zarrfs/stats` (and on writable mounts `.zarrfs/discard`). Nodes are discovered lazily,
//! on lookup or listing. Array directories and files carry the array's description as
//! extended attributes (`user.zarr.*`).
//!
//! Inode numbers: nodes are numbered from 1 (the root) in a table; chunk files, which can
//! number in the millions, get computed numbers (high bit set, array id, chunk position)
//! and take no table space.

mod files;
pub mod npy;
#[cfg(test)]
mod pattern_tests;
pub mod perms;
mod sync;
mod xattr;

use files::OpenFile;
use perms::{Owner, Ownership};
pub use sync::Invalidation;

use crate::array::ZarrArray;
use crate::error::{FsError, FsResult};
use crate::jsonl::JsonLines;
use crate::metadata::{self, Catalog, Consolidated, Located, NodeMeta, Origin};
use crate::reader::ChunkReader;
use crate::store::{join_key, ObjectVersion, Store};
use crate::writer::ChunkWriter;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;
const CHUNK_INO_FLAG: u64 = 1 << 63;
const CHUNK_ARRAY_SHIFT: u32 = 40;
const MAX_CHUNK_ARRAYS: u64 = 1 << (63 - CHUNK_ARRAY_SHIFT);
/// Preferred I/O size reported for the data views (readers size their buffers by it).
pub const PREFERRED_IO_SIZE: u32 = 4 << 20;
/// Preferred I/O size of `data.npy`: `np.load` reads the header through a buffer of this
/// size, and every byte of it past the header is data that has to be decoded (4 MiB can
/// be a whole band of chunks, for a reader that then maps a few of them).
pub const NPY_IO_SIZE: u32 = 4096;
/// The control file that drops unsaved chunks (writable mounts): whatever is written to
/// it drops every chunk not written back yet, and reading the same open file then lists
/// them, one path in the mount per line.
pub const DISCARD_FILE: &str = ".zarrfs/discard";

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
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
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
    /// `data.jsonl` of a variable-length array.
    JsonLines {
        array: Arc<ZarrArray>,
    },
    Document {
        content: Arc<Vec<u8>>,
        mtime: SystemTime,
    },
    /// `attrs.json` of the group or array at `path`.
    Attributes {
        path: String,
        shown: Mutex<ShownAttributes>,
    },
    ControlDir,
    Stats,
    /// [`DISCARD_FILE`].
    Discard,
}

/// The attributes an `attrs.json` shows, and what they were read from.
#[derive(Debug)]
struct ShownAttributes {
    content: Arc<Vec<u8>>,
    mtime: SystemTime,
    /// Versions of the documents that may hold them when they were read (see
    /// [`Catalog::attribute_documents`]); `None`: absent, or not known.
    versions: [Option<ObjectVersion>; 2],
    /// When those versions were last compared with the store's.
    checked: Instant,
}

impl ShownAttributes {
    /// Attributes read at mount (or on first lookup), from documents of versions not known:
    /// the first check reads them again unless the documents are absent.
    fn new(attributes: &Value, mtime: SystemTime) -> Mutex<Self> {
        Mutex::new(ShownAttributes {
            content: json_document(attributes),
            mtime,
            versions: [None, None],
            checked: Instant::now(),
        })
    }
}

/// Where a node's owner and mode come from: the store directory of the group or array it
/// belongs to, and that node's metadata document (`None` for implicit groups).
#[derive(Debug, Clone, Default)]
struct Source {
    dir: String,
    doc: Option<String>,
}

#[derive(Debug)]
struct Node {
    parent: u64,
    kind: NodeKind,
    source: Source,
}

/// How the data views use the kernel's page cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Read-only mounts keep pages across opens; writable mounts use direct I/O (where
    /// mmap() of such files is allowed) so aliasing views never disagree.
    #[default]
    Auto,
    /// Always direct I/O: every read is served from zarrfs's own chunk cache.
    DirectIo,
    /// Always the page cache; on writable mounts a write is answered once the pages of the
    /// other views of its bytes are dropped.
    KernelCache,
}

/// Options of the tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Refuse every write.
    pub read_only: bool,
    /// Page-cache policy of the data views.
    pub cache_mode: CacheMode,
    /// Owners and modes shown instead of the store's.
    pub ownership: Ownership,
    /// Largest decoded chunk read (`None`: no limit); arrays with larger chunks are listed
    /// and their reads fail with EIO.
    pub max_chunk_bytes: Option<u64>,
    /// Never use the store's consolidated metadata (`--no-consolidated`).
    pub ignore_consolidated: bool,
}

/// The virtual file tree over one store.
#[derive(Debug)]
pub struct Tree {
    store: Arc<dyn Store>,
    catalog: Catalog,
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
    /// When the metadata of each array node was last read again, by inode.
    arrays_checked: Mutex<HashMap<u64, Instant>>,
    invalidations: Mutex<Option<Sender<sync::Batch>>>,
    /// Whether the kernel lets direct-I/O files be mmap()ed.
    direct_io_allowed: std::sync::atomic::AtomicBool,
    /// When each array's views were last opened with their cached chunks dropped (remote
    /// stores), by array id.
    views_checked: Mutex<HashMap<u32, std::time::Instant>>,
    /// When each view file was last opened without the kernel's cached pages, by inode
    /// (remote stores, and arrays whose changes cannot be told).
    pages_checked: Mutex<HashMap<u64, Instant>>,
    /// The stored epoch of its array (see [`ZarrArray::stored_epoch`]) when each view file
    /// was last opened, by inode (local stores).
    pages_shown: Mutex<HashMap<u64, u64>>,
    /// JSON lines of variable-length arrays, by array id, built on first use.
    json_lines: Mutex<HashMap<u32, Arc<JsonLines>>>,
}

/// A JSON document served as a file: pretty, numbers exactly as the store holds them,
/// non-finite numbers bare as Python writes them.
fn json_document(value: &Value) -> Arc<Vec<u8>> {
    Arc::new(metadata::json::to_python_text(value))
}

/// The name of a chunk file: the grid position, with `.jsonl` for variable-length arrays.
fn chunk_file_name(array: &ZarrArray, linear: u64) -> String {
    let name = array.grid.chunk_name(linear);
    if array.meta.dtype.is_variable() {
        format!("{name}.jsonl")
    } else {
        name
    }
}

/// The grid position part of a chunk file's name (`None` when the suffix is wrong).
fn chunk_file_name_stem<'a>(array: &ZarrArray, name: &'a str) -> Option<&'a str> {
    if array.meta.dtype.is_variable() {
        name.strip_suffix(".jsonl")
    } else {
        Some(name)
    }
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
            catalog: Catalog::with_consolidated(
                store.clone(),
                Consolidated::for_store(store.as_ref(), !options.ignore_consolidated),
            ),
            store,
            options,
            writer: ChunkWriter::new(reader.clone()),
            array_dirs: RwLock::new(HashMap::new()),
            arrays_checked: Mutex::new(HashMap::new()),
            invalidations: Mutex::new(None),
            direct_io_allowed: std::sync::atomic::AtomicBool::new(false),
            views_checked: Mutex::new(HashMap::new()),
            pages_checked: Mutex::new(HashMap::new()),
            pages_shown: Mutex::new(HashMap::new()),
            json_lines: Mutex::new(HashMap::new()),
            reader,
            nodes: RwLock::new(Vec::new()),
            children: RwLock::new(HashMap::new()),
            arrays: RwLock::new(Vec::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mount_time: SystemTime::now(),
        };
        let (root, source) = match tree.catalog.root() {
            Ok(node) => tree.node_kind_for("", node)?,
            Err(err) => return Err(FsError::invalid(err.to_string())),
        };
        if let NodeKind::ArrayDir { array } = &root {
            tree.array_dirs.write().insert(array.id, ROOT_INO);
        }
        tree.nodes.write().push(Arc::new(Node {
            parent: ROOT_INO,
            kind: root,
            source,
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

    /// The node for the store path `path`, with where its owner and mode come from.
    fn node_kind_for(&self, path: &str, node: Located) -> FsResult<(NodeKind, Source)> {
        let doc = match node.origin {
            Origin::Document(key) => Some(key),
            Origin::Consolidated(key) => Some(key),
            Origin::Implicit => {
                tracing::info!(
                    "{}: no Zarr metadata; shown as an implicit group",
                    self.store.describe(path)
                );
                None
            }
        };
        let mtime = self.mtime_of(doc.as_deref().unwrap_or(path));
        let source = Source {
            dir: path.to_string(),
            doc,
        };
        let kind = match node.meta {
            NodeMeta::Group { .. } => NodeKind::Group {
                path: path.to_string(),
                mtime,
            },
            NodeMeta::Array(mut meta) => {
                let chunk_bytes = meta
                    .chunk_shape
                    .iter()
                    .product::<u64>()
                    .saturating_mul(meta.dtype.size as u64);
                match self.options.max_chunk_bytes {
                    Some(limit) if chunk_bytes > limit && meta.unsupported.is_none() => {
                        meta.unsupported = Some(format!(
                            "chunks of {chunk_bytes} bytes exceed the limit of {limit} \
                             (--max-chunk-size)"
                        ));
                    }
                    _ => {}
                }
                let mut arrays = self.arrays.write();
                let id = arrays.len() as u32;
                let mut array = ZarrArray::new(id, self.store.clone(), path, *meta, mtime);
                if let Some(doc) = &source.doc {
                    array = array.with_document(doc);
                }
                let array = Arc::new(array);
                arrays.push(array.clone());
                NodeKind::ArrayDir { array }
            }
        };
        Ok((kind, source))
    }

    fn node(&self, ino: u64) -> FsResult<Arc<Node>> {
        if ino == 0 || ino & CHUNK_INO_FLAG != 0 {
            return Err(FsError::not_found(format!("no node {ino}")));
        }
        self.nodes
            .read()
            .get((ino - 1) as usize)
            .cloned()
            .ok_or_else(|| FsError::not_found(format!("no node {ino}")))
    }

    fn array_by_id(&self, id: u32) -> FsResult<Arc<ZarrArray>> {
        self.arrays
            .read()
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
        match self.catalog.node(path) {
            Ok(Some(Located {
                meta: NodeMeta::Group { attributes },
                ..
            })) => Ok(attributes),
            Ok(_) => Ok(Value::Object(Default::default())),
            Err(err) => Err(FsError::io(err.to_string())),
        }
    }

    /// Works out what `name` under `parent` is, without registering it.
    fn resolve_child(
        &self,
        parent: u64,
        node: &Node,
        name: &str,
    ) -> FsResult<Option<(NodeKind, Source)>> {
        let kind = match &node.kind {
            NodeKind::Group { path, mtime } => match name {
                "attrs.json" => Some(NodeKind::Attributes {
                    path: path.clone(),
                    shown: ShownAttributes::new(&self.group_attributes(path)?, *mtime),
                }),
                ".zarrfs" if parent == ROOT_INO => Some(NodeKind::ControlDir),
                _ if name.starts_with('.') || metadata::is_metadata_name(name) => None,
                _ => {
                    let child = join_key(path, name);
                    return match self.catalog.node(&child) {
                        Ok(Some(meta)) => Ok(Some(self.node_kind_for(&child, meta)?)),
                        Ok(None) => Ok(None),
                        Err(err) => {
                            crate::report::warn(&format!("{err}; left out of the mount"));
                            Ok(None)
                        }
                    };
                }
            },
            NodeKind::ArrayDir { array } => {
                let array = array.clone();
                let variable = array.meta.dtype.is_variable();
                match name {
                    ".zarrfs" if parent == ROOT_INO => Some(NodeKind::ControlDir),
                    "data.jsonl" if variable => Some(NodeKind::JsonLines { array }),
                    "data" | "data.npy" if variable => None,
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
                    "attrs.json" => Some(NodeKind::Attributes {
                        path: array.path.clone(),
                        shown: ShownAttributes::new(&array.meta.attributes, array.mtime),
                    }),
                    _ => None,
                }
            }
            NodeKind::ControlDir => match name {
                "stats" => Some(NodeKind::Stats),
                "discard" if !self.options.read_only => Some(NodeKind::Discard),
                _ => None,
            },
            _ => None,
        };
        // The files of a group or array take their owner and mode from it.
        Ok(kind.map(|kind| (kind, node.source.clone())))
    }

    /// Returns the inode of `name` under `parent`, registering it on first sight.
    fn child_ino(&self, parent: u64, name: &str) -> FsResult<u64> {
        let node = self.node(parent)?;
        if let NodeKind::ChunksDir { array } = &node.kind {
            let linear = chunk_file_name_stem(array, name)
                .and_then(|stem| array.grid.parse_chunk_name(stem))
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
        let known = self.children.read().get(&key).copied();
        if let Some(ino) = known {
            return Ok(self.array_as_stored_now(&node, name, ino));
        }
        let (kind, source) = self
            .resolve_child(parent, &node, name)?
            .ok_or_else(|| FsError::not_found(format!("no entry {name}")))?;
        Ok(self.add_child(parent, name, kind, source, None))
    }

    /// Enters a new node `kind` as the child `name` of `parent` and returns its inode: the
    /// one entered meanwhile by another lookup instead, unless it `replaces` that inode.
    fn add_child(
        &self,
        parent: u64,
        name: &str,
        kind: NodeKind,
        source: Source,
        replaces: Option<u64>,
    ) -> u64 {
        let key = (parent, name.to_string());
        let mut children = self.children.write();
        if let Some(&ino) = children.get(&key) {
            if replaces != Some(ino) {
                return ino;
            }
        }
        let mut nodes = self.nodes.write();
        // Tests check that a panic here, with both locks held, fails this lookup alone.
        crate::isolation::inject("lookup", name);
        let array_id = match &kind {
            NodeKind::ArrayDir { array } => Some(array.id),
            _ => None,
        };
        nodes.push(Arc::new(Node {
            parent,
            kind,
            source,
        }));
        let ino = nodes.len() as u64;
        children.insert(key, ino);
        if let Some(id) = array_id {
            self.array_dirs.write().insert(id, ino);
        }
        ino
    }

    /// The inode of the array `name` in the group `group`, `ino` as looked up before: once
    /// per TTL of the store (see [`crate::store::Profile::revalidate_after`]) its metadata
    /// document is read again, and an array whose document another program changed (shape,
    /// data type, chunks, codecs, fill value, v3 attributes) becomes a new node, with a new
    /// inode, so that the kernel drops what it knew of the old one; files already open keep
    /// the array they opened.
    fn array_as_stored_now(&self, group: &Node, name: &str, ino: u64) -> u64 {
        let (NodeKind::Group { path, .. }, Some(ttl)) =
            (&group.kind, self.store.profile().revalidate_after)
        else {
            return ino;
        };
        let Ok(child) = self.node(ino) else {
            return ino;
        };
        let NodeKind::ArrayDir { array } = &child.kind else {
            return ino;
        };
        let now = Instant::now();
        {
            // Never checked since it was entered: checked now.
            let mut checked = self.arrays_checked.lock();
            if let Some(last) = checked.insert(ino, now) {
                if now.saturating_duration_since(last) < ttl {
                    checked.insert(ino, last);
                    return ino;
                }
            }
        }
        let path = join_key(path, name);
        let located = match self.catalog.node(&path) {
            Ok(Some(located)) => located,
            // Gone or unreadable: reads of the array say so (EIO), as for a deleted store.
            Ok(None) | Err(_) => return ino,
        };
        if let NodeMeta::Array(meta) = &located.meta {
            if meta.document == array.meta.document {
                return ino;
            }
        }
        match self.node_kind_for(&path, located) {
            Ok((kind, source)) => {
                tracing::info!(
                    "{}: changed in the store; shown anew",
                    self.store.describe(&path)
                );
                let new = self.add_child(child.parent, name, kind, source, Some(ino));
                self.arrays_checked.lock().insert(new, now);
                new
            }
            Err(_) => ino,
        }
    }

    /// Looks up `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let found = self
            .child_ino(parent, name)
            .and_then(|ino| self.getattr(ino));
        match &found {
            Ok(attr) => tracing::debug!("lookup {name:?} in inode {parent}: inode {}", attr.ino),
            Err(err) => tracing::debug!("lookup {name:?} in inode {parent}: {}", err.message),
        }
        found
    }

    /// Sizes of the file system holding the store (zeros when it has none to tell).
    pub fn fs_stats(&self) -> crate::store::FsStats {
        self.store
            .fs_stats()
            .unwrap_or_else(|err| {
                crate::report::warn(&format!("statfs of {}: {err}", self.store.describe("")));
                None
            })
            .unwrap_or_default()
    }

    /// The owner and mode the store gives `key`, if it holds an object or prefix there.
    fn store_owner(&self, key: &str, prefix: bool) -> Option<Owner> {
        let info = self.store.info(key).ok().flatten()?;
        (info.is_prefix == prefix).then(|| info.into())
    }

    /// The owner and mode of the store directory `dir`; of the store root when there is no
    /// such directory (a node known from consolidated metadata only).
    fn dir_owner(&self, dir: &str) -> Owner {
        self.store_owner(dir, true)
            .or_else(|| self.store_owner("", true))
            .unwrap_or_else(|| {
                // SAFETY: getuid/getgid have no preconditions.
                let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
                Owner {
                    uid,
                    gid,
                    mode: 0o755,
                }
            })
    }

    /// The owner and mode of a node's metadata document; without one, its directory's
    /// without the x bits.
    fn doc_owner(&self, source: &Source) -> Owner {
        source
            .doc
            .as_deref()
            .and_then(|doc| self.store_owner(doc, false))
            .unwrap_or_else(|| self.dir_owner(&source.dir).masked(0o666))
    }

    /// Where the owner and mode of an array's files come from.
    fn array_source(&self, array: &ZarrArray) -> Source {
        let dir = self.array_dirs.read().get(&array.id).copied();
        dir.and_then(|ino| self.node(ino).ok())
            .map(|node| node.source.clone())
            .unwrap_or_else(|| Source {
                dir: array.path.clone(),
                doc: Some(array.metadata_key()),
            })
    }

    /// The attributes of an entry whose owner and mode in the store are `owner`.
    fn attr(
        &self,
        ino: u64,
        kind: EntryKind,
        size: u64,
        mtime: SystemTime,
        owner: Owner,
        writable: bool,
    ) -> Attr {
        let directory = kind == EntryKind::Directory;
        let writable = writable && !self.options.read_only;
        let shown = self.options.ownership.show(owner, directory, writable);
        Attr {
            ino,
            kind,
            size,
            perm: shown.mode as u16,
            mtime,
            blksize: if directory { 4096 } else { PREFERRED_IO_SIZE },
            uid: shown.uid,
            gid: shown.gid,
        }
    }

    /// What an `attrs.json` shows: its attributes, read again first when the documents that
    /// may hold them changed in the store since they were read (compared at most once per
    /// the store's TTL; on stores that cannot tell versions cheaply, never). A document
    /// modified too recently to be told apart from a rewrite in place is read again at
    /// every check. A failed read keeps what was shown.
    fn current_attributes(
        &self,
        path: &str,
        shown: &Mutex<ShownAttributes>,
    ) -> (Arc<Vec<u8>>, SystemTime) {
        let mut shown = shown.lock();
        let now = Instant::now();
        let due = self
            .store
            .profile()
            .revalidate_after
            .is_some_and(|ttl| now.saturating_duration_since(shown.checked) >= ttl);
        if due {
            shown.checked = now;
            let versions = Catalog::attribute_documents(path)
                .map(|key| self.store.object_version(&key).ok().flatten());
            let wall = SystemTime::now();
            let settled = versions
                .iter()
                .flatten()
                .all(|version| crate::stored::settled(version, wall));
            if versions != shown.versions || !settled {
                match self.catalog.attributes(path) {
                    Ok(attributes) => {
                        shown.content = json_document(&attributes);
                        shown.versions = versions;
                        if let Some(mtime) = versions.iter().flatten().map(|v| v.mtime).max() {
                            shown.mtime = mtime;
                        }
                    }
                    Err(err) => crate::report::warn(&format!("{err}; attrs.json left as it was")),
                }
            }
        }
        (shown.content.clone(), shown.mtime)
    }

    /// The JSON lines of a variable-length array, built on first use.
    pub(crate) fn json_lines(&self, array: &ZarrArray) -> FsResult<Arc<JsonLines>> {
        if let Some(lines) = self.json_lines.lock().get(&array.id) {
            return Ok(lines.clone());
        }
        let lines = Arc::new(crate::jsonl::build(
            array,
            &self.reader,
            self.reader.cache().budget(),
        )?);
        self.json_lines.lock().insert(array.id, lines.clone());
        Ok(lines)
    }

    /// The size of a JSON lines view (0 when it cannot be built; opening it then says why).
    fn json_lines_size(&self, array: &ZarrArray, pick: impl Fn(&JsonLines) -> usize) -> u64 {
        self.json_lines(array)
            .map_or(0, |lines| pick(&lines) as u64)
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        use EntryKind::{Directory, File};
        if ino & CHUNK_INO_FLAG != 0 {
            let (array, linear) = self.decode_chunk_ino(ino)?;
            let (size, writable) = if array.meta.dtype.is_variable() {
                let size =
                    self.json_lines_size(&array, |lines| lines.chunks[linear as usize].len());
                (size, false)
            } else {
                (array.grid.chunk_bytes() as u64, true)
            };
            // An absent chunk: the array directory's owner, the metadata document's mode.
            let (mtime, owner) = match array.stored_chunk_info(linear) {
                Some(info) => (info.mtime, info.into()),
                None => {
                    let mode = self.doc_owner(&self.array_source(&array)).mode;
                    let owner = Owner {
                        mode,
                        ..self.dir_owner(&array.path)
                    };
                    (array.mtime, owner)
                }
            };
            return Ok(self.attr(ino, File, size, mtime, owner, writable));
        }
        let node = self.node(ino)?;
        let source = &node.source;
        Ok(match &node.kind {
            NodeKind::Group { mtime, .. } => {
                self.attr(ino, Directory, 0, *mtime, self.dir_owner(&source.dir), true)
            }
            NodeKind::ArrayDir { array } | NodeKind::ChunksDir { array } => {
                let owner = self.dir_owner(&source.dir);
                self.attr(ino, Directory, 0, array.mtime, owner, true)
            }
            NodeKind::ControlDir => self.attr(
                ino,
                Directory,
                0,
                self.mount_time,
                self.dir_owner(""),
                false,
            ),
            NodeKind::Data { array } => {
                let size = array.grid.total_bytes();
                self.attr(ino, File, size, array.mtime, self.doc_owner(source), true)
            }
            NodeKind::Npy { array, header } => {
                let size = header.len() as u64 + array.grid.total_bytes();
                Attr {
                    blksize: NPY_IO_SIZE,
                    ..self.attr(ino, File, size, array.mtime, self.doc_owner(source), true)
                }
            }
            NodeKind::Document { content, mtime } => {
                let size = content.len() as u64;
                self.attr(ino, File, size, *mtime, self.doc_owner(source), false)
            }
            NodeKind::Attributes { path, shown } => {
                let (content, mtime) = self.current_attributes(path, shown);
                let size = content.len() as u64;
                self.attr(ino, File, size, mtime, self.doc_owner(source), false)
            }
            NodeKind::Stats => {
                let size = self.stats_text().len() as u64;
                let owner = self.dir_owner("").masked(0o444);
                self.attr(ino, File, size, SystemTime::now(), owner, false)
            }
            NodeKind::Discard => {
                // Whoever may write the store's directory, and no one else.
                let mut attr = self.attr(ino, File, 0, SystemTime::now(), self.dir_owner(""), true);
                attr.perm &= 0o600;
                attr
            }
            NodeKind::JsonLines { array } => {
                let size = self.json_lines_size(array, |lines| lines.data.len());
                self.attr(ino, File, size, array.mtime, self.doc_owner(source), false)
            }
        })
    }

    /// The `.zarrfs/stats` text: the reader's counters, then the store's own.
    pub fn stats_text(&self) -> Vec<u8> {
        let cache = self.reader.cache();
        let mut text = self.reader.stats().render(
            cache.bytes() as u64,
            cache.len() as u64,
            cache.budget() as u64,
        );
        for (name, value) in self.store.counters() {
            text.push_str(&format!("{name} {value}\n"));
        }
        text.into_bytes()
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
                    name: chunk_file_name(array, linear),
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
                let children = self
                    .catalog
                    .child_names(path)
                    .map_err(|e| FsError::from_io(&self.store.describe(path), &e))?;
                for child in children {
                    if names.contains(&child) {
                        let message = format!(
                            "{}: hidden by the mount's own {child}; not shown",
                            self.store.describe(&join_key(path, &child))
                        );
                        if crate::report::first(&message) {
                            tracing::warn!("{message}");
                        }
                    } else {
                        names.push(child);
                    }
                }
                names
            }
            NodeKind::ArrayDir { array } => {
                let views: &[&str] = if array.meta.dtype.is_variable() {
                    &["data.jsonl", "chunks", "meta.json", "attrs.json"]
                } else {
                    &["data", "data.npy", "chunks", "meta.json", "attrs.json"]
                };
                let mut names: Vec<String> = views.iter().map(|s| s.to_string()).collect();
                if ino == ROOT_INO {
                    names.push(".zarrfs".to_string());
                }
                names
            }
            NodeKind::ControlDir => vec!["stats".to_string(), "discard".to_string()],
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DirectoryStore;

    pub(super) fn tree(read_only: bool) -> (tempfile::TempDir, Tree) {
        tree_with_budget(read_only, 1 << 24)
    }

    fn tree_with_budget(read_only: bool, budget: usize) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        crate::sample::write_sample_store(dir.path(), crate::sample::SampleFormat::V2).unwrap();
        let store = Arc::new(DirectoryStore::open(dir.path()).unwrap());
        let reader = Arc::new(ChunkReader::with_budget(budget, 2).unwrap());
        let tree = Tree::new(
            store,
            reader,
            TreeOptions {
                read_only,
                ..Default::default()
            },
        )
        .unwrap();
        (dir, tree)
    }

    pub(super) fn walk(tree: &Tree, path: &str) -> Attr {
        let mut ino = ROOT_INO;
        let mut attr = tree.getattr(ino).unwrap();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            attr = tree.lookup(ino, part).unwrap();
            ino = attr.ino;
        }
        attr
    }

    fn names(tree: &Tree, ino: u64) -> Vec<String> {
        let mut out = Vec::new();
        tree.readdir(ino, 0, |entry, _| {
            out.push(entry.name);
            false
        })
        .unwrap();
        out
    }

    #[test]
    fn groups_arrays_and_files_resolve_lazily() {
        let (_dir, tree) = tree(true);
        let root = names(&tree, ROOT_INO);
        for want in [
            ".",
            "..",
            "attrs.json",
            ".zarrfs",
            "climate",
            "imaging",
            "counts",
        ] {
            assert!(root.contains(&want.to_string()), "{want} in {root:?}");
        }
        let array = walk(&tree, "climate/temperature");
        assert_eq!(array.kind, EntryKind::Directory);
        assert_eq!(
            names(&tree, array.ino)[2..],
            ["data", "data.npy", "chunks", "meta.json", "attrs.json"]
        );
        let data = walk(&tree, "climate/temperature/data");
        assert_eq!(data.size, 24 * 90 * 180 * 4);
        assert_eq!(data.perm, 0o444);
        let npy = walk(&tree, "climate/temperature/data.npy");
        assert_eq!(npy.size % 64, data.size % 64);
        let chunks = walk(&tree, "climate/temperature/chunks");
        assert_eq!(names(&tree, chunks.ino).len(), 2 + 4 * 2 * 2);
        assert_eq!(
            walk(&tree, "climate/temperature/chunks/3.1.1").size,
            6 * 45 * 90 * 4
        );
        assert_eq!(
            tree.lookup(chunks.ino, "4.0.0").unwrap_err().errno,
            libc::ENOENT
        );
        assert_eq!(
            tree.lookup(ROOT_INO, "nope").unwrap_err().errno,
            libc::ENOENT
        );
        assert_eq!(tree.lookup(data.ino, "x").unwrap_err().errno, libc::ENOTDIR);
        // Paged listing resumes where it stopped.
        let mut first = Vec::new();
        tree.readdir(chunks.ino, 0, |e, next| {
            first.push((e.name, next));
            first.len() == 5
        })
        .unwrap();
        let mut rest = Vec::new();
        tree.readdir(chunks.ino, first.last().unwrap().1, |e, _| {
            rest.push(e.name);
            false
        })
        .unwrap();
        assert_eq!(first.len() + rest.len(), 2 + 16);
    }

    #[test]
    fn reads_agree_across_views() {
        let (_dir, tree) = tree(true);
        let data = walk(&tree, "counts/data");
        let (fh, options) = tree.open(data.ino, false).unwrap();
        assert!(options.keep_cache);
        let bytes = tree.read(fh, 0, 1 << 20).unwrap();
        assert_eq!(bytes.len(), 4000);
        let values: Vec<i32> = bytes
            .chunks(4)
            .map(|b| i32::from_be_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values[..4], [0, 1, 4, 9]);
        assert_eq!(values[999], 999 * 999);
        let npy = walk(&tree, "counts/data.npy");
        let (nfh, _) = tree.open(npy.ino, false).unwrap();
        let header_len = (npy.size - data.size) as usize;
        let whole = tree.read(nfh, 0, npy.size as u32).unwrap();
        assert_eq!(&whole[header_len..], &bytes[..]);
        let chunk = walk(&tree, "counts/chunks/3");
        let (cfh, _) = tree.open(chunk.ino, false).unwrap();
        let last = tree.read(cfh, 0, 1024).unwrap();
        assert_eq!(&last[..4 * 232], &bytes[768 * 4..]);
        assert!(
            last[4 * 232..].iter().all(|&b| b == 0),
            "padding shows the fill value"
        );
        assert_eq!(tree.open(data.ino, true).unwrap_err().errno, libc::EROFS);
        assert_eq!(
            tree.set_size(data.ino, 4000).unwrap_err().errno,
            libc::EROFS
        );
        let stats = String::from_utf8(tree.stats_text()).unwrap();
        assert!(stats.contains("read_requests 3"), "{stats}");
    }

    #[test]
    fn writes_go_through_and_sizes_stay_fixed() {
        let (_dir, tree) = tree(false);
        let data = walk(&tree, "counts/data");
        let (fh, _) = tree.open(data.ino, true).unwrap();
        assert_eq!(tree.write(fh, 8, &[0, 0, 0, 42]).unwrap(), 4);
        assert_eq!(tree.read(fh, 8, 4).unwrap(), vec![0, 0, 0, 42]);
        tree.fsync(fh).unwrap();
        tree.release(fh);
        assert_eq!(tree.set_size(data.ino, 4000).unwrap().size, 4000);
        assert_eq!(tree.set_size(data.ino, 10).unwrap_err().errno, libc::EINVAL);
        let npy = walk(&tree, "counts/data.npy");
        let (nfh, _) = tree.open(npy.ino, true).unwrap();
        assert_eq!(tree.write(nfh, 0, b"X").unwrap_err().errno, libc::EPERM);
        let meta = walk(&tree, "counts/meta.json");
        assert_eq!(tree.open(meta.ino, true).unwrap_err().errno, libc::EACCES);
        assert_eq!(tree.namespace_change_error().errno, libc::EPERM);
        tree.flush_all(true).unwrap();
    }

    /// One counter of `.zarrfs/stats`.
    pub(super) fn stat(tree: &Tree, name: &str) -> u64 {
        let text = String::from_utf8(tree.stats_text()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Reads a file from start to end in `request`-byte reads on one handle.
    pub(super) fn read_whole(tree: &Tree, attr: &Attr, request: u32) -> Vec<u8> {
        let (fh, _) = tree.open(attr.ino, false).unwrap();
        let mut bytes = Vec::new();
        while (bytes.len() as u64) < attr.size {
            bytes.extend(tree.read(fh, bytes.len() as u64, request).unwrap());
        }
        tree.release(fh);
        bytes
    }

    #[test]
    fn a_band_wider_than_the_cache_is_decoded_in_parts_once_each() {
        let (_dir, roomy) = tree(true);
        let expected = read_whole(&roomy, &walk(&roomy, "climate/temperature/data"), 64 << 10);
        // Chunks of 97,200 bytes (6 rows of 16,200), 4 per band; the cache holds 2. A part
        // is the rows of a chunk that take half the budget across the band: one row.
        let (_dir2, tree) = tree_with_budget(true, 200_000);
        let data = walk(&tree, "climate/temperature/data");
        assert_eq!(read_whole(&tree, &data, 64 << 10), expected);
        // Each part decodes its chunk once (a decode ahead racing the reader past its part
        // may add one); without parts or holding the band, each of the 24 requests would
        // decode its 4 chunks again.
        let decoded = stat(&tree, "chunks_decoded");
        assert!(
            (16 * 6..=16 * 6 + 8).contains(&decoded),
            "{decoded} decodes"
        );
    }

    #[test]
    fn a_pass_keeps_what_another_sequential_reader_has_yet_to_read() {
        let (_dir, tree) = tree(true);
        let data = walk(&tree, "climate/temperature/data");
        let (follower, _) = tree.open(data.ino, false).unwrap();
        let mut behind = tree.read(follower, 0, 64 << 10).unwrap();
        // Another reader passes the whole array meanwhile.
        let whole = read_whole(&tree, &data, 64 << 10);
        assert_eq!(stat(&tree, "chunks_released_after_scan"), 0);
        while (behind.len() as u64) < data.size {
            behind.extend(tree.read(follower, behind.len() as u64, 64 << 10).unwrap());
        }
        tree.release(follower);
        assert_eq!(behind, whole);
        assert_eq!(stat(&tree, "chunks_decoded"), 16, "no chunk decoded twice");
        assert_eq!(stat(&tree, "chunks_released_after_scan"), 12);
    }

    #[test]
    fn passes_over_an_array_larger_than_the_cache_are_never_kept() {
        // 16 chunks of 97,200 bytes (1,555,200 in all); the cache holds 15.
        let (_dir, tree) = tree_with_budget(true, 1_500_000);
        let data = walk(&tree, "climate/temperature/data");
        let first = read_whole(&tree, &data, 64 << 10);
        let second = read_whole(&tree, &data, 64 << 10);
        assert_eq!(first, second);
        assert_eq!(stat(&tree, "chunks_released_after_scan"), 2 * 12);
        assert_eq!(
            tree.reader.cache().len(),
            4,
            "only the last band, never released"
        );
    }

    #[test]
    fn a_sequential_pass_releases_what_it_passed_and_a_second_pass_keeps_it() {
        let (_dir, tree) = tree(true);
        let data = walk(&tree, "climate/temperature/data");
        // 24×90×180 float32 in 6×45×90 chunks: 4 bands of 4 chunks along the first axis.
        let stat = |name: &str| stat(&tree, name);
        let pass = || read_whole(&tree, &data, 64 << 10);
        let cache = tree.reader.cache().clone();
        let first = pass();
        assert_eq!(stat("chunks_released_after_scan"), 12, "bands 0–2 released");
        assert_eq!(
            cache.len(),
            4,
            "only the band being read when it ended stays"
        );
        let second = pass();
        assert_eq!(first, second);
        assert_eq!(stat("chunks_released_after_scan"), 12);
        assert_eq!(cache.len(), 16, "a second pass keeps what it decodes");
        // A chunk first read at random is kept even when a sequential pass passes it.
        let counts = walk(&tree, "counts/data"); // 1000 int32 in 4 chunks of 256
        let (fh, _) = tree.open(counts.ino, false).unwrap();
        tree.read(fh, 100, 8).unwrap();
        tree.release(fh);
        assert_eq!(cache.len(), 17);
        let (fh, _) = tree.open(counts.ino, false).unwrap();
        for offset in (0..4000).step_by(1024) {
            tree.read(fh, offset, 1024).unwrap();
        }
        assert_eq!(stat("chunks_released_after_scan"), 12 + 2, "chunks 1 and 2");
        assert_eq!(
            cache.len(),
            17 + 1,
            "chunk 0 kept, chunk 3 still being read"
        );
    }

    #[test]
    fn decodes_ahead_that_a_scan_has_outrun_are_dropped() {
        let (_dir, tree) = tree(true);
        let stat = |name: &str| stat(&tree, name);
        // Keep every decoder busy so that the reader reads each chunk itself before the
        // decodes started ahead of it get a thread.
        let pool = tree.reader.pool().clone();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Arc::new(Mutex::new(blocked));
        for _ in 0..pool.current_num_threads() {
            let blocked = blocked.clone();
            pool.spawn(move || {
                let _ = blocked.lock().recv();
            });
        }
        let counts = walk(&tree, "counts/data"); // 1000 int32 in 4 chunks of 256
        let (fh, _) = tree.open(counts.ino, false).unwrap();
        let mut bytes = Vec::new();
        for offset in (0..4000).step_by(1024) {
            bytes.extend(tree.read(fh, offset, 1024).unwrap());
        }
        assert_eq!(stat("chunks_decoded"), 4);
        assert_eq!(
            stat("chunks_prefetched"),
            4,
            "queued behind the busy decoders"
        );
        drop(release);
        tree.reader.wait_for_prefetches();
        assert_eq!(
            stat("chunks_decoded"),
            4,
            "chunks the reader already read are not decoded again"
        );
        assert_eq!(stat("prefetches_dropped"), 3, "chunks 0–2 (3 is cached)");
        assert_eq!(stat("chunks_released_after_scan"), 3);
        assert_eq!(tree.reader.cache().len(), 1, "chunk 3, still being read");
        tree.release(fh);
        assert_eq!(bytes, read_whole(&tree, &counts, 4096));
    }

    #[test]
    fn a_chunk_file_read_to_its_end_is_released_and_eof_decodes_nothing() {
        let (_dir, tree) = tree(true);
        let stat = |name: &str| stat(&tree, name);
        // The last chunk of `counts`: nothing follows it in either order, so nothing is
        // decoded ahead.
        let chunk = walk(&tree, "counts/chunks/3");
        let (fh, _) = tree.open(chunk.ino, false).unwrap();
        let mut bytes = tree.read(fh, 0, 600).unwrap();
        bytes.extend(tree.read(fh, 600, 600).unwrap());
        assert_eq!(bytes.len(), 1024);
        assert_eq!(stat("chunks_released_after_scan"), 1);
        assert!(tree.read(fh, 1024, 4096).unwrap().is_empty());
        assert_eq!(
            stat("chunks_decoded"),
            1,
            "a read at the end decodes nothing"
        );
        tree.release(fh);
    }

    #[test]
    fn held_chunks_never_hide_a_write() {
        let (_dir, tree) = tree(false);
        let data = walk(&tree, "climate/temperature/data");
        let (reader, _) = tree.open(data.ino, false).unwrap();
        // Read into the first band: its four chunks are now held by this handle.
        let first = tree.read(reader, 0, 64 << 10).unwrap();
        let (writer, _) = tree.open(data.ino, true).unwrap();
        let at = 70_000u64; // still in band 0 (388,800 bytes), past what was read
        tree.write(writer, at, &[0xAB; 16]).unwrap();
        // Unsaved: served from the dirty chunk.
        let next = tree.read(reader, 64 << 10, 64 << 10).unwrap();
        let in_next = (at - (64 << 10)) as usize;
        assert_eq!(next[in_next..in_next + 16], [0xAB; 16]);
        // Written back (the dirty copy is gone): the held stored version is stale and
        // must not be served.
        tree.fsync(writer).unwrap();
        tree.release(writer);
        let again = tree.read(reader, 128 << 10, 64 << 10).unwrap();
        assert_eq!(again.len(), 64 << 10);
        let whole = read_whole(&tree, &data, 1 << 20);
        assert_eq!(&whole[..first.len()], &first[..]);
        assert_eq!(whole[at as usize..at as usize + 16], [0xAB; 16]);
        // The first handle continues sequentially and sees the stored write too: re-read
        // the written range through it after going back to its start.
        let fresh = tree.read(reader, 0, 128 << 10).unwrap();
        assert_eq!(fresh[at as usize..at as usize + 16], [0xAB; 16]);
        tree.release(reader);
    }
}

#[cfg(test)]
mod block_tests {
    //! Sequential reads of flat views by blosc blocks against the same reads by whole chunks.

    use super::tests::{read_whole, stat, walk};
    use super::*;
    use crate::store::DirectoryStore;
    use serde_json::json;

    /// Arrays whose chunks hold several blosc blocks: (path, shape, chunks, dtype, blosc
    /// config, fill value).
    /// Path, shape, chunks, dtype, blosc config and fill value of an array.
    type Spec = (
        &'static str,
        Vec<u64>,
        Vec<u64>,
        &'static str,
        serde_json::Value,
        i64,
    );

    fn specs() -> Vec<Spec> {
        vec![
            // 97,200-byte chunks in blocks of 4,096 (the last one shorter), edge chunks.
            (
                "volume",
                vec![20, 90, 170],
                vec![6, 45, 90],
                "<f4",
                json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 4096}),
                0,
            ),
            // Bit-shuffled zstd, blocks of 1,024 bytes; some chunks stay absent.
            (
                "plane",
                vec![100, 130],
                vec![32, 40],
                ">u2",
                json!({"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2, "blocksize": 1024}),
                7,
            ),
        ]
    }

    fn open_tree(dir: &std::path::Path, read_only: bool, scan_resistance: bool) -> Tree {
        let store = Arc::new(DirectoryStore::open(dir).unwrap());
        let reader = Arc::new(ChunkReader::with_budget(1 << 26, 2).unwrap());
        reader.cache().set_scan_resistance(scan_resistance);
        Tree::new(
            store,
            reader,
            TreeOptions {
                read_only,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// A store with the arrays of [`specs`], written through a tree (so the chunks carry
    /// the arrays' own blosc settings); every third chunk of `plane` is left absent.
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
        for (path, shape, chunks, dtype, compressor, fill) in specs() {
            std::fs::create_dir_all(dir.path().join(path)).unwrap();
            let zarray = json!({"zarr_format": 2, "shape": shape, "chunks": chunks,
                "dtype": dtype, "compressor": compressor, "fill_value": fill,
                "order": "C", "filters": null});
            std::fs::write(dir.path().join(path).join(".zarray"), zarray.to_string()).unwrap();
        }
        let tree = open_tree(dir.path(), false, true);
        for (path, ..) in specs() {
            let data = walk(&tree, &format!("{path}/data"));
            let (fh, _) = tree.open(data.ino, true).unwrap();
            let bytes: Vec<u8> = (0..data.size)
                .map(|i| ((i / 3) as u8).wrapping_mul(7) ^ (i / 5000) as u8)
                .collect();
            tree.write(fh, 0, &bytes).unwrap();
            tree.release(fh);
        }
        tree.flush_all(true).unwrap();
        for entry in std::fs::read_dir(dir.path().join("plane")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let sum: u64 = name.split('.').filter_map(|p| p.parse::<u64>().ok()).sum();
            if !name.starts_with('.') && sum.is_multiple_of(3) {
                std::fs::remove_file(dir.path().join("plane").join(name)).unwrap();
            }
        }
        dir
    }

    #[test]
    fn reads_by_blocks_match_reads_by_whole_chunks() {
        let dir = store();
        let reference = open_tree(dir.path(), true, false);
        for (path, ..) in specs() {
            for view in ["data", "data.npy"] {
                let file = format!("{path}/{view}");
                let expected = read_whole(&reference, &walk(&reference, &file), 1 << 20);
                for request in [4096, 65_536 + 12, 1 << 20] {
                    let tree = open_tree(dir.path(), true, true);
                    let got = read_whole(&tree, &walk(&tree, &file), request);
                    assert!(got == expected, "{file} in {request}-byte reads");
                    assert!(
                        stat(&tree, "blocks_decoded") > 0,
                        "{file} in {request}-byte reads: read by blocks"
                    );
                    assert_eq!(stat(&tree, "errors"), 0);
                }
            }
        }
        assert_eq!(
            stat(&reference, "blocks_decoded"),
            0,
            "only scans read by blocks"
        );
    }

    #[test]
    fn the_pass_after_a_pass_by_blocks_fills_the_cache() {
        let dir = store();
        let tree = open_tree(dir.path(), true, true);
        let data = walk(&tree, "volume/data");
        let first = read_whole(&tree, &data, 1 << 20);
        assert_eq!(stat(&tree, "chunks_decoded"), 0);
        // 16 chunks of two 64 KiB blocks; the last band needs the first block only (its
        // second may still be decoded ahead).
        let blocks = stat(&tree, "blocks_decoded");
        assert!((12 * 2 + 4..=32).contains(&blocks), "{blocks} blocks");
        assert_eq!(read_whole(&tree, &data, 1 << 20), first);
        assert_eq!(
            stat(&tree, "chunks_decoded"),
            16,
            "kept whole on the second pass"
        );
        assert_eq!(read_whole(&tree, &data, 1 << 20), first);
        assert_eq!(stat(&tree, "chunks_decoded"), 16, "served from the cache");
        let after = stat(&tree, "blocks_decoded");
        assert!(after <= 32, "{after} blocks: no block decoded twice");
    }

    #[test]
    fn a_band_read_whole_leaves_the_next_bands_to_blocks() {
        let dir = store();
        let reference = open_tree(dir.path(), true, false);
        let expected = read_whole(&reference, &walk(&reference, "volume/data"), 1 << 20);
        let tree = open_tree(dir.path(), true, true);
        let data = walk(&tree, "volume/data");
        // A read at random caches the first chunk: the first band is read whole.
        let (fh, _) = tree.open(data.ino, false).unwrap();
        tree.read(fh, 100, 100).unwrap();
        tree.release(fh);
        assert_eq!(stat(&tree, "chunks_decoded"), 1);
        assert_eq!(read_whole(&tree, &data, 64 << 10), expected);
        // 4 bands of 4 chunks: the rest of the first band whole, the others by blocks.
        assert_eq!(
            stat(&tree, "chunks_decoded"),
            4,
            "only the first band whole"
        );
        assert!(
            stat(&tree, "blocks_decoded") >= 3 * 4,
            "later bands by blocks"
        );
    }

    #[test]
    fn writes_show_in_a_read_by_blocks() {
        let dir = store();
        let tree = open_tree(dir.path(), false, true);
        let data = walk(&tree, "volume/data");
        let reference = open_tree(dir.path(), true, false);
        let mut expected = read_whole(&reference, &walk(&reference, "volume/data"), 1 << 20);
        let (reader, _) = tree.open(data.ino, false).unwrap();
        let (writer, _) = tree.open(data.ino, true).unwrap();
        let mut got = tree.read(reader, 0, 100_000).unwrap();
        // Unsaved bytes ahead of the reader, in its band and beyond.
        for at in [150_000usize, 700_000, 1_100_000] {
            tree.write(writer, at as u64, b"written").unwrap();
            expected[at..at + 7].copy_from_slice(b"written");
        }
        got.extend(tree.read(reader, got.len() as u64, 600_000).unwrap());
        // Stored meanwhile: the reader must not show the blocks it decoded before.
        tree.flush_all(true).unwrap();
        let at = 1_150_000;
        tree.write(writer, at as u64, b"again").unwrap();
        expected[at..at + 5].copy_from_slice(b"again");
        tree.flush_all(true).unwrap();
        while (got.len() as u64) < data.size {
            got.extend(tree.read(reader, got.len() as u64, 300_000).unwrap());
        }
        tree.release(reader);
        tree.release(writer);
        assert!(got == expected);
    }

    #[test]
    fn a_damaged_chunk_read_by_blocks_is_an_io_error() {
        let dir = store();
        let chunk = dir.path().join("volume").join("1.1.1");
        let mut bytes = std::fs::read(&chunk).unwrap();
        let half = bytes.len() / 2;
        bytes.truncate(half);
        std::fs::write(&chunk, &bytes).unwrap();
        let tree = open_tree(dir.path(), true, true);
        let data = walk(&tree, "volume/data");
        let (fh, _) = tree.open(data.ino, false).unwrap();
        let mut offset = 0;
        let err = loop {
            match tree.read(fh, offset, 1 << 20) {
                Ok(bytes) if bytes.is_empty() => panic!("read to the end without an error"),
                Ok(bytes) => offset += bytes.len() as u64,
                Err(err) => break err,
            }
        };
        assert_eq!(err.errno, libc::EIO);
        assert!(err.message.contains("1.1.1"), "{}", err.message);
    }
}
