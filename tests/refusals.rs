//! End-to-end tests of who a running cluster refuses: clients without a
//! certificate or with one from another CA, and peers that are not who
//! they claim (another node's id, a forged sender, a client certificate on
//! the peer ALPN). Each test starts its own 3-node cluster and speaks raw
//! QUIC to it, and each refusal is paired with a control that the same
//! path, used honestly, is accepted, so the refusal cannot pass by accident.

mod common;

use common::Cluster;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use warren::consensus::{Body, LogIndex, Message, NodeId, Term};
use warren::node::peer::PeerFrame;
use warren::tls::{Tls, TlsFiles};
use warren_client::frame::{self, FRAME_BYTES_MAX};
use warren_client::wire::{ALPN_CLIENT, ClientFrame, Hello, ServerFrame};
use warren_client::{Client, ClientConfig, Error};

/// A term no 3-node test cluster reaches by itself.
const HUGE_TERM: u64 = 1_000_000;

/// How long a refusal may take to show.
const REFUSAL_WAIT: Duration = Duration::from_secs(5);

fn endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a client endpoint")
}

/// A client configuration that trusts the cluster CA and presents no
/// certificate.
fn no_certificate_config(ca: &Path) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read ca.pem") {
        roots.add(cert.expect("a PEM certificate")).expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("ring has QUIC's suite");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// Dials `addr` as a client, sends a Hello for a new session and returns
/// the first frame back, or why none came (a refused handshake, a closed
/// connection or stream). Panics if nothing at all happens within
/// [`REFUSAL_WAIT`]: a refusal must be an answer, not silence.
async fn first_answer(quic: quinn::ClientConfig, addr: SocketAddr) -> Result<ServerFrame, String> {
    let endpoint = endpoint();
    let attempt = async {
        let conn = endpoint
            .connect_with(quic, addr, "warren")
            .map_err(|e| format!("connect: {e}"))?
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open: {e}"))?;
        let hello = Hello { timeout_ms: 5_000, ..Hello::default() };
        frame::write(&mut send, &ClientFrame::Hello(hello)).await.map_err(|e| format!("{e}"))?;
        match frame::read::<ServerFrame, _>(&mut recv, FRAME_BYTES_MAX).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err("the stream ended".to_string()),
            Err(e) => Err(format!("read: {e}")),
        }
    };
    tokio::time::timeout(REFUSAL_WAIT, attempt)
        .await
        .expect("the server neither answered nor closed the connection within 5 s")
}

/// Dials node `to` on the peer ALPN with `tls`'s certificate, sends
/// `frames` on one unidirectional stream followed by an undecodable frame,
/// and returns how the server ended the connection. The undecodable frame
/// makes a server that accepted everything before it close the connection
/// too, after handing what it accepted to its core: so when this returns,
/// every frame it let through is already queued ahead of any later client
/// request to that node.
async fn send_as_peer(
    cluster: &Cluster,
    tls: &Tls,
    to: u64,
    frames: &[PeerFrame],
) -> quinn::ConnectionError {
    let endpoint = endpoint();
    let server_name = format!("n{to}.warren");
    let connecting = endpoint
        .connect_with(tls.peer_client_config(), cluster.addr(to), &server_name)
        .expect("a valid dial");
    let conn = match tokio::time::timeout(REFUSAL_WAIT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return e,
        Err(_) => panic!("the handshake with n{to} neither finished nor failed within 5 s"),
    };
    if let Ok(mut stream) = conn.open_uni().await {
        let mut bytes = Vec::new();
        for f in frames {
            bytes.extend_from_slice(&frame::encode(f));
        }
        // A one-byte body holding a CBOR "break": no frame decodes from it.
        bytes.extend_from_slice(&[0, 0, 0, 1, 0xff]);
        // The server may already have closed: that shows below.
        let _ = stream.write_all(&bytes).await;
    }
    tokio::time::timeout(REFUSAL_WAIT, conn.closed())
        .await
        .expect("the server did not close the connection within 5 s")
}

fn heartbeat(from: u64, to: u64, term: u64) -> PeerFrame {
    PeerFrame::Raft(Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: Body::Heartbeat { commit: LogIndex(0), read: None },
    })
}

