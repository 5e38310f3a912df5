//! A node's configuration file (`warren serve --config node.toml`): who it
//! is, where it listens, its peers, its data directory, its certificates and
//! its timing. Checked in full at start; every error names the field and
//! what to do. Relative paths are relative to the file's directory.

use crate::limits::Limits;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a node configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}; check the path")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the configuration file {path} is not valid: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("in {path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: u64,
    listen: SocketAddr,
    data_dir: PathBuf,
    /// Every other member: node id (as a string key, TOML's rule) → address.
    peers: BTreeMap<String, SocketAddr>,
    tls: TlsFile,
    #[serde(default)]
    timing: Timing,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default = "default_snapshot_every")]
    snapshot_every: u64,
    /// Where ZooKeeper clients connect over plain TCP; none: nowhere.
    #[serde(default)]
    zookeeper_listen: Option<SocketAddr>,
    /// Where ZooKeeper clients connect over TLS (the cluster CA).
    #[serde(default)]
    zookeeper_tls_listen: Option<SocketAddr>,
    /// Whether the TLS port requires a client certificate: need, want or
    /// none.
    #[serde(default)]
    zookeeper_tls_client_auth: crate::tls::ClientAuth,
    /// The four-letter words the ZooKeeper port answers (`*`: all).
    #[serde(default = "default_four_letter_words")]
    zookeeper_four_letter_words: Vec<String>,
    /// Connections one client address may hold on the ZooKeeper port.
    #[serde(default = "default_max_client_cnxns")]
    zookeeper_max_client_cnxns: usize,
    /// `user:<base64 sha1>`: the digest whose addAuth makes a session the
    /// superuser.
    #[serde(default)]
    superuser_digest: Option<String>,
    /// Every member's ZooKeeper client address (node id → "host:port"),
    /// for `/zookeeper/config`; the same on every member.
    #[serde(default)]
    zookeeper_servers: BTreeMap<String, SocketAddr>,
}

fn default_four_letter_words() -> Vec<String> {
    crate::zookeeper::words::DEFAULT_ALLOWED.iter().map(|w| w.to_string()).collect()
}

fn default_max_client_cnxns() -> usize {
    crate::limits::ZOOKEEPER_CONNECTIONS_PER_IP_MAX
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// How fast the node's clock ticks and what it counts in ticks.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// One tick of the consensus clock.
    pub tick_ms: u64,
    /// Ticks without a leader before an election (drawn from this up to
    /// twice this).
    pub election_ticks: u32,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: u32,
    /// The range a client's requested session timeout is clamped to.
    pub session_timeout_min_ms: u32,
    pub session_timeout_max_ms: u32,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            session_timeout_min_ms: 2_000,
            session_timeout_max_ms: 60_000,
        }
    }
}

/// The replicated limits; every member must use the same.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsFile {
    data_bytes_max: usize,
    path_bytes_max: usize,
    multi_ops_max: usize,
    acl_entries_max: usize,
}

impl Default for LimitsFile {
    fn default() -> LimitsFile {
        let d = Limits::default();
        LimitsFile {
            data_bytes_max: d.data_bytes_max,
            path_bytes_max: d.path_bytes_max,
            multi_ops_max: d.multi_ops_max,
            acl_entries_max: d.acl_entries_max,
        }
    }
}

fn default_snapshot_every() -> u64 {
    100_000
}

/// A checked node configuration, paths resolved.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: u64,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Every other member and its address.
    pub peers: BTreeMap<u64, SocketAddr>,
    pub tls: crate::tls::TlsFiles,
    pub timing: Timing,
    pub limits: Limits,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
    /// The ZooKeeper protocol's listener, if any.
    pub zookeeper: ZooKeeperConfig,
    /// The digest identity (`user:<base64 sha1>`) of the superuser.
    pub superuser_digest: Option<String>,
}

/// Where and how ZooKeeper clients are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZooKeeperConfig {
    pub listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_client_auth: crate::tls::ClientAuth,
    pub four_letter_words: Vec<String>,
    pub max_client_cnxns: usize,
    /// Every member's ZooKeeper client address, as `/zookeeper/config`
    /// lists them (members not in it are listed without one).
    pub servers: BTreeMap<u64, SocketAddr>,
}

