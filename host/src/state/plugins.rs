//! The plugin registry: which components are installed under which names,
//! with what limits, and which validators are bound to which prefixes. It
//! is replicated state (changed only by entries, in snapshots and in the
//! digest); the compiled code beside each entry is a node-local cache.

use crate::limits::PLUGIN_PREPARED_BYTES_MAX;
use crate::plugin::{self, CallLimits, Compiled};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use warren_client::{PluginBinding, PluginFailure, PluginInfo, PluginWorld, Zxid};
use xxhash_rust::xxh3::xxh3_64_with_seed;

const PLUGIN_SEED: u64 = 0x706c_7567; // "plug"

/// Installed plugins by name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    plugins: BTreeMap<String, Installed>,
    /// Every binding as (prefix, plugin name), sorted: the validators a
    /// write runs, found without visiting unbound plugins.
    bound: Vec<(String, String)>,
    digest: u64,
}

/// One installed plugin.
#[derive(Clone)]
pub(crate) struct Installed {
    pub(crate) version: u32,
    pub(crate) world: PluginWorld,
    pub(crate) sha256: [u8; 32],
    pub(crate) component: Bytes,
    pub(crate) limits: CallLimits,
    pub(crate) installed: Zxid,
    /// Bindings by prefix.
    pub(crate) bindings: BTreeMap<String, Binding>,
    /// This node's compiled copy, made on first use.
    compiled: OnceLock<Arc<Compiled>>,
}

impl Installed {
    pub(crate) fn new(
        version: u32,
        world: PluginWorld,
        sha256: [u8; 32],
        component: Bytes,
        limits: CallLimits,
        installed: Zxid,
    ) -> Installed {
        Installed {
            version,
            world,
            sha256,
            component,
            limits,
            installed,
            bindings: BTreeMap::new(),
            compiled: OnceLock::new(),
        }
    }

    /// The compiled component: the copy given at install, or compiled now
    /// (after a restart or a snapshot install). Compiling what compiled at
    /// install cannot fail with the same build; if it does, the call fails
    /// with the reason.
    pub(crate) fn compiled(
        &self,
        cache_dir: Option<&Path>,
    ) -> Result<&Arc<Compiled>, PluginFailure> {
        if let Some(compiled) = self.compiled.get() {
            return Ok(compiled);
        }
        let compiled = plugin::load(&self.sha256, &self.component, cache_dir)
            .map_err(|why| PluginFailure::Trap { message: format!("it does not load: {why}") })?;
        Ok(self.compiled.get_or_init(|| compiled))
    }

    /// Keeps an already compiled copy (from the install's checks).
    pub(crate) fn with_compiled(self, compiled: Arc<Compiled>) -> Installed {
        let _ = self.compiled.set(compiled);
        self
    }

    /// `binding`'s prepared configuration: the copy made at bind or
    /// install, or prepared now (after a restart or a snapshot install).
    /// Preparing is deterministic (it sees the configuration and nothing
    /// else), so it gives what it gave when the binding was made; if it
    /// does not (another build), validating fails with the reason.
    pub(crate) fn prepared<'a>(
        &self,
        name: &str,
        prefix: &str,
        binding: &'a Binding,
        cache_dir: Option<&Path>,
    ) -> Result<&'a [u8], PluginFailure> {
        if let Some(prepared) = binding.prepared.get() {
            return Ok(prepared);
        }
        let compiled = self.compiled(cache_dir)?;
        let prepared = match prepare(name, compiled, self.limits, &binding.config)? {
            Ok(prepared) => prepared,
            Err(reason) => {
                return Err(PluginFailure::BadOutput {
                    why: format!(
                        "it now refuses the configuration bound at {prefix}, which it accepted \
                         when bound: {reason}"
                    ),
                });
            }
        };
        Ok(binding.prepared.get_or_init(|| prepared))
    }

    fn hash(&self, name: &str) -> u64 {
        let mut buf = Vec::with_capacity(128);
        push_str(&mut buf, name);
        buf.extend_from_slice(&self.version.to_le_bytes());
        buf.push(world_code(self.world));
        buf.extend_from_slice(&self.sha256);
        buf.extend_from_slice(&self.limits.fuel.to_le_bytes());
        buf.extend_from_slice(&self.limits.memory_bytes.to_le_bytes());
        buf.extend_from_slice(&self.installed.0.to_le_bytes());
        buf.extend_from_slice(&(self.bindings.len() as u64).to_le_bytes());
        for (prefix, binding) in &self.bindings {
            push_str(&mut buf, prefix);
            buf.extend_from_slice(&(binding.config.len() as u64).to_le_bytes());
            buf.extend_from_slice(&binding.config);
        }
        xxh3_64_with_seed(&buf, PLUGIN_SEED)
    }

    pub(crate) fn info(&self, name: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_owned(),
            version: self.version,
            world: self.world,
            sha256: self.sha256.to_vec(),
            bytes: self.component.len() as u64,
            fuel: self.limits.fuel,
            memory_bytes: self.limits.memory_bytes,
            installed: self.installed,
            bindings: self
                .bindings
                .iter()
                .map(|(prefix, binding)| PluginBinding {
                    prefix: prefix.clone(),
                    config: binding.config.to_vec(),
                })
                .collect(),
        }
    }
}

