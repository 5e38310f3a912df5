//! A linearizability checker for the histories the simulator records, and the
//! sequential model of the znode subset it checks them against.
//!
//! [`check`] is the Wing–Gong–Lowe search with Lowe's memoization (the
//! algorithm of "Testing for linearizability", 2017, and of Porcupine): walk
//! the history's invocation and response events in time order, repeatedly
//! pick an invoked, not yet linearized operation, apply it to the sequential
//! [`Model`] and remove it from the history (if the model accepts its recorded
//! return), backtrack when a response is reached whose operation has not been
//! placed, and never revisit a (set of linearized operations, model state)
//! pair. It is generic over the model; [`TreeModel`] is Warren's.
//!
//! Indeterminate operations (`ret: None`: the client timed out, its server
//! crashed) may take effect at any point after their invocation — even after
//! the client gave up, as a request may sit in a queue — or never. They are
//! given a response at +infinity and applied with [`Model::step_unknown`]; the
//! search succeeds once every determinate operation is placed, the rest
//! "never happened" (equivalently, happened after everything observed). Two
//! refinements keep them affordable: at each point the search tries them only
//! after the determinate candidates failed (they are best placed late), and
//! it skips a configuration when it has visited one with the same determinate
//! operations placed, the same state and a subset of its indeterminate ones
//! (which can do all the bigger one can, by leaving the extras out).
//!
//! Real-time order: operation `a` precedes `b` only when
//! `a.complete < b.invoke` strictly; operations whose intervals touch
//! (`a.complete == b.invoke`) are concurrent. Internally invocations sort
//! before responses at equal times.
//!
//! [`check_partitioned`] uses locality (P-compositionality): when every
//! operation touches one key of a model that is a product of independent
//! per-key objects, the history is linearizable iff each key's sub-history is,
//! and checking the pieces is exponentially cheaper.
//!
//! Cost: the search is exponential in the worst case (the problem is
//! NP-complete); the memo bounds it by the number of distinct (linearized
//! set, state) pairs, which for `c` concurrently open operations is about
//! `n · 2^c · states`. An indeterminate operation stays open until the end,
//! so it widens every later point: accepting a history stays cheap (about one
//! step per operation and open operation), but proving a failure means
//! exhausting every order up to it, which grows exponentially with the
//! indeterminate operations pending there that change the state. `max_steps`
//! caps the search: [`Outcome::Unknown`] means the cap was hit and nothing
//! was decided — neither a pass nor a failure.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use warren_client::ErrorCode;

/// A sequential specification: the object the history should behave like.
pub trait Model: Clone + Eq + Hash + fmt::Debug {
    type Op: Clone + fmt::Debug;
    type Ret: Clone + PartialEq + fmt::Debug;
    /// The state after `op` returned `ret` from `self`, or `None` if `op`
    /// cannot return `ret` here.
    fn step(&self, op: &Self::Op, ret: &Self::Ret) -> Option<Self>;
    /// The state after `op` took effect with a return nobody saw (for
    /// operations whose outcome the client never learned).
    fn step_unknown(&self, op: &Self::Op) -> Self;
}

/// One operation of a history. Times are any monotonic `u64` (the simulator
/// uses simulated ms).
#[derive(Clone, Debug)]
pub struct Operation<M: Model> {
    pub client: u64,
    pub invoke: u64,
    /// When the response arrived; ignored for an indeterminate operation.
    pub complete: Option<u64>,
    pub op: M::Op,
    /// `None`: indeterminate — the operation may have taken effect at any
    /// point after `invoke`, or never.
    pub ret: Option<M::Ret>,
}

impl<M: Model> Operation<M> {
    /// An operation that returned `ret` at `complete`.
    pub fn completed(client: u64, invoke: u64, complete: u64, op: M::Op, ret: M::Ret) -> Self {
        Operation { client, invoke, complete: Some(complete), op, ret: Some(ret) }
    }

