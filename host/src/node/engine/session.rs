//! The session layer: connections and the sessions attached to them, in
//! protocol-neutral terms ([`SessionIn`] in, `ServerFrame`s out), so that
//! every front end (Warren's CBOR over QUIC, ZooKeeper's jute) shares one
//! set of session rules.
//!
//! Per local session a FIFO of slots (a write waiting for its index, a read
//! waiting to reach the front or for its read index, a done answer), so
//! answers leave in request order and an event always before an answer
//! that reflects its change. Opening proposes a session; resuming checks
//! the session lives and that this member has applied what the client saw,
//! re-arms its watches (firing what changed meanwhile) and replays, below
//! its recursive watches, the recent triggers it missed while it moved.

use super::{Engine, Output, Waiter};
use crate::consensus::{LogIndex, ReadState};
use crate::limits::{RECENT_TRIGGERS_MAX, SESSION_REQUESTS_MAX};
use crate::state::SecretHash;
use crate::{Command, Rearm, Response, StateMachine, Trigger};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use warren_client::wire::{
    Answer, Failure, Goodbye, Hello, Read, Refusal, Request, ServerFrame, ServerStatus, WatchSet,
    Welcome,
};
use warren_client::{
    ApiError, EventType, Id, SessionId, SessionSecret, WatchKind, WatchedEvent, Zxid,
};

/// A client connection (one session at most), named by its driver.
pub type ConnId = u64;

/// What a front end tells the session layer.
#[derive(Debug)]
pub enum SessionIn {
    /// A connection asks to open a session or resume one; `identity` is
    /// what the transport proved (the certificate's subject); `secret` is
    /// fresh from the driver's random source, the secret a new session is
    /// issued (unused on a resume).
    Open {
        conn: ConnId,
        identity: Id,
        hello: Box<Hello>,
        secret: SessionSecret,
    },
    Request {
        conn: ConnId,
        xid: u64,
        request: Request,
    },
    Ping {
        conn: ConnId,
    },
    /// Close the session: its ephemerals go.
    Close {
        conn: ConnId,
    },
    /// The front end could not make sense of what the client sent.
    Bad {
        conn: ConnId,
        why: String,
    },
    /// The connection ended.
    Gone {
        conn: ConnId,
    },
}

struct Conn {
    identity: Id,
    session: Option<SessionId>,
}

/// A session connected to this member, with its answers in request order.
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
    /// ... then for this member to apply up to the index.
    ReadAt(Request, LogIndex),
    Done(Result<Answer, Failure>),
}

/// The session layer's state. See the module docs.
pub(super) struct Sessions {
    conns: BTreeMap<ConnId, Conn>,
    locals: BTreeMap<SessionId, Local>,
    /// Read-index requests by context: the session, the request, and when
    /// it was asked (monotonic ms).
    reads: BTreeMap<u64, (SessionId, u64, u64)>,
    next_ctx: u64,
    /// The latest triggers applied here, oldest first: every trigger after
    /// `recent_floor`.
    recent: VecDeque<Trigger>,
    recent_floor: Zxid,
}

impl Sessions {
    pub fn new(applied: Zxid, seed: u64) -> Sessions {
        Sessions {
            conns: BTreeMap::new(),
            locals: BTreeMap::new(),
            reads: BTreeMap::new(),
            // Random, so that an answer meant for a read of this member's
            // previous run cannot be taken for one of this run's.
            next_ctx: seed.rotate_left(11) | 1,
            recent: VecDeque::new(),
            recent_floor: applied,
        }
    }

    /// The state was replaced from a snapshot at `applied`: nothing before
    /// it can be replayed.
    pub fn reset_recent(&mut self, applied: Zxid) {
        self.recent.clear();
        self.recent_floor = applied;
    }
}

