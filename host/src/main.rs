//! The `warren` binary: turns command lines into calls on the library and
//! errors into one sentence and an exit code. Only this file prints.

mod commands;

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

/// mimalloc's tuning, through its C API (linked in by `libmimalloc-sys`).
mod allocator {
    use std::ffi::{c_int, c_long};

    unsafe extern "C" {
        #[cfg(test)]
        fn mi_option_get(option: c_int) -> c_long;
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// `mi_option_purge_delay` in mimalloc v3's `enum mi_option_e`.
    const PURGE_DELAY: c_int = 15;

    /// Milliseconds freed memory stays with the process before mimalloc
    /// gives it back to the OS. Its default, 1 s, is shorter than the cycle
    /// of a node's large buffers (log memtables, peer batches, snapshot
    /// buffers): under a steady write load the pages went back and were
    /// faulted in and zeroed again, ~50,000 page faults in 6 s across a
    /// 3-member cluster and a seventh of its CPU. 10 s keeps them (~1,000).
    pub const PURGE_DELAY_MS: c_long = 10_000;

    pub fn tune() {
        // SAFETY: plain option setters of the linked allocator, callable
        // at any time from any thread.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
    }

    #[cfg(test)]
    pub fn purge_delay() -> c_long {
        // SAFETY: as above.
        unsafe { mi_option_get(PURGE_DELAY) }
    }
}

/// Warren: a replicated coordination service in the tradition of ZooKeeper.
#[derive(Parser)]
#[command(name = "warren", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    #[command(flatten)]
    client: commands::ClientArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a node: `warren serve --config node.toml`.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Runs a local cluster for trying Warren out: certificates, configs and
    /// one process per node in DIR, until interrupted. Run again, it resumes.
    Dev {
        #[arg(long, default_value = "./warren-dev")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Node i serves ZooKeeper clients on 127.0.0.1:BASE+i-1.
        #[arg(long, default_value_t = 2181)]
        zookeeper_port: u16,
    },
    /// Prints the digest identity of USER:PASSWORD, as ACLs and
    /// `superuser_digest` name it (ZooKeeper's `user:<base64 sha1>`).
    Digest {
        /// USER:PASSWORD
        credentials: String,
    },
    #[command(flatten)]
    Client(commands::ClientCmd),
    /// Measures the cluster: N clients in a closed loop running one
    /// workload, then ops/s, latency percentiles, errors and the servers'
    /// CPU time per operation. See BENCHMARKS.md.
    Bench(commands::BenchArgs),
    /// Apply a scripted workload to the replicated state machine alone and
    /// print the resulting tree.
    Demo,
    /// Create and issue the cluster's TLS certificates.
    #[command(subcommand)]
    Certs(CertsCmd),
    /// Tools for testing storage (not for production use).
    #[command(hide = true, subcommand)]
    Debug(DebugCmd),
}

#[derive(Subcommand)]
enum CertsCmd {
    /// Creates a new cluster CA in DIR and certificates for the listed nodes
    /// and clients, signed by it. Refuses to overwrite existing files.
    Init {
        /// The certs directory (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Node names, comma-separated: n1,n2,n3.
        #[arg(long, required = true, value_delimiter = ',', value_parser = parse_node_arg)]
        nodes: Vec<u64>,
        /// Client names, comma-separated: admin,app.
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
    },
    /// Issues a client certificate NAME.pem and key NAME.key from the CA in DIR.
    AddClient {
        /// The client's name: its certificate's CN, seen by ACLs as CN=NAME.
        name: String,
        /// The certs directory holding ca.pem and ca.key.
        #[arg(long)]
        dir: PathBuf,
    },
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
    allocator::tune();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Cmd::Serve { config } => {
            no_transparent_huge_pages();
            runtime(Some(1)).and_then(|rt| rt.block_on(commands::serve(&config)))
        }
        Cmd::Dev { dir, nodes, zookeeper_port } => {
            runtime(None).and_then(|rt| rt.block_on(commands::dev(&dir, nodes, zookeeper_port)))
        }
        Cmd::Digest { credentials } => {
            println!("{}", warren::state::digest_id(credentials.as_bytes()));
            Ok(())
        }
        Cmd::Client(cmd) => {
            runtime(None).and_then(|rt| rt.block_on(commands::run_client(cli.client, cmd)))
        }
        Cmd::Bench(args) => {
            runtime(args.threads()).and_then(|rt| rt.block_on(commands::bench(cli.client, args)))
        }
        Cmd::Demo => {
            print!("{}", warren::demo::run());
            Ok(())
        }
        Cmd::Certs(CertsCmd::Init { dir, nodes, clients }) => {
            let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
            print_written(warren::tls::init_certs(&dir, &nodes, &clients))
        }
        Cmd::Certs(CertsCmd::AddClient { name, dir }) => {
            print_written(warren::tls::add_client(&dir, &name))
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

/// Turns transparent huge pages off for this process (a member), as Redis
/// does for its own event loop (`disable-thp`): a member runs on one
/// thread, and the first touch of a 2 MiB page stalls it while the kernel
/// zeroes the page (~0.3 ms, and ~6 ms on a VM whose host backs freed guest
/// memory again on first touch). mimalloc asks for huge pages for its
/// arenas. With them off, write p99 at 64 clients fell from 26–34 ms to
/// 19–25 ms (BENCHMARKS.md, "Changes"). Not fatal when refused.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes a flag and three zeros, and
        // touches nothing but this process's memory policy.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!("cannot turn transparent huge pages off ({error}); serving with them");
        }
    }
}

/// A runtime of one worker per core (`None`), of one thread (a
/// current-thread runtime: `warren serve`, and the benchmark with
/// `--threads 1`, where it costs less CPU per operation than a
/// work-stealing pool), or a pool of `n` workers.
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn parse_node_arg(s: &str) -> Result<u64, String> {
    warren::tls::parse_node_name(s)
        .ok_or_else(|| format!("{s:?} is not a node name; node names are n1, n2, n3, ..."))
}

/// One line per file written by a `certs` command.
fn print_written(written: Result<Vec<PathBuf>, warren::tls::TlsError>) -> Result<(), String> {
    for path in written.map_err(|e| e.to_string())? {
        println!("wrote {}", path.display());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::allocator;

    #[test]
    fn the_purge_delay_index_is_mimallocs_purge_delay() {
        // Proves the option index names mimalloc's purge delay: before
        // tuning it reads mimalloc v3's default (1000 ms, or what
        // MIMALLOC_PURGE_DELAY says), and tuning sets it.
        let default =
            std::env::var("MIMALLOC_PURGE_DELAY").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        assert_eq!(allocator::purge_delay(), default);
        allocator::tune();
        assert_eq!(allocator::purge_delay(), allocator::PURGE_DELAY_MS);
    }
}
