//! End-to-end tests of ZooKeeper clients against a 3-node Warren cluster:
//! what ZooKeeper 3.9 answers where the cross-check's 3.8 cannot be the
//! reference, bad input on the ZooKeeper port, zkCli.sh, the Rust
//! `zookeeper-client` crate, and kazoo's recipes while the leader is
//! killed.

mod common;

use common::Cluster;
use common::zk::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use warren::zookeeper::records::op;

/// Node `id`'s ZooKeeper address, once it opens sessions.
fn ready(cluster: &Cluster, id: u64) -> SocketAddr {
    let addr = cluster.files.zookeeper[&id];
    wait_for_session(addr);
    addr
}

fn transcript(addr: SocketAddr, case: fn(&mut Script)) -> Vec<String> {
    let mut s = Script::new(addr);
    case(&mut s);
    s.lines
}

fn assert_lines(got: &[String], want: &[&str]) {
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    if got != want {
        panic!("got:\n  {}\nwanted:\n  {}", got.join("\n  "), want.join("\n  "));
    }
}

/// What ZooKeeper 3.9 answers (from its sources: MultiOperationRecord,
/// PrepRequestProcessor's deleteContainer, Request.isValid, WatcherType):
/// a create2 in a multi gets the Stat, deleteContainer deletes a
/// childless non-ephemeral node (BadVersion for an ephemeral one),
/// persistent watches are removed by their own types, a check outside a
/// multi is Unimplemented and closes the connection.
fn three_nine(s: &mut Script) {
    s.open("a", 10_000);
    s.call("a", op::CREATE, create("/n", "", 0));
    s.call(
        "a",
        op::MULTI,
        multi(vec![
            part(op::CREATE2, create("/n/a", "1", 0)),
            part(op::CREATE, create("/n/b", "2", 0)),
        ]),
    );
    s.call("a", op::CREATE_CONTAINER, create("/n/box", "", 4));
    s.call("a", op::CREATE, create("/n/box/item", "", 0));
    s.call("a", op::CREATE, create("/n/eph", "", 1));
    s.call("a", op::DELETE_CONTAINER, path("/n/box"));
    s.call("a", op::DELETE_CONTAINER, path("/n/eph"));
    s.call("a", op::DELETE_CONTAINER, path("/n/none"));
    s.call("a", op::DELETE_CONTAINER, path("/n/box/item"));
    s.call("a", op::DELETE_CONTAINER, path("/n/box"));
    s.call("a", op::ADD_WATCH, path_int("/n", 0));
    s.call("a", op::ADD_WATCH, path_int("/n", 1));
    s.call("a", op::CHECK_WATCHES, path_int("/n", 4));
    s.call("a", op::REMOVE_WATCHES, path_int("/n", 4));
    s.call("a", op::REMOVE_WATCHES, path_int("/n", 4));
    s.call("a", op::CHECK_WATCHES, path_int("/n", 5));
    s.call("a", op::REMOVE_WATCHES, path_int("/n", 5));
    s.call("a", op::REMOVE_WATCHES, path_int("/n", 5));
    s.call("a", op::CHECK, path_version("/n", -1));
    s.quiet("a");
}

#[test]
fn answers_what_zookeeper_3_9_answers() {
    // Proves the answers where ZooKeeper 3.9 differs from the 3.8 the
    // cross-check runs: each line is 3.9's, read off its sources.
    let cluster = Cluster::start("zk-three-nine", 3);
    let addr = ready(&cluster, 2);
    let got = transcript(addr, three_nine);
    assert_lines(
        &got,
        &[
            "a connected: version 0 timeout 10000 session s1 password 16 bytes read-only false",
            "a create (xid 1): err 0 | /n",
            "a multi (xid 2): err 0 | [0] create2 /n/a stat czxid z1 mzxid z1 pzxid z1 version 0 cversion 0 aversion 0 owner 0 length 1 children 0; [0] create /n/b",
            "a createContainer (xid 3): err 0 | /n/box stat czxid z2 mzxid z2 pzxid z2 version 0 cversion 0 aversion 0 owner 0 length 0 children 0",
            "a create (xid 4): err 0 | /n/box/item",
            "a create (xid 5): err 0 | /n/eph",
            "a deleteContainer (xid 6): err -111",
            "a deleteContainer (xid 7): err -103",
            "a deleteContainer (xid 8): err -101",
            "a deleteContainer (xid 9): err 0",
            "a deleteContainer (xid 10): err 0",
            "a addWatch (xid 11): err 0 | 0",
            "a addWatch (xid 12): err 0 | 0",
            "a checkWatches (xid 13): err 0",
            "a removeWatches (xid 14): err 0",
            "a removeWatches (xid 15): err -121",
            "a checkWatches (xid 16): err 0",
            "a removeWatches (xid 17): err 0",
            "a removeWatches (xid 18): err -121",
            "a check (xid 19): err -6",
            "a: closed",
        ],
    );
}

