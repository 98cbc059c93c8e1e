//! `zarrfs-decode-bench`: the in-process decode limit of an array. Loads and decodes every
//! chunk through the library's own store, metadata and codec code on a thread pool (no FUSE,
//! no cache), and prints the timing as one JSON object.
//!
//! ```text
//! zarrfs-decode-bench STORE [ARRAY_PATH] [--threads N] [--repeat N] [--decode-only] [--keep]
//! ```
//!
//! By default each pass does what the daemon does on a cache miss: read the chunk object from
//! the store and decode it (`ZarrArray::load_chunk`). With `--decode-only` the stored chunks
//! are read into memory first and only the decode is timed. With `--keep` every decoded chunk
//! is held until the pass ends, as a chunk cache holds them, so each decode writes into fresh
//! memory (page faults included) instead of a buffer the allocator just freed. The reported
//! time is the median of `--repeat` passes (default 3); `gb_s` is decoded bytes / median
//! seconds / 1e9; `cpu_seconds` is the process's user+sys time of the median pass.

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use zarrfs::array::ZarrArray;
use zarrfs::codec::CodecChain;
use zarrfs::metadata::{self, NodeMeta};
use zarrfs::stats::Stats;
use zarrfs::store::{DirectoryStore, Store};

struct Args {
    store: PathBuf,
    path: String,
    threads: usize,
    repeat: usize,
    decode_only: bool,
    keep: bool,
}

fn usage() -> &'static str {
    "usage: zarrfs-decode-bench STORE [ARRAY_PATH] [--threads N] [--repeat N] [--decode-only] \
     [--keep]"
}

fn parse_args() -> Result<Args> {
    let mut positional = Vec::new();
    let mut threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut repeat = 3;
    let mut decode_only = false;
    let mut keep = false;
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
            "--keep" => keep = true,
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
        keep,
    })
}

fn open_array(args: &Args) -> Result<(Arc<dyn Store>, Arc<ZarrArray>)> {
    let store: Arc<dyn Store> = Arc::new(
        DirectoryStore::open(&args.store)
            .with_context(|| format!("store {}", args.store.display()))?,
    );
    let node = metadata::Catalog::open(store.clone())
        .node(&args.path)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("no Zarr node at {:?}", args.path))?;
    let NodeMeta::Array(meta) = node.meta else {
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

/// User+system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
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
                let mut bytes = Vec::new();
                array
                    .read_stored(c, &Stats::default(), &mut bytes)
                    .map(|found| found.map(|_| bytes))
                    .map_err(|e| anyhow!(e.message))
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let pipeline = CodecChain::from_meta(&array.meta).map_err(|e| anyhow!("{e}"))?;

    let decode = |c: u64| -> Result<Arc<Vec<u8>>> {
        if args.decode_only {
            match &encoded[c as usize] {
                Some(bytes) => Ok(Arc::new(
                    pipeline
                        .decode(bytes)
                        .map_err(|e| anyhow!("chunk {c}: {e}"))?,
                )),
                None => Ok(array.fill_chunk()),
            }
        } else {
            let loaded = array
                .load_chunk(c, &stats)
                .map_err(|e| anyhow!(e.message))?;
            Ok(loaded.buf)
        }
    };
    let mut passes: Vec<(f64, f64)> = Vec::with_capacity(args.repeat);
    let mut decoded_bytes = 0u64;
    for _ in 0..args.repeat {
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let (bytes, kept) = pool.install(|| -> Result<(u64, Vec<Arc<Vec<u8>>>)> {
            if args.keep {
                let kept: Vec<Arc<Vec<u8>>> = chunks
                    .par_iter()
                    .map(|&c| decode(c))
                    .collect::<Result<_>>()?;
                Ok((kept.iter().map(|b| b.len() as u64).sum(), kept))
            } else {
                let bytes = chunks
                    .par_iter()
                    .map(|&c| decode(c).map(|b| b.len() as u64))
                    .try_reduce(|| 0, |a, b| Ok(a + b))?;
                Ok((bytes, Vec::new()))
            }
        })?;
        passes.push((start.elapsed().as_secs_f64(), cpu_seconds() - cpu0));
        drop(kept);
        decoded_bytes = bytes;
    }
    let seconds: Vec<f64> = passes.iter().map(|p| p.0).collect();
    let med = median(&seconds);
    let cpu = passes
        .iter()
        .find(|p| p.0 == med)
        .map(|p| p.1)
        .unwrap_or_else(|| median(&passes.iter().map(|p| p.1).collect::<Vec<_>>()));
    // Each stored object once: the inner chunks of a shard share it.
    let keys: std::collections::BTreeSet<String> =
        chunks.iter().map(|&c| array.chunk_store_key(c)).collect();
    let stored: u64 = keys
        .iter()
        .filter_map(|key| store.info(key).ok().flatten())
        .map(|info| info.size)
        .sum();
    let json = serde_json::json!({
        "store": args.store.display().to_string(),
        "array": args.path,
        "mode": if args.decode_only { "decode" } else { "load+decode" },
        "keep": args.keep,
        "threads": args.threads,
        "chunks": chunks.len(),
        "decoded_bytes": decoded_bytes,
        "array_bytes": array.grid.total_bytes(),
        "stored_bytes": stored,
        "seconds": med,
        "runs": seconds,
        "cpu_seconds": cpu,
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