    /// An operation whose outcome its client never learned.
    pub fn indeterminate(client: u64, invoke: u64, op: M::Op) -> Self {
        Operation { client, invoke, complete: None, op, ret: None }
    }

    pub fn is_indeterminate(&self) -> bool {
        self.ret.is_none()
    }
}

/// What [`check`] found.
#[derive(Clone, Debug)]
pub enum Outcome<M: Model> {
    Linearizable,
    NotLinearizable(Box<Failure<M>>),
    /// The search reached `max_steps` steps and stopped: undecided.
    Unknown {
        steps: u64,
    },
}

impl<M: Model> Outcome<M> {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable)
    }

    pub fn is_not_linearizable(&self) -> bool {
        matches!(self, Outcome::NotLinearizable(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown { .. })
    }
}

impl<M: Model> fmt::Display for Outcome<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Linearizable => f.write_str("linearizable"),
            Outcome::NotLinearizable(failure) => f.write_str(&failure.explanation),
            Outcome::Unknown { steps } => write!(
                f,
                "unknown: the search gave up after {steps} steps without deciding; \
                 raise max_steps or shorten the history"
            ),
        }
    }
}

/// Why a history is not linearizable: the deepest point the search reached.
/// Operations are indices into the history passed to [`check`] (or
/// [`check_partitioned`]).
#[derive(Clone, Debug)]
pub struct Failure<M: Model> {
    /// The linearizable prefix found that places the most determinate
    /// operations, in the order its operations take effect (it may include
    /// indeterminate ones).
    pub prefix: Vec<usize>,
    /// The model's state after `prefix`.
    pub state: M,
    /// The determinate operations that real time allows to take effect next;
    /// the model accepts none of them from `state` with its recorded return,
    /// nor after any pending indeterminate operations take effect first.
    pub stuck: Vec<usize>,
    /// The operation among `stuck` that responded first: it had to take
    /// effect before anything invoked after its response.
    pub deadline: usize,
    /// All of the above, printed readably (also `Outcome`'s `Display`).
    pub explanation: String,
}

/// Checks `history` against the sequential model starting at `init`, giving
/// up with [`Outcome::Unknown`] after `max_steps` search steps (an operation
/// tried or a backtrack).
///
/// # Panics
///
/// If an operation has a return but no completion time, or completes before
/// it is invoked.
pub fn check<M: Model>(init: M, history: &[Operation<M>], max_steps: u64) -> Outcome<M> {
    let index: Vec<usize> = (0..history.len()).collect();
    finish(history, &index, None::<&()>, search(init, history, max_steps))
}

/// Like [`check`], but splits the history by `key` and checks each part on
/// its own, from `init`; `max_steps` bounds each part's search. Sound only
/// when the model is a product of independent objects, one per key, and an
/// operation with `key(op) == Some(k)` reads and changes only object `k`
/// (true of [`TreeModel`] with [`TreeOp::path`]). If `key` returns `None`
/// for any operation, the whole history is checked at once.
pub fn check_partitioned<M, K, F>(
    init: M,
    history: &[Operation<M>],
    max_steps: u64,
    key: F,
) -> Outcome<M>
where
    M: Model,
    K: Ord + fmt::Debug,
    F: Fn(&M::Op) -> Option<K>,
{
    let mut parts: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, operation) in history.iter().enumerate() {
        match key(&operation.op) {
            Some(k) => parts.entry(k).or_default().push(i),
            None => return check(init, history, max_steps),
        }
    }
    check_parts(init, history, &parts, max_steps)
}

