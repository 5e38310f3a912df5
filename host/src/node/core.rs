//! The core of a node: one task that owns the consensus core, the state
//! machine, the storage, the watch table and the sessions connected here.
//! Everything else (sockets, timers) talks to it through one bounded queue
//! of [`Input`]s, so its state needs no lock and its order is the order of
//! that queue.
//!
//! The node runs on one thread (a current-thread runtime): the core task
//! and the QUIC tasks hand work to each other without waking another
//! thread, which on a small machine cost more CPU than the work itself.
//! The core blocks that thread for its sync, after yielding once so the
//! messages of the same Ready (the leader's appends) leave first: the
//! followers' disks work while the leader's does.
//!
//! Each round drains the queue (so proposals from every session land in one
//! Ready: that is the batching), then processes Readys in the order the
//! core asks: send, persist and sync (group commit: one sync per Ready),
//! send what needed the sync, apply, answer. A session's answers leave in
//! the order of its requests; a read waits behind the session's earlier
//! writes; a watch event leaves before any answer that reflects its change.

use crate::consensus::{
    Config, HardState, LogEntry, LogIndex, Message, NodeId, ProposeError, Raft, ReadState, Role,
    Snapshot, SnapshotMeta, Term,
};
use crate::node::config::{NodeConfig, Timing};
use crate::node::peer::PeerFrame;
use crate::state::snapshot;
use crate::storage::{self, PreparedWrite, Storage, state_entry};
use crate::{Command, Rearm, Response, StateMachine, Trigger, WatchTable};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};
use warren_client::wire::{
    Answer, ClientFrame, Failure, Goodbye, Hello, Read, Refusal, Request, ServerFrame,
    ServerStatus, Welcome,
};
use warren_client::{EventType, Id, SessionId, WatchKind, WatchedEvent, Zxid};

/// A client stream (one session at most).
pub(crate) type ConnId = u64;

/// Requests one session may have waiting before new ones are refused.
const SESSION_QUEUE_MAX: usize = 4096;
/// Frames waiting to be written to one client before it is cut off.
pub(crate) const OUTBOX_FRAMES: usize = 16_384;
/// How long a forwarded write may wait for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Recent watch triggers kept to replay, below a recursive watch, what a
/// client missed while it moved here.
const RECENT_TRIGGERS: usize = 100_000;

/// What the core is told.
pub(crate) enum Input {
    Tick,
    Peer {
        from: u64,
        frame: PeerFrame,
    },
    /// A client stream began with `hello`; `identity` is its certificate's
    /// subject.
    Open {
        conn: ConnId,
        identity: String,
        hello: Hello,
        outbox: Outbox,
    },
    Client {
        conn: ConnId,
        frame: ClientFrame,
    },
    /// The client stream ended.
    Gone {
        conn: ConnId,
    },
    /// A snapshot was written by the background writer.
    SnapshotWritten(Result<Snapshot, String>),
    /// The node is stopping: return from `run`.
    Stop,
}

/// Where a client stream's frames go, and a signal raised when it
/// overflowed (the client stopped reading): its writer then resets the
/// stream, which is how a blocked stream still tells the client.
#[derive(Clone)]
pub(crate) struct Outbox {
    pub tx: mpsc::Sender<ServerFrame>,
    pub overflowed: Arc<Notify>,
}

