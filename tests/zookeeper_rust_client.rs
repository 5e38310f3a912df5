//! The Rust `zookeeper-client` crate, unchanged, against a 3-node Warren
//! cluster's ZooKeeper ports: its API end to end, and its session,
//! ephemerals and watches across the leader's death.

mod common;

use common::Cluster;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

async fn connect(cluster: &Cluster) -> zk::Client {
    let hosts: Vec<String> = cluster.files.zookeeper.values().map(|a| a.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(10));
        match tokio::time::timeout(Duration::from_secs(5), connector.connect(&hosts.join(",")))
            .await
        {
            Ok(Ok(client)) => return client,
            other => assert!(Instant::now() < deadline, "no session within 30 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The member whose `srvr` says it leads.
fn leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (&id, &addr) in &cluster.files.zookeeper {
            if common::zk::four_letter(addr, "srvr").is_some_and(|t| t.contains("Mode: leader")) {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no member says it leads");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Retries a request that may meet the leader change (the crate fails
/// requests in flight when its connection drops).
async fn retried<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, zk::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e @ (zk::Error::ConnectionLoss | zk::Error::Timeout)) => {
                assert!(Instant::now() < deadline, "still failing after 30 s: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a request failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_zookeeper_client_works_across_a_leader_change() {
    // Proves the zookeeper-client crate's creates, reads, writes, multi,
    // one-shot and persistent recursive watches and ephemerals work
    // against Warren, and that across the leader's death its session
    // stays (same id, its ephemeral still there) and a one-shot watch set
    // before it fires after it.
    let mut cluster = Cluster::start("zk-rust-client", 3);
    let client = connect(&cluster).await;
    let session = client.session_id();
    client.create("/rc", b"v0", &OPEN).await.expect("create");
    client.create("/rc/eph", b"", &EPHEMERAL).await.expect("create an ephemeral");
    let (data, stat) = client.get_data("/rc").await.expect("get");
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));
    let stat = client.set_data("/rc", b"v1", Some(0)).await.expect("set");
    assert_eq!(stat.version, 1);
    assert!(matches!(client.set_data("/rc", b"x", Some(0)).await, Err(zk::Error::BadVersion)));
    let mut writer = client.new_multi_writer();
    writer.add_create("/rc/a", b"a", &OPEN).expect("a create");
    writer.add_set_data("/rc", b"v2", Some(1)).expect("a set");
    writer.add_check_version("/rc/a", 0).expect("a check");
    assert_eq!(writer.commit().await.expect("multi").len(), 3);
    let (config, _) = client.get_config().await.expect("/zookeeper/config");
    let config = String::from_utf8_lossy(&config).into_owned();
    assert!(config.contains("server.1=") && config.ends_with("version=0"), "{config}");
    let mut children = client.list_children("/rc").await.expect("children");
    children.sort();
    assert_eq!(children, ["a", "eph"]);

    let mut recursive =
        client.watch("/rc", zk::AddWatchMode::PersistentRecursive).await.expect("recursive");
    client.create("/rc/a/b", b"", &OPEN).await.expect("create under the watch");
    let event = tokio::time::timeout(Duration::from_secs(10), recursive.changed())
        .await
        .expect("the recursive watch fires");
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeCreated, "/rc/a/b"));
    // Across the leader change only one-shot watches are followed: this
    // version of the crate re-sends persistent watches on a reconnect with
    // setWatches, which has no place for them (its resend_watches never
    // raises the opcode to setWatches2), so ZooKeeper would lose them too.
    drop(recursive);
    let (_, _, oneshot) = client.get_and_watch_data("/rc").await.expect("watch");

    let killed = leader(&cluster);
    cluster.kill(killed);
    retried(|| client.set_data("/rc", b"after", None)).await;
    let event = tokio::time::timeout(Duration::from_secs(20), oneshot.changed())
        .await
        .expect("the one-shot watch fires");
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeDataChanged, "/rc"));
    assert_eq!(client.session_id(), session, "the session changed");
    let (data, _) = retried(|| client.get_data("/rc")).await;
    assert_eq!(data, b"after");
    assert!(
        retried(|| client.check_stat("/rc/eph")).await.is_some(),
        "the ephemeral went with the leader"
    );
    eprintln!("killed n{killed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocols_share_one_tree_and_one_kind_of_session() {
    // Proves a ZooKeeper session and a Warren session are the same kind:
    // each reads what the other wrote, a ZooKeeper session's ephemeral
    // names that session as its owner to Warren's client, a Warren
    // watch fires for a ZooKeeper client's write, and closing the
    // ZooKeeper session removes its ephemeral for Warren's client.
    let cluster = Cluster::start("zk-both-protocols", 3);
    let zk = connect(&cluster).await;
    let warren = cluster.client().await;
    warren
        .create("/both", b"from warren", warren_client::CreateMode::Persistent)
        .await
        .expect("create");
    // Reads are answered by the member a session is on: as with
    // ZooKeeper, another session's write is seen there after a sync.
    zk.sync("/both").await.expect("sync");
    let (data, _) = zk.get_data("/both").await.expect("ZooKeeper reads Warren's node");
    assert_eq!(data, b"from warren");
    zk.create("/both/eph", b"from zookeeper", &EPHEMERAL).await.expect("create an ephemeral");
    warren.sync("/").await.expect("sync");
    let (data, stat) = warren.get_data("/both/eph").await.expect("Warren reads the ephemeral");
    assert_eq!(data, b"from zookeeper");
    assert_eq!(
        stat.ephemeral_owner,
        zk.session_id().0 as u64,
        "the owner is the ZooKeeper session"
    );
    let (_, _, changed) = warren.get_data_watch("/both").await.expect("a Warren watch");
    zk.set_data("/both", b"changed by zookeeper", None).await.expect("set");
    let event = tokio::time::timeout(Duration::from_secs(10), changed.event())
        .await
        .expect("the watch fires");
    assert_eq!(event.map(|e| e.path).as_deref(), Some("/both"));
    drop(zk);
    let deadline = Instant::now() + Duration::from_secs(10);
    while warren.exists("/both/eph").await.expect("exists").is_some() {
        assert!(Instant::now() < deadline, "the closed session's ephemeral stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
