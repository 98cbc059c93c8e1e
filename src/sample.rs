//! `zarrfs sample DIR`: writes a small demo store without needing Python: Zarr v3 by
//! default (zstd as zarr-python 3 writes by default, blosc, gzip, a transposed array, a
//! big-endian one with a crc32c checksum, '.' chunk keys, missing chunks), or with
//! `--format 2` the same arrays as Zarr v2 (blosc, zstd, gzip, lz4, zlib; an F-order array).

use crate::codec::CodecChain;
use crate::geometry::ChunkGrid;
use crate::metadata::{v2::parse_zarray, v3::parse_array};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// The Zarr format of the sample store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// `.zgroup`/`.zarray`/`.zattrs`.
    V2,
    /// `zarr.json`.
    V3,
}

/// Values of one element from its index, per demo array.
type Generator = fn(&[u64]) -> f64;

struct SampleArray {
    path: &'static str,
    shape: &'static [u64],
    chunks: &'static [u64],
    /// The element type as the views show it (NumPy string).
    dtype: &'static str,
    fill: Value,
    attrs: Value,
    /// v2: the compressor and the order.
    v2: (Value, &'static str),
    /// v3: the `codecs` list and the chunk key encoding.
    v3: (Value, Value),
    dimension_names: Option<Value>,
    value: Generator,
    /// Chunks left unwritten (they read as the fill value).
    skip_chunk: fn(&[u64]) -> bool,
}

impl SampleArray {
    fn zarray(&self) -> Value {
        json!({
            "zarr_format": 2, "shape": self.shape, "chunks": self.chunks, "dtype": self.dtype,
            "compressor": self.v2.0, "fill_value": self.fill, "order": self.v2.1,
            "filters": null, "dimension_separator": "."
        })
    }

    fn zarr_json(&self) -> Value {
        let data_type = match &self.dtype[1..] {
            "f4" => "float32",
            "f8" => "float64",
            "u1" => "uint8",
            "i2" => "int16",
            "i4" => "int32",
            other => unreachable!("sample dtype {other}"),
        };
        let mut doc = json!({
            "zarr_format": 3, "node_type": "array", "shape": self.shape, "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": self.chunks}},
            "chunk_key_encoding": self.v3.1, "fill_value": self.fill, "codecs": self.v3.0,
            "attributes": self.attrs,
        });
        if let Some(names) = &self.dimension_names {
            doc["dimension_names"] = names.clone();
        }
        doc
    }
}

fn encode_element(dtype: &str, value: f64, out: &mut Vec<u8>) {
    match dtype {
        "<f4" => out.extend((value as f32).to_le_bytes()),
        "<f8" => out.extend(value.to_le_bytes()),
        "|u1" => out.push(value as u8),
        "<i2" => out.extend((value as i16).to_le_bytes()),
        ">i4" => out.extend((value as i32).to_be_bytes()),
        other => unreachable!("sample dtype {other}"),
    }
}

