//! ZooKeeper's rules for the replicated state machine, table by table: every
//! error code and its precedence, Stat bookkeeping, sequential names,
//! ephemerals, containers, TTL nodes, ACLs, limits, multi, paging and the
//! digest. Expectations come from ZooKeeper's semantics, not from the code.

mod common;

use common::*;
use warren::{Command, Entry, Limits, Response, StateMachine};
use warren_client::{
    Acl, AclError, ApiError, BadArgument, CreateMode, ErrorCode, EventType, Id, Op, OpResult,
    PathError, Perms, PermsName, SessionId, TTL_MS_MAX, Zxid,
};

const MIB: usize = 1024 * 1024;
const CONTAINER: u64 = 1 << 63;
const TTL_MARK: u64 = 0xFF << 56;

fn bad(arg: BadArgument) -> ApiError {
    ApiError::BadArguments(arg)
}

fn invalid_path(path: &str, why: PathError) -> ApiError {
    bad(BadArgument::InvalidPath { path: path.into(), why })
}

fn invalid_acl(path: &str, why: AclError) -> ApiError {
    ApiError::InvalidAcl { path: path.into(), why }
}

fn no_node(path: &str) -> ApiError {
    ApiError::NoNode { path: path.into() }
}

fn acl(perms: Perms, id: Id) -> Acl {
    Acl::new(perms, id)
}

/// Every permission but `p`.
fn all_but(p: Perms) -> Perms {
    Perms(Perms::ALL.0 & !p.0)
}

fn x509(s: &str) -> Id {
    Id::x509(s)
}

fn auth_id() -> Id {
    Id::new("auth", "")
}

fn needed(e: &ApiError) -> Perms {
    match e {
        ApiError::NoAuth { needed: PermsName(p), .. } => *p,
        other => panic!("not NoAuth: {other:?}"),
    }
}

// ---------------------------------------------------------------- create

#[test]
fn create_data_size_is_checked_before_everything_else() {
    // Proves data over 1 MiB is refused as DataTooLarge although TTL, path,
    // ACL and parent are all bad too, and that exactly 1 MiB is accepted.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let op = Op::Create {
        path: "no-slash/x".into(),
        data: vec![7; MIB + 1],
        acl: vec![],
        mode: CreateMode::PersistentWithTtl { ttl_ms: 0 },
    };
    h.fails(
        s,
        op,
        bad(BadArgument::DataTooLarge { path: "no-slash/x".into(), len: MIB + 1, max: MIB }),
    );
    h.created(s, create("/exact", &vec![1; MIB]));
    assert_eq!(h.stat("/exact").data_length as usize, MIB);
}

#[test]
fn create_ttl_out_of_range_comes_before_the_path() {
    // Proves TTL 0 and 2^40 are TtlOutOfRange (even with a bad path and ACL),
    // and TTL 1 and 2^40-1 are accepted with ZooKeeper's owner encoding.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    for ttl_ms in [0, TTL_MS_MAX + 1, u64::MAX] {
        for mode in [
            CreateMode::PersistentWithTtl { ttl_ms },
            CreateMode::PersistentSequentialWithTtl { ttl_ms },
        ] {
            let op = Op::Create { path: "bad".into(), data: vec![], acl: vec![], mode };
            h.fails(
                s,
                op,
                bad(BadArgument::TtlOutOfRange { path: "bad".into(), ttl_ms, max: TTL_MS_MAX }),
            );
        }
    }
    assert_eq!(TTL_MS_MAX, (1 << 40) - 1);
    for ttl_ms in [1, TTL_MS_MAX] {
        let path = format!("/ttl-{ttl_ms}");
        h.created(s, create_mode(&path, b"", CreateMode::PersistentWithTtl { ttl_ms }));
        assert_eq!(h.stat(&path).ephemeral_owner, TTL_MARK | ttl_ms);
    }
}

#[test]
fn create_checks_the_path_in_zookeepers_order() {
    // Proves a create refuses a path with no '/' or with a NUL first, then
    // checks the ACL, then finds the parent, and only then the rest of the
    // path's form (ZooKeeper's PrepRequestProcessor order): a malformed
    // path under a missing parent is NoNode, under a present one
    // InvalidPath with ZooKeeper's reason.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    // Before the ACL (empty here, so invalid too).
    for (path, why) in [
        ("", PathError::Empty),
        ("a", PathError::NotAbsolute),
        ("/a\0", PathError::BadCharacter { at: 2 }),
    ] {
        h.fails(s, create_acl(path, vec![]), invalid_path(path, why));
    }
    // The ACL before the rest of the path.
    h.fails(s, create_acl("/a/", vec![]), invalid_acl("/a/", AclError::Empty));
    h.created(s, create("/a", b""));
    let cases: &[(&str, PathError)] = &[
        ("/a/", PathError::TrailingSlash),
        ("/a/.", PathError::RelativeSegment { at: 3 }),
        ("/a/..", PathError::RelativeSegment { at: 3 }),
        ("/a/\u{1}", PathError::BadCharacter { at: 3 }),
        ("/a/x\u{9f}", PathError::BadCharacter { at: 4 }),
    ];
    for (path, why) in cases {
        h.fails(s, create(path, b""), invalid_path(path, why.clone()));
    }
    // Malformed under a parent that is not there: NoNode, naming it.
    for (path, parent) in [("/b//c", "/b/"), ("/a/../b", "/a/.."), ("a/b", "a")] {
        h.fails(s, create(path, b""), ApiError::NoNode { path: parent.into() });
    }
    // "//a": its parent is "/" (present), so its form decides.
    h.fails(s, create("//a", b""), invalid_path("//a", PathError::EmptySegment { at: 1 }));
}

#[test]
fn sequential_create_validates_path_plus_one() {
    // Proves a sequential create validates path+"1": "/a/" is valid and yields
    // "/a/0000000000", while "a" is refused naming the given path.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/a", b""));
    assert_eq!(
        h.created(s, create_mode("/a/", b"", CreateMode::PersistentSequential)),
        "/a/0000000000"
    );
    assert_eq!(
        h.created(s, create_mode("/a/", b"", CreateMode::EphemeralSequential)),
        "/a/0000000001"
    );
    // "/a//": its parent "/a/" is not a node, so NoNode (ZooKeeper looks
    // the parent up before checking the path's form).
    h.fails(
        s,
        create_mode("/a//", b"", CreateMode::PersistentSequential),
        ApiError::NoNode { path: "/a/".into() },
    );
    h.fails(
        s,
        create_mode("a", b"", CreateMode::EphemeralSequential),
        invalid_path("a", PathError::NotAbsolute),
    );
    // Non-sequential, the same "/a/" is refused.
    h.fails(s, create("/a/", b""), invalid_path("/a/", PathError::TrailingSlash));
}

#[test]
fn create_invalid_acl_comes_before_the_parent_lookup() {
    // Proves each malformed ACL is InvalidAcl with its reason, both under an
    // existing parent and under a missing one (fix-up precedes the lookup).
    let mut h = Harness::new();
    let s = h.open(vec![Id::anyone()]);
    let all = Perms::ALL;
    let cases: Vec<(Vec<Acl>, AclError)> = vec![
        (vec![], AclError::Empty),
        (
            vec![acl(all, Id::new("ldap", "10.0.0.1"))],
            AclError::UnknownScheme { scheme: "ldap".into() },
        ),
        (
            vec![Acl::open()[0].clone(), acl(all, Id::new("ldap", "10.0.0.1"))],
            AclError::UnknownScheme { scheme: "ldap".into() },
        ),
        (
            vec![acl(all, Id::new("ip", "10.0.0.256"))],
            AclError::BadId { scheme: "ip".into(), id: "10.0.0.256".into() },
        ),
        (
            vec![acl(all, Id::new("ip", "10.0.0.0/33"))],
            AclError::BadId { scheme: "ip".into(), id: "10.0.0.0/33".into() },
        ),
        (
            vec![acl(all, Id::new("world", "someone"))],
            AclError::BadId { scheme: "world".into(), id: "someone".into() },
        ),
        (
            vec![acl(all, Id::digest("nocolon"))],
            AclError::BadId { scheme: "digest".into(), id: "nocolon".into() },
        ),
        (
            vec![acl(all, Id::digest("a:b:c"))],
            AclError::BadId { scheme: "digest".into(), id: "a:b:c".into() },
        ),
        (vec![acl(all, x509(""))], AclError::BadId { scheme: "x509".into(), id: "".into() }),
        (vec![acl(Perms(32), Id::anyone())], AclError::BadPerms { bits: 32 }),
        (vec![acl(Perms(31 | 64), Id::anyone())], AclError::BadPerms { bits: 95 }),
        (Acl::creator_all(), AclError::NoIdentity),
    ];
    h.created(s, create("/p", b""));
    for (list, why) in cases {
        for path in ["/p/x", "/missing/x"] {
            h.fails(s, create_acl(path, list.clone()), invalid_acl(path, why.clone()));
        }
    }
    // The well-formed counterparts are accepted.
    for (i, list) in [
        vec![acl(all, Id::digest("user:hash"))],
        vec![acl(Perms::READ, x509("CN=a"))],
        vec![acl(Perms::READ, Id::new("ip", "10.0.0.0/8"))],
        Acl::read_only(),
    ]
    .into_iter()
    .enumerate()
    {
        h.created(s, create_acl(&format!("/p/ok{i}"), list));
    }
}

