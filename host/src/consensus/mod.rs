//! Consensus: a pure, leader-based replication core (Raft with pre-vote,
//! check-quorum, read-index and leadership transfer). It imports no tokio,
//! fjall or quinn and reads no clock, randomness, disk or socket; see
//! [`Raft`] for how a driver runs it.

mod log;
mod membership;
mod progress;
mod raft;
mod types;

pub use membership::Membership;
pub use raft::{Config, ProposeError, Raft, Ready, Restored};
pub use types::{
    Body, EntryKind, HardState, LogEntry, LogIndex, Message, NodeId, ReadState, Role, Snapshot,
    SnapshotMeta, Term,
};
