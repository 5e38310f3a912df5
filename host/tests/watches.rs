//! The watch table against ZooKeeper's rules, driven by the real triggers of
//! applied entries: which kinds fire on which events, one-shot versus
//! persistent, recursion, one event per session, ACL filtering, removal,
//! limits and re-arming after a session moves.

mod common;

use common::*;
use warren::{Command, Rearm, StateMachine, Trigger, WatchTable};
use warren_client::{
    Acl, ApiError, CreateMode, ErrorCode, EventType, Id, Op, Perms, SessionId, WatchKind,
};

use EventType::{
    NodeChildrenChanged as Children, NodeCreated as Created, NodeDataChanged as Changed,
    NodeDeleted as Deleted,
};
use WatchKind::{Any, Child, Data, Persistent, PersistentRecursive as Recursive};

/// A state machine and one server's watch table, fed every trigger.
struct World {
    h: Harness,
    w: WatchTable,
    /// The session that makes the changes; it sets no watches.
    writer: SessionId,
}

type Fired = Vec<(SessionId, EventType, String)>;

fn fire_all(w: &mut WatchTable, sm: &StateMachine, triggers: &[Trigger]) -> Fired {
    let mut out = Vec::new();
    for trigger in triggers {
        for (session, event) in w.fire(trigger, |s| sm.session(s).map(|s| &*s.auth)) {
            assert_eq!(event.path, &*trigger.path);
            assert_eq!(event.event, trigger.event);
            assert_eq!(event.zxid, trigger.zxid);
            out.push((session, event.event, event.path));
        }
    }
    out
}

impl World {
    fn new() -> World {
        World::with_table(WatchTable::new())
    }

    fn with_table(w: WatchTable) -> World {
        let mut h = Harness::new();
        let writer = h.open(vec![Id::x509("CN=writer")]);
        World { h, w, writer }
    }

    fn session(&mut self, auth: Vec<Id>) -> SessionId {
        self.h.open(auth)
    }

    /// The writer's op, which must succeed; returns the events it fired.
    fn write(&mut self, op: Op) -> Fired {
        self.write_as(self.writer, op)
    }

    fn write_as(&mut self, session: SessionId, op: Op) -> Fired {
        let shown = format!("{op:?}");
        let applied = self.h.request(session, op);
        assert!(
            matches!(applied.response, warren::Response::Reply(Ok(_))),
            "{shown}: {:?}",
            applied.response
        );
        fire_all(&mut self.w, &self.h.sm, &applied.triggers)
    }

    fn apply(&mut self, command: Command) -> Fired {
        let applied = self.h.apply(command);
        fire_all(&mut self.w, &self.h.sm, &applied.triggers)
    }

    fn watch(&mut self, session: SessionId, path: &str, kind: WatchKind) {
        self.w.add(session, path, kind).unwrap_or_else(|e| panic!("watch {path} {kind:?}: {e:?}"));
    }
}

fn ev(session: SessionId, event: EventType, path: &str) -> (SessionId, EventType, String) {
    (session, event, path.to_string())
}

// ---------------------------------------------------------------- data watches

#[test]
fn data_watch_on_a_missing_node_fires_created_once() {
    // Proves a data watch set by exists on a missing node fires NodeCreated
    // when it is created, and being one-shot, nothing on the next change.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.watch(s, "/a", Data);
    assert_eq!(x.w.count(s), 1);
    assert_eq!(x.write(create("/a", b"")), vec![ev(s, Created, "/a")]);
    assert_eq!(x.w.count(s), 0);
    assert_eq!(x.write(set("/a", b"1", None)), vec![]);
    assert_eq!(x.write(delete("/a", None)), vec![]);
}