/// Refuses to write into a directory that holds anything (it would mix with the sample).
fn refuse_non_empty(dir: &Path) -> Result<()> {
    match fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => anyhow::bail!(
            "{} is not empty; give a new or empty directory",
            dir.display()
        ),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot write a sample store into {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_group(dir: &Path, attrs: &Value, format: SampleFormat) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match format {
        SampleFormat::V2 => {
            write_json(&dir.join(".zgroup"), &json!({"zarr_format": 2}))?;
            write_json(&dir.join(".zattrs"), attrs)
        }
        SampleFormat::V3 => write_json(
            &dir.join("zarr.json"),
            &json!({"zarr_format": 3, "node_type": "group", "attributes": attrs}),
        ),
    }
}

fn write_array(root: &Path, spec: &SampleArray, format: SampleFormat) -> Result<()> {
    let dir = root.join(spec.path);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = match format {
        SampleFormat::V2 => {
            write_json(&dir.join(".zarray"), &spec.zarray())?;
            write_json(&dir.join(".zattrs"), &spec.attrs)?;
            parse_zarray(&spec.zarray(), spec.attrs.clone())
        }
        SampleFormat::V3 => {
            write_json(&dir.join("zarr.json"), &spec.zarr_json())?;
            parse_array(&spec.zarr_json())
        }
    }
    .map_err(anyhow::Error::msg)?;
    let pipeline = CodecChain::from_meta(&meta)?;
    let grid = ChunkGrid::new(&meta.shape, &meta.chunk_shape, meta.dtype.size);
    let ndim = meta.shape.len();
    for linear in 0..grid.num_chunks() {
        let chunk_index = grid.chunk_index(linear);
        if (spec.skip_chunk)(&chunk_index) {
            continue;
        }
        let mut buf = Vec::with_capacity(grid.chunk_bytes());
        let mut local = vec![0u64; ndim];
        let elements: u64 = meta.chunk_shape.iter().product();
        for _ in 0..elements {
            let global: Vec<u64> = (0..ndim)
                .map(|d| chunk_index[d] * meta.chunk_shape[d] + local[d])
                .collect();
            let inside = global.iter().zip(&meta.shape).all(|(g, s)| g < s);
            let value = if inside { (spec.value)(&global) } else { 0.0 };
            encode_element(spec.dtype, value, &mut buf);
            for d in (0..ndim).rev() {
                local[d] += 1;
                if local[d] < meta.chunk_shape[d] {
                    break;
                }
                local[d] = 0;
            }
        }
        let path = dir.join(meta.chunk_key(&chunk_index, '.'));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, pipeline.encode(&buf)?)
            .with_context(|| format!("cannot write chunk {}", path.display()))?;
    }
    Ok(())
}

fn bytes(endian: &str) -> Value {
    json!({"name": "bytes", "configuration": {"endian": endian}})
}

