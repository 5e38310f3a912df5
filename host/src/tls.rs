//! Mutual TLS for peer and client connections: issuing the cluster's
//! certificates into a certs directory, building the rustls and quinn
//! configurations from them, and naming who is on the other end of a
//! connection. It knows nothing of frames or of what a connection carries.
//!
//! The naming is fixed. Node `N` is `nN`: its certificate has CN `nN`, DNS
//! names `nN.warren` and `warren`, both server and client EKUs, and is signed
//! by the cluster CA. Peers dial node `N` as `nN.warren` with [`ALPN_PEER`];
//! clients dial any node as `warren` with [`ALPN_CLIENT`]. A client's
//! certificate has only its CN and the client EKU, and the identity ACLs see
//! is its subject DN, `CN=admin`. A certs directory `D` holds `D/ca.pem`,
//! `D/ca.key`, and `D/NAME.pem` + `D/NAME.key` for each node and client.
//!
//! Drive [`Tls`] like this: [`Tls::load`] once; hand
//! [`Tls::server_config`] to the endpoint and use
//! [`Tls::peer_client_config`] to connect;
//! after the files change, [`Tls::reload`] and then
//! `endpoint.set_server_config(Some(tls.server_config()))`. After a
//! handshake, [`peer_node_id`] or [`peer_identity`] says who connected.
//! TLS 1.3 resumption is off on both sides, so every connection shows the
//! certificate its peer holds now, never one from an earlier session.

use crate::limits::{CLIENT_NAME_BYTES_MAX, CONNECTION_IDLE_MS_MAX};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore, SignatureScheme};
use thiserror::Error;
use x509_parser::error::X509Error;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub use warren_client::proto::wire::ALPN_CLIENT;

/// ALPN of connections between nodes.
pub const ALPN_PEER: &[u8] = b"warren-peer/1";

/// The server name clients dial, whichever node they reach.
pub const CLUSTER_SERVER_NAME: &str = "warren";

/// Keep-alive on every connection: a vanished peer is noticed by the idle
/// timeout (`limits::CONNECTION_IDLE_MS_MAX`), and five keep-alives fit in
/// it, so a few lost packets do not end a healthy link.
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The CA outlives many rotations of the certificates it signs.
const CA_VALIDITY_DAYS: i64 = 3650;

/// Node and client certificates are rotated with a new issue plus
/// [`Tls::reload`]; a year bounds the life of a leaked key.
const LEAF_VALIDITY_DAYS: i64 = 365;

/// Everything that can go wrong issuing, loading or checking certificates.
/// Each message names the file or thing and the next step.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error(
        "{} does not exist; create the certificates with `warren certs init` \
         (or `warren certs add-client NAME` for a client)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}; check the file's permissions", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} already exists; choose another --dir, or move the old file away first",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error("cannot write {}: {source}; check that the directory is writable", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{} is not a valid PEM {what} ({source}); restore it or issue a new one with `warren certs`",
        path.display()
    )]
    Pem { path: PathBuf, what: &'static str, source: pem::Error },
    #[error(
        "{} holds no {what}; restore it or issue a new one with `warren certs`",
        path.display()
    )]
    NoPem { path: PathBuf, what: &'static str },
    #[error(
        "{} is not a usable private key ({source}); restore it or issue a new pair with `warren certs`",
        path.display()
    )]
    BadKey { path: PathBuf, source: rustls::Error },
    #[error(
        "{} is not a usable certificate ({source}); restore it or issue a new one with `warren certs`",
        path.display()
    )]
    BadCert { path: PathBuf, source: X509Error },
    #[error(
        "{} is not a usable CA certificate ({source}); restore the cluster's ca.pem",
        path.display()
    )]
    BadCa { path: PathBuf, source: rustls::Error },
    #[error(
        "{} cannot sign certificates ({source}); restore the cluster's ca.pem and ca.key",
        path.display()
    )]
    CaUnusable { path: PathBuf, source: rcgen::Error },
    #[error(
        "the key {} does not belong to the certificate {}; put back the key issued with it",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "{} is not a valid certificate of the CA in {} ({source}); issue a new one from that CA \
         with `warren certs`",
        cert.display(),
        ca.display()
    )]
    NotTrusted { cert: PathBuf, ca: PathBuf, source: rustls::Error },
    #[error("invalid client name {name:?}: {reason}; pick another name")]
    BadClientName { name: String, reason: &'static str },
    #[error("invalid node id {id}: node ids start at 1 (n1, n2, ...)")]
    BadNodeId { id: u64 },
    #[error("{name} is listed twice; list each node and client once")]
    Duplicate { name: String },
    #[error("cannot issue the certificate for {name} ({source}); this is a bug, please report it")]
    Issue { name: String, source: rcgen::Error },
    #[error("the peer presented no certificate; it must connect with one from `warren certs`")]
    NoPeerCertificate,
    #[error(
        "the peer's certificate cannot be parsed ({source}); it must use one from `warren certs`"
    )]
    PeerCertificate { source: X509Error },
    #[error(
        "the peer's certificate names no single node (its DNS names: {dns_names:?}); peers must \
         present a node certificate from `warren certs init`"
    )]
    NotANode { dns_names: Vec<String> },
}

