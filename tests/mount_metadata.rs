//! Metadata as other writers leave it, through a real mount: numbers kept exactly, Python's
//! bare non-finite numbers, codec settings only an encoder uses, directories without
//! `.zgroup` (implicit groups) and stores holding only consolidated metadata.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn zarray(dtype: &str, shape: &[u64], chunks: &[u64], fill: &str, compressor: &str) -> String {
    format!(
        r#"{{"zarr_format": 2, "shape": {shape:?}, "chunks": {chunks:?}, "dtype": "{dtype}",
            "compressor": {compressor}, "fill_value": {fill}, "order": "C", "filters": null}}"#
    )
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Deterministic random doubles: every bit pattern of a finite double is as likely.
fn random_doubles(n: usize) -> Vec<f64> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = f64::from_bits(x);
        if v.is_finite() {
            out.push(v);
        }
    }
    out
}

/// The text a writer may use for a double: shortest round trip, with or without exponent,
/// a positive exponent signed as Python writes it.
fn number_text(i: usize, v: f64) -> String {
    let text = if i.is_multiple_of(2) {
        format!("{v:e}")
    } else {
        format!("{v:?}")
    };
    match text.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => text,
    }
}

#[test]
fn numbers_round_trip_exactly_in_fills_attrs_and_meta() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path();
    write(&root.join(".zgroup"), r#"{"zarr_format": 2}"#);
    let doubles = random_doubles(10_000);
    let texts: Vec<String> = doubles
        .iter()
        .enumerate()
        .map(|(i, v)| number_text(i, *v))
        .collect();
    write(
        &root.join(".zattrs"),
        &format!(
            r#"{{"netcdf": 1.0000000200408773e+20, "values": [{}]}}"#,
            texts.join(", ")
        ),
    );
    // netCDF's default fill for doubles, as a fill of chunks that are not stored.
    write(
        &root.join("nc/.zarray"),
        &zarray("<f8", &[3], &[2], "9.969209968386869e+36", "null"),
    );
    write(
        &root.join("be/.zarray"),
        &zarray(">f4", &[2], &[2], "1.0000000200408773e+20", "null"),
    );
    let fills = 300;
    for (i, text) in texts.iter().take(fills).enumerate() {
        write(
            &root.join(format!("fills/a{i}/.zarray")),
            &zarray("<f8", &[1], &[1], text, "null"),
        );
    }
    let mount = Mount::new(root, &["--read-only"]);

    let data = fs::read(mount.path("nc/data")).unwrap();
    assert_eq!(data, [9.969209968386869e+36f64.to_le_bytes(); 3].concat());
    let chunk = fs::read(mount.path("nc/chunks/1")).unwrap();
    assert_eq!(chunk, [9.969209968386869e+36f64.to_le_bytes(); 2].concat());
    let npy = parse_npy(&fs::read(mount.path("nc/data.npy")).unwrap());
    assert_eq!(npy.data, data);
    let meta = fs::read_to_string(mount.path("nc/meta.json")).unwrap();
    assert!(
        meta.contains("\"fill_value\": 9.969209968386869e+36"),
        "{meta}"
    );
    let be = fs::read(mount.path("be/data")).unwrap();
    assert_eq!(
        be,
        [(1.0000000200408773e+20f64 as f32).to_be_bytes(); 2].concat()
    );

    for (i, v) in doubles.iter().take(fills).enumerate() {
        let bytes = fs::read(mount.path(&format!("fills/a{i}/data"))).unwrap();
        assert_eq!(bytes, v.to_le_bytes(), "fill {}", texts[i]);
    }

    let attrs = fs::read_to_string(mount.path("attrs.json")).unwrap();
    assert!(attrs.contains("1.0000000200408773e+20"), "{attrs}");
    for text in &texts {
        assert!(attrs.contains(text.as_str()), "{text} kept as written");
    }
    let parsed: Value = serde_json::from_str(&attrs).unwrap();
    let values = parsed["values"].as_array().unwrap();
    assert_eq!(values.len(), doubles.len());
    for (got, want) in values.iter().zip(&doubles) {
        assert_eq!(got.as_f64().unwrap().to_bits(), want.to_bits());
    }
}

