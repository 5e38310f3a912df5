//! Simulated clients: each opens a session through whichever replica it is
//! connected to, issues writes, multis and reads (local, and linearizable)
//! one at a time, follows leader hints, moves on when a replica is behind or
//! silent, and records every operation on the checked keys for the
//! linearizability checker.

use crate::consensus::NodeId;
use crate::sim::linearizability::{Operation, TreeModel, TreeOp, TreeRet};
use crate::sim::net::Rng;
use crate::sim::node::{Reply, RequestKind};
use crate::{Command, Response};
use warren_client::{Acl, ApiError, CreateMode, Op, OpResult, SessionId};

/// The keys whose history is checked for linearizability.
pub(crate) const KEYS: usize = 6;

pub(crate) fn key(i: usize) -> String {
    format!("/k{i}")
}

/// What a client is doing.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    OpenSession,
    CloseSession,
    /// A write; `model` is its form for the checker, if it touches only
    /// checked keys.
    Write {
        op: Op,
        model: Option<TreeOp>,
    },
    ReadLinearizable {
        path: String,
    },
    ReadLocal {
        path: String,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Outstanding {
    pub req: u64,
    pub action: Action,
    /// Index into the history, for checked operations.
    pub slot: Option<usize>,
    pub attempts: u32,
    /// Whether some attempt may have been proposed (so a give-up is
    /// indeterminate rather than "never happened").
    pub maybe_applied: bool,
}

pub(crate) struct SimClient {
    pub id: usize,
    pub node: NodeId,
    pub session: Option<SessionId>,
    /// The highest zxid this client has seen: replicas behind it refuse its
    /// local reads, so its view never goes back in time.
    pub last_zxid: u64,
    pub outstanding: Option<Outstanding>,
    next_req: u64,
    counter: u64,
}

/// What the run loop should do after a client event.
pub(crate) enum Next {
    /// Send this request to `node`.
    Send { node: NodeId, req: u64, kind: RequestKind },
    /// Idle until woken again.
    Idle,
}

impl SimClient {
    pub(crate) fn new(id: usize, node: NodeId) -> SimClient {
        SimClient {
            id,
            node,
            session: None,
            last_zxid: 0,
            outstanding: None,
            next_req: 0,
            counter: 0,
        }
    }

    /// Chooses and starts the next operation.
    pub(crate) fn start(
        &mut self,
        now: u64,
        rng: &mut Rng,
        history: &mut Vec<Operation<TreeModel>>,
    ) -> Next {
        let action = self.choose(rng);
        let model = match &action {
            Action::Write { model, .. } => model.clone(),
            Action::ReadLinearizable { path } => Some(TreeOp::Get { path: path.clone() }),
            _ => None,
        };
        let slot = model.map(|op| {
            history.push(Operation::indeterminate(self.id as u64, now, op));
            history.len() - 1
        });
        self.next_req += 1;
        self.outstanding = Some(Outstanding {
            req: self.next_req,
            action,
            slot,
            attempts: 0,
            maybe_applied: false,
        });
        self.send()
    }

    /// (Re)sends the outstanding request to the current replica.
    pub(crate) fn send(&mut self) -> Next {
        let Some(out) = &mut self.outstanding else { return Next::Idle };
        out.attempts += 1;
        let kind = match &out.action {
            Action::OpenSession => {
                RequestKind::Write(Command::CreateSession { timeout_ms: 30_000, auth: Vec::new() })
            }
            Action::CloseSession => match self.session {
                Some(session) => RequestKind::Write(Command::CloseSession { session }),
                None => return Next::Idle,
            },
            Action::Write { op, .. } => match self.session {
                Some(session) => RequestKind::Write(Command::Request { session, op: op.clone() }),
                None => return Next::Idle,
            },
            Action::ReadLinearizable { path } => {
                RequestKind::ReadLinearizable { path: path.clone() }
            }
            Action::ReadLocal { path } => {
                RequestKind::ReadLocal { path: path.clone(), min_zxid: self.last_zxid }
            }
        };
        if matches!(kind, RequestKind::Write(_)) {
            out.maybe_applied = true;
        }
        Next::Send { node: self.node, req: out.req, kind }
    }

    /// A reply arrived. Returns whether to retry (at `self.node`) rather than
    /// move on.
    pub(crate) fn on_reply(
        &mut self,
        req: u64,
        reply: Reply,
        now: u64,
        nodes: &[NodeId],
        rng: &mut Rng,
        history: &mut [Operation<TreeModel>],
    ) -> bool {
        let Some(out) = self.outstanding.clone() else { return false };
        if out.req != req {
            return false; // a late reply to a request already given up on
        }
        match reply {
            Reply::NotLeader { leader } => {
                self.node = leader.unwrap_or_else(|| *rng.pick(nodes));
                self.retry_or_give_up(now, history)
            }
            Reply::Failed | Reply::Behind => {
                self.node = *rng.pick(nodes);
                self.retry_or_give_up(now, history)
            }
            Reply::Read { value, zxid } => {
                self.last_zxid = self.last_zxid.max(zxid);
                if let Some(slot) = out.slot {
                    complete(history, slot, now, TreeRet::Value(value));
                }
                self.outstanding = None;
                false
            }
            Reply::Applied { response, zxid } => {
                self.last_zxid = self.last_zxid.max(zxid);
                match (&out.action, response) {
                    (Action::OpenSession, Response::SessionCreated(id)) => self.session = Some(id),
                    (Action::CloseSession, _) => self.session = None,
                    (
                        Action::Write { .. },
                        Response::Reply(Err(ApiError::SessionExpired { .. })),
                    ) => {
                        // Refused before touching the tree.
                        self.session = None;
                        if let Some(slot) = out.slot {
                            no_op(history, slot, now);
                        }
                    }
                    (Action::Write { op, .. }, Response::Reply(reply)) => {
                        if let Some(slot) = out.slot {
                            complete(history, slot, now, model_ret(op, &reply));
                        }
                    }
                    _ => {}
                }
                self.outstanding = None;
                false
            }
        }
    }

    /// The request timed out: its outcome is unknown. Move to another
    /// replica and carry on.
    pub(crate) fn on_timeout(&mut self, req: u64, nodes: &[NodeId], rng: &mut Rng) -> bool {
        let Some(out) = &self.outstanding else { return false };
        if out.req != req {
            return false;
        }
        if matches!(out.action, Action::CloseSession) {
            // Assume it went through; a new session follows.
            self.session = None;
        }
        self.outstanding = None;
        self.node = *rng.pick(nodes);
        true
    }

    fn retry_or_give_up(&mut self, now: u64, history: &mut [Operation<TreeModel>]) -> bool {
        let Some(out) = &self.outstanding else { return false };
        if out.attempts < 30 {
            return true;
        }
        // Never proposed anywhere: it did not happen.
        if let (false, Some(slot)) = (out.maybe_applied, out.slot) {
            no_op(history, slot, now);
        }
        self.outstanding = None;
        false
    }

    fn choose(&mut self, rng: &mut Rng) -> Action {
        if self.session.is_none() {
            return Action::OpenSession;
        }
        self.counter += 1;
        let data = format!("c{}-{}", self.id, self.counter).into_bytes();
        let path = key(rng.below(KEYS as u64) as usize);
        let version = if rng.chance(0.5) { None } else { Some(rng.below(3) as i32) };
        let roll = rng.below(100);
        match roll {
            0..=19 => {
                let op = Op::Create {
                    path: path.clone(),
                    data: data.clone(),
                    acl: Acl::open(),
                    mode: CreateMode::Persistent,
                };
                Action::Write { op, model: Some(TreeOp::Create { path, data }) }
            }
            20..=44 => {
                let op = Op::SetData { path: path.clone(), data: data.clone(), version };
                Action::Write { op, model: Some(TreeOp::SetData { path, data, version }) }
            }
            45..=54 => {
                let op = Op::Delete { path: path.clone(), version };
                Action::Write { op, model: Some(TreeOp::Delete { path, version }) }
            }
            55..=59 => {
                let other = key(rng.below(KEYS as u64) as usize);
                let ops = vec![
                    Op::Check { path: path.clone(), version },
                    Op::SetData { path: other.clone(), data: data.clone(), version: None },
                ];
                let model = TreeOp::Multi(vec![
                    TreeOp::Check { path, version },
                    TreeOp::SetData { path: other, data, version: None },
                ]);
                Action::Write { op: Op::Multi(ops), model: Some(model) }
            }
            60..=64 => {
                // Not checked: sequential and ephemeral nodes elsewhere.
                let mode = if rng.chance(0.5) {
                    CreateMode::EphemeralSequential
                } else {
                    CreateMode::PersistentSequential
                };
                let op = Op::Create { path: "/q-".into(), data, acl: Acl::open(), mode };
                Action::Write { op, model: None }
            }
            65..=81 => Action::ReadLinearizable { path },
            82..=97 => Action::ReadLocal { path },
            _ => Action::CloseSession,
        }
    }
}

/// Turns an operation that had no effect into an empty multi, which the
/// model accepts anywhere between its invocation and now.
fn no_op(history: &mut [Operation<TreeModel>], slot: usize, now: u64) {
    history[slot].op = TreeOp::Multi(Vec::new());
    complete(history, slot, now, TreeRet::Multi(Vec::new()));
}

fn complete(history: &mut [Operation<TreeModel>], slot: usize, now: u64, ret: TreeRet) {
    history[slot].complete = Some(now);
    history[slot].ret = Some(ret);
}

/// The checker's view of a write's reply.
fn model_ret(op: &Op, reply: &Result<OpResult, ApiError>) -> TreeRet {
    match reply {
        Ok(OpResult::Create { .. }) => TreeRet::Created,
        Ok(OpResult::SetData { stat }) => TreeRet::Set { version: stat.version },
        Ok(OpResult::Delete) => TreeRet::Deleted,
        Ok(OpResult::Check) => TreeRet::Checked,
        Ok(OpResult::SetAcl { .. }) => TreeRet::Checked,
        Ok(OpResult::Invoked { .. } | OpResult::Plugin(_) | OpResult::PluginRemoved) => {
            unreachable!("the simulator sends no plugin operations")
        }
        Ok(OpResult::Multi(results)) => TreeRet::Multi(
            results
                .iter()
                .zip(match op {
                    Op::Multi(ops) => ops.as_slice(),
                    _ => &[],
                })
                .map(|(r, op)| model_ret(op, &Ok(r.clone())))
                .collect(),
        ),
        Err(ApiError::Multi { index, error }) => {
            TreeRet::MultiErr { index: *index, code: error.code() }
        }
        Err(e) => TreeRet::Err(e.code()),
    }
}
