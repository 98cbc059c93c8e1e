//! Stress through real mounts, over Zarr v2, v3 and sharded arrays and all their views
//! (`data`, `data.npy`, chunk files):
//!
//! - 8 readers and 2 writers for a while, every read compared with a shadow copy of the
//!   arrays, under a watchdog that fails on any operation stalled for over 10 s;
//! - a crash loop: the daemon is killed (SIGKILL) while a writer writes and fsyncs, then
//!   the store is mounted again: every fsynced write must be there and every chunk must
//!   decode.
//!
//! Short by default (a few seconds, a few kills); `scripts/stress.sh` runs them longer
//! through `ZARRFS_STRESS_SECONDS`, `ZARRFS_STRESS_KILLS` and `ZARRFS_STRESS_OPTIONS`
//! (extra mount options, e.g. `-o kernel_cache`).

mod common;

use common::*;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any read, write or fsync may take.
const STALL: Duration = Duration::from_secs(10);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mount options for every mount of these tests: writable, plus `ZARRFS_STRESS_OPTIONS`.
fn mount_options() -> Vec<String> {
    let mut options = vec!["-o".to_string(), "rw".to_string()];
    if let Ok(extra) = std::env::var("ZARRFS_STRESS_OPTIONS") {
        options.extend(extra.split_whitespace().map(str::to_string));
    }
    options
}

fn mount_store(store: &Path, extra: &[&str]) -> Mount {
    let mut options = mount_options();
    options.extend(extra.iter().map(|s| s.to_string()));
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    Mount::new(store, &options)
}

/// A small xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// One array of the store: its shape, the chunks its chunk files show (inner chunks of a
/// sharded array), its element size and fill value, and its metadata document.
struct Layout {
    name: &'static str,
    shape: Vec<u64>,
    chunks: Vec<u64>,
    fill: Vec<u8>,
    document: (&'static str, Value),
}

/// The arrays: v2 with zstd (C order) and blosc (F order), v3 with a transpose and gzip,
/// and v3 sharded with zstd inner chunks; every one with edge chunks.
fn layouts() -> Vec<Layout> {
    let v2 = |shape: &[u64], chunks: &[u64], dtype: &str, fill: Value, order, compressor| {
        json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
               "fill_value": fill, "order": order, "filters": null, "compressor": compressor})
    };
    let v3 = |shape: &[u64], chunks: &[u64], dtype: &str, fill: Value, codecs: Value| {
        json!({"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dtype,
               "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
               "chunk_key_encoding": {"name": "default"}, "fill_value": fill,
               "codecs": codecs, "attributes": {}})
    };
    vec![
        Layout {
            name: "a",
            shape: vec![100, 70],
            chunks: vec![16, 16],
            fill: 0i32.to_le_bytes().to_vec(),
            document: (
                ".zarray",
                v2(
                    &[100, 70],
                    &[16, 16],
                    "<i4",
                    json!(0),
                    "C",
                    json!({"id": "zstd", "level": 1}),
                ),
            ),
        },
        Layout {
            name: "b",
            shape: vec![50, 40, 3],
            chunks: vec![8, 16, 3],
            fill: 1.5f64.to_be_bytes().to_vec(),
            document: (
                ".zarray",
                v2(
                    &[50, 40, 3],
                    &[8, 16, 3],
                    ">f8",
                    json!(1.5),
                    "F",
                    json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1}),
                ),
            ),
        },
        Layout {
            name: "c",
            shape: vec![64, 48],
            chunks: vec![20, 12],
            fill: 7u16.to_le_bytes().to_vec(),
            document: (
                "zarr.json",
                v3(
                    &[64, 48],
                    &[20, 12],
                    "uint16",
                    json!(7),
                    json!([
                    {"name": "transpose", "configuration": {"order": [1, 0]}},
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "gzip", "configuration": {"level": 1}}]),
                ),
            ),
        },
        Layout {
            name: "d",
            shape: vec![60, 50],
            chunks: vec![10, 5],
            fill: 0i32.to_le_bytes().to_vec(),
            document: (
                "zarr.json",
                v3(
                    &[60, 50],
                    &[20, 25],
                    "int32",
                    json!(0),
                    json!([
                    {"name": "sharding_indexed", "configuration": {
                        "chunk_shape": [10, 5],
                        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                   {"name": "zstd", "configuration": {"level": 1}}],
                        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                         {"name": "crc32c"}],
                        "index_location": "end"}}]),
                ),
            ),
        },
    ]
}

