//! `warren bench compare`: one suite of workloads run against several
//! systems (Warren, Apache ZooKeeper, etcd), one cell after another, and
//! one table of the results: a row per workload, per system its ops/s,
//! p50, p99 and server CPU per operation, then the ratios of the first
//! system to each other one.
//!
//! This part knows nothing of ZooKeeper or etcd: it runs any [`System`]
//! and renders any set of [`Report`]s, so it is built (and its table
//! tested) without the `compare` feature that brings their drivers
//! (`zookeeper.rs`, `etcd.rs`).

use super::report::micros;
use super::{Params, ReadMode, Report, Session, System, Workload};
use crate::bench::warren::Warren;
use serde_json::{Value, json};
use std::fmt::Write;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use warren_client::ClientConfig;

/// One workload of a comparison: a row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Unique nodes created by [`Settings::clients`] clients.
    Create,
    /// Overwrites of one of the keys.
    Set,
    /// Reads from the connected member's state.
    GetLocal,
    /// A sync, then a local read (two requests).
    GetSync,
    /// Reads that see every acknowledged write, in one request.
    GetLinearizable,
    /// 90 % local reads, 10 % sets.
    Mixed,
    /// Unique nodes created by one client, one at a time: the latency of a
    /// lone write.
    CreateOne,
    /// One writer, [`Settings::watchers`] watchers: write to the last
    /// notification.
    Watch,
}

impl Case {
    /// Issue 7's target table, the default suite.
    pub const TARGET: [Case; 7] = [
        Case::Create,
        Case::Set,
        Case::GetLocal,
        Case::GetLinearizable,
        Case::Mixed,
        Case::CreateOne,
        Case::Watch,
    ];

    /// The name on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Case::Create => "create",
            Case::Set => "set",
            Case::GetLocal => "get-local",
            Case::GetSync => "get-sync",
            Case::GetLinearizable => "get-linearizable",
            Case::Mixed => "mixed",
            Case::CreateOne => "create-1",
            Case::Watch => "watch",
        }
    }

    /// The run's parameters: the workload, its clients and the shared
    /// settings; no server PIDs (they differ per system).
    pub fn params(self, settings: &Settings) -> Params {
        let (workload, clients) = match self {
            Case::Create => (Workload::Create { sequential: false }, settings.clients),
            Case::Set => (Workload::Set, settings.clients),
            Case::GetLocal => (Workload::Get { read: ReadMode::Local }, settings.clients),
            Case::GetSync => (Workload::Get { read: ReadMode::Sync }, settings.clients),
            Case::GetLinearizable => {
                (Workload::Get { read: ReadMode::Linearizable }, settings.clients)
            }
            Case::Mixed => (Workload::Mixed { read_ratio: 0.9 }, settings.clients),
            Case::CreateOne => (Workload::Create { sequential: false }, 1),
            Case::Watch => (Workload::Watch { watchers: settings.watchers }, 1),
        };
        let mut params = Params::new(workload);
        params.clients = clients;
        params.keys = settings.keys;
        params.value_size = settings.value_size;
        params.warmup = settings.warmup;
        params.duration = settings.duration;
        params
    }

    /// The row's label in the table.
    pub fn label(self, settings: &Settings) -> String {
        let clients = settings.clients;
        match self {
            Case::Create => format!("create, {clients} clients"),
            Case::Set => format!("set, {clients} clients"),
            Case::GetLocal => format!("get local, {clients} clients"),
            Case::GetSync => format!("sync + get, {clients} clients"),
            Case::GetLinearizable => format!("get linearizable, {clients} clients"),
            Case::Mixed => format!("mixed 90/10, {clients} clients"),
            Case::CreateOne => "create, 1 client".into(),
            Case::Watch => format!("watch, {} watchers", settings.watchers),
        }
    }
}

