//! A local cluster for trying Warren out (`warren dev`) and for end-to-end
//! tests: certificates, one configuration file per node and one for
//! clients, all in one directory, and each node run as its own
//! `warren serve --config DIR/nI.toml` process. Run again on the same
//! directory, it reuses what is there, so the cluster resumes with its data.

use crate::node::{NodeConfig, Timing};
use crate::tls::{self, TlsFiles};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use thiserror::Error;
use warren_client::ClientConfig;

/// Why the local cluster could not be prepared or started.
#[derive(Debug, Error)]
pub enum DevError {
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot start node {id} ({exe}): {source}")]
    Spawn { id: u64, exe: PathBuf, source: std::io::Error },
    #[error(
        "{dir} holds a cluster of {found} nodes, not {asked}; use --nodes {found} or another --dir"
    )]
    Size { dir: PathBuf, found: usize, asked: usize },
    #[error("{0}")]
    Config(#[from] crate::node::ConfigError),
}

/// The files of a local cluster.
#[derive(Clone, Debug)]
pub struct DevCluster {
    pub dir: PathBuf,
    /// Node id → its configuration file and address.
    pub nodes: BTreeMap<u64, (PathBuf, SocketAddr)>,
    /// Node id → where it serves ZooKeeper clients (nodes that do).
    pub zookeeper: BTreeMap<u64, SocketAddr>,
    pub client_config: PathBuf,
}

/// Creates (or finds) a cluster of `n` nodes in `dir`, listening on
/// `addrs` (one per node) when new, and for ZooKeeper clients on
/// `zookeeper` (one per node, or none). Existing certificates and
/// configuration files are kept as they are.
pub fn prepare(
    dir: &Path,
    n: usize,
    addrs: &[SocketAddr],
    timing: &Timing,
    zookeeper: &[SocketAddr],
) -> Result<DevCluster, DevError> {
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text)
            .map_err(|source| DevError::Write { path: path.to_owned(), source })
    };
    std::fs::create_dir_all(dir)
        .map_err(|source| DevError::Write { path: dir.to_owned(), source })?;
    let dir =
        dir.canonicalize().map_err(|source| DevError::Write { path: dir.to_owned(), source })?;
    let certs = dir.join("certs");
    let ids: Vec<u64> = (1..=n as u64).collect();
    if !certs.join("ca.pem").exists() {
        tls::init_certs(&certs, &ids, &["admin"])?;
    }
    let existing = (1..).take_while(|i| dir.join(format!("n{i}.toml")).exists()).count();
    if existing > 0 && existing != n {
        return Err(DevError::Size { dir, found: existing, asked: n });
    }
    let zookeeper_servers: BTreeMap<u64, SocketAddr> =
        ids.iter().zip(zookeeper).map(|(&id, &addr)| (id, addr)).collect();
    let mut nodes = BTreeMap::new();
    let mut zookeeper_addrs = BTreeMap::new();
    for &id in &ids {
        let path = dir.join(format!("n{id}.toml"));
        if !path.exists() {
            let peers: BTreeMap<u64, SocketAddr> =
                ids.iter().filter(|&&p| p != id).map(|&p| (p, addrs[(p - 1) as usize])).collect();
            let text = NodeConfig::render(
                id,
                addrs[(id - 1) as usize],
                Path::new(&format!("data/n{id}")),
                &peers,
                &TlsFiles::node(Path::new("certs"), id),
                timing,
                &zookeeper_servers,
            );
            write(&path, &text)?;
        }
        let config = NodeConfig::load(&path)?;
        if let Some(addr) = config.zookeeper.listen {
            zookeeper_addrs.insert(id, addr);
        }
        nodes.insert(id, (path, config.listen));
    }
    let client_config = dir.join("client.toml");
    if !client_config.exists() {
        let servers: Vec<SocketAddr> = nodes.values().map(|(_, a)| *a).collect();
        let files = TlsFiles::client(Path::new("certs"), "admin");
        write(&client_config, &ClientConfig::render(&servers, &files.ca, &files.cert, &files.key))?;
    }
    Ok(DevCluster { dir, nodes, zookeeper: zookeeper_addrs, client_config })
}

impl DevCluster {
    /// Starts node `id` as `exe serve --config …`, its output appended to
    /// `DIR/nI.log` and its pid written to `DIR/nI.pid`.
    pub fn spawn(&self, exe: &Path, id: u64) -> Result<Child, DevError> {
        self.spawn_with(exe, id, &[])
    }

    /// [`DevCluster::spawn`], with these environment variables set for
    /// the node (`WARREN_LOG`, say).
    pub fn spawn_with(&self, exe: &Path, id: u64, env: &[(&str, &str)]) -> Result<Child, DevError> {
        let (config, _) = &self.nodes[&id];
        let log_path = self.dir.join(format!("n{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| DevError::Write { path: log_path.clone(), source })?;
        let err = log.try_clone().map_err(|source| DevError::Write { path: log_path, source })?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|source| DevError::Spawn { id, exe: exe.to_owned(), source })?;
        let pid_path = self.dir.join(format!("n{id}.pid"));
        std::fs::write(&pid_path, format!("{}\n", child.id()))
            .map_err(|source| DevError::Write { path: pid_path, source })?;
        Ok(child)
    }
}
