//! Simulated clients, speaking the session layer as Warren's client does:
//! each connects to any member (so its writes are forwarded), opens a
//! session, pipelines several requests (writes and multis on the checked
//! keys, ephemeral and sequential creates, local and linearizable reads,
//! syncs), holds watches (one-shot ones, or a persistent and a recursive
//! one on `/`), pings, moves to another member when its member goes silent
//! or sends it away (resuming with its last zxid and its watches), and now
//! and then goes quiet long enough for its session to expire.
//!
//! Each client checks what it sees as it sees it: answers in request
//! order; reads and welcomes never behind what the session saw; events in
//! zxid order and before any answer that reflects them; a one-shot watch
//! fires at most once; an expired session is never welcomed again. What it
//! records (its operations on the checked keys, the events its lasting
//! watches caught) is checked at the end of the run against the history
//! and the committed log.

use crate::node::engine::{ConnId, SessionIn};
use crate::sim::linearizability::{Operation, TreeModel, TreeOp, TreeRet};
use crate::sim::net::Rng;
use std::collections::{BTreeSet, VecDeque};
use warren_client::wire::{
    Answer, Failure, Goodbye, Hello, Read, Refusal, Request, ServerFrame, WatchSet,
};
use warren_client::{
    Acl, ApiError, CreateMode, EventType, Id, Op, OpResult, SessionId, SessionSecret, WatchKind,
    WatchedEvent,
};

/// The keys whose history is checked for linearizability.
pub(crate) const KEYS: usize = 6;

pub(crate) fn key(i: usize) -> String {
    format!("/k{i}")
}

/// A client pings this often.
pub(crate) const PING_EVERY_MS: u64 = 50;
/// ... and moves to another member after this long without a word from
/// its own (as Warren's client does after a few missed pings).
const MOVE_AFTER_MS: u64 = 250;
/// A request unanswered this long while its member still pongs: the
/// client gives up on the connection and moves.
const STUCK_MS: u64 = 5_000;

/// The watches a session keeps: one-shot data watches, or a persistent and
/// a recursive watch on `/` whose every event is checked against the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    OneShot,
    Lasting,
}

/// What a request was, for recording its outcome.
#[derive(Clone, Debug)]
enum Kind {
    /// A write; its history slot if it touches only checked keys.
    Write {
        op: Op,
        slot: Option<usize>,
    },
    /// A linearizable read of a checked key, with its history slot.
    ReadLinearizable {
        slot: usize,
    },
    ReadLocal,
    Sync,
    /// getData with a one-shot watch.
    WatchData {
        path: String,
    },
    /// The recursive watch on `/`, then the persistent one.
    WatchLasting {
        recursive: bool,
    },
    /// The session's watches re-armed after the welcome, since a zxid.
    SetWatches {
        since: u64,
    },
    AddAuth,
}

struct Pending {
    xid: u64,
    kind: Kind,
    sent_at: u64,
}

/// The events a session's lasting watches caught, to check against the
/// log: every trigger in `(from, to]` outside `gaps` must be there, once,
/// in order.
#[derive(Clone, Debug)]
pub(crate) struct LastingRecord {
    pub client: usize,
    pub session: SessionId,
    /// The zxid the recursive watch was set at.
    pub from: u64,
    /// The zxid the persistent watch was set at, once it was.
    pub persistent_from: Option<u64>,
    /// The highest zxid the session was shown.
    pub to: u64,
    pub events: Vec<WatchedEvent>,
    /// Ranges `(a, b]` a member said it could not replay.
    pub gaps: Vec<(u64, u64)>,
}