impl Engine {
    pub(super) fn session_input(&mut self, input: SessionIn) {
        match input {
            SessionIn::Open { conn, identity, hello, secret } => {
                self.sessions.conns.insert(conn, Conn { identity, session: None });
                self.open(conn, *hello, secret);
            }
            SessionIn::Request { conn, xid, request } => {
                if let Some(session) = self.heard(conn) {
                    self.request(session, conn, xid, request);
                }
            }
            SessionIn::Ping { conn } => {
                if self.heard(conn).is_some() {
                    self.out.push(Output::Session { conn, frame: ServerFrame::Pong });
                }
            }
            SessionIn::Close { conn } => {
                if let Some(session) = self.heard(conn) {
                    self.propose(Waiter::Close { session }, Command::CloseSession { session });
                }
            }
            SessionIn::Bad { conn, why } => self.drop_conn(conn, Some(Goodbye::BadFrame(why))),
            SessionIn::Gone { conn } => self.gone(conn),
        }
    }

    /// The session of `conn`, marked as heard from.
    fn heard(&mut self, conn: ConnId) -> Option<SessionId> {
        let session = self.sessions.conns.get(&conn)?.session?;
        self.expiry.heard(session);
        Some(session)
    }

    fn open(&mut self, conn: ConnId, hello: Hello, fresh: SessionSecret) {
        let Some(c) = self.sessions.conns.get(&conn) else { return };
        let identity = c.identity.clone();
        let applied = self.applied_zxid();
        let Some(session) = hello.session else {
            // A client that has seen more than this member has applied goes
            // elsewhere, for a new session as for a resume (below), as
            // ZooKeeper's servers refuse it: it never reads back in time.
            if hello.last_zxid > applied && !self.bugs.serves_behind {
                self.refuse(conn, Refusal::Behind { server: applied, client: hello.last_zxid });
                return;
            }
            // Proposed through the leader once one is known (the forward
            // fails if none is in time): a cluster starting up opens
            // sessions as soon as it elects one.
            let t = self.options.timing;
            let timeout_ms =
                hello.timeout_ms.clamp(t.session_timeout_min_ms, t.session_timeout_max_ms);
            let secret = Some(SecretHash::of(&fresh));
            let command = Command::CreateSession { timeout_ms, auth: vec![identity], secret };
            self.propose(Waiter::Open { conn, secret: fresh }, command);
            return;
        };
        let refusal = if !self.in_touch() {
            // A session moving here would wait for a leader this member
            // cannot reach: it should go on to another.
            Some(Refusal::NoLeader)
        } else if hello.last_zxid > applied && !self.bugs.serves_behind {
            Some(Refusal::Behind { server: applied, client: hello.last_zxid })
        } else {
            match self.sm.session(session) {
                None if self.bugs.resumes_expired => None,
                None => Some(Refusal::Expired { session }),
                // A session is resumed by its secret; one opened before
                // sessions had secrets, by the identity that opened it.
                Some(s) => {
                    let owner = match &s.secret {
                        Some(hash) => hash.matches(&hello.secret),
                        None => s.auth.contains(&identity),
                    };
                    (!owner).then_some(Refusal::WrongSecret { session })
                }
            }
        };
        if let Some(refusal) = refusal {
            self.refuse(conn, refusal);
            return;
        }
        // The session moves here: a connection of it already here is
        // replaced.
        if let Some(old) = self.sessions.locals.remove(&session) {
            if let Some(old_conn) = self.sessions.conns.get_mut(&old.conn) {
                old_conn.session = None;
            }
            self.drop_conn(old.conn, None);
        }
        self.watches.remove_session(session);
        match self.rearm(session, hello.last_zxid, &hello.watches) {
            Ok((events, events_lost)) => {
                let welcome = Welcome {
                    session,
                    secret: hello.secret,
                    timeout_ms: 0,
                    server: self.id,
                    zxid: applied,
                    events_lost,
                };
                self.welcome(conn, welcome, events)
            }
            Err(e) => self.drop_conn(conn, Some(Goodbye::BadFrame(e.to_string()))),
        }
    }

