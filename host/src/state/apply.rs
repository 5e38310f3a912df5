//! Applying one entry: the writes, each checked in ZooKeeper's order before
//! anything changes; multi, all or nothing through an undo journal; sessions
//! opening and closing; and the leader's clean-up entries, re-checked here
//! because the state may have moved since the leader looked.

use super::plugins::{Binding, Installed, Registry, prepare};
use super::{Command, Entry, Response, StateMachine, Trigger};
use crate::limits::Limits;
use crate::limits::PLUGIN_MESSAGE_BYTES_MAX;
use crate::path;
use crate::plugin::{self, CallContext, CallLimits, ChangeKind, Compiled, TreeRead};
use crate::state::acl;
use crate::state::session::SessionTable;
use crate::state::tree::{
    CONTAINER_OWNER, DataTree, Node, NodeKind, NodeStat, ROOT, RemovedNode, Slot,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use warren_client::{
    Acl, ApiError, BadArgument, CreateMode, EventType, Id, Op, OpResult, Perms, PluginFailure,
    PluginOp, PluginRefusal, PluginWorld, Reply, SessionId, Stat, TTL_MS_MAX, Zxid,
};

pub(super) fn apply(sm: &mut StateMachine, entry: Entry, triggers: &mut Vec<Trigger>) -> Response {
    let mut txn = Txn {
        tree: &mut sm.tree,
        sessions: &mut sm.sessions,
        limits: &sm.limits,
        plugins: &mut sm.plugins,
        plugin_cache: sm.plugin_cache.as_deref(),
        zxid: entry.zxid,
        time_ms: entry.time_ms,
        triggers,
        undo: None,
    };
    match entry.command {
        Command::CreateSession { timeout_ms, auth, secret } => {
            if timeout_ms == 0 {
                return Response::Done(Err(ApiError::BadArguments(BadArgument::SessionTimeout {
                    timeout_ms,
                })));
            }
            if let Err(why) = check_identities(&auth, txn.limits) {
                return Response::Done(Err(ApiError::BadArguments(why)));
            }
            let id = SessionId(entry.zxid.0);
            txn.sessions.open(id, timeout_ms, auth.into(), secret);
            Response::SessionCreated(id)
        }
        Command::AddAuth { session, id } => {
            let Some(s) = txn.sessions.get(session) else {
                return Response::Done(Err(ApiError::SessionExpired { session }));
            };
            if !s.auth.contains(&id) {
                let mut auth = s.auth.to_vec();
                auth.push(id.clone());
                if let Err(why) = check_identities(&auth, txn.limits) {
                    return Response::Done(Err(ApiError::BadArguments(why)));
                }
            }
            txn.sessions.add_auth(session, id);
            Response::Done(Ok(()))
        }
        Command::CloseSession { session } => Response::Done(txn.close_session(session)),
        Command::Request { session, op } => Response::Reply(txn.request(session, op)),
        Command::ExpireSessions { sessions } => {
            for session in sessions {
                // A session closed since the leader decided is simply gone.
                let _ = txn.close_session(session);
            }
            Response::Done(Ok(()))
        }
        Command::RemoveContainer { path } => {
            Response::Done(txn.remove_if(&path, |node, _| container_is_removable(node)))
        }
        Command::RemoveExpiredTtl { path } => Response::Done(txn.remove_if(&path, ttl_is_expired)),
        Command::Noop => Response::Done(Ok(())),
    }
}

/// A session's identities must fit the limits that bound ACL checks, `auth`
/// expansion and snapshots.
fn check_identities(auth: &[Id], limits: &Limits) -> Result<(), BadArgument> {
    if auth.len() > limits.session_identities_max {
        return Err(BadArgument::TooManyIdentities {
            count: auth.len(),
            max: limits.session_identities_max,
        });
    }
    for id in auth {
        let len = id.scheme.len().max(id.id.len());
        if len > limits.acl_id_bytes_max {
            return Err(BadArgument::IdentityTooLong {
                scheme: id.scheme.clone(),
                len,
                max: limits.acl_id_bytes_max,
            });
        }
    }
    Ok(())
}

/// A container goes once it has had a child and has none now.
pub(super) fn container_is_removable(node: &Node) -> bool {
    node.kind() == NodeKind::Container && node.stat.num_children == 0 && node.stat.cversion > 0
}

/// A TTL node goes once childless and unmodified for longer than its TTL.
pub(super) fn ttl_is_expired(node: &Node, now_ms: i64) -> bool {
    match node.kind() {
        NodeKind::Ttl(ttl_ms) => {
            node.stat.num_children == 0
                // ttl_ms <= TTL_MS_MAX (2^40), so the cast is exact.
                && now_ms.saturating_sub(node.stat.mtime) > ttl_ms as i64
        }
        _ => false,
    }
}

/// What undoes one change of a multi, newest last.
enum Undo {
    Created { path: Arc<str> },
    Removed(RemovedNode),
    Stat { path: Arc<str>, stat: NodeStat },
    Data { path: Arc<str>, data: Bytes, stat: NodeStat },
    Acl { path: Arc<str>, acl: Arc<[Acl]>, stat: NodeStat },
}

/// One entry's application.
struct Txn<'a> {
    tree: &'a mut DataTree,
    sessions: &'a mut SessionTable,
    limits: &'a Limits,
    plugins: &'a mut Arc<Registry>,
    /// Where this node keeps compiled plugin code (not replicated).
    plugin_cache: Option<&'a Path>,
    zxid: Zxid,
    time_ms: i64,
    triggers: &'a mut Vec<Trigger>,
    /// Recorded only inside a multi: a single operation checks everything
    /// before its first change, so it never needs undoing.
    undo: Option<Vec<Undo>>,
}