#[test]
fn create_under_a_missing_parent_is_no_node() {
    // Proves a create below a missing parent is NoNode in every mode.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    for mode in [
        CreateMode::Persistent,
        CreateMode::PersistentSequential,
        CreateMode::Ephemeral,
        CreateMode::EphemeralSequential,
        CreateMode::Container,
        CreateMode::PersistentWithTtl { ttl_ms: 10 },
    ] {
        h.fails_code(s, create_mode("/nope/x", b"", mode), ErrorCode::NoNode);
    }
}

#[test]
fn create_no_auth_on_parent_beats_node_exists_and_ephemeral_parent() {
    // Proves CREATE on the parent is checked before existence and before the
    // ephemeral-parent rule: both would apply, NoAuth is answered.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b""));
    h.created(s, create("/p/c", b""));
    h.ok(s, set_acl("/p", vec![acl(Perms::ALL, x509("CN=other"))], None));
    let e = h.fails_code(s, create("/p/c", b""), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::CREATE);
    let e = h.fails_code(s, create("/p/new", b""), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::CREATE);

    // An ephemeral parent whose ACL lacks CREATE.
    let ro = Op::Create {
        path: "/e".into(),
        data: vec![],
        acl: vec![acl(Perms::READ | Perms::WRITE | Perms::DELETE | Perms::ADMIN, Id::anyone())],
        mode: CreateMode::Ephemeral,
    };
    h.created(s, ro);
    let e = h.fails_code(s, create("/e/x", b""), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::CREATE);
    // With CREATE on the parent the create passes: only CREATE is needed.
    h.created(s, create_acl("/q", vec![acl(Perms::CREATE, Id::anyone())]));
    h.created(s, create("/q/x", b""));
}

#[test]
fn create_existing_node_or_root_is_node_exists() {
    // Proves creating an existing path, or "/", is NodeExists in every
    // non-sequential mode, and the parent's cversion does not move.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/a", b""));
    let before = h.stat("/");
    for mode in [
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::Container,
        CreateMode::PersistentWithTtl { ttl_ms: 5 },
    ] {
        h.fails(s, create_mode("/a", b"", mode), ApiError::NodeExists { path: "/a".into() });
        h.fails(s, create_mode("/", b"", mode), ApiError::NodeExists { path: "/".into() });
    }
    assert_eq!(h.stat("/"), before);
}

#[test]
fn create_under_an_ephemeral_is_no_children_for_ephemerals() {
    // Proves no mode may create below an ephemeral node, and that the refusal
    // leaves the ephemeral's cversion (the sequence counter) unchanged.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create_mode("/e", b"", CreateMode::Ephemeral));
    for mode in [
        CreateMode::Persistent,
        CreateMode::PersistentSequential,
        CreateMode::Ephemeral,
        CreateMode::EphemeralSequential,
        CreateMode::Container,
        CreateMode::PersistentWithTtl { ttl_ms: 10 },
        CreateMode::PersistentSequentialWithTtl { ttl_ms: 10 },
    ] {
        h.fails_code(s, create_mode("/e/x", b"", mode), ErrorCode::NoChildrenForEphemerals);
    }
    let e = h.fails_code(s, create("/e/x", b""), ErrorCode::NoChildrenForEphemerals);
    assert_eq!(e, ApiError::NoChildrenForEphemerals { path: "/e/x".into() });
    assert_eq!(h.stat("/e").cversion, 0);
    // Also under an ephemeral-sequential node.
    let seq = h.created(s, create_mode("/es-", b"", CreateMode::EphemeralSequential));
    h.fails_code(s, create(&format!("{seq}/x"), b""), ErrorCode::NoChildrenForEphemerals);
}

// ---------------------------------------------------------------- ACL fix-up

#[test]
fn auth_scheme_expands_to_the_sessions_identities() {
    // Proves an "auth" entry becomes one entry per x509/digest identity of
    // the session, in its order, with the entry's perms; world is no identity.
    let mut h = Harness::new();
    let ids = vec![x509("CN=a"), Id::anyone(), Id::digest("u:hash")];
    let s = h.open(ids.clone());
    h.created(s, create_acl("/n", Acl::creator_all()));
    let (shown, _) = h.sm.get_acl("/n", &ids).unwrap();
    assert_eq!(shown, vec![acl(Perms::ALL, x509("CN=a")), acl(Perms::ALL, Id::digest("u:hash"))]);
    // Other sessions have no access at all through it.
    assert!(matches!(h.sm.get_data("/n", &[]), Err(ApiError::NoAuth { .. })));

    // A session with only world:anyone (or nothing) has no identity.
    let w = h.open(vec![Id::anyone()]);
    h.fails(
        w,
        create_acl("/w", vec![acl(Perms::READ, auth_id())]),
        invalid_acl("/w", AclError::NoIdentity),
    );
}

#[test]
fn duplicate_acl_entries_are_removed() {
    // Proves exact duplicates in a requested ACL (also ones produced by "auth"
    // expansion) are dropped, keeping first occurrences in order, while the
    // same id with other perms is kept.
    let mut h = Harness::new();
    let me = vec![x509("CN=a")];
    let s = h.open(me.clone());
    let requested = vec![
        Acl::open()[0].clone(),
        Acl::open()[0].clone(),
        acl(Perms::ALL, x509("CN=a")),
        acl(Perms::ALL, auth_id()),
        acl(Perms::READ, x509("CN=a")),
        acl(Perms::READ, x509("CN=a")),
    ];
    h.created(s, create_acl("/d", requested.clone()));
    let expected =
        vec![Acl::open()[0].clone(), acl(Perms::ALL, x509("CN=a")), acl(Perms::READ, x509("CN=a"))];
    assert_eq!(h.sm.get_acl("/d", &me).unwrap().0, expected);
    // setACL fixes up the same way.
    h.ok(s, set_acl("/d", requested, None));
    assert_eq!(h.sm.get_acl("/d", &me).unwrap().0, expected);
}

// ---------------------------------------------------------------- delete

#[test]
fn delete_errors_in_zookeepers_order() {
    // Proves delete's checks and their order: root → BadArguments(Root);
    // invalid path; missing parent → NoNode; no DELETE on the parent → NoAuth
    // even for a missing node; missing node → NoNode; BadVersion before
    // NotEmpty; version None matches any.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.fails(s, delete("/", None), bad(BadArgument::Root));
    h.fails(s, delete("/", Some(0)), bad(BadArgument::Root));
    h.fails(s, delete("/a/", None), invalid_path("/a/", PathError::TrailingSlash));
    h.fails_code(s, delete("/nope/x", None), ErrorCode::NoNode);

    h.created(s, create_acl("/p", vec![acl(all_but(Perms::DELETE), Id::anyone())]));
    h.created(s, create("/p/c", b""));
    let e = h.fails_code(s, delete("/p/c", None), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::DELETE);
    let e = h.fails_code(s, delete("/p/missing", None), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::DELETE);

    h.created(s, create("/q", b""));
    h.fails(s, delete("/q/missing", None), no_node("/q/missing"));
    h.created(s, create("/q/n", b""));
    h.created(s, create("/q/n/kid", b""));
    h.ok(s, set("/q/n", b"v1", None));
    h.fails(
        s,
        delete("/q/n", Some(0)),
        ApiError::BadVersion { path: "/q/n".into(), expected: 0, actual: 1 },
    );
    h.fails(s, delete("/q/n", Some(1)), ApiError::NotEmpty { path: "/q/n".into() });
    h.fails(s, delete("/q/n", None), ApiError::NotEmpty { path: "/q/n".into() });
    h.ok(s, delete("/q/n/kid", Some(0)));
    h.ok(s, delete("/q/n", None));
    assert_eq!(h.sm.exists("/q/n"), None);
}

#[test]
fn delete_needs_delete_on_the_parent_only() {
    // Proves only DELETE on the parent matters: a node whose own ACL grants
    // nothing to the caller is deletable, and DELETE alone suffices.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let o = h.open(vec![x509("CN=o")]);
    h.created(
        o,
        create_acl("/p", vec![acl(Perms::DELETE, Id::anyone()), acl(Perms::ALL, x509("CN=o"))]),
    );
    h.created(o, create_acl("/p/c", vec![acl(Perms::ALL, x509("CN=o"))]));
    h.ok(s, delete("/p/c", None));
}