#[test]
fn data_watch_fires_on_data_change_and_delete_once() {
    // Proves a data watch fires NodeDataChanged on setData and NodeDeleted on
    // delete, each time consumed so the following change fires nothing.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.write(create("/a", b""));
    x.watch(s, "/a", Data);
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(s, Changed, "/a")]);
    assert_eq!(x.write(set("/a", b"2", None)), vec![]);
    x.watch(s, "/a", Data);
    assert_eq!(x.write(delete("/a", None)), vec![ev(s, Deleted, "/a")]);
    assert_eq!(x.write(create("/a", b"")), vec![]);
}

#[test]
fn data_watch_ignores_children_and_stays_set() {
    // Proves a data watch does not fire on NodeChildrenChanged of its node
    // (nor on a child's own events) and is still set afterwards.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.write(create("/a", b""));
    x.watch(s, "/a", Data);
    assert_eq!(x.write(create("/a/b", b"")), vec![]);
    assert_eq!(x.write(set("/a/b", b"1", None)), vec![]);
    assert_eq!(x.write(delete("/a/b", None)), vec![]);
    assert_eq!(x.w.count(s), 1);
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(s, Changed, "/a")]);
}

// ---------------------------------------------------------------- child watches

#[test]
fn child_watch_fires_on_children_changed_and_delete_once() {
    // Proves a child watch fires NodeChildrenChanged on a child's creation or
    // deletion and NodeDeleted when its node goes, is one-shot, and ignores
    // the node's data changes and grandchildren.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.write(create("/a", b""));
    x.watch(s, "/a", Child);
    assert_eq!(x.write(set("/a", b"1", None)), vec![]);
    assert_eq!(x.w.count(s), 1);
    assert_eq!(x.write(create("/a/b", b"")), vec![ev(s, Children, "/a")]);
    assert_eq!(x.write(create("/a/c", b"")), vec![]);
    x.watch(s, "/a", Child);
    assert_eq!(x.write(create("/a/b/g", b"")), vec![]);
    assert_eq!(x.write(set("/a/b", b"1", None)), vec![]);
    assert_eq!(x.write(delete("/a/b/g", None)), vec![]);
    assert_eq!(x.write(delete("/a/b", None)), vec![ev(s, Children, "/a")]);
    x.watch(s, "/a", Child);
    x.write(delete("/a/c", None));
    x.watch(s, "/a", Child);
    assert_eq!(x.write(delete("/a", None)), vec![ev(s, Deleted, "/a")]);
    assert_eq!(x.w.count(s), 0);
}

// ---------------------------------------------------------------- persistent watches

#[test]
fn persistent_watch_fires_every_event_of_its_path_and_stays() {
    // Proves a persistent watch fires NodeCreated, NodeDataChanged,
    // NodeChildrenChanged and NodeDeleted of its own path, nothing for
    // events below, and stays set through deletion and re-creation.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.watch(s, "/a", Persistent);
    assert_eq!(x.write(create("/a", b"")), vec![ev(s, Created, "/a")]);
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(s, Changed, "/a")]);
    assert_eq!(x.write(set("/a", b"2", None)), vec![ev(s, Changed, "/a")]);
    assert_eq!(x.write(create("/a/b", b"")), vec![ev(s, Children, "/a")]);
    assert_eq!(x.write(set("/a/b", b"1", None)), vec![]);
    assert_eq!(x.write(create("/a/b/c", b"")), vec![]);
    assert_eq!(x.write(delete("/a/b/c", None)), vec![]);
    assert_eq!(x.write(delete("/a/b", None)), vec![ev(s, Children, "/a")]);
    assert_eq!(x.write(delete("/a", None)), vec![ev(s, Deleted, "/a")]);
    assert_eq!(x.write(create("/a", b"")), vec![ev(s, Created, "/a")]);
    assert_eq!(x.w.count(s), 1);
}