impl Layout {
    fn itemsize(&self) -> usize {
        self.fill.len()
    }

    fn total(&self) -> usize {
        self.shape.iter().product::<u64>() as usize * self.itemsize()
    }

    fn grid(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(&self.chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect()
    }

    fn chunk_count(&self) -> u64 {
        self.grid().iter().product()
    }

    fn chunk_bytes(&self) -> usize {
        self.chunks.iter().product::<u64>() as usize * self.itemsize()
    }

    /// For each byte of a chunk file, the byte of the flat view it shows (`None`: padding).
    fn chunk_map(&self, linear: u64) -> Vec<Option<usize>> {
        let index = grid_positions(&self.grid()).swap_remove(linear as usize);
        let k = self.itemsize();
        chunk_element_sources(&self.shape, &self.chunks, &index)
            .into_iter()
            .flat_map(|flat| (0..k).map(move |b| flat.map(|e| e as usize * k + b)))
            .collect()
    }

    /// The initial contents of the flat view.
    fn filled(&self) -> Vec<u8> {
        self.fill.repeat(self.total() / self.itemsize())
    }

    fn write_to(&self, store: &Path) {
        let dir = store.join(self.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(self.document.0), self.document.1.to_string()).unwrap();
    }
}

/// A store holding every layout (a v2 root group).
fn new_stress_store() -> (tempfile::TempDir, PathBuf, Vec<Layout>) {
    let (dir, store) = new_store();
    let layouts = layouts();
    for layout in &layouts {
        layout.write_to(&store);
    }
    (dir, store, layouts)
}

/// A view of an array and the byte range of a read or write in it.
#[derive(Debug, Clone, Copy)]
enum View {
    Data,
    Npy,
    Chunk(u64),
}

/// An array of a live mount.
struct Mounted {
    layout: Layout,
    dir: PathBuf,
    /// The NPY header of `data.npy`.
    header: Vec<u8>,
}

impl Mounted {
    fn new(layout: Layout, point: &Path) -> Self {
        let dir = point.join(layout.name);
        let npy = fs::metadata(dir.join("data.npy")).unwrap().len() as usize;
        let mut header = vec![0; npy - layout.total()];
        File::open(dir.join("data.npy"))
            .unwrap()
            .read_exact_at(&mut header, 0)
            .unwrap();
        Mounted {
            layout,
            dir,
            header,
        }
    }

    fn path(&self, view: View) -> PathBuf {
        match view {
            View::Data => self.dir.join("data"),
            View::Npy => self.dir.join("data.npy"),
            View::Chunk(linear) => {
                let index = grid_positions(&self.layout.grid()).swap_remove(linear as usize);
                self.dir.join("chunks").join(chunk_name(&index))
            }
        }
    }

    fn len(&self, view: View) -> usize {
        match view {
            View::Data => self.layout.total(),
            View::Npy => self.header.len() + self.layout.total(),
            View::Chunk(_) => self.layout.chunk_bytes(),
        }
    }

    /// A view and a range in it: mostly small, sometimes the whole view. Only ranges of
    /// reads (`read`) may cover the NPY header, which writes cannot change.
    fn pick(&self, rng: &mut Rng, read: bool) -> (View, usize, usize) {
        let view = match rng.below(3) {
            0 => View::Data,
            1 => View::Npy,
            _ => View::Chunk(rng.below(self.layout.chunk_count())),
        };
        let len = self.len(view);
        let first = if matches!(view, View::Npy) && !read {
            self.header.len()
        } else {
            0
        };
        let span = match rng.below(8) {
            0 => len - first,
            1..=3 => 1 + rng.below(64) as usize,
            _ => 1 + rng.below(4096) as usize,
        };
        let offset = first + rng.below((len - first) as u64) as usize;
        (view, offset, span.min(len - offset))
    }

