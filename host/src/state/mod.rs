//! The replicated state machine: the znode tree, the session table and their
//! digest, changed only by applying committed entries in log order. Pure: it
//! reads no clock, randomness, socket or disk; time arrives in the entry.
//!
//! Drive it with [`StateMachine::apply`] for every committed entry, in order
//! (by value: its data moves into the tree);
//! each call returns the reply for the originating session and the watch
//! triggers for the server's [`crate::watch::WatchTable`]. Reads are plain
//! methods on the current state. [`StateMachine::cleanup_candidates`] tells
//! the leader which containers and TTL nodes to propose for removal.

mod acl;
mod apply;
mod digest;
mod plugins;
mod session;
pub mod snapshot;
mod tree;

pub use acl::{SUPER_SCHEME, digest_id};
pub use session::{SecretHash, Session};

use crate::limits::{CHILDREN_PER_REPLY_MAX, Limits};
use crate::path;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tree::{DataTree, Slot};
use warren_client::{
    Acl, ApiError, BadArgument, EventType, Id, Op, Perms, Reply, SessionId, Stat, Zxid,
};

/// A committed log entry as the state machine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub zxid: Zxid,
    /// The leader's clock when it proposed the entry, in ms since the epoch.
    /// Every replica uses this, never its own clock.
    pub time_ms: i64,
    pub command: Command,
}

/// What an entry asks of the state machine. Encoded into log entries with
/// [`Command::encode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens a session; its id is this entry's zxid. `secret` is the hash
    /// of the secret that resumes it (absent in entries written before
    /// sessions had secrets).
    CreateSession {
        timeout_ms: u32,
        auth: Vec<Id>,
        #[serde(default)]
        secret: Option<SecretHash>,
    },
    /// Adds an identity to a session's (ZooKeeper's addAuth).
    AddAuth { session: SessionId, id: Id },
    /// The client closed its session: its ephemerals go.
    CloseSession { session: SessionId },
    /// A session's write.
    Request { session: SessionId, op: Op },
    /// The leader found these sessions silent past their timeout. Each is
    /// closed if it is still open.
    ExpireSessions { sessions: Vec<SessionId> },
    /// The leader found this container empty. Removed if it still is.
    RemoveContainer { path: String },
    /// The leader found this TTL node expired. Removed if it still is, by
    /// this entry's time.
    RemoveExpiredTtl { path: String },
    /// An entry with no effect (a new leader's first entry).
    Noop,
}

impl Command {
    /// The bytes a log entry carries for this command (CBOR).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail: no I/O, and every field
        // serializes.
        ciborium::into_writer(self, &mut out).expect("a command always encodes");
        out
    }

    /// The command in a log entry's bytes; an error names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        ciborium::from_reader(bytes).map_err(|e| DecodeError(e.to_string()))
    }
}

/// A log entry's bytes are not a command: a corrupt log or a version
/// mismatch between replicas.
#[derive(Debug, thiserror::Error)]
#[error(
    "log entry is not a valid command ({0}); the log is corrupt or was written by an incompatible version"
)]
pub struct DecodeError(String);

/// What applying an entry produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub zxid: Zxid,
    pub response: Response,
    /// Watch triggers, in the order the changes happened.
    pub triggers: Vec<Trigger>,
}

/// The answer to an entry, for whoever proposed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    SessionCreated(SessionId),
    /// A request's reply, or the answer to a close, expiry or clean-up.
    Reply(Reply),
    /// A close, expiry, clean-up or no-op: done, or why nothing was done.
    Done(Result<(), ApiError>),
}

/// A change that may fire watches: what happened to which path, with the
/// ACL a watcher needs READ on to be told (the node's, or the parent's for a
/// children change), as ZooKeeper filters events since CVE-2024-23944.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub event: EventType,
    pub path: Arc<str>,
    pub zxid: Zxid,
    pub acl: Arc<[Acl]>,
}

/// A page of a node's children, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Children {
    pub names: Vec<String>,
    pub stat: Stat,
    /// More names follow the last one listed; ask again after it.
    pub more: bool,
}

