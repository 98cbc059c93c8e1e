//! Seeing what is there: extended attributes read with getfattr, `df` on a mount, `zarrfs
//! info` as text and JSON, every command's output into a closed pipe, `--version`, the
//! manual page and shell completions.

mod common;

use common::{fixtures, manifest, zarrfs, zarrfs_into_closed_pipe, Mount};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `getfattr ARGS PATH`: (success, stdout, stderr).
fn getfattr(args: &[&str], path: &Path) -> (bool, String, String) {
    let out = Command::new("getfattr")
        .args(args)
        .arg(path)
        .output()
        .expect("getfattr (Debian package attr; scripts/install_deps.sh installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One attribute's value as getfattr prints it (`--only-values`).
fn attribute(path: &Path, name: &str) -> String {
    let (ok, value, stderr) = getfattr(&["--only-values", "-n", name], path);
    assert!(ok, "{name} of {}: {stderr}", path.display());
    value
}

/// Numbers as the attributes write them: `24,90,180`.
fn dims(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn xattrs_describe_every_array_and_its_files() {
    let (_copy, mount) = Mount::v2_fixtures(&[]);
    let mut checked = 0;
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let dir = mount.path(array.path());
        let dtype = array.entry["dtype"].as_str().unwrap();
        let (shape, chunks) = (array.dims("shape"), array.dims("chunks"));
        let mut paths = vec![dir.clone(), dir.join("data"), dir.join("data.npy")];
        if !shape.contains(&0) {
            let first_chunk = vec![0; shape.len()];
            paths.push(dir.join("chunks").join(common::chunk_name(&first_chunk)));
        }
        for path in paths {
            assert_eq!(attribute(&path, "user.zarr.dtype"), dtype, "{path:?}");
            assert_eq!(attribute(&path, "user.zarr.shape"), dims(&shape));
            assert_eq!(attribute(&path, "user.zarr.chunks"), dims(&chunks));
            assert_eq!(attribute(&path, "user.zarr.order"), "C");
            assert_eq!(attribute(&path, "user.zarr.zarr_format"), "2");
            let fill = attribute(&path, "user.zarr.fill_value");
            let meta: Value =
                serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
            let expected = match &meta["fill_value"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(fill, expected, "{path:?}");
        }
        checked += 1;
    }
    assert!(checked > 50, "{checked} arrays");
    let data = mount.path("dtypes/f4_be/data");
    let (ok, listed, _) = getfattr(&["-d", "-m", "-"], &data);
    assert!(ok && listed.contains("user.zarr.dtype=\">f4\""), "{listed}");
    let (ok, _, stderr) = getfattr(&["-n", "user.zarr.nope"], &data);
    assert!(!ok && stderr.contains("No such attribute"), "{stderr}");
    let (ok, listed, _) = getfattr(&["-d", "-m", "-"], &mount.path("attrs.json"));
    assert!(ok && listed.is_empty(), "documents carry none: {listed}");
    let set = Command::new("setfattr")
        .args(["-n", "user.zarr.dtype", "-v", "<f8"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!set.status.success());
    assert!(String::from_utf8_lossy(&set.stderr).contains("Read-only file system"));
}

/// `stat -f -c FORMAT PATH`.
fn statfs(path: &Path) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%b %S %a %c"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn df_shows_the_store_file_system() {
    let (copy, mount) = Mount::v2_fixtures(&[]);
    // Total blocks, block size, free blocks and inodes: the store's file system's (free
    // space may move meanwhile; the totals do not).
    let (store, mounted) = (statfs(copy.path()), statfs(&mount.point));
    let fields = |text: &str| {
        text.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (store, mounted) = (fields(&store), fields(&mounted));
    assert_eq!(store[0], mounted[0], "total blocks");
    assert_eq!(store[1], mounted[1], "block size");
    assert_eq!(store[3], mounted[3], "inodes");
    assert_ne!(mounted[0], "0");
    let df = Command::new("df").arg(&mount.point).output().unwrap();
    assert!(df.status.success(), "{df:?}");
}

/// Every array of an `info --json` tree, by path.
fn arrays_of(node: &Value, out: &mut Vec<Value>) {
    match node["node"].as_str() {
        Some("array") => out.push(node.clone()),
        Some("group") => {
            for child in node["children"].as_array().unwrap() {
                arrays_of(child, out);
            }
        }
        other => panic!("node {other:?}: {node}"),
    }
}

#[test]
fn info_shows_the_tree_as_text_and_json() {
    let store = fixtures().join("v2.zarr");
    let out = zarrfs(&["info", "--json", store.to_str().unwrap()]);
    assert!(out.status.success());
    let tree: Value = serde_json::from_slice(&out.stdout).expect("info --json is JSON");
    assert_eq!(tree["path"], "/");
    let mut arrays = Vec::new();
    arrays_of(&tree, &mut arrays);
    for expected in manifest().iter().filter(|a| a.error().is_none()) {
        let path = format!("/{}", expected.path());
        let found = arrays
            .iter()
            .find(|a| a["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(found["shape"], expected.entry["shape"], "{path}");
        assert_eq!(found["chunks"], expected.entry["chunks"], "{path}");
        assert_eq!(found["dtype"], expected.entry["dtype"], "{path}");
        assert_eq!(found["attributes"], expected.entry["attributes"], "{path}");
        let present = expected.entry["present_chunks"].as_u64();
        if let Some(present) = present {
            assert_eq!(found["chunks_present"]["present"], present, "{path}");
        }
        let decoded = found["decoded"].as_u64().unwrap();
        let elements: u64 = expected.dims("shape").iter().product();
        assert_eq!(decoded, elements * expected.itemsize() as u64, "{path}");
        assert!(
            found["stored"].is_u64() && found["codecs"].is_array(),
            "{found}"
        );
    }
    let text = zarrfs(&["info", store.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("/"));
    let line = text
        .lines()
        .find(|l| l.ends_with("── f4_be") || l.contains("── f4_be "))
        .unwrap_or_else(|| panic!("{text}"));
    for field in [
        "shape=(13, 7)",
        "chunks=(4, 3)",
        "dtype=>f4",
        "fill_value=",
        "stored=",
        " B",
        "decoded=364 B",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[test]
fn every_command_survives_a_closed_pipe() {
    let store = fixtures().join("v2.zarr");
    let store = store.to_str().unwrap();
    for args in [
        &["info", store][..],
        &["info", "--json", store],
        &["completions", "bash"],
        &["man"],
        &["--version"],
        &["--help"],
    ] {
        let (status, stderr) = zarrfs_into_closed_pipe(args);
        assert!(status.success(), "{args:?}: {status} {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn version_names_the_commit() {
    let out = zarrfs(&["--version"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        text.trim(),
        format!("zarrfs {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let bash = zarrfs(&["completions", "bash"]);
    let script = String::from_utf8(bash.stdout).unwrap();
    for word in ["umount", "--rw", "--discard", "--log-level", "completions"] {
        assert!(script.contains(word), "{word} in the bash completions");
    }
    let zsh = zarrfs(&["completions", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef zarrfs"));
    let page = String::from_utf8(zarrfs(&["man"]).stdout).unwrap();
    assert!(page.contains(".TH zarrfs 1"), "{page}");
    assert!(page.contains("umount"));
    let mount = String::from_utf8(zarrfs(&["man", "mount"]).stdout).unwrap();
    assert!(mount.contains(".TH zarrfs-mount 1"), "{mount}");
    assert!(
        mount.contains("\\-\\-rw") && mount.contains("\\-\\-force"),
        "{mount}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = zarrfs(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    for page in [
        "zarrfs.1",
        "zarrfs-mount.1",
        "zarrfs-umount.1",
        "zarrfs-info.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
}
