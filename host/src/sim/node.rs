//! One simulated replica: the real consensus core and the real state machine
//! behind a driver that does what the production driver will — persist,
//! then send, then apply — against a simulated disk that loses everything
//! not yet synced when the replica crashes.

use crate::consensus::{
    Config, HardState, LogEntry, LogIndex, Message, NodeId, ProposeError, Raft, Ready, Restored,
    Role, Snapshot, Term,
};
use crate::sim::payload_hash;
use crate::state::snapshot;
use crate::storage::state_entry;
use crate::{Command, Limits, Response, StateMachine};
use std::collections::{BTreeMap, VecDeque};
use warren_client::Id;

/// What a replica receives.
#[derive(Clone, Debug)]
pub(crate) enum Input {
    Tick,
    Message(Message),
    Request(Request),
}

/// A client's request to the replica it is connected to.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub client: usize,
    pub req: u64,
    pub kind: RequestKind,
}

#[derive(Clone, Debug)]
pub(crate) enum RequestKind {
    /// Propose a command (through this replica, which must lead).
    Write(Command),
    /// Read after a read-index round: linearizable.
    ReadLinearizable { path: String },
    /// Read this replica's state, if it has applied at least `min_zxid`.
    ReadLocal { path: String, min_zxid: u64 },
}

/// The replica's answer to a client.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// The write was applied at `zxid` with this response.
    Applied { response: Response, zxid: u64 },
    /// Not the leader: nothing was proposed.
    NotLeader { leader: Option<NodeId> },
    /// Definitely not applied (the entry was overwritten; the read-index
    /// round failed).
    Failed,
    /// A read's result, as of `zxid`.
    Read { value: Option<(Vec<u8>, i32)>, zxid: u64 },
    /// This replica is behind what the client has seen.
    Behind,
}

/// What the driver asks of the world.
#[derive(Debug)]
pub(crate) enum Effect {
    Send(Message),
    Reply {
        client: usize,
        req: u64,
        reply: Reply,
    },
    /// Start a sync of the disk; call `disk_done` when it completes.
    Sync,
    /// Start a leader's deferred sync of what it wrote; call
    /// `deferred_done` with this number when it completes.
    DeferredSync(u64),
    /// An entry was applied (for the checkers).
    Applied {
        index: LogIndex,
        term: Term,
        payload: u64,
    },
}

/// What is durable.
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot.
    pub entries: Vec<LogEntry>,
}

impl Disk {
    /// One write: the hard state, and entries replacing every stored entry
    /// from the first one's index on.
    fn write(&mut self, hard_state: Option<&HardState>, entries: &[LogEntry]) {
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(entries);
        }
    }
}

pub(crate) struct SimNode {
    pub id: NodeId,
    config: Config,
    pub raft: Option<Raft>,
    pub sm: StateMachine,
    pub disk: Disk,
    /// A Ready being synced; inputs wait in `inbox` meanwhile.
    syncing: Option<Ready>,
    /// Deferred writes (`Ready::may_defer_sync`), oldest first: written,
    /// not yet durable, each with the messages that wait for it.
    unsynced: VecDeque<Unsynced>,
    /// The deferred sync running: its number, how many of `unsynced` it
    /// covers, and the last entry among them.
    deferred: Option<(u64, usize, LogIndex, Term)>,
    deferred_syncs: u64,
    /// A deferred sync that ended while a Ready was out, to report after.
    synced: Option<(LogIndex, Term)>,
    inbox: VecDeque<Input>,
    /// Proposals awaiting apply: index → (client, req, term proposed in).
    writes: BTreeMap<LogIndex, (usize, u64, Term)>,
    /// Read-index rounds awaiting an answer: ctx → (client, req, path).
    reads: BTreeMap<u64, (usize, u64, String)>,
    /// Reads with a read index, awaiting apply up to it.
    confirmed_reads: Vec<(LogIndex, usize, u64, String)>,
    next_ctx: u64,
    snapshot_every: u64,
    /// Planted bug: send acknowledgements before the disk sync completes.
    ack_before_sync: bool,
    pub generation: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
    /// Readys after which this replica led with a commit index past its
    /// own durable log.
    pub commits_ahead_of_disk: u64,
    /// Planted bug: a leader counts its deferred entries as durable.
    pub leader_counts_unsynced: bool,
    /// Acknowledgements held back until a deferred sync covered
    /// what they promise.
    pub messages_held: u64,
}

