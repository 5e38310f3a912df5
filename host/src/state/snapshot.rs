//! The snapshot format of the state machine: versioned, checksummed, and
//! checked field by field on the way back in, so a corrupt or foreign file is
//! an error, never a panic or a silently different state.
//!
//! Layout (all integers little-endian; `str`/`bytes` are a u32 length and the
//! bytes):
//!
//! ```text
//! magic "WRNSNAP\0" | format u32 | last_applied u64 | digest u64
//! sessions: count u64, then per session: id u64, timeout_ms u32,
//!           auth count u32, per identity: scheme str, id str;
//!           then the secret: u8 (0 none, 1 its SHA-256 follows) [+ 32
//!           bytes] (format 3; format 2 has no secret and is still read)
//! acls:     count u32, then per list: ref u32, entries u32,
//!           per entry: perms u32, scheme str, id str
//! nodes:    count u64, then per node in pre-order (parents first, children
//!           by name): path str, data bytes, czxid u64, mzxid u64, pzxid u64,
//!           ctime i64, mtime i64, ephemeral_owner u64, version i32,
//!           cversion i32, aversion i32, acl ref u32
//! plugins:  count u32, then per plugin by name: name str, version u32,
//!           world u32 (0 validator, 1 operation), sha256 (32 bytes),
//!           component bytes, fuel u64, memory u64, installed zxid u64,
//!           bindings u32, per binding by prefix: prefix str, config bytes
//! checksum: xxh3-64 of every byte before it, u64
//! ```
//!
//! `num_children` and each session's ephemerals are derived on restore; the
//! digest is recomputed and must equal the stored one. Plugins are compiled
//! again when first used, not when restored.

use super::StateMachine;
use super::plugins::{Binding, Installed, Registry, world_code, world_of_code};
use super::session::SecretHash;
use super::tree::{NodeKind, NodeStat, Nodes, ROOT, Slot};
use crate::limits::Limits;
use crate::path;
use crate::plugin::CallLimits;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use thiserror::Error;
use warren_client::{Acl, Id, Perms, SessionId, Zxid};
use xxhash_rust::xxh3::Xxh3;

const MAGIC: &[u8; 8] = b"WRNSNAP\0";
/// Bumped whenever the layout or the digest's hashing changes.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format this build still reads (2: sessions without secrets).
const FORMAT_VERSION_MIN: u32 = 2;

/// Why a snapshot could not be written or read.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("not a Warren snapshot (the file does not start with the snapshot magic)")]
    BadMagic,
    #[error(
        "snapshot format {found} is not supported by this build (it reads {supported}); restore with a matching Warren version"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error(
        "snapshot checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is corrupt; use an older snapshot or recover from a peer"
    )]
    Checksum { stored: u64, computed: u64 },
    #[error(
        "snapshot is malformed: {what} (at {context}); the file is corrupt or from an incompatible build"
    )]
    Malformed { what: &'static str, context: String },
    #[error(
        "snapshot holds a {what} of {value}, over this node's limit of {max}; restore it with the limits it was written under (or the file is corrupt)"
    )]
    OverLimit { what: &'static str, value: usize, max: usize },
    #[error(
        "snapshot digest {stored:#018x} differs from the restored state's {computed:#018x}; the snapshot was written by an incompatible build"
    )]
    Digest { stored: u64, computed: u64 },
}

fn malformed(what: &'static str, context: impl ToString) -> SnapshotError {
    SnapshotError::Malformed { what, context: context.to_string() }
}

/// What a snapshot keeps of a session (its ephemerals are derived).
struct SessionRecord {
    id: SessionId,
    timeout_ms: u32,
    auth: Arc<[Id]>,
    secret: Option<SecretHash>,
}

/// The replicated state frozen at one applied entry, for writing a snapshot
/// on another thread while applies go on: taking it copies the session table
/// and the ACL lists (both small) and only the chunk pointers of the node
/// slab, which the tree then copies on write.
pub struct SnapshotView {
    last_applied: Zxid,
    digest: u64,
    sessions: Vec<SessionRecord>,
    acls: Vec<Option<Arc<[Acl]>>>,
    nodes: Nodes,
    plugins: Arc<Registry>,
}

impl SnapshotView {
    pub(super) fn new(sm: &StateMachine) -> SnapshotView {
        SnapshotView {
            last_applied: sm.last_applied,
            digest: sm.digest(),
            sessions: sm
                .sessions
                .iter()
                .map(|(id, s)| SessionRecord {
                    id,
                    timeout_ms: s.timeout_ms,
                    auth: s.auth.clone(),
                    secret: s.secret,
                })
                .collect(),
            acls: sm.tree.acls.lists(),
            nodes: sm.tree.freeze(),
            plugins: sm.plugins.clone(),
        }
    }

