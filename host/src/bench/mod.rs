//! `warren bench`: a closed-loop load generator for a coordination
//! service, after etcd's `benchmark` tool.
//!
//! N clients, each its own session, each with K requests in flight; every
//! request is issued as soon as the previous one on its slot completed (a
//! closed loop: the load adapts to the system, and a latency is the time
//! one request took, from its send to its answer). A run prepares its
//! nodes under a fresh parent (`/bench-<pid>-<unix time>`), warms up, then
//! measures for a fixed window: an operation counts when it completes
//! inside the window (latency into an HDR histogram in microseconds,
//! failures by kind); at the window's end no request is issued any more,
//! and those still in flight are awaited but not counted. The server
//! processes' CPU time is read from `/proc` at both ends of the window.
//! Afterwards the run deletes what it created and removes its plugin.
//!
//! The system under test is behind [`System`]/[`Session`]; Warren's
//! implementation is [`warren::Warren`]. BENCHMARKS.md at the repository
//! root has the method and how to reproduce the figures.

pub mod compare;
pub mod cpu;
#[cfg(feature = "compare")]
pub mod etcd;
mod report;
pub mod system;
pub mod warren;
#[cfg(feature = "compare")]
pub mod zookeeper;

pub use report::{ErrorTally, Latency, Report};
pub use system::{OpError, ReadMode, Session, System, Watch};

use crate::rng::SplitMix64;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The highest latency the histograms hold, in microseconds (one hour;
/// anything longer is recorded as one hour).
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// How long the watch workload's writer waits for every watcher to hear
/// of one write before counting a `WatchTimeout`.
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin workload's plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// The example `json-schema` validator bound to the run's parent; the
    /// writes are setData of a valid JSON document.
    Validator,
    /// The example `counter` operation, delta 1, on one of K counters.
    Counter,
}

impl PluginKind {
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Validator => "validator",
            PluginKind::Counter => "counter",
        }
    }

    /// The component `cargo build -p warren-plugins` builds for it,
    /// relative to the repository root.
    pub fn default_component(self) -> PathBuf {
        PathBuf::from(match self {
            PluginKind::Validator => "target/plugins/json-schema.wasm",
            PluginKind::Counter => "target/plugins/counter.wasm",
        })
    }
}

/// What the clients do.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// Create unique nodes under the run's parent (sequential: all clients
    /// create `parent/s-` with a sequence suffix).
    Create { sequential: bool },
    /// Overwrite one of K nodes.
    Set,
    /// Read one of K nodes.
    Get { read: ReadMode },
    /// Local reads with probability `read_ratio`, else sets, over K nodes.
    Mixed { read_ratio: f64 },
    /// One writer sets one node in a loop; `watchers` sessions hold a
    /// persistent watch on it. An operation is one write, and its latency
    /// runs from the write's send to the last watcher's notification.
    Watch { watchers: usize },
    /// Writes through a plugin; `component` holds the bytes of `file`.
    Plugin { kind: PluginKind, file: PathBuf, component: Vec<u8> },
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Create { .. } => "create",
            Workload::Set => "set",
            Workload::Get { .. } => "get",
            Workload::Mixed { .. } => "mixed",
            Workload::Watch { .. } => "watch",
            Workload::Plugin { .. } => "plugin",
        }
    }

    /// Whether it works on K pre-created nodes.
    fn uses_keys(&self) -> bool {
        !matches!(self, Workload::Create { .. } | Workload::Watch { .. })
    }
}

/// A run's parameters.
#[derive(Clone, Debug)]
pub struct Params {
    pub workload: Workload,
    /// Sessions issuing requests (the watch workload has one writer).
    pub clients: usize,
    /// Requests in flight per session.
    pub in_flight: usize,
    /// Nodes the set, get, mixed and plugin workloads spread over.
    pub keys: usize,
    /// Bytes of data per write.
    pub value_size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The server processes whose CPU time is measured; `None`: unknown.
    pub server_pids: Option<Vec<u32>>,
    /// Leave the nodes and the plugin in place after the run.
    pub keep: bool,
}