fn arrays() -> [SampleArray; 5] {
    let slash = json!({"name": "default", "configuration": {"separator": "/"}});
    let dot = json!({"name": "default", "configuration": {"separator": "."}});
    [
        SampleArray {
            path: "climate/temperature",
            shape: &[24, 90, 180],
            chunks: &[6, 45, 90],
            dtype: "<f4",
            fill: json!("NaN"),
            attrs: json!({"units": "degC", "dims": ["time", "lat", "lon"]}),
            v2: (
                json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}),
                "C",
            ),
            v3: (
                json!([bytes("little"), {"name": "zstd", "configuration": {"level": 0, "checksum": false}}]),
                slash.clone(),
            ),
            dimension_names: Some(json!(["time", "lat", "lon"])),
            value: |i| {
                let (t, lat, lon) = (i[0] as f64, i[1] as f64, i[2] as f64);
                15.0 + 10.0 * (lat / 28.6).cos() + 3.0 * (lon / 20.0 + t / 4.0).sin()
            },
            skip_chunk: |_| false,
        },
        SampleArray {
            path: "climate/precipitation",
            shape: &[90, 180],
            chunks: &[32, 64],
            dtype: "<f8",
            fill: json!(0.0),
            attrs: json!({"units": "mm/day"}),
            v2: (json!({"id": "zstd", "level": 3}), "C"),
            v3: (
                json!([bytes("little"), {"name": "blosc", "configuration": {
                    "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 8, "blocksize": 0}}]),
                dot,
            ),
            dimension_names: Some(json!(["lat", "lon"])),
            value: |i| ((i[0] as f64 / 9.0).sin() * (i[1] as f64 / 15.0).cos()).max(0.0) * 12.5,
            skip_chunk: |c| c == [2, 2],
        },
        SampleArray {
            path: "imaging/mask",
            shape: &[200, 300],
            chunks: &[64, 64],
            dtype: "|u1",
            fill: json!(0),
            attrs: json!({"description": "a disc"}),
            v2: (json!({"id": "gzip", "level": 5}), "C"),
            v3: (
                json!([{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 5}}]),
                slash.clone(),
            ),
            dimension_names: None,
            value: |i| {
                let (y, x) = (i[0] as f64 - 100.0, i[1] as f64 - 150.0);
                if y * y + x * x < 80.0 * 80.0 {
                    255.0
                } else {
                    0.0
                }
            },
            skip_chunk: |c| c[0] == 0 && c[1] == 0,
        },
        SampleArray {
            path: "imaging/labels/regions",
            shape: &[100, 120],
            chunks: &[50, 50],
            dtype: "<i2",
            fill: json!(-1),
            attrs: json!({}),
            v2: (json!({"id": "lz4", "acceleration": 1}), "F"),
            v3: (
                json!([{"name": "transpose", "configuration": {"order": [1, 0]}}, bytes("little"),
                       {"name": "zstd", "configuration": {"level": 3, "checksum": false}}]),
                slash.clone(),
            ),
            dimension_names: None,
            value: |i| ((i[0] / 25) * 10 + i[1] / 30) as f64,
            skip_chunk: |_| false,
        },
        SampleArray {
            path: "counts",
            shape: &[1000],
            chunks: &[256],
            dtype: ">i4",
            fill: json!(0),
            attrs: json!({"description": "big-endian squares"}),
            v2: (json!({"id": "zlib", "level": 1}), "C"),
            v3: (
                json!([bytes("big"), {"name": "zstd", "configuration": {"level": 1, "checksum": false}},
                       {"name": "crc32c"}]),
                slash,
            ),
            dimension_names: None,
            value: |i| (i[0] * i[0]) as f64,
            skip_chunk: |_| false,
        },
    ]
}

/// Writes the demo store into `dir` (created if needed).
pub fn write_sample_store(dir: &Path, format: SampleFormat) -> Result<()> {
    refuse_non_empty(dir)?;
    write_group(
        dir,
        &json!({"title": "zarrfs sample store", "description": "synthetic demo data"}),
        format,
    )?;
    for group in ["climate", "imaging", "imaging/labels"] {
        write_group(&dir.join(group), &json!({"group": group}), format)?;
    }
    for spec in &arrays() {
        write_array(dir, spec, format).with_context(|| format!("sample array {}", spec.path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Catalog, NodeMeta};
    use crate::stats::Stats;
    use crate::store::DirectoryStore;
    use std::sync::Arc;

    /// Both formats hold the same values; v3 writes zarr.json with its own keys.
    #[test]
    fn both_formats_hold_the_same_arrays() {
        let (v2, v3) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_sample_store(v2.path(), SampleFormat::V2).unwrap();
        write_sample_store(v3.path(), SampleFormat::V3).unwrap();
        assert!(v3.path().join("climate/temperature/c/3/1/1").is_file());
        assert!(v3.path().join("climate/precipitation/c.0.1").is_file());
        assert!(!v3.path().join("climate/precipitation/c.2.2").exists());
        assert!(!v3.path().join(".zgroup").exists());
        let open = |dir: &Path| {
            let store: Arc<dyn crate::store::Store> = Arc::new(DirectoryStore::open(dir).unwrap());
            (store.clone(), Catalog::open(store))
        };
        let ((s2, c2), (s3, c3)) = (open(v2.path()), open(v3.path()));
        let stats = Stats::default();
        for spec in &arrays() {
            let array = |store: &Arc<dyn crate::store::Store>, catalog: &Catalog| {
                let NodeMeta::Array(meta) = catalog.node(spec.path).unwrap().unwrap().meta else {
                    panic!("{} is not an array", spec.path);
                };
                crate::array::ZarrArray::new(
                    0,
                    store.clone(),
                    spec.path,
                    *meta,
                    std::time::SystemTime::now(),
                )
            };
            let (a2, a3) = (array(&s2, &c2), array(&s3, &c3));
            assert_eq!(a3.meta.zarr_format, 3);
            assert_eq!(a2.meta.dtype, a3.meta.dtype, "{}", spec.path);
            for linear in 0..a2.grid.num_chunks() {
                let (x, y) = (
                    a2.load_chunk(linear, &stats).unwrap(),
                    a3.load_chunk(linear, &stats).unwrap(),
                );
                assert_eq!(x.buf, y.buf, "{} chunk {linear}", spec.path);
            }
        }
    }
}
