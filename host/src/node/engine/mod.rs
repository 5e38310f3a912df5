//! The node engine: one member's decisions, with no I/O. It owns the
//! consensus core, the state machine, the watch table and the sessions
//! connected to this member; it reads no clock, socket or disk and imports
//! no tokio. The tokio driver (`node::driver`) and the simulator
//! (`sim::`) drive the same engine, so ordering, forwarding, expiry and
//! watch delivery run under the simulator's checkers.
//!
//! Drive it like this (quinn-proto's shape):
//! 1. [`Engine::handle`] each input with the time ([`Now`]) it arrived at;
//!    while a sync the engine waits for is out, inputs queue inside it.
//! 2. [`Engine::process`] once the inputs at hand are in: it runs the
//!    consensus core's Readys (so every session's proposals since the last
//!    call join one batch), applies, fires watches and answers.
//! 3. Carry out [`Engine::outputs`] in order: send to peers, send to
//!    sessions, carry out disk ops in order (reporting each `Sync` back
//!    with [`Input::Synced`]), write snapshots (reporting back with
//!    [`Input::SnapshotWritten`]).
//!
//! Sub-jobs, each in its file: `session` (the session layer: connections,
//! each session's FIFO of answers, reads, welcome, re-arm and replay,
//! goodbyes), `forward` (writes proposed here or through the leader,
//! matched by index and term), `expiry` (the leader's session and clean-up
//! clock), `disk` (what waits for which sync), `clock` (time in, entry
//! stamps out).

mod clock;
mod disk;
mod expiry;
mod forward;
mod session;

pub use clock::Now;
pub use disk::{DiskOp, SyncId};
pub use session::{ConnId, Report, SessionIn};

use crate::consensus::{
    Config, LogEntry, LogIndex, Message, Raft, Ready, Restored, Role, Snapshot, SnapshotMeta,
};
use crate::node::config::Timing;
use crate::state::snapshot::{self, SnapshotView};
use crate::storage::state_entry;
use crate::{Command, Limits, StateMachine, WatchTable};
use clock::Stamps;
use disk::Disk;
use expiry::Expiry;
use forward::Proposals;
use serde::{Deserialize, Serialize};
use session::Sessions;
use std::collections::VecDeque;
use std::path::Path;
use warren_client::wire::ServerFrame;
use warren_client::{SessionId, SessionSecret, Zxid};

/// What members send each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    /// The first frame of a stream: who is speaking.
    Hello { from: u64 },
    /// A consensus message.
    Raft(Message),
    /// A follower hands the leader an encoded command to propose.
    Forward {
        id: u64,
        /// The follower's term when it sent it (absent from members older
        /// than this field, whose forwards are not checked).
        #[serde(default)]
        term: Option<u64>,
        #[serde(with = "serde_bytes")]
        command: Vec<u8>,
    },
    /// The leader's answer: the index and term the command was proposed
    /// at, or that it does not lead (and who it thinks does).
    Forwarded { id: u64, result: Result<(u64, u64), Option<u64>> },
    /// Sessions whose clients this member heard from since its last touch,
    /// for the leader's expiry clock.
    Touch { sessions: Vec<SessionId> },
}

/// What the engine is told.
#[derive(Debug)]
pub enum Input {
    /// One tick of the consensus clock (`Timing::tick_ms`).
    Tick,
    /// A frame from a peer whose identity the transport checked.
    Peer { from: u64, frame: PeerFrame },
    /// A front end's session input.
    Session(SessionIn),
    /// Everything written up to the `DiskOp::Sync` with this id is durable.
    Synced(SyncId),
    /// The snapshot asked for with [`Output::Snapshot`] was written (or
    /// why not).
    SnapshotWritten(Result<Snapshot, String>),
}

/// What the engine asks of its driver, in order.
pub enum Output {
    /// A frame for a peer; the link may drop it (consensus resends).
    Peer {
        to: u64,
        frame: PeerFrame,
    },
    /// A frame for a client connection.
    Session {
        conn: ConnId,
        frame: ServerFrame,
    },
    /// The engine is done with a connection: end it once the frames
    /// before this have left.
    Close {
        conn: ConnId,
    },
    Disk(DiskOp),
    /// Write the state frozen in `view` as a snapshot at `meta`.
    Snapshot {
        meta: SnapshotMeta,
        view: SnapshotView,
    },
}