// ---------------------------------------------------------------- setData, setACL, check

#[test]
fn set_data_errors_in_zookeepers_order() {
    // Proves setData: DataTooLarge first (even for a missing node), then
    // NoNode, NoAuth (needs WRITE) before BadVersion; None matches any.
    let mut h = Harness::with_limits(Limits { data_bytes_max: 4, ..Limits::default() });
    let s = h.open(vec![]);
    h.fails(
        s,
        set("/missing", b"12345", None),
        bad(BadArgument::DataTooLarge { path: "/missing".into(), len: 5, max: 4 }),
    );
    h.fails(s, set("/missing", b"1", None), no_node("/missing"));
    h.fails(s, set("bad", b"1", None), invalid_path("bad", PathError::NotAbsolute));
    h.created(s, create_acl("/ro", vec![acl(all_but(Perms::WRITE), Id::anyone())]));
    let e = h.fails_code(s, set("/ro", b"1", Some(7)), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::WRITE);
    h.created(s, create_acl("/w", vec![acl(Perms::WRITE, Id::anyone())]));
    h.fails(
        s,
        set("/w", b"1", Some(1)),
        ApiError::BadVersion { path: "/w".into(), expected: 1, actual: 0 },
    );
    h.ok(s, set("/w", b"1234", Some(0)));
    h.ok(s, set("/w", b"", None));
    h.ok(s, set("/w", b"x", Some(2)));
    assert_eq!(h.stat("/w").version, 3);
}

#[test]
fn set_acl_needs_admin_and_is_versioned_by_aversion() {
    // Proves setACL: InvalidAcl before NoNode (fix-up first), NoAuth without
    // ADMIN (before BadVersion), the version compared is aversion not version.
    let mut h = Harness::new();
    let s = h.open(vec![x509("CN=s")]);
    h.fails(s, set_acl("/missing", vec![], None), invalid_acl("/missing", AclError::Empty));
    h.fails(s, set_acl("/missing", Acl::open(), None), no_node("/missing"));
    h.created(s, create_acl("/n", vec![acl(all_but(Perms::ADMIN), Id::anyone())]));
    let e = h.fails_code(s, set_acl("/n", Acl::open(), Some(9)), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::ADMIN);

    h.created(s, create_acl("/a", vec![acl(Perms::ADMIN, Id::anyone())]));
    h.created(s, create("/v", b""));
    h.ok(s, set("/v", b"1", None));
    h.ok(s, set("/v", b"2", None));
    assert_eq!((h.stat("/v").version, h.stat("/v").aversion), (2, 0));
    h.fails(
        s,
        set_acl("/v", Acl::open(), Some(2)),
        ApiError::BadVersion { path: "/v".into(), expected: 2, actual: 0 },
    );
    h.ok(s, set_acl("/v", Acl::open(), Some(0)));
    h.ok(s, set_acl("/v", Acl::creator_all(), None));
    assert_eq!(h.stat("/v").aversion, 2);
    assert_eq!(h.sm.get_acl("/v", &[x509("CN=s")]).unwrap().0, vec![acl(Perms::ALL, x509("CN=s"))]);
    // ADMIN alone is enough.
    h.ok(s, set_acl("/a", Acl::read_only(), Some(0)));
}

#[test]
fn check_needs_read_and_changes_nothing() {
    // Proves check: NoNode, NoAuth without READ, BadVersion on version, None
    // matches any, and a passing check leaves digest, Stat and triggers alone.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.fails(s, check("/missing", None), no_node("/missing"));
    h.fails(s, check("x", None), invalid_path("x", PathError::NotAbsolute));
    h.created(s, create_acl("/n", vec![acl(all_but(Perms::READ), Id::anyone())]));
    let e = h.fails_code(s, check("/n", Some(0)), ErrorCode::NoAuth);
    assert_eq!(needed(&e), Perms::READ);
    h.created(s, create("/r", b""));
    h.ok(s, set("/r", b"1", None));
    h.fails(
        s,
        check("/r", Some(0)),
        ApiError::BadVersion { path: "/r".into(), expected: 0, actual: 1 },
    );
    let (digest, stat) = (h.sm.digest(), h.stat("/r"));
    for version in [Some(1), None] {
        let applied = h.request(s, check("/r", version));
        assert_eq!(applied.response, Response::Reply(Ok(OpResult::Check)));
        assert!(applied.triggers.is_empty());
    }
    assert_eq!((h.sm.digest(), h.stat("/r")), (digest, stat));
}

// ---------------------------------------------------------------- Stat

#[test]
fn create_sets_the_stat_and_updates_the_parent() {
    // Proves a create stamps czxid=mzxid=pzxid=zxid and ctime=mtime=entry
    // time, and moves the parent's cversion+1, pzxid, numChildren+1 only.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b"pp"));
    h.advance(10);
    h.ok(s, set("/p", b"ppp", None));
    let parent = h.stat("/p");
    h.advance(1000);
    let zxid = h.peek_zxid();
    let result = h.ok(s, create("/p/c", b"hello"));
    let expected = warren_client::Stat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        ctime: h.now,
        mtime: h.now,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 0,
    };
    assert_eq!(result, OpResult::Create { path: "/p/c".into(), stat: expected });
    assert_eq!(h.stat("/p/c"), expected);
    let after = h.stat("/p");
    assert_eq!(
        after,
        warren_client::Stat {
            cversion: parent.cversion + 1,
            pzxid: zxid,
            num_children: parent.num_children + 1,
            ..parent
        }
    );
}

#[test]
fn delete_updates_pzxid_and_num_children_but_not_cversion() {
    // Proves a delete moves the parent's pzxid and numChildren-1 and nothing
    // else: cversion counts creations only, as in ZooKeeper.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b""));
    h.created(s, create("/p/a", b""));
    h.created(s, create("/p/b", b""));
    let before = h.stat("/p");
    h.advance(5);
    let zxid = h.peek_zxid();
    h.ok(s, delete("/p/a", None));
    assert_eq!(
        h.stat("/p"),
        warren_client::Stat { pzxid: zxid, num_children: before.num_children - 1, ..before }
    );
    assert_eq!(h.stat("/p").cversion, 2);
}

#[test]
fn set_data_and_set_acl_change_only_their_fields() {
    // Proves setData moves version+1, mzxid, mtime, dataLength only, and
    // setACL moves aversion+1 only (not mzxid or mtime).
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/n", b"abc"));
    h.created(s, create("/n/kid", b""));
    let before = h.stat("/n");
    h.advance(77);
    let zxid = h.peek_zxid();
    let result = h.ok(s, set("/n", b"abcdefg", Some(0)));
    let expected =
        warren_client::Stat { version: 1, mzxid: zxid, mtime: h.now, data_length: 7, ..before };
    assert_eq!(result, OpResult::SetData { stat: expected });
    assert_eq!(h.stat("/n"), expected);
    assert_eq!(h.sm.get_data("/n", &[]).unwrap().0, b"abcdefg");

    h.advance(3);
    let result = h.ok(s, set_acl("/n", Acl::open(), Some(0)));
    let expected = warren_client::Stat { aversion: 1, ..expected };
    assert_eq!(result, OpResult::SetAcl { stat: expected });
    assert_eq!(h.stat("/n"), expected);
}

// ---------------------------------------------------------------- sequential

#[test]
fn sequential_suffix_is_the_parents_cversion() {
    // Proves the suffix is the parent's cversion as %010d: it counts
    // non-sequential creates too, deletes do not lower it, all sequential
    // modes share it, a failed create does not consume it, and a name
    // collision is NodeExists.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b""));
    h.created(s, create("/p/x", b""));
    assert_eq!(
        h.created(s, create_mode("/p/s-", b"", CreateMode::PersistentSequential)),
        "/p/s-0000000001"
    );
    h.ok(s, delete("/p/x", None));
    h.ok(s, delete("/p/s-0000000001", None));
    assert_eq!(
        h.created(s, create_mode("/p/s-", b"", CreateMode::PersistentSequential)),
        "/p/s-0000000002"
    );
    assert_eq!(
        h.created(s, create_mode("/p/e-", b"", CreateMode::EphemeralSequential)),
        "/p/e-0000000003"
    );
    assert_eq!(
        h.created(
            s,
            create_mode("/p/t-", b"", CreateMode::PersistentSequentialWithTtl { ttl_ms: 9 })
        ),
        "/p/t-0000000004"
    );
    h.fails_code(s, create("/p/s-0000000002", b""), ErrorCode::NodeExists);
    h.fails_code(s, create_acl("/p/y", vec![]), ErrorCode::InvalidAcl);
    assert_eq!(
        h.created(s, create_mode("/p/", b"", CreateMode::PersistentSequential)),
        "/p/0000000005"
    );
    // Another parent has its own counter; the root has one too.
    h.created(s, create("/q", b""));
    assert_eq!(
        h.created(s, create_mode("/q/s-", b"", CreateMode::PersistentSequential)),
        "/q/s-0000000000"
    );
    let root_cversion = h.stat("/").cversion;
    assert_eq!(
        h.created(s, create_mode("/r-", b"", CreateMode::PersistentSequential)),
        format!("/r-{root_cversion:010}")
    );
    // A collision: the next number is taken by a plain node.
    h.created(s, create("/q/s-0000000002", b""));
    assert_eq!(h.stat("/q").cversion, 2);
    h.fails(
        s,
        create_mode("/q/s-", b"", CreateMode::PersistentSequential),
        ApiError::NodeExists { path: "/q/s-0000000002".into() },
    );
    assert_eq!(h.stat("/q").cversion, 2);
}

