//! The end-to-end harness: a real cluster of `warren serve` processes on
//! loopback, with real QUIC, TLS and fjall directories, prepared the way
//! `warren dev` prepares one (certificates, one config per node, a client
//! config), and clients of the real client library.

#![allow(dead_code)]

pub mod zk;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use warren::dev::{self, DevCluster};
use warren::node::Timing;
use warren_client::{Client, ClientConfig};

/// Fast timing for tests: elections within about a second.
pub fn test_timing() -> Timing {
    Timing {
        tick_ms: 50,
        election_ticks: 10,
        heartbeat_ticks: 1,
        session_timeout_min_ms: 1_000,
        session_timeout_max_ms: 30_000,
    }
}

/// A temporary directory, removed on drop unless the test failed (then it
/// stays, with every node's log, and its path is printed).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("warren-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster files and logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Free TCP ports on loopback (for ZooKeeper listeners; bound and
/// released, as [`free_addrs`]).
pub fn free_tcp_addrs(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    sockets.iter().map(|s| s.local_addr().expect("local address")).collect()
}

/// Free UDP ports on loopback (bound and released; a race with another
/// process is possible but unlikely on a test machine).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<UdpSocket> =
        (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a free port")).collect();
    sockets.iter().map(|s| s.local_addr().expect("local address")).collect()
}

pub struct Cluster {
    pub files: DevCluster,
    pub procs: Vec<Option<Child>>,
    // Last: removed after the processes are killed.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts an `n`-node cluster.
    pub fn start(name: &str, n: usize) -> Cluster {
        let dir = TempDir::new(name);
        let files = dev::prepare(&dir.0, n, &free_addrs(n), &test_timing(), &free_tcp_addrs(n))
            .expect("prepare");
        let mut cluster = Cluster { files, procs: (0..n).map(|_| None).collect(), dir };
        for id in 1..=n as u64 {
            cluster.restart(id);
        }
        cluster
    }

    pub fn exe() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_warren"))
    }

    pub fn restart(&mut self, id: u64) {
        let child = self.files.spawn(&Cluster::exe(), id).expect("spawn a node");
        self.procs[(id - 1) as usize] = Some(child);
    }

    /// Restarts node `id` with these environment variables.
    pub fn restart_with(&mut self, id: u64, env: &[(&str, &str)]) {
        let child = self.files.spawn_with(&Cluster::exe(), id, env).expect("spawn a node");
        self.procs[(id - 1) as usize] = Some(child);
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.procs[(id - 1) as usize].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::load(&self.files.client_config).expect("client config")
    }

    /// A client configuration that talks to one node only.
    pub fn config_for(&self, id: u64) -> ClientConfig {
        let mut config = self.client_config();
        config.servers = vec![self.files.nodes[&id].1];
        config
    }

    pub async fn client(&self) -> Client {
        let config = self.client_config();
        retry(|| Client::connect(&config)).await
    }

    pub async fn client_of(&self, id: u64) -> Client {
        let config = self.config_for(id);
        retry(|| Client::connect(&config)).await
    }

    /// A client QUIC connection to node `id` with the admin certificate,
    /// for tests that speak the wire protocol themselves.
    pub async fn raw_connection(&self, id: u64) -> quinn::Connection {
        let config = self.config_for(id);
        let quic = warren_client::tls::client_config(&config.ca, &config.cert, &config.key)
            .expect("client tls");
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address"))
            .expect("a client endpoint");
        endpoint
            .connect_with(quic, config.servers[0], warren_client::tls::SERVER_NAME)
            .expect("connect")
            .await
            .expect("handshake")
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.files.dir.join(format!("n{id}.log"))).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.files.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=self.procs.len() as u64 {
            self.kill(id);
        }
    }
}

/// Retries a connection for up to 20 s (the cluster may still be electing).
pub async fn retry<F, Fut, T, E>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("gave up after 20 s: {e}"),
        }
    }
}

impl Cluster {
    /// Starts an `n`-node cluster whose node configuration files are first
    /// passed through `edit` (each file's text in, the text to write out).
    pub fn start_with(name: &str, n: usize, mut edit: impl FnMut(&str) -> String) -> Cluster {
        let dir = TempDir::new(name);
        let files = dev::prepare(&dir.0, n, &free_addrs(n), &test_timing(), &free_tcp_addrs(n))
            .expect("prepare");
        for (path, _) in files.nodes.values() {
            let text = std::fs::read_to_string(path).expect("read a node config");
            std::fs::write(path, edit(&text)).expect("write a node config");
        }
        let mut cluster = Cluster { files, procs: (0..n).map(|_| None).collect(), dir };
        for id in 1..=n as u64 {
            cluster.restart(id);
        }
        cluster
    }

    /// The certs directory every member and the admin client use.
    pub fn certs(&self) -> PathBuf {
        self.files.dir.join("certs")
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.files.dir.join("data").join(format!("n{id}"))
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.files.nodes[&id].1
    }

    /// The leader's id, as the member `via` reports it once it knows one
    /// (up to 20 s).
    pub async fn leader(&self, via: &Client) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = via.status().await
                && let Some(leader) = status.leader
            {
                return leader;
            }
            assert!(Instant::now() < deadline, "no leader within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 30 s) until every member in `ids` reports the same
    /// applied zxid and digest; returns them.
    pub async fn converged(&self, ids: &[u64]) -> (u64, u64) {
        let mut clients = Vec::new();
        for &id in ids {
            clients.push(self.client_of(id).await);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = std::collections::BTreeSet::new();
            let mut all_answered = true;
            for c in &clients {
                match c.status().await {
                    Ok(status) => {
                        seen.insert((status.applied.0, status.digest));
                    }
                    Err(_) => all_answered = false,
                }
            }
            if all_answered && seen.len() == 1 {
                return seen.into_iter().next().expect("one element");
            }
            assert!(Instant::now() < deadline, "members {ids:?} did not converge: {seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A node configuration's text with a top-level `key = value` line added
/// (top-level keys must come before the first `[section]`; this puts it
/// right after `data_dir`).
pub fn with_top_level(text: &str, line: &str) -> String {
    let mut out = String::new();
    let mut added = false;
    for l in text.lines() {
        out.push_str(l);
        out.push('\n');
        if !added && l.starts_with("data_dir") {
            out.push_str(line);
            out.push('\n');
            added = true;
        }
    }
    assert!(added, "no data_dir line in the node configuration:\n{text}");
    out
}

/// The indexes of the snapshot files (`<index>.snap`) in a node's data
/// directory, ascending.
pub fn snapshot_indexes(data_dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(data_dir.join("snapshots"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".snap")?.parse::<u64>().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}
