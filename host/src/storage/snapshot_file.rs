//! Snapshot files: one file per snapshot, `<index>.snap`, written to a
//! temporary name, synced, renamed, and the directory synced, so a crash
//! leaves either the old set or the new one. The last few are kept.
//!
//! ```text
//! magic "WRNSNAPF" | version u32 | index u64 | term u64 | voters u32 |
//! voter ids u64... | data length u64 | header checksum u64 | data |
//! data checksum u64
//! ```
//!
//! A snapshot's data in memory is a read-only map of its file when this
//! node took it or recovered it ([`write_streamed`], [`latest`]; one
//! installed from the leader is held as its chunks assembled it): the
//! state is streamed to the file as it is serialized, never gathered in a
//! buffer of its own, and the pages are the page cache's. Gathering it cost a fresh, zeroed allocation the
//! size of the snapshot each time (a sixth of the machine's CPU while a
//! 200 MB snapshot was taken under creates) and that much resident memory
//! for as long as the snapshot was the latest. The files are the node's
//! own, in its locked data directory, and never change once renamed;
//! pruning unlinks them, which leaves a map valid.

use crate::consensus::{LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term};
use crate::storage::StorageError;
use bytes::Bytes;
use memmap2::Mmap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

const MAGIC: &[u8; 8] = b"WRNSNAPF";
const VERSION: u32 = 1;

/// The header for `meta` and `len` bytes of data, without its checksum.
fn header(meta: &SnapshotMeta, len: u64) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&meta.index.0.to_le_bytes());
    header.extend_from_slice(&meta.term.0.to_le_bytes());
    let voters: Vec<NodeId> = meta.membership.voters().collect();
    header.extend_from_slice(&(voters.len() as u32).to_le_bytes());
    for voter in &voters {
        header.extend_from_slice(&voter.0.to_le_bytes());
    }
    header.extend_from_slice(&len.to_le_bytes());
    header
}

fn paths(dir: &Path, index: LogIndex) -> (PathBuf, PathBuf) {
    (dir.join(format!("{:020}.snap.tmp", index.0)), dir.join(format!("{:020}.snap", index.0)))
}