// ---------------------------------------------------------------- ephemerals and sessions

#[test]
fn ephemeral_owner_is_the_session_and_get_ephemerals_lists_them() {
    // Proves ephemeral_owner is the session id, which is the zxid of its
    // CreateSession entry, and get_ephemerals lists a session's ephemerals
    // sorted, filtered by prefix, forgetting one deleted by someone else.
    let mut h = Harness::new();
    h.apply(Command::Noop);
    let zxid = h.peek_zxid();
    let a = h.open(vec![]);
    assert_eq!(a, SessionId(zxid.0));
    let b = h.open(vec![]);
    h.created(a, create("/app", b""));
    h.created(a, create_mode("/z", b"", CreateMode::Ephemeral));
    h.created(a, create_mode("/app/e", b"", CreateMode::Ephemeral));
    let seq = h.created(a, create_mode("/app/d-", b"", CreateMode::EphemeralSequential));
    h.created(b, create_mode("/app/b", b"", CreateMode::Ephemeral));
    h.created(a, create("/app/persistent", b""));
    assert_eq!(h.stat("/z").ephemeral_owner, a.0);
    assert_eq!(h.stat(&seq).ephemeral_owner, a.0);
    assert_eq!(h.stat("/app/b").ephemeral_owner, b.0);
    assert_eq!(h.stat("/app/persistent").ephemeral_owner, 0);
    assert_eq!(h.sm.get_ephemerals(a, "/"), vec![seq.clone(), "/app/e".into(), "/z".into()]);
    assert_eq!(h.sm.get_ephemerals(a, "/app"), vec![seq.clone(), "/app/e".into()]);
    assert_eq!(h.sm.get_ephemerals(a, "/nothing"), Vec::<String>::new());
    assert_eq!(h.sm.get_ephemerals(b, "/"), vec!["/app/b".to_string()]);
    assert_eq!(h.sm.get_ephemerals(SessionId(999_999), "/"), Vec::<String>::new());
    h.ok(b, delete("/z", None));
    assert_eq!(h.sm.get_ephemerals(a, "/"), vec![seq, "/app/e".into()]);
}

#[test]
fn closing_a_session_deletes_its_ephemerals() {
    // Proves CloseSession deletes exactly the session's ephemerals with their
    // triggers, moves each parent's pzxid (not cversion), forgets the session,
    // then answers its requests and a second close with SessionExpired.
    let mut h = Harness::new();
    let a = h.open(vec![]);
    let b = h.open(vec![]);
    h.created(a, create("/app", b""));
    h.created(a, create_mode("/app/e1", b"", CreateMode::Ephemeral));
    let e2 = h.created(a, create_mode("/app/e-", b"", CreateMode::EphemeralSequential));
    h.created(a, create_mode("/top", b"", CreateMode::Ephemeral));
    h.created(b, create_mode("/app/theirs", b"", CreateMode::Ephemeral));
    h.created(a, create("/app/kept", b""));
    let app = h.stat("/app");
    let zxid = h.peek_zxid();
    let applied = h.apply(Command::CloseSession { session: a });
    assert_eq!(applied.response, Response::Done(Ok(())));
    let mut events: Vec<(EventType, String)> =
        applied.triggers.iter().map(|t| (t.event, t.path.to_string())).collect();
    events.sort();
    let mut expected = vec![
        (EventType::NodeDeleted, "/app/e1".to_string()),
        (EventType::NodeDeleted, e2.clone()),
        (EventType::NodeDeleted, "/top".into()),
        (EventType::NodeChildrenChanged, "/app".into()),
        (EventType::NodeChildrenChanged, "/app".into()),
        (EventType::NodeChildrenChanged, "/".into()),
    ];
    expected.sort();
    assert_eq!(events, expected);
    assert!(applied.triggers.iter().all(|t| t.zxid == zxid));
    for gone in ["/app/e1", e2.as_str(), "/top"] {
        assert_eq!(h.sm.exists(gone), None, "{gone}");
    }
    assert!(h.sm.exists("/app/theirs").is_some() && h.sm.exists("/app/kept").is_some());
    assert_eq!(
        h.stat("/app"),
        warren_client::Stat { pzxid: zxid, num_children: app.num_children - 2, ..app }
    );
    assert_eq!(h.stat("/").pzxid, zxid);
    assert!(h.sm.session(a).is_none());
    assert_eq!(h.sm.session_count(), 1);
    assert!(h.sm.get_ephemerals(a, "/").is_empty());

    let digest = h.sm.digest();
    assert_eq!(h.write(a, create("/x", b"")), Err(ApiError::SessionExpired { session: a }));
    assert_eq!(h.write(a, Op::Multi(vec![])), Err(ApiError::SessionExpired { session: a }));
    assert_eq!(
        h.apply(Command::CloseSession { session: a }).response,
        Response::Done(Err(ApiError::SessionExpired { session: a }))
    );
    let never = SessionId(123_456);
    assert_eq!(h.write(never, check("/", None)), Err(ApiError::SessionExpired { session: never }));
    assert_eq!(h.sm.digest(), digest);
}

#[test]
fn expiring_sessions_deletes_their_ephemerals_and_skips_closed_ones() {
    // Proves ExpireSessions closes each listed open session like CloseSession
    // (ephemerals and their triggers), ignores closed or unknown ones, and
    // answers Done(Ok).
    let mut h = Harness::new();
    let a = h.open(vec![]);
    let b = h.open(vec![]);
    let c = h.open(vec![]);
    h.created(a, create_mode("/a", b"", CreateMode::Ephemeral));
    h.created(b, create_mode("/b", b"", CreateMode::Ephemeral));
    h.created(c, create_mode("/c", b"", CreateMode::Ephemeral));
    h.apply(Command::CloseSession { session: b });
    let applied = h.apply(Command::ExpireSessions { sessions: vec![a, b, SessionId(77_777), a] });
    assert_eq!(applied.response, Response::Done(Ok(())));
    let events: Vec<(EventType, &str)> =
        applied.triggers.iter().map(|t| (t.event, &*t.path)).collect();
    assert_eq!(events, vec![(EventType::NodeDeleted, "/a"), (EventType::NodeChildrenChanged, "/")]);
    assert_eq!(h.sm.exists("/a"), None);
    assert!(h.sm.exists("/c").is_some());
    assert_eq!(h.sm.sessions().map(|(id, _)| id).collect::<Vec<_>>(), vec![c]);
}

#[test]
fn session_timeout_zero_is_refused() {
    // Proves a CreateSession with timeout 0 opens nothing and says why.
    let mut h = Harness::new();
    let applied = h.apply(Command::CreateSession { timeout_ms: 0, auth: vec![], secret: None });
    assert_eq!(
        applied.response,
        Response::Done(Err(bad(BadArgument::SessionTimeout { timeout_ms: 0 })))
    );
    assert_eq!(h.sm.session_count(), 0);
}

// ---------------------------------------------------------------- containers

#[test]
fn container_becomes_a_candidate_once_it_had_and_lost_children() {
    // Proves a container's owner is 1<<63; it is no candidate until it has had
    // a child and has none; RemoveContainer then deletes it with triggers;
    // a second RemoveContainer is NoNode.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create_mode("/c", b"", CreateMode::Container));
    assert_eq!(h.stat("/c").ephemeral_owner, CONTAINER);
    assert!(h.sm.cleanup_candidates(i64::MAX).is_empty());
    assert_eq!(
        h.apply(Command::RemoveContainer { path: "/c".into() }).response,
        Response::Done(Err(bad(BadArgument::NotRemovable { path: "/c".into() })))
    );
    h.created(s, create("/c/x", b""));
    assert!(h.sm.cleanup_candidates(i64::MAX).is_empty());
    h.ok(s, delete("/c/x", None));
    let candidates = h.sm.cleanup_candidates(h.now);
    assert_eq!(candidates, vec![Command::RemoveContainer { path: "/c".into() }]);
    let zxid = h.peek_zxid();
    let applied = h.apply(candidates[0].clone());
    assert_eq!(applied.response, Response::Done(Ok(())));
    let events: Vec<(EventType, &str)> =
        applied.triggers.iter().map(|t| (t.event, &*t.path)).collect();
    assert_eq!(events, vec![(EventType::NodeDeleted, "/c"), (EventType::NodeChildrenChanged, "/")]);
    assert_eq!(h.sm.exists("/c"), None);
    assert_eq!(h.stat("/").pzxid, zxid);
    assert!(h.sm.cleanup_candidates(i64::MAX).is_empty());
    assert_eq!(
        h.apply(Command::RemoveContainer { path: "/c".into() }).response,
        Response::Done(Err(no_node("/c")))
    );
}

