//! The ZooKeeper front end: a TCP listener whose connections speak
//! ZooKeeper's client protocol (jute frames, each after a 4-byte length)
//! and are served by the same session layer as Warren's own clients.
//!
//! A connection is two tasks. The reader decodes each request, turns it
//! into the session layer's request and tells the writer, *before* the
//! engine can answer, what ZooKeeper reply the answer becomes (an
//! [`Expect`]); the writer turns the engine's frames into ZooKeeper's
//! replies and notifications. The session layer answers a session's
//! requests in order, so the writer pairs answers with expectations in
//! order too; the few requests answered here (sasl, reconfig) wait in that
//! order for the answers before them.
//!
//! A connection whose first four bytes are a four-letter word gets that
//! command's text instead (see [`super::words`]).

use super::jute::{Bounds, JuteError, Reader, Writer};
use super::records::{
    ConnectRequest, ConnectResponse, CreateOp, MultiResult, ReplyHeader, WatcherEvent, ZkRequest,
    ZkResponse, xid,
};
use super::subtree::{self, Subtree};
use super::words;
use crate::limits::{
    OUTBOX_FRAMES_MAX, SESSION_REQUESTS_MAX, ZOOKEEPER_FRAME_BYTES_MAX, ZOOKEEPER_HANDSHAKE_MS_MAX,
};
use crate::node::driver::{Event, Outbox};
use crate::node::engine::{ConnId, Input, SessionIn};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use warren_client::wire::{Answer, Failure, Hello, Read, Refusal, Request, ServerFrame, WatchSet};
use warren_client::{
    ApiError, BadArgument, CreateMode, ErrorCode, EventType, Id, Op, OpResult, SessionId,
    SessionSecret, WatchKind, Zxid,
};

/// ZooKeeper's error codes that Warren's own map onto.
mod code {
    pub const SYSTEM_ERROR: i32 = -1;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const AUTH_FAILED: i32 = -115;
    pub const RECONFIG_DISABLED: i32 = -123;
}

/// What a listener's connections share.
pub(crate) struct Front {
    pub core: mpsc::Sender<Event>,
    pub ids: Arc<AtomicU64>,
    /// The four-letter words this listener answers.
    pub words: words::Allowed,
    pub facts: words::Facts,
    /// Open connections per client address, and the cap
    /// (`zookeeper_max_client_cnxns`; 0: none).
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub per_ip_max: usize,
    /// Requests received and replies sent by every connection (`srst`
    /// resets them).
    pub stats: Counters,
    /// The open sessions' connections, for `cons`.
    pub conns: Mutex<HashMap<ConnId, Arc<ConnInfo>>>,
    /// `/zookeeper` as ZooKeeper presents it.
    pub subtree: Subtree,
}

/// Requests in, replies and notifications out.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

/// One connection as `cons` shows it.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub session: AtomicU64,
}

impl Front {
    pub(crate) fn new(
        config: &crate::node::NodeConfig,
        core: mpsc::Sender<Event>,
        ids: Arc<AtomicU64>,
    ) -> Front {
        let z = &config.zookeeper;
        let mut members: Vec<(u64, SocketAddr)> =
            config.peers.iter().map(|(&id, &addr)| (id, addr)).collect();
        members.push((config.id, config.listen));
        members.sort();
        Front {
            core,
            ids,
            words: words::Allowed::from_list(&z.four_letter_words),
            facts: words::Facts {
                node: config.id,
                client_port: z.listen.map_or(0, |a| a.port()),
                data_dir: config.data_dir.clone(),
                tick_ms: config.timing.tick_ms,
                session_timeout_min_ms: config.timing.session_timeout_min_ms,
                session_timeout_max_ms: config.timing.session_timeout_max_ms,
                max_client_cnxns: z.max_client_cnxns,
                members: members.clone(),
            },
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max: z.max_client_cnxns,
            stats: Counters::default(),
            conns: Mutex::new(HashMap::new()),
            subtree: Subtree::new(&members, &z.servers),
        }
    }

    pub(crate) fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Arc<ConnInfo>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, info: &ConnInfo, received: u64, sent: u64) {
        self.stats.received.fetch_add(received, Ordering::Relaxed);
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        info.received.fetch_add(received, Ordering::Relaxed);
        info.sent.fetch_add(sent, Ordering::Relaxed);
    }
}

/// Takes a connection out of `cons` when it ends.
struct Listed<'a> {
    front: &'a Front,
    id: ConnId,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.front.conns().remove(&self.id);
    }
}

/// The next connection on `listener` that the per-address cap lets in
/// (a refused one is closed at once), with its place under the cap.
async fn accept(
    listener: &tokio::net::TcpListener,
    front: &Arc<Front>,
    what: &str,
) -> (tokio::net::TcpStream, SocketAddr, Slot) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(guard) = Slot::take(front, peer.ip()) else {
            tracing::warn!(
                "{what}: {} has {} connections open, the limit (zookeeper_max_client_cnxns); closing the new one",
                peer.ip(),
                front.per_ip_max
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        return (stream, peer, guard);
    }
}

/// Accepts connections on `listener` until the node stops.
pub(crate) async fn listen(listener: tokio::net::TcpListener, front: Arc<Front>) {
    loop {
        let (stream, peer, guard) = accept(&listener, &front, "ZooKeeper listener").await;
        let identity = Id::new("ip", peer.ip().to_string());
        let front = front.clone();
        tokio::spawn(async move {
            connection(stream, peer, identity, &front).await;
            drop(guard);
        });
    }
}

