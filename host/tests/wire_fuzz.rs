//! Property tests of the frame codec on hostile input, for the three kinds
//! of frame that cross the network (`ClientFrame`, `ServerFrame`,
//! `PeerFrame`): whatever the bytes, decoding returns a value or an error,
//! never a panic; a cut-off frame is never taken for a whole one; a frame
//! announcing more than the limit is refused before anything is allocated
//! for it; and frames round-trip, also when the stream hands them over a
//! byte at a time. A counting allocator measures the largest allocation,
//! so "without allocating it" is checked, not assumed.

use bytes::Bytes;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use warren::consensus::{
    Body, EntryKind, LogEntry, LogIndex, Membership, Message, NodeId, SnapshotMeta, Term,
};
use warren::node::peer::PeerFrame;
use warren_client::frame::{self, FrameError};
use warren_client::wire::{
    Answer, ClientFrame, Failure, Goodbye, Hello, Read, Refusal, Request, ServerFrame,
    ServerStatus, WatchSet, Welcome,
};
use warren_client::{
    Acl, ApiError, CreateMode, EventType, Id, Op, OpResult, Perms, SessionId, SessionSecret, Stat,
    WatchKind, WatchedEvent, Zxid,
};

// ---- The largest allocation made by this thread.

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: allocations during thread teardown are not measured.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// bookkeeping touches only a const-initialised thread-local Cell, which
// never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is the system's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` on this thread and returns its result with the largest single
/// allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let value = f();
    (value, LARGEST.with(Cell::get))
}

/// Runs a future to completion on this thread.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

// ---- Sample frames: every variant, with nested and optional parts.

fn stat(n: u64) -> Stat {
    Stat {
        czxid: Zxid(n),
        mzxid: Zxid(n + 1),
        ctime: -5,
        mtime: i64::MAX,
        version: 3,
        cversion: -1,
        aversion: i32::MAX,
        ephemeral_owner: 1 << 63,
        data_length: 4,
        num_children: 2,
        pzxid: Zxid(u64::MAX),
    }
}

fn client_frames() -> Vec<ClientFrame> {
    let request = |xid, request| ClientFrame::Request { xid, request };
    let read = |read| Request::Read { read, linearizable: false };
    vec![
        ClientFrame::Hello(Hello {
            session: Some(SessionId(0x1234_5678)),
            secret: SessionSecret([0xa5; 16]),
            timeout_ms: 10_000,
            last_zxid: Zxid(99),
            watches: WatchSet {
                data: vec!["/a".into()],
                exist: vec!["/b".into(), "/b/c".into()],
                child: vec!["/".into()],
                persistent: vec!["/p".into()],
                recursive: vec!["/r".into()],
            },
        }),
        ClientFrame::Hello(Hello::default()),
        request(
            7,
            Request::Write(Op::Multi(vec![
                Op::Create {
                    path: "/a".into(),
                    data: b"hello".to_vec(),
                    acl: vec![Acl::new(Perms::ALL, Id::x509("CN=admin"))],
                    mode: CreateMode::PersistentSequentialWithTtl { ttl_ms: 60_000 },
                },
                Op::SetData { path: "/a".into(), data: vec![0, 255], version: Some(-1) },
                Op::SetAcl { path: "/a".into(), acl: Acl::open(), version: None },
                Op::Check { path: "/b".into(), version: Some(4) },
                Op::Delete { path: "/a".into(), version: None },
            ])),
        ),
        request(
            u64::MAX,
            Request::Read {
                read: Read::GetChildren {
                    path: "/q".into(),
                    watch: true,
                    after: Some("k9".into()),
                },
                linearizable: true,
            },
        ),
        request(1, read(Read::GetData { path: "/a".into(), watch: false })),
        request(2, read(Read::Exists { path: "/a".into(), watch: true })),
        request(3, read(Read::GetAcl { path: "/a".into() })),
        request(4, read(Read::GetEphemerals { prefix: "/e".into() })),
        request(5, read(Read::GetAllChildrenNumber { path: "/".into() })),
        request(6, Request::Sync { path: "/".into() }),
        request(8, Request::AddWatch { path: "/w".into(), kind: WatchKind::PersistentRecursive }),
        request(9, Request::RemoveWatch { path: "/w".into(), kind: WatchKind::Any }),
        request(10, Request::Status),
        request(11, Request::AddAuth { scheme: "digest".into(), auth: b"bob:pw".to_vec() }),
        request(
            12,
            Request::SetWatches {
                last_zxid: Zxid(3),
                watches: WatchSet { child: vec!["/c".into()], ..WatchSet::default() },
            },
        ),
        ClientFrame::Ping,
        ClientFrame::Close,
    ]
}