#[test]
fn recursive_watch_fires_for_descendants_but_never_children_changed() {
    // Proves a persistent-recursive watch fires NodeCreated, NodeDataChanged
    // and NodeDeleted for its path and every path below, never
    // NodeChildrenChanged, not for a sibling sharing its prefix, and stays.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.watch(s, "/a", Recursive);
    assert_eq!(x.write(create("/a", b"")), vec![ev(s, Created, "/a")]);
    assert_eq!(x.write(create("/a/b", b"")), vec![ev(s, Created, "/a/b")]);
    assert_eq!(x.write(set("/a/b", b"1", None)), vec![ev(s, Changed, "/a/b")]);
    assert_eq!(x.write(create("/a/b/c", b"")), vec![ev(s, Created, "/a/b/c")]);
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(s, Changed, "/a")]);
    assert_eq!(x.write(delete("/a/b/c", None)), vec![ev(s, Deleted, "/a/b/c")]);
    assert_eq!(x.write(create("/ab", b"")), vec![]);
    assert_eq!(x.write(set("/ab", b"1", None)), vec![]);
    assert_eq!(x.write(delete("/a/b", None)), vec![ev(s, Deleted, "/a/b")]);
    assert_eq!(x.write(delete("/a", None)), vec![ev(s, Deleted, "/a")]);
    assert_eq!(x.write(create("/a", b"")), vec![ev(s, Created, "/a")]);
    // On the root it sees everything but children changes.
    let r = x.session(vec![]);
    x.watch(r, "/", Recursive);
    assert_eq!(x.write(create("/z", b"")), vec![ev(r, Created, "/z")]);
    assert_eq!(x.write(create("/a/q", b"")), vec![ev(s, Created, "/a/q"), ev(r, Created, "/a/q")]);
    assert_eq!(x.write(set("/", b"root", None)), vec![ev(r, Changed, "/")]);
    assert_eq!((x.w.count(s), x.w.count(r)), (1, 1));
}

#[test]
fn one_event_per_session_per_trigger() {
    // Proves a session holding several kinds on a path (and a recursive watch
    // above it) gets one event per trigger; the one-shot kinds that match are
    // consumed, the others stay.
    let mut x = World::new();
    let s = x.session(vec![]);
    let t = x.session(vec![]);
    x.write(create("/a", b""));
    for kind in [Data, Child, Persistent, Recursive] {
        x.watch(s, "/a", kind);
    }
    x.watch(s, "/", Recursive);
    x.watch(t, "/a", Data);
    assert_eq!(x.w.count(s), 5);
    let fired = x.write(set("/a", b"1", None));
    let mut expected = vec![ev(s, Changed, "/a"), ev(t, Changed, "/a")];
    expected.sort();
    let mut got = fired.clone();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(x.w.count(s), 4, "only the data watch is consumed");
    assert_eq!(x.write(create("/a/k", b"")), vec![ev(s, Created, "/a/k"), ev(s, Children, "/a")]);
    assert_eq!(x.w.count(s), 3, "the child watch is consumed");
    x.write(delete("/a/k", None));
    assert_eq!(x.write(delete("/a", None)), vec![ev(s, Deleted, "/a")]);
    assert_eq!(x.w.count(s), 3, "persistent and recursive watches stay");
}

#[test]
fn delete_tells_the_node_and_the_parents_child_watchers() {
    // Proves deleting a node fires NodeDeleted to its data and child watchers
    // and NodeChildrenChanged to its parent's child watchers, while the
    // parent's data watchers hear nothing.
    let mut x = World::new();
    let data = x.session(vec![]);
    let child = x.session(vec![]);
    let parent_child = x.session(vec![]);
    let parent_data = x.session(vec![]);
    x.write(create("/p", b""));
    x.write(create("/p/c", b""));
    x.watch(data, "/p/c", Data);
    x.watch(child, "/p/c", Child);
    x.watch(parent_child, "/p", Child);
    x.watch(parent_data, "/p", Data);
    assert_eq!(
        x.write(delete("/p/c", None)),
        vec![
            ev(data, Deleted, "/p/c"),
            ev(child, Deleted, "/p/c"),
            ev(parent_child, Children, "/p")
        ]
    );
    assert_eq!(x.w.count(parent_data), 1);
    assert_eq!(x.w.count(data) + x.w.count(child) + x.w.count(parent_child), 0);
}

