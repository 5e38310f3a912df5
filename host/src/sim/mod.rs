//! The deterministic cluster simulator: 3 or 5 members running the real
//! node engine (consensus core, state machine, watches, session layer),
//! simulated clients speaking the session layer, and a world (network,
//! disks, clocks) that one `u64` seed drives, so a failing seed replays
//! exactly.
//!
//! A run has a fault phase (message loss, duplication, delay and
//! reordering; partitions of every shape; crashes that lose unsynced writes;
//! restarts; paused members; slow disks; wall clocks jumping by minutes),
//! then a healed phase in which the cluster must make progress, then a
//! quiet period in which it must converge. Checkers run throughout: at most
//! one leader per term; a committed entry is never lost or changed; log
//! matching; every acknowledged write is committed; the clients' histories
//! are linearizable; all members end with equal digests; and the session
//! checkers of `client` (answers in request order, reads never back in
//! time, events in order and before the answers that reflect them, one-shot
//! watches fire at most once, an expired session is never welcomed back).
//! At the end, every event a lasting watch caught is checked against the
//! committed log (each change once, in order, none missed across moves
//! unless the client was told), and no ephemeral outlives its session.

mod client;
pub mod linearizability;
mod net;
mod node;
pub mod script;

use crate::consensus::{Config, LogEntry, LogIndex, NodeId, Role, Snapshot, Term};
use crate::node::config::Timing;
use crate::node::engine::{ConnId, Input, Options, PeerFrame, PlantedBugs, SessionIn, SyncId};
use crate::storage::state_entry;
use crate::{Limits, StateMachine};
use client::{KEYS, LastingRecord, PING_EVERY_MS, Send, SimClient, client_of, lasting_catches};
use linearizability::{Operation, TreeModel, TreeOp};
use net::{LinkFaults, Network, Rng};
use node::{Effect, SimNode};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use warren_client::wire::ServerFrame;
use warren_client::{EventType, OpResult};

/// What a run does. `SimConfig::new(seed, nodes)` gives the standard run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub clients: usize,
    /// Simulated ms of faults, then of healed operation, then at most this
    /// long to converge.
    pub fault_ms: u64,
    pub healed_ms: u64,
    pub converge_ms: u64,
    pub faults: bool,
    /// Applied entries between snapshots (and log compactions).
    pub snapshot_every: u64,
    /// Planted bugs, to prove the checkers catch them.
    pub bug_commit_by_count: bool,
    pub bugs: PlantedBugs,
    /// Record a readable trace of every event.
    pub trace: bool,
    /// Search steps the linearizability checker may take per key (or for
    /// the whole history when a multi spans keys).
    pub linearizability_steps: u64,
}

impl SimConfig {
    pub fn new(seed: u64, nodes: usize) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            clients: 5,
            fault_ms: 8_000,
            healed_ms: 4_000,
            converge_ms: 10_000,
            faults: true,
            snapshot_every: 200,
            bug_commit_by_count: false,
            bugs: PlantedBugs::default(),
            trace: false,
            linearizability_steps: 2_000_000,
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub nodes: usize,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub committed: u64,
    pub elections: u64,
    /// Snapshots followers received from a leader (in chunks) and installed.
    pub snapshots_installed: u64,
    /// Times a leader had committed past its own durable log: followers'
    /// acknowledgements made the quorum while its deferred sync ran.
    pub commits_ahead_of_leader_disk: u64,
    /// Acknowledgements held back until a deferred sync covered them.
    pub messages_held: u64,
    /// Writes a member forwarded to the leader.
    pub forwarded: u64,
    /// Sessions clients were told had expired.
    pub expired: u64,
    /// Watch events clients received.
    pub events: u64,
    /// Times a client moved its session to another member.
    pub moves: u64,
    /// Times a member out of touch with a leader sent its sessions away.
    pub shed: u64,
    pub max_term: u64,
    pub ops_ok: u64,
    pub ops_indeterminate: u64,
    pub writes_acked: u64,
    pub faults: u64,
    pub crashes: u64,
    pub linearizability: String,
    /// The linearizability search hit its step budget without deciding.
    pub linearizability_undecided: bool,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "seed {} ({} members): {} committed, {} elections (max term {}), {} snapshots installed, {} forwarded, {} expired, {} events, {} moves, {} faults ({} crashes); linearizability: {}; {}",
            self.seed,
            self.nodes,
            self.committed,
            self.elections,
            self.max_term,
            self.snapshots_installed,
            self.forwarded,
            self.expired,
            self.events,
            self.moves,
            self.faults,
            self.crashes,
            self.linearizability,
            if self.passed() {
                "ok".to_string()
            } else {
                format!("VIOLATIONS: {:?}", self.violations)
            }
        )
    }
}

