//! Script tests for the consensus core, in the style of etcd raft's
//! datadriven testdata: each file in `tests/consensus/` drives a small
//! in-memory cluster of real [`Raft`] replicas over a perfect, manually
//! driven network and prints a trace of what the protocol did, which is
//! compared with the expected trace recorded in the file.
//!
//! A script is a sequence of stanzas separated by blank lines. A stanza is
//! one or more commands, a `----` line, and the expected output (no blank
//! lines). Lines starting with `#` are comments. When a stanza has several
//! commands, each one's output follows its echo (`> command`). State carries
//! over from stanza to stanza; `add-nodes` starts a fresh cluster.
//!
//! `WARREN_REWRITE=1 cargo test -p warren --test consensus_scripts` writes
//! the actual output into the files, to be reviewed like code.
//!
//! The harness is the model driver: a processed Ready is persisted at once
//! (snapshot, hard state, entries replacing the stored suffix), its
//! `persisted_messages` are then sent, its committed entries are applied,
//! and `advance()` is called right after. A crash loses only what the core
//! held in memory. Every applied entry is checked against what any replica
//! ever applied at that index, and every leader against the other leaders
//! of its term; a violation is printed in the trace. A panic in the core is
//! caught, printed, and crashes that replica.
//!
//! Notation: `3@2` is index 3 of term 2 (`3@2:x` carries the command `x`; a
//! bare `3@2` is a leader's no-op), `1->2 Append ...` a message from replica
//! 1 to 2 (printed as it is delivered, followed, indented, by the changes it
//! caused), `n2: Follower -> Candidate, term 1 -> 2` a change of a replica's
//! role, term, known leader or commit index. Messages lost to a partition
//! or to a crashed replica are marked `[dropped: ...]`, identical ones
//! counted (`x3`).
//!
//! Commands:
//! - `add-nodes N [pre-vote=B] [check-quorum=B] [max-entries=K]
//!   [max-bytes=K] [max-inflight=K] [snapshot-chunk=K] [snapshot-window=K]
//!   [election-tick=K] [heartbeat-tick=K]
//!   [seed=S] [unsafe-commit-by-count=B]`: a fresh cluster of replicas 1..N
//!   (defaults: `Config::new`)
//! - `campaign I`: `campaign_now`
//! - `tick I [COUNT] [live]`, `tick-all [COUNT] [live]`: the clock moves
//!   10 ms per tick; with `live`, every tick is followed by a stabilize whose
//!   messages are not printed (time passes in a working cluster), and state
//!   changes are labelled with their tick
//! - `propose I DATA...`: one proposal per word, printing its index or error
//! - `stabilize [rounds=N]`: process every Ready and deliver every message
//!   until the cluster is quiet (or for at most N rounds)
//! - `process-ready I... [defer=B]`: process one Ready of each, printing
//!   all of it; with `defer=true`, a Ready that `may_defer_sync` is written
//!   aside (lost in a crash) with its `persisted_messages` held back, and
//!   advanced with `advance_deferred`
//! - `sync I`: the deferred sync of I completes (`Raft::synced`) and the
//!   messages held back leave
//! - `deliver-msgs [I] [from=I] [to=J] [type=T] [count=N]` (a bare I is
//!   the recipient; `count`: only the N oldest that match), `drop-msgs`
//!   (same filters), `msgs` (list the network)
//! - `partition I...`: those replicas form a group cut off from the rest
//!   (each call makes a new group); `heal`
//! - `crash I`: drop the core, its deferred writes and the messages on
//!   their way to it; `restart I`:
//!   a new core from what it persisted
//! - `compact I INDEX`: the state machine snapshotted at INDEX (the driver
//!   stores the snapshot and drops the entries it covers)
//! - `read-index I CTX`, `transfer-leadership FROM TO`
//! - `status`, `log I`, `applied I`

use bytes::Bytes;
use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use warren::consensus::{
    Body, Config, EntryKind, HardState, LogEntry, LogIndex, Message, NodeId, Raft, ReadState,
    Restored, Role, Snapshot, Term,
};

// ---- Formatting.

fn fmt_entry(e: &LogEntry) -> String {
    match &e.kind {
        EntryKind::Noop => format!("{}@{}", e.index, e.term),
        EntryKind::Command(data) => {
            format!("{}@{}:{}", e.index, e.term, String::from_utf8_lossy(data))
        }
    }
}

/// A list of entries; long lists are elided in the middle.
fn fmt_entries(entries: &[LogEntry], elide: bool) -> String {
    let all: Vec<String> = entries.iter().map(fmt_entry).collect();
    if !elide || all.len() <= 8 {
        return format!("[{}]", all.join(" "));
    }
    let n = all.len();
    format!("[{} ... {}] ({n} entries)", all[..3].join(" "), all[n - 2..].join(" "))
}

