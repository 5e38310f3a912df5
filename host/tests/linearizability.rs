//! Tests of the simulator's linearizability checker (`warren::sim::
//! linearizability`): hand-written histories with a known verdict, generated
//! histories produced by running the model itself, and a cross-check against
//! a brute-force search over every order on small random histories.

use std::time::Instant;
use warren::sim::linearizability::{
    Model, Operation, Outcome, TreeModel, TreeOp, TreeRet, check, check_partitioned,
};
use warren_client::ErrorCode;

type Op = Operation<TreeModel>;

/// Ample for every hand-written history here.
const BUDGET: u64 = 100_000;

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn done(client: u64, invoke: u64, complete: u64, op: TreeOp, ret: TreeRet) -> Op {
    Operation::completed(client, invoke, complete, op, ret)
}

fn lost(client: u64, invoke: u64, op: TreeOp) -> Op {
    Operation::indeterminate(client, invoke, op)
}

fn create(path: &str, data: &str) -> TreeOp {
    TreeOp::Create { path: path.into(), data: data.into() }
}

fn set(path: &str, data: &str, version: Option<i32>) -> TreeOp {
    TreeOp::SetData { path: path.into(), data: data.into(), version }
}

fn delete(path: &str, version: Option<i32>) -> TreeOp {
    TreeOp::Delete { path: path.into(), version }
}

fn check_op(path: &str, version: Option<i32>) -> TreeOp {
    TreeOp::Check { path: path.into(), version }
}

fn get(path: &str) -> TreeOp {
    TreeOp::Get { path: path.into() }
}

fn value(data: &str, version: i32) -> TreeRet {
    TreeRet::Value(Some((data.into(), version)))
}

fn absent() -> TreeRet {
    TreeRet::Value(None)
}

fn err(code: ErrorCode) -> TreeRet {
    TreeRet::Err(code)
}

/// The partition key for `check_partitioned`.
fn by_path(op: &TreeOp) -> Option<String> {
    op.path().map(str::to_owned)
}

fn one_node() -> TreeModel {
    TreeModel::new().with_node("/k0", b"a", 0)
}

#[track_caller]
fn assert_linearizable(init: &TreeModel, history: &[Op]) {
    let outcome = check(init.clone(), history, BUDGET);
    assert!(outcome.is_linearizable(), "expected linearizable, got: {outcome}");
}

#[track_caller]
fn assert_not_linearizable(init: &TreeModel, history: &[Op]) -> Box<FailureOf> {
    match check(init.clone(), history, BUDGET) {
        Outcome::NotLinearizable(failure) => failure,
        outcome => panic!("expected not linearizable, got: {outcome}"),
    }
}

type FailureOf = warren::sim::linearizability::Failure<TreeModel>;

/// SplitMix64: a tiny deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Shape of the histories `generate` makes.
struct Shape {
    clients: u64,
    ops_per_client: usize,
    keys: u64,
    /// Data values per key (few: many ops write equal data, which makes the
    /// search harder).
    values: u64,
    /// Largest gap, in ms, between invocation, effect and response.
    spread: u64,
    /// Percentage of operations whose outcome the client never learns.
    indeterminate: u64,
}

fn random_op(rng: &mut Rng, shape: &Shape, in_multi: bool) -> TreeOp {
    let path = format!("/k{}", rng.below(shape.keys));
    let data = format!("v{}", rng.below(shape.values));
    let version = if rng.chance(40) { None } else { Some(rng.below(3) as i32) };
    match rng.below(if in_multi { 4 } else { 7 }) {
        0 => create(&path, &data),
        1 => set(&path, &data, version),
        2 => delete(&path, version),
        3 => check_op(&path, version),
        4 | 5 => get(&path),
        _ => TreeOp::Multi((0..1 + rng.below(3)).map(|_| random_op(rng, shape, true)).collect()),
    }
}