    /// The last entry the view includes.
    pub fn last_applied(&self) -> Zxid {
        self.last_applied
    }

    fn acl_of(&self, slot: Slot) -> &Arc<[Acl]> {
        // A live node's ACL id is live in the same view.
        self.acls[self.nodes.get(slot).acl.index()].as_ref().expect("live node with a freed ACL")
    }
}

/// Writes the whole state to `out`.
pub fn write(sm: &StateMachine, out: impl Write) -> Result<(), SnapshotError> {
    write_view(&sm.snapshot_view(), out)
}

/// Writes a frozen state to `out`; see [`StateMachine::snapshot_view`].
pub fn write_view(view: &SnapshotView, out: impl Write) -> Result<(), SnapshotError> {
    let mut w = Output::new(out);
    w.bytes(MAGIC)?;
    w.u32(FORMAT_VERSION)?;
    w.u64(view.last_applied.0)?;
    w.u64(view.digest)?;

    w.u64(view.sessions.len() as u64)?;
    for session in &view.sessions {
        w.u64(session.id.0)?;
        w.u32(session.timeout_ms)?;
        w.u32(session.auth.len() as u32)?;
        for who in session.auth.iter() {
            w.id(who)?;
        }
        match &session.secret {
            Some(hash) => {
                w.bytes(&[1])?;
                w.bytes(&hash.0)?;
            }
            None => w.bytes(&[0])?,
        }
    }

    // Each distinct ACL list once; nodes refer to it by its position here.
    let nodes = &view.nodes;
    let mut acl_refs: HashMap<*const [Acl], u32> = HashMap::new();
    let mut acl_lists: Vec<&Arc<[Acl]>> = Vec::new();
    let mut order: Vec<Slot> = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(slot) = stack.pop() {
        order.push(slot);
        let acl = view.acl_of(slot);
        acl_refs.entry(Arc::as_ptr(acl)).or_insert_with(|| {
            acl_lists.push(acl);
            (acl_lists.len() - 1) as u32
        });
        let mut children: Vec<Slot> = nodes.children(slot).collect();
        // By name, descending, so they pop in ascending order. Siblings
        // share their parent's path up to the name, so comparing whole
        // paths orders them by name without splitting each path at every
        // comparison (the split made a wide parent's snapshot three times
        // slower: 643 against 200-233 ms for 300,000 children in the
        // `state_machine` bench).
        children.sort_unstable_by(|&a, &b| nodes.get(b).path.cmp(&nodes.get(a).path));
        stack.extend(children);
    }
    w.u32(acl_lists.len() as u32)?;
    for (index, list) in acl_lists.iter().enumerate() {
        w.u32(index as u32)?;
        w.u32(list.len() as u32)?;
        for acl in list.iter() {
            w.u32(acl.perms.0)?;
            w.id(&acl.id)?;
        }
    }

    w.u64(order.len() as u64)?;
    for slot in order {
        let node = nodes.get(slot);
        let s = &node.stat;
        w.str(&node.path)?;
        w.u32(node.data.len() as u32)?;
        w.bytes(&node.data)?;
        for word in [s.czxid, s.mzxid, s.pzxid, s.ctime as u64, s.mtime as u64, s.ephemeral_owner] {
            w.u64(word)?;
        }
        for word in [s.version, s.cversion, s.aversion] {
            w.u32(word as u32)?;
        }
        w.u32(acl_refs[&Arc::as_ptr(view.acl_of(slot))])?;
    }

    w.u32(view.plugins.len() as u32)?;
    for (name, p) in view.plugins.iter() {
        w.str(name)?;
        w.u32(p.version)?;
        w.u32(world_code(p.world).into())?;
        w.bytes(&p.sha256)?;
        w.u32(p.component.len() as u32)?;
        w.bytes(&p.component)?;
        w.u64(p.limits.fuel)?;
        w.u64(p.limits.memory_bytes)?;
        w.u64(p.installed.0)?;
        w.u32(p.bindings.len() as u32)?;
        for (prefix, binding) in &p.bindings {
            w.str(prefix)?;
            w.u32(binding.config.len() as u32)?;
            w.bytes(&binding.config)?;
        }
    }
    w.finish()?;
    Ok(())
}