    /// Re-arms a resumed session's watches. Persistent and recursive
    /// watches get every change they would have caught since the client's
    /// last zxid, each once and in zxid order, replayed from the recent
    /// triggers when they reach back that far; otherwise they report their
    /// own path's latest change and the session is told events were lost.
    /// One-shot watches fire at once if their condition changed meanwhile
    /// (ZooKeeper's setWatches), after the replayed events.
    fn rearm(
        &mut self,
        session: SessionId,
        last_zxid: Zxid,
        w: &WatchSet,
    ) -> Result<(Vec<WatchedEvent>, bool), warren_client::ApiError> {
        let lasting = !w.persistent.is_empty() || !w.recursive.is_empty();
        let replay = last_zxid >= self.sessions.recent_floor;
        let mut rearm = Rearm {
            last_zxid,
            data: w.data.clone(),
            exist: w.exist.clone(),
            child: w.child.clone(),
            persistent: Vec::new(),
            recursive: Vec::new(),
        };
        let mut events = Vec::new();
        if replay {
            events = self.missed(session, last_zxid, w);
            for path in &w.persistent {
                self.watches.add(session, path, WatchKind::Persistent)?;
            }
            for path in &w.recursive {
                self.watches.add(session, path, WatchKind::PersistentRecursive)?;
            }
        } else {
            rearm.persistent = w.persistent.clone();
            rearm.recursive = w.recursive.clone();
        }
        events.extend(self.watches.rearm(session, &rearm, &self.sm)?);
        Ok((events, lasting && !replay))
    }

    /// What the session's persistent and recursive watches would have
    /// caught after the client's last zxid, from the recent triggers
    /// (which hold every trigger after `recent_floor`).
    fn missed(&self, session: SessionId, since: Zxid, w: &WatchSet) -> Vec<WatchedEvent> {
        if w.persistent.is_empty() && w.recursive.is_empty() {
            return Vec::new();
        }
        let auth = self.sm.session(session).map_or_else(Vec::new, |s| s.auth.to_vec());
        let caught = |t: &Trigger| {
            w.persistent.iter().any(|p| *t.path == **p)
                || (t.event != EventType::NodeChildrenChanged
                    && w.recursive.iter().any(|root| {
                        *t.path == **root || warren_client::path_is_under(&t.path, root)
                    }))
        };
        let skip = usize::from(self.bugs.replay_skips_one);
        self.sessions
            .recent
            .iter()
            .filter(|t| t.zxid > since && caught(t))
            .filter(|t| StateMachine::may_read(&t.acl, &auth))
            .skip(skip)
            .map(|t| WatchedEvent { event: t.event, path: t.path.to_string(), zxid: t.zxid })
            .collect()
    }

    fn refuse(&mut self, conn: ConnId, refusal: Refusal) {
        self.sessions.conns.remove(&conn);
        self.out.push(Output::Session { conn, frame: ServerFrame::Refused(refusal) });
        self.out.push(Output::Close { conn });
    }

    /// Attaches the welcomed session to `conn`, welcomes it (with the
    /// session's timeout filled in), and sends the events its re-armed
    /// watches fired.
    fn welcome(&mut self, conn: ConnId, mut welcome: Welcome, events: Vec<WatchedEvent>) {
        let session = welcome.session;
        let Some(c) = self.sessions.conns.get_mut(&conn) else { return };
        c.session = Some(session);
        welcome.timeout_ms = self.sm.session(session).map_or(0, |s| s.timeout_ms);
        self.out.push(Output::Session { conn, frame: ServerFrame::Welcome(welcome) });
        self.send_events(conn, events);
        self.sessions.locals.insert(session, Local { conn, queue: VecDeque::new() });
        self.expiry.heard(session);
    }

    fn send_events(&mut self, conn: ConnId, events: Vec<WatchedEvent>) {
        self.counters.events += events.len() as u64;
        for event in events {
            self.out.push(Output::Session { conn, frame: ServerFrame::Event(event) });
        }
    }

