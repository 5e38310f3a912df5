//! Snapshots: a round trip keeps the whole replicated state and a restored
//! machine carries on exactly like the original; equal states write equal
//! bytes in the documented layout; and every corruption (truncation, flipped
//! bytes, trailing bytes, structurally wrong but correctly checksummed files)
//! is an error, never a panic or a silently different state.

mod common;

use common::*;
use std::io::{self, Read, Write};
use warren::state::SecretHash;
use warren::state::snapshot::{self, FORMAT_VERSION, SnapshotError};
use warren::{Command, Entry, Limits, StateMachine};
use warren_client::{Acl, CreateMode, Id, Op, Perms, SessionId, Zxid};
use xxhash_rust::xxh3::xxh3_64;

fn write(sm: &StateMachine) -> Vec<u8> {
    let mut out = Vec::new();
    snapshot::write(sm, &mut out).expect("writing to memory does not fail");
    out
}

fn read(bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
    snapshot::read(bytes, Limits::default())
}

/// Reads without letting a panic escape, so a failing case names itself.
fn read_caught(bytes: &[u8], what: &str) -> Result<StateMachine, SnapshotError> {
    std::panic::catch_unwind(|| read(bytes))
        .unwrap_or_else(|_| panic!("restore panicked on {what}"))
}

/// The identity that may read and administer every node of `rich`.
fn reader() -> Vec<Id> {
    vec![Id::x509("CN=a")]
}

/// Sessions with their timeout, identities, secret's hash and ephemerals.
type SessionRow = (SessionId, u32, Vec<Id>, Option<SecretHash>, Vec<String>);

fn sessions(sm: &StateMachine) -> Vec<SessionRow> {
    sm.sessions()
        .map(|(id, s)| {
            let ephemerals = s.ephemerals().map(str::to_owned).collect();
            (id, s.timeout_ms, s.auth.to_vec(), s.secret, ephemerals)
        })
        .collect()
}

/// A state with every kind of node, ACL and session the snapshot must keep.
fn rich() -> (Harness, [SessionId; 3]) {
    let mut h = Harness::new();
    let a = h.open(vec![Id::x509("CN=a"), Id::digest("alice:aGFzaA==")]);
    let b = h.open(vec![Id::x509("CN=b")]);
    let c = h.open(vec![]);
    let d = h.open(vec![Id::x509("CN=d")]);
    h.created(a, create("/app", b"app"));
    h.created(a, create("/app/config", &(0..=255u8).collect::<Vec<_>>()));
    h.advance(7);
    h.ok(a, set("/app/config", b"v2\0\xff", None));
    h.created(a, create_acl("/app/secret", Acl::creator_all()));
    h.created(
        a,
        create_acl(
            "/app/mixed",
            vec![Acl::new(Perms::READ, Id::anyone()), Acl::new(Perms::ALL, Id::x509("CN=a"))],
        ),
    );
    h.ok(
        a,
        set_acl(
            "/app",
            vec![Acl::new(Perms::ALL, Id::x509("CN=a")), Acl::new(Perms::READ, Id::anyone())],
            None,
        ),
    );
    h.created(a, create_mode("/app/locks", b"", CreateMode::Container));
    for s in [a, b, a] {
        h.created(s, create_mode("/app/locks/lock-", b"", CreateMode::EphemeralSequential));
    }
    h.created(b, create_mode("/b-eph", b"bee", CreateMode::Ephemeral));
    h.created(d, create_mode("/d-eph", b"", CreateMode::Ephemeral));
    h.apply(Command::CloseSession { session: d });
    h.created(a, create_mode("/lease", b"", CreateMode::PersistentWithTtl { ttl_ms: 60_000 }));
    h.created(a, create_mode("/seq-", b"", CreateMode::PersistentSequentialWithTtl { ttl_ms: 5 }));
    h.created(c, create_mode("/seq-", b"", CreateMode::PersistentSequential));
    h.created(c, create_mode("/empty", b"", CreateMode::Container));
    h.created(c, create("/empty/x", b""));
    h.ok(c, delete("/empty/x", None));
    // Children created in reverse order, and slots freed and reused.
    for name in ["z", "y", "x", "w"] {
        h.created(c, create(&format!("/order-{name}"), b""));
    }
    h.created(c, create("/order", b""));
    for name in ["9", "1", "5", "3"] {
        h.created(c, create(&format!("/order/{name}"), name.as_bytes()));
    }
    h.ok(c, delete("/order/5", None));
    h.ok(c, delete("/order-y", None));
    h.created(c, create("/order/0", b""));
    // Siblings whose names share their first 16 bytes or more, one the
    // other's prefix, created out of order.
    h.created(c, create("/long", b""));
    for name in
        ["sixteen-bytes-ab-2", "sixteen-bytes-ab", "sixteen-bytes-ab-10", "sixteen-bytes-aa-9"]
    {
        h.created(c, create(&format!("/long/{name}"), b""));
    }
    h.apply(Command::Noop);
    // The plugin registry: an operation, and a validator bound twice.
    h.ok(a, install_plugin("counter", warren_plugins::bytes("counter"), 1_000_000, 4 << 20));
    h.ok(a, install_plugin("schema", warren_plugins::bytes("json-schema"), 1_000_000, 4 << 20));
    for (prefix, config) in [("/order", "{}"), ("/app/config", "{\"type\":\"object\"}")] {
        h.ok(a, bind_plugin("schema", prefix, config));
    }
    (h, [a, b, c])
}

