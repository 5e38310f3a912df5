//! Storage on fjall through its public interface: round trips, suffix
//! replacement, the directory lock, a creation cut short, torn tails and
//! corrupt records (written through fjall itself, and as bytes flipped or
//! cut in fjall's files), snapshots with compaction, and a crash test that
//! kills a real process appending to the log with SIGKILL at random
//! moments.

use bytes::Bytes;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use warren::consensus::{
    EntryKind, HardState, LogEntry, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use warren::storage::{Storage, StorageError, test_payload};

fn entry(index: u64, term: u64) -> LogEntry {
    LogEntry {
        index: LogIndex(index),
        term: Term(term),
        time_ms: index as i64,
        kind: EntryKind::Command(Bytes::from(test_payload(LogIndex(index)))),
    }
}

fn entries(from: u64, to: u64, term: u64) -> Vec<LogEntry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

fn temp() -> tempdir::Dir {
    tempdir::Dir::new()
}

/// A minimal temporary directory, removed on drop.
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "warren-storage-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes a raw value under a log key through fjall, as a corrupted disk
/// (or a buggy older version) would leave it.
fn write_raw(dir: &Path, index: u64, value: Option<&[u8]>) {
    let db = fjall::Database::builder(dir.join("log")).open().expect("open fjall");
    let log = db.keyspace("log", fjall::KeyspaceCreateOptions::default).expect("keyspace");
    match value {
        Some(value) => log.insert(index.to_be_bytes(), value.to_vec()).expect("insert"),
        None => log.remove(index.to_be_bytes()).expect("remove"),
    }
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

#[test]
fn round_trip_and_suffix_replacement() {
    // Proves the hard state and entries survive a reopen, and that persisting
    // entries from an index replaces every stored entry from there on, even
    // when the new suffix is shorter.
    let dir = temp();
    {
        let (mut s, restored) = Storage::open(&dir.0).unwrap();
        assert_eq!(restored.entries, vec![]);
        assert_eq!(restored.hard_state, HardState::default());
        let hs = HardState { term: Term(2), vote: Some(NodeId(3)), commit: LogIndex(4) };
        s.persist(Some(&hs), &entries(1, 10, 1)).unwrap();
        s.persist(None, &entries(6, 7, 2)).unwrap();
    }
    let (_, restored) = Storage::open(&dir.0).unwrap();
    let mut expected = entries(1, 5, 1);
    expected.extend(entries(6, 7, 2));
    assert_eq!(restored.entries, expected);
    assert_eq!(
        restored.hard_state,
        HardState { term: Term(2), vote: Some(NodeId(3)), commit: LogIndex(4) }
    );
}

#[test]
fn a_store_whose_creation_a_crash_cut_short_opens_afresh() {
    // Proves that a data dir left by a kill during the engine's first
    // creation (its files but not its `version` file, as a SIGKILL a few
    // milliseconds into a node's first start left here) opens as an empty
    // store that keeps what is then written, instead of failing for good
    // with "File exists".
    let dir = temp();
    let log = dir.0.join("log");
    std::fs::create_dir_all(log.join("keyspaces")).unwrap();
    std::fs::write(log.join("lock"), b"").unwrap();
    std::fs::write(log.join("0.jnl"), b"").unwrap();
    {
        let (mut s, restored) = Storage::open(&dir.0).expect("open after a cut-short creation");
        assert!(restored.entries.is_empty());
        s.persist(None, &entries(1, 3, 1)).unwrap();
    }
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries, entries(1, 3, 1));
}

#[test]
fn a_locked_data_dir_is_refused_with_a_clear_error() {
    // Proves a second open of an open data dir fails with Locked, whose
    // message names the dir and the next step, and succeeds once closed.
    let dir = temp();
    let first = Storage::open(&dir.0).unwrap();
    let err = Storage::open(&dir.0).err().expect("second open must fail");
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another process"), "{err}");
    drop(first);
    Storage::open(&dir.0).expect("open after close");
}

#[test]
fn a_torn_tail_is_cut() {
    // Proves a bad last record is removed on recovery and the entries before
    // it are served, and that the log then continues from there.
    let dir = temp();
    Storage::open(&dir.0).unwrap().0.persist(None, &entries(1, 10, 1)).unwrap();
    write_raw(&dir.0, 10, Some(b"half a record"));
    let (mut s, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries, entries(1, 9, 1));
    assert_eq!(s.last_index(), LogIndex(9));
    s.persist(None, &entries(10, 12, 2)).unwrap();
    drop(s);
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries.len(), 12);
}

