//! One simulated member: the real node engine (consensus core, state
//! machine, watches, sessions) driven as the tokio driver drives it, over a
//! simulated disk that loses everything not yet synced when the member
//! crashes. The simulator's world carries out the rest of the engine's
//! outputs: peer frames over the simulated network, session frames to the
//! simulated clients, and the time a sync or a snapshot takes.

use crate::consensus::{Config, HardState, LogEntry, LogIndex, NodeId, Restored, Role, Snapshot};
use crate::node::engine::{
    ConnId, Counters, DiskOp, Engine, Input, Now, Options, Output, PeerFrame, PlantedBugs, SyncId,
};
use crate::state::snapshot;
use crate::{Limits, StateMachine};
use std::collections::VecDeque;
use warren_client::wire::ServerFrame;

/// What the world must do for a member.
pub(crate) enum Effect {
    Peer {
        to: u64,
        frame: PeerFrame,
    },
    Session {
        conn: ConnId,
        frame: ServerFrame,
    },
    Close {
        conn: ConnId,
    },
    /// A sync started: report it done after the disk's latency.
    Sync(SyncId),
    /// A snapshot was written (durably): report it after a while.
    Snapshot(Snapshot),
}

/// What is durable.
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot.
    pub entries: Vec<LogEntry>,
}

/// A write made and not yet synced.
enum Written {
    Install(Snapshot),
    Write { hard_state: Option<HardState>, entries: Vec<LogEntry> },
}

impl Disk {
    fn apply(&mut self, write: Written) {
        match write {
            Written::Install(snapshot) => {
                // Installing a snapshot replaces the whole log.
                self.entries.clear();
                self.snapshot = Some(snapshot);
            }
            Written::Write { hard_state, entries } => {
                if let Some(hard_state) = hard_state {
                    self.hard_state = hard_state;
                }
                if let Some(first) = entries.first() {
                    self.entries.retain(|e| e.index < first.index);
                    self.entries.extend(entries);
                }
            }
        }
    }
}

pub(crate) struct SimNode {
    pub id: NodeId,
    config: Config,
    options: Options,
    bugs: PlantedBugs,
    pub engine: Option<Engine>,
    pub disk: Disk,
    /// Writes made, not yet durable, oldest first.
    written: VecDeque<Written>,
    /// Syncs started and not reported, oldest first, each with how many of
    /// the writes after the earlier ones' it covers.
    syncs: VecDeque<(SyncId, usize)>,
    pub generation: u64,
    /// When this process started (its monotonic clock's origin).
    started_at: u64,
    /// This member's wall clock minus the simulation's.
    pub wall_offset_ms: i64,
    /// Counters of engines this member ran before its latest restart.
    past: Counters,
}

impl SimNode {
    pub(crate) fn new(config: Config, options: Options, bugs: PlantedBugs, now: u64) -> SimNode {
        let mut node = SimNode {
            id: config.id,
            config,
            options,
            bugs,
            engine: None,
            disk: Disk::default(),
            written: VecDeque::new(),
            syncs: VecDeque::new(),
            generation: 0,
            started_at: now,
            wall_offset_ms: 0,
            past: Counters::default(),
        };
        node.restart(now);
        node
    }

    pub(crate) fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    pub(crate) fn is_syncing(&self) -> bool {
        !self.syncs.is_empty()
    }

    pub(crate) fn raft(&self) -> Option<&crate::consensus::Raft> {
        self.engine.as_ref().map(Engine::raft)
    }

    pub(crate) fn state(&self) -> Option<&StateMachine> {
        self.engine.as_ref().map(Engine::state)
    }

    /// Counters over every run of this member.
    pub(crate) fn counters(&self) -> Counters {
        let now = self.engine.as_ref().map(Engine::counters).unwrap_or_default();
        Counters {
            forwarded: self.past.forwarded + now.forwarded,
            messages_held: self.past.messages_held + now.messages_held,
            events: self.past.events + now.events,
            snapshots_installed: self.past.snapshots_installed + now.snapshots_installed,
            shed: self.past.shed + now.shed,
        }
    }

    /// Loses everything volatile: the engine and every write not synced.
    pub(crate) fn crash(&mut self) {
        self.past = self.counters();
        self.engine = None;
        self.written.clear();
        self.syncs.clear();
        self.generation += 1;
    }

    /// Starts from what the disk holds: snapshot plus log.
    pub(crate) fn restart(&mut self, now: u64) {
        self.generation += 1;
        self.started_at = now;
        let mut config = self.config.clone();
        config.seed = config.seed.wrapping_add(self.generation);
        let sm = match &self.disk.snapshot {
            // The disk holds only snapshots this member's engine wrote.
            Some(s) => {
                snapshot::read(&s.data[..], Limits::default()).expect("own snapshot restores")
            }
            None => StateMachine::new(Limits::default()),
        };
        // As the store's recovery: entries the snapshot covers are ignored.
        let covered = self.disk.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let restored = Restored {
            hard_state: self.disk.hard_state.clone(),
            snapshot: self.disk.snapshot.clone(),
            entries: self.disk.entries.iter().filter(|e| e.index > covered).cloned().collect(),
        };
        let seed = config.seed.rotate_left(17);
        let mut engine =
            Engine::new(config, restored, sm, self.options.clone(), self.now(now), seed);
        engine.plant(self.bugs);
        self.engine = Some(engine);
    }

