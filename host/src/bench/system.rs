//! What `warren bench` needs from a system under test: sessions that
//! create, set, read, delete, list, watch and (optionally) run plugins.
//! Warren implements it in `warren.rs`; another coordination service
//! (ZooKeeper, etcd) plugs in by implementing [`System`] and [`Session`]
//! for its client, mapping ZooKeeper-style paths (`/a/b`) to its own keys.
//! The workloads, the clock and the statistics are shared, so the figures
//! compare.

use std::future::Future;

/// How a read is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// From the connected server's state, as it has applied it.
    Local,
    /// A sync (the server catches up with the leader), then a local read:
    /// two requests.
    Sync,
    /// One request that sees every write acknowledged before it.
    Linearizable,
}

impl ReadMode {
    pub fn name(self) -> &'static str {
        match self {
            ReadMode::Local => "local",
            ReadMode::Sync => "sync",
            ReadMode::Linearizable => "linearizable",
        }
    }
}

/// A failed request, as the benchmark counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    /// A short, stable name to count errors by (`NoNode`,
    /// `ConnectionLoss`, `Timeout`, ...).
    pub kind: String,
    /// The sentence the system gave.
    pub message: String,
    /// The session is unusable (expired or closed): its workers stop.
    pub fatal: bool,
}

impl OpError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError { kind: kind.into(), message: message.into(), fatal: false }
    }

    /// What a system answers for a feature it does not have.
    pub fn unsupported(system: &str, what: &str) -> OpError {
        OpError {
            kind: "Unsupported".into(),
            message: format!("{system} has no {what}"),
            fatal: true,
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A system under test: where sessions come from.
pub trait System: Send + Sync + 'static {
    type Session: Session;

    /// The system's name in reports (`warren`, `zookeeper`, `etcd`).
    fn name(&self) -> &str;

    /// Opens a new session (its own connection).
    fn connect(&self) -> impl Future<Output = Result<Self::Session, OpError>> + Send;
}

/// One session. Clones share the session; requests made concurrently on
/// clones are in flight together.
pub trait Session: Clone + Send + Sync + 'static {
    type Watch: Watch;

    /// Creates a persistent node `path` holding `data`; with `sequential`,
    /// the system appends a counter to the name.
    fn create(
        &self,
        path: &str,
        data: &[u8],
        sequential: bool,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Overwrites the data of `path` (any version); returns the write's
    /// stamp: a number its watch notifications can be matched by (Warren:
    /// the zxid; etcd: the revision; ZooKeeper: the data version, as 3.8's
    /// notifications carry no zxid).
    fn set(&self, path: &str, data: &[u8]) -> impl Future<Output = Result<u64, OpError>> + Send;

    /// Reads the data of `path`; returns its length.
    fn get(
        &self,
        path: &str,
        read: ReadMode,
    ) -> impl Future<Output = Result<usize, OpError>> + Send;

    /// Deletes `path` (any version).
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), OpError>> + Send;

    /// The names of the children of `path`.
    fn children(&self, path: &str) -> impl Future<Output = Result<Vec<String>, OpError>> + Send;

    /// A watch that reports every change of `path`'s data, without
    /// re-arming (a persistent watch, or a watch stream).
    fn watch(&self, path: &str) -> impl Future<Output = Result<Self::Watch, OpError>> + Send;

    /// Installs the WebAssembly component `component` as plugin `name`.
    fn install_plugin(
        &self,
        name: &str,
        component: &[u8],
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (name, component);
        async { Err(OpError::unsupported("this system", "plugins")) }
    }

    /// Binds the validator `name` to `prefix` with `config`.
    fn bind_validator(
        &self,
        name: &str,
        prefix: &str,
        config: &[u8],
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (name, prefix, config);
        async { Err(OpError::unsupported("this system", "plugins")) }
    }

    /// Unbinds the validator `name` from `prefix`.
    fn unbind_validator(
        &self,
        name: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (name, prefix);
        async { Err(OpError::unsupported("this system", "plugins")) }
    }

    /// Removes the plugin `name`.
    fn remove_plugin(&self, name: &str) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = name;
        async { Err(OpError::unsupported("this system", "plugins")) }
    }

    /// Runs the operation plugin `name` on `path` with `args`.
    fn invoke(
        &self,
        name: &str,
        path: &str,
        args: &[u8],
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (name, path, args);
        async { Err(OpError::unsupported("this system", "plugins")) }
    }

    /// Ends the session.
    fn close(self) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// The notifications of a watch.
pub trait Watch: Send + 'static {
    /// The stamp of the next change (as [`Session::set`] returned it), or
    /// `None` when the watch has ended.
    fn next(&mut self) -> impl Future<Output = Option<u64>> + Send;
}
