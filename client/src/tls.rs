//! The client side of mutual TLS: trust only the cluster CA, present the
//! client's certificate, speak `warren-client/1`. Servers are checked
//! against the name every node certificate carries (`warren`).

use crate::proto::wire::ALPN_CLIENT;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// The server name every node certificate carries for clients.
pub const SERVER_NAME: &str = "warren";

/// Why the client's TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {why}; check the tls paths in the client configuration")]
    File { path: String, why: String },
    #[error("{path} holds no certificate; point tls.{field} at a PEM certificate")]
    Empty { path: String, field: &'static str },
    #[error("the TLS configuration is not usable: {0}")]
    Config(String),
}

fn file_error(path: &Path, why: impl ToString) -> TlsError {
    TlsError::File { path: path.display().to_string(), why: why.to_string() }
}

/// A QUIC client configuration for client connections.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<quinn::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .map_err(|e| file_error(ca, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(ca, e))?;
    if cas.is_empty() {
        return Err(TlsError::Empty { path: ca.display().to_string(), field: "ca" });
    }
    for c in cas {
        roots.add(c).map_err(|e| file_error(ca, e))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Empty { path: cert.display().to_string(), field: "cert" });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| TlsError::Config(format!("{e} (does the key match the certificate?)")))?;
    tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(10_000).into()));
    config.transport_config(Arc::new(transport));
    Ok(config)
}
