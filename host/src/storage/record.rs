//! The bytes of what storage keeps: log entries and the hard state, each as
//! a record with a checksum first, verified on every read. Only this file
//! knows the layout.
//!
//! ```text
//! log entry:  checksum u64 | index u64 | term u64 | time_ms i64 | kind u8 | payload
//! hard state: checksum u64 | term u64 | vote u64 (0 = none) | commit u64
//! ```
//! Integers are little-endian; the checksum is xxh3-64 of everything after
//! it. Log keys are the index, big-endian, so the LSM tree keeps them in
//! log order.

use crate::consensus::{EntryKind, HardState, LogEntry, LogIndex, NodeId, Term};
use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

const NOOP: u8 = 0;
const COMMAND: u8 = 1;

/// Why a record's bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    Short,
    Checksum,
    Kind(u8),
    Index { key: u64, stored: u64 },
}

pub(crate) fn log_key(index: LogIndex) -> [u8; 8] {
    index.0.to_be_bytes()
}

pub(crate) fn key_index(key: &[u8]) -> Option<LogIndex> {
    Some(LogIndex(u64::from_be_bytes(key.try_into().ok()?)))
}

pub(crate) fn encode_entry(entry: &LogEntry) -> Vec<u8> {
    let payload: &[u8] = match &entry.kind {
        EntryKind::Noop => &[],
        EntryKind::Command(bytes) => bytes,
    };
    let mut out = Vec::with_capacity(41 + payload.len());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&entry.index.0.to_le_bytes());
    out.extend_from_slice(&entry.term.0.to_le_bytes());
    out.extend_from_slice(&entry.time_ms.to_le_bytes());
    out.push(match entry.kind {
        EntryKind::Noop => NOOP,
        EntryKind::Command(_) => COMMAND,
    });
    out.extend_from_slice(payload);
    seal(&mut out);
    out
}

/// Decodes the entry stored under `key`, checking its checksum and that it
/// is the entry the key says.
pub(crate) fn decode_entry(key: LogIndex, bytes: &[u8]) -> Result<LogEntry, RecordError> {
    // index, term, time (8 bytes each) and the kind byte; then the payload.
    let body = open(bytes, 25)?;
    let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let index = word(0);
    if index != key.0 {
        return Err(RecordError::Index { key: key.0, stored: index });
    }
    let kind = match body[24] {
        NOOP => EntryKind::Noop,
        COMMAND => EntryKind::Command(Bytes::copy_from_slice(&body[25..])),
        other => return Err(RecordError::Kind(other)),
    };
    Ok(LogEntry { index: LogIndex(index), term: Term(word(8)), time_ms: word(16) as i64, kind })
}

pub(crate) fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&hs.term.0.to_le_bytes());
    out.extend_from_slice(&hs.vote.map_or(0, |v| v.0).to_le_bytes());
    out.extend_from_slice(&hs.commit.0.to_le_bytes());
    seal(&mut out);
    out
}

pub(crate) fn decode_hard_state(bytes: &[u8]) -> Result<HardState, RecordError> {
    let body = open(bytes, 24)?;
    let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let vote = word(8);
    Ok(HardState {
        term: Term(word(0)),
        vote: (vote != 0).then_some(NodeId(vote)),
        commit: LogIndex(word(16)),
    })
}

/// Writes the checksum of everything after the first 8 bytes into them.
fn seal(record: &mut [u8]) {
    let sum = xxh3_64(&record[8..]);
    record[..8].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a record's checksum and minimum length; returns its body.
fn open(bytes: &[u8], min_body: usize) -> Result<&[u8], RecordError> {
    if bytes.len() < 8 + min_body {
        return Err(RecordError::Short);
    }
    let stored = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if stored != xxh3_64(&bytes[8..]) {
        return Err(RecordError::Checksum);
    }
    Ok(&bytes[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_flip_is_caught() {
        // Proves entries (with a payload, and a no-op with none) and hard
        // states decode to themselves, and that any single flipped bit is
        // refused.
        let entry = LogEntry {
            index: LogIndex(42),
            term: Term(7),
            time_ms: 1_700_000_000_000,
            kind: EntryKind::Command(Bytes::from_static(b"payload")),
        };
        let bytes = encode_entry(&entry);
        assert_eq!(decode_entry(LogIndex(42), &bytes), Ok(entry.clone()));
        assert_eq!(
            decode_entry(LogIndex(41), &bytes),
            Err(RecordError::Index { key: 41, stored: 42 })
        );
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_entry(LogIndex(42), &bad).is_err(), "bit {bit}");
        }
        let noop =
            LogEntry { index: LogIndex(1), term: Term(1), time_ms: 0, kind: EntryKind::Noop };
        assert_eq!(decode_entry(LogIndex(1), &encode_entry(&noop)), Ok(noop));
        let hs = HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(9) };
        assert_eq!(decode_hard_state(&encode_hard_state(&hs)), Ok(hs));
        assert_eq!(decode_hard_state(&[1, 2, 3]), Err(RecordError::Short));
    }
}