    fn request(&mut self, session: SessionId, conn: ConnId, xid: u64, request: Request) {
        let Some(local) = self.sessions.locals.get_mut(&session) else { return };
        if local.queue.len() >= 2 * SESSION_REQUESTS_MAX {
            let pending = 2 * SESSION_REQUESTS_MAX;
            self.drop_conn(conn, Some(Goodbye::TooSlow { pending }));
            return;
        }
        if local.queue.len() >= SESSION_REQUESTS_MAX {
            let failure = Failure::Throttled { max: SESSION_REQUESTS_MAX };
            local.queue.push_back(Slot { xid, state: SlotState::Done(Err(failure)) });
            self.flush(session);
            return;
        }
        match request {
            Request::Write(op) => {
                local.queue.push_back(Slot { xid, state: SlotState::Write });
                self.propose(Waiter::Request { session, xid }, Command::Request { session, op });
            }
            Request::AddAuth { scheme, auth } => {
                match auth_identity(&scheme, &auth, self.options.superuser_digest.as_deref()) {
                    Ok(id) => {
                        local.queue.push_back(Slot { xid, state: SlotState::Write });
                        let command = Command::AddAuth { session, id };
                        self.propose(Waiter::Request { session, xid }, command);
                    }
                    Err(e) => {
                        local.queue.push_back(Slot { xid, state: SlotState::Done(Err(e)) });
                        self.flush(session);
                    }
                }
            }
            request @ (Request::Sync { .. } | Request::Read { linearizable: true, .. })
                if !self.bugs.reads_skip_read_index =>
            {
                local.queue.push_back(Slot { xid, state: SlotState::ReadIndex(request) });
                self.ask_read_index(session, xid);
            }
            request => {
                local.queue.push_back(Slot { xid, state: SlotState::Read(request) });
                self.flush(session);
            }
        }
    }

    /// A connection ended: its session stays (until it expires or the
    /// client comes back), its watches here go.
    fn gone(&mut self, conn: ConnId) {
        let Some(c) = self.sessions.conns.remove(&conn) else { return };
        if let Some(session) = c.session
            && self.sessions.locals.get(&session).is_some_and(|l| l.conn == conn)
        {
            self.sessions.locals.remove(&session);
            self.watches.remove_session(session);
            self.expiry.forget_local(session);
        }
    }

    /// Ends a connection from this side, telling it why.
    fn drop_conn(&mut self, conn: ConnId, why: Option<Goodbye>) {
        if let Some(why) = why {
            self.out.push(Output::Session { conn, frame: ServerFrame::Goodbye(why) });
        }
        if self.sessions.conns.contains_key(&conn) {
            self.out.push(Output::Close { conn });
        }
        self.gone(conn);
    }

    /// Every local session is told to move (this member lost its leader),
    /// and every write waiting here fails: its outcome is unknown.
    pub(super) fn shed_sessions(&mut self) {
        for waiter in self.proposals.drain() {
            let why = "this server lost contact with the leader".to_string();
            self.fail(waiter, Failure::OutcomeUnknown { why });
        }
        let conns: Vec<ConnId> = self.sessions.conns.keys().copied().collect();
        for conn in conns {
            self.drop_conn(conn, Some(Goodbye::NoLeader));
        }
    }

    /// The state was replaced by a snapshot: every connection is asked to
    /// reconnect, which re-arms its watches against the new state.
    pub(super) fn resync_sessions(&mut self) {
        let conns: Vec<ConnId> = self.sessions.conns.keys().copied().collect();
        for conn in conns {
            self.drop_conn(conn, Some(Goodbye::Resync));
        }
    }

    /// A session ended (closed or expired) by an applied entry.
    pub(super) fn session_ended(&mut self, session: SessionId) {
        self.watches.remove_session(session);
        if let Some(local) = self.sessions.locals.remove(&session) {
            self.expiry.forget_local(session);
            if let Some(conn) = self.sessions.conns.get_mut(&local.conn) {
                conn.session = None;
            }
            self.drop_conn(local.conn, Some(Goodbye::Expired { session }));
        }
    }

    /// Fires the watches of an applied entry's triggers and keeps the
    /// triggers to replay for clients that move here.
    /// `closing` is a session the entry closed, with its identities: its
    /// watches still fire for the entry's own changes.
    pub(super) fn fire(&mut self, triggers: Vec<Trigger>, closing: Option<(SessionId, Arc<[Id]>)>) {
        let sm = &self.sm;
        let auth = |s: SessionId| match sm.session(s) {
            Some(x) => Some(&*x.auth),
            None => closing.as_ref().filter(|(c, _)| *c == s).map(|(_, auth)| &**auth),
        };
        for trigger in &triggers {
            let fired = self.watches.fire(trigger, auth);
            for (session, event) in fired {
                if let Some(local) = self.sessions.locals.get(&session) {
                    self.counters.events += 1;
                    let frame = ServerFrame::Event(event);
                    self.out.push(Output::Session { conn: local.conn, frame });
                }
            }
        }
        let recent = &mut self.sessions;
        for trigger in triggers {
            if recent.recent.len() >= RECENT_TRIGGERS_MAX
                && let Some(old) = recent.recent.pop_front()
            {
                recent.recent_floor = old.zxid;
            }
            recent.recent.push_back(trigger);
        }
    }