#[test]
fn a_corrupt_record_in_the_middle_stops_with_its_index() {
    // Proves a checksum failure with intact records after it is an error
    // naming the index and what to do, not a silent skip, and stays so on
    // every reopen (no crash loop that eats the log).
    let dir = temp();
    Storage::open(&dir.0).unwrap().0.persist(None, &entries(1, 10, 1)).unwrap();
    let mut bad = warren_record(5);
    bad[20] ^= 0x40;
    write_raw(&dir.0, 5, Some(&bad));
    for _ in 0..2 {
        let err = Storage::open(&dir.0).err().expect("corrupt log must not open");
        match &err {
            StorageError::Corrupt { index, .. } => assert_eq!(*index, LogIndex(5)),
            other => panic!("expected Corrupt, got {other}"),
        }
        assert!(err.to_string().contains("log entry 5"), "{err}");
        assert!(err.to_string().contains("catch up from its peers"), "{err}");
    }
}

#[test]
fn a_gap_stops_with_the_missing_index() {
    // Proves a missing entry between present ones is an error naming it.
    let dir = temp();
    Storage::open(&dir.0).unwrap().0.persist(None, &entries(1, 10, 1)).unwrap();
    write_raw(&dir.0, 4, None);
    match Storage::open(&dir.0).err() {
        Some(StorageError::Gap { missing, .. }) => assert_eq!(missing, LogIndex(4)),
        other => panic!("expected Gap, got {other:?}"),
    }
}

/// The stored bytes of entry `index` as storage writes them (read back
/// through fjall).
fn warren_record(index: u64) -> Vec<u8> {
    let dir = temp();
    Storage::open(&dir.0).unwrap().0.persist(None, &entries(1, index, 1)).unwrap();
    let db = fjall::Database::builder(dir.0.join("log")).open().unwrap();
    let log = db.keyspace("log", fjall::KeyspaceCreateOptions::default).unwrap();
    log.get(index.to_be_bytes()).unwrap().unwrap().to_vec()
}

#[test]
fn snapshots_compact_the_log_and_restore() {
    // Proves a saved snapshot is recovered with the entries after it, that
    // the log below it is compacted, and that an installed snapshot replaces
    // the whole log.
    let dir = temp();
    let snapshot = |index: u64, data: &'static [u8]| Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
        },
        data: Bytes::from_static(data),
    };
    {
        let (mut s, _) = Storage::open(&dir.0).unwrap();
        s.persist(None, &entries(1, 20, 1)).unwrap();
        s.save_snapshot(&snapshot(12, b"state at 12")).unwrap();
    }
    let (mut s, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.snapshot, Some(snapshot(12, b"state at 12")));
    assert_eq!(restored.entries, entries(13, 20, 1));
    s.install_snapshot(&snapshot(50, b"state at 50")).unwrap();
    s.persist(None, &entries(51, 52, 3)).unwrap();
    drop(s);
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.snapshot.map(|s| s.meta.index), Some(LogIndex(50)));
    assert_eq!(restored.entries, entries(51, 52, 3));
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(2),
        membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
    }
}