// ---------------------------------------------------------------- round trip

#[test]
fn frozen_view_keeps_the_state_it_was_taken_at() {
    // Proves a snapshot view, written on another thread while the original
    // goes on changing every kind of thing (data, Stat, ACLs, sessions,
    // nodes added and removed across many slab chunks), writes exactly the
    // bytes a snapshot taken at that moment writes.
    let (mut h, [a, _, c]) = rich();
    for i in 0..3000 {
        h.created(c, create(&format!("/bulk-{i}"), &[i as u8; 40]));
    }
    let expected = write(&h.sm);
    let (digest, nodes) = (h.sm.digest(), h.sm.node_count());
    let view = h.sm.snapshot_view();
    assert_eq!(view.last_applied(), h.sm.last_applied());
    let writer = std::thread::spawn(move || {
        let mut out = Vec::new();
        snapshot::write_view(&view, &mut out).expect("writing to memory does not fail");
        out
    });
    for i in (0..3000).step_by(3) {
        h.ok(c, set(&format!("/bulk-{i}"), b"changed", None));
        h.ok(c, delete(&format!("/bulk-{}", i + 1), None));
    }
    for i in 0..700 {
        h.created(c, create(&format!("/after-{i}"), b"new"));
    }
    h.ok(a, set_acl("/app/mixed", Acl::creator_all(), None));
    h.ok(a, set("/app", b"changed", None));
    h.open(vec![Id::x509("CN=late")]);
    h.apply(Command::CloseSession { session: c });
    let from_view = writer.join().expect("the writer thread does not panic");
    assert!(from_view == expected, "the view's snapshot differs from the state it was taken at");
    assert_ne!(write(&h.sm), expected, "the state did change after the view");
    let restored = read(&from_view).expect("the view's snapshot restores");
    assert_eq!((restored.digest(), restored.node_count()), (digest, nodes));
}

#[test]
fn round_trip_keeps_the_whole_state() {
    // Proves a restored machine has the same digest, last_applied, every
    // node's data, Stat and ACL, the sessions with their identities and
    // ephemerals, and the same clean-up candidates.
    let (h, [a, b, c]) = rich();
    let bytes = write(&h.sm);
    let restored = read(&bytes).expect("own snapshot restores");
    assert_eq!(restored.digest(), h.sm.digest());
    assert_eq!(restored.last_applied(), h.sm.last_applied());
    assert_eq!(restored.node_count(), h.sm.node_count());
    assert_eq!(dump(&restored, &reader()), dump(&h.sm, &reader()));
    assert_eq!(restored.session_count(), 3);
    assert_eq!(sessions(&restored), sessions(&h.sm));
    for s in [a, b, c] {
        for prefix in ["/", "/app", "/app/locks/", "/b"] {
            assert_eq!(
                restored.get_ephemerals(s, prefix),
                h.sm.get_ephemerals(s, prefix),
                "{s} {prefix}"
            );
        }
    }
    assert_eq!(restored.get_ephemerals(a, "/").len(), 2);
    assert_eq!(restored.get_ephemerals(b, "/"), vec!["/app/locks/lock-0000000001", "/b-eph"]);
    for now in [h.now, h.now + 6, h.now + 60_001] {
        assert_eq!(restored.cleanup_candidates(now), h.sm.cleanup_candidates(now));
    }
    assert!(!restored.cleanup_candidates(h.now + 60_001).is_empty());
    // Digest hashes stay hidden from a reader without ADMIN, as before.
    assert_eq!(
        restored.get_acl("/app/secret", &[Id::digest("alice:aGFzaA==")]),
        h.sm.get_acl("/app/secret", &[Id::digest("alice:aGFzaA==")])
    );
    assert_eq!(restored.limits(), h.sm.limits());
}

