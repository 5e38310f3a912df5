//! Runs one simulation seed and prints its summary (and trace with
//! `--trace`): `cargo run --release -p warren --example sim_one -- SEED [NODES] [--trace] [--no-faults]`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let nodes = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut config = warren::sim::SimConfig::new(seed, nodes);
    config.trace = args.iter().any(|a| a == "--trace");
    config.faults = !args.iter().any(|a| a == "--no-faults");
    let t = std::time::Instant::now();
    let report = warren::sim::run(config);
    for line in &report.trace {
        println!("{line}");
    }
    println!("{}", report.summary());
    println!("took {:?}", t.elapsed());
}