/// Reads a state written by [`write`], checking everything, with `limits`
/// for the restored state machine.
pub fn read(input: impl Read, limits: Limits) -> Result<StateMachine, SnapshotError> {
    let mut r = Input::new(input);
    let mut magic = [0u8; 8];
    r.exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let format = r.u32()?;
    if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&format) {
        return Err(SnapshotError::UnsupportedFormat { found: format, supported: FORMAT_VERSION });
    }
    let mut sm = StateMachine::new(limits);
    sm.last_applied = Zxid(r.u64()?);
    let stored_digest = r.u64()?;

    let sessions = r.u64()?;
    for _ in 0..sessions {
        let id = SessionId(r.u64()?);
        let timeout_ms = r.u32()?;
        let count = r.count(limits.session_identities_max, "session identity count")?;
        let auth: Vec<Id> =
            (0..count).map(|_| r.id(limits.acl_id_bytes_max)).collect::<Result<_, _>>()?;
        let secret = if format >= 3 {
            let mut flag = [0u8; 1];
            r.exact(&mut flag)?;
            match flag[0] {
                0 => None,
                1 => {
                    let mut hash = [0u8; 32];
                    r.exact(&mut hash)?;
                    Some(SecretHash(hash))
                }
                other => return Err(malformed("session secret flag", other)),
            }
        } else {
            None
        };
        if sm.sessions.get(id).is_some() {
            return Err(malformed("duplicate session", id));
        }
        sm.sessions.open(id, timeout_ms, auth.into(), secret);
    }

    let lists = r.u32()?;
    let mut acls: Vec<Arc<[Acl]>> = Vec::new();
    for index in 0..lists {
        if r.u32()? != index {
            return Err(malformed("ACL lists out of order", index));
        }
        let count = r.count(limits.acl_entries_max, "ACL entry count")?;
        let list: Vec<Acl> = (0..count)
            .map(|_| Ok(Acl::new(Perms(r.u32()?), r.id(limits.acl_id_bytes_max)?)))
            .collect::<Result<_, SnapshotError>>()?;
        acls.push(list.into());
    }

    let nodes = r.u64()?;
    if nodes == 0 {
        return Err(malformed("no root node", "node 0"));
    }
    for n in 0..nodes {
        let path = r.str(limits.path_bytes_max, "path length")?;
        let data = r.bytes(limits.data_bytes_max, "data length")?;
        let mut words = [0u64; 6];
        for word in &mut words {
            *word = r.u64()?;
        }
        let [czxid, mzxid, pzxid, ctime, mtime, ephemeral_owner] = words;
        let stat = NodeStat {
            czxid,
            mzxid,
            pzxid,
            ctime: ctime as i64,
            mtime: mtime as i64,
            ephemeral_owner,
            version: r.u32()? as i32,
            cversion: r.u32()? as i32,
            aversion: r.u32()? as i32,
            num_children: 0,
        };
        let acl_ref = r.u32()?;
        let acl =
            acls.get(acl_ref as usize).ok_or_else(|| malformed("unknown ACL reference", &path))?;
        let acl = sm.tree.acls.intern(acl);
        if n == 0 {
            if path != "/" {
                return Err(malformed("the first node is not the root", path));
            }
            sm.tree.set_data(ROOT, data.into(), stat);
            sm.tree.set_acl(ROOT, acl, stat);
            continue;
        }
        path::validate(&path, limits.path_bytes_max)
            .map_err(|_| malformed("invalid node path", &path))?;
        // The root is always present, so a second root is a duplicate too.
        if sm.tree.lookup(&path).is_some() {
            return Err(malformed("duplicate node", path));
        }
        let parent = sm
            .tree
            .lookup(path::parent(&path))
            .ok_or_else(|| malformed("node before its parent", &path))?;
        if sm.tree.node(parent).kind().is_ephemeral() {
            return Err(malformed("child of an ephemeral node", path));
        }
        if let NodeKind::Ephemeral(owner) = NodeKind::of(stat.ephemeral_owner) {
            if sm.sessions.get(SessionId(owner)).is_none() {
                return Err(malformed("ephemeral of an unknown session", path));
            }
            sm.sessions.add_ephemeral(SessionId(owner), &path);
        }
        sm.tree.insert(parent, path.into(), data.into(), stat, acl);
    }

    let plugins = r.count(limits.plugins_max, "plugin count")?;
    let mut registry = Registry::default();
    let mut bindings_total = 0;
    for _ in 0..plugins {
        let name = r.str(64, "plugin name length")?;
        let version = r.u32()?;
        let world = u8::try_from(r.u32()?)
            .ok()
            .and_then(world_of_code)
            .ok_or_else(|| malformed("unknown plugin world", &name))?;
        let mut sha256 = [0u8; 32];
        r.exact(&mut sha256)?;
        let component = r.bytes(limits.plugin_bytes_max, "plugin size")?;
        if crate::plugin::sha256(&component) != sha256 {
            return Err(malformed("plugin bytes do not match their SHA-256", &name));
        }
        let fuel = r.u64()?;
        let memory_bytes = r.u64()?;
        let installed = Zxid(r.u64()?);
        let limits_of_call = CallLimits { fuel, memory_bytes };
        let mut plugin =
            Installed::new(version, world, sha256, component.into(), limits_of_call, installed);
        let count = r.count(limits.bindings_max, "binding count")?;
        if count > 0 && world != warren_client::PluginWorld::Validator {
            return Err(malformed("bindings of a plugin that is not a validator", &name));
        }
        bindings_total += count;
        if bindings_total > limits.bindings_max {
            return Err(SnapshotError::OverLimit {
                what: "binding count",
                value: bindings_total,
                max: limits.bindings_max,
            });
        }
        for _ in 0..count {
            let prefix = r.str(limits.path_bytes_max, "binding prefix length")?;
            path::validate(&prefix, limits.path_bytes_max)
                .map_err(|_| malformed("invalid binding prefix", &prefix))?;
            let config = r.bytes(limits.data_bytes_max, "binding config length")?;
            plugin.bindings.insert(prefix, Binding::new(config.into()));
        }
        if registry.get(&name).is_some() {
            return Err(malformed("duplicate plugin", name));
        }
        registry.put(&name, plugin);
    }
    sm.plugins = Arc::new(registry);

    let computed = r.digest();
    let mut stored = [0u8; 8];
    r.exact(&mut stored)?;
    let stored = u64::from_le_bytes(stored);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    if !r.at_end()? {
        return Err(malformed("bytes after the checksum", "end"));
    }
    if sm.digest() != stored_digest {
        return Err(SnapshotError::Digest { stored: stored_digest, computed: sm.digest() });
    }
    Ok(sm)
}