/// A history that is linearizable by construction: each client runs its
/// operations one after another; each operation takes effect at a random
/// instant strictly inside its interval, and its return is what the model
/// returns when the operations are applied in the order of those instants.
/// An indeterminate operation takes effect (or, half the time, never does)
/// the same way, but its client records no response.
fn generate(rng: &mut Rng, shape: &Shape) -> Vec<Op> {
    struct Planned {
        effect: u64,
        index: usize,
        applies: bool,
    }
    let mut history = Vec::new();
    let mut planned = Vec::new();
    for client in 0..shape.clients {
        let mut t = rng.below(shape.spread);
        for _ in 0..shape.ops_per_client {
            let invoke = t;
            let effect = invoke + 1 + rng.below(shape.spread);
            let complete = effect + 1 + rng.below(shape.spread);
            t = complete + 1 + rng.below(shape.spread);
            let op = random_op(rng, shape, false);
            let index = history.len();
            if rng.chance(shape.indeterminate) {
                planned.push(Planned { effect, index, applies: rng.chance(50) });
                history.push(lost(client, invoke, op));
            } else {
                planned.push(Planned { effect, index, applies: true });
                history.push(done(client, invoke, complete, op, absent()));
            }
        }
    }
    planned.sort_by_key(|p| p.effect);
    let mut model = TreeModel::new();
    for p in planned {
        if p.applies {
            let ret = model.apply(&history[p.index].op);
            if let Some(slot) = &mut history[p.index].ret {
                *slot = ret;
            }
        }
    }
    history
}

