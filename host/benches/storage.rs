//! Storage benchmark (a bench binary, not a timed test): append+sync
//! throughput of the fjall log for 1 KiB entries, one sync per batch (group
//! commit), with batches of 1, 16 and 256 entries; and the latency of one
//! persist (write + sync) at each size.
//!
//! Run: `cargo bench -p warren --bench storage` (`-- --dir PATH` to measure
//! another disk; `-- --seconds S` per batch size).

use bytes::Bytes;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren::consensus::{EntryKind, HardState, LogEntry, LogIndex, NodeId, Term};
use warren::storage::Storage;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let base: PathBuf = arg("--dir")
        .map_or_else(|| std::env::temp_dir().join("warren-storage-bench"), PathBuf::from);
    let seconds: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let payload = Bytes::from(vec![0xabu8; 1024]);
    println!(
        "fjall log, 1 KiB entries, one SyncAll per batch, {seconds} s per size, in {}",
        base.display()
    );
    for batch in [1u64, 16, 256] {
        let dir = base.join(format!("batch-{batch}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut storage, _) = Storage::open(&dir).expect("open the bench data dir");
        let hard_state = HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(0) };
        let mut next = 1u64;
        let mut latencies: Vec<Duration> = Vec::new();
        let started = Instant::now();
        while started.elapsed().as_secs_f64() < seconds {
            let entries: Vec<LogEntry> = (next..next + batch)
                .map(|i| LogEntry {
                    index: LogIndex(i),
                    term: Term(1),
                    time_ms: i as i64,
                    kind: EntryKind::Command(payload.clone()),
                })
                .collect();
            let t = Instant::now();
            storage.persist(Some(&hard_state), &entries).expect("persist");
            latencies.push(t.elapsed());
            next += batch;
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "  batch {batch:>3}: {:>9.0} entries/s, {:>6.0} syncs/s; persist p50 {:?}, p99 {:?}",
            (next - 1) as f64 / elapsed,
            latencies.len() as f64 / elapsed,
            pct(0.5),
            pct(0.99)
        );
        drop(storage);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