/// Creates a new cluster CA in `dir` and certificates for `nodes` and
/// `clients` signed by it. Refuses to overwrite anything: if `dir/ca.pem`
/// (or any other file it would write) exists, nothing is written. Returns
/// the files written.
pub fn init_certs(dir: &Path, nodes: &[u64], clients: &[&str]) -> Result<Vec<PathBuf>, TlsError> {
    let mut names: Vec<String> = Vec::new();
    for &id in nodes {
        check_node_id(id)?;
        names.push(node_name(id));
    }
    for &client in clients {
        check_client_name(client)?;
        names.push(client.to_owned());
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(TlsError::Duplicate { name: name.clone() });
        }
    }
    let ca = new_ca()?;
    let mut files = vec![
        Pending::cert(dir.join("ca.pem"), ca.pem()),
        Pending::key(dir.join("ca.key"), ca.key().serialize_pem()),
    ];
    for &id in nodes {
        files.extend(issue_node(&ca, dir, id)?);
    }
    for &client in clients {
        files.extend(issue_client(&ca, dir, client)?);
    }
    write_new(dir, &files)
}

/// Issues a client certificate `dir/NAME.pem` + `dir/NAME.key` from the CA
/// in `dir`. Refuses if `NAME.pem` or `NAME.key` exists. Returns the files
/// written.
pub fn add_client(dir: &Path, name: &str) -> Result<Vec<PathBuf>, TlsError> {
    check_client_name(name)?;
    let ca = load_ca(dir)?;
    write_new(dir, &issue_client(&ca, dir, name)?)
}

/// Issues a node certificate `dir/nID.pem` + `dir/nID.key` from the CA in
/// `dir` (to grow a cluster). Refuses if either file exists. Returns the
/// files written.
pub fn add_node(dir: &Path, id: u64) -> Result<Vec<PathBuf>, TlsError> {
    check_node_id(id)?;
    let ca = load_ca(dir)?;
    write_new(dir, &issue_node(&ca, dir, id)?)
}

/// The id in a node name: `"n3"` is 3. Ids start at 1 and are written
/// without leading zeros, so each node has exactly one name.
pub fn parse_node_name(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('n')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Node `id`'s name, `nID`: its certificate's CN and file stem.
pub fn node_name(id: u64) -> String {
    format!("n{id}")
}

/// The server name peers dial node `id` by, `nID.warren`.
pub fn node_server_name(id: u64) -> String {
    format!("n{id}.{CLUSTER_SERVER_NAME}")
}

/// The three files one process's TLS is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate(s): the only roots trusted.
    pub ca: PathBuf,
    /// This process's certificate, leaf first.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Node `id`'s files in the certs directory `dir`.
    pub fn node(dir: &Path, id: u64) -> TlsFiles {
        TlsFiles::named(dir, &node_name(id))
    }

    /// Client `name`'s files in the certs directory `dir`.
    pub fn client(dir: &Path, name: &str) -> TlsFiles {
        TlsFiles::named(dir, name)
    }

    fn named(dir: &Path, stem: &str) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        }
    }
}