/// Settings of an engine besides the consensus core's.
#[derive(Clone, Debug)]
pub struct Options {
    pub timing: Timing,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
    pub limits: Limits,
    /// The digest identity (`user:<base64 sha1>`, as ZooKeeper's
    /// `superDigest`) whose addAuth makes a session the superuser, which
    /// passes every ACL check. None: no superuser.
    pub superuser_digest: Option<String>,
}

/// Why the engine stopped: the node must stop too.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "committed entry {index} does not decode ({why}); the log is corrupt or from another version"
    )]
    Entry { index: u64, why: String },
    #[error("the leader's snapshot at {index} does not restore: {why}")]
    Snapshot { index: u64, why: String },
}

/// Counters for observers (the simulator's report).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Writes handed to a leader.
    pub forwarded: u64,
    /// Acknowledgements held behind a deferred sync.
    pub messages_held: u64,
    /// Watch events sent to sessions here.
    pub events: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Times this member told its sessions to move (it lost its leader).
    pub shed: u64,
}

/// Bugs the simulator plants to prove its checkers catch them. Never set
/// outside the simulator's checker tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlantedBugs {
    /// Acknowledgements leave before the disk sync that backs them.
    pub ack_before_sync: bool,
    /// A leader counts its deferred entries as durable at once.
    pub leader_counts_unsynced: bool,
    /// A resumed session's replay leaves out the first missed event.
    pub replay_skips_one: bool,
    /// Two answers ready together leave in the wrong order.
    pub answers_swapped: bool,
    /// A resume is not refused when the member is behind the client.
    pub serves_behind: bool,
    /// An expired session can be resumed.
    pub resumes_expired: bool,
    /// Watchers are not told of the deletes an expiry makes.
    pub expiry_hides_deletes: bool,
    /// A linearizable read is served from the member's state at once,
    /// without a read index.
    pub reads_skip_read_index: bool,
}

/// Who waits for a proposed command.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Waiter {
    /// A request of a local session.
    Request { session: SessionId, xid: u64 },
    /// A connection opening a new session, with the secret it is issued.
    Open { conn: ConnId, secret: SessionSecret },
    /// A local session closing.
    Close { session: SessionId },
    /// The leader's own bookkeeping (expiry, clean-up).
    Internal,
}

/// One member. See the module docs.
pub struct Engine {
    id: u64,
    raft: Raft,
    sm: StateMachine,
    watches: WatchTable,
    options: Options,
    sessions: Sessions,
    proposals: Proposals,
    expiry: Expiry,
    disk: Disk,
    stamps: Stamps,
    now: Now,
    /// Inputs that came while a Ready waited for its sync.
    inbox: VecDeque<Input>,
    out: Vec<Output>,
    snapshotting: bool,
    last_snapshot: LogIndex,
    /// When this member last had a leader in touch (monotonic ms): a
    /// follower's last message from its leader, a leader's last quorum.
    leader_contact_ms: u64,
    /// When the last tick came (monotonic ms).
    last_tick_ms: u64,
    /// The member has told its sessions to move and refuses new ones
    /// until it is in touch with a leader again.
    shedding: bool,
    counters: Counters,
    bugs: PlantedBugs,
}

impl Engine {
    /// An engine over a recovered core and state machine. `now` is the
    /// time it starts at; `seed` feeds every random choice (election
    /// timeouts come from `raft_config.seed`; session secrets from this).
    pub fn new(
        raft_config: Config,
        restored: Restored,
        sm: StateMachine,
        options: Options,
        now: Now,
        seed: u64,
    ) -> Engine {
        let id = raft_config.id.0;
        let last_snapshot = restored.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let raft = Raft::new(raft_config, restored);
        let sessions = Sessions::new(sm.last_applied(), seed);
        Engine {
            id,
            raft,
            sm,
            watches: WatchTable::default(),
            options,
            sessions,
            proposals: Proposals::new(seed.rotate_left(29)),
            expiry: Expiry::default(),
            disk: Disk::default(),
            stamps: Stamps::default(),
            now,
            inbox: VecDeque::new(),
            out: Vec::new(),
            snapshotting: false,
            last_snapshot,
            leader_contact_ms: now.mono_ms,
            last_tick_ms: now.mono_ms,
            shedding: false,
            counters: Counters::default(),
            bugs: PlantedBugs::default(),
        }
    }

