//! The `warren` binary's cluster commands: `serve`, `dev` and the client
//! commands. Part of the binary (declared by main.rs), so printing is
//! allowed here; each command returns its output lines or one sentence of
//! error.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warren::bench::compare::{self, Case, Cell, Comparison, RoundRobin, Row, Settings, SystemInfo};
use warren::bench::{self, PluginKind, ReadMode, Workload};
use warren::node::{NodeConfig, Timing};
use warren_client::wire::ServerStatus;
use warren_client::{
    Client, ClientConfig, CreateMode, Error, InstallOptions, Invoked, OpResult,
    PLUGIN_FUEL_DEFAULT, PLUGIN_MEMORY_DEFAULT, PluginInfo, Stat, WatchedEvent,
};

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
    /// Installs, binds, invokes, lists and removes WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCmd),
}

/// `warren plugin ...`. Bytes a plugin returns or is configured with are
/// printed as text when they are UTF-8, else as `0x` and hex; with --json,
/// a `NAME` field holds the text (null when not UTF-8) and `NAME_hex`
/// always holds the hex.
#[derive(Subcommand, Clone)]
pub enum PluginCmd {
    /// Installs a WebAssembly component as plugin NAME, or replaces the one
    /// installed there (its bindings then run the new version); prints the
    /// installed plugin.
    Install {
        name: String,
        /// The component, e.g. target/plugins/counter.wasm (built by `cargo
        /// build -p warren-plugins`).
        file: PathBuf,
        /// Fuel for one call: about one unit per WebAssembly instruction.
        #[arg(long, value_name = "N", default_value_t = PLUGIN_FUEL_DEFAULT, value_parser = parse_fuel)]
        fuel: u64,
        /// The most linear memory one call may use, in MiB (1 to 4096).
        #[arg(long, value_name = "M", default_value_t = PLUGIN_MEMORY_DEFAULT >> 20, value_parser = parse_memory_mib)]
        memory_mib: u64,
        /// Install only if the installed version is V (0: only if no plugin
        /// NAME is installed).
        #[arg(long, value_name = "V")]
        expect_version: Option<u32>,
    },
    /// Binds validator NAME to PREFIX: it then checks every write at or
    /// below PREFIX. Binding again replaces the configuration. Prints the
    /// plugin.
    Bind {
        name: String,
        prefix: String,
        /// The binding's configuration (for json-schema, the schema); empty
        /// if not given. Here --config is not the client configuration:
        /// give that with WARREN_CONFIG.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Unbinds validator NAME from PREFIX; prints the plugin.
    Unbind { name: String, prefix: String },
    /// Runs operation plugin NAME on PATH with ARGS (a string, passed as
    /// its bytes); its writes apply atomically. Prints its output.
    Invoke {
        name: String,
        path: String,
        args: Option<String>,
        /// Passes the bytes of FILE as the arguments instead.
        #[arg(long, value_name = "FILE", conflicts_with = "args")]
        args_file: Option<PathBuf>,
    },
    /// Lists the installed plugins: name, version, world and bindings.
    Ls,
    /// Removes plugin NAME (unbind it everywhere first).
    Rm { name: String },
}

/// A plugin command with the files it names already read, so that a
/// missing file is reported before connecting.
enum PluginCall {
    Install { name: String, component: Vec<u8>, options: InstallOptions },
    Bind { name: String, prefix: String, config: Vec<u8> },
    Unbind { name: String, prefix: String },
    Invoke { name: String, path: String, args: Vec<u8> },
    Ls,
    Rm { name: String },
}

/// `--fuel`: a whole number of units, at least 1.
fn parse_fuel(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err(format!(
            "a plugin needs at least 1 unit of fuel per call (the default is {PLUGIN_FUEL_DEFAULT})"
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of fuel units")),
    }
}

/// `--memory-mib`: 1 to 4096.
fn parse_memory_mib(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n @ 1..=4096) => Ok(n),
        _ => Err(format!(
            "a plugin's memory is given in whole MiB from 1 to 4096 (the default is {})",
            PLUGIN_MEMORY_DEFAULT >> 20
        )),
    }
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
    if let ClientCmd::Plugin(plugin) = cmd {
        return run_plugin(args, plugin).await;
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
        ClientCmd::Status | ClientCmd::Plugin(_) => unreachable!("handled before connecting"),
    }
    Ok(())
}

/// Runs a `warren plugin` command: reads the files it names, then connects.
async fn run_plugin(mut args: ClientArgs, cmd: PluginCmd) -> Result<(), String> {
    let binding_config = match &cmd {
        PluginCmd::Bind { config, .. } => config.clone(),
        _ => None,
    };
    let call = PluginCall::prepare(cmd)?;
    if let Some(file) = binding_config {
        // The bind command's own --config shadows the global one, whose
        // value then equals it: the client configuration can only come
        // from WARREN_CONFIG.
        if args.config.as_ref() == Some(&file) {
            args.config = None;
        }
        if ClientConfig::load(&file).is_ok() {
            return Err(format!(
                "{} is a client configuration, but in `warren plugin bind` --config names the binding's configuration; give the client configuration with WARREN_CONFIG",
                file.display()
            ));
        }
        if args.config.is_none() && std::env::var_os("WARREN_CONFIG").is_none() {
            return Err(
                "no client configuration: in `warren plugin bind`, --config names the binding's configuration, so set WARREN_CONFIG to the client configuration"
                    .into(),
            );
        }
    }
    let config = load_config(&args)?;
    let client = Client::connect(&config).await.map_err(say)?;
    let result = call.run(&client, args.json).await;
    let _ = client.close().await;
    result
}