impl Outbox {
    /// Queues a frame; false when the client is too slow (and is cut off).
    fn send(&self, frame: ServerFrame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A client stream.
struct Conn {
    outbox: Outbox,
    identity: String,
    session: Option<SessionId>,
}

/// A session connected to this node, with its answers in request order.
struct Local {
    conn: ConnId,
    queue: VecDeque<Slot>,
}

struct Slot {
    xid: u64,
    state: SlotState,
}

enum SlotState {
    /// A write on its way through the log.
    Write,
    /// A read to run when it reaches the front.
    Read(Request),
    /// A linearizable read or sync, waiting for its read index.
    ReadIndex(Request),
    /// ... then for this node to apply up to the index.
    ReadAt(Request, LogIndex),
    Done(Result<Answer, Failure>),
}

/// Who waits for a proposed command.
#[derive(Clone, Copy)]
enum Waiter {
    /// A request of a local session.
    Request { session: SessionId, xid: u64 },
    /// A client stream opening a new session.
    Open { conn: ConnId },
    /// A local session closing.
    Close { session: SessionId },
    /// The leader's own bookkeeping (expiry, clean-up).
    Internal,
}

/// A write sent to the leader, not yet answered.
struct Forward {
    waiter: Waiter,
    command: Bytes,
    /// The leader it was sent to, if it was.
    sent_to: Option<u64>,
    deadline: Instant,
}

/// Syncs that run beside the rest of the core's work
/// (`Ready::may_defer_sync`): the leader's own, which replication does not
/// wait for, and a follower's, whose acknowledgements wait for them.
#[derive(Default)]
struct Deferred {
    /// A sync on a blocking thread, covering what was written up to the
    /// entry (index, term).
    running: Option<RunningSync>,
    /// Writes that came while `running` held fjall's journal (a write would
    /// wait for the sync): made when it ends, then synced in turn.
    pending: Option<Pending>,
    /// A snapshot saved while a sync ran: the log is compacted below it
    /// once the pending writes are made.
    compact: Option<Snapshot>,
    /// A finished sync to report to consensus after the current Ready.
    synced: Option<(LogIndex, Term)>,
}

struct RunningSync {
    handle: tokio::task::JoinHandle<Result<(), storage::StorageError>>,
    index: LogIndex,
    term: Term,
    /// Messages that promise what this sync makes durable: sent when it
    /// ends.
    messages: Vec<Message>,
}

/// Writes waiting for the running sync, and the messages that wait for
/// them to be synced in turn.
#[derive(Default)]
struct Pending {
    hard_state: Option<HardState>,
    entries: Vec<LogEntry>,
    messages: Vec<Message>,
}

/// The node's core. See the module docs.
pub(crate) struct Core {
    id: u64,
    raft: Raft,
    sm: StateMachine,
    storage: Storage,
    watches: WatchTable,
    timing: Timing,
    snapshot_every: u64,
    limits: crate::Limits,
    inputs: mpsc::Receiver<Input>,
    /// For the background snapshot writer to report back.
    inputs_tx: mpsc::Sender<Input>,
    peers: BTreeMap<u64, mpsc::Sender<PeerFrame>>,
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<SessionId, Local>,
    /// Proposed commands by index, with the term they were proposed in.
    proposed: BTreeMap<LogIndex, (Waiter, u64)>,
    forwards: BTreeMap<u64, Forward>,
    next_forward: u64,
    /// Read-index requests by context.
    reads: HashMap<u64, (SessionId, u64)>,
    next_ctx: u64,
    /// Local sessions heard from since the last touch.
    heard: HashSet<SessionId>,
    /// Leader: when each session expires unless touched.
    deadlines: HashMap<SessionId, Instant>,
    /// Leader: expiries and clean-ups proposed and not yet applied.
    expiring: HashSet<SessionId>,
    cleaning: HashSet<String>,
    last_cleanup: Instant,
    was_leader: bool,
    snapshotting: bool,
    last_snapshot: LogIndex,
    /// The latest triggers applied here, oldest first: every trigger after
    /// `recent_floor`.
    recent: VecDeque<Trigger>,
    recent_floor: Zxid,
    deferred: Deferred,
}

/// Why the core stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("storage failed: {0}; the node stops so nothing unsynced is acknowledged (restart it)")]
    Storage(#[from] storage::StorageError),
    #[error(
        "committed entry {index} does not decode ({why}); the log is corrupt or from another version"
    )]
    Entry { index: u64, why: String },
    #[error("the leader's snapshot at {index} does not restore: {why}")]
    Snapshot { index: u64, why: String },
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Core {
    pub(crate) fn new(
        config: &NodeConfig,
        storage: Storage,
        restored: crate::consensus::Restored,
        sm: StateMachine,
        inputs: mpsc::Receiver<Input>,
        inputs_tx: mpsc::Sender<Input>,
        peers: BTreeMap<u64, mpsc::Sender<PeerFrame>>,
    ) -> Core {
        let voters: Vec<NodeId> = config.members().into_iter().map(NodeId).collect();
        let seed = now_ms() as u64 ^ config.id.rotate_left(32);
        let mut raft_config = Config::new(NodeId(config.id), voters, seed);
        raft_config.election_tick = config.timing.election_ticks;
        raft_config.heartbeat_tick = config.timing.heartbeat_ticks;
        let last_snapshot = restored.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let raft = Raft::new(raft_config, restored);
        let recent_floor = sm.last_applied();
        Core {
            id: config.id,
            raft,
            sm,
            storage,
            watches: WatchTable::default(),
            timing: config.timing,
            snapshot_every: config.snapshot_every,
            limits: config.limits,
            inputs,
            inputs_tx,
            peers,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            proposed: BTreeMap::new(),
            forwards: BTreeMap::new(),
            next_forward: 1,
            reads: HashMap::new(),
            next_ctx: 1,
            heard: HashSet::new(),
            deadlines: HashMap::new(),
            expiring: HashSet::new(),
            cleaning: HashSet::new(),
            last_cleanup: Instant::now(),
            was_leader: false,
            snapshotting: false,
            last_snapshot,
            recent: VecDeque::new(),
            recent_floor,
            deferred: Deferred::default(),
        }
    }

    /// Runs until every input sender is gone, or storage fails.
    pub(crate) async fn run(mut self) -> Result<(), CoreError> {
        loop {
            let input = match self.deferred.running.take() {
                Some(mut running) => tokio::select! {
                    biased;
                    result = &mut running.handle => {
                        self.sync_ended(running, result)?;
                        None
                    }
                    input = self.inputs.recv() => {
                        self.deferred.running = Some(running);
                        Some(input)
                    }
                },
                None => Some(self.inputs.recv().await),
            };
            match input {
                None => {}
                Some(None | Some(Input::Stop)) => return Ok(()),
                Some(Some(input)) => self.handle(input)?,
            }
            // Everything already queued joins this round's Ready.
            for _ in 0..4096 {
                match self.inputs.try_recv() {
                    Ok(Input::Stop) => return Ok(()),
                    Ok(input) => self.handle(input)?,
                    Err(_) => break,
                }
            }
            while self.raft.has_ready() {
                self.process_ready().await?;
                // Let the answers and messages of that Ready leave before
                // anything else here waits for a sync.
                tokio::task::yield_now().await;
            }
        }
    }

    fn handle(&mut self, input: Input) -> Result<(), CoreError> {
        match input {
            Input::Tick => self.tick(),
            Input::Peer { from, frame } => self.peer_frame(from, frame),
            Input::Open { conn, identity, hello, outbox } => {
                self.conns.insert(conn, Conn { outbox, identity, session: None });
                self.open(conn, hello);
            }
            Input::Client { conn, frame } => self.client_frame(conn, frame),
            Input::Gone { conn } => self.gone(conn),
            Input::SnapshotWritten(result) => self.snapshot_written(result)?,
            Input::Stop => {}
        }
        Ok(())
    }

    // ---- Consensus output.

    async fn process_ready(&mut self) -> Result<(), CoreError> {
        let mut ready = self.raft.ready();
        let sent = !ready.messages.is_empty();
        self.send_messages(ready.messages.drain(..));
        // A sync runs beside the rest when something can go on meanwhile:
        // a leader's replication, or work already queued here. A follower
        // with nothing queued (one client writing) syncs here instead,
        // saving a wake-up of this thread on the write's path; so does a
        // Ready with nothing to write and no sync running.
        let deferred = ready.must_sync
            && ready.may_defer_sync
            && (self.deferred.running.is_some()
                || (!ready.entries.is_empty()
                    && (self.raft.role() == Role::Leader || !self.inputs.is_empty())));
        let mut after_sync = Vec::new();
        if deferred {
            // Entries written now (or after the running sync) and synced on
            // a blocking thread while this one goes on: a leader's
            // followers may commit them first, and a follower's
            // acknowledgements wait for the sync.
            self.write_deferred(ready.hard_state.as_ref(), &ready.entries)?;
            self.hold(std::mem::take(&mut ready.persisted_messages));
        } else if ready.must_sync {
            after_sync = self.settle_disk().await?;
            if let Some(snapshot) = &ready.snapshot {
                self.storage.install_snapshot(snapshot)?;
            }
            if sent {
                // Let this thread send those messages first: the leader's
                // appends reach the followers while its own disk syncs.
                tokio::task::yield_now().await;
            }
            // The sync covers the deferred writes too (see `Raft::advance`).
            self.storage.persist(ready.hard_state.as_ref(), &ready.entries)?;
        } else if let Some(hard_state) = &ready.hard_state {
            // Only the commit index moved: no sync on the path of the
            // answers this Ready applies.
            if self.deferred.running.is_some() {
                self.pend(Some(hard_state), &[]);
            } else {
                self.storage.write_hard_state(hard_state)?;
            }
        }
        self.send_messages(after_sync.into_iter().chain(ready.persisted_messages.drain(..)));
        if let Some(snapshot) = ready.snapshot.take() {
            self.install(snapshot)?;
        }
        for entry in std::mem::take(&mut ready.committed) {
            self.apply(entry)?;
        }
        for read in std::mem::take(&mut ready.read_states) {
            self.read_state(read);
        }
        if deferred {
            self.raft.advance_deferred();
        } else {
            self.raft.advance();
        }
        if let Some((index, term)) = self.deferred.synced.take() {
            self.raft.synced(index, term);
        }
        if self.deferred.running.is_none()
            && let Some(snapshot) = self.deferred.compact.take()
        {
            self.compact(snapshot);
        }
        self.after_apply();
        Ok(())
    }

    // ---- Deferred syncs.

    fn write_deferred(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
    ) -> Result<(), CoreError> {
        if self.deferred.running.is_some() {
            self.pend(hard_state, entries);
        } else {
            self.start_write(hard_state, entries, Vec::new())?;
        }
        Ok(())
    }

    fn pend(&mut self, hard_state: Option<&HardState>, entries: &[LogEntry]) {
        let pending = self.deferred.pending.get_or_insert_with(Pending::default);
        if let Some(hard_state) = hard_state {
            pending.hard_state = Some(hard_state.clone());
        }
        pending.entries.extend_from_slice(entries);
    }

    /// Holds `messages` until everything written or pended so far is
    /// synced: they were made from that state. Sent now if it all is.
    fn hold(&mut self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        if let Some(pending) = &mut self.deferred.pending {
            pending.messages.extend(messages);
        } else if let Some(running) = &mut self.deferred.running {
            // Nothing was pended since it started: it covers them.
            running.messages.extend(messages);
        } else {
            self.send_messages(messages);
        }
    }

    /// Starts writing and syncing `entries` (and the hard state) on a
    /// blocking thread, with the messages that wait for it; see
    /// [`Core::prepare_write`] and [`Core::launch_write`].
    fn start_write(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
        messages: Vec<Message>,
    ) -> Result<(), CoreError> {
        let write = self.prepare_write(hard_state, entries)?;
        self.launch_write(write, entries, messages);
        Ok(())
    }

    /// Builds the write of `entries` and the hard state; with no entries,
    /// makes it here (a hard state alone is not synced).
    fn prepare_write(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[LogEntry],
    ) -> Result<Option<PreparedWrite>, CoreError> {
        if entries.is_empty() {
            if let Some(hard_state) = hard_state {
                self.storage.write_hard_state(hard_state)?;
            }
            return Ok(None);
        }
        Ok(Some(self.storage.prepare(hard_state, entries)?))
    }

    /// Makes `write` (of `entries`) and syncs it on a blocking thread, and
    /// sends `messages` when it is durable; with nothing to write, sends
    /// them now. The write itself is made there too: it can wait on a
    /// flush of the log (see `Storage::stagger_flushes`) while this thread
    /// goes on, and a leader's followers commit meanwhile.
    fn launch_write(
        &mut self,
        write: Option<PreparedWrite>,
        entries: &[LogEntry],
        messages: Vec<Message>,
    ) {
        let (Some(write), Some(last)) = (write, entries.last()) else {
            self.send_messages(messages);
            return;
        };
        let handle = tokio::task::spawn_blocking(move || write.write_and_sync());
        self.deferred.running =
            Some(RunningSync { handle, index: last.index, term: last.term, messages });
    }

    /// The running sync ended (run between Readys): reports it, compacts
    /// the log if a snapshot waited, and starts the writes that waited for
    /// it.
    fn sync_ended(
        &mut self,
        running: RunningSync,
        result: Result<Result<(), storage::StorageError>, tokio::task::JoinError>,
    ) -> Result<(), CoreError> {
        self.storage.synced(self.sync_result(result))?;
        self.raft.synced(running.index, running.term);
        self.send_messages(running.messages);
        let pending = self.deferred.pending.take().unwrap_or_default();
        let write = self.prepare_write(pending.hard_state.as_ref(), &pending.entries)?;
        // Compacted once the pending writes are prepared: the store counts
        // them as written from then on, and compacting needs the writes
        // that waited for this sync made first (see `snapshot_written`).
        if let Some(snapshot) = self.deferred.compact.take() {
            self.compact(snapshot);
        }
        self.launch_write(write, &pending.entries, pending.messages);
        Ok(())
    }

    /// Before a Ready that must be synced: waits for the running sync and
    /// makes the writes that waited (the Ready's own sync covers them).
    /// Returns the messages that wait for that sync. A snapshot waiting to
    /// compact is left to the end of the Ready.
    async fn settle_disk(&mut self) -> Result<Vec<Message>, CoreError> {
        let Some(mut running) = self.deferred.running.take() else { return Ok(Vec::new()) };
        let result = (&mut running.handle).await;
        self.storage.synced(self.sync_result(result))?;
        // Reported after this Ready (consensus takes no input inside one);
        // its own sync makes everything written durable anyway.
        self.deferred.synced = Some((running.index, running.term));
        self.send_messages(running.messages);
        Ok(self.write_pending()?.messages)
    }

    /// Makes the writes that waited for a sync; returns them, with the
    /// messages that wait for their sync.
    fn write_pending(&mut self) -> Result<Pending, CoreError> {
        let Some(pending) = self.deferred.pending.take() else {
            return Ok(Pending::default());
        };
        if pending.entries.is_empty() {
            if let Some(hard_state) = &pending.hard_state {
                self.storage.write_hard_state(hard_state)?;
            }
        } else {
            self.storage.write(pending.hard_state.as_ref(), &pending.entries)?;
        }
        Ok(pending)
    }

    fn sync_result(
        &self,
        result: Result<Result<(), storage::StorageError>, tokio::task::JoinError>,
    ) -> Result<(), storage::StorageError> {
        result.unwrap_or_else(|e| {
            Err(storage::StorageError::Io {
                dir: self.storage.dir().to_owned(),
                source: std::io::Error::other(format!("the sync thread failed: {e}")),
            })
        })
    }

    fn send_messages(&self, messages: impl IntoIterator<Item = Message>) {
        for m in messages {
            self.send_peer(m.to.0, PeerFrame::Raft(m));
        }
    }

    fn send_peer(&self, to: u64, frame: PeerFrame) {
        if let Some(tx) = self.peers.get(&to) {
            // A full queue drops the frame: consensus resends what matters.
            let _ = tx.try_send(frame);
        }
    }

    /// A snapshot from the leader replaced the state. Every local session
    /// is asked to reconnect, which re-arms its watches against the new
    /// state (firing what changed); writes in flight have an unknown
    /// outcome.
    fn install(&mut self, snapshot: Snapshot) -> Result<(), CoreError> {
        let index = snapshot.meta.index.0;
        let cache = self.sm.plugin_cache().map(Path::to_owned);
        self.sm = snapshot::read(&snapshot.data[..], self.limits)
            .map_err(|e| CoreError::Snapshot { index, why: e.to_string() })?;
        if let Some(dir) = cache {
            self.sm.set_plugin_cache(&dir);
        }
        self.last_snapshot = snapshot.meta.index;
        self.recent.clear();
        self.recent_floor = self.sm.last_applied();
        let covered: Vec<LogIndex> =
            self.proposed.range(..=snapshot.meta.index).map(|(&i, _)| i).collect();
        for i in covered {
            self.proposed.remove(&i);
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.drop_conn(conn, Some(Goodbye::Resync));
        }
        Ok(())
    }

    fn apply(&mut self, entry: LogEntry) -> Result<(), CoreError> {
        let (index, term) = (entry.index, entry.term.0);
        if index.0 <= self.sm.last_applied().0 {
            // Applied at start (storage rebuilt the state machine up to the
            // stored commit index); the core hands it out once more.
            return Ok(());
        }
        let entry = state_entry(&entry)
            .map_err(|e| CoreError::Entry { index: index.0, why: e.to_string() })?;
        let ended: Vec<SessionId> = match &entry.command {
            Command::ExpireSessions { sessions } => sessions.clone(),
            Command::CloseSession { session } => vec![session.to_owned()],
            _ => Vec::new(),
        };
        let cleaned = match &entry.command {
            Command::RemoveContainer { path } | Command::RemoveExpiredTtl { path } => {
                Some(path.clone())
            }
            _ => None,
        };
        let applied = self.sm.apply(entry);
        let sm = &self.sm;
        let mut slow = Vec::new();
        for trigger in &applied.triggers {
            let fired = self.watches.fire(trigger, |s| sm.session(s).map(|x| &*x.auth));
            for (session, event) in fired {
                if let Some(local) = self.sessions.get(&session)
                    && let Some(conn) = self.conns.get(&local.conn)
                    && !conn.outbox.send(ServerFrame::Event(event))
                {
                    slow.push(local.conn);
                }
            }
        }
        for conn in slow {
            self.drop_conn(conn, None);
        }
        for trigger in applied.triggers {
            if self.recent.len() == RECENT_TRIGGERS
                && let Some(old) = self.recent.pop_front()
            {
                self.recent_floor = old.zxid;
            }
            self.recent.push_back(trigger);
        }
        if let Some((waiter, proposed_term)) = self.proposed.remove(&index) {
            if proposed_term == term {
                self.complete(waiter, index, applied.response);
            } else {
                // Another leader's entry took the index: ours was never
                // applied, so the client may retry as it is.
                let why = "leadership changed before the write committed".to_string();
                self.fail(waiter, Failure::Unavailable { why });
            }
        }
        for session in ended {
            self.expiring.remove(&session);
            self.deadlines.remove(&session);
            if self.sm.session(session).is_none() {
                self.watches.remove_session(session);
                if let Some(local) = self.sessions.remove(&session) {
                    self.heard.remove(&session);
                    if let Some(conn) = self.conns.get_mut(&local.conn) {
                        conn.session = None;
                    }
                    self.drop_conn(local.conn, Some(Goodbye::Expired { session }));
                }
            }
        }
        if let Some(path) = cleaned {
            self.cleaning.remove(&path);
        }
        Ok(())
    }

    /// After a round of applies: run reads that were waiting for them, and
    /// snapshot when enough was applied.
    fn after_apply(&mut self) {
        let applied = self.raft.applied_index();
        let ready: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, l)| {
                l.queue.front().is_some_and(|s| match &s.state {
                    SlotState::ReadAt(_, at) => *at <= applied,
                    SlotState::Done(_) | SlotState::Read(_) => true,
                    _ => false,
                })
            })
            .map(|(&s, _)| s)
            .collect();
        for session in ready {
            self.flush(session);
        }
        if !self.snapshotting && applied.0 >= self.last_snapshot.0 + self.snapshot_every {
            self.start_snapshot();
        }
    }

    fn complete(&mut self, waiter: Waiter, index: LogIndex, response: Response) {
        match waiter {
            Waiter::Request { session, xid } => {
                let result = match response {
                    Response::Reply(reply) => Ok(Answer::Write(reply)),
                    // Requests only carry writes; anything else is a bug.
                    other => Err(Failure::Unavailable { why: format!("unexpected {other:?}") }),
                };
                self.finish(session, xid, result);
            }
            Waiter::Open { conn } => {
                let Response::SessionCreated(session) = response else { return };
                // A client that left before its session opened is not
                // welcomed; the session expires on its own.
                self.welcome(conn, session, Zxid(index.0), Vec::new());
            }
            Waiter::Close { session } => {
                if let Some(local) = self.sessions.remove(&session)
                    && let Some(conn) = self.conns.get_mut(&local.conn)
                {
                    conn.session = None;
                    conn.outbox.send(ServerFrame::Closed);
                }
                self.watches.remove_session(session);
            }
            Waiter::Internal => {}
        }
    }

    fn fail(&mut self, waiter: Waiter, failure: Failure) {
        match waiter {
            Waiter::Request { session, xid } => self.finish(session, xid, Err(failure)),
            Waiter::Open { conn } => {
                if let Some(c) = self.conns.get(&conn) {
                    c.outbox.send(ServerFrame::Refused(Refusal::Failed(failure)));
                }
            }
            Waiter::Close { session } => {
                // The close did not happen; the client may send it again.
                if let Some(local) = self.sessions.get(&session)
                    && let Some(conn) = self.conns.get(&local.conn)
                {
                    conn.outbox
                        .send(ServerFrame::Goodbye(Goodbye::Unavailable(failure.to_string())));
                }
            }
            Waiter::Internal => {}
        }
    }

    /// Marks the request `xid` of `session` answered and sends what is
    /// ready at the front of its queue.
    fn finish(&mut self, session: SessionId, xid: u64, result: Result<Answer, Failure>) {
        let Some(local) = self.sessions.get_mut(&session) else { return };
        if let Some(slot) = local.queue.iter_mut().find(|s| s.xid == xid) {
            slot.state = SlotState::Done(result);
        }
        self.flush(session);
    }

    /// Sends the answers at the front of a session's queue, running reads
    /// that reached the front.
    fn flush(&mut self, session: SessionId) {
        let applied = self.raft.applied_index();
        loop {
            let Some(local) = self.sessions.get_mut(&session) else { return };
            let Some(front) = local.queue.front_mut() else { return };
            let xid = front.xid;
            let result = match &mut front.state {
                SlotState::Done(_) => {
                    let Some(Slot { state: SlotState::Done(result), .. }) = local.queue.pop_front()
                    else {
                        return;
                    };
                    result
                }
                SlotState::Read(_) => {
                    let Some(Slot { state: SlotState::Read(request), .. }) =
                        local.queue.pop_front()
                    else {
                        return;
                    };
                    self.execute(session, request)
                }
                SlotState::ReadAt(_, at) if *at <= applied => {
                    let Some(Slot { state: SlotState::ReadAt(request, _), .. }) =
                        local.queue.pop_front()
                    else {
                        return;
                    };
                    self.execute(session, request)
                }
                _ => return,
            };
            let zxid = self.sm.last_applied();
            let Some(local) = self.sessions.get(&session) else { return };
            let conn = local.conn;
            if let Some(c) = self.conns.get(&conn)
                && !c.outbox.send(ServerFrame::Response { xid, zxid, result })
            {
                self.drop_conn(conn, None);
                return;
            }
        }
    }

    /// Runs a read, a sync or a watch request against the current state.
    fn execute(&mut self, session: SessionId, request: Request) -> Result<Answer, Failure> {
        let auth: Vec<Id> = self.sm.session(session).map_or_else(Vec::new, |s| s.auth.to_vec());
        let api = Failure::Api;
        match request {
            Request::Read { read, .. } => match read {
                Read::GetData { path, watch } => {
                    let (data, stat) = self.sm.get_data(&path, &auth).map_err(api)?;
                    let answer = Answer::Data { data: data.to_vec(), stat };
                    if watch {
                        self.watches.add(session, &path, WatchKind::Data).map_err(api)?;
                    }
                    Ok(answer)
                }
                Read::Exists { path, watch } => {
                    if watch {
                        self.watches.add(session, &path, WatchKind::Data).map_err(api)?;
                    }
                    Ok(Answer::Exists(self.sm.exists(&path)))
                }
                Read::GetChildren { path, watch, after } => {
                    let children = self
                        .sm
                        .get_children_after(&path, &auth, after.as_deref(), usize::MAX)
                        .map_err(api)?;
                    if watch {
                        self.watches.add(session, &path, WatchKind::Child).map_err(api)?;
                    }
                    Ok(Answer::Children {
                        names: children.names,
                        stat: children.stat,
                        more: children.more,
                    })
                }
                Read::GetAcl { path } => {
                    let (acl, stat) = self.sm.get_acl(&path, &auth).map_err(api)?;
                    Ok(Answer::Acl { acl, stat })
                }
                Read::GetEphemerals { prefix } => {
                    Ok(Answer::Ephemerals(self.sm.get_ephemerals(session, &prefix)))
                }
                Read::GetAllChildrenNumber { path } => {
                    Ok(Answer::Count(self.sm.get_all_children_number(&path, &auth).map_err(api)?))
                }
                Read::Plugins => Ok(Answer::Plugins(self.sm.plugins())),
            },
            Request::Sync { .. } => Ok(Answer::Synced),
            Request::AddWatch { path, kind } => {
                self.watches.add(session, &path, kind).map_err(api)?;
                Ok(Answer::Watching)
            }
            Request::RemoveWatch { path, kind } => {
                self.watches.remove(session, &path, kind).map_err(api)?;
                Ok(Answer::Unwatched)
            }
            Request::Status => Ok(Answer::Status(self.status())),
            Request::Write(_) => {
                Err(Failure::Unavailable { why: "a write reached the read path".into() })
            }
        }
    }

    fn status(&self) -> ServerStatus {
        ServerStatus {
            node: self.id,
            role: format!("{:?}", self.raft.role()).to_lowercase(),
            term: self.raft.term().0,
            leader: self.raft.leader().map(|l| l.0),
            commit: self.raft.commit_index().0,
            applied: self.sm.last_applied(),
            digest: self.sm.digest(),
            sessions: self.sm.session_count(),
            znodes: self.sm.node_count(),
        }
    }

    fn read_state(&mut self, read: ReadState) {
        let Some((session, xid)) = self.reads.remove(&read.ctx) else { return };
        let Some(local) = self.sessions.get_mut(&session) else { return };
        let Some(slot) = local.queue.iter_mut().find(|s| s.xid == xid) else { return };
        match read.index {
            Some(index) => {
                let state = std::mem::replace(&mut slot.state, SlotState::Write);
                slot.state = match state {
                    SlotState::ReadIndex(request) => SlotState::ReadAt(request, index),
                    other => other,
                };
                self.flush(session);
            }
            None => {
                let why = "no leader confirmed the read; retry shortly".to_string();
                self.finish(session, xid, Err(Failure::Unavailable { why }));
            }
        }
    }

    // ---- Clients.

    fn open(&mut self, conn: ConnId, hello: Hello) {
        let Some(c) = self.conns.get(&conn) else { return };
        let identity = Id::x509(c.identity.clone());
        let applied = self.sm.last_applied();
        let Some(session) = hello.session else {
            let t = self.timing;
            let timeout_ms =
                hello.timeout_ms.clamp(t.session_timeout_min_ms, t.session_timeout_max_ms);
            let command = Command::CreateSession { timeout_ms, auth: vec![identity] };
            self.propose(Waiter::Open { conn }, command);
            return;
        };
        let refusal = if hello.last_zxid > applied {
            Some(Refusal::Behind { server: applied, client: hello.last_zxid })
        } else {
            match self.sm.session(session) {
                None => Some(Refusal::Expired { session }),
                Some(s) if !s.auth.contains(&identity) => Some(Refusal::NotOwner { session }),
                Some(_) => None,
            }
        };
        if let Some(refusal) = refusal {
            c.outbox.send(ServerFrame::Refused(refusal));
            return;
        }
        // The session moves here: a stream of it already here is replaced.
        if let Some(old) = self.sessions.remove(&session) {
            if let Some(old_conn) = self.conns.get_mut(&old.conn) {
                old_conn.session = None;
            }
            self.drop_conn(old.conn, None);
        }
        self.watches.remove_session(session);
        let w = &hello.watches;
        let rearm = Rearm {
            last_zxid: hello.last_zxid,
            data: w.data.clone(),
            exist: w.exist.clone(),
            child: w.child.clone(),
            persistent: w.persistent.clone(),
            recursive: w.recursive.clone(),
        };
        let mut events = self.watches.rearm(session, &rearm, &self.sm);
        if let Ok(events) = &mut events {
            events.extend(self.missed_below(session, &hello));
        }
        match events {
            Ok(events) => self.welcome(conn, session, applied, events),
            Err(e) => {
                if let Some(c) = self.conns.get(&conn) {
                    c.outbox.send(ServerFrame::Goodbye(Goodbye::BadFrame(e.to_string())));
                }
            }
        }
    }

    /// Attaches `session` to the stream `conn`, welcomes it, and sends the
    /// events its re-armed watches fired.
    fn welcome(&mut self, conn: ConnId, session: SessionId, zxid: Zxid, events: Vec<WatchedEvent>) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.session = Some(session);
        let timeout_ms = self.sm.session(session).map_or(0, |s| s.timeout_ms);
        let welcome = Welcome { session, timeout_ms, server: self.id, zxid };
        c.outbox.send(ServerFrame::Welcome(welcome));
        for event in events {
            c.outbox.send(ServerFrame::Event(event));
        }
        self.sessions.insert(session, Local { conn, queue: VecDeque::new() });
        self.touch(session);
    }

    /// Changes below the session's recursive watches (their roots are
    /// re-armed by the watch table) made after the client's last zxid, from
    /// the recent triggers, when they reach back that far.
    fn missed_below(&self, session: SessionId, hello: &Hello) -> Vec<WatchedEvent> {
        let since = hello.last_zxid;
        if hello.watches.recursive.is_empty() || since < self.recent_floor {
            return Vec::new();
        }
        let Some(auth) = self.sm.session(session).map(|s| s.auth.clone()) else {
            return Vec::new();
        };
        self.recent
            .iter()
            .filter(|t| t.zxid > since && t.event != EventType::NodeChildrenChanged)
            .filter(|t| {
                hello
                    .watches
                    .recursive
                    .iter()
                    .any(|root| *t.path != **root && warren_client::path_is_under(&t.path, root))
            })
            .filter(|t| StateMachine::may_read(&t.acl, &auth))
            .map(|t| WatchedEvent { event: t.event, path: t.path.to_string(), zxid: t.zxid })
            .collect()
    }

    fn client_frame(&mut self, conn: ConnId, frame: ClientFrame) {
        let Some(session) = self.conns.get(&conn).and_then(|c| c.session) else { return };
        self.heard.insert(session);
        match frame {
            ClientFrame::Hello(_) => {
                self.drop_conn(conn, Some(Goodbye::BadFrame("a second Hello".into())));
            }
            ClientFrame::Ping => {
                if let Some(c) = self.conns.get(&conn) {
                    c.outbox.send(ServerFrame::Pong);
                }
            }
            ClientFrame::Close => {
                self.propose(Waiter::Close { session }, Command::CloseSession { session });
            }
            ClientFrame::Request { xid, request } => self.request(session, conn, xid, request),
        }
    }

    fn request(&mut self, session: SessionId, conn: ConnId, xid: u64, request: Request) {
        let Some(local) = self.sessions.get_mut(&session) else { return };
        if local.queue.len() >= 2 * SESSION_QUEUE_MAX {
            self.drop_conn(conn, Some(Goodbye::TooSlow { pending: 2 * SESSION_QUEUE_MAX }));
            return;
        }
        if local.queue.len() >= SESSION_QUEUE_MAX {
            let failure = Failure::Throttled { max: SESSION_QUEUE_MAX };
            local.queue.push_back(Slot { xid, state: SlotState::Done(Err(failure)) });
            self.flush(session);
            return;
        }
        match request {
            Request::Write(op) => {
                local.queue.push_back(Slot { xid, state: SlotState::Write });
                self.propose(Waiter::Request { session, xid }, Command::Request { session, op });
            }
            request @ (Request::Sync { .. } | Request::Read { linearizable: true, .. }) => {
                local.queue.push_back(Slot { xid, state: SlotState::ReadIndex(request) });
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                self.reads.insert(ctx, (session, xid));
                self.raft.read_index(ctx);
            }
            request => {
                local.queue.push_back(Slot { xid, state: SlotState::Read(request) });
                self.flush(session);
            }
        }
    }

    /// A client stream ended: its session stays (until it expires or the
    /// client comes back), its watches here go.
    fn gone(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else { return };
        if let Some(session) = c.session
            && self.sessions.get(&session).is_some_and(|l| l.conn == conn)
        {
            self.sessions.remove(&session);
            self.watches.remove_session(session);
        }
    }

    /// Ends a client stream from this side, telling it why.
    fn drop_conn(&mut self, conn: ConnId, why: Option<Goodbye>) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(why) = why {
                let _ = c.outbox.tx.try_send(ServerFrame::Goodbye(why));
            }
            if let Some(session) = c.session
                && self.sessions.get(&session).is_some_and(|l| l.conn == conn)
            {
                self.sessions.remove(&session);
                self.watches.remove_session(session);
            }
        }
    }

    // ---- Proposals.

    fn propose(&mut self, waiter: Waiter, command: Command) {
        let bytes = Bytes::from(command.encode());
        match self.raft.propose(bytes.clone(), now_ms()) {
            Ok(index) => {
                self.proposed.insert(index, (waiter, self.raft.term().0));
            }
            Err(ProposeError::NotLeader { .. }) | Err(ProposeError::Transferring) => {
                let id = self.next_forward;
                self.next_forward += 1;
                let deadline = Instant::now() + FORWARD_TIMEOUT;
                self.forwards
                    .insert(id, Forward { waiter, command: bytes, sent_to: None, deadline });
                self.send_forward(id);
            }
        }
    }

    fn send_forward(&mut self, id: u64) {
        let Some(leader) = self.raft.leader().map(|l| l.0).filter(|&l| l != self.id) else {
            return;
        };
        let Some(forward) = self.forwards.get_mut(&id) else { return };
        forward.sent_to = Some(leader);
        let frame = PeerFrame::Forward { id, command: forward.command.to_vec() };
        self.send_peer(leader, frame);
    }

    fn peer_frame(&mut self, from: u64, frame: PeerFrame) {
        match frame {
            PeerFrame::Hello { .. } => {}
            PeerFrame::Raft(m) => self.step(m),
            PeerFrame::Forward { id, command } => {
                let result = match self.raft.propose(Bytes::from(command), now_ms()) {
                    Ok(index) => {
                        // The follower that asked answers its client.
                        Ok((index.0, self.raft.term().0))
                    }
                    Err(ProposeError::NotLeader { leader }) => Err(leader.map(|l| l.0)),
                    Err(ProposeError::Transferring) => Err(None),
                };
                self.send_peer(from, PeerFrame::Forwarded { id, result });
            }
            PeerFrame::Forwarded { id, result } => {
                let Some(forward) = self.forwards.remove(&id) else { return };
                match result {
                    Ok((index, term)) => {
                        self.proposed.insert(LogIndex(index), (forward.waiter, term));
                    }
                    Err(_) => {
                        // Not the leader after all: try again when one is
                        // known, until the deadline.
                        let forward = Forward { sent_to: None, ..forward };
                        self.forwards.insert(id, forward);
                    }
                }
            }
            PeerFrame::Touch { sessions } => {
                if self.raft.role() == Role::Leader {
                    for session in sessions {
                        self.touch(session);
                    }
                }
            }
        }
    }

    fn step(&mut self, m: Message) {
        // The peer layer checked the sender against its certificate.
        self.raft.step(m);
    }

    // ---- Time.

    fn tick(&mut self) {
        self.raft.tick(now_ms());
        let now = Instant::now();
        let leader = self.raft.role() == Role::Leader;
        if leader && !self.was_leader {
            // A new leader gives every session a full timeout from now: it
            // cannot know when the old leader last heard of them.
            self.deadlines.clear();
            self.expiring.clear();
            self.cleaning.clear();
            for (id, s) in self.sm.sessions() {
                self.deadlines.insert(id, now + Duration::from_millis(s.timeout_ms.into()));
            }
        }
        self.was_leader = leader;
        // Touches: local sessions heard from go to the leader's clock.
        if !self.heard.is_empty() {
            let heard: Vec<SessionId> = self.heard.drain().collect();
            if leader {
                for session in heard {
                    self.touch(session);
                }
            } else if let Some(l) = self.raft.leader() {
                self.send_peer(l.0, PeerFrame::Touch { sessions: heard });
            }
        }
        if leader {
            self.expire(now);
            if now.duration_since(self.last_cleanup) >= Duration::from_secs(1) {
                self.last_cleanup = now;
                for command in self.sm.cleanup_candidates(now_ms()) {
                    let path = match &command {
                        Command::RemoveContainer { path } | Command::RemoveExpiredTtl { path } => {
                            path.clone()
                        }
                        _ => continue,
                    };
                    if self.cleaning.insert(path) {
                        self.propose(Waiter::Internal, command);
                    }
                }
            }
        }
        // Forwards: send those waiting for a leader; fail those too old, or
        // sent to a leader that is no longer the leader (it may or may not
        // have appended them: the outcome is unknown).
        let ids: Vec<u64> = self.forwards.keys().copied().collect();
        let current = self.raft.leader().map(|l| l.0);
        for id in ids {
            let Some(f) = self.forwards.get(&id) else { continue };
            let deposed = f.sent_to.is_some_and(|to| current.is_some_and(|c| c != to));
            if f.deadline <= now || deposed {
                let f = self.forwards.remove(&id).expect("present");
                let failure = match (f.sent_to, deposed) {
                    (Some(_), true) => Failure::OutcomeUnknown {
                        why: "the leader changed before it answered".into(),
                    },
                    (Some(_), false) => {
                        Failure::OutcomeUnknown { why: "the leader did not answer in time".into() }
                    }
                    (None, _) => Failure::Unavailable { why: "no leader was reachable".into() },
                };
                self.fail(f.waiter, failure);
            } else if f.sent_to.is_none() {
                if leader {
                    let f = self.forwards.remove(&id).expect("present");
                    match self.raft.propose(f.command, now_ms()) {
                        Ok(index) => {
                            self.proposed.insert(index, (f.waiter, self.raft.term().0));
                        }
                        Err(_) => {
                            let why = "leadership is moving".to_string();
                            self.fail(f.waiter, Failure::Unavailable { why });
                        }
                    }
                } else {
                    self.send_forward(id);
                }
            }
        }
    }

    /// Leader: the session was heard from.
    fn touch(&mut self, session: SessionId) {
        if self.raft.role() != Role::Leader {
            self.heard.insert(session);
            return;
        }
        if let Some(s) = self.sm.session(session) {
            let timeout = Duration::from_millis(s.timeout_ms.into());
            self.deadlines.insert(session, Instant::now() + timeout);
        }
    }

    /// Leader: proposes the expiry of sessions silent past their timeout.
    fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (id, s) in self.sm.sessions() {
            let deadline = *self
                .deadlines
                .entry(id)
                .or_insert(now + Duration::from_millis(s.timeout_ms.into()));
            if deadline <= now && !self.expiring.contains(&id) {
                expired.push(id);
            }
        }
        if !expired.is_empty() {
            self.expiring.extend(expired.iter().copied());
            self.propose(Waiter::Internal, Command::ExpireSessions { sessions: expired });
        }
    }

    // ---- Snapshots.

    /// Freezes the state and writes it on another thread.
    fn start_snapshot(&mut self) {
        let index = LogIndex(self.sm.last_applied().0);
        let Some(term) = self.raft.term_at(index) else { return };
        let meta = SnapshotMeta { index, term, membership: self.raft.membership().clone() };
        let view = self.sm.snapshot_view();
        let dir = self.storage.snapshots_dir();
        let dropper = self.storage.log_dropper();
        let id = self.id;
        let tx = self.inputs_tx.clone();
        self.snapshotting = true;
        std::thread::spawn(move || {
            let result = storage::write_snapshot_streamed(&dir, meta, |out| {
                snapshot::write_view(&view, out).map_err(std::io::Error::other)
            })
            .map_err(|e| e.to_string());
            let saved = result.as_ref().ok().map(|snapshot| snapshot.meta.index);
            let _ = tx.blocking_send(Input::SnapshotWritten(result));
            // After the report, so the core compacts its log without
            // waiting for the flush. A failure only leaves covered entries
            // on disk; the next snapshot drops them.
            if let Some(index) = saved
                && let Err(e) = dropper.drop_through(index)
            {
                tracing::warn!("n{id}: dropping the log below the snapshot failed: {e}");
            }
        });
    }

    /// Cuts the log below a saved snapshot in consensus (its writer thread
    /// drops it on disk).
    fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.storage.snapshot_saved(index);
        self.raft.compact(index, snapshot.data);
    }

    fn snapshot_written(&mut self, result: Result<Snapshot, String>) -> Result<(), CoreError> {
        self.snapshotting = false;
        match result {
            Ok(snapshot) => {
                self.last_snapshot = snapshot.meta.index;
                if self.deferred.running.is_some() {
                    // Compacting now would race the writes waiting for
                    // that sync: compact once they are made.
                    self.deferred.compact = Some(snapshot);
                } else {
                    self.compact(snapshot);
                }
            }
            Err(why) => {
                tracing::warn!("n{}: snapshot failed: {why}; retrying after more entries", self.id);
                self.last_snapshot = self.raft.applied_index();
            }
        }
        Ok(())
    }
}
