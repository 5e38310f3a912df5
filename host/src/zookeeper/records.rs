//! The records of ZooKeeper's client protocol: the connect handshake,
//! request and reply headers, every request body by opcode, the reply
//! bodies and watch notifications, in jute (see [`super::jute`]).

use super::jute::{Bounds, JuteError, Reader, Writer};
use warren_client::{Acl, Stat};

/// ZooKeeper's opcodes (`ZooDefs.OpCode`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// The xids ZooKeeper reserves for frames that are not numbered requests.
pub mod xid {
    /// A watch notification (server to client).
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// The first frame of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    /// 0 for a new session.
    pub session_id: i64,
    pub password: Vec<u8>,
    /// Absent from older clients' requests (then None, and the answer
    /// leaves it out too, as ZooKeeper's does).
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(bytes: &[u8], bounds: Bounds) -> Result<ConnectRequest, JuteError> {
        let mut r = Reader::new(bytes, bounds);
        let protocol_version = r.int("protocol version")?;
        let last_zxid_seen = r.long("last zxid seen")?;
        let timeout_ms = r.int("session timeout")?;
        let session_id = r.long("session id")?;
        let password = r.buffer("session password")?;
        let read_only = if r.remaining() > 0 { Some(r.bool("read-only flag")?) } else { None };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            password,
            read_only,
        })
    }
}

/// The answer to a connect: an expired or unknown session gets a zero
/// timeout, session id and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// Sent only when the client's request had it.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode(&self, w: &mut Writer) {
        w.int(self.protocol_version);
        w.int(self.timeout_ms);
        w.long(self.session_id);
        w.buffer(Some(&self.password));
        if let Some(read_only) = self.read_only {
            w.bool(read_only);
        }
    }
}

/// Which kind of node a create makes, by opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOp {
    /// `create`: answered with the path.
    Create,
    /// `create2`: the path and the Stat.
    Create2,
    /// `createContainer`: as create2, a container node.
    Container,
    /// `createTTL`: as create2, with a TTL.
    Ttl,
}

impl CreateOp {
    pub fn code(self) -> i32 {
        match self {
            CreateOp::Create => op::CREATE,
            CreateOp::Create2 => op::CREATE2,
            CreateOp::Container => op::CREATE_CONTAINER,
            CreateOp::Ttl => op::CREATE_TTL,
        }
    }
}