#[test]
fn restored_machine_continues_identically() {
    // Proves the original and the restored machine, fed the same further
    // entries, give the same replies, triggers and digests: sequence numbers
    // continue, derived ephemerals go with their session, clean-ups agree.
    let (mut h, [a, b, c]) = rich();
    let mut restored = read(&write(&h.sm)).unwrap();
    let locks = h.stat("/app/locks").cversion;
    let mut commands = vec![
        Command::Request {
            session: c,
            op: create_mode("/app/locks/lock-", b"", CreateMode::PersistentSequential),
        },
        Command::Request {
            session: c,
            op: create_mode("/seq-", b"", CreateMode::PersistentSequential),
        },
        Command::Request { session: a, op: set("/app/config", b"v3", Some(2)) },
        Command::Request { session: c, op: set("/app/config", b"nope", None) },
        Command::Request {
            session: a,
            op: Op::Multi(vec![
                create("/m", b""),
                create_mode("/m/e", b"", CreateMode::Ephemeral),
                check("/app", Some(9)),
            ]),
        },
        Command::Request { session: b, op: delete("/app/locks/lock-0000000000", None) },
        Command::CloseSession { session: a },
        Command::ExpireSessions { sessions: vec![b, a] },
        Command::CreateSession { timeout_ms: 3_000, auth: vec![Id::x509("CN=new")], secret: None },
        Command::CloseSession { session: a },
        Command::Request { session: a, op: create("/late", b"") },
    ];
    commands.extend(h.sm.cleanup_candidates(h.now + 60_001));
    commands.push(Command::RemoveContainer { path: "/app/locks".into() });
    let mut first_create = None;
    for (i, command) in commands.into_iter().enumerate() {
        let entry = Entry { zxid: Zxid(h.next_zxid + i as u64), time_ms: h.now + 60_001, command };
        let x = h.sm.apply(entry.clone());
        let y = restored.apply(entry.clone());
        assert_eq!(x, y, "{entry:?}");
        assert_eq!(h.sm.digest(), restored.digest(), "{entry:?}");
        first_create.get_or_insert(x.response);
    }
    assert!(matches!(
        &first_create,
        Some(warren::Response::Reply(Ok(warren_client::OpResult::Create { path, .. }))) if *path == format!("/app/locks/lock-{locks:010}")
    ));
    assert_eq!(restored.session_count(), 2);
    assert_eq!(dump(&restored, &reader()), dump(&h.sm, &reader()));
}

#[test]
fn equal_states_write_identical_bytes() {
    // Proves two replicas that applied the same log, and a replica restored
    // from a snapshot (whose slots and child lists are laid out differently),
    // write byte-identical snapshots.
    let (h, _) = rich();
    let mut replica = StateMachine::new(Limits::default());
    for entry in &h.log {
        replica.apply(entry.clone());
    }
    let bytes = write(&h.sm);
    assert_eq!(write(&replica), bytes);
    let restored = read(&bytes).unwrap();
    assert_eq!(write(&restored), bytes);
    let twice = read(&write(&restored)).unwrap();
    assert_eq!(write(&twice), bytes);
}

#[test]
fn large_values_round_trip_through_any_reader() {
    // Proves a snapshot bigger than any internal buffer, with values larger
    // than one, restores through a reader that returns one byte per call and
    // is sometimes interrupted, and through a writer that takes one byte per
    // call.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    for i in 0..4u8 {
        let data: Vec<u8> =
            (0..70_001u32).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i)).collect();
        h.created(s, create(&format!("/big{i}"), &data));
        h.created(s, create(&format!("/small{i}"), &[i; 7]));
    }
    let bytes = write(&h.sm);
    assert!(bytes.len() > 4 * 70_001);
    let restored =
        snapshot::read(Trickle { data: &bytes, at: 0, calls: 0 }, Limits::default()).unwrap();
    assert_eq!(restored.digest(), h.sm.digest());
    assert_eq!(dump(&restored, &[]), dump(&h.sm, &[]));
    let mut slow = Dribble(Vec::new());
    snapshot::write(&h.sm, &mut slow).unwrap();
    assert_eq!(slow.0, bytes);
    // The largest value a node may hold, through an ordinary reader.
    h.created(s, create("/max", &vec![9; Limits::default().data_bytes_max]));
    let restored = read(&write(&h.sm)).unwrap();
    assert_eq!(restored.get_data("/max", &[]).unwrap().0.len(), Limits::default().data_bytes_max);
    assert_eq!(restored.digest(), h.sm.digest());
}

/// Returns one byte per read, and `Interrupted` every third call while
/// bytes remain.
struct Trickle<'a> {
    data: &'a [u8],
    at: usize,
    calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.data.len() || buf.is_empty() {
            return Ok(0);
        }
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        buf[0] = self.data[self.at];
        self.at += 1;
        Ok(1)
    }
}

