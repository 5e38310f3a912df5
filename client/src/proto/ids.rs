//! Identifier newtypes: the zxid of a committed entry and a session id.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The position of a committed entry in the replicated log. Strictly
/// increasing; every change to the tree is stamped with the zxid of the entry
/// that made it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Zxid(pub u64);

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A client session. Warren assigns a session the zxid of the entry that
/// created it, so ids are unique, deterministic and never reused.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The secret a session is issued when it opens (ZooKeeper's session
/// password): resuming the session on any server takes its id and this.
/// Servers keep only its SHA-256, never the secret itself.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionSecret(#[serde(with = "serde_bytes")] pub [u8; 16]);

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A secret is not printed into logs.
        f.write_str("SessionSecret(..)")
    }
}
