//! `zarrfs sample DIR`: writes a small Zarr v2 demo store (nested groups; blosc, zstd,
//! gzip and lz4 arrays; an F-order array; missing chunks) without needing Python.

use crate::codec::CodecChain;
use crate::geometry::ChunkGrid;
use crate::metadata::v2::parse_zarray;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// Values of one element from its index, per demo array.
type Generator = fn(&[u64]) -> f64;

struct SampleArray {
    path: &'static str,
    zarray: Value,
    attrs: Value,
    value: Generator,
    /// Chunks left unwritten (they read as the fill value).
    skip_chunk: fn(&[u64]) -> bool,
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

fn write_array(root: &Path, spec: &SampleArray) -> Result<()> {
    let dir = root.join(spec.path);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_json(&dir.join(".zarray"), &spec.zarray)?;
    write_json(&dir.join(".zattrs"), &spec.attrs)?;
    let meta = parse_zarray(&spec.zarray, spec.attrs.clone()).map_err(anyhow::Error::msg)?;
    let pipeline = CodecChain::from_meta(&meta)?;
    let grid = ChunkGrid::new(&meta.shape, &meta.chunk_shape, meta.dtype.size);
    let dtype = meta.dtype.numpy_str();
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
            encode_element(&dtype, value, &mut buf);
            for d in (0..ndim).rev() {
                local[d] += 1;
                if local[d] < meta.chunk_shape[d] {
                    break;
                }
                local[d] = 0;
            }
        }
        let key = meta.chunk_key(&chunk_index, '.');
        fs::write(dir.join(&key), pipeline.encode(&buf)?)
            .with_context(|| format!("cannot write chunk {key}"))?;
    }
    Ok(())
}

fn zarray(
    shape: &[u64],
    chunks: &[u64],
    dtype: &str,
    compressor: Value,
    fill: Value,
    order: &str,
) -> Value {
    json!({
        "zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
        "compressor": compressor, "fill_value": fill, "order": order,
        "filters": null, "dimension_separator": "."
    })
}

/// Writes the demo store into `dir` (created if needed).
pub fn write_sample_store(dir: &Path) -> Result<()> {
    refuse_non_empty(dir)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_json(&dir.join(".zgroup"), &json!({"zarr_format": 2}))?;
    write_json(
        &dir.join(".zattrs"),
        &json!({"title": "zarrfs sample store", "description": "synthetic demo data"}),
    )?;
    for group in ["climate", "imaging", "imaging/labels"] {
        fs::create_dir_all(dir.join(group))?;
        write_json(&dir.join(group).join(".zgroup"), &json!({"zarr_format": 2}))?;
        write_json(&dir.join(group).join(".zattrs"), &json!({"group": group}))?;
    }
    let blosc = json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0});
    let arrays = [
        SampleArray {
            path: "climate/temperature",
            zarray: zarray(
                &[24, 90, 180],
                &[6, 45, 90],
                "<f4",
                blosc,
                json!("NaN"),
                "C",
            ),
            attrs: json!({"units": "degC", "dims": ["time", "lat", "lon"]}),
            value: |i| {
                let (t, lat, lon) = (i[0] as f64, i[1] as f64, i[2] as f64);
                15.0 + 10.0 * (lat / 28.6).cos() + 3.0 * (lon / 20.0 + t / 4.0).sin()
            },
            skip_chunk: |_| false,
        },
        SampleArray {
            path: "climate/precipitation",
            zarray: zarray(
                &[90, 180],
                &[32, 64],
                "<f8",
                json!({"id": "zstd", "level": 3}),
                json!(0.0),
                "C",
            ),
            attrs: json!({"units": "mm/day"}),
            value: |i| ((i[0] as f64 / 9.0).sin() * (i[1] as f64 / 15.0).cos()).max(0.0) * 12.5,
            skip_chunk: |c| c == [2, 2],
        },
        SampleArray {
            path: "imaging/mask",
            zarray: zarray(
                &[200, 300],
                &[64, 64],
                "|u1",
                json!({"id": "gzip", "level": 5}),
                json!(0),
                "C",
            ),
            attrs: json!({"description": "a disc"}),
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
            zarray: zarray(
                &[100, 120],
                &[50, 50],
                "<i2",
                json!({"id": "lz4", "acceleration": 1}),
                json!(-1),
                "F",
            ),
            attrs: json!({}),
            value: |i| ((i[0] / 25) * 10 + i[1] / 30) as f64,
            skip_chunk: |_| false,
        },
        SampleArray {
            path: "counts",
            zarray: zarray(
                &[1000],
                &[256],
                ">i4",
                json!({"id": "zlib", "level": 1}),
                json!(0),
                "C",
            ),
            attrs: json!({"description": "big-endian squares"}),
            value: |i| (i[0] * i[0]) as f64,
            skip_chunk: |_| false,
        },
    ];
    for spec in &arrays {
        write_array(dir, spec).with_context(|| format!("sample array {}", spec.path))?;
    }
    Ok(())
}
