//! Writes on their way through the log: proposed here (a leader's), or
//! forwarded to the leader, which answers with the (index, term) it
//! proposed them at. Either way the member answers its client when it
//! applies that index: with the state machine's reply if the entry there
//! has that term, else as never applied. A forward not yet placed fails
//! after [`FORWARD_WAIT_MS_MAX`]; one the leader placed waits for its
//! index, unless the member loses its leader (the engine then fails it as
//! an unknown outcome).
//!
//! A forward the leader has not answered is sent again, to the same leader
//! in the same term only, every three heartbeats: the leader remembers the
//! forwards it placed in its term by (follower, id) and answers a repeat
//! with the same place instead of proposing it twice. A forward carries
//! the term it was sent in, and a leader refuses one from another term
//! (it would not remember a first send placed in its earlier term: a
//! leader re-elected while a paused follower still resent in the old term
//! applied the write twice, simulator seed 12015398). Ids start at a
//! random point per engine, so a restarted follower's are new.

use super::{Engine, Output, Waiter};
use crate::Command;
use crate::consensus::{LogIndex, ProposeError, Role};
use crate::limits::{FORWARD_WAIT_MS_MAX, FORWARDS_REMEMBERED_MAX};
use crate::node::engine::PeerFrame;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use warren_client::wire::Failure;

/// A write sent to the leader, not yet placed in its log.
struct Forward {
    waiter: Waiter,
    command: Bytes,
    /// The leader it was sent to, if it was, in which term, and when.
    sent_to: Option<u64>,
    sent_term: u64,
    sent_ms: u64,
    /// Times it was sent: after two, a refusal no longer means the leader
    /// never placed it (an earlier send may have been).
    sends: u32,
    deadline_ms: u64,
}

/// Proposed and forwarded writes. See the module docs.
pub(super) struct Proposals {
    /// Placed commands by index, with the term they were proposed in.
    placed: BTreeMap<LogIndex, (Waiter, u64)>,
    forwards: BTreeMap<u64, Forward>,
    next_forward: u64,
    /// Leader: the forwards it placed in `placed_term`, by (follower, id),
    /// oldest first in `placed_order`.
    placed_forwards: HashMap<(u64, u64), (u64, u64)>,
    placed_order: VecDeque<(u64, u64)>,
    placed_term: u64,
    /// Writes handed to a leader since start (for the simulator's report).
    pub forwarded: u64,
}

impl Proposals {
    /// Forward ids start at `first` (random, so a restarted member's do
    /// not repeat its earlier ones).
    pub fn new(first: u64) -> Proposals {
        Proposals {
            placed: BTreeMap::new(),
            forwards: BTreeMap::new(),
            next_forward: first,
            placed_forwards: HashMap::new(),
            placed_order: VecDeque::new(),
            placed_term: 0,
            forwarded: 0,
        }
    }

    /// The waiter of the entry at `index`, if this member placed one there,
    /// and whether the entry's term is the one it was proposed in.
    pub fn take(&mut self, index: LogIndex, term: u64) -> Option<(Waiter, bool)> {
        self.placed.remove(&index).map(|(waiter, proposed)| (waiter, proposed == term))
    }

    /// Forgets placed writes up to `index` (a snapshot covered them: their
    /// outcome cannot be seen here).
    pub fn forget_through(&mut self, index: LogIndex) -> Vec<Waiter> {
        let rest = self.placed.split_off(&index.next());
        std::mem::replace(&mut self.placed, rest).into_values().map(|(w, _)| w).collect()
    }

    /// Every write still waiting, placed or not: the member lost its leader.
    pub fn drain(&mut self) -> Vec<Waiter> {
        let placed = std::mem::take(&mut self.placed).into_values().map(|(w, _)| w);
        let forwards = std::mem::take(&mut self.forwards).into_values().map(|f| f.waiter);
        placed.chain(forwards).collect()
    }
}

impl Engine {
    /// Proposes `command` for `waiter`: here if this member leads, else
    /// through the leader.
    pub(super) fn propose(&mut self, waiter: Waiter, command: Command) {
        let bytes = Bytes::from(command.encode());
        let stamp = self.stamps.stamp(self.now);
        match self.raft.propose(bytes.clone(), stamp) {
            Ok(index) => {
                self.proposals.placed.insert(index, (waiter, self.raft.term().0));
            }
            Err(ProposeError::NotLeader { .. }) | Err(ProposeError::Transferring) => {
                let id = self.proposals.next_forward;
                self.proposals.next_forward = id.wrapping_add(1);
                let deadline_ms = self.now.mono_ms + FORWARD_WAIT_MS_MAX;
                let forward = Forward {
                    waiter,
                    command: bytes,
                    sent_to: None,
                    sent_term: 0,
                    sent_ms: 0,
                    sends: 0,
                    deadline_ms,
                };
                self.proposals.forwards.insert(id, forward);
                self.send_forward(id);
            }
        }
    }

    fn send_forward(&mut self, id: u64) {
        let Some(leader) = self.raft.leader().map(|l| l.0).filter(|&l| l != self.id) else {
            return;
        };
        let Some(forward) = self.proposals.forwards.get_mut(&id) else { return };
        if forward.sent_to.is_none() {
            self.proposals.forwarded += 1;
        }
        forward.sent_to = Some(leader);
        forward.sent_term = self.raft.term().0;
        forward.sent_ms = self.now.mono_ms;
        forward.sends += 1;
        let term = Some(forward.sent_term);
        let frame = PeerFrame::Forward { id, term, command: forward.command.to_vec() };
        self.out.push(Output::Peer { to: leader, frame });
    }

