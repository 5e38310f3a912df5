//! ZooKeeper's four-letter words on the client port: a connection whose
//! first four bytes are one of them gets the command's text, then the
//! connection closes. Only the words on the listener's allow-list
//! (`zookeeper_four_letter_words`, ZooKeeper's `4lw.commands.whitelist`)
//! run; the others are answered as ZooKeeper answers them.

use super::server::Front;
use crate::node::driver::Event;
use crate::node::engine::Report;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Every word Warren answers, in ZooKeeper's spelling.
pub const WORDS: [&str; 15] = [
    "ruok", "srvr", "stat", "envi", "conf", "cons", "crst", "srst", "dump", "wchs", "wchc", "wchp",
    "mntr", "isro", "dirs",
];

/// ZooKeeper's default allow-list: `srvr` only (what `zkServer.sh
/// status` uses).
pub const DEFAULT_ALLOWED: [&str; 1] = ["srvr"];

/// The version ZooKeeper clients are told, in ZooKeeper's form (kazoo
/// and others parse the leading numbers): the protocol Warren speaks,
/// then Warren's own version.
pub fn version() -> String {
    format!("3.9.3-warren-{}", env!("CARGO_PKG_VERSION"))
}

/// Which words a listener runs.
#[derive(Clone, Debug)]
pub enum Allowed {
    All,
    Only(BTreeSet<String>),
}

impl Allowed {
    /// From the configured list: `*` allows every word.
    pub fn from_list(list: &[String]) -> Allowed {
        if list.iter().any(|w| w == "*") {
            Allowed::All
        } else {
            Allowed::Only(list.iter().cloned().collect())
        }
    }

    fn allows(&self, word: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(words) => words.contains(word),
        }
    }
}

/// What a node tells about itself that does not change while it runs.
#[derive(Clone, Debug)]
pub struct Facts {
    pub node: u64,
    pub client_port: u16,
    pub data_dir: PathBuf,
    pub tick_ms: u64,
    pub session_timeout_min_ms: u32,
    pub session_timeout_max_ms: u32,
    pub max_client_cnxns: usize,
    /// Every member: id and address (peers'), for `conf`.
    pub members: Vec<(u64, std::net::SocketAddr)>,
}

/// Whether four bytes at the start of a connection are a word (a jute
/// frame's length never reads as ASCII letters within the size limit).
pub fn is_word(head: &[u8; 4]) -> bool {
    WORDS.iter().any(|w| w.as_bytes() == head)
}

/// The answer to `word` on a listener.
pub(crate) async fn answer(word: &[u8; 4], front: &Front) -> String {
    let word = std::str::from_utf8(word).unwrap_or("????");
    if !front.words.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => return "imok".into(),
        "isro" => return "rw".into(),
        "envi" => return envi(),
        "conf" => return conf(&front.facts),
        "srst" => {
            front.stats.received.store(0, Ordering::Relaxed);
            front.stats.sent.store(0, Ordering::Relaxed);
            return "Server stats reset.\n".into();
        }
        "crst" => {
            for conn in front.conns().values() {
                conn.received.store(0, Ordering::Relaxed);
                conn.sent.store(0, Ordering::Relaxed);
            }
            return "Connection stats reset.\n".into();
        }
        "cons" => return cons(front),
        "dirs" => return dirs(&front.facts).await,
        _ => {}
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if front.core.send(Event::Report(tx)).await.is_err() {
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    let Ok(report) = rx.await else {
        return "This ZooKeeper instance is not currently serving requests\n".into();
    };
    match word {
        "srvr" => srvr(front, &report),
        "stat" => {
            let mut out = format!("Zookeeper version: {}\nClients:\n", version());
            out.push_str(&cons(front));
            out.push('\n');
            out.push_str(srvr(front, &report).split_once('\n').map_or("", |(_, rest)| rest));
            out
        }
        "mntr" => mntr(front, &report),
        "wchs" => {
            let paths: BTreeSet<&str> = report.watches.iter().map(|(_, p)| p.as_str()).collect();
            let sessions: BTreeSet<_> = report.watches.iter().map(|(s, _)| s).collect();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                sessions.len(),
                paths.len(),
                report.watches.len()
            )
        }
        "wchc" => {
            let mut out = String::new();
            let mut last = None;
            for (session, path) in &report.watches {
                if last != Some(session) {
                    let _ = writeln!(out, "{:#x}", session.0);
                    last = Some(session);
                }
                let _ = writeln!(out, "\t{path}");
            }
            out
        }
        "wchp" => {
            let mut by_path: Vec<(&str, u64)> =
                report.watches.iter().map(|(s, p)| (p.as_str(), s.0)).collect();
            by_path.sort();
            let mut out = String::new();
            let mut last = None;
            for (path, session) in by_path {
                if last != Some(path) {
                    let _ = writeln!(out, "{path}");
                    last = Some(path);
                }
                let _ = writeln!(out, "\t{session:#x}");
            }
            out
        }
        "dump" => {
            let mut out = format!("Session Sets ({}):\n", report.sessions.len());
            for (session, timeout_ms, _) in &report.sessions {
                let _ = writeln!(out, "{:#x}\t{timeout_ms}ms", session.0);
            }
            let with: Vec<_> = report.sessions.iter().filter(|(_, _, e)| !e.is_empty()).collect();
            let _ =
                writeln!(out, "ephemeral nodes dump:\nSessions with Ephemerals ({}):", with.len());
            for (session, _, ephemerals) in with {
                let _ = writeln!(out, "{:#x}:", session.0);
                for path in ephemerals {
                    let _ = writeln!(out, "\t{path}");
                }
            }
            out
        }
        _ => format!("{word} is not a known command.\n"),
    }
}