/// What every cell of a comparison shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Clients of the multi-client workloads.
    pub clients: usize,
    /// Watchers of the watch workload.
    pub watchers: usize,
    pub keys: usize,
    pub value_size: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Settings {
    fn json(&self) -> Value {
        json!({
            "clients": self.clients, "watchers": self.watchers, "keys": self.keys,
            "value_size": self.value_size, "warmup_s": self.warmup.as_secs_f64(),
            "duration_s": self.duration.as_secs_f64(),
        })
    }
}

/// One system's result for one workload.
#[derive(Clone, Debug)]
pub enum Cell {
    /// Boxed: a report is ten times the size of the other variants.
    Measured(Box<Report>),
    /// The system cannot run the workload; the reason, one sentence.
    NotApplicable(String),
    /// The run could not be made; the error, one sentence.
    Failed(String),
}

/// A system in the table: its name and where it was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    pub name: String,
    /// Endpoints and processes, for the header.
    pub about: String,
}

/// One row: a workload and a cell per system, in the systems' order.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: Case,
    pub cells: Vec<Cell>,
}

/// Every cell of a comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub settings: Settings,
    pub systems: Vec<SystemInfo>,
    pub rows: Vec<Row>,
}

/// Where a path is read to learn whether a system has a read mode: a node
/// no run creates (the answer is `NoNode` where the mode exists).
const PROBE_PATH: &str = "/warren-bench-probe";

/// Runs one cell: `params` against `system`, calling `progress` as
/// [`super::run`] does. A read mode the system does not have is found
/// with one read before anything is created (so no run is wasted on it);
/// a run whose every request was refused as unsupported is not applicable
/// either.
pub async fn run_cell<S: System>(
    system: &S,
    params: &Params,
    progress: impl FnMut(&super::Progress),
) -> Cell {
    if let Workload::Get { read } = params.workload {
        match system.connect().await {
            Ok(session) => {
                let probe = session.get(PROBE_PATH, read).await;
                let _ = session.close().await;
                if let Err(e) = probe
                    && e.kind == "Unsupported"
                {
                    return Cell::NotApplicable(e.message);
                }
            }
            Err(e) => return Cell::Failed(format!("cannot open a session: {e}")),
        }
    }
    match super::run(system, params, progress).await {
        Ok(report) => match report.errors.get("Unsupported") {
            Some(unsupported) if report.ops == 0 => {
                Cell::NotApplicable(unsupported.example.clone())
            }
            _ => Cell::Measured(Box::new(report)),
        },
        Err(e) => Cell::Failed(e),
    }
}

/// A cluster's members as one system: session `i` goes to member `i mod n`
/// first, so the sessions of a run are spread evenly over the members
/// (each member is a [`System`] reaching the cluster through that member).
pub struct RoundRobin<S> {
    members: Vec<S>,
    next: AtomicUsize,
}

impl<S: System> RoundRobin<S> {
    /// `None` when `members` is empty.
    pub fn new(members: Vec<S>) -> Option<RoundRobin<S>> {
        (!members.is_empty()).then_some(RoundRobin { members, next: AtomicUsize::new(0) })
    }

    /// The next session goes to the first member again: each run spreads
    /// its sessions the same way.
    pub fn restart(&self) {
        self.next.store(0, Ordering::Relaxed);
    }
}

impl<S: System> System for RoundRobin<S> {
    type Session = S::Session;

    fn name(&self) -> &str {
        self.members[0].name()
    }

    fn connect(&self) -> impl Future<Output = Result<S::Session, super::OpError>> + Send {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.members.len();
        self.members[i].connect()
    }
}

/// Warren spread like the others: one client configuration per server,
/// each listing every server but starting at its own (no shuffling), so
/// session `i` goes to server `i mod n` first and can still move.
pub fn warren_members(config: &ClientConfig) -> Vec<Warren> {
    spread(config).into_iter().map(Warren::new).collect()
}

/// `config` once per server, that server first and the others after it.
fn spread(config: &ClientConfig) -> Vec<ClientConfig> {
    (0..config.servers.len())
        .map(|first| {
            let mut config = config.clone();
            config.servers.rotate_left(first);
            config.shuffle = false;
            config
        })
        .collect()
}