#[test]
fn remove_container_rechecks_at_apply_time() {
    // Proves RemoveContainer re-checks: a child re-added since the leader
    // looked makes it NotRemovable and changes nothing; a persistent node is
    // never removable; a container emptied by session close is a candidate.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create_mode("/c", b"", CreateMode::Container));
    h.created(s, create("/c/x", b""));
    h.ok(s, delete("/c/x", None));
    let candidates = h.sm.cleanup_candidates(h.now);
    assert_eq!(candidates.len(), 1);
    h.created(s, create("/c/y", b""));
    let digest = h.sm.digest();
    let applied = h.apply(candidates[0].clone());
    assert_eq!(
        applied.response,
        Response::Done(Err(bad(BadArgument::NotRemovable { path: "/c".into() })))
    );
    assert!(applied.triggers.is_empty());
    assert_eq!(h.sm.digest(), digest);
    assert!(h.sm.exists("/c/y").is_some());

    h.created(s, create("/p", b""));
    h.created(s, create("/p/x", b""));
    h.ok(s, delete("/p/x", None));
    assert_eq!(
        h.apply(Command::RemoveContainer { path: "/p".into() }).response,
        Response::Done(Err(bad(BadArgument::NotRemovable { path: "/p".into() })))
    );

    let e = h.open(vec![]);
    h.created(s, create_mode("/locks", b"", CreateMode::Container));
    h.created(e, create_mode("/locks/l-", b"", CreateMode::EphemeralSequential));
    assert!(
        !h.sm
            .cleanup_candidates(h.now)
            .contains(&Command::RemoveContainer { path: "/locks".into() })
    );
    h.apply(Command::CloseSession { session: e });
    assert!(
        h.sm.cleanup_candidates(h.now)
            .contains(&Command::RemoveContainer { path: "/locks".into() })
    );
}

// ---------------------------------------------------------------- TTL

#[test]
fn ttl_node_expires_after_ttl_of_no_modification() {
    // Proves a TTL node's owner is 0xFF<<56|ttl; it is a candidate when
    // childless and now - mtime > ttl (not at exactly ttl); setData restarts
    // the clock; a child keeps it.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let t0 = h.now;
    h.created(s, create_mode("/t", b"", CreateMode::PersistentWithTtl { ttl_ms: 1000 }));
    assert_eq!(h.stat("/t").ephemeral_owner, TTL_MARK | 1000);
    let expired = vec![Command::RemoveExpiredTtl { path: "/t".into() }];
    assert!(h.sm.cleanup_candidates(t0 + 1000).is_empty());
    assert_eq!(h.sm.cleanup_candidates(t0 + 1001), expired);
    h.advance(500);
    h.ok(s, set("/t", b"touch", None));
    assert!(h.sm.cleanup_candidates(t0 + 1001).is_empty());
    assert!(h.sm.cleanup_candidates(t0 + 1500).is_empty());
    assert_eq!(h.sm.cleanup_candidates(t0 + 1501), expired);
    h.created(s, create("/t/kid", b""));
    assert!(h.sm.cleanup_candidates(i64::MAX / 2).is_empty());
    h.ok(s, delete("/t/kid", None));
    assert_eq!(h.sm.cleanup_candidates(t0 + 1501), expired);
    // Sequential TTL nodes too.
    let seq = h.created(
        s,
        create_mode("/u-", b"", CreateMode::PersistentSequentialWithTtl { ttl_ms: 10 }),
    );
    assert_eq!(h.stat(&seq).ephemeral_owner, TTL_MARK | 10);
}

#[test]
fn remove_expired_ttl_rechecks_with_the_entrys_time() {
    // Proves RemoveExpiredTtl uses its own entry's time: at exactly mtime+ttl
    // it is NotRemovable, after a setData it is NotRemovable, past the TTL it
    // deletes with triggers, and then NoNode.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create_mode("/t", b"", CreateMode::PersistentWithTtl { ttl_ms: 100 }));
    let mtime = h.stat("/t").mtime;
    let remove = Command::RemoveExpiredTtl { path: "/t".into() };
    let not_removable = Response::Done(Err(bad(BadArgument::NotRemovable { path: "/t".into() })));
    h.now = mtime + 100;
    assert_eq!(h.apply(remove.clone()).response, not_removable);
    h.now = mtime + 101;
    h.ok(s, set("/t", b"again", None));
    h.now = mtime + 150;
    assert_eq!(h.apply(remove.clone()).response, not_removable);
    h.now = mtime + 202;
    let applied = h.apply(remove.clone());
    assert_eq!(applied.response, Response::Done(Ok(())));
    let events: Vec<(EventType, &str)> =
        applied.triggers.iter().map(|t| (t.event, &*t.path)).collect();
    assert_eq!(events, vec![(EventType::NodeDeleted, "/t"), (EventType::NodeChildrenChanged, "/")]);
    assert_eq!(h.apply(remove).response, Response::Done(Err(no_node("/t"))));
    // A container is not a TTL node, nor the reverse.
    h.created(s, create_mode("/c", b"", CreateMode::Container));
    assert_eq!(
        h.apply(Command::RemoveExpiredTtl { path: "/c".into() }).response,
        Response::Done(Err(bad(BadArgument::NotRemovable { path: "/c".into() })))
    );
}

#[test]
fn cleanup_candidates_are_sorted_by_path() {
    // Proves the candidate list mixes containers and TTL nodes sorted by path.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    for p in ["/m", "/b", "/z"] {
        h.created(s, create_mode(p, b"", CreateMode::Container));
        h.created(s, create(&format!("{p}/k"), b""));
        h.ok(s, delete(&format!("{p}/k"), None));
    }
    for p in ["/y", "/a", "/n"] {
        h.created(s, create_mode(p, b"", CreateMode::PersistentWithTtl { ttl_ms: 1 }));
    }
    let got = h.sm.cleanup_candidates(h.now + 2);
    let expected = vec![
        Command::RemoveExpiredTtl { path: "/a".into() },
        Command::RemoveContainer { path: "/b".into() },
        Command::RemoveContainer { path: "/m".into() },
        Command::RemoveExpiredTtl { path: "/n".into() },
        Command::RemoveExpiredTtl { path: "/y".into() },
        Command::RemoveContainer { path: "/z".into() },
    ];
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------- ACL reads

#[test]
fn reads_need_read_except_exists() {
    // Proves getData, getChildren and the child count need READ (NoAuth
    // otherwise), while exists needs nothing.
    let mut h = Harness::new();
    let owner = vec![x509("CN=owner")];
    let o = h.open(owner.clone());
    h.created(o, create_acl("/r", vec![acl(Perms::ALL, x509("CN=owner"))]));
    h.created(o, create_acl("/nr", vec![acl(all_but(Perms::READ), Id::anyone())]));
    let other = [x509("CN=other")];
    for path in ["/r", "/nr"] {
        let e = h.sm.get_data(path, &other).unwrap_err();
        assert_eq!(e, ApiError::NoAuth { path: path.into(), needed: PermsName(Perms::READ) });
        assert_eq!(h.sm.get_children(path, &other).unwrap_err().code(), ErrorCode::NoAuth);
        assert_eq!(
            h.sm.get_children_after(path, &other, None, 5).unwrap_err().code(),
            ErrorCode::NoAuth
        );
        assert_eq!(
            h.sm.get_all_children_number(path, &other).unwrap_err().code(),
            ErrorCode::NoAuth
        );
        assert!(h.sm.exists(path).is_some());
    }
    assert!(h.sm.get_data("/r", &owner).is_ok());
    assert!(h.sm.get_children("/r", &owner).is_ok());
    assert!(h.sm.get_data("/nr", &owner).is_err());
    assert_eq!(h.sm.get_data("/missing", &owner).unwrap_err(), no_node("/missing"));
    assert_eq!(h.sm.exists("/missing"), None);
    assert_eq!(
        h.sm.get_data("/r/", &owner).unwrap_err(),
        invalid_path("/r/", PathError::TrailingSlash)
    );
}