/// Accepts one byte per write.
struct Dribble(Vec<u8>);

impl Write for Dribble {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match buf.first() {
            Some(&b) => {
                self.0.push(b);
                Ok(1)
            }
            None => Ok(0),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn interrupted_read_at_the_end_is_retried() {
    // Proves a reader interrupted once after it delivered every byte (before
    // reporting end of file) still restores: Interrupted means "try again".
    let bytes = write(&small().sm);
    struct ThenInterrupted<'a>(&'a [u8], bool);
    impl Read for ThenInterrupted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                if !self.1 {
                    self.1 = true;
                    return Err(io::Error::from(io::ErrorKind::Interrupted));
                }
                return Ok(0);
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let restored = snapshot::read(ThenInterrupted(&bytes, false), Limits::default());
    assert!(restored.is_ok(), "{:?}", restored.err());
}

#[test]
fn io_errors_are_reported_as_io() {
    // Proves a failing reader or writer gives SnapshotError::Io, not a panic
    // or another kind.
    let (h, _) = rich();
    let bytes = write(&h.sm);
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    for cut in [0, 5, 100, bytes.len() - 3] {
        let r = snapshot::read(Failing(&bytes[..cut]), Limits::default());
        assert!(matches!(r, Err(SnapshotError::Io(_))), "cut at {cut}: {:?}", r.err());
    }
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
    }
    assert!(matches!(snapshot::write(&h.sm, Full), Err(SnapshotError::Io(_))));
}

// ---------------------------------------------------------------- corruption

/// A small state: two sessions, a few nodes, one ephemeral.
fn small() -> Harness {
    let mut h = Harness::new();
    let a = h.open(vec![Id::x509("CN=a")]);
    h.open(vec![]);
    h.created(a, create("/p", b"x"));
    h.created(a, create_acl("/p/c", vec![Acl::new(Perms::ALL, Id::x509("CN=a"))]));
    h.created(a, create_mode("/e", b"", CreateMode::Ephemeral));
    h
}

#[test]
fn every_truncation_is_an_error() {
    // Proves every proper prefix of a snapshot (the empty one included) is
    // refused without a panic.
    let bytes = write(&small().sm);
    for len in 0..bytes.len() {
        let r = read_caught(&bytes[..len], &format!("a prefix of {len} bytes"));
        assert!(r.is_err(), "a prefix of {len} of {} bytes restored", bytes.len());
    }
    assert!(read(&bytes).is_ok());
}

#[test]
fn every_flipped_byte_is_an_error() {
    // Proves flipping any bits of any single byte is refused without a
    // panic: in the magic as BadMagic, in the format as UnsupportedFormat, in
    // the stored checksum as Checksum, elsewhere as some error (mostly
    // Checksum).
    let bytes = write(&small().sm);
    let len = bytes.len();
    let mut checksum_errors = 0;
    let mut cases = 0;
    for at in 0..len {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            let r = read_caught(&bad, &format!("byte {at} ^ {mask:#x}"));
            cases += 1;
            match (at, r) {
                (_, Ok(_)) => panic!("byte {at} ^ {mask:#x} restored"),
                (0..8, Err(e)) => assert!(matches!(e, SnapshotError::BadMagic), "{at}: {e:?}"),
                // A flip that lands on format 2, which is still read, fails
                // further on; every other flip names the format.
                (8..12, Err(_)) if at == 8 && (FORMAT_VERSION as u8 ^ mask) == 2 => {}
                (8..12, Err(e)) => assert!(
                    matches!(e, SnapshotError::UnsupportedFormat { supported: FORMAT_VERSION, .. }),
                    "{at}: {e:?}"
                ),
                (at, Err(e)) if at >= len - 8 => {
                    assert!(matches!(e, SnapshotError::Checksum { .. }), "{at}: {e:?}")
                }
                (_, Err(SnapshotError::Checksum { .. })) => checksum_errors += 1,
                (_, Err(_)) => {}
            }
        }
    }
    assert!(checksum_errors > cases / 2, "only {checksum_errors} of {cases} were checksum errors");
}

#[test]
fn trailing_bytes_are_an_error() {
    // Proves bytes after the checksum make the snapshot invalid.
    let bytes = write(&small().sm);
    for extra in [&[0u8][..], b"garbage", &bytes[..]] {
        let mut long = bytes.clone();
        long.extend_from_slice(extra);
        let r = read(&long);
        assert!(matches!(r, Err(SnapshotError::Malformed { .. })), "{:?}", r.err());
    }
}

