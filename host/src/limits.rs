//! Every bound of the server, with its reason: the state machine's, the
//! watch table's, the node's queues, the plugin runtime's and the storage's.
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

/// Lines of log one call may leave; further lines are dropped.
pub const PLUGIN_LOG_LINES_MAX: usize = 16;

/// Bytes of one log line kept.
pub const PLUGIN_LOG_LINE_BYTES_MAX: usize = 1024;

/// Bytes of data and names one call may read from the tree: reads are
/// host work that fuel does not count, so they are bounded here.
pub const PLUGIN_READ_BYTES_MAX: usize = 64 << 20;

/// Reads one call may make.
pub const PLUGIN_READS_MAX: usize = 100_000;

/// The deepest the guest's native stack may go.
pub const PLUGIN_STACK_BYTES_MAX: usize = 512 * 1024;

/// Table elements one call may grow to.
pub const PLUGIN_TABLE_ELEMENTS_MAX: usize = 100_000;

/// Plugin calls that may run at once in this process. A node makes one at
/// a time (its core applies entries in order); tests and the
/// simulator run several state machines at once. Calls beyond this wait
/// for a slot rather than fail, so the pool's size never changes an
/// outcome.
pub const PLUGIN_CALLS_MAX: u32 = 16;

/// The largest linear memory a pool slot holds: the most any plugin may
/// be given (`Limits::plugin_memory_max`'s default).
pub const PLUGIN_POOL_MEMORY_BYTES_MAX: usize = 256 << 20;

/// Dirty pages of linear memory reset in place after a call (found with
/// Linux's PAGEMAP_SCAN, see `pagemap_scan` below), instead of discarded
/// with madvise and faulted in again by the next call. A Rust plugin's
/// stack ends at 1 MiB and its heap starts above it, so the pages a call
/// dirties are not at the bottom of memory, where a plain memset would
/// reset them. With the scan, `cargo bench -p warren --bench plugins` gave
/// a counter call 12.9 µs and a json-schema validation 44.8 µs, against
/// 22.3 µs and 62.9 µs resetting the first 64 KiB and discarding the rest;
/// 64 KiB, 256 KiB, 1 MiB and 4 MiB kept measured the same.
pub const PLUGIN_POOL_RESIDENT_BYTES_MAX: usize = 256 << 10;

/// Bytes of a plugin's reason or error message kept in the reply.
pub const PLUGIN_MESSAGE_BYTES_MAX: usize = 1024;

/// The largest prepared configuration: fixed (not a cluster limit), so
/// that whether a configuration prepares never depends on a member's
/// settings.
pub const PLUGIN_PREPARED_BYTES_MAX: usize = 4 << 20;

/// X.509's upper bound on a common name (RFC 5280, ub-common-name).
pub const CLIENT_NAME_BYTES_MAX: usize = 64;

/// The size at which fjall flushes the log's memtable by itself: a bound
/// that [`Storage`]'s own, staggered flushes stay below. (fjall keeps a
/// keyspace's options from its creation, so a log created before this
/// flushes at [`LOG_MEMTABLE_BYTES_MAX`] too, whichever comes first.)
pub const LOG_MEMTABLE_HARD_BYTES_MAX: u64 = 2 * LOG_MEMTABLE_BYTES_MAX;

/// Bytes of log entries (as fjall counts them) held in memory before the
/// log's memtable is flushed to a table.
pub const LOG_MEMTABLE_BYTES_MAX: u64 = 16 << 20;

/// Bounds of the protocol itself, which the client crate defines (clients
/// check them before sending), listed here with the server's so that every
/// bound is found in one place: the largest frame either side reads (a
/// whole multi of large values fits; a peer's frame too) and the longest
/// TTL a node may ask for (2^40 ms, about 35 years).
pub use warren_client::TTL_MS_MAX;
pub use warren_client::frame::FRAME_BYTES_MAX;

/// How long a peer or client connection may stay silent before QUIC ends
/// it: long enough to ride out a short stall, short enough that a dead
/// node's links go well before a session would expire (keep-alives every
/// `tls::KEEP_ALIVE` keep a healthy one open).
pub const CONNECTION_IDLE_MS_MAX: u32 = 10_000;

/// The largest frame a ZooKeeper client may send (ZooKeeper's
/// `jute.maxbuffer`, whose default is 1 MiB): room for a node's largest
/// data ([`Limits::data_bytes_max`]) with its path and ACL, or a multi of
/// several. A longer frame closes the connection, as ZooKeeper's does; a
/// connection never buffers more than one frame.
pub const ZOOKEEPER_FRAME_BYTES_MAX: usize = 4 << 20;

/// How long a ZooKeeper client connection may stay open without sending
/// its connect request (or a four-letter word), so connections that send
/// nothing do not pile up.
pub const ZOOKEEPER_HANDSHAKE_MS_MAX: u64 = 10_000;

/// Connections one client address may hold open on one ZooKeeper
/// listener by default (ZooKeeper's `maxClientCnxns`, whose default is
/// also 60); `zookeeper_max_client_cnxns` changes it, 0 lifts it.
pub const ZOOKEEPER_CONNECTIONS_PER_IP_MAX: usize = 60;