#[test]
fn get_acl_needs_read_or_admin_and_hides_digests_without_admin() {
    // Proves getACL is allowed with READ or ADMIN, refused with neither, and
    // shows digest ids as "user:x" unless the reader has ADMIN.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let list = vec![
        acl(Perms::READ, Id::anyone()),
        acl(Perms::ALL, Id::digest("alice:c2VjcmV0")),
        acl(Perms::ADMIN, x509("CN=adm")),
    ];
    h.created(s, create_acl("/g", list.clone()));
    let hidden = vec![list[0].clone(), acl(Perms::ALL, Id::digest("alice:x")), list[2].clone()];
    assert_eq!(h.sm.get_acl("/g", &[]).unwrap().0, hidden);
    assert_eq!(h.sm.get_acl("/g", &[x509("CN=adm")]).unwrap().0, list);
    assert_eq!(h.sm.get_acl("/g", &[Id::digest("alice:c2VjcmV0")]).unwrap().0, list);

    h.created(
        s,
        create_acl("/h", vec![acl(Perms::ADMIN, x509("CN=adm")), acl(Perms::WRITE, Id::anyone())]),
    );
    let e = h.sm.get_acl("/h", &[x509("CN=nobody")]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoAuth);
    assert!(h.sm.get_acl("/h", &[x509("CN=adm")]).is_ok());
    assert_eq!(h.sm.get_acl("/missing", &[]).unwrap_err(), no_node("/missing"));
}

#[test]
fn identities_match_exactly_and_world_matches_everyone() {
    // Proves an ACL entry matches only an identical (scheme, id), and
    // world:anyone matches a session with no identities.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(
        s,
        create_acl("/x", vec![acl(Perms::READ, x509("CN=a")), acl(Perms::READ, Id::digest("u:h"))]),
    );
    h.created(s, create_acl("/w", Acl::read_only()));
    let allowed =
        [vec![x509("CN=a")], vec![Id::digest("u:h")], vec![x509("CN=z"), Id::digest("u:h")]];
    let denied = [
        vec![],
        vec![Id::anyone()],
        vec![x509("CN=A")],
        vec![x509("CN=a ")],
        vec![x509("CN=ab")],
        vec![Id::digest("u:h2")],
        vec![Id::digest("u:x")],
        vec![Id::new("digest", "CN=a")],
        vec![Id::new("x509", "u:h")],
    ];
    for ids in &allowed {
        assert!(h.sm.get_data("/x", ids).is_ok(), "{ids:?}");
        assert!(h.sm.get_data("/w", ids).is_ok(), "{ids:?}");
    }
    for ids in &denied {
        assert!(h.sm.get_data("/x", ids).is_err(), "{ids:?}");
        assert!(h.sm.get_data("/w", ids).is_ok(), "{ids:?}");
        assert!(!StateMachine::may_read(&[acl(Perms::READ, x509("CN=a"))], ids), "{ids:?}");
    }
    assert!(StateMachine::may_read(&Acl::read_only(), &[]));
    assert!(!StateMachine::may_read(&[acl(Perms::WRITE, Id::anyone())], &[x509("CN=a")]));
}

// ---------------------------------------------------------------- limits

#[test]
fn paths_over_the_length_limit_are_invalid() {
    // Proves a path over Limits::default().path_bytes_max is
    // InvalidPath(TooLong) for every write and read, and one at the limit is
    // fine; a sequential create whose suffixed name overflows is refused.
    let max = Limits::default().path_bytes_max;
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let long = format!("/{}", "a".repeat(max));
    let why = PathError::TooLong { len: max + 1, max };
    for op in [
        create(&long, b""),
        delete(&long, None),
        set(&long, b"", None),
        set_acl(&long, Acl::open(), None),
        check(&long, None),
    ] {
        h.fails(s, op, invalid_path(&long, why.clone()));
    }
    assert_eq!(h.sm.get_data(&long, &[]).unwrap_err(), invalid_path(&long, why));
    let at_limit = format!("/{}", "a".repeat(max - 1));
    h.created(s, create(&at_limit, b""));
    let seq = format!("/{}", "b".repeat(max - 2));
    let e = h.fails_code(
        s,
        create_mode(&seq, b"", CreateMode::PersistentSequential),
        ErrorCode::BadArguments,
    );
    assert!(
        matches!(
            e,
            ApiError::BadArguments(BadArgument::InvalidPath { why: PathError::TooLong { .. }, .. })
        ),
        "{e:?}"
    );
}

#[test]
fn multi_over_the_op_limit_is_too_many_ops_unwrapped() {
    // Proves a multi of 1025 ops is BadArguments(TooManyOps), not wrapped in
    // Multi, while 1024 ops run; a smaller limit works the same way.
    let max = Limits::default().multi_ops_max;
    assert_eq!(max, 1024);
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.fails(
        s,
        Op::Multi(vec![check("/", None); max + 1]),
        bad(BadArgument::TooManyOps { count: max + 1, max }),
    );
    assert_eq!(
        h.ok(s, Op::Multi(vec![check("/", None); max])),
        OpResult::Multi(vec![OpResult::Check; max])
    );

    let mut h = Harness::with_limits(Limits { multi_ops_max: 2, ..Limits::default() });
    let s = h.open(vec![]);
    h.fails(
        s,
        Op::Multi(vec![create("/a", b""), create("/b", b""), create("/c", b"")]),
        bad(BadArgument::TooManyOps { count: 3, max: 2 }),
    );
    h.ok(s, Op::Multi(vec![create("/a", b""), create("/b", b"")]));
}

#[test]
fn nested_multi_is_refused_at_its_index() {
    // Proves a multi inside a multi fails as Multi{index, NestedMulti} and the
    // ops before it are undone.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.fails(
        s,
        Op::Multi(vec![create("/a", b""), Op::Multi(vec![]), create("/b", b"")]),
        ApiError::Multi { index: 1, error: Box::new(bad(BadArgument::NestedMulti)) },
    );
    assert_eq!(h.sm.exists("/a"), None);
}

#[test]
fn acl_over_the_entry_limit_is_too_many_acls() {
    // Proves an ACL of 65 entries is BadArguments(TooManyAcls) for create and
    // setACL, 64 is accepted, and an id over acl_id_bytes_max is InvalidAcl.
    let max = Limits::default().acl_entries_max;
    assert_eq!(max, 64);
    let list =
        |n: usize| (0..n).map(|i| acl(Perms::ALL, x509(&format!("CN={i}")))).collect::<Vec<_>>();
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.fails(
        s,
        create_acl("/a", list(max + 1)),
        bad(BadArgument::TooManyAcls { count: max + 1, max }),
    );
    h.created(s, create_acl("/a", list(max - 1).into_iter().chain(Acl::open()).collect()));
    assert_eq!(h.sm.get_acl("/a", &[]).unwrap().0.len(), max);
    h.fails(
        s,
        set_acl("/a", list(max + 1), None),
        bad(BadArgument::TooManyAcls { count: max + 1, max }),
    );

    let mut h = Harness::with_limits(Limits { acl_id_bytes_max: 8, ..Limits::default() });
    let s = h.open(vec![]);
    h.fails(
        s,
        create_acl("/b", vec![acl(Perms::ALL, x509("CN=123456"))]),
        invalid_acl("/b", AclError::BadId { scheme: "x509".into(), id: "CN=123456".into() }),
    );
    h.created(s, create_acl("/b", vec![acl(Perms::ALL, x509("CN=12345"))]));
}

#[test]
fn auth_expansion_respects_the_acl_entry_limit() {
    // Proves acl_entries_max bounds the ACL as stored: a one-entry
    // [auth:ALL] from a session with 3 identities under a limit of 2 is
    // refused with TooManyAcls (3 of 2), and nothing is created.
    let mut h = Harness::with_limits(Limits { acl_entries_max: 2, ..Limits::default() });
    let ids = vec![x509("CN=1"), x509("CN=2"), x509("CN=3")];
    let s = h.open(ids.clone());
    h.fails(
        s,
        create_acl("/n", Acl::creator_all()),
        ApiError::BadArguments(BadArgument::TooManyAcls { count: 3, max: 2 }),
    );
}

#[test]
fn auth_expansion_respects_the_acl_id_limit() {
    // Proves no identity longer than acl_id_bytes_max can reach an ACL
    // through "auth": a session whose x509 subject is 12 bytes under a limit
    // of 8 is refused at CreateSession with IdentityTooLong.
    let mut h = Harness::with_limits(Limits { acl_id_bytes_max: 8, ..Limits::default() });
    let applied = h.apply(Command::CreateSession {
        timeout_ms: 10_000,
        auth: vec![x509("CN=123456789")],
        secret: None,
    });
    assert_eq!(
        applied.response,
        Response::Done(Err(ApiError::BadArguments(BadArgument::IdentityTooLong {
            scheme: "x509".into(),
            len: 12,
            max: 8
        })))
    );
    assert_eq!(h.sm.session_count(), 0);
}