impl Params {
    /// The parameters with the given workload and the command's defaults.
    pub fn new(workload: Workload) -> Params {
        Params {
            workload,
            clients: 16,
            in_flight: 1,
            keys: 1000,
            value_size: 1024,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            server_pids: None,
            keep: false,
        }
    }

    /// The sessions that issue requests and the requests each has in
    /// flight: the watch workload has one writer with one write at a time.
    pub fn writers(&self) -> (usize, usize) {
        match self.workload {
            Workload::Watch { .. } => (1, 1),
            _ => (self.clients, self.in_flight),
        }
    }

    /// Checks the ranges; one sentence naming the bad value.
    pub fn check(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.in_flight == 0 {
            return Err("--in-flight must be at least 1".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be above 0 seconds".into());
        }
        match &self.workload {
            Workload::Mixed { read_ratio } if !(0.0..=1.0).contains(read_ratio) => Err(format!(
                "--read-ratio {read_ratio} is out of range; give a fraction from 0 to 1"
            )),
            Workload::Watch { watchers: 0 } => Err("--watchers must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    WarmUp,
    Measuring,
    /// The window is over; waiting for the requests still in flight.
    Finishing,
    /// Deleting the run's nodes (`ops` counts them) and its plugin.
    Cleanup,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::WarmUp => "warm-up",
            Phase::Measuring => "measuring",
            Phase::Finishing => "finishing",
            Phase::Cleanup => "cleanup",
        }
    }
}

/// A progress report, about once a second while the clients run.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub phase: Phase,
    /// Time since the phase began.
    pub elapsed: Duration,
    /// How long the phase lasts (zero when open-ended).
    pub length: Duration,
    /// Operations completed in the phase (in the measured window: those
    /// that count).
    pub ops: u64,
    /// Completions per second over the last interval.
    pub rate: f64,
    /// Failed operations so far in the phase.
    pub errors: u64,
}

/// Runs one benchmark against `system`, calling `progress` about once a
/// second; returns the report, or one sentence saying why it could not
/// run.
pub async fn run<S: System>(
    system: &S,
    params: &Params,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, String> {
    params.check()?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_id = format!("bench-{}-{unix}", std::process::id());
    let plan = Plan::new(params, &run_id);
    let mut notes = plan.notes.clone();

    let (writers, in_flight) = params.writers();
    let sessions = connect_all(system, writers).await?;
    let watchers = match params.workload {
        Workload::Watch { watchers } => match connect_all(system, watchers).await {
            Ok(w) => w,
            Err(e) => {
                close_all(sessions).await;
                return Err(e);
            }
        },
        _ => Vec::new(),
    };

    let mut made = Made::default();
    let prepared = prepare(&plan, params, &sessions, &watchers, &mut made).await;
    let (watches, fan_out) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            cleanup(&plan, &sessions, in_flight, &made, &mut notes, &mut progress).await;
            close_all(sessions).await;
            close_all(watchers).await;
            return Err(e);
        }
    };

    let start = Instant::now();
    let measure_start = start + params.warmup;
    let end = measure_start + params.duration;
    let ctx = Arc::new(Ctx {
        op: plan.op.clone(),
        root: plan.root.clone(),
        keys: plan.keys.clone(),
        watched: plan.watched.clone(),
        value: plan.value.clone(),
        plugin: plan.plugin.clone(),
        measure_start,
        end,
        completed: AtomicU64::new(0),
        counted: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        fan_out,
        seed: (u64::from(std::process::id()) << 32) ^ unix,
    });
    let watcher_tasks: Vec<_> = watches
        .into_iter()
        .enumerate()
        .map(|(i, watch)| tokio::spawn(listen(Arc::clone(&ctx), i, watch)))
        .collect();
    let mut workers = Vec::new();
    for (c, session) in sessions.iter().enumerate() {
        for k in 0..in_flight {
            let id = c * in_flight + k;
            workers.push(tokio::spawn(worker(Arc::clone(&ctx), session.clone(), id)));
        }
    }

