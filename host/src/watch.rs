//! The watch table of one server: which of its sessions watch which paths,
//! and, given the triggers of an applied entry, which watches fire with which
//! event. Not replicated; knows nothing of the tree except, for re-arming
//! after a client moves, a read-only view through [`StateMachine`].
//!
//! ZooKeeper's rules: a one-shot data watch (getData, exists) fires on
//! NodeCreated, NodeDataChanged and NodeDeleted of its path; a one-shot child
//! watch (getChildren) on NodeChildrenChanged and NodeDeleted; a persistent
//! watch on every event of its path and stays; a persistent-recursive watch
//! on NodeCreated, NodeDataChanged and NodeDeleted of its path and every path
//! below, never on NodeChildrenChanged. A session gets at most one event per
//! trigger, and only if it may read the node (ZooKeeper's fix for
//! CVE-2024-23944); a one-shot watch is consumed even when the event is
//! filtered out.

use crate::limits::WATCHES_PER_SESSION_MAX;
use crate::path;
use crate::state::{StateMachine, Trigger};
use std::collections::{BTreeSet, HashMap};
use warren_client::{ApiError, EventType, Id, SessionId, WatchKind, WatchedEvent, Zxid};

const DATA: u8 = 1;
const CHILD: u8 = 2;
const PERSISTENT: u8 = 4;
const RECURSIVE: u8 = 8;

fn bit(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Data => DATA,
        WatchKind::Child => CHILD,
        WatchKind::Persistent => PERSISTENT,
        WatchKind::PersistentRecursive => RECURSIVE,
        WatchKind::Any => DATA | CHILD | PERSISTENT | RECURSIVE,
    }
}

/// The watches a session asks a server to re-arm after moving to it: what
/// it held and the last zxid it saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rearm {
    pub last_zxid: Zxid,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

/// Watches per path and per session. Drive it with `add`/`remove` as
/// sessions ask, `fire` for every trigger of every applied entry (in order),
/// and `remove_session` when a session ends or leaves this server.
pub struct WatchTable {
    /// Path → (session → kind bits).
    by_path: HashMap<String, HashMap<SessionId, u8>>,
    /// Session → the paths it watches and its count of (path, kind) watches.
    by_session: HashMap<SessionId, SessionWatches>,
    /// How many (session, path) pairs hold a recursive watch: while zero,
    /// firing looks at the exact path only.
    recursive: usize,
    /// The bound on watches per session.
    per_session_max: usize,
}

#[derive(Default)]
struct SessionWatches {
    paths: BTreeSet<String>,
    count: usize,
}

impl Default for WatchTable {
    /// A table with the standard per-session bound.
    fn default() -> WatchTable {
        WatchTable::new()
    }
}

impl WatchTable {
    pub fn new() -> WatchTable {
        WatchTable::with_limit(WATCHES_PER_SESSION_MAX)
    }

    pub fn with_limit(per_session_max: usize) -> WatchTable {
        WatchTable {
            by_path: HashMap::new(),
            by_session: HashMap::new(),
            recursive: 0,
            per_session_max,
        }
    }

    /// Sets a watch. Setting one a session already holds is a no-op.
    /// `WatchKind::Any` is for removal only and is refused here.
    pub fn add(&mut self, session: SessionId, path: &str, kind: WatchKind) -> Result<(), ApiError> {
        if kind == WatchKind::Any {
            return Err(ApiError::NoWatcher { path: path.to_owned(), kind: "any".into() });
        }
        let held = self.by_path.get(path).and_then(|s| s.get(&session)).copied().unwrap_or(0);
        if held & bit(kind) != 0 {
            return Ok(());
        }
        let mine = self.by_session.entry(session).or_default();
        if mine.count >= self.per_session_max {
            return Err(ApiError::TooManyWatches { count: mine.count });
        }
        mine.count += 1;
        if !mine.paths.contains(path) {
            mine.paths.insert(path.to_owned());
        }
        let bits = self.by_path.entry(path.to_owned()).or_default().entry(session).or_insert(0);
        if kind == WatchKind::PersistentRecursive && *bits & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *bits |= bit(kind);
        Ok(())
    }

    /// Removes watches of `kind` (or every kind, for `Any`) that `session`
    /// holds on `path`. NoWatcher when it holds none of that kind there.
    pub fn remove(
        &mut self,
        session: SessionId,
        path: &str,
        kind: WatchKind,
    ) -> Result<(), ApiError> {
        let held = self.by_path.get(path).and_then(|s| s.get(&session)).copied().unwrap_or(0);
        if held & bit(kind) == 0 {
            return Err(ApiError::NoWatcher { path: path.to_owned(), kind: format!("{kind:?}") });
        }
        self.set_bits(session, path, held & !bit(kind));
        Ok(())
    }

    /// Forgets every watch of a session.
    /// Whether the session holds a watch of `kind` on `path` (with `Any`,
    /// of any kind): ZooKeeper's checkWatches.
    pub fn holds(&self, session: SessionId, path: &str, kind: WatchKind) -> bool {
        let held = self.by_path.get(path).and_then(|s| s.get(&session)).copied().unwrap_or(0);
        held & bit(kind) != 0
    }

    /// Every (session, path) pair holding a watch, sorted.
    pub fn list(&self) -> Vec<(SessionId, String)> {
        let mut out: Vec<(SessionId, String)> = self
            .by_session
            .iter()
            .flat_map(|(&session, w)| w.paths.iter().map(move |p| (session, p.clone())))
            .collect();
        out.sort();
        out
    }