impl Txn<'_> {
    fn request(&mut self, session: SessionId, op: Op) -> Reply {
        let Some(s) = self.sessions.get(session) else {
            return Err(ApiError::SessionExpired { session });
        };
        let auth = s.auth.clone();
        match op {
            Op::Multi(ops) => self.multi(session, &auth, ops),
            Op::Invoke { plugin, path, args } => self.invoke(session, &auth, &plugin, &path, &args),
            Op::Plugin(change) => self.plugin_change(&auth, change),
            op => self.op(session, &auth, op),
        }
    }

    fn multi(&mut self, session: SessionId, auth: &[Id], ops: Vec<Op>) -> Reply {
        if ops.len() > self.limits.multi_ops_max {
            return Err(ApiError::BadArguments(BadArgument::TooManyOps {
                count: ops.len(),
                max: self.limits.multi_ops_max,
            }));
        }
        let steps = ops.into_iter().map(Step::Op).collect();
        self.all_or_nothing(session, auth, steps).map(OpResult::Multi)
    }

    /// Applies every step, or, at the first failure, undoes those applied
    /// and fails with the failing step's index.
    fn all_or_nothing(
        &mut self,
        session: SessionId,
        auth: &[Id],
        steps: Vec<Step>,
    ) -> Result<Vec<OpResult>, ApiError> {
        let triggers_before = self.triggers.len();
        self.undo = Some(Vec::new());
        let mut results = Vec::with_capacity(steps.len());
        for (index, step) in steps.into_iter().enumerate() {
            let result = match step {
                Step::Op(Op::Multi(_)) => Err(ApiError::BadArguments(BadArgument::NestedMulti)),
                Step::Op(Op::Invoke { .. }) => {
                    Err(ApiError::BadArguments(BadArgument::NotInMulti {
                        what: "a plugin invocation".into(),
                    }))
                }
                Step::Op(Op::Plugin(_)) => Err(ApiError::BadArguments(BadArgument::NotInMulti {
                    what: "a plugin change".into(),
                })),
                Step::Op(op) => self.op(session, auth, op),
                Step::Write(write) => self.plugin_write(session, auth, write),
            };
            match result {
                Ok(result) => results.push(result),
                Err(error) => {
                    self.rollback();
                    self.triggers.truncate(triggers_before);
                    return Err(ApiError::Multi { index, error: Box::new(error) });
                }
            }
        }
        self.undo = None;
        Ok(results)
    }

    /// Takes the operation by value so its data moves into the tree.
    fn op(&mut self, session: SessionId, auth: &[Id], op: Op) -> Reply {
        match op {
            Op::Create { path, data, acl, mode } => {
                self.create(session, auth, &path, data, &acl, mode)
            }
            Op::Delete { path, version } => self.delete(auth, &path, version),
            Op::DeleteContainer { path } => self.delete_container(auth, &path),
            Op::SetData { path, data, version } => self.set_data(auth, &path, data, version),
            Op::SetAcl { path, acl, version } => self.set_acl(auth, &path, &acl, version),
            Op::Check { path, version } => self.check(auth, &path, version),
            Op::Multi(_) | Op::Invoke { .. } | Op::Plugin(_) => {
                unreachable!("handled by Txn::request and Txn::all_or_nothing")
            }
        }
    }

    fn create(
        &mut self,
        session: SessionId,
        auth: &[Id],
        path: &str,
        data: Vec<u8>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Reply {
        self.check_data_size(path, &data)?;
        if let Some(ttl_ms) = mode.ttl_ms()
            && !(1..=TTL_MS_MAX).contains(&ttl_ms)
        {
            return Err(ApiError::BadArguments(BadArgument::TtlOutOfRange {
                path: path.to_owned(),
                ttl_ms,
                max: TTL_MS_MAX,
            }));
        }
        // ZooKeeper's order: a path with no '/' or with a NUL is refused at
        // once; then
        // the ACL is checked, the parent found and its ACL checked, and
        // only then the path's form (so a create under a missing parent is
        // NoNode even when its path is malformed).
        if !path.contains('/') || path.contains('\0') {
            self.validate_path(path)?;
        }
        let acl = acl::fixup(path, acl, auth, self.limits)?;
        let parent_path = path::parent(path);
        let parent = self.lookup(parent_path)?;
        acl::check(self.tree.acl_of(parent), Perms::CREATE, auth, parent_path)?;
        // A sequential path may end in '/': the suffix completes it.
        if mode.is_sequential() {
            self.validate_path(&format!("{path}1")).map_err(|e| rename_path(e, path))?;
        } else {
            self.validate_path(path)?;
        }
        let parent_stat = self.tree.node(parent).stat;
        let path = if mode.is_sequential() {
            // The suffix can take the path over its length limit.
            let path = format!("{path}{:010}", parent_stat.cversion);
            self.validate_path(&path)?;
            path
        } else {
            path.to_owned()
        };
        if path == "/" || self.tree.lookup(&path).is_some() {
            return Err(ApiError::NodeExists { path });
        }
        if self.tree.node(parent).kind().is_ephemeral() {
            return Err(ApiError::NoChildrenForEphemerals { path });
        }
        let owner = match mode {
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => session.0,
            CreateMode::Container => CONTAINER_OWNER,
            CreateMode::PersistentWithTtl { ttl_ms }
            | CreateMode::PersistentSequentialWithTtl { ttl_ms } => NodeKind::ttl_owner(ttl_ms),
            CreateMode::Persistent | CreateMode::PersistentSequential => 0,
        };

        self.run_validators(ChangeKind::Create, &path, None, Some(&data))?;

        // Checked; now change.
        self.record_stat(parent, parent_stat);
        let acl = self.tree.acls.intern(&acl);
        let stat = NodeStat::created(self.zxid, self.time_ms, owner);
        let slot = self.tree.insert(parent, Arc::from(path.as_str()), Bytes::from(data), stat, acl);
        let zxid = self.zxid.0;
        self.tree.update_stat(parent, |s| {
            s.cversion = s.cversion.wrapping_add(1);
            s.pzxid = zxid;
        });
        if mode.is_ephemeral() {
            self.sessions.add_ephemeral(session, &path);
        }
        let created = self.tree.node(slot).path.clone();
        self.record(|| Undo::Created { path: created });
        self.trigger(EventType::NodeCreated, slot);
        self.trigger(EventType::NodeChildrenChanged, parent);
        Ok(OpResult::Create { stat: self.tree.node(slot).public_stat(), path })
    }

    fn delete(&mut self, auth: &[Id], path: &str, version: Option<i32>) -> Reply {
        self.validate_path(path)?;
        if path == "/" {
            return Err(ApiError::BadArguments(BadArgument::Root));
        }
        let parent_path = path::parent(path);
        let parent = self.lookup(parent_path)?;
        acl::check(self.tree.acl_of(parent), Perms::DELETE, auth, parent_path)?;
        let slot = self.lookup(path)?;
        let node = self.tree.node(slot);
        check_version(path, version, node.stat.version)?;
        if node.stat.num_children > 0 {
            return Err(ApiError::NotEmpty { path: path.to_owned() });
        }
        self.run_validators(ChangeKind::Delete, path, Some(&node.data), None)?;
        self.delete_node(slot);
        Ok(OpResult::Delete)
    }

    /// ZooKeeper's deleteContainer: a childless node that is not
    /// ephemeral goes at any version (an ephemeral one: BadVersion, as
    /// ZooKeeper answers). Unlike ZooKeeper, the parent's ACL must allow
    /// the delete: the opcode is no way around an ACL.
    fn delete_container(&mut self, auth: &[Id], path: &str) -> Reply {
        self.validate_path(path)?;
        if path == "/" {
            return Err(ApiError::BadArguments(BadArgument::Root));
        }
        let parent_path = path::parent(path);
        let parent = self.lookup(parent_path)?;
        let slot = self.lookup(path)?;
        let node = self.tree.node(slot);
        if node.stat.num_children > 0 {
            return Err(ApiError::NotEmpty { path: path.to_owned() });
        }
        if let NodeKind::Ephemeral(_) = node.kind() {
            let actual = node.stat.version;
            return Err(ApiError::BadVersion { path: path.to_owned(), expected: -1, actual });
        }
        acl::check(self.tree.acl_of(parent), Perms::DELETE, auth, parent_path)?;
        self.run_validators(ChangeKind::Delete, path, Some(&node.data), None)?;
        self.delete_node(slot);
        Ok(OpResult::Delete)
    }

    fn set_data(&mut self, auth: &[Id], path: &str, data: Vec<u8>, version: Option<i32>) -> Reply {
        self.check_data_size(path, &data)?;
        self.validate_path(path)?;
        let slot = self.lookup(path)?;
        acl::check(self.tree.acl_of(slot), Perms::WRITE, auth, path)?;
        let old = self.tree.node(slot).stat;
        check_version(path, version, old.version)?;
        self.run_validators(
            ChangeKind::SetData,
            path,
            Some(&self.tree.node(slot).data),
            Some(&data),
        )?;
        let stat = NodeStat {
            version: old.version.wrapping_add(1),
            mzxid: self.zxid.0,
            mtime: self.time_ms,
            ..old
        };
        let old_data = self.tree.set_data(slot, Bytes::from(data), stat);
        let path = self.tree.node(slot).path.clone();
        self.record(|| Undo::Data { path, data: old_data, stat: old });
        self.trigger(EventType::NodeDataChanged, slot);
        Ok(OpResult::SetData { stat: self.tree.node(slot).public_stat() })
    }

    fn set_acl(&mut self, auth: &[Id], path: &str, acl: &[Acl], version: Option<i32>) -> Reply {
        self.validate_path(path)?;
        let acl = acl::fixup(path, acl, auth, self.limits)?;
        let slot = self.lookup(path)?;
        acl::check(self.tree.acl_of(slot), Perms::ADMIN, auth, path)?;
        let old = self.tree.node(slot).stat;
        check_version(path, version, old.aversion)?;
        let stat = NodeStat { aversion: old.aversion.wrapping_add(1), ..old };
        let acl = self.tree.acls.intern(&acl);
        let old_acl = self.tree.set_acl(slot, acl, stat);
        let path = self.tree.node(slot).path.clone();
        self.record(|| Undo::Acl { path, acl: old_acl, stat: old });
        Ok(OpResult::SetAcl { stat: self.tree.node(slot).public_stat() })
    }

    fn check(&mut self, auth: &[Id], path: &str, version: Option<i32>) -> Reply {
        self.validate_path(path)?;
        let slot = self.lookup(path)?;
        acl::check(self.tree.acl_of(slot), Perms::READ, auth, path)?;
        check_version(path, version, self.tree.node(slot).stat.version)?;
        Ok(OpResult::Check)
    }

    // ---- Plugins.

    /// Asks every validator bound at or above `path` about the change; the
    /// first rejection or failure fails the write.
    fn run_validators(
        &self,
        kind: ChangeKind,
        path: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        if self.plugins.binding_count() == 0 {
            return Ok(());
        }
        let mut change = None;
        for (name, plugin, prefix, binding) in self.plugins.validators_for(path) {
            let change = change.get_or_insert_with(|| plugin::Change {
                kind,
                path: path.to_owned(),
                old_data: old.map(<[u8]>::to_vec),
                new_data: new.map(<[u8]>::to_vec),
            });
            let failed = |why| ApiError::PluginFailed { plugin: name.to_owned(), why };
            let compiled = plugin.compiled(self.plugin_cache).map_err(failed)?;
            let prepared =
                plugin.prepared(name, prefix, binding, self.plugin_cache).map_err(failed)?;
            match plugin::validate(compiled, plugin.limits, self.context(name), change, prepared) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(ApiError::Rejected {
                        plugin: name.to_owned(),
                        path: path.to_owned(),
                        reason: bounded(reason),
                    });
                }
                Err(why) => return Err(failed(why)),
            }
        }
        Ok(())
    }

    fn context(&self, plugin: &str) -> CallContext {
        // Zxids stay below 2^55 (checked in StateMachine::apply).
        CallContext { plugin: plugin.into(), zxid: self.zxid.0 as i64, time_ms: self.time_ms }
    }

    /// Runs operation `name`; its writes apply as one multi, as the session.
    fn invoke(
        &mut self,
        session: SessionId,
        auth: &[Id],
        name: &str,
        path: &str,
        args: &[u8],
    ) -> Reply {
        self.validate_path(path)?;
        self.check_data_size(path, args)?;
        let plugin = self.plugins.get(name).ok_or_else(|| no_plugin(name))?;
        if plugin.world != PluginWorld::Operation {
            return Err(refused(
                name,
                PluginRefusal::WrongWorld {
                    expected: PluginWorld::Operation,
                    actual: plugin.world,
                },
            ));
        }
        let failed = |why| ApiError::PluginFailed { plugin: name.to_owned(), why };
        let compiled = plugin.compiled(self.plugin_cache).map_err(failed)?;
        let reader = Reader { tree: self.tree, auth, limits: self.limits };
        let outcome =
            plugin::invoke(compiled, plugin.limits, self.context(name), &reader, path, args)
                .map_err(failed)?
                .map_err(|reason| ApiError::PluginError {
                    plugin: name.to_owned(),
                    reason: bounded(reason),
                })?;
        if outcome.writes.len() > self.limits.multi_ops_max {
            return Err(failed(PluginFailure::BadOutput {
                why: format!(
                    "{} writes, over the limit of {} (a multi's)",
                    outcome.writes.len(),
                    self.limits.multi_ops_max
                ),
            }));
        }
        if outcome.output.len() > self.limits.data_bytes_max {
            return Err(failed(PluginFailure::BadOutput {
                why: format!(
                    "an output of {} bytes, over the limit of {}",
                    outcome.output.len(),
                    self.limits.data_bytes_max
                ),
            }));
        }
        let steps = outcome.writes.into_iter().map(Step::Write).collect();
        let results = self.all_or_nothing(session, auth, steps)?;
        Ok(OpResult::Invoked { output: outcome.output, results })
    }

    /// One write an operation asked for, as the session would make it.
    /// Created nodes take their parent's ACL.
    fn plugin_write(&mut self, session: SessionId, auth: &[Id], write: plugin::Write) -> Reply {
        match write {
            plugin::Write::Create(c) => {
                let acl = self
                    .tree
                    .lookup(path::parent(&c.path))
                    .map(|parent| self.tree.acl_of(parent).to_vec())
                    // No parent: the create fails with NoNode whatever the ACL.
                    .unwrap_or_else(Acl::open);
                let mode = match c.mode {
                    plugin::CreateMode::Persistent => CreateMode::Persistent,
                    plugin::CreateMode::PersistentSequential => CreateMode::PersistentSequential,
                    plugin::CreateMode::Ephemeral => CreateMode::Ephemeral,
                    plugin::CreateMode::EphemeralSequential => CreateMode::EphemeralSequential,
                };
                self.create(session, auth, &c.path, c.data, &acl, mode)
            }
            plugin::Write::SetData(w) => self.set_data(auth, &w.path, w.data, w.version),
            plugin::Write::Delete(w) => self.delete(auth, &w.path, w.version),
            plugin::Write::Check(w) => self.check(auth, &w.path, w.version),
        }
    }

    /// Installs, binds, unbinds or removes a plugin: administration of the
    /// whole tree, so it needs ADMIN on the root.
    fn plugin_change(&mut self, auth: &[Id], change: PluginOp) -> Reply {
        acl::check(self.tree.acl_of(ROOT), Perms::ADMIN, auth, "/")?;
        let name = change.name().to_owned();
        check_plugin_name(&name)?;
        match change {
            PluginOp::Install { name, component, sha256, fuel, memory_bytes, expected_version } => {
                self.install(
                    &name,
                    component,
                    &sha256,
                    CallLimits { fuel, memory_bytes },
                    expected_version,
                )
            }
            PluginOp::Bind { name, prefix, config } => {
                self.validate_path(&prefix)?;
                self.check_data_size(&prefix, &config)?;
                let plugin = self.plugins.get(&name).ok_or_else(|| no_plugin(&name))?;
                if plugin.world != PluginWorld::Validator {
                    return Err(refused(
                        &name,
                        PluginRefusal::WrongWorld {
                            expected: PluginWorld::Validator,
                            actual: plugin.world,
                        },
                    ));
                }
                let new = !plugin.bindings.contains_key(&prefix);
                if new && self.plugins.binding_count() >= self.limits.bindings_max {
                    return Err(refused(
                        &name,
                        PluginRefusal::Limit {
                            what: "the number of bindings".into(),
                            value: self.plugins.binding_count() as u64 + 1,
                            max: self.limits.bindings_max as u64,
                        },
                    ));
                }
                let failed = |why| ApiError::PluginFailed { plugin: name.clone(), why };
                let compiled = plugin.compiled(self.plugin_cache).map_err(failed)?;
                let binding =
                    prepare_binding(&name, compiled, plugin.limits, &prefix, config.into())?;
                Arc::make_mut(self.plugins).rebind(&name, |bindings| {
                    bindings.insert(prefix, binding);
                });
                Ok(OpResult::Plugin(self.plugins.get(&name).expect("bound").info(&name)))
            }
            PluginOp::Unbind { name, prefix } => {
                let plugin = self.plugins.get(&name).ok_or_else(|| no_plugin(&name))?;
                if !plugin.bindings.contains_key(&prefix) {
                    return Err(refused(&name, PluginRefusal::NotBound { prefix }));
                }
                Arc::make_mut(self.plugins).rebind(&name, |bindings| {
                    bindings.remove(&prefix);
                });
                Ok(OpResult::Plugin(self.plugins.get(&name).expect("unbound").info(&name)))
            }
            PluginOp::Remove { name } => {
                let plugin = self.plugins.get(&name).ok_or_else(|| no_plugin(&name))?;
                if !plugin.bindings.is_empty() {
                    let prefixes = plugin.bindings.keys().cloned().collect();
                    return Err(refused(&name, PluginRefusal::Bound { prefixes }));
                }
                Arc::make_mut(self.plugins).remove(&name);
                Ok(OpResult::PluginRemoved)
            }
        }
    }

    fn install(
        &mut self,
        name: &str,
        component: Vec<u8>,
        sha256: &[u8],
        limits: CallLimits,
        expected_version: Option<u32>,
    ) -> Reply {
        let refuse = |why| Err(refused(name, why));
        let current = self.plugins.get(name);
        let version = current.map_or(0, |p| p.version);
        if let Some(expected) = expected_version
            && expected != version
        {
            return refuse(PluginRefusal::BadVersion { expected, actual: version });
        }
        for (what, value, max) in [
            ("its size in bytes", component.len() as u64, self.limits.plugin_bytes_max as u64),
            ("its fuel (--fuel)", limits.fuel, self.limits.plugin_fuel_max),
            (
                "its memory in bytes (--memory-mib)",
                limits.memory_bytes,
                self.limits.plugin_memory_max,
            ),
        ] {
            if value == 0 || value > max {
                return refuse(PluginRefusal::Limit { what: what.into(), value, max });
            }
        }
        if current.is_none() && self.plugins.len() >= self.limits.plugins_max {
            return refuse(PluginRefusal::Limit {
                what: "the number of plugins".into(),
                value: self.plugins.len() as u64 + 1,
                max: self.limits.plugins_max as u64,
            });
        }
        let sha = plugin::sha256(&component);
        if sha256 != sha {
            return refuse(PluginRefusal::Checksum);
        }
        let compiled = match plugin::load(&sha, &component, self.plugin_cache) {
            Ok(compiled) => compiled,
            Err(why) => return refuse(PluginRefusal::Invalid(why)),
        };
        if let Some(current) = current
            && !current.bindings.is_empty()
            && compiled.world() != current.world
        {
            return refuse(PluginRefusal::WrongWorld {
                expected: current.world,
                actual: compiled.world(),
            });
        }
        if let Err(failure) = plugin::check_limits(&compiled, limits) {
            return refuse(PluginRefusal::Invalid(format!(
                "it cannot start within its limits: it {failure}"
            )));
        }
        // The new code prepares the existing bindings' configurations again:
        // one it refuses refuses the install.
        let mut bindings = BTreeMap::new();
        for (prefix, binding) in current.map(|p| &p.bindings).into_iter().flatten() {
            let binding = prepare_binding(name, &compiled, limits, prefix, binding.config.clone())?;
            bindings.insert(prefix.clone(), binding);
        }
        let mut installed = Installed::new(
            version + 1,
            compiled.world(),
            sha,
            Bytes::from(component),
            limits,
            self.zxid,
        )
        .with_compiled(compiled);
        installed.bindings = bindings;
        Arc::make_mut(self.plugins).put(name, installed);
        Ok(OpResult::Plugin(self.plugins.get(name).expect("installed").info(name)))
    }

    /// Ends a session: its ephemerals go, in path order, then the session.
    fn close_session(&mut self, session: SessionId) -> Result<(), ApiError> {
        let Some(s) = self.sessions.get(session) else {
            return Err(ApiError::SessionExpired { session });
        };
        let paths: Vec<Box<str>> = s.ephemerals.iter().cloned().collect();
        for path in paths {
            // The session table lists exactly the live ephemerals it owns.
            let slot = self.tree.lookup(&path).expect("ephemeral listed but absent");
            self.delete_node(slot);
        }
        self.sessions.close(session);
        Ok(())
    }

    /// Removes a container or TTL node if `removable` still holds now.
    fn remove_if(
        &mut self,
        path: &str,
        removable: impl Fn(&Node, i64) -> bool,
    ) -> Result<(), ApiError> {
        let slot = self.lookup(path)?;
        if !removable(self.tree.node(slot), self.time_ms) {
            return Err(ApiError::BadArguments(BadArgument::NotRemovable {
                path: path.to_owned(),
            }));
        }
        self.delete_node(slot);
        Ok(())
    }

    /// Takes a checked, childless node out: the parent's pzxid moves (not
    /// its cversion: ZooKeeper counts only creations there), the owner
    /// forgets an ephemeral, watches are triggered.
    fn delete_node(&mut self, slot: Slot) {
        let node_acl = self.tree.acl_of(slot).clone();
        let path = self.tree.node(slot).path.clone();
        // A live non-root node always has a live parent.
        let parent = self.tree.lookup(path::parent(&path)).expect("live node without parent");
        self.record_stat(parent, self.tree.node(parent).stat);
        let removed = self.tree.remove(slot);
        let zxid = self.zxid.0;
        self.tree.update_stat(parent, |s| s.pzxid = s.pzxid.max(zxid));
        if let NodeKind::Ephemeral(owner) = NodeKind::of(removed.stat.ephemeral_owner) {
            self.sessions.remove_ephemeral(SessionId(owner), &path);
        }
        self.triggers.push(Trigger {
            event: EventType::NodeDeleted,
            path,
            zxid: self.zxid,
            acl: node_acl,
        });
        self.trigger(EventType::NodeChildrenChanged, parent);
        self.record(|| Undo::Removed(removed));
    }

    /// Undoes the journal, newest change first, through the same tree
    /// primitives, so the digest and every index return to where they were.
    fn rollback(&mut self) {
        // Rollback happens only inside a multi, which set the journal up.
        let mut undo = self.undo.take().expect("rollback outside a multi");
        while let Some(change) = undo.pop() {
            match change {
                Undo::Created { path } => {
                    let slot = self.live(&path);
                    let removed = self.tree.remove(slot);
                    if let NodeKind::Ephemeral(owner) = NodeKind::of(removed.stat.ephemeral_owner) {
                        self.sessions.remove_ephemeral(SessionId(owner), &path);
                    }
                }
                Undo::Removed(node) => {
                    let parent = self.live(path::parent(&node.path));
                    if let NodeKind::Ephemeral(owner) = NodeKind::of(node.stat.ephemeral_owner) {
                        self.sessions.add_ephemeral(SessionId(owner), &node.path);
                    }
                    let acl = self.tree.acls.intern(&node.acl);
                    self.tree.insert(parent, node.path, node.data, node.stat, acl);
                }
                Undo::Stat { path, stat } => {
                    let slot = self.live(&path);
                    self.tree.update_stat(slot, |s| *s = stat);
                }
                Undo::Data { path, data, stat } => {
                    let slot = self.live(&path);
                    self.tree.set_data(slot, data, stat);
                }
                Undo::Acl { path, acl, stat } => {
                    let slot = self.live(&path);
                    let acl = self.tree.acls.intern(&acl);
                    self.tree.set_acl(slot, acl, stat);
                }
            }
        }
    }

    /// A node the journal says exists at this point of the rollback.
    fn live(&self, path: &str) -> Slot {
        self.tree.lookup(path).expect("undo journal names a missing node")
    }

    fn record(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = &mut self.undo {
            journal.push(undo());
        }
    }

    fn record_stat(&mut self, slot: Slot, stat: NodeStat) {
        if let Some(journal) = &mut self.undo {
            journal.push(Undo::Stat { path: self.tree.node(slot).path.clone(), stat });
        }
    }

    fn trigger(&mut self, event: EventType, slot: Slot) {
        self.triggers.push(Trigger {
            event,
            path: self.tree.node(slot).path.clone(),
            zxid: self.zxid,
            acl: self.tree.acl_of(slot).clone(),
        });
    }

    fn lookup(&self, path: &str) -> Result<Slot, ApiError> {
        self.tree.lookup(path).ok_or_else(|| ApiError::NoNode { path: path.to_owned() })
    }

    fn validate_path(&self, path: &str) -> Result<(), ApiError> {
        path::validate(path, self.limits.path_bytes_max).map_err(|why| {
            ApiError::BadArguments(BadArgument::InvalidPath { path: path.to_owned(), why })
        })
    }

    fn check_data_size(&self, path: &str, data: &[u8]) -> Result<(), ApiError> {
        if data.len() > self.limits.data_bytes_max {
            return Err(ApiError::BadArguments(BadArgument::DataTooLarge {
                path: path.to_owned(),
                len: data.len(),
                max: self.limits.data_bytes_max,
            }));
        }
        Ok(())
    }
}