/// The znode tree, the session table and the plugin registry, with their
/// digest.
pub struct StateMachine {
    tree: DataTree,
    sessions: session::SessionTable,
    plugins: Arc<plugins::Registry>,
    limits: Limits,
    last_applied: Zxid,
    /// Where this node keeps compiled plugin code: a cache, not state.
    plugin_cache: Option<PathBuf>,
}

impl StateMachine {
    /// An empty state: the root node, no sessions, nothing applied.
    pub fn new(limits: Limits) -> StateMachine {
        StateMachine {
            tree: DataTree::new(),
            sessions: session::SessionTable::default(),
            plugins: Arc::default(),
            limits,
            last_applied: Zxid(0),
            plugin_cache: None,
        }
    }

    /// Keeps compiled plugin code in `dir` across restarts (the node's data
    /// directory), instead of compiling each plugin again at first use.
    pub fn set_plugin_cache(&mut self, dir: &Path) {
        self.plugin_cache = Some(dir.to_owned());
    }

    /// Where compiled plugin code is kept, if anywhere.
    pub fn plugin_cache(&self) -> Option<&Path> {
        self.plugin_cache.as_deref()
    }

    /// Applies one committed entry. Entries must come in strictly increasing
    /// zxid order; anything else is a bug in the caller and stops the node.
    /// The entry is taken by value so its data moves into the tree.
    pub fn apply(&mut self, entry: Entry) -> Applied {
        assert!(
            entry.zxid > self.last_applied,
            "entry {} applied after {}",
            entry.zxid,
            self.last_applied
        );
        // Zxids stay below ZooKeeper's container and TTL markers in
        // ephemeral_owner, since a session id is a zxid.
        assert!(entry.zxid.0 < 1 << 55, "zxid {} out of range", entry.zxid);
        let zxid = entry.zxid;
        self.last_applied = zxid;
        let mut triggers = Vec::new();
        let response = apply::apply(self, entry, &mut triggers);
        Applied { zxid, response, triggers }
    }

    /// The state as of now, frozen, to write as a snapshot (with
    /// [`snapshot::write_view`]) on another thread while applies go on.
    /// Takes microseconds for the node tree however large it is; the
    /// sessions and ACL lists are copied.
    pub fn snapshot_view(&self) -> snapshot::SnapshotView {
        snapshot::SnapshotView::new(self)
    }

    /// The zxid of the last applied entry.
    pub fn last_applied(&self) -> Zxid {
        self.last_applied
    }

    /// The digest of the whole replicated state: equal on every replica that
    /// applied the same entries.
    pub fn digest(&self) -> u64 {
        self.tree.digest().wrapping_add(self.sessions.digest()).wrapping_add(self.plugins.digest())
    }

    /// The installed plugins, by name, with their bindings.
    pub fn plugins(&self) -> Vec<warren_client::PluginInfo> {
        self.plugins.iter().map(|(name, p)| p.info(name)).collect()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Live znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.tree.len()
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Every open session, by id.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    // ---- Reads: pure functions of the current state. `auth` is the
    // reading session's identities.

    /// A node's data and Stat. Needs READ.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(&[u8], Stat), ApiError> {
        let slot = self.readable(path, auth)?;
        let node = self.tree.node(slot);
        Ok((&node.data, node.public_stat()))
    }

    /// A node's Stat, or `None`. Needs no permission, as in ZooKeeper.
    pub fn exists(&self, path: &str) -> Option<Stat> {
        self.tree.lookup(path).map(|slot| self.tree.node(slot).public_stat())
    }

