//! State machine benchmark (a bench binary, not a timed test): with 1 million
//! znodes of 1 KiB, measures apply throughput for create and setData on one
//! core (creates both into fresh memory and in steady state, after deletes),
//! getData latency, snapshot write time, the longest apply pause while a
//! snapshot is written in the background, and memory per znode beyond its
//! path and data (counted by a global allocator that tracks live bytes).
//!
//! Run: `cargo bench -p warren --bench state_machine` (`-- --nodes N` to
//! change the size, `-- --json` for one JSON line).

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use warren::state::snapshot;
use warren::{Command, Entry, Limits, Response, StateMachine};
use warren_client::{Acl, CreateMode, Id, Op, SessionId, Zxid};

/// Counts live heap bytes, so memory per znode is measured, not estimated,
/// over mimalloc, the allocator the `warren` binary uses.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const VALUE_BYTES: usize = 1024;
const CHILDREN_PER_PARENT: usize = 1000;
const BATCH: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes = args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000usize);
    let json = args.iter().any(|a| a == "--json");
    pretouch(nodes * 1800);

    let mut bench = Bench { sm: StateMachine::new(Limits::default()), zxid: 0, time_ms: 1 };
    let session = match bench.apply(Command::CreateSession {
        timeout_ms: 10_000,
        auth: vec![],
        secret: None,
    }) {
        Response::SessionCreated(id) => id,
        other => panic!("session not created: {other:?}"),
    };
    let parents = nodes.div_ceil(CHILDREN_PER_PARENT);
    for p in 0..parents {
        bench.write(session, create(format!("/p{p:06}"), Vec::new()));
    }

    // Creates: 1 KiB each, timed over apply only (entries are built first).
    let live_before = LIVE.load(Ordering::Relaxed);
    let mut payload_bytes = 0usize;
    let mut create_time = Duration::ZERO;
    // The longest single create: the path index growing is the worst one.
    let mut longest_create = 0u32;
    let mut made = 0;
    while made < nodes {
        let n = BATCH.min(nodes - made);
        let entries: Vec<Entry> = (made..made + n)
            .map(|i| {
                let path = node_path(i);
                payload_bytes += path.len() + VALUE_BYTES;
                bench.entry(Command::Request { session, op: create(path, value(i as u64)) })
            })
            .collect();
        let t = Instant::now();
        let times = bench.run_timed(entries);
        create_time += t.elapsed();
        longest_create = longest_create.max(times.iter().copied().max().unwrap_or(0));
        made += n;
    }
    let live_after = LIVE.load(Ordering::Relaxed);
    let overhead_per_node =
        (live_after - live_before).saturating_sub(payload_bytes) as f64 / nodes as f64;

    // setData: 1 KiB on random existing nodes.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let sets = nodes;
    let mut set_time = Duration::ZERO;
    let mut done = 0;
    while done < sets {
        let n = BATCH.min(sets - done);
        let entries = bench.random_sets(session, nodes, n, &mut rng);
        set_time += bench.run(entries);
        done += n;
    }

    // Steady state: delete 10% of the nodes, then create them again, so
    // creates reuse freed memory instead of growing the heap (growth pays
    // the kernel's page zeroing, which dominates the fresh-create figure).
    let churn = nodes / 10;
    // A prime stride visits distinct nodes unless it divides the count.
    let stride = if nodes % 7919 == 0 { 1 } else { 7919 };
    let victims: Vec<usize> = (0..churn).map(|i| i * stride % nodes).collect();
    let entries: Vec<Entry> = victims
        .iter()
        .map(|&i| {
            let op = Op::Delete { path: node_path(i), version: None };
            bench.entry(Command::Request { session, op })
        })
        .collect();
    let delete_time = bench.run(entries);
    let entries: Vec<Entry> = victims
        .iter()
        .map(|&i| {
            bench.entry(Command::Request { session, op: create(node_path(i), value(i as u64)) })
        })
        .collect();
    let recreate_time = bench.run(entries);

    // getData: latency of single reads, sampled per call.
    let reads = nodes.min(1_000_000);
    let paths: Vec<String> =
        (0..reads).map(|_| node_path((next(&mut rng) % nodes as u64) as usize)).collect();
    let auth: [Id; 0] = [];
    let mut samples: Vec<u32> = Vec::with_capacity(reads);
    let all = Instant::now();
    for path in &paths {
        let t = Instant::now();
        let (data, _) = bench.sm.get_data(black_box(path), &auth).expect("node exists");
        black_box(data);
        samples.push(t.elapsed().as_nanos() as u32);
    }
    let read_wall = all.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];

    // Snapshot: serialize everything to a sink.
    let t = Instant::now();
    snapshot::write(&bench.sm, std::io::sink()).expect("writing to a sink does not fail");
    let snapshot_time = t.elapsed();

    // Snapshot in the background: freeze a view, write it on another thread
    // to a file in the temp dir (synced), and keep applying setData on random nodes (every write
    // may be the first to a shared chunk, the worst case for copy-on-write)
    // until it is done, timing every apply. Then the same number of applies
    // with no snapshot running, for the baseline.
    let t = Instant::now();
    let view = bench.sm.snapshot_view();
    let freeze_time = t.elapsed();
    let file_path = std::env::temp_dir().join(format!("warren-bench-{}.snap", std::process::id()));
    let target = file_path.clone();
    let writer = std::thread::spawn(move || {
        let t = Instant::now();
        let file = std::fs::File::create(&target).expect("the temp dir is writable");
        let mut out = std::io::BufWriter::new(file);
        snapshot::write_view(&view, &mut out).expect("the snapshot file is written");
        let file = out.into_inner().expect("the snapshot file is flushed");
        file.sync_all().expect("the snapshot file is synced");
        (t.elapsed(), file.metadata().map_or(0, |m| m.len() as usize))
    });
    let mut during: Vec<u32> = Vec::new();
    while !writer.is_finished() {
        let entries = bench.random_sets(session, nodes, 1000, &mut rng);
        during.extend(bench.run_timed(entries));
    }
    let (background_time, snapshot_bytes) = writer.join().expect("the snapshot writer finished");
    let _ = std::fs::remove_file(&file_path);
    let mut baseline: Vec<u32> = Vec::with_capacity(during.len());
    while baseline.len() < during.len() {
        let entries = bench.random_sets(session, nodes, 1000, &mut rng);
        baseline.extend(bench.run_timed(entries));
    }
    let longest_during =
        during.iter().max().copied().unwrap_or(0).max(freeze_time.as_nanos() as u32);
    let longest_baseline = baseline.iter().max().copied().unwrap_or(0);
    during.sort_unstable();
    let p999_during = during[(during.len() * 999 / 1000).min(during.len() - 1)];

    let rss_mib = rss_bytes() as f64 / (1 << 20) as f64;
    // A snapshot of one wide parent (a queue's or a lock's children, or the
    // cluster benchmark's creates): children are written sorted by name,
    // and the sort is most of such a snapshot. Measured after the RSS, on a
    // state machine of its own.
    let wide = nodes.min(300_000);
    let wide_snapshot_time = wide_snapshot(wide);
    let creates_per_s = nodes as f64 / create_time.as_secs_f64();
    let sets_per_s = sets as f64 / set_time.as_secs_f64();
    let deletes_per_s = churn as f64 / delete_time.as_secs_f64();
    let recreates_per_s = churn as f64 / recreate_time.as_secs_f64();
    let read_mean_ns = read_wall.as_nanos() as f64 / reads as f64;
    if json {
        println!(
            "{{\"nodes\":{nodes},\"create_per_s\":{creates_per_s:.0},\"set_data_per_s\":{sets_per_s:.0},\"delete_per_s\":{deletes_per_s:.0},\"create_steady_per_s\":{recreates_per_s:.0},\"longest_create_us\":{},\"get_data_mean_ns\":{read_mean_ns:.0},\"get_data_p50_ns\":{},\"get_data_p99_ns\":{},\"get_data_p999_ns\":{},\"overhead_bytes_per_node\":{overhead_per_node:.1},\"snapshot_write_ms\":{},\"snapshot_bytes\":{snapshot_bytes},\"snapshot_freeze_us\":{},\"snapshot_background_ms\":{},\"applies_during_snapshot\":{},\"longest_apply_during_snapshot_us\":{},\"p999_apply_during_snapshot_us\":{},\"longest_apply_baseline_us\":{},\"rss_mib\":{rss_mib:.0},\"wide_children\":{wide},\"wide_snapshot_ms\":{}}}",
            longest_create / 1000,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            snapshot_time.as_millis(),
            freeze_time.as_micros(),
            background_time.as_millis(),
            during.len(),
            longest_during / 1000,
            p999_during / 1000,
            longest_baseline / 1000,
            wide_snapshot_time.as_millis(),
        );
    } else {
        println!("state machine, {nodes} znodes of {VALUE_BYTES} B, one core");
        println!(
            "  create   {creates_per_s:>12.0} applies/s (empty tree to {nodes}: heap growth included); longest {} us",
            longest_create / 1000
        );
        println!("  setData  {sets_per_s:>12.0} applies/s");
        println!("  delete   {deletes_per_s:>12.0} applies/s ({churn} nodes)");
        println!(
            "  create   {recreates_per_s:>12.0} applies/s (steady state: re-creating the deleted {churn})"
        );
        println!(
            "  getData  mean {read_mean_ns:.0} ns; p50 {} ns, p99 {} ns, p99.9 {} ns (per-call timing included)",
            pct(0.5),
            pct(0.99),
            pct(0.999)
        );
        println!(
            "  memory   {overhead_per_node:.1} B per znode beyond path and data (live heap bytes)"
        );
        println!("  snapshot {} ms to write (to a sink)", snapshot_time.as_millis());
        println!(
            "  snapshot in the background: view frozen in {} us; {} MiB written to a file and synced in {} ms on another thread while {} setData applied",
            freeze_time.as_micros(),
            snapshot_bytes >> 20,
            background_time.as_millis(),
            during.len()
        );
        println!(
            "           longest apply pause {} us (freeze included), p99.9 {} us; without a snapshot: longest {} us",
            longest_during / 1000,
            p999_during / 1000,
            longest_baseline / 1000
        );
        println!("  rss      {rss_mib:.0} MiB");
        println!(
            "  snapshot {} ms to write {wide} children of one parent (created from 64 interleaved sequences, 100 B each; to a sink)",
            wide_snapshot_time.as_millis()
        );
    }
}