/// Syncs the written temporary file, renames it into place, syncs the
/// directory and removes all but the newest `keep` snapshots.
fn publish(dir: &Path, file: &File, tmp: &Path, path: &Path, keep: usize) -> io::Result<()> {
    file.sync_all()?;
    fs::rename(tmp, path)?;
    File::open(dir).and_then(|d| d.sync_all())?;
    let mut all = list(dir)?;
    all.sort();
    for (_, old) in all.iter().rev().skip(keep) {
        // Older snapshots are only a fallback; failing to remove one is
        // harmless.
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// Counts and hashes what passes through to the file.
struct Body<'a> {
    file: &'a File,
    hasher: Xxh3,
    len: u64,
}

impl Write for Body<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a snapshot whose data `fill` streams into the file (unbuffered:
/// `fill` writes in large pieces), durably into `dir`, keeps the newest
/// `keep`, and returns it with its data mapped from the file. A failure
/// leaves no file behind.
pub(crate) fn write_streamed(
    dir: &Path,
    meta: SnapshotMeta,
    keep: usize,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Snapshot, StorageError> {
    let io_err = |source| StorageError::Io { dir: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(io_err)?;
    let (tmp, path) = paths(dir, meta.index);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        // The length is not known yet: the header is written again at the end.
        let start = header(&meta, 0).len() as u64 + 8;
        file.seek(SeekFrom::Start(start))?;
        let mut body = Body { file: &file, hasher: Xxh3::new(), len: 0 };
        fill(&mut body)?;
        let (len, sum) = (body.len, body.hasher.digest());
        file.write_all(&sum.to_le_bytes())?;
        let header = header(&meta, len);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.write_all(&xxh3_64(&header).to_le_bytes())?;
        publish(dir, &file, &tmp, &path, keep)?;
        Ok::<_, io::Error>((start, len))
    })();
    let (start, len) = match result {
        Ok(at) => at,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
    };
    let data = map(&path).map_err(io_err)?;
    // The map holds the whole file, so its length fits in a usize.
    let end = usize::try_from(start + len).expect("the map holds the data");
    Ok(Snapshot { meta, data: data.slice(start as usize..end) })
}

/// Maps a snapshot file read-only.
fn map(path: &Path) -> io::Result<Bytes> {
    let file = File::open(path)?;
    // SAFETY: the file is this node's own, in its locked data directory,
    // and nothing writes it once it is renamed into place (pruning only
    // unlinks it, which leaves the map valid). Only another process
    // truncating it could fault a read of the map.
    let map = unsafe { Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// Writes `snapshot` durably into `dir` and removes all but the newest
/// `keep` snapshots.
pub(crate) fn write(dir: &Path, snapshot: &Snapshot, keep: usize) -> Result<(), StorageError> {
    let io_err = |source| StorageError::Io { dir: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(io_err)?;
    let header = header(&snapshot.meta, snapshot.data.len() as u64);
    let (tmp, path) = paths(dir, snapshot.meta.index);
    let mut file = File::create(&tmp).map_err(io_err)?;
    file.write_all(&header).map_err(io_err)?;
    file.write_all(&xxh3_64(&header).to_le_bytes()).map_err(io_err)?;
    file.write_all(&snapshot.data).map_err(io_err)?;
    file.write_all(&xxh3_64(&snapshot.data).to_le_bytes()).map_err(io_err)?;
    publish(dir, &file, &tmp, &path, keep).map_err(io_err)
}

/// The newest snapshot in `dir`, verified, or none. A half-written
/// snapshot (a crash before its rename) is removed.
pub(crate) fn latest(dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.ends_with(".snap.tmp")) {
                fs::remove_file(entry.path())
                    .map_err(|source| StorageError::Io { dir: dir.to_owned(), source })?;
            }
        }
    }
    let mut all = match list(dir) {
        Ok(all) => all,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StorageError::Io { dir: dir.to_owned(), source }),
    };
    all.sort();
    let Some((_, path)) = all.pop() else { return Ok(None) };
    let bytes = map(&path).map_err(|source| StorageError::Io { dir: dir.to_owned(), source })?;
    decode(&bytes).map(Some).map_err(|why| StorageError::CorruptSnapshot { path, why: why.into() })
}

fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let index = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(index) = index {
            out.push((index, path));
        }
    }
    Ok(out)
}

/// Reads fields front to back, failing cleanly when the bytes run out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let slice = self.bytes.get(self.at..self.at + n).ok_or("file ends early")?;
        self.at += n;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

/// Reads a snapshot file's bytes; the data is a slice of them.
fn decode(file: &Bytes) -> Result<Snapshot, &'static str> {
    let bytes = &file[..];
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a snapshot file");
    }
    if r.u32()? != VERSION {
        return Err("unknown snapshot file version");
    }
    let index = LogIndex(r.u64()?);
    let term = Term(r.u64()?);
    let count = r.u32()?;
    if count > 1024 {
        return Err("implausible voter count");
    }
    let voters = (0..count).map(|_| r.u64().map(NodeId)).collect::<Result<Vec<_>, _>>()?;
    let len = usize::try_from(r.u64()?).map_err(|_| "implausible data length")?;
    let header_end = r.at;
    let header_sum = r.u64()?;
    if header_sum != xxh3_64(&bytes[..header_end]) {
        return Err("header checksum mismatch");
    }
    let start = r.at;
    let data = r.take(len)?;
    if r.u64()? != xxh3_64(data) {
        return Err("data checksum mismatch");
    }
    if r.at != bytes.len() {
        return Err("bytes after the end");
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term, membership: Membership::new(voters) },
        data: file.slice(start..start + len),
    })
}