fn server_frames() -> Vec<ServerFrame> {
    let response = |result| ServerFrame::Response { xid: 42, zxid: Zxid(7), result };
    vec![
        ServerFrame::Welcome(Welcome {
            session: SessionId(5),
            secret: SessionSecret([7; 16]),
            timeout_ms: 4_000,
            server: 2,
            zxid: Zxid(5),
            events_lost: true,
        }),
        ServerFrame::Refused(Refusal::Behind { server: Zxid(3), client: Zxid(9) }),
        ServerFrame::Refused(Refusal::Failed(Failure::Unavailable { why: "no leader".into() })),
        ServerFrame::Refused(Refusal::NoHello),
        response(Ok(Answer::Data { data: b"data".to_vec(), stat: stat(1) })),
        response(Ok(Answer::Children {
            names: vec!["a".into(), "b".into()],
            stat: stat(2),
            more: true,
        })),
        response(Ok(Answer::Exists(None))),
        response(Ok(Answer::Acl { acl: Acl::creator_all(), stat: stat(3) })),
        response(Ok(Answer::Write(Ok(OpResult::Multi(vec![
            OpResult::Create { path: "/a0000000001".into(), stat: stat(4) },
            OpResult::Delete,
            OpResult::Check,
        ]))))),
        response(Ok(Answer::Write(Err(ApiError::BadVersion {
            path: "/a".into(),
            expected: 5,
            actual: 0,
        })))),
        response(Ok(Answer::Status(ServerStatus {
            node: 1,
            role: "leader".into(),
            term: 3,
            leader: Some(1),
            commit: 10,
            applied: Zxid(10),
            digest: u64::MAX,
            sessions: 2,
            znodes: 5,
        }))),
        response(Ok(Answer::Count(17))),
        response(Ok(Answer::Authenticated)),
        response(Ok(Answer::WatchesSet { events_lost: true })),
        ServerFrame::Refused(Refusal::WrongSecret { session: SessionId(5) }),
        response(Err(Failure::Api(ApiError::NoNode { path: "/missing".into() }))),
        response(Err(Failure::Throttled { max: 4096 })),
        ServerFrame::Event(WatchedEvent {
            event: EventType::NodeChildrenChanged,
            path: "/q".into(),
            zxid: Zxid(8),
        }),
        ServerFrame::Pong,
        ServerFrame::Closed,
        ServerFrame::Goodbye(Goodbye::TooSlow { pending: 16_384 }),
        ServerFrame::Goodbye(Goodbye::Expired { session: SessionId(5) }),
    ]
}

fn peer_frames() -> Vec<PeerFrame> {
    let raft =
        |body| PeerFrame::Raft(Message { from: NodeId(1), to: NodeId(2), term: Term(4), body });
    vec![
        PeerFrame::Hello { from: 3 },
        raft(Body::Append {
            prev_index: LogIndex(9),
            prev_term: Term(3),
            entries: vec![
                LogEntry {
                    index: LogIndex(10),
                    term: Term(4),
                    time_ms: 1_700_000_000_000,
                    kind: EntryKind::Noop,
                },
                LogEntry {
                    index: LogIndex(11),
                    term: Term(4),
                    time_ms: -1,
                    kind: EntryKind::Command(Bytes::from_static(b"\x00command\xff")),
                },
            ],
            commit: LogIndex(10),
        }),
        raft(Body::AppendResponse { index: LogIndex(5), reject: Some(LogIndex(3)) }),
        raft(Body::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(100),
                term: Term(4),
                membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            },
            total: 1 << 20,
            offset: 4096,
            chunk: Bytes::from(vec![7u8; 64]),
        }),
        raft(Body::Vote { last_index: LogIndex(3), last_term: Term(2), transfer: true }),
        raft(Body::Heartbeat { commit: LogIndex(10), read: Some(3) }),
        raft(Body::ReadIndexResponse { ctx: 8, index: None }),
        raft(Body::TimeoutNow),
        PeerFrame::Forward { id: 12, term: Some(4), command: vec![1, 2, 3] },
        PeerFrame::Forward { id: 14, term: None, command: vec![4] },
        PeerFrame::Forwarded { id: 12, result: Ok((11, 4)) },
        PeerFrame::Forwarded { id: 13, result: Err(Some(3)) },
        PeerFrame::Touch { sessions: vec![SessionId(5), SessionId(6)] },
    ]
}