impl Default for ZooKeeperConfig {
    fn default() -> ZooKeeperConfig {
        ZooKeeperConfig {
            listen: None,
            tls_listen: None,
            tls_client_auth: crate::tls::ClientAuth::Need,
            four_letter_words: default_four_letter_words(),
            max_client_cnxns: default_max_client_cnxns(),
            servers: BTreeMap::new(),
        }
    }
}

impl NodeConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        NodeConfig::parse(&text, base).map_err(|e| match e {
            Problem::Parse(why) => ConfigError::Parse { path: path.to_owned(), why },
            Problem::Invalid(why) => ConfigError::Invalid { path: path.to_owned(), why },
        })
    }

    /// Parses and checks `text`, resolving relative paths against `base`.
    fn parse(text: &str, base: &Path) -> Result<NodeConfig, Problem> {
        let file: File =
            toml::from_str(text).map_err(|e| Problem::Parse(e.message().to_owned()))?;
        let invalid = |why: String| Problem::Invalid(why);
        if file.id == 0 {
            return Err(invalid("id is 0; node ids start at 1".into()));
        }
        let mut peers = BTreeMap::new();
        for (key, addr) in &file.peers {
            let id: u64 = key.parse().ok().filter(|&id| id > 0).ok_or_else(|| {
                invalid(format!(
                    "peer key {key:?} is not a node id; write peers as `2 = \"host:port\"`"
                ))
            })?;
            if id == file.id {
                return Err(invalid(format!(
                    "peers lists this node's own id {id}; list only the other members"
                )));
            }
            if *addr == file.listen {
                return Err(invalid(format!(
                    "peer {id} has this node's own listen address {addr}; give each member its own"
                )));
            }
            if peers.values().any(|a| a == addr) {
                return Err(invalid(format!("two peers share the address {addr}")));
            }
            peers.insert(id, *addr);
        }
        let t = file.timing;
        if t.tick_ms == 0 || t.tick_ms > 10_000 {
            return Err(invalid(format!("timing.tick_ms is {}; use 1 to 10000", t.tick_ms)));
        }
        if t.heartbeat_ticks == 0 || t.heartbeat_ticks >= t.election_ticks {
            return Err(invalid(format!(
                "timing.heartbeat_ticks ({}) must be at least 1 and below timing.election_ticks ({})",
                t.heartbeat_ticks, t.election_ticks
            )));
        }
        if t.session_timeout_min_ms == 0 || t.session_timeout_min_ms > t.session_timeout_max_ms {
            return Err(invalid(format!(
                "timing.session_timeout_min_ms ({}) must be at least 1 and at most timing.session_timeout_max_ms ({})",
                t.session_timeout_min_ms, t.session_timeout_max_ms
            )));
        }
        if file.snapshot_every == 0 {
            return Err(invalid(
                "snapshot_every is 0; use the number of entries between snapshots (e.g. 100000)"
                    .into(),
            ));
        }
        let l = file.limits;
        for (name, value) in [
            ("data_bytes_max", l.data_bytes_max),
            ("path_bytes_max", l.path_bytes_max),
            ("multi_ops_max", l.multi_ops_max),
            ("acl_entries_max", l.acl_entries_max),
        ] {
            if value == 0 {
                return Err(invalid(format!("limits.{name} is 0; leave it out for the default")));
            }
        }
        if l.data_bytes_max > 64 << 20 {
            return Err(invalid(format!(
                "limits.data_bytes_max is {}, over the 64 MiB a frame can carry",
                l.data_bytes_max
            )));
        }
        let limits = Limits {
            data_bytes_max: l.data_bytes_max,
            path_bytes_max: l.path_bytes_max,
            multi_ops_max: l.multi_ops_max,
            acl_entries_max: l.acl_entries_max,
            ..Limits::default()
        };
        for word in &file.zookeeper_four_letter_words {
            if word != "*" && !crate::zookeeper::words::WORDS.contains(&word.as_str()) {
                return Err(invalid(format!(
                    "zookeeper_four_letter_words has {word:?}, which is not a four-letter word Warren answers; use some of {} or \"*\"",
                    crate::zookeeper::words::WORDS.join(", ")
                )));
            }
        }
        if let Some(digest) = &file.superuser_digest
            && !matches!(digest.split_once(':'), Some((user, hash)) if !user.is_empty() && hash.len() == 28)
        {
            return Err(invalid(format!(
                "superuser_digest {digest:?} is not user:<base64 sha1 of user:password> (28 characters after the colon); make one with `warren digest USER:PASSWORD`"
            )));
        }
        if file.zookeeper_listen.is_some() && file.zookeeper_listen == file.zookeeper_tls_listen {
            return Err(invalid(
                "zookeeper_listen and zookeeper_tls_listen are the same address; give each its own port"
                    .into(),
            ));
        }
        let mut zookeeper_servers = BTreeMap::new();
        for (key, addr) in &file.zookeeper_servers {
            let id: u64 = key
                .parse()
                .ok()
                .filter(|id| *id == file.id || peers.contains_key(id))
                .ok_or_else(|| {
                    invalid(format!(
                        "zookeeper_servers key {key:?} is not a member's id; write them as `2 = \"host:port\"`"
                    ))
                })?;
            zookeeper_servers.insert(id, *addr);
        }
        let resolve = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        Ok(NodeConfig {
            id: file.id,
            listen: file.listen,
            data_dir: resolve(&file.data_dir),
            peers,
            tls: crate::tls::TlsFiles {
                ca: resolve(&file.tls.ca),
                cert: resolve(&file.tls.cert),
                key: resolve(&file.tls.key),
            },
            timing: t,
            limits,
            snapshot_every: file.snapshot_every,
            zookeeper: ZooKeeperConfig {
                listen: file.zookeeper_listen,
                tls_listen: file.zookeeper_tls_listen,
                tls_client_auth: file.zookeeper_tls_client_auth,
                four_letter_words: file.zookeeper_four_letter_words,
                max_client_cnxns: file.zookeeper_max_client_cnxns,
                servers: zookeeper_servers,
            },
            superuser_digest: file.superuser_digest,
        })
    }

    /// Where the node keeps compiled plugin code: a cache in the data
    /// directory, safe to delete while the node is stopped.
    pub fn plugin_cache(&self) -> PathBuf {
        self.data_dir.join("plugin-cache")
    }

    /// Every member's id, this node's included, sorted.
    pub fn members(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.peers.keys().copied().chain([self.id]).collect();
        all.sort_unstable();
        all
    }

    /// The file text for a configuration (for `warren dev`), paths as
    /// given; with a ZooKeeper address, the node serves ZooKeeper clients
    /// there and answers every four-letter word.
    pub fn render(
        id: u64,
        listen: SocketAddr,
        data_dir: &Path,
        peers: &BTreeMap<u64, SocketAddr>,
        tls: &crate::tls::TlsFiles,
        timing: &Timing,
        zookeeper: &BTreeMap<u64, SocketAddr>,
    ) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "id = {id}\nlisten = \"{listen}\"\ndata_dir = {}\n",
            quote(data_dir)
        ));
        if let Some(addr) = zookeeper.get(&id) {
            out.push_str(&format!(
                "zookeeper_listen = \"{addr}\"\nzookeeper_four_letter_words = [\"*\"]\n"
            ));
        }
        out.push_str("\n[peers]\n");
        for (peer, addr) in peers {
            out.push_str(&format!("{peer} = \"{addr}\"\n"));
        }
        if !zookeeper.is_empty() {
            out.push_str("\n[zookeeper_servers]\n");
            for (member, addr) in zookeeper {
                out.push_str(&format!("{member} = \"{addr}\"\n"));
            }
        }
        out.push_str(&format!(
            "\n[tls]\nca = {}\ncert = {}\nkey = {}\n",
            quote(&tls.ca),
            quote(&tls.cert),
            quote(&tls.key)
        ));
        out.push_str(&format!(
            "\n[timing]\ntick_ms = {}\nelection_ticks = {}\nheartbeat_ticks = {}\nsession_timeout_min_ms = {}\nsession_timeout_max_ms = {}\n",
            timing.tick_ms,
            timing.election_ticks,
            timing.heartbeat_ticks,
            timing.session_timeout_min_ms,
            timing.session_timeout_max_ms
        ));
        out
    }
}