/// A validator's binding to a prefix: its configuration (replicated) and
/// what the validator's `prepare` made of it (a node-local cache, like the
/// compiled code: it depends on the configuration and component alone).
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub(crate) config: Bytes,
    prepared: OnceLock<Bytes>,
}

impl Binding {
    /// A binding whose configuration is prepared on first use.
    pub(crate) fn new(config: Bytes) -> Binding {
        Binding { config, prepared: OnceLock::new() }
    }

    /// A binding with its configuration prepared already.
    pub(crate) fn prepared(config: Bytes, prepared: Bytes) -> Binding {
        Binding { config, prepared: OnceLock::from(prepared) }
    }
}

/// Runs validator `name`'s `prepare` on `config`: `Ok(Ok(prepared))`,
/// `Ok(Err(reason))` when the validator refuses the configuration, `Err`
/// when it fails (a trap, a limit, or a result over
/// [`PLUGIN_PREPARED_BYTES_MAX`]).
pub(crate) fn prepare(
    name: &str,
    compiled: &Compiled,
    limits: CallLimits,
    config: &[u8],
) -> Result<Result<Bytes, String>, PluginFailure> {
    let prepared = match plugin::prepare(compiled, limits, name, config)? {
        Ok(prepared) => prepared,
        Err(reason) => return Ok(Err(reason)),
    };
    if prepared.len() > PLUGIN_PREPARED_BYTES_MAX {
        return Err(PluginFailure::BadOutput {
            why: format!(
                "a prepared configuration of {} bytes, over the limit of {PLUGIN_PREPARED_BYTES_MAX}",
                prepared.len()
            ),
        });
    }
    Ok(Ok(Bytes::from(prepared)))
}

/// The snapshot's code for a world.
pub(crate) fn world_code(world: PluginWorld) -> u8 {
    match world {
        PluginWorld::Validator => 0,
        PluginWorld::Operation => 1,
    }
}

pub(crate) fn world_of_code(code: u8) -> Option<PluginWorld> {
    match code {
        0 => Some(PluginWorld::Validator),
        1 => Some(PluginWorld::Operation),
        _ => None,
    }
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Registry {
    pub(crate) fn get(&self, name: &str) -> Option<&Installed> {
        self.plugins.get(name)
    }

    pub(crate) fn len(&self) -> usize {
        self.plugins.len()
    }

    pub(crate) fn binding_count(&self) -> usize {
        self.bound.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Installed)> {
        self.plugins.iter().map(|(name, p)| (name.as_str(), p))
    }

    /// The digest of the registry: the wrapping sum of one hash per plugin
    /// (bindings included), like the tree's.
    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// Puts `plugin` under `name`, replacing what was there.
    pub(crate) fn put(&mut self, name: &str, plugin: Installed) {
        self.plugins.insert(name.to_owned(), plugin);
        self.reindex();
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Installed> {
        let removed = self.plugins.remove(name);
        self.reindex();
        removed
    }

    /// Changes one plugin's bindings.
    pub(crate) fn rebind(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, Binding>),
    ) {
        if let Some(plugin) = self.plugins.get_mut(name) {
            change(&mut plugin.bindings);
        }
        self.reindex();
    }

    /// Recomputes the binding index and the digest. Registry changes are
    /// rare (administrative entries), so they simply redo both.
    fn reindex(&mut self) {
        self.bound = self
            .plugins
            .iter()
            .flat_map(|(name, p)| {
                p.bindings.keys().map(move |prefix| (prefix.clone(), name.clone()))
            })
            .collect();
        self.bound.sort();
        self.digest =
            self.plugins.iter().fold(0u64, |sum, (name, p)| sum.wrapping_add(p.hash(name)));
    }

    /// The validators bound at or above `path`, as (plugin name, plugin,
    /// prefix, binding), shallowest prefix first, then by name.
    pub(crate) fn validators_for<'a>(
        &'a self,
        path: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Installed, &'a str, &'a Binding)> + 'a {
        self.bound.iter().filter(move |(prefix, _)| warren_client::path_is_under(path, prefix)).map(
            move |(prefix, name)| {
                // The index lists only installed plugins' bindings.
                let plugin = &self.plugins[name];
                (name.as_str(), plugin, prefix.as_str(), &plugin.bindings[prefix])
            },
        )
    }
}