/// Bytes that differ at every position, `len` of them.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_streamed_snapshot_is_the_file_a_buffered_one_makes_and_restores() {
    // Proves a snapshot streamed into its file in pieces is byte for byte
    // the file written from the same data in memory, that the snapshot it
    // returns holds that data, and that a restart restores it.
    let data = pattern(300_000);
    let streamed = temp();
    let buffered = temp();
    let (streamed_dir, buffered_dir) = (streamed.0.join("snapshots"), buffered.0.join("snapshots"));
    let snapshot = warren::storage::write_snapshot_streamed(&streamed_dir, meta(7), |out| {
        for piece in data.chunks(65_536) {
            out.write_all(piece)?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(snapshot, Snapshot { meta: meta(7), data: Bytes::from(data.clone()) });
    warren::storage::write_snapshot_file(&buffered_dir, &snapshot).unwrap();
    let file = "00000000000000000007.snap";
    assert_eq!(
        std::fs::read(streamed_dir.join(file)).unwrap(),
        std::fs::read(buffered_dir.join(file)).unwrap()
    );
    let (_, restored) = Storage::open(&streamed.0).unwrap();
    assert_eq!(restored.snapshot, Some(snapshot));
}

#[test]
fn a_streamed_snapshot_that_fails_leaves_no_file_and_the_last_one_restores() {
    // Proves a snapshot whose writer fails midway leaves neither a file nor
    // a temporary one, and a restart restores the snapshot before it.
    let dir = temp();
    let snapshots = dir.0.join("snapshots");
    let good = warren::storage::write_snapshot_streamed(&snapshots, meta(5), |out| {
        out.write_all(b"state at 5")
    })
    .unwrap();
    let failed = warren::storage::write_snapshot_streamed(&snapshots, meta(9), |out| {
        out.write_all(&pattern(100_000))?;
        Err(std::io::Error::other("the state could not be serialized"))
    });
    assert!(
        matches!(&failed, Err(StorageError::Io { source, .. }) if source.to_string() == "the state could not be serialized"),
        "{failed:?}"
    );
    let names: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["00000000000000000005.snap"]);
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.snapshot, Some(good));
}

#[test]
fn saved_snapshots_drop_the_log_tables_they_cover_and_keep_every_later_entry() {
    // Proves that the log below a saved snapshot leaves the disk a whole
    // table at a time: a table holding entries after the snapshot stays
    // (and recovery still skips its covered entries), and once a later
    // snapshot covers all of it, it is gone, while every entry after the
    // snapshot stays.
    let dir = temp();
    let snapshot = |index: u64| Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
        },
        data: Bytes::from(format!("state at {index}")),
    };
    let stored = |dir: &std::path::Path| -> Vec<u64> {
        let db = fjall::Database::builder(dir.join("log")).open().unwrap();
        let log = db.keyspace("log", fjall::KeyspaceCreateOptions::default).unwrap();
        (1..=40).filter(|i: &u64| log.get(i.to_be_bytes()).unwrap().is_some()).collect()
    };
    {
        let (mut s, _) = Storage::open(&dir.0).unwrap();
        s.persist(None, &entries(1, 20, 1)).unwrap();
        // 1..=20 become one table, which 13..=20 keep on disk.
        s.save_snapshot(&snapshot(12)).unwrap();
    }
    assert_eq!(stored(&dir.0), (1..=20).collect::<Vec<u64>>());
    let (mut s, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries, entries(13, 20, 1));
    s.persist(None, &entries(21, 30, 1)).unwrap();
    // 21..=30 become a second table; the first is all covered now.
    s.save_snapshot(&snapshot(25)).unwrap();
    drop(s);
    assert_eq!(stored(&dir.0), (21..=30).collect::<Vec<u64>>());
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries, entries(26, 30, 1));
}

/// The table files fjall has written under a data directory's log (fjall's
/// own keyspace of settings among them).
fn tables_in(dir: &Path) -> usize {
    let keyspaces = std::fs::read_dir(dir.join("log").join("keyspaces")).unwrap();
    keyspaces
        .map(|keyspace| match std::fs::read_dir(keyspace.unwrap().path().join("tables")) {
            Ok(tables) => tables.count(),
            Err(_) => 0,
        })
        .sum()
}

