//! The async client: one session, kept alive, moved to another server when
//! its server fails, with every operation of the state machine and watches
//! as one-shot futures or streams.
//!
//! A background task owns the connection: it writes requests (each with an
//! `xid`), reads answers and events in the order the server sent them,
//! pings at a third of the session timeout, and on a silent or broken
//! connection moves to another server, sending the last zxid it saw and its
//! watches so that nothing is missed. Requests in flight when a connection
//! breaks fail with [`Error::ConnectionLoss`] (a write's outcome is then
//! unknown, as in ZooKeeper); requests made while reconnecting wait for the
//! new connection.

use crate::config::ClientConfig;
use crate::frame::{self, FRAME_BYTES_MAX, FrameReader};
use crate::path_is_under;
use crate::proto::wire::{
    Answer, ClientFrame, Failure, Goodbye, Hello, Read, Refusal, Request, ServerFrame,
    ServerStatus, WatchSet, Welcome,
};
use crate::proto::{
    Acl, ApiError, CreateMode, EventType, Op, OpResult, PLUGIN_FUEL_DEFAULT, PLUGIN_MEMORY_DEFAULT,
    PluginInfo, PluginOp, SessionId, SessionSecret, Stat, WatchKind, WatchedEvent, Zxid,
};
use crate::tls;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// What went wrong with a call.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// The operation failed as ZooKeeper's would (NoNode, BadVersion, ...).
    #[error("{0}")]
    Api(ApiError),
    /// The connection broke with the request in flight: a write may or may
    /// not have been applied. Read before retrying.
    #[error(
        "the connection to {server} was lost with the request in flight; its outcome is unknown"
    )]
    ConnectionLoss { server: String },
    /// The server said the write's outcome is unknown.
    #[error("{0}")]
    Failed(Failure),
    #[error("session {session} expired; open a new client")]
    SessionExpired { session: SessionId },
    #[error(
        "no server could be reached: {tried}; check that the cluster runs and the addresses in the configuration"
    )]
    NoServer { tried: String },
    #[error("the request got no answer within {ms} ms")]
    Timeout { ms: u64 },
    #[error("{0}")]
    Setup(String),
    /// The request would not fit in one frame; nothing was sent.
    #[error("the request is {len} bytes, over the frame limit of {max}; send less in one request")]
    TooLarge { len: usize, max: usize },
    #[error("the client is closed")]
    Closed,
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Api(e)
    }
}

/// How [`Client::install_plugin`] installs a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// Fuel for one call: roughly one unit per WebAssembly instruction
    /// (default [`PLUGIN_FUEL_DEFAULT`]).
    pub fuel: u64,
    /// The most linear memory one call may use, in bytes (default
    /// [`PLUGIN_MEMORY_DEFAULT`]).
    pub memory_bytes: u64,
    /// Install only if the installed version is this one (0: only if none
    /// is installed), as a setData's version; `None` installs in any case.
    pub expected_version: Option<u32>,
}

impl Default for InstallOptions {
    fn default() -> InstallOptions {
        InstallOptions {
            fuel: PLUGIN_FUEL_DEFAULT,
            memory_bytes: PLUGIN_MEMORY_DEFAULT,
            expected_version: None,
        }
    }
}

/// What an operation plugin answered ([`Client::invoke`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoked {
    /// The plugin's output bytes, for the caller.
    pub output: Vec<u8>,
    /// The results of the writes the plugin asked for, in order; they were
    /// applied atomically, as one multi.
    pub results: Vec<OpResult>,
}

/// A one-shot watch: resolves with the event that consumed it.
pub struct WatchOnce(oneshot::Receiver<WatchedEvent>);

impl WatchOnce {
    /// The event, or `None` if the session ended first.
    pub async fn event(self) -> Option<WatchedEvent> {
        self.0.await.ok()
    }
}

/// A persistent watch: every event, until dropped.
pub struct WatchStream(mpsc::UnboundedReceiver<WatchedEvent>);

impl WatchStream {
    /// The next event, or `None` if the session ended.
    pub async fn next(&mut self) -> Option<WatchedEvent> {
        self.0.recv().await
    }
}

type Reply = oneshot::Sender<Result<(Answer, Zxid), Error>>;