#[test]
fn events_carry_the_entrys_zxid_and_actual_path() {
    // Proves an event's zxid is the entry's and a sequential create's event
    // names the created path, not the requested prefix.
    let mut x = World::new();
    let s = x.session(vec![]);
    x.write(create("/q", b""));
    x.watch(s, "/q", Recursive);
    let zxid = x.h.peek_zxid();
    let applied =
        x.h.request(x.writer, create_mode("/q/n-", b"", CreateMode::PersistentSequential));
    let sm = &x.h.sm;
    let events: Vec<_> = applied
        .triggers
        .iter()
        .flat_map(|t| x.w.fire(t, |s| sm.session(s).map(|s| &*s.auth)))
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, s);
    assert_eq!(events[0].1.path, "/q/n-0000000000");
    assert_eq!(events[0].1.zxid, zxid);
}

// ---------------------------------------------------------------- ACL filtering

#[test]
fn events_need_read_and_filtered_one_shots_are_consumed() {
    // Proves a session without READ on the node gets no event, its one-shot
    // watch is consumed anyway, its persistent watch is not; and a children
    // change is filtered by the parent's ACL, not the child's.
    let mut x = World::new();
    let yes = x.session(vec![Id::x509("CN=yes")]);
    let no = x.session(vec![Id::x509("CN=no")]);
    let secret =
        vec![Acl::new(Perms::ALL, Id::x509("CN=yes")), Acl::new(Perms::ALL, Id::x509("CN=writer"))];
    x.write(create_acl("/s", secret.clone()));
    for s in [yes, no] {
        x.watch(s, "/s", Data);
    }
    x.watch(no, "/s", Persistent);
    assert_eq!(x.write(set("/s", b"1", None)), vec![ev(yes, Changed, "/s")]);
    assert_eq!(x.w.count(no), 1, "the filtered data watch is consumed");
    x.write(set_acl("/s", Acl::open(), None));
    assert_eq!(x.write(set("/s", b"2", None)), vec![ev(no, Changed, "/s")], "persistent stayed");

    // A READ-only-by-others parent: the child's ACL does not matter for NCC.
    x.write(create("/open", b""));
    x.watch(no, "/open", Child);
    x.watch(no, "/open", Recursive);
    assert_eq!(x.write(create_acl("/open/hidden", secret)), vec![ev(no, Children, "/open")]);
    assert_eq!(x.write(set("/open/hidden", b"1", None)), vec![]);
    // READ alone is enough; other perms without READ are not.
    x.write(create_acl(
        "/r",
        vec![Acl::new(Perms::READ, Id::x509("CN=no")), Acl::new(Perms::ALL, Id::x509("CN=writer"))],
    ));
    x.write(create_acl(
        "/w",
        vec![
            Acl::new(Perms(Perms::ALL.0 & !Perms::READ.0), Id::x509("CN=no")),
            Acl::new(Perms::ALL, Id::x509("CN=writer")),
        ],
    ));
    x.watch(no, "/r", Data);
    x.watch(no, "/w", Data);
    assert_eq!(x.write(set("/r", b"1", None)), vec![ev(no, Changed, "/r")]);
    assert_eq!(x.write(set("/w", b"1", None)), vec![]);
}

// ---------------------------------------------------------------- removal

