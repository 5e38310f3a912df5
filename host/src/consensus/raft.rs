//! One replica of the consensus protocol (Raft with pre-vote, check-quorum,
//! read-index and leadership transfer), as a pure state machine.
//!
//! Drive it like etcd's `RawNode` or quinn-proto's `Connection`:
//! - feed input: [`Raft::tick`] every tick, [`Raft::step`] for every message
//!   received, [`Raft::propose`], [`Raft::read_index`],
//!   [`Raft::transfer_leadership`], [`Raft::compact`];
//! - drain output: when [`Raft::has_ready`], take [`Raft::ready`], then, in
//!   this order: send `messages`; persist `snapshot`, `hard_state` and
//!   `entries`, and sync when `must_sync` says so; send
//!   `persisted_messages`; apply the snapshot and
//!   `committed` entries; serve `read_states` once applied far enough; and
//!   call [`Raft::advance`] before feeding any more input.
//! - a Ready whose durable content is only entries (and a commit index)
//!   says `may_defer_sync`: the driver may then write them, go on without
//!   waiting for its disk, call [`Raft::advance_deferred`], and report the
//!   sync later with [`Raft::synced`]. Its `persisted_messages` (a
//!   follower's acknowledgements) must then wait until a sync covering
//!   everything written so far has ended. A leader counts itself toward a
//!   quorum only once its sync is reported; followers' acknowledgements
//!   may commit the entries first (Raft §10.2.1: the leader's own write
//!   runs beside replication). A follower goes on receiving, forwarding
//!   and applying while its disk syncs, as etcd's asynchronous storage
//!   writes allow. Any later Ready with `must_sync` and not
//!   `may_defer_sync` is synced over everything written so far, deferred
//!   writes included.
//!
//! It reads no clock (time is `tick`'s and `propose`'s argument), no
//! randomness (election timeouts come from `Config::seed`), no disk and no
//! socket.

use crate::consensus::log::RaftLog;
use crate::consensus::membership::Membership;
use crate::consensus::progress::{Progress, State};
use crate::consensus::types::{
    Body, EntryKind, HardState, LogEntry, LogIndex, Message, NodeId, ReadState, Role, Snapshot,
    SnapshotMeta, Term,
};
use crate::rng::SplitMix64;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thiserror::Error;

/// A replica's protocol settings. Every bound has its reason.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub voters: Vec<NodeId>,
    /// Ticks without hearing from a leader before a follower campaigns (the
    /// actual timeout is drawn from `election_tick ..< 2 * election_tick`),
    /// and the window in which a leader must hear from a quorum.
    pub election_tick: u32,
    /// Ticks between a leader's heartbeats; well under `election_tick`.
    pub heartbeat_tick: u32,
    /// Campaign only after a pre-vote a majority would grant, so a replica
    /// that was cut off cannot depose a healthy leader when it returns.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for `election_tick` steps
    /// down; followers in contact with a leader refuse to vote.
    pub check_quorum: bool,
    /// Unacknowledged appends per follower: bounds memory and retransmission.
    pub max_inflight: usize,
    /// Entries and payload bytes per append: bounds message size.
    pub max_entries_per_append: usize,
    pub max_bytes_per_append: usize,
    /// Bytes per snapshot chunk, and chunks unacknowledged per follower:
    /// bound message size and what a transfer keeps in flight.
    pub snapshot_chunk_bytes: usize,
    pub snapshot_chunks_in_flight: usize,
    /// Seeds the election-timeout draws.
    pub seed: u64,
    /// Simulator checker tests only: commit an entry of an earlier term by
    /// counting replicas, the bug Raft's commitment rule exists to prevent.
    pub unsafe_commit_by_count: bool,
}

impl Config {
    /// Defaults for a replica `id` of a cluster of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            voters,
            election_tick: 10,
            heartbeat_tick: 1,
            pre_vote: true,
            check_quorum: true,
            max_inflight: 64,
            max_entries_per_append: 1024,
            max_bytes_per_append: 1 << 20,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_chunks_in_flight: 4,
            seed,
            unsafe_commit_by_count: false,
        }
    }
}

/// What a replica had on disk when it started.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<LogEntry>,
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    #[error("this replica is not the leader (the leader is {leader:?}); send the write there")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership is being transferred; retry shortly")]
    Transferring,
}

