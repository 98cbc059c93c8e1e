//! Mounts the committed Zarr v2 fixtures for real and checks every file against the values
//! zarr-python decoded when it wrote them.

mod common;

use common::*;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

fn read_all(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

fn is_eio(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::EIO)
}

#[test]
fn every_readable_array_matches_zarr_python() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    let mut checked = 0;
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let expected = array.expected().expect("expected values");
        let dir = mount.path(array.path());
        let data = read_all(&dir.join("data")).unwrap();
        assert_eq!(data, expected.data, "{}: data", array.path());

        let npy = parse_npy(&read_all(&dir.join("data.npy")).unwrap());
        assert_eq!(npy.header_len % 64, 0, "{}: aligned header", array.path());
        assert!(
            same_descr(&npy.descr, &expected.descr),
            "{}: descr {} vs {}",
            array.path(),
            npy.descr,
            expected.descr
        );
        assert!(!npy.fortran);
        assert_eq!(npy.shape, expected.shape, "{}: npy shape", array.path());
        assert_eq!(npy.data, expected.data, "{}: npy data", array.path());
        checked += 1;
    }
    assert!(checked > 100, "only {checked} arrays checked");
}

#[test]
fn chunk_files_hold_decoded_chunks_and_fill_for_missing_ones() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let expected = array.expected().unwrap();
        let (shape, chunks, grid) = (
            array.dims("shape"),
            array.dims("chunks"),
            array.dims("grid"),
        );
        let k = array.itemsize();
        let present = array.strings("present_chunks");
        let chunk_dir = mount.path(array.path()).join("chunks");
        let mut names: Vec<String> = std::fs::read_dir(&chunk_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want_names: Vec<String> = grid_positions(&grid)
            .iter()
            .map(|idx| chunk_name(idx))
            .collect();
        want_names.sort();
        assert_eq!(names, want_names, "{}: chunk listing", array.path());
        for idx in grid_positions(&grid) {
            let name = chunk_name(&idx);
            let bytes = read_all(&chunk_dir.join(&name)).unwrap();
            let sources = chunk_element_sources(&shape, &chunks, &idx);
            assert_eq!(
                bytes.len(),
                sources.len() * k,
                "{} chunk {name}: size",
                array.path()
            );
            for (e, source) in sources.iter().enumerate() {
                let got = &bytes[e * k..(e + 1) * k];
                match source {
                    Some(flat) => {
                        let f = *flat as usize;
                        assert_eq!(
                            got,
                            &expected.data[f * k..(f + 1) * k],
                            "{} chunk {name} element {e}",
                            array.path()
                        );
                    }
                    None => {
                        let fill = padding_fill(&bytes, k, &present, &name, array);
                        assert_eq!(
                            got,
                            fill.as_slice(),
                            "{} chunk {name}: padding must be fill",
                            array.path()
                        )
                    }
                }
            }
        }
    }
}

/// The bytes of one fill element as the padding of chunk `name` must show them: a missing
/// chunk is fill throughout (so its first element), a stored one is masked with the
/// declared fill value.
fn padding_fill(
    bytes: &[u8],
    k: usize,
    present: &[String],
    name: &str,
    array: &FixtureArray,
) -> Vec<u8> {
    if !present.iter().any(|p| p == name) {
        return bytes[..k].to_vec();
    }
    let dtype =
        zarrfs::metadata::DataType::parse_numpy(array.entry["dtype"].as_str().unwrap()).unwrap();
    zarrfs::metadata::fill::fill_value_bytes(&array.entry["fill_value"], &dtype).unwrap()
}