fn mode(report: &Report) -> &str {
    match report.status.role.as_str() {
        "leader" => "leader",
        _ => "follower",
    }
}

fn srvr(front: &Front, report: &Report) -> String {
    let s = &report.status;
    format!(
        "Zookeeper version: {}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: {:#x}\nMode: {}\nNode count: {}\n",
        version(),
        front.stats.received.load(Ordering::Relaxed),
        front.stats.sent.load(Ordering::Relaxed),
        front.conns().len(),
        s.applied.0,
        mode(report),
        s.znodes,
    )
}

fn mntr(front: &Front, report: &Report) -> String {
    let s = &report.status;
    let ephemerals: usize = report.sessions.iter().map(|(_, _, e)| e.len()).sum();
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{key}\t{value}");
    };
    line("zk_version", &version());
    line("zk_server_state", &mode(report));
    line("zk_packets_received", &front.stats.received.load(Ordering::Relaxed));
    line("zk_packets_sent", &front.stats.sent.load(Ordering::Relaxed));
    line("zk_num_alive_connections", &front.conns().len());
    line("zk_outstanding_requests", &0);
    line("zk_znode_count", &s.znodes);
    line("zk_watch_count", &report.watches.len());
    line("zk_ephemerals_count", &ephemerals);
    line("zk_global_sessions", &s.sessions);
    line("zk_zxid", &format_args!("{:#x}", s.applied.0));
    line("warren_node", &s.node);
    line("warren_term", &s.term);
    line("warren_commit", &s.commit);
    out
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={}\nhost.name={host}\nos.name={}\nos.arch={}\nuser.dir={}\n",
        version(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
    )
}

fn conf(f: &Facts) -> String {
    let mut out = format!(
        "clientPort={}\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId={}\n",
        f.client_port,
        f.data_dir.display(),
        f.data_dir.display(),
        f.tick_ms,
        f.max_client_cnxns,
        f.session_timeout_min_ms,
        f.session_timeout_max_ms,
        f.node,
    );
    for (id, addr) in &f.members {
        let _ = writeln!(out, "server.{id}={addr}");
    }
    out
}

fn cons(front: &Front) -> String {
    let mut out = String::new();
    let conns = front.conns();
    let mut list: Vec<_> = conns.iter().collect();
    list.sort_by_key(|(id, _)| **id);
    for (_, c) in list {
        let _ = writeln!(
            out,
            " /{}[1](queued=0,recved={},sent={},sid={:#x})",
            c.peer,
            c.received.load(Ordering::Relaxed),
            c.sent.load(Ordering::Relaxed),
            c.session.load(Ordering::Relaxed),
        );
    }
    out
}

async fn dirs(f: &Facts) -> String {
    let dir = f.data_dir.clone();
    let size = tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0);
    format!("datadir_size: {size}\nlogdir_size: {size}\n")
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
