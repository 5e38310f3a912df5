//! Script tests for the session layer, in the style of the consensus
//! scripts (`host/tests/consensus_scripts.rs`): each file in
//! `host/tests/sessions/` drives a few real node engines and named clients
//! over a perfect, manually driven network, and prints what the clients
//! were sent, which is compared with the output recorded in the file.
//!
//! A script is a sequence of stanzas separated by blank lines: one or more
//! commands, a `----` line, and the expected output. Lines starting with
//! `#` are comments. With several commands, each one's output follows its
//! echo (`> command`). After every command the world settles: every peer
//! frame is delivered and every sync completes, except across a partition
//! and on a member whose disk is held. `WARREN_REWRITE=1` writes the
//! actual output into the files, to be reviewed like code.
//!
//! Commands:
//! - `cluster N`: a fresh cluster of members 1..N with n1 elected
//! - `open C I [timeout=MS]`: client C opens a new session on member I
//! - `resume C I [secret=wrong] [last=Z] [data=P] [exist=P] [child=P]
//!   [persistent=P] [recursive=P]`: C leaves its connection and resumes its
//!   session on member I (`last` defaults to the last zxid C saw)
//! - `send C REQUEST`: C sends a request, numbered from 1 per client:
//!   `create P DATA [ephemeral] [creator]`, `set P DATA`, `delete P`,
//!   `get P [watch] [linearizable]`, `exists P [watch]`, `children P
//!   [watch]`, `sync`, `addauth SCHEME CREDENTIALS`, `watch P [recursive]`,
//!   `setwatches [last=Z] [data=P] [exist=P] [child=P] [persistent=P]
//!   [recursive=P]`
//! - `ping C`, `close C` (ends the session), `gone C` (the connection
//!   drops; the session lives on)
//! - `hold I` / `release I`: member I's syncs wait / complete
//! - `partition I...` (those members are cut off from the rest), `heal`
//! - `stall I N`: member I does not run for N ticks (what is sent to it
//!   waits), then takes a tick before anything else, as a member whose
//!   thread was held (a long apply, a pause) does
//! - `tick [N]`: time moves N ticks on every member (quietly settling
//!   after each); clients do not ping by themselves
//!
//! Output: `C <- ...` for each frame a client was sent, in order:
//! `welcome SESSION @ZXID`, `refused WHY`, `#XID @ZXID ANSWER`,
//! `event TYPE PATH @ZXID`, `pong`, `closed`, `goodbye WHY`, and `C: end`
//! when the member ends the connection.

use super::TICK_MS;
use super::node::{Effect, SimNode};
use crate::consensus::{Config, NodeId, Role};
use crate::node::engine::{ConnId, Input, PlantedBugs, SessionIn};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use warren_client::wire::{Answer, Hello, Read, Request, ServerFrame, WatchSet};
use warren_client::{Acl, CreateMode, Id, Op, OpResult, SessionId, SessionSecret, Zxid};

/// Runs a script and returns it with each stanza's output replaced by what
/// happened; a command the harness does not understand is an error.
pub fn run(script: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut world: Option<World> = None;
    let mut lines = script.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut commands = vec![line.to_string()];
        for next in lines.by_ref() {
            if next == "----" {
                break;
            }
            commands.push(next.to_string());
        }
        // The recorded output, up to the next blank line, is replaced.
        while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
            lines.next();
        }
        let mut result = String::new();
        for command in &commands {
            if commands.len() > 1 {
                let _ = writeln!(result, "> {command}");
            }
            let words: Vec<&str> = command.split_whitespace().collect();
            if words.first() == Some(&"cluster") {
                let n = words.get(1).and_then(|n| n.parse().ok()).ok_or("cluster N")?;
                world = Some(World::new(n));
                let w = world.as_mut().ok_or("no cluster")?;
                w.elect();
                let _ = writeln!(result, "n1 leads, {n} members");
                continue;
            }
            let w = world.as_mut().ok_or_else(|| format!("{command}: no cluster yet"))?;
            w.command(&words).map_err(|e| format!("{command}: {e}"))?;
            w.settle();
            result.push_str(&std::mem::take(&mut w.printed));
        }
        for command in &commands {
            out.push_str(command);
            out.push('\n');
        }
        out.push_str("----\n");
        out.push_str(&result);
    }
    Ok(out)
}

