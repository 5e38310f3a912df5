//! The consensus vocabulary: identifiers, log entries, the hard state,
//! snapshots and messages. Plain data; only the edges (transport, storage)
//! turn them into bytes.

use crate::consensus::membership::Membership;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A replica of the cluster.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

/// An election term. Strictly increasing per replica; at most one leader each.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log, from 1. It is also the zxid of the entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before, saturating at 0 (the empty log's last index).
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A new leader's first entry: it commits everything before it.
    Noop,
    /// An encoded state machine command, opaque to consensus.
    Command(Bytes),
}

/// One log entry, stamped by the leader that created it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: LogIndex,
    pub term: Term,
    /// The leader's clock when it appended the entry, never earlier than the
    /// entry before it, so time in the log never goes backwards.
    pub time_ms: i64,
    pub kind: EntryKind,
}

impl LogEntry {
    /// Payload bytes, for batching limits.
    pub fn size(&self) -> usize {
        match &self.kind {
            EntryKind::Noop => 0,
            EntryKind::Command(bytes) => bytes.len(),
        }
    }
}

/// What must be durable before a vote or an acknowledgement is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: LogIndex,
}

/// Where a snapshot stands in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

/// A state machine snapshot: its place in the log and its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}

/// A message between replicas. `term` is the sender's term (for a pre-vote
/// request, the term it would campaign in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: Body,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    PreVote {
        last_index: LogIndex,
        last_term: Term,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// `transfer`: the leader asked for this election, so voters ignore
    /// their leader lease.
    Vote {
        last_index: LogIndex,
        last_term: Term,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    Append {
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<LogEntry>,
        commit: LogIndex,
    },
    /// `index`: the last index known to match (on success) or the rejected
    /// `prev_index` (on rejection, with `hint`, an index at or below which
    /// the logs may match).
    AppendResponse {
        index: LogIndex,
        reject: Option<LogIndex>,
    },
    /// `read`: the leader's latest read-index round, echoed in the response.
    Heartbeat {
        commit: LogIndex,
        read: Option<u64>,
    },
    HeartbeatResponse {
        read: Option<u64>,
    },
    /// Bytes `offset .. offset + chunk.len()` of the leader's snapshot
    /// `meta`, `total` bytes long. A follower assembles the chunks in order
    /// and installs the snapshot only once it has every byte.
    InstallSnapshot {
        meta: SnapshotMeta,
        total: u64,
        offset: u64,
        chunk: Bytes,
    },
    /// The follower holds the first `received` bytes of the snapshot at
    /// `index` and expects the chunk starting there.
    SnapshotAck {
        index: LogIndex,
        received: u64,
    },
    /// A follower asks the leader for a read index on behalf of `ctx`.
    ReadIndex {
        ctx: u64,
    },
    /// `index: None`: the leader could not serve it (it lost leadership).
    ReadIndexResponse {
        ctx: u64,
        index: Option<LogIndex>,
    },
    /// The leader hands over: campaign now.
    TimeoutNow,
}

/// A role in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// The answer to a read-index request: reads for `ctx` are linearizable
/// once the state machine has applied `index`. `None`: retry (no leader, or
/// leadership was lost before the read was confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: Option<LogIndex>,
}
