//! The ZooKeeper protocol's codec: request bodies decode to what a client
//! encoded, replies encode as ZooKeeper lays them out, and bad bytes are
//! errors (never a panic or a large allocation).

use proptest::prelude::*;
use warren::zookeeper::jute::{Bounds, JuteError, Reader, Writer, read_stat};
use warren::zookeeper::records::{
    ConnectRequest, CreateOp, MultiResult, ReplyHeader, ZkRequest, ZkResponse, op,
};
use warren_client::{Acl, Id, Perms, Stat, Zxid};

const BOUNDS: Bounds = Bounds { bytes_max: 1 << 20, elements_max: 1 << 16 };

fn stat() -> Stat {
    Stat {
        czxid: Zxid(0x1_0000_0002),
        mzxid: Zxid(3),
        ctime: 1_700_000_000_000,
        mtime: -1,
        version: 7,
        cversion: 3,
        aversion: 1,
        ephemeral_owner: 0x0100_0000_0000_0001,
        data_length: 5,
        num_children: 2,
        pzxid: Zxid(9),
    }
}

fn acl() -> Vec<Acl> {
    vec![
        Acl::new(Perms::ALL, Id::new("world", "anyone")),
        Acl::new(Perms::READ, Id::new("digest", "bob:hash=")),
    ]
}

/// A create body as a ZooKeeper client writes it.
fn create_body(w: &mut Writer, path: &str, ttl: Option<i64>) {
    w.ustring(path);
    w.buffer(Some(b"data"));
    w.acl(&acl());
    w.int(1);
    if let Some(ttl) = ttl {
        w.long(ttl);
    }
}

