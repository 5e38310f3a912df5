//! The plugin runtime: WebAssembly components (WIT package
//! `warren:plugin`, see wit/plugin.wit) compiled once per node and run on
//! the apply path, deterministically.
//!
//! Determinism is the whole point: every replica runs the same call in
//! commit order and must reach the same outcome. So the engine is fixed
//! here, process-wide, and never configured from outside:
//! - fuel metering with an explicit cost table ([`fuel_costs`]); never
//!   epochs or wall-clock deadlines;
//! - NaN canonicalization, deterministic relaxed SIMD, no threads (not
//!   compiled into wasmtime), a pinned optimisation level;
//! - memory capped per call by a limiter that fails the call with the
//!   limit (not a silent `memory.grow` of -1, which Rust turns into an
//!   abort without a message), tables capped too;
//! - a fresh instance per call, so no call sees another's memory or fuel;
//! - imports limited to exactly the interfaces of the component's world:
//!   no WASI, nothing else;
//! - a failure is described from what is deterministic (the trap code, the
//!   limit, the guest's own log), never from native backtraces. Where a
//!   stack overflow hits is the one thing that depends on native code, so
//!   its outcome is reported without a fuel figure.
//!
//! The wasmtime version and this configuration are part of what replicas
//! must agree on: all members of a cluster run the same `warren` build.
//!
//! Compiled code is kept in memory by the component's SHA-256, and, when
//! the node gives a directory, on disk keyed by that hash and the engine's
//! compatibility hash (so a file from another build or configuration is
//! never loaded).

mod host;

use crate::limits::{
    PLUGIN_CALLS_MAX, PLUGIN_POOL_MEMORY_BYTES_MAX, PLUGIN_POOL_RESIDENT_BYTES_MAX,
    PLUGIN_STACK_BYTES_MAX, PLUGIN_TABLE_ELEMENTS_MAX,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OperatorCost, OptLevel, PoolingAllocationConfig,
    Store, Trap, WasmBacktraceDetails,
};

pub use host::{CallContext, TreeRead};
use host::{CallState, MemoryCapHit};
pub use warren_client::{PluginFailure, PluginWorld};

pub(crate) mod val {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warren:plugin/validator",
    });
}

pub(crate) mod op {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warren:plugin/operation",
        with: { "warren:plugin/host": crate::plugin::val::warren::plugin::host },
    });
}

pub use op::{CreateMode, Outcome, Write};
pub use val::{Change, ChangeKind};

/// The interfaces each world may import, fully qualified.
const HOST_INTERFACE: &str = "warren:plugin/host@0.1.0";
const TREE_INTERFACE: &str = "warren:plugin/tree@0.1.0";

/// The fuel table: one unit per instruction, as wasmtime's default, made
/// explicit so that a wasmtime upgrade cannot change what a plugin may do
/// silently, with calls and memory growth dearer (a call does more native
/// work; every 64 KiB page grown is touched). Bulk memory costs one unit
/// per byte.
pub fn fuel_costs() -> OperatorCost {
    let mut costs = OperatorCost::new();
    costs.Call = 4;
    costs.CallIndirect = 6;
    costs.CallRef = 6;
    costs.ReturnCall = 4;
    costs.ReturnCallIndirect = 6;
    costs.ReturnCallRef = 6;
    costs.MemoryGrow = 16;
    costs.variable.memory_grow_per_page = 64;
    costs.variable.memory_copy_per_byte = 1;
    costs.variable.memory_fill_per_byte = 1;
    costs.variable.memory_init_per_byte = 1;
    costs
}

/// The one engine: its configuration decides outcomes, so it is built
/// here and nowhere else.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .operator_cost(fuel_costs())
            .cranelift_opt_level(OptLevel::Speed)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(true)
            .relaxed_simd_deterministic(true)
            .wasm_component_model(true)
            .wasm_memory64(false)
            .wasm_backtrace_max_frames(None)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable)
            .max_wasm_stack(PLUGIN_STACK_BYTES_MAX);
        // Instances come from a pool of pre-reserved slots: a fresh
        // instance per call then costs no mmap/munmap (counter call 42 µs
        // on demand, 23 µs pooled).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(PLUGIN_CALLS_MAX)
            .max_core_instances_per_component(16)
            .total_core_instances(PLUGIN_CALLS_MAX * 16)
            .max_memories_per_component(4)
            .total_memories(PLUGIN_CALLS_MAX * 4)
            .max_tables_per_component(16)
            .total_tables(PLUGIN_CALLS_MAX * 16)
            .table_elements(PLUGIN_TABLE_ELEMENTS_MAX)
            .max_memory_size(PLUGIN_POOL_MEMORY_BYTES_MAX)
            .linear_memory_keep_resident(PLUGIN_POOL_RESIDENT_BYTES_MAX)
            .table_keep_resident(64 << 10)
            // Where the kernel has it (6.7 and later); otherwise the first
            // bytes are reset with memset and the rest discarded. Either
            // way every call starts from the component's initial memory.
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // The configuration above is fixed and valid for this build's
        // features; failing here is a build defect, not an input error.
        Engine::new(&config).expect("the plugin engine configuration is valid")
    })
}