    /// Plants bugs for the simulator's checker tests.
    pub fn plant(&mut self, bugs: PlantedBugs) {
        self.bugs = bugs;
    }

    // ---- Observers.

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn state(&self) -> &StateMachine {
        &self.sm
    }

    /// Whether a Ready waits for a sync (inputs queue meanwhile).
    pub fn is_blocked(&self) -> bool {
        self.disk.blocked.is_some()
    }

    pub fn counters(&self) -> Counters {
        Counters {
            forwarded: self.proposals.forwarded,
            messages_held: self.disk.messages_held,
            ..self.counters
        }
    }

    /// The outputs so far, to carry out in order.
    pub fn outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// Whether outputs are waiting.
    pub fn has_outputs(&self) -> bool {
        !self.out.is_empty()
    }

    // ---- Input.

    /// Takes one input at `now`. Call [`Engine::process`] after a batch.
    pub fn handle(&mut self, input: Input, now: Now) -> Result<(), EngineError> {
        self.now = Now { mono_ms: self.now.mono_ms.max(now.mono_ms), wall_ms: now.wall_ms };
        if let Input::Synced(id) = input {
            return self.synced(id);
        }
        if self.disk.blocked.is_some() {
            self.inbox.push_back(input);
            return Ok(());
        }
        self.feed(input)
    }

    /// Runs the consensus core's output until it has none, or a Ready waits
    /// for its sync.
    pub fn process(&mut self) -> Result<(), EngineError> {
        while self.disk.blocked.is_none() && self.raft.has_ready() {
            self.ready()?;
        }
        Ok(())
    }

    fn feed(&mut self, input: Input) -> Result<(), EngineError> {
        match input {
            Input::Tick => self.tick(),
            Input::Peer { from, frame } => self.peer_frame(from, frame),
            Input::Session(input) => self.session_input(input),
            Input::Synced(id) => return self.synced(id),
            Input::SnapshotWritten(result) => self.snapshot_written(result),
        }
        Ok(())
    }

    fn peer_frame(&mut self, from: u64, frame: PeerFrame) {
        match frame {
            PeerFrame::Hello { .. } => {}
            PeerFrame::Raft(m) => {
                let from_leader = self.raft.leader().is_some_and(|l| l == m.from);
                self.raft.step(m);
                if from_leader && self.raft.leader().is_some_and(|l| l.0 == from) {
                    self.leader_contact_ms = self.now.mono_ms;
                }
            }
            PeerFrame::Forward { id, term, command } => {
                self.forwarded_command(from, id, term, command)
            }
            PeerFrame::Forwarded { id, result } => self.forward_answered(id, result),
            PeerFrame::Touch { sessions } => {
                if self.raft.role() == Role::Leader {
                    for session in sessions {
                        self.expiry.touch(&self.sm, session, self.now.mono_ms);
                    }
                }
            }
        }
    }

    fn tick(&mut self) {
        let stamp = self.stamps.stamp(self.now);
        self.raft.tick(stamp);
        let leader = self.raft.role() == Role::Leader;
        let tick_ms = self.options.timing.tick_ms;
        // Ticks further apart than two mean this member did not run
        // meanwhile (a long apply such as a plugin's compilation, a pause):
        // that time is not its leader's silence, and the leader's words
        // that waited in its sockets are still to come.
        let gap = self.now.mono_ms.saturating_sub(self.last_tick_ms);
        self.last_tick_ms = self.now.mono_ms;
        if gap > 2 * tick_ms {
            self.leader_contact_ms = (self.leader_contact_ms + gap - tick_ms).min(self.now.mono_ms);
        }
        if let Some(silent) = self.raft.quorum_silent_ticks() {
            let since = self.now.mono_ms.saturating_sub(silent.saturating_mul(tick_ms));
            self.leader_contact_ms = self.leader_contact_ms.max(since);
        }
        let due = self.expiry.tick(leader, &self.sm, self.now.mono_ms, stamp);
        if !due.relay.is_empty()
            && let Some(l) = self.raft.leader()
        {
            self.out
                .push(Output::Peer { to: l.0, frame: PeerFrame::Touch { sessions: due.relay } });
        }
        for command in due.propose {
            self.propose(Waiter::Internal, command);
        }
        self.tick_forwards();
        self.retry_reads();
        self.check_leader_contact();
    }