/// A raw connection to a ZooKeeper port.
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s
}

/// Reads until the server closes the connection; what it sent first.
fn until_closed(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) => panic!("the server kept the connection open ({e}); it sent {got:?}"),
    }
}

fn connect_request(session: i64, password: &[u8], last_zxid: i64) -> Vec<u8> {
    let mut w = warren::zookeeper::jute::Writer::default();
    w.int(0);
    w.long(last_zxid);
    w.int(10_000);
    w.long(session);
    w.buffer(Some(password));
    w.bool(false);
    let mut frame = (w.bytes.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&w.bytes);
    frame
}

#[test]
fn bad_input_closes_the_connection_and_harms_nothing() {
    // Proves a frame over the limit, a negative length, a truncated
    // connect request, garbage after the handshake, a client ahead of the
    // server and a client that sends nothing each end their connection
    // without an answer, and the node goes on serving.
    let cluster = Cluster::start("zk-bad-input", 3);
    let addr = ready(&cluster, 1);
    let over = (warren::limits::ZOOKEEPER_FRAME_BYTES_MAX as i32 + 1).to_be_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a frame over the limit", over.to_vec()),
        ("a negative length", (-5i32).to_be_bytes().to_vec()),
        ("a truncated connect request", [4i32.to_be_bytes(), 0i32.to_be_bytes()].concat()),
        ("a client ahead of the server", connect_request(0, &[0; 16], i64::MAX / 2)),
    ];
    for (what, bytes) in cases {
        let mut s = raw(addr);
        s.write_all(&bytes).expect("send");
        assert_eq!(until_closed(s), Vec::<u8>::new(), "{what}: the server answered");
    }
    // Garbage after a good handshake: the answer, then the end.
    let mut s = raw(addr);
    s.write_all(&connect_request(0, &[0; 16], 0)).expect("send");
    s.write_all(&[0, 0, 0, 3, 1, 2, 3]).expect("send");
    let got = until_closed(s);
    let welcome_len = i32::from_be_bytes([got[0], got[1], got[2], got[3]]) as usize;
    assert_eq!(got.len(), 4 + welcome_len, "garbage got an answer: {got:?}");
    // Silence: closed after the handshake limit.
    let started = Instant::now();
    assert_eq!(until_closed(raw(addr)), Vec::<u8>::new());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(warren::limits::ZOOKEEPER_HANDSHAKE_MS_MAX - 500),
        "closed after {waited:?}"
    );
    // The node still serves.
    let mut s = Script::new(addr);
    s.open("after", 10_000);
    s.call("after", op::EXISTS, path_watch("/", false));
    assert!(s.lines[1].contains("err 0"), "{:?}", s.lines);
}

#[test]
fn an_unknown_session_is_told_it_expired() {
    // Proves a resume of a session that never existed gets ZooKeeper's
    // expired answer: timeout 0, session 0, a zero password, then close.
    let cluster = Cluster::start("zk-unknown-session", 3);
    let addr = ready(&cluster, 3);
    let mut s = raw(addr);
    s.write_all(&connect_request(0x7777, &[1; 16], 0)).expect("send");
    let got = until_closed(s);
    let mut r = warren::zookeeper::jute::Reader::new(&got[4..], BOUNDS);
    assert_eq!(r.int("version").ok(), Some(0));
    assert_eq!(r.int("timeout").ok(), Some(0));
    assert_eq!(r.long("session").ok(), Some(0));
    assert_eq!(r.buffer("password").ok(), Some(vec![0; 16]));
    assert_eq!(r.bool("read-only").ok(), Some(false));
    assert_eq!(r.remaining(), 0);
}