/// A compiled component, ready to instantiate per call.
pub struct Compiled {
    world: PluginWorld,
    pre: Pre,
}

enum Pre {
    Validator(val::ValidatorPre<CallState>),
    Operation(op::OperationPre<CallState>),
}

impl Compiled {
    pub fn world(&self) -> PluginWorld {
        self.world
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("world", &self.world).finish_non_exhaustive()
    }
}

/// Limits of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    pub fuel: u64,
    pub memory_bytes: u64,
}

/// Counts the calls running, so that no more than the pool holds run at
/// once: a call waits for a slot instead of failing.
struct Slots {
    running: Mutex<u32>,
    freed: Condvar,
}

/// One call's claim on the pool, released when dropped (after the call's
/// store, which is declared after it).
struct Slot(&'static Slots);

impl Slots {
    fn acquire() -> Slot {
        static SLOTS: Slots = Slots { running: Mutex::new(0), freed: Condvar::new() };
        let mut running = SLOTS.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= PLUGIN_CALLS_MAX {
            running = SLOTS.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot(&SLOTS)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.freed.notify_one();
    }
}

/// Compiled components by SHA-256, for the whole process.
fn memo() -> &'static Mutex<HashMap<[u8; 32], Arc<Compiled>>> {
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], Arc<Compiled>>>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// Cuts `text` to at most `max` bytes, at a character boundary; true if
/// anything was cut. Plugins' strings (log lines, reasons) are bounded with
/// it.
pub(crate) fn truncate_utf8(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compiles `bytes` (whose SHA-256 is `sha`, checked by the caller), or
/// returns the copy compiled before. Checks that it is a component of one
/// of the two worlds, importing nothing else. With `cache_dir`, compiled
/// code is also kept on disk across restarts. The error is a sentence for
/// the person installing it.
pub fn load(
    sha: &[u8; 32],
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Arc<Compiled>, String> {
    if let Some(compiled) = memo().lock().unwrap_or_else(|e| e.into_inner()).get(sha) {
        return Ok(compiled.clone());
    }
    let component = compile(sha, bytes, cache_dir)?;
    let compiled = Arc::new(link(&component)?);
    memo().lock().unwrap_or_else(|e| e.into_inner()).insert(*sha, compiled.clone());
    Ok(compiled)
}

fn compile(sha: &[u8; 32], bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component, String> {
    let engine = engine();
    // The preamble: "\0asm", then version 1 for a core module, or
    // version 0xd layer 1 for a component.
    if !bytes.starts_with(b"\0asm\x0d\x00\x01\x00") {
        return Err(if bytes.starts_with(b"\0asm\x01\x00\x00\x00") {
            "it is a core WebAssembly module, not a component; turn it into one with \
             wit-component (see plugins/README.md)"
                .to_string()
        } else {
            "it is not a WebAssembly component".to_string()
        });
    }
    let cached = cache_dir.map(|dir| cache_file(dir, sha));
    if let Some(file) = &cached
        && let Ok(stored) = std::fs::read(file)
    {
        match verified(&stored) {
            // SAFETY: the code is what this node wrote (its checksum holds)
            // for this very engine configuration and wasmtime version (both
            // in the file's name); deserialize checks the version again.
            Some(code) => match unsafe { Component::deserialize(engine, code) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("ignoring cached plugin code {}: {e}", file.display()),
            },
            None => tracing::warn!(
                "cached plugin code {} fails its checksum; compiling it again",
                file.display()
            ),
        }
    }
    let component =
        Component::new(engine, bytes).map_err(|e| format!("it does not compile: {e}"))?;
    if let Some(file) = &cached
        && let Err(e) = write_cache(file, &component)
    {
        tracing::warn!("could not cache plugin code at {}: {e}", file.display());
    }
    Ok(component)
}

/// Where compiled code for `sha` lives: named by the component's hash and
/// the engine's compatibility hash (wasmtime version, compiler settings,
/// CPU features), so another build's file is never picked up.
fn cache_file(dir: &Path, sha: &[u8; 32]) -> PathBuf {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    engine().precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hasher.finish();
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}-{engine_hash:016x}.cwasm"))
}

/// The machine code in a cache file, if its trailing SHA-256 holds: a
/// damaged file is never loaded as code.
fn verified(stored: &[u8]) -> Option<&[u8]> {
    let split = stored.len().checked_sub(32)?;
    let (code, sum) = stored.split_at(split);
    (sha256(code) == sum).then_some(code)
}

/// Writes the component's machine code and its SHA-256, atomically.
fn write_cache(file: &Path, component: &Component) -> std::io::Result<()> {
    let mut code = component.serialize().map_err(std::io::Error::other)?;
    let sum = sha256(&code);
    code.extend_from_slice(&sum);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, code)?;
    std::fs::rename(tmp, file)
}

/// Finds the component's world from its exports, checks its imports, and
/// links it.
fn link(component: &Component) -> Result<Compiled, String> {
    let engine = engine();
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let world = match (exports.contains(&"validate"), exports.contains(&"invoke")) {
        (true, false) => PluginWorld::Validator,
        (false, true) => PluginWorld::Operation,
        (true, true) => {
            return Err("it exports both `validate` and `invoke`; a plugin is one world".into());
        }
        (false, false) => {
            return Err(format!(
                "it exports neither `validate` (a validator) nor `invoke` (an operation), \
                 only {exports:?}; build it against wit/plugin.wit"
            ));
        }
    };
    let allowed: &[&str] = match world {
        PluginWorld::Validator => &[HOST_INTERFACE],
        PluginWorld::Operation => &[HOST_INTERFACE, TREE_INTERFACE],
    };
    for (name, item) in ty.imports(engine) {
        let ok = match item.ty {
            ComponentItem::ComponentInstance(_) => allowed.contains(&name),
            // Type imports carry no behaviour.
            ComponentItem::Type(_) => true,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "it imports `{name}`, which a {world} may not (only {allowed:?}; no WASI)"
            ));
        }
    }
    let link_error = |e: wasmtime::Error| format!("it does not match the {world} world: {e}");
    let pre = match world {
        PluginWorld::Validator => {
            let mut linker = Linker::new(engine);
            val::Validator::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
                .map_err(link_error)?;
            let pre = linker.instantiate_pre(component).map_err(link_error)?;
            Pre::Validator(val::ValidatorPre::new(pre).map_err(link_error)?)
        }
        PluginWorld::Operation => {
            let mut linker = Linker::new(engine);
            op::Operation::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
                .map_err(link_error)?;
            let pre = linker.instantiate_pre(component).map_err(link_error)?;
            Pre::Operation(op::OperationPre::new(pre).map_err(link_error)?)
        }
    };
    Ok(Compiled { world, pre })
}