/// The bytes of a file a command names, or one sentence naming the file.
fn read_file(file: &Path, what: &str, next: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read {what} {}: {e}; {next}", file.display()))
}

/// Reads a plugin component file, refusing one that is not WebAssembly
/// before anything is sent; `next` ends the messages.
fn read_component(file: &Path, what: &str, next: &str) -> Result<Vec<u8>, String> {
    let component = read_file(file, what, next)?;
    if !component.starts_with(b"\0asm") {
        return Err(format!(
            "{} is not WebAssembly (it does not start with \\0asm); {next}",
            file.display()
        ));
    }
    Ok(component)
}

impl PluginCall {
    /// Reads the files `cmd` names.
    fn prepare(cmd: PluginCmd) -> Result<PluginCall, String> {
        Ok(match cmd {
            PluginCmd::Install { name, file, fuel, memory_mib, expect_version } => {
                let component = read_component(
                    &file,
                    "plugin file",
                    "give the path of a WebAssembly component (`cargo build -p warren-plugins` builds the examples into target/plugins/)",
                )?;
                let options = InstallOptions {
                    fuel,
                    memory_bytes: memory_mib << 20,
                    expected_version: expect_version,
                };
                PluginCall::Install { name, component, options }
            }
            PluginCmd::Bind { name, prefix, config } => {
                let config = match config {
                    Some(file) => read_file(
                        &file,
                        "binding configuration",
                        "give the path of the file the plugin is configured with (for json-schema, the schema)",
                    )?,
                    None => Vec::new(),
                };
                PluginCall::Bind { name, prefix, config }
            }
            PluginCmd::Unbind { name, prefix } => PluginCall::Unbind { name, prefix },
            PluginCmd::Invoke { name, path, args, args_file } => {
                let args = match (args, args_file) {
                    (_, Some(file)) => read_file(
                        &file,
                        "arguments file",
                        "give the path of the file holding the plugin's arguments",
                    )?,
                    (Some(args), None) => args.into_bytes(),
                    (None, None) => Vec::new(),
                };
                PluginCall::Invoke { name, path, args }
            }
            PluginCmd::Ls => PluginCall::Ls,
            PluginCmd::Rm { name } => PluginCall::Rm { name },
        })
    }

    async fn run(self, client: &Client, json: bool) -> Result<(), String> {
        match self {
            PluginCall::Install { name, component, options } => {
                let info = client.install_plugin(&name, &component, options).await.map_err(say)?;
                print_plugin(&info, json);
            }
            PluginCall::Bind { name, prefix, config } => {
                let info = client.bind_plugin(&name, &prefix, &config).await.map_err(say)?;
                print_plugin(&info, json);
            }
            PluginCall::Unbind { name, prefix } => {
                let info = client.unbind_plugin(&name, &prefix).await.map_err(say)?;
                print_plugin(&info, json);
            }
            PluginCall::Invoke { name, path, args } => {
                let Invoked { output, results } =
                    client.invoke(&name, &path, &args).await.map_err(say)?;
                if json {
                    let mut out = bytes_json("output", &output);
                    out["results"] = results.iter().map(result_json).collect();
                    println!("{out}");
                } else if !output.is_empty() {
                    let text = bytes_text(&output);
                    if text.ends_with('\n') {
                        print!("{text}");
                    } else {
                        println!("{text}");
                    }
                }
            }
            PluginCall::Ls => {
                let plugins = client.list_plugins().await.map_err(say)?;
                if json {
                    let plugins: Vec<serde_json::Value> = plugins.iter().map(plugin_json).collect();
                    println!("{}", json!({ "plugins": plugins }));
                } else {
                    let width = plugins.iter().map(|p| p.name.len()).max().unwrap_or(0).max(4);
                    println!("{:<width$}  {:>7}  {:<9}  BINDINGS", "NAME", "VERSION", "WORLD");
                    for p in &plugins {
                        let bindings: Vec<&str> =
                            p.bindings.iter().map(|b| b.prefix.as_str()).collect();
                        let bindings =
                            if bindings.is_empty() { "-".to_owned() } else { bindings.join(",") };
                        println!(
                            "{:<width$}  {:>7}  {:<9}  {bindings}",
                            p.name,
                            p.version,
                            p.world.to_string()
                        );
                    }
                }
            }
            PluginCall::Rm { name } => {
                client.remove_plugin(&name).await.map_err(say)?;
                if json {
                    println!("{}", json!({ "removed": name }));
                }
            }
        }
        Ok(())
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Bytes for people: the text when they are UTF-8, else `0x` and hex.
fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("0x{}", hex(bytes)),
    }
}