/// One process's TLS: the CA roots and its own certificate, both
/// replaceable while it runs. Client processes use the client library's
/// `warren_client::tls::client_config` instead.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    trust: RwLock<Trust>,
    identity: Arc<ReloadableCert>,
}

impl Tls {
    /// Reads the CA, certificate and key, and checks that the key belongs
    /// to the certificate and that the certificate is valid under the CA
    /// now (as a client, and as a server for each DNS name it carries).
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (trust, key) = load_parts(files, &provider)?;
        Ok(Tls {
            files: files.clone(),
            provider,
            trust: RwLock::new(trust),
            identity: Arc::new(ReloadableCert(RwLock::new(Arc::new(key)))),
        })
    }

    /// Reads the files again, checked as in [`Tls::load`]. On success new
    /// handshakes present the new certificate at once (the resolver is
    /// shared with every configuration handed out), and configurations
    /// built from now on trust the new CA file: pass a fresh
    /// [`Tls::server_config`] to `Endpoint::set_server_config`. On error
    /// nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (trust, key) = load_parts(&self.files, &self.provider)?;
        *self.trust.write().unwrap_or_else(PoisonError::into_inner) = trust;
        self.identity.set(key);
        Ok(())
    }

    /// The files this was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate presented to new handshakes.
    pub fn certificate(&self) -> CertificateDer<'static> {
        // A CertifiedKey is only built from a non-empty chain (read_certs).
        self.identity.current().cert[0].clone()
    }

    /// The accepting side: TLS 1.3 only, a client certificate chained to
    /// the CA required, ALPN [`ALPN_PEER`] or [`ALPN_CLIENT`], no session
    /// tickets (so no resumption), and the keep-alive and idle timeout.
    pub fn server_config(&self) -> quinn::ServerConfig {
        let trust = self.trust();
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            // ring's default provider has TLS 1.3 suites and key exchanges.
            .expect("ring supports TLS 1.3")
            .with_client_cert_verifier(trust.client_verifier)
            .with_cert_resolver(self.identity.clone());
        tls.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
        tls.send_tls13_tickets = 0;
        // The conversion needs TLS13_AES_128_GCM_SHA256, which ring has,
        // and max_early_data_size 0, the default kept above.
        let crypto = QuicServerConfig::try_from(tls).expect("ring has QUIC's initial suite");
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config());
        config
    }

    /// The ZooKeeper port's TLS over TCP (`zookeeper_tls_listen`): TLS
    /// 1.3, this node's certificate, and a client certificate chained to
    /// the CA required (`need`), checked if given (`want`) or not asked for
    /// (`none`). No ALPN: ZooKeeper's clients send none.
    pub fn tcp_server_config(&self, client_auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        let trust = self.trust();
        let verifier = match client_auth {
            ClientAuth::Need => trust.client_verifier,
            ClientAuth::Want => trust.optional_client_verifier,
            ClientAuth::None => rustls::server::WebPkiClientVerifier::no_client_auth(),
        };
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            // ring's default provider has TLS 1.3 suites and key exchanges.
            .expect("ring supports TLS 1.3")
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.identity.clone());
        tls.send_tls13_tickets = 0;
        Arc::new(tls)
    }

    /// Dialling another node, with [`ALPN_PEER`] and server name
    /// [`node_server_name`]`(id)`.
    pub fn peer_client_config(&self) -> quinn::ClientConfig {
        self.client_config(ALPN_PEER)
    }

    fn client_config(&self, alpn: &[u8]) -> quinn::ClientConfig {
        let trust = self.trust();
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            // ring's default provider has TLS 1.3 suites and key exchanges.
            .expect("ring supports TLS 1.3")
            .with_webpki_verifier(trust.server_verifier)
            .with_client_cert_resolver(self.identity.clone());
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.resumption = Resumption::disabled();
        // The conversion needs TLS13_AES_128_GCM_SHA256, which ring has.
        let crypto = QuicClientConfig::try_from(tls).expect("ring has QUIC's initial suite");
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config());
        config
    }

    fn trust(&self) -> Trust {
        self.trust.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Whether a TLS port asks its clients for a certificate (ZooKeeper's
/// `ssl.clientAuth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A certificate chained to the cluster CA is required.
    #[default]
    Need,
    /// Asked for and checked if given; a client without one connects.
    Want,
    /// Not asked for.
    None,
}

/// The names in a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertNames {
    /// The subject DN as ACLs see it, e.g. `CN=admin`.
    pub subject: String,
    /// The DNS subject alternative names, in order.
    pub dns_names: Vec<String>,
}

