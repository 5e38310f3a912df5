//! Snapshot files: one file per snapshot, `<index>.snap`, written to a
//! temporary name, synced, renamed, and the directory synced, so a crash
//! leaves either the old set or the new one. The last few are kept.
//!
//! ```text
//! magic "WRNSNAPF" | version u32 | index u64 | term u64 | voters u32 |
//! voter ids u64... | data length u64 | header checksum u64 | data |
//! data checksum u64
//! ```

use crate::consensus::{LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term};
use crate::storage::StorageError;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"WRNSNAPF";
const VERSION: u32 = 1;

/// Writes `snapshot` durably into `dir` and removes all but the newest
/// `keep` snapshots.
pub(crate) fn write(dir: &Path, snapshot: &Snapshot, keep: usize) -> Result<(), StorageError> {
    let io_err = |source| StorageError::Io { dir: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(io_err)?;
    let meta = &snapshot.meta;
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
    header.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    let header_sum = xxh3_64(&header);
    let final_path = dir.join(format!("{:020}.snap", meta.index.0));
    let tmp_path = dir.join(format!("{:020}.snap.tmp", meta.index.0));
    let mut file = File::create(&tmp_path).map_err(io_err)?;
    file.write_all(&header).map_err(io_err)?;
    file.write_all(&header_sum.to_le_bytes()).map_err(io_err)?;
    file.write_all(&snapshot.data).map_err(io_err)?;
    file.write_all(&xxh3_64(&snapshot.data).to_le_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp_path, &final_path).map_err(io_err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    let mut all = list(dir).map_err(io_err)?;
    all.sort();
    for (_, old) in all.iter().rev().skip(keep) {
        // Older snapshots are only a fallback; failing to remove one is
        // harmless.
        let _ = fs::remove_file(old);
    }
    Ok(())
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
    let bytes =
        fs::read(&path).map_err(|source| StorageError::Io { dir: dir.to_owned(), source })?;
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

fn decode(bytes: &[u8]) -> Result<Snapshot, &'static str> {
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
    let data = r.take(len)?.to_vec();
    if r.u64()? != xxh3_64(&data) {
        return Err("data checksum mismatch");
    }
    if r.at != bytes.len() {
        return Err("bytes after the end");
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term, membership: Membership::new(voters) },
        data: data.into(),
    })
}