/// [`check_partitioned`] for operations that may touch several keys (a
/// multi over two paths): keys that one operation ties together form one
/// independent component, checked on its own. An operation that touches no
/// key at all sends the whole history to [`check`].
pub fn check_components<M, K, F>(
    init: M,
    history: &[Operation<M>],
    max_steps: u64,
    keys: F,
) -> Outcome<M>
where
    M: Model,
    K: Ord + Clone + fmt::Debug,
    F: Fn(&M::Op) -> Vec<K>,
{
    // Union-find over the keys, by their first appearance.
    let mut index: BTreeMap<K, usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut touched: Vec<Vec<usize>> = Vec::with_capacity(history.len());
    for operation in history {
        let ks = keys(&operation.op);
        if ks.is_empty() {
            return check(init, history, max_steps);
        }
        let ids: Vec<usize> = ks
            .into_iter()
            .map(|k| {
                let next = parent.len();
                let id = *index.entry(k).or_insert(next);
                if id == next {
                    parent.push(next);
                }
                id
            })
            .collect();
        for pair in ids.windows(2) {
            let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
            parent[a] = b;
        }
        touched.push(ids);
    }
    // Each component named by its smallest key.
    let mut name: BTreeMap<usize, K> = BTreeMap::new();
    for (k, &id) in &index {
        let r = root(&mut parent, id);
        name.entry(r).or_insert_with(|| k.clone());
    }
    let mut parts: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, ids) in touched.iter().enumerate() {
        let r = root(&mut parent, ids[0]);
        parts.entry(name[&r].clone()).or_default().push(i);
    }
    check_parts(init, history, &parts, max_steps)
}

fn check_parts<M: Model, K: Ord + fmt::Debug>(
    init: M,
    history: &[Operation<M>],
    parts: &BTreeMap<K, Vec<usize>>,
    max_steps: u64,
) -> Outcome<M> {
    let mut unknown = None;
    for (k, index) in parts {
        let part: Vec<Operation<M>> = index.iter().map(|&i| history[i].clone()).collect();
        match finish(history, index, Some(k), search(init.clone(), &part, max_steps)) {
            Outcome::Linearizable => {}
            failed @ Outcome::NotLinearizable(_) => return failed,
            Outcome::Unknown { steps } => unknown = Some(unknown.unwrap_or(0) + steps),
        }
    }
    match unknown {
        Some(steps) => Outcome::Unknown { steps },
        None => Outcome::Linearizable,
    }
}

/// The raw result of one search, in the searched history's indices.
enum Found<M> {
    Linearizable,
    Failed { prefix: Vec<usize>, state: M, stuck: Vec<usize>, deadline: usize },
    GaveUp { steps: u64 },
}

/// The history's events as two doubly linked lists (Knuth's dancing links),
/// so an operation can be lifted out and put back in O(1): the calls and
/// returns of the determinate operations in time order, and the calls of the
/// indeterminate ones (whose returns would all be at +infinity) in time order.
/// Nodes: `DET` and `DET + 1` head and tail the first list, `INDET` and
/// `INDET + 1` the second, the events follow.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each event node.
    op: Vec<usize>,
    /// For a determinate call its return node, else `NONE`.
    ret: Vec<usize>,
    /// Whether each node is a call.
    call: Vec<bool>,
    /// The time of each node; tails are at +infinity.
    time: Vec<u128>,
}

const DET: usize = 0;
const INDET: usize = 2;
const NONE: usize = usize::MAX;

