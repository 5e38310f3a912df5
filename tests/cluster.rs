//! End-to-end tests of a running cluster: real `warren serve` processes on
//! loopback over QUIC with mutual TLS, real data directories, the real
//! client library. Each test starts its own 3-node cluster.

mod common;

use common::{Cluster, retry};
use std::time::Duration;
use warren_client::{Acl, ApiError, Client, CreateMode, Error, EventType, Id, Perms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_member_are_read_everywhere_after_sync() {
    // Proves writes sent to each member (forwarded to the leader) are
    // applied everywhere: after sync, every member serves all of them.
    let cluster = Cluster::start("every-member", 3);
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.client_of(id).await);
    }
    for (i, c) in clients.iter().enumerate() {
        let path =
            c.create(&format!("/k{i}"), format!("v{i}").as_bytes(), CreateMode::Persistent).await;
        assert_eq!(path.expect("create through member"), format!("/k{i}"));
    }
    for c in &clients {
        c.sync("/").await.expect("sync");
        for i in 0..3 {
            let (data, stat) = c.get_data(&format!("/k{i}")).await.expect("read after sync");
            assert_eq!(data, format!("v{i}").as_bytes());
            assert_eq!(stat.version, 0);
        }
    }
    cluster.converged(&[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_and_ephemeral_nodes_behave_as_in_zookeeper() {
    // Proves sequential names count up per parent with ZooKeeper's suffix,
    // and a session's ephemerals are visible to others until it closes,
    // then gone on every member.
    let cluster = Cluster::start("seq-eph", 3);
    let a = cluster.client_of(1).await;
    let b = cluster.client_of(2).await;
    a.create("/q", b"", CreateMode::Persistent).await.expect("parent");
    let mut names = Vec::new();
    for c in [&a, &b, &a] {
        names.push(c.create("/q/item-", b"", CreateMode::PersistentSequential).await.expect("seq"));
    }
    assert_eq!(names, ["/q/item-0000000000", "/q/item-0000000001", "/q/item-0000000002"]);
    let eph = b.create("/q/lock-", b"", CreateMode::EphemeralSequential).await.expect("ephemeral");
    assert_eq!(eph, "/q/lock-0000000003");
    assert_eq!(
        b.create("/q/lock-0000000003/child", b"", CreateMode::Persistent).await,
        Err(Error::Api(warren_client::ApiError::NoChildrenForEphemerals {
            path: format!("{eph}/child")
        }))
    );
    a.sync("/").await.expect("sync");
    let stat = a.exists(&eph).await.expect("exists").expect("visible to others");
    assert_eq!(stat.ephemeral_owner, b.session().0);
    b.close().await.expect("close");
    for id in 1..=3 {
        let c = cluster.client_of(id).await;
        c.sync("/").await.expect("sync");
        assert_eq!(c.exists(&eph).await.expect("exists"), None, "n{id} still has {eph}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    // Proves that with the leader killed by SIGKILL during a stream of
    // writes from several clients, a new leader takes over, the clients go
    // on with the same sessions, every acknowledged write is present, and
    // all members end with the same digest.
    let mut cluster = Cluster::start("kill-leader", 3);
    let probe = cluster.client().await;
    probe.create("/w", b"", CreateMode::Persistent).await.expect("parent");
    let leader = probe.status().await.expect("status").leader.expect("a leader");
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        // Half the writers start on the leader (and must move), half on a
        // follower; each lists every member.
        let first = if w % 2 == 0 { leader } else { followers[(w / 2) as usize % 2] };
        let mut config = cluster.client_config();
        config.shuffle = false;
        config.servers = std::iter::once(first)
            .chain((1..=3).filter(|&i| i != first))
            .map(|i| cluster.files.nodes[&i].1)
            .collect();
        let client = common::retry(|| Client::connect(&config)).await;
        assert_eq!(client.status().await.expect("status").node, first);
        let session = client.session();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..60u64 {
                let path = format!("/w/c{w}-{i}");
                match client.create(&path, b"x", CreateMode::Persistent).await {
                    Ok(_) => acked.push(path),
                    Err(Error::Api(warren_client::ApiError::NodeExists { .. })) => acked.push(path),
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The same session, on a live member.
            assert_eq!(client.session(), session);
            let now = client.status().await.expect("status after the kill").node;
            (acked, now)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.kill(leader);
    let mut acked = Vec::new();
    for t in tasks {
        let (paths, now) = t.await.expect("writer");
        assert_ne!(now, leader, "a writer still reports the killed leader");
        acked.extend(paths);
    }
    assert!(acked.len() > 100, "only {} writes acknowledged", acked.len());
    let live: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let reader = cluster.client_of(live[0]).await;
    reader.sync("/").await.expect("sync");
    for path in &acked {
        assert!(reader.exists(path).await.expect("exists").is_some(), "acknowledged {path} lost");
    }
    let new_leader = reader.status().await.expect("status").leader;
    assert!(new_leader.is_some() && new_leader != Some(leader));
    cluster.restart(leader);
    cluster.converged(&[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_expires_everywhere_and_watchers_see_its_ephemerals_go() {
    // Proves a session whose client stops pinging is expired by the
    // leader on every member: its ephemeral goes and a watcher connected
    // elsewhere gets NodeDeleted.
    let cluster = Cluster::start("expiry", 3);
    let mut config = cluster.config_for(2);
    config.session_timeout = Duration::from_millis(1500);
    let doomed = common::retry(|| Client::connect(&config)).await;
    doomed.create("/member", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let watcher = cluster.client_of(3).await;
    watcher.sync("/").await.expect("sync");
    let (stat, watch) = watcher.exists_watch("/member").await.expect("watch");
    assert!(stat.is_some());
    // Every handle dropped: the client goes silent without closing.
    drop(doomed);
    let event = tokio::time::timeout(Duration::from_secs(10), watch.event())
        .await
        .expect("the session expired within 10 s")
        .expect("an event");
    assert_eq!(event.event, EventType::NodeDeleted);
    assert_eq!(event.path, "/member");
    for id in 1..=3 {
        let c = cluster.client_of(id).await;
        c.sync("/").await.expect("sync");
        assert_eq!(c.exists("/member").await.expect("exists"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_once_and_recursive_ones_follow_the_client_to_another_member() {
    // Proves a one-shot watch fires once, and a persistent-recursive watch
    // fires for every change below it, also after its client moved to
    // another member (its server killed).
    let mut cluster = Cluster::start("watches", 3);
    let probe = cluster.client().await;
    let leader = probe.status().await.expect("status").leader.expect("a leader");
    // The writer stays on the leader; the watcher starts on a follower and
    // moves to the other one when its server is killed.
    let writer = cluster.client_of(leader).await;
    writer.create("/app", b"", CreateMode::Persistent).await.expect("create");
    let mut config = cluster.client_config();
    config.shuffle = false;
    config.servers = (1..=3).filter(|&i| i != leader).map(|i| cluster.files.nodes[&i].1).collect();
    // A short timeout, so the client notices its server's silence within
    // 4 s (2/3 of it); the remaining 2 s are its time to reconnect before
    // the leader expires the session, on a machine that may be running
    // every other test's cluster too (3 s left only 1 s, and expired it
    // once in CI).
    config.session_timeout = Duration::from_secs(6);
    let watcher = common::retry(|| Client::connect(&config)).await;
    let first = watcher.status().await.expect("status").node;
    let (_, _, once) = watcher.get_data_watch("/app").await.expect("watch");
    let mut all = watcher.watch("/app", true).await.expect("recursive watch");
    writer.set_data("/app", b"1", None).await.expect("set");
    writer.set_data("/app", b"2", None).await.expect("set");
    let event = once.event().await.expect("one-shot fires");
    assert_eq!((event.event, event.path.as_str()), (EventType::NodeDataChanged, "/app"));
    for _ in 0..2 {
        let e = all.next().await.expect("recursive event");
        assert_eq!((e.event, e.path.as_str()), (EventType::NodeDataChanged, "/app"));
    }
    cluster.kill(first);
    writer.create("/app/a", b"", CreateMode::Persistent).await.expect("create below");
    writer.set_data("/app/a", b"x", None).await.expect("set below");
    writer.delete("/app/a", None).await.expect("delete below");
    let mut got = Vec::new();
    while got.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(15), all.next())
            .await
            .expect("events after the move")
            .expect("stream open");
        got.push((e.event, e.path));
    }
    assert_eq!(
        got,
        [
            (EventType::NodeCreated, "/app/a".to_string()),
            (EventType::NodeDataChanged, "/app/a".to_string()),
            (EventType::NodeDeleted, "/app/a".to_string()),
        ]
    );
    let now = watcher.status().await.expect("status").node;
    assert_ne!(now, first, "the client moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_cleans_up_empty_containers_and_expired_ttl_nodes() {
    // Proves a container whose last child went, and a TTL node left
    // unmodified past its TTL, are removed by the leader on every member.
    let cluster = Cluster::start("cleanup", 3);
    let c = cluster.client_of(2).await;
    c.create("/box", b"", CreateMode::Container).await.expect("container");
    c.create("/box/item", b"", CreateMode::Persistent).await.expect("child");
    c.create("/lease", b"", CreateMode::PersistentWithTtl { ttl_ms: 500 }).await.expect("ttl");
    c.delete("/box/item", None).await.expect("delete child");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        c.sync("/").await.expect("sync");
        let box_gone = c.exists("/box").await.expect("exists").is_none();
        let lease_gone = c.exists("/lease").await.expect("exists").is_none();
        if box_gone && lease_gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "box gone {box_gone}, lease gone {lease_gone}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.converged(&[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_its_session_survives() {
    // Proves bounded memory per client: a session that never reads while
    // its watch fires tens of thousands of events has its stream reset
    // with the too-slow code, and its session stays usable from a new
    // connection.
    use warren_client::frame;
    use warren_client::wire::{ClientFrame, Hello, Request, ServerFrame};
    let cluster = Cluster::start("too-slow", 3);
    let conn = cluster.raw_connection(1).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let hello = Hello { timeout_ms: 30_000, ..Hello::default() };
    frame::write(&mut send, &ClientFrame::Hello(hello)).await.expect("hello");
    let Some(ServerFrame::Welcome(welcome)) =
        frame::read::<ServerFrame, _>(&mut recv, frame::FRAME_BYTES_MAX).await.expect("welcome")
    else {
        panic!("no welcome");
    };
    let watch =
        Request::AddWatch { path: "/".into(), kind: warren_client::WatchKind::PersistentRecursive };
    frame::write(&mut send, &ClientFrame::Request { xid: 1, request: watch }).await.expect("watch");
    // From here the raw client reads nothing. Another client makes events.
    let writer = cluster.client_of(2).await;
    writer.create("/flood", b"", CreateMode::Persistent).await.expect("parent");
    for batch in 0..80 {
        let ops = (0..1000)
            .map(|i| warren_client::Op::Create {
                path: format!("/flood/n{batch}-{i}"),
                data: vec![],
                acl: warren_client::Acl::open(),
                mode: CreateMode::Persistent,
            })
            .collect();
        writer.multi(ops).await.expect("multi");
    }
    // Now read what the server managed to send: it ends in a reset.
    let reset = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match frame::read::<ServerFrame, _>(&mut recv, frame::FRAME_BYTES_MAX).await {
                Ok(Some(_)) => continue,
                Ok(None) => return "ended".to_string(),
                Err(e) => return e.to_string(),
            }
        }
    })
    .await
    .ok();
    let reset = reset.expect("the stream was never cut off");
    assert!(reset.contains("reset") && reset.contains('1'), "unexpected end: {reset}");
    // The session lives on: a new stream resumes it.
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let hello = Hello {
        session: Some(welcome.session),
        secret: welcome.secret,
        timeout_ms: 30_000,
        ..Hello::default()
    };
    frame::write(&mut send, &ClientFrame::Hello(hello)).await.expect("hello");
    let first = frame::read::<ServerFrame, _>(&mut recv, frame::FRAME_BYTES_MAX).await;
    assert!(matches!(first, Ok(Some(ServerFrame::Welcome(w))) if w.session == welcome.session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_on_sighup_without_a_restart() {
    // Proves a node presents a newly issued certificate to new connections
    // after SIGHUP, and the old one before it, while it keeps serving.
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cluster = Cluster::start("reload", 3);
    let certs = cluster.dir().join("certs");
    let presented = || async {
        let conn = cluster.raw_connection(1).await;
        let chain = conn
            .peer_identity()
            .expect("a certificate")
            .downcast::<Vec<CertificateDer<'static>>>()
            .expect("a chain");
        chain[0].to_vec()
    };
    let old = CertificateDer::from_pem_file(certs.join("n1.pem")).expect("n1.pem").to_vec();
    assert_eq!(presented().await, old);
    // A new certificate for n1 from the same CA, put in place of the old.
    let issue = cluster.dir().join("issue");
    std::fs::create_dir_all(&issue).expect("dir");
    for f in ["ca.pem", "ca.key"] {
        std::fs::copy(certs.join(f), issue.join(f)).expect("copy the CA");
    }
    warren::tls::add_node(&issue, 1).expect("issue");
    for f in ["n1.pem", "n1.key"] {
        std::fs::copy(issue.join(f), certs.join(f)).expect("replace");
    }
    let new = CertificateDer::from_pem_file(certs.join("n1.pem")).expect("n1.pem").to_vec();
    assert_ne!(new, old);
    assert_eq!(presented().await, old, "changed before the reload");
    let pid = cluster.procs[0].as_ref().expect("n1 runs").id();
    // SAFETY: kill(2) with our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGHUP);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while presented().await != new {
        assert!(std::time::Instant::now() < deadline, "n1 still presents the old certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = cluster.client_of(1).await;
    c.create("/after-reload", b"", CreateMode::Persistent).await.expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_the_client_refuses_to_serve_it() {
    // Proves a server never takes a client back in time: resuming a session
    // with a last-seen zxid beyond what the server applied is refused with
    // Behind (the client then tries another server), while the true zxid
    // is welcomed.
    use warren_client::frame;
    use warren_client::wire::{ClientFrame, Hello, Refusal, ServerFrame};
    let cluster = Cluster::start("behind", 3);
    let client = cluster.client_of(1).await;
    let session = client.session();
    let applied = client.status().await.expect("status").applied;
    let conn = cluster.raw_connection(1).await;
    let secret = client.session_secret();
    let resume =
        |last_zxid| Hello { session: Some(session), secret, last_zxid, ..Hello::default() };
    let ahead = warren_client::Zxid(applied.0 + 1_000_000);
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    frame::write(&mut send, &ClientFrame::Hello(resume(ahead))).await.expect("hello");
    match frame::read::<ServerFrame, _>(&mut recv, frame::FRAME_BYTES_MAX).await {
        Ok(Some(ServerFrame::Refused(Refusal::Behind { client, .. }))) => assert_eq!(client, ahead),
        other => panic!("expected Refused(Behind), got {other:?}"),
    }
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    frame::write(&mut send, &ClientFrame::Hello(resume(applied))).await.expect("hello");
    match frame::read::<ServerFrame, _>(&mut recv, frame::FRAME_BYTES_MAX).await {
        Ok(Some(ServerFrame::Welcome(w))) => assert_eq!(w.session, session),
        other => panic!("expected Welcome, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_sharing_one_connector_are_separate_sessions() {
    // Proves sessions opened through one Connector (one QUIC endpoint) are
    // distinct sessions: closing one ends it and its ephemeral node, and
    // the other goes on working.
    let cluster = Cluster::start("connector", 3);
    let connector = warren_client::Connector::new(&cluster.client_config()).expect("connector");
    let a = connector.connect().await.expect("first session");
    let b = connector.connect().await.expect("second session");
    assert_ne!(a.session(), b.session());
    a.create("/a", b"", CreateMode::Ephemeral).await.expect("create through a");
    b.create("/b", b"", CreateMode::Ephemeral).await.expect("create through b");
    a.close().await.expect("close a");
    b.sync("/").await.expect("sync through b");
    assert_eq!(b.exists("/a").await.expect("exists /a"), None, "a's ephemeral outlived it");
    assert!(b.exists("/b").await.expect("exists /b").is_some(), "b's ephemeral went with a");
    b.create("/after", b"", CreateMode::Persistent).await.expect("b still writes");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_runs_with_transparent_huge_pages_off() {
    // Proves `warren serve` turns transparent huge pages off for itself,
    // as the kernel reports it in /proc/PID/status once the member serves.
    let cluster = Cluster::start("no-thp", 1);
    cluster.client().await.create("/up", b"", CreateMode::Persistent).await.expect("serving");
    let pid = cluster.procs[0].as_ref().expect("member 1 runs").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("THP_enabled line");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// How a member fails in [`a_client_moves_off_a_dead_or_stopped_member_and_keeps_its_session`].
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// SIGKILL.
    Killed,
    /// SIGSTOP: the process and its sockets stay, silent.
    Stopped,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moves_off_a_dead_or_stopped_member_and_keeps_its_session() {
    // Proves a client whose member is killed or stopped moves to a working
    // member on its own and keeps its session (its ephemeral node stays),
    // for a follower and for the leader. Prints each failover time (from
    // the fault to the first write answered again) for the notes; the
    // assertion is only that it came before the session could expire.
    let mut cluster = Cluster::start("failover", 3);
    let probe = cluster.client().await;
    probe.create("/probe", b"", CreateMode::Persistent).await.expect("probe");
    let mut round = 0;
    for failure in [Failure::Killed, Failure::Stopped] {
        for target in ["follower", "leader"] {
            round += 1;
            let leader = cluster.leader(&probe).await;
            let member = match target {
                "leader" => leader,
                _ => (1..=3).find(|&id| id != leader).expect("a follower"),
            };
            let mut config = cluster.client_config();
            let first = cluster.addr(member);
            config.servers.sort_by_key(|&addr| addr != first);
            config.shuffle = false;
            let client = retry(|| Client::connect(&config)).await;
            let ephemeral = format!("/alive-{round}");
            client.create(&ephemeral, b"", CreateMode::Ephemeral).await.expect("ephemeral");
            let pid = cluster.procs[(member - 1) as usize].as_ref().expect("running").id();
            let started = std::time::Instant::now();
            match failure {
                Failure::Killed => cluster.kill(member),
                Failure::Stopped => {
                    // SAFETY: kill(2) with a child's pid and a signal.
                    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                }
            }
            let answered = loop {
                let value = format!("{round}");
                if client.set_data("/probe", value.as_bytes(), None).await.is_ok() {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < client.session_timeout(),
                    "{failure:?} {target}: no write answered within the session timeout"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            println!("failover after a {failure:?} {target}: {} ms", answered.as_millis());
            assert!(
                client.exists(&ephemeral).await.expect("exists").is_some(),
                "{failure:?} {target}: the session's ephemeral node went, so the session did"
            );
            client.close().await.expect("close");
            match failure {
                Failure::Killed => cluster.restart(member),
                Failure::Stopped => {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                }
            }
            cluster.converged(&[1, 2, 3]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_added_with_add_auth_opens_a_digest_acl() {
    // Proves addAuth through the Rust client: a node whose ACL names only
    // digest:bob:<base64 sha1 of bob:pw> is refused to a session on another
    // member until the session adds bob's credentials, and read after.
    use base64::Engine as _;
    let cluster = Cluster::start("addauth", 3);
    let owner = cluster.client_of(1).await;
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, b"bob:pw");
    let bob = format!("bob:{}", base64::engine::general_purpose::STANDARD.encode(sha1.as_ref()));
    let acl = vec![Acl::new(Perms::ALL, Id::digest(bob))];
    owner.create_with_acl("/bobs", b"hi", acl, CreateMode::Persistent).await.expect("create");
    let reader = cluster.client_of(2).await;
    reader.sync("/").await.expect("sync");
    match reader.get_data("/bobs").await {
        Err(Error::Api(ApiError::NoAuth { .. })) => {}
        other => panic!("expected NoAuth before addAuth, got {other:?}"),
    }
    let wrong = reader.add_auth("ip", b"127.0.0.1").await;
    assert!(matches!(wrong, Err(Error::Api(ApiError::AuthFailed { .. }))), "{wrong:?}");
    reader.add_auth("digest", b"bob:pw").await.expect("addAuth");
    let (data, _) = reader.get_data("/bobs").await.expect("read after addAuth");
    assert_eq!(data, b"hi");
}