struct Client {
    member: usize,
    conn: Option<ConnId>,
    session: Option<SessionId>,
    secret: SessionSecret,
    next_xid: u64,
    last_zxid: Zxid,
}

struct World {
    nodes: Vec<SimNode>,
    now: u64,
    /// Peer frames on their way: (from, to, frame).
    net: VecDeque<(usize, usize, crate::node::engine::PeerFrame)>,
    /// Syncs started and not done, per member.
    syncs: Vec<Vec<crate::node::engine::SyncId>>,
    held: BTreeSet<usize>,
    /// A member that does not run, and the frames waiting for it.
    stalled: Option<usize>,
    waiting: VecDeque<(usize, usize, crate::node::engine::PeerFrame)>,
    /// Members cut off from the rest, by group; 0 is the majority's.
    group: Vec<usize>,
    clients: BTreeMap<String, Client>,
    owners: BTreeMap<ConnId, String>,
    next_conn: ConnId,
    printed: String,
}

impl World {
    fn new(n: usize) -> World {
        let ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let config = Config::new(id, ids.clone(), id.0);
                SimNode::new(config, super::options(1_000), PlantedBugs::default(), 0)
            })
            .collect();
        World {
            nodes,
            now: 0,
            net: VecDeque::new(),
            syncs: vec![Vec::new(); n],
            held: BTreeSet::new(),
            stalled: None,
            waiting: VecDeque::new(),
            group: vec![0; n],
            clients: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_conn: 1,
            printed: String::new(),
        }
    }

    /// Ticks n1 alone until it leads, then lets the others catch up.
    fn elect(&mut self) {
        for _ in 0..200 {
            self.now += TICK_MS;
            self.input(0, Input::Tick);
            self.settle();
            if self.nodes[0].raft().is_some_and(|r| r.role() == Role::Leader) {
                break;
            }
        }
        self.tick(3);
        self.printed.clear();
    }

    fn input(&mut self, n: usize, input: Input) {
        match self.nodes[n].input(input, self.now) {
            Ok(effects) => self.effects(n, effects),
            Err(e) => {
                let _ = writeln!(self.printed, "n{}: stopped: {e}", n + 1);
            }
        }
    }

    fn effects(&mut self, n: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Peer { to, frame } => self.net.push_back((n, to as usize - 1, frame)),
                Effect::Session { conn, frame } => self.deliver(conn, frame),
                Effect::Close { conn } => {
                    if let Some(name) = self.owners.remove(&conn) {
                        let _ = writeln!(self.printed, "{name}: end");
                        if let Some(c) = self.clients.get_mut(&name) {
                            c.conn = None;
                        }
                    }
                }
                Effect::Sync(id) => self.syncs[n].push(id),
                Effect::Snapshot(snapshot) => {
                    self.input(n, Input::SnapshotWritten(Ok(snapshot)));
                }
            }
        }
    }

    /// Delivers every frame and completes every sync it can, until quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if let Some((from, to, frame)) = self.net.pop_front() {
                if self.stalled == Some(to) {
                    self.waiting.push_back((from, to, frame));
                } else if self.group[from] == self.group[to] {
                    self.input(to, Input::Peer { from: from as u64 + 1, frame });
                }
                continue;
            }
            let ready = (0..self.nodes.len())
                .find(|n| !self.held.contains(n) && !self.syncs[*n].is_empty());
            let Some(n) = ready else { return };
            for id in std::mem::take(&mut self.syncs[n]) {
                match self.nodes[n].sync_done(id, self.now) {
                    Ok(effects) => self.effects(n, effects),
                    Err(e) => {
                        let _ = writeln!(self.printed, "n{}: stopped: {e}", n + 1);
                    }
                }
            }
        }
    }

    fn tick(&mut self, count: u64) {
        for _ in 0..count {
            self.now += TICK_MS;
            for n in 0..self.nodes.len() {
                if self.stalled != Some(n) {
                    self.input(n, Input::Tick);
                }
            }
            self.settle();
        }
    }

    fn deliver(&mut self, conn: ConnId, frame: ServerFrame) {
        let Some(name) = self.owners.get(&conn).cloned() else { return };
        let Some(client) = self.clients.get_mut(&name) else { return };
        let line = match frame {
            ServerFrame::Welcome(w) => {
                client.session = Some(w.session);
                client.secret = w.secret;
                client.last_zxid = client.last_zxid.max(w.zxid);
                let lost = if w.events_lost { " events-lost" } else { "" };
                format!("welcome {} @{}{lost}", w.session, w.zxid)
            }
            ServerFrame::Refused(why) => format!("refused: {why}"),
            ServerFrame::Response { xid, zxid, result } => {
                client.last_zxid = client.last_zxid.max(zxid);
                let answer = match result {
                    Ok(answer) => show_answer(answer),
                    Err(failure) => format!("failed: {failure}"),
                };
                format!("#{xid} @{zxid} {answer}")
            }
            ServerFrame::Event(e) => {
                client.last_zxid = client.last_zxid.max(e.zxid);
                format!("event {:?} {} @{}", e.event, e.path, e.zxid)
            }
            ServerFrame::Pong => "pong".into(),
            ServerFrame::Closed => "closed".into(),
            ServerFrame::Goodbye(why) => format!("goodbye: {why}"),
        };
        let _ = writeln!(self.printed, "{name} <- {line}");
    }

    fn command(&mut self, words: &[&str]) -> Result<(), String> {
        let arg = |i: usize| words.get(i).copied().ok_or("missing argument");
        let member = |i: usize| -> Result<usize, String> {
            let n: usize = arg(i)?.trim_start_matches('n').parse().map_err(|_| "member")?;
            if n == 0 || n > self.nodes.len() {
                return Err(format!("no member {n}"));
            }
            Ok(n - 1)
        };
        match words[0] {
            "open" | "resume" => {
                let name = arg(1)?.to_string();
                let n = member(2)?;
                let opts = options(&words[3..]);
                let client = self.clients.entry(name.clone()).or_insert(Client {
                    member: n,
                    conn: None,
                    session: None,
                    secret: SessionSecret::default(),
                    next_xid: 1,
                    last_zxid: Zxid(0),
                });
                let hello = if words[0] == "open" {
                    let timeout_ms = opts.get("timeout").map_or(Ok(2_000), |t| t.parse());
                    Hello { timeout_ms: timeout_ms.map_err(|_| "timeout=MS")?, ..Hello::default() }
                } else {
                    let session = client.session.ok_or("resume: the client has no session")?;
                    let mut secret = client.secret;
                    if opts.get("secret").is_some_and(|s| *s == "wrong") {
                        secret.0[0] ^= 1;
                    }
                    let last = opts.get("last").map_or(Ok(client.last_zxid.0), |z| z.parse());
                    Hello {
                        session: Some(session),
                        secret,
                        timeout_ms: 0,
                        last_zxid: Zxid(last.map_err(|_| "last=ZXID")?),
                        watches: watch_set(&words[3..]),
                    }
                };
                let old = client.conn.take().map(|conn| (conn, client.member));
                let conn = self.next_conn;
                self.next_conn += 1;
                client.conn = Some(conn);
                client.member = n;
                if let Some((old, old_member)) = old {
                    self.owners.remove(&old);
                    self.input(old_member, Input::Session(SessionIn::Gone { conn: old }));
                }
                self.owners.insert(conn, name.clone());
                let identity = Id::x509(format!("CN={name}"));
                // Deterministic per connection, which is all a script needs.
                let secret = SessionSecret([conn as u8; 16]);
                let open = SessionIn::Open { conn, identity, hello: Box::new(hello), secret };
                self.input(n, Input::Session(open));
            }
            "send" => {
                let name = arg(1)?;
                let request = request(&words[2..])?;
                let client = self.clients.get_mut(name).ok_or("no such client")?;
                let conn = client.conn.ok_or("the client is not connected")?;
                let xid = client.next_xid;
                client.next_xid += 1;
                let n = client.member;
                self.input(n, Input::Session(SessionIn::Request { conn, xid, request }));
            }
            "ping" | "close" | "gone" => {
                let name = arg(1)?;
                let client = self.clients.get_mut(name).ok_or("no such client")?;
                let conn = client.conn.ok_or("the client is not connected")?;
                let n = client.member;
                let input = match words[0] {
                    "ping" => SessionIn::Ping { conn },
                    "close" => SessionIn::Close { conn },
                    _ => {
                        client.conn = None;
                        self.owners.remove(&conn);
                        SessionIn::Gone { conn }
                    }
                };
                self.input(n, Input::Session(input));
            }
            "hold" => {
                self.held.insert(member(1)?);
            }
            "release" => {
                self.held.remove(&member(1)?);
            }
            "partition" => {
                let group = self.group.iter().max().copied().unwrap_or(0) + 1;
                for i in 1..words.len() {
                    let n = member(i)?;
                    self.group[n] = group;
                }
            }
            "heal" => self.group.iter_mut().for_each(|g| *g = 0),
            "stall" => {
                let n = member(1)?;
                let count: u64 = arg(2)?.parse().map_err(|_| "stall I N")?;
                self.stalled = Some(n);
                self.tick(count);
                self.stalled = None;
                self.now += TICK_MS;
                self.input(n, Input::Tick);
                let waiting = std::mem::take(&mut self.waiting);
                self.net.extend(waiting);
            }
            "tick" => {
                let count = words.get(1).map_or(Ok(1), |c| c.parse()).map_err(|_| "tick N")?;
                self.tick(count);
            }
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }
}

