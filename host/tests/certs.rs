//! The TLS and certificate layer through its public interface: the files
//! `warren certs` writes and the checks made when loading them, and real
//! QUIC handshakes on 127.0.0.1 between endpoints built from them (who may
//! connect, what each side learns about the other, hot reload).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use warren::tls::{
    ALPN_CLIENT, ALPN_PEER, CertNames, Tls, TlsError, TlsFiles, add_client, add_node, init_certs,
    names_from_der, negotiated_alpn, parse_node_name, peer_certificate, peer_identity,
    peer_node_id,
};

/// How long one handshake (or one close) may take on loopback before the
/// test calls it hung; a successful run never waits this long.
const STEP: Duration = Duration::from_secs(2);

#[test]
fn init_writes_every_file_with_the_fixed_names() {
    // Proves init writes the CA plus a cert and key per node and client, keys
    // private, and that each certificate carries exactly the fixed names.
    let dir = TempDir::new();
    let written = init_certs(dir.path(), &[1, 2, 3], &["admin"]).expect("init");
    let expected: Vec<PathBuf> =
        ["ca.pem", "ca.key", "n1.pem", "n1.key", "n2.pem", "n2.key", "n3.pem", "n3.key"]
            .iter()
            .chain(&["admin.pem", "admin.key"])
            .map(|name| dir.path().join(name))
            .collect();
    assert_eq!(written, expected);
    for path in &written {
        assert!(path.is_file(), "{} was not written", path.display());
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "key") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
        }
    }

    let n2 = names(&dir.path().join("n2.pem"));
    assert_eq!(
        n2,
        CertNames {
            subject: "CN=n2".to_owned(),
            dns_names: vec!["n2.warren".to_owned(), "warren".to_owned()]
        }
    );
    assert_eq!(n2.node_id().expect("a node certificate"), 2);
    let admin = names(&dir.path().join("admin.pem"));
    assert_eq!(admin, CertNames { subject: "CN=admin".to_owned(), dns_names: vec![] });
    assert!(matches!(admin.node_id(), Err(TlsError::NotANode { .. })));

    // Loading checks each key against its cert and each cert against the CA.
    for files in [TlsFiles::node(dir.path(), 3), TlsFiles::client(dir.path(), "admin")] {
        Tls::load(&files).unwrap_or_else(|e| panic!("{files:?}: {e}"));
    }
}

#[test]
fn added_certificates_come_from_the_same_ca() {
    // Proves add_client and add_node sign with the CA in the directory: the
    // new certs load against that CA, and fail against another cluster's.
    let dir = TempDir::new();
    let other = TempDir::new();
    init_certs(dir.path(), &[1], &[]).expect("init");
    init_certs(other.path(), &[1], &[]).expect("init other");

    let written = add_client(dir.path(), "bob").expect("add client");
    assert_eq!(written, vec![dir.path().join("bob.pem"), dir.path().join("bob.key")]);
    let written = add_node(dir.path(), 4).expect("add node");
    assert_eq!(written, vec![dir.path().join("n4.pem"), dir.path().join("n4.key")]);
    assert_eq!(names(&dir.path().join("n4.pem")).node_id().unwrap(), 4);
    for files in [TlsFiles::client(dir.path(), "bob"), TlsFiles::node(dir.path(), 4)] {
        Tls::load(&files).unwrap_or_else(|e| panic!("{files:?}: {e}"));
        let foreign = TlsFiles { ca: other.path().join("ca.pem"), ..files };
        let error = Tls::load(&foreign).expect_err("a cert from another CA");
        assert!(matches!(error, TlsError::NotTrusted { .. }), "{error}");
    }
}