/// Accepts TLS connections on `listener` until the node stops: each is
/// handshaken (within the handshake limit) with the node's current
/// certificate and CA (a SIGHUP's reload is seen by the next handshake),
/// and a client certificate, when given, is the session's identity for
/// x509 ACLs, as on QUIC; without one it is the client's address.
pub(crate) async fn listen_tls(
    listener: tokio::net::TcpListener,
    front: Arc<Front>,
    tls: Arc<crate::tls::Tls>,
    client_auth: crate::tls::ClientAuth,
) {
    loop {
        let (stream, peer, guard) = accept(&listener, &front, "ZooKeeper TLS listener").await;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.tcp_server_config(client_auth));
        let front = front.clone();
        tokio::spawn(async move {
            let handshake = Duration::from_millis(ZOOKEEPER_HANDSHAKE_MS_MAX);
            let stream = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!("ZooKeeper TLS client {peer}: handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("ZooKeeper TLS client {peer}: no handshake in time");
                    return;
                }
            };
            let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
            let identity = match certificate.map(crate::tls::certificate_identity) {
                Some(Ok(subject)) => Id::x509(subject),
                Some(Err(e)) => {
                    tracing::debug!("ZooKeeper TLS client {peer}: {e}");
                    return;
                }
                None => Id::new("ip", peer.ip().to_string()),
            };
            connection(stream, peer, identity, &front).await;
            drop(guard);
        });
    }
}

/// A connection's place under the per-address cap, given back on drop.
pub(crate) struct Slot {
    front: Arc<Front>,
    ip: IpAddr,
}

