//! End-to-end tests of `warren bench` against a real 3-node cluster: each
//! workload the tool offers produces a sound JSON report (operations
//! counted, ordered percentiles, no errors, the servers' CPU time per
//! operation when their PIDs are known), and the run leaves nothing behind.

mod common;

use common::Cluster;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `warren ARGS` (no WARREN_CONFIG), waiting at most 60 s.
async fn warren(args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(Cluster::exe());
    command.args(args).env_remove("WARREN_LOG").env_remove("WARREN_CONFIG").kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("warren {args:?} ran over 60 s"))
        .expect("run the warren binary");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `warren bench --json --duration 1 --warmup 0 --clients 2 ARGS`
/// and checks what every report must show: operations counted, ordered
/// percentiles and no errors. Returns the report.
async fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench", "--json", "--duration", "1", "--warmup", "0", "--clients", "2"];
    all.extend_from_slice(args);
    let run = warren(&all).await;
    assert!(run.success, "bench {args:?} failed: {run:?}");
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("bench {args:?} printed no JSON ({e}): {run:?}"));
    assert!(report["ops"].as_u64().unwrap_or(0) > 0, "no operations counted: {report}");
    let latency = &report["latency_us"];
    let (p50, p99, p999) =
        (latency["p50"].as_u64(), latency["p99"].as_u64(), latency["p999"].as_u64());
    let (Some(p50), Some(p99), Some(p999)) = (p50, p99, p999) else {
        panic!("no percentiles: {report}");
    };
    assert!(p50 <= p99 && p99 <= p999, "percentiles out of order: {report}");
    assert!(p999 <= latency["max"].as_u64().unwrap_or(0), "p99.9 above the max: {report}");
    assert_eq!(report["errors_total"], 0, "errors: {report}");
    assert!(report["ops_per_s"].as_f64().unwrap_or(0.0) > 0.0, "no throughput: {report}");
    report
}