    /// What `view` shows at `offset..offset + len` when the flat view holds `flat`.
    fn expected(&self, flat: &[u8], view: View, offset: usize, len: usize) -> Vec<u8> {
        match view {
            View::Data => flat[offset..offset + len].to_vec(),
            View::Npy => {
                let mut whole = self.header.clone();
                whole.extend_from_slice(flat);
                whole[offset..offset + len].to_vec()
            }
            View::Chunk(linear) => {
                let fill = &self.layout.fill;
                self.layout.chunk_map(linear)[offset..offset + len]
                    .iter()
                    .enumerate()
                    .map(|(i, at)| match at {
                        Some(at) => flat[*at],
                        None => fill[(offset + i) % fill.len()],
                    })
                    .collect()
            }
        }
    }

    /// The flat bytes a write of `bytes` at `offset` of `view` changes.
    fn written(&self, view: View, offset: usize, bytes: &[u8]) -> Vec<(usize, u8)> {
        match view {
            View::Data => (offset..).zip(bytes.iter().copied()).collect(),
            View::Npy => (offset - self.header.len()..)
                .zip(bytes.iter().copied())
                .collect(),
            View::Chunk(linear) => {
                let map = self.layout.chunk_map(linear);
                map[offset..offset + bytes.len()]
                    .iter()
                    .zip(bytes)
                    .filter_map(|(at, b)| at.map(|at| (at, *b)))
                    .collect()
            }
        }
    }
}

/// Open files of one worker, by path.
#[derive(Default)]
struct Files(HashMap<PathBuf, File>);

impl Files {
    fn get(&mut self, path: PathBuf, rng: &mut Rng) -> std::io::Result<&File> {
        // Now and then a file is closed, which writes its array back.
        if rng.below(16) == 0 {
            self.0.remove(&path);
        }
        if !self.0.contains_key(&path) {
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            self.0.insert(path.clone(), file);
        }
        Ok(&self.0[&path])
    }
}

/// What the workers of one run share.
struct Run {
    arrays: Vec<Mounted>,
    shadows: Vec<RwLock<Vec<u8>>>,
    deadline: Instant,
    start: Instant,
    /// When each worker's current operation started (ms since `start`, plus 1; 0: idle).
    busy: Vec<AtomicU64>,
    stop: AtomicBool,
    failures: Mutex<Vec<String>>,
    reads: AtomicU64,
    writes: AtomicU64,
    fsyncs: AtomicU64,
    bytes_read: AtomicU64,
}

impl Run {
    fn fail(&self, message: String) {
        let mut failures = self.failures.lock();
        if failures.len() < 10 {
            failures.push(message);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    /// Runs one operation of worker `id`, watched by the watchdog.
    fn timed<T>(&self, id: usize, op: impl FnOnce() -> T) -> T {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        self.busy[id].store(now, Ordering::SeqCst);
        let result = op();
        self.busy[id].store(0, Ordering::SeqCst);
        result
    }

    fn reader(&self, id: usize) {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((id as u64 + 1) * 0x9e37_79b9));
        let mut files = Files::default();
        while self.running() {
            let which = rng.below(self.arrays.len() as u64) as usize;
            let array = &self.arrays[which];
            let (view, offset, len) = array.pick(&mut rng, true);
            let shadow = self.shadows[which].read();
            let mut seen = vec![0u8; len];
            let read = self.timed(id, || {
                let file = files.get(array.path(view), &mut rng)?;
                file.read_exact_at(&mut seen, offset as u64)
            });
            if let Err(err) = read {
                return self.fail(format!("read of {:?}: {err}", array.path(view)));
            }
            let expected = array.expected(&shadow, view, offset, len);
            if seen != expected {
                let first = (0..len).find(|&i| seen[i] != expected[i]).unwrap_or(0);
                return self.fail(format!(
                    "{:?} at {offset} (+{first}) of {len}: read {} where the shadow holds {}",
                    array.path(view),
                    seen[first],
                    expected[first]
                ));
            }
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
        }
    }

    fn writer(&self, id: usize) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x2545_f491));
        let mut files = Files::default();
        while self.running() {
            let which = rng.below(self.arrays.len() as u64) as usize;
            let array = &self.arrays[which];
            let (view, offset, len) = array.pick(&mut rng, false);
            let bytes = rng.bytes(len);
            let fsync = rng.below(8) == 0;
            let mut shadow = self.shadows[which].write();
            let written = self.timed(id, || {
                let file = files.get(array.path(view), &mut rng)?;
                file.write_all_at(&bytes, offset as u64)?;
                if fsync {
                    file.sync_all()?;
                }
                Ok::<_, std::io::Error>(())
            });
            if let Err(err) = written {
                return self.fail(format!("write to {:?}: {err}", array.path(view)));
            }
            for (at, byte) in array.written(view, offset, &bytes) {
                shadow[at] = byte;
            }
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.fsyncs.fetch_add(u64::from(fsync), Ordering::Relaxed);
        }
    }

    /// Fails the run (and kills the daemon, so that nothing stays blocked) when an operation
    /// has been running for longer than [`STALL`].
    fn watchdog(&self, mount: &Mount) {
        while self.running() || self.busy.iter().any(|b| b.load(Ordering::SeqCst) != 0) {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.start.elapsed().as_millis() as u64 + 1;
            let stalled = self.busy.iter().position(|b| {
                let since = b.load(Ordering::SeqCst);
                since != 0 && now - since > STALL.as_millis() as u64
            });
            if let Some(worker) = stalled {
                self.fail(format!("worker {worker} stalled for over {STALL:?}"));
                mount.kill();
                return;
            }
        }
    }
}