/// A deferred write and the messages made after it, which leave once it
/// and everything before it are durable.
struct Unsynced {
    hard_state: Option<HardState>,
    entries: Vec<LogEntry>,
    messages: Vec<Message>,
}

impl SimNode {
    pub(crate) fn new(config: Config, snapshot_every: u64, ack_before_sync: bool) -> SimNode {
        let mut node = SimNode {
            id: config.id,
            config,
            raft: None,
            sm: StateMachine::new(Limits::default()),
            disk: Disk::default(),
            syncing: None,
            unsynced: VecDeque::new(),
            deferred: None,
            deferred_syncs: 0,
            synced: None,
            inbox: VecDeque::new(),
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            next_ctx: 0,
            snapshot_every,
            ack_before_sync,
            generation: 0,
            snapshots_installed: 0,
            commits_ahead_of_disk: 0,
            leader_counts_unsynced: false,
            messages_held: 0,
        };
        node.restart();
        node
    }

    pub(crate) fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    pub(crate) fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// Loses everything volatile: the core, the state machine, an unsynced
    /// write, queued input, and pending client requests (clients time out).
    pub(crate) fn crash(&mut self) {
        self.raft = None;
        self.syncing = None;
        self.unsynced.clear();
        self.deferred = None;
        self.synced = None;
        self.inbox.clear();
        self.writes.clear();
        self.reads.clear();
        self.confirmed_reads.clear();
        self.generation += 1;
    }

    /// Starts from what the disk holds: snapshot plus log.
    pub(crate) fn restart(&mut self) {
        self.generation += 1;
        let mut config = self.config.clone();
        config.seed = config.seed.wrapping_add(self.generation);
        self.sm = match &self.disk.snapshot {
            // The disk holds only snapshots this driver wrote.
            Some(s) => {
                snapshot::read(&s.data[..], Limits::default()).expect("own snapshot restores")
            }
            None => StateMachine::new(Limits::default()),
        };
        // As the store's recovery: entries the snapshot covers are ignored
        // (a deferred write may land below a snapshot taken meanwhile).
        let covered = self.disk.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let restored = Restored {
            hard_state: self.disk.hard_state.clone(),
            snapshot: self.disk.snapshot.clone(),
            entries: self.disk.entries.iter().filter(|e| e.index > covered).cloned().collect(),
        };
        self.raft = Some(Raft::new(config, restored));
    }

    /// Handles an input now, or queues it while a sync is in progress.
    pub(crate) fn handle(&mut self, input: Input, now: u64, out: &mut Vec<Effect>) {
        if self.raft.is_none() {
            return;
        }
        if self.syncing.is_some() {
            self.inbox.push_back(input);
            return;
        }
        self.feed(input, now, out);
        self.drain(out);
    }

    /// The sync started by `Effect::Sync` completed: it made the deferred
    /// writes durable too, as the node driver's does.
    pub(crate) fn disk_done(&mut self, now: u64, out: &mut Vec<Effect>) {
        let Some(ready) = self.syncing.take() else { return };
        self.make_durable(self.unsynced.len(), out);
        if let Some((_, _, index, term)) = self.deferred.take() {
            self.synced = Some((index, term));
        }
        self.write_disk(&ready);
        self.finish(ready, false, out);
        self.after_input(now, out);
    }

    /// The sync started by `Effect::DeferredSync` completed.
    pub(crate) fn deferred_done(&mut self, sync: u64, now: u64, out: &mut Vec<Effect>) {
        // Another when a full sync overtook it.
        let Some((running, count, index, term)) = self.deferred else { return };
        if running != sync {
            return;
        }
        self.deferred = None;
        self.make_durable(count, out);
        // Writes after those with no entries (a commit index) need no sync:
        // the messages made after them wait for nothing more.
        let settled = self.unsynced.iter().take_while(|w| w.entries.is_empty()).count();
        self.make_durable(settled, out);
        if self.syncing.is_some() {
            self.synced = Some((index, term));
        } else {
            self.raft().synced(index, term);
            self.drain(out);
        }
        self.start_deferred(out);
        self.after_input(now, out);
    }