impl Slot {
    pub(crate) fn take(front: &Arc<Front>, ip: IpAddr) -> Option<Slot> {
        let mut open = front.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if front.per_ip_max > 0 && *count >= front.per_ip_max {
            return None;
        }
        *count += 1;
        Some(Slot { front: front.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.front.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn bounds() -> Bounds {
    Bounds { bytes_max: ZOOKEEPER_FRAME_BYTES_MAX, elements_max: ZOOKEEPER_FRAME_BYTES_MAX / 4 }
}

/// Reads length-prefixed frames through one buffer.
struct Frames<R> {
    read: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    used: usize,
}

/// The first thing a connection sends.
enum First {
    Word([u8; 4]),
    Frame(Vec<u8>),
}

impl<R: AsyncRead + Unpin> Frames<R> {
    fn new(read: R) -> Frames<R> {
        Frames { read, buf: Vec::with_capacity(4 << 10), used: 0 }
    }

    /// Reads until `n` bytes past `used` are buffered; false at a clean end.
    async fn fill(&mut self, n: usize) -> Result<bool, String> {
        if self.used > 0 && self.used == self.buf.len() {
            self.buf.clear();
            self.used = 0;
        } else if self.used > 64 << 10 {
            self.buf.drain(..self.used);
            self.used = 0;
        }
        while self.buf.len() - self.used < n {
            let mut chunk = [0u8; 16 << 10];
            let want = chunk.len().min(n - (self.buf.len() - self.used)).max(4096).min(chunk.len());
            let got = self.read.read(&mut chunk[..want]).await.map_err(|e| e.to_string())?;
            if got == 0 {
                if self.buf.len() == self.used {
                    return Ok(false);
                }
                return Err("the connection ended inside a frame".into());
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        Ok(true)
    }

    async fn first(&mut self) -> Result<Option<First>, String> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let head: [u8; 4] = self.buf[self.used..self.used + 4].try_into().unwrap_or([0; 4]);
        if words::is_word(&head) {
            self.used += 4;
            return Ok(Some(First::Word(head)));
        }
        Ok(self.next().await?.map(First::Frame))
    }

    /// The next frame's bytes, or None at a clean end between frames.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let len =
            i32::from_be_bytes(self.buf[self.used..self.used + 4].try_into().unwrap_or([0; 4]));
        if len < 0 || len as usize > ZOOKEEPER_FRAME_BYTES_MAX {
            return Err(format!(
                "a frame of {len} bytes, over the limit of {ZOOKEEPER_FRAME_BYTES_MAX} (jute.maxbuffer)"
            ));
        }
        let len = len as usize;
        if !self.fill(4 + len).await? {
            return Err("the connection ended inside a frame".into());
        }
        let start = self.used + 4;
        self.used = start + len;
        Ok(Some(self.buf[start..start + len].to_vec()))
    }
}

/// Serves one connection: a four-letter word, or a session.
pub(crate) async fn connection<S>(stream: S, peer: SocketAddr, identity: Id, front: &Arc<Front>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut frames = Frames::new(read);
    let handshake = Duration::from_millis(ZOOKEEPER_HANDSHAKE_MS_MAX);
    let first = match tokio::time::timeout(handshake, frames.first()).await {
        Ok(Ok(Some(first))) => first,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!("ZooKeeper client {peer}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("ZooKeeper client {peer} sent no connect request in time; closed");
            return;
        }
    };
    let connect = match first {
        First::Word(word) => {
            let text = words::answer(&word, front).await;
            let _ = write.write_all(text.as_bytes()).await;
            let _ = write.shutdown().await;
            return;
        }
        First::Frame(bytes) => match ConnectRequest::decode(&bytes, bounds()) {
            Ok(connect) => connect,
            Err(e) => {
                tracing::debug!("ZooKeeper client {peer}: a bad connect request: {e}");
                return;
            }
        },
    };
    // A server that is not read-only says so (when the client asked).
    let read_only = connect.read_only.map(|_| false);
    let refuse = |w: &mut Writer| {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            password: vec![0; 16],
            read_only,
        }
        .encode(w)
    };
    let session = (connect.session_id != 0).then_some(SessionId(connect.session_id as u64));
    let secret = match <[u8; 16]>::try_from(connect.password.as_slice()) {
        Ok(bytes) if session.is_some() => SessionSecret(bytes),
        // A resume with a password that cannot be the session's.
        Err(_) if session.is_some() => {
            let _ = send_one(&mut write, refuse).await;
            return;
        }
        _ => SessionSecret::default(),
    };
    let hello = Hello {
        session,
        secret,
        timeout_ms: connect.timeout_ms.max(0) as u32,
        last_zxid: Zxid(connect.last_zxid_seen.max(0) as u64),
        watches: WatchSet::default(),
    };
    let Some(fresh) = crate::node::server::random_secret() else {
        tracing::warn!("the server's random source failed; a ZooKeeper connection was closed");
        return;
    };
    let id: ConnId = front.ids.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(OUTBOX_FRAMES_MAX);
    let overflowed = Arc::new(Notify::new());
    let outbox = Outbox { tx, overflowed: overflowed.clone() };
    let core = front.core.clone();
    if core.send(Event::Connected { conn: id, outbox }).await.is_err() {
        return;
    }
    let open = SessionIn::Open { conn: id, identity, hello: Box::new(hello), secret: fresh };
    if core.send(Event::Input(Input::Session(open))).await.is_err() {
        return;
    }
    let gone = || async {
        let _ = core.send(Event::Input(Input::Session(SessionIn::Gone { conn: id }))).await;
    };
    // The welcome (or the refusal) comes first.
    let welcome = match rx.recv().await {
        Some(ServerFrame::Welcome(welcome)) => welcome,
        Some(ServerFrame::Refused(Refusal::Expired { .. } | Refusal::WrongSecret { .. })) => {
            let _ = send_one(&mut write, refuse).await;
            gone().await;
            return;
        }
        other => {
            // Behind, out of touch with the leader, or failed: the client
            // tries another server, as ZooKeeper's does when one closes.
            tracing::debug!("ZooKeeper client {peer}: not opened: {other:?}");
            gone().await;
            return;
        }
    };
    let response = ConnectResponse {
        protocol_version: 0,
        timeout_ms: welcome.timeout_ms as i32,
        session_id: welcome.session.0 as i64,
        password: welcome.secret.0.to_vec(),
        read_only,
    };
    if send_one(&mut write, |w| response.encode(w)).await.is_err() {
        gone().await;
        return;
    }
    let info = Arc::new(ConnInfo {
        peer,
        received: AtomicU64::new(1),
        sent: AtomicU64::new(1),
        session: AtomicU64::new(welcome.session.0),
    });
    front.stats.received.fetch_add(1, Ordering::Relaxed);
    front.stats.sent.fetch_add(1, Ordering::Relaxed);
    front.conns().insert(id, info.clone());
    let _listed = Listed { front, id };
    let (expect_tx, expect_rx) = mpsc::channel(2 * SESSION_REQUESTS_MAX);
    let writer = Translator {
        expects: expect_rx,
        pending: VecDeque::new(),
        zxid: welcome.zxid,
        front: front.clone(),
        info: info.clone(),
        closing: false,
    };
    let mut writer = tokio::spawn(writer.run(rx, write, overflowed));
    let mut reader = Requests {
        conn: id,
        next: 1,
        core: core.clone(),
        expects: expect_tx,
        subtree: front.subtree.clone(),
    };
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Ok(Some(bytes)) => {
                    front.count(&info, 1, 0);
                    if !reader.request(&bytes).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("ZooKeeper client {peer}: {e}");
                    break;
                }
            },
            _ = &mut writer => break,
        }
    }
    gone().await;
    // The writer ends when the engine lets the connection go.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

async fn send_one<W: AsyncWrite + Unpin>(
    write: &mut W,
    body: impl FnOnce(&mut Writer),
) -> std::io::Result<()> {
    let mut w = Writer::default();
    w.int(0);
    body(&mut w);
    let mut bytes = w.bytes;
    let len = (bytes.len() - 4) as i32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    write.write_all(&bytes).await?;
    write.flush().await
}

/// What reply an engine answer (or a request answered here) becomes.
#[derive(Debug)]
enum Expect {
    /// The answer to the engine request `xid`, as the reply to `zk_xid`.
    Engine { xid: u64, zk_xid: i32, shape: Shape },
    /// A reply made here, sent once the answers before it are.
    Local { zk_xid: i32, err: i32, body: ZkResponse },
}

#[derive(Clone, Debug)]
enum Shape {
    Create(CreateOp),
    /// No body: delete, removeWatches, checkWatches, check.
    Empty,
    /// setData, setACL.
    Stat,
    Exists,
    Data,
    Children {
        two: bool,
    },
    Acl,
    Sync(String),
    /// A multi's operations, for its results (a create's kind).
    Multi(Vec<Option<CreateOp>>),
    /// A multiRead: per read, whether it lists children.
    MultiRead(Vec<bool>),
    Auth,
    SetWatches,
    AddWatch,
    Ephemerals,
    Count,
    WhoAmI,
    CloseSession,
    /// A part of a request that another part answers (setWatches'
    /// persistent watches): no reply.
    Quiet,
    /// A read of the root: its answer gains the `/zookeeper` subtree.
    Root(Box<Shape>),
}

impl Shape {
    /// Whether the request was a read of a path.
    fn is_read(&self) -> bool {
        matches!(
            self,
            Shape::Exists | Shape::Data | Shape::Children { .. } | Shape::Acl | Shape::Count
        )
    }
}

/// The reader's side: requests in, expectations to the writer.
struct Requests {
    conn: ConnId,
    /// The next engine xid.
    next: u64,
    core: mpsc::Sender<Event>,
    expects: mpsc::Sender<Expect>,
    subtree: Subtree,
}

impl Requests {
    /// Handles one request frame; false when the connection should end.
    async fn request(&mut self, bytes: &[u8]) -> bool {
        let mut r = Reader::new(bytes, bounds());
        let (Ok(zk_xid), Ok(kind)) = (r.int("xid"), r.int("opcode")) else {
            return false;
        };
        let body = &bytes[8.min(bytes.len())..];
        let request = match ZkRequest::decode(kind, body, bounds()) {
            Ok(request) => request,
            Err(JuteError::UnknownOp(_)) => {
                // ZooKeeper answers an unknown opcode with Unimplemented.
                let local =
                    Expect::Local { zk_xid, err: code::UNIMPLEMENTED, body: ZkResponse::Empty };
                return self.expects.send(local).await.is_ok();
            }
            Err(e) => {
                tracing::debug!("ZooKeeper connection {}: a bad request: {e}", self.conn);
                return false;
            }
        };
        if let Some((err, body)) = self.subtree.answer(&request) {
            return self.expects.send(Expect::Local { zk_xid, err, body }).await.is_ok();
        }
        let root = subtree::is_root(&request);
        match request {
            ZkRequest::Ping => self.input(SessionIn::Ping { conn: self.conn }).await,
            ZkRequest::CloseSession => {
                let expect = Expect::Engine { xid: 0, zk_xid, shape: Shape::CloseSession };
                self.expects.send(expect).await.is_ok()
                    && self.input(SessionIn::Close { conn: self.conn }).await
            }
            ZkRequest::Multi { read: true, ops } => {
                let mut reads = Vec::with_capacity(ops.len());
                let mut children = Vec::with_capacity(ops.len());
                for op in ops {
                    let (read, lists) = match op {
                        ZkRequest::GetData { path, watch } => {
                            (Read::GetData { path, watch }, false)
                        }
                        ZkRequest::GetChildren { path, watch, .. } => {
                            (Read::GetChildren { path, watch, after: None }, true)
                        }
                        // The decoder lets only these two into a multiRead.
                        _ => return false,
                    };
                    reads.push(read);
                    children.push(lists);
                }
                self.send(zk_xid, Request::ReadMany(reads), Shape::MultiRead(children)).await
            }
            ZkRequest::SetWatches { relative_zxid, data, exist, child, persistent, recursive } => {
                // ZooKeeper re-adds persistent and recursive watches without
                // telling what they missed (Warren's own clients get that
                // replayed): each is added on its own first, then the
                // one-shot watches are set, firing as ZooKeeper's do.
                let lasting =
                    persistent.into_iter().map(|path| (path, WatchKind::Persistent)).chain(
                        recursive.into_iter().map(|path| (path, WatchKind::PersistentRecursive)),
                    );
                for (path, kind) in lasting {
                    if !self.send(zk_xid, Request::AddWatch { path, kind }, Shape::Quiet).await {
                        return false;
                    }
                }
                let request = Request::SetWatches {
                    last_zxid: Zxid(relative_zxid.max(0) as u64),
                    watches: WatchSet { data, exist, child, ..WatchSet::default() },
                };
                self.send(zk_xid, request, Shape::SetWatches).await
            }
            request => match translate(request, false) {
                Ok((request, shape)) if root => {
                    self.send(zk_xid, request, Shape::Root(Box::new(shape))).await
                }
                Ok((request, shape)) => self.send(zk_xid, request, shape).await,
                Err((err, body)) => {
                    self.expects.send(Expect::Local { zk_xid, err, body }).await.is_ok()
                }
            },
        }
    }