#[test]
fn readers_and_writers_agree_with_a_shadow_copy() {
    let seconds = env_or("ZARRFS_STRESS_SECONDS", 4);
    let (_dir, store, layouts) = new_stress_store();
    let mount = mount_store(
        &store,
        &["--writeback-delay", "200ms", "--cache-size", "256KiB"],
    );
    let arrays: Vec<Mounted> = layouts
        .into_iter()
        .map(|layout| Mounted::new(layout, &mount.point))
        .collect();
    let shadows = arrays
        .iter()
        .map(|a| RwLock::new(a.layout.filled()))
        .collect();
    let (readers, writers) = (8, 2);
    let run = Arc::new(Run {
        arrays,
        shadows,
        start: Instant::now(),
        deadline: Instant::now() + Duration::from_secs(seconds),
        busy: (0..readers + writers).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        fsyncs: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
    });
    std::thread::scope(|scope| {
        for id in 0..readers {
            let run = &run;
            scope.spawn(move || run.reader(id));
        }
        for id in readers..readers + writers {
            let run = &run;
            scope.spawn(move || run.writer(id));
        }
        run.watchdog(&mount);
    });
    eprintln!(
        "stress: {seconds} s, {} reads ({} MiB), {} writes, {} fsyncs, options {:?}",
        run.reads.load(Ordering::Relaxed),
        run.bytes_read.load(Ordering::Relaxed) >> 20,
        run.writes.load(Ordering::Relaxed),
        run.fsyncs.load(Ordering::Relaxed),
        mount_options()
    );
    let failures = run.failures.lock().clone();
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", mount.log());
    assert!(run.reads.load(Ordering::Relaxed) > 0 && run.writes.load(Ordering::Relaxed) > 0);
}

/// The values each byte of an array's flat view may hold after a crash: its value at the
/// last fsync and every value written to it since (a set of 256 bits per byte).
struct Allowed(Vec<[u64; 4]>);

impl Allowed {
    fn exactly(flat: &[u8]) -> Self {
        Allowed(flat.iter().map(|&b| Self::bit(b)).collect())
    }

    fn bit(byte: u8) -> [u64; 4] {
        let mut set = [0u64; 4];
        set[byte as usize / 64] |= 1 << (byte % 64);
        set
    }

    fn add(&mut self, at: usize, byte: u8) {
        self.0[at][byte as usize / 64] |= 1 << (byte % 64);
    }

    fn allows(&self, at: usize, byte: u8) -> bool {
        self.0[at][byte as usize / 64] & (1 << (byte % 64)) != 0
    }
}