#[test]
fn limits_of_the_reader_apply() {
    // Proves a snapshot holding data, paths or identities over the reader's
    // limits is refused as OverLimit, naming what and by how much, instead of
    // admitting state those limits forbid.
    let bytes = write(&small().sm);
    let over = |limits: Limits| match snapshot::read(&bytes[..], limits) {
        Err(SnapshotError::OverLimit { what, max, .. }) => (what, max),
        other => panic!("expected OverLimit, got {:?}", other.err()),
    };
    assert_eq!(over(Limits { data_bytes_max: 0, ..Limits::default() }), ("data length", 0));
    assert_eq!(over(Limits { path_bytes_max: 3, ..Limits::default() }), ("path length", 3));
    assert_eq!(over(Limits { acl_id_bytes_max: 3, ..Limits::default() }), ("identity length", 3));
}

// ---------------------------------------------------------------- the documented layout

/// One node record of the layout.
#[derive(Clone, Debug)]
struct NodeRec {
    path: String,
    data: Vec<u8>,
    words: [u64; 6],
    versions: [i32; 3],
    acl: u32,
}

/// A plugin as the layout lists it.
#[derive(Clone, Debug)]
struct PluginRec {
    name: String,
    version: u32,
    world: u32,
    sha256: Vec<u8>,
    component: Vec<u8>,
    fuel: u64,
    memory: u64,
    installed: u64,
    bindings: Vec<(String, Vec<u8>)>,
}

/// The example or test plugin with this SHA-256 (the public API lists a
/// plugin's hash, not its bytes).
fn component_with(sha256: &[u8]) -> Vec<u8> {
    warren_plugins::EXAMPLES
        .iter()
        .chain(warren_plugins::TESTING)
        .map(|name| warren_plugins::bytes(name))
        .find(|bytes| warren::plugin::sha256(bytes) == sha256)
        .expect("a known component")
        .to_vec()
}

/// A snapshot as the layout in snapshot.rs documents it, to encode by hand.
#[derive(Clone, Debug)]
struct Model {
    magic: [u8; 8],
    format: u32,
    last_applied: u64,
    digest: u64,
    sessions: Vec<(u64, u32, Vec<Id>, Option<SecretHash>)>,
    acls: Vec<(u32, Vec<Acl>)>,
    nodes: Vec<NodeRec>,
    plugins: Vec<PluginRec>,
}

impl Model {
    /// The model of a state, through the public API only: nodes in
    /// pre-order with children by name, ACL lists numbered by first use.
    fn of(sm: &StateMachine, reader: &[Id]) -> Model {
        let mut acls: Vec<(u32, Vec<Acl>)> = Vec::new();
        let mut nodes = Vec::new();
        for (path, data, s, acl) in dump(sm, reader) {
            let index = match acls.iter().position(|(_, l)| *l == acl) {
                Some(i) => i,
                None => {
                    acls.push((acls.len() as u32, acl));
                    acls.len() - 1
                }
            };
            nodes.push(NodeRec {
                path,
                data,
                words: [
                    s.czxid.0,
                    s.mzxid.0,
                    s.pzxid.0,
                    s.ctime as u64,
                    s.mtime as u64,
                    s.ephemeral_owner,
                ],
                versions: [s.version, s.cversion, s.aversion],
                acl: index as u32,
            });
        }
        Model {
            magic: *b"WRNSNAP\0",
            format: FORMAT_VERSION,
            last_applied: sm.last_applied().0,
            digest: sm.digest(),
            sessions: sm
                .sessions()
                .map(|(id, s)| (id.0, s.timeout_ms, s.auth.to_vec(), s.secret))
                .collect(),
            acls,
            nodes,
            plugins: sm
                .plugins()
                .into_iter()
                .map(|p| PluginRec {
                    component: component_with(&p.sha256),
                    name: p.name,
                    version: p.version,
                    world: match p.world {
                        warren_client::PluginWorld::Validator => 0,
                        warren_client::PluginWorld::Operation => 1,
                    },
                    sha256: p.sha256,
                    fuel: p.fuel,
                    memory: p.memory_bytes,
                    installed: p.installed.0,
                    bindings: p.bindings.into_iter().map(|b| (b.prefix, b.config)).collect(),
                })
                .collect(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let str = |b: &mut Vec<u8>, s: &[u8]| {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s);
        };
        b.extend_from_slice(&self.magic);
        b.extend_from_slice(&self.format.to_le_bytes());
        b.extend_from_slice(&self.last_applied.to_le_bytes());
        b.extend_from_slice(&self.digest.to_le_bytes());
        b.extend_from_slice(&(self.sessions.len() as u64).to_le_bytes());
        for (id, timeout, auth, secret) in &self.sessions {
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&timeout.to_le_bytes());
            b.extend_from_slice(&(auth.len() as u32).to_le_bytes());
            for who in auth {
                str(&mut b, who.scheme.as_bytes());
                str(&mut b, who.id.as_bytes());
            }
            // Format 2 has no secret field.
            if self.format >= 3 {
                match secret {
                    Some(hash) => {
                        b.push(1);
                        b.extend_from_slice(&hash.0);
                    }
                    None => b.push(0),
                }
            }
        }
        b.extend_from_slice(&(self.acls.len() as u32).to_le_bytes());
        for (index, list) in &self.acls {
            b.extend_from_slice(&index.to_le_bytes());
            b.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for acl in list {
                b.extend_from_slice(&acl.perms.0.to_le_bytes());
                str(&mut b, acl.id.scheme.as_bytes());
                str(&mut b, acl.id.id.as_bytes());
            }
        }
        b.extend_from_slice(&(self.nodes.len() as u64).to_le_bytes());
        for n in &self.nodes {
            str(&mut b, n.path.as_bytes());
            str(&mut b, &n.data);
            for w in n.words {
                b.extend_from_slice(&w.to_le_bytes());
            }
            for v in n.versions {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&n.acl.to_le_bytes());
        }
        b.extend_from_slice(&(self.plugins.len() as u32).to_le_bytes());
        for p in &self.plugins {
            str(&mut b, p.name.as_bytes());
            b.extend_from_slice(&p.version.to_le_bytes());
            b.extend_from_slice(&p.world.to_le_bytes());
            b.extend_from_slice(&p.sha256);
            str(&mut b, &p.component);
            b.extend_from_slice(&p.fuel.to_le_bytes());
            b.extend_from_slice(&p.memory.to_le_bytes());
            b.extend_from_slice(&p.installed.to_le_bytes());
            b.extend_from_slice(&(p.bindings.len() as u32).to_le_bytes());
            for (prefix, config) in &p.bindings {
                str(&mut b, prefix.as_bytes());
                str(&mut b, config);
            }
        }
        let checksum = xxh3_64(&b);
        b.extend_from_slice(&checksum.to_le_bytes());
        b
    }

