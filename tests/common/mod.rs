//! Helpers shared by the mount tests: a mount guard, NPY parsing and the fixture manifest.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the zarrfs binary.
pub fn zarrfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args(args)
        .output()
        .expect("run zarrfs")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A live mount, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub point: PathBuf,
}

impl Mount {
    /// Mounts `store` (daemon mode: returns once live) with extra arguments.
    pub fn new(store: &Path, extra: &[&str]) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let log = dir.path().join("zarrfs.log");
        let mut args = vec![
            "mount",
            store.to_str().unwrap(),
            point.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = zarrfs(&args);
        assert!(
            out.status.success(),
            "mount failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Mount {
            dir,
            store: store.to_path_buf(),
            point,
        }
    }

    /// Mounts a private copy of the committed v2 fixture store.
    pub fn v2_fixtures(extra: &[&str]) -> (tempfile::TempDir, Mount) {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&fixtures().join("v2.zarr"), copy.path());
        let mount = Mount::new(copy.path(), extra);
        (copy, mount)
    }

    /// Path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zarrfs.log")).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let point = self.point.to_str().unwrap().to_string();
        let out = zarrfs(&["umount", &point]);
        if !out.status.success() {
            let _ = Command::new("umount").arg("-l").arg(&point).status();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed NPY file.
pub struct Npy {
    pub descr: String,
    pub shape: Vec<u64>,
    pub fortran: bool,
    pub header_len: usize,
    pub data: Vec<u8>,
}

/// Parses NPY bytes (versions 1–3).
pub fn parse_npy(bytes: &[u8]) -> Npy {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "NPY magic");
    let (dict_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + dict_len]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let fortran = header.contains("'fortran_order': True");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    Npy {
        descr,
        shape,
        fortran,
        header_len: start + dict_len,
        data: bytes[start + dict_len..].to_vec(),
    }
}

/// Whether two NumPy descrs name the same type (byte order is moot for 1-byte types).
pub fn same_descr(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let order = match s.chars().next() {
            Some('>') => '>',
            _ => '<',
        };
        let body = s.trim_start_matches(['<', '>', '|', '=']).to_string();
        (order, body)
    };
    let ((oa, ta), (ob, tb)) = (split(a), split(b));
    ta == tb && ((ta.ends_with('1') && ta.len() == 2) || oa == ob)
}

/// One array of the fixture manifest.
pub struct FixtureArray {
    pub entry: Value,
}

impl FixtureArray {
    pub fn path(&self) -> &str {
        self.entry["path"].as_str().unwrap()
    }
    pub fn error(&self) -> Option<&str> {
        self.entry["error"].as_str()
    }
    pub fn dims(&self, field: &str) -> Vec<u64> {
        self.entry[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }
    pub fn itemsize(&self) -> usize {
        let dtype = self.entry["dtype"].as_str().unwrap();
        dtype.trim_start_matches(['<', '>', '|'])[1..]
            .parse()
            .unwrap()
    }
    /// The expected array (C order, declared dtype), if the fixture has one.
    pub fn expected(&self) -> Option<Npy> {
        let rel = self.entry["expected"].as_str()?;
        Some(parse_npy(&std::fs::read(fixtures().join(rel)).unwrap()))
    }
    pub fn strings(&self, field: &str) -> Vec<String> {
        self.entry[field]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// All arrays of the committed manifest.
pub fn manifest() -> Vec<FixtureArray> {
    manifest_named("v2-manifest.json")
}

/// All arrays of a committed manifest (`v2-manifest.json`, `v3-sharded-manifest.json`).
pub fn manifest_named(name: &str) -> Vec<FixtureArray> {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    entries
        .into_iter()
        .map(|entry| FixtureArray { entry })
        .collect()
}

/// The mount's file name of a chunk: indices joined by '.', "0" for a 0-d array.
pub fn chunk_name(idx: &[u64]) -> String {
    if idx.is_empty() {
        "0".into()
    } else {
        idx.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
    }
}

/// Chunk grid indices in C order for a grid shape.
pub fn grid_positions(grid: &[u64]) -> Vec<Vec<u64>> {
    let total: u64 = grid.iter().product();
    (0..total)
        .map(|mut linear| {
            let mut idx = vec![0; grid.len()];
            for d in (0..grid.len()).rev() {
                idx[d] = linear % grid[d];
                linear /= grid[d];
            }
            idx
        })
        .collect()
}

/// For each element of a chunk (C order over the chunk shape), the element's flat index in
/// the array, or `None` when it lies outside the array (edge padding).
pub fn chunk_element_sources(shape: &[u64], chunks: &[u64], index: &[u64]) -> Vec<Option<u64>> {
    let per_chunk: u64 = chunks.iter().product();
    (0..per_chunk)
        .map(|mut e| {
            let mut local = vec![0; chunks.len()];
            for d in (0..chunks.len()).rev() {
                local[d] = e % chunks[d];
                e /= chunks[d];
            }
            let mut flat = 0u64;
            for d in 0..chunks.len() {
                let g = index[d] * chunks[d] + local[d];
                if g >= shape[d] {
                    return None;
                }
                flat = flat * shape[d] + g;
            }
            Some(flat)
        })
        .collect()
}
