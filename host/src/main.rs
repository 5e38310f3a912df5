//! The `warren` binary: turns command lines into calls on the library and
//! errors into one sentence and an exit code. Only this file prints.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use warren::consensus::{EntryKind, HardState, LogEntry, LogIndex, Term};
use warren::storage::Storage;

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
    /// Tools for testing storage (not for production use).
    #[command(hide = true, subcommand)]
    Debug(DebugCmd),
}

#[derive(Subcommand)]
enum DebugCmd {
    /// Appends batches of entries to the log in DIR forever, syncing each
    /// batch and then printing its last index: what the crash test kills.
    AppendLoop {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 16)]
        batch: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Demo => {
            print!("{}", warren::demo::run());
            Ok(())
        }
        Cmd::Debug(DebugCmd::AppendLoop { dir, batch }) => append_loop(&dir, batch),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("warren: {message}");
            ExitCode::FAILURE
        }
    }
}

fn append_loop(dir: &std::path::Path, batch: u64) -> Result<(), String> {
    let (mut storage, restored) = Storage::open(dir).map_err(|e| e.to_string())?;
    let term = Term(restored.hard_state.term.0 + 1);
    let hard_state = HardState { term, vote: None, commit: LogIndex(0) };
    let mut next = storage.last_index().next();
    let mut out = std::io::stdout().lock();
    loop {
        let entries: Vec<LogEntry> = (next.0..next.0 + batch.max(1))
            .map(|i| LogEntry {
                index: LogIndex(i),
                term,
                time_ms: i as i64,
                kind: EntryKind::Command(warren::storage::test_payload(LogIndex(i)).into()),
            })
            .collect();
        let last = entries.last().map_or(next, |e| e.index);
        storage.persist(Some(&hard_state), &entries).map_err(|e| e.to_string())?;
        // Printed only once durable: the parent holds us to it.
        writeln!(out, "{}", last.0).and_then(|()| out.flush()).map_err(|e| e.to_string())?;
        next = last.next();
    }
}
