//! `warren demo`: applies a scripted workload — sessions, a lock recipe with
//! ephemeral-sequential nodes, a multi that succeeds and one that fails,
//! containers, TTL nodes and watches — to a real state machine, and prints
//! what happened and the resulting tree. It uses only the public API, the
//! way the node driver will.

use crate::state::snapshot;
use crate::{Command, Entry, Limits, Response, StateMachine, WatchTable};
use std::fmt::Write as _;
use warren_client::{Acl, CreateMode, Id, Op, OpResult, SessionId, WatchKind, Zxid};

/// Runs the demo and returns its report.
pub fn run() -> String {
    let mut demo = Demo {
        sm: StateMachine::new(Limits::default()),
        watches: WatchTable::new(),
        out: String::new(),
        time_ms: 1_700_000_000_000,
    };
    let admin = demo.open_session(vec![Id::x509("CN=admin")]);
    let worker = demo.open_session(vec![Id::x509("CN=worker")]);
    // admin follows everything under /app.
    demo.watches
        .add(admin, "/app", WatchKind::PersistentRecursive)
        .expect("first watch is within limits");

    demo.write(admin, "create /app", create("/app", b"", CreateMode::Persistent));
    demo.write(
        admin,
        "create /app/config",
        create("/app/config", br#"{"replicas":3}"#, CreateMode::Persistent),
    );
    demo.write(
        admin,
        "create /app/locks (container)",
        create("/app/locks", b"", CreateMode::Container),
    );
    demo.write(
        admin,
        "lock: admin queues",
        create("/app/locks/lock-", b"admin", CreateMode::EphemeralSequential),
    );
    demo.write(
        worker,
        "lock: worker queues",
        create("/app/locks/lock-", b"worker", CreateMode::EphemeralSequential),
    );
    // The lock recipe: worker waits for its predecessor to go.
    demo.watches
        .add(worker, "/app/locks/lock-0000000000", WatchKind::Data)
        .expect("first watch is within limits");
    demo.write(
        admin,
        "set /app/config at version 0",
        Op::SetData {
            path: "/app/config".into(),
            data: br#"{"replicas":5}"#.to_vec(),
            version: Some(0),
        },
    );
    demo.write(
        worker,
        "set /app/config at stale version 0",
        Op::SetData { path: "/app/config".into(), data: b"{}".to_vec(), version: Some(0) },
    );
    demo.write(
        admin,
        "multi: two members, atomically",
        Op::Multi(vec![
            create("/app/members", b"", CreateMode::Persistent),
            create("/app/members/a", b"10.0.0.1", CreateMode::Persistent),
            Op::Check { path: "/app/config".into(), version: Some(1) },
        ]),
    );
    demo.write(
        admin,
        "multi that fails at its last op",
        Op::Multi(vec![
            create("/app/members/b", b"10.0.0.2", CreateMode::Persistent),
            Op::Delete { path: "/app/config".into(), version: Some(7) },
        ]),
    );
    demo.write(
        admin,
        "create /app/secret (admin only)",
        Op::Create {
            path: "/app/secret".into(),
            data: b"s3cret".to_vec(),
            acl: Acl::creator_all(),
            mode: CreateMode::Persistent,
        },
    );
    demo.write(
        worker,
        "worker sets /app/secret",
        Op::SetData { path: "/app/secret".into(), data: b"x".to_vec(), version: None },
    );
    demo.write(
        admin,
        "create /app/lease (TTL 5 s)",
        create("/app/lease", b"", CreateMode::PersistentWithTtl { ttl_ms: 5_000 }),
    );

    // The server forgets a session's watches when it ends.
    demo.watches.remove_session(admin);
    demo.apply(
        "admin releases its lock by closing its session",
        Command::CloseSession { session: admin },
    );
    demo.apply("worker closes too", Command::CloseSession { session: worker });
    demo.time_ms += 10_000;
    for command in demo.sm.cleanup_candidates(demo.time_ms) {
        demo.apply("leader cleans up", command);
    }

    let mut bytes = Vec::new();
    snapshot::write(&demo.sm, &mut bytes).expect("writing to memory does not fail");
    let restored = snapshot::read(&bytes[..], Limits::default()).expect("own snapshot restores");
    let _ = writeln!(
        demo.out,
        "\nsnapshot: {} bytes; restored digest {:#018x} (live {:#018x})",
        bytes.len(),
        restored.digest(),
        demo.sm.digest()
    );
    let _ = writeln!(demo.out, "\ntree at zxid {}:", demo.sm.last_applied());
    print_tree(&demo.sm, "/", 0, &mut demo.out);
    demo.out
}

struct Demo {
    sm: StateMachine,
    watches: WatchTable,
    out: String,
    time_ms: i64,
}

impl Demo {
    fn apply(&mut self, what: &str, command: Command) -> Response {
        self.time_ms += 1;
        let entry =
            Entry { zxid: Zxid(self.sm.last_applied().0 + 1), time_ms: self.time_ms, command };
        let zxid = entry.zxid;
        let applied = self.sm.apply(entry);
        let shown = match &applied.response {
            Response::SessionCreated(id) => format!("session {id}"),
            Response::Reply(Ok(result)) => format!("ok {}", summary(result)),
            Response::Reply(Err(e)) | Response::Done(Err(e)) => {
                format!("error {:?}: {e}", e.code())
            }
            Response::Done(Ok(())) => "done".into(),
        };
        let _ = writeln!(self.out, "zxid {:>2}  {what:<48} {shown}", zxid.0);
        for trigger in &applied.triggers {
            let sm = &self.sm;
            for (session, event) in self.watches.fire(trigger, |s| sm.session(s).map(|s| &*s.auth))
            {
                let _ = writeln!(
                    self.out,
                    "          watch → session {session}: {:?} {}",
                    event.event, event.path
                );
            }
        }
        applied.response
    }

    fn write(&mut self, session: SessionId, what: &str, op: Op) {
        self.apply(what, Command::Request { session, op });
    }

    fn open_session(&mut self, auth: Vec<Id>) -> SessionId {
        match self.apply(
            "open session",
            Command::CreateSession { timeout_ms: 10_000, auth, secret: None },
        ) {
            Response::SessionCreated(id) => id,
            other => unreachable!("a valid timeout always opens a session, got {other:?}"),
        }
    }
}

/// One line for a result: what was created, or the new version.
fn summary(result: &OpResult) -> String {
    match result {
        OpResult::Create { path, stat } => {
            format!("created {path} (owner {:#x})", stat.ephemeral_owner)
        }
        OpResult::SetData { stat } => format!("version {}", stat.version),
        OpResult::SetAcl { stat } => format!("acl version {}", stat.aversion),
        OpResult::Delete => "deleted".into(),
        OpResult::Check => "checked".into(),
        OpResult::Multi(results) => {
            format!("[{}]", results.iter().map(summary).collect::<Vec<_>>().join(", "))
        }
        OpResult::Invoked { output, results } => format!(
            "output {:?}, [{}]",
            String::from_utf8_lossy(output),
            results.iter().map(summary).collect::<Vec<_>>().join(", ")
        ),
        OpResult::Plugin(info) => format!("plugin {} version {}", info.name, info.version),
        OpResult::PluginRemoved => "plugin removed".into(),
    }
}

fn create(path: &str, data: &[u8], mode: CreateMode) -> Op {
    Op::Create { path: path.into(), data: data.to_vec(), acl: Acl::open(), mode }
}

fn print_tree(sm: &StateMachine, path: &str, depth: usize, out: &mut String) {
    let everyone = [Id::x509("CN=admin")];
    let Ok((data, stat)) = sm.get_data(path, &everyone) else {
        return;
    };
    let _ = writeln!(
        out,
        "{:indent$}{path}  {:?}  (version {}, cversion {}, children {})",
        "",
        String::from_utf8_lossy(data),
        stat.version,
        stat.cversion,
        stat.num_children,
        indent = depth * 2
    );
    if let Ok(children) = sm.get_children(path, &everyone) {
        for name in children.names {
            print_tree(sm, &crate::path::join(path, &name), depth + 1, out);
        }
    }
}