impl Events {
    fn new<M: Model>(history: &[Operation<M>]) -> Events {
        // (time, 0 = call / 1 = return, operation): at equal times calls
        // come first, so touching intervals are concurrent.
        let mut det: Vec<(u64, u8, usize)> = Vec::new();
        let mut indet: Vec<(u64, u8, usize)> = Vec::new();
        for (i, o) in history.iter().enumerate() {
            match (&o.ret, o.complete) {
                (None, _) => indet.push((o.invoke, 0, i)),
                (Some(_), Some(complete)) => {
                    assert!(
                        o.invoke <= complete,
                        "operation #{i} completes at {complete}, before its invocation at {}",
                        o.invoke
                    );
                    det.push((o.invoke, 0, i));
                    det.push((complete, 1, i));
                }
                (Some(_), None) => panic!("operation #{i} has a return but no completion time"),
            }
        }
        det.sort_unstable();
        indet.sort_unstable();
        let len = 4 + det.len() + indet.len();
        let mut e = Events {
            next: vec![NONE; len],
            prev: vec![NONE; len],
            op: vec![NONE; len],
            ret: vec![NONE; len],
            call: vec![false; len],
            time: vec![u128::MAX; len],
        };
        let mut call_node = vec![NONE; history.len()];
        let mut node = 4;
        for (head, events) in [(DET, &det), (INDET, &indet)] {
            let mut last = head;
            for &(time, kind, i) in events.iter() {
                (e.next[last], e.prev[node]) = (node, last);
                (e.op[node], e.time[node], e.call[node]) = (i, u128::from(time), kind == 0);
                if kind == 0 {
                    call_node[i] = node;
                } else {
                    e.ret[call_node[i]] = node;
                }
                (last, node) = (node, node + 1);
            }
            (e.next[last], e.prev[head + 1]) = (head + 1, last);
        }
        e
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }

    /// Removes a call and its return, if any.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if self.ret[call] != NONE {
            self.unlink(self.ret[call]);
        }
    }

    /// Undoes `lift(call)`, which must be the latest lift not yet undone.
    fn unlift(&mut self, call: usize) {
        if self.ret[call] != NONE {
            self.relink(self.ret[call]);
        }
        self.relink(call);
    }
}

/// A placed operation: its call node, the state before it, and where the
/// scan for the next candidate resumes when it is undone.
struct Placed<M> {
    call: usize,
    before: M,
    /// The deadline return the scan of indeterminate calls was up to, or
    /// `NONE` if it was scanning determinate events.
    deadline: usize,
}

/// The search. At each configuration it tries the determinate calls before
/// the first pending return, then — only then, as an indeterminate operation
/// is best placed as late as possible — the indeterminate calls invoked no
/// later than that return; when all fail, it undoes the latest placement.
fn search<M: Model>(init: M, history: &[Operation<M>], max_steps: u64) -> Found<M> {
    // Each operation's bit in the set of its kind.
    let mut counts = [0usize; 2];
    let bit: Vec<usize> = history
        .iter()
        .map(|o| {
            let count = &mut counts[usize::from(o.is_indeterminate())];
            *count += 1;
            *count - 1
        })
        .collect();
    let [mut remaining, indeterminate] = counts;
    if remaining == 0 {
        return Found::Linearizable;
    }
    let mut events = Events::new(history);
    let mut memo = Memo::new(remaining, indeterminate);
    let mut placed: Vec<Placed<M>> = Vec::new();
    let mut state = init;
    let mut best = Deepest::record(&events, &placed, &state, remaining);
    let mut steps = 0u64;
    let mut node = events.next[DET];
    // NONE while scanning determinate events, else the return node whose
    // time bounds the indeterminate calls to try.
    let mut deadline = NONE;
    loop {
        if steps == max_steps {
            return Found::GaveUp { steps };
        }
        steps += 1;
        let candidate = if deadline == NONE {
            events.call[node]
        } else {
            events.call[node] && events.time[node] <= events.time[deadline]
        };
        if candidate {
            let i = events.op[node];
            let o = &history[i];
            let after = match &o.ret {
                Some(ret) => state.step(&o.op, ret),
                // Taking effect without changing anything is never needed:
                // the operation can as well take effect after everything.
                None => Some(state.step_unknown(&o.op)).filter(|s| *s != state),
            };
            if let Some(after) = after
                && memo.visit(o.is_indeterminate(), bit[i], &after)
            {
                let before = std::mem::replace(&mut state, after);
                placed.push(Placed { call: node, before, deadline });
                events.lift(node);
                if !o.is_indeterminate() {
                    remaining -= 1;
                    if remaining == 0 {
                        return Found::Linearizable;
                    }
                    if remaining < best.remaining {
                        best = Deepest::record(&events, &placed, &state, remaining);
                    }
                }
                node = events.next[DET];
                deadline = NONE;
                continue;
            }
            node = events.next[node];
        } else if deadline == NONE {
            // The first pending response: before giving up here, try the
            // indeterminate operations invoked by then.
            deadline = node;
            node = events.next[INDET];
        } else {
            // Nothing placeable from here works: undo the latest placement
            // and try the candidate after it.
            let Some(last) = placed.pop() else {
                let Deepest { prefix, state, stuck, deadline, .. } = best;
                return Found::Failed { prefix, state, stuck, deadline };
            };
            state = last.before;
            let i = events.op[last.call];
            memo.unset(history[i].is_indeterminate(), bit[i]);
            if !history[i].is_indeterminate() {
                remaining += 1;
            }
            events.unlift(last.call);
            node = events.next[last.call];
            deadline = last.deadline;
        }
    }
}