    pub(super) fn complete(&mut self, waiter: Waiter, index: LogIndex, response: Response) {
        match waiter {
            Waiter::Request { session, xid } => {
                let result = match response {
                    Response::Reply(reply) => Ok(Answer::Write(reply)),
                    // An identity added (or why not).
                    Response::Done(Ok(())) => Ok(Answer::Authenticated),
                    Response::Done(Err(e)) => Err(Failure::Api(e)),
                    other => Err(Failure::Unavailable { why: format!("unexpected {other:?}") }),
                };
                self.answer(session, xid, result);
            }
            Waiter::Open { conn, secret } => {
                let Response::SessionCreated(session) = response else {
                    if let Response::Done(Err(e)) = response
                        && self.sessions.conns.contains_key(&conn)
                    {
                        self.refuse(conn, Refusal::Failed(Failure::Api(e)));
                    }
                    return;
                };
                // A client that left before its session opened is not
                // welcomed; the session expires on its own.
                let welcome = Welcome {
                    session,
                    secret,
                    timeout_ms: 0,
                    server: self.id,
                    zxid: Zxid(index.0),
                    events_lost: false,
                };
                self.welcome(conn, welcome, Vec::new());
            }
            Waiter::Close { session } => {
                if let Some(local) = self.sessions.locals.remove(&session) {
                    self.expiry.forget_local(session);
                    if let Some(conn) = self.sessions.conns.get_mut(&local.conn) {
                        conn.session = None;
                    }
                    let conn = local.conn;
                    self.out.push(Output::Session { conn, frame: ServerFrame::Closed });
                    self.out.push(Output::Close { conn });
                    self.sessions.conns.remove(&conn);
                }
                self.watches.remove_session(session);
            }
            Waiter::Internal => {}
        }
    }

    pub(super) fn fail(&mut self, waiter: Waiter, failure: Failure) {
        match waiter {
            Waiter::Request { session, xid } => self.answer(session, xid, Err(failure)),
            Waiter::Open { conn, .. } => {
                if self.sessions.conns.contains_key(&conn) {
                    self.refuse(conn, Refusal::Failed(failure));
                }
            }
            Waiter::Close { session } => {
                // The close did not happen; the client may send it again.
                if let Some(local) = self.sessions.locals.get(&session) {
                    let conn = local.conn;
                    self.drop_conn(conn, Some(Goodbye::Unavailable(failure.to_string())));
                }
            }
            Waiter::Internal => {}
        }
    }

    /// Marks the request `xid` of `session` answered and sends what is
    /// ready at the front of its queue.
    fn answer(&mut self, session: SessionId, xid: u64, result: Result<Answer, Failure>) {
        let Some(local) = self.sessions.locals.get_mut(&session) else { return };
        if let Some(slot) = local.queue.iter_mut().find(|s| s.xid == xid) {
            slot.state = SlotState::Done(result);
        }
        self.flush(session);
    }

    /// Answers the sessions whose front slot became ready with this round's
    /// applies.
    pub(super) fn flush_ready_reads(&mut self) {
        // What the state machine has applied: consensus counts entries as
        // applied when it hands them out, before this member applies them.
        let applied = LogIndex(self.sm.last_applied().0);
        let ready: Vec<SessionId> = self
            .sessions
            .locals
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
    }

    /// Sends the answers at the front of a session's queue, running reads
    /// that reached the front.
    fn flush(&mut self, session: SessionId) {
        // What the state machine has applied: consensus counts entries as
        // applied when it hands them out, before this member applies them.
        let applied = LogIndex(self.sm.last_applied().0);
        let first = self.out.len();
        self.flush_front(session, applied);
        if self.bugs.answers_swapped && self.out.len() >= first + 2 {
            self.out.swap(first, first + 1);
        }
    }

