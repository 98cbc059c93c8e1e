//! Finding the nodes of a store: a node's own metadata documents (`zarr.json`, which wins
//! over `.zarray`/`.zgroup` in the same place, as in zarr-python) and the store's
//! consolidated metadata (v2 `.zmetadata`, or the `consolidated_metadata` of the root
//! `zarr.json`), in the order [`Consolidated`] says; a directory with neither is an implicit
//! group.

use super::{read_json, v2, v3, MetadataError, NodeMeta};
use crate::store::{join_key, Store};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Where a node's metadata came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The node's own document, stored under this key.
    Document(String),
    /// The store's consolidated metadata, stored under this key (the node's own documents
    /// are missing).
    Consolidated(String),
    /// No metadata at all: a directory shown as a group because zarr-python opens the arrays
    /// beneath it.
    Implicit,
}

/// A node with where its metadata came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The node's metadata.
    pub meta: NodeMeta,
    /// Its source.
    pub origin: Origin,
}

/// How the catalog uses a store's consolidated metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consolidated {
    /// For nodes missing their own documents (local stores: own documents are cheap and
    /// may be newer).
    Fallback,
    /// Before the nodes' own documents (object stores: one GET at mount describes every
    /// node it lists, instead of a GET per node).
    Prefer,
    /// Not at all (`--no-consolidated`).
    Ignore,
}

impl Consolidated {
    /// The use for `store`: preferred on stores whose requests are round trips, a fallback
    /// on local ones, ignored when `wanted` is false.
    pub fn for_store(store: &dyn Store, wanted: bool) -> Self {
        match (wanted, store.profile().remote) {
            (false, _) => Consolidated::Ignore,
            (true, true) => Consolidated::Prefer,
            (true, false) => Consolidated::Fallback,
        }
    }
}

/// The nodes of one store.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn Store>,
    use_consolidated: Consolidated,
    /// The root `zarr.json`, read once when the catalog is opened.
    root_v3: Result<Option<Value>, MetadataError>,
    /// Documents of the consolidated `.zmetadata` at the root, by key (`a/b/.zarray`).
    consolidated: HashMap<String, Value>,
    /// `zarr.json` documents of the root's v3 consolidated metadata, by node path (`a/b`).
    consolidated_v3: HashMap<String, Value>,
    /// Names of the child nodes of each node path, per the consolidated metadata.
    consolidated_children: HashMap<String, BTreeSet<String>>,
}

const CONSOLIDATED_V2: &str = ".zmetadata";

/// How many directories of a root without metadata are searched for a Zarr node.
pub const ROOT_SEARCH_DIRECTORIES: usize = 64;

impl Catalog {
    /// Opens the catalog of a store, with consolidated metadata used as is best for the
    /// store (see [`Consolidated::for_store`]).
    pub fn open(store: Arc<dyn Store>) -> Self {
        let use_consolidated = Consolidated::for_store(store.as_ref(), true);
        Self::with_consolidated(store, use_consolidated)
    }