fn check_version(path: &str, expected: Option<i32>, actual: i32) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != actual => {
            Err(ApiError::BadVersion { path: path.to_owned(), expected, actual })
        }
        _ => Ok(()),
    }
}

/// Reports a sequential path's validation error against the path the client
/// gave, not the probe with "1" appended.
fn rename_path(error: ApiError, path: &str) -> ApiError {
    match error {
        ApiError::BadArguments(BadArgument::InvalidPath { why, .. }) => {
            ApiError::BadArguments(BadArgument::InvalidPath { path: path.to_owned(), why })
        }
        other => other,
    }
}

/// One step of an all-or-nothing change: a client's operation, or a write
/// an operation plugin asked for.
enum Step {
    Op(Op),
    Write(plugin::Write),
}

/// The tree as an operation plugin reads it: before the entry's writes,
/// with the calling session's permissions.
struct Reader<'a> {
    tree: &'a DataTree,
    auth: &'a [Id],
    limits: &'a Limits,
}

impl Reader<'_> {
    fn readable(&self, path: &str) -> Result<Option<Slot>, String> {
        path::validate(path, self.limits.path_bytes_max)
            .map_err(|why| format!("{path} is not a valid path: {why}"))?;
        let Some(slot) = self.tree.lookup(path) else { return Ok(None) };
        acl::check(self.tree.acl_of(slot), Perms::READ, self.auth, path)
            .map_err(|e| e.to_string())?;
        Ok(Some(slot))
    }
}

