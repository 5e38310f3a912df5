//! A small closed-loop load against a running cluster (the seed of
//! `warren bench`): N clients, each with its own session, creating unique
//! nodes of B bytes for S seconds; prints creates per second and latency
//! percentiles.
//!
//! Run a cluster (`warren dev`), then:
//! `cargo run --release -p warren --example cluster_load -- --config warren-dev/client.toml --clients 16 --seconds 10 --size 1024`

use std::time::{Duration, Instant};
use warren_client::{Client, ClientConfig, CreateMode};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = arg(&args, "--config", "warren-dev/client.toml");
    let clients: usize = arg(&args, "--clients", "16").parse().expect("--clients N");
    let seconds: u64 = arg(&args, "--seconds", "10").parse().expect("--seconds S");
    let size: usize = arg(&args, "--size", "1024").parse().expect("--size B");
    let config = ClientConfig::load(config.as_ref()).unwrap_or_else(|e| panic!("{e}"));
    let root = format!("/load-{}", std::process::id());
    let setup = Client::connect(&config).await.unwrap_or_else(|e| panic!("{e}"));
    setup.create(&root, b"", CreateMode::Persistent).await.expect("root");
    let value = vec![b'x'; size];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let config = config.clone();
        let root = root.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(&config).await.unwrap_or_else(|e| panic!("{e}"));
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                client
                    .create(&format!("{root}/c{c}-{n}"), &value, CreateMode::Persistent)
                    .await
                    .expect("create");
                latencies.push(t.elapsed().as_micros() as u64);
                n += 1;
            }
            let _ = client.close().await;
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{clients} clients, {size} B values, {seconds} s: {} creates, {:.0}/s; latency p50 {} us, p99 {} us, p99.9 {} us",
        all.len(),
        all.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
}