/// Every opcode's body as a client writes it, and what it must decode to.
fn cases() -> Vec<(i32, Vec<u8>, ZkRequest)> {
    let mut cases = Vec::new();
    let mut add = |op: i32, write: &dyn Fn(&mut Writer), expected: ZkRequest| {
        let mut w = Writer::default();
        write(&mut w);
        cases.push((op, w.bytes, expected));
    };
    for (code, create_op) in [
        (op::CREATE, CreateOp::Create),
        (op::CREATE2, CreateOp::Create2),
        (op::CREATE_CONTAINER, CreateOp::Container),
    ] {
        add(
            code,
            &|w| create_body(w, "/a", None),
            ZkRequest::Create {
                op: create_op,
                path: "/a".into(),
                data: b"data".to_vec(),
                acl: acl(),
                flags: 1,
                ttl_ms: 0,
            },
        );
    }
    add(
        op::CREATE_TTL,
        &|w| create_body(w, "/t", Some(60_000)),
        ZkRequest::Create {
            op: CreateOp::Ttl,
            path: "/t".into(),
            data: b"data".to_vec(),
            acl: acl(),
            flags: 1,
            ttl_ms: 60_000,
        },
    );
    add(
        op::DELETE,
        &|w| {
            w.ustring("/a");
            w.int(-1);
        },
        ZkRequest::Delete { path: "/a".into(), version: -1 },
    );
    add(
        op::DELETE_CONTAINER,
        &|w| w.ustring("/c"),
        ZkRequest::DeleteContainer { path: "/c".into() },
    );
    for (code, watch) in [(op::EXISTS, true), (op::GET_DATA, false)] {
        let expected = if code == op::EXISTS {
            ZkRequest::Exists { path: "/e".into(), watch }
        } else {
            ZkRequest::GetData { path: "/e".into(), watch }
        };
        add(
            code,
            &|w| {
                w.ustring("/e");
                w.bool(watch);
            },
            expected,
        );
    }
    add(
        op::SET_DATA,
        &|w| {
            w.ustring("/s");
            w.buffer(None);
            w.int(3);
        },
        ZkRequest::SetData { path: "/s".into(), data: Vec::new(), version: 3 },
    );
    add(op::GET_ACL, &|w| w.ustring("/g"), ZkRequest::GetAcl { path: "/g".into() });
    add(
        op::SET_ACL,
        &|w| {
            w.ustring("/g");
            w.acl(&acl());
            w.int(0);
        },
        ZkRequest::SetAcl { path: "/g".into(), acl: acl(), version: 0 },
    );
    for (code, two) in [(op::GET_CHILDREN, false), (op::GET_CHILDREN2, true)] {
        add(
            code,
            &|w| {
                w.ustring("/");
                w.bool(true);
            },
            ZkRequest::GetChildren { path: "/".into(), watch: true, two },
        );
    }
    add(op::SYNC, &|w| w.ustring("/"), ZkRequest::Sync { path: "/".into() });
    add(op::PING, &|_| {}, ZkRequest::Ping);
    add(
        op::CHECK,
        &|w| {
            w.ustring("/k");
            w.int(4);
        },
        ZkRequest::Check { path: "/k".into(), version: 4 },
    );
    add(
        op::MULTI,
        &|w| {
            w.int(op::CREATE);
            w.bool(false);
            w.int(-1);
            create_body(w, "/m", None);
            w.int(op::CHECK);
            w.bool(false);
            w.int(-1);
            w.ustring("/k");
            w.int(4);
            w.int(-1);
            w.bool(true);
            w.int(-1);
        },
        ZkRequest::Multi {
            read: false,
            ops: vec![
                ZkRequest::Create {
                    op: CreateOp::Create,
                    path: "/m".into(),
                    data: b"data".to_vec(),
                    acl: acl(),
                    flags: 1,
                    ttl_ms: 0,
                },
                ZkRequest::Check { path: "/k".into(), version: 4 },
            ],
        },
    );
    add(
        op::MULTI_READ,
        &|w| {
            w.int(op::GET_CHILDREN);
            w.bool(false);
            w.int(-1);
            w.ustring("/");
            w.bool(false);
            w.int(-1);
            w.bool(true);
            w.int(-1);
        },
        ZkRequest::Multi {
            read: true,
            ops: vec![ZkRequest::GetChildren { path: "/".into(), watch: false, two: false }],
        },
    );
    add(
        op::RECONFIG,
        &|w| {
            w.buffer(None);
            w.ustring("server.4=h:1:2");
            w.buffer(None);
            w.long(-1);
        },
        ZkRequest::Reconfig {
            joining: None,
            leaving: Some("server.4=h:1:2".into()),
            members: None,
            config_id: -1,
        },
    );
    for code in [op::CHECK_WATCHES, op::REMOVE_WATCHES] {
        let expected = if code == op::CHECK_WATCHES {
            ZkRequest::CheckWatches { path: "/w".into(), kind: 3 }
        } else {
            ZkRequest::RemoveWatches { path: "/w".into(), kind: 3 }
        };
        add(
            code,
            &|w| {
                w.ustring("/w");
                w.int(3);
            },
            expected,
        );
    }
    add(
        op::AUTH,
        &|w| {
            w.int(0);
            w.ustring("digest");
            w.buffer(Some(b"bob:pw"));
        },
        ZkRequest::Auth { kind: 0, scheme: "digest".into(), auth: b"bob:pw".to_vec() },
    );
    add(
        op::SET_WATCHES,
        &|w| {
            w.long(5);
            w.strings(&["/d"]);
            w.strings(&["/e1", "/e2"]);
            w.strings::<&str>(&[]);
        },
        ZkRequest::SetWatches {
            relative_zxid: 5,
            data: vec!["/d".into()],
            exist: vec!["/e1".into(), "/e2".into()],
            child: Vec::new(),
            persistent: Vec::new(),
            recursive: Vec::new(),
        },
    );
    add(
        op::SET_WATCHES2,
        &|w| {
            w.long(5);
            w.strings::<&str>(&[]);
            w.strings::<&str>(&[]);
            w.strings(&["/c"]);
            w.strings(&["/p"]);
            w.strings(&["/r"]);
        },
        ZkRequest::SetWatches {
            relative_zxid: 5,
            data: Vec::new(),
            exist: Vec::new(),
            child: vec!["/c".into()],
            persistent: vec!["/p".into()],
            recursive: vec!["/r".into()],
        },
    );
    add(op::SASL, &|w| w.buffer(Some(b"tok")), ZkRequest::Sasl { token: b"tok".to_vec() });
    add(
        op::GET_EPHEMERALS,
        &|w| w.ustring("/app"),
        ZkRequest::GetEphemerals { prefix: "/app".into() },
    );
    add(
        op::GET_ALL_CHILDREN_NUMBER,
        &|w| w.ustring("/"),
        ZkRequest::GetAllChildrenNumber { path: "/".into() },
    );
    add(
        op::ADD_WATCH,
        &|w| {
            w.ustring("/r");
            w.int(1);
        },
        ZkRequest::AddWatch { path: "/r".into(), mode: 1 },
    );
    add(op::WHO_AM_I, &|_| {}, ZkRequest::WhoAmI);
    add(op::CLOSE_SESSION, &|_| {}, ZkRequest::CloseSession);
    cases
}