fn fmt_granted(granted: bool) -> &'static str {
    if granted { "granted" } else { "rejected" }
}

fn fmt_msg(m: &Message) -> String {
    let (from, to, term) = (m.from.0, m.to.0, m.term);
    let body = match &m.body {
        Body::PreVote { last_index, last_term } => {
            format!("PreVote term={term} last={last_index}@{last_term}")
        }
        Body::PreVoteResponse { granted } => {
            format!("PreVoteResponse term={term} {}", fmt_granted(*granted))
        }
        Body::Vote { last_index, last_term, transfer } => {
            let transfer = if *transfer { " transfer" } else { "" };
            format!("Vote term={term} last={last_index}@{last_term}{transfer}")
        }
        Body::VoteResponse { granted } => {
            format!("VoteResponse term={term} {}", fmt_granted(*granted))
        }
        Body::Append { prev_index, prev_term, entries, commit } => format!(
            "Append term={term} prev={prev_index}@{prev_term} entries={} commit={commit}",
            fmt_entries(entries, true)
        ),
        Body::AppendResponse { index, reject: None } => {
            format!("AppendResponse term={term} index={index}")
        }
        Body::AppendResponse { index, reject: Some(hint) } => {
            format!("AppendResponse term={term} reject={index} hint={hint}")
        }
        Body::Heartbeat { commit, read } => {
            let read = read.map(|r| format!(" read={r}")).unwrap_or_default();
            format!("Heartbeat term={term} commit={commit}{read}")
        }
        Body::HeartbeatResponse { read } => {
            let read = read.map(|r| format!(" read={r}")).unwrap_or_default();
            format!("HeartbeatResponse term={term}{read}")
        }
        Body::InstallSnapshot { meta, total, offset, chunk } => format!(
            "InstallSnapshot term={term} snapshot={}@{} bytes={offset}..{} of {total} chunk={}",
            meta.index,
            meta.term,
            offset + chunk.len() as u64,
            String::from_utf8_lossy(chunk)
        ),
        Body::SnapshotAck { index, received } => {
            format!("SnapshotAck term={term} snapshot={index} received={received}")
        }
        Body::ReadIndex { ctx } => format!("ReadIndex term={term} ctx={ctx}"),
        Body::ReadIndexResponse { ctx, index } => {
            let index = index.map_or("none".to_string(), |i| i.to_string());
            format!("ReadIndexResponse term={term} ctx={ctx} index={index}")
        }
        Body::TimeoutNow => format!("TimeoutNow term={term}"),
    };
    format!("{from}->{to} {body}")
}

fn body_type(body: &Body) -> &'static str {
    match body {
        Body::PreVote { .. } => "PreVote",
        Body::PreVoteResponse { .. } => "PreVoteResponse",
        Body::Vote { .. } => "Vote",
        Body::VoteResponse { .. } => "VoteResponse",
        Body::Append { .. } => "Append",
        Body::AppendResponse { .. } => "AppendResponse",
        Body::Heartbeat { .. } => "Heartbeat",
        Body::HeartbeatResponse { .. } => "HeartbeatResponse",
        Body::InstallSnapshot { .. } => "InstallSnapshot",
        Body::SnapshotAck { .. } => "SnapshotAck",
        Body::ReadIndex { .. } => "ReadIndex",
        Body::ReadIndexResponse { .. } => "ReadIndexResponse",
        Body::TimeoutNow => "TimeoutNow",
    }
}

fn fmt_read_state(rs: &ReadState) -> String {
    let index = rs.index.map_or("none".to_string(), |i| i.to_string());
    format!("read-state ctx={} index={index}", rs.ctx)
}

fn fmt_opt_node(id: Option<NodeId>) -> String {
    id.map_or("none".to_string(), |n| n.0.to_string())
}

// ---- Panics.

thread_local! {
    /// Set while the harness calls into the core: a panic there is expected
    /// to be caught and printed in the trace, so the hook stays quiet.
    static QUIET_PANIC: Cell<bool> = const { Cell::new(false) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET_PANIC.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Runs `f`, returning the panic message if it panicked.
fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    QUIET_PANIC.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET_PANIC.with(|q| q.set(false));
    result.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string panic)".to_string()
        }
    })
}

// ---- The cluster.

/// What a replica has on disk.
#[derive(Clone, Default)]
struct Disk {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// The entries after the snapshot.
    entries: Vec<LogEntry>,
}