    /// Leader: a follower forwards a command, sent in the follower's `sent`
    /// term (none from a member older than this check).
    pub(super) fn forwarded_command(
        &mut self,
        from: u64,
        id: u64,
        sent: Option<u64>,
        command: Vec<u8>,
    ) {
        let term = self.raft.term().0;
        if sent.is_some_and(|sent| sent != term) {
            // Sent in another term: if it is a repeat, this leader may
            // have placed the first send in its earlier term, which it no
            // longer remembers. Refused, never proposed: the follower
            // fails a repeat as an unknown outcome and sends a first try
            // again in the term it learns.
            let leader = self.raft.leader().map(|l| l.0);
            let frame = PeerFrame::Forwarded { id, result: Err(leader) };
            self.out.push(Output::Peer { to: from, frame });
            return;
        }
        let p = &mut self.proposals;
        if p.placed_term != term {
            p.placed_forwards.clear();
            p.placed_order.clear();
            p.placed_term = term;
        }
        if let Some(&(index, term)) = p.placed_forwards.get(&(from, id)) {
            // Sent again: it is placed already.
            let frame = PeerFrame::Forwarded { id, result: Ok((index, term)) };
            self.out.push(Output::Peer { to: from, frame });
            return;
        }
        let stamp = self.stamps.stamp(self.now);
        let result = match self.raft.propose(Bytes::from(command), stamp) {
            // The follower that asked answers its client.
            Ok(index) => {
                let p = &mut self.proposals;
                p.placed_forwards.insert((from, id), (index.0, term));
                p.placed_order.push_back((from, id));
                if p.placed_order.len() > FORWARDS_REMEMBERED_MAX
                    && let Some(old) = p.placed_order.pop_front()
                {
                    p.placed_forwards.remove(&old);
                }
                Ok((index.0, term))
            }
            Err(ProposeError::NotLeader { leader }) => Err(leader.map(|l| l.0)),
            Err(ProposeError::Transferring) => Err(None),
        };
        self.out.push(Output::Peer { to: from, frame: PeerFrame::Forwarded { id, result } });
    }

    /// The leader placed (or refused) a forwarded command.
    pub(super) fn forward_answered(&mut self, id: u64, result: Result<(u64, u64), Option<u64>>) {
        let Some(forward) = self.proposals.forwards.remove(&id) else { return };
        match result {
            Ok((index, term)) if index <= self.sm.last_applied().0 => {
                // The answer came after this member applied the index (it
                // was sent again, or overtaken): the reply is gone, but the
                // entry's term still tells whether it was this write.
                let failure = if self.raft.term_at(LogIndex(index)).is_some_and(|t| t.0 != term) {
                    Failure::Unavailable {
                        why: "leadership changed before the write committed".into(),
                    }
                } else {
                    Failure::OutcomeUnknown {
                        why: "the leader's answer came after the write was applied here".into(),
                    }
                };
                self.fail(forward.waiter, failure);
            }
            Ok((index, term)) => {
                self.proposals.placed.insert(LogIndex(index), (forward.waiter, term));
            }
            Err(_) if forward.sends > 1 => {
                // Refused when sent again: the first send may have been
                // placed before the leader stepped down.
                let why = "the leader changed before it answered".to_string();
                self.fail(forward.waiter, Failure::OutcomeUnknown { why });
            }
            Err(_) => {
                // Not the leader after all, and never placed: try again
                // when one is known, until the deadline.
                let forward = Forward { sent_to: None, sends: 0, ..forward };
                self.proposals.forwards.insert(id, forward);
            }
        }
    }

    /// Each tick: sends forwards waiting for a leader, proposes them if
    /// this member now leads, and fails those too old or sent to a leader
    /// that is no longer the leader (it may or may not have placed them:
    /// the outcome is unknown).
    pub(super) fn tick_forwards(&mut self) {
        let ids: Vec<u64> = self.proposals.forwards.keys().copied().collect();
        let current = self.raft.leader().map(|l| l.0);
        let term = self.raft.term().0;
        let leader = self.raft.role() == Role::Leader;
        let timing = self.options.timing;
        let resend_ms = 3 * u64::from(timing.heartbeat_ticks) * timing.tick_ms;
        for id in ids {
            let Some(f) = self.proposals.forwards.get(&id) else { continue };
            let deposed = f.sent_to.is_some_and(|to| {
                current.is_some_and(|c| c != to) || (current.is_some() && f.sent_term != term)
            });
            let unanswered = f.sent_to.is_some_and(|to| current == Some(to))
                && f.sent_term == term
                && self.now.mono_ms >= f.sent_ms + resend_ms;
            if f.deadline_ms <= self.now.mono_ms || deposed {
                let Some(f) = self.proposals.forwards.remove(&id) else { continue };
                let failure = match (f.sent_to, deposed) {
                    (Some(_), true) => Failure::OutcomeUnknown {
                        why: "the leader changed before it answered".into(),
                    },
                    (Some(_), false) => {
                        Failure::OutcomeUnknown { why: "the leader did not answer in time".into() }
                    }
                    (None, _) => Failure::Unavailable { why: "no leader was reachable".into() },
                };
                self.fail(f.waiter, failure);
            } else if unanswered {
                self.send_forward(id);
            } else if f.sent_to.is_none() {
                if leader {
                    let Some(f) = self.proposals.forwards.remove(&id) else { continue };
                    let stamp = self.stamps.stamp(self.now);
                    match self.raft.propose(f.command, stamp) {
                        Ok(index) => {
                            let term = self.raft.term().0;
                            self.proposals.placed.insert(index, (f.waiter, term));
                        }
                        Err(_) => {
                            let why = "leadership is moving".to_string();
                            self.fail(f.waiter, Failure::Unavailable { why });
                        }
                    }
                } else {
                    self.send_forward(id);
                }
            }
        }
    }
}