/// One batch of output. See the module docs for the order to process it in.
#[derive(Debug, Default)]
pub struct Ready {
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// A snapshot from the leader to persist and restore the state machine
    /// from, before anything below.
    pub snapshot: Option<Snapshot>,
    /// The term, vote and commit index to persist, if they changed.
    pub hard_state: Option<HardState>,
    /// Whether what this Ready persists must be synced before
    /// `persisted_messages` leave: it holds entries, a snapshot, or a new
    /// term or vote. A new commit index alone need not be durable (a
    /// restarted replica learns it again from the leader; a stale one only
    /// means less is applied at restart), so it may be written without a
    /// sync, as etcd's `MustSync` allows. Set too when `persisted_messages`
    /// acknowledge entries whose deferred sync has not been reported.
    pub must_sync: bool,
    /// The sync may run beside what follows (see the module docs): nothing
    /// here but `entries` and `persisted_messages` needs it, and those
    /// messages then wait for it.
    pub may_defer_sync: bool,
    /// Entries to persist: they replace every stored entry from the first
    /// one's index on.
    pub entries: Vec<LogEntry>,
    /// Messages to send only once the above is synced to disk (votes and
    /// acknowledgements promise durability).
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed: Vec<LogEntry>,
    /// Answered read-index requests.
    pub read_states: Vec<ReadState>,
}

struct PendingRead {
    round: u64,
    ctx: u64,
    /// Who asked: this replica (`None`) or a follower.
    from: Option<NodeId>,
    index: LogIndex,
    acks: BTreeSet<NodeId>,
}

/// One replica. See the module docs for how to drive it.
pub struct Raft {
    config: Config,
    membership: Membership,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// The latest snapshot with its bytes, sent to followers that are too
    /// far behind.
    snapshot: Option<Snapshot>,
    /// Follower: the snapshot being received from the leader, in chunks.
    receiving: Option<Receiving>,
    /// Leader: every other voter's progress.
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate: the answers so far.
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    election_timeout: u32,
    transferee: Option<NodeId>,
    transfer_elapsed: u32,
    /// Ticks counted while leading, the clock for `Progress::last_heard`.
    leader_ticks: u64,
    /// Leader: read-index rounds awaiting a quorum's heartbeat replies.
    reads: VecDeque<PendingRead>,
    read_round: u64,
    /// Leader: reads that arrived before it committed an entry of its term.
    reads_waiting: Vec<(u64, Option<NodeId>)>,
    read_states: Vec<ReadState>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    persisted_hard_state: HardState,
    now_ms: i64,
    rng: SplitMix64,
    /// A Ready was handed out and not yet advanced.
    in_flight: Option<InFlight>,
}

/// A snapshot arriving in chunks: bytes so far, from which leader and term.
struct Receiving {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    total: u64,
    data: Vec<u8>,
}

struct InFlight {
    must_sync: bool,
    may_defer_sync: bool,
    hard_state: Option<HardState>,
}

impl Raft {
    pub fn new(config: Config, restored: Restored) -> Raft {
        assert!(config.heartbeat_tick > 0 && config.heartbeat_tick < config.election_tick);
        assert!(config.snapshot_chunk_bytes > 0 && config.snapshot_chunks_in_flight > 0);
        assert!(config.voters.contains(&config.id), "{} is not a voter", config.id);
        let membership = match &restored.snapshot {
            Some(s) if !s.meta.membership.is_empty() => s.meta.membership.clone(),
            _ => Membership::new(config.voters.iter().copied()),
        };
        let meta = restored.snapshot.as_ref().map(|s| s.meta.clone()).unwrap_or_default();
        let log = RaftLog::restore(meta, restored.entries, restored.hard_state.commit);
        let hard_state = restored.hard_state;
        let mut raft = Raft {
            rng: SplitMix64::new(config.seed),
            config,
            membership,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            snapshot: restored.snapshot,
            receiving: None,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: 0,
            transferee: None,
            transfer_elapsed: 0,
            leader_ticks: 0,
            reads: VecDeque::new(),
            read_round: 0,
            reads_waiting: Vec::new(),
            read_states: Vec::new(),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            persisted_hard_state: hard_state,
            now_ms: 0,
            in_flight: None,
        };
        raft.reset_election_timer();
        raft
    }

    // ---- State, for drivers and checkers.

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    pub fn commit_index(&self) -> LogIndex {
        self.log.committed
    }