    async fn send(&mut self, zk_xid: i32, request: Request, shape: Shape) -> bool {
        let xid = self.next;
        self.next += 1;
        // The writer learns what to expect before the engine can answer.
        if self.expects.send(Expect::Engine { xid, zk_xid, shape }).await.is_err() {
            return false;
        }
        self.input(SessionIn::Request { conn: self.conn, xid, request }).await
    }

    async fn input(&self, input: SessionIn) -> bool {
        self.core.send(Event::Input(Input::Session(input))).await.is_ok()
    }
}

fn read(read: Read) -> Request {
    Request::Read { read, linearizable: false }
}

/// ZooKeeper's version argument: -1 matches any.
fn version(v: i32) -> Option<i32> {
    (v != -1).then_some(v)
}

/// A single request as the session layer's, or a reply made here.
fn translate(request: ZkRequest, in_multi: bool) -> Result<(Request, Shape), (i32, ZkResponse)> {
    Ok(match request {
        ZkRequest::Create { op, path, data, acl, flags, ttl_ms } => {
            let mode =
                create_mode(op, flags, ttl_ms).ok_or((code::BAD_ARGUMENTS, ZkResponse::Empty))?;
            (Request::Write(Op::Create { path, data, acl, mode }), Shape::Create(op))
        }
        ZkRequest::Delete { path, version: v } => {
            (Request::Write(Op::Delete { path, version: version(v) }), Shape::Empty)
        }
        ZkRequest::DeleteContainer { path } => {
            (Request::Write(Op::DeleteContainer { path }), Shape::Empty)
        }
        ZkRequest::Exists { path, watch } => (read(Read::Exists { path, watch }), Shape::Exists),
        ZkRequest::GetData { path, watch } => (read(Read::GetData { path, watch }), Shape::Data),
        ZkRequest::SetData { path, data, version: v } => {
            (Request::Write(Op::SetData { path, data, version: version(v) }), Shape::Stat)
        }
        ZkRequest::GetAcl { path } => (read(Read::GetAcl { path }), Shape::Acl),
        ZkRequest::SetAcl { path, acl, version: v } => {
            (Request::Write(Op::SetAcl { path, acl, version: version(v) }), Shape::Stat)
        }
        ZkRequest::GetChildren { path, watch, two } => {
            (read(Read::GetChildren { path, watch, after: None }), Shape::Children { two })
        }
        ZkRequest::Sync { path } => (Request::Sync { path: path.clone() }, Shape::Sync(path)),
        ZkRequest::Check { path, version: v } if in_multi => {
            (Request::Write(Op::Check { path, version: version(v) }), Shape::Empty)
        }
        // ZooKeeper 3.9 takes check only inside a multi.
        ZkRequest::Check { .. } => return Err((code::UNIMPLEMENTED, ZkResponse::Empty)),
        ZkRequest::Multi { ops, .. } => {
            let mut writes = Vec::with_capacity(ops.len());
            let mut kinds = Vec::with_capacity(ops.len());
            for op in ops {
                let (request, shape) = translate(op, true)?;
                let Request::Write(write) = request else {
                    return Err((code::BAD_ARGUMENTS, ZkResponse::Empty));
                };
                kinds.push(match shape {
                    Shape::Create(kind) => Some(kind),
                    _ => None,
                });
                writes.push(write);
            }
            (Request::Write(Op::Multi(writes)), Shape::Multi(kinds))
        }
        ZkRequest::Reconfig { .. } => {
            // Membership does not change yet (ZooKeeper's answer when
            // reconfiguration is disabled).
            return Err((code::RECONFIG_DISABLED, ZkResponse::Empty));
        }
        ZkRequest::CheckWatches { path, kind } => {
            let kind = watcher_type(kind).ok_or((code::BAD_ARGUMENTS, ZkResponse::Empty))?;
            (Request::CheckWatch { path, kind }, Shape::Empty)
        }
        ZkRequest::RemoveWatches { path, kind } => {
            let kind = watcher_type(kind).ok_or((code::BAD_ARGUMENTS, ZkResponse::Empty))?;
            (Request::RemoveWatch { path, kind }, Shape::Empty)
        }
        ZkRequest::Auth { scheme, auth, .. } => (Request::AddAuth { scheme, auth }, Shape::Auth),
        ZkRequest::Sasl { .. } => {
            // No SASL: the client should use digest or a certificate.
            return Err((code::AUTH_FAILED, ZkResponse::Empty));
        }
        ZkRequest::GetEphemerals { prefix } => {
            (read(Read::GetEphemerals { prefix }), Shape::Ephemerals)
        }
        ZkRequest::GetAllChildrenNumber { path } => {
            (read(Read::GetAllChildrenNumber { path }), Shape::Count)
        }
        ZkRequest::AddWatch { path, mode } => {
            let kind = match mode {
                0 => WatchKind::Persistent,
                1 => WatchKind::PersistentRecursive,
                // ZooKeeper fails to read the mode: MarshallingError.
                _ => return Err((code::MARSHALLING_ERROR, ZkResponse::Empty)),
            };
            (Request::AddWatch { path, kind }, Shape::AddWatch)
        }
        ZkRequest::WhoAmI => (Request::WhoAmI, Shape::WhoAmI),
        ZkRequest::Ping | ZkRequest::CloseSession | ZkRequest::SetWatches { .. } => {
            return Err((code::BAD_ARGUMENTS, ZkResponse::Empty));
        }
    })
}

/// ZooKeeper's create flags (CreateMode values) as Warren's mode, for
/// the create opcode used.
fn create_mode(op: CreateOp, flags: i32, ttl_ms: i64) -> Option<CreateMode> {
    let ttl = || u64::try_from(ttl_ms).ok();
    Some(match (op, flags) {
        // The opcode makes a container, whatever the flags say (as
        // ZooKeeper's does), but Warren has no sequential containers.
        (CreateOp::Container, 0 | 1 | 4) => CreateMode::Container,
        (CreateOp::Container, _) => return None,
        (CreateOp::Ttl, 5) => CreateMode::PersistentWithTtl { ttl_ms: ttl()? },
        (CreateOp::Ttl, 6) => CreateMode::PersistentSequentialWithTtl { ttl_ms: ttl()? },
        (CreateOp::Ttl, _) => return None,
        (_, 0) => CreateMode::Persistent,
        (_, 1) => CreateMode::Ephemeral,
        (_, 2) => CreateMode::PersistentSequential,
        (_, 3) => CreateMode::EphemeralSequential,
        // The container flag through create or create2: ZooKeeper makes a
        // persistent node.
        (_, 4) => CreateMode::Persistent,
        // TTL nodes come only through their own opcode.
        _ => return None,
    })
}

/// ZooKeeper's WatcherType codes.
fn watcher_type(kind: i32) -> Option<WatchKind> {
    Some(match kind {
        1 => WatchKind::Child,
        2 => WatchKind::Data,
        3 => WatchKind::Any,
        4 => WatchKind::Persistent,
        5 => WatchKind::PersistentRecursive,
        _ => return None,
    })
}

/// The ZooKeeper code of an error. Warren's own (a validator's
/// rejection, a plugin's failure) have no ZooKeeper counterpart that
/// clients know; a validator's rejection is BadArguments (the write's
/// content was refused; the reason is in the node's log), a plugin that
/// failed is SystemError.
fn error_code(e: &ApiError) -> i32 {
    zk_code(e.code())
}

/// [`error_code`] for a code already taken out of its error.
fn zk_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::Rejected
        | ErrorCode::NoPlugin
        | ErrorCode::PluginRefused
        | ErrorCode::PluginError => code::BAD_ARGUMENTS,
        ErrorCode::PluginFailed => code::SYSTEM_ERROR,
        other => other as i32,
    }
}

