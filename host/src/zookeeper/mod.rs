//! ZooKeeper's client protocol, so that existing ZooKeeper clients can use
//! Warren. So far the codec: jute ([`jute`]) and the protocol's records
//! ([`records`]); the front end that maps them onto the session layer
//! comes next.

pub mod jute;
pub mod records;
