//! Write operations and their results: what a session asks the replicated
//! state machine to do, and what it answers.

use crate::proto::acl::Acl;
use crate::proto::error::ApiError;
use crate::proto::plugin::{PluginInfo, PluginOp};
use crate::proto::stat::Stat;
use serde::{Deserialize, Serialize};

/// The largest TTL ZooKeeper can encode in `ephemeral_owner`: 2^40 - 1 ms.
pub const TTL_MS_MAX: u64 = (1 << 40) - 1;

/// How a node is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CreateMode {
    Persistent,
    PersistentSequential,
    /// Deleted when the owning session ends. Cannot have children.
    Ephemeral,
    EphemeralSequential,
    /// Deleted by the server once its last child is gone.
    Container,
    /// Deleted by the server once it has gone unmodified and childless for
    /// longer than `ttl_ms` (1 ..= [`TTL_MS_MAX`]).
    PersistentWithTtl {
        ttl_ms: u64,
    },
    PersistentSequentialWithTtl {
        ttl_ms: u64,
    },
}

impl CreateMode {
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl { .. }
        )
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    /// The TTL, for the TTL modes.
    pub fn ttl_ms(self) -> Option<u64> {
        match self {
            CreateMode::PersistentWithTtl { ttl_ms }
            | CreateMode::PersistentSequentialWithTtl { ttl_ms } => Some(ttl_ms),
            _ => None,
        }
    }
}

/// A write. `version: None` matches any version (ZooKeeper's -1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        acl: Vec<Acl>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    SetData {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        version: Option<i32>,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: Option<i32>,
    },
    /// Deletes a childless node that is not ephemeral, at any version
    /// (ZooKeeper's deleteContainer, which its servers use to remove empty
    /// containers; an ephemeral node fails with BadVersion, as there).
    DeleteContainer {
        path: String,
    },
    /// Succeeds when the node exists at this version; changes nothing.
    Check {
        path: String,
        version: Option<i32>,
    },
    /// All of these or none. May not nest.
    Multi(Vec<Op>),
    /// Runs the operation plugin `plugin` with `path` and `args`; the
    /// writes it returns apply as one multi, with the session's
    /// permissions. Not allowed inside a multi.
    Invoke {
        plugin: String,
        path: String,
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// A change to the plugin registry. Not allowed inside a multi.
    Plugin(PluginOp),
}

impl Op {
    /// The path the operation names; `None` for a multi.
    pub fn path(&self) -> Option<&str> {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::DeleteContainer { path }
            | Op::SetData { path, .. }
            | Op::SetAcl { path, .. }
            | Op::Check { path, .. }
            | Op::Invoke { path, .. } => Some(path),
            Op::Multi(_) | Op::Plugin(_) => None,
        }
    }
}

/// The result of a successful operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The created node's actual path (with its sequence suffix) and Stat.
    Create {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Check,
    /// One result per operation, in order.
    Multi(Vec<OpResult>),
    /// An operation plugin's output, and the results of the writes it
    /// asked for, in order.
    Invoked {
        #[serde(with = "serde_bytes")]
        output: Vec<u8>,
        results: Vec<OpResult>,
    },
    /// The registry entry of the plugin changed (installed, bound or
    /// unbound), as it is now.
    Plugin(PluginInfo),
    /// The plugin was removed.
    PluginRemoved,
}

/// What a write answers.
pub type Reply = Result<OpResult, ApiError>;
