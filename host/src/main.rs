//! The `warren` binary: turns command lines into calls on the library and
//! errors into one sentence and an exit code. Only this file prints.

use clap::{Parser, Subcommand};

/// mimalloc: measured faster than glibc's allocator for the state machine's
/// many small node allocations (see host/benches/state_machine.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warren: a replicated coordination service in the tradition of ZooKeeper.
#[derive(Parser)]
#[command(name = "warren", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply a scripted workload to the replicated state machine and print
    /// the resulting tree (the cluster commands arrive with the node driver).
    Demo,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Demo => print!("{}", warren::demo::run()),
    }
}
