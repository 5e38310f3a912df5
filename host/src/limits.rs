//! Every bound of the state machine and the watch table, with its reason.
//! Replicas must agree on the replicated limits (they change replies), so
//! they are part of the cluster's configuration, not a node's.

/// Bounds that change what the state machine answers. Every replica of a
/// cluster must use the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Data per znode. ZooKeeper's jute.maxbuffer default; coordination data
    /// is small, and big values make every snapshot and catch-up slow.
    pub data_bytes_max: usize,
    /// Bytes in a path, so a path always fits in a frame and a log entry.
    pub path_bytes_max: usize,
    /// Operations in one multi, so one entry's apply time stays bounded.
    pub multi_ops_max: usize,
    /// Entries in one ACL, so an ACL check stays cheap.
    pub acl_entries_max: usize,
    /// Bytes in one ACL id or session identity (an x509 subject, a digest).
    pub acl_id_bytes_max: usize,
    /// Identities one session carries (its certificate's subject, digest
    /// logins), so ACL checks and `auth` expansion stay bounded.
    pub session_identities_max: usize,
    /// Bytes of one plugin component: it travels in one log entry and sits
    /// in every snapshot.
    pub plugin_bytes_max: usize,
    /// Plugins installed at once.
    pub plugins_max: usize,
    /// Validator bindings across all plugins: each write under a bound
    /// prefix runs every validator bound above it.
    pub bindings_max: usize,
    /// Fuel one plugin call may be given: a call runs on the apply path of
    /// every replica, so this bounds how long one entry can hold it.
    pub plugin_fuel_max: u64,
    /// Linear memory one plugin call may be given.
    pub plugin_memory_max: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            data_bytes_max: 1024 * 1024,
            path_bytes_max: 4096,
            multi_ops_max: 1024,
            acl_entries_max: 64,
            acl_id_bytes_max: 1024,
            session_identities_max: 32,
            plugin_bytes_max: 8 << 20,
            plugins_max: 64,
            bindings_max: 256,
            // About a second of plain WebAssembly at most.
            plugin_fuel_max: 1_000_000_000,
            plugin_memory_max: 256 << 20,
        }
    }
}

/// Watches one session may hold on one server, so a client cannot exhaust
/// the server's memory with registrations.
pub const WATCHES_PER_SESSION_MAX: usize = 100_000;

/// Names one getChildren reply lists before the caller must page on.
pub const CHILDREN_PER_REPLY_MAX: usize = 10_000;

/// Requests one session may have waiting for answers on one server before
/// new ones are refused as throttled (twice this and the connection is
/// cut), so one client cannot hold unbounded memory there.
pub const SESSION_REQUESTS_MAX: usize = 4096;

/// Recent watch triggers a server keeps to replay, below a recursive watch,
/// what a client missed while it moved to it (about 10 MB at most).
pub const RECENT_TRIGGERS_MAX: usize = 100_000;

/// How long a write forwarded to the leader may wait to be placed in its
/// log before it fails (its outcome unknown if it was sent).
pub const FORWARD_WAIT_MS_MAX: u64 = 5_000;

/// Events queued for a node's driver before senders wait: the node-wide
/// bound on work accepted and not yet handled.
pub const NODE_EVENTS_MAX: usize = 65_536;

/// Frames queued for one peer before new ones are dropped (consensus
/// resends what matters; a peer that cannot keep up must not grow our
/// memory).
pub const PEER_FRAMES_MAX: usize = 4096;

/// Frames waiting to be written to one client connection before it is cut
/// off (its stream reset as too slow).
pub const OUTBOX_FRAMES_MAX: usize = 16_384;

/// Forwards a leader remembers placing in its term, so that one a follower
/// sends again is answered with its place instead of proposed twice.
pub const FORWARDS_REMEMBERED_MAX: usize = 65_536;