impl CertNames {
    /// The node id of a node certificate: exactly one DNS name `nN.warren`.
    pub fn node_id(&self) -> Result<u64, TlsError> {
        let mut ids = self.dns_names.iter().filter_map(|dns| {
            dns.strip_suffix(CLUSTER_SERVER_NAME)?.strip_suffix('.').and_then(parse_node_name)
        });
        match (ids.next(), ids.next()) {
            (Some(id), None) => Ok(id),
            _ => Err(TlsError::NotANode { dns_names: self.dns_names.clone() }),
        }
    }
}

/// The names in a DER certificate. Trust them only for a certificate that
/// a handshake (or [`Tls::load`]) verified.
pub fn names_from_der(der: &[u8]) -> Result<CertNames, TlsError> {
    parse_names(der).map_err(|source| TlsError::PeerCertificate { source })
}

/// The certificate the other end of an established connection presented
/// (the client's on the accepting side, the server's on the dialling side).
pub fn peer_certificate(conn: &quinn::Connection) -> Result<CertificateDer<'static>, TlsError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoPeerCertificate)?;
    chain.into_iter().next().ok_or(TlsError::NoPeerCertificate)
}

/// The node id of the other end, from its verified node certificate.
/// Fails for client certificates, which carry no DNS names.
pub fn peer_node_id(conn: &quinn::Connection) -> Result<u64, TlsError> {
    names_from_der(&peer_certificate(conn)?)?.node_id()
}

/// The identity for x509 ACLs of a verified client certificate: its
/// subject DN, e.g. `CN=admin`.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    Ok(names_from_der(cert)?.subject)
}

/// The other end's identity for x509 ACLs: its subject DN, e.g. `CN=admin`.
pub fn peer_identity(conn: &quinn::Connection) -> Result<String, TlsError> {
    Ok(names_from_der(&peer_certificate(conn)?)?.subject)
}

/// The ALPN protocol the handshake agreed on, on either side.
pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?.downcast::<HandshakeData>().ok()?.protocol
}

// ---- loading ------------------------------------------------------------

/// What a handshake checks peers against; rebuilt whenever the CA file is
/// read.
#[derive(Clone, Debug)]
struct Trust {
    client_verifier: Arc<dyn ClientCertVerifier>,
    /// The same, but a client may also present no certificate.
    optional_client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

/// Reads and checks all three files; see [`Tls::load`].
fn load_parts(
    files: &TlsFiles,
    provider: &Arc<CryptoProvider>,
) -> Result<(Trust, CertifiedKey), TlsError> {
    let trust = read_trust(&files.ca, provider)?;
    let chain = read_certs(&files.cert)?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|source| TlsError::Pem { path: files.key.clone(), what: "private key", source })?;
    let key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|source| TlsError::BadKey { path: files.key.clone(), source })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // Unknown: the key cannot show its public half; the handshake will
        // fail instead if they differ. ring's keys always can.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() });
        }
    }
    check_trusted(&trust, &certified.cert, files)?;
    Ok((trust, certified))
}

fn read_trust(ca: &Path, provider: &Arc<CryptoProvider>) -> Result<Trust, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|source| TlsError::BadCa { path: ca.to_owned(), source })?;
    }
    let roots = Arc::new(roots);
    // Both builders fail only without roots (read_certs returned at least
    // one, and add succeeded) or on bad CRLs (none are given).
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .expect("roots are non-empty and no CRLs are given");
    let optional_client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .allow_unauthenticated()
            .build()
            .expect("roots are non-empty and no CRLs are given");
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .expect("roots are non-empty and no CRLs are given");
    Ok(Trust { client_verifier, optional_client_verifier, server_verifier })
}