    /// Opens the catalog of a store, reading its root `zarr.json` and, unless `use_it` is
    /// [`Consolidated::Ignore`], its consolidated metadata (`.zmetadata` only when the root
    /// `zarr.json` holds none). Damaged consolidated metadata is reported once and ignored.
    pub fn with_consolidated(store: Arc<dyn Store>, use_it: Consolidated) -> Self {
        let root_v3 = read_json(store.as_ref(), v3::DOCUMENT);
        let mut consolidated_v3 = match (&root_v3, use_it) {
            (Ok(Some(root)), Consolidated::Fallback | Consolidated::Prefer) => {
                consolidated_v3_documents(root).unwrap_or_else(|reason| {
                    tracing::warn!(
                        "{}: {reason}; consolidated metadata ignored",
                        store.describe(v3::DOCUMENT)
                    );
                    HashMap::new()
                })
            }
            _ => HashMap::new(),
        };
        let read_v2 = use_it != Consolidated::Ignore && consolidated_v3.is_empty();
        let mut consolidated = match read_v2.then(|| read_json(store.as_ref(), CONSOLIDATED_V2)) {
            None => HashMap::new(),
            Some(read) => match read {
                Ok(Some(doc)) => consolidated_v2_documents(&doc).unwrap_or_else(|reason| {
                    tracing::warn!(
                        "{}: {reason}; consolidated metadata ignored",
                        store.describe(CONSOLIDATED_V2)
                    );
                    HashMap::new()
                }),
                Ok(None) => HashMap::new(),
                Err(err) => {
                    tracing::warn!("{err}; consolidated metadata ignored");
                    HashMap::new()
                }
            },
        };
        for (map, document) in [
            (&mut consolidated, CONSOLIDATED_V2),
            (&mut consolidated_v3, v3::DOCUMENT),
        ] {
            drop_paths_outside_the_tree(map, &store.describe(document));
        }
        let node_paths = consolidated
            .keys()
            .filter_map(|key| key.rsplit_once('/').map(|(node, _document)| node))
            .chain(consolidated_v3.keys().map(String::as_str));
        let mut consolidated_children: HashMap<String, BTreeSet<String>> = HashMap::new();
        for node in node_paths {
            let (parent, name) = node.rsplit_once('/').unwrap_or(("", node));
            consolidated_children
                .entry(parent.to_string())
                .or_default()
                .insert(name.to_string());
        }
        if !consolidated_children.is_empty() {
            tracing::info!(
                "{}: consolidated metadata of {} nodes, used {}",
                store.describe(""),
                consolidated_children
                    .values()
                    .map(BTreeSet::len)
                    .sum::<usize>(),
                if use_it == Consolidated::Prefer {
                    "before the nodes' own metadata files"
                } else {
                    "for nodes whose own metadata files are missing"
                }
            );
        }
        Catalog {
            store,
            use_consolidated: use_it,
            root_v3,
            consolidated,
            consolidated_v3,
            consolidated_children,
        }
    }

    /// The store the catalog reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The node at `path` ("" for the root) from its own documents or the consolidated
    /// metadata, in the catalog's order; `Ok(None)` when neither describes it.
    fn described_node(&self, path: &str) -> Result<Option<Located>, MetadataError> {
        self.described_node_read(path, false)
    }

    /// [`Self::described_node`]; with `reread_root`, the root's `zarr.json` is read again
    /// rather than taken as read when the catalog was opened.
    fn described_node_read(
        &self,
        path: &str,
        reread_root: bool,
    ) -> Result<Option<Located>, MetadataError> {
        if self.use_consolidated == Consolidated::Prefer {
            if let Some(found) = self.consolidated_node(path)? {
                return Ok(Some(found));
            }
        }
        if let Some(found) = self.own_node(path, reread_root)? {
            return Ok(Some(found));
        }
        match self.use_consolidated {
            Consolidated::Fallback => self.consolidated_node(path),
            Consolidated::Prefer | Consolidated::Ignore => Ok(None),
        }
    }

    /// The node at `path` from its own documents (the root's `zarr.json` as read when the
    /// catalog was opened, unless `reread_root`).
    fn own_node(&self, path: &str, reread_root: bool) -> Result<Option<Located>, MetadataError> {
        let v3_key = join_key(path, v3::DOCUMENT);
        let doc = if path.is_empty() && !reread_root {
            self.root_v3.clone()?
        } else {
            read_json(self.store.as_ref(), &v3_key)?
        };
        if let Some(doc) = doc {
            let meta = v3::parse_node(&doc).map_err(|reason| MetadataError {
                path: self.store.describe(&v3_key),
                reason,
            })?;
            return Ok(Some(Located {
                meta,
                origin: Origin::Document(v3_key),
            }));
        }
        if let Some(meta) = v2::read_node(self.store.as_ref(), path)? {
            let document = match &meta {
                NodeMeta::Array(_) => ".zarray",
                NodeMeta::Group { .. } => ".zgroup",
            };
            return Ok(Some(Located {
                meta,
                origin: Origin::Document(join_key(path, document)),
            }));
        }
        Ok(None)
    }

    /// The node at `path` from the consolidated metadata.
    fn consolidated_node(&self, path: &str) -> Result<Option<Located>, MetadataError> {
        if let Some(doc) = self.consolidated_v3.get(path) {
            let meta = v3::parse_node(doc).map_err(|reason| MetadataError {
                path: format!(
                    "{} (consolidated metadata of {path:?})",
                    self.store.describe(v3::DOCUMENT)
                ),
                reason,
            })?;
            return Ok(Some(Located {
                meta,
                origin: Origin::Consolidated(v3::DOCUMENT.to_string()),
            }));
        }
        if self.consolidated.is_empty() {
            return Ok(None);
        }
        let docs = v2::Documents {
            read: &|key| Ok(self.consolidated.get(key).cloned()),
            describe: &|key| format!("{} ({key})", self.store.describe(CONSOLIDATED_V2)),
        };
        Ok(v2::read_node_from(&docs, path)?.map(|meta| Located {
            meta,
            origin: Origin::Consolidated(CONSOLIDATED_V2.to_string()),
        }))
    }