#[test]
fn metadata_and_attribute_documents() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    for array in manifest().iter().filter(|a| a.error().is_none()) {
        let dir = mount.path(array.path());
        let meta: serde_json::Value =
            serde_json::from_slice(&read_all(&dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["shape"], array.entry["shape"], "{}", array.path());
        assert_eq!(meta["chunks"], array.entry["chunks"], "{}", array.path());
        assert_eq!(meta["order"], "C", "{}", array.path());
        assert_eq!(
            meta["stored"]["order"],
            array.entry["order"],
            "{}",
            array.path()
        );
        assert_eq!(meta["zarr_format"], 2);
        assert!(same_descr(
            meta["dtype"].as_str().unwrap(),
            array.entry["dtype"].as_str().unwrap()
        ));
        assert_eq!(
            meta["fill_value"],
            array.entry["fill_value"],
            "{}",
            array.path()
        );
        let attrs: serde_json::Value =
            serde_json::from_slice(&read_all(&dir.join("attrs.json")).unwrap()).unwrap();
        let want = if array.entry["attributes"].is_null() {
            serde_json::json!({})
        } else {
            array.entry["attributes"].clone()
        };
        assert_eq!(attrs, want, "{}: attrs", array.path());
    }
    let groups: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("v2-groups.json")).unwrap())
            .unwrap();
    for group in groups {
        let rel = group["path"].as_str().unwrap();
        let attrs: serde_json::Value =
            serde_json::from_slice(&read_all(&mount.path(rel).join("attrs.json")).unwrap())
                .unwrap();
        assert_eq!(attrs, group["attributes"], "group {rel}");
    }
}

#[test]
fn bad_input_gives_eio_or_is_left_out() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    for array in manifest().iter().filter(|a| a.error().is_some()) {
        let dir = mount.path(array.path());
        match array.error().unwrap() {
            "malformed_metadata" => {
                assert!(!dir.exists(), "{} must be left out", array.path());
                let parent = dir.parent().unwrap();
                let listed: Vec<_> = std::fs::read_dir(parent)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(!listed.contains(&dir.file_name().unwrap().to_os_string()));
            }
            "unsupported_codec" => {
                assert!(
                    dir.join("data").exists(),
                    "{} must still be listed",
                    array.path()
                );
                let err = read_all(&dir.join("data")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
                let err = read_all(&dir.join("chunks/0.0")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
            }
            "corrupt_chunks" => {
                let bad = array.strings("bad_chunks");
                let grid = array.dims("grid");
                for idx in grid_positions(&grid) {
                    let name = chunk_name(&idx);
                    let result = read_all(&dir.join("chunks").join(&name));
                    if bad.contains(&name) {
                        let err =
                            result.expect_err(&format!("{} chunk {name} must fail", array.path()));
                        assert!(is_eio(&err), "{} chunk {name}: {err}", array.path());
                    } else {
                        result.unwrap_or_else(|e| panic!("{} chunk {name}: {e}", array.path()));
                    }
                }
                let err = read_all(&dir.join("data")).unwrap_err();
                assert!(is_eio(&err), "{}: {err}", array.path());
            }
            other => panic!("unknown error kind {other}"),
        }
    }
    // Reads confined to good chunks of a damaged array still succeed, with the right bytes.
    let array = manifest()
        .into_iter()
        .find(|a| a.path() == "errors/corrupt_chunks")
        .unwrap();
    let expected = array.expected().unwrap();
    let file = File::open(mount.path("errors/corrupt_chunks/data")).unwrap();
    let mut page = vec![0u8; 4096];
    for row in [0usize, 2, 4, 5] {
        file.read_exact_at(&mut page, (row * 4096) as u64).unwrap();
        assert_eq!(
            page,
            expected.data[row * 4096..(row + 1) * 4096],
            "row {row}"
        );
    }
    assert!(
        mount.log().contains("errors/corrupt_chunks/1.0"),
        "log names the bad chunk file:\n{}",
        mount.log()
    );
    // The rest of the store is unaffected.
    assert!(read_all(&mount.path("errors/ok_sibling/data")).is_ok());
}

#[test]
fn concurrent_readers_see_consistent_bytes() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only", "--cache-size", "64KiB"]);
    let arrays: Vec<_> = manifest()
        .into_iter()
        .filter(|a| {
            a.error().is_none() && a.expected().map(|e| e.data.len() > 256).unwrap_or(false)
        })
        .collect();
    std::thread::scope(|scope| {
        for t in 0..6u64 {
            let arrays = &arrays;
            let mount = &mount;
            scope.spawn(move || {
                let mut seed = 0x9E3779B97F4A7C15u64.wrapping_mul(t + 1);
                let mut next = || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for _ in 0..300 {
                    let array = &arrays[(next() % arrays.len() as u64) as usize];
                    let expected = array.expected().unwrap().data;
                    let offset = next() % expected.len() as u64;
                    let len = 1 + next() % 5000;
                    let mut file = File::open(mount.path(array.path()).join("data")).unwrap();
                    file.seek(SeekFrom::Start(offset)).unwrap();
                    let mut buf = Vec::new();
                    file.take(len).read_to_end(&mut buf).unwrap();
                    let end = (offset + len).min(expected.len() as u64) as usize;
                    assert_eq!(
                        buf,
                        expected[offset as usize..end],
                        "{} at {offset}+{len}",
                        array.path()
                    );
                }
            });
        }
    });
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    let evictions: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cache_evictions "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(evictions > 0, "a 64KiB cache must evict:\n{stats}");
}

