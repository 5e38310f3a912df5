//! A ZooKeeper client written by hand over jute (for tests that must see
//! every byte a server sends: the cross-check and the checks of what
//! ZooKeeper 3.9 answers), and a standalone ZooKeeper server to compare
//! with (Debian's package, in /usr/share/java).

#![allow(dead_code)]

use super::TempDir;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warren::zookeeper::jute::{Bounds, Reader, Writer, read_stat};
use warren::zookeeper::records::op;

pub const ZK_JARS: &str =
    "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar";

pub const BOUNDS: Bounds = Bounds { bytes_max: 16 << 20, elements_max: 1 << 20 };

/// Whether Debian's ZooKeeper is here; when not, and the run requires it
/// (WARREN_REQUIRE_ZOOKEEPER=1, as .ci/run sets), this fails.
pub fn zookeeper_installed() -> bool {
    let here = std::path::Path::new("/usr/share/java/zookeeper.jar").exists()
        && std::path::Path::new("/usr/share/java/slf4j-simple.jar").exists()
        && Command::new("java").arg("-version").output().is_ok();
    assert!(
        here || std::env::var("WARREN_REQUIRE_ZOOKEEPER").as_deref() != Ok("1"),
        "ZooKeeper is not installed (/usr/share/java/zookeeper.jar); apt-get install zookeeper libslf4j-java"
    );
    if !here {
        eprintln!(
            "SKIPPED: ZooKeeper is not installed; apt-get install zookeeper libslf4j-java to run this"
        );
    }
    here
}