    fn make_durable(&mut self, count: usize, out: &mut Vec<Effect>) {
        for _ in 0..count {
            let Some(write) = self.unsynced.pop_front() else { return };
            self.disk.write(write.hard_state.as_ref(), &write.entries);
            out.extend(write.messages.into_iter().map(Effect::Send));
        }
    }

    /// Starts a deferred sync of every unsynced write, unless one runs.
    fn start_deferred(&mut self, out: &mut Vec<Effect>) {
        if self.deferred.is_some() {
            return;
        }
        let last = self.unsynced.iter().rev().find_map(|w| w.entries.last());
        if let Some(last) = last {
            self.deferred_syncs += 1;
            let sync = self.deferred_syncs;
            self.deferred = Some((sync, self.unsynced.len(), last.index, last.term));
            out.push(Effect::DeferredSync(sync));
        }
    }

    fn after_input(&mut self, now: u64, out: &mut Vec<Effect>) {
        while self.syncing.is_none() {
            let Some(input) = self.inbox.pop_front() else { break };
            self.feed(input, now, out);
            self.drain(out);
        }
    }

    fn raft(&mut self) -> &mut Raft {
        // Only called while the replica is up (checked by `handle`).
        self.raft.as_mut().expect("replica is up")
    }

    fn feed(&mut self, input: Input, now: u64, out: &mut Vec<Effect>) {
        let now_ms = now as i64;
        match input {
            Input::Tick => self.raft().tick(now_ms),
            Input::Message(m) => self.raft().step(m),
            Input::Request(Request { client, req, kind }) => match kind {
                RequestKind::Write(command) => {
                    let raft = self.raft();
                    match raft.propose(command.encode().into(), now_ms) {
                        Ok(index) => {
                            let term = raft.term();
                            self.writes.insert(index, (client, req, term));
                        }
                        Err(ProposeError::NotLeader { leader }) => {
                            out.push(Effect::Reply {
                                client,
                                req,
                                reply: Reply::NotLeader { leader },
                            });
                        }
                        Err(ProposeError::Transferring) => {
                            let reply = Reply::NotLeader { leader: None };
                            out.push(Effect::Reply { client, req, reply });
                        }
                    }
                }
                RequestKind::ReadLinearizable { path } => {
                    self.next_ctx += 1;
                    let ctx = self.next_ctx;
                    self.reads.insert(ctx, (client, req, path));
                    self.raft().read_index(ctx);
                }
                RequestKind::ReadLocal { path, min_zxid } => {
                    let reply = if self.sm.last_applied().0 < min_zxid {
                        Reply::Behind
                    } else {
                        Reply::Read { value: self.read(&path), zxid: self.sm.last_applied().0 }
                    };
                    out.push(Effect::Reply { client, req, reply });
                }
            },
        }
    }

    fn read(&self, path: &str) -> Option<(Vec<u8>, i32)> {
        let anyone: [Id; 0] = [];
        self.sm.get_data(path, &anyone).ok().map(|(data, stat)| (data.to_vec(), stat.version))
    }

    /// Takes the next Ready, if any: sends what may go now and starts the
    /// sync, or finishes at once when there is nothing to persist.
    fn drain(&mut self, out: &mut Vec<Effect>) {
        let raft = self.raft();
        if !raft.has_ready() {
            return;
        }
        let mut ready = raft.ready();
        out.extend(ready.messages.drain(..).map(Effect::Send));
        if self.ack_before_sync {
            out.extend(ready.persisted_messages.drain(..).map(Effect::Send));
        }
        // A Ready that need not be synced (only the commit index moved)
        // writes nothing durable here: the most a crash could take from
        // the real store.
        // As the node driver: with nothing to write and no sync running,
        // a Ready is synced in line.
        let deferred = ready.must_sync
            && ready.may_defer_sync
            && (!ready.entries.is_empty() || self.deferred.is_some());
        if deferred {
            // Entries written now and synced beside what follows: a
            // leader's count toward its quorum once `synced`; the
            // acknowledgements made from them wait for the sync.
            let messages = std::mem::take(&mut ready.persisted_messages);
            self.messages_held += messages.len() as u64;
            self.unsynced.push_back(Unsynced {
                hard_state: ready.hard_state.clone(),
                entries: ready.entries.clone(),
                messages,
            });
            self.start_deferred(out);
            self.finish(ready, true, out);
        } else if ready.must_sync {
            self.syncing = Some(ready);
            out.push(Effect::Sync);
        } else {
            self.finish(ready, false, out);
        }
    }

