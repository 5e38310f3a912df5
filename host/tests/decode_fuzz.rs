//! Property tests of the log-entry decoder on hostile input: whatever the
//! bytes, `Command::decode` returns a value or an error, never a panic, and
//! every command round-trips through its encoding.

use proptest::prelude::*;
use warren::Command;
use warren_client::{Acl, CreateMode, Id, Op, SessionId};

fn commands() -> Vec<Command> {
    vec![
        Command::CreateSession { timeout_ms: 5000, auth: vec![Id::x509("CN=a")], secret: None },
        Command::CloseSession { session: SessionId(7) },
        Command::Request {
            session: SessionId(7),
            op: Op::Multi(vec![
                Op::Create {
                    path: "/a".into(),
                    data: b"x".to_vec(),
                    acl: Acl::open(),
                    mode: CreateMode::Ephemeral,
                },
                Op::SetData { path: "/a".into(), data: vec![0; 40], version: Some(3) },
                Op::Check { path: "/b".into(), version: None },
            ]),
        },
        Command::ExpireSessions { sessions: vec![SessionId(1), SessionId(2)] },
        Command::RemoveExpiredTtl { path: "/t".into() },
        Command::Noop,
    ]
}

#[test]
fn commands_round_trip() {
    // Proves every kind of command decodes back to itself from its encoding.
    for command in commands() {
        assert_eq!(Command::decode(&command.encode()).expect("own encoding decodes"), command);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Proves arbitrary bytes give a command or an error, never a panic.
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        // Proves a valid encoding with bytes overwritten anywhere still
        // decodes to something or fails cleanly.
        let mut bytes = commands()[which].encode();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Command::decode(&bytes);
    }
}