/// Verifies our own chain as the peers will, so a certificate from another
/// CA, an expired one, or one lacking an EKU is an error at load instead
/// of a refused handshake later.
fn check_trusted(
    trust: &Trust,
    chain: &[CertificateDer<'static>],
    files: &TlsFiles,
) -> Result<(), TlsError> {
    let not_trusted =
        |source| TlsError::NotTrusted { cert: files.cert.clone(), ca: files.ca.clone(), source };
    let (leaf, intermediates) = (&chain[0], &chain[1..]);
    let now = UnixTime::now();
    trust.client_verifier.verify_client_cert(leaf, intermediates, now).map_err(not_trusted)?;
    let names = parse_names(leaf)
        .map_err(|source| TlsError::BadCert { path: files.cert.clone(), source })?;
    for dns in &names.dns_names {
        // A name that is no valid DNS name could never be dialled; webpki
        // ignores it too.
        let Ok(server_name) = ServerName::try_from(dns.as_str()) else { continue };
        trust
            .server_verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], now)
            .map_err(not_trusted)?;
    }
    Ok(())
}

/// The certificates in a PEM file, at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "certificate";
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_owned(), what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem { path: path.to_owned(), what });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => TlsError::Missing { path: path.to_owned() },
        _ => TlsError::Read { path: path.to_owned(), source },
    })
}

fn parse_names(der: &[u8]) -> Result<CertNames, X509Error> {
    let (_, cert) = X509Certificate::from_der(der).map_err(nom_error)?;
    let mut dns_names = Vec::new();
    if let Some(san) = cert.subject_alternative_name()? {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                dns_names.push((*dns).to_owned());
            }
        }
    }
    Ok(CertNames { subject: cert.subject().to_string(), dns_names })
}

fn nom_error(e: x509_parser::nom::Err<X509Error>) -> X509Error {
    match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
        x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
    }
}

/// Our identity, swappable while handshakes go on. It resolves for both
/// sides; each handshake asks once, so [`ReloadableCert::set`] affects only
/// handshakes that start after it.
#[derive(Debug)]
struct ReloadableCert(RwLock<Arc<CertifiedKey>>);

impl ReloadableCert {
    fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadableCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(CONNECTION_IDLE_MS_MAX).into()));
    Arc::new(transport)
}

// ---- issuing ------------------------------------------------------------

fn check_node_id(id: u64) -> Result<(), TlsError> {
    if id == 0 {
        return Err(TlsError::BadNodeId { id });
    }
    Ok(())
}

fn check_client_name(name: &str) -> Result<(), TlsError> {
    let is_node_like = |s: &str| {
        // Case-insensitively: on case-insensitive file systems N1.pem is n1.pem.
        s.strip_prefix(['n', 'N'])
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > CLIENT_NAME_BYTES_MAX {
        "it is longer than 64 bytes, X.509's limit for a common name"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        "it may hold only letters, digits, '.', '_' and '-'"
    } else if name.starts_with('.') {
        "it may not start with '.'"
    } else if is_node_like(name) {
        "names of the form n<digits> are reserved for nodes"
    } else if name.eq_ignore_ascii_case("ca") {
        "ca is the name of the cluster CA's files"
    } else {
        return Ok(());
    };
    Err(TlsError::BadClientName { name: name.to_owned(), reason })
}

/// A file to write: its path, its PEM text, and whether it is secret.
struct Pending {
    path: PathBuf,
    contents: String,
    secret: bool,
}

impl Pending {
    fn cert(path: PathBuf, contents: String) -> Pending {
        Pending { path, contents, secret: false }
    }

    fn key(path: PathBuf, contents: String) -> Pending {
        Pending { path, contents, secret: true }
    }
}

fn new_ca() -> Result<CertifiedIssuer<'static, KeyPair>, TlsError> {
    let name = "the cluster CA";
    let issue = |source| TlsError::Issue { name: name.to_owned(), source };
    let mut params = base_params("Warren cluster CA", CA_VALIDITY_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(issue)?;
    CertifiedIssuer::self_signed(params, key).map_err(issue)
}

/// Reads `dir/ca.pem` and `dir/ca.key`, checking that they belong together.
fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let cert_der = read_certs(&cert_path)?.swap_remove(0);
    let key_pem = String::from_utf8_lossy(&read(&key_path)?).into_owned();
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|source| TlsError::CaUnusable { path: key_path.clone(), source })?;
    let (_, cert) = X509Certificate::from_der(&cert_der)
        .map_err(|e| TlsError::BadCert { path: cert_path.clone(), source: nom_error(e) })?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(TlsError::KeyMismatch { cert: cert_path, key: key_path });
    }
    Issuer::from_ca_cert_der(&cert_der, key)
        .map_err(|source| TlsError::CaUnusable { path: cert_path, source })
}