/// Instantiates the component once under `limits`, without calling it:
/// refuses, at install, a component whose initial memory alone is over its
/// limit.
pub fn check_limits(compiled: &Compiled, limits: CallLimits) -> Result<(), PluginFailure> {
    let _slot = Slots::acquire();
    let mut store = new_store(limits, CallContext::default(), None);
    let result = match &compiled.pre {
        Pre::Validator(pre) => pre.instantiate(&mut store).map(drop),
        Pre::Operation(pre) => pre.instantiate(&mut store).map(drop),
    };
    result.map_err(|e| failure(e, &store, limits))
}

/// Asks validator `compiled` (installed as `plugin`) to prepare a
/// binding's `config`: `Ok(Ok(prepared))` is what its `validate` calls
/// get, `Ok(Err(reason))` refuses the configuration, `Err` is a failure of
/// the plugin itself. The call sees zxid and time 0, so that the result
/// depends on the configuration alone and can be computed again after a
/// restart.
pub fn prepare(
    compiled: &Compiled,
    limits: CallLimits,
    plugin: &str,
    config: &[u8],
) -> Result<Result<Vec<u8>, String>, PluginFailure> {
    let Pre::Validator(pre) = &compiled.pre else {
        return Err(PluginFailure::Trap { message: "it is not a validator".into() });
    };
    let ctx = CallContext { plugin: plugin.into(), zxid: 0, time_ms: 0 };
    let _slot = Slots::acquire();
    let mut store = new_store(limits, ctx, None);
    let result =
        pre.instantiate(&mut store).and_then(|instance| instance.call_prepare(&mut store, config));
    result.map_err(|e| failure(e, &store, limits))
}