    /// A member out of touch with any leader for an election timeout tells
    /// its sessions to move (a ZooKeeper follower that loses its leader
    /// closes its connections too) and fails the writes it cannot finish:
    /// their clients reach the quorum through another member, and keep
    /// their sessions, instead of waiting here until the partition heals.
    fn check_leader_contact(&mut self) {
        if self.in_touch() {
            self.shedding = false;
            return;
        }
        if self.now.mono_ms.saturating_sub(self.leader_contact_ms) < self.contact_window_ms()
            || self.shedding
        {
            return;
        }
        self.shedding = true;
        self.counters.shed += 1;
        self.shed_sessions();
    }

    /// An election timeout: how long a member may go without a word from
    /// a leader (or, leading, from a quorum) and still serve.
    fn contact_window_ms(&self) -> u64 {
        let timing = self.options.timing;
        u64::from(timing.election_ticks) * timing.tick_ms
    }

    /// Whether this member knows a leader and heard from it (or, leading,
    /// from a quorum) within an election timeout: it can serve a session.
    pub(super) fn in_touch(&self) -> bool {
        let window = self.contact_window_ms();
        if let Some(silent) = self.raft.quorum_silent_ticks() {
            return silent.saturating_mul(self.options.timing.tick_ms) < window;
        }
        self.raft.leader().is_some()
            && self.now.mono_ms.saturating_sub(self.leader_contact_ms) < window
    }

    // ---- Consensus output.

    fn ready(&mut self) -> Result<(), EngineError> {
        let mut ready = self.raft.ready();
        self.send_messages(std::mem::take(&mut ready.messages));
        if self.bugs.ack_before_sync {
            self.send_messages(std::mem::take(&mut ready.persisted_messages));
        }
        let deferred = ready.must_sync
            && ready.may_defer_sync
            && (!ready.entries.is_empty() || self.disk.syncing());
        let mut ops = Vec::new();
        if deferred {
            // Written now and synced beside what follows: a leader's
            // followers may commit the entries first, and a follower's
            // acknowledgements wait for the sync. A follower's sync may run
            // in line (nothing replicates from it meanwhile).
            let inline = self.raft.role() != Role::Leader;
            let messages = self.disk.write_deferred(
                ready.hard_state.clone(),
                std::mem::take(&mut ready.entries),
                std::mem::take(&mut ready.persisted_messages),
                inline,
                &mut ops,
            );
            self.out.extend(ops.into_iter().map(Output::Disk));
            self.send_messages(messages);
            let counts = self.bugs.leader_counts_unsynced && self.raft.role() == Role::Leader;
            self.finish(ready, !counts)
        } else if ready.must_sync {
            self.disk.write_blocking(ready, &mut ops);
            self.out.extend(ops.into_iter().map(Output::Disk));
            Ok(())
        } else {
            // Only the commit index moved: written, not synced, so no sync
            // lies on the path of the answers this Ready applies.
            if let Some(hard_state) = ready.hard_state.clone() {
                self.out.push(Output::Disk(DiskOp::Write {
                    hard_state: Some(hard_state),
                    entries: Vec::new(),
                }));
            }
            self.finish(ready, false)
        }
    }

    /// After a Ready's sync (or with none needed): acknowledge, install,
    /// apply, answer, advance.
    fn finish(&mut self, mut ready: Ready, deferred: bool) -> Result<(), EngineError> {
        self.send_messages(std::mem::take(&mut ready.persisted_messages));
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
        self.after_apply();
        Ok(())
    }

    fn synced(&mut self, id: SyncId) -> Result<(), EngineError> {
        let released = self.disk.synced(id);
        self.send_messages(released.messages);
        if let Some(ready) = released.ready {
            self.finish(ready, false)?;
        }
        if self.disk.blocked.is_none() {
            if let Some((index, term)) = released.synced {
                self.raft.synced(index, term);
            }
            // Inputs that waited for the sync, in order.
            while self.disk.blocked.is_none() {
                let Some(input) = self.inbox.pop_front() else { break };
                self.feed(input)?;
                self.process()?;
            }
        }
        Ok(())
    }

    fn send_messages(&mut self, messages: Vec<Message>) {
        for m in messages {
            self.out.push(Output::Peer { to: m.to.0, frame: PeerFrame::Raft(m) });
        }
    }

