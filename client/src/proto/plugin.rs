//! Plugins in the protocol: managing them (install, bind, unbind, remove),
//! what the registry reports, and how a plugin call can fail. Invoking an
//! operation is [`crate::Op::Invoke`].

use crate::proto::ids::Zxid;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Fuel a plugin gets when its installer does not say: enough to validate
/// a JSON document of a megabyte, about 10 ms of work.
pub const PLUGIN_FUEL_DEFAULT: u64 = 10_000_000;

/// Memory a plugin gets when its installer does not say.
pub const PLUGIN_MEMORY_DEFAULT: u64 = 16 << 20;

/// Which WIT world (`warren:plugin`) a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginWorld {
    /// Exports `validate`; bound to path prefixes.
    Validator,
    /// Exports `invoke`; called with [`crate::Op::Invoke`].
    Operation,
}

impl std::fmt::Display for PluginWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginWorld::Validator => "validator",
            PluginWorld::Operation => "operation",
        })
    }
}

/// Changes to the plugin registry. Each is a log entry, so every replica
/// switches at the same zxid. Each needs ADMIN on the root znode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PluginOp {
    /// Installs a component under `name`, or replaces the one installed
    /// there (its bindings then run the new one). `expected_version`, when
    /// given, must be the installed version (0: none installed), as a
    /// setData's version.
    Install {
        name: String,
        #[serde(with = "serde_bytes")]
        component: Vec<u8>,
        /// SHA-256 of `component`, checked by every replica.
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
        /// Fuel for one call: roughly one unit per WebAssembly instruction.
        fuel: u64,
        /// The most linear memory one call may use.
        memory_bytes: u64,
        expected_version: Option<u32>,
    },
    /// Runs validator `name` on every write at or below `prefix`, with
    /// `config` (for example a JSON schema). Binding again replaces the
    /// configuration.
    Bind {
        name: String,
        prefix: String,
        #[serde(with = "serde_bytes")]
        config: Vec<u8>,
    },
    Unbind {
        name: String,
        prefix: String,
    },
    /// Removes a plugin that is no longer bound anywhere.
    Remove {
        name: String,
    },
}

impl PluginOp {
    /// The plugin the change is about.
    pub fn name(&self) -> &str {
        match self {
            PluginOp::Install { name, .. }
            | PluginOp::Bind { name, .. }
            | PluginOp::Unbind { name, .. }
            | PluginOp::Remove { name } => name,
        }
    }
}

/// A validator bound to a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginBinding {
    pub prefix: String,
    #[serde(with = "serde_bytes")]
    pub config: Vec<u8>,
}

/// An installed plugin, as the registry holds it (without its bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    /// 1 at the first install, one more at each replacement.
    pub version: u32,
    pub world: PluginWorld,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    /// The component's size.
    pub bytes: u64,
    pub fuel: u64,
    pub memory_bytes: u64,
    /// The entry that installed this version.
    pub installed: Zxid,
    /// Sorted by prefix.
    pub bindings: Vec<PluginBinding>,
}

/// Why a plugin call stopped without an answer. The same on every
/// replica: limits are counted in fuel and bytes, never in time.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum PluginFailure {
    #[error(
        "ran out of fuel (its limit is {limit}); make it do less per call, or reinstall it with more --fuel"
    )]
    OutOfFuel { limit: u64 },
    #[error(
        "tried to grow its memory to {wanted} bytes, past its limit of {limit}; reinstall it with more --memory-mib"
    )]
    MemoryLimit { limit: u64, wanted: u64 },
    #[error("panicked: {message}")]
    Panic { message: String },
    #[error("trapped: {message}")]
    Trap { message: String },
    #[error("asked for a write that is not valid: {why}")]
    BadOutput { why: String },
}

/// Why a plugin change was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum PluginRefusal {
    #[error("{0}")]
    Invalid(String),
    #[error("its SHA-256 does not match the bytes sent; send the file again")]
    Checksum,
    #[error("it is {}, not {}; see `warren plugin ls`", with_article(*actual), with_article(*expected))]
    WrongWorld { expected: PluginWorld, actual: PluginWorld },
    #[error("it is bound to {}; unbind it first", prefixes.join(", "))]
    Bound { prefixes: Vec<String> },
    #[error("it is not bound to {prefix}")]
    NotBound { prefix: String },
    #[error("it is at version {actual}, not the expected {expected}; list the plugins and retry")]
    BadVersion { expected: u32, actual: u32 },
    #[error("{what} is {value}, outside 1..={max}; stay within the cluster's limits")]
    Limit { what: String, value: u64, max: u64 },
    #[error("it refuses the configuration for {prefix}: {reason}; fix it and bind again")]
    Config { prefix: String, reason: String },
}

fn with_article(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::Validator => "a validator",
        PluginWorld::Operation => "an operation",
    }
}
