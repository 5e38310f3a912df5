//! Durable storage of one replica, on fjall (an LSM tree): the consensus
//! log, the hard state, and state machine snapshots. Writes are group
//! commits — one batch, one sync — and a failed sync poisons the store for
//! good (recovery is a restart, never a retried sync). Every record carries
//! a checksum checked on recovery: a bad last record is a torn tail and is
//! cut; a bad record with intact records after it stops the node with an
//! error naming the index. The data directory is locked while open.
//!
//! Drive it from the node driver: [`Storage::open`] at start (it returns
//! what the consensus core needs to restart), then [`Storage::persist`] for
//! each Ready's hard state and entries (or [`Storage::prepare`] now and
//! [`PreparedWrite::write_and_sync`] on another thread, for a deferred
//! sync), [`Storage::save_snapshot`] when the state machine snapshots (the
//! log below is then dropped, a table at a time: see [`LogDropper`]), and
//! [`Storage::install_snapshot`] for a snapshot from the leader. At start,
//! [`rebuild`] turns what was recovered into the state machine.

mod record;
mod restart;
mod snapshot_file;

pub use restart::{RestartError, rebuild, state_entry};

use crate::consensus::{HardState, LogEntry, LogIndex, Restored, Snapshot, SnapshotMeta, Term};
use crate::limits::{LOG_MEMTABLE_BYTES_MAX, LOG_MEMTABLE_HARD_BYTES_MAX};
use fjall::{AbstractTree, Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use record::{
    RecordError, decode_entry, decode_hard_state, encode_entry, encode_hard_state, key_index,
    log_key,
};
use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

const HARD_STATE_KEY: &[u8] = b"hard_state";

/// The payload the crash test writes at `index`, so that a reader can
/// check every recovered entry byte for byte.
pub fn test_payload(index: LogIndex) -> Vec<u8> {
    (0..64u64).map(|i| (index.0.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8).collect()
}

/// Why storage failed. Each names the data directory and what to do.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error(
        "data dir {dir} is locked by another process; stop that process or use another data dir"
    )]
    Locked { dir: PathBuf },
    #[error("cannot use data dir {dir}: {source}; check that it exists and is writable")]
    Io { dir: PathBuf, source: io::Error },
    #[error(
        "the storage engine failed in {dir}: {source}; if it persists, restore this replica from a peer"
    )]
    Engine { dir: PathBuf, source: fjall::Error },
    #[error(
        "log entry {index} in {dir} is corrupt ({why}) while later entries are intact, so the log cannot be trusted; move {dir} aside and let this replica catch up from its peers"
    )]
    Corrupt { dir: PathBuf, index: LogIndex, why: String },
    #[error(
        "log in {dir} has a gap: entry {missing} is absent but a later one is present; move {dir} aside and let this replica catch up from its peers"
    )]
    Gap { dir: PathBuf, missing: LogIndex },
    #[error(
        "the hard state in {dir} is corrupt ({why}); move {dir} aside and let this replica catch up from its peers"
    )]
    CorruptHardState { dir: PathBuf, why: String },
    #[error(
        "snapshot {path} is corrupt ({why}); remove it (an older snapshot may be used) or restore this replica from a peer"
    )]
    CorruptSnapshot { path: PathBuf, why: String },
    #[error(
        "an earlier write to {dir} failed, so storage accepts no more writes; restart the node (it recovers what was synced)"
    )]
    Poisoned { dir: PathBuf },
}

/// Syncs what a [`Storage`] wrote, from any thread.
struct Syncer {
    dir: PathBuf,
    db: Database,
}

impl Syncer {
    /// fdatasync, as ZooKeeper (force(false)) and etcd do: it makes the
    /// written bytes and what reading them needs (size, block map) durable,
    /// but not timestamps. fjall preallocates and syncs each journal file
    /// when it creates it, and syncs the old one when it rotates.
    fn sync(&self) -> Result<(), StorageError> {
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|source| StorageError::Engine { dir: self.dir.clone(), source })
    }
}

/// A write built by [`Storage::prepare`], to make on another thread.
pub struct PreparedWrite {
    batch: fjall::OwnedWriteBatch,
    syncer: Syncer,
}