fn issue_node(ca: &Issuer<'_, KeyPair>, dir: &Path, id: u64) -> Result<[Pending; 2], TlsError> {
    let name = node_name(id);
    let issue = |source| TlsError::Issue { name: name.clone(), source };
    let mut params = base_params(&name, LEAF_VALIDITY_DAYS);
    params.subject_alt_names = vec![
        SanType::DnsName(node_server_name(id).try_into().map_err(issue)?),
        SanType::DnsName(CLUSTER_SERVER_NAME.try_into().map_err(issue)?),
    ];
    // Nodes both accept and dial, so peers check both EKUs.
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    issue_leaf(ca, dir, &name, params)
}

fn issue_client(
    ca: &Issuer<'_, KeyPair>,
    dir: &Path,
    name: &str,
) -> Result<[Pending; 2], TlsError> {
    let mut params = base_params(name, LEAF_VALIDITY_DAYS);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue_leaf(ca, dir, name, params)
}

fn issue_leaf(
    ca: &Issuer<'_, KeyPair>,
    dir: &Path,
    name: &str,
    mut params: CertificateParams,
) -> Result<[Pending; 2], TlsError> {
    let issue = |source| TlsError::Issue { name: name.to_owned(), source };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(issue)?;
    let cert = params.signed_by(&key, ca).map_err(issue)?;
    Ok([
        Pending::cert(dir.join(format!("{name}.pem")), cert.pem()),
        Pending::key(dir.join(format!("{name}.key")), key.serialize_pem()),
    ])
}

fn base_params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    // rcgen's defaults are CN "rcgen self signed cert" and 1975..4096.
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    let now = time::OffsetDateTime::now_utc();
    // An hour back absorbs clock skew between the issuing machine and nodes.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    params
}

/// Writes every file, refusing first if any exists; keys get mode 0600 on
/// unix. All or nothing: if one write fails, the files this call created
/// are removed, so the command can simply be run again. Returns the paths
/// written.
fn write_new(dir: &Path, files: &[Pending]) -> Result<Vec<PathBuf>, TlsError> {
    create_dir(dir)?;
    for file in files {
        if fs::symlink_metadata(&file.path).is_ok() {
            return Err(TlsError::Exists { path: file.path.clone() });
        }
    }
    for (i, file) in files.iter().enumerate() {
        if let Err(error) = write_file(file) {
            // An Exists error means the file is someone else's: keep it.
            let created = if matches!(error, TlsError::Exists { .. }) { i } else { i + 1 };
            for done in &files[..created] {
                let _ = fs::remove_file(&done.path);
            }
            return Err(error);
        }
    }
    Ok(files.iter().map(|file| file.path.clone()).collect())
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        // The directory holds the CA's key.
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })
}

fn write_file(file: &Pending) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    // create_new: a file that appeared since the check is still refused.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if file.secret {
            options.mode(0o600);
        }
    }
    let write_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => TlsError::Exists { path: file.path.clone() },
        _ => TlsError::Write { path: file.path.clone(), source },
    };
    let mut out = options.open(&file.path).map_err(write_error)?;
    out.write_all(file.contents.as_bytes()).map_err(write_error)?;
    out.sync_all().map_err(write_error)
}