/// A request body, decoded by opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZkRequest {
    Create {
        op: CreateOp,
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        flags: i32,
        ttl_ms: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    DeleteContainer {
        path: String,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// `getChildren` (`two`: false) or `getChildren2` (with the Stat).
    GetChildren {
        path: String,
        watch: bool,
        two: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    /// `multi` (writes and checks) or `multiRead` (reads).
    Multi {
        read: bool,
        ops: Vec<ZkRequest>,
    },
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        members: Option<String>,
        config_id: i64,
    },
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    Auth {
        kind: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    /// `setWatches` (no persistent lists) or `setWatches2`.
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        recursive: Vec<String>,
    },
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

impl ZkRequest {
    /// The body of a request with opcode `op`.
    pub fn decode(op: i32, bytes: &[u8], bounds: Bounds) -> Result<ZkRequest, JuteError> {
        let mut r = Reader::new(bytes, bounds);
        ZkRequest::read(op, &mut r, true)
    }

    fn read(op: i32, r: &mut Reader<'_>, top: bool) -> Result<ZkRequest, JuteError> {
        let request = match op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.ustring("path")?;
                let data = r.buffer("data")?;
                let acl = r.acl()?;
                let flags = r.int("create flags")?;
                let ttl_ms = if op == op::CREATE_TTL { r.long("TTL")? } else { 0 };
                let op = match op {
                    op::CREATE => CreateOp::Create,
                    op::CREATE2 => CreateOp::Create2,
                    op::CREATE_CONTAINER => CreateOp::Container,
                    _ => CreateOp::Ttl,
                };
                ZkRequest::Create { op, path, data, acl, flags, ttl_ms }
            }
            op::DELETE => {
                ZkRequest::Delete { path: r.ustring("path")?, version: r.int("version")? }
            }
            op::DELETE_CONTAINER => ZkRequest::DeleteContainer { path: r.ustring("path")? },
            op::EXISTS => ZkRequest::Exists { path: r.ustring("path")?, watch: r.bool("watch")? },
            op::GET_DATA => {
                ZkRequest::GetData { path: r.ustring("path")?, watch: r.bool("watch")? }
            }
            op::SET_DATA => ZkRequest::SetData {
                path: r.ustring("path")?,
                data: r.buffer("data")?,
                version: r.int("version")?,
            },
            op::GET_ACL => ZkRequest::GetAcl { path: r.ustring("path")? },
            op::SET_ACL => ZkRequest::SetAcl {
                path: r.ustring("path")?,
                acl: r.acl()?,
                version: r.int("version")?,
            },
            op::GET_CHILDREN | op::GET_CHILDREN2 => ZkRequest::GetChildren {
                path: r.ustring("path")?,
                watch: r.bool("watch")?,
                two: op == op::GET_CHILDREN2,
            },
            op::SYNC => ZkRequest::Sync { path: r.ustring("path")? },
            op::PING => ZkRequest::Ping,
            op::CHECK => ZkRequest::Check { path: r.ustring("path")?, version: r.int("version")? },
            op::MULTI | op::MULTI_READ if top => {
                let read = op == op::MULTI_READ;
                let mut ops = Vec::new();
                loop {
                    let kind = r.int("multi header type")?;
                    let done = r.bool("multi header done")?;
                    let _err = r.int("multi header error")?;
                    if done {
                        break;
                    }
                    if ops.len() >= r_elements(r) {
                        return Err(JuteError::TooLong {
                            what: "multi",
                            len: ops.len() + 1,
                            max: r_elements(r),
                        });
                    }
                    let op = ZkRequest::read(kind, r, false)?;
                    if op.is_read() != read {
                        return Err(JuteError::NotInMulti(op.name()));
                    }
                    ops.push(op);
                }
                ZkRequest::Multi { read, ops }
            }
            op::MULTI | op::MULTI_READ => return Err(JuteError::NotInMulti("multi")),
            op::RECONFIG => ZkRequest::Reconfig {
                joining: r.ustring_or_null("joining servers")?,
                leaving: r.ustring_or_null("leaving servers")?,
                members: r.ustring_or_null("new members")?,
                config_id: r.long("config id")?,
            },
            op::CHECK_WATCHES | op::REMOVE_WATCHES => {
                let path = r.ustring("path")?;
                let kind = r.int("watcher type")?;
                if op == op::CHECK_WATCHES {
                    ZkRequest::CheckWatches { path, kind }
                } else {
                    ZkRequest::RemoveWatches { path, kind }
                }
            }
            op::AUTH => ZkRequest::Auth {
                kind: r.int("auth type")?,
                scheme: r.ustring("auth scheme")?,
                auth: r.buffer("auth")?,
            },
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let relative_zxid = r.long("relative zxid")?;
                let data = r.strings("data watches")?;
                let exist = r.strings("exist watches")?;
                let child = r.strings("child watches")?;
                let (persistent, recursive) = if op == op::SET_WATCHES2 {
                    (r.strings("persistent watches")?, r.strings("recursive watches")?)
                } else {
                    (Vec::new(), Vec::new())
                };
                ZkRequest::SetWatches { relative_zxid, data, exist, child, persistent, recursive }
            }
            op::SASL => ZkRequest::Sasl { token: r.buffer("SASL token")? },
            op::GET_EPHEMERALS => ZkRequest::GetEphemerals { prefix: r.ustring("prefix")? },
            op::GET_ALL_CHILDREN_NUMBER => {
                ZkRequest::GetAllChildrenNumber { path: r.ustring("path")? }
            }
            op::ADD_WATCH => ZkRequest::AddWatch { path: r.ustring("path")?, mode: r.int("mode")? },
            op::WHO_AM_I => ZkRequest::WhoAmI,
            op::CLOSE_SESSION => ZkRequest::CloseSession,
            other => return Err(JuteError::UnknownOp(other)),
        };
        if !top && !request.may_be_in_multi() {
            return Err(JuteError::NotInMulti(request.name()));
        }
        Ok(request)
    }

    /// Whether the operation is one of multiRead's (the others inside a
    /// multi are its writes and checks; ZooKeeper mixes neither way).
    fn is_read(&self) -> bool {
        matches!(self, ZkRequest::GetData { .. } | ZkRequest::GetChildren { .. })
    }

    /// Whether ZooKeeper accepts the operation inside a multi or multiRead.
    fn may_be_in_multi(&self) -> bool {
        matches!(
            self,
            ZkRequest::Create { .. }
                | ZkRequest::Delete { .. }
                | ZkRequest::SetData { .. }
                | ZkRequest::Check { .. }
                | ZkRequest::GetData { .. }
                | ZkRequest::GetChildren { two: false, .. }
        )
    }

    /// The operation's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ZkRequest::Create { .. } => "create",
            ZkRequest::Delete { .. } => "delete",
            ZkRequest::DeleteContainer { .. } => "deleteContainer",
            ZkRequest::Exists { .. } => "exists",
            ZkRequest::GetData { .. } => "getData",
            ZkRequest::SetData { .. } => "setData",
            ZkRequest::GetAcl { .. } => "getACL",
            ZkRequest::SetAcl { .. } => "setACL",
            ZkRequest::GetChildren { two: false, .. } => "getChildren",
            ZkRequest::GetChildren { two: true, .. } => "getChildren2",
            ZkRequest::Sync { .. } => "sync",
            ZkRequest::Ping => "ping",
            ZkRequest::Check { .. } => "check",
            ZkRequest::Multi { read: false, .. } => "multi",
            ZkRequest::Multi { read: true, .. } => "multiRead",
            ZkRequest::Reconfig { .. } => "reconfig",
            ZkRequest::CheckWatches { .. } => "checkWatches",
            ZkRequest::RemoveWatches { .. } => "removeWatches",
            ZkRequest::Auth { .. } => "auth",
            ZkRequest::SetWatches { .. } => "setWatches",
            ZkRequest::Sasl { .. } => "sasl",
            ZkRequest::GetEphemerals { .. } => "getEphemerals",
            ZkRequest::GetAllChildrenNumber { .. } => "getAllChildrenNumber",
            ZkRequest::AddWatch { .. } => "addWatch",
            ZkRequest::WhoAmI => "whoAmI",
            ZkRequest::CloseSession => "closeSession",
        }
    }
}