#[test]
fn bare_nan_and_infinity_are_accepted_everywhere() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path();
    write(&root.join(".zgroup"), r#"{"zarr_format": 2}"#);
    write(
        &root.join(".zattrs"),
        r#"{"missing": NaN, "range": [-Infinity, Infinity], "name": "NaN"}"#,
    );
    write(&root.join("g/.zgroup"), r#"{"zarr_format": 2}"#);
    write(&root.join("g/.zattrs"), r#"{"scale": Infinity}"#);
    write(
        &root.join("g/arr/.zarray"),
        &zarray("<f4", &[4], &[2], "NaN", "null"),
    );
    write(&root.join("g/arr/.zattrs"), r#"{"valid_min": -Infinity}"#);
    write(
        &root.join("g/neg/.zarray"),
        &zarray(">f8", &[2], &[2], "-Infinity", "null"),
    );
    write(
        &root.join(".zmetadata"),
        r#"{"zarr_consolidated_format": 1, "metadata": {".zattrs": {"missing": NaN}}}"#,
    );
    let mount = Mount::new(root, &["--read-only"]);
    let attrs = fs::read_to_string(mount.path("attrs.json")).unwrap();
    assert!(attrs.contains("\"missing\": NaN"), "{attrs}");
    assert!(attrs.contains("-Infinity,\n    Infinity"), "{attrs}");
    assert!(attrs.contains("\"name\": \"NaN\""), "{attrs}");
    let group_attrs = fs::read_to_string(mount.path("g/attrs.json")).unwrap();
    assert!(group_attrs.contains("\"scale\": Infinity"), "{group_attrs}");
    let array_attrs = fs::read_to_string(mount.path("g/arr/attrs.json")).unwrap();
    assert!(
        array_attrs.contains("\"valid_min\": -Infinity"),
        "{array_attrs}"
    );
    let data = fs::read(mount.path("g/arr/data")).unwrap();
    assert_eq!(data, [f32::NAN.to_le_bytes(); 4].concat());
    let meta: Value =
        serde_json::from_slice(&fs::read(mount.path("g/arr/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["fill_value"], "NaN");
    let neg = fs::read(mount.path("g/neg/data")).unwrap();
    assert_eq!(neg, [f64::NEG_INFINITY.to_be_bytes(); 2].concat());
}

#[test]
fn settings_only_an_encoder_uses_do_not_stop_reads_or_writes() {
    use zarrfs::codec::v2_compressor;
    let store = tempfile::tempdir().unwrap();
    let root = store.path();
    write(&root.join(".zgroup"), r#"{"zarr_format": 2}"#);
    let values: Vec<u8> = (0..8i32).flat_map(|v| (v * 3).to_le_bytes()).collect();
    let arrays = [
        ("gzip", r#"{"id": "gzip", "level": -1}"#),
        ("zlib", r#"{"id": "zlib", "level": -1}"#),
        ("zstd", r#"{"id": "zstd", "level": 100}"#),
        (
            "blosc",
            r#"{"id": "blosc", "cname": "lz4", "clevel": 12, "shuffle": 1}"#,
        ),
    ];
    for (name, compressor) in arrays {
        write(
            &root.join(format!("{name}/.zarray")),
            &zarray("<i4", &[8], &[4], "0", compressor),
        );
        // Chunks as a writer with a valid level stores them.
        let id = serde_json::from_str::<Value>(compressor).unwrap()["id"].clone();
        let codec = v2_compressor(&json!({ "id": id }), 4).unwrap();
        for (i, chunk) in values.chunks(16).enumerate() {
            fs::write(
                root.join(format!("{name}/{i}")),
                codec.encode(chunk).unwrap(),
            )
            .unwrap();
        }
    }
    let mount = Mount::new(root, &["--rw"]);
    for (name, _) in arrays {
        assert_eq!(
            fs::read(mount.path(&format!("{name}/data"))).unwrap(),
            values,
            "{name}"
        );
    }
    // Written as numcodecs maps the settings: gzip/zlib -1 is level 6, zstd 100 is 22; blosc
    // clevel 12 cannot be encoded (c-blosc refuses it), so the write fails and nothing changes.
    for (name, writable) in [
        ("gzip", true),
        ("zlib", true),
        ("zstd", true),
        ("blosc", false),
    ] {
        let path = mount.path(&format!("{name}/chunks/0"));
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(&7i32.to_le_bytes(), 0).unwrap();
        let synced = file.sync_all();
        assert_eq!(synced.is_ok(), writable, "{name}: {synced:?}");
    }
    drop(mount);
    for (name, compressor) in arrays.iter().take(3) {
        let config: Value = serde_json::from_str(compressor).unwrap();
        let codec = v2_compressor(&config, 4).unwrap();
        let stored = fs::read(root.join(format!("{name}/0"))).unwrap();
        let decoded = codec.decode(&stored).unwrap();
        assert_eq!(&decoded[..4], &7i32.to_le_bytes(), "{name}");
        assert_eq!(&decoded[4..], &values[4..16], "{name}");
    }
    let blosc = fs::read(root.join("blosc/0")).unwrap();
    let codec = v2_compressor(&json!({"id": "blosc"}), 4).unwrap();
    assert_eq!(
        codec.decode(&blosc).unwrap(),
        &values[..16],
        "blosc unchanged"
    );
}

#[test]
fn directories_without_zgroup_are_implicit_groups() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path();
    write(&root.join(".zgroup"), r#"{"zarr_format": 2}"#);
    write(
        &root.join("plain/deeper/arr/.zarray"),
        &zarray("|u1", &[3], &[3], "5", "null"),
    );
    fs::write(root.join("plain/deeper/arr/0"), [1u8, 2, 3]).unwrap();
    let mount = Mount::new(root, &["--read-only"]);
    let names: Vec<String> = fs::read_dir(mount.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"plain".to_string()), "{names:?}");
    assert_eq!(
        fs::read_to_string(mount.path("plain/deeper/attrs.json")).unwrap(),
        "{}\n"
    );
    assert_eq!(
        fs::read(mount.path("plain/deeper/arr/data")).unwrap(),
        [1, 2, 3]
    );
    for _ in 0..3 {
        fs::metadata(mount.path("plain/deeper")).unwrap();
    }
    let log = mount.log();
    assert_eq!(
        log.matches("shown as an implicit group").count(),
        2,
        "one line per implicit group: {log}"
    );

    // A root without metadata whose directories hold arrays mounts as an implicit group.
    let bare = tempfile::tempdir().unwrap();
    write(
        &bare.path().join("arr/.zarray"),
        &zarray("|u1", &[2], &[2], "9", "null"),
    );
    let mount = Mount::new(bare.path(), &["--read-only"]);
    assert_eq!(fs::read(mount.path("arr/data")).unwrap(), [9, 9]);
}

#[test]
fn a_directory_that_is_no_store_is_refused_naming_what_was_looked_for() {
    let store = tempfile::tempdir().unwrap();
    fs::create_dir(store.path().join("sub")).unwrap();
    let point = tempfile::tempdir().unwrap();
    let out = zarrfs(&[
        "mount",
        store.path().to_str().unwrap(),
        point.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["zarr.json", ".zgroup", ".zarray", ".zmetadata"] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn stores_with_only_consolidated_metadata_mount() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path();
    let arr: Value = serde_json::from_str(&zarray("<i2", &[4], &[2], "-1", "null")).unwrap();
    let consolidated = json!({"zarr_consolidated_format": 1, "metadata": {
        ".zgroup": {"zarr_format": 2},
        ".zattrs": {"source": "consolidated"},
        "grp/.zgroup": {"zarr_format": 2},
        "grp/.zattrs": {"level": 1},
        "grp/arr/.zarray": arr,
        "grp/arr/.zattrs": {"units": "K"},
        "top/.zarray": arr,
    }});
    write(&root.join(".zmetadata"), &consolidated.to_string());
    fs::create_dir_all(root.join("grp/arr")).unwrap();
    fs::write(
        root.join("grp/arr/1"),
        [7i16.to_le_bytes(), 8i16.to_le_bytes()].concat(),
    )
    .unwrap();
    let mount = Mount::new(root, &["--read-only"]);
    let mut names: Vec<String> = fs::read_dir(mount.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".zarrfs", "attrs.json", "grp", "top"]);
    let attrs: Value =
        serde_json::from_slice(&fs::read(mount.path("attrs.json")).unwrap()).unwrap();
    assert_eq!(attrs["source"], "consolidated");
    let attrs: Value =
        serde_json::from_slice(&fs::read(mount.path("grp/arr/attrs.json")).unwrap()).unwrap();
    assert_eq!(attrs["units"], "K");
    let data = fs::read(mount.path("grp/arr/data")).unwrap();
    let want: Vec<u8> = [-1i16, -1, 7, 8]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
    assert_eq!(
        fs::read(mount.path("top/data")).unwrap(),
        [(-1i16).to_le_bytes(); 4].concat()
    );
}