/// Writes and fsyncs through random views until the mount fails; keeps `allowed` (and
/// `latest`, the flat views as written) up to date, a write counted before it is issued.
fn write_until_killed(
    arrays: &[Mounted],
    allowed: &mut [Allowed],
    latest: &mut [Vec<u8>],
    seed: u64,
) -> (u64, u64) {
    let mut rng = Rng(seed);
    let mut files = Files::default();
    let (mut writes, mut fsyncs) = (0, 0);
    loop {
        let which = rng.below(arrays.len() as u64) as usize;
        let array = &arrays[which];
        let (view, offset, len) = array.pick(&mut rng, false);
        let bytes = rng.bytes(len);
        for (at, byte) in array.written(view, offset, &bytes) {
            allowed[which].add(at, byte);
            latest[which][at] = byte;
        }
        let Ok(file) = files.get(array.path(view), &mut rng) else {
            return (writes, fsyncs);
        };
        if file.write_all_at(&bytes, offset as u64).is_err() {
            return (writes, fsyncs);
        }
        writes += 1;
        if rng.below(3) == 0 {
            if file.sync_all().is_err() {
                return (writes, fsyncs);
            }
            fsyncs += 1;
            allowed[which] = Allowed::exactly(&latest[which]);
        }
    }
}

#[test]
fn sigkill_during_write_back_loses_no_fsynced_write() {
    let kills = env_or("ZARRFS_STRESS_KILLS", 3);
    let (_dir, store, layouts) = new_stress_store();
    let mut latest: Vec<Vec<u8>> = layouts.iter().map(Layout::filled).collect();
    let mut allowed: Vec<Allowed> = latest.iter().map(|flat| Allowed::exactly(flat)).collect();
    let mut layouts = Some(layouts);
    let (mut totals, mut interrupted) = ((0, 0), 0);
    for round in 0..kills {
        let mount = mount_store(&store, &["--writeback-delay", "50ms"]);
        let arrays: Vec<Mounted> = layouts
            .take()
            .unwrap()
            .into_iter()
            .map(|layout| Mounted::new(layout, &mount.point))
            .collect();
        let pid = mount.daemon_pid().expect("daemon");
        let delay = Duration::from_millis(100 + (round * 7919) % 500);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let (writes, fsyncs) = write_until_killed(&arrays, &mut allowed, &mut latest, round + 1);
        totals = (totals.0 + writes, totals.1 + fsyncs);
        killer.join().unwrap();
        mount.kill();
        // Temporaries left: the kill interrupted a write-back.
        interrupted += u64::from(temporaries(&store) > 0);
        for _ in 0..250 {
            if !is_alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(mount);
        // Mounted again: every chunk decodes, every byte is as fsynced or written since.
        let mount = mount_store(&store, &[]);
        let arrays: Vec<Mounted> = arrays
            .into_iter()
            .map(|array| Mounted::new(array.layout, &mount.point))
            .collect();
        let checked = arrays.iter().zip(&allowed).enumerate().map(|(i, (array, allowed))| {
            let chunks: Result<Vec<Vec<u8>>, String> = (0..array.layout.chunk_count())
                .map(|c| fs::read(array.path(View::Chunk(c))).map_err(|e| format!("{:?}: {e}", array.path(View::Chunk(c)))))
                .collect();
            let flat = fs::read(array.path(View::Data)).map_err(|e| e.to_string())?;
            chunks?;
            if let Some(at) = (0..flat.len()).find(|&at| !allowed.allows(at, flat[at])) {
                return Err(format!(
                    "round {round}: {} byte {at} holds {}, neither its fsynced value nor one written since",
                    array.layout.name, flat[at]
                ));
            }
            latest[i] = flat;
            Ok(())
        }).collect::<Result<Vec<()>, String>>();
        if let Err(err) = checked {
            panic!("{err}\nlog:\n{}", mount.log());
        }
        allowed = latest.iter().map(|flat| Allowed::exactly(flat)).collect();
        layouts = Some(arrays.into_iter().map(|a| a.layout).collect());
    }
    // Leftover temporaries of the killed daemons are gone after the last mount.
    let leftovers = temporaries(&store);
    eprintln!(
        "crash loop: {kills} kills ({interrupted} during a write-back), {} writes, {} fsyncs, \
         {leftovers} temporaries left",
        totals.0, totals.1
    );
    assert_eq!(leftovers, 0);
}

/// How many temporaries of write-backs lie under `dir`.
fn temporaries(dir: &Path) -> usize {
    let mut count = 0;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            count += temporaries(&entry.path());
        } else if entry.file_name().to_string_lossy().contains(".zarrfs-tmp-") {
            count += 1;
        }
    }
    count
}