impl Disk {
    /// One Ready's writes: the hard state, and entries replacing every
    /// stored entry from the first one's index on.
    fn write(&mut self, hard_state: Option<HardState>, entries: Vec<LogEntry>) {
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        if let Some(first) = entries.first().map(|e| e.index) {
            self.entries.retain(|e| e.index < first);
            self.entries.extend(entries);
        }
    }
}

struct Node {
    config: Config,
    /// `None` while crashed.
    raft: Option<Raft>,
    disk: Disk,
    /// The state machine: the snapshot it started from, then the entries
    /// applied since.
    applied_base: LogIndex,
    applied: Vec<LogEntry>,
    /// A leader's deferred writes (`process-ready defer`), not yet synced:
    /// lost in a crash.
    /// Deferred writes, each with the messages that wait for its sync.
    unsynced: Vec<(Option<HardState>, Vec<LogEntry>, Vec<Message>)>,
}

/// What the trace reports when it changes.
#[derive(Clone, PartialEq)]
struct Summary {
    role: Role,
    term: Term,
    leader: Option<NodeId>,
    commit: LogIndex,
}

impl Summary {
    fn of(raft: &Raft) -> Summary {
        Summary {
            role: raft.role(),
            term: raft.term(),
            leader: raft.leader(),
            commit: raft.commit_index(),
        }
    }

    fn diff(&self, after: &Summary) -> Vec<String> {
        let mut out = Vec::new();
        if self.role != after.role {
            out.push(format!("{:?} -> {:?}", self.role, after.role));
        }
        if self.term != after.term {
            out.push(format!("term {} -> {}", self.term, after.term));
        }
        if self.leader != after.leader {
            out.push(format!(
                "leader {} -> {}",
                fmt_opt_node(self.leader),
                fmt_opt_node(after.leader)
            ));
        }
        if self.commit != after.commit {
            out.push(format!("commit {} -> {}", self.commit, after.commit));
        }
        out
    }
}

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    /// Messages sent and not yet delivered or dropped, oldest first.
    network: VecDeque<Message>,
    /// Each replica's partition group; messages cross no group boundary.
    groups: BTreeMap<u64, u64>,
    next_group: u64,
    now_ms: i64,
    /// Everything any replica ever applied: index → (entry, who first).
    applied: BTreeMap<LogIndex, (LogEntry, u64)>,
    /// The leader of each term seen.
    leaders: BTreeMap<Term, u64>,
    /// Appended to the state changes printed, e.g. which of many ticks.
    label: String,
    /// Messages are delivered without being printed (`tick ... live`).
    quiet: bool,
    /// The trace of the current stanza.
    out: Vec<String>,
}

/// Message filters for `deliver-msgs` and `drop-msgs`.
#[derive(Default)]
struct Filter {
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<String>,
    /// At most this many (the oldest first).
    count: Option<usize>,
}

impl Filter {
    fn matches(&self, m: &Message) -> bool {
        self.from.is_none_or(|f| m.from.0 == f)
            && self.to.is_none_or(|t| m.to.0 == t)
            && self.kind.as_deref().is_none_or(|k| body_type(&m.body) == k)
    }
}

impl Cluster {
    /// Takes the messages `filter` selects off the network, oldest first.
    fn take_msgs(&mut self, filter: &Filter) -> Vec<Message> {
        let mut left = filter.count.unwrap_or(usize::MAX);
        let (taken, kept): (Vec<Message>, Vec<Message>) = self.network.drain(..).partition(|m| {
            let take = left > 0 && filter.matches(m);
            left -= usize::from(take);
            take
        });
        self.network = kept.into();
        taken
    }

