//! `zarrfs-decode-bench`: the in-process decode limit of an array. Loads and decodes every
//! chunk through the library's own store, metadata and codec code on a thread pool (no FUSE,
//! no cache), and prints the timing as one JSON object.
//!
//! ```text
//! zarrfs-decode-bench STORE [ARRAY_PATH] [--threads N] [--repeat N] [--decode-only]
//! ```
//!
//! By default each pass does what the daemon does on a cache miss: read the chunk object from
//! the store and decode it (`ZarrArray::load_chunk`). With `--decode-only` the stored chunks
//! are read into memory first and only the decode is timed. The reported time is the median
//! of `--repeat` passes (default 3); `gb_s` is decoded bytes / median seconds / 1e9.

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use zarrfs::array::ZarrArray;
use zarrfs::codec::pipeline::ChunkPipeline;
use zarrfs::metadata::{self, NodeMeta};
use zarrfs::stats::Stats;
use zarrfs::store::{DirectoryStore, Store};

struct Args {
    store: PathBuf,
    path: String,
    threads: usize,
    repeat: usize,
    decode_only: bool,
}

fn usage() -> &'static str {
    "usage: zarrfs-decode-bench STORE [ARRAY_PATH] [--threads N] [--repeat N] [--decode-only]"
}

fn parse_args() -> Result<Args> {
    let mut positional = Vec::new();
    let mut threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut repeat = 3;
    let mut decode_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            let v = args.next().ok_or_else(|| anyhow!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow!("invalid {name} {v:?}"))
        };
        match arg.as_str() {
            "--threads" => threads = value("--threads")?,
            "--repeat" => repeat = value("--repeat")?,
            "--decode-only" => decode_only = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{}", usage()),
            _ => positional.push(arg),
        }
    }
    if positional.is_empty() || positional.len() > 2 {
        bail!("{}", usage());
    }
    if threads == 0 || repeat == 0 {
        bail!("--threads and --repeat must be at least 1");
    }
    Ok(Args {
        store: PathBuf::from(&positional[0]),
        path: positional
            .get(1)
            .map(|p| p.trim_matches('/').to_string())
            .unwrap_or_default(),
        threads,
        repeat,
        decode_only,
    })
}

fn open_array(args: &Args) -> Result<(Arc<dyn Store>, Arc<ZarrArray>)> {
    let store: Arc<dyn Store> = Arc::new(
        DirectoryStore::open(&args.store)
            .with_context(|| format!("store {}", args.store.display()))?,
    );
    let node = metadata::read_node(store.as_ref(), &args.path)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("no Zarr node at {:?}", args.path))?;
    let NodeMeta::Array(meta) = node else {
        bail!("{:?} is a group; name an array path", args.path);
    };
    let array = ZarrArray::new(0, store.clone(), &args.path, *meta, SystemTime::UNIX_EPOCH);
    if let Some(problem) = array.codec_problem() {
        bail!("cannot decode this array: {problem}");
    }
    Ok((store, Arc::new(array)))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let (store, array) = open_array(&args)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?;
    let chunks: Vec<u64> = (0..array.grid.num_chunks()).collect();
    let stats = Stats::default();

    // Stored chunks, read once up front, for --decode-only.
    let encoded: Vec<Option<Vec<u8>>> = if args.decode_only {
        chunks
            .iter()
            .map(|&c| {
                array
                    .read_encoded(c)
                    .map(|found| found.map(|(_, bytes)| bytes))
                    .map_err(|e| anyhow!(e.message))
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let pipeline = ChunkPipeline::from_meta(&array.meta).map_err(|e| anyhow!("{e}"))?;

    let mut seconds = Vec::with_capacity(args.repeat);
    let mut decoded_bytes = 0u64;
    for _ in 0..args.repeat {
        let start = Instant::now();
        let bytes: u64 = pool.install(|| -> Result<u64> {
            chunks
                .par_iter()
                .map(|&c| -> Result<u64> {
                    if args.decode_only {
                        match &encoded[c as usize] {
                            Some(bytes) => Ok(pipeline
                                .decode(bytes)
                                .map_err(|e| anyhow!("chunk {c}: {e}"))?
                                .len() as u64),
                            None => Ok(array.grid.chunk_bytes() as u64),
                        }
                    } else {
                        let loaded = array
                            .load_chunk(c, &stats)
                            .map_err(|e| anyhow!(e.message))?;
                        Ok(loaded.buf.len() as u64)
                    }
                })
                .try_reduce(|| 0, |a, b| Ok(a + b))
        })?;
        seconds.push(start.elapsed().as_secs_f64());
        decoded_bytes = bytes;
    }
    let med = median(&seconds);
    let stored: u64 = chunks
        .iter()
        .filter_map(|&c| store.info(&array.chunk_store_key(c)).ok().flatten())
        .map(|info| info.size)
        .sum();
    let json = serde_json::json!({
        "store": args.store.display().to_string(),
        "array": args.path,
        "mode": if args.decode_only { "decode" } else { "load+decode" },
        "threads": args.threads,
        "chunks": chunks.len(),
        "decoded_bytes": decoded_bytes,
        "array_bytes": array.grid.total_bytes(),
        "stored_bytes": stored,
        "seconds": med,
        "runs": seconds,
        "gb_s": decoded_bytes as f64 / med / 1e9,
    });
    println!("{json}");
    Ok(())
}

fn main() {
    if let Err(err) = run() {
        eprintln!("zarrfs-decode-bench: {err:#}");
        std::process::exit(1);
    }
}
