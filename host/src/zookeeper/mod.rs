//! ZooKeeper's client protocol, so that existing ZooKeeper clients use
//! Warren unchanged: the codec — jute ([`jute`]) and the protocol's
//! records ([`records`]) — the front end that serves its connections on
//! the session layer ([`server`]), the `/zookeeper` subtree it presents
//! ([`subtree`]), and the four-letter words ([`words`]).

pub mod jute;
pub mod records;
pub(crate) mod server;
pub mod subtree;
pub mod words;
