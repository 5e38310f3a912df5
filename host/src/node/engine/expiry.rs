//! The leader's session-expiry and clean-up clock, and a follower's relay
//! of the sessions its clients kept alive. Deadlines are monotonic ms: a
//! wall clock that jumps expires nobody. Decides; proposes nothing itself
//! (the engine proposes what [`Expiry::tick`] returns).

use crate::{Command, StateMachine};
use std::collections::{BTreeSet, HashMap, HashSet};
use warren_client::SessionId;

/// How often the leader looks for containers and TTL nodes to remove.
const CLEANUP_EVERY_MS: u64 = 1_000;

/// See the module docs.
#[derive(Default)]
pub(super) struct Expiry {
    /// Local sessions heard from since the last tick.
    heard: BTreeSet<SessionId>,
    /// Leader: when each session expires unless touched (monotonic ms).
    deadlines: HashMap<SessionId, u64>,
    /// Leader: expiries and clean-ups proposed and not yet applied.
    expiring: HashSet<SessionId>,
    cleaning: HashSet<String>,
    last_cleanup_ms: u64,
    was_leader: bool,
}

/// What a tick asks of the engine.
#[derive(Default)]
pub(super) struct Due {
    /// Sessions to report to the leader as alive (a follower's).
    pub relay: Vec<SessionId>,
    /// Expiries and clean-ups to propose (a leader's).
    pub propose: Vec<Command>,
}

impl Expiry {
    /// A local session's client was heard from.
    pub fn heard(&mut self, session: SessionId) {
        self.heard.insert(session);
    }

    /// Forgets a session that left this member.
    pub fn forget_local(&mut self, session: SessionId) {
        self.heard.remove(&session);
    }

    /// Leader: a session was heard from here or through a follower.
    pub fn touch(&mut self, sm: &StateMachine, session: SessionId, now_ms: u64) {
        if let Some(s) = sm.session(session) {
            self.deadlines.insert(session, now_ms + u64::from(s.timeout_ms));
        }
    }

    /// One tick: touches to relay or apply, expiries and clean-ups due.
    pub fn tick(&mut self, leader: bool, sm: &StateMachine, now_ms: u64, stamp_ms: i64) -> Due {
        let mut due = Due::default();
        if leader && !self.was_leader {
            // A new leader gives every session a full timeout from now: it
            // cannot know when the old leader last heard of them.
            self.deadlines.clear();
            self.expiring.clear();
            self.cleaning.clear();
            for (id, s) in sm.sessions() {
                self.deadlines.insert(id, now_ms + u64::from(s.timeout_ms));
            }
        }
        self.was_leader = leader;
        let heard: Vec<SessionId> = std::mem::take(&mut self.heard).into_iter().collect();
        if !leader {
            due.relay = heard;
            return due;
        }
        for session in heard {
            self.touch(sm, session, now_ms);
        }
        let mut expired = Vec::new();
        for (id, s) in sm.sessions() {
            let deadline = *self.deadlines.entry(id).or_insert(now_ms + u64::from(s.timeout_ms));
            if deadline <= now_ms && !self.expiring.contains(&id) {
                expired.push(id);
            }
        }
        if !expired.is_empty() {
            self.expiring.extend(expired.iter().copied());
            due.propose.push(Command::ExpireSessions { sessions: expired });
        }
        if now_ms >= self.last_cleanup_ms + CLEANUP_EVERY_MS {
            self.last_cleanup_ms = now_ms;
            for command in sm.cleanup_candidates(stamp_ms) {
                let path = match &command {
                    Command::RemoveContainer { path } | Command::RemoveExpiredTtl { path } => {
                        path.clone()
                    }
                    _ => continue,
                };
                if self.cleaning.insert(path) {
                    due.propose.push(command);
                }
            }
        }
        due
    }

    /// An entry was applied: sessions it ended and a path it cleaned are
    /// done with.
    pub fn applied(&mut self, ended: &[SessionId], cleaned: Option<&str>) {
        for session in ended {
            self.expiring.remove(session);
            self.deadlines.remove(session);
        }
        if let Some(path) = cleaned {
            self.cleaning.remove(path);
        }
    }
}