/// A frame's CBOR body: its encoding without the length prefix.
fn body<T: Serialize>(message: &T) -> Vec<u8> {
    let bytes = frame::encode(message);
    let len = u32::from_be_bytes(bytes[..4].try_into().expect("a 4-byte prefix")) as usize;
    assert_eq!(len, bytes.len() - 4, "the prefix counts the body");
    bytes[4..].to_vec()
}

/// Every single-bit flip of a valid body decodes or fails cleanly, every
/// strict prefix fails (CBOR items are self-delimiting, so a cut-off
/// frame is never a whole one), and trailing bytes are refused.
fn check_damage<T: Serialize + DeserializeOwned + Debug>(frames: &[T]) {
    for message in frames {
        let body = body(message);
        frame::decode::<T>(&body)
            .unwrap_or_else(|e| panic!("{message:?} does not decode from its encoding: {e}"));
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut damaged = body.clone();
                damaged[i] ^= 1 << bit;
                let _ = frame::decode::<T>(&damaged);
            }
        }
        for n in 0..body.len() {
            if let Ok(taken) = frame::decode::<T>(&body[..n]) {
                panic!("{n} of {} bytes of {message:?} decoded as {taken:?}", body.len());
            }
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(frame::decode::<T>(&longer).is_err(), "a trailing byte after {message:?}");
    }
}

#[test]
fn damaged_client_frames_never_panic() {
    // Proves bit flips and truncations of every ClientFrame variant are
    // values or errors, never panics, and truncations are always errors.
    check_damage(&client_frames());
}

#[test]
fn damaged_server_frames_never_panic() {
    // Proves the same for every ServerFrame variant.
    check_damage(&server_frames());
}

#[test]
fn damaged_peer_frames_never_panic() {
    // Proves the same for every PeerFrame variant.
    check_damage(&peer_frames());
}

#[test]
fn sample_frames_round_trip() {
    // Proves each sample ClientFrame and ServerFrame decodes back to
    // itself, and each PeerFrame to one that prints the same (PeerFrame
    // has no PartialEq).
    for f in client_frames() {
        assert_eq!(frame::decode::<ClientFrame>(&body(&f)).expect("decodes"), f);
    }
    for f in server_frames() {
        assert_eq!(frame::decode::<ServerFrame>(&body(&f)).expect("decodes"), f);
    }
    for f in peer_frames() {
        let back = frame::decode::<PeerFrame>(&body(&f)).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{f:?}"));
    }
}

