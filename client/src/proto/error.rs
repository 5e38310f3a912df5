//! Protocol errors: values of the API (NoNode, BadVersion, ...), carrying the
//! context a person needs, with ZooKeeper's codes for adapters.

use crate::proto::acl::Perms;
use crate::proto::ids::SessionId;
use crate::proto::plugin::{PluginFailure, PluginRefusal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// ZooKeeper's error codes, for clients and front ends that speak them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum ErrorCode {
    Ok = 0,
    RuntimeInconsistency = -2,
    BadArguments = -8,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidAcl = -114,
    AuthFailed = -115,
    NoWatcher = -121,
    Throttled = -127,
    /// Warren's own codes, below ZooKeeper's range.
    NoPlugin = -201,
    PluginRefused = -202,
    /// A validator rejected the write.
    Rejected = -203,
    /// An operation plugin returned an error.
    PluginError = -204,
    /// A plugin ran out of fuel or memory, trapped or panicked.
    PluginFailed = -205,
}

/// Why a path is not valid.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum PathError {
    #[error("it is empty")]
    Empty,
    #[error("it does not start with '/'")]
    NotAbsolute,
    #[error("it ends with '/'")]
    TrailingSlash,
    #[error("it has an empty segment at byte {at}")]
    EmptySegment { at: usize },
    #[error("it has a '.' or '..' segment at byte {at}")]
    RelativeSegment { at: usize },
    #[error("it has a control or reserved character at byte {at}")]
    BadCharacter { at: usize },
    #[error("it is {len} bytes long, over the limit of {max}")]
    TooLong { len: usize, max: usize },
}

/// Why an argument was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum BadArgument {
    #[error("path {path:?} is not valid: {why}")]
    InvalidPath { path: String, why: PathError },
    #[error("data for {path} is {len} bytes, over the limit of {max}; store less or split it")]
    DataTooLarge { path: String, len: usize, max: usize },
    #[error("the multi has {count} operations, over the limit of {max}; split it")]
    TooManyOps { count: usize, max: usize },
    #[error("a multi may not contain another multi")]
    NestedMulti,
    #[error("a multi may not contain {what}; send it on its own")]
    NotInMulti { what: String },
    #[error("TTL {ttl_ms} ms for {path} is out of range 1..={max}")]
    TtlOutOfRange { path: String, ttl_ms: u64, max: u64 },
    #[error("the root node cannot be created or deleted")]
    Root,
    #[error("timeout {timeout_ms} ms is not a valid session timeout")]
    SessionTimeout { timeout_ms: u32 },
    #[error("the ACL has {count} entries, over the limit of {max}")]
    TooManyAcls { count: usize, max: usize },
    #[error("the session has {count} identities, over the limit of {max}")]
    TooManyIdentities { count: usize, max: usize },
    #[error("identity {scheme}:… is {len} bytes, over the limit of {max}")]
    IdentityTooLong { scheme: String, len: usize, max: usize },
    #[error("node {path} is no longer an empty container or an expired TTL node")]
    NotRemovable { path: String },
}

/// Why an ACL was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum AclError {
    #[error("the ACL is empty; give at least one entry")]
    Empty,
    #[error("scheme {scheme:?} is unknown; use world, x509, digest or auth")]
    UnknownScheme { scheme: String },
    #[error("id {id:?} is not valid for scheme {scheme}")]
    BadId { scheme: String, id: String },
    #[error("permissions {bits:#x} have bits outside cdrwa")]
    BadPerms { bits: u32 },
    #[error("scheme auth needs an authenticated identity, and the session has none")]
    NoIdentity,
}

