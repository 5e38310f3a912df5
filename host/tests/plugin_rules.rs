//! Plugins in the state machine: installing (and what is refused), binding
//! validators, invoking operations, the limits that stop a plugin, and the
//! registry in snapshots and the digest. The components are the example
//! and test plugins built by the `warren-plugins` crate.

mod common;

use common::*;
use warren::state::snapshot;
use warren::{Limits, StateMachine};
use warren_client::{
    Acl, ApiError, BadArgument, ErrorCode, Id, Op, OpResult, PLUGIN_FUEL_DEFAULT,
    PLUGIN_MEMORY_DEFAULT, Perms, PluginFailure, PluginInfo, PluginOp, PluginRefusal, PluginWorld,
    SessionId,
};

const SCHEMA: &str =
    r#"{"type":"object","required":["port"],"properties":{"port":{"type":"integer","minimum":1}}}"#;

fn install_op(name: &str, component: &[u8]) -> Op {
    install_plugin(name, component, PLUGIN_FUEL_DEFAULT, PLUGIN_MEMORY_DEFAULT)
}

fn invoke(plugin: &str, path: &str, args: &str) -> Op {
    Op::Invoke { plugin: plugin.into(), path: path.into(), args: args.as_bytes().to_vec() }
}

fn installed(h: &mut Harness, s: SessionId, name: &str, component: &str) -> PluginInfo {
    match h.ok(s, install_op(name, warren_plugins::bytes(component))) {
        OpResult::Plugin(info) => info,
        other => panic!("install answered {other:?}"),
    }
}

/// What the registry says of plugin `name`.
fn installed_info(h: &Harness, name: &str) -> PluginInfo {
    h.sm.plugins().into_iter().find(|p| p.name == name).expect("installed")
}

fn output(result: OpResult) -> String {
    match result {
        OpResult::Invoked { output, .. } => String::from_utf8(output).expect("UTF-8 output"),
        other => panic!("not an invocation's result: {other:?}"),
    }
}

fn refusal(e: ApiError) -> PluginRefusal {
    match e {
        ApiError::PluginRefused { why, .. } => why,
        other => panic!("not a refusal: {other:?}"),
    }
}

/// A harness with one open session and the schema validator bound to
/// /config.
fn with_schema() -> (Harness, SessionId) {
    let mut h = Harness::new();
    let s = h.open(vec![]);
    installed(&mut h, s, "schema", "json-schema");
    h.ok(s, bind_plugin("schema", "/config", SCHEMA));
    (h, s)
}

#[test]
fn a_bound_schema_rejects_bad_writes_with_the_field_and_accepts_good_ones() {
    // Proves the JSON-schema validator runs on creates and setData under its
    // prefix: invalid JSON and a wrongly typed field are rejected with a
    // reason naming the field, a valid document is accepted, and paths
    // outside the prefix are not checked.
    let (mut h, s) = with_schema();
    h.created(s, create("/config", b"{\"port\": 1}"));
    let e = h.fails_code(s, create("/config/db", b"{\"port\": \"x\"}"), ErrorCode::Rejected);
    match &e {
        ApiError::Rejected { plugin, path, reason } => {
            assert_eq!((plugin.as_str(), path.as_str()), ("schema", "/config/db"));
            assert!(reason.contains("port"), "the reason names the field: {reason}");
        }
        other => panic!("not a rejection: {other:?}"),
    }
    let e = h.fails_code(s, create("/config/db", b"not json"), ErrorCode::Rejected);
    assert!(e.to_string().contains("schema"), "{e}");
    h.created(s, create("/config/db", b"{\"port\": 5432}"));
    h.fails_code(s, set("/config/db", b"{}", None), ErrorCode::Rejected);
    h.ok(s, set("/config/db", b"{\"port\": 5433}", None));
    h.created(s, create("/elsewhere", b"not json"));
}