pub(crate) struct SimClient {
    pub id: usize,
    /// The member it talks to, and the connection (none while idle).
    pub member: usize,
    pub conn: Option<ConnId>,
    welcomed: bool,
    conn_count: u64,
    connected_at: u64,
    pub session: Option<SessionId>,
    /// The secret the session was issued, which resumes it.
    secret: SessionSecret,
    style: Style,
    depth: usize,
    timeout_ms: u32,
    /// The highest zxid this session was shown (answers, events, welcome).
    pub last_zxid: u64,
    /// The highest answer zxid of this session: an event must be newer.
    last_answer_zxid: u64,
    /// The zxid of the last event, which must not go down.
    last_event_zxid: u64,
    next_xid: u64,
    inflight: VecDeque<Pending>,
    last_heard: u64,
    /// Sends nothing (no pings) until then: the session should expire.
    pub quiet_until: u64,
    /// One-shot data watches held.
    one_shot: BTreeSet<String>,
    lasting: Option<LastingRecord>,
    lasting_asked: bool,
    /// A close was sent: nothing more goes out on this session.
    closing: bool,
    /// The watches are re-armed by a SetWatches after the welcome (as
    /// ZooKeeper's clients do), not in the Hello: the zxid they replay
    /// from, until it is answered, and whether it is still to be sent.
    set_since: Option<u64>,
    set_unsent: bool,
    /// Sessions a member said had expired.
    expired: BTreeSet<SessionId>,
    counter: u64,
    pub violations: Vec<String>,
    /// Finished lasting records.
    pub records: Vec<LastingRecord>,
    pub moves: u64,
    pub expiries: u64,
    pub events: u64,
    pub stuck: u64,
}

/// A frame for a member.
pub(crate) struct Send {
    pub member: usize,
    pub input: SessionIn,
}

impl SimClient {
    pub(crate) fn new(id: usize, member: usize, rng: &mut Rng) -> SimClient {
        SimClient {
            id,
            member,
            conn: None,
            welcomed: false,
            conn_count: 0,
            connected_at: 0,
            session: None,
            secret: SessionSecret::default(),
            style: Style::OneShot,
            depth: rng.between(1, 3) as usize,
            timeout_ms: 0,
            last_zxid: 0,
            last_answer_zxid: 0,
            last_event_zxid: 0,
            next_xid: 1,
            inflight: VecDeque::new(),
            last_heard: 0,
            quiet_until: 0,
            one_shot: BTreeSet::new(),
            lasting: None,
            lasting_asked: false,
            closing: false,
            expired: BTreeSet::new(),
            set_since: None,
            set_unsent: false,
            counter: 0,
            violations: Vec::new(),
            records: Vec::new(),
            moves: 0,
            expiries: 0,
            events: 0,
            stuck: 0,
        }
    }

    fn identity(&self) -> Id {
        Id::x509(format!("client-{}", self.id))
    }