    /// The member's two clocks at simulated time `now`.
    pub(crate) fn now(&self, now: u64) -> Now {
        Now { mono_ms: now - self.started_at, wall_ms: now as i64 + self.wall_offset_ms }
    }

    /// Feeds one input at `now` and lets the engine process it; returns
    /// what the world must do. A broken invariant panics (the caller
    /// reports it); an engine error stops the member.
    pub(crate) fn input(&mut self, input: Input, now: u64) -> Result<Vec<Effect>, String> {
        let clock = self.now(now);
        let Some(engine) = self.engine.as_mut() else { return Ok(Vec::new()) };
        engine.handle(input, clock).map_err(|e| e.to_string())?;
        engine.process().map_err(|e| e.to_string())?;
        Ok(self.carry_out())
    }

    /// A sync the world started has completed: what was written before it
    /// is durable, and so is what earlier syncs covered (a sync makes
    /// everything written durable, whichever finishes first).
    pub(crate) fn sync_done(&mut self, sync: SyncId, now: u64) -> Result<Vec<Effect>, String> {
        if !self.syncs.iter().any(|&(id, _)| id == sync) {
            return Ok(Vec::new()); // covered by a later sync already
        }
        while let Some(&(id, count)) = self.syncs.front() {
            if id > sync {
                break;
            }
            self.syncs.pop_front();
            for _ in 0..count {
                if let Some(write) = self.written.pop_front() {
                    self.disk.apply(write);
                }
            }
        }
        self.input(Input::Synced(sync), now)
    }

    fn carry_out(&mut self) -> Vec<Effect> {
        let Some(engine) = self.engine.as_mut() else { return Vec::new() };
        let outputs: Vec<Output> = engine.outputs().collect();
        let mut effects = Vec::new();
        for output in outputs {
            match output {
                Output::Peer { to, frame } => effects.push(Effect::Peer { to, frame }),
                Output::Session { conn, frame } => effects.push(Effect::Session { conn, frame }),
                Output::Close { conn } => effects.push(Effect::Close { conn }),
                Output::Disk(op) => match op {
                    DiskOp::InstallSnapshot(snapshot) => {
                        self.written.push_back(Written::Install(snapshot))
                    }
                    DiskOp::Write { hard_state, entries } => {
                        self.written.push_back(Written::Write { hard_state, entries })
                    }
                    DiskOp::Sync { id, .. } => {
                        self.syncs.push_back((id, self.written.len() - self.covered()));
                        effects.push(Effect::Sync(id));
                    }
                    // The store only moves its bookkeeping; recovery skips
                    // what the snapshot covers.
                    DiskOp::Compacted { .. } => {}
                },
                Output::Snapshot { meta, view } => {
                    let mut bytes = Vec::new();
                    // Writing to memory cannot fail.
                    snapshot::write_view(&view, &mut bytes).expect("snapshot to memory");
                    let snapshot = Snapshot { meta, data: bytes.into() };
                    // Written and synced to its own file before it is
                    // reported: durable from here.
                    self.disk.snapshot = Some(snapshot.clone());
                    let index = snapshot.meta.index;
                    self.disk.entries.retain(|e| e.index > index);
                    effects.push(Effect::Snapshot(snapshot));
                }
            }
        }
        effects
    }

    /// Writes already covered by the syncs started.
    fn covered(&self) -> usize {
        self.syncs.iter().map(|&(_, count)| count).sum()
    }

    /// One line on the member, for traces.
    pub(crate) fn status(&self) -> String {
        match &self.engine {
            None => format!("n{}: down", self.id.0),
            Some(engine) => {
                let r = engine.raft();
                format!(
                    "n{}: {:?} term {} leader {:?} commit {} last {} persisted {} applied {}; blocked {}, {} syncs out, {} writes unsynced",
                    self.id.0,
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.commit_index(),
                    r.last_index(),
                    r.persisted_index(),
                    engine.state().last_applied(),
                    engine.is_blocked(),
                    self.syncs.len(),
                    self.written.len()
                )
            }
        }
    }

    /// Whether this member leads with a commit index past its own durable
    /// log (followers' acknowledgements made the quorum while its deferred
    /// sync ran).
    pub(crate) fn commits_ahead_of_disk(&self) -> bool {
        self.raft()
            .is_some_and(|r| r.role() == Role::Leader && r.commit_index() > r.persisted_index())
    }
}
