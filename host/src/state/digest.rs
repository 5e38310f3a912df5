//! The hashes behind the running state digest. The digest is the wrapping
//! sum of one hash per node and one per session, so it updates in O(1) per
//! change and two replicas with the same state have the same digest no matter
//! how they got there (log replay, snapshot restore, or both).
//!
//! Every input is fixed-width little-endian, so the digest is the same on
//! every platform. Changing anything here changes every digest: it is part of
//! the snapshot format version.

use crate::state::session::Session;
use crate::state::tree::NodeStat;
use warren_client::{Acl, Id, SessionId};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Domain separation, so a node and a session can never hash alike by
/// construction.
const NODE_SEED: u64 = 0x6e6f_6465; // "node"
const SESSION_SEED: u64 = 0x7365_7373; // "sess"
const ACL_SEED: u64 = 0x61_636c; // "acl"

/// A node's hash from its content hash (path and data), its ACL's hash and
/// its Stat.
pub(crate) fn node_hash(content: u64, acl: u64, s: &NodeStat) -> u64 {
    let mut buf = [0u8; 80];
    let words = [
        content,
        acl,
        s.czxid,
        s.mzxid,
        s.pzxid,
        s.ctime as u64,
        s.mtime as u64,
        s.ephemeral_owner,
        (s.version as u32 as u64) << 32 | s.cversion as u32 as u64,
        (s.aversion as u32 as u64) << 32 | s.num_children as u64,
    ];
    for (chunk, word) in buf.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    xxh3_64_with_seed(&buf, NODE_SEED)
}

/// An ACL list's hash, order included (ZooKeeper keeps ACLs in order).
pub(crate) fn acl_hash(acl: &[Acl]) -> u64 {
    let mut buf = Vec::with_capacity(acl.len() * 32);
    for entry in acl {
        buf.extend_from_slice(&entry.perms.0.to_le_bytes());
        push_id(&mut buf, &entry.id);
    }
    xxh3_64_with_seed(&buf, ACL_SEED)
}

/// A session's hash from everything replicated about it.
pub(crate) fn session_hash(id: SessionId, session: &Session) -> u64 {
    let mut buf = Vec::with_capacity(64 + session.auth.len() * 32);
    buf.extend_from_slice(&id.0.to_le_bytes());
    buf.extend_from_slice(&session.timeout_ms.to_le_bytes());
    for id in session.auth.iter() {
        push_id(&mut buf, id);
    }
    // After the identities, whose lengths delimit them; nothing for a
    // session without a secret, which hashes as it did before secrets.
    if let Some(hash) = &session.secret {
        buf.extend_from_slice(b"secret");
        buf.extend_from_slice(&hash.0);
    }
    xxh3_64_with_seed(&buf, SESSION_SEED)
}

fn push_id(buf: &mut Vec<u8>, id: &Id) {
    for part in [&id.scheme, &id.id] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
}
