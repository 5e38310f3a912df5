//! The engine's view of its disk: the writes and syncs it asks for, in
//! order, and what waits for each sync (a Ready that must be durable before
//! it goes on, acknowledgements that promise what a deferred sync makes
//! durable). Knows nothing of fjall or threads: the driver carries the ops
//! out, and reports each sync back with [`Disk::synced`].
//!
//! The contract with a driver: ops are carried out in the order given; a
//! `Write` may be made at once or after a running sync ends, but never
//! reordered with another op; `Synced(id)` means everything written up to
//! the `Sync { id }` op is durable, so one physical sync may answer several
//! ids by reporting the last.

use crate::consensus::{HardState, LogEntry, LogIndex, Message, Ready, Snapshot, Term};
use std::collections::VecDeque;

/// A sync the engine asked for; reported back by the driver.
pub type SyncId = u64;

/// What the engine asks of the disk, in order.
#[derive(Debug)]
pub enum DiskOp {
    /// Installs a snapshot from the leader: it replaces the whole log.
    InstallSnapshot(Snapshot),
    /// Writes the hard state and entries (replacing every stored entry from
    /// the first one's index on), without a sync.
    Write { hard_state: Option<HardState>, entries: Vec<LogEntry> },
    /// Syncs everything written so far; answer with `Input::Synced`.
    /// `inline`: the engine waits for it (a new term or vote, a snapshot)
    /// or it is a follower's own (nothing replicates meanwhile), so the
    /// driver may as well make it before anything else; otherwise it runs
    /// beside the engine's work (a deferred sync).
    Sync { id: SyncId, inline: bool },
    /// A snapshot up to `index` is durable: the log starts after it.
    Compacted { index: LogIndex },
}

/// A Ready that must be synced before the engine goes on.
pub(super) struct Blocked {
    pub ready: Ready,
    pub sync: SyncId,
}

/// A deferred sync and what waits for it.
struct Deferred {
    id: SyncId,
    /// The last entry it covers, for `Raft::synced`.
    last: Option<(LogIndex, Term)>,
    /// Acknowledgements made from what it makes durable.
    messages: Vec<Message>,
}

/// The disk bookkeeping of one engine.
#[derive(Default)]
pub(super) struct Disk {
    next_sync: SyncId,
    /// Deferred syncs asked for and not yet reported, oldest first.
    deferred: VecDeque<Deferred>,
    /// The Ready waiting for its sync, if any.
    pub blocked: Option<Blocked>,
    /// Deferred syncs with messages held behind them since the engine
    /// started (for the simulator's report).
    pub messages_held: u64,
}

/// What a reported sync released.
#[derive(Default)]
pub(super) struct Released {
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// The last entry the deferred syncs covered, for `Raft::synced`.
    pub synced: Option<(LogIndex, Term)>,
    /// The blocked Ready, now durable.
    pub ready: Option<Ready>,
}

impl Disk {
    fn next_id(&mut self) -> SyncId {
        self.next_sync += 1;
        self.next_sync
    }

    /// Whether a deferred sync is outstanding.
    pub fn syncing(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// A Ready whose sync runs beside the engine: writes its entries and
    /// asks for a sync (when it has entries), and holds `messages` until
    /// everything written so far is durable.
    pub fn write_deferred(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<LogEntry>,
        messages: Vec<Message>,
        inline: bool,
        ops: &mut Vec<DiskOp>,
    ) -> Vec<Message> {
        let last = entries.last().map(|e| (e.index, e.term));
        if hard_state.is_some() || !entries.is_empty() {
            ops.push(DiskOp::Write { hard_state, entries });
        }
        if last.is_some() {
            let id = self.next_id();
            ops.push(DiskOp::Sync { id, inline });
            self.deferred.push_back(Deferred { id, last, messages: Vec::new() });
        }
        self.hold(messages)
    }

    /// Holds `messages` behind the latest deferred sync; returns them when
    /// none is outstanding (everything they promise is durable already).
    pub fn hold(&mut self, messages: Vec<Message>) -> Vec<Message> {
        if messages.is_empty() {
            return messages;
        }
        match self.deferred.back_mut() {
            Some(last) => {
                self.messages_held += messages.len() as u64;
                last.messages.extend(messages);
                Vec::new()
            }
            None => messages,
        }
    }

    /// A Ready that must be durable before anything else: written, synced,
    /// and held until the sync is reported.
    pub fn write_blocking(&mut self, mut ready: Ready, ops: &mut Vec<DiskOp>) {
        if let Some(snapshot) = &ready.snapshot {
            ops.push(DiskOp::InstallSnapshot(snapshot.clone()));
        }
        ops.push(DiskOp::Write {
            hard_state: ready.hard_state.clone(),
            entries: std::mem::take(&mut ready.entries),
        });
        let id = self.next_id();
        ops.push(DiskOp::Sync { id, inline: true });
        self.blocked = Some(Blocked { ready, sync: id });
    }

    /// The driver reports that everything up to the sync `id` is durable.
    pub fn synced(&mut self, id: SyncId) -> Released {
        let mut released = Released::default();
        while self.deferred.front().is_some_and(|d| d.id <= id) {
            let Some(done) = self.deferred.pop_front() else { break };
            released.messages.extend(done.messages);
            if done.last.is_some() {
                released.synced = done.last;
            }
        }
        if self.blocked.as_ref().is_some_and(|b| b.sync <= id) {
            released.ready = self.blocked.take().map(|b| b.ready);
        }
        released
    }
}