#[test]
fn nothing_is_overwritten() {
    // Proves init refuses a directory that already has a CA (writing nothing),
    // and add-client / add-node refuse names that already have files.
    let dir = TempDir::new();
    init_certs(dir.path(), &[1], &["admin"]).expect("init");
    let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();

    let error = init_certs(dir.path(), &[2], &[]).expect_err("second init");
    assert!(
        matches!(&error, TlsError::Exists { path } if *path == dir.path().join("ca.pem")),
        "{error}"
    );
    assert!(!dir.path().join("n2.pem").exists());
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_before);

    for error in
        [add_client(dir.path(), "admin").unwrap_err(), add_node(dir.path(), 1).unwrap_err()]
    {
        assert!(matches!(error, TlsError::Exists { .. }), "{error}");
    }
    let error = add_client(&dir.path().join("nowhere"), "bob").unwrap_err();
    assert!(matches!(error, TlsError::Missing { .. }), "{error}");
    assert!(error.to_string().contains("warren certs init"), "{error}");
}

#[test]
fn bad_names_are_refused() {
    // Proves node names parse only as n<id> with id >= 1, and that invalid,
    // reserved or repeated names are refused before anything is written.
    for (name, id) in [("n1", Some(1)), ("n42", Some(42)), ("n0", None), ("n01", None)]
        .into_iter()
        .chain([("n", None), ("1", None), ("N1", None), ("n1x", None), ("m1", None)])
        .chain([("n99999999999999999999", None), ("", None)])
    {
        assert_eq!(parse_node_name(name), id, "{name:?}");
    }

    let dir = TempDir::new();
    let long = "a".repeat(65);
    for name in
        ["", "n1", "N7", "n0", "ca", "CA", "a/b", "../x", ".hidden", "a b", "é", long.as_str()]
    {
        let error = init_certs(dir.path(), &[1], &[name]).expect_err(name);
        assert!(matches!(error, TlsError::BadClientName { .. }), "{name:?}: {error}");
    }
    let error = init_certs(dir.path(), &[0], &[]).unwrap_err();
    assert!(matches!(error, TlsError::BadNodeId { id: 0 }), "{error}");
    let repeated: [(&[u64], &[&str]); 2] = [(&[1, 1], &[]), (&[1], &["app", "app"])];
    for (nodes, clients) in repeated {
        let error = init_certs(dir.path(), nodes, clients).unwrap_err();
        assert!(matches!(error, TlsError::Duplicate { .. }), "{error}");
    }
    assert!(!dir.path().exists(), "a refused init wrote files");

    init_certs(dir.path(), &[1], &["ok.name_1-2"]).expect("a valid client name");
    let error = add_client(dir.path(), "n5").unwrap_err();
    assert!(matches!(error, TlsError::BadClientName { .. }), "{error}");
}

#[test]
fn a_node_certificate_names_exactly_one_node() {
    // Proves the node id comes from exactly one nN.warren DNS name: none, two,
    // or a malformed one is not a node, and the error lists what was found.
    let node_id = |dns: &[&str]| {
        let dns_names = dns.iter().map(|d| d.to_string()).collect();
        CertNames { subject: "CN=x".to_owned(), dns_names }.node_id()
    };
    assert_eq!(node_id(&["n7.warren", "warren"]).unwrap(), 7);
    assert_eq!(node_id(&["warren", "n7.warren"]).unwrap(), 7);
    for dns in [&[][..], &["warren"], &["n1.warren", "n2.warren"], &["n0.warren"], &["n1.other"]] {
        match node_id(dns) {
            Err(TlsError::NotANode { dns_names }) => assert_eq!(dns_names, dns),
            other => panic!("{dns:?}: {other:?}"),
        }
    }
    assert!(node_id(&["n1warren"]).is_err());
    assert!(node_id(&["xn1.warren"]).is_err());
}