impl PreparedWrite {
    /// Hands the write to the operating system, unsynced.
    fn commit(self) -> Result<Syncer, StorageError> {
        let PreparedWrite { batch, syncer } = self;
        match batch.commit() {
            Ok(()) => Ok(syncer),
            Err(source) => Err(StorageError::Engine { dir: syncer.dir, source }),
        }
    }

    /// Makes the write and syncs it (and everything written before it).
    pub fn write_and_sync(self) -> Result<(), StorageError> {
        self.commit()?.sync()
    }

    /// Makes the writes in order, then syncs once: for a driver that built
    /// several writes while a sync ran (see [`Storage::prepare`]).
    pub fn write_all_and_sync(writes: Vec<PreparedWrite>) -> Result<(), StorageError> {
        let mut syncer = None;
        for write in writes {
            syncer = Some(write.commit()?);
        }
        match syncer {
            Some(syncer) => syncer.sync(),
            None => Ok(()),
        }
    }

    /// Makes the write, unsynced: durable after the next sync.
    pub fn write(self) -> Result<(), StorageError> {
        self.commit().map(drop)
    }
}

/// Removes the log entries a durable snapshot covers, from any thread (see
/// [`Storage::log_dropper`]).
///
/// It deletes whole tables of the LSM tree and writes nothing per entry.
/// Removing entries one by one wrote a tombstone each, and merging those
/// into the tables below took up to a fifth of a busy member's CPU
/// (BENCHMARKS.md).
/// An entry that shares a table with later ones stays until a later
/// snapshot covers that table too; recovery never reads below its snapshot.
#[derive(Clone)]
pub struct LogDropper {
    dir: PathBuf,
    log: Keyspace,
}

impl LogDropper {
    /// Deletes every table of the log whose entries all lie at or below
    /// `index`. Call it only once a snapshot at `index` is durable. It may
    /// wait for a running compaction of the log, so a node calls it off its
    /// core thread. Entries still in the memtable stay until a later
    /// snapshot: flushing it here would flush every member's log at the
    /// same entry (see [`Storage::stagger_flushes`]).
    pub fn drop_through(&self, index: LogIndex) -> Result<(), StorageError> {
        let engine = |source| StorageError::Engine { dir: self.dir.clone(), source };
        self.log.tree.drop_range(..=log_key(index)).map_err(|e| engine(e.into()))
    }
}