    fn node(&mut self, path: &str) -> &mut NodeRec {
        self.nodes.iter_mut().find(|n| n.path == path).unwrap_or_else(|| panic!("no {path}"))
    }
}

#[test]
fn snapshots_follow_the_documented_layout() {
    // Proves write produces exactly the bytes of the layout documented in
    // snapshot.rs (encoded here by hand from the public API), for a small and
    // a rich state, and that the hand encoding restores.
    let h = small();
    let model = Model::of(&h.sm, &[Id::x509("CN=a")]);
    assert_eq!(model.encode(), write(&h.sm));
    let (rich, _) = rich();
    let model = Model::of(&rich.sm, &reader());
    assert_eq!(model.encode(), write(&rich.sm));
    assert_eq!(read(&model.encode()).unwrap().digest(), rich.sm.digest());
}

#[test]
fn a_format_2_snapshot_restores_its_sessions_without_secrets() {
    // Proves a snapshot written before sessions had secrets (format 2: no
    // secret field) still restores, its sessions without a secret's hash
    // and the digest as it was.
    let mut h = Harness::new();
    let auth = vec![Id::x509("CN=old")];
    h.apply(Command::CreateSession { timeout_ms: 4_000, auth, secret: None });
    h.apply(Command::CreateSession { timeout_ms: 5_000, auth: vec![], secret: None });
    let mut model = Model::of(&h.sm, &[]);
    model.format = 2;
    let restored = read(&model.encode()).expect("a format 2 snapshot restores");
    assert_eq!(sessions(&restored), sessions(&h.sm));
    assert!(restored.sessions().all(|(_, s)| s.secret.is_none()));
    assert_eq!(restored.digest(), h.sm.digest());
}

/// Restores a hand-built snapshot, which must fail.
fn refused(model: &Model, what: &str) -> SnapshotError {
    match read_caught(&model.encode(), what) {
        Ok(_) => panic!("{what}: restored"),
        Err(e) => e,
    }
}

fn assert_malformed(model: &Model, what: &str) {
    let e = refused(model, what);
    assert!(matches!(e, SnapshotError::Malformed { .. }), "{what}: {e:?}");
}

