//! The client configuration file (`client.toml`): the servers to try and
//! the certificate to present. Relative paths are relative to the file.
//!
//! ```toml
//! servers = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
//! session_timeout_ms = 10000
//! [tls]
//! ca = "certs/ca.pem"
//! cert = "certs/admin.pem"
//! key = "certs/admin.key"
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why a client configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(
        "cannot read the client configuration {path}: {source}; check the path (or WARREN_CONFIG)"
    )]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the client configuration {path} is not valid: {why}")]
    Invalid { path: PathBuf, why: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    servers: Vec<SocketAddr>,
    #[serde(default = "default_timeout")]
    session_timeout_ms: u32,
    #[serde(default = "default_request_timeout")]
    request_timeout_ms: u64,
    #[serde(default = "default_shuffle")]
    shuffle: bool,
    tls: TlsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn default_timeout() -> u32 {
    10_000
}

fn default_request_timeout() -> u64 {
    30_000
}

fn default_shuffle() -> bool {
    true
}

/// Where to connect and as whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    pub servers: Vec<SocketAddr>,
    /// The session timeout to ask for (the server clamps it to its range).
    pub session_timeout: Duration,
    /// How long a request may wait for its answer, reconnections included.
    pub request_timeout: Duration,
    /// Start at a random server of the list (spreading clients, as
    /// ZooKeeper's clients do), or at the first.
    pub shuffle: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let invalid = |why: String| ConfigError::Invalid { path: path.to_owned(), why };
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        if file.servers.is_empty() {
            return Err(invalid("servers is empty; list at least one server address".into()));
        }
        if file.session_timeout_ms == 0 {
            return Err(invalid("session_timeout_ms is 0; leave it out for 10000".into()));
        }
        if file.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms is 0; leave it out for 30000".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        Ok(ClientConfig {
            servers: file.servers,
            session_timeout: Duration::from_millis(file.session_timeout_ms.into()),
            request_timeout: Duration::from_millis(file.request_timeout_ms),
            shuffle: file.shuffle,
            ca: resolve(&file.tls.ca),
            cert: resolve(&file.tls.cert),
            key: resolve(&file.tls.key),
        })
    }

    /// The file text for a configuration (for `warren dev`).
    pub fn render(servers: &[SocketAddr], ca: &Path, cert: &Path, key: &Path) -> String {
        let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "servers = [{}]\nsession_timeout_ms = {}\n\n[tls]\nca = {}\ncert = {}\nkey = {}\n",
            servers.join(", "),
            default_timeout(),
            quote(ca),
            quote(cert),
            quote(key)
        )
    }
}