/// A refusal by a plugin (a validator's rejection, or a plugin that
/// failed), whose reason the ZooKeeper protocol cannot carry.
fn rejection(e: &ApiError) -> Option<&ApiError> {
    match e {
        ApiError::Multi { error, .. } => rejection(error),
        ApiError::Rejected { .. }
        | ApiError::PluginFailed { .. }
        | ApiError::PluginError { .. } => Some(e),
        _ => None,
    }
}

/// The writer's side: engine frames in, ZooKeeper replies out.
struct Translator {
    expects: mpsc::Receiver<Expect>,
    /// Expectations not yet met, in request order.
    pending: VecDeque<Expect>,
    /// The zxid of the last reply, for replies made here.
    zxid: Zxid,
    front: Arc<Front>,
    info: Arc<ConnInfo>,
    /// A reply that ends the connection was sent.
    closing: bool,
}

/// What a connection's writer does after a frame.
enum Next {
    Go,
    End,
}

impl Translator {
    async fn run<W: AsyncWrite + Unpin>(
        mut self,
        mut rx: mpsc::Receiver<ServerFrame>,
        mut write: W,
        overflowed: Arc<Notify>,
    ) {
        let mut bytes = Vec::new();
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    bytes.clear();
                    let mut next = self.frame(frame, &mut bytes);
                    // Whatever else is ready goes in the same write.
                    while matches!(next, Next::Go) && bytes.len() < 256 << 10 {
                        match rx.try_recv() {
                            Ok(frame) => next = self.frame(frame, &mut bytes),
                            Err(_) => break,
                        }
                    }
                    self.front.count(&self.info, 0, frames_in(&bytes));
                    if !bytes.is_empty() && write.write_all(&bytes).await.is_err() {
                        break;
                    }
                    if matches!(next, Next::End) || self.closing {
                        break;
                    }
                }
                expect = self.expects.recv() => {
                    let Some(expect) = expect else { break };
                    self.pending.push_back(expect);
                    bytes.clear();
                    self.locals(&mut bytes);
                    self.front.count(&self.info, 0, frames_in(&bytes));
                    if !bytes.is_empty() && write.write_all(&bytes).await.is_err() {
                        break;
                    }
                    if self.closing {
                        break;
                    }
                }
                () = overflowed.notified() => break,
            }
        }
        let _ = write.flush().await;
        let _ = write.shutdown().await;
    }

    /// Sends the replies made here that no engine answer precedes.
    fn locals(&mut self, bytes: &mut Vec<u8>) {
        while let Some(Expect::Local { .. }) = self.pending.front() {
            let Some(Expect::Local { zk_xid, err, body }) = self.pending.pop_front() else {
                return;
            };
            reply(bytes, ReplyHeader { xid: zk_xid, zxid: self.zxid.0 as i64, err }, &body);
            if err == code::UNIMPLEMENTED {
                // ZooKeeper closes the connection after an opcode it does
                // not serve.
                self.closing = true;
                return;
            }
        }
    }

    /// Takes the expectation for engine request `xid` (every expectation
    /// was queued before its request reached the engine).
    fn take(&mut self, xid: u64) -> Option<(i32, Shape)> {
        loop {
            if let Some(Expect::Engine { xid: front, .. }) = self.pending.front()
                && *front == xid
            {
                let Some(Expect::Engine { zk_xid, shape, .. }) = self.pending.pop_front() else {
                    return None;
                };
                return Some((zk_xid, shape));
            }
            match self.expects.try_recv() {
                Ok(expect) => self.pending.push_back(expect),
                Err(_) => return None,
            }
        }
    }

    fn frame(&mut self, frame: ServerFrame, bytes: &mut Vec<u8>) -> Next {
        match frame {
            ServerFrame::Response { xid, zxid, result } => {
                self.zxid = self.zxid.max(zxid);
                let Some((zk_xid, shape)) = self.take(xid) else {
                    tracing::warn!("ZooKeeper front end: an answer to {xid} nobody expects");
                    return Next::End;
                };
                let next = self.answer(bytes, zk_xid, shape, result);
                self.locals(bytes);
                next
            }
            ServerFrame::Event(event) => {
                let kind = match event.event {
                    EventType::NodeCreated => 1,
                    EventType::NodeDeleted => 2,
                    EventType::NodeDataChanged => 3,
                    EventType::NodeChildrenChanged => 4,
                };
                let header =
                    ReplyHeader { xid: xid::NOTIFICATION, zxid: event.zxid.0 as i64, err: 0 };
                let body = WatcherEvent { kind, state: 3, path: event.path };
                frame_into(bytes, |w| {
                    header.encode(w);
                    body.encode(w);
                });
                Next::Go
            }
            ServerFrame::Pong => {
                let header = ReplyHeader { xid: xid::PING, zxid: self.zxid.0 as i64, err: 0 };
                frame_into(bytes, |w| header.encode(w));
                Next::Go
            }
            ServerFrame::Closed => {
                while let Ok(expect) = self.expects.try_recv() {
                    self.pending.push_back(expect);
                }
                let at = self
                    .pending
                    .iter()
                    .position(|e| matches!(e, Expect::Engine { shape: Shape::CloseSession, .. }));
                if let Some(Expect::Engine { zk_xid, .. }) =
                    at.and_then(|at| self.pending.remove(at))
                {
                    let header = ReplyHeader { xid: zk_xid, zxid: self.zxid.0 as i64, err: 0 };
                    frame_into(bytes, |w| header.encode(w));
                }
                Next::End
            }
            // The engine lets the connection go: the client reconnects
            // (to this server or another) and resumes its session, or
            // learns there that it expired.
            ServerFrame::Goodbye(why) => {
                tracing::debug!("ZooKeeper connection closed: {why}");
                Next::End
            }
            ServerFrame::Welcome(_) | ServerFrame::Refused(_) => Next::End,
        }
    }

    fn answer(
        &mut self,
        bytes: &mut Vec<u8>,
        zk_xid: i32,
        shape: Shape,
        result: Result<Answer, Failure>,
    ) -> Next {
        let zxid = self.zxid.0 as i64;
        let header = |err: i32| ReplyHeader { xid: zk_xid, zxid, err };
        if let Shape::Quiet = shape {
            if let Err(e) = result {
                tracing::debug!("ZooKeeper connection: a watch was not re-added: {e}");
            }
            return Next::Go;
        }
        let (shape, result) = match shape {
            Shape::Root(shape) => {
                let result = result.map(|mut answer| {
                    subtree::add_to_root(&mut answer);
                    answer
                });
                (*shape, result)
            }
            shape => (shape, result),
        };
        // A write's failure is an answer of its own; here it is one error.
        let result = match result {
            Ok(Answer::Write(Err(e))) => Err(Failure::Api(e)),
            other => other,
        };
        let (err, body) = match result {
            Ok(answer) => match body(shape.clone(), answer) {
                Some(reply) => reply,
                None => {
                    tracing::warn!(
                        "ZooKeeper front end: an answer of the wrong kind for {shape:?}"
                    );
                    return Next::End;
                }
            },
            Err(Failure::Api(e)) => {
                if let Some(why) = rejection(&e) {
                    // The one place a ZooKeeper client's user can read why:
                    // the protocol carries only the code (BadArguments).
                    tracing::info!(
                        session = format_args!("{:#x}", self.info.session.load(Ordering::Relaxed)),
                        "a ZooKeeper client's write was refused: {why}"
                    );
                }
                let codes = match &shape {
                    Shape::Multi(kinds) => e.multi_codes(kinds.len()),
                    _ => None,
                };
                if let Some(codes) = codes {
                    // A failed multi: ZooKeeper's per-operation markers.
                    let results =
                        codes.into_iter().map(|c| MultiResult::Error(zk_code(c))).collect();
                    (0, ZkResponse::Multi(results))
                } else if matches!(shape, Shape::Auth) {
                    // A failed auth ends the connection, as ZooKeeper's does.
                    let header = ReplyHeader { xid: xid::AUTH, zxid, err: code::AUTH_FAILED };
                    frame_into(bytes, |w| header.encode(w));
                    return Next::End;
                } else if shape.is_read()
                    && matches!(e, ApiError::BadArguments(BadArgument::InvalidPath { .. }))
                {
                    // ZooKeeper's reads look a path up without checking its
                    // form: a malformed one is simply not there.
                    (code::NO_NODE, ZkResponse::Empty)
                } else {
                    (error_code(&e), ZkResponse::Empty)
                }
            }
            Err(Failure::Throttled { .. }) => (-127, ZkResponse::Empty),
            // The outcome is unknown or the cluster could not take it: the
            // client sees the connection lost, reconnects and decides.
            Err(Failure::OutcomeUnknown { .. } | Failure::Unavailable { .. }) => return Next::End,
        };
        let header = match shape {
            Shape::Auth => ReplyHeader { xid: xid::AUTH, zxid, err },
            Shape::SetWatches => ReplyHeader { xid: xid::SET_WATCHES, zxid, err },
            _ => header(err),
        };
        reply(bytes, header, &body);
        Next::Go
    }
}