/// Waits up to 30 s for fjall's flush, on threads of its own, to write a
/// table under `dir` beyond its first `had`.
fn await_a_table(dir: &Path, had: usize, who: &str) {
    for _ in 0..600 {
        if tables_in(dir) > had {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{who}'s log was never flushed to a table");
}

#[test]
fn staggered_members_flush_their_logs_at_different_entries() {
    // Proves that `stagger_flushes` moves a log's flushes: of three members
    // given the same entries, the last flushes a third of a memtable in
    // while the first holds them in memory until a whole memtable (16 MiB,
    // below fjall's own bound of 32 MiB) is full.
    let entry = |index: u64| LogEntry {
        index: LogIndex(index),
        term: Term(1),
        time_ms: 0,
        kind: EntryKind::Command(Bytes::from(vec![index as u8; 4096])),
    };
    let (first, last) = (temp(), temp());
    let (mut a, _) = Storage::open(&first.0).unwrap();
    a.stagger_flushes(0, 3);
    let (mut c, _) = Storage::open(&last.0).unwrap();
    c.stagger_flushes(2, 3);
    let (had_a, had_c) = (tables_in(&first.0), tables_in(&last.0));
    // ~8.5 MiB as fjall counts it: past a third of a memtable, short of one.
    for from in (1..=2048).step_by(64) {
        let batch: Vec<LogEntry> = (from..from + 64).map(entry).collect();
        a.write(None, &batch).unwrap();
        c.write(None, &batch).unwrap();
    }
    await_a_table(&last.0, had_c, "the last member");
    assert_eq!(tables_in(&first.0), had_a, "the first member flushed as early as the last");
    // ~19 MiB: past a whole memtable.
    for from in (2049..=4608).step_by(64) {
        let batch: Vec<LogEntry> = (from..from + 64).map(entry).collect();
        a.write(None, &batch).unwrap();
    }
    await_a_table(&first.0, had_a, "the first member");
}

#[test]
fn an_install_interrupted_after_the_snapshot_file_drops_the_old_history() {
    // Proves that a crash while installing a leader's snapshot (its file
    // durable, the old log not yet cleared) restarts with the snapshot and
    // none of the old entries after it, whose history differs (Raft's
    // install rule), while a snapshot of the same history keeps them; a
    // half-written newer snapshot file is ignored and removed.
    let snapshot = |index: u64, term: u64| Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
        },
        data: Bytes::from(format!("state at {index}@{term}")),
    };
    let (leader, follower) = (temp(), temp());
    {
        let (mut s, _) = Storage::open(&leader.0).unwrap();
        s.persist(None, &entries(1, 10, 2)).unwrap();
        s.save_snapshot(&snapshot(10, 2)).unwrap();
        let (mut s, _) = Storage::open(&follower.0).unwrap();
        s.persist(None, &entries(1, 20, 1)).unwrap();
    }
    // The state a crash leaves between the two steps of an install.
    let name = format!("{:020}.snap", 10);
    std::fs::create_dir_all(follower.0.join("snapshots")).unwrap();
    std::fs::copy(leader.0.join("snapshots").join(&name), follower.0.join("snapshots").join(&name))
        .unwrap();
    // And a newer snapshot that a crash left half-written is ignored.
    let partial = format!("{:020}.snap.tmp", 30);
    std::fs::write(follower.0.join("snapshots").join(&partial), b"WRNSNAPF half").unwrap();
    let (_, restored) = Storage::open(&follower.0).unwrap();
    assert_eq!(restored.snapshot, Some(snapshot(10, 2)));
    assert_eq!(restored.entries, vec![], "entries of another history survived the install");
    assert!(!follower.0.join("snapshots").join(&partial).exists(), "the partial file stays");
    let (mut s, restored) = Storage::open(&leader.0).unwrap();
    assert_eq!(restored.snapshot, Some(snapshot(10, 2)));
    s.persist(None, &entries(11, 12, 2)).unwrap();
    drop(s);
    let (_, restored) = Storage::open(&leader.0).unwrap();
    assert_eq!(restored.entries, entries(11, 12, 2));
}