/// Bytes for scripts: `{NAME: text or null, NAME_hex: hex}`.
fn bytes_json(name: &str, bytes: &[u8]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert(name.to_owned(), json!(std::str::from_utf8(bytes).ok()));
    out.insert(format!("{name}_hex"), json!(hex(bytes)));
    serde_json::Value::Object(out)
}

/// A size in MiB when it is a whole number of them, else in bytes.
fn memory_text(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// A plugin's registry entry as JSON: every field, the SHA-256 in hex.
fn plugin_json(p: &PluginInfo) -> serde_json::Value {
    let bindings: Vec<serde_json::Value> = p
        .bindings
        .iter()
        .map(|b| {
            let mut binding = bytes_json("config", &b.config);
            binding["prefix"] = json!(b.prefix);
            binding
        })
        .collect();
    json!({
        "name": p.name, "version": p.version, "world": p.world.to_string(),
        "sha256": hex(&p.sha256), "bytes": p.bytes, "fuel": p.fuel,
        "memory_bytes": p.memory_bytes, "installed": p.installed.0, "bindings": bindings,
    })
}

fn print_plugin(p: &PluginInfo, json: bool) {
    if json {
        println!("{}", plugin_json(p));
        return;
    }
    println!("name = {}", p.name);
    println!("version = {}", p.version);
    println!("world = {}", p.world);
    println!("sha256 = {}", hex(&p.sha256));
    println!("size = {} bytes", p.bytes);
    println!("fuel = {}", p.fuel);
    println!("memory = {}", memory_text(p.memory_bytes));
    println!("installed = {}", p.installed);
    for b in &p.bindings {
        println!("binding = {} ({} bytes of configuration)", b.prefix, b.config.len());
    }
}

/// One result of a write as JSON, named as ZooKeeper names the operations.
fn result_json(result: &OpResult) -> serde_json::Value {
    match result {
        OpResult::Create { path, stat } => json!({ "op": "create", "path": path, "stat": stat }),
        OpResult::Delete => json!({ "op": "delete" }),
        OpResult::SetData { stat } => json!({ "op": "setData", "stat": stat }),
        OpResult::SetAcl { stat } => json!({ "op": "setAcl", "stat": stat }),
        OpResult::Check => json!({ "op": "check" }),
        OpResult::Multi(results) => {
            let results: Vec<serde_json::Value> = results.iter().map(result_json).collect();
            json!({ "op": "multi", "results": results })
        }
        OpResult::Invoked { output, results } => {
            let mut out = bytes_json("output", output);
            out["op"] = json!("invoke");
            out["results"] = results.iter().map(result_json).collect();
            out
        }
        OpResult::Plugin(info) => json!({ "op": "plugin", "plugin": plugin_json(info) }),
        OpResult::PluginRemoved => json!({ "op": "pluginRemoved" }),
    }
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
pub async fn dev(dir: &Path, nodes: usize, zookeeper_port: u16) -> Result<(), String> {
    if nodes == 0 || nodes > 9 {
        return Err(format!("--nodes {nodes} is out of range; use 1 to 9"));
    }
    if zookeeper_port == 0 || usize::from(zookeeper_port) + nodes - 1 > usize::from(u16::MAX) {
        return Err(format!(
            "--zookeeper-port {zookeeper_port} leaves no room for {nodes} ports; use 1 to {}",
            usize::from(u16::MAX) + 1 - nodes
        ));
    }
    let addrs: Vec<std::net::SocketAddr> =
        (1..=nodes).map(|i| ([127, 0, 0, 1], 7000 + i as u16).into()).collect();
    let zookeeper: Vec<std::net::SocketAddr> =
        (0..nodes).map(|i| ([127, 0, 0, 1], zookeeper_port + i as u16).into()).collect();
    let cluster = warren::dev::prepare(dir, nodes, &addrs, &Timing::default(), &zookeeper)
        .map_err(|e| e.to_string())?;
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
    if !cluster.zookeeper.is_empty() {
        let connect: Vec<String> = cluster.zookeeper.values().map(|a| a.to_string()).collect();
        let connect = connect.join(",");
        println!("ZooKeeper clients connect to {connect}, e.g.:");
        println!("  zkCli.sh -server {connect}");
    }
    println!("Kill a node (kill -9 $(cat {}/n1.pid)) to watch fail-over;", cluster.dir.display());
    println!("restart it with: warren serve --config {}/n1.toml", cluster.dir.display());
    println!("Ctrl-C stops the cluster; run warren dev again to resume it.");
    let failed = tokio::select! {
        () = wait_for_stop() => None,
        why = watch_nodes(&mut children, &cluster.dir) => Some(why),
    };
    if let Some(why) = failed {
        return Err(why);
    }
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

/// Says when a node exits (a node killed on purpose, or one that could
/// not start), with the last line of its log; returns once every node has
/// exited, with why `warren dev` stops.
async fn watch_nodes(children: &mut [(u64, std::process::Child)], dir: &Path) -> String {
    let mut exited = std::collections::BTreeSet::new();
    loop {
        for (id, child) in children.iter_mut() {
            if exited.contains(id) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                exited.insert(*id);
                let log = dir.join(format!("n{id}.log"));
                let last = std::fs::read_to_string(&log)
                    .ok()
                    .and_then(|text| {
                        text.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned)
                    })
                    .unwrap_or_else(|| "(its log is empty)".to_string());
                eprintln!("warren dev: n{id} exited ({status}): {last}");
            }
        }
        if exited.len() == children.len() {
            return format!(
                "every node exited (the last line of each log is above; the logs are in {}); is another cluster using ports 7001 and up, or a ZooKeeper the ZooKeeper ports (2181 and up; move them with --zookeeper-port)?",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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

/// `warren bench`: a closed-loop load against the cluster, after etcd's
/// `benchmark` tool. Every flag that applies to one workload only is
/// refused with the others. `warren bench compare` runs a suite of them
/// against Warren, ZooKeeper and etcd instead.
#[derive(Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Option<BenchCmd>,
    /// What the clients do: create unique nodes, set or get one of --keys
    /// nodes, a mix of local gets and sets, a write fanned out to
    /// --watchers watchers, or writes through a plugin.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Create)]
    workload: WorkloadArg,
    /// Clients, each with its own session (the watch workload has one
    /// writer).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Requests in flight per client, each issued when the previous one
    /// on its slot completed.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    in_flight: u32,
    #[command(flatten)]
    load: LoadArgs,
    /// create: sequential nodes, all under one parent.
    #[arg(long)]
    sequential: bool,
    /// get: local (the connected server's state), sync (a sync, then a
    /// local read) or linearizable [default: local].
    #[arg(long, value_enum)]
    read: Option<ReadArg>,
    /// mixed: the fraction of operations that are local gets; the rest are
    /// sets [default: 0.9].
    #[arg(long, value_name = "R")]
    read_ratio: Option<f64>,
    /// watch: sessions holding a persistent watch on the written node
    /// [default: 16].
    #[arg(long, value_name = "W", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    watchers: Option<u32>,
    /// plugin: the json-schema validator bound to the run's parent (sets of
    /// a valid JSON document), or the counter operation (delta 1 on one of
    /// --keys counters).
    #[arg(long, value_enum)]
    plugin: Option<PluginArg>,
    /// plugin: the component to install [default:
    /// target/plugins/json-schema.wasm or target/plugins/counter.wasm,
    /// built by `cargo build -p warren-plugins`].
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// The server processes whose CPU time is measured, comma-separated.
    #[arg(long, value_name = "PIDS", value_delimiter = ',', conflicts_with = "dev_dir")]
    server_pids: Option<Vec<u32>>,
    /// A `warren dev` directory: its n*.pid files give the server
    /// processes, and its client.toml is the client configuration when
    /// neither --config nor WARREN_CONFIG is given.
    #[arg(long, value_name = "DIR")]
    dev_dir: Option<PathBuf>,
    /// Leave the run's nodes and plugin in place afterwards.
    #[arg(long)]
    keep: bool,
}

/// What `warren bench` and `warren bench compare` share: the keys, the
/// values, the clock and the client threads.
#[derive(Args, Clone)]
struct LoadArgs {
    /// Nodes that set, get, mixed and plugin spread over, created before
    /// the clock starts.
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    keys: u32,
    /// Bytes of data per write.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    value_size: usize,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_warmup)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_duration)]
    duration: f64,
    /// Threads that drive the clients [default: one per core]. One costs
    /// Warren's client less CPU per operation (no work stealing), which
    /// servers sharing the machine gain; ZooKeeper's client needs more to
    /// keep up, so `bench compare` keeps the default for every system.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

#[derive(Subcommand, Clone)]
enum BenchCmd {
    /// Runs one suite of workloads against Warren, ZooKeeper and etcd and
    /// prints one table.
    ///
    /// Every workload runs against every system, one run at a time; the
    /// table has a row per workload and, per system, ops/s, p50, p99 and
    /// the servers' CPU per operation, then the ratios of the first system
    /// to the others. ZooKeeper and etcd need a warren built with
    /// `--features compare`; host/bench/compare.sh builds it, starts all
    /// three clusters and runs it.
    // Boxed: main.rs's `Cmd` holds `BenchArgs` inline.
    Compare(Box<CompareArgs>),
}

impl BenchArgs {
    /// The threads the benchmark's clients run on (its runtime's), if
    /// given.
    pub fn threads(&self) -> Option<usize> {
        match &self.mode {
            Some(BenchCmd::Compare(compare)) => compare.load.threads.map(usize::from),
            None => self.load.threads.map(usize::from),
        }
    }
}

/// `warren bench compare`.
#[derive(Args, Clone)]
struct CompareArgs {
    /// The systems, in the table's order; the ratios compare the first
    /// with each other one.
    /// warren-zk is Warren over its ZooKeeper port, driven by the same
    /// ZooKeeper client as zookeeper.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SystemArg::Warren, SystemArg::WarrenZk, SystemArg::Zookeeper, SystemArg::Etcd])]
    systems: Vec<SystemArg>,
    /// The workloads, a row each: create, set, get-local, get-linearizable
    /// and mixed (90 % local gets, 10 % sets) with --clients clients,
    /// create-1 (one client), watch (one writer, --watchers watchers);
    /// get-sync (a sync, then a local get) when asked for.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CaseArg::Create, CaseArg::Set, CaseArg::GetLocal, CaseArg::GetLinearizable, CaseArg::Mixed, CaseArg::CreateOne, CaseArg::Watch])]
    workloads: Vec<CaseArg>,
    /// Clients of the multi-client workloads, each its own session.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Sessions watching the written node in the watch workload.
    #[arg(long, value_name = "W", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    watchers: u32,
    #[command(flatten)]
    load: LoadArgs,
    /// warren: a `warren dev` directory; its n*.pid files give the server
    /// processes, and its client.toml is the client configuration when
    /// neither --config nor WARREN_CONFIG is given.
    #[arg(long, value_name = "DIR")]
    dev_dir: Option<PathBuf>,
    /// warren: the server processes whose CPU time is measured,
    /// comma-separated (instead of --dev-dir's).
    #[arg(long, value_name = "PIDS", value_delimiter = ',')]
    warren_pids: Option<Vec<u32>>,
    /// zookeeper: its members' client endpoints (what
    /// `host/bench/peers.sh endpoints zookeeper` prints).
    #[arg(
        long,
        value_name = "HOST:PORT,..",
        value_delimiter = ',',
        default_value = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
    )]
    zookeeper: Vec<String>,
    /// etcd: its members' client endpoints (what
    /// `host/bench/peers.sh endpoints etcd` prints).
    #[arg(
        long,
        value_name = "HOST:PORT,..",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399"
    )]
    etcd: Vec<String>,
    /// The directory host/bench/peers.sh runs ZooKeeper and etcd from
    /// (its --dir): their server PIDs are read from its pid files.
    #[arg(long, value_name = "DIR", default_value = "/tmp/warren-peers")]
    peers_dir: PathBuf,
    /// zookeeper: the server processes, comma-separated (instead of the
    /// pid files in --peers-dir).
    #[arg(long, value_name = "PIDS", value_delimiter = ',')]
    zookeeper_pids: Option<Vec<u32>>,
    /// etcd: the server processes, comma-separated (instead of the pid
    /// files in --peers-dir).
    #[arg(long, value_name = "PIDS", value_delimiter = ',')]
    etcd_pids: Option<Vec<u32>>,
    /// warren-zk: Warren's ZooKeeper endpoints (default: the
    /// zookeeper_listen of each node in --dev-dir).
    #[arg(long, value_name = "HOST:PORT,..", value_delimiter = ',')]
    warren_zookeeper: Option<Vec<String>>,
    /// Also write every report, as --json prints it, to FILE (created
    /// before the first run, so a bad path fails at once).
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SystemArg {
    Warren,
    WarrenZk,
    Zookeeper,
    Etcd,
}

impl SystemArg {
    fn name(self) -> &'static str {
        match self {
            SystemArg::Warren => "warren",
            SystemArg::WarrenZk => "warren-zk",
            SystemArg::Zookeeper => "zookeeper",
            SystemArg::Etcd => "etcd",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaseArg {
    Create,
    Set,
    GetLocal,
    GetSync,
    GetLinearizable,
    Mixed,
    #[value(name = "create-1")]
    CreateOne,
    Watch,
}

impl CaseArg {
    fn case(self) -> Case {
        match self {
            CaseArg::Create => Case::Create,
            CaseArg::Set => Case::Set,
            CaseArg::GetLocal => Case::GetLocal,
            CaseArg::GetSync => Case::GetSync,
            CaseArg::GetLinearizable => Case::GetLinearizable,
            CaseArg::Mixed => Case::Mixed,
            CaseArg::CreateOne => Case::CreateOne,
            CaseArg::Watch => Case::Watch,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum WorkloadArg {
    Create,
    Set,
    Get,
    Mixed,
    Watch,
    Plugin,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReadArg {
    Local,
    Sync,
    Linearizable,
}

#[derive(Clone, Copy, ValueEnum)]
enum PluginArg {
    Validator,
    Counter,
}

/// `--warmup`: seconds, 0 or more.
fn parse_warmup(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 86400")),
    }
}

/// `--duration`: seconds, above 0.
fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!("{s:?} is not a number of seconds above 0 and at most 86400")),
    }
}

impl BenchArgs {
    /// The run's parameters, with the component read and the server PIDs
    /// found; one sentence for a flag that does not fit the workload.
    fn params(&self) -> Result<bench::Params, String> {
        let name = self.workload.to_possible_value().map(|v| v.get_name().to_owned());
        let name = name.unwrap_or_default();
        let only = |flag: &str, workload: &str| {
            Err(format!("{flag} applies to --workload {workload} only, not to --workload {name}"))
        };
        let w = self.workload;
        if self.sequential && !matches!(w, WorkloadArg::Create) {
            return only("--sequential", "create");
        }
        if self.read.is_some() && !matches!(w, WorkloadArg::Get) {
            return only("--read", "get");
        }
        if self.read_ratio.is_some() && !matches!(w, WorkloadArg::Mixed) {
            return only("--read-ratio", "mixed");
        }
        if self.watchers.is_some() && !matches!(w, WorkloadArg::Watch) {
            return only("--watchers", "watch");
        }
        if self.plugin.is_some() && !matches!(w, WorkloadArg::Plugin) {
            return only("--plugin", "plugin");
        }
        if self.component.is_some() && !matches!(w, WorkloadArg::Plugin) {
            return only("--component", "plugin");
        }
        let workload = match w {
            WorkloadArg::Create => Workload::Create { sequential: self.sequential },
            WorkloadArg::Set => Workload::Set,
            WorkloadArg::Get => Workload::Get {
                read: match self.read.unwrap_or(ReadArg::Local) {
                    ReadArg::Local => ReadMode::Local,
                    ReadArg::Sync => ReadMode::Sync,
                    ReadArg::Linearizable => ReadMode::Linearizable,
                },
            },
            WorkloadArg::Mixed => Workload::Mixed { read_ratio: self.read_ratio.unwrap_or(0.9) },
            WorkloadArg::Watch => {
                Workload::Watch { watchers: self.watchers.unwrap_or(16) as usize }
            }
            WorkloadArg::Plugin => {
                let kind = match self.plugin {
                    Some(PluginArg::Validator) => PluginKind::Validator,
                    Some(PluginArg::Counter) => PluginKind::Counter,
                    None => {
                        return Err(
                            "--workload plugin needs --plugin validator or --plugin counter".into(),
                        );
                    }
                };
                let file = self.component.clone().unwrap_or_else(|| kind.default_component());
                let component = read_component(
                    &file,
                    "the plugin component",
                    "run `cargo build -p warren-plugins` from the repository root to build it, or give --component PATH",
                )?;
                Workload::Plugin { kind, file, component }
            }
        };
        let server_pids = match (&self.server_pids, &self.dev_dir) {
            (Some(pids), _) => Some(running(pids, "--server-pids")?),
            (None, Some(dir)) => Some(bench::cpu::dev_pids(dir)?),
            (None, None) => None,
        };
        let params = bench::Params {
            workload,
            clients: self.clients as usize,
            in_flight: self.in_flight as usize,
            keys: self.load.keys as usize,
            value_size: self.load.value_size,
            warmup: Duration::from_secs_f64(self.load.warmup),
            duration: Duration::from_secs_f64(self.load.duration),
            server_pids,
            keep: self.keep,
        };
        params.check()?;
        Ok(params)
    }
}

/// `pids`, checked to be running processes; `flag` names where they came
/// from.
fn running(pids: &[u32], flag: &str) -> Result<Vec<u32>, String> {
    for &pid in pids {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!(
                "{flag} names process {pid}, which is not running; give the PIDs of the running servers"
            ));
        }
    }
    Ok(pids.to_vec())
}

/// The Warren client configuration: --config, WARREN_CONFIG, else the dev
/// directory's client.toml.
fn bench_config(mut client: ClientArgs, dev_dir: Option<&Path>) -> Result<ClientConfig, String> {
    if client.config.is_none()
        && std::env::var_os("WARREN_CONFIG").is_none()
        && let Some(dir) = dev_dir
    {
        client.config = Some(dir.join("client.toml"));
    }
    load_config(&client)
}

/// Progress lines on stderr, each prefixed with `what`: rewritten in place
/// on a terminal, one a second otherwise.
struct ProgressLine {
    terminal: bool,
    shown: bool,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            shown: false,
        }
    }

    fn show(&mut self, what: &str, p: &bench::Progress) {
        let line = format!("{what}{}", progress_line(p));
        if self.terminal {
            eprint!("\r{line:<79}");
            self.shown = true;
        } else {
            eprintln!("{line}");
        }
    }

    /// Clears a line left on a terminal.
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r{:79}\r", "");
            self.shown = false;
        }
    }
}