enum Cmd {
    Request { request: Request, reply: Reply, watch: Option<Registration> },
    Close { reply: oneshot::Sender<Result<(), Error>> },
}

/// A watch to register once its request succeeds.
enum Registration {
    /// getData / exists: a data watch (or an exist watch on a missing node).
    Data(oneshot::Sender<WatchedEvent>),
    Child(oneshot::Sender<WatchedEvent>),
    Stream {
        recursive: bool,
        tx: mpsc::UnboundedSender<WatchedEvent>,
    },
}

/// Watches held, by path, for dispatch and for re-arming after a move.
#[derive(Default)]
struct Watches {
    data: BTreeMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    exist: BTreeMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    child: BTreeMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    persistent: BTreeMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>,
    recursive: BTreeMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>,
}

impl Watches {
    fn set(&self) -> WatchSet {
        let keys = |m: &BTreeMap<String, Vec<_>>| m.keys().cloned().collect();
        let live = |m: &BTreeMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>| {
            m.iter()
                .filter(|(_, v)| v.iter().any(|t| !t.is_closed()))
                .map(|(k, _)| k.clone())
                .collect()
        };
        WatchSet {
            data: keys(&self.data),
            exist: keys(&self.exist),
            child: keys(&self.child),
            persistent: live(&self.persistent),
            recursive: live(&self.recursive),
        }
    }

    /// Hands an event to every watch it fires, as the server's rules say.
    fn dispatch(&mut self, event: &WatchedEvent) {
        let path = event.path.as_str();
        let data_event = matches!(
            event.event,
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
        );
        if data_event {
            for map in [&mut self.data, &mut self.exist] {
                for tx in map.remove(path).unwrap_or_default() {
                    let _ = tx.send(event.clone());
                }
            }
        }
        if matches!(event.event, EventType::NodeChildrenChanged | EventType::NodeDeleted) {
            for tx in self.child.remove(path).unwrap_or_default() {
                let _ = tx.send(event.clone());
            }
        }
        if let Some(streams) = self.persistent.get_mut(path) {
            streams.retain(|tx| tx.send(event.clone()).is_ok());
        }
        if data_event {
            for (root, streams) in self.recursive.iter_mut() {
                if path_is_under(path, root) {
                    streams.retain(|tx| tx.send(event.clone()).is_ok());
                }
            }
        }
        self.persistent.retain(|_, v| !v.is_empty());
        self.recursive.retain(|_, v| !v.is_empty());
    }
}

/// A client with one session. Cheap to clone; every clone uses the same
/// session. The session ends when [`Client::close`] is called or every
/// clone is dropped (then it expires after its timeout).
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Cmd>,
    session: SessionId,
    secret: SessionSecret,
    events_lost: Arc<AtomicU64>,
    timeout: Duration,
    request_timeout: Duration,
}

struct Link {
    server: SocketAddr,
    conn: quinn::Connection,
    send: quinn::SendStream,
    frames: mpsc::Receiver<Result<ServerFrame, String>>,
}

struct Pending {
    reply: Reply,
    /// The watch to register on success, and its path.
    watch: Option<(Registration, String)>,
}

struct Driver {
    config: ClientConfig,
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
    session: SessionId,
    /// What resumes the session, with its id.
    secret: SessionSecret,
    /// Moves whose server could not replay every missed event.
    events_lost: Arc<AtomicU64>,
    timeout: Duration,
    link: Option<Link>,
    next_xid: u64,
    inflight: BTreeMap<u64, Pending>,
    queued: VecDeque<Cmd>,
    last_zxid: Zxid,
    watches: Watches,
    last_heard: Instant,
    /// Index of the server to try first on the next move.
    next_server: usize,
    /// A close sent, waiting for the server's Closed.
    closing: Option<oneshot::Sender<Result<(), Error>>>,
}

/// Opens sessions through one QUIC endpoint: one UDP socket and one
/// receive loop for all of them, as QUIC intends, instead of one each.
/// For a process that holds many sessions (a benchmark, a proxy); cheap to
/// clone. Create it inside the tokio runtime its sessions will run on.
#[derive(Clone)]
pub struct Connector {
    config: ClientConfig,
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
}

