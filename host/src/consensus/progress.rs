//! The leader's view of one follower: how far its log matches, what to send
//! next, and the flow-control state that bounds what is in flight.
//!
//! - Probe: the leader does not know where the logs match; one append at a
//!   time, until a response (or the next heartbeat) unpauses it.
//! - Replicate: the follower is keeping up; appends are pipelined, at most
//!   `max_inflight` messages unacknowledged.
//! - Snapshot: a snapshot is streaming to the follower in chunks, at most a
//!   window of bytes unacknowledged; no append is sent until it is
//!   installed.

use crate::consensus::types::LogIndex;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Probe,
    Replicate,
    Snapshot(Streaming),
}

/// A snapshot transfer to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Streaming {
    /// The snapshot's index.
    pub index: LogIndex,
    /// Bytes sent, and bytes the follower acknowledged holding.
    pub sent: u64,
    pub acked: u64,
    /// `acked` at the last stall check (none before the first): no progress
    /// between two checks, a whole election timeout, means chunks or
    /// acknowledgements were lost.
    pub acked_at_check: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub matched: LogIndex,
    pub next: LogIndex,
    pub state: State,
    /// Probe: an append is out and unanswered.
    pub probe_sent: bool,
    /// Replicate: the last index of each unacknowledged append, oldest first.
    pub inflight: VecDeque<LogIndex>,
    /// The leader's tick when it last heard from this follower.
    pub last_heard: u64,
}

impl Progress {
    pub(crate) fn new(next: LogIndex, now: u64) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: State::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            last_heard: now,
        }
    }

    /// Whether the leader may send this follower another append now.
    pub(crate) fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            State::Probe => self.probe_sent,
            State::Replicate => self.inflight.len() >= max_inflight,
            State::Snapshot(_) => true,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        // After a snapshot, resume right after it.
        let floor = match self.state {
            State::Snapshot(streaming) => streaming.index,
            _ => self.matched,
        };
        self.state = State::Probe;
        self.next = floor.max(self.matched).next();
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = State::Replicate;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = State::Snapshot(Streaming { index, sent: 0, acked: 0, acked_at_check: None });
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Records that an append ending at `last` was sent.
    pub(crate) fn sent(&mut self, last: LogIndex, entries: usize) {
        match self.state {
            State::Replicate => {
                if entries > 0 {
                    self.next = last.next();
                    self.inflight.push_back(last);
                }
            }
            State::Probe => self.probe_sent = true,
            State::Snapshot(_) => {}
        }
    }

    /// A success up to `index`: returns whether it told the leader anything
    /// new (a stale acknowledgement does not).
    pub(crate) fn acknowledge(&mut self, index: LogIndex) -> bool {
        self.probe_sent = false;
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        if index <= self.matched {
            return false;
        }
        self.matched = index;
        self.next = self.next.max(index.next());
        true
    }

    /// A rejection of the append whose previous index was `rejected`, with
    /// the follower's `hint`: moves `next` back and returns whether the
    /// rejection was current (stale rejections change nothing).
    pub(crate) fn reject(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        match self.state {
            State::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.become_probe();
                self.next = self.matched.next().max(rejected.min(hint.next()));
                true
            }
            State::Probe => {
                // A rejection at or below the match is stale (a duplicate
                // from before the match was learned).
                if rejected != self.next.prev() || rejected <= self.matched {
                    return false;
                }
                self.next = self.matched.next().max(rejected.min(hint.next()));
                self.probe_sent = false;
                true
            }
            State::Snapshot(_) => false,
        }
    }
}
