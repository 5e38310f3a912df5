//! Plugin cost on the apply path (a bench binary, not a timed test): what a
//! bound validator and a counter operation add to a write, against a plain
//! setData of the same document, measured by applying committed entries to
//! one state machine on one thread. Also the one-off cost of installing
//! (compiling) a component.
//!
//! Run: `cargo bench -p warren --bench plugins` (`-- --writes N`).

use std::hint::black_box;
use std::time::{Duration, Instant};
use warren::{Command, Entry, Limits, Response, StateMachine};
use warren_client::{
    Acl, CreateMode, Op, PLUGIN_FUEL_DEFAULT, PLUGIN_MEMORY_DEFAULT, PluginOp, SessionId, Zxid,
};

const SCHEMA: &str = r#"{"type":"object","required":["name","port","replicas"],"properties":{
  "name":{"type":"string","maxLength":64},"port":{"type":"integer","minimum":1,"maximum":65535},
  "replicas":{"type":"integer","minimum":1},"tags":{"type":"array","items":{"type":"string"}},
  "limits":{"type":"object","properties":{"cpu":{"type":"number"},"memory":{"type":"integer"}}}}}"#;

struct Bench {
    sm: StateMachine,
    zxid: u64,
    session: SessionId,
}

impl Bench {
    fn apply(&mut self, command: Command) -> Response {
        self.zxid += 1;
        let entry = Entry { zxid: Zxid(self.zxid), time_ms: 1_700_000_000_000, command };
        self.sm.apply(entry).response
    }

    fn ok(&mut self, op: Op) {
        let shown = format!("{op:?}").chars().take(80).collect::<String>();
        match self.apply(Command::Request { session: self.session, op }) {
            Response::Reply(Ok(_)) => {}
            other => panic!("{shown} failed: {other:?}"),
        }
    }

    /// Applies `writes` entries made by `op`, returning the time per apply.
    fn time(&mut self, writes: usize, mut op: impl FnMut(usize) -> Op) -> Vec<Duration> {
        let mut times = Vec::with_capacity(writes);
        for i in 0..writes {
            let op = op(i);
            let session = self.session;
            self.zxid += 1;
            let entry = Entry {
                zxid: Zxid(self.zxid),
                time_ms: 1_700_000_000_000,
                command: Command::Request { session, op },
            };
            let started = Instant::now();
            let applied = self.sm.apply(entry);
            times.push(started.elapsed());
            assert!(matches!(applied.response, Response::Reply(Ok(_))), "{:?}", applied.response);
            black_box(applied);
        }
        times.sort_unstable();
        times
    }
}

fn install(name: &str, component: &[u8]) -> Op {
    Op::Plugin(PluginOp::Install {
        name: name.into(),
        component: component.to_vec(),
        sha256: warren::plugin::sha256(component).to_vec(),
        fuel: PLUGIN_FUEL_DEFAULT,
        memory_bytes: PLUGIN_MEMORY_DEFAULT,
        expected_version: None,
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, times: &[Duration], base: Option<(f64, f64)>) -> (f64, f64) {
    let p50 = micros(times[times.len() / 2]);
    let p99 = micros(times[times.len() * 99 / 100]);
    let mean = micros(times.iter().sum::<Duration>()) / times.len() as f64;
    let extra = base
        .map(|(b50, bmean)| {
            format!("  extra: p50 {:+.1} µs, mean {:+.1} µs", p50 - b50, mean - bmean)
        })
        .unwrap_or_default();
    println!("  {name:<28} p50 {p50:>7.1} µs  p99 {p99:>7.1} µs  mean {mean:>7.1} µs{extra}");
    (p50, mean)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writes = args
        .iter()
        .position(|a| a == "--writes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    let mut b = Bench { sm: StateMachine::new(Limits::default()), zxid: 0, session: SessionId(0) };
    b.session =
        match b.apply(Command::CreateSession { timeout_ms: 10_000, auth: vec![], secret: None }) {
            Response::SessionCreated(id) => id,
            other => panic!("no session: {other:?}"),
        };

    let started = Instant::now();
    b.ok(install("schema", warren_plugins::bytes("json-schema")));
    let schema_install = started.elapsed();
    let started = Instant::now();
    b.ok(install("counter", warren_plugins::bytes("counter")));
    let counter_install = started.elapsed();
    b.ok(Op::Plugin(PluginOp::Bind {
        name: "schema".into(),
        prefix: "/config".into(),
        config: SCHEMA.as_bytes().to_vec(),
    }));
    let create = |path: &str| Op::Create {
        path: path.into(),
        data: br#"{"name":"x","port":1,"replicas":1}"#.to_vec(),
        acl: Acl::open(),
        mode: CreateMode::Persistent,
    };
    b.ok(create("/plain"));
    b.ok(create("/config"));
    b.ok(create("/config/app"));

    // A realistic config document of about 1 KiB.
    let doc = |i: usize| {
        let tags: Vec<String> = (0..80).map(|t| format!("\"tag-{t:03}-{i}\"")).collect();
        format!(
            r#"{{"name":"service-{i}","port":{},"replicas":3,"tags":[{}],"limits":{{"cpu":1.5,"memory":2048}}}}"#,
            1 + i % 60000,
            tags.join(",")
        )
        .into_bytes()
    };
    println!(
        "plugin cost per applied write, {writes} writes each, one state machine, {} B documents",
        doc(0).len()
    );
    println!(
        "  install (compile) json-schema {:.1} ms, counter {:.1} ms",
        micros(schema_install) / 1e3,
        micros(counter_install) / 1e3
    );
    // Warm up every path once.
    b.time(200, |i| Op::SetData { path: "/plain".into(), data: doc(i), version: None });
    b.time(200, |i| Op::SetData { path: "/config/app".into(), data: doc(i), version: None });
    let plain =
        b.time(writes, |i| Op::SetData { path: "/plain".into(), data: doc(i), version: None });
    let base = report("plain setData", &plain, None);
    let validated =
        b.time(writes, |i| Op::SetData { path: "/config/app".into(), data: doc(i), version: None });
    report("setData + json-schema", &validated, Some(base));
    let counted = b.time(writes, |_| Op::Invoke {
        plugin: "counter".into(),
        path: "/counter".into(),
        args: br#"{"delta":1}"#.to_vec(),
    });
    report("counter operation", &counted, Some(base));
}