/// The report's server CPU seconds per operation, checked to be positive.
fn cpu_per_op(report: &Value) -> f64 {
    let per_op = report["cpu_seconds_per_op"].as_f64();
    let per_op = per_op.unwrap_or_else(|| panic!("no CPU per operation: {report}"));
    assert!(per_op > 0.0, "CPU per operation is not positive: {report}");
    assert_eq!(report["server_pids"].as_array().map(Vec::len), Some(3), "{report}");
    per_op
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_reports_sound_figures_and_cleans_up() {
    // Proves create, linearizable get, watch fan-out, counter and validator
    // plugin runs each count operations with ordered percentiles and no errors, that
    // server CPU per op is measured from --dev-dir and from --server-pids,
    // that the report names the client threads (--threads), and that no
    // node or plugin of a run is left behind.
    let cluster = Cluster::start("bench", 3);
    let admin = cluster.client().await;
    let dir = cluster.dir().to_str().expect("a UTF-8 path").to_owned();
    let config = cluster.files.client_config.to_str().expect("a UTF-8 path").to_owned();

    // create, with the PIDs and the client configuration from the dev dir.
    let create = bench(&["--workload", "create", "--dev-dir", &dir]).await;
    assert_eq!(create["parameters"]["workload"], "create");
    assert_eq!(create["parameters"]["clients"], 2);
    assert!(create["parameters"]["client_threads"].as_u64() >= Some(1), "{create}");
    cpu_per_op(&create);

    let get = bench(&[
        "--config",
        &config,
        "--workload",
        "get",
        "--read",
        "linearizable",
        "--keys",
        "20",
        "--threads",
        "2",
    ])
    .await;
    assert_eq!(get["parameters"]["read"], "linearizable");
    assert_eq!(get["parameters"]["client_threads"], 2);
    assert!(get["cpu_seconds_per_op"].is_null(), "CPU must be unknown without PIDs: {get}");

    let watch =
        bench(&["--config", &config, "--workload", "watch", "--watchers", "3", "--threads", "1"])
            .await;
    assert_eq!(watch["parameters"]["client_threads"], 1);
    assert_eq!(watch["parameters"]["watchers"], 3);
    assert_eq!(watch["parameters"]["clients"], 1, "the watch workload has one writer");

    let pids: Vec<String> = cluster
        .procs
        .iter()
        .map(|p| p.as_ref().expect("every node runs").id().to_string())
        .collect();
    let component = warren_plugins::path("counter");
    let counter = bench(&[
        "--config",
        &config,
        "--workload",
        "plugin",
        "--plugin",
        "counter",
        "--component",
        component.to_str().expect("a UTF-8 path"),
        "--keys",
        "5",
        "--in-flight",
        "2",
        "--server-pids",
        &pids.join(","),
    ])
    .await;
    assert_eq!(counter["parameters"]["plugin"], "counter");
    assert_eq!(counter["parameters"]["in_flight"], 2);
    cpu_per_op(&counter);

    let schema = warren_plugins::path("json-schema");
    let validated = bench(&[
        "--config",
        &config,
        "--workload",
        "plugin",
        "--plugin",
        "validator",
        "--component",
        schema.to_str().expect("a UTF-8 path"),
        "--keys",
        "5",
        "--value-size",
        "200",
    ])
    .await;
    assert_eq!(validated["parameters"]["value_size"], 200);

    // Every run deleted its nodes and removed its plugin.
    let (names, _) = admin.get_children("/").await.expect("list the root");
    assert!(!names.iter().any(|n| n.starts_with("bench-")), "left behind: {names:?}");
    let plugins = admin.list_plugins().await.expect("list the plugins");
    assert!(plugins.is_empty(), "plugins left behind: {plugins:?}");
    admin.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_refused_before_connecting() {
    // Proves a flag of another workload, a missing plugin component and an
    // out-of-range count are refused up front (no cluster, no config),
    // each with a message naming the flag or the next step.
    let wrong = warren(&["bench", "--workload", "set", "--read", "linearizable"]).await;
    assert!(!wrong.success);
    assert_eq!(wrong.stderr.lines().count(), 1, "{wrong:?}");
    assert!(wrong.stderr.contains("--read applies to --workload get only"), "{wrong:?}");

    let missing = Path::new("/nonexistent/counter.wasm").to_str().expect("a path");
    let run =
        warren(&["bench", "--workload", "plugin", "--plugin", "counter", "--component", missing])
            .await;
    assert!(!run.success);
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("cargo build -p warren-plugins"), "{run:?}");

    let no_plugin = warren(&["bench", "--workload", "plugin"]).await;
    assert!(no_plugin.stderr.contains("--plugin validator or --plugin counter"), "{no_plugin:?}");

    let zero = warren(&["bench", "--clients", "0"]).await;
    assert!(!zero.success);
    assert!(zero.stderr.contains("--clients"), "clap names the flag: {zero:?}");
    let zero = warren(&["bench", "--threads", "0"]).await;
    assert!(!zero.success);
    assert!(zero.stderr.contains("--threads"), "clap names the flag: {zero:?}");

    let no_config = warren(&["bench", "--workload", "set"]).await;
    assert!(no_config.stderr.contains("no client configuration"), "{no_config:?}");
}

#[cfg(not(feature = "compare"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_without_the_drivers_says_how_to_rebuild() {
    // Proves a warren built without the `compare` feature refuses `warren
    // bench compare` with ZooKeeper or etcd (its default systems) in one
    // sentence naming the rebuild, before it looks for any cluster, while
    // Warren alone gets as far as its client configuration.
    let runs: [&[&str]; 2] =
        [&["bench", "compare"], &["bench", "compare", "--systems", "warren,etcd"]];
    for args in runs {
        let run = warren(args).await;
        assert!(!run.success, "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains("--features compare"), "{run:?}");
    }
    let alone = warren(&["bench", "compare", "--systems", "warren"]).await;
    assert!(!alone.success);
    assert!(alone.stderr.contains("no client configuration"), "{alone:?}");
}