#[test]
fn session_identities_are_bounded() {
    // Proves CreateSession refuses more identities than
    // session_identities_max and opens a session with exactly that many.
    let mut h = Harness::with_limits(Limits { session_identities_max: 2, ..Limits::default() });
    let three = vec![x509("CN=1"), x509("CN=2"), x509("CN=3")];
    let applied = h.apply(Command::CreateSession { timeout_ms: 10_000, auth: three, secret: None });
    assert_eq!(
        applied.response,
        Response::Done(Err(ApiError::BadArguments(BadArgument::TooManyIdentities {
            count: 3,
            max: 2
        })))
    );
    h.open(vec![x509("CN=1"), x509("CN=2")]);
    assert_eq!(h.sm.session_count(), 1);
}

// ---------------------------------------------------------------- multi

/// Every observable piece of state: digest, node count, every node (path,
/// data, Stat, ACL), and the sessions with their ephemerals.
type Observed = (
    u64,
    usize,
    Vec<(String, Vec<u8>, warren_client::Stat, Vec<Acl>)>,
    Vec<(SessionId, Vec<String>)>,
);

fn observe(h: &Harness, reader: &[Id]) -> Observed {
    let sessions = h.sm.sessions().map(|(id, _)| (id, h.sm.get_ephemerals(id, "/"))).collect();
    (h.sm.digest(), h.sm.node_count(), dump(&h.sm, reader), sessions)
}

#[test]
fn failed_multi_at_any_index_changes_nothing() {
    // Proves all-or-nothing: a multi whose op k fails (for every k) leaves the
    // digest, every node's data/Stat/ACL (so cversion and sequence numbers),
    // every session's ephemerals exactly as before, and triggers nothing; the
    // error is Multi{index: k} and multi_codes gives Ok.., code, Runtime...
    let mut h = Harness::new();
    let reader = vec![x509("CN=a")];
    let a = h.open(reader.clone());
    let b = h.open(vec![]);
    h.created(a, create("/m", b""));
    h.created(a, create("/m/d", b"d"));
    h.created(a, create("/m/gone", b"bye"));
    h.created(b, create_mode("/m/theirs", b"", CreateMode::Ephemeral));
    h.created(a, create_mode("/c", b"", CreateMode::Container));
    h.created(a, create("/c/k", b""));
    h.created(a, create_mode("/t", b"", CreateMode::PersistentWithTtl { ttl_ms: 50 }));
    let ops = vec![
        create_mode("/m/s-", b"", CreateMode::PersistentSequential),
        create_mode("/m/e-", b"", CreateMode::EphemeralSequential),
        set("/m/d", b"x", None),
        set_acl("/m/d", vec![acl(Perms::ALL, x509("CN=a"))], Some(0)),
        delete("/m/gone", Some(0)),
        delete("/m/theirs", None),
        delete("/c/k", None),
        create("/m/n", b"1"),
        set("/m/n", b"2", Some(0)),
        delete("/m/n", Some(1)),
        create_mode("/m/n", b"3", CreateMode::Ephemeral),
        check("/m/d", Some(1)),
        set("/t", b"reset", None),
    ];
    let failing = check("/m", Some(99));
    let failure = ApiError::BadVersion { path: "/m".into(), expected: 99, actual: 0 };
    let before = observe(&h, &reader);
    for k in 0..=ops.len() {
        let mut multi = ops[..k].to_vec();
        multi.push(failing.clone());
        multi.extend_from_slice(&ops[k..]);
        let len = multi.len();
        let applied = h.request(a, Op::Multi(multi));
        let Response::Reply(Err(error)) = applied.response else {
            panic!("multi failing at {k} answered {:?}", applied.response);
        };
        assert_eq!(error, ApiError::Multi { index: k, error: Box::new(failure.clone()) });
        assert_eq!(error.code(), ErrorCode::BadVersion);
        let mut codes = vec![ErrorCode::Ok; k];
        codes.push(ErrorCode::BadVersion);
        codes.resize(len, ErrorCode::RuntimeInconsistency);
        assert_eq!(error.multi_codes(len), Some(codes));
        assert!(applied.triggers.is_empty(), "failing at {k}: {:?}", applied.triggers);
        assert_eq!(observe(&h, &reader), before, "a multi failing at {k} changed state");
    }
    // The same ops without the failing one all apply, numbering as if the
    // failed multis never happened.
    let cversion = h.stat("/m").cversion;
    let OpResult::Multi(results) = h.ok(a, Op::Multi(ops.clone())) else { panic!() };
    assert_eq!(results.len(), ops.len());
    assert!(
        matches!(&results[0], OpResult::Create { path, .. } if *path == format!("/m/s-{cversion:010}"))
    );
    assert!(
        matches!(&results[1], OpResult::Create { path, .. } if *path == format!("/m/e-{:010}", cversion + 1))
    );
    assert_eq!(h.sm.get_data("/m/n", &reader).unwrap().0, b"3");
    assert_eq!(h.stat("/m/n").ephemeral_owner, a.0);
    assert_eq!(h.sm.get_ephemerals(a, "/").len(), 2);
    assert!(h.sm.get_ephemerals(b, "/").is_empty());
    assert!(
        h.sm.cleanup_candidates(h.now).contains(&Command::RemoveContainer { path: "/c".into() })
    );
}

#[test]
fn multi_ops_see_earlier_ops_and_trigger_in_op_order() {
    // Proves ops in a multi see the effects of earlier ones (create then
    // setData, delete then re-create, parent then child) and a successful
    // multi's triggers come in op order, all with the multi's zxid.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/old", b"o"));
    let zxid = h.peek_zxid();
    let applied = h.request(
        s,
        Op::Multi(vec![
            create("/a", b"1"),
            set("/a", b"22", Some(0)),
            create("/a/b", b""),
            delete("/old", Some(0)),
            create("/old", b"new"),
            check("/a", Some(1)),
            set_acl("/a", Acl::open(), Some(0)),
        ]),
    );
    let Response::Reply(Ok(OpResult::Multi(results))) = applied.response else {
        panic!("{:?}", applied.response)
    };
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/a"));
    assert!(
        matches!(&results[1], OpResult::SetData { stat } if stat.version == 1 && stat.data_length == 2)
    );
    assert_eq!(results[3], OpResult::Delete);
    assert_eq!(results[5], OpResult::Check);
    assert!(matches!(&results[6], OpResult::SetAcl { stat } if stat.aversion == 1));
    let events: Vec<(EventType, &str)> =
        applied.triggers.iter().map(|t| (t.event, &*t.path)).collect();
    assert_eq!(
        events,
        vec![
            (EventType::NodeCreated, "/a"),
            (EventType::NodeChildrenChanged, "/"),
            (EventType::NodeDataChanged, "/a"),
            (EventType::NodeCreated, "/a/b"),
            (EventType::NodeChildrenChanged, "/a"),
            (EventType::NodeDeleted, "/old"),
            (EventType::NodeChildrenChanged, "/"),
            (EventType::NodeCreated, "/old"),
            (EventType::NodeChildrenChanged, "/"),
        ]
    );
    assert!(applied.triggers.iter().all(|t| t.zxid == zxid));
    assert_eq!(h.stat("/old").czxid, zxid);
    assert_eq!(h.sm.get_data("/old", &[]).unwrap().0, b"new");
    // An empty multi is fine and does nothing.
    let digest = h.sm.digest();
    assert_eq!(h.ok(s, Op::Multi(vec![])), OpResult::Multi(vec![]));
    assert_eq!(h.sm.digest(), digest);
}

#[test]
fn multi_codes_are_zookeepers_per_op_results() {
    // Proves multi_codes(len): Ok before the failing op, its code, then
    // RuntimeInconsistency; None for a non-multi error; code() is the inner one.
    let e = ApiError::Multi { index: 2, error: Box::new(no_node("/x")) };
    assert_eq!(e.code(), ErrorCode::NoNode);
    assert_eq!(
        e.multi_codes(5),
        Some(vec![
            ErrorCode::Ok,
            ErrorCode::Ok,
            ErrorCode::NoNode,
            ErrorCode::RuntimeInconsistency,
            ErrorCode::RuntimeInconsistency
        ])
    );
    assert_eq!(no_node("/x").multi_codes(3), None);
}

// ---------------------------------------------------------------- paging

#[test]
fn children_page_in_sorted_order() {
    // Proves get_children_after pages through children in byte order, with
    // `more` set exactly when names remain, starting after a given name
    // whether or not it exists.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b""));
    for name in ["d", "a", "e", "B", "c", "b"] {
        h.created(s, create(&format!("/p/{name}"), b""));
    }
    let page = |after: Option<&str>, max: usize| {
        let c = h.sm.get_children_after("/p", &[], after, max).unwrap();
        assert_eq!(c.stat, h.stat("/p"));
        (c.names, c.more)
    };
    let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(page(None, 2), (v(&["B", "a"]), true));
    assert_eq!(page(Some("a"), 2), (v(&["b", "c"]), true));
    assert_eq!(page(Some("c"), 2), (v(&["d", "e"]), false));
    assert_eq!(page(Some("bb"), 10), (v(&["c", "d", "e"]), false));
    assert_eq!(page(Some("e"), 10), (v(&[]), false));
    assert_eq!(page(None, 6), (v(&["B", "a", "b", "c", "d", "e"]), false));
    assert!(page(None, 5).1);
    let all = h.sm.get_children("/p", &[]).unwrap();
    assert_eq!((all.names, all.more), (v(&["B", "a", "b", "c", "d", "e"]), false));
    assert_eq!(h.sm.get_children("/p/a", &[]).unwrap().names, v(&[]));
    assert_eq!(h.sm.get_all_children_number("/", &[]).unwrap(), 7);
    assert_eq!(h.sm.get_children("/q", &[]).unwrap_err(), no_node("/q"));
}