impl Connector {
    /// Reads the TLS material of `config` and opens the endpoint's socket.
    pub fn new(config: &ClientConfig) -> Result<Connector, Error> {
        let quic = tls::client_config(&config.ca, &config.cert, &config.key)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let bind: SocketAddr = if config.servers.first().is_some_and(|s| s.is_ipv6()) {
            "[::]:0".parse().expect("a valid address")
        } else {
            "0.0.0.0:0".parse().expect("a valid address")
        };
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| Error::Setup(format!("cannot open a UDP socket: {e}")))?;
        Ok(Connector { config: config.clone(), endpoint, quic })
    }

    /// Connects to one of the configured servers and opens a session.
    pub async fn connect(&self) -> Result<Client, Error> {
        let config = &self.config;
        let hello = Hello {
            session: None,
            secret: SessionSecret::default(),
            timeout_ms: config.session_timeout.as_millis().min(u32::MAX as u128) as u32,
            last_zxid: Zxid(0),
            watches: WatchSet::default(),
        };
        let start = if config.shuffle { random_index(config.servers.len()) } else { 0 };
        let mut tried = Vec::new();
        for i in 0..config.servers.len() {
            let server = config.servers[(start + i) % config.servers.len()];
            let wait = config.session_timeout.min(Duration::from_secs(5));
            match open(&self.endpoint, &self.quic, server, &hello, wait).await {
                Ok((link, welcome)) => {
                    let timeout = Duration::from_millis(welcome.timeout_ms.into());
                    let (tx, rx) = mpsc::channel(1024);
                    let events_lost = Arc::new(AtomicU64::new(0));
                    let driver = Driver {
                        events_lost: events_lost.clone(),
                        config: config.clone(),
                        endpoint: self.endpoint.clone(),
                        quic: self.quic.clone(),
                        session: welcome.session,
                        secret: welcome.secret,
                        timeout,
                        link: Some(link),
                        next_xid: 1,
                        inflight: BTreeMap::new(),
                        queued: VecDeque::new(),
                        last_zxid: welcome.zxid,
                        watches: Watches::default(),
                        last_heard: Instant::now(),
                        next_server: (start + i + 1) % config.servers.len(),
                        closing: None,
                    };
                    tokio::spawn(driver.run(rx));
                    return Ok(Client {
                        tx,
                        session: welcome.session,
                        secret: welcome.secret,
                        events_lost,
                        timeout,
                        request_timeout: config.request_timeout,
                    });
                }
                Err(why) => tried.push(format!("{server}: {why}")),
            }
        }
        Err(Error::NoServer { tried: tried.join("; ") })
    }
}

impl Client {
    /// Connects to one of the configured servers and opens a session, on
    /// an endpoint of its own (see [`Connector`] for sessions sharing one).
    pub async fn connect(config: &ClientConfig) -> Result<Client, Error> {
        Connector::new(config)?.connect().await
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The secret that, with the session's id, resumes it (ZooKeeper's
    /// session password). Keep it as private as the client's key.
    pub fn session_secret(&self) -> SessionSecret {
        self.secret
    }

    /// The negotiated session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.timeout
    }

    /// How many times the session moved to a server that could not replay
    /// every event its persistent and recursive watches may have missed
    /// (the changes were older than the server keeps to replay). When this
    /// grows, read again what those watches cover.
    pub fn events_lost(&self) -> u64 {
        self.events_lost.load(Ordering::Relaxed)
    }