/// Asks validator `compiled` about `change`, with the binding's `prepared`
/// configuration: `Ok(Ok(()))` accepts, `Ok(Err(reason))` rejects, `Err`
/// is a failure of the plugin itself.
pub fn validate(
    compiled: &Compiled,
    limits: CallLimits,
    ctx: CallContext,
    change: &Change,
    prepared: &[u8],
) -> Result<Result<(), String>, PluginFailure> {
    let Pre::Validator(pre) = &compiled.pre else {
        return Err(PluginFailure::Trap { message: "it is not a validator".into() });
    };
    let _slot = Slots::acquire();
    let mut store = new_store(limits, ctx, None);
    let result = pre
        .instantiate(&mut store)
        .and_then(|instance| instance.call_validate(&mut store, change, prepared));
    result.map_err(|e| failure(e, &store, limits))
}

/// Invokes operation `compiled` with `path` and `args`, reading the tree
/// through `tree`: `Ok(Ok(outcome))` has the writes and output,
/// `Ok(Err(message))` is the plugin's own error, `Err` its failure.
pub fn invoke(
    compiled: &Compiled,
    limits: CallLimits,
    ctx: CallContext,
    tree: &dyn TreeRead,
    path: &str,
    args: &[u8],
) -> Result<Result<Outcome, String>, PluginFailure> {
    let Pre::Operation(pre) = &compiled.pre else {
        return Err(PluginFailure::Trap { message: "it is not an operation".into() });
    };
    host::with_tree(tree, |tree| {
        let _slot = Slots::acquire();
        let mut store = new_store(limits, ctx, Some(tree));
        let result = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_invoke(&mut store, path, args));
        result.map_err(|e| failure(e, &store, limits))
    })
}

fn new_store(
    limits: CallLimits,
    ctx: CallContext,
    tree: Option<host::TreeHandle>,
) -> Store<CallState> {
    let mut store = Store::new(engine(), CallState::new(limits, ctx, tree));
    store.limiter(|state| state);
    // Fuel is enabled on this engine, so setting it cannot fail.
    store.set_fuel(limits.fuel).expect("fuel is enabled");
    store
}

/// Describes a failed call from deterministic facts only: the limit hit,
/// the trap code, or the panic message the guest logged.
fn failure(error: wasmtime::Error, store: &Store<CallState>, limits: CallLimits) -> PluginFailure {
    if let Some(hit) = error.downcast_ref::<MemoryCapHit>() {
        return PluginFailure::MemoryLimit { limit: limits.memory_bytes, wanted: hit.wanted };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginFailure::OutOfFuel { limit: limits.fuel },
        Some(Trap::UnreachableCodeReached) if let Some(message) = store.data().panic() => {
            PluginFailure::Panic { message: message.to_owned() }
        }
        Some(trap) => PluginFailure::Trap { message: trap.to_string() },
        // Not a trap: an instantiation or host error. Their messages come
        // from wasmtime's checks of the component, the same everywhere.
        None => PluginFailure::Trap { message: format!("{}", error.root_cause()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_code_is_written_checked_and_rewritten_when_damaged() {
        // Proves the disk cache: compiling writes a file named by both hashes
        // whose checksum verifies; a damaged file is not loaded (its checksum
        // fails) and is replaced by a good one on the next compile.
        let dir = std::env::temp_dir().join(format!("warren-plugin-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bytes = warren_plugins::bytes("counter");
        let sha = sha256(bytes);
        compile(&sha, bytes, Some(&dir)).expect("compiles");
        let file = cache_file(&dir, &sha);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert!(file.file_name().unwrap().to_string_lossy().starts_with(&hex));
        let mut stored = std::fs::read(&file).expect("the cache file");
        assert!(verified(&stored).is_some());
        let middle = stored.len() / 2;
        stored[middle] ^= 0x40;
        assert!(verified(&stored).is_none(), "a flipped byte fails the checksum");
        assert!(verified(&stored[..16]).is_none(), "a short file fails");
        std::fs::write(&file, &stored).expect("damage it");
        let component = compile(&sha, bytes, Some(&dir)).expect("compiles again");
        assert_eq!(link(&component).expect("links").world(), PluginWorld::Operation);
        assert!(verified(&std::fs::read(&file).expect("rewritten")).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