    // The clock: progress every second, CPU at both ends of the window.
    let sample = || (cpu_sample(&params.server_pids), cpu::own_cpu_seconds().ok());
    let mut cpu_start = None;
    let mut next_tick = start + Duration::from_secs(1);
    let mut last = (start, 0u64);
    if params.warmup.is_zero() {
        cpu_start = Some(sample());
    }
    let cpu_end = loop {
        let mut wake = next_tick.min(end);
        if cpu_start.is_none() {
            wake = wake.min(measure_start);
        }
        tokio::time::sleep_until(wake.into()).await;
        let now = Instant::now();
        if cpu_start.is_none() && now >= measure_start {
            cpu_start = Some(sample());
            ctx.failed.store(0, Ordering::Relaxed);
            // The window's progress lines count from its start.
            next_tick = measure_start + Duration::from_secs(1);
            last = (now, ctx.completed.load(Ordering::Relaxed));
        }
        if now >= end {
            break sample();
        }
        if now >= next_tick {
            let completed = ctx.completed.load(Ordering::Relaxed);
            let rate = (completed - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, completed);
            let (phase, since, length, ops) = if now < measure_start {
                (Phase::WarmUp, start, params.warmup, completed)
            } else {
                (
                    Phase::Measuring,
                    measure_start,
                    params.duration,
                    ctx.counted.load(Ordering::Relaxed),
                )
            };
            progress(&Progress {
                phase,
                elapsed: now.duration_since(since),
                length,
                ops,
                rate,
                errors: ctx.failed.load(Ordering::Relaxed),
            });
            next_tick += Duration::from_secs(1);
        }
    };
    progress(&Progress {
        phase: Phase::Finishing,
        elapsed: Duration::ZERO,
        length: Duration::ZERO,
        ops: ctx.counted.load(Ordering::Relaxed),
        rate: 0.0,
        errors: ctx.failed.load(Ordering::Relaxed),
    });
    let mut tally = Tally::new();
    for task in workers {
        match task.await {
            Ok(one) => tally.merge(one),
            Err(e) => notes.push(format!("a client task failed: {e}")),
        }
    }
    for task in &watcher_tasks {
        task.abort();
    }
    if tally.stopped > 0 {
        notes.push(format!(
            "{} of {} request slots stopped early because their session ended",
            tally.stopped,
            writers * in_flight
        ));
    }
    if tally.uncounted_errors > 0 {
        notes.push(format!(
            "{} requests failed outside the measured window (not counted)",
            tally.uncounted_errors
        ));
    }

    if params.keep {
        let plugin =
            if made.plugin { format!(" and the plugin {}", plan.plugin) } else { String::new() };
        notes.push(format!("kept the run's nodes under {}{plugin}", plan.root));
    } else {
        cleanup(&plan, &sessions, in_flight, &made, &mut notes, &mut progress).await;
    }
    close_all(sessions).await;
    close_all(watchers).await;

    let (server_cpu, client_cpu) = match (cpu_start, cpu_end) {
        (Some((s0, c0)), (s1, c1)) => {
            let server = match (s0, s1) {
                (Some(Ok(a)), Some(Ok(b))) => Some(round_micro(b - a)),
                (Some(Err(e)), _) | (_, Some(Err(e))) => {
                    notes.push(format!("server CPU unknown: {e}"));
                    None
                }
                _ => None,
            };
            (server, c0.zip(c1).map(|(a, b)| round_micro(b - a)))
        }
        (None, _) => (None, None),
    };
    Ok(Report::new(system.name(), params, &plan, tally, server_cpu, client_cpu, notes))
}

/// What a run does, worked out from its parameters before connecting.
#[derive(Clone, Debug)]
struct Plan {
    op: Op,
    /// The run's parent node.
    root: String,
    /// The K nodes (set, get, mixed, plugin).
    keys: Vec<String>,
    /// What the keys are created with.
    initial: Vec<u8>,
    /// The watched node (watch).
    watched: String,
    /// The data of every write.
    value: Vec<u8>,
    /// The plugin's name for this run, its component and (validator) the
    /// binding's schema.
    plugin: String,
    component: Vec<u8>,
    schema: Option<Vec<u8>>,
    notes: Vec<String>,
}

