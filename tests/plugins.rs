//! End-to-end tests of plugins on a real 3-node cluster: a schema validator
//! through leader changes and snapshot installs, a bounded counter under
//! concurrent clients, plugins stopped by their limits, and a new version
//! taking over at one zxid on every replica. Each test starts its own
//! cluster.

mod common;

use common::{Cluster, snapshot_indexes, with_top_level};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use warren_client::wire::Failure;
use warren_client::{
    ApiError, Client, CreateMode, Error, InstallOptions, PluginFailure, PluginInfo,
};

const SCHEMA: &str =
    r#"{"type":"object","required":["port"],"properties":{"port":{"type":"integer"}}}"#;

async fn install(
    client: &Client,
    name: &str,
    component: &str,
    options: InstallOptions,
) -> PluginInfo {
    client
        .install_plugin(name, warren_plugins::bytes(component), options)
        .await
        .unwrap_or_else(|e| panic!("install {component} as {name}: {e}"))
}

/// The API error a call failed with.
fn api(result: Result<impl std::fmt::Debug, Error>) -> ApiError {
    match result {
        Err(Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A create, retried for up to 20 s while the cluster cannot take it (a
/// member compiling a plugin can hold its thread past an election timeout
/// on a loaded machine, and a leader change fails what was in flight): the
/// answer the cluster gives once it takes the request. A retry after an
/// unknown outcome that finds the node there counts as created.
async fn create_when_taken(c: &Client, path: &str, data: &[u8]) -> Result<String, Error> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut unknown = false;
    loop {
        let result = c.create(path, data, CreateMode::Persistent).await;
        let transient = matches!(
            result,
            Err(Error::Failed(_) | Error::ConnectionLoss { .. } | Error::Timeout { .. })
        );
        unknown |= matches!(result, Err(Error::Failed(Failure::OutcomeUnknown { .. })));
        match result {
            Err(Error::Api(ApiError::NodeExists { .. })) if unknown => return Ok(path.into()),
            result if !transient || std::time::Instant::now() >= deadline => return result,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Asserts a client on every member gets the schema's rejection for a bad
/// document and is allowed a good one, each under a name of its own.
async fn schema_holds_everywhere(cluster: &Cluster, members: &[u64], round: &str) {
    for &id in members {
        let c = cluster.client_of(id).await;
        let path = format!("/config/{round}-n{id}");
        match api(create_when_taken(&c, &path, br#"{"port": "x"}"#).await) {
            ApiError::Rejected { plugin, reason, .. } => {
                assert_eq!(plugin, "schema");
                assert!(reason.contains("port"), "n{id}: the reason names the field: {reason}");
            }
            other => panic!("n{id}: not a rejection: {other:?}"),
        }
        create_when_taken(&c, &path, br#"{"port": 8080}"#)
            .await
            .unwrap_or_else(|e| panic!("n{id}: a valid document was refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_validator_holds_on_every_member_through_a_leader_change_and_a_snapshot() {
    // Proves a JSON-schema validator bound to /config rejects an invalid
    // write (with the reason) and accepts a valid one through every member;
    // still does after the leader is killed; and still does on a member
    // that restored from the leader's snapshot after missing the install.
    let mut cluster =
        Cluster::start_with("plugin-schema", 3, |text| with_top_level(text, "snapshot_every = 50"));
    let admin = cluster.client().await;
    let leader = cluster.leader(&admin).await;
    let behind = (1..=3).find(|&id| id != leader).expect("a follower");
    // The follower misses the install and the binding: it can only learn
    // them from the snapshot that replaces its log.
    let behind_applied = cluster.client_of(behind).await.status().await.expect("status").applied.0;
    cluster.kill(behind);
    let admin = cluster.client_of(leader).await;
    install(&admin, "schema", "json-schema", InstallOptions::default()).await;
    // Each member compiles the component as it applies the install, which
    // on a loaded machine can outlast an election timeout and move the
    // leadership of these two: wait until they agree again.
    let live: Vec<u64> = (1..=3).filter(|&id| id != behind).collect();
    cluster.converged(&live).await;
    let admin = cluster.client_of(cluster.leader(&admin).await).await;
    admin.bind_plugin("schema", "/config", SCHEMA.as_bytes()).await.expect("bind");
    create_when_taken(&admin, "/config", br#"{"port": 1}"#).await.expect("create");
    schema_holds_everywhere(&cluster, &live, "first").await;
    admin.create("/bulk", b"", CreateMode::Persistent).await.expect("bulk");
    for i in 0..120 {
        admin.create(&format!("/bulk/k{i}"), b"", CreateMode::Persistent).await.expect("bulk");
    }
    // The leader's log starts after its latest snapshot: one past what the
    // follower holds means the follower can only catch up by installing it.
    let leader_snapshot = snapshot_indexes(&cluster.data_dir(leader)).last().copied();
    assert!(
        leader_snapshot.is_some_and(|index| index > behind_applied + 1),
        "the leader's latest snapshot ({leader_snapshot:?}) does not cover past n{behind}'s log (applied {behind_applied}), so this proves nothing about restoring"
    );
    cluster.restart(behind);
    cluster.converged(&[1, 2, 3]).await;
    schema_holds_everywhere(&cluster, &[1, 2, 3], "restored").await;

    cluster.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let probe = cluster.client_of(others[0]).await;
    let new_leader = cluster.leader(&probe).await;
    assert_ne!(new_leader, leader);
    schema_holds_everywhere(&cluster, &others, "new-leader").await;
    cluster.restart(leader);
    cluster.converged(&[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_adding_to_a_bounded_counter_get_every_value_once() {
    // Proves the counter operation is atomic and bounded under concurrency:
    // 16 clients (spread over the members) each add 1 500 times to a
    // counter bounded at 6000; exactly 6000 adds succeed, they return each
    // value 1..=6000 exactly once, the rest are refused, the final value is
    // 6000, and every member ends with the same digest.
    const CLIENTS: usize = 16;
    const ADDS: usize = 500;
    const MAX: i64 = 6000;
    let cluster = Cluster::start("plugin-counter", 3);
    let admin = cluster.client().await;
    install(&admin, "counter", "counter", InstallOptions::default()).await;
    let mut tasks = JoinSet::new();
    for i in 0..CLIENTS {
        let client = cluster.client_of(i as u64 % 3 + 1).await;
        tasks.spawn(async move {
            let mut values = Vec::new();
            let mut refused = 0;
            let args = format!(r#"{{"delta": 1, "max": {MAX}}}"#);
            for _ in 0..ADDS {
                match client.invoke("counter", "/hits", args.as_bytes()).await {
                    Ok(invoked) => {
                        let text = String::from_utf8(invoked.output).expect("UTF-8");
                        values.push(text.parse::<i64>().expect("a number"));
                    }
                    Err(Error::Api(ApiError::PluginError { .. })) => refused += 1,
                    Err(e) => panic!("an add failed: {e}"),
                }
            }
            (values, refused)
        });
    }
    let mut values = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (v, r) = result.expect("a client task");
        values.extend(v);
        refused += r;
    }
    assert_eq!(values.len() as i64, MAX);
    assert_eq!(refused, CLIENTS * ADDS - MAX as usize);
    let distinct: BTreeSet<i64> = values.into_iter().collect();
    assert_eq!(distinct, (1..=MAX).collect::<BTreeSet<_>>(), "every value returned exactly once");
    cluster.converged(&[1, 2, 3]).await;
    for id in 1..=3 {
        let c = cluster.client_of(id).await;
        c.sync("/").await.expect("sync");
        assert_eq!(c.get_data("/hits").await.expect("read").0, MAX.to_string().as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_and_a_memory_bomb_fail_with_their_limits_everywhere() {
    // Proves a plugin that never returns fails with its fuel limit and one
    // that allocates without end with its memory limit, through every
    // member (each applies the entry itself), and the cluster keeps
    // serving and converges.
    let cluster = Cluster::start("plugin-limits", 3);
    let admin = cluster.client().await;
    let fuel = 2_000_000;
    let memory = 8 << 20;
    install(&admin, "spin", "testing/spin", InstallOptions { fuel, ..Default::default() }).await;
    install(
        &admin,
        "bomb",
        "testing/bomb",
        InstallOptions { memory_bytes: memory, ..Default::default() },
    )
    .await;
    for id in 1..=3 {
        let c = cluster.client_of(id).await;
        assert_eq!(
            api(c.invoke("spin", "/x", b"").await),
            ApiError::PluginFailed {
                plugin: "spin".into(),
                why: PluginFailure::OutOfFuel { limit: fuel }
            },
            "n{id}"
        );
        match api(c.invoke("bomb", "/x", b"").await) {
            ApiError::PluginFailed { why: PluginFailure::MemoryLimit { limit, .. }, .. } => {
                assert_eq!(limit, memory, "n{id}")
            }
            other => panic!("n{id}: expected the memory limit, got {other:?}"),
        }
        c.create(&format!("/alive-{id}"), b"", CreateMode::Persistent)
            .await
            .expect("still serving");
    }
    cluster.converged(&[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_at_one_zxid_on_every_member() {
    // Proves reinstalling a plugin during a stream of invocations switches
    // every replica at the install's zxid: every invocation before it ran
    // the old code and every one after it the new, as the callers saw and
    // as each member's copy of the written nodes shows.
    let cluster = Cluster::start("plugin-upgrade", 3);
    let admin = cluster.client().await;
    admin.create("/s", b"", CreateMode::Persistent).await.expect("create");
    install(&admin, "stamp", "testing/stamp-a", InstallOptions::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for id in 1..=3u64 {
        let client = cluster.client_of(id).await;
        let stop = stop.clone();
        writers.spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) || seen.len() < 20 {
                let invoked = client.invoke("stamp", "/s", b"").await.expect("invoke");
                let text = String::from_utf8(invoked.output).expect("UTF-8");
                let (letter, zxid) = text.split_once(':').expect("letter:zxid");
                seen.push((letter.to_string(), zxid.parse::<u64>().expect("zxid")));
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v2 = install(&admin, "stamp", "testing/stamp-b", InstallOptions::default()).await;
    let switch = v2.installed.0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut before = 0;
    let mut after = 0;
    while let Some(result) = writers.join_next().await {
        for (letter, zxid) in result.expect("a writer task") {
            let expected = if zxid < switch { "a" } else { "b" };
            assert_eq!(letter, expected, "the invocation at zxid {zxid} (switch at {switch})");
            if zxid < switch { before += 1 } else { after += 1 }
        }
    }
    assert!(before > 0 && after > 0, "{before} invocations before the switch, {after} after");
    cluster.converged(&[1, 2, 3]).await;
    for id in 1..=3 {
        let c = cluster.client_of(id).await;
        c.sync("/").await.expect("sync");
        let plugins = c.list_plugins().await.expect("ls");
        assert_eq!((plugins[0].version, plugins[0].installed.0), (2, switch), "n{id}");
        let (names, _) = c.get_children("/s").await.expect("children");
        for name in names {
            let (data, stat) = c.get_data(&format!("/s/{name}")).await.expect("read");
            let expected: &[u8] = if stat.czxid.0 < switch { b"a" } else { b"b" };
            assert_eq!(data, expected, "n{id}: /s/{name} created at {}", stat.czxid.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_refuses_a_zookeeper_clients_write_with_bad_arguments() {
    // Proves a validator bound to /config holds for writes from ZooKeeper
    // clients too: an invalid create or setData through the ZooKeeper
    // port fails with BadArguments (-8), a valid one succeeds, and the
    // reason is in the node's log at info.
    use common::zk::{Script, create, set_data};
    use warren::zookeeper::records::op;
    let mut cluster = Cluster::start("plugin-zookeeper", 3);
    cluster.kill(1);
    cluster.restart_with(1, &[("WARREN_LOG", "warn,warren::zookeeper=info")]);
    let admin = cluster.client().await;
    install(&admin, "schema", "json-schema", InstallOptions::default()).await;
    cluster.converged(&[1, 2, 3]).await;
    let admin = cluster.client_of(cluster.leader(&admin).await).await;
    admin.bind_plugin("schema", "/config", SCHEMA.as_bytes()).await.expect("bind");
    create_when_taken(&admin, "/config", br#"{"port": 1}"#).await.expect("create");
    cluster.converged(&[1, 2, 3]).await;
    let addr = cluster.files.zookeeper[&1];
    let lines = tokio::task::spawn_blocking(move || {
        let mut s = Script::new(addr);
        s.open("zk", 10_000);
        s.call("zk", op::CREATE, create("/config/bad", r#"{"port": "x"}"#, 0));
        s.call("zk", op::CREATE, create("/config/good", r#"{"port": 2}"#, 0));
        s.call("zk", op::SET_DATA, set_data("/config", r#"{"port": []}"#, -1));
        s.call("zk", op::SET_DATA, set_data("/config", r#"{"port": 3}"#, -1));
        s.lines
    })
    .await
    .expect("the ZooKeeper client");
    let errs: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(": ").nth(1).unwrap_or(l).split(" |").next().unwrap_or(l))
        .collect();
    assert_eq!(errs, ["err -8", "err 0", "err -8", "err 0"], "{lines:?}");
    let log = cluster.log(1);
    assert!(
        log.contains("a ZooKeeper client's write was refused") && log.contains("port"),
        "the reason is not in n1's log:\n{log}"
    );
}