    /// Adds an identity to the session for ACL checks, on every server and
    /// across moves (ZooKeeper's addAuth): scheme `digest` with
    /// `user:password`, matching ACLs on `digest:user:<base64 sha1>`.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        let request = Request::AddAuth { scheme: scheme.to_owned(), auth: auth.to_vec() };
        match self.call(request, None).await?.0 {
            Answer::Authenticated => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn call(
        &self,
        request: Request,
        watch: Option<Registration>,
    ) -> Result<(Answer, Zxid), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Request { request, reply, watch }).await.map_err(|_| Error::Closed)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout { ms: self.request_timeout.as_millis() as u64 }),
        }
    }

    async fn write(&self, op: Op) -> Result<OpResult, Error> {
        match self.call(Request::Write(op), None).await?.0 {
            Answer::Write(reply) => reply.map_err(Error::Api),
            other => Err(unexpected(other)),
        }
    }

    async fn read(&self, read: Read, watch: Option<Registration>) -> Result<Answer, Error> {
        Ok(self.call(Request::Read { read, linearizable: false }, watch).await?.0)
    }

    /// Creates a node readable and writable by anyone; returns its path
    /// (with the sequence suffix for sequential modes).
    pub async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, Error> {
        self.create_with_acl(path, data, Acl::open(), mode).await.map(|(path, _)| path)
    }

    pub async fn create_with_acl(
        &self,
        path: &str,
        data: &[u8],
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        let op = Op::Create { path: path.to_owned(), data: data.to_vec(), acl, mode };
        match self.write(op).await? {
            OpResult::Create { path, stat } => Ok((path, stat)),
            other => Err(unexpected_result(other)),
        }
    }

    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        self.write(Op::Delete { path: path.to_owned(), version }).await.map(|_| ())
    }

    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        let op = Op::SetData { path: path.to_owned(), data: data.to_vec(), version };
        match self.write(op).await? {
            OpResult::SetData { stat } => Ok(stat),
            other => Err(unexpected_result(other)),
        }
    }

    pub async fn set_acl(
        &self,
        path: &str,
        acl: Vec<Acl>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        match self.write(Op::SetAcl { path: path.to_owned(), acl, version }).await? {
            OpResult::SetAcl { stat } => Ok(stat),
            other => Err(unexpected_result(other)),
        }
    }

    /// All of `ops` or none.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, Error> {
        match self.write(Op::Multi(ops)).await? {
            OpResult::Multi(results) => Ok(results),
            other => Err(unexpected_result(other)),
        }
    }

    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let read = Read::GetData { path: path.to_owned(), watch: false };
        data_answer(self.read(read, None).await?)
    }

    /// The data, with a one-shot watch for its next change.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, WatchOnce), Error> {
        let (tx, rx) = oneshot::channel();
        let read = Read::GetData { path: path.to_owned(), watch: true };
        let (data, stat) = data_answer(self.read(read, Some(Registration::Data(tx))).await?)?;
        Ok((data, stat, WatchOnce(rx)))
    }

    /// A read that sees every write acknowledged before it, from any client.
    pub async fn get_data_linearizable(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let read = Read::GetData { path: path.to_owned(), watch: false };
        data_answer(self.call(Request::Read { read, linearizable: true }, None).await?.0)
    }

    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        match self.read(Read::Exists { path: path.to_owned(), watch: false }, None).await? {
            Answer::Exists(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// The Stat, with a one-shot watch for the node's creation, change or
    /// deletion.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, WatchOnce), Error> {
        let (tx, rx) = oneshot::channel();
        let read = Read::Exists { path: path.to_owned(), watch: true };
        match self.read(read, Some(Registration::Data(tx))).await? {
            Answer::Exists(stat) => Ok((stat, WatchOnce(rx))),
            other => Err(unexpected(other)),
        }
    }

    /// Every child's name, sorted (paging through large lists).
    pub async fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let read = Read::GetChildren { path: path.to_owned(), watch: false, after };
            match self.read(read, None).await? {
                Answer::Children { names, stat, more } => {
                    after = names.last().cloned();
                    all.extend(names);
                    if !more {
                        return Ok((all, stat));
                    }
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    /// The first page of children, with a one-shot watch for a change of
    /// the children (or the node's deletion).
    pub async fn get_children_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, WatchOnce), Error> {
        let (tx, rx) = oneshot::channel();
        let read = Read::GetChildren { path: path.to_owned(), watch: true, after: None };
        match self.read(read, Some(Registration::Child(tx))).await? {
            Answer::Children { names, stat, .. } => Ok((names, stat, WatchOnce(rx))),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        match self.read(Read::GetAcl { path: path.to_owned() }, None).await? {
            Answer::Acl { acl, stat } => Ok((acl, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// This session's ephemeral nodes under `prefix`.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        match self.read(Read::GetEphemerals { prefix: prefix.to_owned() }, None).await? {
            Answer::Ephemerals(paths) => Ok(paths),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_all_children_number(&self, path: &str) -> Result<u64, Error> {
        match self.read(Read::GetAllChildrenNumber { path: path.to_owned() }, None).await? {
            Answer::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Waits until the server has applied everything the leader had
    /// committed when the sync arrived.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        match self.call(Request::Sync { path: path.to_owned() }, None).await?.0 {
            Answer::Synced => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// A persistent watch on `path` (every event of the node), or with
    /// `recursive` on it and every node below (creations, data changes and
    /// deletions). It stays until the stream is dropped.
    pub async fn watch(&self, path: &str, recursive: bool) -> Result<WatchStream, Error> {
        // Unbounded, as ZooKeeper's event queue: an event is never dropped
        // because the application reads slowly.
        let (tx, rx) = mpsc::unbounded_channel();
        let kind = if recursive { WatchKind::PersistentRecursive } else { WatchKind::Persistent };
        let request = Request::AddWatch { path: path.to_owned(), kind };
        match self.call(request, Some(Registration::Stream { recursive, tx })).await?.0 {
            Answer::Watching => Ok(WatchStream(rx)),
            other => Err(unexpected(other)),
        }
    }

    /// Installs `component` (a WebAssembly component of a `warren:plugin`
    /// world) as the plugin `name`, or replaces the one installed there;
    /// returns its registry entry. Every replica checks the SHA-256 this
    /// computes, validates the component and switches at the same zxid.
    /// Needs ADMIN on the root.
    pub async fn install_plugin(
        &self,
        name: &str,
        component: &[u8],
        options: InstallOptions,
    ) -> Result<PluginInfo, Error> {
        let sha256 = ring::digest::digest(&ring::digest::SHA256, component).as_ref().to_vec();
        let op = PluginOp::Install {
            name: name.to_owned(),
            component: component.to_vec(),
            sha256,
            fuel: options.fuel,
            memory_bytes: options.memory_bytes,
            expected_version: options.expected_version,
        };
        self.plugin_op(op).await
    }

    /// Binds the validator `name` to `prefix`: it then runs on every write
    /// at or below `prefix`, given `config` (for example a JSON schema).
    /// Binding again replaces the configuration. Returns the plugin's
    /// registry entry.
    pub async fn bind_plugin(
        &self,
        name: &str,
        prefix: &str,
        config: &[u8],
    ) -> Result<PluginInfo, Error> {
        let op = PluginOp::Bind {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            config: config.to_vec(),
        };
        self.plugin_op(op).await
    }

    /// Unbinds the validator `name` from `prefix`; returns the plugin's
    /// registry entry.
    pub async fn unbind_plugin(&self, name: &str, prefix: &str) -> Result<PluginInfo, Error> {
        self.plugin_op(PluginOp::Unbind { name: name.to_owned(), prefix: prefix.to_owned() }).await
    }

    /// Removes the plugin `name`, which must no longer be bound anywhere.
    pub async fn remove_plugin(&self, name: &str) -> Result<(), Error> {
        match self.write(Op::Plugin(PluginOp::Remove { name: name.to_owned() })).await? {
            OpResult::PluginRemoved => Ok(()),
            other => Err(unexpected_result(other)),
        }
    }

    /// Runs the operation plugin `plugin` on `path` with `args`: the writes
    /// it returns are applied atomically (validators included), and its
    /// output comes back with their results.
    pub async fn invoke(&self, plugin: &str, path: &str, args: &[u8]) -> Result<Invoked, Error> {
        let op =
            Op::Invoke { plugin: plugin.to_owned(), path: path.to_owned(), args: args.to_vec() };
        match self.write(op).await? {
            OpResult::Invoked { output, results } => Ok(Invoked { output, results }),
            other => Err(unexpected_result(other)),
        }
    }

    /// The installed plugins, sorted by name, as the connected server has
    /// applied them.
    pub async fn list_plugins(&self) -> Result<Vec<PluginInfo>, Error> {
        match self.read(Read::Plugins, None).await? {
            Answer::Plugins(plugins) => Ok(plugins),
            other => Err(unexpected(other)),
        }
    }

    async fn plugin_op(&self, op: PluginOp) -> Result<PluginInfo, Error> {
        match self.write(Op::Plugin(op)).await? {
            OpResult::Plugin(info) => Ok(info),
            other => Err(unexpected_result(other)),
        }
    }

    /// The connected server's view of itself.
    pub async fn status(&self) -> Result<ServerStatus, Error> {
        match self.call(Request::Status, None).await?.0 {
            Answer::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// Ends the session: its ephemeral nodes go.
    pub async fn close(self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Close { reply }).await.map_err(|_| Error::Closed)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout { ms: self.request_timeout.as_millis() as u64 }),
        }
    }
}

/// A random index below `n` (the standard library's per-process random
/// hash keys, varied by a counter).
fn random_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() % n as u64) as usize
}

fn unexpected(answer: Answer) -> Error {
    Error::Setup(format!("the server answered with an unexpected {answer:?}"))
}

fn unexpected_result(result: OpResult) -> Error {
    Error::Setup(format!("the server answered with an unexpected {result:?}"))
}

fn data_answer(answer: Answer) -> Result<(Vec<u8>, Stat), Error> {
    match answer {
        Answer::Data { data, stat } => Ok((data, stat)),
        other => Err(unexpected(other)),
    }
}

/// Dials `server`, opens a session stream and says hello; returns the link
/// and the server's welcome.
async fn open(
    endpoint: &quinn::Endpoint,
    quic: &quinn::ClientConfig,
    server: SocketAddr,
    hello: &Hello,
    wait: Duration,
) -> Result<(Link, Welcome), String> {
    let attempt = async {
        let connecting = endpoint
            .connect_with(quic.clone(), server, tls::SERVER_NAME)
            .map_err(|e| e.to_string())?;
        let conn = connecting.await.map_err(|e| e.to_string())?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        frame::write(&mut send, &ClientFrame::Hello(hello.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let mut recv = FrameReader::new(recv, 16 << 10, FRAME_BYTES_MAX);
        let first = recv.next::<ServerFrame>().await.map_err(|e| {
            // TLS 1.3 finishes the client's side before the server checked
            // the client's certificate: a refusal shows up here.
            format!("{e} (did the server refuse this client's certificate?)")
        })?;
        let welcome = match first {
            Some(ServerFrame::Welcome(welcome)) => welcome,
            Some(ServerFrame::Refused(refusal)) => return Err(refused(refusal)),
            Some(other) => return Err(format!("the server answered {other:?} to hello")),
            None => return Err("the server closed the stream".into()),
        };
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(read_frames(recv, tx));
        Ok((Link { server, conn, send, frames: rx }, welcome))
    };
    match tokio::time::timeout(wait.max(Duration::from_millis(500)), attempt).await {
        Ok(result) => result,
        Err(_) => Err("no answer in time".into()),
    }
}

/// How often a session pings its server: a third of its timeout, as
/// ZooKeeper's clients do, but at least every 400 ms, so that a server that
/// died, stopped or was cut off is noticed within about an election timeout.
fn ping_every(timeout: Duration) -> Duration {
    (timeout / 3).min(Duration::from_millis(400))
}

/// How long a server may be silent (no answer, event or pong) before the
/// session moves to another: three pings, and never more than two thirds
/// of the session timeout.
fn silence_max(timeout: Duration) -> Duration {
    (ping_every(timeout) * 3).min(timeout * 2 / 3)
}

/// Marks refusals that end the session, so the driver stops trying.
const EXPIRED_MARK: &str = "expired:";

fn refused(refusal: Refusal) -> String {
    match refusal {
        Refusal::Expired { .. } => format!("{EXPIRED_MARK} {refusal}"),
        other => other.to_string(),
    }
}

/// The path a watch-setting request watches.
fn watched_path(request: &Request) -> Option<String> {
    match request {
        Request::Read { read: Read::GetData { path, .. }, .. }
        | Request::Read { read: Read::Exists { path, .. }, .. }
        | Request::Read { read: Read::GetChildren { path, .. }, .. }
        | Request::AddWatch { path, .. } => Some(path.clone()),
        _ => None,
    }
}

/// Reads frames off a stream into a channel, so the driver's select sees
/// the link's frames, its own commands and its timers as one kind of
/// event.
async fn read_frames(
    mut recv: FrameReader<quinn::RecvStream>,
    tx: mpsc::Sender<Result<ServerFrame, String>>,
) {
    loop {
        let item = match recv.next::<ServerFrame>().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("the server ended the stream".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let end = item.is_err();
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

enum Next {
    Cmd(Option<Cmd>),
    Frame(Option<Result<ServerFrame, String>>),
    Ping,
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut ping = tokio::time::interval(ping_every(self.timeout));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(link) = self.link.as_mut() else {
                if !self.reconnect().await {
                    self.expire(&mut cmds).await;
                    return;
                }
                continue;
            };
            let next = tokio::select! {
                cmd = cmds.recv() => Next::Cmd(cmd),
                frame = link.frames.recv() => Next::Frame(frame),
                _ = ping.tick() => Next::Ping,
            };
            match next {
                Next::Cmd(None) => {
                    // Every handle dropped: leave; the session expires.
                    if let Some(link) = self.link.take() {
                        link.conn.close(0u32.into(), b"client dropped");
                    }
                    return;
                }
                Next::Cmd(Some(cmd)) => self.send_cmd(cmd).await,
                Next::Frame(Some(Ok(frame))) => {
                    self.last_heard = Instant::now();
                    if !self.on_frame(frame) {
                        self.lose_link();
                    }
                    if self.closed() {
                        return;
                    }
                }
                Next::Frame(Some(Err(_))) | Next::Frame(None) => self.lose_link(),
                Next::Ping => {
                    // Silent for three pings: the server is gone for us
                    // (dead, paused or cut off); move while the session
                    // lives, and about as fast as the cluster elects a new
                    // leader.
                    if self.last_heard.elapsed() > silence_max(self.timeout) {
                        self.lose_link();
                    } else if let Some(link) = self.link.as_mut()
                        && frame::write(&mut link.send, &ClientFrame::Ping).await.is_err()
                    {
                        self.lose_link();
                    }
                }
            }
        }
    }

    fn closed(&self) -> bool {
        self.session == SessionId(0)
    }

    async fn send_cmd(&mut self, cmd: Cmd) {
        let Some(link) = self.link.as_mut() else {
            self.queued.push_back(cmd);
            return;
        };
        match cmd {
            Cmd::Request { request, reply, watch } => {
                let xid = self.next_xid;
                self.next_xid += 1;
                let watch = watch.and_then(|w| watched_path(&request).map(|path| (w, path)));
                let bytes = frame::encode(&ClientFrame::Request { xid, request });
                // The server would drop the stream on an over-long frame,
                // failing every request in flight: refuse it here instead.
                let len = bytes.len() - 4;
                if len > FRAME_BYTES_MAX {
                    let _ = reply.send(Err(Error::TooLarge { len, max: FRAME_BYTES_MAX }));
                    return;
                }
                let failed = link.send.write_all(&bytes).await.is_err();
                self.inflight.insert(xid, Pending { reply, watch });
                if failed {
                    self.lose_link();
                }
            }
            Cmd::Close { reply } => {
                if frame::write(&mut link.send, &ClientFrame::Close).await.is_err() {
                    let _ =
                        reply.send(Err(Error::ConnectionLoss { server: link.server.to_string() }));
                    self.lose_link();
                    return;
                }
                // Answers before it still arrive, in order; then Closed.
                self.closing = Some(reply);
            }
        }
    }

    /// Handles a frame; false when the link must go.
    fn on_frame(&mut self, frame: ServerFrame) -> bool {
        match frame {
            ServerFrame::Response { xid, zxid, result } => {
                self.last_zxid = self.last_zxid.max(zxid);
                let Some(pending) = self.inflight.remove(&xid) else { return true };
                let result = match result {
                    Ok(answer) => {
                        if let Some((watch, path)) = pending.watch {
                            self.register(path, &answer, watch);
                        }
                        Ok((answer, zxid))
                    }
                    Err(Failure::Api(e)) => Err(Error::Api(e)),
                    Err(other) => Err(Error::Failed(other)),
                };
                let _ = pending.reply.send(result);
                true
            }
            ServerFrame::Event(event) => {
                self.last_zxid = self.last_zxid.max(event.zxid);
                self.watches.dispatch(&event);
                true
            }
            ServerFrame::Pong | ServerFrame::Welcome(_) => true,
            ServerFrame::Closed => {
                if let Some(reply) = self.closing.take() {
                    let _ = reply.send(Ok(()));
                }
                self.fail_all(Error::Closed);
                if let Some(link) = self.link.take() {
                    link.conn.close(0u32.into(), b"session closed");
                }
                self.session = SessionId(0);
                false
            }
            ServerFrame::Goodbye(Goodbye::Expired { .. })
            | ServerFrame::Refused(Refusal::Expired { .. }) => {
                self.fail_all(Error::SessionExpired { session: self.session });
                self.link = None;
                self.session = SessionId(0);
                false
            }
            ServerFrame::Goodbye(_) | ServerFrame::Refused(_) => false,
        }
    }

    /// Registers the watch a successful request asked for.
    fn register(&mut self, path: String, answer: &Answer, watch: Registration) {
        match watch {
            Registration::Data(tx) => {
                let map = match answer {
                    Answer::Exists(None) => &mut self.watches.exist,
                    _ => &mut self.watches.data,
                };
                map.entry(path).or_default().push(tx);
            }
            Registration::Child(tx) => self.watches.child.entry(path).or_default().push(tx),
            Registration::Stream { recursive, tx } => {
                let map = if recursive {
                    &mut self.watches.recursive
                } else {
                    &mut self.watches.persistent
                };
                map.entry(path).or_default().push(tx);
            }
        }
    }

    /// The connection is gone: what was in flight has an unknown outcome.
    fn lose_link(&mut self) {
        let Some(link) = self.link.take() else { return };
        link.conn.close(0u32.into(), b"moving to another server");
        let server = link.server.to_string();
        if let Some(reply) = self.closing.take() {
            let _ = reply.send(Err(Error::ConnectionLoss { server: server.clone() }));
        }
        for (_, pending) in std::mem::take(&mut self.inflight) {
            let _ = pending.reply.send(Err(Error::ConnectionLoss { server: server.clone() }));
        }
    }

    fn fail_all(&mut self, error: Error) {
        for (_, pending) in std::mem::take(&mut self.inflight) {
            let _ = pending.reply.send(Err(error.clone()));
        }
        for cmd in std::mem::take(&mut self.queued) {
            match cmd {
                Cmd::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Cmd::Close { reply } => {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        self.watches = Watches::default();
    }

    /// Moves the session to a server that will take it, until the session
    /// timeout has passed since the cluster was last heard from. False when
    /// the session is over.
    async fn reconnect(&mut self) -> bool {
        if self.closed() {
            return false;
        }
        let servers = self.config.servers.clone();
        while self.last_heard.elapsed() < self.timeout {
            for _ in 0..servers.len() {
                let server = servers[self.next_server % servers.len()];
                self.next_server = (self.next_server + 1) % servers.len();
                let hello = Hello {
                    session: Some(self.session),
                    secret: self.secret,
                    timeout_ms: self.timeout.as_millis() as u32,
                    last_zxid: self.last_zxid,
                    watches: self.watches.set(),
                };
                match open(&self.endpoint, &self.quic, server, &hello, silence_max(self.timeout))
                    .await
                {
                    Ok((link, welcome)) => {
                        if welcome.events_lost {
                            self.events_lost.fetch_add(1, Ordering::Relaxed);
                        }
                        self.last_heard = Instant::now();
                        self.last_zxid = self.last_zxid.max(welcome.zxid);
                        self.link = Some(link);
                        for cmd in std::mem::take(&mut self.queued) {
                            Box::pin(self.send_cmd(cmd)).await;
                        }
                        return true;
                    }
                    Err(why) if why.starts_with(EXPIRED_MARK) => return false,
                    Err(_) => {}
                }
                if self.last_heard.elapsed() >= self.timeout {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The session is over: every waiting and future call fails.
    async fn expire(&mut self, cmds: &mut mpsc::Receiver<Cmd>) {
        let session = self.session;
        let error = if self.closed() { Error::Closed } else { Error::SessionExpired { session } };
        self.fail_all(error.clone());
        while let Some(cmd) = cmds.recv().await {
            match cmd {
                Cmd::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Cmd::Close { reply } => {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