    fn flush_front(&mut self, session: SessionId, applied: LogIndex) {
        loop {
            let Some(local) = self.sessions.locals.get_mut(&session) else { return };
            let conn = local.conn;
            let Some(front) = local.queue.front_mut() else { return };
            let ready = match &front.state {
                SlotState::Done(_) | SlotState::Read(_) => true,
                SlotState::ReadAt(_, at) => *at <= applied,
                SlotState::Write | SlotState::ReadIndex(_) => false,
            };
            if !ready {
                return;
            }
            let Some(slot) = local.queue.pop_front() else { return };
            let result = match slot.state {
                SlotState::Done(result) => result,
                SlotState::Read(request) | SlotState::ReadAt(request, _) => {
                    self.execute(session, conn, request)
                }
                SlotState::Write | SlotState::ReadIndex(_) => return,
            };
            let zxid = self.applied_zxid();
            let frame = ServerFrame::Response { xid: slot.xid, zxid, result };
            self.out.push(Output::Session { conn, frame });
        }
    }

    /// Runs a read, a sync or a watch request against the current state
    /// (events it fires go to `conn` before its answer).
    fn execute(
        &mut self,
        session: SessionId,
        conn: ConnId,
        request: Request,
    ) -> Result<Answer, Failure> {
        let auth: Vec<Id> = self.sm.session(session).map_or_else(Vec::new, |s| s.auth.to_vec());
        let api = Failure::Api;
        match request {
            Request::Read { read, .. } => self.read(session, read, &auth).map_err(api),
            Request::ReadMany(reads) => Ok(Answer::Many(
                reads.into_iter().map(|read| self.read(session, read, &auth)).collect(),
            )),
            Request::Sync { .. } => Ok(Answer::Synced),
            Request::AddWatch { path, kind } => {
                self.watches.add(session, &path, kind).map_err(api)?;
                Ok(Answer::Watching)
            }
            Request::RemoveWatch { path, kind } => {
                self.watches.remove(session, &path, kind).map_err(api)?;
                Ok(Answer::Unwatched)
            }
            Request::SetWatches { last_zxid, watches } => {
                let (events, events_lost) =
                    self.rearm(session, last_zxid, &watches).map_err(api)?;
                self.send_events(conn, events);
                Ok(Answer::WatchesSet { events_lost })
            }
            Request::CheckWatch { path, kind } => {
                if self.watches.holds(session, &path, kind) {
                    Ok(Answer::Watching)
                } else {
                    Err(api(ApiError::NoWatcher { path, kind: format!("{kind:?}") }))
                }
            }
            Request::WhoAmI => Ok(Answer::Identities(auth)),
            Request::Status => Ok(Answer::Status(self.status())),
            Request::Write(_) | Request::AddAuth { .. } => {
                Err(Failure::Unavailable { why: "a write reached the read path".into() })
            }
        }
    }

    /// One read against the current state, as `session` (watches it sets
    /// are the session's).
    fn read(&mut self, session: SessionId, read: Read, auth: &[Id]) -> Result<Answer, ApiError> {
        match read {
            Read::GetData { path, watch } => {
                let (data, stat) = self.sm.get_data(&path, auth)?;
                let answer = Answer::Data { data: data.to_vec(), stat };
                if watch {
                    self.watches.add(session, &path, WatchKind::Data)?;
                }
                Ok(answer)
            }
            Read::Exists { path, watch } => {
                if watch {
                    self.watches.add(session, &path, WatchKind::Data)?;
                }
                Ok(Answer::Exists(self.sm.exists(&path)))
            }
            Read::GetChildren { path, watch, after } => {
                let children =
                    self.sm.get_children_after(&path, auth, after.as_deref(), usize::MAX)?;
                if watch {
                    self.watches.add(session, &path, WatchKind::Child)?;
                }
                Ok(Answer::Children {
                    names: children.names,
                    stat: children.stat,
                    more: children.more,
                })
            }
            Read::GetAcl { path } => {
                let (acl, stat) = self.sm.get_acl(&path, auth)?;
                Ok(Answer::Acl { acl, stat })
            }
            Read::GetEphemerals { prefix } => {
                Ok(Answer::Ephemerals(self.sm.get_ephemerals(session, &prefix)))
            }
            Read::GetAllChildrenNumber { path } => {
                Ok(Answer::Count(self.sm.get_all_children_number(&path, auth)?))
            }
            Read::Plugins => Ok(Answer::Plugins(self.sm.plugins())),
        }
    }

