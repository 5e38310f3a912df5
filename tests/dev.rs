//! `warren dev`, the README's run command, as a person uses it: it starts
//! a local cluster, stops it on SIGTERM (or Ctrl-C), and resumes the same
//! cluster and data when run again on the same directory.

mod common;

use common::TempDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warren_client::{Client, ClientConfig, CreateMode};

fn start(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["dev", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warren dev")
}

/// SIGTERM, then wait (at most 20 s) for it and its nodes to be gone.
fn stop(mut dev: Child, dir: &std::path::Path) {
    // SAFETY: kill(2) with our own child's pid.
    unsafe {
        libc::kill(dev.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while dev.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "warren dev did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in 1..=3 {
        let pid: i32 = std::fs::read_to_string(dir.join(format!("n{id}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "node n{id} (pid {pid}) outlived warren dev");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_cluster_and_resumes_it_with_its_data() {
    // Proves `warren dev` starts a working 3-node cluster on the fixed
    // ports, stops its nodes when stopped, and a second run on the same
    // directory serves the data written in the first.
    let dir = TempDir::new("dev");
    let cluster_dir = dir.0.join("warren-dev");
    let dev = start(&cluster_dir);
    let config_path = cluster_dir.join("client.toml");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !config_path.exists() {
        assert!(Instant::now() < deadline, "no client.toml written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = ClientConfig::load(&config_path).expect("client config");
    assert_eq!(config.servers.len(), 3);
    let client = common::retry(|| Client::connect(&config)).await;
    client.create("/kept", b"across runs", CreateMode::Persistent).await.expect("create");
    client.close().await.expect("close");
    stop(dev, &cluster_dir);

    let dev = start(&cluster_dir);
    let client = common::retry(|| Client::connect(&config)).await;
    client.sync("/").await.expect("sync");
    let (data, _) = client.get_data("/kept").await.expect("the data survived");
    assert_eq!(data, b"across runs");
    client.close().await.expect("close");
    stop(dev, &cluster_dir);
}
