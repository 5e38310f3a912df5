//! Property tests of the snapshot decoder on hostile input: whatever the
//! bytes, `snapshot::read` returns (an error, almost always) and never
//! panics, hangs or allocates beyond the limits. A complement to the
//! exhaustive single-flip and truncation tests in snapshot.rs.

use proptest::prelude::*;
use warren::state::snapshot;
use warren::{Command, Entry, Limits, Response, StateMachine};
use warren_client::{Acl, CreateMode, Id, Op, Zxid};

/// A small state with sessions, ephemerals, ACLs and data, as bytes.
fn valid_snapshot() -> Vec<u8> {
    let mut sm = StateMachine::new(Limits::default());
    let mut zxid = 0;
    let mut apply = |sm: &mut StateMachine, command| {
        zxid += 1;
        sm.apply(Entry { zxid: Zxid(zxid), time_ms: zxid as i64, command }).response
    };
    let Response::SessionCreated(s) = apply(
        &mut sm,
        Command::CreateSession { timeout_ms: 5000, auth: vec![Id::x509("CN=a")], secret: None },
    ) else {
        panic!("session not created")
    };
    for (path, mode) in [
        ("/a", CreateMode::Persistent),
        ("/a/b", CreateMode::Container),
        ("/a/b/c", CreateMode::Ephemeral),
        ("/t", CreateMode::PersistentWithTtl { ttl_ms: 10 }),
    ] {
        let op = Op::Create { path: path.into(), data: path.into(), acl: Acl::creator_all(), mode };
        apply(&mut sm, Command::Request { session: s, op });
    }
    let mut bytes = Vec::new();
    snapshot::write(&sm, &mut bytes).expect("writing to memory does not fail");
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Proves arbitrary bytes are refused without a panic.
        prop_assert!(snapshot::read(&bytes[..], Limits::default()).is_err());
    }

    #[test]
    fn mutated_snapshots_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        // Proves a valid snapshot with bytes overwritten, inserted or
        // removed anywhere is refused (the checksum or a field check
        // catches it) without a panic.
        let original = valid_snapshot();
        let mut bytes = original.clone();
        for (at, byte, how) in edits {
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] ^= byte | 1,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        // An insertion and a removal can cancel out.
        prop_assume!(bytes != original);
        prop_assert!(snapshot::read(&bytes[..], Limits::default()).is_err());
    }
}