#[test]
fn get_children_stops_at_the_reply_limit() {
    // Proves one getChildren reply lists at most CHILDREN_PER_REPLY_MAX names
    // (10,000) with `more` set, and paging after the last one gets the rest.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/p", b""));
    let ops: Vec<Op> = (0..10_001).map(|i| create(&format!("/p/{i:05}"), b"")).collect();
    for chunk in ops.chunks(1000) {
        h.ok(s, Op::Multi(chunk.to_vec()));
    }
    let first = h.sm.get_children("/p", &[]).unwrap();
    assert_eq!((first.names.len(), first.more), (10_000, true));
    assert_eq!(first.names.last().map(String::as_str), Some("09999"));
    let big = h.sm.get_children_after("/p", &[], None, 20_000).unwrap();
    assert_eq!((big.names.len(), big.more), (10_000, true));
    let rest = h.sm.get_children_after("/p", &[], Some("09999"), 10_000).unwrap();
    assert_eq!((rest.names, rest.more), (vec!["10000".to_string()], false));
    assert_eq!(first.stat.num_children, 10_001);
}

// ---------------------------------------------------------------- digest

fn workload(h: &mut Harness) {
    let a = h.open(vec![x509("CN=a")]);
    let b = h.open(vec![Id::digest("u:h")]);
    h.created(a, create("/x", b"1"));
    h.created(a, create_acl("/x/y", Acl::creator_all()));
    h.created(b, create_mode("/x/e-", b"", CreateMode::EphemeralSequential));
    h.ok(a, set("/x", b"2", None));
    h.advance(10);
    h.ok(a, set_acl("/x", Acl::read_only(), None));
    h.created(a, create_mode("/c", b"", CreateMode::Container));
    let _ = h.write(a, Op::Multi(vec![create("/z", b""), delete("/nope", None)]));
    h.ok(a, Op::Multi(vec![create("/z", b""), create("/z/1", b"")]));
    h.apply(Command::CloseSession { session: b });
    h.ok(a, delete("/z/1", None));
}

#[test]
fn replicas_applying_the_same_entries_have_equal_digests() {
    // Proves two state machines fed the same entries agree on reply, triggers
    // and digest after every entry, and the digest moves on every change.
    let mut h = Harness::new();
    workload(&mut h);
    let mut replica = StateMachine::new(Limits::default());
    let mut left = StateMachine::new(Limits::default());
    let mut seen = std::collections::HashSet::new();
    seen.insert(left.digest());
    for entry in &h.log {
        let x = left.apply(entry.clone());
        let y = replica.apply(entry.clone());
        assert_eq!(x, y, "{entry:?}");
        assert_eq!(left.digest(), replica.digest(), "{entry:?}");
        let changed = matches!(
            &x.response,
            Response::SessionCreated(_) | Response::Reply(Ok(_)) | Response::Done(Ok(()))
        );
        if changed {
            assert!(seen.insert(left.digest()), "digest did not move at {entry:?}");
        }
    }
    assert_eq!(left.digest(), h.sm.digest());
}

#[test]
fn a_different_entry_gives_a_different_digest() {
    // Proves the digest covers data, ACL, time, mode and session identities:
    // changing any one of them in an otherwise equal log changes the digest.
    let base = |h: &mut Harness| h.open(vec![x509("CN=a")]);
    let mut reference = Harness::new();
    let s = base(&mut reference);
    reference.created(s, create("/n", b"data"));
    type Variant = Box<dyn Fn(&mut Harness)>;
    let variants: Vec<Variant> = vec![
        Box::new(|h| {
            let s = h.open(vec![x509("CN=a")]);
            h.created(s, create("/n", b"datA"));
        }),
        Box::new(|h| {
            let s = h.open(vec![x509("CN=a")]);
            h.created(s, create_acl("/n", Acl::read_only()).with_data(b"data"));
        }),
        Box::new(|h| {
            let s = h.open(vec![x509("CN=a")]);
            h.advance(1);
            h.created(s, create("/n", b"data"));
        }),
        Box::new(|h| {
            let s = h.open(vec![x509("CN=a")]);
            h.created(s, create_mode("/n", b"data", CreateMode::Container));
        }),
        Box::new(|h| {
            let s = h.open(vec![x509("CN=b")]);
            h.created(s, create("/n", b"data"));
        }),
        Box::new(|h| {
            let s = h.open(vec![x509("CN=a")]);
            h.created(s, create("/m", b"data"));
        }),
    ];
    for (i, variant) in variants.iter().enumerate() {
        let mut h = Harness::new();
        variant(&mut h);
        assert_eq!(h.log.len(), reference.log.len());
        assert_ne!(h.sm.digest(), reference.sm.digest(), "variant {i}");
    }
    // And the reference itself is reproducible.
    let mut again = Harness::new();
    let s = base(&mut again);
    again.created(s, create("/n", b"data"));
    assert_eq!(again.sm.digest(), reference.sm.digest());
}

trait WithData {
    fn with_data(self, data: &[u8]) -> Op;
}

impl WithData for Op {
    fn with_data(self, new: &[u8]) -> Op {
        match self {
            Op::Create { path, acl, mode, .. } => {
                Op::Create { path, data: new.to_vec(), acl, mode }
            }
            other => other,
        }
    }
}

// ---------------------------------------------------------------- codes

#[test]
fn every_state_machine_error_code_is_reachable() {
    // Proves each ZooKeeper code the state machine can answer is produced by
    // some write, and that the codes carry ZooKeeper's numeric values.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/a", b""));
    h.created(s, create("/a/b", b""));
    h.created(s, create_mode("/e", b"", CreateMode::Ephemeral));
    h.created(s, create_acl("/locked", vec![acl(Perms::READ, x509("CN=x"))]));
    let mut reached = Vec::new();
    let cases = vec![
        (create("bad", b""), ErrorCode::BadArguments),
        (delete("/zz", None), ErrorCode::NoNode),
        (set("/locked", b"", None), ErrorCode::NoAuth),
        (set("/a", b"", Some(3)), ErrorCode::BadVersion),
        (create("/e/x", b""), ErrorCode::NoChildrenForEphemerals),
        (create("/a", b""), ErrorCode::NodeExists),
        (delete("/a", None), ErrorCode::NotEmpty),
        (create_acl("/q", vec![]), ErrorCode::InvalidAcl),
    ];
    for (op, code) in cases {
        reached.push(h.fails_code(s, op, code).code());
    }
    h.apply(Command::CloseSession { session: s });
    let e = h.write(s, check("/", None)).unwrap_err();
    reached.push(e.code());
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    let multi = ApiError::Multi { index: 0, error: Box::new(no_node("/")) };
    reached.extend(multi.multi_codes(2).unwrap());
    let numeric: Vec<(ErrorCode, i32)> = vec![
        (ErrorCode::Ok, 0),
        (ErrorCode::RuntimeInconsistency, -2),
        (ErrorCode::BadArguments, -8),
        (ErrorCode::NoNode, -101),
        (ErrorCode::NoAuth, -102),
        (ErrorCode::BadVersion, -103),
        (ErrorCode::NoChildrenForEphemerals, -108),
        (ErrorCode::NodeExists, -110),
        (ErrorCode::NotEmpty, -111),
        (ErrorCode::SessionExpired, -112),
        (ErrorCode::InvalidAcl, -114),
        (ErrorCode::NoWatcher, -121),
        (ErrorCode::Throttled, -127),
    ];
    for (code, value) in &numeric {
        assert_eq!(*code as i32, *value, "{code:?}");
    }
    for (code, _) in &numeric[1..11] {
        assert!(reached.contains(code), "{code:?} not reached");
    }
}

#[test]
fn entries_must_increase() {
    // Proves applying an entry whose zxid is not above the last one is refused
    // (a caller bug that must stop the node, not corrupt state).
    let mut h = Harness::new();
    h.apply(Command::Noop);
    let mut sm = StateMachine::new(Limits::default());
    sm.apply(h.log[0].clone());
    let again = h.log[0].clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sm.apply(again.clone())));
    assert!(r.is_err());
    let older = Entry { zxid: Zxid(0), ..again };
    let mut fresh = StateMachine::new(Limits::default());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fresh.apply(older.clone())));
    assert!(r.is_err());
}