#[test]
fn validators_also_run_inside_a_multi_and_on_an_operations_writes() {
    // Proves a rejected write inside a multi fails the whole multi (nothing
    // applied), and that a counter operation writing under a validated
    // prefix is rejected once its value breaks the schema.
    let (mut h, s) = with_schema();
    h.created(s, create("/config", b"{\"port\": 1}"));
    let multi = Op::Multi(vec![
        create("/config/a", b"{\"port\": 2}"),
        create("/config/b", b"{\"port\": 0}"),
    ]);
    match h.fails_code(s, multi, ErrorCode::Rejected) {
        ApiError::Multi { index: 1, .. } => {}
        other => panic!("expected the second op to fail: {other:?}"),
    }
    assert!(h.sm.exists("/config/a").is_none());

    installed(&mut h, s, "counter", "counter");
    h.created(s, create("/n", b""));
    h.ok(s, bind_plugin("schema", "/n", r#"{"type":"integer","maximum":2}"#));
    assert_eq!(output(h.ok(s, invoke("counter", "/n/c", "{\"delta\": 2}"))), "2");
    let e = h.fails_code(s, invoke("counter", "/n/c", "{\"delta\": 1}"), ErrorCode::Rejected);
    assert!(
        matches!(&e, ApiError::Multi { index: 0, error } if matches!(**error, ApiError::Rejected { .. })),
        "{e:?}"
    );
    assert_eq!(h.sm.get_data("/n/c", &[]).expect("counter").0, b"2");
}

#[test]
fn the_counter_adds_within_its_bounds_and_refuses_to_cross_them() {
    // Proves the bounded counter creates its node at the first add, returns
    // the new value, and refuses (changing nothing) a delta that would go
    // above the maximum or below the minimum.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    installed(&mut h, s, "counter", "counter");
    assert_eq!(output(h.ok(s, invoke("counter", "/c", r#"{"delta":3,"max":5}"#))), "3");
    assert_eq!(output(h.ok(s, invoke("counter", "/c", r#"{"delta":2,"max":5}"#))), "5");
    let e =
        h.fails_code(s, invoke("counter", "/c", r#"{"delta":1,"max":5}"#), ErrorCode::PluginError);
    assert!(e.to_string().contains("counter"), "{e}");
    h.fails_code(s, invoke("counter", "/c", r#"{"delta":-6,"min":0}"#), ErrorCode::PluginError);
    assert_eq!(output(h.ok(s, invoke("counter", "/c", r#"{"delta":-5,"min":0}"#))), "0");
    assert_eq!(h.sm.get_data("/c", &[]).expect("counter").0, b"0");
}

#[test]
fn the_queue_pops_the_head_and_moves_it_in_one_entry() {
    // Proves an operation touching several nodes: the lowest item is deleted
    // and created under the claim path, its data returned, both or neither
    // (with no claim parent, nothing changes).
    let mut h = Harness::new();
    let s = h.open(vec![]);
    installed(&mut h, s, "queue", "queue");
    h.created(s, create("/q", b""));
    h.created(s, create("/q/item-0000000002", b"second"));
    h.created(s, create("/q/item-0000000001", b"first"));
    h.fails_code(s, invoke("queue", "/q", r#"{"to":"/claimed"}"#), ErrorCode::NoNode);
    assert!(h.sm.exists("/q/item-0000000001").is_some(), "a failed pop changes nothing");
    h.created(s, create("/claimed", b""));
    assert_eq!(output(h.ok(s, invoke("queue", "/q", r#"{"to":"/claimed"}"#))), "first");
    assert!(h.sm.exists("/q/item-0000000001").is_none());
    assert_eq!(h.sm.get_data("/claimed/item-0000000001", &[]).expect("claimed").0, b"first");
    assert_eq!(output(h.ok(s, invoke("queue", "/q", ""))), "second");
    h.fails_code(s, invoke("queue", "/q", ""), ErrorCode::PluginError);
}

#[test]
fn an_endless_loop_runs_out_of_fuel_and_a_memory_bomb_hits_its_limit() {
    // Proves the two limits: the spinning plugin fails with OutOfFuel and
    // its fuel limit, the allocating one with MemoryLimit and its memory
    // limit, and both leave the state unchanged and the machine usable.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.ok(s, install_plugin("spin", warren_plugins::bytes("testing/spin"), 1_000_000, 16 << 20));
    h.ok(
        s,
        install_plugin("bomb", warren_plugins::bytes("testing/bomb"), PLUGIN_FUEL_DEFAULT, 4 << 20),
    );
    let e = h.fails_code(s, invoke("spin", "/x", ""), ErrorCode::PluginFailed);
    assert_eq!(
        e,
        ApiError::PluginFailed {
            plugin: "spin".into(),
            why: PluginFailure::OutOfFuel { limit: 1_000_000 }
        }
    );
    let e = h.fails_code(s, invoke("bomb", "/x", ""), ErrorCode::PluginFailed);
    match e {
        ApiError::PluginFailed { why: PluginFailure::MemoryLimit { limit, wanted }, .. } => {
            assert_eq!(limit, 4 << 20);
            assert!(wanted > limit);
        }
        other => panic!("expected the memory limit: {other:?}"),
    }
    h.created(s, create("/still-works", b""));
}

#[test]
fn every_call_starts_from_the_components_initial_memory() {
    // Proves no call sees memory an earlier call wrote: the memory plugin
    // changes a data-segment static, a zeroed static and a page it grows,
    // and still finds them at their initial values on each later call (the
    // pool resets the slot it reuses).
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.ok(s, install_op("memory", warren_plugins::bytes("testing/memory")));
    let first = output(h.ok(s, invoke("memory", "/m", "")));
    assert!(first.ends_with(" data=7 zeroed=0 grown=0"), "{first}");
    for _ in 0..3 {
        assert_eq!(output(h.ok(s, invoke("memory", "/m", ""))), first);
    }
}

#[test]
fn a_panic_reaches_the_caller_as_its_message() {
    // Proves a panicking plugin's message (through the SDK's panic hook) is
    // the failure the caller sees, not a bare trap.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.ok(s, install_op("panic", warren_plugins::bytes("testing/panic")));
    let e = h.fails_code(s, invoke("panic", "/where", ""), ErrorCode::PluginFailed);
    match e {
        ApiError::PluginFailed { why: PluginFailure::Panic { message }, .. } => {
            assert!(message.contains("the plugin panicked on purpose: /where"), "{message}");
        }
        other => panic!("expected a panic: {other:?}"),
    }
}

#[test]
fn install_refuses_wasi_core_modules_garbage_bad_checksums_and_bad_limits() {
    // Proves what install refuses, each with its reason and no change: a
    // component importing WASI, a core module, bytes that are not
    // WebAssembly, a SHA-256 that does not match, limits out of range, a
    // memory limit below the component's initial memory, and a bad name.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    let why = refusal(h.fails_code(
        s,
        install_op("w", warren_plugins::bytes("testing/wasi")),
        ErrorCode::PluginRefused,
    ));
    assert!(matches!(&why, PluginRefusal::Invalid(m) if m.contains("wasi:")), "{why}");
    let core = b"\0asm\x01\0\0\0";
    let why = refusal(h.fails_code(s, install_op("c", core), ErrorCode::PluginRefused));
    assert!(why.to_string().contains("core WebAssembly module"), "{why}");
    let why = refusal(h.fails_code(s, install_op("g", b"hello"), ErrorCode::PluginRefused));
    assert!(why.to_string().contains("not a WebAssembly component"), "{why}");
    let mut op = install_op("x", warren_plugins::bytes("counter"));
    if let Op::Plugin(PluginOp::Install { sha256, .. }) = &mut op {
        sha256[0] ^= 1;
    }
    assert_eq!(refusal(h.fails_code(s, op, ErrorCode::PluginRefused)), PluginRefusal::Checksum);
    let counter = warren_plugins::bytes("counter");
    let limits = Limits::default();
    for (fuel, memory) in
        [(0, 1 << 20), (limits.plugin_fuel_max + 1, 1 << 20), (1000, limits.plugin_memory_max + 1)]
    {
        let why = refusal(h.fails_code(
            s,
            install_plugin("x", counter, fuel, memory),
            ErrorCode::PluginRefused,
        ));
        assert!(matches!(why, PluginRefusal::Limit { .. }), "{why}");
    }
    let why = refusal(h.fails_code(
        s,
        install_plugin("x", counter, 1000, 64 << 10),
        ErrorCode::PluginRefused,
    ));
    assert!(why.to_string().contains("memory"), "{why}");
    let why = refusal(h.fails_code(s, install_op("bad name!", counter), ErrorCode::PluginRefused));
    assert!(why.to_string().contains("plugin name"), "{why}");
    assert!(h.sm.plugins().is_empty());
}

#[test]
fn managing_plugins_needs_admin_on_the_root() {
    // Proves install is refused with NoAuth for a session without ADMIN on
    // "/" once the root's ACL is locked down, and allowed for its admin.
    let mut h = Harness::new();
    let admin = h.open(vec![Id::x509("CN=admin")]);
    let other = h.open(vec![Id::x509("CN=app")]);
    h.ok(
        admin,
        set_acl(
            "/",
            vec![
                Acl::new(Perms::ALL, Id::x509("CN=admin")),
                Acl::new(Perms(Perms::ALL.0 & !Perms::ADMIN.0), Id::anyone()),
            ],
            None,
        ),
    );
    h.fails_code(other, install_op("counter", warren_plugins::bytes("counter")), ErrorCode::NoAuth);
    installed(&mut h, admin, "counter", "counter");
    // Invoking needs no more than the writes it makes.
    assert_eq!(output(h.ok(other, invoke("counter", "/c", ""))), "1");
}

#[test]
fn bindings_worlds_and_removal_follow_the_rules() {
    // Proves an operation cannot be bound nor a validator invoked, unbinding
    // what is not bound is refused, a bound plugin cannot be removed, and an
    // unbound one can (after which it is gone).
    let (mut h, s) = with_schema();
    installed(&mut h, s, "counter", "counter");
    let why = refusal(h.fails_code(s, bind_plugin("counter", "/x", ""), ErrorCode::PluginRefused));
    assert_eq!(
        why,
        PluginRefusal::WrongWorld {
            expected: PluginWorld::Validator,
            actual: PluginWorld::Operation
        }
    );
    let why = refusal(h.fails_code(s, invoke("schema", "/x", ""), ErrorCode::PluginRefused));
    assert_eq!(
        why,
        PluginRefusal::WrongWorld {
            expected: PluginWorld::Operation,
            actual: PluginWorld::Validator
        }
    );
    let unbind = |prefix: &str| {
        Op::Plugin(PluginOp::Unbind { name: "schema".into(), prefix: prefix.into() })
    };
    let remove = Op::Plugin(PluginOp::Remove { name: "schema".into() });
    h.fails_code(s, unbind("/nope"), ErrorCode::PluginRefused);
    let why = refusal(h.fails_code(s, remove.clone(), ErrorCode::PluginRefused));
    assert_eq!(why, PluginRefusal::Bound { prefixes: vec!["/config".into()] });
    h.ok(s, unbind("/config"));
    assert_eq!(h.ok(s, remove.clone()), OpResult::PluginRemoved);
    h.fails_code(s, remove, ErrorCode::NoPlugin);
    h.fails_code(s, invoke("nothing", "/x", ""), ErrorCode::NoPlugin);
    h.fails(
        s,
        Op::Multi(vec![invoke("counter", "/c", "")]),
        ApiError::Multi {
            index: 0,
            error: Box::new(ApiError::BadArguments(BadArgument::NotInMulti {
                what: "a plugin invocation".into(),
            })),
        },
    );
}

#[test]
fn a_configuration_the_validator_refuses_is_refused_at_bind_and_at_reinstall() {
    // Proves prepare's refusals: binding a schema the json-schema validator
    // does not support is refused with its reason and binds nothing, and
    // installing code that refuses an existing binding's configuration
    // under the bound name is refused and keeps the old code working.
    let (mut h, s) = with_schema();
    let why = refusal(h.fails_code(
        s,
        bind_plugin("schema", "/other", r#"{"type":"int"}"#),
        ErrorCode::PluginRefused,
    ));
    match &why {
        PluginRefusal::Config { prefix, reason } => {
            assert_eq!(prefix, "/other");
            assert!(reason.contains(r#"/type: unknown type "int""#), "{reason}");
        }
        other => panic!("expected the configuration refused: {other:?}"),
    }
    let info = installed_info(&h, "schema");
    assert_eq!(info.bindings.len(), 1, "only /config is bound: {info:?}");

    let picky = install_op("schema", warren_plugins::bytes("testing/picky"));
    let why = refusal(h.fails_code(s, picky, ErrorCode::PluginRefused));
    assert_eq!(
        why,
        PluginRefusal::Config {
            prefix: "/config".into(),
            reason: format!("it takes no configuration, got {} bytes", SCHEMA.len()),
        }
    );
    assert_eq!(installed_info(&h, "schema").version, 1);
    h.created(s, create("/config", b"{\"port\": 1}"));
    h.fails_code(s, create("/config/x", b"{}"), ErrorCode::Rejected);
}

#[test]
fn prepare_sees_zxid_and_time_zero_and_its_result_is_kept_across_a_snapshot() {
    // Proves a prepared configuration depends on the configuration alone:
    // prepare sees zxid 0 and time 0 (not the bind entry's), and a machine
    // restored from a snapshot, which prepares again, validates with the
    // same prepared bytes.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    installed(&mut h, s, "picky", "testing/picky");
    h.advance(5_000);
    h.ok(s, bind_plugin("picky", "/p", ""));
    let shown = |e: ApiError| match e {
        ApiError::Rejected { reason, .. } => reason,
        other => panic!("expected a rejection: {other:?}"),
    };
    let e = h.fails_code(s, create("/p", b"show"), ErrorCode::Rejected);
    assert_eq!(shown(e), "zxid=0 time=0");
    h.created(s, create("/p", b"anything else"));

    let mut bytes = Vec::new();
    snapshot::write(&h.sm, &mut bytes).expect("write");
    let mut restored = snapshot::read(&bytes[..], Limits::default()).expect("read");
    let applied = restored.apply(warren::Entry {
        zxid: h.peek_zxid(),
        time_ms: T0 + 60_000,
        command: warren::Command::Request { session: s, op: set("/p", b"show", None) },
    });
    match applied.response {
        warren::Response::Reply(Err(e)) => assert_eq!(shown(e), "zxid=0 time=0"),
        other => panic!("expected a rejection: {other:?}"),
    }
}

#[test]
fn reinstalling_switches_at_its_entry_and_counts_versions() {
    // Proves a second install under the same name takes effect from its own
    // entry (the invocation before runs the old code, the one after the new),
    // bumps the version, keeps the install zxid, and honours an expected
    // version like setData.
    let mut h = Harness::new();
    let s = h.open(vec![]);
    h.created(s, create("/s", b""));
    let v1 = installed(&mut h, s, "stamp", "testing/stamp-a");
    assert_eq!(v1.version, 1);
    let before = output(h.ok(s, invoke("stamp", "/s", "")));
    let at = h.peek_zxid();
    let v2 = installed(&mut h, s, "stamp", "testing/stamp-b");
    let after = output(h.ok(s, invoke("stamp", "/s", "")));
    assert_eq!((v2.version, v2.installed), (2, at));
    assert!(before.starts_with("a:") && after.starts_with("b:"), "{before} then {after}");
    let mut stale = install_op("stamp", warren_plugins::bytes("testing/stamp-a"));
    if let Op::Plugin(PluginOp::Install { expected_version, .. }) = &mut stale {
        *expected_version = Some(1);
    }
    let why = refusal(h.fails_code(s, stale, ErrorCode::PluginRefused));
    assert_eq!(why, PluginRefusal::BadVersion { expected: 1, actual: 2 });
}

#[test]
fn the_registry_survives_a_snapshot_and_replicas_agree_on_the_digest() {
    // Proves the registry (plugins, versions, bindings and configuration)
    // is written to and read back from a snapshot with an equal digest, the
    // restored machine keeps rejecting like the original, and a replica
    // replaying the same log reaches the same digest.
    let (mut h, s) = with_schema();
    installed(&mut h, s, "counter", "counter");
    h.ok(s, invoke("counter", "/c", ""));
    let mut bytes = Vec::new();
    snapshot::write(&h.sm, &mut bytes).expect("write");
    let mut restored = snapshot::read(&bytes[..], Limits::default()).expect("read");
    assert_eq!(restored.digest(), h.sm.digest());
    assert_eq!(restored.plugins(), h.sm.plugins());
    let entry = |zxid: u64, op: Op| warren::Entry {
        zxid: warren_client::Zxid(zxid),
        time_ms: T0,
        command: warren::Command::Request { session: s, op },
    };
    let applied = restored.apply(entry(h.next_zxid, create("/config", b"[]")));
    match applied.response {
        warren::Response::Reply(Err(ApiError::Rejected { reason, .. })) => {
            assert_eq!(reason, "expected an object, got an array");
        }
        other => panic!("expected a rejection by the schema: {other:?}"),
    }

    let mut replica = StateMachine::new(Limits::default());
    for entry in h.log.clone() {
        replica.apply(entry);
    }
    assert_eq!(replica.digest(), h.sm.digest());
    // A registry change moves the digest.
    let before = h.sm.digest();
    h.ok(s, bind_plugin("schema", "/other", "{}"));
    assert_ne!(h.sm.digest(), before);
}
