//! What a plugin call may touch: the host imports (`host`, `tree`) and the
//! limiter, all in the call's store. Every answer depends only on the entry
//! being applied.

use super::CallLimits;
use super::op::warren::plugin::tree;
use super::val::warren::plugin::host;
use crate::limits::{
    PLUGIN_LOG_LINE_BYTES_MAX, PLUGIN_LOG_LINES_MAX, PLUGIN_READ_BYTES_MAX, PLUGIN_READS_MAX,
    PLUGIN_TABLE_ELEMENTS_MAX,
};
use std::sync::Arc;
use warren_client::Stat;

/// What a call knows of the entry being applied.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    pub plugin: Arc<str>,
    pub zxid: i64,
    pub time_ms: i64,
}

/// The tree as an operation sees it: as of before the entry's writes, with
/// the calling session's permissions. Errors are sentences for the plugin.
pub trait TreeRead {
    /// The node's data and Stat, or `None` if there is no node at `path`.
    fn get_data(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>, String>;
    /// The children's names, sorted, or `None` if there is no node.
    fn get_children(&self, path: &str) -> Result<Option<Vec<String>>, String>;
}

/// A `&dyn TreeRead` with its lifetime erased, valid only inside
/// [`with_tree`].
#[derive(Clone, Copy)]
pub(super) struct TreeHandle(*const (dyn TreeRead + 'static));

// SAFETY: the handle is only dereferenced on the thread running the call,
// inside `with_tree`, while the borrow it came from is alive; a store
// (which must be Send) carries it but never leaves that scope.
unsafe impl Send for TreeHandle {}
unsafe impl Sync for TreeHandle {}

/// Runs `f` with a handle to `tree`. Stores holding the handle must not
/// outlive `f`: wasmtime stores need `'static` data, so the borrow is
/// carried as a pointer whose validity this scope guarantees.
pub(super) fn with_tree<R>(tree: &dyn TreeRead, f: impl FnOnce(TreeHandle) -> R) -> R {
    // SAFETY: only the lifetime is changed; `f` returns before `tree`'s
    // borrow ends, and every store made with the handle is dropped inside
    // `f` (they are locals of the callers in this module).
    let erased: &'static dyn TreeRead = unsafe { std::mem::transmute(tree) };
    f(TreeHandle(erased))
}

/// The store's data for one call.
pub(super) struct CallState {
    ctx: CallContext,
    tree: Option<TreeHandle>,
    memory_limit: u64,
    memory_used: u64,
    /// Lines logged so far.
    log_lines: usize,
    /// The last `panic: ` line, kept even past the log's bound.
    panic: Option<String>,
    read_bytes: usize,
    reads: usize,
}

impl CallState {
    pub(super) fn new(limits: CallLimits, ctx: CallContext, tree: Option<TreeHandle>) -> CallState {
        CallState {
            ctx,
            tree,
            memory_limit: limits.memory_bytes,
            memory_used: 0,
            log_lines: 0,
            panic: None,
            read_bytes: 0,
            reads: 0,
        }
    }

    /// The message of a panic the guest reported (the SDK's panic hook logs
    /// `panic: <message>` before trapping).
    pub(super) fn panic(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    fn tree(&self) -> Result<&dyn TreeRead, String> {
        match self.tree {
            // SAFETY: see `with_tree`: the handle is alive for the call.
            Some(TreeHandle(ptr)) => Ok(unsafe { &*ptr }),
            None => Err("the tree cannot be read here".into()),
        }
    }

    /// Counts a read of `bytes` against the call's budget.
    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        self.reads += 1;
        self.read_bytes = self.read_bytes.saturating_add(bytes);
        if self.reads > PLUGIN_READS_MAX || self.read_bytes > PLUGIN_READ_BYTES_MAX {
            return Err(format!(
                "the call read more than its budget of {PLUGIN_READS_MAX} reads or {PLUGIN_READ_BYTES_MAX} bytes"
            ));
        }
        Ok(())
    }
}

/// The call failed because memory would grow past the plugin's limit.
#[derive(Debug)]
pub(super) struct MemoryCapHit {
    pub(super) wanted: u64,
}

impl std::fmt::Display for MemoryCapHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory would grow to {} bytes, past the plugin's limit", self.wanted)
    }
}

impl std::error::Error for MemoryCapHit {}

impl wasmtime::ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Counted across all of the component's memories.
        let wanted = self.memory_used + (desired - current) as u64;
        if wanted > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryCapHit { wanted }));
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.memory_used = wanted;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= PLUGIN_TABLE_ELEMENTS_MAX && maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        // A component is a handful of core instances (the module and
        // wit-component's shims).
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

impl host::Host for CallState {
    fn log(&mut self, message: String) {
        let mut line = message;
        super::truncate_utf8(&mut line, PLUGIN_LOG_LINE_BYTES_MAX);
        if let Some(message) = line.strip_prefix("panic: ") {
            self.panic = Some(message.to_owned());
        }
        if self.log_lines >= PLUGIN_LOG_LINES_MAX {
            return;
        }
        self.log_lines += 1;
        tracing::debug!(plugin = %self.ctx.plugin, zxid = self.ctx.zxid, "{line}");
    }

    fn zxid(&mut self) -> i64 {
        self.ctx.zxid
    }

    fn time_ms(&mut self) -> i64 {
        self.ctx.time_ms
    }
}

impl tree::Host for CallState {
    fn get_data(&mut self, path: String) -> Result<Option<tree::Node>, String> {
        let found = self.tree()?.get_data(&path)?;
        let bytes = found.as_ref().map_or(0, |(data, _)| data.len());
        self.charge(bytes)?;
        Ok(found.map(|(data, stat)| tree::Node { data, stat: wit_stat(&stat) }))
    }

    fn get_children(&mut self, path: String) -> Result<Option<Vec<String>>, String> {
        let found = self.tree()?.get_children(&path)?;
        let bytes = found.as_ref().map_or(0, |names| names.iter().map(String::len).sum());
        self.charge(bytes)?;
        Ok(found)
    }
}

fn wit_stat(s: &Stat) -> tree::Stat {
    tree::Stat {
        czxid: s.czxid.0 as i64,
        mzxid: s.mzxid.0 as i64,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        // Zxids and owners stay below 2^63 (a zxid below 2^55); lengths and
        // counts below 2^31 (data and children are bounded far lower).
        ephemeral_owner: s.ephemeral_owner as i64,
        data_length: s.data_length as i32,
        num_children: s.num_children as i32,
        pzxid: s.pzxid.0 as i64,
    }
}