/// Every order of `history` that respects real time, tried one by one: the
/// definition of linearizability, with no memo and no linked list.
fn brute_force<M: Model>(state: &M, history: &[Operation<M>], placed: &mut [bool]) -> bool {
    if (0..history.len()).all(|i| placed[i] || history[i].ret.is_none()) {
        return true;
    }
    for x in 0..history.len() {
        if placed[x] {
            continue;
        }
        let must_precede = |y: usize| {
            !placed[y] && history[y].ret.is_some() && history[y].complete < Some(history[x].invoke)
        };
        if (0..history.len()).any(must_precede) {
            continue;
        }
        let after = match &history[x].ret {
            Some(ret) => state.step(&history[x].op, ret),
            None => Some(state.step_unknown(&history[x].op)),
        };
        if let Some(after) = after {
            placed[x] = true;
            if brute_force(&after, history, placed) {
                return true;
            }
            placed[x] = false;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// The model itself.
// ---------------------------------------------------------------------------

#[test]
fn tree_model_follows_znode_rules() {
    // Proves TreeModel's returns and versions by applying a script and comparing every return.
    let mut m = TreeModel::new();
    let script = [
        (get("/k0"), absent()),
        (set("/k0", "x", None), err(ErrorCode::NoNode)),
        (create("/k0", "a"), TreeRet::Created),
        (create("/k0", "b"), err(ErrorCode::NodeExists)),
        (get("/k0"), value("a", 0)),
        (set("/k0", "b", Some(1)), err(ErrorCode::BadVersion)),
        (set("/k0", "b", Some(0)), TreeRet::Set { version: 1 }),
        (set("/k0", "c", None), TreeRet::Set { version: 2 }),
        (check_op("/k0", Some(2)), TreeRet::Checked),
        (check_op("/k0", Some(1)), err(ErrorCode::BadVersion)),
        (check_op("/k1", None), err(ErrorCode::NoNode)),
        (delete("/k0", Some(1)), err(ErrorCode::BadVersion)),
        (delete("/k0", Some(2)), TreeRet::Deleted),
        (delete("/k0", None), err(ErrorCode::NoNode)),
        (
            TreeOp::Multi(vec![
                create("/k1", "m"),
                set("/k1", "n", Some(0)),
                check_op("/k1", Some(1)),
            ]),
            TreeRet::Multi(vec![TreeRet::Created, TreeRet::Set { version: 1 }, TreeRet::Checked]),
        ),
        (get("/k1"), value("n", 1)),
        (
            TreeOp::Multi(vec![create("/k2", "z"), delete("/k1", Some(0))]),
            TreeRet::MultiErr { index: 1, code: ErrorCode::BadVersion },
        ),
        (get("/k2"), absent()),
        (
            TreeOp::Multi(vec![check_op("/k1", None), get("/k1")]),
            TreeRet::MultiErr { index: 1, code: ErrorCode::BadArguments },
        ),
        (TreeOp::Multi(vec![]), TreeRet::Multi(vec![])),
    ];
    for (i, (op, expected)) in script.iter().enumerate() {
        assert_eq!(m.apply(op), *expected, "step {i}: {op:?} from {m:?}");
    }
    assert_eq!(m, TreeModel::new().with_node("/k1", b"n", 1));
}

// ---------------------------------------------------------------------------
// Hand-written histories.
// ---------------------------------------------------------------------------

#[test]
fn sequential_histories_pass() {
    // Proves a non-overlapping history whose returns follow the model is accepted, across every op kind.
    let h = [
        done(0, 0, 1, create("/k0", "a"), TreeRet::Created),
        done(1, 2, 3, get("/k0"), value("a", 0)),
        done(0, 4, 5, set("/k0", "b", Some(0)), TreeRet::Set { version: 1 }),
        done(2, 6, 7, create("/k0", "c"), err(ErrorCode::NodeExists)),
        done(1, 8, 9, set("/k0", "c", Some(0)), err(ErrorCode::BadVersion)),
        done(
            2,
            10,
            11,
            TreeOp::Multi(vec![check_op("/k0", Some(1)), create("/k1", "d")]),
            TreeRet::Multi(vec![TreeRet::Checked, TreeRet::Created]),
        ),
        done(0, 12, 13, delete("/k0", None), TreeRet::Deleted),
        done(1, 14, 15, get("/k0"), absent()),
        done(2, 16, 17, get("/k1"), value("d", 0)),
    ];
    assert_linearizable(&TreeModel::new(), &h);
    assert_linearizable(&TreeModel::new(), &[]);
}

#[test]
fn stale_read_after_completed_write_fails() {
    // Proves a read invoked after a write completed may not return the old value, and that the failure names the read.
    let h = [
        done(0, 0, 10, set("/k0", "b", None), TreeRet::Set { version: 1 }),
        done(1, 20, 30, get("/k0"), value("a", 0)),
    ];
    let failure = assert_not_linearizable(&one_node(), &h);
    assert_eq!(failure.deadline, 1, "{}", failure.explanation);
    assert_eq!(failure.prefix, vec![0], "{}", failure.explanation);
    assert_eq!(failure.stuck, vec![1], "{}", failure.explanation);
    assert_eq!(failure.state, TreeModel::new().with_node("/k0", b"b", 1));
    assert!(failure.explanation.contains("#1 client 1 [20, 30] Get(/k0) -> Value(b\"a\" v0)"));
    // Touching intervals (write completes at 20, read invoked at 20) are concurrent: the old value is fine.
    let touching = [
        done(0, 0, 20, set("/k0", "b", None), TreeRet::Set { version: 1 }),
        done(1, 20, 30, get("/k0"), value("a", 0)),
    ];
    assert_linearizable(&one_node(), &touching);
}

#[test]
fn concurrent_read_may_see_either_value() {
    // Proves a read overlapping a write is accepted whether it returns the old or the new value.
    for seen in [value("a", 0), value("b", 1)] {
        let h = [
            done(0, 0, 10, set("/k0", "b", Some(0)), TreeRet::Set { version: 1 }),
            done(1, 5, 15, get("/k0"), seen),
        ];
        assert_linearizable(&one_node(), &h);
    }
    // But once one read saw the new value, a later read may not see the old one.
    let h = [
        done(0, 0, 100, set("/k0", "b", Some(0)), TreeRet::Set { version: 1 }),
        done(1, 5, 15, get("/k0"), value("b", 1)),
        done(2, 20, 30, get("/k0"), value("a", 0)),
    ];
    assert_not_linearizable(&one_node(), &h);
}

#[test]
fn read_of_a_value_never_written_fails() {
    // Proves a read returning data or a version no operation produced is rejected.
    for seen in [value("z", 0), value("a", 7), value("b", 0)] {
        let h = [
            done(0, 0, 10, set("/k0", "b", None), TreeRet::Set { version: 1 }),
            done(1, 5, 15, get("/k0"), seen),
        ];
        assert_not_linearizable(&one_node(), &h);
    }
}

#[test]
fn lost_update_fails() {
    // Proves two conditional setData at the same version cannot both succeed; one must see BadVersion.
    let h = |second: TreeRet| {
        [
            done(0, 0, 10, get("/k0"), value("a", 0)),
            done(1, 0, 10, get("/k0"), value("a", 0)),
            done(0, 20, 30, set("/k0", "x", Some(0)), TreeRet::Set { version: 1 }),
            done(1, 20, 30, set("/k0", "y", Some(0)), second),
        ]
    };
    assert_not_linearizable(&one_node(), &h(TreeRet::Set { version: 1 }));
    assert_linearizable(&one_node(), &h(err(ErrorCode::BadVersion)));
    // Nor may both see the new version 1 with unconditional writes.
    let both = [
        done(0, 20, 30, set("/k0", "x", None), TreeRet::Set { version: 1 }),
        done(1, 20, 30, set("/k0", "y", None), TreeRet::Set { version: 1 }),
    ];
    assert_not_linearizable(&one_node(), &both);
}

#[test]
fn indeterminate_operations_may_or_may_not_take_effect() {
    // Proves an op with no response may be skipped, or take effect later, but its effect cannot appear and vanish.
    let never = [lost(0, 0, create("/k0", "a")), done(1, 100, 110, get("/k0"), absent())];
    assert_linearizable(&TreeModel::new(), &never);
    let later = [lost(0, 0, create("/k0", "a")), done(1, 100, 110, get("/k0"), value("a", 0))];
    assert_linearizable(&TreeModel::new(), &later);
    // Even long after the client gave up, and after reads that did not see it.
    let delayed = [
        Operation { complete: Some(5), ..lost(0, 0, create("/k0", "a")) },
        done(1, 100, 110, get("/k0"), absent()),
        done(1, 200, 210, get("/k0"), value("a", 0)),
    ];
    assert_linearizable(&TreeModel::new(), &delayed);
    // An indeterminate create that failed (the node existed) is consistent with anything it did not change.
    let failed = [lost(0, 0, create("/k0", "b")), done(1, 100, 110, get("/k0"), value("a", 0))];
    assert_linearizable(&one_node(), &failed);
    let flicker = [
        lost(0, 0, create("/k0", "a")),
        done(1, 100, 110, get("/k0"), value("a", 0)),
        done(1, 200, 210, get("/k0"), absent()),
    ];
    assert_not_linearizable(&TreeModel::new(), &flicker);
}

#[test]
fn indeterminate_effect_before_its_invocation_fails() {
    // Proves an indeterminate op cannot explain an effect observed before it was invoked.
    let h = [done(1, 0, 5, get("/k0"), value("a", 0)), lost(0, 10, create("/k0", "a"))];
    let failure = assert_not_linearizable(&TreeModel::new(), &h);
    assert_eq!(failure.deadline, 0);
    // Overlapping the read's interval is enough.
    let overlapping = [done(1, 0, 5, get("/k0"), value("a", 0)), lost(0, 5, create("/k0", "a"))];
    assert_linearizable(&TreeModel::new(), &overlapping);
}

#[test]
fn multi_is_atomic() {
    // Proves reads cannot observe half of a multi: one client sees k0 created, then k1 not, within the multi's interval.
    let multi = TreeOp::Multi(vec![create("/k0", "x"), create("/k1", "y")]);
    let ok = TreeRet::Multi(vec![TreeRet::Created, TreeRet::Created]);
    let half = [
        done(0, 0, 10, multi.clone(), ok.clone()),
        done(1, 1, 4, get("/k0"), value("x", 0)),
        done(1, 5, 8, get("/k1"), absent()),
    ];
    assert_not_linearizable(&TreeModel::new(), &half);
    let whole = [
        done(0, 0, 10, multi.clone(), ok.clone()),
        done(1, 1, 4, get("/k0"), value("x", 0)),
        done(1, 5, 8, get("/k1"), value("y", 0)),
    ];
    assert_linearizable(&TreeModel::new(), &whole);
    // A failed multi applies nothing, even its operations before the failing one.
    let failed = [
        done(
            0,
            0,
            10,
            TreeOp::Multi(vec![create("/k1", "y"), create("/k0", "x")]),
            TreeRet::MultiErr { index: 1, code: ErrorCode::NodeExists },
        ),
        done(1, 20, 30, get("/k1"), value("y", 0)),
    ];
    assert_not_linearizable(&TreeModel::new().with_node("/k0", b"a", 0), &failed);
}

#[test]
fn error_returns_must_match_the_state() {
    // Proves BadVersion, NodeExists, NoNode and MultiErr are accepted exactly when the state at some point explains them.
    let init = one_node();
    let cases = [
        (create("/k0", "b"), err(ErrorCode::NodeExists), true),
        (create("/k1", "b"), err(ErrorCode::NodeExists), false),
        (set("/k0", "b", Some(3)), err(ErrorCode::BadVersion), true),
        (set("/k0", "b", Some(0)), err(ErrorCode::BadVersion), false),
        (set("/k1", "b", None), err(ErrorCode::NoNode), true),
        (set("/k1", "b", Some(3)), err(ErrorCode::BadVersion), false),
        (delete("/k0", Some(1)), err(ErrorCode::BadVersion), true),
        (delete("/k0", None), err(ErrorCode::NoNode), false),
        (check_op("/k0", Some(0)), err(ErrorCode::BadVersion), false),
        (
            TreeOp::Multi(vec![check_op("/k0", Some(0)), create("/k0", "c")]),
            TreeRet::MultiErr { index: 1, code: ErrorCode::NodeExists },
            true,
        ),
        (
            TreeOp::Multi(vec![check_op("/k0", Some(0)), create("/k0", "c")]),
            TreeRet::MultiErr { index: 0, code: ErrorCode::BadVersion },
            false,
        ),
    ];
    for (op, ret, expected) in cases {
        let h = [done(0, 0, 10, op.clone(), ret.clone())];
        let outcome = check(init.clone(), &h, BUDGET);
        assert_eq!(outcome.is_linearizable(), expected, "{op:?} -> {ret:?}: {outcome}");
    }
    // An error becomes consistent when a concurrent write can explain it, and not once that write is over.
    let concurrent = [
        done(0, 0, 10, delete("/k0", None), TreeRet::Deleted),
        done(1, 5, 15, set("/k0", "b", None), err(ErrorCode::NoNode)),
    ];
    assert_linearizable(&init, &concurrent);
    let after = [
        done(1, 0, 4, set("/k0", "b", None), err(ErrorCode::NoNode)),
        done(0, 5, 10, delete("/k0", None), TreeRet::Deleted),
    ];
    assert_not_linearizable(&init, &after);
}

#[test]
fn unknown_when_the_step_budget_is_exhausted() {
    // Proves a tiny max_steps yields Unknown (neither verdict), and that a budget of zero still decides trivial histories.
    let mut rng = Rng(7);
    let shape =
        Shape { clients: 3, ops_per_client: 50, keys: 2, values: 2, spread: 10, indeterminate: 5 };
    let h = generate(&mut rng, &shape);
    let outcome = check(TreeModel::new(), &h, 10);
    assert!(matches!(outcome, Outcome::Unknown { steps: 10 }), "{outcome}");
    assert!(outcome.to_string().starts_with("unknown"));
    let outcome = check_partitioned(TreeModel::new(), &h, 3, by_path);
    assert!(outcome.is_unknown(), "{outcome}");
    assert!(check(TreeModel::new(), &[], 0).is_linearizable());
    assert!(check(TreeModel::new(), &[lost(0, 0, get("/k0"))], 0).is_linearizable());
}

// ---------------------------------------------------------------------------
// Generated histories.
// ---------------------------------------------------------------------------

#[test]
fn large_generated_history_is_accepted_quickly() {
    // Proves a 3 clients × 300 overlapping ops history made by the model (3% indeterminate) is accepted in under 20 steps an op and 1 s, and one impossible read in it is caught.
    let shape =
        Shape { clients: 3, ops_per_client: 300, keys: 8, values: 3, spread: 20, indeterminate: 3 };
    let mut rng = Rng(2024);
    let history = generate(&mut rng, &shape);
    assert_eq!(history.len(), 900);
    let started = Instant::now();
    let outcome = check(TreeModel::new(), &history, 20 * 900);
    let elapsed = started.elapsed();
    assert!(outcome.is_linearizable(), "{outcome}");
    assert!(elapsed.as_secs_f64() < 1.0, "900 operations took {elapsed:?}");

    // Corrupt a read in the middle of client 1's run (so mid-history): data nobody wrote. Proving
    // a failure means exhausting every order up to that read, so it takes more steps.
    let mut corrupted = history.clone();
    let victim = (450..600)
        .find(|&i| matches!(corrupted[i].op, TreeOp::Get { .. }) && corrupted[i].ret.is_some())
        .expect("client 1 has a read");
    corrupted[victim].ret = Some(value("never written", 0));
    match check(TreeModel::new(), &corrupted, 1_000_000) {
        Outcome::NotLinearizable(failure) => {
            assert_eq!(failure.deadline, victim, "{}", failure.explanation);
            assert!(failure.stuck.contains(&victim), "{}", failure.explanation);
            assert!(failure.prefix.len() < corrupted.len());
        }
        outcome => panic!("corrupted read #{victim} not caught: {outcome}"),
    }
}

#[test]
fn generated_histories_are_accepted() {
    // Proves many seeds of heavily overlapping, model-produced histories (with indeterminate ops) are all accepted.
    for seed in 0..40 {
        let mut rng = Rng(seed);
        let shape = Shape {
            clients: 2 + seed % 4,
            ops_per_client: 40,
            keys: 1 + seed % 3,
            values: 2,
            spread: 30,
            indeterminate: 10,
        };
        let h = generate(&mut rng, &shape);
        let outcome = check(TreeModel::new(), &h, 2_000_000);
        assert!(outcome.is_linearizable(), "seed {seed}: {outcome}");
    }
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    // Proves check's verdict equals an exhaustive search over all real-time orders, on random (often corrupted) small histories.
    let (mut passed, mut failed) = (0, 0);
    let rets = [
        absent(),
        value("v0", 0),
        value("v1", 0),
        value("v0", 1),
        value("v1", 1),
        TreeRet::Created,
        TreeRet::Deleted,
        TreeRet::Set { version: 1 },
        TreeRet::Set { version: 2 },
        err(ErrorCode::NoNode),
        err(ErrorCode::NodeExists),
        err(ErrorCode::BadVersion),
    ];
    for seed in 0..1500 {
        let mut rng = Rng(seed);
        let shape = Shape {
            clients: 2 + seed % 2,
            ops_per_client: 2 + (seed / 2 % 2) as usize,
            keys: 2,
            values: 2,
            spread: 6,
            indeterminate: 15,
        };
        let mut h = generate(&mut rng, &shape);
        // Corrupt a return most of the time.
        if rng.chance(70) {
            let i = rng.below(h.len() as u64) as usize;
            if h[i].ret.is_some() {
                h[i].ret = Some(rng.pick(&rets).clone());
            }
        }
        let expected = brute_force(&TreeModel::new(), &h, &mut vec![false; h.len()]);
        let outcome = check(TreeModel::new(), &h, BUDGET);
        assert!(!outcome.is_unknown(), "seed {seed}: {outcome}");
        assert_eq!(outcome.is_linearizable(), expected, "seed {seed}: {h:#?}\n{outcome}");
        let by_key = check_partitioned(TreeModel::new(), &h, BUDGET, by_path);
        assert_eq!(by_key.is_linearizable(), expected, "seed {seed} partitioned: {by_key}");
        if expected { passed += 1 } else { failed += 1 }
    }
    assert!(passed > 300 && failed > 300, "passed {passed}, failed {failed}");
}

/// A register without versions, where overwritten writes leave identical
/// states behind: the case the memo's handling of indeterminate operations
/// must get right.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Register(u8);

#[derive(Clone, Debug)]
enum RegisterOp {
    Write(u8),
    Read,
}

impl Model for Register {
    type Op = RegisterOp;
    type Ret = Option<u8>;

    fn step(&self, op: &RegisterOp, ret: &Option<u8>) -> Option<Self> {
        match (op, ret) {
            (RegisterOp::Write(v), None) => Some(Register(*v)),
            (RegisterOp::Read, Some(v)) if *v == self.0 => Some(self.clone()),
            _ => None,
        }
    }

    fn step_unknown(&self, op: &RegisterOp) -> Self {
        match op {
            RegisterOp::Write(v) => Register(*v),
            RegisterOp::Read => self.clone(),
        }
    }
}

#[test]
fn overwritten_indeterminate_write_may_still_take_effect_later() {
    // Proves the memo does not treat "placed more indeterminate ops" as progress: two lost writes, each needed at a different time.
    let h = [
        Operation::indeterminate(0, 0, RegisterOp::Write(2)),
        Operation::indeterminate(0, 3, RegisterOp::Write(1)),
        Operation::completed(1, 3, 7, RegisterOp::Read, Some(1)),
        Operation::completed(1, 10, 16, RegisterOp::Read, Some(2)),
    ];
    let outcome = check(Register(0), &h, BUDGET);
    assert!(outcome.is_linearizable(), "{outcome}");
}

#[test]
fn generic_register_model_agrees_with_brute_force() {
    // Proves the checker is generic and exact on a model whose states repeat: random register histories, many writes indeterminate, against exhaustive search.
    let (mut passed, mut failed) = (0, 0);
    for seed in 0..3000 {
        let mut rng = Rng(seed);
        let mut h: Vec<Operation<Register>> = Vec::new();
        for client in 0..2 + seed % 2 {
            let mut t = rng.below(4);
            for _ in 0..2 + seed / 2 % 2 {
                let (invoke, complete) = (t, t + 1 + rng.below(8));
                t = complete + 1 + rng.below(4);
                let written = 1 + rng.below(2) as u8;
                h.push(match rng.below(4) {
                    0 => Operation::indeterminate(client, invoke, RegisterOp::Write(written)),
                    1 => Operation::completed(
                        client,
                        invoke,
                        complete,
                        RegisterOp::Write(written),
                        None,
                    ),
                    _ => Operation::completed(
                        client,
                        invoke,
                        complete,
                        RegisterOp::Read,
                        Some(rng.below(3) as u8),
                    ),
                });
            }
        }
        let expected = brute_force(&Register(0), &h, &mut vec![false; h.len()]);
        let outcome = check(Register(0), &h, BUDGET);
        assert_eq!(outcome.is_linearizable(), expected, "seed {seed}: {h:#?}\n{outcome}");
        if expected { passed += 1 } else { failed += 1 }
    }
    assert!(passed > 500 && failed > 500, "passed {passed}, failed {failed}");
}

#[test]
fn partitioned_check_reports_original_indices() {
    // Proves check_partitioned maps a failing key's operations back to the full history's indices and names the key.
    let h = [
        done(0, 0, 10, create("/k1", "a"), TreeRet::Created),
        done(0, 20, 30, set("/k0", "b", None), TreeRet::Set { version: 1 }),
        done(1, 40, 50, get("/k1"), value("a", 0)),
        done(1, 60, 70, get("/k0"), value("a", 0)),
    ];
    let outcome = check_partitioned(one_node(), &h, BUDGET, by_path);
    let Outcome::NotLinearizable(failure) = outcome else { panic!("{outcome}") };
    assert_eq!((failure.prefix.clone(), failure.deadline), (vec![1], 3), "{}", failure.explanation);
    assert!(failure.explanation.contains("\"/k0\""), "{}", failure.explanation);
    // A multi over two keys makes it check the whole history at once, with the same verdict.
    let mut mixed = h.to_vec();
    mixed.push(done(
        2,
        80,
        90,
        TreeOp::Multi(vec![check_op("/k0", None), check_op("/k1", None)]),
        TreeRet::Multi(vec![TreeRet::Checked, TreeRet::Checked]),
    ));
    let outcome = check_partitioned(one_node(), &mixed, BUDGET, by_path);
    assert!(outcome.is_not_linearizable(), "{outcome}");
}