    /// What the four-letter words show: the status, the watches held on
    /// this member, and every session's ephemeral nodes.
    pub(crate) fn report(&self) -> Report {
        let sessions = self
            .sm
            .sessions()
            .map(|(id, s)| (id, s.timeout_ms, self.sm.get_ephemerals(id, "/")))
            .collect();
        Report { status: self.status(), watches: self.watches.list(), sessions }
    }

    pub(crate) fn status(&self) -> ServerStatus {
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

    /// Asks consensus for a read index for the request `xid` of `session`.
    fn ask_read_index(&mut self, session: SessionId, xid: u64) {
        let ctx = self.sessions.next_ctx;
        self.sessions.next_ctx = ctx.wrapping_add(1);
        self.sessions.reads.insert(ctx, (session, xid, self.now.mono_ms));
        self.raft.read_index(ctx);
    }

    /// Asks again for read indexes unanswered for three heartbeats: the
    /// request or its answer may have been lost, and a read may be asked
    /// for twice (an answer to the old context is then ignored).
    pub(super) fn retry_reads(&mut self) {
        let timing = self.options.timing;
        let again_ms = 3 * u64::from(timing.heartbeat_ticks) * timing.tick_ms;
        let now = self.now.mono_ms;
        let stale: Vec<u64> = self
            .sessions
            .reads
            .iter()
            .filter(|(_, (_, _, asked))| now >= asked + again_ms)
            .map(|(&ctx, _)| ctx)
            .collect();
        for ctx in stale {
            if let Some((session, xid, _)) = self.sessions.reads.remove(&ctx) {
                self.ask_read_index(session, xid);
            }
        }
    }

    pub(super) fn read_state(&mut self, read: ReadState) {
        let Some((session, xid, _)) = self.sessions.reads.remove(&read.ctx) else { return };
        let Some(local) = self.sessions.locals.get_mut(&session) else { return };
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
                self.answer(session, xid, Err(Failure::Unavailable { why }));
            }
        }
    }
}

/// What the four-letter words show of a member (see `Engine::report`).
#[derive(Clone, Debug)]
pub struct Report {
    pub status: ServerStatus,
    /// (session, path) of every watch held here.
    pub watches: Vec<(SessionId, String)>,
    /// Every live session: its timeout and its ephemeral nodes.
    pub sessions: Vec<(SessionId, u32, Vec<String>)>,
}

/// The identity an addAuth adds: scheme `digest` with `user:password`
/// becomes `digest:user:<base64 of the SHA-1 of user:password>`, the form
/// ZooKeeper stores and ACLs name; the configured superuser's becomes
/// the `super` identity, which passes every ACL check. Other schemes are
/// refused.
fn auth_identity(scheme: &str, auth: &[u8], superuser: Option<&str>) -> Result<Id, Failure> {
    let failed = |why: &str| {
        Failure::Api(ApiError::AuthFailed { scheme: scheme.to_string(), why: why.to_string() })
    };
    if scheme != "digest" {
        return Err(failed("only the digest scheme can be added to a session"));
    }
    if std::str::from_utf8(auth).is_err() {
        return Err(failed("the credentials are not UTF-8"));
    }
    // ZooKeeper takes any text: the user is what comes before the first
    // ':', or all of it.
    let digest = crate::state::digest_id(auth);
    if superuser == Some(digest.as_str()) {
        let user = digest.split_once(':').map_or("", |(user, _)| user);
        return Ok(Id::new(crate::state::SUPER_SCHEME, user));
    }
    Ok(Id::digest(digest))
}
