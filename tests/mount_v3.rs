//! Mounts the committed Zarr v3 fixtures (written by zarr-python 3, tensorstore and zarrs) for
//! real and checks every view of every array against the values zarr-python read when they
//! were written: data, data.npy, every chunk file with its fill padding, meta.json and
//! attrs.json; and the tree of groups (v3, v2 and implicit) around them.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

const STORE: &str = "v3.zarr";

fn manifest() -> Vec<FixtureArray> {
    manifest_named("v3-manifest.json")
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

fn read_json(path: &Path) -> Value {
    zarrfs::metadata::json::parse(&read_all(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_eio(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::EIO)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Checks one array's chunk files: the listing, and each chunk's elements (the expected
/// array's region, fill value in the padding); chunks named in `bad` must fail with EIO.
fn check_chunk_files(dir: &Path, array: &FixtureArray, bad: &[String]) {
    let expected = array.expected().unwrap();
    let (shape, chunks, grid) = (
        array.dims("shape"),
        array.dims("chunks"),
        array.dims("grid"),
    );
    let k = array.itemsize();
    let fill = hex(array.entry["fill_hex"].as_str().unwrap());
    assert_eq!(fill.len(), k, "{}: fill element size", array.path());
    let positions = if shape.contains(&0) {
        Vec::new()
    } else {
        grid_positions(&grid)
    };
    let want: BTreeSet<String> = positions.iter().map(|i| chunk_name(i)).collect();
    assert_eq!(
        names_in(&dir.join("chunks")),
        want,
        "{}: chunk listing",
        array.path()
    );
    for idx in positions {
        let name = chunk_name(&idx);
        let result = read_all(&dir.join("chunks").join(&name));
        if bad.contains(&name) {
            let err = result.expect_err(&format!("{} chunk {name} must fail", array.path()));
            assert!(is_eio(&err), "{} chunk {name}: {err}", array.path());
            continue;
        }
        let bytes = result.unwrap_or_else(|e| panic!("{} chunk {name}: {e}", array.path()));
        let sources = chunk_element_sources(&shape, &chunks, &idx);
        assert_eq!(
            bytes.len(),
            sources.len() * k,
            "{} chunk {name}",
            array.path()
        );
        for (e, source) in sources.iter().enumerate() {
            let want = match source {
                Some(flat) => &expected.data[*flat as usize * k..(*flat as usize + 1) * k],
                None => fill.as_slice(),
            };
            assert_eq!(
                &bytes[e * k..(e + 1) * k],
                want,
                "{} chunk {name} element {e} ({})",
                array.path(),
                if source.is_some() {
                    "inside"
                } else {
                    "padding"
                }
            );
        }
    }
}

#[test]
fn every_array_reads_as_zarr_python_read_it() {
    let (_copy, mount) = Mount::fixture_copy(STORE, &["--read-only"]);
    let mut checked = 0;
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let expected = array.expected().unwrap();
        let dir = mount.path(array.path());
        let data = read_all(&dir.join("data")).unwrap_or_else(|e| panic!("{}: {e}", array.path()));
        assert_eq!(data, expected.data, "{}: data", array.path());
        let npy = parse_npy(&read_all(&dir.join("data.npy")).unwrap());
        assert_eq!(npy.header_len % 64, 0, "{}: aligned header", array.path());
        assert_eq!(npy.descr, expected.descr, "{}: descr", array.path());
        assert_eq!(npy.descr, array.entry["dtype"], "{}: descr", array.path());
        assert!(!npy.fortran);
        assert_eq!(npy.shape, expected.shape, "{}: npy shape", array.path());
        assert_eq!(npy.data, expected.data, "{}: npy data", array.path());
        check_chunk_files(&dir, array, &[]);
        checked += 1;
    }
    assert!(checked >= 120, "only {checked} arrays checked");
}

#[test]
fn meta_json_describes_views_and_stored_layout() {
    let (_copy, mount) = Mount::fixture_copy(STORE, &["--read-only"]);
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let dir = mount.path(array.path());
        let e = &array.entry;
        let meta = read_json(&dir.join("meta.json"));
        let what = array.path();
        assert_eq!(meta["zarr_format"], e["zarr_format"], "{what}");
        assert_eq!(meta["shape"], e["shape"], "{what}");
        assert_eq!(meta["chunks"], e["chunks"], "{what}");
        assert_eq!(meta["dtype"], e["dtype"], "{what}");
        assert_eq!(meta["order"], "C", "{what}");
        assert_eq!(meta.get("shards"), None, "{what}");
        assert_eq!(
            meta["stored"]["codecs"], e["codecs"],
            "{what}: stored codecs"
        );
        if e["zarr_format"] == 3 {
            assert_eq!(meta["fill_value"], e["fill_value"], "{what}: fill_value");
            assert_eq!(
                meta["stored"]["chunk_key_encoding"], e["chunk_key_encoding"],
                "{what}"
            );
            assert_eq!(meta["stored"]["order"], "C", "{what}");
        }
        match e["dimension_names"].as_array() {
            Some(names) => assert_eq!(meta["dimension_names"], json!(names), "{what}"),
            None => assert_eq!(meta.get("dimension_names"), None, "{what}"),
        }
        let attrs = read_json(&dir.join("attrs.json"));
        assert_eq!(attrs, e["attributes"], "{what}: attrs.json");
    }
    // The attributes' bare NaN/Infinity come out as Python writes them.
    let text = read_all(&mount.path("python/layout/dimension_names_partial/attrs.json")).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("NaN") && text.contains("Infinity"), "{text}");
}

#[test]
fn groups_v3_v2_and_implicit_form_the_tree() {
    let (_copy, mount) = Mount::fixture_copy(STORE, &["--read-only"]);
    let arrays = manifest();
    let groups = read_fixture_json("v3-groups.json");
    let groups = groups.as_array().unwrap();
    let group_paths: Vec<&str> = groups.iter().map(|g| g["path"].as_str().unwrap()).collect();
    let parent = |p: &str| {
        p.rsplit_once('/')
            .map_or("", |(parent, _)| parent)
            .to_string()
    };
    let name = |p: &str| p.rsplit('/').next().unwrap().to_string();
    for group in groups {
        let path = group["path"].as_str().unwrap();
        let dir = mount.path(path);
        let attrs = read_json(&dir.join("attrs.json"));
        assert_eq!(attrs, group["attributes"], "group {path:?}: attrs.json");
        let mut want: BTreeSet<String> = ["attrs.json".to_string()].into();
        let children = group_paths
            .iter()
            .copied()
            .chain(arrays.iter().map(FixtureArray::path))
            .filter(|p| !p.is_empty() && parent(p) == path);
        want.extend(children.map(name));
        assert_eq!(names_in(&dir), want, "group {path:?}: listing");
    }
    for array in &arrays {
        let want: BTreeSet<String> = ["attrs.json", "chunks", "data", "data.npy", "meta.json"]
            .map(String::from)
            .into();
        assert_eq!(
            names_in(&mount.path(array.path())),
            want,
            "{}",
            array.path()
        );
    }
    // The root's bare NaN and infinities survive into its attrs.json.
    let root = String::from_utf8(read_all(&mount.path("attrs.json")).unwrap()).unwrap();
    assert!(root.contains("NaN") && root.contains("-Infinity"), "{root}");
}

#[test]
fn broken_arrays_fail_with_eio_and_the_rest_reads() {
    let (_copy, mount) = Mount::fixture_copy(STORE, &["--read-only"]);
    let mut seen = 0;
    for array in manifest().iter().filter(|a| a.error().is_some()) {
        let dir = mount.path(array.path());
        match array.error().unwrap() {
            "unsupported_codec" => {
                let err = read_all(&dir.join("data")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
                let err = read_all(&dir.join("chunks/0.0")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
                let line = format!(
                    "{}/zarr.json: unsupported codec unknown_codec",
                    array.path()
                );
                assert!(mount.log().contains(&line), "{line}:\n{}", mount.log());
            }
            "corrupt_chunks" => {
                let bad = array.strings("bad_chunks");
                check_chunk_files(&dir, array, &bad);
                let err = read_all(&dir.join("data")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
                for name in &bad {
                    let key = format!("{}/c/{}", array.path(), name.replace('.', "/"));
                    assert!(
                        mount.log().contains(&key),
                        "log names {key}:\n{}",
                        mount.log()
                    );
                }
            }
            other => panic!("unknown error kind {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 3);
    assert!(mount.log().contains("checksum mismatch"), "{}", mount.log());
    assert!(read_all(&mount.path("errors/ok_sibling/data")).is_ok());
}

#[test]
fn a_v3_array_can_be_the_store_root() {
    let path = "python/codecs/transpose_3d_201_be";
    let mount = Mount::new(&fixtures().join(STORE).join(path), &["--read-only"]);
    let array = manifest().into_iter().find(|a| a.path() == path).unwrap();
    let expected = array.expected().unwrap();
    assert_eq!(read_all(&mount.path("data")).unwrap(), expected.data);
    let npy = parse_npy(&read_all(&mount.path("data.npy")).unwrap());
    assert_eq!(npy.descr, ">f8");
    check_chunk_files(&mount.point, &array, &[]);
    assert_eq!(read_json(&mount.path("meta.json"))["zarr_format"], 3);
}

#[test]
fn read_only_v3_mount_refuses_writes() {
    let (_copy, mount) = Mount::fixture_copy(STORE, &["-o", "ro"]);
    for file in [
        "python/codecs/default/data",
        "zarrs/codecs/dot_keys/chunks/0.0.0",
    ] {
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(mount.path(file))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{file}: {err}");
    }
}