    /// The attributes of the node at `path` ("" for the root) as its documents hold them
    /// now (consolidated metadata as read when the catalog was opened); `{}` for a node
    /// without metadata.
    pub fn attributes(&self, path: &str) -> Result<Value, MetadataError> {
        Ok(match self.described_node_read(path, true)? {
            Some(Located {
                meta: NodeMeta::Group { attributes },
                ..
            }) => attributes,
            Some(Located {
                meta: NodeMeta::Array(meta),
                ..
            }) => meta.attributes,
            None => Value::Object(Default::default()),
        })
    }

    /// The store keys of the documents that may hold the attributes of the node at `path`
    /// (v3 `zarr.json`, v2 `.zattrs`).
    pub fn attribute_documents(path: &str) -> [String; 2] {
        [join_key(path, v3::DOCUMENT), join_key(path, ".zattrs")]
    }

    /// The node at `path` below the root: described by metadata, or an implicit group when
    /// the store holds a directory there. `Ok(None)` when there is nothing.
    pub fn node(&self, path: &str) -> Result<Option<Located>, MetadataError> {
        let fail = |reason: String| MetadataError {
            path: self.store.describe(path),
            reason,
        };
        if self
            .store
            .loops_back(path)
            .map_err(|e| fail(e.to_string()))?
        {
            return Err(fail(crate::store::LOOPS_BACK.to_string()));
        }
        if let Some(found) = self.described_node(path)? {
            return Ok(Some(found));
        }
        let is_prefix = self
            .store
            .info(path)
            .map_err(|e| fail(e.to_string()))?
            .is_some_and(|info| info.is_prefix);
        Ok(is_prefix.then(|| Located {
            meta: NodeMeta::Group {
                attributes: Value::Object(Default::default()),
            },
            origin: Origin::Implicit,
        }))
    }

    /// The root node. A root without metadata is an implicit group when a Zarr node lies in
    /// one of its directories (the first [`ROOT_SEARCH_DIRECTORIES`] directories, breadth
    /// first, are searched); otherwise the store is no Zarr store and the error says what
    /// was looked for.
    pub fn root(&self) -> Result<Located, MetadataError> {
        if let Some(found) = self.described_node("")? {
            return Ok(found);
        }
        let mut pending = std::collections::VecDeque::from([String::new()]);
        let mut searched = 0;
        while let Some(dir) = pending.pop_front() {
            searched += 1;
            if searched > ROOT_SEARCH_DIRECTORIES {
                break;
            }
            for name in self.child_names(&dir).unwrap_or_default() {
                let path = join_key(&dir, &name);
                if let Ok(Some(_)) = self.described_node(&path) {
                    return Ok(Located {
                        meta: NodeMeta::Group {
                            attributes: Value::Object(Default::default()),
                        },
                        origin: Origin::Implicit,
                    });
                }
                pending.push_back(path);
            }
        }
        Err(MetadataError {
            path: self.store.describe(""),
            reason: "not a Zarr store: no zarr.json, .zgroup, .zarray or .zmetadata there, \
                     nor in its directories"
                .into(),
        })
    }

    /// Names of the possible child nodes of the node at `path`: its directories in the store
    /// and the children the consolidated metadata lists, sorted, without duplicates. Names
    /// starting with '.' are left out.
    pub fn child_names(&self, path: &str) -> std::io::Result<Vec<String>> {
        let mut names: BTreeSet<String> = self
            .store
            .list(path)?
            .into_iter()
            .filter(|e| e.is_prefix)
            .map(|e| e.name)
            .collect();
        if let Some(children) = self.consolidated_children.get(path) {
            names.extend(children.iter().cloned());
        }
        names.retain(|name| {
            let hidden = name.starts_with('.');
            if hidden {
                let message = format!(
                    "{}: names starting with '.' are not shown",
                    self.store.describe(&join_key(path, name))
                );
                if crate::report::first(&message) {
                    tracing::warn!("{message}");
                }
            }
            !hidden
        });
        Ok(names.into_iter().collect())
    }
}