#[test]
fn damaged_engine_files_never_panic_or_serve_bad_entries() {
    // Proves that bytes flipped or cut anywhere in fjall's files give either
    // a clear error or a contiguous log of intact entries from the start —
    // never a panic, a hole, or an entry that differs from what was written.
    let dir = temp();
    Storage::open(&dir.0).unwrap().0.persist(None, &entries(1, 200, 1)).unwrap();
    let files = files_under(&dir.0.join("log"));
    assert!(!files.is_empty());
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut outcomes = (0, 0);
    for case in 0..40 {
        let copy = temp();
        copy_dir(&dir.0, &copy.0);
        let files = files_under(&copy.0.join("log"));
        let file = &files[(next() % files.len() as u64) as usize];
        let mut bytes = std::fs::read(file).unwrap();
        if bytes.is_empty() {
            continue;
        }
        if case % 2 == 0 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        } else {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        std::fs::write(file, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| Storage::open(&copy.0).map(|(_, r)| r.entries));
        match result.expect("opening damaged files must not panic") {
            Ok(recovered) => {
                outcomes.0 += 1;
                for (i, e) in recovered.iter().enumerate() {
                    assert_eq!(*e, entry(i as u64 + 1, 1), "case {case}: {}", file.display());
                }
            }
            Err(err) => {
                outcomes.1 += 1;
                assert!(!err.to_string().is_empty());
            }
        }
    }
    println!("damaged files: {} recovered a prefix, {} refused", outcomes.0, outcomes.1);
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if !path.ends_with("lock") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn sigkill_never_loses_a_synced_entry() {
    // Proves durability with real processes: a child appends and syncs
    // batches, printing each synced index; it is killed with SIGKILL at
    // random moments 50 times; after every kill the log reopens with every
    // index the child reported, intact and contiguous from 1.
    let dir = temp();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut reported = 0u64;
    for round in 0..50 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let batch = 1 + rng % 32;
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["debug", "append-loop", "--dir"])
            .arg(&dir.0)
            .args(["--batch", &batch.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warren");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                last = line.trim().parse().expect("an index per line");
            }
            last
        });
        std::thread::sleep(Duration::from_millis(5 + rng % 60));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let last = reader.join().unwrap();
        reported = reported.max(last);
        let (_, restored) = Storage::open(&dir.0).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let recovered = restored.entries.last().map_or(0, |e| e.index.0);
        assert!(
            recovered >= reported,
            "round {round}: synced up to {reported}, recovered {recovered}"
        );
        for (i, e) in restored.entries.iter().enumerate() {
            assert_eq!(e.index, LogIndex(i as u64 + 1), "round {round}: hole");
            assert_eq!(
                e.kind,
                entry(e.index.0, e.term.0).kind,
                "round {round}: entry {} damaged",
                e.index
            );
        }
        reported = recovered;
    }
    assert!(reported > 0, "the child never synced anything");
}

#[test]
fn restart_rebuilds_the_state_machine_from_snapshot_and_committed_tail() {
    // Proves restart = latest snapshot + the committed log tail: the rebuilt
    // state machine has the digest and last zxid of one that applied every
    // committed entry, and entries past the commit index are not applied.
    use warren::{Command, Entry, Limits, StateMachine};
    use warren_client::{Acl, CreateMode, Op, SessionId, Zxid};
    let dir = temp();
    let mut commands =
        vec![Command::CreateSession { timeout_ms: 5000, auth: vec![], secret: None }];
    commands.push(Command::Request {
        session: SessionId(1),
        op: Op::Create {
            path: "/a".into(),
            data: vec![],
            acl: Acl::open(),
            mode: CreateMode::Persistent,
        },
    });
    for i in 0..28u8 {
        commands.push(Command::Request {
            session: SessionId(1),
            op: Op::SetData { path: "/a".into(), data: vec![i; 100], version: None },
        });
    }
    let log: Vec<LogEntry> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| LogEntry {
            index: LogIndex(i as u64 + 1),
            term: Term(1),
            time_ms: i as i64,
            kind: EntryKind::Command(Bytes::from(c.encode())),
        })
        .collect();
    let mut live = StateMachine::new(Limits::default());
    let apply = |sm: &mut StateMachine, upto: usize| {
        for (i, c) in commands.iter().enumerate().take(upto).skip(sm.last_applied().0 as usize) {
            sm.apply(Entry { zxid: Zxid(i as u64 + 1), time_ms: i as i64, command: c.clone() });
        }
    };
    apply(&mut live, 10);
    let mut bytes = Vec::new();
    warren::state::snapshot::write(&live, &mut bytes).unwrap();
    {
        let (mut s, _) = Storage::open(&dir.0).unwrap();
        let hs = HardState { term: Term(1), vote: Some(NodeId(1)), commit: LogIndex(25) };
        s.persist(Some(&hs), &log).unwrap();
        let meta = SnapshotMeta {
            index: LogIndex(10),
            term: Term(1),
            membership: Membership::new([NodeId(1)]),
        };
        s.save_snapshot(&Snapshot { meta, data: bytes.into() }).unwrap();
    }
    apply(&mut live, 25);
    let (_, restored) = Storage::open(&dir.0).unwrap();
    assert_eq!(restored.entries.first().map(|e| e.index), Some(LogIndex(11)));
    let rebuilt = warren::storage::rebuild(&restored, Limits::default(), None).unwrap();
    assert_eq!(rebuilt.last_applied(), Zxid(25));
    assert_eq!(rebuilt.digest(), live.digest());
    // Entry 25 is the 23rd setData (after the session and the create).
    assert_eq!(rebuilt.get_data("/a", &[]).unwrap().0, &[22u8; 100][..]);
}