/// The configurations visited: for each set of determinate operations placed
/// and model state, the minimal sets of indeterminate operations placed with
/// them. A configuration whose indeterminate set contains one of those is
/// dominated — from it, the smaller one can do anything by leaving the extra
/// operations out — so it needs no search. (Without indeterminate operations
/// this is Lowe's plain memo of (linearized set, state).)
struct Memo<M> {
    det: Vec<u64>,
    indet: Vec<u64>,
    seen: HashMap<(Bits, M), Vec<Bits>>,
}

/// A set of operations, one bit each.
type Bits = Box<[u64]>;

impl<M: Model> Memo<M> {
    fn new(det: usize, indet: usize) -> Self {
        Memo {
            det: vec![0; det.div_ceil(64)],
            indet: vec![0; indet.div_ceil(64)],
            seen: HashMap::new(),
        }
    }

    fn bits(&mut self, indeterminate: bool) -> &mut [u64] {
        if indeterminate { &mut self.indet } else { &mut self.det }
    }

    fn unset(&mut self, indeterminate: bool, bit: usize) {
        self.bits(indeterminate)[bit / 64] &= !(1 << (bit % 64));
    }

    /// Adds `bit` to the placed operations; whether the configuration it
    /// makes with `state` is new (and not dominated), else leaves `bit` out.
    fn visit(&mut self, indeterminate: bool, bit: usize, state: &M) -> bool {
        self.bits(indeterminate)[bit / 64] |= 1 << (bit % 64);
        let subset = |a: &[u64], b: &[u64]| a.iter().zip(b).all(|(a, b)| a & !b == 0);
        let indet = &self.indet;
        let sets = self.seen.entry((self.det.as_slice().into(), state.clone())).or_default();
        let new = !sets.iter().any(|seen| subset(seen, indet));
        if new {
            sets.retain(|seen| !subset(indet, seen));
            sets.push(indet.as_slice().into());
        } else {
            self.unset(indeterminate, bit);
        }
        new
    }
}

/// The configuration with the most determinate operations placed, first
/// reached. If the search fails, none of the determinate operations real time
/// allows next could be placed from it, even after indeterminate ones (else
/// the search would have placed more).
struct Deepest<M> {
    prefix: Vec<usize>,
    state: M,
    stuck: Vec<usize>,
    deadline: usize,
    remaining: usize,
}

impl<M: Model> Deepest<M> {
    fn record(events: &Events, placed: &[Placed<M>], state: &M, remaining: usize) -> Self {
        let mut stuck = Vec::new();
        let mut node = events.next[DET];
        // Some determinate operation is unplaced, so a return comes.
        while events.call[node] {
            stuck.push(events.op[node]);
            node = events.next[node];
        }
        Deepest {
            prefix: placed.iter().map(|p| events.op[p.call]).collect(),
            state: state.clone(),
            stuck,
            deadline: events.op[node],
            remaining,
        }
    }
}