#[test]
fn loading_explains_broken_files() {
    // Proves each broken set of files is refused at load with an error naming
    // the file: missing, not PEM, a key from another pair, another CA's cert.
    let dir = TempDir::new();
    let other = TempDir::new();
    init_certs(dir.path(), &[1, 2], &[]).expect("init");
    init_certs(other.path(), &[1], &[]).expect("init other");
    let n1 = TlsFiles::node(dir.path(), 1);

    let missing = TlsFiles { key: dir.path().join("n9.key"), ..n1.clone() };
    let error = Tls::load(&missing).unwrap_err();
    assert!(matches!(&error, TlsError::Missing { path } if *path == missing.key), "{error}");
    assert!(error.to_string().contains("warren certs init"), "{error}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let error = Tls::load(&TlsFiles { cert: garbage.clone(), ..n1.clone() }).unwrap_err();
    assert!(matches!(&error, TlsError::NoPem { path, .. } if *path == garbage), "{error}");
    let error = Tls::load(&TlsFiles { ca: garbage.clone(), ..n1.clone() }).unwrap_err();
    assert!(matches!(&error, TlsError::NoPem { path, .. } if *path == garbage), "{error}");

    let error = Tls::load(&TlsFiles { key: dir.path().join("n2.key"), ..n1.clone() }).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");

    let foreign = TlsFiles::node(other.path(), 1);
    let error = Tls::load(&TlsFiles { ca: n1.ca.clone(), ..foreign }).unwrap_err();
    assert!(matches!(&error, TlsError::NotTrusted { ca, .. } if *ca == n1.ca), "{error}");
}

#[test]
fn nodes_authenticate_each_other_by_node_name() {
    // Proves n1 dialling n2 as n2.warren with the peer ALPN succeeds, each side
    // learns the other's node id, and dialling n2 under another name fails.
    let dir = TempDir::new();
    init_certs(dir.path(), &[1, 2], &[]).expect("init");
    let n1 = load_node(dir.path(), 1);
    let n2 = load_node(dir.path(), 2);
    run(async {
        let server = server(&n2);
        let hs = handshake(&server, n1.peer_client_config(), "n2.warren").await;
        let (client, accepted) = hs.established();
        assert_eq!(peer_node_id(&accepted).expect("server side"), 1);
        assert_eq!(peer_node_id(&client).expect("client side"), 2);
        assert_eq!(negotiated_alpn(&accepted).as_deref(), Some(ALPN_PEER));
        assert_eq!(negotiated_alpn(&client).as_deref(), Some(ALPN_PEER));
        assert_eq!(peer_identity(&accepted).unwrap(), "CN=n1");

        let hs = handshake(&server, n1.peer_client_config(), "n3.warren").await;
        assert!(hs.client.is_err(), "n2 was accepted as n3.warren");
        assert!(hs.server.is_err(), "the server completed a refused handshake");
    });
}

#[test]
fn clients_are_known_by_their_subject() {
    // Proves a client cert connects with the client ALPN as "warren" and the
    // server sees CN=admin; dialling as a peer, it passes TLS but is no node.
    let dir = TempDir::new();
    init_certs(dir.path(), &[1], &["admin"]).expect("init");
    let n1 = load_node(dir.path(), 1);
    let admin = Tls::load(&TlsFiles::client(dir.path(), "admin")).expect("load admin");
    run(async {
        let server = server(&n1);
        let files = TlsFiles::client(dir.path(), "admin");
        let config = warren_client::tls::client_config(&files.ca, &files.cert, &files.key)
            .expect("the client library's TLS");
        let hs = handshake(&server, config, "warren").await;
        let (client, accepted) = hs.established();
        assert_eq!(peer_identity(&accepted).expect("identity"), "CN=admin");
        assert_eq!(negotiated_alpn(&accepted).as_deref(), Some(ALPN_CLIENT));
        assert_eq!(peer_node_id(&client).expect("the server is a node"), 1);

        let hs = handshake(&server, admin.peer_client_config(), "n1.warren").await;
        let (_, accepted) = hs.established();
        assert_eq!(negotiated_alpn(&accepted).as_deref(), Some(ALPN_PEER));
        let error = peer_node_id(&accepted).expect_err("a client posing as a peer");
        assert!(matches!(&error, TlsError::NotANode { dns_names } if dns_names.is_empty()));
    });
}

#[test]
fn unauthenticated_clients_are_refused() {
    // Proves the server completes no handshake with a client that presents no
    // certificate, or one from another CA, and the client's connection closes.
    let dir = TempDir::new();
    let other = TempDir::new();
    init_certs(dir.path(), &[1], &["admin"]).expect("init");
    init_certs(other.path(), &[1], &["admin"]).expect("init other");
    let n1 = load_node(dir.path(), 1);
    let ca = dir.path().join("ca.pem");
    let no_cert = raw_client_config(&ca, None);
    let foreign = raw_client_config(&ca, Some(&TlsFiles::client(other.path(), "admin")));
    run(async {
        let server = server(&n1);
        for (what, config) in [("no certificate", no_cert), ("another CA's cert", foreign)] {
            let hs = handshake(&server, config, "warren").await;
            assert!(hs.server.is_err(), "{what}: the server accepted it");
            // TLS 1.3 lets the client finish before the server checks its
            // cert, so the client may see Ok and then a close.
            if let Ok(client) = hs.client {
                let closed = tokio::time::timeout(STEP, client.closed()).await;
                assert!(closed.is_ok(), "{what}: the client's connection stayed open");
            }
        }
    });
}

#[test]
fn reload_presents_the_new_certificate() {
    // Proves that after n2's files are replaced and reloaded, new connections
    // see the new certificate, and that a failed reload keeps the current one.
    let dir = TempDir::new();
    let staging = TempDir::new();
    init_certs(dir.path(), &[1, 2], &[]).expect("init");
    let n1 = load_node(dir.path(), 1);
    let n2 = load_node(dir.path(), 2);
    // A second n2 from the same CA, issued in another directory.
    std::fs::create_dir_all(staging.path()).unwrap();
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(dir.path().join(file), staging.path().join(file)).unwrap();
    }
    add_node(staging.path(), 2).expect("issue a new n2");
    let old = CertificateDer::from_pem_file(dir.path().join("n2.pem")).unwrap();
    let new = CertificateDer::from_pem_file(staging.path().join("n2.pem")).unwrap();
    assert_ne!(old, new);

    // One client config throughout, as a node keeps one: were resumption on,
    // its ticket store would let later handshakes resume and report the old
    // certificate.
    let dial = n1.peer_client_config();
    run(async {
        let server = server(&n2);
        // Which certificate the dialling side saw, by name.
        let seen = |hs: Handshake| match peer_certificate(&hs.established().0) {
            Ok(cert) if cert == old => "old",
            Ok(cert) if cert == new => "new",
            other => panic!("unexpected peer certificate {other:?}"),
        };
        assert_eq!(seen(handshake(&server, dial.clone(), "n2.warren").await), "old");

        for file in ["n2.pem", "n2.key"] {
            std::fs::copy(staging.path().join(file), dir.path().join(file)).unwrap();
        }
        n2.reload().expect("reload");
        assert_eq!(n2.certificate(), new);
        // The endpoint's config shares the resolver: no new config needed.
        assert_eq!(seen(handshake(&server, dial.clone(), "n2.warren").await), "new");
        // And a config built after the reload (how a new CA takes effect).
        server.set_server_config(Some(n2.server_config()));
        assert_eq!(seen(handshake(&server, dial.clone(), "n2.warren").await), "new");

        std::fs::write(dir.path().join("n2.key"), "garbage\n").unwrap();
        let error = n2.reload().expect_err("reload accepted a broken key");
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
        assert_eq!(seen(handshake(&server, dial.clone(), "n2.warren").await), "new");
    });
}

