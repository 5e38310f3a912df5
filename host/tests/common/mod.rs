//! Shared helper for the state-machine integration tests: a `Harness` that
//! owns a `StateMachine`, the next zxid and the leader's clock, and turns
//! test steps into committed entries, keeping the log so another replica
//! can replay it. Plus short constructors for operations.

#![allow(dead_code)]

use warren::{Applied, Command, Entry, Limits, Response, StateMachine};
use warren_client::{
    Acl, ApiError, CreateMode, ErrorCode, Id, Op, OpResult, Reply, SessionId, Stat, Zxid,
};

/// The leader's clock at the first entry.
pub const T0: i64 = 1_700_000_000_000;

pub struct Harness {
    pub sm: StateMachine,
    /// The zxid the next entry gets.
    pub next_zxid: u64,
    /// The time the next entry carries.
    pub now: i64,
    /// Every entry applied, in order.
    pub log: Vec<Entry>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Harness {
        Harness { sm: StateMachine::new(limits), next_zxid: 1, now: T0, log: Vec::new() }
    }

    /// Applies `command` as the next entry, at the current time.
    pub fn apply(&mut self, command: Command) -> Applied {
        let entry = Entry { zxid: Zxid(self.next_zxid), time_ms: self.now, command };
        self.next_zxid += 1;
        self.log.push(entry.clone());
        self.sm.apply(entry)
    }

    /// Moves the leader's clock on.
    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    /// The zxid the next entry will carry.
    pub fn peek_zxid(&self) -> Zxid {
        Zxid(self.next_zxid)
    }

    /// Opens a session with these identities (and a secret's hash).
    pub fn open(&mut self, auth: Vec<Id>) -> SessionId {
        let secret = Some(warren::state::SecretHash([self.next_zxid as u8; 32]));
        match self.apply(Command::CreateSession { timeout_ms: 10_000, auth, secret }).response {
            Response::SessionCreated(id) => id,
            other => panic!("session not created: {other:?}"),
        }
    }

    /// A session's write, returning the whole `Applied`.
    pub fn request(&mut self, session: SessionId, op: Op) -> Applied {
        self.apply(Command::Request { session, op })
    }

    /// A session's write, returning its reply.
    pub fn write(&mut self, session: SessionId, op: Op) -> Reply {
        match self.request(session, op).response {
            Response::Reply(reply) => reply,
            other => panic!("a request answers with a reply, got {other:?}"),
        }
    }

    /// A write that must succeed.
    pub fn ok(&mut self, session: SessionId, op: Op) -> OpResult {
        let shown = format!("{op:?}");
        match self.write(session, op) {
            Ok(result) => result,
            Err(e) => panic!("{shown} failed: {e:?}"),
        }
    }

    /// A create that must succeed; returns the created path.
    pub fn created(&mut self, session: SessionId, op: Op) -> String {
        match self.ok(session, op) {
            OpResult::Create { path, .. } => path,
            other => panic!("not a create result: {other:?}"),
        }
    }

    /// A write that must fail with exactly `expected` and change nothing:
    /// same digest, same node count, no triggers.
    pub fn fails(&mut self, session: SessionId, op: Op, expected: ApiError) {
        let digest = self.sm.digest();
        let nodes = self.sm.node_count();
        let shown = format!("{op:?}");
        let applied = self.request(session, op);
        assert_eq!(applied.response, Response::Reply(Err(expected)), "{shown}");
        assert_eq!(self.sm.digest(), digest, "a failed {shown} changed the digest");
        assert_eq!(self.sm.node_count(), nodes, "a failed {shown} changed the tree");
        assert!(applied.triggers.is_empty(), "a failed {shown} triggered {:?}", applied.triggers);
    }

    /// A write that must fail with an error of `code` and change nothing;
    /// returns the error for closer checks.
    pub fn fails_code(&mut self, session: SessionId, op: Op, code: ErrorCode) -> ApiError {
        let digest = self.sm.digest();
        let nodes = self.sm.node_count();
        let shown = format!("{op:?}");
        let applied = self.request(session, op);
        let error = match applied.response {
            Response::Reply(Err(e)) => e,
            other => panic!("{shown}: expected {code:?}, got {other:?}"),
        };
        assert_eq!(error.code(), code, "{shown}: {error:?}");
        assert_eq!(self.sm.digest(), digest, "a failed {shown} changed the digest");
        assert_eq!(self.sm.node_count(), nodes, "a failed {shown} changed the tree");
        assert!(applied.triggers.is_empty(), "a failed {shown} triggered {:?}", applied.triggers);
        error
    }

    /// The Stat of a node that must exist.
    pub fn stat(&self, path: &str) -> Stat {
        self.sm.exists(path).unwrap_or_else(|| panic!("{path} does not exist"))
    }
}

pub fn create(path: &str, data: &[u8]) -> Op {
    create_mode(path, data, CreateMode::Persistent)
}

pub fn create_mode(path: &str, data: &[u8], mode: CreateMode) -> Op {
    Op::Create { path: path.into(), data: data.to_vec(), acl: Acl::open(), mode }
}

pub fn create_acl(path: &str, acl: Vec<Acl>) -> Op {
    Op::Create { path: path.into(), data: Vec::new(), acl, mode: CreateMode::Persistent }
}

pub fn delete(path: &str, version: Option<i32>) -> Op {
    Op::Delete { path: path.into(), version }
}

pub fn set(path: &str, data: &[u8], version: Option<i32>) -> Op {
    Op::SetData { path: path.into(), data: data.to_vec(), version }
}

pub fn set_acl(path: &str, acl: Vec<Acl>, version: Option<i32>) -> Op {
    Op::SetAcl { path: path.into(), acl, version }
}

pub fn check(path: &str, version: Option<i32>) -> Op {
    Op::Check { path: path.into(), version }
}

/// Every node's path, data, Stat and ACL, in pre-order with children by
/// name, read with identities `auth` (which must be allowed to read them
/// all).
pub fn dump(sm: &StateMachine, auth: &[Id]) -> Vec<(String, Vec<u8>, Stat, Vec<Acl>)> {
    let mut out = Vec::new();
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let (data, stat) = sm.get_data(&path, auth).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let (acl, _) = sm.get_acl(&path, auth).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        out.push((path.clone(), data.to_vec(), stat, acl));
        let children = sm.get_children(&path, auth).expect("readable");
        assert!(!children.more);
        for name in children.names.iter().rev() {
            stack.push(if path == "/" { format!("/{name}") } else { format!("{path}/{name}") });
        }
    }
    out
}

/// Installs `component` as plugin `name` with these limits.
pub fn install_plugin(name: &str, component: &[u8], fuel: u64, memory_bytes: u64) -> Op {
    Op::Plugin(warren_client::PluginOp::Install {
        name: name.into(),
        component: component.to_vec(),
        sha256: warren::plugin::sha256(component).to_vec(),
        fuel,
        memory_bytes,
        expected_version: None,
    })
}

/// Binds validator `name` to `prefix` with `config`.
pub fn bind_plugin(name: &str, prefix: &str, config: &str) -> Op {
    Op::Plugin(warren_client::PluginOp::Bind {
        name: name.into(),
        prefix: prefix.into(),
        config: config.as_bytes().to_vec(),
    })
}
