//! Model-based property test of the replicated state machine: random entry
//! sequences (requests, multis, sessions opening, closing and expiring,
//! container and TTL clean-up) are applied both to `warren::StateMachine` and
//! to a deliberately naive map-based model of ZooKeeper's rules written here,
//! and every reply, Stat, read, session, ephemeral list, clean-up candidate
//! list, replica digest and snapshot round trip is compared.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use warren::state::snapshot;
use warren::{Command, Entry, Limits, Response, StateMachine};
use warren_client::{
    Acl, ApiError, CreateMode, ErrorCode, Id, Op, OpResult, Perms, SessionId, Stat, Zxid,
};

// ---------------------------------------------------------------------------
// The model: ZooKeeper's rules, as plainly as possible.
// ---------------------------------------------------------------------------

const DATA_MAX: usize = 1024 * 1024;
const MULTI_MAX: usize = 1024;
const TTL_MAX: u64 = (1 << 40) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Persistent,
    Ephemeral(u64),
    Container,
    Ttl(u64),
}

impl Kind {
    fn owner(self) -> u64 {
        match self {
            Kind::Persistent => 0,
            Kind::Ephemeral(session) => session,
            Kind::Container => 1 << 63,
            Kind::Ttl(ttl) => (0xFF << 56) | ttl,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MNode {
    data: Vec<u8>,
    acl: Vec<Acl>,
    kind: Kind,
    czxid: u64,
    mzxid: u64,
    pzxid: u64,
    ctime: i64,
    mtime: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MSession {
    timeout_ms: u32,
    auth: Vec<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    sessions: BTreeMap<u64, MSession>,
}

/// A model error: the ZooKeeper code, with the details that are fully fixed
/// by the rules (BadVersion's numbers, the expired session, a multi's index).
#[derive(Clone, Debug, PartialEq, Eq)]
enum MErr {
    Code(ErrorCode),
    BadVersion { expected: i32, actual: i32 },
    SessionExpired(u64),
    Multi { index: usize, inner: Box<MErr> },
}

fn shape(e: &ApiError) -> MErr {
    match e {
        ApiError::Multi { index, error } => {
            MErr::Multi { index: *index, inner: Box::new(shape(error)) }
        }
        ApiError::BadVersion { expected, actual, .. } => {
            MErr::BadVersion { expected: *expected, actual: *actual }
        }
        ApiError::SessionExpired { session } => MErr::SessionExpired(session.0),
        other => MErr::Code(other.code()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum MResp {
    SessionCreated(u64),
    Reply(Result<OpResult, MErr>),
    Done(Result<(), MErr>),
}

fn shape_response(r: &Response) -> MResp {
    match r {
        Response::SessionCreated(id) => MResp::SessionCreated(id.0),
        Response::Reply(reply) => MResp::Reply(reply.clone().map_err(|e| shape(&e))),
        Response::Done(done) => MResp::Done(done.clone().map_err(|e| shape(&e))),
    }
}

use ErrorCode::{
    BadArguments, InvalidAcl, NoAuth, NoChildrenForEphemerals, NoNode, NodeExists, NotEmpty,
};

fn err<T>(code: ErrorCode) -> Result<T, MErr> {
    Err(MErr::Code(code))
}

/// ZooKeeper's path rules, written independently: absolute, no empty, "." or
/// ".." segment, no trailing slash except the root (no odd characters occur in
/// this test's paths).
fn valid_path(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    if !p.starts_with('/') || p.ends_with('/') {
        return false;
    }
    p[1..].split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Everything before the last '/', or the root: what ZooKeeper treats as the
/// parent of a create or delete path.
fn parent_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn alice() -> Id {
    Id::x509("CN=alice")
}

fn allowed(acl: &[Acl], perm: Perms, auth: &[Id]) -> bool {
    acl.iter().any(|e| e.perms.contains(perm) && (e.id == Id::anyone() || auth.contains(&e.id)))
}

fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, MErr> {
    if acl.is_empty() {
        return err(InvalidAcl);
    }
    let mut out = Vec::new();
    for e in acl {
        if e.id.scheme == "auth" {
            let ids: Vec<&Id> =
                auth.iter().filter(|a| a.scheme == "x509" || a.scheme == "digest").collect();
            if ids.is_empty() {
                return err(InvalidAcl);
            }
            out.extend(ids.into_iter().map(|a| Acl::new(e.perms, a.clone())));
        } else {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn check_version(expected: Option<i32>, actual: i32) -> Result<(), MErr> {
    match expected {
        Some(v) if v != actual => Err(MErr::BadVersion { expected: v, actual }),
        _ => Ok(()),
    }
}

impl Model {
    fn new() -> Model {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            MNode {
                data: Vec::new(),
                acl: Acl::open(),
                kind: Kind::Persistent,
                czxid: 0,
                mzxid: 0,
                pzxid: 0,
                ctime: 0,
                mtime: 0,
                version: 0,
                cversion: 0,
                aversion: 0,
            },
        );
        Model { nodes, sessions: BTreeMap::new() }
    }

    fn child_paths(&self, path: &str) -> Vec<String> {
        self.nodes.keys().filter(|k| k.as_str() != "/" && parent_of(k) == path).cloned().collect()
    }

    fn stat(&self, path: &str) -> Option<Stat> {
        let n = self.nodes.get(path)?;
        Some(Stat {
            czxid: Zxid(n.czxid),
            mzxid: Zxid(n.mzxid),
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: n.cversion,
            aversion: n.aversion,
            ephemeral_owner: n.kind.owner(),
            data_length: n.data.len() as u32,
            num_children: self.child_paths(path).len() as u32,
            pzxid: Zxid(n.pzxid),
        })
    }

    fn readable(&self, path: &str, auth: &[Id]) -> Result<&MNode, MErr> {
        if !valid_path(path) {
            return err(BadArguments);
        }
        let node = self.nodes.get(path).ok_or(MErr::Code(NoNode))?;
        if !allowed(&node.acl, Perms::READ, auth) {
            return err(NoAuth);
        }
        Ok(node)
    }

    fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Vec<u8>, Stat), MErr> {
        let node = self.readable(path, auth)?;
        Ok((node.data.clone(), self.stat(path).unwrap()))
    }

    /// ZooKeeper's getACL: needs READ or ADMIN.
    fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), MErr> {
        if !valid_path(path) {
            return err(BadArguments);
        }
        let node = self.nodes.get(path).ok_or(MErr::Code(NoNode))?;
        if !allowed(&node.acl, Perms::READ, auth) && !allowed(&node.acl, Perms::ADMIN, auth) {
            return err(NoAuth);
        }
        Ok((node.acl.clone(), self.stat(path).unwrap()))
    }

    fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), MErr> {
        self.readable(path, auth)?;
        let mut names: Vec<String> = self
            .child_paths(path)
            .iter()
            .map(|p| p[p.rfind('/').unwrap() + 1..].to_string())
            .collect();
        names.sort();
        Ok((names, self.stat(path).unwrap()))
    }

    fn ephemerals(&self, session: u64, prefix: &str) -> Vec<String> {
        if !self.sessions.contains_key(&session) {
            return Vec::new();
        }
        self.nodes
            .iter()
            .filter(|(p, n)| n.kind == Kind::Ephemeral(session) && p.starts_with(prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn container_removable(&self, path: &str) -> bool {
        let n = &self.nodes[path];
        n.kind == Kind::Container && n.cversion > 0 && self.child_paths(path).is_empty()
    }

    fn ttl_expired(&self, path: &str, now: i64) -> bool {
        let n = &self.nodes[path];
        match n.kind {
            Kind::Ttl(ttl) => self.child_paths(path).is_empty() && now - n.mtime > ttl as i64,
            _ => false,
        }
    }

    fn candidates(&self, now: i64) -> Vec<Command> {
        let mut out = Vec::new();
        for path in self.nodes.keys() {
            if self.container_removable(path) {
                out.push(Command::RemoveContainer { path: path.clone() });
            } else if self.ttl_expired(path, now) {
                out.push(Command::RemoveExpiredTtl { path: path.clone() });
            }
        }
        out
    }

    /// Removes a node (which must exist and have no children) and stamps its
    /// parent: pzxid only; numChildren is counted, cversion counts creations.
    fn remove(&mut self, path: &str, zxid: u64) {
        assert!(self.child_paths(path).is_empty());
        self.nodes.remove(path).expect("removing a missing node");
        self.nodes.get_mut(parent_of(path)).unwrap().pzxid = zxid;
    }

    fn close_session(&mut self, session: u64, zxid: u64) {
        let mine: Vec<String> = self.ephemerals(session, "/");
        for path in mine {
            self.remove(&path, zxid);
        }
        self.sessions.remove(&session);
    }

    fn apply(&mut self, entry: &Entry) -> MResp {
        let zxid = entry.zxid.0;
        let now = entry.time_ms;
        match &entry.command {
            Command::AddAuth { session, id } => {
                let Some(s) = self.sessions.get_mut(&session.0) else {
                    return MResp::Done(Err(MErr::SessionExpired(session.0)));
                };
                if !s.auth.contains(id) {
                    s.auth.push(id.clone());
                }
                MResp::Done(Ok(()))
            }
            Command::CreateSession { timeout_ms, auth, .. } => {
                if *timeout_ms == 0 {
                    return MResp::Done(err(BadArguments));
                }
                self.sessions
                    .insert(zxid, MSession { timeout_ms: *timeout_ms, auth: auth.clone() });
                MResp::SessionCreated(zxid)
            }
            Command::CloseSession { session } => {
                if !self.sessions.contains_key(&session.0) {
                    return MResp::Done(Err(MErr::SessionExpired(session.0)));
                }
                self.close_session(session.0, zxid);
                MResp::Done(Ok(()))
            }
            Command::ExpireSessions { sessions } => {
                for s in sessions {
                    if self.sessions.contains_key(&s.0) {
                        self.close_session(s.0, zxid);
                    }
                }
                MResp::Done(Ok(()))
            }
            Command::RemoveContainer { path } => {
                if !self.nodes.contains_key(path) {
                    return MResp::Done(err(NoNode));
                }
                if !self.container_removable(path) {
                    return MResp::Done(err(BadArguments));
                }
                self.remove(path, zxid);
                MResp::Done(Ok(()))
            }
            Command::RemoveExpiredTtl { path } => {
                if !self.nodes.contains_key(path) {
                    return MResp::Done(err(NoNode));
                }
                if !self.ttl_expired(path, now) {
                    return MResp::Done(err(BadArguments));
                }
                self.remove(path, zxid);
                MResp::Done(Ok(()))
            }
            Command::Noop => MResp::Done(Ok(())),
            Command::Request { session, op } => {
                let Some(s) = self.sessions.get(&session.0) else {
                    return MResp::Reply(Err(MErr::SessionExpired(session.0)));
                };
                let auth = s.auth.clone();
                let ctx = Ctx { zxid, now, session: session.0, auth: &auth };
                MResp::Reply(match op {
                    Op::Multi(ops) => self.multi(ops, &ctx),
                    single => self.op(single, &ctx),
                })
            }
        }
    }

    fn multi(&mut self, ops: &[Op], ctx: &Ctx) -> Result<OpResult, MErr> {
        if ops.len() > MULTI_MAX {
            return err(BadArguments);
        }
        let mut scratch = self.clone();
        let mut results = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let r = match op {
                Op::Multi(_) => err(BadArguments),
                single => scratch.op(single, ctx),
            };
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    return Err(MErr::Multi { index, inner: Box::new(e) });
                }
            }
        }
        *self = scratch;
        Ok(OpResult::Multi(results))
    }

    fn op(&mut self, op: &Op, ctx: &Ctx) -> Result<OpResult, MErr> {
        match op {
            Op::Create { path, data, acl, mode } => {
                if data.len() > DATA_MAX {
                    return err(BadArguments);
                }
                let ttl = match mode {
                    CreateMode::PersistentWithTtl { ttl_ms }
                    | CreateMode::PersistentSequentialWithTtl { ttl_ms } => {
                        if *ttl_ms < 1 || *ttl_ms > TTL_MAX {
                            return err(BadArguments);
                        }
                        Some(*ttl_ms)
                    }
                    _ => None,
                };
                let sequential = matches!(
                    mode,
                    CreateMode::PersistentSequential
                        | CreateMode::EphemeralSequential
                        | CreateMode::PersistentSequentialWithTtl { .. }
                );
                // ZooKeeper's order: no '/' at all or a NUL, then the ACL, the
                // parent and its ACL, and only then the path's form.
                if !path.contains('/') || path.contains('\0') {
                    return err(BadArguments);
                }
                let acl = fixup(acl, ctx.auth)?;
                let parent_path = parent_of(path).to_string();
                let Some(parent) = self.nodes.get(&parent_path) else {
                    return err(NoNode);
                };
                if !allowed(&parent.acl, Perms::CREATE, ctx.auth) {
                    return err(NoAuth);
                }
                let checked = if sequential { format!("{path}1") } else { path.clone() };
                if !valid_path(&checked) {
                    return err(BadArguments);
                }
                let fin = if sequential {
                    format!("{path}{:010}", parent.cversion)
                } else {
                    path.clone()
                };
                if fin == "/" || self.nodes.contains_key(&fin) {
                    return err(NodeExists);
                }
                if matches!(parent.kind, Kind::Ephemeral(_)) {
                    return err(NoChildrenForEphemerals);
                }
                let kind = match mode {
                    CreateMode::Ephemeral | CreateMode::EphemeralSequential => {
                        Kind::Ephemeral(ctx.session)
                    }
                    CreateMode::Container => Kind::Container,
                    _ => match ttl {
                        Some(t) => Kind::Ttl(t),
                        None => Kind::Persistent,
                    },
                };
                self.nodes.insert(
                    fin.clone(),
                    MNode {
                        data: data.clone(),
                        acl,
                        kind,
                        czxid: ctx.zxid,
                        mzxid: ctx.zxid,
                        pzxid: ctx.zxid,
                        ctime: ctx.now,
                        mtime: ctx.now,
                        version: 0,
                        cversion: 0,
                        aversion: 0,
                    },
                );
                let parent = self.nodes.get_mut(&parent_path).unwrap();
                parent.cversion = parent.cversion.wrapping_add(1);
                parent.pzxid = ctx.zxid;
                Ok(OpResult::Create { stat: self.stat(&fin).unwrap(), path: fin })
            }
            Op::Delete { path, version } => {
                if !valid_path(path) || path == "/" {
                    return err(BadArguments);
                }
                let Some(parent) = self.nodes.get(parent_of(path)) else {
                    return err(NoNode);
                };
                if !allowed(&parent.acl, Perms::DELETE, ctx.auth) {
                    return err(NoAuth);
                }
                let Some(node) = self.nodes.get(path) else {
                    return err(NoNode);
                };
                check_version(*version, node.version)?;
                if !self.child_paths(path).is_empty() {
                    return err(NotEmpty);
                }
                self.remove(path, ctx.zxid);
                Ok(OpResult::Delete)
            }
            // ZooKeeper's deleteContainer: any childless node but an
            // ephemeral one (BadVersion), at any version; Warren checks
            // the parent's ACL too.
            Op::DeleteContainer { path } => {
                if !valid_path(path) || path == "/" {
                    return err(BadArguments);
                }
                let Some(parent) = self.nodes.get(parent_of(path)) else {
                    return err(NoNode);
                };
                let Some(node) = self.nodes.get(path) else {
                    return err(NoNode);
                };
                if !self.child_paths(path).is_empty() {
                    return err(NotEmpty);
                }
                if matches!(node.kind, Kind::Ephemeral(_)) {
                    return Err(MErr::BadVersion { expected: -1, actual: node.version });
                }
                if !allowed(&parent.acl, Perms::DELETE, ctx.auth) {
                    return err(NoAuth);
                }
                self.remove(path, ctx.zxid);
                Ok(OpResult::Delete)
            }
            Op::SetData { path, data, version } => {
                if data.len() > DATA_MAX || !valid_path(path) {
                    return err(BadArguments);
                }
                let Some(node) = self.nodes.get_mut(path) else {
                    return err(NoNode);
                };
                if !allowed(&node.acl, Perms::WRITE, ctx.auth) {
                    return err(NoAuth);
                }
                check_version(*version, node.version)?;
                node.version = node.version.wrapping_add(1);
                node.mzxid = ctx.zxid;
                node.mtime = ctx.now;
                node.data = data.clone();
                Ok(OpResult::SetData { stat: self.stat(path).unwrap() })
            }
            Op::SetAcl { path, acl, version } => {
                if !valid_path(path) {
                    return err(BadArguments);
                }
                let acl = fixup(acl, ctx.auth)?;
                let Some(node) = self.nodes.get_mut(path) else {
                    return err(NoNode);
                };
                if !allowed(&node.acl, Perms::ADMIN, ctx.auth) {
                    return err(NoAuth);
                }
                check_version(*version, node.aversion)?;
                node.aversion = node.aversion.wrapping_add(1);
                node.acl = acl;
                Ok(OpResult::SetAcl { stat: self.stat(path).unwrap() })
            }
            Op::Check { path, version } => {
                if !valid_path(path) {
                    return err(BadArguments);
                }
                let Some(node) = self.nodes.get(path) else {
                    return err(NoNode);
                };
                if !allowed(&node.acl, Perms::READ, ctx.auth) {
                    return err(NoAuth);
                }
                check_version(*version, node.version)?;
                Ok(OpResult::Check)
            }
            Op::Multi(_) => unreachable!("multis are handled by Model::multi"),
            Op::Invoke { .. } | Op::Plugin(_) => {
                unreachable!("the model's generator makes no plugin operations")
            }
        }
    }
}

struct Ctx<'a> {
    zxid: u64,
    now: i64,
    session: u64,
    auth: &'a [Id],
}

// ---------------------------------------------------------------------------
// Abstract actions, resolved into concrete entries against the current state
// (so that shrinking keeps them meaningful).
// ---------------------------------------------------------------------------

/// Paths ops may name. Indices: 0 root, 1..=6 plain, 7..=8 sequential bases,
/// 9..=13 invalid (some of which are valid as sequential bases).
const UNIVERSE: &[&str] = &[
    "/", "/a", "/b", "/a/x", "/a/y", "/a/x/z", "/b/q", "/a/s-", "/s-", "/a/", "a", "/a//b", "/a/.",
    "",
];

#[derive(Clone, Copy, Debug)]
enum PathRef {
    Fixed(usize),
    /// The n-th (mod count) node that exists in the model, root included.
    Existing(u8),
    /// The n-th (mod count) existing childless node other than the root, or
    /// the root.
    Leaf(u8),
    /// The n-th (mod count) container or child of a container, else as
    /// `Leaf` (so that containers get emptied and removed).
    ContainerKin(u8),
    /// A child named `CHILD_NAMES[m]` of the n-th existing node.
    Under(u8, u8),
}

const CHILD_NAMES: &[&str] = &["x", "y", "s-"];

#[derive(Clone, Copy, Debug)]
enum SessRef {
    /// The n-th (mod count) open session, else as `Ever`.
    Open(u8),
    /// The n-th (mod count) CreateSession entry so far (even a refused or
    /// closed one).
    Ever(u8),
    /// An id that never was a session.
    Never(bool),
}

#[derive(Clone, Copy, Debug)]
enum AData {
    Empty,
    Small(u8),
    Max,
    TooBig,
}

#[derive(Clone, Copy, Debug)]
enum AVer {
    Any,
    Current,
    Next,
    Fixed(i32),
}

#[derive(Clone, Debug)]
enum AOp {
    Create(PathRef, AData, u8, CreateMode),
    Delete(PathRef, AVer),
    SetData(PathRef, AData, AVer),
    SetAcl(PathRef, u8, AVer),
    Check(PathRef, AVer),
    DeleteContainer(PathRef),
    /// Only generated inside a multi.
    Nested(Vec<AOp>),
}

#[derive(Clone, Debug)]
enum Act {
    CreateSession {
        timeout_ms: u32,
        alice: bool,
    },
    CloseSession(SessRef),
    /// Adds alice to the session's identities.
    AddAuth(SessRef),
    Expire(Vec<SessRef>),
    Req(SessRef, AOp),
    Multi(SessRef, Vec<AOp>),
    /// A multi of this many Check("/") ops (1024 is allowed, 1025 is not).
    BigMulti(SessRef, usize),
    RemoveContainer(PathRef),
    RemoveTtl(PathRef),
    /// Takes the n-th (mod count) of the real clean-up candidates, or a Noop.
    Cleanup(u8),
    Noop,
}

#[derive(Clone, Debug)]
struct Step {
    zxid_gap: u64,
    dt: i64,
    act: Act,
}

const ACL_NAMES: &[&str] = &[
    "open",
    "read-only",
    "world:cra",
    "world:cdwa(no read)",
    "creator-all",
    "alice-all+world-read",
    "empty",
];

fn acl_choice(i: u8) -> Vec<Acl> {
    let world = |p: u32| Acl::new(Perms(p), Id::anyone());
    match i {
        0 => Acl::open(),
        1 => Acl::read_only(),
        2 => vec![world(Perms::CREATE.0 | Perms::READ.0 | Perms::ADMIN.0)],
        3 => vec![world(Perms::CREATE.0 | Perms::DELETE.0 | Perms::WRITE.0 | Perms::ADMIN.0)],
        4 => Acl::creator_all(),
        5 => vec![Acl::new(Perms::ALL, alice()), world(Perms::READ.0)],
        _ => vec![],
    }
}

fn path_ref() -> BoxedStrategy<PathRef> {
    prop_oneof![
        8 => (1usize..=6).prop_map(PathRef::Fixed),
        2 => (7usize..=8).prop_map(PathRef::Fixed),
        1 => Just(PathRef::Fixed(0)),
        1 => (9usize..UNIVERSE.len()).prop_map(PathRef::Fixed),
        5 => any::<u8>().prop_map(PathRef::Existing),
        4 => any::<u8>().prop_map(PathRef::Leaf),
        2 => any::<u8>().prop_map(PathRef::ContainerKin),
        4 => (any::<u8>(), 0..CHILD_NAMES.len() as u8).prop_map(|(n, m)| PathRef::Under(n, m)),
    ]
    .boxed()
}

fn data() -> BoxedStrategy<AData> {
    prop_oneof![
        4 => Just(AData::Empty),
        10 => (0u8..4).prop_map(AData::Small),
        1 => Just(AData::Max),
        1 => Just(AData::TooBig),
    ]
    .boxed()
}

fn acl() -> BoxedStrategy<u8> {
    prop_oneof![
        24 => Just(0u8),
        1 => Just(1u8),
        1 => Just(2u8),
        1 => Just(3u8),
        2 => Just(4u8),
        2 => Just(5u8),
        1 => Just(6u8),
    ]
    .boxed()
}

fn ver() -> BoxedStrategy<AVer> {
    prop_oneof![
        5 => Just(AVer::Any),
        5 => Just(AVer::Current),
        2 => Just(AVer::Next),
        1 => (-1i32..2).prop_map(AVer::Fixed),
    ]
    .boxed()
}

fn ttl() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => Just(1u64),
        3 => Just(100u64),
        3 => Just(5000u64),
        1 => Just(0u64),
        1 => Just(TTL_MAX),
        1 => Just(TTL_MAX + 1),
    ]
    .boxed()
}

fn mode() -> BoxedStrategy<CreateMode> {
    prop_oneof![
        5 => Just(CreateMode::Persistent),
        3 => Just(CreateMode::PersistentSequential),
        3 => Just(CreateMode::Ephemeral),
        2 => Just(CreateMode::EphemeralSequential),
        5 => Just(CreateMode::Container),
        2 => ttl().prop_map(|ttl_ms| CreateMode::PersistentWithTtl { ttl_ms }),
        1 => ttl().prop_map(|ttl_ms| CreateMode::PersistentSequentialWithTtl { ttl_ms }),
    ]
    .boxed()
}

fn simple_op() -> BoxedStrategy<AOp> {
    prop_oneof![
        14 => (path_ref(), data(), acl(), mode()).prop_map(|(p, d, a, m)| AOp::Create(p, d, a, m)),
        5 => (path_ref(), ver()).prop_map(|(p, v)| AOp::Delete(p, v)),
        3 => (path_ref(), data(), ver()).prop_map(|(p, d, v)| AOp::SetData(p, d, v)),
        1 => (path_ref(), acl(), ver()).prop_map(|(p, a, v)| AOp::SetAcl(p, a, v)),
        2 => (path_ref(), ver()).prop_map(|(p, v)| AOp::Check(p, v)),
        2 => path_ref().prop_map(AOp::DeleteContainer),
    ]
    .boxed()
}

fn multi_op() -> BoxedStrategy<AOp> {
    prop_oneof![
        20 => simple_op(),
        1 => vec(simple_op(), 0..3).prop_map(AOp::Nested),
    ]
    .boxed()
}

fn sess() -> BoxedStrategy<SessRef> {
    prop_oneof![
        20 => any::<u8>().prop_map(SessRef::Open),
        1 => any::<u8>().prop_map(SessRef::Ever),
        1 => any::<bool>().prop_map(SessRef::Never),
    ]
    .boxed()
}

fn create_session() -> BoxedStrategy<Act> {
    (prop_oneof![10 => Just(30_000u32), 1 => Just(0u32), 1 => Just(u32::MAX)], any::<bool>())
        .prop_map(|(timeout_ms, alice)| Act::CreateSession { timeout_ms, alice })
        .boxed()
}

fn act() -> BoxedStrategy<Act> {
    prop_oneof![
        4 => create_session(),
        1 => sess().prop_map(Act::CloseSession),
        2 => sess().prop_map(Act::AddAuth),
        1 => vec(sess(), 0..3).prop_map(Act::Expire),
        50 => (sess(), simple_op()).prop_map(|(s, o)| Act::Req(s, o)),
        15 => (sess(), vec(multi_op(), 0..5)).prop_map(|(s, o)| Act::Multi(s, o)),
        1 => (sess(), prop_oneof![Just(1024usize), Just(1025usize)])
            .prop_map(|(s, n)| Act::BigMulti(s, n)),
        2 => path_ref().prop_map(Act::RemoveContainer),
        2 => path_ref().prop_map(Act::RemoveTtl),
        8 => any::<u8>().prop_map(Act::Cleanup),
        1 => Just(Act::Noop),
    ]
    .boxed()
}

fn dt() -> BoxedStrategy<i64> {
    prop_oneof![
        2 => Just(0i64),
        4 => 1i64..20,
        3 => 50i64..200,
        2 => 900i64..6000,
    ]
    .boxed()
}

fn step(a: BoxedStrategy<Act>) -> BoxedStrategy<Step> {
    (prop_oneof![8 => Just(1u64), 1 => 2u64..5], dt(), a)
        .prop_map(|(zxid_gap, dt, act)| Step { zxid_gap, dt, act })
        .boxed()
}

#[derive(Clone, Debug)]
struct Case {
    steps: Vec<Step>,
    /// Where (mod the entry count) the third replica is restored from a
    /// snapshot of the first and then continues on its own.
    snapshot_at: usize,
}

/// A case: one to three sessions, a few creations of universe paths (parents
/// first) so that trees grow early, then random steps.
fn case() -> BoxedStrategy<Case> {
    let session =
        any::<bool>().prop_map(|alice| Act::CreateSession { timeout_ms: 30_000, alice }).boxed();
    let seed = (1usize..=6, mode(), any::<u8>())
        .prop_map(|(i, m, s)| {
            (i, Act::Req(SessRef::Open(s), AOp::Create(PathRef::Fixed(i), AData::Small(0), 0, m)))
        })
        .boxed();
    (vec(step(session), 1..=3), vec(seed, 0..6), vec(step(act()), 0..80), any::<usize>())
        .prop_map(|(mut steps, mut seeds, rest, snapshot_at)| {
            seeds.sort_by_key(|(i, _)| *i);
            steps.extend(seeds.into_iter().map(|(_, act)| Step { zxid_gap: 1, dt: 1, act }));
            steps.extend(rest);
            Case { steps, snapshot_at }
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------

struct Resolver {
    zxid: u64,
    time: i64,
    /// The zxid of every CreateSession entry so far.
    session_zxids: Vec<u64>,
}

const NEVER: [u64; 2] = [0, 77_777];

impl Resolver {
    fn session(&self, s: SessRef, model: &Model) -> SessionId {
        let open: Vec<u64> = model.sessions.keys().copied().collect();
        match s {
            SessRef::Open(n) if !open.is_empty() => SessionId(open[n as usize % open.len()]),
            SessRef::Open(n) | SessRef::Ever(n) if !self.session_zxids.is_empty() => {
                SessionId(self.session_zxids[n as usize % self.session_zxids.len()])
            }
            SessRef::Open(_) | SessRef::Ever(_) => SessionId(NEVER[1]),
            SessRef::Never(b) => SessionId(NEVER[b as usize]),
        }
    }

    fn path(&self, p: PathRef, model: &Model) -> String {
        match p {
            PathRef::Fixed(i) => UNIVERSE[i].to_string(),
            PathRef::Existing(n) => {
                let keys: Vec<&String> = model.nodes.keys().collect();
                keys[n as usize % keys.len()].clone()
            }
            PathRef::Leaf(n) => {
                let leaves: Vec<&String> = model
                    .nodes
                    .keys()
                    .filter(|p| p.as_str() != "/" && model.child_paths(p).is_empty())
                    .collect();
                if leaves.is_empty() {
                    "/".to_string()
                } else {
                    leaves[n as usize % leaves.len()].clone()
                }
            }
            PathRef::ContainerKin(n) => {
                let is_container =
                    |p: &str| model.nodes.get(p).is_some_and(|n| n.kind == Kind::Container);
                let kin: Vec<&String> = model
                    .nodes
                    .keys()
                    .filter(|p| {
                        is_container(p) || (p.as_str() != "/" && is_container(parent_of(p)))
                    })
                    .collect();
                if kin.is_empty() {
                    self.path(PathRef::Leaf(n), model)
                } else {
                    kin[n as usize % kin.len()].clone()
                }
            }
            PathRef::Under(n, m) => {
                let parent = self.path(PathRef::Existing(n), model);
                let name = CHILD_NAMES[m as usize];
                if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
            }
        }
    }

    fn data(d: AData) -> Vec<u8> {
        match d {
            AData::Empty => Vec::new(),
            AData::Small(n) => format!("v{n}").into_bytes(),
            AData::Max => vec![7u8; DATA_MAX],
            AData::TooBig => vec![7u8; DATA_MAX + 1],
        }
    }

    fn version(v: AVer, current: Option<i32>) -> Option<i32> {
        match v {
            AVer::Any => None,
            AVer::Current => Some(current.unwrap_or(0)),
            AVer::Next => Some(current.unwrap_or(0).wrapping_add(1)),
            AVer::Fixed(n) => Some(n),
        }
    }

    fn op(&self, op: &AOp, model: &Model) -> Op {
        let version_of = |path: &str| model.nodes.get(path).map(|n| n.version);
        match op {
            AOp::Create(p, d, a, m) => Op::Create {
                path: self.path(*p, model),
                data: Self::data(*d),
                acl: acl_choice(*a),
                mode: *m,
            },
            AOp::Delete(p, v) => {
                let path = self.path(*p, model);
                let version = Self::version(*v, version_of(&path));
                Op::Delete { path, version }
            }
            AOp::DeleteContainer(p) => Op::DeleteContainer { path: self.path(*p, model) },
            AOp::SetData(p, d, v) => {
                let path = self.path(*p, model);
                let version = Self::version(*v, version_of(&path));
                Op::SetData { path, data: Self::data(*d), version }
            }
            AOp::SetAcl(p, a, v) => {
                let path = self.path(*p, model);
                let version = Self::version(*v, model.nodes.get(&path).map(|n| n.aversion));
                Op::SetAcl { path, acl: acl_choice(*a), version }
            }
            AOp::Check(p, v) => {
                let path = self.path(*p, model);
                let version = Self::version(*v, version_of(&path));
                Op::Check { path, version }
            }
            AOp::Nested(ops) => Op::Multi(ops.iter().map(|o| self.op(o, model)).collect()),
        }
    }

    /// The next entry for `step`, given the model and the real state before it.
    fn entry(&mut self, step: &Step, model: &Model, sm: &StateMachine) -> Entry {
        self.zxid += step.zxid_gap;
        self.time += step.dt;
        let command = match &step.act {
            Act::CreateSession { timeout_ms, alice: a } => {
                self.session_zxids.push(self.zxid);
                Command::CreateSession {
                    timeout_ms: *timeout_ms,
                    auth: if *a { vec![alice()] } else { vec![] },
                    secret: None,
                }
            }
            Act::AddAuth(s) => Command::AddAuth { session: self.session(*s, model), id: alice() },
            Act::CloseSession(s) => Command::CloseSession { session: self.session(*s, model) },
            Act::Expire(ss) => Command::ExpireSessions {
                sessions: ss.iter().map(|s| self.session(*s, model)).collect(),
            },
            Act::Req(s, op) => {
                Command::Request { session: self.session(*s, model), op: self.op(op, model) }
            }
            Act::Multi(s, ops) => Command::Request {
                session: self.session(*s, model),
                op: Op::Multi(ops.iter().map(|o| self.op(o, model)).collect()),
            },
            Act::BigMulti(s, n) => Command::Request {
                session: self.session(*s, model),
                op: Op::Multi(vec![Op::Check { path: "/".into(), version: None }; *n]),
            },
            Act::RemoveContainer(p) => Command::RemoveContainer { path: self.path(*p, model) },
            Act::RemoveTtl(p) => Command::RemoveExpiredTtl { path: self.path(*p, model) },
            Act::Cleanup(n) => {
                let candidates = sm.cleanup_candidates(self.time);
                if candidates.is_empty() {
                    Command::Noop
                } else {
                    candidates[*n as usize % candidates.len()].clone()
                }
            }
            Act::Noop => Command::Noop,
        };
        Entry { zxid: Zxid(self.zxid), time_ms: self.time, command }
    }
}

// ---- Readable descriptions of entries, for failure messages.

fn show_data(d: &[u8]) -> String {
    if d.len() <= 16 {
        format!("{:?}", String::from_utf8_lossy(d))
    } else {
        format!("<{} bytes>", d.len())
    }
}

fn show_acl(acl: &[Acl]) -> String {
    (0..ACL_NAMES.len() as u8)
        .find(|&i| acl_choice(i) == acl)
        .map(|i| ACL_NAMES[i as usize].to_string())
        .unwrap_or_else(|| format!("{acl:?}"))
}

fn show_op(op: &Op) -> String {
    match op {
        Op::Create { path, data, acl, mode } => {
            format!("Create({path:?}, {}, {}, {mode:?})", show_data(data), show_acl(acl))
        }
        Op::Delete { path, version } => format!("Delete({path:?}, {version:?})"),
        Op::DeleteContainer { path } => format!("DeleteContainer({path:?})"),
        Op::SetData { path, data, version } => {
            format!("SetData({path:?}, {}, {version:?})", show_data(data))
        }
        Op::SetAcl { path, acl, version } => {
            format!("SetAcl({path:?}, {}, {version:?})", show_acl(acl))
        }
        Op::Check { path, version } => format!("Check({path:?}, {version:?})"),
        Op::Multi(ops) if ops.len() > 16 => {
            format!("Multi[{} ops, first {}]", ops.len(), show_op(&ops[0]))
        }
        Op::Multi(ops) => {
            format!("Multi[{}]", ops.iter().map(show_op).collect::<Vec<_>>().join(", "))
        }
        Op::Invoke { plugin, path, .. } => format!("Invoke({plugin:?}, {path:?})"),
        Op::Plugin(change) => format!("Plugin({:?})", change.name()),
    }
}

fn show_entry(e: &Entry) -> String {
    let cmd = match &e.command {
        Command::Request { session, op } => {
            format!("Request(session {}, {})", session.0, show_op(op))
        }
        Command::CreateSession { timeout_ms, auth, .. } => {
            format!("CreateSession(timeout {timeout_ms}, auth {auth:?})")
        }
        Command::AddAuth { session, id } => format!("AddAuth({}, {id:?})", session.0),
        Command::CloseSession { session } => format!("CloseSession({})", session.0),
        Command::ExpireSessions { sessions } => {
            format!("ExpireSessions({:?})", sessions.iter().map(|s| s.0).collect::<Vec<_>>())
        }
        other => format!("{other:?}"),
    };
    format!("zxid {} t={} {}", e.zxid.0, e.time_ms, cmd)
}

fn short<T: std::fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    match s.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}…<{} chars>", &s[..cut], s.len()),
        None => s,
    }
}

// ---- Comparisons.

fn auths() -> [Vec<Id>; 2] {
    [vec![], vec![alice()]]
}

/// Every path whose state is compared: the universe, every model node, every
/// node the real tree lists (walked with alice's identity), and a few
/// sequential names.
fn paths_to_compare(model: &Model, sm: &StateMachine) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = UNIVERSE.iter().map(|s| s.to_string()).collect();
    out.extend(model.nodes.keys().cloned());
    for base in ["/a/s-", "/s-", "/a/", "/"] {
        for n in 0..3 {
            out.insert(format!("{base}{n:010}"));
        }
    }
    let mut stack = vec!["/".to_string()];
    while let Some(p) = stack.pop() {
        if let Ok(children) = sm.get_children(&p, &[alice()]) {
            for name in children.names {
                let child = if p == "/" { format!("/{name}") } else { format!("{p}/{name}") };
                out.insert(child.clone());
                stack.push(child);
            }
        }
    }
    out
}

fn compare_state(
    model: &Model,
    sm: &StateMachine,
    session_ids: &[u64],
    now: i64,
) -> Result<(), String> {
    let mut diffs = String::new();
    for path in paths_to_compare(model, sm) {
        let real = sm.exists(&path);
        let want = model.stat(&path);
        if real != want {
            writeln!(diffs, "exists({path:?}): real {real:?}, model {want:?}").unwrap();
        }
        for auth in auths() {
            let real =
                sm.get_data(&path, &auth).map(|(d, s)| (d.to_vec(), s)).map_err(|e| shape(&e));
            let want = model.get_data(&path, &auth);
            if real != want {
                writeln!(
                    diffs,
                    "get_data({path:?}, {auth:?}): real {}, model {}",
                    short(&real),
                    short(&want)
                )
                .unwrap();
            }
            let real = sm.get_acl(&path, &auth).map_err(|e| shape(&e));
            let want = model.get_acl(&path, &auth);
            if real != want {
                writeln!(diffs, "get_acl({path:?}, {auth:?}): real {real:?}, model {want:?}")
                    .unwrap();
            }
            let real = sm.get_children(&path, &auth).map_err(|e| shape(&e));
            let real = match real {
                Ok(c) if c.more => Err(MErr::Code(ErrorCode::RuntimeInconsistency)),
                Ok(c) => Ok((c.names, c.stat)),
                Err(e) => Err(e),
            };
            let want = model.get_children(&path, &auth);
            if real != want {
                writeln!(diffs, "get_children({path:?}, {auth:?}): real {real:?}, model {want:?}")
                    .unwrap();
            }
        }
    }
    if sm.node_count() != model.nodes.len() {
        writeln!(diffs, "node_count: real {}, model {}", sm.node_count(), model.nodes.len())
            .unwrap();
    }
    if sm.session_count() != model.sessions.len() {
        writeln!(
            diffs,
            "session_count: real {}, model {}",
            sm.session_count(),
            model.sessions.len()
        )
        .unwrap();
    }
    for &id in session_ids.iter().chain(NEVER.iter()) {
        let real = sm.session(SessionId(id)).map(|s| (s.timeout_ms, s.auth.to_vec()));
        let want = model.sessions.get(&id).map(|s| (s.timeout_ms, s.auth.clone()));
        if real != want {
            writeln!(diffs, "session({id}): real {real:?}, model {want:?}").unwrap();
        }
        for prefix in ["/", "/a", "/a/"] {
            let real = sm.get_ephemerals(SessionId(id), prefix);
            let want = model.ephemerals(id, prefix);
            if real != want {
                writeln!(diffs, "get_ephemerals({id}, {prefix:?}): real {real:?}, model {want:?}")
                    .unwrap();
            }
        }
    }
    for t in [now, now + 120, now + 7_000] {
        let real = sm.cleanup_candidates(t);
        let want = model.candidates(t);
        if real != want {
            writeln!(diffs, "cleanup_candidates({t}): real {real:?}, model {want:?}").unwrap();
        }
    }
    if diffs.is_empty() { Ok(()) } else { Err(diffs) }
}

static CASES: AtomicUsize = AtomicUsize::new(0);
/// How often each kind of outcome was seen, to show what the cases covered.
static OUTCOMES: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn outcome(entry: &Entry, resp: &MResp) -> String {
    fn op_name(op: &Op) -> &'static str {
        match op {
            Op::Create { .. } => "Create",
            Op::Delete { .. } => "Delete",
            Op::DeleteContainer { .. } => "DeleteContainer",
            Op::SetData { .. } => "SetData",
            Op::SetAcl { .. } => "SetAcl",
            Op::Check { .. } => "Check",
            Op::Multi(_) => "Multi",
            Op::Invoke { .. } => "Invoke",
            Op::Plugin(_) => "Plugin",
        }
    }
    fn err_name(e: &MErr) -> String {
        match e {
            MErr::Code(c) => format!("{c:?}"),
            MErr::BadVersion { .. } => "BadVersion".into(),
            MErr::SessionExpired(_) => "SessionExpired".into(),
            MErr::Multi { inner, .. } => format!("Multi({})", err_name(inner)),
        }
    }
    let what = match &entry.command {
        Command::Request { op, .. } => op_name(op),
        Command::CreateSession { .. } => "CreateSession",
        Command::CloseSession { .. } => "CloseSession",
        Command::AddAuth { .. } => "AddAuth",
        Command::ExpireSessions { .. } => "ExpireSessions",
        Command::RemoveContainer { .. } => "RemoveContainer",
        Command::RemoveExpiredTtl { .. } => "RemoveExpiredTtl",
        Command::Noop => "Noop",
    };
    let how = match resp {
        MResp::SessionCreated(_) | MResp::Reply(Ok(_)) | MResp::Done(Ok(())) => "ok".into(),
        MResp::Reply(Err(e)) | MResp::Done(Err(e)) => err_name(e),
    };
    format!("{what} {how}")
}
static ENTRIES: AtomicUsize = AtomicUsize::new(0);

fn run_case(case: &Case) -> Result<(), String> {
    CASES.fetch_add(1, Ordering::Relaxed);
    let mut model = Model::new();
    let mut sm = StateMachine::new(Limits::default());
    let mut replica = StateMachine::new(Limits::default());
    let mut restored: Option<StateMachine> = None;
    let snapshot_at = case.snapshot_at % case.steps.len();
    let mut resolver = Resolver { zxid: 0, time: 1_000_000, session_zxids: Vec::new() };
    let mut log: Vec<String> = Vec::new();
    let fail = |log: &[String], i: usize, what: String| -> String {
        format!(
            "entry #{i} ({}) :\n{what}\nall entries of this case:\n  {}",
            log[i],
            log.join("\n  ")
        )
    };

    for (i, step) in case.steps.iter().enumerate() {
        if i == snapshot_at {
            let mut buf = Vec::new();
            snapshot::write(&sm, &mut buf).map_err(|e| format!("snapshot write: {e}"))?;
            let back = snapshot::read(&buf[..], Limits::default())
                .map_err(|e| format!("snapshot read before entry #{i}: {e}"))?;
            restored = Some(back);
        }
        let entry = resolver.entry(step, &model, &sm);
        log.push(show_entry(&entry));
        ENTRIES.fetch_add(1, Ordering::Relaxed);

        let before = model.clone();
        let digest_before = sm.digest();
        let want = model.apply(&entry);
        *OUTCOMES.lock().unwrap().entry(outcome(&entry, &want)).or_default() += 1;
        let applied = sm.apply(entry.clone());
        let got = shape_response(&applied.response);
        if got != want {
            return Err(fail(
                &log,
                i,
                format!("reply differs:\n  real  {}\n  model {}", short(&got), short(&want)),
            ));
        }
        if applied.zxid != entry.zxid {
            return Err(fail(&log, i, format!("Applied.zxid {:?}", applied.zxid)));
        }

        let again = replica.apply(entry.clone());
        if again != applied || replica.digest() != sm.digest() {
            return Err(fail(
                &log,
                i,
                format!(
                    "a second replica differs: {} vs {}, digests {:#x} vs {:#x}",
                    short(&again),
                    short(&applied),
                    replica.digest(),
                    sm.digest()
                ),
            ));
        }
        if let Some(r) = restored.as_mut() {
            let third = r.apply(entry.clone());
            if third != applied || r.digest() != sm.digest() {
                return Err(fail(
                    &log,
                    i,
                    format!(
                        "the replica restored from a snapshot before entry #{snapshot_at} differs: {} vs {}, digests {:#x} vs {:#x}",
                        short(&third),
                        short(&applied),
                        r.digest(),
                        sm.digest()
                    ),
                ));
            }
        }
        let digest_after = sm.digest();
        if (before == model) != (digest_before == digest_after) {
            return Err(fail(
                &log,
                i,
                format!(
                    "digest {} though the model state {}",
                    if digest_before == digest_after { "unchanged" } else { "changed" },
                    if before == model { "did not change" } else { "changed" }
                ),
            ));
        }

        compare_state(&model, &sm, &resolver.session_zxids, entry.time_ms)
            .map_err(|d| fail(&log, i, format!("state differs after the entry:\n{d}")))?;
    }

    // The final state survives a snapshot round trip.
    let mut buf = Vec::new();
    snapshot::write(&sm, &mut buf).map_err(|e| format!("final snapshot write: {e}"))?;
    let back = snapshot::read(&buf[..], Limits::default())
        .map_err(|e| format!("final snapshot read: {e}"))?;
    let last = log.len() - 1;
    if back.digest() != sm.digest() || back.last_applied() != sm.last_applied() {
        return Err(fail(&log, last, "final snapshot changed the digest".into()));
    }
    compare_state(&model, &back, &resolver.session_zxids, resolver.time)
        .map_err(|d| fail(&log, last, format!("restored final snapshot differs:\n{d}")))?;
    for &id in resolver.session_zxids.iter() {
        let real = sm.get_ephemerals(SessionId(id), "/");
        if real != model.ephemerals(id, "/") || real != back.get_ephemerals(SessionId(id), "/") {
            return Err(fail(&log, last, format!("final get_ephemerals({id}) differs")));
        }
    }
    Ok(())
}

fn cases_from_env(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn state_machine_matches_model() {
    // Proves the state machine follows ZooKeeper's rules for every reply, Stat, read, session, clean-up candidate, replica digest and snapshot, by applying random entry sequences to it and to a naive map-based model and comparing after every entry.
    let mut runner = TestRunner::new(Config {
        cases: cases_from_env(256),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |c| run_case(&c).map_err(TestCaseError::fail));
    eprintln!(
        "model test: {} cases run (shrinking included), {} entries applied",
        CASES.load(Ordering::Relaxed),
        ENTRIES.load(Ordering::Relaxed)
    );
    for (what, n) in OUTCOMES.lock().unwrap().iter() {
        eprintln!("  {n:6}  {what}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