#[test]
fn cli_prints_one_line_per_file() {
    // Proves `warren certs init` and `add-client` write the files and print
    // one line for each, and that a refused init exits with an error sentence.
    let dir = TempDir::new();
    let d = dir.path().to_str().expect("a UTF-8 temp dir");
    let out = warren(&["certs", "init", "--dir", d, "--nodes", "n1,n2", "--clients", "admin"]);
    assert!(out.status.success(), "{out:?}");
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 8, "{lines}");
    assert!(lines.lines().all(|l| l.starts_with("wrote ")), "{lines}");

    let out = warren(&["certs", "add-client", "app", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    assert!(dir.path().join("app.key").is_file());

    let out = warren(&["certs", "init", "--dir", d, "--nodes", "n1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("ca.pem already exists"), "{stderr}");
}

// ---- helpers ----------------------------------------------------------------

fn names(pem: &Path) -> CertNames {
    let der = CertificateDer::from_pem_file(pem).expect("a PEM certificate");
    names_from_der(&der).expect("parsable")
}

fn load_node(dir: &Path, id: u64) -> Tls {
    Tls::load(&TlsFiles::node(dir, id)).unwrap_or_else(|e| panic!("load n{id}: {e}"))
}

fn warren(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warren")).args(args).output().expect("run warren")
}

/// A client config built by hand, to present what `Tls::load` would refuse:
/// trusting `ca`, with the client ALPN, and the cert of `identity` or none.
fn raw_client_config(ca: &Path, identity: Option<&TlsFiles>) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let cert = CertificateDer::from_pem_file(&files.cert).unwrap();
            let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
    };
    tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()))
}