/// A standalone ZooKeeper server, stopped on drop.
pub struct ZooKeeper {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl ZooKeeper {
    pub fn start() -> Option<ZooKeeper> {
        if !zookeeper_installed() {
            return None;
        }
        let dir = TempDir::new("zookeeper-reference");
        let addr = super::free_tcp_addrs(1)[0];
        let cfg = dir.0.join("zoo.cfg");
        // The session timeout bounds are Warren's test timing's, so both
        // negotiate the same timeouts.
        let text = format!(
            "tickTime=100\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nminSessionTimeout=1000\nmaxSessionTimeout=30000\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n",
            dir.0.join("data").display(),
            addr.port()
        );
        std::fs::write(&cfg, text).expect("write zoo.cfg");
        let log = std::fs::File::create(dir.0.join("server.log")).expect("log file");
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-Dzookeeper.extendedTypesEnabled=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                ZK_JARS,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start java");
        let zk = ZooKeeper { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if four_letter(addr, "ruok").as_deref() == Some("imok") {
                return Some(zk);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("ZooKeeper did not answer ruok within 60 s (its log: {:?})", zk.dir.0);
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// One connection speaking the protocol by hand.
pub struct Conn {
    pub stream: TcpStream,
    pub xid: i32,
    pub session: i64,
    pub password: Vec<u8>,
    /// The last zxid seen in a reply header.
    pub last_zxid: i64,
}

/// What came back on a connection: a frame's bytes, or its end.
pub enum Got {
    Frame(Vec<u8>),
    Closed,
    Silent,
}

impl Conn {
    pub fn send(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        // A server that closed the connection shows in the next read.
        let _ = self.stream.write_all(&frame);
    }

    pub fn recv(&mut self, wait: Duration) -> Got {
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Got::Silent;
            }
            Err(_) => return Got::Closed,
        }
        let len = i32::from_be_bytes(len);
        assert!((0..16 << 20).contains(&len), "a reply frame of {len} bytes");
        let mut body = vec![0; len as usize];
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
        match self.stream.read_exact(&mut body) {
            Ok(()) => Got::Frame(body),
            Err(_) => Got::Closed,
        }
    }
}

/// A case's transcript against one server.
pub struct Script {
    pub server: SocketAddr,
    pub conns: HashMap<&'static str, Conn>,
    pub lines: Vec<String>,
    pub zxids: HashMap<i64, usize>,
    pub sessions: HashMap<i64, usize>,
    /// Lines where Warren differs from ZooKeeper on purpose: line index
    /// and why.
    pub known: Vec<(usize, &'static str)>,
}

/// How a resume presents the session's password.
#[derive(Clone, Copy)]
pub enum Password {
    Right,
    Wrong,
}

impl Script {
    pub fn new(server: SocketAddr) -> Script {
        Script {
            server,
            conns: HashMap::new(),
            lines: Vec::new(),
            zxids: HashMap::new(),
            sessions: HashMap::new(),
            known: Vec::new(),
        }
    }

    pub fn zxid(&mut self, z: i64) -> String {
        if z == 0 {
            return "0".into();
        }
        let n = self.zxids.len() + 1;
        format!("z{}", self.zxids.entry(z).or_insert(n))
    }

    pub fn session(&mut self, s: i64) -> String {
        if s == 0 {
            return "0".into();
        }
        let n = self.sessions.len() + 1;
        format!("s{}", self.sessions.entry(s).or_insert(n))
    }

    pub fn line(&mut self, line: String) {
        self.lines.push(line);
    }

    /// The next line may differ from ZooKeeper's, for this reason (the
    /// test prints both).
    pub fn differs(&mut self, why: &'static str) {
        self.known.push((self.lines.len(), why));
    }

    /// Connects and sends a connect request; records the response.
    pub fn handshake(
        &mut self,
        name: &'static str,
        session: i64,
        password: Vec<u8>,
        timeout: i32,
        last_zxid: i64,
    ) {
        let Ok(stream) = TcpStream::connect(self.server) else {
            self.line(format!("{name} connect: refused"));
            return;
        };
        stream.set_nodelay(true).expect("nodelay");
        let mut conn = Conn { stream, xid: 0, session, password: password.clone(), last_zxid };
        let mut w = Writer::default();
        w.int(0);
        w.long(last_zxid);
        w.int(timeout);
        w.long(session);
        w.buffer(Some(&password));
        w.bool(false);
        conn.send(&w.bytes);
        match conn.recv(Duration::from_secs(20)) {
            Got::Frame(bytes) => {
                let mut r = Reader::new(&bytes, BOUNDS);
                let version = r.int("protocol version").expect("version");
                let timeout = r.int("timeout").expect("timeout");
                let id = r.long("session").expect("session");
                let pw = r.buffer("password").expect("password");
                let ro = r.bool("read-only").expect("read-only");
                let s = self.session(id);
                let zeros = pw.iter().all(|&b| b == 0);
                self.line(format!(
                    "{name} connected: version {version} timeout {timeout} session {s} password {} bytes{} read-only {ro}",
                    pw.len(),
                    if zeros { " (zeros)" } else { "" }
                ));
                conn.session = id;
                conn.password = pw;
                if id == 0 {
                    // The server closes a refused connection.
                    let end = match conn.recv(Duration::from_secs(5)) {
                        Got::Closed => "closed",
                        Got::Silent => "left open",
                        Got::Frame(_) => "sent more",
                    };
                    self.line(format!("{name} then {end}"));
                    return;
                }
                self.conns.insert(name, conn);
            }
            Got::Closed => self.line(format!("{name} connect: closed")),
            Got::Silent => self.line(format!("{name} connect: no answer")),
        }
    }

    pub fn open(&mut self, name: &'static str, timeout: i32) {
        self.handshake(name, 0, vec![0; 16], timeout, 0);
    }

    /// Connects again for the session `of` had, as `name`.
    pub fn resume(&mut self, name: &'static str, of: &'static str, password: Password) {
        let Some(old) = self.conns.remove(of) else {
            self.line(format!("{name}: no session of {of} to resume"));
            return;
        };
        let mut pw = old.password.clone();
        if let Password::Wrong = password {
            pw[0] ^= 0xff;
        }
        drop(old.stream);
        self.handshake(name, old.session, pw, 10_000, old.last_zxid);
    }

    /// Drops the connection without closing the session.
    pub fn disconnect(&mut self, name: &'static str) {
        if let Some(conn) = self.conns.get(name) {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Sends request `opcode` and records its reply and any notification
    /// that came before it.
    pub fn call(&mut self, name: &'static str, opcode: i32, body: impl FnOnce(&mut Writer)) {
        let xid = match opcode {
            op::PING => -2,
            op::AUTH => -4,
            op::SET_WATCHES | op::SET_WATCHES2 => -8,
            _ => {
                let Some(conn) = self.conns.get_mut(name) else {
                    self.line(format!("{name} {}: no connection", op_name(opcode)));
                    return;
                };
                conn.xid += 1;
                conn.xid
            }
        };
        if !self.conns.contains_key(name) {
            self.line(format!("{name} {}: no connection", op_name(opcode)));
            return;
        }
        let mut w = Writer::default();
        w.int(xid);
        w.int(opcode);
        body(&mut w);
        self.conns.get_mut(name).expect("an open connection").send(&w.bytes);
        self.reply(name, xid, opcode);
    }

    pub fn reply(&mut self, name: &'static str, xid: i32, opcode: i32) {
        loop {
            let got = self.conns.get_mut(name).expect("a connection").recv(Duration::from_secs(10));
            let bytes = match got {
                Got::Frame(bytes) => bytes,
                Got::Closed => {
                    self.line(format!("{name} {}: connection closed", op_name(opcode)));
                    self.conns.remove(name);
                    return;
                }
                Got::Silent => {
                    self.line(format!("{name} {}: no reply", op_name(opcode)));
                    return;
                }
            };
            let mut r = Reader::new(&bytes, BOUNDS);
            let got_xid = r.int("xid").expect("xid");
            let zxid = r.long("zxid").expect("zxid");
            let err = r.int("err").expect("err");
            if got_xid == -1 {
                let line = self.event(name, &mut r);
                self.line(line);
                continue;
            }
            if zxid > 0 {
                self.conns.get_mut(name).expect("a connection").last_zxid = zxid;
            }
            let mut line = format!("{name} {} (xid {got_xid}): err {err}", op_name(opcode));
            if got_xid != xid {
                line.push_str(&format!(" for xid {xid}!"));
            }
            if err == 0 {
                let body = self.body(opcode, &mut r);
                if !body.is_empty() {
                    line.push_str(" | ");
                    line.push_str(&body);
                }
            }
            if r.remaining() > 0 {
                line.push_str(&format!(" +{} bytes", r.remaining()));
            }
            self.line(line);
            return;
        }
    }

    pub fn event(&mut self, name: &str, r: &mut Reader<'_>) -> String {
        let kind = r.int("type").expect("type");
        let state = r.int("state").expect("state");
        let path = r.ustring("path").expect("path");
        format!("{name} event: type {kind} state {state} path {path}")
    }

    /// Waits for `n` notifications on `name`'s connection.
    pub fn events(&mut self, name: &'static str, n: usize) {
        if !self.conns.contains_key(name) {
            self.line(format!("{name}: no connection for events"));
            return;
        }
        for _ in 0..n {
            let got = self.conns.get_mut(name).expect("a connection").recv(Duration::from_secs(10));
            match got {
                Got::Frame(bytes) => {
                    let mut r = Reader::new(&bytes, BOUNDS);
                    let xid = r.int("xid").expect("xid");
                    let _ = r.long("zxid");
                    let _ = r.int("err");
                    if xid == -1 {
                        let line = self.event(name, &mut r);
                        self.line(line);
                    } else {
                        self.line(format!("{name}: a reply to {xid} where an event was awaited"));
                    }
                }
                Got::Closed => {
                    self.line(format!("{name}: closed while awaiting an event"));
                    return;
                }
                Got::Silent => {
                    self.line(format!("{name}: no event"));
                    return;
                }
            }
        }
    }

    /// Checks that no notification is waiting on `name`'s connection.
    pub fn quiet(&mut self, name: &'static str) {
        if !self.conns.contains_key(name) {
            self.line(format!("{name}: no connection to be quiet"));
            return;
        }
        let got = self.conns.get_mut(name).expect("a connection").recv(Duration::from_millis(300));
        match got {
            Got::Silent => self.line(format!("{name}: quiet")),
            Got::Closed => self.line(format!("{name}: closed")),
            Got::Frame(bytes) => {
                let mut r = Reader::new(&bytes, BOUNDS);
                let _ = (r.int("xid"), r.long("zxid"), r.int("err"));
                let line = self.event(name, &mut r);
                self.line(format!("unexpected: {line}"));
            }
        }
    }

    pub fn stat(&mut self, r: &mut Reader<'_>) -> String {
        let s = read_stat(r).expect("a Stat");
        let czxid = self.zxid(s.czxid.0 as i64);
        let mzxid = self.zxid(s.mzxid.0 as i64);
        let pzxid = self.zxid(s.pzxid.0 as i64);
        let owner = match s.ephemeral_owner as i64 {
            0 => "0".to_string(),
            o if o == i64::MIN => "container".to_string(),
            o if (o as u64) >> 56 == 0xff => format!("ttl {}", o as u64 & ((1 << 40) - 1)),
            o => self.session(o),
        };
        format!(
            "stat czxid {czxid} mzxid {mzxid} pzxid {pzxid} version {} cversion {} aversion {} owner {owner} length {} children {}",
            s.version, s.cversion, s.aversion, s.data_length, s.num_children
        )
    }

    pub fn body(&mut self, opcode: i32, r: &mut Reader<'_>) -> String {
        let sorted = |mut v: Vec<String>| {
            v.sort();
            format!("{v:?}")
        };
        match opcode {
            op::CREATE => r.ustring("path").expect("path"),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.ustring("path").expect("path");
                format!("{path} {}", self.stat(r))
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => self.stat(r),
            op::GET_DATA => {
                let data = r.buffer("data").expect("data");
                format!("{:?} {}", String::from_utf8_lossy(&data), self.stat(r))
            }
            op::GET_ACL => {
                let acl = r.acl().expect("acl");
                let acl: Vec<String> = acl
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms.0))
                    .collect();
                format!("{acl:?} {}", self.stat(r))
            }
            op::GET_CHILDREN | op::GET_EPHEMERALS => {
                sorted(r.strings("children").expect("children"))
            }
            op::GET_CHILDREN2 => {
                let names = sorted(r.strings("children").expect("children"));
                format!("{names} {}", self.stat(r))
            }
            op::SYNC => r.ustring("path").expect("path"),
            op::GET_ALL_CHILDREN_NUMBER | op::ADD_WATCH => {
                r.int("number").expect("int").to_string()
            }
            op::WHO_AM_I => {
                let n = r.int("count").expect("count");
                let ids: Vec<String> = (0..n)
                    .map(|_| {
                        format!(
                            "{}:{}",
                            r.ustring("scheme").expect("scheme"),
                            r.ustring("user").expect("user")
                        )
                    })
                    .collect();
                // ZooKeeper keeps a connection's identities in a hash set.
                sorted(ids)
            }
            op::MULTI | op::MULTI_READ => {
                let mut parts = Vec::new();
                loop {
                    let kind = r.int("type").expect("type");
                    let done = r.bool("done").expect("done");
                    let err = r.int("err").expect("err");
                    if done {
                        break;
                    }
                    let part = match kind {
                        op::ERROR => format!("error {}", r.int("err").expect("err")),
                        op::CREATE => format!("create {}", r.ustring("path").expect("path")),
                        op::CREATE2 => {
                            let path = r.ustring("path").expect("path");
                            format!("create2 {path} {}", self.stat(r))
                        }
                        op::DELETE => "delete".into(),
                        op::CHECK => "check".into(),
                        op::SET_DATA => format!("setData {}", self.stat(r)),
                        op::GET_DATA => {
                            let data = r.buffer("data").expect("data");
                            format!("getData {:?} {}", String::from_utf8_lossy(&data), self.stat(r))
                        }
                        op::GET_CHILDREN => {
                            format!(
                                "getChildren {}",
                                sorted(r.strings("children").expect("children"))
                            )
                        }
                        other => format!("type {other}?"),
                    };
                    parts.push(format!("[{err}] {part}"));
                }
                parts.join("; ")
            }
            _ => String::new(),
        }
    }
}

pub fn op_name(opcode: i32) -> String {
    match opcode {
        op::CREATE => "create",
        op::DELETE => "delete",
        op::EXISTS => "exists",
        op::GET_DATA => "getData",
        op::SET_DATA => "setData",
        op::GET_ACL => "getACL",
        op::SET_ACL => "setACL",
        op::GET_CHILDREN => "getChildren",
        op::SYNC => "sync",
        op::PING => "ping",
        op::GET_CHILDREN2 => "getChildren2",
        op::CHECK => "check",
        op::MULTI => "multi",
        op::CREATE2 => "create2",
        op::RECONFIG => "reconfig",
        op::CHECK_WATCHES => "checkWatches",
        op::REMOVE_WATCHES => "removeWatches",
        op::CREATE_CONTAINER => "createContainer",
        op::DELETE_CONTAINER => "deleteContainer",
        op::CREATE_TTL => "createTTL",
        op::MULTI_READ => "multiRead",
        op::AUTH => "auth",
        op::SET_WATCHES => "setWatches",
        op::SASL => "sasl",
        op::GET_EPHEMERALS => "getEphemerals",
        op::GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
        op::SET_WATCHES2 => "setWatches2",
        op::ADD_WATCH => "addWatch",
        op::WHO_AM_I => "whoAmI",
        op::CLOSE_SESSION => "closeSession",
        other => return format!("op{other}"),
    }
    .to_string()
}

// ---- request bodies ----

pub fn open_acl(w: &mut Writer) {
    w.int(1);
    w.int(31);
    w.ustring("world");
    w.ustring("anyone");
}

pub fn create(path: &str, data: &str, flags: i32) -> impl FnOnce(&mut Writer) {
    let (path, data) = (path.to_string(), data.to_string());
    move |w| {
        w.ustring(&path);
        w.buffer(Some(data.as_bytes()));
        open_acl(w);
        w.int(flags);
    }
}

pub fn create_acl(path: &str, acl: &[(&str, &str, i32)], flags: i32) -> impl FnOnce(&mut Writer) {
    let path = path.to_string();
    let acl: Vec<(String, String, i32)> =
        acl.iter().map(|(s, i, p)| (s.to_string(), i.to_string(), *p)).collect();
    move |w| {
        w.ustring(&path);
        w.buffer(Some(b"x"));
        w.int(acl.len() as i32);
        for (scheme, id, perms) in &acl {
            w.int(*perms);
            w.ustring(scheme);
            w.ustring(id);
        }
        w.int(flags);
    }
}

pub fn ttl(path: &str, flags: i32, ttl: i64) -> impl FnOnce(&mut Writer) {
    let path = path.to_string();
    move |w| {
        w.ustring(&path);
        w.buffer(Some(b"t"));
        open_acl(w);
        w.int(flags);
        w.long(ttl);
    }
}

pub fn path(p: &str) -> impl FnOnce(&mut Writer) {
    let p = p.to_string();
    move |w| w.ustring(&p)
}

pub fn path_watch(p: &str, watch: bool) -> impl FnOnce(&mut Writer) {
    let p = p.to_string();
    move |w| {
        w.ustring(&p);
        w.bool(watch);
    }
}

pub fn path_version(p: &str, version: i32) -> impl FnOnce(&mut Writer) {
    let p = p.to_string();
    move |w| {
        w.ustring(&p);
        w.int(version);
    }
}

pub fn set_data(p: &str, data: &str, version: i32) -> impl FnOnce(&mut Writer) {
    let (p, data) = (p.to_string(), data.to_string());
    move |w| {
        w.ustring(&p);
        w.buffer(Some(data.as_bytes()));
        w.int(version);
    }
}

pub fn path_int(p: &str, n: i32) -> impl FnOnce(&mut Writer) {
    path_version(p, n)
}

/// One operation of a multi: its opcode and its body.
pub type Part = (i32, Box<dyn FnOnce(&mut Writer)>);

/// A multi of (opcode, body) parts.
pub fn multi(parts: Vec<Part>) -> impl FnOnce(&mut Writer) {
    move |w| {
        for (opcode, body) in parts {
            w.int(opcode);
            w.bool(false);
            w.int(-1);
            body(w);
        }
        w.int(-1);
        w.bool(true);
        w.int(-1);
    }
}

pub fn part(opcode: i32, body: impl FnOnce(&mut Writer) + 'static) -> Part {
    (opcode, Box::new(body))
}

pub fn auth(scheme: &str, credentials: &str) -> impl FnOnce(&mut Writer) {
    let (scheme, credentials) = (scheme.to_string(), credentials.to_string());
    move |w| {
        w.int(0);
        w.ustring(&scheme);
        w.buffer(Some(credentials.as_bytes()));
    }
}

/// Waits (up to 30 s) until the ZooKeeper port at `addr` opens sessions:
/// the cluster may still be electing a leader.
pub fn wait_for_session(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut s = Script::new(addr);
        s.open("probe", 10_000);
        if s.conns.contains_key("probe") {
            s.call("probe", op::CLOSE_SESSION, |_| {});
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{addr} opened no ZooKeeper session within 30 s");
}