/// One operation of a workload.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Create {
        sequential: bool,
    },
    Set,
    Get(ReadMode),
    Mixed(f64),
    FanOut,
    /// A set under the bound validator.
    Validated,
    Counter,
}

/// The JSON schema the validator workload binds: its documents are
/// `{"name": .., "seq": .., "pad": ..}` with nothing else.
const SCHEMA: &str = r#"{"type":"object","required":["name","seq","pad"],"additionalProperties":false,"properties":{"name":{"type":"string","minLength":1},"seq":{"type":"integer","minimum":0},"pad":{"type":"string"}}}"#;

/// The counter workload's arguments: count one up.
const COUNTER_ARGS: &[u8] = br#"{"delta":1}"#;

impl Plan {
    fn new(params: &Params, run_id: &str) -> Plan {
        let root = format!("/{run_id}");
        let mut notes = Vec::new();
        let keys: Vec<String> = if params.workload.uses_keys() {
            (0..params.keys).map(|i| format!("{root}/k{i}")).collect()
        } else {
            Vec::new()
        };
        let mut value: Vec<u8> = (0..params.value_size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut plugin = String::new();
        let mut component = Vec::new();
        let mut schema = None;
        let op = match &params.workload {
            Workload::Create { sequential } => Op::Create { sequential: *sequential },
            Workload::Set => Op::Set,
            Workload::Get { read } => Op::Get(*read),
            Workload::Mixed { read_ratio } => Op::Mixed(*read_ratio),
            Workload::Watch { .. } => Op::FanOut,
            Workload::Plugin { kind, component: bytes, .. } => {
                plugin = format!("{run_id}-{}", kind.name());
                component = bytes.clone();
                match kind {
                    PluginKind::Validator => {
                        value = document(params.value_size);
                        if value.len() > params.value_size {
                            notes.push(format!(
                                "documents are {} bytes, the smallest valid one",
                                value.len()
                            ));
                        }
                        schema = Some(SCHEMA.as_bytes().to_vec());
                        Op::Validated
                    }
                    PluginKind::Counter => {
                        value = COUNTER_ARGS.to_vec();
                        notes.push(
                            "counter values are decimal numbers: --value-size does not apply"
                                .into(),
                        );
                        Op::Counter
                    }
                }
            }
        };
        let initial = if op == Op::Counter { b"0".to_vec() } else { value.clone() };
        Plan {
            op,
            watched: format!("{root}/watched"),
            root,
            keys,
            initial,
            value,
            plugin,
            component,
            schema,
            notes,
        }
    }
}

/// A JSON document the validator accepts, `size` bytes long when that is
/// at least the smallest one.
fn document(size: usize) -> Vec<u8> {
    let empty = r#"{"name":"warren-bench","seq":1,"pad":""}"#;
    let pad = size.saturating_sub(empty.len());
    let pad: String = (0..pad).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    format!(r#"{{"name":"warren-bench","seq":1,"pad":"{pad}"}}"#).into_bytes()
}

/// What a run has made so far, for the clean-up.
#[derive(Default)]
struct Made {
    root: bool,
    plugin: bool,
    bound: bool,
}

/// Opens `n` sessions, all at once.
async fn connect_all<S: System>(system: &S, n: usize) -> Result<Vec<S::Session>, String> {
    let results = futures_join((0..n).map(|_| system.connect()).collect::<Vec<_>>()).await;
    let mut sessions = Vec::with_capacity(n);
    let mut failure = None;
    for result in results {
        match result {
            Ok(session) => sessions.push(session),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    match failure {
        None => Ok(sessions),
        Some(e) => {
            close_all(sessions).await;
            Err(format!("cannot open the benchmark's {n} sessions: {e}"))
        }
    }
}

/// Awaits every future of `futures` concurrently on this task.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future completed")).collect()
}

async fn close_all<T: Session>(sessions: Vec<T>) {
    futures_join(sessions.into_iter().map(Session::close).collect()).await;
}

/// Creates the run's nodes, installs and binds its plugin and arms the
/// watches; returns the watches and the fan-out state of the watch
/// workload.
async fn prepare<S: Session>(
    plan: &Plan,
    params: &Params,
    sessions: &[S],
    watchers: &[S],
    made: &mut Made,
) -> Result<(Vec<S::Watch>, Option<FanOut>), String> {
    let first = &sessions[0];
    let failed = |what: &str, e: OpError| format!("cannot {what}: {e}");
    if !plan.plugin.is_empty() {
        first
            .install_plugin(&plan.plugin, &plan.component)
            .await
            .map_err(|e| failed(&format!("install the plugin {}", plan.plugin), e))?;
        made.plugin = true;
    }
    first
        .create(&plan.root, b"", false)
        .await
        .map_err(|e| failed(&format!("create the run's parent {}", plan.root), e))?;
    made.root = true;
    if let Some(schema) = &plan.schema {
        first
            .bind_validator(&plan.plugin, &plan.root, schema)
            .await
            .map_err(|e| failed(&format!("bind {} to {}", plan.plugin, plan.root), e))?;
        made.bound = true;
    }
    // The keys, spread over every session.
    let next = AtomicUsize::new(0);
    let results = futures_join(
        sessions
            .iter()
            .map(|session| async {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = plan.keys.get(i) else { return Ok(()) };
                    session.create(key, &plan.initial, false).await?;
                }
            })
            .collect(),
    )
    .await;
    for result in results {
        result.map_err(|e| failed(&format!("create the {} keys", plan.keys.len()), e))?;
    }
    let Workload::Watch { .. } = params.workload else {
        return Ok((Vec::new(), None));
    };
    first
        .create(&plan.watched, &plan.value, false)
        .await
        .map_err(|e| failed(&format!("create the watched node {}", plan.watched), e))?;
    let mut watches = Vec::with_capacity(watchers.len());
    for watcher in watchers {
        watches.push(
            watcher
                .watch(&plan.watched)
                .await
                .map_err(|e| failed(&format!("watch {}", plan.watched), e))?,
        );
    }
    let fan_out = FanOut {
        state: Mutex::new(FanState {
            target: None,
            last: vec![(0, None); watchers.len()],
            waiter: None,
        }),
    };
    Ok((watches, Some(fan_out)))
}

/// Deletes what the run made, best effort: failures become notes.
async fn cleanup<S: Session>(
    plan: &Plan,
    sessions: &[S],
    in_flight: usize,
    made: &Made,
    notes: &mut Vec<String>,
    progress: &mut impl FnMut(&Progress),
) {
    let Some(first) = sessions.first() else { return };
    let mut note = |what: String, e: OpError| notes.push(format!("cleanup: cannot {what}: {e}"));
    if made.bound
        && let Err(e) = first.unbind_validator(&plan.plugin, &plan.root).await
    {
        note(format!("unbind {} from {}", plan.plugin, plan.root), e);
    }
    if made.root {
        match first.children(&plan.root).await {
            Ok(names) => {
                progress(&Progress {
                    phase: Phase::Cleanup,
                    elapsed: Duration::ZERO,
                    length: Duration::ZERO,
                    ops: names.len() as u64,
                    rate: 0.0,
                    errors: 0,
                });
                let paths: Vec<String> =
                    names.iter().map(|name| format!("{}/{name}", plan.root)).collect();
                let next = AtomicUsize::new(0);
                let slots = sessions.iter().flat_map(|s| std::iter::repeat_n(s, in_flight));
                let results = futures_join(
                    slots
                        .map(|session| async {
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some(path) = paths.get(i) else { return Ok(()) };
                                session.delete(path).await?;
                            }
                        })
                        .collect(),
                )
                .await;
                if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                    note(format!("delete the nodes under {}", plan.root), e);
                } else if let Err(e) = first.delete(&plan.root).await {
                    note(format!("delete {}", plan.root), e);
                }
            }
            Err(e) => note(format!("list {}", plan.root), e),
        }
    }
    if made.plugin
        && let Err(e) = first.remove_plugin(&plan.plugin).await
    {
        note(format!("remove the plugin {}", plan.plugin), e);
    }
}

