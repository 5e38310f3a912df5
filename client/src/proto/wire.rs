//! The client protocol: the frames a client and a server exchange on a
//! session's stream. One bidirectional QUIC stream carries one session, so
//! replies and watch events arrive in the order the server produced them (an
//! event always before any reply that reflects its change).
//!
//! A stream starts with the client's [`ClientFrame::Hello`] and the server's
//! [`ServerFrame::Welcome`] (or [`ServerFrame::Refused`]); then requests,
//! each with a client-chosen `xid`, are answered in order. Frames are CBOR,
//! each preceded by its length (see [`crate::frame`]).

use crate::proto::acl::{Acl, Id};
use crate::proto::error::ApiError;
use crate::proto::event::{WatchKind, WatchedEvent};
use crate::proto::ids::{SessionId, SessionSecret, Zxid};
use crate::proto::op::{Op, Reply};
use crate::proto::plugin::PluginInfo;
use crate::proto::stat::Stat;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// ALPN of client connections.
pub const ALPN_CLIENT: &[u8] = b"warren-client/1";

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of a stream: open a session or resume one.
    Hello(Hello),
    Request {
        xid: u64,
        request: Request,
    },
    /// Keeps the session alive; answered with [`ServerFrame::Pong`].
    Ping,
    /// Ends the session: its ephemeral nodes go. Answered with
    /// [`ServerFrame::Closed`].
    Close,
}

/// Opening or resuming a session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The session to resume, or none to open a new one.
    pub session: Option<SessionId>,
    /// The resumed session's secret, from its [`Welcome`].
    #[serde(default)]
    pub secret: SessionSecret,
    /// The session timeout asked for (a new session only).
    pub timeout_ms: u32,
    /// The last zxid this client has seen: a server that has not applied
    /// that far refuses, so a client never goes back in time.
    pub last_zxid: Zxid,
    /// Watches to re-arm on a resumed session; events for changes after
    /// `last_zxid` that they would have caught fire at once.
    pub watches: WatchSet,
}

/// A session's watches, by kind (ZooKeeper's setWatches).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSet {
    /// Data watches on nodes that existed (getData, exists).
    pub data: Vec<String>,
    /// Data watches set by exists on nodes that did not exist.
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

impl WatchSet {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }
}

/// A request of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A write, applied through the leader in log order.
    Write(Op),
    /// A read of the server's state. With `linearizable`, the server first
    /// confirms with the leader that it has applied everything committed
    /// when the read arrived (read-index), so the read sees every write
    /// acknowledged before it, from any client.
    Read { read: Read, linearizable: bool },
    /// Several reads answered together from one state, each with its own
    /// result (ZooKeeper's multiRead): [`Answer::Many`].
    ReadMany(Vec<Read>),
    /// Brings the server up to the leader's commit point before later
    /// requests of this session are answered (ZooKeeper's sync).
    Sync { path: String },
    /// Adds a persistent or persistent-recursive watch.
    AddWatch { path: String, kind: WatchKind },
    /// Removes the session's watches of a kind on a path.
    RemoveWatch { path: String, kind: WatchKind },
    /// Answers [`Answer::Watching`] when the session holds a watch of the
    /// kind on the path, else fails with `NoWatcher` (ZooKeeper's
    /// checkWatches).
    CheckWatch { path: String, kind: WatchKind },
    /// The session's identities, as ACLs see them (ZooKeeper's whoAmI).
    WhoAmI,
    /// This server's view of itself.
    Status,
    /// Adds an identity to the session for ACL checks (ZooKeeper's
    /// addAuth): scheme `digest` with `user:password`, which the session
    /// then holds as `digest:user:<base64 sha1>`. Replicated: every server
    /// checks the session's writes and reads with it, and it outlives a
    /// move to another server.
    AddAuth {
        scheme: String,
        #[serde(with = "serde_bytes")]
        auth: Vec<u8>,
    },
    /// Registers watches on the open session (ZooKeeper's setWatches,
    /// which follows the connect): one-shot watches fire at once if their
    /// condition changed after `last_zxid`; persistent and recursive ones
    /// get what they would have caught since, as on a resume.
    SetWatches { last_zxid: Zxid, watches: WatchSet },
}

/// The reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Read {
    GetData {
        path: String,
        watch: bool,
    },
    /// Sets a data watch even when the node does not exist.
    Exists {
        path: String,
        watch: bool,
    },
    /// Children sorted by name, at most a page, starting after `after`.
    GetChildren {
        path: String,
        watch: bool,
        after: Option<String>,
    },
    GetAcl {
        path: String,
    },
    /// The session's ephemeral nodes under `prefix`.
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    /// The plugin registry, sorted by name.
    Plugins,
}

