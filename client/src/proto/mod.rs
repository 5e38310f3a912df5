//! The protocol vocabulary shared by clients and servers: plain data types
//! with serde derives. Encoding to bytes happens at the edges (transport,
//! storage), never here.

mod acl;
mod error;
mod event;
mod ids;
mod op;
mod plugin;
mod stat;
pub mod wire;

pub use acl::{Acl, Id, Perms};
pub use error::{AclError, ApiError, BadArgument, ErrorCode, PathError, PermsName};
pub use event::{EventType, WatchKind, WatchedEvent};
pub use ids::{SessionId, SessionSecret, Zxid};
pub use op::{CreateMode, Op, OpResult, Reply, TTL_MS_MAX};
pub use plugin::{
    PLUGIN_FUEL_DEFAULT, PLUGIN_MEMORY_DEFAULT, PluginBinding, PluginFailure, PluginInfo, PluginOp,
    PluginRefusal, PluginWorld,
};
pub use stat::Stat;
