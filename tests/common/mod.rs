//! The end-to-end harness: a real cluster of `warren serve` processes on
//! loopback, with real QUIC, TLS and fjall directories, prepared the way
//! `warren dev` prepares one (certificates, one config per node, a client
//! config), and clients of the real client library.

#![allow(dead_code)]

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
        let files = dev::prepare(&dir.0, n, &free_addrs(n), &test_timing()).expect("prepare");
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