    fn write_disk(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            // Installing a snapshot replaces the whole log.
            self.disk.entries.clear();
            self.disk.snapshot = Some(snapshot.clone());
        }
        self.disk.write(ready.hard_state.as_ref(), &ready.entries);
    }

    /// After the sync: acknowledge, apply, answer, advance.
    fn finish(&mut self, ready: Ready, deferred: bool, out: &mut Vec<Effect>) {
        out.extend(ready.persisted_messages.into_iter().map(Effect::Send));
        if let Some(snapshot) = &ready.snapshot {
            // A snapshot from the leader: only this driver's format arrives.
            self.sm = snapshot::read(&snapshot.data[..], Limits::default())
                .expect("leader's snapshot restores");
            // Writes covered by the snapshot have an outcome this replica
            // cannot see: their clients time out.
            let index = snapshot.meta.index;
            self.writes.retain(|&i, _| i > index);
            self.snapshots_installed += 1;
        }
        for entry in ready.committed {
            self.apply(entry, out);
        }
        for read in ready.read_states {
            let Some((client, req, path)) = self.reads.remove(&read.ctx) else { continue };
            match read.index {
                Some(index) => self.confirmed_reads.push((index, client, req, path)),
                None => out.push(Effect::Reply { client, req, reply: Reply::Failed }),
            }
        }
        let applied = LogIndex(self.sm.last_applied().0);
        let (ready_now, waiting): (Vec<_>, Vec<_>) =
            self.confirmed_reads.drain(..).partition(|(index, ..)| *index <= applied);
        self.confirmed_reads = waiting;
        for (_, client, req, path) in ready_now {
            let reply = Reply::Read { value: self.read(&path), zxid: applied.0 };
            out.push(Effect::Reply { client, req, reply });
        }
        let counts_unsynced = self.leader_counts_unsynced && self.raft().role() == Role::Leader;
        if deferred && !counts_unsynced {
            self.raft().advance_deferred();
        } else {
            self.raft().advance();
        }
        if let Some((index, term)) = self.synced.take() {
            self.raft().synced(index, term);
        }
        let raft = self.raft();
        if raft.role() == Role::Leader && raft.commit_index() > raft.persisted_index() {
            self.commits_ahead_of_disk += 1;
        }
        self.maybe_snapshot();
    }

    fn apply(&mut self, entry: LogEntry, out: &mut Vec<Effect>) {
        // Only this driver's encoding reaches the log.
        let applied = self.sm.apply(state_entry(&entry).expect("log entry decodes"));
        let payload = payload_hash(&entry);
        out.push(Effect::Applied { index: entry.index, term: entry.term, payload });
        if let Some((client, req, term)) = self.writes.remove(&entry.index) {
            let reply = if term == entry.term {
                Reply::Applied { response: applied.response, zxid: entry.index.0 }
            } else {
                Reply::Failed
            };
            out.push(Effect::Reply { client, req, reply });
        }
    }

    /// Snapshots the state machine every `snapshot_every` applied entries and
    /// lets the core compact its log (which then sends snapshots to
    /// followers too far behind).
    fn maybe_snapshot(&mut self) {
        let applied = LogIndex(self.sm.last_applied().0);
        let since = self.disk.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
        if self.snapshot_every == 0 || applied.0 < since + self.snapshot_every {
            return;
        }
        let mut bytes = Vec::new();
        // Writing to memory cannot fail.
        snapshot::write(&self.sm, &mut bytes).expect("snapshot to memory");
        let raft = self.raft();
        if raft.persisted_index() < applied {
            return;
        }
        raft.compact(applied, bytes.into());
        let Some(snapshot) = raft.latest_snapshot().cloned() else { return };
        if snapshot.meta.index != applied {
            return;
        }
        // The snapshot is written durably before the log below it is cut.
        self.disk.entries.retain(|e| e.index > applied);
        self.disk.snapshot = Some(snapshot);
    }
}
