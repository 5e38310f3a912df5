//! Encoding and decoding on the hot path (a bench binary, not a timed
//! test): a client's create request and the server's answer (CBOR frames),
//! the command a log entry carries, and a peer's Append of 64 entries.
//! Reports nanoseconds per encode and per decode, and the encoded size.
//!
//! Run: `cargo bench -p warren --bench codec` (`-- --rounds N`).

use bytes::Bytes;
use std::hint::black_box;
use std::time::Instant;
use warren::Command;
use warren::consensus::{Body, EntryKind, LogEntry, LogIndex, Message, NodeId, Term};
use warren::node::peer::PeerFrame;
use warren_client::frame;
use warren_client::wire::{Answer, ClientFrame, Request, ServerFrame};
use warren_client::{Acl, CreateMode, Op, OpResult, SessionId, Stat, Zxid};

fn create_op() -> Op {
    Op::Create {
        path: "/bench/node-0000012345".into(),
        data: vec![b'x'; 1024],
        acl: Acl::open(),
        mode: CreateMode::Persistent,
    }
}

/// Encodes and decodes `value` `rounds` times; prints ns per encode, per
/// decode and the size.
fn measure<T>(name: &str, rounds: usize, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let started = Instant::now();
    let mut bytes = Vec::new();
    for _ in 0..rounds {
        bytes = frame::encode(black_box(value));
        black_box(&bytes);
    }
    let encode = started.elapsed().as_nanos() as f64 / rounds as f64;
    let started = Instant::now();
    for _ in 0..rounds {
        // The body follows the 4-byte length.
        let decoded: T = frame::decode(black_box(&bytes[4..])).expect("decodes");
        black_box(decoded);
    }
    let decode = started.elapsed().as_nanos() as f64 / rounds as f64;
    println!("  {name:<34} encode {encode:>9.0} ns  decode {decode:>9.0} ns  {:>7} B", bytes.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    println!("codec cost per frame, {rounds} rounds each (CBOR; 1 KiB values)");
    let request = ClientFrame::Request { xid: 42, request: Request::Write(create_op()) };
    measure("client request (create 1 KiB)", rounds, &request);
    let stat = Stat {
        czxid: Zxid(123_456),
        mzxid: Zxid(123_456),
        pzxid: Zxid(123_456),
        ..Stat::default()
    };
    let answer = ServerFrame::Response {
        xid: 42,
        zxid: Zxid(123_456),
        result: Ok(Answer::Write(Ok(OpResult::Create {
            path: "/bench/node-0000012345".into(),
            stat,
        }))),
    };
    measure("server answer (create)", rounds, &answer);
    let command = Command::Request { session: SessionId(7), op: create_op() };
    let started = Instant::now();
    let mut encoded = Vec::new();
    for _ in 0..rounds {
        encoded = black_box(&command).encode();
    }
    let encode = started.elapsed().as_nanos() as f64 / rounds as f64;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(Command::decode(black_box(&encoded)).expect("decodes"));
    }
    let decode = started.elapsed().as_nanos() as f64 / rounds as f64;
    println!(
        "  {:<34} encode {encode:>9.0} ns  decode {decode:>9.0} ns  {:>7} B",
        "log entry command (create 1 KiB)",
        encoded.len()
    );
    let payload = Bytes::from(encoded);
    let entries = (0..64)
        .map(|i| LogEntry {
            index: LogIndex(1000 + i),
            term: Term(3),
            time_ms: 1_700_000_000_000,
            kind: EntryKind::Command(payload.clone()),
        })
        .collect();
    let append = PeerFrame::Raft(Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body: Body::Append {
            prev_index: LogIndex(999),
            prev_term: Term(3),
            entries,
            commit: LogIndex(990),
        },
    });
    measure("peer Append (64 entries)", rounds / 64, &append);
}