/// The reply (error code and body) for a successful answer: None when the
/// answer is not of the kind the shape expects.
fn body(shape: Shape, answer: Answer) -> Option<(i32, ZkResponse)> {
    Some((
        0,
        match (shape, answer) {
            (Shape::Create(op), Answer::Write(Ok(OpResult::Create { path, stat }))) => match op {
                CreateOp::Create => ZkResponse::Create(path),
                _ => ZkResponse::Create2 { path, stat },
            },
            (Shape::Empty, Answer::Write(Ok(_)) | Answer::Unwatched | Answer::Watching) => {
                ZkResponse::Empty
            }
            (Shape::Exists, Answer::Exists(Some(stat))) => ZkResponse::Stat(stat),
            (
                Shape::Stat,
                Answer::Write(Ok(OpResult::SetData { stat } | OpResult::SetAcl { stat })),
            ) => ZkResponse::Stat(stat),
            (Shape::Data, Answer::Data { data, stat }) => ZkResponse::Data { data, stat },
            (Shape::Children { two: false }, Answer::Children { names, .. }) => {
                ZkResponse::Children(names)
            }
            (Shape::Children { two: true }, Answer::Children { names, stat, .. }) => {
                ZkResponse::Children2 { names, stat }
            }
            (Shape::Acl, Answer::Acl { acl, stat }) => ZkResponse::Acl { acl, stat },
            (Shape::Sync(path), Answer::Synced) => ZkResponse::Sync(path),
            (Shape::Multi(kinds), Answer::Write(Ok(OpResult::Multi(results)))) => {
                ZkResponse::Multi(
                    kinds.into_iter().zip(results).map(|(kind, r)| multi_result(kind, r)).collect(),
                )
            }
            (Shape::MultiRead(children), Answer::Many(answers))
                if answers.len() == children.len() =>
            {
                let mut results = Vec::with_capacity(answers.len());
                for (lists, answer) in children.into_iter().zip(answers) {
                    results.push(match (lists, answer) {
                        (false, Ok(Answer::Data { data, stat })) => {
                            MultiResult::GetData { data, stat }
                        }
                        (true, Ok(Answer::Children { names, .. })) => {
                            MultiResult::GetChildren(names)
                        }
                        // ZooKeeper's reads look a path up without checking
                        // its form: a malformed one is not there.
                        (_, Err(ApiError::BadArguments(BadArgument::InvalidPath { .. }))) => {
                            MultiResult::Error(code::NO_NODE)
                        }
                        (_, Err(e)) => MultiResult::Error(error_code(&e)),
                        _ => return None,
                    });
                }
                ZkResponse::Multi(results)
            }
            (Shape::Auth, Answer::Authenticated)
            | (Shape::SetWatches, Answer::WatchesSet { .. }) => ZkResponse::Empty,
            (Shape::AddWatch, Answer::Watching) => ZkResponse::AddWatch,
            (Shape::Ephemerals, Answer::Ephemerals(paths)) => ZkResponse::Ephemerals(paths),
            (Shape::Count, Answer::Count(n)) => {
                ZkResponse::AllChildrenNumber(n.min(i32::MAX as u64) as i32)
            }
            (Shape::WhoAmI, Answer::Identities(ids)) => ZkResponse::WhoAmI(who_am_i(&ids)),
            // exists on a missing node: NoNode, with no body.
            (Shape::Exists, Answer::Exists(None)) => {
                return Some((code::NO_NODE, ZkResponse::Empty));
            }
            _ => return None,
        },
    ))
}