impl TreeRead for Reader<'_> {
    fn get_data(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>, String> {
        Ok(self.readable(path)?.map(|slot| {
            let node = self.tree.node(slot);
            (node.data.to_vec(), node.public_stat())
        }))
    }

    fn get_children(&self, path: &str) -> Result<Option<Vec<String>>, String> {
        Ok(self
            .readable(path)?
            .map(|slot| self.tree.child_names(slot).into_iter().map(str::to_owned).collect()))
    }
}

/// A plugin name: 1 to 64 letters, digits, '-', '_' or '.'.
fn check_plugin_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(refused(
            name,
            PluginRefusal::Invalid(
                "a plugin name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
            ),
        ))
    }
}

fn no_plugin(name: &str) -> ApiError {
    ApiError::NoPlugin { name: name.to_owned() }
}

fn refused(name: &str, why: PluginRefusal) -> ApiError {
    ApiError::PluginRefused { name: name.to_owned(), why }
}

/// Binds validator `name` at `prefix` with `config`, prepared by
/// `compiled`: a configuration it refuses refuses the bind (or install),
/// and its failure fails it.
fn prepare_binding(
    name: &str,
    compiled: &Compiled,
    limits: CallLimits,
    prefix: &str,
    config: Bytes,
) -> Result<Binding, ApiError> {
    match prepare(name, compiled, limits, &config) {
        Ok(Ok(prepared)) => Ok(Binding::prepared(config, prepared)),
        Ok(Err(reason)) => {
            Err(refused(name, PluginRefusal::Config { prefix: prefix.to_owned(), reason }))
        }
        Err(why) => Err(ApiError::PluginFailed { plugin: name.to_owned(), why }),
    }
}

/// A plugin's message, cut to what a reply carries.
fn bounded(mut message: String) -> String {
    if plugin::truncate_utf8(&mut message, PLUGIN_MESSAGE_BYTES_MAX) {
        message.push('…');
    }
    message
}