/// Turns a search's result into an [`Outcome`], mapping the searched
/// history's indices through `index` into `history`.
fn finish<M: Model, K: fmt::Debug>(
    history: &[Operation<M>],
    index: &[usize],
    part: Option<&K>,
    found: Found<M>,
) -> Outcome<M> {
    let (prefix, state, stuck, deadline) = match found {
        Found::Linearizable => return Outcome::Linearizable,
        Found::GaveUp { steps } => return Outcome::Unknown { steps },
        Found::Failed { prefix, state, stuck, deadline } => (prefix, state, stuck, deadline),
    };
    let prefix: Vec<usize> = prefix.into_iter().map(|i| index[i]).collect();
    let stuck: Vec<usize> = stuck.into_iter().map(|i| index[i]).collect();
    let deadline = index[deadline];
    let determinate = index.iter().filter(|&&i| !history[i].is_indeterminate()).count();
    let explanation = explain(history, determinate, part, &prefix, &state, &stuck, deadline);
    Outcome::NotLinearizable(Box::new(Failure { prefix, state, stuck, deadline, explanation }))
}

/// How many operations of the prefix an explanation shows.
const SHOWN: usize = 12;

fn explain<M: Model, K: fmt::Debug>(
    history: &[Operation<M>],
    determinate: usize,
    part: Option<&K>,
    prefix: &[usize],
    state: &M,
    stuck: &[usize],
    deadline: usize,
) -> String {
    use fmt::Write as _;
    let mut s = String::from("not linearizable");
    if let Some(k) = part {
        let _ = write!(s, " (the operations on {k:?}, checked on their own)");
    }
    let placed = prefix.iter().filter(|&&i| !history[i].is_indeterminate()).count();
    let _ = writeln!(
        s,
        ": no order of the operations fits both real time and the model.\n\
         The deepest linearizable prefix found places {placed} of the {determinate} operations \
         with a response{}{}",
        match prefix.len() - placed {
            0 => String::new(),
            n => format!(" and {n} without"),
        },
        if prefix.is_empty() { "." } else { "; in the order they take effect," }
    );
    if prefix.len() > SHOWN {
        let _ = writeln!(s, "  ... {} earlier", prefix.len() - SHOWN);
    }
    for &i in &prefix[prefix.len().saturating_sub(SHOWN)..] {
        let _ = writeln!(s, "  {}", Shown(history, i));
    }
    let _ = writeln!(s, "leaving the model at\n  {state:?}");
    let _ = writeln!(
        s,
        "where none of the operations that could take effect next (even after any pending \
         ones without a response) can return what it returned:"
    );
    for &i in stuck {
        let _ = write!(s, "  {}", Shown(history, i));
        if i == deadline {
            let _ = write!(s, "    <- responded first: must take effect before all invoked later");
        }
        s.push('\n');
    }
    s
}

/// `#i client c [invoke, complete] op -> ret`.
struct Shown<'a, M: Model>(&'a [Operation<M>], usize);