/// The server PIDs `host/bench/peers.sh` keeps for `system` (`zookeeper`:
/// `DIR/zookeeper/zk1.pid`..`zk3.pid`; `etcd`: `DIR/etcd/e1.pid`..), each
/// checked to be running.
pub fn peer_pids(dir: &Path, system: &str) -> Result<Vec<u32>, String> {
    let (sub, stem) = match system {
        "zookeeper" => ("zookeeper", "zk"),
        "etcd" => ("etcd", "e"),
        _ => return Err(format!("peers.sh runs no system called {system}")),
    };
    let start =
        format!("start {system} with `host/bench/peers.sh start {system}` or give --{system}-pids");
    (1..=3)
        .map(|n| {
            let path = dir.join(sub).join(format!("{stem}{n}.pid"));
            super::cpu::read_pid_file(&path, &format!("{system} member {n}"), &start)
        })
        .collect()
}

impl Comparison {
    pub fn new(settings: Settings, systems: Vec<SystemInfo>) -> Comparison {
        Comparison { settings, systems, rows: Vec::new() }
    }

    /// The table for people: the header, one line per workload, the
    /// footnotes of the n/a, failed and erring cells, then the ratios of
    /// the first system to each other one.
    pub fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "warren bench compare: {} s of warm-up, then {} s measured per cell, one cell at a time; \
             {}-byte values, {} keys for set/get/mixed; closed loop, 1 request in flight per client",
            s.warmup.as_secs_f64(),
            s.duration.as_secs_f64(),
            s.value_size,
            s.keys
        );
        for system in &self.systems {
            let _ = writeln!(out, "  {}: {}", system.name, system.about);
        }
        let _ = writeln!(
            out,
            "  CPU/op: the servers' CPU time (all members, user + system) per operation in the window"
        );
        out.push('\n');

        let label_width = self
            .rows
            .iter()
            .map(|r| r.case.label(s).chars().count())
            .max()
            .unwrap_or(0)
            .max("workload".len());
        let mut notes: Vec<String> = Vec::new();
        let mut line = format!("{:label_width$}", "");
        for system in &self.systems {
            let _ = write!(line, " | {:GROUP$}", system.name);
        }
        out.push_str(line.trim_end());
        out.push('\n');
        let mut line = format!("{:label_width$}", "workload");
        let names = format!("{:>8} {:>9} {:>9} {:>8}", "ops/s", "p50", "p99", "CPU/op");
        for _ in &self.systems {
            let _ = write!(line, " | {names:GROUP$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        let rule = "-".repeat(label_width + self.systems.len() * (GROUP + 3));
        out.push_str(&rule);
        out.push('\n');
        for row in &self.rows {
            let mut line = format!("{:label_width$}", row.case.label(s));
            for (system, cell) in self.systems.iter().zip(&row.cells) {
                let group = match cell {
                    Cell::Measured(report) => {
                        let figures = figures(report);
                        match cell_note(report) {
                            Some(note) => {
                                notes.push(format!("{}, {}: {note}", system.name, row.case.name()));
                                format!("{figures} [{}]", notes.len())
                            }
                            None => figures,
                        }
                    }
                    Cell::NotApplicable(why) => {
                        notes.push(format!("{}, {}: n/a: {why}", system.name, row.case.name()));
                        format!("{:>8} [{}]", "n/a", notes.len())
                    }
                    Cell::Failed(why) => {
                        notes.push(format!("{}, {}: failed: {why}", system.name, row.case.name()));
                        format!("{:>8} [{}]", "failed", notes.len())
                    }
                };
                let _ = write!(line, " | {group:GROUP$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {note}", i + 1);
        }

        if self.systems.len() > 1 {
            let base = &self.systems[0].name;
            out.push('\n');
            let _ = writeln!(
                out,
                "ratios {base}/other: ops/s above 1 and latencies below 1 favour {base}"
            );
            let mut line = format!("{:label_width$}", "");
            for other in &self.systems[1..] {
                let _ = write!(line, " | {:RATIO$}", format!("{base}/{}", other.name));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            let mut line = format!("{:label_width$}", "workload");
            let names = format!("{:>7} {:>7} {:>7}", "ops/s", "p50", "p99");
            for _ in &self.systems[1..] {
                let _ = write!(line, " | {names:RATIO$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
            out.push_str(&"-".repeat(label_width + (self.systems.len() - 1) * (RATIO + 3)));
            out.push('\n');
            for row in &self.rows {
                let mut line = format!("{:label_width$}", row.case.label(s));
                for cell in &row.cells[1..] {
                    let group = match ratios(&row.cells[0], cell) {
                        Some(r) => format!(
                            "{:>7} {:>7} {:>7}",
                            ratio_text(r.ops),
                            ratio_text(r.p50),
                            ratio_text(r.p99)
                        ),
                        None => format!("{:>7}", "-"),
                    };
                    let _ = write!(line, " | {group:RATIO$}");
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        out
    }

    /// Every report, with the settings and the ratios, as one JSON object.
    pub fn json(&self) -> Value {
        let systems: Vec<Value> =
            self.systems.iter().map(|s| json!({ "name": s.name, "about": s.about })).collect();
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = serde_json::Map::new();
                for (system, cell) in self.systems.iter().zip(&row.cells) {
                    let value = match cell {
                        Cell::Measured(report) => {
                            json!({ "status": "measured", "report": report.json() })
                        }
                        Cell::NotApplicable(why) => json!({ "status": "n/a", "reason": why }),
                        Cell::Failed(why) => json!({ "status": "failed", "reason": why }),
                    };
                    cells.insert(system.name.clone(), value);
                }
                let mut ratios_json = serde_json::Map::new();
                if let Some((base, others)) = self.systems.split_first() {
                    for (other, cell) in others.iter().zip(row.cells.iter().skip(1)) {
                        let value = match ratios(&row.cells[0], cell) {
                            Some(r) => json!({ "ops_per_s": r.ops, "p50": r.p50, "p99": r.p99 }),
                            None => Value::Null,
                        };
                        ratios_json.insert(format!("{}/{}", base.name, other.name), value);
                    }
                }
                json!({
                    "workload": row.case.name(),
                    "label": row.case.label(&self.settings),
                    "cells": cells,
                    "ratios": ratios_json,
                })
            })
            .collect();
        json!({ "settings": self.settings.json(), "systems": systems, "rows": rows })
    }
}

/// The width of one system's group of columns.
const GROUP: usize = 44;
/// The width of one pair's group of ratios.
const RATIO: usize = 23;

/// ops/s, p50, p99 and CPU per operation of a measured cell.
fn figures(report: &Report) -> String {
    let (p50, p99) = match report.latency {
        Some(l) => (micros(l.p50 as f64), micros(l.p99 as f64)),
        None => ("-".to_owned(), "-".to_owned()),
    };
    let cpu = report.cpu_seconds_per_op().map_or("?".to_owned(), |s| micros(s * 1e6));
    format!("{:>8} {p50:>9} {p99:>9} {cpu:>8}", thousands(report.ops_per_second().round() as u64))
}

/// What a measured cell's footnote says: its errors and why its CPU is
/// unknown.
fn cell_note(report: &Report) -> Option<String> {
    let mut parts = Vec::new();
    if report.errors_total() > 0 {
        let kinds: Vec<String> = report
            .errors
            .iter()
            .map(|(kind, e)| format!("{} {kind} (e.g. {})", e.count, e.example))
            .collect();
        parts.push(format!("{} failed requests: {}", report.errors_total(), kinds.join("; ")));
    }
    if report.ops == 0 {
        parts.push("no operation completed in the window".into());
    }
    if report.server_cpu_seconds.is_none() {
        let why = report.notes.iter().find(|n| n.starts_with("server CPU"));
        parts.push(why.cloned().unwrap_or_else(|| "server CPU unknown: no server PIDs".into()));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The first system's figures over another's.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ratios {
    ops: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

fn ratios(base: &Cell, other: &Cell) -> Option<Ratios> {
    let (Cell::Measured(a), Cell::Measured(b)) = (base, other) else { return None };
    let over = |x: f64, y: f64| (y > 0.0).then(|| x / y);
    let (pa, pb) = (a.latency, b.latency);
    Some(Ratios {
        ops: over(a.ops_per_second(), b.ops_per_second()),
        p50: pa.zip(pb).and_then(|(x, y)| over(x.p50 as f64, y.p50 as f64)),
        p99: pa.zip(pb).and_then(|(x, y)| over(x.p99 as f64, y.p99 as f64)),
    })
}

fn ratio_text(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.0}x"),
        Some(r) => format!("{r:.2}x"),
        None => "-".into(),
    }
}

/// 12345 as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ErrorTally, Plan, Tally};
    use super::*;

    fn settings() -> Settings {
        Settings {
            clients: 64,
            watchers: 16,
            keys: 1000,
            value_size: 1024,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        }
    }

    /// A report of `ops` operations of `latency_us` each, with `cpu`
    /// server seconds.
    fn report(system: &str, case: Case, ops: u64, latency_us: u64, cpu: Option<f64>) -> Report {
        let params = case.params(&settings());
        let plan = Plan::new(&params, "bench-test");
        let mut tally = Tally::new();
        for _ in 0..ops {
            tally.latency.record(latency_us).expect("in range");
        }
        Report::new(system, &params, &plan, tally, cpu, None, Vec::new())
    }

    fn comparison() -> Comparison {
        let systems = ["warren", "zookeeper", "etcd"]
            .map(|name| SystemInfo { name: name.into(), about: format!("{name} on loopback") });
        let mut c = Comparison::new(settings(), systems.to_vec());
        c.rows.push(Row {
            case: Case::Set,
            cells: vec![
                Cell::Measured(Box::new(report("warren", Case::Set, 2000, 8000, Some(0.4)))),
                Cell::Measured(Box::new(report("zookeeper", Case::Set, 1000, 16000, Some(0.6)))),
                Cell::Measured(Box::new(report("etcd", Case::Set, 500, 20000, None))),
            ],
        });
        c.rows.push(Row {
            case: Case::GetLinearizable,
            cells: vec![
                Cell::Measured(Box::new(report(
                    "warren",
                    Case::GetLinearizable,
                    3000,
                    2000,
                    Some(0.3),
                ))),
                Cell::NotApplicable("zookeeper has no linearizable read in one request".into()),
                Cell::Failed("cannot open the benchmark's 64 sessions: refused".into()),
            ],
        });
        c
    }

    #[test]
    fn the_table_has_one_row_per_workload_and_names_its_na_cells() {
        // Proves the table has a row per workload with a group per system,
        // n/a and failed cells footnoted with their reason, and the ratios.
        let c = comparison();
        let text = c.text();
        let rows = |label: &str| text.lines().filter(|l| l.starts_with(label)).count();
        // One line in the table and one in the ratios, per workload.
        assert_eq!(rows(&Case::Set.label(&c.settings)), 2, "{text}");
        assert_eq!(rows(&Case::GetLinearizable.label(&c.settings)), 2, "{text}");
        let set = text.lines().find(|l| l.starts_with("set,")).expect("the set row");
        // Every system's group: the figures, in the systems' order.
        assert_eq!(set.matches(" | ").count(), 3, "{set}");
        assert!(set.contains("1,000") && set.contains("16.01 ms"), "{set}");
        // etcd has no PIDs: its CPU is unknown, and a footnote says so.
        assert!(set.contains('?') && set.contains("[1]"), "{set}");
        let get = text.lines().find(|l| l.starts_with("get linearizable")).expect("the get row");
        assert!(get.contains("n/a [2]") && get.contains("failed [3]"), "{get}");
        assert!(text.contains("[1] etcd, set: server CPU unknown"), "{text}");
        assert!(text.contains("[2] zookeeper, get-linearizable: n/a: zookeeper has no"), "{text}");
        assert!(text.contains("[3] etcd, get-linearizable: failed: cannot open"), "{text}");
        // Ratios: warren did twice zookeeper's ops/s at half its latency.
        let ratio = text.lines().filter(|l| l.starts_with("set,")).nth(1).expect("ratio row");
        assert!(ratio.contains("2.00x") && ratio.contains("0.50x"), "{ratio}");
        assert!(ratio.contains("4.00x"), "warren/etcd ops: {ratio}");
    }

    #[test]
    fn the_json_holds_every_cell() {
        // Proves --json gives every cell, measured or not, with its system
        // and workload.
        let json = comparison().json();
        let rows = json["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["workload"], "set");
        assert_eq!(rows[0]["cells"]["zookeeper"]["report"]["ops"], 1000);
        assert_eq!(rows[0]["ratios"]["warren/zookeeper"]["ops_per_s"], 2.0);
        assert_eq!(rows[1]["cells"]["zookeeper"]["status"], "n/a");
        assert_eq!(rows[1]["cells"]["etcd"]["status"], "failed");
        assert_eq!(rows[1]["ratios"]["warren/etcd"], Value::Null);
        assert_eq!(json["settings"]["clients"], 64);
    }

    #[test]
    fn errors_make_a_footnote() {
        // Proves a cell whose run had failed requests says so, with the
        // first message.
        let mut r = report("warren", Case::Watch, 10, 1000, Some(0.1));
        r.errors.insert("WatchTimeout".into(), ErrorTally { count: 2, example: "late".into() });
        assert_eq!(cell_note(&r).as_deref(), Some("2 failed requests: 2 WatchTimeout (e.g. late)"));
    }

    #[test]
    fn the_suite_has_the_issues_shape() {
        // Proves the default suite is issue 7's table: seven workloads, 64
        // clients (one for create-1), 16 watchers.
        let s = settings();
        let create_one = Case::CreateOne.params(&s);
        assert_eq!((create_one.clients, create_one.writers()), (1, (1, 1)));
        assert_eq!(Case::Create.params(&s).clients, 64);
        assert_eq!(Case::Watch.params(&s).workload, Workload::Watch { watchers: 16 });
        assert_eq!(Case::TARGET.len(), 7);
    }

    #[test]
    fn warren_sessions_start_at_each_server_in_turn() {
        // Proves session i of Warren starts at member i mod 3 and keeps the
        // others for fail-over.
        let servers: Vec<std::net::SocketAddr> =
            (1..=3).map(|i| ([127, 0, 0, 1], 7000 + i).into()).collect();
        let config = ClientConfig {
            servers: servers.clone(),
            session_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shuffle: true,
            ca: "ca.pem".into(),
            cert: "c.pem".into(),
            key: "c.key".into(),
        };
        let firsts: Vec<_> = spread(&config).iter().map(|c| (c.servers[0], c.shuffle)).collect();
        assert_eq!(firsts, servers.iter().map(|&s| (s, false)).collect::<Vec<_>>());
        assert_eq!(spread(&config)[1].servers, [servers[1], servers[2], servers[0]]);
    }

    #[test]
    fn figures_read_in_their_unit() {
        // Proves counts get thousands separators, durations their unit, ratios an x.
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(16_000.0), "16.00 ms");
        assert_eq!(ratio_text(Some(0.5)), "0.50x");
    }

    #[test]
    fn peer_pids_name_the_next_step() {
        // Proves peer PIDs come from peers.sh's pid files, and a missing one is
        // one sentence naming what to run.
        let dir = std::env::temp_dir().join(format!("warren-compare-test-{}", std::process::id()));
        let e = peer_pids(&dir, "zookeeper").unwrap_err();
        assert!(e.contains("peers.sh start zookeeper") && e.contains("--zookeeper-pids"), "{e}");
        std::fs::create_dir_all(dir.join("etcd")).expect("mkdir");
        for n in 1..=3 {
            std::fs::write(dir.join(format!("etcd/e{n}.pid")), format!("{}\n", std::process::id()))
                .expect("write");
        }
        assert_eq!(peer_pids(&dir, "etcd"), Ok(vec![std::process::id(); 3]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