#[test]
fn remove_each_kind_and_no_watcher() {
    // Proves remove() takes away exactly the named kind (Any: all), answers
    // NoWatcher when that kind is not held, and removed watches do not fire;
    // Any may not be added.
    let mut x = World::new();
    let s = x.session(vec![]);
    let t = x.session(vec![]);
    x.write(create("/a", b""));
    for kind in [Data, Child, Persistent, Recursive] {
        x.watch(s, "/a", kind);
    }
    assert_eq!(x.w.count(s), 4);
    x.w.remove(s, "/a", Data).unwrap();
    let e = x.w.remove(s, "/a", Data).unwrap_err();
    assert!(matches!(&e, ApiError::NoWatcher { path, .. } if path == "/a"), "{e:?}");
    assert_eq!(e.code(), ErrorCode::NoWatcher);
    assert_eq!(x.w.count(s), 3);
    x.w.remove(s, "/a", Persistent).unwrap();
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(s, Changed, "/a")], "recursive remains");
    x.w.remove(s, "/a", Child).unwrap();
    assert_eq!(x.w.remove(s, "/a", Child).unwrap_err().code(), ErrorCode::NoWatcher);
    x.w.remove(s, "/a", Any).unwrap();
    assert_eq!(x.w.count(s), 0);
    assert_eq!(x.w.remove(s, "/a", Any).unwrap_err().code(), ErrorCode::NoWatcher);
    assert_eq!(x.w.remove(s, "/a", Recursive).unwrap_err().code(), ErrorCode::NoWatcher);
    assert_eq!(x.write(create("/a/b", b"")), vec![]);
    assert_eq!(x.write(set("/a", b"2", None)), vec![]);
    // Not held by this session, or not on this path.
    x.watch(t, "/a", Data);
    assert_eq!(x.w.remove(s, "/a", Data).unwrap_err().code(), ErrorCode::NoWatcher);
    assert_eq!(x.w.remove(t, "/b", Data).unwrap_err().code(), ErrorCode::NoWatcher);
    // Any with several kinds removes them all at once.
    x.watch(s, "/a", Data);
    x.watch(s, "/a", Child);
    x.w.remove(s, "/a", Any).unwrap();
    assert_eq!(x.w.count(s), 0);
    assert_eq!(x.write(set("/a", b"3", None)), vec![ev(t, Changed, "/a")]);
    assert_eq!(x.w.add(s, "/a", Any).unwrap_err().code(), ErrorCode::NoWatcher);
}

#[test]
fn remove_session_forgets_all_its_watches_only() {
    // Proves remove_session drops every watch of one session (recursive ones
    // included) and leaves other sessions' watches, recursive ones too, firing.
    let mut x = World::new();
    let s = x.session(vec![]);
    let t = x.session(vec![]);
    x.write(create("/a", b""));
    x.watch(s, "/a", Data);
    x.watch(s, "/a", Recursive);
    x.watch(s, "/", Recursive);
    x.watch(s, "/b", Persistent);
    x.watch(t, "/", Recursive);
    x.w.remove_session(s);
    assert_eq!(x.w.count(s), 0);
    assert_eq!(x.write(set("/a", b"1", None)), vec![ev(t, Changed, "/a")]);
    assert_eq!(x.write(create("/a/b", b"")), vec![ev(t, Created, "/a/b")]);
    assert_eq!(x.write(create("/b", b"")), vec![ev(t, Created, "/b")]);
    x.w.remove_session(t);
    assert_eq!(x.write(create("/a/c", b"")), vec![]);
    // A removed session may set watches again.
    x.watch(s, "/a", Recursive);
    assert_eq!(x.write(create("/a/d", b"")), vec![ev(s, Created, "/a/d")]);
}

#[test]
fn closing_a_session_fires_others_watches_not_its_own() {
    // Proves a session's ephemerals going on close fire other sessions'
    // watches, while the closed session itself (no longer known to the state
    // machine) is told nothing, although its watch is on an open node.
    let mut x = World::new();
    let owner = x.session(vec![]);
    let watcher = x.session(vec![]);
    x.write(create("/l", b""));
    x.write_as(owner, create_mode("/l/e", b"", CreateMode::Ephemeral));
    x.watch(watcher, "/l", Child);
    x.watch(watcher, "/l/e", Data);
    x.watch(owner, "/l", Persistent);
    let fired = x.apply(Command::CloseSession { session: owner });
    assert_eq!(fired, vec![ev(watcher, Deleted, "/l/e"), ev(watcher, Children, "/l")]);
}

