//! Watch events and the kinds of watch a client can set.

use crate::proto::ids::Zxid;
use serde::{Deserialize, Serialize};

/// What happened to a watched path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// An event delivered to a session: the path, what happened, and the zxid of
/// the entry that made it happen.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchedEvent {
    pub event: EventType,
    pub path: String,
    pub zxid: Zxid,
}

/// The kinds of watch, as ZooKeeper has them.
///
/// - `Data`: one-shot, set by getData and exists (also on a missing node);
///   fires on NodeCreated, NodeDataChanged, NodeDeleted.
/// - `Child`: one-shot, set by getChildren; fires on NodeChildrenChanged and
///   NodeDeleted.
/// - `Persistent`: stays; fires on every event of its path.
/// - `PersistentRecursive`: stays; fires on NodeCreated, NodeDataChanged and
///   NodeDeleted of its path and every path below (not NodeChildrenChanged).
/// - `Any`: only for removal, every kind on the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    PersistentRecursive,
    Any,
}