#[test]
fn huge_lengths_inside_a_body_allocate_nothing_like_them() {
    // Proves a body whose CBOR announces a string, byte string, array or
    // map of 2^64 - 1 (or 2^32 - 1) items, bare or where a frame's field
    // expects one, fails to decode without allocating more than 1 MiB.
    let mut bare: Vec<Vec<u8>> = Vec::new();
    for major in [0x5b, 0x7b, 0x9b, 0xbb] {
        bare.push([&[major][..], &[0xff; 8]].concat());
    }
    for major in [0x5a, 0x7a, 0x9a, 0xba] {
        bare.push([&[major][..], &[0xff; 4]].concat());
    }
    let mut bodies = bare.clone();
    // {"Welcome": <huge>}, {"Forward": {"id": 1, "command": <huge bytes>}}.
    let welcome = [&[0xa1, 0x67][..], b"Welcome"].concat();
    let forward =
        [&[0xa1, 0x67][..], b"Forward", &[0xa2, 0x62], b"id", &[0x01, 0x67], b"command"].concat();
    for prefix in [welcome, forward] {
        for huge in &bare {
            bodies.push([&prefix[..], huge].concat());
        }
    }
    for body in &bodies {
        let (results, largest) = largest_allocation(|| {
            [
                frame::decode::<ClientFrame>(body).is_err(),
                frame::decode::<ServerFrame>(body).is_err(),
                frame::decode::<PeerFrame>(body).is_err(),
            ]
        });
        assert_eq!(results, [true; 3], "{body:02x?} decoded");
        assert!(largest <= 1 << 20, "{body:02x?} made a {largest}-byte allocation");
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_its_body_is_read_or_allocated() {
    // Proves frame::read refuses a length prefix over its max with
    // TooLong, without reading a body (there is none to read: a reader
    // that tried would hit the end of the input) and without allocating
    // anything near the announced size.
    for announced in [1025u32, 1 << 30, u32::MAX] {
        let stream = announced.to_be_bytes();
        let (result, largest) =
            largest_allocation(|| block_on(frame::read::<ClientFrame, _>(&mut &stream[..], 1024)));
        match result {
            Err(FrameError::TooLong { len, max: 1024 }) => assert_eq!(len, announced as usize),
            other => panic!("announced {announced} bytes, got {other:?}"),
        }
        assert!(largest < 1 << 20, "announced {announced}: a {largest}-byte allocation");
    }
    // Control: the measurement sees a body that is allowed and read.
    let mut stream = (2u32 << 20).to_be_bytes().to_vec();
    stream.resize(4 + (2 << 20), 0);
    let (_, largest) =
        largest_allocation(|| block_on(frame::read::<ClientFrame, _>(&mut &stream[..], 4 << 20)));
    assert!(largest >= 2 << 20, "a 2 MiB body was read with only {largest} bytes allocated");
}

#[test]
fn deeply_nested_multis_fail_without_overflowing_the_stack() {
    // Proves a client frame nesting Multi inside Multi 100,000 deep (Op is
    // recursive through Multi) is refused with an error instead of
    // exhausting a tokio worker's stack, while a shallow nesting still
    // decodes.
    let nested = |depth: usize| {
        // {"Request": {"xid": 1, "request": {"Write": M}}}, where M is
        // {"Multi": [M]} `depth` times around {"Multi": []}.
        let mut bytes =
            [&[0xa1, 0x67][..], b"Request", &[0xa2, 0x63], b"xid", &[0x01, 0x67]].concat();
        bytes.extend_from_slice(b"request");
        bytes.extend_from_slice(&[0xa1, 0x65]);
        bytes.extend_from_slice(b"Write");
        for _ in 0..depth {
            bytes.extend_from_slice(&[0xa1, 0x65]);
            bytes.extend_from_slice(b"Multi");
            bytes.push(0x81);
        }
        bytes.extend_from_slice(&[0xa1, 0x65]);
        bytes.extend_from_slice(b"Multi");
        bytes.push(0x80);
        bytes
    };
    let shallow = frame::decode::<ClientFrame>(&nested(2)).expect("a shallow nesting decodes");
    assert!(matches!(shallow, ClientFrame::Request { xid: 1, .. }), "{shallow:?}");
    // On a thread with the stack of a tokio worker (2 MiB), where the
    // nodes decode frames: ciborium's recursion limit must stop the
    // nesting before the stack runs out.
    let deep = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || frame::decode::<ClientFrame>(&nested(100_000)).is_err())
        .expect("a thread")
        .join();
    assert!(matches!(deep, Ok(true)), "100,000 nested multis: {deep:?}");
}

#[test]
fn the_frame_limit_is_inclusive_and_short_input_is_an_error() {
    // Proves a frame exactly at the limit is read and one byte over is
    // refused; an empty stream is a clean end, while a cut-off prefix or
    // body is an I/O error, never a frame.
    let bytes = frame::encode(&ClientFrame::Ping);
    let len = bytes.len() - 4;
    let read =
        |max: usize, input: &[u8]| block_on(frame::read::<ClientFrame, _>(&mut &*input, max));
    assert_eq!(read(len, &bytes).expect("at the limit"), Some(ClientFrame::Ping));
    assert!(matches!(read(len - 1, &bytes), Err(FrameError::TooLong { .. })));
    assert!(matches!(read(1024, &[]), Ok(None)));
    assert!(matches!(read(1024, &bytes[..2]), Err(FrameError::Io(_))));
    assert!(matches!(read(1024, &bytes[..bytes.len() - 1]), Err(FrameError::Io(_))));
}

/// A reader that hands over one byte per read.
struct Trickle<'a>(&'a [u8]);

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some((&first, rest)) = self.0.split_first() {
            buf.put_slice(&[first]);
            self.0 = rest;
        }
        Poll::Ready(Ok(()))
    }
}