/// An accepting endpoint on 127.0.0.1 with `tls`'s server config.
fn server(tls: &Tls) -> Endpoint {
    Endpoint::server(tls.server_config(), "127.0.0.1:0".parse().unwrap()).expect("bind")
}

/// Both ends of one handshake attempt.
struct Handshake {
    client: Result<Connection, String>,
    server: Result<Connection, String>,
    /// Keeps the dialling socket open while the connection is in use.
    _endpoint: Endpoint,
}

impl Handshake {
    /// The client's and the server's connection, both established.
    fn established(self) -> (Connection, Connection) {
        match (self.client, self.server) {
            (Ok(client), Ok(server)) => (client, server),
            (client, server) => panic!("handshake failed: client {client:?}, server {server:?}"),
        }
    }
}

/// Dials `server` from a fresh endpoint with `config` and `server_name`, and
/// accepts on `server` at the same time; each side gives up after STEP.
async fn handshake(server: &Endpoint, config: quinn::ClientConfig, server_name: &str) -> Handshake {
    let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = server.local_addr().unwrap();
    let dial = async {
        let connecting =
            endpoint.connect_with(config, addr, server_name).map_err(|e| e.to_string())?;
        connecting.await.map_err(|e| e.to_string())
    };
    let accept = async {
        let incoming = server.accept().await.ok_or("the endpoint closed")?;
        incoming.await.map_err(|e| e.to_string())
    };
    let (mut client, mut accepted) = tokio::join!(within(dial), within(accept));
    if let (Ok(c), Ok(a)) = (&client, &accepted) {
        // One message each way proves the connection carries data, and
        // lets the client take in whatever the server sent after the
        // handshake (session tickets, if any were sent).
        if let Err(e) = within(round_trip(c, a)).await {
            (client, accepted) = (Err(e.clone()), Err(e));
        }
    }
    Handshake { client, server: accepted, _endpoint: endpoint }
}

/// The server sends "ping" on a unidirectional stream and the client
/// reads it to the end.
async fn round_trip(client: &Connection, server: &Connection) -> Result<(), String> {
    let send = async {
        let mut stream = server.open_uni().await.map_err(|e| e.to_string())?;
        stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())
    };
    let receive = async {
        let mut stream = client.accept_uni().await.map_err(|e| e.to_string())?;
        stream.read_to_end(16).await.map_err(|e| e.to_string())
    };
    let (sent, received) = tokio::join!(send, receive);
    sent?;
    match received? {
        bytes if bytes == b"ping" => Ok(()),
        bytes => Err(format!("received {bytes:?}")),
    }
}

async fn within<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(STEP, f).await.unwrap_or_else(|_| Err("timed out".to_owned()))
}

fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// A fresh path under the system temp dir, removed on drop. Not created:
/// init must create it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "warren-certs-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