#[test]
fn structurally_wrong_snapshots_are_malformed() {
    // Proves correctly checksummed snapshots that break the tree's or the
    // session table's structure are refused as Malformed: a child before its
    // parent, a duplicate path, an ephemeral of an unknown session, a child of
    // an ephemeral, a duplicate session, unknown or out-of-order ACL lists, no
    // root, a second root, an invalid path.
    let h = small();
    let good = Model::of(&h.sm, &[Id::x509("CN=a")]);
    assert!(read(&good.encode()).is_ok());
    let paths: Vec<&str> = good.nodes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(paths, ["/", "/e", "/p", "/p/c"]);

    let mut m = good.clone();
    m.nodes.swap(2, 3);
    assert_malformed(&m, "a child before its parent");

    let mut m = good.clone();
    let dup = m.nodes[3].clone();
    m.nodes.push(dup);
    assert_malformed(&m, "a duplicate path");

    let mut m = good.clone();
    m.node("/e").words[5] = 999;
    assert_malformed(&m, "an ephemeral of an unknown session");

    let mut m = good.clone();
    let owner = m.node("/e").words[5];
    m.sessions.retain(|(id, ..)| *id != owner);
    assert_malformed(&m, "an ephemeral whose session is missing");

    let mut m = good.clone();
    let mut kid = m.node("/p/c").clone();
    kid.path = "/e/kid".into();
    m.nodes.insert(2, kid);
    assert_malformed(&m, "a child of an ephemeral");

    let mut m = good.clone();
    let again = m.sessions[0].clone();
    m.sessions.push(again);
    assert_malformed(&m, "a duplicate session");

    let mut m = good.clone();
    m.node("/p").acl = 99;
    assert_malformed(&m, "an unknown ACL reference");

    let mut m = good.clone();
    m.acls.push((1, Acl::read_only()));
    m.acls.reverse();
    assert_malformed(&m, "ACL lists out of order");

    let mut m = good.clone();
    m.nodes.clear();
    assert_malformed(&m, "no nodes");

    let mut m = good.clone();
    m.nodes.remove(0);
    assert_malformed(&m, "no root first");

    let mut m = good.clone();
    let root = m.nodes[0].clone();
    m.nodes.push(root);
    assert_malformed(&m, "a second root");

    for path in ["/p/", "p2", "/p//x", "/p/./x", ""] {
        let mut m = good.clone();
        let mut n = m.node("/p/c").clone();
        n.path = path.into();
        m.nodes.push(n);
        assert_malformed(&m, &format!("path {path:?}"));
    }
}

#[test]
fn a_wrong_plugin_registry_is_malformed_or_a_digest_error() {
    // Proves the plugin section is checked like the tree: an unknown world,
    // bytes that do not match their SHA-256, a duplicate name, a binding on
    // an operation or at an invalid prefix are Malformed; a changed version,
    // limit or binding configuration is a Digest error.
    let (h, _) = rich();
    let good = Model::of(&h.sm, &reader());
    assert_eq!(good.plugins.len(), 2);
    assert!(read(&good.encode()).is_ok());
    let counter = good.plugins.iter().position(|p| p.name == "counter").expect("counter");
    let schema = good.plugins.iter().position(|p| p.name == "schema").expect("schema");

    let mut m = good.clone();
    m.plugins[counter].world = 7;
    assert_malformed(&m, "an unknown world");
    let mut m = good.clone();
    m.plugins[counter].component[100] ^= 1;
    assert_malformed(&m, "bytes that do not match their hash");
    let mut m = good.clone();
    let again = m.plugins[counter].clone();
    m.plugins.push(again);
    assert_malformed(&m, "a duplicate plugin");
    let mut m = good.clone();
    m.plugins[counter].bindings.push(("/x".into(), vec![]));
    assert_malformed(&m, "a bound operation");
    let mut m = good.clone();
    m.plugins[schema].bindings[0].0 = "no-slash".into();
    assert_malformed(&m, "an invalid prefix");

    type Change<'a> = (&'a str, Box<dyn Fn(&mut Model)>);
    let changes: Vec<Change> = vec![
        ("a version changed", Box::new(move |m: &mut Model| m.plugins[counter].version += 1)),
        ("a fuel limit changed", Box::new(move |m: &mut Model| m.plugins[counter].fuel += 1)),
        (
            "a binding's configuration changed",
            Box::new(move |m: &mut Model| m.plugins[schema].bindings[0].1.push(b' ')),
        ),
        (
            "a binding dropped",
            Box::new(move |m: &mut Model| m.plugins[schema].bindings.pop().map(drop).unwrap_or(())),
        ),
    ];
    for (what, change) in changes {
        let mut m = good.clone();
        change(&mut m);
        let e = refused(&m, what);
        assert!(matches!(e, SnapshotError::Digest { .. }), "{what}: {e:?}");
    }
}