#[test]
fn frames_split_into_single_bytes_come_back_in_order() {
    // Proves frames written back to back and delivered a byte per read
    // are read back whole, in order, then a clean end of stream.
    let frames = client_frames();
    let stream: Vec<u8> = frames.iter().flat_map(frame::encode).collect();
    let mut reader = Trickle(&stream);
    let read = block_on(async {
        let mut read = Vec::new();
        while let Some(f) = frame::read::<ClientFrame, _>(&mut reader, 1 << 20).await.expect("read")
        {
            read.push(f);
        }
        read
    });
    assert_eq!(read, frames);
}

// ---- Generated frames and bytes.

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["(/[a-z0-9]{1,6}){0,4}", any::<String>()]
}

fn op() -> impl Strategy<Value = Op> {
    let version = proptest::option::of(any::<i32>());
    let data = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (text(), data.clone(), any::<u64>()).prop_map(|(path, data, ttl_ms)| Op::Create {
            path,
            data,
            acl: Acl::open(),
            mode: CreateMode::PersistentWithTtl { ttl_ms },
        }),
        (text(), version.clone()).prop_map(|(path, version)| Op::Delete { path, version }),
        (text(), data, version.clone()).prop_map(|(path, data, version)| Op::SetData {
            path,
            data,
            version
        }),
        (text(), version).prop_map(|(path, version)| Op::Check { path, version }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let hello = (
        proptest::option::of(any::<u64>()),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(session, timeout_ms, zxid, paths)| {
            ClientFrame::Hello(Hello {
                session: session.map(SessionId),
                secret: SessionSecret([zxid as u8; 16]),
                timeout_ms,
                last_zxid: Zxid(zxid),
                watches: WatchSet { data: paths.clone(), recursive: paths, ..WatchSet::default() },
            })
        });
    let write = (any::<u64>(), proptest::collection::vec(op(), 1..4)).prop_map(|(xid, mut ops)| {
        let op = if ops.len() == 1 { ops.remove(0) } else { Op::Multi(ops) };
        ClientFrame::Request { xid, request: Request::Write(op) }
    });
    let read = (any::<u64>(), text(), any::<bool>(), proptest::option::of(text())).prop_map(
        |(xid, path, watch, after)| ClientFrame::Request {
            xid,
            request: Request::Read {
                read: Read::GetChildren { path, watch, after },
                linearizable: watch,
            },
        },
    );
    prop_oneof![hello, write, read, Just(ClientFrame::Ping), Just(ClientFrame::Close)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Proves arbitrary bytes decode to a frame or an error, never a
        // panic, as each kind of frame.
        let _ = frame::decode::<ClientFrame>(&bytes);
        let _ = frame::decode::<ServerFrame>(&bytes);
        let _ = frame::decode::<PeerFrame>(&bytes);
    }

    #[test]
    fn overwritten_bytes_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        // Proves valid encodings with several bytes overwritten anywhere
        // still decode to something or fail cleanly.
        let bodies: Vec<Vec<u8>> = client_frames()
            .iter()
            .map(body)
            .chain(server_frames().iter().map(body))
            .chain(peer_frames().iter().map(body))
            .collect();
        let mut bytes = which.get(&bodies).clone();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = frame::decode::<ClientFrame>(&bytes);
        let _ = frame::decode::<ServerFrame>(&bytes);
        let _ = frame::decode::<PeerFrame>(&bytes);
    }

    #[test]
    fn generated_client_frames_round_trip(f in client_frame()) {
        // Proves any generated ClientFrame decodes back to itself.
        prop_assert_eq!(frame::decode::<ClientFrame>(&body(&f)).expect("decodes"), f);
    }
}
