//! Runs simulation seeds outside the test harness.
//!
//! One seed, with its summary (and trace with `--trace`):
//! `cargo run --release -p warren --example sim_one -- SEED [NODES] [--trace]`
//! Many seeds, printing failures and a total:
//! `cargo run --release -p warren --example sim_one -- --from S --count N`
//! Flags: `--no-faults`, `--bug-commit-by-count`, `--bug-ack-before-sync`,
//! `--steps N` (linearizability search budget).

use warren::sim::{self, SimConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let configure = |seed: u64, nodes: usize| {
        let mut config = SimConfig::new(seed, nodes);
        config.trace = flag("--trace");
        config.faults = !flag("--no-faults");
        config.bug_commit_by_count = flag("--bug-commit-by-count");
        config.bugs.ack_before_sync = flag("--bug-ack-before-sync");
        if let Some(steps) = value("--steps") {
            config.linearizability_steps = steps;
        }
        config
    };
    let started = std::time::Instant::now();
    if let Some(count) = value("--count") {
        let from = value("--from").unwrap_or(1);
        let (mut runs, mut failed, mut committed, mut undecided) = (0u64, 0u64, 0u64, 0u64);
        let mut snapshots = 0u64;
        for seed in from..from + count {
            if (seed - from) % 2500 == 0 && seed > from {
                eprintln!(
                    "{} seeds done, {failed} failed, {:.0} s",
                    seed - from,
                    started.elapsed().as_secs_f64()
                );
            }
            for nodes in [3, 5] {
                let report = sim::run(configure(seed, nodes));
                runs += 1;
                committed += report.committed;
                snapshots += report.snapshots_installed;
                undecided += u64::from(report.linearizability_undecided);
                if report.linearizability_undecided {
                    println!("UNDECIDED seed {seed} with {nodes} nodes");
                }
                if !report.passed() {
                    failed += 1;
                    println!("FAILED {nodes} nodes: {}", report.summary());
                }
            }
        }
        println!(
            "{runs} runs (seeds {from}..{}), {failed} failed, {undecided} linearizability checks undecided, {committed} entries committed, {snapshots} snapshots installed by followers, {:.1} s",
            from + count,
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let nodes = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let report = sim::run(configure(seed, nodes));
    for line in &report.trace {
        println!("{line}");
    }
    println!("{}", report.summary());
    println!("took {:?}", started.elapsed());
}