fn multi_result(kind: Option<CreateOp>, result: OpResult) -> MultiResult {
    match (kind, result) {
        (Some(op), OpResult::Create { path, stat }) => MultiResult::Create { op, path, stat },
        (_, OpResult::Delete) => MultiResult::Delete,
        (_, OpResult::SetData { stat }) => MultiResult::SetData(stat),
        _ => MultiResult::Check,
    }
}

/// whoAmI's (scheme, user) pairs: a digest identity names its user.
fn who_am_i(ids: &[Id]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| {
            let user = match id.scheme.as_str() {
                "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
                _ => id.id.clone(),
            };
            (id.scheme.clone(), user)
        })
        .collect()
}

fn reply(bytes: &mut Vec<u8>, header: ReplyHeader, body: &ZkResponse) {
    frame_into(bytes, |w| {
        header.encode(w);
        body.encode(w);
    });
}

/// How many frames `bytes` holds.
fn frames_in(bytes: &[u8]) -> u64 {
    let (mut at, mut n) = (0, 0);
    while at + 4 <= bytes.len() {
        let len = i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        at += 4 + len.max(0) as usize;
        n += 1;
    }
    n
}

/// Appends one length-prefixed frame.
fn frame_into(bytes: &mut Vec<u8>, body: impl FnOnce(&mut Writer)) {
    let mut w = Writer::default();
    body(&mut w);
    let inner = w.bytes;
    bytes.extend_from_slice(&(inner.len() as i32).to_be_bytes());
    bytes.extend_from_slice(&inner);
}