#[test]
fn connections_per_address_are_capped() {
    // Proves zookeeper_max_client_cnxns: a third connection from one
    // address is closed at once while two are open, and taken once one
    // of them goes.
    let cluster =
        Cluster::start_with("zk-cap", 3, |text| format!("zookeeper_max_client_cnxns = 2\n{text}"));
    let addr = ready(&cluster, 1);
    let first = raw(addr);
    let second = raw(addr);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(until_closed(raw(addr)), Vec::<u8>::new());
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let mut third = raw(addr);
    third.write_all(&connect_request(0, &[0; 16], 0)).expect("send");
    let mut len = [0u8; 4];
    third.read_exact(&mut len).expect("the third connection is answered");
    drop(second);
}

/// Runs zkCli.sh (Debian's) against `connect` with `script` on its
/// standard input; what it printed (it prints some answers, `Created`
/// among them, on its standard error).
fn zkcli(connect: &str, script: &str) -> String {
    let mut child = std::process::Command::new("/usr/share/zookeeper/bin/zkCli.sh")
        .args(["-server", connect])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run zkCli.sh");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write the script");
    let out = child.wait_with_output().expect("zkCli.sh ends");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn zkcli_runs_a_scripted_session() {
    // Proves zkCli.sh, unchanged, runs a session against the cluster:
    // creates of every kind, reads, ACLs with digest auth, watches and
    // their events, multi-level deletes, and its own whoami.
    if !zookeeper_installed() || !std::path::Path::new("/usr/share/zookeeper/bin/zkCli.sh").exists()
    {
        return;
    }
    let cluster = Cluster::start("zk-zkcli", 3);
    ready(&cluster, 1);
    let connect: Vec<String> = cluster.files.zookeeper.values().map(|a| a.to_string()).collect();
    let out = zkcli(
        &connect.join(","),
        "create /cli hello\n\
         get /cli\n\
         set /cli world\n\
         get -s /cli\n\
         create -e /cli/eph e\n\
         create -s /cli/seq- s\n\
         create -c /cli/box\n\
         create -t 60000 /cli/ttl t\n\
         ls /cli\n\
         addauth digest bob:pw\n\
         create /cli/private p auth:bob:pw:cdrwa\n\
         getAcl /cli/private\n\
         get -w /cli\n\
         set /cli again\n\
         addWatch -m PERSISTENT_RECURSIVE /cli\n\
         getEphemerals\n\
         delete /cli/eph\n\
         getAllChildrenNumber /cli\n\
         whoami\n\
         deleteall /cli\n\
         ls /\n\
         quit\n",
    );
    for want in [
        "Created /cli",
        "hello",
        "world\n",
        "dataVersion = 1",
        "Created /cli/eph",
        "Created /cli/seq-0000000001",
        "Created /cli/box",
        "Created /cli/ttl",
        "[box, eph, seq-0000000001, ttl]",
        "Created /cli/private",
        "'digest,'bob:ikIaKsbtGweaHnb/jKn7OHqbunM=",
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/cli",
        "WatchedEvent state:SyncConnected type:NodeDeleted path:/cli/eph",
        "[/cli/eph]",
        "digest: bob",
        "WatchedEvent state:SyncConnected type:NodeDeleted path:/cli",
    ] {
        assert!(out.contains(want), "zkCli.sh's output lacks {want:?}:\n{out}");
    }
    assert!(!out.contains("Exception"), "zkCli.sh failed somewhere:\n{out}");
}