    /// Opens a connection to `member`: a new session, or the current one
    /// resumed with what it saw and watches.
    fn connect(&mut self, member: usize, now: u64, rng: &mut Rng) -> Send {
        self.conn_count += 1;
        let conn = ((self.id as u64 + 1) << 32) | self.conn_count;
        self.member = member;
        self.conn = Some(conn);
        self.welcomed = false;
        self.connected_at = now;
        self.last_heard = now;
        let hello = match self.session {
            None => {
                self.style = if rng.chance(0.5) { Style::Lasting } else { Style::OneShot };
                self.timeout_ms = rng.between(800, 2_000) as u32;
                Hello { session: None, timeout_ms: self.timeout_ms, ..Hello::default() }
            }
            Some(session) => {
                // Events delivered so far are in zxid order: a SetWatches
                // cut off replays from its own point or the last of them.
                let since = match self.set_since {
                    Some(since) => since.max(self.last_event_zxid),
                    None => self.last_zxid,
                };
                // A SetWatches cut off before its answer is sent again the
                // same way: the Hello's zxid is what the client saw, later
                // than the changes still to replay.
                let later = self.set_since.is_some() || rng.chance(0.5);
                self.set_since = later.then_some(since);
                self.set_unsent = later;
                Hello {
                    session: Some(session),
                    secret: self.secret,
                    timeout_ms: self.timeout_ms,
                    last_zxid: warren_client::Zxid(self.last_zxid),
                    watches: if later { WatchSet::default() } else { self.watch_set() },
                }
            }
        };
        let identity = self.identity();
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        secret[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let secret = SessionSecret(secret);
        Send { member, input: SessionIn::Open { conn, identity, hello: Box::new(hello), secret } }
    }

    /// The watches the session holds.
    fn watch_set(&self) -> WatchSet {
        let recursive = self.lasting.is_some();
        let persistent = self.lasting.as_ref().is_some_and(|r| r.persistent_from.is_some());
        let root = || vec!["/".to_string()];
        WatchSet {
            data: self.one_shot.iter().cloned().collect(),
            persistent: if persistent { root() } else { Vec::new() },
            recursive: if recursive { root() } else { Vec::new() },
            ..WatchSet::default()
        }
    }

    /// Leaves the current connection (what is in flight has an unknown
    /// outcome) and connects to another member.
    fn move_on(
        &mut self,
        members: usize,
        now: u64,
        rng: &mut Rng,
        history: &mut [Operation<TreeModel>],
    ) -> Vec<Send> {
        let mut out = Vec::new();
        if let Some(conn) = self.conn.take() {
            out.push(Send { member: self.member, input: SessionIn::Gone { conn } });
        }
        if self.session.is_some() {
            self.moves += 1;
        }
        self.lose_inflight(now, history);
        self.closing = false;
        if self.session.is_none() {
            self.end_session_watches();
        }
        let next = (self.member + 1 + rng.below(members as u64 - 1) as usize) % members;
        out.push(self.connect(next, now, rng));
        out
    }

    fn lose_inflight(&mut self, now: u64, history: &mut [Operation<TreeModel>]) {
        for pending in std::mem::take(&mut self.inflight) {
            match pending.kind {
                // A write's outcome is unknown: left indeterminate.
                Kind::Write { .. } => {}
                Kind::ReadLinearizable { slot } => no_op(history, slot, now),
                _ => {}
            }
        }
    }

    fn end_session_watches(&mut self) {
        self.closing = false;
        self.set_since = None;
        self.set_unsent = false;
        self.one_shot.clear();
        if let Some(record) = self.lasting.take() {
            self.records.push(record);
        }
        self.lasting_asked = false;
    }

    /// The periodic timer: pings, and moves off a silent member.
    pub(crate) fn tick(
        &mut self,
        members: usize,
        now: u64,
        rng: &mut Rng,
        history: &mut [Operation<TreeModel>],
        stopped: bool,
    ) -> Vec<Send> {
        if now < self.quiet_until {
            return Vec::new();
        }
        let Some(conn) = self.conn else {
            if stopped && self.session.is_none() {
                return Vec::new();
            }
            let next = (self.member + 1 + rng.below(members as u64 - 1) as usize) % members;
            return vec![self.connect(next, now, rng)];
        };
        let stuck = self.inflight.front().is_some_and(|p| now - p.sent_at > STUCK_MS);
        if stuck {
            self.stuck += 1;
        }
        let silent = now - self.last_heard > MOVE_AFTER_MS;
        let unwelcomed = !self.welcomed && now - self.connected_at > 4 * MOVE_AFTER_MS;
        if silent || stuck || unwelcomed {
            return self.move_on(members, now, rng, history);
        }
        if self.welcomed {
            vec![Send { member: self.member, input: SessionIn::Ping { conn } }]
        } else {
            Vec::new()
        }
    }

    /// Issues requests up to the client's pipeline depth.
    pub(crate) fn wake(
        &mut self,
        members: usize,
        now: u64,
        rng: &mut Rng,
        history: &mut Vec<Operation<TreeModel>>,
        stopped: bool,
    ) -> Vec<Send> {
        let (Some(conn), true) = (self.conn, self.welcomed) else { return Vec::new() };
        if now < self.quiet_until || stopped || self.closing {
            return Vec::new();
        }
        let mut out = Vec::new();
        if rng.chance(0.004) {
            // Go quiet for longer than the session lives.
            self.quiet_until = now + u64::from(self.timeout_ms) * 2;
            return out;
        }
        if self.inflight.is_empty() && rng.chance(0.01) {
            return self.move_on(members, now, rng, history);
        }
        if self.set_unsent
            && let Some(since) = self.set_since
        {
            // First on the new connection, before anything else is asked.
            self.set_unsent = false;
            let xid = self.next_xid;
            self.next_xid += 1;
            let request = Request::SetWatches {
                last_zxid: warren_client::Zxid(since),
                watches: self.watch_set(),
            };
            self.inflight.push_back(Pending {
                xid,
                kind: Kind::SetWatches { since },
                sent_at: now,
            });
            out.push(Send {
                member: self.member,
                input: SessionIn::Request { conn, xid, request },
            });
        }
        while self.inflight.len() < self.depth {
            if rng.chance(0.01) && self.inflight.is_empty() {
                out.push(Send { member: self.member, input: SessionIn::Close { conn } });
                // Nothing more on this session; the answer ends it.
                self.closing = true;
                break;
            }
            let (request, kind) = self.choose(now, rng, history);
            let xid = self.next_xid;
            self.next_xid += 1;
            self.inflight.push_back(Pending { xid, kind, sent_at: now });
            out.push(Send {
                member: self.member,
                input: SessionIn::Request { conn, xid, request },
            });
        }
        out
    }

    fn choose(
        &mut self,
        now: u64,
        rng: &mut Rng,
        history: &mut Vec<Operation<TreeModel>>,
    ) -> (Request, Kind) {
        let mut record = |op: TreeOp| {
            history.push(Operation::indeterminate(self.id as u64, now, op));
            history.len() - 1
        };
        if self.style == Style::Lasting && !self.lasting_asked {
            // The recursive watch first; the persistent one once it is set.
            let recursive = self.lasting.is_none();
            if recursive || self.lasting.as_ref().is_some_and(|r| r.persistent_from.is_none()) {
                self.lasting_asked = true;
                let kind =
                    if recursive { WatchKind::PersistentRecursive } else { WatchKind::Persistent };
                let request = Request::AddWatch { path: "/".into(), kind };
                return (request, Kind::WatchLasting { recursive });
            }
        }
        self.counter += 1;
        let data = format!("c{}-{}", self.id, self.counter).into_bytes();
        let path = key(rng.below(KEYS as u64) as usize);
        let version = if rng.chance(0.5) { None } else { Some(rng.below(3) as i32) };
        let write = |op: Op, slot| (Request::Write(op.clone()), Kind::Write { op, slot });
        match rng.below(100) {
            0..=19 => {
                let op = Op::Create {
                    path: path.clone(),
                    data: data.clone(),
                    acl: Acl::open(),
                    mode: CreateMode::Persistent,
                };
                write(op, Some(record(TreeOp::Create { path, data })))
            }
            20..=44 => {
                let op = Op::SetData { path: path.clone(), data: data.clone(), version };
                write(op, Some(record(TreeOp::SetData { path, data, version })))
            }
            45..=54 => {
                let op = Op::Delete { path: path.clone(), version };
                write(op, Some(record(TreeOp::Delete { path, version })))
            }
            55..=59 => {
                // Over a pair of keys ({k0, k1}, {k2, k3}, ...), so that the
                // history splits into independent parts for the checker.
                let i = rng.below(KEYS as u64) as usize;
                let path = key(i);
                let other = key(i ^ usize::from(rng.chance(0.5)));
                let ops = vec![
                    Op::Check { path: path.clone(), version },
                    Op::SetData { path: other.clone(), data: data.clone(), version: None },
                ];
                let model = TreeOp::Multi(vec![
                    TreeOp::Check { path, version },
                    TreeOp::SetData { path: other, data, version: None },
                ]);
                write(Op::Multi(ops), Some(record(model)))
            }
            60..=64 => {
                // Not checked: sequential and ephemeral nodes elsewhere.
                let mode = if rng.chance(0.5) {
                    CreateMode::EphemeralSequential
                } else {
                    CreateMode::PersistentSequential
                };
                write(Op::Create { path: "/q-".into(), data, acl: Acl::open(), mode }, None)
            }
            65..=79 => {
                let slot = record(TreeOp::Get { path: path.clone() });
                let read = Read::GetData { path, watch: false };
                (Request::Read { read, linearizable: true }, Kind::ReadLinearizable { slot })
            }
            80..=89 if self.style == Style::OneShot && !self.one_shot.contains(&path) => {
                let read = Read::GetData { path: path.clone(), watch: true };
                (Request::Read { read, linearizable: false }, Kind::WatchData { path })
            }
            90..=92 => (Request::Sync { path: "/".into() }, Kind::Sync),
            93 => {
                let auth = format!("client{}:pw", self.id).into_bytes();
                (Request::AddAuth { scheme: "digest".into(), auth }, Kind::AddAuth)
            }
            _ => {
                let read = Read::GetData { path, watch: false };
                (Request::Read { read, linearizable: false }, Kind::ReadLocal)
            }
        }
    }

    /// A frame arrived on connection `conn`.
    pub(crate) fn on_frame(
        &mut self,
        conn: ConnId,
        frame: ServerFrame,
        now: u64,
        history: &mut [Operation<TreeModel>],
    ) -> Vec<Send> {
        if self.conn != Some(conn) {
            return Vec::new(); // a connection already left
        }
        self.last_heard = now;
        match frame {
            ServerFrame::Welcome(welcome) => {
                if self.expired.contains(&welcome.session) {
                    self.violations.push(format!(
                        "client {}: session {} welcomed after it expired",
                        self.id, welcome.session
                    ));
                }
                if welcome.zxid.0 < self.last_zxid {
                    self.violations.push(format!(
                        "client {}: welcomed by n{} at zxid {} behind the {} it saw",
                        self.id,
                        self.member + 1,
                        welcome.zxid,
                        self.last_zxid
                    ));
                }
                if self.session.is_none() {
                    self.last_zxid = 0;
                    self.last_answer_zxid = 0;
                    self.last_event_zxid = 0;
                }
                if welcome.events_lost
                    && let Some(record) = &mut self.lasting
                {
                    record.gaps.push((self.last_zxid, welcome.zxid.0));
                }
                self.session = Some(welcome.session);
                self.secret = welcome.secret;
                self.welcomed = true;
                if self.set_since.is_some() {
                    // The missed events come with the SetWatches' answer:
                    // the lasting record reaches this far only then.
                    self.last_zxid = self.last_zxid.max(welcome.zxid.0);
                } else {
                    self.see(welcome.zxid.0);
                }
            }
            ServerFrame::Response { xid, zxid, result } => {
                let Some(front) = self.inflight.pop_front() else {
                    self.violations
                        .push(format!("client {}: an answer to nothing ({xid})", self.id));
                    return Vec::new();
                };
                if front.xid != xid {
                    self.violations.push(format!(
                        "client {}: answer {xid} came before answer {} (not in request order)",
                        self.id, front.xid
                    ));
                }
                if zxid.0 < self.last_answer_zxid {
                    self.violations.push(format!(
                        "client {}: an answer at zxid {zxid} after one at {} (back in time)",
                        self.id, self.last_answer_zxid
                    ));
                }
                self.last_answer_zxid = self.last_answer_zxid.max(zxid.0);
                self.see(zxid.0);
                self.answered(front.kind, zxid.0, result, now, history);
            }
            ServerFrame::Event(event) => self.on_event(event),
            ServerFrame::Pong => {}
            ServerFrame::Closed => {
                self.session = None;
                self.conn = None;
                self.lose_inflight(now, history);
                self.end_session_watches();
                self.quiet_until = 0;
            }
            ServerFrame::Goodbye(Goodbye::Expired { session })
            | ServerFrame::Refused(Refusal::Expired { session }) => {
                self.expired.insert(session);
                self.expiries += 1;
                self.session = None;
                self.conn = None;
                self.lose_inflight(now, history);
                self.end_session_watches();
            }
            ServerFrame::Goodbye(_) | ServerFrame::Refused(_) => {
                // An open refused may or may not have made a session; it
                // expires if it did. The next tick connects to another
                // member (a pause, as a client that was sent away waits
                // before trying again).
                self.conn = None;
                self.closing = false;
                if self.session.is_some() {
                    self.moves += 1;
                }
                self.lose_inflight(now, history);
            }
        }
        Vec::new()
    }

    /// The connection ended without a word (a member restarted).
    pub(crate) fn on_closed(
        &mut self,
        conn: ConnId,
        members: usize,
        now: u64,
        rng: &mut Rng,
        history: &mut [Operation<TreeModel>],
    ) -> Vec<Send> {
        if self.conn != Some(conn) {
            return Vec::new();
        }
        self.conn = None;
        self.move_on(members, now, rng, history)
    }

    fn see(&mut self, zxid: u64) {
        self.last_zxid = self.last_zxid.max(zxid);
        if let Some(record) = &mut self.lasting {
            record.to = record.to.max(zxid);
        }
    }

    fn on_event(&mut self, event: WatchedEvent) {
        self.events += 1;
        if event.zxid.0 < self.last_event_zxid {
            self.violations.push(format!(
                "client {}: event {:?} {} at zxid {} after one at {} (out of order)",
                self.id, event.event, event.path, event.zxid, self.last_event_zxid
            ));
        }
        if event.zxid.0 <= self.last_answer_zxid
            && !(event.zxid.0 == self.last_answer_zxid && self.last_answer_zxid == 0)
        {
            self.violations.push(format!(
                "client {}: event {:?} {} at zxid {} after an answer at {} that reflects it",
                self.id, event.event, event.path, event.zxid, self.last_answer_zxid
            ));
        }
        self.last_event_zxid = self.last_event_zxid.max(event.zxid.0);
        match self.style {
            Style::OneShot => {
                let data_event = event.event != EventType::NodeChildrenChanged;
                if !(data_event && self.one_shot.remove(&event.path)) {
                    self.violations.push(format!(
                        "client {}: event {:?} {} at zxid {} with no watch for it (a one-shot watch fired twice?)",
                        self.id, event.event, event.path, event.zxid
                    ));
                }
            }
            Style::Lasting => match &mut self.lasting {
                Some(record) => record.events.push(event.clone()),
                None => self.violations.push(format!(
                    "client {}: event {:?} {} before its watch was set",
                    self.id, event.event, event.path
                )),
            },
        }
        self.see(event.zxid.0);
    }

    fn answered(
        &mut self,
        kind: Kind,
        zxid: u64,
        result: Result<Answer, Failure>,
        now: u64,
        history: &mut [Operation<TreeModel>],
    ) {
        match kind {
            Kind::Write { op, slot } => {
                let Some(slot) = slot else { return };
                match result {
                    Ok(Answer::Write(Err(ApiError::SessionExpired { .. }))) => {
                        // Refused before touching the tree.
                        no_op(history, slot, now);
                    }
                    Ok(Answer::Write(reply)) => {
                        complete(history, slot, now, model_ret(&op, &reply));
                    }
                    Err(Failure::OutcomeUnknown { .. }) => {}
                    Ok(_) | Err(_) => no_op(history, slot, now),
                }
            }
            Kind::ReadLinearizable { slot } => match result {
                Ok(Answer::Data { data, stat }) => {
                    complete(history, slot, now, TreeRet::Value(Some((data, stat.version))))
                }
                Err(Failure::Api(ApiError::NoNode { .. })) => {
                    complete(history, slot, now, TreeRet::Value(None))
                }
                _ => no_op(history, slot, now),
            },
            Kind::WatchData { path } => {
                if matches!(result, Ok(Answer::Data { .. })) {
                    self.one_shot.insert(path);
                }
            }
            Kind::WatchLasting { recursive } => {
                self.lasting_asked = false;
                match (result, &mut self.lasting) {
                    (Ok(Answer::Watching), None) if recursive => {
                        let session = self.session.unwrap_or(SessionId(0));
                        self.lasting = Some(LastingRecord {
                            client: self.id,
                            session,
                            from: zxid,
                            persistent_from: None,
                            to: zxid,
                            events: Vec::new(),
                            gaps: Vec::new(),
                        });
                    }
                    (Ok(Answer::Watching), Some(record)) if !recursive => {
                        record.persistent_from = Some(zxid);
                    }
                    _ => {}
                }
            }
            Kind::SetWatches { since } => match result {
                Ok(Answer::WatchesSet { events_lost }) => {
                    self.set_since = None;
                    if events_lost && let Some(record) = &mut self.lasting {
                        record.gaps.push((since, zxid));
                    }
                }
                other => self
                    .violations
                    .push(format!("client {}: setWatches answered with {other:?}", self.id)),
            },
            Kind::AddAuth => match result {
                Ok(Answer::Authenticated)
                | Err(Failure::OutcomeUnknown { .. } | Failure::Unavailable { .. }) => {}
                other => self
                    .violations
                    .push(format!("client {}: addAuth answered with {other:?}", self.id)),
            },
            Kind::ReadLocal | Kind::Sync => {}
        }
    }

    /// One line on the client, for traces.
    pub(crate) fn status(&self) -> String {
        format!(
            "client {}: n{} conn {:?} welcomed {} session {:?} quiet until {} closing {} in flight {:?}",
            self.id,
            self.member + 1,
            self.conn,
            self.welcomed,
            self.session,
            self.quiet_until,
            self.closing,
            self.inflight.iter().map(|p| (p.xid, p.sent_at)).collect::<Vec<_>>()
        )
    }

    /// Whether the client waits for nothing (the run may converge).
    pub(crate) fn is_idle(&self) -> bool {
        self.inflight.is_empty()
    }

    /// The run is over: every lasting record, finished or not.
    pub(crate) fn finish(&mut self) {
        self.end_session_watches();
    }
}

/// Turns an operation that had no effect into an empty multi, which the
/// model accepts anywhere between its invocation and now.
fn no_op(history: &mut [Operation<TreeModel>], slot: usize, now: u64) {
    history[slot].op = TreeOp::Multi(Vec::new());
    complete(history, slot, now, TreeRet::Multi(Vec::new()));
}

fn complete(history: &mut [Operation<TreeModel>], slot: usize, now: u64, ret: TreeRet) {
    history[slot].complete = Some(now);
    history[slot].ret = Some(ret);
}

/// The checker's view of a write's reply.
fn model_ret(op: &Op, reply: &Result<OpResult, ApiError>) -> TreeRet {
    match reply {
        Ok(OpResult::Create { .. }) => TreeRet::Created,
        Ok(OpResult::SetData { stat }) => TreeRet::Set { version: stat.version },
        Ok(OpResult::Delete) => TreeRet::Deleted,
        Ok(OpResult::Check) => TreeRet::Checked,
        Ok(OpResult::SetAcl { .. }) => TreeRet::Checked,
        Ok(OpResult::Invoked { .. } | OpResult::Plugin(_) | OpResult::PluginRemoved) => {
            unreachable!("the simulator sends no plugin operations")
        }
        Ok(OpResult::Multi(results)) => TreeRet::Multi(
            results
                .iter()
                .zip(match op {
                    Op::Multi(ops) => ops.as_slice(),
                    _ => &[],
                })
                .map(|(r, op)| model_ret(op, &Ok(r.clone())))
                .collect(),
        ),
        Err(ApiError::Multi { index, error }) => {
            TreeRet::MultiErr { index: *index, code: error.code() }
        }
        Err(e) => TreeRet::Err(e.code()),
    }
}

/// The client a connection belongs to.
pub(crate) fn client_of(conn: ConnId) -> usize {
    ((conn >> 32) - 1) as usize
}

/// Whether a session's lasting watches catch a change: the recursive
/// watch on `/` every change but children changes, the persistent one on
/// `/` those of `/` too, once it is set.
pub(crate) fn lasting_catches(
    record: &LastingRecord,
    zxid: u64,
    event: EventType,
    path: &str,
) -> bool {
    event != EventType::NodeChildrenChanged
        || (path == "/" && record.persistent_from.is_some_and(|from| zxid > from))
}