/// The `zarr.json` documents of a root group's v3 consolidated metadata, by node path.
fn consolidated_v3_documents(root: &Value) -> Result<HashMap<String, Value>, String> {
    let consolidated = match root.get("consolidated_metadata") {
        None | Some(Value::Null) => return Ok(HashMap::new()),
        Some(consolidated) => consolidated,
    };
    if consolidated.get("kind").and_then(Value::as_str) != Some("inline") {
        return Err("consolidated_metadata is not of kind \"inline\"".into());
    }
    let metadata = consolidated
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or("consolidated_metadata without a \"metadata\" object")?;
    Ok(metadata
        .iter()
        .map(|(path, doc)| (path.trim_matches('/').to_string(), doc.clone()))
        .filter(|(path, _)| !path.is_empty())
        .collect())
}

/// Removes (with one warning) the entries of consolidated metadata whose path has an empty,
/// `.` or `..` component: no node of the tree has such a path.
fn drop_paths_outside_the_tree(documents: &mut HashMap<String, Value>, source: &str) {
    let before = documents.len();
    documents.retain(|path, _| {
        path.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
    });
    let dropped = before - documents.len();
    if dropped > 0 {
        tracing::warn!(
            "{source}: {dropped} consolidated entries with an empty, '.' or '..' path \
             component name no node of the tree; ignored"
        );
    }
}