    /// A snapshot from the leader replaced the state. Every local session
    /// is asked to reconnect, which re-arms its watches against the new
    /// state (firing what changed); writes in flight have an unknown
    /// outcome.
    fn install(&mut self, snapshot: Snapshot) -> Result<(), EngineError> {
        let index = snapshot.meta.index.0;
        let cache = self.sm.plugin_cache().map(Path::to_owned);
        self.sm = snapshot::read(&snapshot.data[..], self.options.limits)
            .map_err(|e| EngineError::Snapshot { index, why: e.to_string() })?;
        if let Some(dir) = cache {
            self.sm.set_plugin_cache(&dir);
        }
        self.last_snapshot = snapshot.meta.index;
        self.counters.snapshots_installed += 1;
        self.proposals.forget_through(snapshot.meta.index);
        self.sessions.reset_recent(self.sm.last_applied());
        self.resync_sessions();
        Ok(())
    }

    fn apply(&mut self, entry: LogEntry) -> Result<(), EngineError> {
        let (index, term) = (entry.index, entry.term.0);
        if index.0 <= self.sm.last_applied().0 {
            // Applied at start (storage rebuilt the state machine up to the
            // stored commit index); the core hands it out once more.
            return Ok(());
        }
        let entry = state_entry(&entry)
            .map_err(|e| EngineError::Entry { index: index.0, why: e.to_string() })?;
        self.stamps.seen(entry.time_ms, self.now);
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
        let expiry = matches!(entry.command, Command::ExpireSessions { .. });
        // A session closing is still connected when its ephemerals go: it
        // hears of them before its close is answered, as ZooKeeper's does.
        let closing = match &entry.command {
            Command::CloseSession { session } => {
                self.sm.session(*session).map(|s| (*session, s.auth.clone()))
            }
            _ => None,
        };
        let applied = self.sm.apply(entry);
        if !(expiry && self.bugs.expiry_hides_deletes) {
            self.fire(applied.triggers, closing);
        }
        if expiry {
            // Sessions expired here are told so before anything else: a
            // request of theirs whose index this entry took gets no answer
            // stamped with the entry that ended them (their clients never
            // see its events).
            self.end_sessions(&ended);
        }
        if let Some((waiter, same_term)) = self.proposals.take(index, term) {
            if same_term {
                self.complete(waiter, index, applied.response);
            } else {
                // Another leader's entry took the index: ours was never
                // applied, so the client may retry as it is.
                let why = "leadership changed before the write committed".to_string();
                self.fail(waiter, warren_client::wire::Failure::Unavailable { why });
            }
        }
        self.expiry.applied(&ended, cleaned.as_deref());
        if !expiry {
            // A close: its waiter answered Closed first.
            self.end_sessions(&ended);
        }
        Ok(())
    }

    fn end_sessions(&mut self, ended: &[SessionId]) {
        for &session in ended {
            if self.sm.session(session).is_none() {
                self.session_ended(session);
            }
        }
    }

    /// After a round of applies: run reads that were waiting for them, and
    /// snapshot when enough was applied.
    fn after_apply(&mut self) {
        self.flush_ready_reads();
        let applied = self.raft.applied_index();
        if !self.snapshotting && applied.0 >= self.last_snapshot.0 + self.options.snapshot_every {
            self.start_snapshot();
        }
    }

    // ---- Snapshots.

    /// Freezes the state for the driver to write beside the engine.
    fn start_snapshot(&mut self) {
        let index = LogIndex(self.sm.last_applied().0);
        let Some(term) = self.raft.term_at(index) else { return };
        let meta = SnapshotMeta { index, term, membership: self.raft.membership().clone() };
        let view = self.sm.snapshot_view();
        self.snapshotting = true;
        self.out.push(Output::Snapshot { meta, view });
    }

    fn snapshot_written(&mut self, result: Result<Snapshot, String>) {
        self.snapshotting = false;
        match result {
            Ok(snapshot) => {
                let index = snapshot.meta.index;
                self.last_snapshot = index;
                // After every write asked for so far: the driver makes
                // them before the store's log starts past the snapshot.
                self.out.push(Output::Disk(DiskOp::Compacted { index }));
                self.raft.compact(index, snapshot.data);
            }
            Err(why) => {
                tracing::warn!("n{}: snapshot failed: {why}; retrying after more entries", self.id);
                self.last_snapshot = self.raft.applied_index();
            }
        }
    }

    /// The zxid this member has applied.
    fn applied_zxid(&self) -> Zxid {
        self.sm.last_applied()
    }
}