    pub fn applied_index(&self) -> LogIndex {
        self.log.applied
    }

    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    pub fn first_index(&self) -> LogIndex {
        self.log.first_index()
    }

    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted()
    }

    /// The entry at `index`, if the log holds it (not compacted).
    pub fn entry(&self, index: LogIndex) -> Option<&LogEntry> {
        self.log.entry(index)
    }

    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index)
    }

    /// The latest snapshot this replica took or received, with its bytes.
    pub fn latest_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        self.log.snapshot_meta()
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Leader: the follower's matched index, for observers.
    pub fn matched(&self, id: NodeId) -> Option<LogIndex> {
        self.progress.get(&id).map(|p| p.matched)
    }

    /// Leader: how many ticks ago it last heard from a quorum (itself
    /// included), the silence check-quorum steps down on; `None` unless it
    /// leads.
    pub fn quorum_silent_ticks(&self) -> Option<u64> {
        if self.role != Role::Leader {
            return None;
        }
        let now = self.leader_ticks;
        let mut ago: Vec<u64> = self
            .membership
            .voters()
            .map(|v| {
                if v == self.id() {
                    0
                } else {
                    self.progress.get(&v).map_or(u64::MAX, |p| now.saturating_sub(p.last_heard))
                }
            })
            .collect();
        ago.sort_unstable();
        ago.get(self.membership.quorum().saturating_sub(1)).copied()
    }

    // ---- Input.

    /// One tick of logical time; `now_ms` is the driver's clock, used only
    /// to stamp entries.
    pub fn tick(&mut self, now_ms: i64) {
        self.check_advanced();
        self.now_ms = self.now_ms.max(now_ms);
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => {
                self.election_elapsed += 1;
                if self.election_elapsed >= self.election_timeout
                    && self.membership.contains(self.id())
                {
                    self.campaign(self.config.pre_vote, false);
                }
            }
        }
    }

    /// Starts an election now (as if the election timer fired).
    pub fn campaign_now(&mut self) {
        self.check_advanced();
        if self.role != Role::Leader {
            self.campaign(self.config.pre_vote, false);
        }
    }

    /// Appends a command to the log, if this replica leads. Returns the
    /// entry's index (its zxid); it is committed once `committed` hands it
    /// out, unless a new leader overwrote it (then an entry of another term
    /// is handed out at that index).
    pub fn propose(&mut self, payload: Bytes, now_ms: i64) -> Result<LogIndex, ProposeError> {
        self.check_advanced();
        self.now_ms = self.now_ms.max(now_ms);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.transferee.is_some() {
            return Err(ProposeError::Transferring);
        }
        Ok(self.append_entry(EntryKind::Command(payload)))
    }

    /// Asks for a read index on behalf of `ctx`. The answer arrives as a
    /// [`ReadState`] in a later Ready.
    pub fn read_index(&mut self, ctx: u64) {
        self.check_advanced();
        match (self.role, self.leader) {
            (Role::Leader, _) => self.leader_read(ctx, None),
            (_, Some(leader)) => self.send(leader, Body::ReadIndex { ctx }),
            (_, None) => self.read_states.push(ReadState { ctx, index: None }),
        }
    }

    /// Leader: hands leadership to `to` once its log is up to date.
    pub fn transfer_leadership(&mut self, to: NodeId) {
        self.check_advanced();
        if self.role != Role::Leader || to == self.id() || !self.membership.contains(to) {
            return;
        }
        self.transferee = Some(to);
        self.transfer_elapsed = 0;
        if self.progress[&to].matched == self.log.last_index() {
            self.send(to, Body::TimeoutNow);
        } else {
            self.send_append(to);
        }
    }

    /// The state machine took a snapshot, `data`, of its state at `index`
    /// (at most the applied index): entries up to there are dropped, and
    /// followers that need them get this snapshot instead.
    pub fn compact(&mut self, index: LogIndex, data: Bytes) {
        self.check_advanced();
        let Some(term) = self.log.term(index) else { return };
        let meta = SnapshotMeta { index, term, membership: self.membership.clone() };
        self.log.compact(meta.clone());
        self.snapshot = Some(Snapshot { meta, data });
    }

    /// Handles a message from another replica.
    pub fn step(&mut self, m: Message) {
        self.check_advanced();
        if m.to != self.id() || !self.membership.contains(m.from) {
            return;
        }
        if m.term > self.term {
            if let Body::PreVote { .. } | Body::Vote { transfer: false, .. } = m.body {
                // A follower in touch with a live leader ignores campaigns:
                // a replica that was cut off cannot depose it on return.
                let in_lease = self.config.check_quorum
                    && self.leader.is_some()
                    && self.election_elapsed < self.config.election_tick;
                if in_lease {
                    return;
                }
            }
            match m.body {
                // A pre-vote is a question, not a new term.
                Body::PreVote { .. } | Body::PreVoteResponse { granted: true } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.body {
                // Tell a stale leader (cut off, then back) about the new
                // term, so it steps down.
                Body::Append { .. } | Body::Heartbeat { .. } => {
                    self.send(m.from, Body::AppendResponse { index: LogIndex(0), reject: None });
                }
                Body::PreVote { .. } => self.send(m.from, Body::PreVoteResponse { granted: false }),
                // The asker learns the new term and retries.
                Body::ReadIndex { ctx } => {
                    self.send(m.from, Body::ReadIndexResponse { ctx, index: None });
                }
                _ => {}
            }
            return;
        }

        match m.body {
            Body::PreVote { last_index, last_term } => {
                self.answer_vote(&m, last_index, last_term, true)
            }
            Body::Vote { last_index, last_term, .. } => {
                self.answer_vote(&m, last_index, last_term, false)
            }
            Body::PreVoteResponse { granted } if self.role == Role::PreCandidate => {
                self.count_vote(m.from, granted);
            }
            Body::VoteResponse { granted } if self.role == Role::Candidate => {
                self.count_vote(m.from, granted);
            }
            Body::Append { prev_index, prev_term, entries, commit } => {
                assert_ne!(self.role, Role::Leader, "two leaders in term {}", self.term);
                self.become_follower(self.term, Some(m.from));
                self.handle_append(m.from, prev_index, prev_term, entries, commit);
                // The log caught up past a snapshot being received: the
                // partial copy is useless, so free it.
                if self.receiving.as_ref().is_some_and(|r| r.meta.index <= self.log.committed) {
                    self.receiving = None;
                }
            }
            Body::Heartbeat { commit, read } => {
                self.become_follower(self.term, Some(m.from));
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(m.from, Body::HeartbeatResponse { read });
            }
            Body::InstallSnapshot { meta, total, offset, chunk } => {
                self.become_follower(self.term, Some(m.from));
                self.handle_snapshot_chunk(m.from, meta, total, offset, chunk);
            }
            Body::SnapshotAck { index, received } if self.role == Role::Leader => {
                self.handle_snapshot_ack(m.from, index, received);
            }
            Body::TimeoutNow if self.role != Role::Leader => self.campaign(false, true),
            Body::ReadIndex { ctx } if self.role == Role::Leader => {
                self.leader_read(ctx, Some(m.from))
            }
            Body::ReadIndex { ctx } => {
                self.send(m.from, Body::ReadIndexResponse { ctx, index: None })
            }
            Body::ReadIndexResponse { ctx, index } => {
                self.read_states.push(ReadState { ctx, index })
            }
            Body::AppendResponse { index, reject } if self.role == Role::Leader => {
                self.handle_append_response(m.from, index, reject);
            }
            Body::HeartbeatResponse { read } if self.role == Role::Leader => {
                self.handle_heartbeat_response(m.from, read);
            }
            _ => {}
        }
    }

    // ---- Output.

    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || self.log.incoming.is_some()
            || self.hard_state() != self.persisted_hard_state
            || self.log.written() < self.log.last_index()
            || self.log.applied < self.log.committed
            || !self.read_states.is_empty()
            || (self.role == Role::Leader && self.followers_need_appends())
    }

    /// Takes the next batch of output. Call [`Raft::advance`] once it is
    /// processed, before any other input.
    pub fn ready(&mut self) -> Ready {
        self.check_advanced();
        if self.role == Role::Leader {
            self.flush_appends();
        }
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.persisted_hard_state).then_some(hard_state);
        let snapshot = self.log.incoming.take();
        let entries = self.log.take_unstable();
        let promise_changed = hard_state.as_ref().is_some_and(|hs| {
            hs.term != self.persisted_hard_state.term || hs.vote != self.persisted_hard_state.vote
        });
        let acks_unsynced =
            !self.persisted_messages.is_empty() && self.log.persisted() < self.log.written();
        let must_sync =
            promise_changed || !entries.is_empty() || snapshot.is_some() || acks_unsynced;
        // A new term or vote, or a snapshot, is synced before anything
        // else happens; entries and the acknowledgements of them need not
        // hold everything else up.
        let may_defer_sync = must_sync && !promise_changed && snapshot.is_none();
        let ready = Ready {
            messages: std::mem::take(&mut self.messages),
            must_sync,
            may_defer_sync,
            hard_state: hard_state.clone(),
            entries,
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed: self.log.take_committed(),
            read_states: std::mem::take(&mut self.read_states),
            snapshot,
        };
        self.in_flight = Some(InFlight { must_sync, may_defer_sync, hard_state });
        ready
    }

    /// The last Ready is processed: what it asked to persist is durable,
    /// and after a sync (`must_sync`) so is everything written before it.
    pub fn advance(&mut self) {
        let Some(done) = self.in_flight.take() else { return };
        if done.must_sync {
            self.log.persisted_written();
        }
        self.advanced(done.hard_state);
    }

    /// The last Ready, which said `may_defer_sync`, is processed and its
    /// entries are written but not yet synced: [`Raft::synced`] reports the
    /// sync.
    pub fn advance_deferred(&mut self) {
        let Some(done) = self.in_flight.take() else { return };
        assert!(done.may_defer_sync, "advance_deferred() of a Ready that must be synced first");
        // Its hard state can only carry a new commit index, which need not
        // be durable (see `Ready::must_sync`).
        self.advanced(done.hard_state);
    }

    /// A deferred sync finished: what was written up to `index` (whose
    /// entry had term `term`) is durable. Call it between Readys.
    pub fn synced(&mut self, index: LogIndex, term: Term) {
        self.check_advanced();
        self.log.persisted_to(index, term);
        if self.role == Role::Leader && self.maybe_commit() {
            self.bcast_append();
        }
    }

    fn advanced(&mut self, hard_state: Option<HardState>) {
        if let Some(hard_state) = hard_state {
            self.persisted_hard_state = hard_state;
        }
        if self.role == Role::Leader && self.maybe_commit() {
            self.bcast_append();
        }
    }

    // ---- Roles.

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.receiving = None;
        }
        if self.role == Role::Follower && self.leader == leader && leader.is_some() {
            self.election_elapsed = 0;
            return;
        }
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.transferee = None;
        self.progress.clear();
        self.reset_election_timer();
    }

    fn campaign(&mut self, pre_vote: bool, transfer: bool) {
        if !self.membership.contains(self.id()) {
            return;
        }
        let term = if pre_vote {
            self.role = Role::PreCandidate;
            Term(self.term.0 + 1)
        } else {
            self.term = Term(self.term.0 + 1);
            self.vote = Some(self.id());
            self.role = Role::Candidate;
            self.receiving = None;
            self.term
        };
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.count_vote(self.id(), true);
        if self.role == Role::Leader || self.role == Role::Follower {
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<NodeId> = self.membership.voters().filter(|&v| v != self.id()).collect();
        for to in voters {
            let body = if pre_vote {
                Body::PreVote { last_index, last_term }
            } else {
                Body::Vote { last_index, last_term, transfer }
            };
            self.messages.push(Message { from: self.id(), to, term, body });
        }
    }

    fn count_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        if self.membership.is_quorum(|id| self.votes.get(&id) == Some(&true)) {
            match self.role {
                Role::PreCandidate => self.campaign(false, false),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if self.membership.is_lost(|id| self.votes.get(&id) == Some(&false)) {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate, "only a candidate becomes leader");
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.transferee = None;
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = self.log.last_index().next();
        // Every follower starts as just heard from: a new leader gets a
        // full election timeout to reach its quorum.
        let now = self.leader_ticks;
        self.progress = self
            .membership
            .voters()
            .filter(|&v| v != self.id())
            .map(|v| (v, Progress::new(next, now)))
            .collect();
        self.reads.clear();
        self.reads_waiting.clear();
        // An entry of its own term, so that committing it commits every
        // earlier entry (a leader never counts replicas of older terms).
        self.append_entry(EntryKind::Noop);
    }

    fn answer_vote(&mut self, m: &Message, last_index: LogIndex, last_term: Term, pre_vote: bool) {
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && m.term > self.term);
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        if pre_vote {
            // Granted: answer in the term asked about; refused: in ours.
            let term = if granted { m.term } else { self.term };
            let body = Body::PreVoteResponse { granted };
            self.messages.push(Message { from: self.id(), to: m.from, term, body });
        } else {
            if granted {
                self.election_elapsed = 0;
                self.vote = Some(m.from);
            }
            // A vote is a promise: it leaves only once persisted.
            let body = Body::VoteResponse { granted };
            self.persisted_messages.push(Message {
                from: self.id(),
                to: m.from,
                term: self.term,
                body,
            });
        }
    }

    // ---- Follower.

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<LogEntry>,
        commit: LogIndex,
    ) {
        if prev_index < self.log.committed {
            // Entries at or below the commit index must already be here:
            // anything else means a committed entry is being rewritten.
            for entry in entries.iter().take_while(|e| e.index <= self.log.committed) {
                let mine = self.log.term(entry.index);
                assert!(
                    mine.is_none() || mine == Some(entry.term),
                    "{from} overwrites committed entry {} (term {:?}) with term {}",
                    entry.index,
                    mine,
                    entry.term
                );
            }
            let index = self.log.committed;
            self.send_persisted(from, Body::AppendResponse { index, reject: None });
            return;
        }
        match self.log.maybe_append(prev_index, prev_term, commit, entries) {
            Some(last) => {
                self.send_persisted(from, Body::AppendResponse { index: last, reject: None })
            }
            None => {
                let hint = self.log.reject_hint(prev_index);
                self.send(from, Body::AppendResponse { index: prev_index, reject: Some(hint) });
            }
        }
    }

    /// One chunk of the leader's snapshot. Chunks are taken strictly in
    /// order; anything else is answered with what this replica holds, so the
    /// leader resumes from there. Nothing changes until the last byte
    /// arrives; then the snapshot replaces the log in one step.
    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        total: u64,
        offset: u64,
        chunk: Bytes,
    ) {
        let index = meta.index;
        if index <= self.log.committed {
            self.receiving = None;
            let committed = self.log.committed;
            self.send_persisted(from, Body::AppendResponse { index: committed, reject: None });
            return;
        }
        if self.log.term(index) == Some(meta.term) {
            // The log already holds the snapshot's last entry: just commit.
            self.receiving = None;
            self.log.commit_to(index);
            self.send_persisted(from, Body::AppendResponse { index, reject: None });
            return;
        }
        let term = self.term;
        let same = self.receiving.as_ref().is_some_and(|r| {
            r.from == from && r.term == term && r.meta == meta && r.total == total
        });
        if !same {
            if offset != 0 {
                self.send(from, Body::SnapshotAck { index, received: 0 });
                return;
            }
            self.receiving = Some(Receiving { from, term, meta, total, data: Vec::new() });
        }
        let Some(receiving) = self.receiving.as_mut() else { return };
        let received = receiving.data.len() as u64;
        let fits = chunk.len() as u64 <= total - received;
        if offset != received || !fits || (chunk.is_empty() && received < total) {
            self.send(from, Body::SnapshotAck { index, received });
            return;
        }
        let data = if receiving.data.is_empty() && chunk.len() as u64 == total {
            // The whole snapshot in one chunk: no copy.
            chunk
        } else {
            receiving.data.extend_from_slice(&chunk);
            let received = receiving.data.len() as u64;
            if received < total {
                self.send(from, Body::SnapshotAck { index, received });
                return;
            }
            Bytes::from(std::mem::take(&mut receiving.data))
        };
        let Some(receiving) = self.receiving.take() else { return };
        let snapshot = Snapshot { meta: receiving.meta, data };
        self.membership = snapshot.meta.membership.clone();
        self.log.install(snapshot.clone());
        self.snapshot = Some(snapshot);
        self.send_persisted(from, Body::AppendResponse { index, reject: None });
    }

    // ---- Leader.

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        self.leader_ticks += 1;
        let now = self.leader_ticks;
        let window = u64::from(self.config.election_tick);
        if self.config.check_quorum {
            // Step down once a quorum has been silent for a whole election
            // timeout, counted per follower from when it was last heard.
            let id = self.id();
            let active = self.membership.is_quorum(|v| {
                v == id || self.progress.get(&v).is_some_and(|p| now - p.last_heard < window)
            });
            if !active {
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.election_elapsed >= self.config.election_tick {
            self.election_elapsed = 0;
            for p in self.progress.values_mut() {
                // A snapshot transfer that made no progress for a whole
                // timeout lost a chunk or an acknowledgement: probe again,
                // which restarts it (the follower answers the first chunk
                // with what it holds, and the transfer resumes there).
                if let State::Snapshot(streaming) = &mut p.state {
                    if streaming.acked_at_check == Some(streaming.acked) {
                        p.become_probe();
                    } else {
                        streaming.acked_at_check = Some(streaming.acked);
                    }
                }
            }
        }
        if self.transferee.is_some() {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.config.election_tick {
                self.transferee = None;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    fn append_entry(&mut self, kind: EntryKind) -> LogIndex {
        let index = self.log.last_index().next();
        let last_time = self.log.entry(self.log.last_index()).map_or(i64::MIN, |e| e.time_ms);
        let entry = LogEntry { index, term: self.term, time_ms: self.now_ms.max(last_time), kind };
        // Committed once a quorum, this replica's own disk included (see
        // `advance`), holds it.
        self.log.append(vec![entry]);
        index
    }

    fn followers_need_appends(&self) -> bool {
        let last = self.log.last_index();
        self.progress.values().any(|p| p.next <= last && !p.is_paused(self.config.max_inflight))
    }

    /// Sends every follower that can take more what it lacks: this is where
    /// proposals made since the last Ready are batched into one append each.
    fn flush_appends(&mut self) {
        let last = self.log.last_index();
        let ids: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| p.next <= last && !p.is_paused(self.config.max_inflight))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            while self.progress[&id].next <= last
                && !self.progress[&id].is_paused(self.config.max_inflight)
            {
                if !self.send_append(id) {
                    break;
                }
            }
        }
    }

    /// Sends one append (or the snapshot) to `to`; false if nothing was sent.
    fn send_append(&mut self, to: NodeId) -> bool {
        let max_inflight = self.config.max_inflight;
        let progress = &self.progress[&to];
        if progress.is_paused(max_inflight) {
            return false;
        }
        let prev_index = progress.next.prev();
        let Some(prev_term) = self.log.term(prev_index) else {
            return self.send_snapshot(to);
        };
        let entries = self.log.slice(
            progress.next,
            self.log.last_index(),
            self.config.max_entries_per_append,
            self.config.max_bytes_per_append,
        );
        let count = entries.len();
        let last = LogIndex(prev_index.0 + count as u64);
        let commit = self.log.committed;
        self.send(to, Body::Append { prev_index, prev_term, entries, commit });
        // `to` is a follower with progress (callers iterate `progress`).
        self.progress.get_mut(&to).expect("progress of a follower").sent(last, count);
        true
    }

    /// Starts streaming the latest snapshot to `to`.
    fn send_snapshot(&mut self, to: NodeId) -> bool {
        // Entries are only compacted below a snapshot, and `next` never
        // passes the last index (checked on every acknowledgement).
        let Some(snapshot) = &self.snapshot else {
            unreachable!("no term for {to}'s previous index and no snapshot to send");
        };
        let index = snapshot.meta.index;
        self.progress.get_mut(&to).expect("progress of a follower").become_snapshot(index);
        self.send_snapshot_chunk(to);
        self.send_snapshot_chunks(to);
        true
    }

    /// Sends `to` the next chunks of its snapshot transfer, up to the window.
    fn send_snapshot_chunks(&mut self, to: NodeId) {
        let window =
            (self.config.snapshot_chunks_in_flight * self.config.snapshot_chunk_bytes) as u64;
        loop {
            let (Some(snapshot), Some(p)) = (&self.snapshot, self.progress.get(&to)) else {
                return;
            };
            let State::Snapshot(streaming) = p.state else { return };
            if streaming.index != snapshot.meta.index {
                // A newer snapshot replaced the one being sent: send that.
                self.send_snapshot(to);
                return;
            }
            let total = snapshot.data.len() as u64;
            if streaming.sent >= total || streaming.sent - streaming.acked >= window {
                return;
            }
            self.send_snapshot_chunk(to);
        }
    }

    /// Sends the chunk of the snapshot at `to`'s transfer position.
    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let (Some(snapshot), Some(p)) = (&self.snapshot, self.progress.get_mut(&to)) else {
            return;
        };
        let State::Snapshot(streaming) = &mut p.state else { return };
        let total = snapshot.data.len() as u64;
        let offset = streaming.sent.min(total);
        let end = (offset + self.config.snapshot_chunk_bytes as u64).min(total);
        streaming.sent = end;
        let body = Body::InstallSnapshot {
            meta: snapshot.meta.clone(),
            total,
            offset,
            chunk: snapshot.data.slice(offset as usize..end as usize),
        };
        self.send(to, body);
    }

    /// A follower holds the first `received` bytes of the snapshot at
    /// `index`: continue from there.
    fn handle_snapshot_ack(&mut self, from: NodeId, index: LogIndex, received: u64) {
        let Some(p) = self.progress.get_mut(&from) else { return };
        p.last_heard = self.leader_ticks;
        let State::Snapshot(streaming) = &mut p.state else { return };
        // An acknowledgement behind the last one is stale (reordered), or the
        // follower lost what it held (restarted); the stall check restarts
        // the transfer then.
        if streaming.index != index || received <= streaming.acked {
            return;
        }
        streaming.acked = received;
        streaming.sent = streaming.sent.max(received);
        self.send_snapshot_chunks(from);
    }

    fn bcast_append(&mut self) {
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in ids {
            self.send_append(id);
        }
    }

    fn bcast_heartbeat(&mut self) {
        let read = self.reads.back().map(|r| r.round);
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in ids {
            // Never tell a follower to commit past what it is known to hold.
            let commit = self.log.committed.min(self.progress[&id].matched);
            self.send(id, Body::Heartbeat { commit, read });
        }
    }

    fn handle_append_response(&mut self, from: NodeId, index: LogIndex, reject: Option<LogIndex>) {
        assert!(
            reject.is_some() || index <= self.log.last_index(),
            "{from} holds index {index}, beyond this leader's last {}: committed entries were lost",
            self.log.last_index()
        );
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.last_heard = self.leader_ticks;
        match reject {
            Some(hint) => {
                if progress.reject(index, hint) {
                    self.send_append(from);
                }
            }
            None => {
                let was = progress.state;
                if !progress.acknowledge(index) && !matches!(was, State::Snapshot(_)) {
                    // Stale, or nothing new: still try to send more.
                    if progress.next <= self.log.last_index() {
                        self.send_append(from);
                    }
                    return;
                }
                match progress.state {
                    State::Probe => progress.become_replicate(),
                    State::Snapshot(streaming) if progress.matched >= streaming.index => {
                        progress.become_probe()
                    }
                    _ => {}
                }
                if self.maybe_commit() {
                    self.bcast_append();
                } else if self.progress[&from].next <= self.log.last_index() {
                    self.send_append(from);
                }
                if self.transferee == Some(from)
                    && self.progress[&from].matched == self.log.last_index()
                {
                    self.send(from, Body::TimeoutNow);
                }
            }
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, read: Option<u64>) {
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.last_heard = self.leader_ticks;
        progress.probe_sent = false;
        // A full window may be full of lost appends: free one, so the next
        // append reaches the follower (which rejects a gap, and the leader
        // probes back to where the logs match).
        if progress.state == State::Replicate && progress.inflight.len() >= self.config.max_inflight
        {
            progress.inflight.pop_front();
        }
        if progress.matched < self.log.last_index() {
            self.send_append(from);
        } else if self.transferee == Some(from) {
            // The first TimeoutNow may have been lost.
            self.send(from, Body::TimeoutNow);
        }
        if let Some(round) = read {
            for pending in self.reads.iter_mut().take_while(|r| r.round <= round) {
                pending.acks.insert(from);
            }
            self.release_reads();
        }
    }

    /// Moves the commit index to the highest index a quorum holds, if that
    /// entry is of the current term (Raft's §5.4.2). Returns whether it moved.
    fn maybe_commit(&mut self) -> bool {
        let id = self.id();
        let persisted = self.log.persisted();
        let progress = &self.progress;
        let quorum_index = self.membership.committed_index(|v| {
            if v == id { persisted } else { progress.get(&v).map_or(LogIndex(0), |p| p.matched) }
        });
        if quorum_index <= self.log.committed {
            return false;
        }
        if self.log.term(quorum_index) != Some(self.term) && !self.config.unsafe_commit_by_count {
            return false;
        }
        self.log.commit_to(quorum_index);
        if self.log.term(self.log.committed) == Some(self.term) {
            let waiting = std::mem::take(&mut self.reads_waiting);
            for (ctx, from) in waiting {
                self.leader_read(ctx, from);
            }
        }
        true
    }

    fn leader_read(&mut self, ctx: u64, from: Option<NodeId>) {
        if self.log.term(self.log.committed) != Some(self.term) {
            // Until an entry of this term commits, the commit index may lag
            // what earlier leaders committed.
            self.reads_waiting.push((ctx, from));
            return;
        }
        let index = self.log.committed;
        if self.membership.len() == 1 {
            self.answer_read(ctx, from, Some(index));
            return;
        }
        self.read_round += 1;
        let acks = BTreeSet::from([self.id()]);
        self.reads.push_back(PendingRead { round: self.read_round, ctx, from, index, acks });
        self.bcast_heartbeat();
    }

    /// Answers every read whose round (or a later one) a quorum confirmed.
    fn release_reads(&mut self) {
        let confirmed =
            self.reads.iter().rposition(|r| self.membership.is_quorum(|v| r.acks.contains(&v)));
        let Some(last) = confirmed else { return };
        let done: Vec<PendingRead> = self.reads.drain(..=last).collect();
        for read in done {
            self.answer_read(read.ctx, read.from, Some(read.index));
        }
    }

    fn answer_read(&mut self, ctx: u64, from: Option<NodeId>, index: Option<LogIndex>) {
        match from {
            None => self.read_states.push(ReadState { ctx, index }),
            Some(to) => self.send(to, Body::ReadIndexResponse { ctx, index }),
        }
    }

    fn fail_reads(&mut self) {
        let pending: Vec<(u64, Option<NodeId>)> = self
            .reads
            .drain(..)
            .map(|r| (r.ctx, r.from))
            .chain(std::mem::take(&mut self.reads_waiting))
            .collect();
        for (ctx, from) in pending {
            self.answer_read(ctx, from, None);
        }
    }

    // ---- Helpers.

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.committed }
    }

    fn send(&mut self, to: NodeId, body: Body) {
        self.messages.push(Message { from: self.id(), to, term: self.term, body });
    }

    fn send_persisted(&mut self, to: NodeId, body: Body) {
        self.persisted_messages.push(Message { from: self.id(), to, term: self.term, body });
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let spread = u64::from(self.config.election_tick);
        self.election_timeout = self.config.election_tick + (self.rng.next_u64() % spread) as u32;
    }

    fn check_advanced(&self) {
        assert!(self.in_flight.is_none(), "Raft input before advance() of the last Ready");
    }
}