/// One replica's durable state. See the module docs for how to drive it.
pub struct Storage {
    dir: PathBuf,
    /// Held for as long as the store is open.
    _lock: File,
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    /// The stored entries are `first ..= last` (empty when `last < first`).
    first: LogIndex,
    last: LogIndex,
    poisoned: bool,
    /// The log's memtable is flushed once it holds this many bytes.
    flush_at: u64,
    /// The thread that last started a flush of the log.
    rotating: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Storage {
    /// Waits for a flush being started, so that the store is closed when
    /// this returns (it can be opened again at once).
    fn drop(&mut self) {
        if let Some(thread) = self.rotating.take() {
            let _ = thread.join();
        }
    }
}

/// Removes `log_dir` if fjall's creation of it never finished, and says
/// whether it did. fjall creates a database in steps and writes its
/// `version` file last, synced with its directory; a crash before that
/// (a node killed in its first milliseconds) leaves files that make every
/// later open fail with "File exists". Such a directory holds nothing:
/// nothing is written to a database before its creation returns.
fn discard_unfinished_engine(log_dir: &Path) -> io::Result<bool> {
    if !log_dir.try_exists()? || log_dir.join("version").try_exists()? {
        return Ok(false);
    }
    std::fs::remove_dir_all(log_dir)?;
    Ok(true)
}

/// Writes a snapshot file durably into `dir` (a [`Storage::snapshots_dir`])
/// and keeps the newest three: what [`Storage::save_snapshot`] does first,
/// callable from a thread of its own so applies go on meanwhile. Follow it
/// with [`Storage::snapshot_saved`].
pub fn write_snapshot_file(dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    snapshot_file::write(dir, snapshot, 3)
}

/// Writes a snapshot whose data `fill` streams into its file, as
/// [`write_snapshot_file`] does, and returns it with its data mapped from
/// the file: the state is never gathered in memory of its own. `fill`
/// writes unbuffered, so in large pieces. A failure leaves no file.
pub fn write_snapshot_streamed(
    dir: &Path,
    meta: SnapshotMeta,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Snapshot, StorageError> {
    snapshot_file::write_streamed(dir, meta, 3, fill)
}

impl Storage {
    /// Opens (creating if needed) the data directory `dir`, locks it, and
    /// recovers: the hard state, the latest snapshot, and the log entries
    /// after it, cutting a torn tail.
    pub fn open(dir: &Path) -> Result<(Storage, Restored), StorageError> {
        let io_err = |source| StorageError::Io { dir: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("warren.lock"))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StorageError::Locked { dir: dir.to_owned() });
            }
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
        let engine = |source| StorageError::Engine { dir: dir.to_owned(), source };
        let log_dir = dir.join("log");
        if discard_unfinished_engine(&log_dir).map_err(io_err)? {
            tracing::warn!(
                "removed {}: a crash had cut its creation short, before anything was stored in it",
                log_dir.display()
            );
        }
        let db = Database::builder(&log_dir).open().map_err(engine)?;
        // The log's memtable holds entries until they are flushed to a
        // segment; they are read back only at a restart or for a lagging
        // follower. 16 MiB instead of fjall's 64 keeps ~100 MB less
        // resident per member (BENCHMARKS.md), for a flush every second or
        // two under load. `write` starts those flushes (see
        // `stagger_flushes`); fjall's own bound is above them.
        let log_options =
            || KeyspaceCreateOptions::default().max_memtable_size(LOG_MEMTABLE_HARD_BYTES_MAX);
        let log = db.keyspace("log", log_options).map_err(engine)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).map_err(engine)?;
        let snapshot = snapshot_file::latest(&dir.join("snapshots"))?;
        let mut storage = Storage {
            dir: dir.to_owned(),
            _lock: lock,
            db,
            log,
            meta,
            first: LogIndex(1),
            last: LogIndex(0),
            poisoned: false,
            flush_at: LOG_MEMTABLE_BYTES_MAX,
            rotating: None,
        };
        let hard_state = storage.recover_hard_state()?;
        let after =
            snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.meta.index, s.meta.term));
        let entries = storage.recover_log(after)?;
        Ok((storage, Restored { hard_state, snapshot, entries }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last stored log index (the snapshot's, when the log is empty).
    pub fn last_index(&self) -> LogIndex {
        self.last
    }

    /// Puts this replica's log flushes out of step with its peers': it is
    /// `place` (from 0) of `places` members, and its first flush comes
    /// `place / places` of a memtable early. Every member's log receives the
    /// same entries, so without this all of them flush at the same entry,
    /// and a flush stalls writes for a sync or two (fjall syncs its journal
    /// and a new version file under the locks writes take): then no quorum
    /// can acknowledge anything. Out of step, the others form one.
    pub fn stagger_flushes(&mut self, place: u64, places: u64) {
        let early = LOG_MEMTABLE_BYTES_MAX / places.max(1) * (place % places.max(1));
        self.flush_at = LOG_MEMTABLE_BYTES_MAX - early;
    }

    /// Writes the hard state (if any) and entries (replacing every stored
    /// entry from the first one's index on) in one batch, and syncs once.
    /// Returns only when all of it is durable.
    pub fn persist(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
    ) -> Result<(), StorageError> {
        self.write(hard_state, entries)?;
        self.sync()
    }

    /// What [`Storage::persist`] writes, handed to the operating system but
    /// not synced: durable after the next [`Storage::sync`] or
    /// [`PreparedWrite::write_and_sync`]. A write waits while a sync runs.
    pub fn write(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
    ) -> Result<(), StorageError> {
        let result = self.prepare(hard_state, entries)?.commit();
        self.poison_on_err(result).map(drop)
    }

    /// [`Storage::write`] in two steps: the batch is built now, and
    /// written and synced by [`PreparedWrite::write_and_sync`], on another
    /// thread (whose result goes to [`Storage::synced`]). The store counts
    /// the entries as written from now on, so make one such write at a
    /// time, each ended before the next write or sync starts.
    pub fn prepare(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
    ) -> Result<PreparedWrite, StorageError> {
        self.check_poisoned()?;
        if !entries.is_empty() {
            self.maybe_flush();
        }
        let mut batch = self.db.batch();
        if let (Some(first), Some(new_last)) = (entries.first(), entries.last()) {
            assert!(
                first.index <= self.last.next(),
                "entries {} leave a gap after {}",
                first.index,
                self.last
            );
            let mut stale = new_last.index.next();
            while stale <= self.last {
                batch.remove(&self.log, log_key(stale));
                stale = stale.next();
            }
            for entry in entries {
                batch.insert(&self.log, log_key(entry.index), encode_entry(entry));
            }
            self.last = new_last.index;
        }
        if let Some(hs) = hard_state {
            batch.insert(&self.meta, HARD_STATE_KEY, encode_hard_state(hs));
        }
        Ok(PreparedWrite { batch, syncer: self.syncer() })
    }

    /// Starts flushing the log's memtable once it holds `flush_at` bytes
    /// (checked before each write of entries). Counting the memtable's own
    /// size keeps the members' flushes as far apart as `stagger_flushes`
    /// put them, whoever started the previous one. The rotation runs on a
    /// thread of its own: besides swapping the memtable, fjall deletes the
    /// journal and version files it no longer needs there, 30–45 ms under
    /// load on our VM. The log's appends wait for that either way, but a
    /// member's thread need not.
    fn maybe_flush(&mut self) {
        if self.rotating.as_ref().is_some_and(|thread| !thread.is_finished())
            || self.log.tree.active_memtable().size() < self.flush_at
        {
            return;
        }
        self.flush_at = LOG_MEMTABLE_BYTES_MAX;
        let (log, dir) = (self.log.clone(), self.dir.clone());
        let rotate = move || {
            if let Err(e) = log.rotate_memtable() {
                // fjall flushes by itself at `LOG_MEMTABLE_HARD_BYTES_MAX`.
                tracing::warn!("flushing the log in {} failed: {e}", dir.display());
            }
        };
        match std::thread::Builder::new().name("warren-flush".into()).spawn(rotate) {
            Ok(thread) => self.rotating = Some(thread),
            Err(e) => tracing::warn!(
                "cannot start a thread to flush the log in {}: {e}",
                self.dir.display()
            ),
        }
    }

    /// Syncs everything written so far.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let result = self.syncer().sync();
        self.poison_on_err(result)
    }

    fn syncer(&self) -> Syncer {
        Syncer { dir: self.dir.clone(), db: self.db.clone() }
    }

    /// Takes a [`PreparedWrite::write_and_sync`]'s result: an error
    /// poisons the store.
    pub fn synced(&mut self, result: Result<(), StorageError>) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.poison_on_err(result)
    }

    /// Writes the hard state without a sync: for a Ready whose only change
    /// is the commit index, which need not survive a crash (see
    /// `Ready::must_sync`). The next sync makes it durable with the rest.
    pub fn write_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.write(Some(hard_state), &[])
    }

    /// Saves a snapshot the state machine took (atomically, synced), keeps
    /// the last few, flushes the log's memtable and drops the log tables
    /// the snapshot covers.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let result = write_snapshot_file(&self.snapshots_dir(), snapshot);
        self.poison_on_err(result)?;
        self.snapshot_saved(snapshot.meta.index);
        // `rotate_memtable_and_wait` is fjall's hidden flush; fjall is
        // pinned to one exact version.
        let result = self
            .log
            .rotate_memtable_and_wait()
            .map_err(|source| StorageError::Engine { dir: self.dir.clone(), source });
        self.poison_on_err(result)?;
        self.log_dropper().drop_through(snapshot.meta.index)
    }

    /// A handle that drops the log tables a durable snapshot covers, from
    /// another thread.
    pub fn log_dropper(&self) -> LogDropper {
        LogDropper { dir: self.dir.clone(), log: self.log.clone() }
    }

    /// Where snapshot files live, for [`write_snapshot_file`] on another
    /// thread.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// A snapshot at `index` is durable (written by [`write_snapshot_file`]):
    /// the log now starts after it. The entries it covers leave the disk
    /// with [`LogDropper::drop_through`]; until then recovery skips them.
    pub fn snapshot_saved(&mut self, index: LogIndex) {
        self.first = self.first.max(index.next());
        self.last = self.last.max(index);
    }

    /// Installs a snapshot from the leader: it replaces the whole log.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let result = snapshot_file::write(&self.dir.join("snapshots"), snapshot, 3);
        self.poison_on_err(result)?;
        let mut batch = self.db.batch();
        let mut index = self.first;
        while index <= self.last {
            batch.remove(&self.log, log_key(index));
            index = index.next();
        }
        self.commit(batch)?;
        self.first = snapshot.meta.index.next();
        self.last = snapshot.meta.index;
        Ok(())
    }

    fn commit(&mut self, batch: fjall::OwnedWriteBatch) -> Result<(), StorageError> {
        let result =
            batch.commit().map_err(|source| StorageError::Engine { dir: self.dir.clone(), source });
        self.poison_on_err(result)?;
        self.sync()
    }

    /// A failed write or sync leaves the disk in an unknown state: accept
    /// nothing more (fjall poisons itself too; retrying an fsync after an
    /// error can report success for data that was lost).
    fn poison_on_err<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        if self.poisoned { Err(StorageError::Poisoned { dir: self.dir.clone() }) } else { Ok(()) }
    }

    fn recover_hard_state(&self) -> Result<HardState, StorageError> {
        let engine = |source| StorageError::Engine { dir: self.dir.clone(), source };
        match self.meta.get(HARD_STATE_KEY).map_err(engine)? {
            None => Ok(HardState::default()),
            Some(bytes) => decode_hard_state(&bytes).map_err(|why| {
                StorageError::CorruptHardState { dir: self.dir.clone(), why: format!("{why:?}") }
            }),
        }
    }

    /// Reads the log after `after` (the snapshot's index and term),
    /// checking every record and that indexes are contiguous. A bad last
    /// record is a torn tail: it is removed. Entries the snapshot covers are
    /// dropped. If the stored entry at the snapshot's index has another term
    /// (a crash while installing a leader's snapshot, after the snapshot file
    /// but before the log was cleared), every entry after it belongs to
    /// another history and is dropped too, as Raft's install rule says.
    fn recover_log(&mut self, after: (LogIndex, Term)) -> Result<Vec<LogEntry>, StorageError> {
        let (after, after_term) = after;
        let engine = |source| StorageError::Engine { dir: self.dir.clone(), source };
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut bad: Option<(LogIndex, RecordError)> = None;
        let mut covered = Vec::new();
        let mut diverged = false;
        // Entries below the snapshot may still be stored (they leave a
        // table at a time); they are not read.
        for item in self.log.range(log_key(after)..) {
            let (key, value) = item.into_inner().map_err(engine)?;
            let Some(index) = key_index(&key) else {
                return Err(StorageError::Corrupt {
                    dir: self.dir.clone(),
                    index: LogIndex(0),
                    why: format!("a key of {} bytes", key.len()),
                });
            };
            if let Some((bad_index, why)) = &bad {
                // Something intact follows a bad record: not a torn tail.
                return Err(StorageError::Corrupt {
                    dir: self.dir.clone(),
                    index: *bad_index,
                    why: format!("{why:?}"),
                });
            }
            if index == after {
                diverged = decode_entry(index, &value).map_or(true, |e| e.term != after_term);
            }
            if index <= after || diverged {
                covered.push(index);
                continue;
            }
            match decode_entry(index, &value) {
                Ok(entry) => {
                    let expected = entries.last().map_or(after.next(), |e| e.index.next());
                    if entry.index != expected {
                        return Err(StorageError::Gap { dir: self.dir.clone(), missing: expected });
                    }
                    entries.push(entry);
                }
                Err(why) => bad = Some((index, why)),
            }
        }
        let mut batch = self.db.batch();
        for index in covered {
            batch.remove(&self.log, log_key(index));
        }
        if let Some((index, _)) = bad {
            batch.remove(&self.log, log_key(index));
        }
        self.commit(batch)?;
        self.first = after.next();
        self.last = entries.last().map_or(after, |e| e.index);
        Ok(entries)
    }
}