fn assert_closed_by_server(e: &quinn::ConnectionError) {
    assert!(
        matches!(e, quinn::ConnectionError::ApplicationClosed(_)),
        "the connection ended otherwise than by the server closing it: {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_gets_no_session() {
    // Proves a client that trusts the cluster CA but presents no
    // certificate never gets a Welcome: its connection is refused, while
    // the same exchange with the admin certificate is welcomed.
    let cluster = Cluster::start("refuse-no-cert", 3);
    let ready = cluster.client_of(1).await;
    let ca = cluster.certs().join("ca.pem");
    let with_cert = warren_client::tls::client_config(
        &ca,
        &cluster.certs().join("admin.pem"),
        &cluster.certs().join("admin.key"),
    )
    .expect("the admin's client config");
    let control = first_answer(with_cert, cluster.addr(1)).await;
    assert!(
        matches!(control, Ok(ServerFrame::Welcome(_))),
        "control: the admin certificate was not welcomed: {control:?}"
    );
    for id in 1..=3 {
        let answer = first_answer(no_certificate_config(&ca), cluster.addr(id)).await;
        assert!(answer.is_err(), "n{id} answered a client without a certificate: {answer:?}");
    }
    ready.status().await.expect("the cluster still serves its clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused() {
    // Proves a client presenting a certificate issued by another CA (same
    // name, admin) cannot open a session on any member, while the
    // cluster's own admin certificate can.
    let cluster = Cluster::start("refuse-other-ca", 3);
    let ready = cluster.client().await;
    let other = cluster.dir().join("other-certs");
    warren::tls::init_certs(&other, &[1], &["admin"]).expect("another CA");
    let config = ClientConfig {
        cert: other.join("admin.pem"),
        key: other.join("admin.key"),
        ..cluster.client_config()
    };
    match Client::connect(&config).await {
        Err(Error::NoServer { .. }) => {}
        Err(e) => panic!("refused, but not as NoServer: {e}"),
        Ok(client) => panic!("a foreign certificate got session {}", client.session()),
    }
    ready.status().await.expect("the cluster still serves its clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_announcing_another_nodes_id_is_refused() {
    // Proves a member that announces another member's id (n1's certificate,
    // Hello from n3) has its connection closed and its consensus messages
    // dropped: n2's term does not jump. Control: the same messages after an
    // honest Hello do reach n2's core and move its term.
    let cluster = Cluster::start("refuse-wrong-id", 3);
    let n2 = cluster.client_of(2).await;
    let before = n2.status().await.expect("status").term;
    assert!(before < HUGE_TERM);
    let n1 = Tls::load(&TlsFiles::node(&cluster.certs(), 1)).expect("n1's TLS");

    let lie = [PeerFrame::Hello { from: 3 }, heartbeat(3, 2, HUGE_TERM)];
    let closed = send_as_peer(&cluster, &n1, 2, &lie).await;
    assert_closed_by_server(&closed);
    let term = n2.status().await.expect("status").term;
    assert!(term < HUGE_TERM, "n2 accepted a message from n1 posing as n3: term {term}");

    let honest = [PeerFrame::Hello { from: 1 }, heartbeat(1, 2, HUGE_TERM)];
    let closed = send_as_peer(&cluster, &n1, 2, &honest).await;
    assert_closed_by_server(&closed);
    let term = n2.status().await.expect("status").term;
    assert!(term >= HUGE_TERM, "control: n1's own heartbeat did not reach n2 (term {term})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_forging_another_members_id_in_a_message_is_refused() {
    // Proves a member that says Hello as itself (n1) cannot then send a
    // consensus message in another member's name (from n3): n2's term does
    // not move, whether the server drops the message or the connection.
    let cluster = Cluster::start("refuse-forged-from", 3);
    let n2 = cluster.client_of(2).await;
    assert!(n2.status().await.expect("status").term < HUGE_TERM);
    let n1 = Tls::load(&TlsFiles::node(&cluster.certs(), 1)).expect("n1's TLS");
    let forged = [PeerFrame::Hello { from: 1 }, heartbeat(3, 2, HUGE_TERM)];
    let closed = send_as_peer(&cluster, &n1, 2, &forged).await;
    assert_closed_by_server(&closed);
    let status = n2.status().await.expect("status");
    assert!(
        status.term < HUGE_TERM,
        "n2 accepted n1's message in n3's name: term {}, leader {:?}",
        status.term,
        status.leader
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cannot_speak_as_a_peer() {
    // Proves a client certificate (admin) dialling a member with the peer
    // ALPN has its connection closed and nothing it sends reaches the
    // core: n2's term does not jump.
    let cluster = Cluster::start("refuse-client-as-peer", 3);
    let n2 = cluster.client_of(2).await;
    assert!(n2.status().await.expect("status").term < HUGE_TERM);
    let admin = Tls::load(&TlsFiles::client(&cluster.certs(), "admin")).expect("admin's TLS");
    let frames = [PeerFrame::Hello { from: 1 }, heartbeat(1, 2, HUGE_TERM)];
    let closed = send_as_peer(&cluster, &admin, 2, &frames).await;
    assert_closed_by_server(&closed);
    let term = n2.status().await.expect("status").term;
    assert!(term < HUGE_TERM, "n2 accepted consensus messages from a client: term {term}");
}