fn r_elements(r: &Reader<'_>) -> usize {
    r.bounds.elements_max
}

/// The header of every reply and notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    /// 0, or one of ZooKeeper's error codes.
    pub err: i32,
}

impl ReplyHeader {
    pub fn encode(&self, w: &mut Writer) {
        w.int(self.xid);
        w.long(self.zxid);
        w.int(self.err);
    }
}

/// One result of a multi or multiRead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    /// A create: by `create`, answered with the path; by the others,
    /// with the path and the Stat.
    Create {
        op: CreateOp,
        path: String,
        stat: Stat,
    },
    Delete,
    SetData(Stat),
    Check,
    GetData {
        data: Vec<u8>,
        stat: Stat,
    },
    GetChildren(Vec<String>),
    /// A failed operation's code (ZooKeeper's per-op markers: 0 before the
    /// failing one, its code, then RuntimeInconsistency).
    Error(i32),
}

/// A reply body, by what it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZkResponse {
    /// No body: delete, deleteContainer, ping, auth, setWatches,
    /// checkWatches, removeWatches, closeSession, and every failed request.
    Empty,
    /// addWatch's answer: ZooKeeper sends an error record holding 0, which
    /// its clients read.
    AddWatch,
    Create(String),
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    Data {
        data: Vec<u8>,
        stat: Stat,
    },
    Children(Vec<String>),
    Children2 {
        names: Vec<String>,
        stat: Stat,
    },
    Acl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    Sync(String),
    Multi(Vec<MultiResult>),
    Ephemerals(Vec<String>),
    AllChildrenNumber(i32),
    /// (scheme, user) of each of the session's identities.
    WhoAmI(Vec<(String, String)>),
}