/// What a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The session is open on this server.
    Welcome(Welcome),
    /// The server will not open or resume the session; the stream ends.
    Refused(Refusal),
    /// The answer to the request `xid`, with the zxid the server had applied
    /// when it answered.
    Response {
        xid: u64,
        zxid: Zxid,
        result: Result<Answer, Failure>,
    },
    Event(WatchedEvent),
    Pong,
    /// The session was closed at the client's request.
    Closed,
    /// The server ends the stream (the session lives on unless it expired):
    /// why, for the client to log; it should connect again.
    Goodbye(Goodbye),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub session: SessionId,
    /// What resuming the session takes besides its id: keep it private.
    #[serde(default)]
    pub secret: SessionSecret,
    pub timeout_ms: u32,
    /// The node the client is connected to.
    pub server: u64,
    /// The zxid this server has applied.
    pub zxid: Zxid,
    /// A resumed session's persistent or recursive watches may have missed
    /// changes: they were made further back than this server keeps to
    /// replay. The events that follow report only the watched paths' own
    /// latest changes; read again what matters.
    #[serde(default)]
    pub events_lost: bool,
}

/// Why a server refused a session.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("session {session} has expired or was closed; open a new session")]
    Expired { session: SessionId },
    #[error(
        "this server has applied up to {server}, behind the {client} this client has seen; try another server"
    )]
    Behind { server: Zxid, client: Zxid },
    #[error(
        "the secret given for session {session} is not the one it was issued; resume it with the secret from its welcome"
    )]
    WrongSecret { session: SessionId },
    #[error("the session could not be opened: {0}")]
    Failed(Failure),
    #[error("the first frame must be a Hello")]
    NoHello,
    #[error("this server is out of touch with the cluster's leader; try another server")]
    NoLeader,
}

/// Why a server ended a stream.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Goodbye {
    #[error(
        "the client read too slowly: {pending} frames waited to be sent; read faster or watch less"
    )]
    TooSlow { pending: usize },
    #[error("session {session} expired; open a new session")]
    Expired { session: SessionId },
    #[error("the server is shutting down; connect to another")]
    ShuttingDown,
    #[error("the server caught up from a snapshot; connect again to re-arm watches")]
    Resync,
    #[error("the request could not be carried out ({0}); connect again and retry")]
    Unavailable(String),
    #[error("the client sent a bad frame: {0}")]
    BadFrame(String),
    /// The server lost contact with the leader: the session lives on, and
    /// the client should move to another server at once.
    #[error("the server lost contact with the cluster's leader; connect to another")]
    NoLeader,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// A write's result (which may itself be an [`ApiError`]).
    Write(Reply),
    Data {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        stat: Stat,
    },
    Exists(Option<Stat>),
    Children {
        names: Vec<String>,
        stat: Stat,
        more: bool,
    },
    Acl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    Ephemerals(Vec<String>),
    Count(u64),
    Plugins(Vec<PluginInfo>),
    Synced,
    Watching,
    Unwatched,
    /// The identity was added to the session.
    Authenticated,
    /// The session's identities.
    Identities(Vec<Id>),
    /// The answers to a [`Request::ReadMany`], in order.
    Many(Vec<Result<Answer, ApiError>>),
    /// The watches are set; their events came before this answer.
    /// `events_lost` as in [`Welcome`].
    WatchesSet {
        events_lost: bool,
    },
    Status(ServerStatus),
}

/// Why a request was not answered with a result.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Failure {
    /// A read or watch request failed as ZooKeeper's would.
    #[error("{0}")]
    Api(ApiError),
    /// The write may or may not have been applied (its server lost contact
    /// with the leader before learning the outcome). Read before retrying.
    #[error("the outcome of the write is unknown ({why}); read the node before retrying")]
    OutcomeUnknown { why: String },
    /// Nothing was done; the request can be retried as it is.
    #[error("the cluster could not take the request now ({why}); retry shortly")]
    Unavailable { why: String },
    /// The session has too many requests in flight.
    #[error("too many requests in flight on this session (limit {max}); wait for replies")]
    Throttled { max: usize },
}

/// A server's view of itself, for `warren status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub node: u64,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: Zxid,
    pub digest: u64,
    pub sessions: usize,
    pub znodes: usize,
}