/// An operation's failure, as every replica computes it.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ApiError {
    #[error("node {path} does not exist")]
    NoNode { path: String },
    #[error("node {path} already exists")]
    NodeExists { path: String },
    #[error(
        "node {path} is at version {actual}, not the expected {expected}; read it again and retry"
    )]
    BadVersion { path: String, expected: i32, actual: i32 },
    #[error("node {path} has children; delete them first")]
    NotEmpty { path: String },
    #[error("node {path} is ephemeral and cannot have children")]
    NoChildrenForEphemerals { path: String },
    #[error("the ACL for {path} is not valid: {why}")]
    InvalidAcl { path: String, why: AclError },
    #[error("the session may not {needed} on {path}; ask an admin of the node for access")]
    NoAuth { path: String, needed: PermsName },
    #[error("session {session} has expired or never existed; open a new session")]
    SessionExpired { session: SessionId },
    #[error("authentication with scheme {scheme} failed: {why}")]
    AuthFailed { scheme: String, why: String },
    #[error("{0}")]
    BadArguments(BadArgument),
    #[error("no {kind} watch is set on {path}")]
    NoWatcher { path: String, kind: String },
    #[error("the session has {count} watches, the limit; remove some before adding more")]
    TooManyWatches { count: usize },
    #[error("operation {index} of the multi failed, so none was applied: {error}")]
    Multi { index: usize, error: Box<ApiError> },
    #[error("no plugin named {name} is installed; list them with `warren plugin ls`")]
    NoPlugin { name: String },
    #[error("plugin {name}: {why}")]
    PluginRefused { name: String, why: PluginRefusal },
    #[error("plugin {plugin} rejected the write to {path}: {reason}")]
    Rejected { plugin: String, path: String, reason: String },
    #[error("plugin {plugin} refused: {reason}")]
    PluginError { plugin: String, reason: String },
    #[error("plugin {plugin} {why}")]
    PluginFailed { plugin: String, why: PluginFailure },
}

/// A permission set named for people ("read", "write", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermsName(pub Perms);

impl std::fmt::Display for PermsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Perms::READ, "read"),
            (Perms::WRITE, "write"),
            (Perms::CREATE, "create children"),
            (Perms::DELETE, "delete children"),
            (Perms::ADMIN, "administer"),
        ];
        let mut first = true;
        for (bit, name) in names {
            if self.0.contains(bit) {
                if !first {
                    f.write_str(" or ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl ApiError {
    /// ZooKeeper's code for this error (a multi's is its failing operation's).
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::NoNode { .. } => ErrorCode::NoNode,
            ApiError::NodeExists { .. } => ErrorCode::NodeExists,
            ApiError::BadVersion { .. } => ErrorCode::BadVersion,
            ApiError::NotEmpty { .. } => ErrorCode::NotEmpty,
            ApiError::NoChildrenForEphemerals { .. } => ErrorCode::NoChildrenForEphemerals,
            ApiError::InvalidAcl { .. } => ErrorCode::InvalidAcl,
            ApiError::NoAuth { .. } => ErrorCode::NoAuth,
            ApiError::SessionExpired { .. } => ErrorCode::SessionExpired,
            ApiError::AuthFailed { .. } => ErrorCode::AuthFailed,
            ApiError::BadArguments(_) => ErrorCode::BadArguments,
            ApiError::NoWatcher { .. } => ErrorCode::NoWatcher,
            ApiError::TooManyWatches { .. } => ErrorCode::Throttled,
            ApiError::Multi { error, .. } => error.code(),
            ApiError::NoPlugin { .. } => ErrorCode::NoPlugin,
            ApiError::PluginRefused { .. } => ErrorCode::PluginRefused,
            ApiError::Rejected { .. } => ErrorCode::Rejected,
            ApiError::PluginError { .. } => ErrorCode::PluginError,
            ApiError::PluginFailed { .. } => ErrorCode::PluginFailed,
        }
    }

    /// ZooKeeper's per-operation result codes for a failed multi of `len`
    /// operations: OK before the failing one, its code, then
    /// RuntimeInconsistency. `None` when this is not a multi's error.
    pub fn multi_codes(&self, len: usize) -> Option<Vec<ErrorCode>> {
        let ApiError::Multi { index, error } = self else {
            return None;
        };
        Some(
            (0..len)
                .map(|i| match i.cmp(index) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => error.code(),
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
                .collect(),
        )
    }
}