#[test]
fn every_request_body_decodes_to_what_the_client_encoded() {
    // Proves each of ZooKeeper's client opcodes (30 of them, multi and
    // multiRead included) decodes from the bytes a ZooKeeper client writes
    // into the request it meant.
    let cases = cases();
    let mut ops: Vec<i32> = cases.iter().map(|(op, ..)| *op).collect();
    ops.sort();
    ops.dedup();
    assert_eq!(ops.len(), 30, "opcodes covered: {ops:?}");
    for (code, bytes, expected) in cases {
        let decoded = ZkRequest::decode(code, &bytes, BOUNDS);
        assert_eq!(decoded.as_ref(), Ok(&expected), "opcode {code}");
    }
}

#[test]
fn every_truncated_request_body_is_an_error() {
    // Proves no proper prefix of a request body with fields decodes: the
    // decoder never reads past the end or takes a cut body for whole.
    for (code, bytes, _) in cases() {
        for len in 0..bytes.len() {
            let decoded = ZkRequest::decode(code, &bytes[..len], BOUNDS);
            assert!(
                matches!(decoded, Err(JuteError::Truncated { .. })),
                "opcode {code}, {len} of {} bytes: {decoded:?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn lengths_and_counts_beyond_their_bounds_are_refused() {
    // Proves a declared length over the byte bound, a count over the
    // element bound or beyond the bytes left, a negative length other than
    // null, an unknown opcode, a multi inside a multi and reads and writes
    // mixed across multi and multiRead are errors.
    let decode = |op, write: &dyn Fn(&mut Writer)| {
        let mut w = Writer::default();
        write(&mut w);
        ZkRequest::decode(op, &w.bytes, BOUNDS)
    };
    let long_path = decode(op::GET_DATA, &|w| w.int(i32::MAX));
    assert!(matches!(long_path, Err(JuteError::TooLong { .. })), "{long_path:?}");
    let negative = decode(op::GET_DATA, &|w| w.int(-7));
    assert!(matches!(negative, Err(JuteError::NegativeLength { .. })), "{negative:?}");
    let null_path = decode(op::GET_DATA, &|w| {
        w.int(-1);
        w.bool(false);
    });
    assert!(matches!(null_path, Err(JuteError::Null { .. })), "{null_path:?}");
    let many = decode(op::SET_WATCHES, &|w| {
        w.long(0);
        w.int(1 << 20);
    });
    assert!(matches!(many, Err(JuteError::TooLong { .. })), "{many:?}");
    let beyond = decode(op::SET_WATCHES, &|w| {
        w.long(0);
        w.int(1000);
        w.ustring("/only-one");
    });
    assert!(matches!(beyond, Err(JuteError::Truncated { .. })), "{beyond:?}");
    let bad_utf8 = decode(op::SYNC, &|w| w.buffer(Some(&[0xff, 0xfe])));
    assert!(matches!(bad_utf8, Err(JuteError::NotUtf8 { .. })), "{bad_utf8:?}");
    assert_eq!(decode(42, &|_| {}), Err(JuteError::UnknownOp(42)));
    let nested = decode(op::MULTI, &|w| {
        w.int(op::MULTI);
        w.bool(false);
        w.int(-1);
    });
    assert!(matches!(nested, Err(JuteError::NotInMulti(_))), "{nested:?}");
    let sync_in_multi = decode(op::MULTI, &|w| {
        w.int(op::SYNC);
        w.bool(false);
        w.int(-1);
        w.ustring("/");
    });
    assert!(matches!(sync_in_multi, Err(JuteError::NotInMulti("sync"))), "{sync_in_multi:?}");
    // A multi takes writes and checks, a multiRead reads: never mixed.
    let read_in_multi = decode(op::MULTI, &|w| {
        w.int(op::GET_DATA);
        w.bool(false);
        w.int(-1);
        w.ustring("/");
        w.bool(false);
    });
    assert!(matches!(read_in_multi, Err(JuteError::NotInMulti("getData"))), "{read_in_multi:?}");
    let write_in_read = decode(op::MULTI_READ, &|w| {
        w.int(op::DELETE);
        w.bool(false);
        w.int(-1);
        w.ustring("/d");
        w.int(-1);
    });
    assert!(matches!(write_in_read, Err(JuteError::NotInMulti("delete"))), "{write_in_read:?}");
}

#[test]
fn connect_requests_decode_with_and_without_the_read_only_byte() {
    // Proves the handshake decodes from clients that send the read-only
    // byte and from older ones that end the request before it.
    let mut w = Writer::default();
    w.int(0);
    w.long(0x42);
    w.int(30_000);
    w.long(0x1234);
    w.buffer(Some(&[9; 16]));
    let without = ConnectRequest::decode(&w.bytes, BOUNDS).expect("decodes");
    assert_eq!(without.session_id, 0x1234);
    assert_eq!(without.password, vec![9; 16]);
    assert_eq!(without.read_only, None);
    w.bool(true);
    let with = ConnectRequest::decode(&w.bytes, BOUNDS).expect("decodes");
    assert_eq!(with, ConnectRequest { read_only: Some(true), ..without });
}

#[test]
fn replies_are_laid_out_as_zookeeper_lays_them_out() {
    // Proves the reply header, a getData body (buffer then the 68-byte
    // Stat, big-endian, fields in jute's order), a failed multi's results
    // (headers with per-op codes, then the end marker), creates inside a
    // multi and addWatch's answer encode to the bytes ZooKeeper sends.
    let mut w = Writer::default();
    ReplyHeader { xid: 7, zxid: 0x10, err: 0 }.encode(&mut w);
    ZkResponse::Data { data: b"hello".to_vec(), stat: stat() }.encode(&mut w);
    let mut expected = Vec::new();
    expected.extend_from_slice(&7i32.to_be_bytes());
    expected.extend_from_slice(&0x10i64.to_be_bytes());
    expected.extend_from_slice(&0i32.to_be_bytes());
    expected.extend_from_slice(&5i32.to_be_bytes());
    expected.extend_from_slice(b"hello");
    let s = stat();
    for long in [s.czxid.0 as i64, s.mzxid.0 as i64, s.ctime, s.mtime] {
        expected.extend_from_slice(&long.to_be_bytes());
    }
    // The cversion clients see: 3 creations of children, 2 left, so one
    // deletion: 4 changes.
    for int in [s.version, 4, s.aversion] {
        expected.extend_from_slice(&int.to_be_bytes());
    }
    expected.extend_from_slice(&(s.ephemeral_owner as i64).to_be_bytes());
    expected.extend_from_slice(&(s.data_length as i32).to_be_bytes());
    expected.extend_from_slice(&(s.num_children as i32).to_be_bytes());
    expected.extend_from_slice(&(s.pzxid.0 as i64).to_be_bytes());
    assert_eq!(w.bytes, expected);
    let mut r = Reader::new(&w.bytes[16 + 4 + 5..], BOUNDS);
    assert_eq!(read_stat(&mut r), Ok(Stat { cversion: 4, ..stat() }));
    // A container's and a TTL node's owner markers read as 0, as
    // ZooKeeper shows them.
    for marker in [i64::MIN as u64, 0xff00_0000_0000_1000] {
        let mut w = Writer::default();
        w.stat(&Stat { ephemeral_owner: marker, ..stat() });
        let mut r = Reader::new(&w.bytes, BOUNDS);
        assert_eq!(read_stat(&mut r).map(|s| s.ephemeral_owner), Ok(0));
    }

    let mut w = Writer::default();
    ZkResponse::Multi(vec![MultiResult::Error(0), MultiResult::Error(-101)]).encode(&mut w);
    let mut expected = Vec::new();
    for (kind, done, err) in [(-1i32, 0u8, 0i32), (-1, 0, -101)] {
        expected.extend_from_slice(&kind.to_be_bytes());
        expected.push(done);
        expected.extend_from_slice(&err.to_be_bytes());
        expected.extend_from_slice(&err.to_be_bytes());
    }
    expected.extend_from_slice(&(-1i32).to_be_bytes());
    expected.push(1);
    expected.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(w.bytes, expected);

    // A plain create inside a multi answers with its path; every other
    // create (container and TTL too) as create2, with the Stat.
    let create = |op| MultiResult::Create { op, path: "/x".into(), stat: stat() };
    let mut without = Writer::default();
    ZkResponse::Multi(vec![create(CreateOp::Create)]).encode(&mut without);
    assert_eq!(&without.bytes[..4], &op::CREATE.to_be_bytes());
    for kind in [CreateOp::Create2, CreateOp::Container, CreateOp::Ttl] {
        let mut with_stat = Writer::default();
        ZkResponse::Multi(vec![create(kind)]).encode(&mut with_stat);
        assert_eq!(&with_stat.bytes[..4], &op::CREATE2.to_be_bytes(), "{kind:?}");
        assert_eq!(with_stat.bytes.len(), without.bytes.len() + 68, "{kind:?}");
    }

    // addWatch is answered with a record holding 0, which clients read.
    let mut w = Writer::default();
    ZkResponse::AddWatch.encode(&mut w);
    assert_eq!(w.bytes, 0i32.to_be_bytes());
}

/// A change to a well-formed body, as a fuzzer would make it.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// A 4-byte field (a length or a count) overwritten.
    Length {
        at: usize,
        value: i32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let lengths =
        prop_oneof![Just(-1i32), Just(-2), Just(0), Just(i32::MAX), Just(1 << 20), 0i32..300];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), lengths).prop_map(|(at, value)| Mutation::Length { at, value }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Flip { at, bits } if n > 0 => bytes[at % n] ^= bits,
        Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
        Mutation::Insert { at, bytes: more } => {
            let at = at % (n + 1);
            bytes.splice(at..at, more.iter().copied());
        }
        Mutation::Length { at, value } if n >= 4 => {
            let at = at % (n - 3);
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // WARREN_FUZZ_CASES=N runs N (a long fuzzing session); CI runs
        // the default.
        cases: std::env::var("WARREN_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]
    #[test]
    fn mutated_requests_decode_or_fail_without_panicking(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        as_op in prop_oneof![Just(None), (-12i32..=108).prop_map(Some)],
    ) {
        // Proves every opcode's well-formed body, changed as a fuzzer
        // changes inputs (bits flipped, cut short, bytes inserted, lengths
        // and counts replaced) and decoded under its own or another
        // opcode, decodes or fails with an error: never a panic, and never
        // more elements than the bounds allow.
        let corpus = cases();
        let (op, mut bytes, _) = corpus[pick % corpus.len()].clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        if let Ok(ZkRequest::Multi { ops, .. }) = ZkRequest::decode(as_op.unwrap_or(op), &bytes, BOUNDS) {
            prop_assert!(ops.len() <= BOUNDS.elements_max);
        }
        let _ = ConnectRequest::decode(&bytes, BOUNDS);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_for_any_opcode(
        op in prop_oneof![-12i32..=23, 99i32..=108],
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Proves the decoder answers any bytes under any opcode with a
        // request or an error, without panicking.
        let _ = ZkRequest::decode(op, &bytes, BOUNDS);
        let _ = ConnectRequest::decode(&bytes, BOUNDS);
    }
}
