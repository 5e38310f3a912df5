//! The replicated session table: every open session, its negotiated timeout,
//! its authenticated identities and the ephemeral nodes it owns. Liveness
//! (pings, expiry deadlines) is not here: the leader decides expiry and
//! commits it as an entry.

use crate::state::digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use warren_client::{Id, SessionId, SessionSecret};

/// The SHA-256 of a session's secret: what the replicas keep, so neither
/// the log nor a snapshot holds a secret that resumes a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl SecretHash {
    pub fn of(secret: &SessionSecret) -> SecretHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, &secret.0);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        SecretHash(hash)
    }

    /// Whether `secret` is the one hashed here, in time that does not
    /// depend on where they differ.
    pub fn matches(&self, secret: &SessionSecret) -> bool {
        let other = SecretHash::of(secret);
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// One open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub timeout_ms: u32,
    /// Identities for ACL checks: the client certificate's x509 subject and
    /// any digest identities, fixed when the session is created.
    pub auth: Arc<[Id]>,
    /// The hash of the secret that resumes the session; none for a session
    /// opened before sessions had secrets (resumed by its certificate's
    /// identity, as then).
    pub secret: Option<SecretHash>,
    pub(crate) ephemerals: BTreeSet<Box<str>>,
}

impl Session {
    /// The paths of the session's ephemeral nodes, sorted.
    pub fn ephemerals(&self) -> impl Iterator<Item = &str> {
        self.ephemerals.iter().map(|p| &**p)
    }
}

#[derive(Default)]
pub(crate) struct SessionTable {
    sessions: BTreeMap<SessionId, Session>,
    /// Wrapping sum of every session's hash.
    digest: u64,
}

impl SessionTable {
    pub(crate) fn open(
        &mut self,
        id: SessionId,
        timeout_ms: u32,
        auth: Arc<[Id]>,
        secret: Option<SecretHash>,
    ) {
        let session = Session { timeout_ms, auth, secret, ephemerals: BTreeSet::new() };
        self.digest = self.digest.wrapping_add(digest::session_hash(id, &session));
        let old = self.sessions.insert(id, session);
        assert!(old.is_none(), "session {id} opened twice");
    }

    /// Adds an identity to a live session's (once).
    pub(crate) fn add_auth(&mut self, id: SessionId, who: Id) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.auth.contains(&who) {
            return;
        }
        self.digest = self.digest.wrapping_sub(digest::session_hash(id, session));
        let mut auth = session.auth.to_vec();
        auth.push(who);
        session.auth = auth.into();
        self.digest = self.digest.wrapping_add(digest::session_hash(id, session));
    }

    /// Removes a session that owns no ephemerals any more.
    pub(crate) fn close(&mut self, id: SessionId) {
        // Callers check the session exists first.
        let session = self.sessions.remove(&id).expect("closing an unknown session");
        assert!(session.ephemerals.is_empty(), "session {id} closed with ephemerals");
        self.digest = self.digest.wrapping_sub(digest::session_hash(id, &session));
    }

    pub(crate) fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter().map(|(&id, s)| (id, s))
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Ephemerals are not hashed here: the nodes' own hashes carry their
    /// owner, so the digest already covers them.
    pub(crate) fn add_ephemeral(&mut self, id: SessionId, path: &str) {
        // Ephemerals are only created for a live session (checked first).
        let session = self.sessions.get_mut(&id).expect("ephemeral for an unknown session");
        session.ephemerals.insert(path.into());
    }

    pub(crate) fn remove_ephemeral(&mut self, id: SessionId, path: &str) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.ephemerals.remove(path);
        }
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }
}
