//! The `warren` binary's cluster commands: `serve`, `dev` and the client
//! commands. Part of the binary (declared by main.rs), so printing is
//! allowed here; each command returns its output lines or one sentence of
//! error.

use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warren::node::{NodeConfig, Timing};
use warren_client::wire::ServerStatus;
use warren_client::{Client, ClientConfig, CreateMode, Error, Stat, WatchedEvent};

/// Where the client configuration comes from.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The client configuration file (default: $WARREN_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Clone)]
pub enum ClientCmd {
    /// Creates a node (prints its path).
    Create {
        /// Ephemeral: deleted when this command's session ends.
        #[arg(short = 'e')]
        ephemeral: bool,
        /// Sequential: a counter is appended to the name.
        #[arg(short = 's')]
        sequential: bool,
        /// Container: deleted by the server once its last child goes.
        #[arg(short = 'c')]
        container: bool,
        /// TTL node: deleted once unmodified and childless for MS ms.
        #[arg(long, value_name = "MS")]
        ttl: Option<u64>,
        path: String,
        data: Option<String>,
    },
    /// Prints a node's data; with -w, then waits for its next change.
    Get {
        #[arg(short = 'w')]
        watch: bool,
        path: String,
    },
    /// Sets a node's data (only at VERSION, if given).
    Set {
        #[arg(short = 'v', long)]
        version: Option<i32>,
        path: String,
        data: String,
    },
    /// Deletes a node (only at VERSION, if given).
    Delete {
        #[arg(short = 'v', long)]
        version: Option<i32>,
        path: String,
    },
    /// Lists a node's children; -R lists every node below; -w then waits
    /// for a change of the children.
    Ls {
        #[arg(short = 'w')]
        watch: bool,
        #[arg(short = 'R')]
        recursive: bool,
        path: String,
    },
    /// Prints a node's Stat.
    Stat { path: String },
    /// Prints the events of PATH (and every node below, with --recursive)
    /// until interrupted.
    Watch {
        #[arg(long)]
        recursive: bool,
        path: String,
    },
    /// Brings the connected server up to the leader's commit point.
    Sync { path: String },
    /// Every member's role, term, last applied zxid and state digest.
    Status,
}

fn load_config(args: &ClientArgs) -> Result<ClientConfig, String> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None => match std::env::var_os("WARREN_CONFIG") {
            Some(path) => PathBuf::from(path),
            None => {
                return Err(
                    "no client configuration: pass --config FILE or set WARREN_CONFIG (warren dev writes DIR/client.toml)"
                        .into(),
                );
            }
        },
    };
    ClientConfig::load(&path).map_err(|e| e.to_string())
}

fn say(e: Error) -> String {
    e.to_string()
}

/// Runs a client command, printing its output.
pub async fn run_client(args: ClientArgs, cmd: ClientCmd) -> Result<(), String> {
    if let ClientCmd::Create { ephemeral, sequential, container, ttl, .. } = &cmd {
        // Checked before connecting, so the mistake is named first.
        create_mode(*ephemeral, *sequential, *container, *ttl)?;
    }
    let config = load_config(&args)?;
    if let ClientCmd::Status = cmd {
        return status(&config, args.json).await;
    }
    let client = Client::connect(&config).await.map_err(say)?;
    let json = args.json;
    let result = run_one(&client, cmd, json).await;
    let _ = client.close().await;
    result
}