#[test]
fn a_wrong_digest_or_state_with_a_good_checksum_is_a_digest_error() {
    // Proves the stored digest is checked against the restored state: a
    // wrong stored digest, or a state changed without updating it, is
    // SnapshotError::Digest even when the checksum is right.
    let mut h = small();
    let spare = h.open(vec![Id::x509("CN=spare")]);
    let good = Model::of(&h.sm, &[Id::x509("CN=a")]);
    let digest = h.sm.digest();

    let mut m = good.clone();
    m.digest ^= 1;
    match refused(&m, "a wrong digest") {
        SnapshotError::Digest { stored, computed } => {
            assert_eq!((stored, computed), (digest ^ 1, digest))
        }
        e => panic!("a wrong digest: {e:?}"),
    }
    type Change<'a> = (&'a str, Box<dyn Fn(&mut Model)>);
    let changes: Vec<Change> = vec![
        (
            "a session dropped",
            Box::new(move |m: &mut Model| m.sessions.retain(|(id, ..)| *id != spare.0)),
        ),
        ("a timeout changed", Box::new(|m: &mut Model| m.sessions[0].1 += 1)),
        ("an identity changed", Box::new(|m: &mut Model| m.sessions[0].2[0].id.push('!'))),
        ("data changed", Box::new(|m: &mut Model| m.node("/p").data.push(b'!'))),
        ("a version changed", Box::new(|m: &mut Model| m.node("/p").versions[0] += 1)),
        ("an mtime changed", Box::new(|m: &mut Model| m.node("/p/c").words[4] += 1)),
        ("an ACL changed", Box::new(|m: &mut Model| m.acls[0].1[0].perms = Perms::READ)),
        (
            "a persistent node made a container",
            Box::new(|m: &mut Model| m.node("/p/c").words[5] = 1 << 63),
        ),
    ];
    for (what, change) in changes {
        let mut m = good.clone();
        change(&mut m);
        let e = refused(&m, what);
        assert!(matches!(e, SnapshotError::Digest { .. }), "{what}: {e:?}");
    }
}

#[test]
fn magic_and_format_are_checked_even_with_a_good_checksum() {
    // Proves a foreign magic is BadMagic and another format version is
    // UnsupportedFormat, also when the rest of the file is consistent.
    let good = Model::of(&small().sm, &[Id::x509("CN=a")]);
    let mut m = good.clone();
    m.magic = *b"WRNSNAP1";
    assert!(matches!(refused(&m, "magic"), SnapshotError::BadMagic));
    let mut m = good.clone();
    m.format = FORMAT_VERSION + 1;
    match refused(&m, "format") {
        SnapshotError::UnsupportedFormat { found, supported } => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION))
        }
        e => panic!("format: {e:?}"),
    }
}

// ---------------------------------------------------------------- reachable states restore

/// Writes and restores, answering the restore's error if any.
fn round_trip(sm: &StateMachine) -> Result<(), SnapshotError> {
    let restored = read(&write(sm))?;
    assert_eq!(restored.digest(), sm.digest());
    Ok(())
}

/// Applies a CreateSession whether or not it is accepted.
fn try_open(h: &mut Harness, auth: Vec<Id>) -> Option<SessionId> {
    match h.apply(Command::CreateSession { timeout_ms: 10_000, auth, secret: None }).response {
        warren::Response::SessionCreated(id) => Some(id),
        _ => None,
    }
}

#[test]
fn a_session_with_many_identities_restores() {
    // Proves a CreateSession with 4097 identities is refused at apply (over
    // session_identities_max), so no unrestorable state arises, and the
    // state round-trips.
    let mut h = Harness::new();
    assert_eq!(try_open(&mut h, (0..4097).map(|i| Id::x509(format!("CN={i}"))).collect()), None);
    let r = round_trip(&h.sm);
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn a_session_with_a_long_identity_restores() {
    // Proves a CreateSession whose x509 subject is 70,000 bytes is refused at
    // apply (over acl_id_bytes_max), and the state round-trips.
    let mut h = Harness::new();
    assert_eq!(try_open(&mut h, vec![Id::x509("C".repeat(70_000))]), None);
    let r = round_trip(&h.sm);
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn an_acl_expanded_from_many_identities_restores() {
    // Proves a create whose ACL is 31 "auth" entries (perms 1..=31) from a
    // session with the most identities allowed (992 entries once expanded)
    // is refused over acl_entries_max, and the state round-trips.
    let mut h = Harness::new();
    let max = Limits::default().session_identities_max;
    let s = try_open(&mut h, (0..max).map(|i| Id::x509(format!("CN={i}"))).collect()).unwrap();
    let acl = (1..=31).map(|p| Acl::new(Perms(p), Id::new("auth", ""))).collect();
    assert!(h.write(s, create_acl("/n", acl)).is_err());
    assert!(h.sm.exists("/n").is_none());
    let r = round_trip(&h.sm);
    assert!(r.is_ok(), "{:?}", r.err());
}