/// The time to write a snapshot of `children` 100-byte nodes under one
/// parent, named as 64 clients creating in turn name them.
fn wide_snapshot(children: usize) -> Duration {
    let mut bench = Bench { sm: StateMachine::new(Limits::default()), zxid: 0, time_ms: 1 };
    let session = match bench.apply(Command::CreateSession {
        timeout_ms: 10_000,
        auth: vec![],
        secret: None,
    }) {
        Response::SessionCreated(id) => id,
        other => panic!("session not created: {other:?}"),
    };
    bench.write(session, create("/wide".into(), Vec::new()));
    for i in 0..children {
        bench.write(session, create(format!("/wide/n-{}-{}", i % 64, i / 64), vec![0; 100]));
    }
    let t = Instant::now();
    snapshot::write(&bench.sm, std::io::sink()).expect("writing to a sink does not fail");
    t.elapsed()
}

struct Bench {
    sm: StateMachine,
    zxid: u64,
    time_ms: i64,
}

impl Bench {
    fn entry(&mut self, command: Command) -> Entry {
        self.zxid += 1;
        self.time_ms += 1;
        Entry { zxid: Zxid(self.zxid), time_ms: self.time_ms, command }
    }

    fn apply(&mut self, command: Command) -> Response {
        let entry = self.entry(command);
        self.sm.apply(entry).response
    }