impl<M: Model> fmt::Display for Shown<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, o) = (self.1, &self.0[self.1]);
        match (&o.ret, o.complete) {
            (Some(ret), Some(complete)) => write!(
                f,
                "#{i} client {} [{}, {complete}] {:?} -> {ret:?}",
                o.client, o.invoke, o.op
            ),
            _ => write!(
                f,
                "#{i} client {} [{}, ?] {:?} -> ? (indeterminate)",
                o.client, o.invoke, o.op
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Warren's model: flat znodes under the root.
// ---------------------------------------------------------------------------

/// The sequential model of the znode subset the simulator exercises: a flat
/// set of paths directly under the root (which always exists and is not
/// modelled), each absent or present with its data and version. Paths are
/// opaque keys: no validation, no parents, no children.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TreeModel {
    nodes: BTreeMap<String, (Vec<u8>, i32)>,
}

/// An operation on [`TreeModel`]. `version: None` matches any version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TreeOp {
    /// → `Created` (version 0) | `Err(NodeExists)`.
    Create { path: String, data: Vec<u8> },
    /// → `Set { version }` (the new version) | `Err(NoNode)` | `Err(BadVersion)`.
    SetData { path: String, data: Vec<u8>, version: Option<i32> },
    /// → `Deleted` | `Err(NoNode)` | `Err(BadVersion)`.
    Delete { path: String, version: Option<i32> },
    /// → `Checked` | `Err(NoNode)` | `Err(BadVersion)`; changes nothing.
    Check { path: String, version: Option<i32> },
    /// A linearizable read → `Value(None)` if absent, else data and version.
    Get { path: String },
    /// Create, SetData, Delete and Check operations applied atomically in
    /// order, each seeing the earlier ones → `Multi(results)`, or
    /// `MultiErr { index, code }` of the first failing operation with nothing
    /// applied. A `Get` or `Multi` inside fails with `BadArguments` when
    /// reached, as Warren rejects a nested multi.
    Multi(Vec<TreeOp>),
}

/// What a [`TreeOp`] returned.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TreeRet {
    Created,
    Set { version: i32 },
    Deleted,
    Checked,
    Value(Option<(Vec<u8>, i32)>),
    Err(ErrorCode),
    Multi(Vec<TreeRet>),
    MultiErr { index: usize, code: ErrorCode },
}

impl TreeModel {
    /// No nodes but the root.
    pub fn new() -> Self {
        Self::default()
    }

    /// This model with `path` present.
    pub fn with_node(mut self, path: &str, data: &[u8], version: i32) -> Self {
        self.nodes.insert(path.to_owned(), (data.to_vec(), version));
        self
    }

    /// The data and version at `path`, if present.
    pub fn node(&self, path: &str) -> Option<(&[u8], i32)> {
        self.nodes.get(path).map(|(data, version)| (data.as_slice(), *version))
    }

    /// Applies `op` and returns what it returns; a failed operation or multi
    /// changes nothing.
    pub fn apply(&mut self, op: &TreeOp) -> TreeRet {
        match op {
            TreeOp::Get { path } => TreeRet::Value(self.nodes.get(path).cloned()),
            TreeOp::Multi(ops) => {
                let mut scratch = self.clone();
                let mut results = Vec::with_capacity(ops.len());
                for (index, op) in ops.iter().enumerate() {
                    let result = match op {
                        TreeOp::Get { .. } | TreeOp::Multi(_) => Err(ErrorCode::BadArguments),
                        op => scratch.apply_single(op),
                    };
                    match result {
                        Ok(ret) => results.push(ret),
                        Err(code) => return TreeRet::MultiErr { index, code },
                    }
                }
                *self = scratch;
                TreeRet::Multi(results)
            }
            op => self.apply_single(op).unwrap_or_else(TreeRet::Err),
        }
    }

    /// One create, setData, delete or check.
    fn apply_single(&mut self, op: &TreeOp) -> Result<TreeRet, ErrorCode> {
        fn matching(
            node: Option<&mut (Vec<u8>, i32)>,
            version: Option<i32>,
        ) -> Result<&mut (Vec<u8>, i32), ErrorCode> {
            let node = node.ok_or(ErrorCode::NoNode)?;
            match version {
                Some(v) if v != node.1 => Err(ErrorCode::BadVersion),
                _ => Ok(node),
            }
        }
        match op {
            TreeOp::Create { path, data } => {
                if self.nodes.contains_key(path) {
                    return Err(ErrorCode::NodeExists);
                }
                self.nodes.insert(path.clone(), (data.clone(), 0));
                Ok(TreeRet::Created)
            }
            TreeOp::SetData { path, data, version } => {
                let node = matching(self.nodes.get_mut(path), *version)?;
                node.0.clone_from(data);
                node.1 = node.1.wrapping_add(1);
                Ok(TreeRet::Set { version: node.1 })
            }
            TreeOp::Delete { path, version } => {
                matching(self.nodes.get_mut(path), *version)?;
                self.nodes.remove(path);
                Ok(TreeRet::Deleted)
            }
            TreeOp::Check { path, version } => {
                matching(self.nodes.get_mut(path), *version)?;
                Ok(TreeRet::Checked)
            }
            TreeOp::Get { .. } | TreeOp::Multi(_) => unreachable!("handled by apply"),
        }
    }
}