/// A path as a TOML string.
fn quote(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

enum Problem {
    Parse(String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = 1
listen = "127.0.0.1:7001"
data_dir = "data/n1"
[peers]
2 = "127.0.0.1:7002"
3 = "127.0.0.1:7003"
[tls]
ca = "certs/ca.pem"
cert = "certs/n1.pem"
key = "certs/n1.key"
"#;

    fn problem(text: &str) -> String {
        match NodeConfig::parse(text, Path::new("/etc/warren")) {
            Ok(_) => panic!("accepted: {text}"),
            Err(Problem::Parse(why) | Problem::Invalid(why)) => why,
        }
    }

    #[test]
    fn a_good_file_resolves_paths_and_defaults() {
        // Proves a minimal file parses, relative paths resolve against the
        // file's directory, and timing and limits take their defaults.
        let c = NodeConfig::parse(GOOD, Path::new("/etc/warren")).unwrap_or_else(|_| panic!());
        assert_eq!(c.id, 1);
        assert_eq!(c.members(), [1, 2, 3]);
        assert_eq!(c.data_dir, Path::new("/etc/warren/data/n1"));
        assert_eq!(c.tls.key, Path::new("/etc/warren/certs/n1.key"));
        assert_eq!(c.timing, Timing::default());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.zookeeper, ZooKeeperConfig::default());
        assert_eq!(c.zookeeper.four_letter_words, ["srvr"]);
    }

    #[test]
    fn mistakes_are_named() {
        // Proves each kind of mistake is refused with a message naming it.
        assert!(problem(&GOOD.replace("id = 1", "id = 0")).contains("id is 0"));
        assert!(problem(&GOOD.replace("2 = ", "1 = ")).contains("own id 1"));
        assert!(problem(&GOOD.replace("2 = ", "two = ")).contains("not a node id"));
        assert!(problem(&GOOD.replace("7003", "7002")).contains("share the address"));
        assert!(problem(&GOOD.replace("7002", "7001")).contains("own listen address"));
        assert!(problem(&GOOD.replace("127.0.0.1:7001", "nowhere")).contains("socket address"));
        assert!(problem(&format!("{GOOD}\n[timing]\ntick_ms = 0\n")).contains("tick_ms"));
        assert!(
            problem(&format!("{GOOD}\n[timing]\nheartbeat_ticks = 10\n")).contains("heartbeat")
        );
        assert!(problem(&format!("{GOOD}\nsurprise = 1\n")).contains("surprise"));
        assert!(problem(&GOOD.replace("[tls]", "[tlz]")).contains("tls"));
        let words =
            GOOD.replace("[peers]", "zookeeper_four_letter_words = [\"ruok\", \"kill\"]\n[peers]");
        assert!(problem(&words).contains("\"kill\""));
        let digest = GOOD.replace("[peers]", "superuser_digest = \"super\"\n[peers]");
        assert!(problem(&digest).contains("superuser_digest"));
    }

    #[test]
    fn render_writes_what_parse_reads() {
        // Proves a rendered configuration parses back to the same values.
        let c = NodeConfig::parse(GOOD, Path::new("/etc/warren")).unwrap_or_else(|_| panic!());
        let zk: BTreeMap<u64, SocketAddr> = (1..=3)
            .map(|i| (i, format!("127.0.0.1:218{i}").parse().unwrap_or_else(|_| panic!())))
            .collect();
        let text =
            NodeConfig::render(c.id, c.listen, &c.data_dir, &c.peers, &c.tls, &c.timing, &zk);
        let back = NodeConfig::parse(&text, Path::new("/elsewhere")).unwrap_or_else(|_| panic!());
        assert_eq!((back.id, back.listen, &back.peers), (c.id, c.listen, &c.peers));
        assert_eq!(back.zookeeper.listen, zk.get(&1).copied());
        assert_eq!(back.zookeeper.servers, zk);
        assert_eq!(back.zookeeper.four_letter_words, ["*"]);
        assert_eq!((&back.data_dir, &back.tls.cert), (&c.data_dir, &c.tls.cert));
        assert_eq!(back.timing, c.timing);
    }
}