// ---------------------------------------------------------------- limit

#[test]
fn per_session_limit_is_too_many_watches() {
    // Proves with_limit(n) refuses a session's watch on an (n+1)th path with
    // TooManyWatches (code Throttled), re-adding a held watch is fine, other
    // sessions are unaffected, and removing or firing frees room.
    let mut x = World::with_table(WatchTable::with_limit(2));
    let s = x.session(vec![]);
    let t = x.session(vec![]);
    x.write(create("/a", b""));
    x.watch(s, "/a", Data);
    x.watch(s, "/b", Persistent);
    let e = x.w.add(s, "/c", Child).unwrap_err();
    assert!(matches!(e, ApiError::TooManyWatches { .. }), "{e:?}");
    assert_eq!(e.code(), ErrorCode::Throttled);
    assert_eq!(x.w.add(s, "/c", Recursive).unwrap_err().code(), ErrorCode::Throttled);
    x.watch(s, "/a", Data);
    assert_eq!(x.w.count(s), 2);
    x.watch(t, "/c", Data);
    x.watch(t, "/d", Data);
    x.w.remove(s, "/b", Persistent).unwrap();
    x.watch(s, "/c", Child);
    assert_eq!(x.w.add(s, "/d", Data).unwrap_err().code(), ErrorCode::Throttled);
    x.write(set("/a", b"1", None));
    x.watch(s, "/d", Data);
    // The refused watches were never set.
    assert_eq!(x.write(create("/c", b"")), vec![ev(t, Created, "/c")]);
}

#[test]
fn per_session_limit_bounds_count() {
    // Proves no session can hold more watches than the limit as count()
    // measures them, by adding further kinds on already-watched paths.
    let mut w = WatchTable::with_limit(2);
    let s = SessionId(1);
    let mut refused = 0;
    for path in ["/a", "/b"] {
        for kind in [Data, Child, Persistent, Recursive] {
            if w.add(s, path, kind).is_err() {
                refused += 1;
            }
        }
    }
    assert!(w.count(s) <= 2, "session holds {} watches with a limit of 2", w.count(s));
    assert_eq!(refused, 6);
}

// ---------------------------------------------------------------- rearm

#[test]
fn rearm_fires_what_changed_and_sets_the_rest() {
    // Proves setWatches' rules: a data watch on a node changed since
    // last_zxid fires NodeDataChanged (deleted: NodeDeleted) and is not set,
    // an unchanged one is set and fires later; an exist watch on a now
    // existing node fires NodeCreated, on a missing one is set; a child watch
    // fires NodeChildrenChanged when pzxid moved (NodeDeleted if gone), else
    // is set; persistent and recursive watches are set.
    let mut x = World::new();
    let s = x.session(vec![]);
    for p in ["/d", "/gone", "/same", "/kids", "/quiet", "/p", "/r"] {
        x.write(create(p, b""));
    }
    let last_zxid = x.h.sm.last_applied();
    x.write(set("/d", b"1", None));
    x.write(delete("/gone", None));
    x.write(create("/kids/k", b""));
    x.write(create("/new", b""));
    let rearm = Rearm {
        last_zxid,
        data: vec!["/d".into(), "/gone".into(), "/same".into()],
        exist: vec!["/new".into(), "/absent".into()],
        child: vec!["/kids".into(), "/quiet".into(), "/gone".into()],
        persistent: vec!["/p".into()],
        recursive: vec!["/r".into()],
    };
    let events = x.w.rearm(s, &rearm, &x.h.sm).unwrap();
    let mut got: Vec<(EventType, String)> = events.into_iter().map(|e| (e.event, e.path)).collect();
    got.sort();
    let mut expected = vec![
        (Changed, "/d".to_string()),
        (Deleted, "/gone".into()),
        (Created, "/new".into()),
        (Children, "/kids".into()),
        (Deleted, "/gone".into()),
    ];
    expected.sort();
    assert_eq!(got, expected);
    // Set: data /same, exist /absent, child /quiet, persistent /p, recursive /r.
    assert_eq!(x.w.count(s), 5);
    // Fired ones are not set.
    assert_eq!(x.write(set("/d", b"2", None)), vec![]);
    assert_eq!(x.write(create("/gone", b"")), vec![]);
    assert_eq!(x.write(set("/new", b"1", None)), vec![]);
    assert_eq!(x.write(create("/kids/k2", b"")), vec![]);
    // Set ones fire later.
    assert_eq!(x.write(set("/same", b"1", None)), vec![ev(s, Changed, "/same")]);
    assert_eq!(x.write(create("/absent", b"")), vec![ev(s, Created, "/absent")]);
    assert_eq!(x.write(create("/quiet/k", b"")), vec![ev(s, Children, "/quiet")]);
    assert_eq!(x.write(create("/p/k", b"")), vec![ev(s, Children, "/p")]);
    assert_eq!(x.write(create("/r/k", b"")), vec![ev(s, Created, "/r/k")]);
    assert_eq!(x.write(create("/p/k2", b"")), vec![ev(s, Children, "/p")]);
    assert_eq!(x.w.count(s), 2);
}