impl ZkResponse {
    pub fn encode(&self, w: &mut Writer) {
        match self {
            ZkResponse::Empty => {}
            ZkResponse::AddWatch => w.int(0),
            ZkResponse::Create(path) | ZkResponse::Sync(path) => w.ustring(path),
            ZkResponse::Create2 { path, stat } => {
                w.ustring(path);
                w.stat(stat);
            }
            ZkResponse::Stat(stat) => w.stat(stat),
            ZkResponse::Data { data, stat } => {
                w.buffer(Some(data));
                w.stat(stat);
            }
            ZkResponse::Children(names) | ZkResponse::Ephemerals(names) => w.strings(names),
            ZkResponse::Children2 { names, stat } => {
                w.strings(names);
                w.stat(stat);
            }
            ZkResponse::Acl { acl, stat } => {
                w.acl(acl);
                w.stat(stat);
            }
            ZkResponse::Multi(results) => {
                for result in results {
                    let (kind, err) = match result {
                        // ZooKeeper's multi results know two creates:
                        // `create` (the path) and `create2` (path and Stat),
                        // which answers container and TTL creates too.
                        MultiResult::Create { op: CreateOp::Create, .. } => (op::CREATE, 0),
                        MultiResult::Create { .. } => (op::CREATE2, 0),
                        MultiResult::Delete => (op::DELETE, 0),
                        MultiResult::SetData(_) => (op::SET_DATA, 0),
                        MultiResult::Check => (op::CHECK, 0),
                        MultiResult::GetData { .. } => (op::GET_DATA, 0),
                        MultiResult::GetChildren(_) => (op::GET_CHILDREN, 0),
                        MultiResult::Error(code) => (op::ERROR, *code),
                    };
                    w.int(kind);
                    w.bool(false);
                    w.int(err);
                    match result {
                        MultiResult::Create { op, path, stat } => {
                            w.ustring(path);
                            if *op != CreateOp::Create {
                                w.stat(stat);
                            }
                        }
                        MultiResult::SetData(stat) => w.stat(stat),
                        MultiResult::GetData { data, stat } => {
                            w.buffer(Some(data));
                            w.stat(stat);
                        }
                        MultiResult::GetChildren(names) => w.strings(names),
                        MultiResult::Error(code) => w.int(*code),
                        MultiResult::Delete | MultiResult::Check => {}
                    }
                }
                // The end marker.
                w.int(-1);
                w.bool(true);
                w.int(-1);
            }
            ZkResponse::AllChildrenNumber(n) => w.int(*n),
            ZkResponse::WhoAmI(ids) => {
                w.int(ids.len() as i32);
                for (scheme, user) in ids {
                    w.ustring(scheme);
                    w.ustring(user);
                }
            }
        }
    }
}

/// A watch notification's body (after a header with xid −1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    /// ZooKeeper's `EventType` code.
    pub kind: i32,
    /// ZooKeeper's `KeeperState` code (3: SyncConnected).
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn encode(&self, w: &mut Writer) {
        w.int(self.kind);
        w.int(self.state);
        w.ustring(&self.path);
    }
}