impl Model for TreeModel {
    type Op = TreeOp;
    type Ret = TreeRet;

    fn step(&self, op: &TreeOp, ret: &TreeRet) -> Option<Self> {
        let mut after = self.clone();
        (after.apply(op) == *ret).then_some(after)
    }

    fn step_unknown(&self, op: &TreeOp) -> Self {
        let mut after = self.clone();
        after.apply(op);
        after
    }
}

impl TreeOp {
    /// The one path the operation touches (a multi's, if all its operations
    /// name the same path); `None` for a multi over several paths or none.
    /// The key for [`check_partitioned`] with [`TreeModel`].
    pub fn path(&self) -> Option<&str> {
        let paths = self.paths();
        let first = *paths.first()?;
        paths.iter().all(|p| *p == first).then_some(first)
    }

    /// Every path the operation touches, for [`check_components`].
    pub fn paths(&self) -> Vec<&str> {
        match self {
            TreeOp::Create { path, .. }
            | TreeOp::SetData { path, .. }
            | TreeOp::Delete { path, .. }
            | TreeOp::Check { path, .. }
            | TreeOp::Get { path } => vec![path.as_str()],
            TreeOp::Multi(ops) => ops.iter().flat_map(TreeOp::paths).collect(),
        }
    }
}

/// Data printed as a byte string: `b"v1"`.
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// `v` or `any`.
struct Version(Option<i32>);

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("any"),
        }
    }
}

impl fmt::Debug for TreeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Node<'a>(&'a [u8], i32);
        impl fmt::Debug for Node<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?} v{}", Bytes(self.0), self.1)
            }
        }
        f.debug_map()
            .entries(self.nodes.iter().map(|(path, (data, version))| (path, Node(data, *version))))
            .finish()
    }
}

impl fmt::Debug for TreeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeOp::Create { path, data } => write!(f, "Create({path} = {:?})", Bytes(data)),
            TreeOp::SetData { path, data, version } => {
                write!(f, "SetData({path} = {:?} @ {:?})", Bytes(data), Version(*version))
            }
            TreeOp::Delete { path, version } => {
                write!(f, "Delete({path} @ {:?})", Version(*version))
            }
            TreeOp::Check { path, version } => write!(f, "Check({path} @ {:?})", Version(*version)),
            TreeOp::Get { path } => write!(f, "Get({path})"),
            TreeOp::Multi(ops) => f.debug_tuple("Multi").field(ops).finish(),
        }
    }
}

impl fmt::Debug for TreeRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeRet::Created => f.write_str("Created"),
            TreeRet::Set { version } => write!(f, "Set(v{version})"),
            TreeRet::Deleted => f.write_str("Deleted"),
            TreeRet::Checked => f.write_str("Checked"),
            TreeRet::Value(None) => f.write_str("Value(absent)"),
            TreeRet::Value(Some((data, version))) => {
                write!(f, "Value({:?} v{version})", Bytes(data))
            }
            TreeRet::Err(code) => write!(f, "Err({code:?})"),
            TreeRet::Multi(results) => f.debug_tuple("Multi").field(results).finish(),
            TreeRet::MultiErr { index, code } => write!(f, "MultiErr(#{index}: {code:?})"),
        }
    }
}