/// What the request slots share.
struct Ctx {
    op: Op,
    root: String,
    keys: Vec<String>,
    watched: String,
    value: Vec<u8>,
    plugin: String,
    measure_start: Instant,
    end: Instant,
    /// Completions, failures included, in any phase.
    completed: AtomicU64,
    /// Completions inside the measured window.
    counted: AtomicU64,
    /// Failures in the current phase.
    failed: AtomicU64,
    fan_out: Option<FanOut>,
    seed: u64,
}

impl Ctx {
    fn key(&self, rng: &mut SplitMix64) -> &str {
        &self.keys[(rng.next_u64() % self.keys.len() as u64) as usize]
    }
}

/// One request slot's counts.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, ErrorTally>,
    uncounted_errors: u64,
    /// Slots that stopped because their session ended.
    stopped: usize,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_max(LATENCY_MAX_US, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            uncounted_errors: 0,
            stopped: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("histograms of the same bounds");
        for (kind, tally) in other.errors {
            let mine =
                self.errors.entry(kind).or_insert(ErrorTally { count: 0, example: tally.example });
            mine.count += tally.count;
        }
        self.uncounted_errors += other.uncounted_errors;
        self.stopped += other.stopped;
    }
}

/// One request slot: a closed loop until the window's end.
async fn worker<S: Session>(ctx: Arc<Ctx>, session: S, id: usize) -> Tally {
    let mut tally = Tally::new();
    let mut rng = SplitMix64::new(ctx.seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut seq = 0u64;
    loop {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let result = one(&ctx, &session, &mut rng, id, seq, start).await;
        seq += 1;
        let done = match &result {
            Ok(done) => *done,
            Err(_) => Instant::now(),
        };
        ctx.completed.fetch_add(1, Ordering::Relaxed);
        let counted = done >= ctx.measure_start && done <= ctx.end;
        match result {
            Ok(_) if counted => {
                let micros = done.saturating_duration_since(start).as_micros();
                tally.latency.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
                ctx.counted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                ctx.failed.fetch_add(1, Ordering::Relaxed);
                if counted {
                    let entry = tally
                        .errors
                        .entry(e.kind.clone())
                        .or_insert(ErrorTally { count: 0, example: e.message.clone() });
                    entry.count += 1;
                } else {
                    tally.uncounted_errors += 1;
                }
                if e.fatal {
                    tally.stopped += 1;
                    break;
                }
            }
        }
    }
    tally
}

/// One operation; returns when it completed (for the watch workload, when
/// the last watcher heard of it).
async fn one<S: Session>(
    ctx: &Ctx,
    session: &S,
    rng: &mut SplitMix64,
    id: usize,
    seq: u64,
    start: Instant,
) -> Result<Instant, OpError> {
    match ctx.op {
        Op::Create { sequential: false } => {
            session.create(&format!("{}/c{id}-{seq}", ctx.root), &ctx.value, false).await?
        }
        Op::Create { sequential: true } => {
            session.create(&format!("{}/s-", ctx.root), &ctx.value, true).await?
        }
        Op::Set | Op::Validated => session.set(ctx.key(rng), &ctx.value).await.map(drop)?,
        Op::Get(read) => session.get(ctx.key(rng), read).await.map(drop)?,
        Op::Mixed(ratio) => {
            let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if unit < ratio {
                session.get(ctx.key(rng), ReadMode::Local).await.map(drop)?
            } else {
                session.set(ctx.key(rng), &ctx.value).await.map(drop)?
            }
        }
        Op::Counter => session.invoke(&ctx.plugin, ctx.key(rng), &ctx.value).await?,
        Op::FanOut => {
            let stamp = session.set(&ctx.watched, &ctx.value).await?;
            let fan_out = ctx.fan_out.as_ref().expect("the watch workload has its fan-out");
            let last = fan_out.wait(stamp).await?;
            // The notification cannot precede the send.
            return Ok(last.max(start));
        }
    }
    Ok(Instant::now())
}

/// The watch workload's meeting point: the writer's current write and the
/// latest notification each watcher has had.
struct FanOut {
    state: Mutex<FanState>,
}

struct FanState {
    /// The stamp of the write the writer waits for.
    target: Option<u64>,
    /// Per watcher: the latest stamp heard and when.
    last: Vec<(u64, Option<Instant>)>,
    waiter: Option<oneshot::Sender<Instant>>,
}

impl FanState {
    /// When every watcher had heard of the target, if every one has.
    fn reached(&self) -> Option<Instant> {
        let target = self.target?;
        let mut latest = None;
        for &(stamp, at) in &self.last {
            if stamp < target {
                return None;
            }
            latest = latest.max(at);
        }
        latest
    }
}

impl FanOut {
    fn lock(&self) -> std::sync::MutexGuard<'_, FanState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watcher `i` heard of the write `stamp` now.
    fn notify(&self, i: usize, stamp: u64) {
        let now = Instant::now();
        let mut state = self.lock();
        state.last[i] = (stamp, Some(now));
        if state.waiter.is_some()
            && let Some(at) = state.reached()
            && let Some(waiter) = state.waiter.take()
        {
            let _ = waiter.send(at);
        }
    }

    /// Waits until every watcher heard of the write `stamp`; returns when
    /// the last one did.
    async fn wait(&self, stamp: u64) -> Result<Instant, OpError> {
        let rx = {
            let mut state = self.lock();
            state.target = Some(stamp);
            if let Some(at) = state.reached() {
                return Ok(at);
            }
            let (tx, rx) = oneshot::channel();
            state.waiter = Some(tx);
            rx
        };
        match tokio::time::timeout(FAN_OUT_TIMEOUT, rx).await {
            Ok(Ok(at)) => Ok(at),
            _ => {
                self.lock().waiter = None;
                Err(OpError::new(
                    "WatchTimeout",
                    format!(
                        "not every watcher was notified of a write within {} s",
                        FAN_OUT_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }
}

/// Watcher `i`: hands every notification to the fan-out.
async fn listen<W: Watch>(ctx: Arc<Ctx>, i: usize, mut watch: W) {
    while let Some(stamp) = watch.next().await {
        if let Some(fan_out) = &ctx.fan_out {
            fan_out.notify(i, stamp);
        }
    }
}

/// Seconds rounded to the microsecond: CPU times are whole clock ticks,
/// and their differences should not print as 1.2300000000000004.
fn round_micro(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// The CPU seconds of `pids` together, if any were given.
fn cpu_sample(pids: &Option<Vec<u32>>) -> Option<Result<f64, String>> {
    let pids = pids.as_ref()?;
    Some(pids.iter().map(|&pid| cpu::cpu_seconds(pid)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_the_asked_size_and_are_json() {
        for size in [0, 10, 41, 42, 100, 1024] {
            let doc = document(size);
            let value: serde_json::Value = serde_json::from_slice(&doc).expect("JSON");
            assert_eq!(value["name"], "warren-bench");
            if size >= 41 {
                assert_eq!(doc.len(), size, "size {size}");
            }
        }
    }

    #[test]
    fn the_fan_out_waits_for_every_watcher() {
        let fan = FanOut {
            state: Mutex::new(FanState { target: None, last: vec![(0, None); 2], waiter: None }),
        };
        fan.notify(0, 5);
        {
            let mut state = fan.lock();
            state.target = Some(5);
            assert!(state.reached().is_none());
        }
        fan.notify(1, 5);
        assert!(fan.lock().reached().is_some());
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        let mut params = Params::new(Workload::Mixed { read_ratio: 1.5 });
        assert!(params.check().unwrap_err().contains("--read-ratio"));
        params.workload = Workload::Set;
        params.clients = 0;
        assert!(params.check().unwrap_err().contains("--clients"));
    }
}