    /// All of a node's children, sorted, up to
    /// [`CHILDREN_PER_REPLY_MAX`] (then `more` is set). Needs READ.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<Children, ApiError> {
        self.get_children_after(path, auth, None, CHILDREN_PER_REPLY_MAX)
    }

    /// A page of a node's children, sorted: the first `max` names after
    /// `after` (or from the start). Needs READ.
    pub fn get_children_after(
        &self,
        path: &str,
        auth: &[Id],
        after: Option<&str>,
        max: usize,
    ) -> Result<Children, ApiError> {
        let slot = self.readable(path, auth)?;
        let max = max.min(CHILDREN_PER_REPLY_MAX);
        let names = self.tree.child_names(slot);
        let start = match after {
            Some(after) => names.partition_point(|name| *name <= after),
            None => 0,
        };
        let page = &names[start..];
        Ok(Children {
            names: page.iter().take(max).map(|s| s.to_string()).collect(),
            stat: self.tree.node(slot).public_stat(),
            more: page.len() > max,
        })
    }

    /// A node's ACL and Stat. Needs READ or ADMIN; without ADMIN, digest
    /// hashes are hidden (ZooKeeper shows `user:x`).
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ApiError> {
        let slot = self.lookup(path)?;
        let acl = self.tree.acl_of(slot);
        acl::check(acl, Perms::READ | Perms::ADMIN, auth, path)?;
        let admin = acl::allows(acl, Perms::ADMIN, auth);
        let shown = acl
            .iter()
            .map(|entry| match entry.id.id.split_once(':') {
                Some((user, _)) if entry.id.scheme == "digest" && !admin => {
                    Acl::new(entry.perms, Id::digest(format!("{user}:x")))
                }
                _ => entry.clone(),
            })
            .collect();
        Ok((shown, self.tree.node(slot).public_stat()))
    }

    /// The paths of a session's ephemeral nodes that start with `prefix`
    /// (`/` for all), sorted. ZooKeeper's getEphemerals.
    pub fn get_ephemerals(&self, session: SessionId, prefix: &str) -> Vec<String> {
        let Some(session) = self.sessions.get(session) else {
            return Vec::new();
        };
        session.ephemerals().filter(|p| p.starts_with(prefix)).map(str::to_owned).collect()
    }

    /// The number of nodes below a node (all depths, itself excluded).
    /// Needs READ.
    pub fn get_all_children_number(&self, path: &str, auth: &[Id]) -> Result<u64, ApiError> {
        let slot = self.readable(path, auth)?;
        let mut count = 0u64;
        let mut stack: Vec<Slot> = self.tree.children(slot).collect();
        while let Some(slot) = stack.pop() {
            count += 1;
            stack.extend(self.tree.children(slot));
        }
        Ok(count)
    }

    /// Whether a session with identities `auth` may read through `acl`: the
    /// check a server makes before delivering a watch event.
    pub fn may_read(acl: &[Acl], auth: &[Id]) -> bool {
        acl::allows(acl, Perms::READ, auth)
    }

    /// The clean-up entries the leader should propose at time `now_ms`:
    /// containers that once had children and now have none, and TTL nodes
    /// childless and unmodified for longer than their TTL. Sorted by path.
    pub fn cleanup_candidates(&self, now_ms: i64) -> Vec<Command> {
        let mut out: Vec<Command> = Vec::new();
        for slot in self.tree.containers() {
            let node = self.tree.node(slot);
            if apply::container_is_removable(node) {
                out.push(Command::RemoveContainer { path: node.path.to_string() });
            }
        }
        for slot in self.tree.ttls() {
            let node = self.tree.node(slot);
            if apply::ttl_is_expired(node, now_ms) {
                out.push(Command::RemoveExpiredTtl { path: node.path.to_string() });
            }
        }
        out.sort_by(|a, b| cleanup_path(a).cmp(cleanup_path(b)));
        out
    }

    fn lookup(&self, path: &str) -> Result<Slot, ApiError> {
        if let Err(why) = path::validate(path, self.limits.path_bytes_max) {
            return Err(ApiError::BadArguments(BadArgument::InvalidPath {
                path: path.to_owned(),
                why,
            }));
        }
        self.tree.lookup(path).ok_or_else(|| ApiError::NoNode { path: path.to_owned() })
    }

    fn readable(&self, path: &str, auth: &[Id]) -> Result<Slot, ApiError> {
        let slot = self.lookup(path)?;
        acl::check(self.tree.acl_of(slot), Perms::READ, auth, path)?;
        Ok(slot)
    }
}

fn cleanup_path(command: &Command) -> &str {
    match command {
        Command::RemoveContainer { path } | Command::RemoveExpiredTtl { path } => path,
        _ => "",
    }
}