#[test]
fn stats_file_reports_counters() {
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    read_all(&mount.path("dtypes/f8_le/data")).unwrap();
    let stats = std::fs::read_to_string(mount.path(".zarrfs/stats")).unwrap();
    for line in stats.lines() {
        let mut parts = line.split(' ');
        let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            !name.is_empty() && value.parse::<u64>().is_ok(),
            "bad line {line:?}"
        );
        assert!(parts.next().is_none());
    }
    let get = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(get("chunks_decoded") > 0);
    assert!(get("bytes_read") > 0);
}

#[test]
fn read_only_mount_modes_and_erofs() {
    use std::os::unix::fs::PermissionsExt;
    let (_copy, mount) = Mount::v2_fixtures(&["-o", "ro"]);
    let data = mount.path("dtypes/i4_le/data");
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert_eq!(
        std::fs::metadata(mount.path("dtypes"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), uid);
}

#[test]
fn root_can_be_an_array() {
    let store = fixtures().join("v2.zarr/dtypes/f4_be");
    let mount = Mount::new(&store, &["--read-only"]);
    let array = manifest()
        .into_iter()
        .find(|a| a.path() == "dtypes/f4_be")
        .unwrap();
    assert_eq!(
        read_all(&mount.path("data")).unwrap(),
        array.expected().unwrap().data
    );
}

#[test]
fn command_line_errors_are_one_clear_line() {
    let empty = tempfile::tempdir().unwrap();
    let point = tempfile::tempdir().unwrap();
    let store = fixtures().join("v2.zarr");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                empty.path().display().to_string(),
                point.path().display().to_string(),
            ],
            "not a Zarr store",
        ),
        (
            vec![
                "/nonexistent/store".into(),
                point.path().display().to_string(),
            ],
            "/nonexistent/store",
        ),
        (
            vec![store.display().to_string(), "/nonexistent/mnt".into()],
            "/nonexistent/mnt",
        ),
        (
            vec![
                store.display().to_string(),
                store.join(".zgroup").display().to_string(),
            ],
            "not a directory",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["mount".to_string()];
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = zarrfs(&refs);
        assert!(!out.status.success(), "{full:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{full:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{full:?}: {stderr}");
    }
    let (_copy, mount) = Mount::v2_fixtures(&["--read-only"]);
    let again = zarrfs(&[
        "mount",
        mount.store.to_str().unwrap(),
        mount.point.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already mounted"));
}

#[test]
fn foreground_mount_exits_cleanly_on_sigterm() {
    let point = tempfile::tempdir().unwrap();
    let store = fixtures().join("v2.zarr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zarrfs"))
        .args([
            "mount",
            "-f",
            "--read-only",
            store.to_str().unwrap(),
            point.path().to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !point.path().join("attrs.json").exists() {
        assert!(std::time::Instant::now() < deadline, "mount never came up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        !point.path().join("attrs.json").exists(),
        "mount point must be released"
    );
}