/// The documents of a v2 `.zmetadata`, by key.
fn consolidated_v2_documents(doc: &Value) -> Result<HashMap<String, Value>, String> {
    if doc.get("zarr_consolidated_format").and_then(Value::as_u64) != Some(1) {
        return Err("zarr_consolidated_format is not 1".into());
    }
    let metadata = doc
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or("missing \"metadata\" object")?;
    Ok(metadata
        .iter()
        .filter(|(key, _)| {
            matches!(
                key.rsplit('/').next(),
                Some(".zarray" | ".zgroup" | ".zattrs")
            )
        })
        .map(|(key, value)| (key.trim_start_matches('/').to_string(), value.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DirectoryStore;
    use std::fs;

    fn zarray() -> Value {
        serde_json::json!({"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<i4",
            "compressor": null, "fill_value": 0, "order": "C", "filters": null})
    }

    fn catalog(dir: &std::path::Path) -> Catalog {
        Catalog::open(Arc::new(DirectoryStore::open(dir).unwrap()))
    }

    #[test]
    fn directories_without_metadata_are_implicit_groups() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b/arr")).unwrap();
        fs::write(dir.path().join("a/b/arr/.zarray"), zarray().to_string()).unwrap();
        let catalog = catalog(dir.path());
        let root = catalog.root().unwrap();
        assert_eq!(root.origin, Origin::Implicit);
        assert_eq!(catalog.node("a").unwrap().unwrap().origin, Origin::Implicit);
        assert_eq!(
            catalog.node("a/b").unwrap().unwrap().origin,
            Origin::Implicit
        );
        let arr = catalog.node("a/b/arr").unwrap().unwrap();
        assert_eq!(arr.origin, Origin::Document("a/b/arr/.zarray".into()));
        assert!(matches!(arr.meta, NodeMeta::Array(_)));
        assert_eq!(catalog.node("a/none").unwrap(), None);
    }

    #[test]
    fn a_directory_without_any_node_is_no_store_and_says_what_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x/y")).unwrap();
        let err = catalog(dir.path()).root().unwrap_err();
        for name in ["zarr.json", ".zgroup", ".zarray", ".zmetadata"] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn consolidated_metadata_describes_nodes_missing_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let consolidated = serde_json::json!({"zarr_consolidated_format": 1, "metadata": {
            ".zgroup": {"zarr_format": 2},
            ".zattrs": {"title": "consolidated"},
            "g/.zgroup": {"zarr_format": 2},
            "g/arr/.zarray": zarray(),
            "g/arr/.zattrs": {"units": "m"},
            "own/.zarray": zarray(),
            "../outside/arr/.zarray": zarray(),
            "g/./arr/.zarray": zarray(),
        }});
        fs::write(dir.path().join(".zmetadata"), consolidated.to_string()).unwrap();
        // A node's own files win over the consolidated metadata.
        fs::create_dir(dir.path().join("own")).unwrap();
        let mut own = zarray();
        own["shape"] = serde_json::json!([8]);
        fs::write(dir.path().join("own/.zarray"), own.to_string()).unwrap();
        let catalog = catalog(dir.path());
        let root = catalog.root().unwrap();
        assert_eq!(root.origin, Origin::Consolidated(".zmetadata".into()));
        match root.meta {
            NodeMeta::Group { attributes } => assert_eq!(attributes["title"], "consolidated"),
            other => panic!("{other:?}"),
        }
        assert_eq!(catalog.child_names("").unwrap(), ["g", "own"]);
        assert_eq!(catalog.child_names("g").unwrap(), ["arr"]);
        // Paths no node of the tree has are ignored.
        for outside in ["../outside/arr", "g/./arr"] {
            assert!(!matches!(catalog.node(outside), Ok(Some(_))), "{outside}");
        }
        match catalog.node("g/arr").unwrap().unwrap().meta {
            NodeMeta::Array(meta) => assert_eq!(meta.attributes["units"], "m"),
            other => panic!("{other:?}"),
        }
        match catalog.node("own").unwrap().unwrap() {
            Located {
                meta: NodeMeta::Array(meta),
                origin: Origin::Document(_),
            } => assert_eq!(meta.shape, [8]),
            other => panic!("{other:?}"),
        }
    }

    /// A directory store that says its requests are round trips, and counts its reads.
    #[derive(Debug)]
    struct Remote {
        dir: DirectoryStore,
        gets: std::sync::atomic::AtomicUsize,
    }

    impl Store for Remote {
        fn get(&self, key: &str, max_len: u64) -> std::io::Result<Option<Vec<u8>>> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.dir.get(key, max_len)
        }
        fn info(&self, key: &str) -> std::io::Result<Option<crate::store::ObjectInfo>> {
            self.dir.info(key)
        }
        fn list(&self, prefix: &str) -> std::io::Result<Vec<crate::store::ListEntry>> {
            self.dir.list(prefix)
        }
        fn describe(&self, key: &str) -> String {
            self.dir.describe(key)
        }
        fn put(&self, _: &str, _: &[u8], _: Option<&str>, _: bool) -> std::io::Result<()> {
            unimplemented!()
        }
        fn delete(&self, _: &str, _: bool) -> std::io::Result<()> {
            unimplemented!()
        }
        fn remove_stale_temporaries(&self) -> std::io::Result<usize> {
            Ok(0)
        }
        fn profile(&self) -> crate::store::Profile {
            crate::store::Profile {
                remote: true,
                ..crate::store::Profile::LOCAL
            }
        }
    }

    #[test]
    fn object_stores_take_nodes_from_consolidated_metadata_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut stale = zarray();
        stale["shape"] = serde_json::json!([2]);
        let consolidated = serde_json::json!({"zarr_consolidated_format": 1, "metadata": {
            ".zgroup": {"zarr_format": 2},
            "a/.zarray": stale,
            "b/.zgroup": {"zarr_format": 2},
        }});
        fs::write(dir.path().join(".zmetadata"), consolidated.to_string()).unwrap();
        fs::create_dir_all(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/.zarray"), zarray().to_string()).unwrap();
        fs::create_dir_all(dir.path().join("c")).unwrap();
        fs::write(dir.path().join("c/.zgroup"), r#"{"zarr_format": 2}"#).unwrap();
        let remote = Arc::new(Remote {
            dir: DirectoryStore::open(dir.path()).unwrap(),
            gets: Default::default(),
        });
        let gets = |r: &Remote| r.gets.load(std::sync::atomic::Ordering::Relaxed);
        let shape = |located: Located| match located.meta {
            NodeMeta::Array(meta) => meta.shape,
            other => panic!("{other:?}"),
        };
        let catalog = Catalog::open(remote.clone());
        assert_eq!(
            gets(&remote),
            2,
            "the root zarr.json (absent), then .zmetadata"
        );
        catalog.root().unwrap();
        assert_eq!(
            shape(catalog.node("a").unwrap().unwrap()),
            [2],
            "consolidated"
        );
        assert!(catalog.node("b").unwrap().is_some());
        assert_eq!(
            gets(&remote),
            2,
            "nodes in the consolidated metadata cost no GET"
        );
        assert!(catalog.node("c").unwrap().is_some(), "others are looked up");
        // --no-consolidated: every node from its own documents.
        let own = Catalog::with_consolidated(remote.clone(), Consolidated::Ignore);
        assert_eq!(shape(own.node("a").unwrap().unwrap()), [4]);
        assert!(
            own.node("b").unwrap().is_none(),
            "b has no documents of its own"
        );
        assert_eq!(own.child_names("").unwrap(), ["a", "c"]);
    }
}
