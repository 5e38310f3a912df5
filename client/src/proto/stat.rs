//! Stat: the metadata ZooKeeper clients know, with ZooKeeper's meaning for
//! every field.

use crate::proto::ids::Zxid;
use serde::{Deserialize, Serialize};

/// The metadata of a znode.
///
/// - `czxid`/`ctime`: the entry that created the node and its leader time.
/// - `mzxid`/`mtime`: the entry that last set its data (creation counts).
/// - `pzxid`: the entry that last created or deleted a child (creation counts).
/// - `version`, `cversion`, `aversion`: changes to data, to the children
///   (creations; ZooKeeper does not count deletions) and to the ACL.
/// - `ephemeral_owner`: the owning session for ephemerals, 0 for persistent
///   nodes, and ZooKeeper's encodings for containers (`1 << 63`) and TTL nodes
///   (`0xFF << 56 | ttl_ms`), so that a ZooKeeper front end passes it through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stat {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: u64,
    pub data_length: u32,
    pub num_children: u32,
    pub pzxid: Zxid,
}
