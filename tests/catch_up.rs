//! End-to-end tests of a member that missed writes while it was down: it
//! catches up from the leader's log when the log still holds what it
//! missed, and from the leader's snapshot when the leader compacted past
//! it. Each test starts its own 3-node cluster of real processes.

mod common;

use common::{Cluster, snapshot_indexes, with_top_level};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use warren_client::{Client, CreateMode};

/// Applied entries between snapshots in the snapshot test.
const SNAPSHOT_EVERY: u64 = 50;

/// Creates `/{parent}/k{i}` holding `v{i}` for every `i` in `0..count`
/// through `client`, many at once (so they batch), and checks each was
/// created.
async fn write_many(client: &Client, parent: &str, count: usize) {
    client.create(parent, b"", CreateMode::Persistent).await.expect("create the parent");
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut writes = JoinSet::new();
        for &i in chunk {
            let client = client.clone();
            let path = format!("{parent}/k{i}");
            writes.spawn(async move {
                client.create(&path, format!("v{i}").as_bytes(), CreateMode::Persistent).await
            });
        }
        while let Some(result) = writes.join_next().await {
            result.expect("a writer task").expect("a create");
        }
    }
}

/// Checks that `client`'s server, after a sync, holds exactly the `count`
/// children of `parent` that [`write_many`] wrote, with their data.
async fn assert_serves(client: &Client, parent: &str, count: usize) {
    client.sync("/").await.expect("sync");
    let (names, _) = client.get_children(parent).await.expect("children");
    let expected: BTreeSet<String> = (0..count).map(|i| format!("k{i}")).collect();
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), expected);
    for i in [0, count / 2, count - 1] {
        let (data, _) = client.get_data(&format!("{parent}/k{i}")).await.expect("read");
        assert_eq!(data, format!("v{i}").as_bytes());
    }
}

/// The leader's newest snapshot index once it is within `SNAPSHOT_EVERY`
/// of what the leader applied, so no further snapshot is due (snapshots
/// are written in the background, a moment after the applies).
async fn settled_snapshot(cluster: &Cluster, leader_client: &Client, leader: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = leader_client.status().await.expect("status").applied.0;
        let newest = snapshot_indexes(&cluster.data_dir(leader)).last().copied();
        if let Some(newest) = newest
            && applied < newest + SNAPSHOT_EVERY
        {
            return newest;
        }
        assert!(
            Instant::now() < deadline,
            "the leader applied {applied} but its newest snapshot is {newest:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_from_the_log() {
    // Proves a follower killed by SIGKILL while 200 writes commit without
    // it serves all 200 after its restart, and every member ends on the
    // same applied zxid and digest.
    let mut cluster = Cluster::start("catch-up-log", 3);
    let probe = cluster.client().await;
    let leader = cluster.leader(&probe).await;
    let behind = (1..=3).find(|&id| id != leader).expect("a follower");
    cluster.kill(behind);
    let writer = cluster.client_of(leader).await;
    write_many(&writer, "/log", 200).await;
    cluster.restart(behind);
    let (applied, _) = cluster.converged(&[1, 2, 3]).await;
    assert!(applied >= 200, "converged on zxid {applied}, before the writes");
    assert_serves(&cluster.client_of(behind).await, "/log", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_snapshot_catches_up_from_it() {
    // Proves a follower that was down while the leader applied 600 writes
    // and compacted its log past the follower's last entry (snapshots
    // every 50 entries) converges to the same digest and serves the data,
    // and that it got there by installing the leader's snapshot: it holds
    // a snapshot file at or past the leader's newest snapshot index.
    let mut cluster = Cluster::start_with("catch-up-snap", 3, |text| {
        with_top_level(text, &format!("snapshot_every = {SNAPSHOT_EVERY}"))
    });
    let probe = cluster.client().await;
    let leader = cluster.leader(&probe).await;
    let behind = (1..=3).find(|&id| id != leader).expect("a follower");
    let writer = cluster.client_of(leader).await;
    cluster.kill(behind);
    // Nothing is proposed while no client writes, so the follower's log
    // ends at or below what the leader has committed now.
    let behind_last = writer.status().await.expect("status").commit;
    write_many(&writer, "/snap", 600).await;
    let leader_snapshot = settled_snapshot(&cluster, &writer, leader).await;
    assert!(
        leader_snapshot > behind_last,
        "the leader's newest snapshot {leader_snapshot} does not cover the follower's log end \
         {behind_last}, so the log path is still open"
    );
    cluster.restart(behind);
    cluster.converged(&[1, 2, 3]).await;
    // The leader may take another snapshot meanwhile (the sessions the
    // checks open are entries too), which the follower then installs
    // instead: either way it holds one at or past the leader's newest
    // from before, which its own log (compacted away) could not reach.
    let installed = snapshot_indexes(&cluster.data_dir(behind));
    assert!(
        installed.iter().any(|&i| i >= leader_snapshot),
        "n{behind} holds snapshots {installed:?}, none at or past the leader's {leader_snapshot}"
    );
    assert_serves(&cluster.client_of(behind).await, "/snap", 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_hears_from_the_leader_within_seconds() {
    // Proves a follower restarted right after a SIGKILL is back in step
    // (same applied zxid and digest as the others, its clients served)
    // within 8 s: an election timeout is 0.5 to 1 s here, so 8 s is
    // generous on a loaded machine, and still below the 10 s a link to the
    // dead process takes to time out.
    let mut cluster = Cluster::start("catch-up-quick", 3);
    let probe = cluster.client().await;
    let leader = cluster.leader(&probe).await;
    let behind = (1..=3).find(|&id| id != leader).expect("a follower");
    let writer = cluster.client_of(leader).await;
    cluster.kill(behind);
    write_many(&writer, "/quick", 10).await;
    let restarted = Instant::now();
    cluster.restart(behind);
    cluster.converged(&[1, 2, 3]).await;
    let took = restarted.elapsed();
    assert!(took < Duration::from_secs(8), "n{behind} took {took:?} to catch up after its restart");
}
