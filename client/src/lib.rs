//! Warren's client library: [`Client`] (an async session with every
//! operation and watches), its configuration file, and the protocol types
//! the server and clients share (identifiers, Stat, ACLs, operations,
//! replies, errors, watch events and the wire frames). It must not depend
//! on anything server-side.

pub mod client;
pub mod config;
pub mod frame;
pub mod proto;
pub mod tls;

pub use client::{Client, Connector, Error, InstallOptions, Invoked, WatchOnce, WatchStream};
pub use config::ClientConfig;
pub use proto::wire;

/// True when `path` is `root` or below it.
pub fn path_is_under(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'/')
}

pub use proto::*;