/// `warren bench`: runs one workload and prints its report (progress on
/// stderr while it runs); `warren bench compare`: see [`bench_compare`].
pub async fn bench(client: ClientArgs, args: BenchArgs) -> Result<(), String> {
    if let Some(BenchCmd::Compare(compare)) = args.mode {
        return bench_compare(client, *compare).await;
    }
    let params = args.params()?;
    let json = client.json;
    let config = bench_config(client, args.dev_dir.as_deref())?;
    let system = bench::warren::Warren::new(config);
    let mut progress = ProgressLine::new();
    let report = bench::run(&system, &params, |p| progress.show("", p)).await;
    progress.clear();
    let report = report?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// A system of the comparison: how it is reached and whose CPU is read.
struct Contender {
    target: Target,
    pids: Option<Vec<u32>>,
    info: SystemInfo,
}

/// The systems `warren bench compare` can drive; ZooKeeper and etcd only
/// with the `compare` feature.
enum Target {
    Warren(RoundRobin<bench::warren::Warren>),
    /// ZooKeeper, or Warren over its ZooKeeper port: the same driver.
    #[cfg(feature = "compare")]
    ZooKeeper(RoundRobin<bench::zookeeper::ZooKeeper>),
    #[cfg(feature = "compare")]
    Etcd(RoundRobin<bench::etcd::Etcd>),
}

impl Target {
    /// Runs one cell against this system, its sessions spread from the
    /// first member on.
    async fn run(&self, params: &bench::Params, progress: impl FnMut(&bench::Progress)) -> Cell {
        match self {
            Target::Warren(system) => {
                system.restart();
                compare::run_cell(system, params, progress).await
            }
            #[cfg(feature = "compare")]
            Target::ZooKeeper(system) => {
                system.restart();
                compare::run_cell(system, params, progress).await
            }
            #[cfg(feature = "compare")]
            Target::Etcd(system) => {
                system.restart();
                compare::run_cell(system, params, progress).await
            }
        }
    }
}

/// Why this binary cannot drive `system`.
fn without_drivers(system: SystemArg) -> String {
    format!(
        "this warren was built without the ZooKeeper and etcd drivers, so it cannot run {}; rebuild it with `cargo build --release -p warren --features compare`",
        system.name()
    )
}

/// The PIDs of a peer system: `given`, else those peers.sh keeps.
#[cfg(feature = "compare")]
fn peer_pids(given: &Option<Vec<u32>>, dir: &Path, system: SystemArg) -> Result<Vec<u32>, String> {
    match given {
        Some(pids) => running(pids, &format!("--{}-pids", system.name())),
        None => compare::peer_pids(dir, system.name()),
    }
}

impl CompareArgs {
    /// The suite's settings; one sentence for a bad value.
    fn settings(&self) -> Result<Settings, String> {
        let settings = Settings {
            clients: self.clients as usize,
            watchers: self.watchers as usize,
            keys: self.load.keys as usize,
            value_size: self.load.value_size,
            warmup: Duration::from_secs_f64(self.load.warmup),
            duration: Duration::from_secs_f64(self.load.duration),
        };
        for case in &self.workloads {
            case.case().params(&settings).check()?;
        }
        Ok(settings)
    }

    /// Each system asked for, reached and with its PIDs.
    fn contenders(&self, client: &ClientArgs) -> Result<Vec<Contender>, String> {
        let mut contenders = Vec::new();
        for (i, &system) in self.systems.iter().enumerate() {
            if self.systems[..i].contains(&system) {
                return Err(format!("--systems names {} twice", system.name()));
            }
            let contender = match system {
                SystemArg::Warren => {
                    let config = bench_config(client.clone(), self.dev_dir.as_deref())?;
                    let pids = match (&self.warren_pids, &self.dev_dir) {
                        (Some(pids), _) => Some(running(pids, "--warren-pids")?),
                        (None, Some(dir)) => Some(bench::cpu::dev_pids(dir)?),
                        (None, None) => None,
                    };
                    let servers: Vec<String> =
                        config.servers.iter().map(|s| s.to_string()).collect();
                    let about = format!("{} (QUIC, mutual TLS)", servers.join(","));
                    let members = compare::warren_members(&config);
                    let target = RoundRobin::new(members)
                        .ok_or("the client configuration lists no server")?;
                    Contender { target: Target::Warren(target), pids, info: info(system, about) }
                }
                #[cfg(feature = "compare")]
                SystemArg::WarrenZk => {
                    let endpoints = match (&self.warren_zookeeper, &self.dev_dir) {
                        (Some(endpoints), _) => endpoints.clone(),
                        (None, Some(dir)) => dev_zookeeper_endpoints(dir)?,
                        (None, None) => {
                            return Err("warren-zk needs --warren-zookeeper or --dev-dir".into());
                        }
                    };
                    let pids = match (&self.warren_pids, &self.dev_dir) {
                        (Some(pids), _) => Some(running(pids, "--warren-pids")?),
                        (None, Some(dir)) => Some(bench::cpu::dev_pids(dir)?),
                        (None, None) => None,
                    };
                    let members = endpoints.iter().map(|e| {
                        bench::zookeeper::ZooKeeper::named("warren-zk", std::slice::from_ref(e))
                    });
                    let target = RoundRobin::new(members.collect())
                        .ok_or("--warren-zookeeper lists no endpoint")?;
                    let about = format!("{} (ZooKeeper protocol, TCP)", endpoints.join(","));
                    Contender { target: Target::ZooKeeper(target), pids, info: info(system, about) }
                }
                #[cfg(feature = "compare")]
                SystemArg::Zookeeper => {
                    let members = self
                        .zookeeper
                        .iter()
                        .map(|e| bench::zookeeper::ZooKeeper::new(std::slice::from_ref(e)));
                    let target = RoundRobin::new(members.collect())
                        .ok_or("--zookeeper lists no endpoint")?;
                    let pids = peer_pids(&self.zookeeper_pids, &self.peers_dir, system)?;
                    let about = self.zookeeper.join(",");
                    Contender {
                        target: Target::ZooKeeper(target),
                        pids: Some(pids),
                        info: info(system, about),
                    }
                }
                #[cfg(feature = "compare")]
                SystemArg::Etcd => {
                    let members =
                        self.etcd.iter().map(|e| bench::etcd::Etcd::new(std::slice::from_ref(e)));
                    let target =
                        RoundRobin::new(members.collect()).ok_or("--etcd lists no endpoint")?;
                    let pids = peer_pids(&self.etcd_pids, &self.peers_dir, system)?;
                    let about = format!("{} (gRPC)", self.etcd.join(","));
                    Contender {
                        target: Target::Etcd(target),
                        pids: Some(pids),
                        info: info(system, about),
                    }
                }
                #[cfg(not(feature = "compare"))]
                SystemArg::WarrenZk | SystemArg::Zookeeper | SystemArg::Etcd => {
                    return Err(without_drivers(system));
                }
            };
            contenders.push(contender);
        }
        Ok(contenders)
    }
}

/// The ZooKeeper endpoints of a `warren dev` directory's nodes.
#[cfg(feature = "compare")]
fn dev_zookeeper_endpoints(dir: &Path) -> Result<Vec<String>, String> {
    let mut endpoints = Vec::new();
    for i in 1.. {
        let path = dir.join(format!("n{i}.toml"));
        if !path.exists() {
            break;
        }
        let config = NodeConfig::load(&path).map_err(|e| e.to_string())?;
        match config.zookeeper.listen {
            Some(addr) => endpoints.push(addr.to_string()),
            None => {
                return Err(format!(
                    "{} has no zookeeper_listen; give warren-zk its endpoints with --warren-zookeeper",
                    path.display()
                ));
            }
        }
    }
    if endpoints.is_empty() {
        return Err(format!("{} holds no node configuration (n1.toml, ...)", dir.display()));
    }
    Ok(endpoints)
}

/// A system's line in the table's header: where it was reached; its PIDs
/// are added once known.
fn info(system: SystemArg, about: String) -> SystemInfo {
    SystemInfo { name: system.name().to_owned(), about }
}

/// `warren bench compare`: every workload of the suite against every
/// system, one run at a time (a workload on each system in turn, then the
/// next workload), then one table (or, with --json, every report).
async fn bench_compare(client: ClientArgs, args: CompareArgs) -> Result<(), String> {
    // Named first: nothing else matters if the drivers are missing.
    if !cfg!(feature = "compare")
        && let Some(&peer) = args.systems.iter().find(|&&s| s != SystemArg::Warren)
    {
        return Err(without_drivers(peer));
    }
    let settings = args.settings()?;
    let mut contenders = args.contenders(&client)?;
    let mut json_out = match &args.json_out {
        Some(path) => Some((
            path,
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create --json-out {}: {e}", path.display()))?,
        )),
        None => None,
    };
    for c in &mut contenders {
        let pids = match &c.pids {
            Some(pids) => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!("server pids {}", pids.join(","))
            }
            None => "server CPU not measured (no PIDs: give --dev-dir or --warren-pids)".into(),
        };
        c.info.about = format!("{}; {pids}", c.info.about);
    }
    let cases: Vec<Case> = args.workloads.iter().map(|w| w.case()).collect();
    let mut comparison =
        Comparison::new(settings.clone(), contenders.iter().map(|c| c.info.clone()).collect());
    let total = cases.len() * contenders.len();
    let mut progress = ProgressLine::new();
    let mut n = 0;
    for &case in &cases {
        let mut cells = Vec::new();
        for c in &contenders {
            n += 1;
            let mut params = case.params(&settings);
            params.server_pids = c.pids.clone();
            let what = format!("[{n}/{total}] {} {}: ", c.info.name, case.name());
            let cell = c.target.run(&params, |p| progress.show(&what, p)).await;
            progress.clear();
            let outcome = match &cell {
                Cell::Measured(report) => {
                    format!(
                        "{:.0} ops/s, {} errors",
                        report.ops_per_second(),
                        report.errors_total()
                    )
                }
                Cell::NotApplicable(why) => format!("n/a: {why}"),
                Cell::Failed(why) => format!("failed: {why}"),
            };
            eprintln!("{what}{outcome}");
            cells.push(cell);
        }
        comparison.rows.push(Row { case, cells });
    }
    if let Some((path, file)) = &mut json_out {
        use std::io::Write;
        writeln!(file, "{}", comparison.json())
            .map_err(|e| format!("cannot write --json-out {}: {e}", path.display()))?;
    }
    if client.json {
        println!("{}", comparison.json());
    } else {
        print!("{}", comparison.text());
    }
    Ok(())
}

/// One line of progress.
fn progress_line(p: &bench::Progress) -> String {
    use bench::Phase;
    match p.phase {
        Phase::WarmUp | Phase::Measuring => {
            let errors = match p.errors {
                0 => String::new(),
                1 => ", 1 error".to_owned(),
                n => format!(", {n} errors"),
            };
            format!(
                "{} {:.0}/{:.0} s: {} ops, {:.0} ops/s{errors}",
                p.phase.name(),
                p.elapsed.as_secs_f64(),
                p.length.as_secs_f64(),
                p.ops,
                p.rate
            )
        }
        Phase::Finishing => {
            format!("finishing: {} ops counted; waiting for the requests in flight", p.ops)
        }
        Phase::Cleanup => format!("cleanup: deleting {} nodes", p.ops),
    }
}