    pub fn remove_session(&mut self, session: SessionId) {
        for path in self.by_session.remove(&session).unwrap_or_default().paths {
            if let Some(sessions) = self.by_path.get_mut(&path) {
                if sessions.remove(&session).is_some_and(|bits| bits & RECURSIVE != 0) {
                    self.recursive -= 1;
                }
                if sessions.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// The number of (path, kind) watches a session holds.
    pub fn count(&self, session: SessionId) -> usize {
        self.by_session.get(&session).map_or(0, |mine| mine.count)
    }

    /// Which watches `trigger` fires: one event per session at most, in
    /// session order, consuming one-shot watches. `auth` gives a session's
    /// identities; a session without READ on the trigger's ACL is not told.
    pub fn fire<'a>(
        &mut self,
        trigger: &Trigger,
        auth: impl Fn(SessionId) -> Option<&'a [Id]>,
    ) -> Vec<(SessionId, WatchedEvent)> {
        let exact_bits = match trigger.event {
            EventType::NodeCreated | EventType::NodeDataChanged => DATA | PERSISTENT | RECURSIVE,
            EventType::NodeDeleted => DATA | CHILD | PERSISTENT | RECURSIVE,
            EventType::NodeChildrenChanged => CHILD | PERSISTENT,
        };
        let mut fired: BTreeSet<SessionId> = BTreeSet::new();
        let mut consumed: Vec<(SessionId, u8)> = Vec::new();
        if let Some(sessions) = self.by_path.get(&*trigger.path) {
            for (&session, &bits) in sessions {
                if bits & exact_bits != 0 {
                    fired.insert(session);
                    let one_shot = bits & exact_bits & (DATA | CHILD);
                    if one_shot != 0 {
                        consumed.push((session, bits & !one_shot));
                    }
                }
            }
        }
        if self.recursive > 0 && trigger.event != EventType::NodeChildrenChanged {
            for ancestor in path::ancestors(&trigger.path) {
                let Some(sessions) = self.by_path.get(ancestor) else {
                    continue;
                };
                for (&session, &bits) in sessions {
                    if bits & RECURSIVE != 0 {
                        fired.insert(session);
                    }
                }
            }
        }
        for (session, bits) in consumed {
            self.set_bits(session, &trigger.path, bits);
        }
        fired
            .into_iter()
            .filter(|&session| {
                auth(session).is_some_and(|ids| StateMachine::may_read(&trigger.acl, ids))
            })
            .map(|session| {
                let event = WatchedEvent {
                    event: trigger.event,
                    path: trigger.path.to_string(),
                    zxid: trigger.zxid,
                };
                (session, event)
            })
            .collect()
    }

    /// Re-arms a session's watches after it moved to this server, as
    /// ZooKeeper's setWatches does: a watch whose condition already changed
    /// since `last_zxid` fires at once (and a one-shot one is not set);
    /// the rest are set. Persistent watches are set, and fire at once for
    /// their own path's changes since `last_zxid`; changes below a recursive
    /// watch in the gap are not replayed.
    pub fn rearm(
        &mut self,
        session: SessionId,
        rearm: &Rearm,
        sm: &StateMachine,
    ) -> Result<Vec<WatchedEvent>, ApiError> {
        let since = rearm.last_zxid;
        let zxid = sm.last_applied();
        let mut events = Vec::new();
        let mut event = |event, path: &str| {
            events.push(WatchedEvent { event, path: path.to_owned(), zxid });
        };
        for path in &rearm.data {
            match sm.exists(path) {
                None => event(EventType::NodeDeleted, path),
                Some(stat) if stat.mzxid > since => event(EventType::NodeDataChanged, path),
                Some(_) => self.add(session, path, WatchKind::Data)?,
            }
        }
        for path in &rearm.exist {
            match sm.exists(path) {
                Some(_) => event(EventType::NodeCreated, path),
                None => self.add(session, path, WatchKind::Data)?,
            }
        }
        for path in &rearm.child {
            match sm.exists(path) {
                None => event(EventType::NodeDeleted, path),
                Some(stat) if stat.pzxid > since => event(EventType::NodeChildrenChanged, path),
                Some(_) => self.add(session, path, WatchKind::Child)?,
            }
        }
        for (paths, kind) in [
            (&rearm.persistent, WatchKind::Persistent),
            (&rearm.recursive, WatchKind::PersistentRecursive),
        ] {
            for path in paths {
                self.add(session, path, kind)?;
                let Some(stat) = sm.exists(path) else {
                    continue;
                };
                if stat.czxid > since {
                    event(EventType::NodeCreated, path);
                    continue;
                }
                if stat.mzxid > since {
                    event(EventType::NodeDataChanged, path);
                }
                if kind == WatchKind::Persistent && stat.pzxid > since {
                    event(EventType::NodeChildrenChanged, path);
                }
            }
        }
        Ok(events)
    }

    fn set_bits(&mut self, session: SessionId, path: &str, bits: u8) {
        let Some(sessions) = self.by_path.get_mut(path) else {
            return;
        };
        let old = sessions.get(&session).copied().unwrap_or(0);
        if old & RECURSIVE != 0 && bits & RECURSIVE == 0 {
            self.recursive -= 1;
        }
        let Some(mine) = self.by_session.get_mut(&session) else {
            return;
        };
        // Bits are only ever cleared here.
        mine.count -= (old & !bits).count_ones() as usize;
        if bits == 0 {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.by_path.remove(path);
            }
            mine.paths.remove(path);
            if mine.paths.is_empty() {
                self.by_session.remove(&session);
            }
        } else {
            sessions.insert(session, bits);
        }
    }
}