    fn write(&mut self, session: SessionId, op: Op) {
        match self.apply(Command::Request { session, op }) {
            Response::Reply(Ok(_)) => {}
            other => panic!("write failed: {other:?}"),
        }
    }

    /// Applies entries, checking every reply succeeded; returns the time.
    /// `count` setData entries of 1 KiB on random nodes among the first `nodes`.
    fn random_sets(
        &mut self,
        session: SessionId,
        nodes: usize,
        count: usize,
        rng: &mut u64,
    ) -> Vec<Entry> {
        (0..count)
            .map(|_| {
                let i = (next(rng) % nodes as u64) as usize;
                let op = Op::SetData { path: node_path(i), data: value(*rng), version: None };
                self.entry(Command::Request { session, op })
            })
            .collect()
    }

    /// Applies entries like `run`; returns each apply's time in ns.
    fn run_timed(&mut self, entries: Vec<Entry>) -> Vec<u32> {
        entries
            .into_iter()
            .map(|entry| {
                let t = Instant::now();
                let applied = self.sm.apply(entry);
                let took = t.elapsed().as_nanos() as u32;
                if !matches!(applied.response, Response::Reply(Ok(_))) {
                    panic!("apply failed: {:?}", applied.response);
                }
                black_box(applied);
                took
            })
            .collect()
    }

    fn run(&mut self, entries: Vec<Entry>) -> Duration {
        let t = Instant::now();
        for entry in entries {
            let applied = self.sm.apply(entry);
            if !matches!(applied.response, Response::Reply(Ok(_))) {
                panic!("apply failed: {:?}", applied.response);
            }
            black_box(applied);
        }
        t.elapsed()
    }
}

fn node_path(i: usize) -> String {
    format!("/p{:06}/n{:06}", i / CHILDREN_PER_PARENT, i % CHILDREN_PER_PARENT)
}

fn create(path: String, data: Vec<u8>) -> Op {
    Op::Create { path, data, acl: Acl::open(), mode: CreateMode::Persistent }
}

fn value(seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_BYTES];
    v[..8].copy_from_slice(&seed.to_le_bytes());
    v
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Touches and frees `bytes` of memory first. In a VM, the first touch of a
/// guest page the host has never backed costs far more than the allocation
/// itself, and makes runs differ by 2-3x depending on what ran before; after
/// this, every run pays only the ordinary kernel page-zeroing cost.
fn pretouch(bytes: usize) {
    let mut block = vec![0u8; bytes];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    black_box(&block);
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}
