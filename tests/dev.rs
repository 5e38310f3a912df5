//! `warren dev`, the README's run command, as a person uses it: it starts
//! a local cluster, stops it on SIGTERM (or Ctrl-C), and resumes the same
//! cluster and data when run again on the same directory.

mod common;

use common::TempDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warren_client::{Client, ClientConfig, CreateMode};

/// `warren dev` always uses ports 7001 and up (and 2181 and up for
/// ZooKeeper clients): its tests take turns.
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running `warren dev`. Dropped without [`stop`] (a test that failed
/// midway), it is still sent SIGTERM and waited for, so neither it nor its
/// nodes outlive the test and hold the fixed ports.
struct Dev(Option<Child>);

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            terminate(&child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &std::path::Path) -> Dev {
    let child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["dev", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warren dev");
    Dev(Some(child))
}

fn terminate(child: &Child) {
    // SAFETY: kill(2) with our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// SIGTERM, then wait (at most 20 s) for it and its nodes to be gone.
fn stop(mut dev: Dev, dir: &std::path::Path) {
    let mut child = dev.0.take().expect("warren dev runs");
    terminate(&child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
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
    // ports (ZooKeeper's 2181-2183 included), stops its nodes when
    // stopped, and a second run on the same directory serves the data
    // written in the first.
    let _ports = PORTS.lock().await;
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
    // It serves ZooKeeper clients on 127.0.0.1:2181-2183, every word
    // allowed.
    for port in 2181..=2183 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let srvr = common::zk::four_letter(addr, "srvr").unwrap_or_default();
        assert!(srvr.contains("Node count:"), "no ZooKeeper port on {addr}: {srvr:?}");
        assert_eq!(common::zk::four_letter(addr, "ruok").as_deref(), Some("imok"));
    }
    stop(dev, &cluster_dir);

    let dev = start(&cluster_dir);
    let client = common::retry(|| Client::connect(&config)).await;
    client.sync("/").await.expect("sync");
    let (data, _) = client.get_data("/kept").await.expect("the data survived");
    assert_eq!(data, b"across runs");
    client.close().await.expect("close");
    stop(dev, &cluster_dir);
}

#[tokio::test]
async fn dev_exits_with_the_reason_when_its_nodes_cannot_start() {
    // Proves `warren dev` does not claim a cluster that is not there: with
    // its ports taken, every node exits, it says which and why, and it
    // exits with an error.
    let _ports = PORTS.lock().await;
    // Held until the end; a port something else holds is just as taken.
    let _taken: Vec<_> = (7001..=7003)
        .filter_map(|port| std::net::UdpSocket::bind(("127.0.0.1", port)).ok())
        .collect();
    let dir = TempDir::new("dev-taken");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["dev", "--dir"])
        .arg(dir.0.join("warren-dev"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warren dev");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warren dev kept running with no node able to start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "warren dev exited successfully: {stderr}");
    assert!(stderr.contains("n1 exited") && stderr.contains("cannot listen on"), "{stderr}");
    assert!(stderr.contains("every node exited"), "{stderr}");
}