async fn run_one(client: &Client, cmd: ClientCmd, json: bool) -> Result<(), String> {
    match cmd {
        ClientCmd::Create { ephemeral, sequential, container, ttl, path, data } => {
            let mode = create_mode(ephemeral, sequential, container, ttl)?;
            let data = data.unwrap_or_default();
            let created = client.create(&path, data.as_bytes(), mode).await.map_err(say)?;
            if json {
                println!("{}", json!({ "path": created }));
            } else {
                println!("{created}");
            }
        }
        ClientCmd::Get { watch, path } => {
            if watch {
                let (data, stat, once) = client.get_data_watch(&path).await.map_err(say)?;
                print_data(&data, &stat, json);
                if let Some(event) = once.event().await {
                    print_event(&event, json);
                }
            } else {
                let (data, stat) = client.get_data(&path).await.map_err(say)?;
                print_data(&data, &stat, json);
            }
        }
        ClientCmd::Set { version, path, data } => {
            let stat = client.set_data(&path, data.as_bytes(), version).await.map_err(say)?;
            print_stat(&path, &stat, json);
        }
        ClientCmd::Delete { version, path } => {
            client.delete(&path, version).await.map_err(say)?;
            if json {
                println!("{}", json!({ "deleted": path }));
            }
        }
        ClientCmd::Ls { watch, recursive, path } => {
            if recursive {
                let mut all = Vec::new();
                let mut stack = vec![path.clone()];
                while let Some(p) = stack.pop() {
                    let (names, _) = client.get_children(&p).await.map_err(say)?;
                    for name in names.iter().rev() {
                        let child =
                            if p == "/" { format!("/{name}") } else { format!("{p}/{name}") };
                        stack.push(child);
                    }
                    if p != path {
                        all.push(p);
                    }
                }
                if json {
                    println!("{}", json!({ "paths": all }));
                } else {
                    for p in all {
                        println!("{p}");
                    }
                }
            } else if watch {
                let (names, _, once) = client.get_children_watch(&path).await.map_err(say)?;
                print_names(&names, json);
                if let Some(event) = once.event().await {
                    print_event(&event, json);
                }
            } else {
                let (names, _) = client.get_children(&path).await.map_err(say)?;
                print_names(&names, json);
            }
        }
        ClientCmd::Stat { path } => match client.exists(&path).await.map_err(say)? {
            Some(stat) => print_stat(&path, &stat, json),
            None => return Err(format!("node {path} does not exist")),
        },
        ClientCmd::Watch { recursive, path } => {
            let mut events = client.watch(&path, recursive).await.map_err(say)?;
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(event) => print_event(&event, json),
                        None => return Err("the session ended".into()),
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        ClientCmd::Sync { path } => {
            client.sync(&path).await.map_err(say)?;
            if json {
                println!("{}", json!({ "synced": path }));
            }
        }
        ClientCmd::Status => unreachable!("handled before connecting"),
    }
    Ok(())
}

/// The create mode the flags ask for.
fn create_mode(
    ephemeral: bool,
    sequential: bool,
    container: bool,
    ttl: Option<u64>,
) -> Result<CreateMode, String> {
    Ok(match (ephemeral, sequential, container, ttl) {
        (false, false, false, None) => CreateMode::Persistent,
        (false, true, false, None) => CreateMode::PersistentSequential,
        (true, false, false, None) => CreateMode::Ephemeral,
        (true, true, false, None) => CreateMode::EphemeralSequential,
        (false, false, true, None) => CreateMode::Container,
        (false, false, false, Some(ttl_ms)) => CreateMode::PersistentWithTtl { ttl_ms },
        (false, true, false, Some(ttl_ms)) => CreateMode::PersistentSequentialWithTtl { ttl_ms },
        _ => {
            return Err(
                "choose one kind: -e, -c or --ttl (with -s for sequential, except -c)".into()
            );
        }
    })
}

fn print_data(data: &[u8], stat: &Stat, json: bool) {
    if json {
        let text = String::from_utf8_lossy(data);
        println!("{}", json!({ "data": text, "stat": stat }));
    } else {
        println!("{}", String::from_utf8_lossy(data));
    }
}

fn print_stat(path: &str, stat: &Stat, json: bool) {
    if json {
        println!("{}", json!({ "path": path, "stat": stat }));
        return;
    }
    println!("czxid = {}", stat.czxid);
    println!("mzxid = {}", stat.mzxid);
    println!("pzxid = {}", stat.pzxid);
    println!("ctime = {}", stat.ctime);
    println!("mtime = {}", stat.mtime);
    println!("version = {}", stat.version);
    println!("cversion = {}", stat.cversion);
    println!("aversion = {}", stat.aversion);
    println!("ephemeralOwner = {:#x}", stat.ephemeral_owner);
    println!("dataLength = {}", stat.data_length);
    println!("numChildren = {}", stat.num_children);
}

fn print_names(names: &[String], json: bool) {
    if json {
        println!("{}", json!({ "children": names }));
    } else {
        for name in names {
            println!("{name}");
        }
    }
}

fn print_event(event: &WatchedEvent, json: bool) {
    if json {
        println!(
            "{}",
            json!({ "event": format!("{:?}", event.event), "path": event.path, "zxid": event.zxid.0 })
        );
    } else {
        println!("{:?} {} (zxid {})", event.event, event.path, event.zxid);
    }
}

/// Asks every configured server for its status, one connection each. All
/// connect first and each syncs before it answers, so on a quiet cluster
/// every member reports the same applied zxid and digest (the sessions of
/// this command included).
async fn status(config: &ClientConfig, json: bool) -> Result<(), String> {
    let mut clients = Vec::new();
    for &server in &config.servers {
        let mut one = config.clone();
        one.servers = vec![server];
        one.request_timeout = Duration::from_secs(3);
        clients.push((server, Client::connect(&one).await.map_err(say)));
    }
    for (_, client) in &clients {
        if let Ok(client) = client {
            let _ = client.sync("/").await;
        }
    }
    let mut rows: Vec<(String, Result<ServerStatus, String>)> = Vec::new();
    for (server, client) in &clients {
        let result = match client {
            Ok(client) => client.status().await.map_err(say),
            Err(e) => Err(e.clone()),
        };
        rows.push((server.to_string(), result));
    }
    for (_, client) in clients {
        if let Ok(client) = client {
            let _ = client.close().await;
        }
    }
    if json {
        let members: Vec<serde_json::Value> = rows
            .iter()
            .map(|(addr, r)| match r {
                Ok(s) => json!({
                    "address": addr, "node": s.node, "role": s.role, "term": s.term,
                    "leader": s.leader, "commit": s.commit, "applied": s.applied.0,
                    "digest": format!("{:#018x}", s.digest), "sessions": s.sessions,
                    "znodes": s.znodes,
                }),
                Err(e) => json!({ "address": addr, "error": e }),
            })
            .collect();
        println!("{}", json!({ "members": members }));
    } else {
        println!(
            "{:<22} {:>4} {:<10} {:>5} {:>10} {:<18} {:>8}",
            "ADDRESS", "NODE", "ROLE", "TERM", "APPLIED", "DIGEST", "ZNODES"
        );
        for (addr, r) in &rows {
            match r {
                Ok(s) => println!(
                    "{addr:<22} {:>4} {:<10} {:>5} {:>10} {:<18} {:>8}",
                    format!("n{}", s.node),
                    s.role,
                    s.term,
                    s.applied.0,
                    format!("{:#018x}", s.digest),
                    s.znodes
                ),
                Err(e) => println!("{addr:<22} unreachable: {e}"),
            }
        }
    }
    if rows.iter().all(|(_, r)| r.is_err()) {
        return Err("no member answered".into());
    }
    Ok(())
}

/// `warren serve --config FILE`.
pub async fn serve(config: &Path) -> Result<(), String> {
    let config = NodeConfig::load(config).map_err(|e| e.to_string())?;
    warren::node::serve(config).await.map_err(|e| e.to_string())
}

/// `warren dev`: prepares (or resumes) a local cluster in `dir`, runs each
/// node as its own process, and stops them when interrupted.
pub async fn dev(dir: &Path, nodes: usize) -> Result<(), String> {
    if nodes == 0 || nodes > 9 {
        return Err(format!("--nodes {nodes} is out of range; use 1 to 9"));
    }
    let addrs: Vec<std::net::SocketAddr> =
        (1..=nodes).map(|i| ([127, 0, 0, 1], 7000 + i as u16).into()).collect();
    let cluster =
        warren::dev::prepare(dir, nodes, &addrs, &Timing::default()).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the warren binary: {e}"))?;
    let mut children = Vec::new();
    for &id in cluster.nodes.keys() {
        children.push((id, cluster.spawn(&exe, id).map_err(|e| e.to_string())?));
    }
    let config = cluster.client_config.display();
    println!("warren dev: {nodes} nodes running from {}", cluster.dir.display());
    for (id, (path, addr)) in &cluster.nodes {
        println!(
            "  n{id} on {addr}  (config {}, pid in n{id}.pid, log in n{id}.log)",
            path.display()
        );
    }
    println!();
    println!("Try it from another terminal:");
    println!("  export WARREN_CONFIG={config}");
    println!("  warren create /hello world && warren get /hello && warren status");
    println!("Kill a node (kill -9 $(cat {}/n1.pid)) to watch fail-over;", cluster.dir.display());
    println!("restart it with: warren serve --config {}/n1.toml", cluster.dir.display());
    println!("Ctrl-C stops the cluster; run warren dev again to resume it.");
    wait_for_stop().await;
    println!("stopping...");
    for (_, child) in &children {
        terminate(child.id());
    }
    for (id, mut child) in children {
        // Each node stops cleanly on SIGTERM; one that has not after 5 s is
        // killed.
        let mut waited = 0;
        while waited < 50 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
        if waited == 50 {
            let _ = child.kill();
            let _ = child.wait();
            println!("  n{id} killed");
        }
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Asks a node process to stop (SIGTERM).
fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory of
        // ours; the pid is our own child's, not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
