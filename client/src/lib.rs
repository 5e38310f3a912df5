//! Warren's client library. For now it holds the protocol types that the
//! server and clients share: identifiers, Stat, ACLs, operations, replies,
//! errors and watch events. It must not depend on anything server-side.

pub mod frame;
pub mod proto;

pub use proto::*;