    fn new() -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            network: VecDeque::new(),
            groups: BTreeMap::new(),
            next_group: 1,
            now_ms: 1000,
            applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            label: String::new(),
            quiet: false,
            out: Vec::new(),
        }
    }

    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        self.out.push(format!("{:indent$}{}", "", text.as_ref()));
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no replica {id}"))
    }

    /// Runs `f` on replica `id`'s core, printing what changed (or the
    /// panic, which crashes the replica). `None` if it is down or panicked.
    fn with_raft<R>(
        &mut self,
        id: u64,
        indent: usize,
        f: impl FnOnce(&mut Raft) -> R,
    ) -> Option<R> {
        let node = self.node(id);
        let raft = node.raft.as_mut()?;
        let before = Summary::of(raft);
        match catch(|| f(raft)) {
            Ok(result) => {
                let after = Summary::of(raft);
                let changes = before.diff(&after);
                if !changes.is_empty() {
                    let label = self.label.clone();
                    self.line(indent, format!("n{id}: {}{label}", changes.join(", ")));
                }
                if after.role == Role::Leader {
                    match self.leaders.get(&after.term) {
                        Some(&other) if other != id => self.line(
                            indent,
                            format!(
                                "ELECTION SAFETY VIOLATION: n{other} and n{id} both lead term {}",
                                after.term
                            ),
                        ),
                        _ => {
                            self.leaders.insert(after.term, id);
                        }
                    }
                }
                Some(result)
            }
            Err(message) => {
                node.raft = None;
                self.line(indent, format!("n{id}: PANIC: {message}"));
                self.line(indent, format!("n{id}: crashed"));
                None
            }
        }
    }

    fn add_nodes(&mut self, n: u64, args: &Args) {
        *self = Cluster::new();
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let seed = args.u64("seed", 0);
        for id in 1..=n {
            let mut config = Config::new(NodeId(id), voters.clone(), seed.wrapping_add(id));
            config.pre_vote = args.bool("pre-vote", config.pre_vote);
            config.check_quorum = args.bool("check-quorum", config.check_quorum);
            config.max_entries_per_append =
                args.usize("max-entries", config.max_entries_per_append);
            config.max_bytes_per_append = args.usize("max-bytes", config.max_bytes_per_append);
            config.max_inflight = args.usize("max-inflight", config.max_inflight);
            config.snapshot_chunk_bytes = args.usize("snapshot-chunk", config.snapshot_chunk_bytes);
            config.snapshot_chunks_in_flight =
                args.usize("snapshot-window", config.snapshot_chunks_in_flight);
            config.election_tick = args.u64("election-tick", config.election_tick.into()) as u32;
            config.heartbeat_tick = args.u64("heartbeat-tick", config.heartbeat_tick.into()) as u32;
            config.unsafe_commit_by_count =
                args.bool("unsafe-commit-by-count", config.unsafe_commit_by_count);
            let raft = Raft::new(config.clone(), Restored::default());
            let node = Node {
                config,
                raft: Some(raft),
                disk: Disk::default(),
                applied_base: LogIndex(0),
                applied: Vec::new(),
                unsynced: Vec::new(),
            };
            self.nodes.insert(id, node);
            self.groups.insert(id, 0);
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn has_ready(&self, id: u64) -> bool {
        self.nodes[&id].raft.as_ref().is_some_and(Raft::has_ready)
    }

    /// Processes one Ready of `id` as the model driver does. `verbose`
    /// prints all of it; otherwise only its effects on the replica.
    fn process_ready(&mut self, id: u64, verbose: bool, defer: bool) {
        let Some(ready) = self.with_raft(id, 0, Raft::ready) else { return };
        let defer = defer && ready.must_sync && ready.may_defer_sync;
        if verbose {
            self.line(0, format!("n{id} ready:"));
            if let Some(hs) = &ready.hard_state {
                self.line(
                    2,
                    format!(
                        "persist hard-state term={} vote={} commit={}",
                        hs.term,
                        fmt_opt_node(hs.vote),
                        hs.commit
                    ),
                );
            }
            if let Some(s) = &ready.snapshot {
                self.line(2, format!("persist snapshot {}@{}", s.meta.index, s.meta.term));
            }
            if !ready.entries.is_empty() {
                self.line(2, format!("persist entries {}", fmt_entries(&ready.entries, false)));
            }
            if ready.hard_state.is_some() || ready.snapshot.is_some() || !ready.entries.is_empty() {
                let sync = match (defer, ready.must_sync) {
                    (true, _) => "sync deferred",
                    (false, true) => "sync",
                    (false, false) => "no sync",
                };
                self.line(2, sync);
            }
            for m in &ready.messages {
                self.line(2, format!("send {}", fmt_msg(m)));
            }
            let after =
                if defer { "send after the deferred sync" } else { "send after persisting" };
            for m in &ready.persisted_messages {
                self.line(2, format!("{after} {}", fmt_msg(m)));
            }
            if !ready.committed.is_empty() {
                self.line(2, format!("apply {}", fmt_entries(&ready.committed, false)));
            }
            for rs in &ready.read_states {
                self.line(2, fmt_read_state(rs));
            }
        }
        self.network.extend(ready.messages);
        // Persist.
        let node = self.node(id);
        if let Some(snapshot) = &ready.snapshot {
            node.disk.snapshot = Some(snapshot.clone());
            node.disk.entries.clear();
        }
        if defer {
            node.unsynced.push((ready.hard_state, ready.entries, ready.persisted_messages));
        } else {
            let mut held = Vec::new();
            if ready.must_sync {
                // A sync makes the deferred writes durable too.
                for (hs, entries, messages) in std::mem::take(&mut node.unsynced) {
                    node.disk.write(hs, entries);
                    held.extend(messages);
                }
            }
            node.disk.write(ready.hard_state, ready.entries);
            self.network.extend(held);
            self.network.extend(ready.persisted_messages);
        }
        // Apply.
        if let Some(snapshot) = ready.snapshot {
            let meta = &snapshot.meta;
            let node = self.node(id);
            node.applied_base = meta.index;
            node.applied.clear();
            let text = format!(
                "n{id}: restore snapshot {}@{} data={}{}",
                meta.index,
                meta.term,
                String::from_utf8_lossy(&snapshot.data),
                self.label
            );
            self.line(0, text);
            if let Some((other, who)) = self.applied.get(&meta.index)
                && other.term != meta.term
            {
                let text = format!(
                    "SAFETY VIOLATION: n{id} restored a snapshot at {}@{} but n{who} applied {}",
                    meta.index,
                    meta.term,
                    fmt_entry(other)
                );
                self.line(0, text);
            }
        }
        for entry in ready.committed {
            match self.applied.get(&entry.index) {
                Some((other, who)) if other != &entry => {
                    let text = format!(
                        "SAFETY VIOLATION: n{id} applied {} but n{who} applied {}",
                        fmt_entry(&entry),
                        fmt_entry(other)
                    );
                    self.line(0, text);
                }
                Some(_) => {}
                None => {
                    self.applied.insert(entry.index, (entry.clone(), id));
                }
            }
            self.node(id).applied.push(entry);
        }
        if !verbose {
            for rs in &ready.read_states {
                let text = format!("n{id}: {}{}", fmt_read_state(rs), self.label);
                self.line(0, text);
            }
        }
        if defer {
            self.with_raft(id, 0, Raft::advance_deferred);
        } else {
            self.with_raft(id, 0, Raft::advance);
        }
    }

    /// A leader's deferred sync completes: its deferred writes are durable.
    fn sync(&mut self, id: u64) {
        let node = self.node(id);
        let mut last = None;
        let mut held = Vec::new();
        for (hs, entries, messages) in std::mem::take(&mut node.unsynced) {
            last = entries.last().map(|e| (e.index, e.term)).or(last);
            node.disk.write(hs, entries);
            held.extend(messages);
        }
        self.network.extend(held);
        match last {
            Some((index, term)) => {
                self.line(0, format!("n{id}: synced up to {index}@{term}"));
                self.with_raft(id, 2, |raft| raft.synced(index, term));
            }
            None => self.line(0, format!("n{id}: nothing to sync")),
        }
    }

    /// Delivers (or drops, across a partition or to a crashed replica) the
    /// messages matching `filter`, in the order they were sent. Identical
    /// dropped messages are printed once, with their count.
    fn deliver(&mut self, filter: &Filter) {
        let now = self.take_msgs(filter);
        let mut dropped: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for m in now {
            let (from, to) = (m.from.0, m.to.0);
            let why = if self.groups[&from] != self.groups[&to] {
                "partition".to_string()
            } else if self.nodes[&to].raft.is_none() {
                format!("n{to} is down")
            } else {
                String::new()
            };
            if !why.is_empty() && self.quiet {
                continue;
            }
            if !why.is_empty() {
                let text = format!("{} [dropped: {why}]", fmt_msg(&m));
                match dropped.get_mut(&text) {
                    Some((line, count)) => {
                        *count += 1;
                        self.out[*line] = format!("{text} x{count}");
                    }
                    None => {
                        dropped.insert(text.clone(), (self.out.len(), 1));
                        self.line(0, text);
                    }
                }
                continue;
            }
            if self.quiet {
                self.with_raft(to, 0, |raft| raft.step(m));
            } else {
                self.line(0, fmt_msg(&m));
                self.with_raft(to, 2, |raft| raft.step(m));
            }
        }
    }

    /// Processes Readies and delivers messages until nothing is left, or
    /// for at most `rounds` rounds.
    fn stabilize(&mut self, rounds: u64) {
        for _ in 0..rounds {
            let mut busy = false;
            for id in self.ids() {
                if self.has_ready(id) {
                    self.process_ready(id, false, false);
                    busy = true;
                }
            }
            if !self.network.is_empty() {
                self.deliver(&Filter::default());
                busy = true;
            }
            if !busy {
                return;
            }
        }
        self.line(0, format!("stabilize: stopped after {rounds} rounds, still busy"));
    }

    fn tick(&mut self, id: u64) {
        let now = self.now_ms;
        self.with_raft(id, 0, |raft| raft.tick(now));
    }

    /// `count` ticks of `ids`, each followed, if `live`, by a quiet
    /// stabilize: time passes in a working cluster, and only state changes
    /// are printed, labelled with their tick.
    fn ticks(&mut self, count: u64, ids: &[u64], live: bool) {
        for k in 1..=count {
            if count > 1 {
                self.label = format!(" (tick {k})");
            }
            self.now_ms += 10;
            for &id in ids {
                self.tick(id);
            }
            if live {
                self.quiet = true;
                self.stabilize(1000);
                self.quiet = false;
            }
        }
        self.label.clear();
    }

    fn crash(&mut self, id: u64) {
        self.node(id).raft = None;
        self.node(id).unsynced.clear();
        let before = self.network.len();
        self.network.retain(|m| m.to.0 != id);
        let lost = before - self.network.len();
        let lost = if lost > 0 { format!(" ({lost} messages to it lost)") } else { String::new() };
        self.line(0, format!("n{id}: crashed{lost}"));
    }

    fn restart(&mut self, id: u64) {
        let node = self.node(id);
        assert!(node.raft.is_none(), "restart n{id}: it is up");
        let restored = Restored {
            hard_state: node.disk.hard_state.clone(),
            snapshot: node.disk.snapshot.clone(),
            entries: node.disk.entries.clone(),
        };
        let base = node.disk.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        node.applied_base = base;
        node.applied.clear();
        let config = node.config.clone();
        match catch(|| Raft::new(config, restored)) {
            Ok(raft) => {
                node.raft = Some(raft);
                self.line(0, format!("n{id}: restarted"));
                self.status_of(id, 2);
            }
            Err(message) => self.line(0, format!("n{id}: PANIC on restart: {message}")),
        }
    }

    fn compact(&mut self, id: u64, index: u64) {
        let data = Bytes::from(format!("snap@{index}"));
        let done = self.with_raft(id, 0, |raft| {
            raft.compact(LogIndex(index), data);
            (raft.latest_snapshot().cloned(), raft.first_index())
        });
        let Some((snapshot, first)) = done else { return };
        let node = self.node(id);
        if let Some(snapshot) = &snapshot {
            // The driver stores the snapshot it took and drops what it covers.
            let covered = snapshot.meta.index;
            node.disk.entries.retain(|e| e.index > covered);
            node.disk.snapshot = Some(snapshot.clone());
        }
        let at =
            snapshot.map_or("none".to_string(), |s| format!("{}@{}", s.meta.index, s.meta.term));
        self.line(0, format!("n{id}: snapshot {at}, log starts at {first}"));
    }

    fn status_of(&mut self, id: u64, indent: usize) {
        let text = match &self.nodes[&id].raft {
            None => format!("n{id}: down"),
            Some(r) => {
                let snap = r.snapshot_meta();
                let snap = if snap.index.0 > 0 {
                    format!(" snapshot={}@{}", snap.index, snap.term)
                } else {
                    String::new()
                };
                format!(
                    "n{id}: {:?} term={} vote={} leader={} commit={} applied={} last={}{snap}",
                    r.role(),
                    r.term(),
                    fmt_opt_node(r.vote()),
                    fmt_opt_node(r.leader()),
                    r.commit_index(),
                    r.applied_index(),
                    r.last_index(),
                )
            }
        };
        self.line(indent, text);
    }

    fn log(&mut self, id: u64) {
        let Some(r) = &self.nodes[&id].raft else {
            return self.line(0, format!("n{id}: down"));
        };
        let snap = r.snapshot_meta();
        let entries: Vec<LogEntry> = (r.first_index().0..=r.last_index().0)
            .filter_map(|i| r.entry(LogIndex(i)).cloned())
            .collect();
        let text = format!(
            "n{id}: snapshot={}@{} entries={} commit={}",
            snap.index,
            snap.term,
            fmt_entries(&entries, false),
            r.commit_index()
        );
        self.line(0, text);
    }

    fn run(&mut self, cmd: &str, args: &Args) {
        match cmd {
            "add-nodes" => self.add_nodes(args.pos_u64(0), args),
            "campaign" => {
                let id = args.pos_u64(0);
                self.with_raft(id, 0, Raft::campaign_now);
            }
            "tick" => {
                let id = args.pos_u64(0);
                let count = args.pos.get(1).map_or(1, |c| parse_u64(c));
                self.ticks(count, &[id], args.flag("live"));
            }
            "tick-all" => {
                let count = args.pos.first().map_or(1, |c| parse_u64(c));
                self.ticks(count, &self.ids(), args.flag("live"));
            }
            "propose" => {
                let id = args.pos_u64(0);
                assert!(args.pos.len() > 1, "propose I DATA...");
                for data in &args.pos[1..] {
                    let payload = Bytes::from(data.clone());
                    let now = self.now_ms;
                    let result = self.with_raft(id, 0, |raft| raft.propose(payload, now));
                    let text = match result {
                        None => format!("n{id}: propose {data}: down"),
                        Some(Ok(index)) => format!("n{id}: propose {data}: index {index}"),
                        Some(Err(e)) => format!("n{id}: propose {data}: refused: {e:?}"),
                    };
                    self.line(0, text);
                }
            }
            "stabilize" => self.stabilize(args.u64("rounds", 1000)),
            "process-ready" => {
                let defer = args.bool("defer", false);
                for i in 0..args.pos.len() {
                    let id = args.pos_u64(i);
                    if self.has_ready(id) {
                        self.process_ready(id, true, defer);
                    } else {
                        self.line(0, format!("n{id}: no ready"));
                    }
                }
            }
            "deliver-msgs" | "drop-msgs" => {
                let mut filter = Filter {
                    from: args.get("from").map(parse_u64),
                    to: args.get("to").map(parse_u64),
                    kind: args.get("type").map(str::to_string),
                    count: args.get("count").map(|c| parse_u64(c) as usize),
                };
                if !args.pos.is_empty() {
                    filter.to = Some(args.pos_u64(0));
                }
                if cmd == "deliver-msgs" {
                    self.deliver(&filter);
                } else {
                    for m in self.take_msgs(&filter) {
                        self.line(0, format!("{} [dropped]", fmt_msg(&m)));
                    }
                }
            }
            "msgs" => {
                let lines: Vec<String> = self.network.iter().map(fmt_msg).collect();
                for l in lines {
                    self.line(0, l);
                }
            }
            "partition" => {
                let group = self.next_group;
                self.next_group += 1;
                for i in 0..args.pos.len() {
                    let id = args.pos_u64(i);
                    self.groups.insert(id, group);
                }
            }
            "heal" => {
                for g in self.groups.values_mut() {
                    *g = 0;
                }
            }
            "crash" => self.crash(args.pos_u64(0)),
            "sync" => self.sync(args.pos_u64(0)),
            "restart" => self.restart(args.pos_u64(0)),
            "compact" => self.compact(args.pos_u64(0), args.pos_u64(1)),
            "read-index" => {
                let (id, ctx) = (args.pos_u64(0), args.pos_u64(1));
                self.with_raft(id, 0, |raft| raft.read_index(ctx));
            }
            "transfer-leadership" => {
                let (from, to) = (args.pos_u64(0), args.pos_u64(1));
                self.with_raft(from, 0, |raft| raft.transfer_leadership(NodeId(to)));
            }
            "status" => {
                for id in self.ids() {
                    self.status_of(id, 0);
                }
            }
            "log" => self.log(args.pos_u64(0)),
            "applied" => {
                let id = args.pos_u64(0);
                let node = &self.nodes[&id];
                let text = format!(
                    "n{id}: snapshot up to {}, then {}",
                    node.applied_base,
                    fmt_entries(&node.applied, false)
                );
                self.line(0, text);
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

// ---- Scripts.

fn parse_u64(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

/// A command's arguments: positional words, `key=value` options, and the
/// bare-word options in `FLAGS`.
struct Args {
    pos: Vec<String>,
    opts: BTreeMap<String, String>,
    flags: Vec<String>,
}

const FLAGS: &[&str] = &["live"];

impl Args {
    fn parse(words: &[&str]) -> Args {
        let mut args = Args { pos: Vec::new(), opts: BTreeMap::new(), flags: Vec::new() };
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    args.opts.insert(k.to_string(), v.to_string());
                }
                None if FLAGS.contains(w) => args.flags.push(w.to_string()),
                None => args.pos.push(w.to_string()),
            }
        }
        args
    }

    fn pos_u64(&self, i: usize) -> u64 {
        parse_u64(self.pos.get(i).unwrap_or_else(|| panic!("argument {} missing", i + 1)))
    }

    fn flag(&self, word: &str) -> bool {
        self.flags.iter().any(|w| w == word)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    fn u64(&self, key: &str, default: u64) -> u64 {
        self.get(key).map_or(default, parse_u64)
    }

    fn usize(&self, key: &str, default: usize) -> usize {
        self.u64(key, default as u64) as usize
    }

    fn bool(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(v) => panic!("{key}={v}: expected true or false"),
        }
    }
}

/// One stanza: its commands (with any comment lines among them) and the
/// expected output.
struct Stanza {
    /// Comment and blank lines before it, kept when rewriting.
    preamble: Vec<String>,
    line: usize,
    commands: Vec<String>,
    expected: Vec<String>,
}

fn parse_script(text: &str) -> (Vec<Stanza>, Vec<String>) {
    let mut stanzas = Vec::new();
    let mut preamble = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            preamble.push(line.to_string());
            continue;
        }
        let mut stanza = Stanza {
            preamble: std::mem::take(&mut preamble),
            line: n + 1,
            commands: vec![line.to_string()],
            expected: Vec::new(),
        };
        loop {
            let (_, line) =
                lines.next().unwrap_or_else(|| panic!("line {}: stanza without ----", n + 1));
            if line == "----" {
                break;
            }
            stanza.commands.push(line.to_string());
        }
        while let Some((_, line)) = lines.next_if(|(_, l)| !l.trim().is_empty()) {
            stanza.expected.push(line.to_string());
        }
        stanzas.push(stanza);
    }
    (stanzas, preamble)
}

/// A line diff (longest common subsequence), `-` expected, `+` actual,
/// with three lines of context around each change.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            lines.push((' ', &expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', &expected[i]));
            i += 1;
        } else {
            lines.push(('+', &actual[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> =
        lines.iter().enumerate().filter(|(_, (c, _))| *c != ' ').map(|(k, _)| k).collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 3);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in lines.iter().enumerate() {
        if near(k) {
            let _ = writeln!(out, "{c} {line}");
            skipped = false;
        } else if !skipped {
            let _ = writeln!(out, "  ...");
            skipped = true;
        }
    }
    out
}

fn run_script(name: &str) {
    install_panic_hook();
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "consensus", name].iter().collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (stanzas, trailer) = parse_script(&text);
    let mut cluster = Cluster::new();
    let mut rewritten = String::new();
    let mut failures = String::new();
    for stanza in &stanzas {
        let commands: Vec<&String> =
            stanza.commands.iter().filter(|c| !c.starts_with('#')).collect();
        for command in &commands {
            if commands.len() > 1 {
                cluster.line(0, format!("> {command}"));
            }
            let words: Vec<&str> = command.split_whitespace().collect();
            cluster.run(words[0], &Args::parse(&words[1..]));
        }
        let mut actual = std::mem::take(&mut cluster.out);
        if actual.is_empty() {
            actual.push("ok".to_string());
        }
        if actual != stanza.expected {
            let _ = write!(
                failures,
                "\n{}:{}: {}\n{}",
                name,
                stanza.line,
                stanza.commands.join(" / "),
                diff(&stanza.expected, &actual)
            );
        }
        for line in stanza.preamble.iter().chain(&stanza.commands) {
            let _ = writeln!(rewritten, "{line}");
        }
        let _ = writeln!(rewritten, "----");
        for line in &actual {
            let _ = writeln!(rewritten, "{line}");
        }
    }
    for line in &trailer {
        let _ = writeln!(rewritten, "{line}");
    }
    if std::env::var_os("WARREN_REWRITE").is_some_and(|v| v == "1") {
        if rewritten != text {
            std::fs::write(&path, rewritten)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        return;
    }
    assert!(
        failures.is_empty(),
        "{name}: output differs (- expected, + actual; if the new output is right, rerun with \
         WARREN_REWRITE=1 and review the change):{failures}"
    );
    assert_eq!(rewritten, text, "{name}: the file is not in canonical form (WARREN_REWRITE=1)");
}

#[test]
fn election() {
    run_script("election.txt");
}

#[test]
fn pre_vote() {
    run_script("pre_vote.txt");
}

#[test]
fn check_quorum() {
    run_script("check_quorum.txt");
}

#[test]
fn conflicting_logs() {
    run_script("conflicting_logs.txt");
}

#[test]
fn commit_rule() {
    run_script("commit_rule.txt");
}

#[test]
fn deferred_sync() {
    // Proves a leader's deferred sync: followers' acknowledgements commit
    // its entry before its own sync, a crash before that sync loses the
    // entry only from the leader's disk, and the next leader keeps it.
    run_script("deferred_sync.txt");
}

#[test]
fn snapshots() {
    run_script("snapshots.txt");
}

#[test]
fn snapshot_chunks() {
    // Proves chunked snapshot transfer: in-order assembly, install only when
    // complete, and recovery from a lost chunk, a follower restart and a
    // newer snapshot mid-transfer.
    run_script("snapshot_chunks.txt");
}

#[test]
fn read_index() {
    run_script("read_index.txt");
}

#[test]
fn transfer() {
    run_script("transfer.txt");
}

#[test]
fn batching() {
    run_script("batching.txt");
}
