//! Restart: the state machine rebuilt from what storage recovered — the
//! latest snapshot, then every committed entry of the log tail applied in
//! order. Entries past the commit index stay in the log for the consensus
//! core; they are applied once committed.

use crate::consensus::{EntryKind, LogEntry, Restored};
use crate::state::DecodeError;
use crate::state::snapshot::{self, SnapshotError};
use crate::{Command, Entry, Limits, StateMachine};
use std::path::Path;
use thiserror::Error;
use warren_client::Zxid;

/// Why the state machine could not be rebuilt.
#[derive(Debug, Error)]
pub enum RestartError {
    #[error("the snapshot at index {index} does not restore: {source}")]
    Snapshot { index: u64, source: SnapshotError },
    #[error("log entry {index} does not decode: {source}")]
    Entry { index: u64, source: DecodeError },
}

/// The state machine as of the last committed entry of `restored`, keeping
/// compiled plugin code in `plugin_cache` when given.
pub fn rebuild(
    restored: &Restored,
    limits: Limits,
    plugin_cache: Option<&Path>,
) -> Result<StateMachine, RestartError> {
    let mut sm = match &restored.snapshot {
        Some(s) => snapshot::read(&s.data[..], limits)
            .map_err(|source| RestartError::Snapshot { index: s.meta.index.0, source })?,
        None => StateMachine::new(limits),
    };
    if let Some(dir) = plugin_cache {
        sm.set_plugin_cache(dir);
    }
    let commit = restored.hard_state.commit;
    for entry in restored.entries.iter().take_while(|e| e.index <= commit) {
        if entry.index.0 <= sm.last_applied().0 {
            continue;
        }
        let entry = state_entry(entry)
            .map_err(|source| RestartError::Entry { index: entry.index.0, source })?;
        sm.apply(entry);
    }
    Ok(sm)
}

/// What the state machine applies for a committed log entry: its command,
/// with the entry's index as zxid and the leader's time.
pub fn state_entry(entry: &LogEntry) -> Result<Entry, DecodeError> {
    let command = match &entry.kind {
        EntryKind::Noop => Command::Noop,
        EntryKind::Command(bytes) => Command::decode(bytes)?,
    };
    Ok(Entry { zxid: Zxid(entry.index.0), time_ms: entry.time_ms, command })
}
