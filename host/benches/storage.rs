//! Storage benchmark (a bench binary, not a timed test): append+sync
//! throughput of the fjall log for 1 KiB entries, one sync per batch (group
//! commit), with batches of 1, 16 and 256 entries, and the latency of one
//! persist (write + sync) at each size; then restart time: open + recover +
//! rebuild the state machine from a snapshot of `--znodes` (default 1 M)
//! znodes of 100 B plus a committed tail of 100,000 setData entries.
//!
//! Run: `cargo bench -p warren --bench storage` (`-- --dir PATH` to measure
//! another disk; `-- --seconds S` per batch size).

use bytes::Bytes;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren::consensus::{
    EntryKind, HardState, LogEntry, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use warren::storage::Storage;
use warren::{Command, Entry, Limits, StateMachine};
use warren_client::{Acl, CreateMode, Op, SessionId, Zxid};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let base: PathBuf = arg("--dir")
        .map_or_else(|| std::env::temp_dir().join("warren-storage-bench"), PathBuf::from);
    let seconds: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let payload = Bytes::from(vec![0xabu8; 1024]);
    println!(
        "fjall log, 1 KiB entries, one SyncData (fdatasync) per batch, {seconds} s per size, in {}",
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
    let znodes: u64 = arg("--znodes").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    restart(&base.join("restart"), znodes, 100_000);
}

/// Builds a data dir holding a snapshot of `znodes` znodes and a committed
/// tail of `tail` entries, then times a restart from it.
fn restart(dir: &std::path::Path, znodes: u64, tail: u64) {
    let _ = std::fs::remove_dir_all(dir);
    let mut sm = StateMachine::new(Limits::default());
    let mut zxid = 0u64;
    let mut next = |command: Command, sm: &mut StateMachine| {
        zxid += 1;
        sm.apply(Entry { zxid: Zxid(zxid), time_ms: zxid as i64, command });
        zxid
    };
    next(Command::CreateSession { timeout_ms: 10_000, auth: vec![], secret: None }, &mut sm);
    let session = SessionId(1);
    let create = |path: String| Command::Request {
        session,
        op: Op::Create { path, data: vec![1; 100], acl: Acl::open(), mode: CreateMode::Persistent },
    };
    for p in 0..znodes.div_ceil(1000) {
        next(create(format!("/p{p:04}")), &mut sm);
    }
    for i in 0..znodes {
        next(create(format!("/p{:04}/n{:04}", i / 1000, i % 1000)), &mut sm);
    }
    let t = Instant::now();
    let mut bytes = Vec::new();
    warren::state::snapshot::write(&sm, &mut bytes).expect("snapshot to memory");
    let snapshot_ms = t.elapsed().as_millis();
    let snapshot_index = LogIndex(zxid);
    let (mut storage, _) = Storage::open(dir).expect("open the bench data dir");
    let meta = SnapshotMeta {
        index: snapshot_index,
        term: Term(1),
        membership: Membership::new([NodeId(1)]),
    };
    let snapshot_mib = bytes.len() as f64 / (1 << 20) as f64;
    storage.save_snapshot(&Snapshot { meta, data: bytes.into() }).expect("save snapshot");
    let entries: Vec<LogEntry> = (1..=tail)
        .map(|i| {
            let op = Op::SetData {
                path: format!("/p{:04}/n{:04}", (i % znodes) / 1000, (i % znodes) % 1000),
                data: vec![2; 100],
                version: None,
            };
            LogEntry {
                index: LogIndex(snapshot_index.0 + i),
                term: Term(1),
                time_ms: i as i64,
                kind: EntryKind::Command(Command::Request { session, op }.encode().into()),
            }
        })
        .collect();
    let commit = LogIndex(snapshot_index.0 + tail);
    let hard_state = HardState { term: Term(1), vote: Some(NodeId(1)), commit };
    for chunk in entries.chunks(1024) {
        storage.persist(Some(&hard_state), chunk).expect("persist tail");
    }
    drop(storage);
    drop(sm);
    let t = Instant::now();
    let (_storage, restored) = Storage::open(dir).expect("reopen");
    let opened = t.elapsed();
    let rebuilt = warren::storage::rebuild(&restored, Limits::default(), None).expect("rebuild");
    let total = t.elapsed();
    assert_eq!(rebuilt.last_applied(), Zxid(commit.0));
    println!(
        "  restart from a {znodes}-znode snapshot ({snapshot_mib:.0} MiB, written in {snapshot_ms} ms) + {tail} committed entries: {:.2} s ({:.2} s opening and reading the log and snapshot, {:.2} s restoring and replaying)",
        total.as_secs_f64(),
        opened.as_secs_f64(),
        (total - opened).as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}
