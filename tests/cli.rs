//! End-to-end tests of the `warren` command line against a running
//! cluster: what each client command prints on success, and that each
//! failure exits non-zero with one sentence naming the problem. Each test
//! that needs a cluster starts its own 3-node cluster.

mod common;

use common::Cluster;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts the run failed with exactly one line of error, prefixed as
    /// `main` prefixes them, and returns that line.
    fn one_sentence_failure(&self) -> &str {
        assert!(!self.success, "expected a failure: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line of error: {self:?}");
        assert!(lines[0].starts_with("warren: "), "unprefixed error: {self:?}");
        lines[0]
    }

    fn json(&self) -> Value {
        assert!(self.success, "failed: {self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

/// Runs `warren ARGS` with `WARREN_CONFIG` set to `config` (or unset), in
/// the default log level, waiting at most 30 s.
async fn warren(config: Option<&Path>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(Cluster::exe());
    command.args(args).env_remove("WARREN_LOG").kill_on_drop(true);
    match config {
        Some(path) => command.env("WARREN_CONFIG", path),
        None => command.env_remove("WARREN_CONFIG"),
    };
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("warren {args:?} ran over 30 s"))
        .expect("run the warren binary");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts a cluster and waits until it opens sessions.
async fn ready_cluster(name: &str) -> Cluster {
    let cluster = Cluster::start(name, 3);
    cluster.client().await.close().await.expect("close the readiness session");
    cluster
}

/// The members of `warren status --json`, checked to have answered.
fn members(run: &Run) -> Vec<Value> {
    let json = run.json();
    let members = json["members"].as_array().expect("a members array").clone();
    for m in &members {
        assert!(m.get("error").is_none(), "a member did not answer: {m}");
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_commands_print_results_and_fail_with_one_sentence() {
    // Proves create/get/ls print what they did (ls --json as valid JSON),
    // and that a wrong version, a missing node and a contradictory create
    // each exit non-zero with one sentence naming the problem, changing
    // nothing.
    let cluster = ready_cluster("cli-nodes").await;
    let config = Some(cluster.files.client_config.as_path());

    let created = warren(config, &["create", "/a", "hello"]).await;
    assert!(created.success, "{created:?}");
    assert_eq!(created.stdout, "/a\n");
    let got = warren(config, &["get", "/a"]).await;
    assert!(got.success, "{got:?}");
    assert_eq!(got.stdout, "hello\n");

    let set = warren(config, &["set", "/a", "x", "-v", "5"]).await;
    let error = set.one_sentence_failure();
    assert!(error.contains("/a") && error.contains("version"), "{error}");
    assert_eq!(set.stdout, "");
    assert_eq!(warren(config, &["get", "/a"]).await.stdout, "hello\n", "the refused set wrote");

    let ls = warren(config, &["ls", "/", "--json"]).await.json();
    let children = ls["children"].as_array().expect("a children array");
    assert!(children.contains(&Value::from("a")), "{ls}");

    let missing = warren(config, &["stat", "/missing"]).await;
    assert!(missing.one_sentence_failure().contains("/missing"), "{missing:?}");

    let both = warren(config, &["create", "-e", "-c", "/x"]).await;
    let error = both.one_sentence_failure();
    assert!(error.contains("-e") && error.contains("-c"), "{error}");
    let x = warren(config, &["stat", "/x"]).await;
    assert!(x.one_sentence_failure().contains("/x"), "the refused create made /x: {x:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_lists_every_member_and_one_leader() {
    // Proves `status --json` lists each of the 3 members once, all
    // answering, agreeing on one leader that calls itself leader.
    let cluster = ready_cluster("cli-status").await;
    let config = Some(cluster.files.client_config.as_path());
    let members = members(&warren(config, &["status", "--json"]).await);
    assert_eq!(members.len(), 3, "{members:?}");
    let nodes: BTreeSet<u64> = members.iter().map(|m| m["node"].as_u64().expect("node")).collect();
    assert_eq!(nodes, BTreeSet::from([1, 2, 3]));
    let leaders: BTreeSet<u64> =
        members.iter().map(|m| m["leader"].as_u64().expect("a leader is known")).collect();
    assert_eq!(leaders.len(), 1, "members disagree on the leader: {members:?}");
    let leader = leaders.into_iter().next().expect("one leader");
    let roles: Vec<(u64, &str)> = members
        .iter()
        .map(|m| (m["node"].as_u64().expect("node"), m["role"].as_str().expect("role")))
        .collect();
    for (node, role) in roles {
        assert_eq!(role == "leader", node == leader, "n{node} is {role}; leader is n{leader}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_one_digest_on_a_quiet_synced_cluster() {
    // Proves that on a cluster with no writes going on, after `sync /`,
    // `status --json` shows every member with the same digest (what an
    // operator reads it for), within 10 s of tries.
    let cluster = ready_cluster("cli-digest").await;
    let config = Some(cluster.files.client_config.as_path());
    assert!(warren(config, &["create", "/d", "x"]).await.success);
    assert!(warren(config, &["sync", "/"]).await.success);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let members = members(&warren(config, &["status", "--json"]).await);
        let digests: BTreeSet<String> =
            members.iter().map(|m| m["digest"].as_str().expect("digest").to_owned()).collect();
        if members.len() == 3 && digests.len() == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "members never showed one digest: {members:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_without_a_configuration_names_warren_config() {
    // Proves a client command with neither WARREN_CONFIG nor --config
    // exits non-zero with one sentence telling how to give a
    // configuration.
    let run = warren(None, &["get", "/a"]).await;
    let error = run.one_sentence_failure();
    assert!(error.contains("WARREN_CONFIG") && error.contains("--config"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_commands_install_bind_invoke_list_and_remove() {
    // Proves the `warren plugin` commands drive a plugin's whole life from
    // files: install (the SHA-256 and size the client sends are the file's),
    // ls --json with versions and worlds, a bound json-schema validator
    // refusing a bad create with one sentence naming the plugin and the
    // field and taking a good one, a counter operation printing its new
    // value, a schema it does not support refused at bind with the reason,
    // rm refused while bound, unbind then rm, and a missing file or
    // a bad --memory-mib refused before anything is sent.
    let cluster = ready_cluster("cli-plugins").await;
    let config = Some(cluster.files.client_config.as_path());
    let counter = warren_plugins::path("counter");
    let schema_validator = warren_plugins::path("json-schema");

    let installed = warren(config, &["plugin", "install", "counter", path_str(&counter), "--json"])
        .await
        .json();
    let bytes = std::fs::read(&counter).expect("read counter.wasm");
    let sha256: String = ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(installed["sha256"], Value::from(sha256), "{installed}");
    assert_eq!(installed["bytes"], Value::from(bytes.len()), "{installed}");
    assert_eq!(installed["version"], Value::from(1), "{installed}");
    let run =
        warren(config, &["plugin", "install", "json-schema", path_str(&schema_validator)]).await;
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains("world = validator"), "{run:?}");

    let listed = warren(config, &["plugin", "ls", "--json"]).await.json();
    let plugins = listed["plugins"].as_array().expect("a plugins array");
    let seen: Vec<(&str, u64, &str)> = plugins
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name");
            (name, p["version"].as_u64().expect("version"), p["world"].as_str().expect("world"))
        })
        .collect();
    assert_eq!(seen, [("counter", 1, "operation"), ("json-schema", 1, "validator")], "{listed}");

    let schema = cluster.dir().join("config.schema.json");
    std::fs::write(&schema, r#"{"type":"int"}"#).expect("write a bad schema");
    let refused = warren(
        config,
        &["plugin", "bind", "json-schema", "/config", "--config", path_str(&schema)],
    )
    .await;
    let error = refused.one_sentence_failure();
    assert!(
        error.contains("json-schema")
            && error.contains("/config")
            && error.contains(r#"unknown type "int""#),
        "{error}"
    );
    std::fs::write(
        &schema,
        r#"{"type":"object","required":["port"],"properties":{"port":{"type":"integer"}}}"#,
    )
    .expect("write the schema");
    let run = warren(
        config,
        &["plugin", "bind", "json-schema", "/config", "--config", path_str(&schema)],
    )
    .await;
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains("binding = /config"), "{run:?}");
    let bad = warren(config, &["create", "/config", r#"{"port":"x"}"#]).await;
    let error = bad.one_sentence_failure();
    assert!(error.contains("json-schema") && error.contains("port"), "{error}");
    let good = warren(config, &["create", "/config", r#"{"port":8080}"#]).await;
    assert!(good.success, "{good:?}");

    assert!(warren(config, &["create", "/counters"]).await.success);
    let first =
        warren(config, &["plugin", "invoke", "counter", "/counters/a", r#"{"delta":5}"#]).await;
    assert!(first.success, "{first:?}");
    assert_eq!(first.stdout, "5\n");
    let second =
        warren(config, &["plugin", "invoke", "counter", "/counters/a", r#"{"delta":5}"#]).await;
    assert!(second.success, "{second:?}");
    assert_eq!(second.stdout, "10\n");
    assert_eq!(warren(config, &["get", "/counters/a"]).await.stdout, "10\n");

    let bound = warren(config, &["plugin", "rm", "json-schema"]).await;
    let error = bound.one_sentence_failure();
    assert!(error.contains("json-schema") && error.contains("unbind"), "{error}");
    let unbound = warren(config, &["plugin", "unbind", "json-schema", "/config"]).await;
    assert!(unbound.success, "{unbound:?}");
    assert!(!unbound.stdout.contains("binding ="), "{unbound:?}");
    let removed = warren(config, &["plugin", "rm", "json-schema"]).await;
    assert!(removed.success, "{removed:?}");
    let listed = warren(config, &["plugin", "ls", "--json"]).await.json();
    let names: Vec<&str> = listed["plugins"]
        .as_array()
        .expect("a plugins array")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["counter"], "{listed}");
    let unchecked = warren(config, &["set", "/config", "not json"]).await;
    assert!(unchecked.success, "the removed validator still ran: {unchecked:?}");

    let missing = warren(config, &["plugin", "install", "x", "/nonexistent.wasm"]).await;
    assert!(missing.one_sentence_failure().contains("/nonexistent.wasm"), "{missing:?}");
    let too_big =
        warren(config, &["plugin", "install", "x", path_str(&counter), "--memory-mib", "0"]).await;
    assert!(!too_big.success && too_big.stderr.contains("--memory-mib"), "{too_big:?}");
    let listed = warren(config, &["plugin", "ls", "--json"]).await.json();
    assert_eq!(listed["plugins"].as_array().map(Vec::len), Some(1), "a refused install: {listed}");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