#[test]
fn rearm_with_nothing_changed_fires_nothing() {
    // Proves re-arming at the current zxid fires no event and sets every
    // watch (an exist watch on an existing node excepted: it fires NodeCreated).
    let mut x = World::new();
    let s = x.session(vec![]);
    x.write(create("/a", b""));
    let rearm = Rearm {
        last_zxid: x.h.sm.last_applied(),
        data: vec!["/a".into()],
        exist: vec!["/b".into()],
        child: vec!["/a".into()],
        persistent: vec![],
        recursive: vec![],
    };
    assert_eq!(x.w.rearm(s, &rearm, &x.h.sm).unwrap(), vec![]);
    assert_eq!(x.w.count(s), 3);
    assert_eq!(x.write(create("/a/c", b"")), vec![ev(s, Children, "/a")]);
    assert_eq!(x.write(create("/b", b"")), vec![ev(s, Created, "/b")]);
    assert_eq!(x.write(delete("/a/c", None)), vec![]);
    assert_eq!(x.write(set("/a", b"", None)), vec![ev(s, Changed, "/a")]);
}

// ---------------------------------------------------------------- multi

#[test]
fn multi_fires_in_op_order_and_a_failed_one_fires_nothing() {
    // Proves a successful multi's events come in op order and a failed
    // multi's ops, undone, fire nothing (and consume no one-shot watch).
    let mut x = World::new();
    let s = x.session(vec![]);
    x.watch(s, "/", Recursive);
    x.watch(s, "/m", Data);
    let applied = x.h.request(
        x.writer,
        Op::Multi(vec![create("/m", b""), create("/m/a", b""), delete("/nope", None)]),
    );
    assert!(matches!(
        applied.response,
        warren::Response::Reply(Err(ApiError::Multi { index: 2, .. }))
    ));
    assert_eq!(fire_all(&mut x.w, &x.h.sm, &applied.triggers), vec![]);
    assert_eq!(x.w.count(s), 2);
    let fired = x.write(Op::Multi(vec![
        create("/m", b""),
        create("/m/a", b""),
        set("/m/a", b"1", None),
        delete("/m/a", None),
    ]));
    assert_eq!(
        fired,
        vec![
            ev(s, Created, "/m"),
            ev(s, Created, "/m/a"),
            ev(s, Changed, "/m/a"),
            ev(s, Deleted, "/m/a"),
        ]
    );
    assert_eq!(x.w.count(s), 1, "the data watch on /m fired at its creation");
}