/// Writes fields into a buffer and hashes and writes the buffer in large
/// chunks (hashing field by field costs more than the fields).
struct Output<W: Write> {
    inner: W,
    hasher: Xxh3,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 16;

impl<W: Write> Output<W> {
    fn new(inner: W) -> Output<W> {
        Output { inner, hasher: Xxh3::new(), buf: Vec::with_capacity(CHUNK * 2) }
    }

    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK { self.drain() } else { Ok(()) }
    }

    fn drain(&mut self) -> io::Result<()> {
        self.hasher.update(&self.buf);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered, then the checksum of everything.
    fn finish(mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.write_all(&self.hasher.digest().to_le_bytes())?;
        self.inner.flush()
    }

    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn str(&mut self, s: &str) -> io::Result<()> {
        self.u32(s.len() as u32)?;
        self.bytes(s.as_bytes())
    }

    fn id(&mut self, id: &Id) -> io::Result<()> {
        self.str(&id.scheme)?;
        self.str(&id.id)
    }
}

/// Reads fields from its own buffer, hashing consumed bytes a buffer at a
/// time, and refusing lengths over their bound before allocating.
struct Input<R: Read> {
    inner: R,
    hasher: Xxh3,
    buf: Box<[u8]>,
    /// `buf[pos..filled]` is unread; `buf[..pos]` is read but not yet hashed.
    pos: usize,
    filled: usize,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Input<R> {
        Input {
            inner,
            hasher: Xxh3::new(),
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
        }
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), SnapshotError> {
        let mut done = 0;
        while done < out.len() {
            if self.pos == self.filled {
                self.hasher.update(&self.buf[..self.pos]);
                self.pos = 0;
                self.filled = 0;
                let n = loop {
                    match self.inner.read(&mut self.buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(SnapshotError::Io(e)),
                    }
                };
                if n == 0 {
                    return Err(malformed("file ends early", "a field"));
                }
                self.filled = n;
            }
            let n = (out.len() - done).min(self.filled - self.pos);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
        Ok(())
    }

    /// The checksum of everything read so far.
    fn digest(&mut self) -> u64 {
        self.hasher.update(&self.buf[..self.pos]);
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        self.hasher.digest()
    }

    /// True when nothing is left to read.
    fn at_end(&mut self) -> Result<bool, SnapshotError> {
        if self.pos < self.filled {
            return Ok(false);
        }
        loop {
            match self.inner.read(&mut [0u8; 1]) {
                Ok(n) => return Ok(n == 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SnapshotError::Io(e)),
            }
        }
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(SnapshotError::OverLimit { what, value: n, max });
        }
        Ok(n)
    }

    fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, SnapshotError> {
        let len = self.count(max, what)?;
        let mut buf = vec![0u8; len];
        self.exact(&mut buf)?;
        Ok(buf)
    }

    fn str(&mut self, max: usize, what: &'static str) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes(max, what)?).map_err(|_| malformed(what, "invalid UTF-8"))
    }

    fn id(&mut self, max: usize) -> Result<Id, SnapshotError> {
        Ok(Id::new(self.str(max, "identity length")?, self.str(max, "identity length")?))
    }
}