const TICK_MS: u64 = 10;
const CLIENT_LATENCY_MS: u64 = 1;

#[derive(Debug)]
enum Event {
    Tick(usize),
    Deliver {
        from: u64,
        to: u64,
        frame: PeerFrame,
    },
    /// A sync (member, generation, id) completed.
    SyncDone(usize, u64, SyncId),
    /// A snapshot (member, generation) was written.
    SnapshotDone(usize, u64, Snapshot),
    /// A client's input reaches a member.
    ToMember(usize, SessionIn),
    /// A member's frame reaches a client.
    ToClient(ConnId, ServerFrame),
    /// A connection ended without a word (its member restarted).
    Closed(ConnId),
    ClientTick(usize),
    ClientWake(usize),
    Fault,
    /// Crash this member if it still leads in this term.
    CrashLeader(usize, Term),
    /// A paused member goes on.
    Resume(usize),
    Heal,
    StopClients,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Sim {
    config: SimConfig,
    now: u64,
    seq: u64,
    rng: Rng,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    clients: Vec<SimClient>,
    network: Network,
    slow_disk: Vec<bool>,
    /// A paused member (SIGSTOP) holds every event for it until then.
    paused_until: Vec<u64>,
    held: Vec<VecDeque<Event>>,
    /// The connections each member has open, to reset on its restart.
    conns: Vec<BTreeSet<ConnId>>,
    clients_stopped: bool,
    /// A member hit a broken invariant: the run ends.
    stopped: bool,
    healed_at: Option<u64>,
    history: Vec<Operation<TreeModel>>,
    /// Checker state.
    leaders: BTreeMap<Term, NodeId>,
    committed: BTreeMap<LogIndex, (Term, u64)>,
    /// Committed entries, for the reference replay at the end.
    entries: BTreeMap<LogIndex, LogEntry>,
    /// Sessions a committed entry closed or expired, and where.
    ended: BTreeMap<warren_client::SessionId, LogIndex>,
    /// Per member: the commit index up to which its entries were checked.
    commit_seen: Vec<LogIndex>,
    acked: Vec<(LogIndex, usize)>,
    acked_after_heal: u64,
    commits_ahead: u64,
    report: SimReport,
}

/// A change the committed log made: its zxid, event and path.
type Change = (u64, EventType, String);

/// What the committed-entry checker compares besides the term: a hash of
/// the payload (0 for a no-op).
pub(crate) fn payload_hash(entry: &LogEntry) -> u64 {
    match &entry.kind {
        crate::consensus::EntryKind::Noop => 0,
        crate::consensus::EntryKind::Command(bytes) => xxhash_rust::xxh3::xxh3_64(bytes),
    }
}

/// Runs one simulation and checks it.
pub fn run(config: SimConfig) -> SimReport {
    let mut sim = Sim::new(config);
    sim.run();
    sim.finish()
}

/// The engine settings of simulated members: time runs ten times faster
/// than a real node's, and session timeouts are short enough to expire in
/// a run.
fn options(snapshot_every: u64) -> Options {
    let timing = Timing {
        tick_ms: TICK_MS,
        election_ticks: 10,
        heartbeat_ticks: 1,
        session_timeout_min_ms: 500,
        session_timeout_max_ms: 10_000,
    };
    Options { timing, snapshot_every, limits: Limits::default(), superuser_digest: None }
}

impl Sim {
    fn new(config: SimConfig) -> Sim {
        let mut rng = Rng::new(config.seed);
        let ids: Vec<NodeId> = (1..=config.nodes as u64).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut raft = Config::new(id, ids.clone(), rng.next_u64());
                raft.unsafe_commit_by_count = config.bug_commit_by_count;
                // Batching limits vary by seed: small appends split a new
                // leader's catch-up from its first entry, which is where
                // commitment bugs hide.
                raft.max_inflight = rng.between(1, 16) as usize;
                raft.max_entries_per_append = *rng.pick(&[1, 2, 4, 16, 64]);
                // So do snapshot chunks: most runs stream a snapshot in many
                // small chunks, so loss, reordering and crashes land
                // mid-transfer.
                raft.snapshot_chunk_bytes = *rng.pick(&[64, 256, 4096, 1 << 20]);
                raft.snapshot_chunks_in_flight = rng.between(1, 4) as usize;
                let mut node = SimNode::new(raft, options(config.snapshot_every), config.bugs, 0);
                // Wall clocks disagree by up to five seconds.
                node.wall_offset_ms = rng.between(0, 10_000) as i64 - 5_000;
                node
            })
            .collect();
        let clients = (0..config.clients)
            .map(|c| {
                let member = rng.below(config.nodes as u64) as usize;
                SimClient::new(c, member, &mut rng)
            })
            .collect();
        let report = SimReport { seed: config.seed, nodes: config.nodes, ..SimReport::default() };
        let n = config.nodes;
        Sim {
            now: 0,
            seq: 0,
            rng,
            queue: BinaryHeap::new(),
            nodes,
            ids,
            clients,
            network: Network::new(1),
            slow_disk: vec![false; n],
            paused_until: vec![0; n],
            held: (0..n).map(|_| VecDeque::new()).collect(),
            conns: vec![BTreeSet::new(); n],
            clients_stopped: false,
            stopped: false,
            healed_at: None,
            history: Vec::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            entries: BTreeMap::new(),
            ended: BTreeMap::new(),
            commit_seen: vec![LogIndex(0); n],
            acked: Vec::new(),
            acked_after_heal: 0,
            commits_ahead: 0,
            report,
            config,
        }
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: self.now + delay, seq: self.seq, event }));
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace {
            let line = format!("{:>7} {}", self.now, line());
            self.report.trace.push(line);
        }
    }

    fn run(&mut self) {
        for n in 0..self.nodes.len() {
            let offset = self.rng.below(TICK_MS);
            self.schedule(offset, Event::Tick(n));
        }
        for c in 0..self.clients.len() {
            let offset = self.rng.below(50);
            self.schedule(offset, Event::ClientTick(c));
        }
        if self.config.faults {
            let first = self.rng.between(200, 1000);
            self.schedule(first, Event::Fault);
        }
        let fault_ms = if self.config.faults { self.config.fault_ms } else { 0 };
        self.schedule(fault_ms, Event::Heal);
        self.schedule(fault_ms + self.config.healed_ms, Event::StopClients);
        let deadline = fault_ms + self.config.healed_ms + self.config.converge_ms;
        let mut events = 0u64;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > deadline {
                break;
            }
            self.now = next.at;
            self.dispatch(next.event);
            events += 1;
            // Before compaction hides a divergence.
            if events.is_multiple_of(500) {
                self.check_log_matching();
            }
            if self.stopped || (self.clients_stopped && self.converged()) {
                break;
            }
        }
    }

    /// The member an event is for, if it is for one.
    fn target(event: &Event) -> Option<usize> {
        match event {
            Event::Deliver { to, .. } => Some((*to - 1) as usize),
            Event::SyncDone(n, ..) | Event::SnapshotDone(n, ..) | Event::ToMember(n, _) => Some(*n),
            _ => None,
        }
    }

    fn dispatch(&mut self, event: Event) {
        if let Some(n) = Self::target(&event)
            && self.paused_until[n] > self.now
        {
            self.held[n].push_back(event);
            return;
        }
        match event {
            Event::Tick(n) => {
                if self.paused_until[n] <= self.now {
                    self.input(n, Input::Tick);
                }
                if self.config.trace && self.now / 500 != (self.now + TICK_MS) / 500 {
                    let status = self.nodes[n].status();
                    self.trace(|| status);
                }
                self.schedule(TICK_MS, Event::Tick(n));
            }
            Event::Deliver { from, to, frame } => {
                let n = (to - 1) as usize;
                self.input(n, Input::Peer { from, frame });
            }
            Event::SyncDone(n, generation, sync) => {
                if self.nodes[n].generation == generation {
                    let now = self.now;
                    self.guarded(n, |node| node.sync_done(sync, now));
                }
            }
            Event::SnapshotDone(n, generation, snapshot) => {
                if self.nodes[n].generation == generation {
                    self.input(n, Input::SnapshotWritten(Ok(snapshot)));
                }
            }
            Event::ToMember(n, input) => {
                if !self.nodes[n].is_up() {
                    return;
                }
                match &input {
                    SessionIn::Open { conn, .. } => {
                        self.conns[n].insert(*conn);
                    }
                    SessionIn::Gone { conn } => {
                        self.conns[n].remove(conn);
                    }
                    _ => {}
                }
                self.input(n, Input::Session(input));
            }
            Event::ToClient(conn, frame) => {
                let c = client_of(conn);
                if let ServerFrame::Response { result: Ok(answer), .. } = &frame {
                    self.note_ack(c, answer);
                }
                if let ServerFrame::Welcome(w) = &frame
                    && let Some(&ended) = self.ended.get(&w.session)
                    && ended.0 <= w.zxid.0
                {
                    self.report.violations.push(format!(
                        "client {c}: session {} welcomed at zxid {} though it ended at {ended} (resurrected)",
                        w.session, w.zxid
                    ));
                }
                let now = self.now;
                let sends = self.clients[c].on_frame(conn, frame, now, &mut self.history);
                self.client_sends(sends);
                let think = self.rng.below(20);
                self.schedule(think, Event::ClientWake(c));
            }
            Event::Closed(conn) => {
                let c = client_of(conn);
                let (members, now) = (self.nodes.len(), self.now);
                let sends =
                    self.clients[c].on_closed(conn, members, now, &mut self.rng, &mut self.history);
                self.client_sends(sends);
            }
            Event::ClientTick(c) => {
                let (members, now, stopped) = (self.nodes.len(), self.now, self.clients_stopped);
                let sends =
                    self.clients[c].tick(members, now, &mut self.rng, &mut self.history, stopped);
                self.client_sends(sends);
                self.schedule(PING_EVERY_MS, Event::ClientTick(c));
                self.schedule(0, Event::ClientWake(c));
            }
            Event::ClientWake(c) => {
                let (members, now, stopped) = (self.nodes.len(), self.now, self.clients_stopped);
                let sends =
                    self.clients[c].wake(members, now, &mut self.rng, &mut self.history, stopped);
                self.client_sends(sends);
            }
            Event::Fault => {
                if self.healed_at.is_none() {
                    self.inject_fault();
                    let next = self.rng.between(50, 600);
                    self.schedule(next, Event::Fault);
                }
            }
            Event::CrashLeader(x, term) => {
                let leads = self.nodes[x]
                    .raft()
                    .is_some_and(|r| r.role() == Role::Leader && r.term() == term);
                if leads && self.healed_at.is_none() {
                    self.crash(x);
                    self.trace(|| format!("crash new leader n{}", x + 1));
                }
            }
            Event::Resume(n) => {
                if self.paused_until[n] <= self.now {
                    self.trace(|| format!("n{} resumes", n + 1));
                    for event in std::mem::take(&mut self.held[n]) {
                        self.dispatch(event);
                    }
                }
            }
            Event::Heal => self.heal(),
            Event::StopClients => self.clients_stopped = true,
        }
    }

    /// Counts a write the client was told succeeded, by the zxid its Stat
    /// names.
    fn note_ack(&mut self, c: usize, answer: &warren_client::wire::Answer) {
        let warren_client::wire::Answer::Write(Ok(result)) = answer else { return };
        let zxid = match result {
            OpResult::Create { stat, .. } | OpResult::SetData { stat } => stat.mzxid.0,
            _ => return,
        };
        self.acked.push((LogIndex(zxid), c));
        self.report.writes_acked += 1;
        if self.healed_at.is_some() {
            self.acked_after_heal += 1;
        }
    }

    fn client_sends(&mut self, sends: Vec<Send>) {
        for Send { member, input } in sends {
            self.trace(|| format!("client → n{}: {input:?}", member + 1));
            self.schedule(CLIENT_LATENCY_MS, Event::ToMember(member, input));
        }
    }

    fn input(&mut self, n: usize, input: Input) {
        let now = self.now;
        self.guarded(n, |node| node.input(input, now));
    }

    /// Runs a member's handler; a broken invariant (a panic) or an engine
    /// error stops that member, as it would stop a real node, and is
    /// reported.
    fn guarded(&mut self, n: usize, run: impl FnOnce(&mut SimNode) -> Result<Vec<Effect>, String>) {
        let node = &mut self.nodes[n];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(node)));
        let failure = match result {
            Ok(Ok(effects)) => {
                self.effects(n, effects);
                return;
            }
            Ok(Err(error)) => error,
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        self.report.violations.push(format!("n{} stopped: {failure}", n + 1));
        self.nodes[n].crash();
        self.stopped = true;
    }

    fn effects(&mut self, n: usize, effects: Vec<Effect>) {
        let from = self.ids[n];
        for effect in effects {
            match effect {
                Effect::Peer { to, frame } => {
                    // A QUIC stream never delivers a frame twice: only
                    // consensus messages are duplicated, to test the core.
                    let once = !matches!(frame, PeerFrame::Raft(_));
                    let mut deliveries = self.network.deliveries(from, NodeId(to), &mut self.rng);
                    if once {
                        deliveries.truncate(1);
                    }
                    for delay in deliveries {
                        let frame = frame.clone();
                        self.schedule(delay, Event::Deliver { from: from.0, to, frame });
                    }
                }
                Effect::Session { conn, frame } => {
                    self.trace(|| format!("n{} → client {}: {frame:?}", n + 1, client_of(conn)));
                    self.schedule(CLIENT_LATENCY_MS, Event::ToClient(conn, frame));
                }
                Effect::Close { conn } => {
                    self.conns[n].remove(&conn);
                }
                Effect::Sync(sync) => {
                    let latency = self.disk_latency(n);
                    let generation = self.nodes[n].generation;
                    self.schedule(latency, Event::SyncDone(n, generation, sync));
                }
                Effect::Snapshot(snapshot) => {
                    let latency = self.disk_latency(n);
                    let generation = self.nodes[n].generation;
                    self.schedule(latency, Event::SnapshotDone(n, generation, snapshot));
                }
            }
        }
        if self.nodes[n].commits_ahead_of_disk() {
            self.commits_ahead += 1;
        }
        self.check_leader(n);
        self.check_commit(n);
    }

    fn disk_latency(&mut self, n: usize) -> u64 {
        if self.slow_disk[n] { self.rng.between(20, 120) } else { self.rng.between(1, 3) }
    }

    /// Records every entry the moment a member's commit index covers it
    /// (not only when applied): a leader that commits wrongly and dies at
    /// once is caught too.
    fn check_commit(&mut self, n: usize) {
        let Some(raft) = self.nodes[n].raft() else { return };
        let commit = raft.commit_index();
        let from = self.commit_seen[n].max(raft.first_index().prev()).next();
        let mut seen = Vec::new();
        let mut index = from;
        while index <= commit {
            if let Some(entry) = raft.entry(index) {
                seen.push(entry.clone());
            }
            index = index.next();
        }
        self.commit_seen[n] = commit;
        for entry in seen {
            self.check_committed(n, entry);
        }
    }

    fn check_committed(&mut self, n: usize, entry: LogEntry) {
        let (index, term, payload) = (entry.index, entry.term, payload_hash(&entry));
        match self.committed.get(&index) {
            Some(&(t, p)) if (t, p) != (term, payload) => {
                self.report.violations.push(format!(
                    "committed entry {index} changed: term {t} then term {term} on n{}",
                    n + 1
                ));
            }
            Some(_) => {}
            None => {
                self.committed.insert(index, (term, payload));
                if let Ok(e) = state_entry(&entry) {
                    let ended = match e.command {
                        crate::Command::ExpireSessions { sessions } => sessions,
                        crate::Command::CloseSession { session } => vec![session],
                        _ => Vec::new(),
                    };
                    for session in ended {
                        self.ended.entry(session).or_insert(index);
                    }
                }
                self.entries.insert(index, entry);
            }
        }
    }

    // ---- Faults.

    fn crash(&mut self, x: usize) {
        self.nodes[x].crash();
        self.report.crashes += 1;
        self.held[x].clear();
        self.paused_until[x] = 0;
    }

    fn inject_fault(&mut self) {
        self.report.faults += 1;
        let n = self.nodes.len();
        match self.rng.below(17) {
            0 | 1 => {
                // Isolate one member from the others (its clients still
                // reach it: it must send them away).
                let x = self.ids[self.rng.below(n as u64) as usize];
                let rest: Vec<NodeId> = self.ids.iter().copied().filter(|&i| i != x).collect();
                self.network.heal();
                self.network.split(&[x], &rest);
                self.trace(|| format!("partition: {x} isolated"));
            }
            2 => {
                // Split into a minority and a majority.
                let mut ids = self.ids.clone();
                self.shuffle(&mut ids);
                let (a, b) = ids.split_at(n / 2);
                self.network.heal();
                self.network.split(a, b);
                self.trace(|| format!("partition: {a:?} from {b:?}"));
            }
            3 => {
                // A bridge: two sides that only one member connects.
                let mut ids = self.ids.clone();
                self.shuffle(&mut ids);
                let bridge = ids[0];
                let (a, b) = ids[1..].split_at((n - 1) / 2);
                self.network.heal();
                self.network.split(a, b);
                self.trace(|| format!("partition: {a:?} from {b:?}, bridged by {bridge}"));
            }
            4 => {
                self.network.heal();
                self.trace(|| "partition healed".into());
            }
            5 | 6 => {
                // Crash a member, preferring one with a sync in flight
                // (whose unsynced writes are then lost), or restart one.
                let syncing: Vec<usize> = (0..n).filter(|&x| self.nodes[x].is_syncing()).collect();
                let x = if !syncing.is_empty() && self.rng.chance(0.7) {
                    *self.rng.pick(&syncing)
                } else {
                    self.rng.below(n as u64) as usize
                };
                if self.nodes[x].is_up() {
                    self.crash(x);
                    self.trace(|| format!("crash n{}", x + 1));
                } else {
                    self.restart(x);
                }
            }
            7 => {
                let x = self.rng.below(n as u64) as usize;
                self.slow_disk[x] = !self.slow_disk[x];
                let slow = self.slow_disk[x];
                self.trace(|| {
                    format!("disk of n{} {}", x + 1, if slow { "slow" } else { "normal" })
                });
            }
            8 => {
                // Bring back whoever is down.
                for x in 0..n {
                    if !self.nodes[x].is_up() {
                        self.restart(x);
                    }
                }
            }
            9 => {
                // Power loss: every member at once; they come back one by
                // one with later faults.
                for x in 0..n {
                    if self.nodes[x].is_up() {
                        self.crash(x);
                    }
                }
                self.trace(|| "power loss: every member crashed".into());
            }
            10 => {
                // A rack loses power: the leader and every member with a
                // sync in flight.
                for x in 0..n {
                    let leads = self.nodes[x].raft().is_some_and(|r| r.role() == Role::Leader);
                    if leads || self.nodes[x].is_syncing() {
                        self.crash(x);
                        self.trace(|| format!("crash n{} (leader or syncing)", x + 1));
                    }
                }
            }
            11 | 12 => {
                // A member stops (SIGSTOP) for a while, then goes on.
                let x = self.rng.below(n as u64) as usize;
                if self.nodes[x].is_up() && self.paused_until[x] <= self.now {
                    let pause = self.rng.between(200, 1_500);
                    self.paused_until[x] = self.now + pause;
                    self.schedule(pause, Event::Resume(x));
                    self.trace(|| format!("n{} paused for {pause} ms", x + 1));
                }
            }
            13 => {
                // A member's wall clock jumps by minutes, either way.
                let x = self.rng.below(n as u64) as usize;
                let jump = self.rng.between(60_000, 600_000) as i64;
                let jump = if self.rng.chance(0.5) { jump } else { -jump };
                self.nodes[x].wall_offset_ms += jump;
                self.trace(|| format!("n{}'s wall clock jumps {jump} ms", x + 1));
            }
            _ => {
                self.network.faults = LinkFaults {
                    loss: self.rng.below(20) as f64 / 100.0,
                    duplicate: self.rng.below(5) as f64 / 100.0,
                    jitter_ms: self.rng.below(30),
                };
                let f = self.network.faults.clone();
                self.trace(|| format!("links: {:?}", f));
            }
        }
    }

    fn shuffle(&mut self, ids: &mut [NodeId]) {
        for i in (1..ids.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            ids.swap(i, j);
        }
    }

    /// Restarts a member: the connections its last process had are reset
    /// (QUIC's stateless reset), so their clients move at once.
    fn restart(&mut self, x: usize) {
        let now = self.now;
        self.nodes[x].restart(now);
        self.commit_seen[x] = LogIndex(0);
        for conn in std::mem::take(&mut self.conns[x]) {
            self.schedule(CLIENT_LATENCY_MS, Event::Closed(conn));
        }
        self.trace(|| format!("restart n{}", x + 1));
    }

    fn heal(&mut self) {
        self.healed_at = Some(self.now);
        self.network.heal();
        self.network.faults = LinkFaults::default();
        self.slow_disk.iter_mut().for_each(|s| *s = false);
        for x in 0..self.nodes.len() {
            if !self.nodes[x].is_up() {
                self.restart(x);
            }
            if self.paused_until[x] > self.now {
                self.paused_until[x] = self.now;
                self.schedule(0, Event::Resume(x));
            }
        }
        self.trace(|| "healed".into());
        for c in 0..self.clients.len() {
            let status = self.clients[c].status();
            self.trace(|| status);
        }
    }

    // ---- Checkers.

    fn check_leader(&mut self, n: usize) {
        let Some(raft) = self.nodes[n].raft() else { return };
        if raft.role() != Role::Leader {
            return;
        }
        let (term, id) = (raft.term(), raft.id());
        self.report.max_term = self.report.max_term.max(term.0);
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                self.report
                    .violations
                    .push(format!("two leaders in term {term}: {other} and {id}"));
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, id);
                self.report.elections += 1;
                self.trace(|| format!("{id} leads term {term}"));
                // Leaders that fail right after winning leave the most
                // half-replicated entries behind.
                if self.config.faults && self.healed_at.is_none() && self.rng.chance(0.3) {
                    let delay = self.rng.between(1, 12);
                    self.schedule(delay, Event::CrashLeader(n, term));
                }
            }
        }
    }

    fn check_log_matching(&mut self) {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&x| self.nodes[x].is_up()).collect();
        for (i, &a) in live.iter().enumerate() {
            for &b in &live[i + 1..] {
                let (Some(ra), Some(rb)) = (self.nodes[a].raft(), self.nodes[b].raft()) else {
                    continue;
                };
                let lo = ra.first_index().max(rb.first_index());
                let hi = ra.last_index().min(rb.last_index());
                // From the highest index where the terms agree, every entry
                // below must be identical.
                let mut index = hi;
                while index >= lo && index.0 > 0 && ra.term_at(index) != rb.term_at(index) {
                    index = index.prev();
                }
                while index >= lo && index.0 > 0 {
                    if ra.entry(index) != rb.entry(index) {
                        if self.report.violations.iter().any(|v| v.starts_with("log matching")) {
                            return;
                        }
                        self.report.violations.push(format!(
                            "log matching broken at {index} between n{} and n{}",
                            a + 1,
                            b + 1
                        ));
                        return;
                    }
                    index = index.prev();
                }
            }
        }
    }

    fn converged(&self) -> bool {
        if self.nodes.iter().any(|x| !x.is_up()) {
            return false;
        }
        if self.clients.iter().any(|c| !c.is_idle()) {
            return false;
        }
        let Some(first) = self.nodes[0].state() else { return false };
        let applied = first.last_applied();
        let leader_commit = self
            .nodes
            .iter()
            .filter_map(SimNode::raft)
            .find(|r| r.role() == Role::Leader)
            .map(|r| r.commit_index());
        leader_commit.is_some_and(|c| c.0 == applied.0)
            && self.nodes.iter().all(|x| {
                x.state()
                    .is_some_and(|s| s.last_applied() == applied && s.digest() == first.digest())
            })
    }

    /// Replays the committed log on a fresh state machine: the triggers
    /// every change made, in order, and the final state.
    fn reference(&self) -> Result<(Vec<Change>, StateMachine), String> {
        let mut sm = StateMachine::new(Limits::default());
        let mut triggers = Vec::new();
        for (expected, (index, entry)) in (1..).zip(&self.entries) {
            if index.0 != expected {
                return Err(format!("the committed log seen has a gap at {expected}"));
            }
            let entry = state_entry(entry).map_err(|e| e.to_string())?;
            for t in sm.apply(entry).triggers {
                triggers.push((t.zxid.0, t.event, t.path.to_string()));
            }
        }
        Ok((triggers, sm))
    }

    /// Every event a lasting watch caught against the log: each change in
    /// its range once, in order, except where the client was told.
    fn check_lasting(&mut self, triggers: &[Change], record: &LastingRecord) {
        let in_gap = |zxid: u64| record.gaps.iter().any(|&(a, b)| zxid > a && zxid <= b);
        let expected: Vec<(u64, EventType, &str)> = triggers
            .iter()
            .filter(|(zxid, event, path)| {
                *zxid > record.from
                    && *zxid <= record.to
                    && !in_gap(*zxid)
                    && lasting_catches(record, *zxid, *event, path)
            })
            .map(|(zxid, event, path)| (*zxid, *event, path.as_str()))
            .collect();
        let got: Vec<(u64, EventType, &str)> = record
            .events
            .iter()
            .filter(|e| !in_gap(e.zxid.0))
            .map(|e| (e.zxid.0, e.event, e.path.as_str()))
            .collect();
        if expected != got {
            let at = expected.iter().zip(&got).take_while(|(a, b)| a == b).count();
            self.report.violations.push(format!(
                "client {} session {}: lasting watches over ({}, {}] saw {} events, the log made {}; first difference at #{at}: expected {:?}, got {:?}",
                record.client,
                record.session,
                record.from,
                record.to,
                got.len(),
                expected.len(),
                expected.get(at),
                got.get(at),
            ));
        }
    }

    /// No ephemeral outlives its session.
    fn check_ephemerals(&mut self, sm: &StateMachine) {
        let Ok(children) = sm.get_children("/", &[]) else { return };
        for name in children.names {
            let path = format!("/{name}");
            let Some(stat) = sm.exists(&path) else { continue };
            let owner = stat.ephemeral_owner;
            if owner != 0
                && owner >> 56 == 0
                && sm.session(warren_client::SessionId(owner)).is_none()
            {
                self.report
                    .violations
                    .push(format!("ephemeral {path} outlived its session {owner:#x}"));
            }
        }
    }

    fn finish(mut self) -> SimReport {
        self.check_log_matching();
        self.report.committed = self.committed.len() as u64;
        for node in &self.nodes {
            let c = node.counters();
            self.report.snapshots_installed += c.snapshots_installed;
            self.report.messages_held += c.messages_held;
            self.report.forwarded += c.forwarded;
            self.report.shed += c.shed;
        }
        self.report.commits_ahead_of_leader_disk = self.commits_ahead;
        let mut records = Vec::new();
        for client in &mut self.clients {
            client.finish();
            self.report.violations.append(&mut client.violations);
            self.report.expired += client.expiries;
            self.report.events += client.events;
            self.report.moves += client.moves;
            records.append(&mut client.records);
        }
        let converged = self.stopped || self.converged();
        if !converged {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|x| match (x.raft(), x.state()) {
                    (Some(r), Some(s)) => format!(
                        "n{}: {:?} term {} commit {} applied {} digest {:#x}",
                        x.id.0,
                        r.role(),
                        r.term(),
                        r.commit_index(),
                        s.last_applied(),
                        s.digest()
                    ),
                    _ => format!("n{}: down", x.id.0),
                })
                .collect();
            self.report.violations.push(format!(
                "did not converge within {} ms of healing: {}",
                self.config.healed_ms + self.config.converge_ms,
                states.join("; ")
            ));
        }
        for &(index, c) in &self.acked {
            if !self.committed.contains_key(&index) {
                self.report
                    .violations
                    .push(format!("write acknowledged to client {c} at {index} never committed"));
            }
        }
        if self.acked_after_heal == 0 && !self.stopped {
            self.report.violations.push(
                "no write was acknowledged after healing: the cluster made no progress".into(),
            );
        }
        if !self.stopped {
            match self.reference() {
                Ok((triggers, sm)) => {
                    for record in &records {
                        self.check_lasting(&triggers, record);
                    }
                    if converged {
                        self.check_ephemerals(&sm);
                    }
                }
                Err(why) => self.report.violations.push(format!("no reference replay: {why}")),
            }
        }
        // Operations that had no effect fit anywhere in their interval:
        // leaving them out changes nothing but the search's cost.
        let history: Vec<Operation<TreeModel>> = self
            .history
            .iter()
            .filter(|o| !matches!(&o.op, TreeOp::Multi(ops) if ops.is_empty()))
            .cloned()
            .collect();
        let check = |steps| {
            linearizability::check_components(TreeModel::new(), &history, steps, |op: &TreeOp| {
                op.paths().into_iter().map(str::to_owned).collect()
            })
        };
        let mut outcome = check(self.config.linearizability_steps);
        if outcome.is_unknown() {
            // Rare: a history with many indeterminate writes. A larger
            // budget decides most of them.
            outcome = check(self.config.linearizability_steps * 5);
        }
        self.report.linearizability = if outcome.is_linearizable() {
            format!("{} ops over {KEYS} keys linearizable", history.len())
        } else {
            outcome.to_string()
        };
        self.report.linearizability_undecided = outcome.is_unknown();
        if outcome.is_not_linearizable() {
            self.report.violations.push(format!("history not linearizable: {outcome}"));
        }
        let ok = self.history.iter().filter(|o| o.complete.is_some()).count() as u64;
        self.report.ops_ok = ok;
        self.report.ops_indeterminate = self.history.len() as u64 - ok;
        if !self.report.passed() && !self.config.trace {
            let mut hint = String::new();
            let _ =
                write!(hint, "replay with WARREN_SIM_SEED={} to see its trace", self.config.seed);
            self.report.violations.push(hint);
        }
        self.report
    }
}