/// The `key=value` words.
fn options<'a>(words: &[&'a str]) -> BTreeMap<&'a str, &'a str> {
    words.iter().filter_map(|w| w.split_once('=')).collect()
}

fn watch_set(words: &[&str]) -> WatchSet {
    let mut set = WatchSet::default();
    for (key, path) in words.iter().filter_map(|w| w.split_once('=')) {
        let list = match key {
            "data" => &mut set.data,
            "exist" => &mut set.exist,
            "child" => &mut set.child,
            "persistent" => &mut set.persistent,
            "recursive" => &mut set.recursive,
            _ => continue,
        };
        list.push(path.to_string());
    }
    set
}

fn request(words: &[&str]) -> Result<Request, String> {
    let arg = |i: usize| words.get(i).copied().ok_or("missing argument".to_string());
    let flag = |f: &str| words.contains(&f);
    let path = || arg(1).map(str::to_string);
    let read = |read| Request::Read { read, linearizable: flag("linearizable") };
    Ok(match arg(0)? {
        "create" => {
            let mode =
                if flag("ephemeral") { CreateMode::Ephemeral } else { CreateMode::Persistent };
            let acl = if flag("creator") { Acl::creator_all() } else { Acl::open() };
            let data = arg(2)?.as_bytes().to_vec();
            Request::Write(Op::Create { path: path()?, data, acl, mode })
        }
        "set" => Request::Write(Op::SetData { path: path()?, data: arg(2)?.into(), version: None }),
        "delete" => Request::Write(Op::Delete { path: path()?, version: None }),
        "get" => read(Read::GetData { path: path()?, watch: flag("watch") }),
        "exists" => read(Read::Exists { path: path()?, watch: flag("watch") }),
        "children" => read(Read::GetChildren { path: path()?, watch: flag("watch"), after: None }),
        "sync" => Request::Sync { path: "/".into() },
        "addauth" => {
            Request::AddAuth { scheme: arg(1)?.to_string(), auth: arg(2)?.as_bytes().to_vec() }
        }
        "watch" => {
            let kind = if flag("recursive") {
                warren_client::WatchKind::PersistentRecursive
            } else {
                warren_client::WatchKind::Persistent
            };
            Request::AddWatch { path: path()?, kind }
        }
        "setwatches" => {
            let opts = options(words);
            let last = opts.get("last").map_or(Ok(0), |z| z.parse()).map_err(|_| "last=ZXID")?;
            Request::SetWatches { last_zxid: Zxid(last), watches: watch_set(words) }
        }
        other => return Err(format!("unknown request {other}")),
    })
}

fn show_answer(answer: Answer) -> String {
    match answer {
        Answer::Write(Ok(OpResult::Create { path, .. })) => format!("created {path}"),
        Answer::Write(Ok(OpResult::SetData { stat })) => format!("set version {}", stat.version),
        Answer::Write(Ok(other)) => format!("{other:?}"),
        Answer::Write(Err(e)) => format!("error: {e}"),
        Answer::Data { data, stat } => {
            format!("data {:?} version {}", String::from_utf8_lossy(&data), stat.version)
        }
        Answer::Exists(stat) => match stat {
            Some(stat) => format!("exists version {}", stat.version),
            None => "does not exist".into(),
        },
        Answer::Children { names, .. } => format!("children {names:?}"),
        Answer::WatchesSet { events_lost } => {
            format!("watches set{}", if events_lost { " events-lost" } else { "" })
        }
        other => format!("{other:?}").to_lowercase(),
    }
}