/// Whether python3 with kazoo is here (required where
/// WARREN_REQUIRE_ZOOKEEPER=1, as in CI, which installs it).
fn kazoo_installed() -> bool {
    let here = std::process::Command::new("python3")
        .args(["-c", "import kazoo"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        here || std::env::var("WARREN_REQUIRE_ZOOKEEPER").as_deref() != Ok("1"),
        "kazoo is not installed; python3 -m pip install kazoo==2.11.0"
    );
    if !here {
        eprintln!(
            "SKIPPED: kazoo is not installed; python3 -m pip install kazoo==2.11.0 to run this"
        );
    }
    here
}

/// The member whose `srvr` says it leads.
fn zk_leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (&id, &addr) in &cluster.files.zookeeper {
            if four_letter(addr, "srvr").is_some_and(|text| text.contains("Mode: leader")) {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no member says it leads");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kazoo_recipes_survive_the_leader_being_killed() {
    // Proves kazoo's lock, election, counter, barriers and queues work
    // against the cluster while its leader is killed: sessions survive
    // with their ephemerals, no lock is held twice, one leader at a time,
    // a one-shot watch fires once (tests/kazoo_recipes.py checks each).
    if !kazoo_installed() {
        return;
    }
    use std::io::BufRead;
    let mut cluster = Cluster::start("zk-kazoo", 3);
    ready(&cluster, 1);
    let hosts: Vec<String> = cluster.files.zookeeper.values().map(|a| a.to_string()).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/kazoo_recipes.py");
    let mut child = std::process::Command::new("python3")
        .args([script, &hosts.join(",")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = Vec::new();
    let mut killed = None;
    for line in lines.by_ref() {
        let line = line.expect("a line");
        out.push(line.clone());
        if line == "KILL" {
            let leader = zk_leader(&cluster);
            cluster.kill(leader);
            killed = Some(leader);
            writeln!(stdin, "killed").expect("tell the script");
            break;
        }
    }
    out.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("the script ends");
    let text = out.join("\n");
    assert!(killed.is_some(), "the script never asked for the kill:\n{text}");
    assert!(status.success() && text.contains("\nOK ") && !text.contains("FAIL"), "{text}");
    eprintln!("killed n{}: {}", killed.unwrap_or(0), out.last().map_or("", String::as_str));
}

/// A TLS client of the ZooKeeper TLS port, with the admin certificate or
/// none.
fn tls_connect(
    cluster: &Cluster,
    addr: SocketAddr,
    with_certificate: bool,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let certs = cluster.certs();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.join("ca.pem")).expect("ca.pem") {
        roots.add(cert.expect("a CA certificate")).expect("a root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    let config = if with_certificate {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(certs.join("admin.pem"))
                .expect("admin.pem")
                .map(|c| c.expect("a certificate"))
                .collect();
        let key = PrivateKeyDer::from_pem_file(certs.join("admin.key")).expect("admin.key");
        builder.with_client_auth_cert(chain, key).expect("the admin identity")
    } else {
        builder.with_no_client_auth()
    };
    let name = ServerName::try_from("warren").expect("a server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut stream = rustls::StreamOwned::new(conn, sock);
    // The handshake (and a refusal of it) happens with the first bytes.
    stream.write_all(&connect_request(0, &[0; 16], 0)).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut body = vec![0; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// whoAmI over an open TLS session: its (scheme, user) pairs.
fn tls_who_am_i(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) -> Vec<String> {
    let mut frame = 8i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&op::WHO_AM_I.to_be_bytes());
    stream.write_all(&frame).expect("send whoAmI");
    stream.flush().expect("flush");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("a reply");
    let mut body = vec![0; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("its body");
    let mut r = warren::zookeeper::jute::Reader::new(&body, BOUNDS);
    let (_xid, _zxid, err) = (r.int("xid"), r.long("zxid"), r.int("err"));
    assert_eq!(err.ok(), Some(0));
    let n = r.int("count").expect("count");
    (0..n)
        .map(|_| {
            format!("{}:{}", r.ustring("scheme").expect("scheme"), r.ustring("user").expect("user"))
        })
        .collect()
}

/// A cluster whose members also listen for ZooKeeper clients over TLS,
/// with `client_auth`; their TLS addresses.
fn tls_cluster(name: &str, client_auth: &str) -> (Cluster, Vec<SocketAddr>) {
    let ports = common::free_tcp_addrs(3);
    let tls_ports = ports.clone();
    let auth = client_auth.to_string();
    let cluster = Cluster::start_with(name, 3, move |text| {
        let id: usize = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("id = "))
            .and_then(|id| id.parse().ok())
            .expect("a node config starts with its id");
        format!(
            "zookeeper_tls_listen = \"{}\"\nzookeeper_tls_client_auth = \"{auth}\"\n{text}",
            tls_ports[id - 1]
        )
    });
    (cluster, ports)
}

#[test]
fn the_tls_port_takes_a_client_certificate_as_the_x509_identity() {
    // Proves zookeeper_tls_listen serves sessions over TLS with the
    // cluster CA, requires a client certificate by default (a client
    // without one is refused), and gives the session the certificate's
    // subject as its x509 identity, as QUIC does.
    let (cluster, tls) = tls_cluster("zk-tls", "need");
    ready(&cluster, 1);
    let mut stream = tls_connect(&cluster, tls[1], true).expect("a TLS session");
    assert_eq!(tls_who_am_i(&mut stream), ["x509:CN=admin"]);
    assert!(tls_connect(&cluster, tls[1], false).is_err(), "a client without a certificate got in");
}

#[test]
fn a_tls_port_that_wants_a_certificate_also_takes_clients_without_one() {
    // Proves zookeeper_tls_client_auth = "want": a client without a
    // certificate gets a session whose identity is its address; one with
    // a certificate gets its x509 identity.
    let (cluster, tls) = tls_cluster("zk-tls-want", "want");
    ready(&cluster, 1);
    let mut anonymous =
        tls_connect(&cluster, tls[0], false).expect("a TLS session without a certificate");
    assert_eq!(tls_who_am_i(&mut anonymous), ["ip:127.0.0.1"]);
    let mut admin = tls_connect(&cluster, tls[2], true).expect("a TLS session with a certificate");
    assert_eq!(tls_who_am_i(&mut admin), ["x509:CN=admin"]);
}

#[test]
fn four_letter_words_answer_within_their_allow_list() {
    // Proves the four-letter words: with ZooKeeper's default allow-list
    // only srvr runs (another word gets ZooKeeper's refusal), srvr tells
    // the mode and the node count; with "*" ruok, isro, envi (the version
    // kazoo reads), conf, mntr, wchs and dump answer as ZooKeeper's do.
    let strict = Cluster::start_with("zk-words-default", 3, |text| {
        text.replace("zookeeper_four_letter_words = [\"*\"]\n", "")
    });
    let addr = ready(&strict, 1);
    let srvr = four_letter(addr, "srvr").expect("srvr");
    assert!(srvr.starts_with("Zookeeper version: 3.9.3-warren-"), "{srvr}");
    assert!(srvr.contains("\nMode: ") && srvr.contains("\nNode count: "), "{srvr}");
    assert_eq!(
        four_letter(addr, "ruok").as_deref(),
        Some("ruok is not executed because it is not in the whitelist.\n")
    );
    drop(strict);

    let open = Cluster::start("zk-words-all", 3);
    let addr = ready(&open, 2);
    let mut s = Script::new(addr);
    s.open("w", 10_000);
    s.call("w", op::CREATE, create("/watched", "", 1));
    s.call("w", op::GET_DATA, path_watch("/watched", true));
    assert_eq!(four_letter(addr, "ruok").as_deref(), Some("imok"));
    assert_eq!(four_letter(addr, "isro").as_deref(), Some("rw"));
    let envi = four_letter(addr, "envi").expect("envi");
    assert!(envi.contains("\nzookeeper.version=3.9.3-warren-"), "{envi}");
    let conf = four_letter(addr, "conf").expect("conf");
    assert!(
        conf.contains(&format!("clientPort={}\n", addr.port())) && conf.contains("server.3="),
        "{conf}"
    );
    let mntr = four_letter(addr, "mntr").expect("mntr");
    for key in ["zk_version\t", "zk_server_state\t", "zk_znode_count\t", "zk_ephemerals_count\t1\n"]
    {
        assert!(mntr.contains(key), "mntr lacks {key:?}: {mntr}");
    }
    let wchs = four_letter(addr, "wchs").expect("wchs");
    assert!(wchs.starts_with("1 connections watching 1 paths\nTotal watches:1"), "{wchs}");
    let dump = four_letter(addr, "dump").expect("dump");
    assert!(dump.contains("\t/watched\n"), "{dump}");
}

#[test]
fn the_configured_superuser_passes_every_acl() {
    // Proves superuser_digest: a session that adds the superuser's
    // digest reads and changes a node whose ACL names only someone else,
    // and one that adds another password for the same user does not.
    let superuser = warren::state::digest_id(b"super:secret");
    let cluster = Cluster::start_with("zk-superuser", 3, move |text| {
        format!("superuser_digest = \"{superuser}\"\n{text}")
    });
    let addr = ready(&cluster, 1);
    let alice = warren::state::digest_id(b"alice:pw");
    let mut s = Script::new(addr);
    s.open("alice", 10_000);
    s.call("alice", op::AUTH, auth("digest", "alice:pw"));
    s.call("alice", op::CREATE, create_acl("/private", &[("digest", &alice, 31)], 0));
    s.open("root", 10_000);
    s.call("root", op::AUTH, auth("digest", "super:secret"));
    s.call("root", op::GET_DATA, path_watch("/private", false));
    s.call("root", op::SET_DATA, set_data("/private", "by root", -1));
    s.call("root", op::WHO_AM_I, |_| {});
    s.open("impostor", 10_000);
    s.call("impostor", op::AUTH, auth("digest", "super:guess"));
    s.call("impostor", op::GET_DATA, path_watch("/private", false));
    let errs: Vec<String> = s
        .lines
        .iter()
        .filter(|l| !l.contains("connected"))
        .map(|l| l.split(": ").nth(1).unwrap_or(l).split(" |").next().unwrap_or(l).to_string())
        .collect();
    assert_eq!(
        errs,
        ["err 0", "err 0", "err 0", "err 0", "err 0", "err 0", "err 0", "err -102"],
        "{:?}",
        s.lines
    );
    assert!(
        s.lines.iter().any(|l| l.contains("whoAmI") && l.contains("super:super")),
        "{:?}",
        s.lines
    );
}

/// Debian's Curator and what it needs, when installed.
const CURATOR_JARS: &str = "/usr/share/java/curator-recipes.jar:/usr/share/java/curator-framework.jar:/usr/share/java/curator-client.jar:/usr/share/java/zookeeper.jar:/usr/share/java/guava.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar";

#[test]
fn curator_recipes_work_unchanged() {
    // Proves Apache Curator 5.4 (Debian's) works against the cluster with
    // nothing but the connect string: its fluent API, a transaction,
    // CuratorCache (a persistent recursive watch), InterProcessMutex,
    // LeaderLatch and DistributedAtomicLong (tests/curator/CuratorCheck.java
    // checks each; its EnsembleTracker reads /zookeeper/config too).
    let here = CURATOR_JARS.split(':').all(|jar| std::path::Path::new(jar).exists())
        && std::process::Command::new("javac").arg("-version").output().is_ok();
    assert!(
        here || std::env::var("WARREN_REQUIRE_ZOOKEEPER").as_deref() != Ok("1"),
        "Curator is not installed; apt-get install libcurator-recipes-java (and a JDK for javac)"
    );
    if !here {
        eprintln!("SKIPPED: Curator is not installed; apt-get install libcurator-recipes-java");
        return;
    }
    let cluster = Cluster::start("zk-curator", 3);
    ready(&cluster, 1);
    let classes = cluster.dir().join("curator-classes");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/curator/CuratorCheck.java");
    let javac = std::process::Command::new("javac")
        .args(["-cp", CURATOR_JARS, "-d"])
        .arg(&classes)
        .arg(source)
        .output()
        .expect("run javac");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let hosts: Vec<String> = cluster.files.zookeeper.values().map(|a| a.to_string()).collect();
    let out = std::process::Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=error")
        .arg("-cp")
        .arg(format!("{CURATOR_JARS}:{}", classes.display()))
        .args(["CuratorCheck", &hosts.join(",")])
        .output()
        .expect("run java");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.ends_with("OK\n") && !text.contains("FAIL"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
