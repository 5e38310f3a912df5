//! Warren's server. This crate holds the pure parts of a node — the
//! consensus core (`consensus`), the replicated state machine (`state`), the
//! per-server watch table (`watch`), path rules and limits — the
//! deterministic cluster simulator (`sim`), and the `warren` binary. See ARCHITECTURE.md for
//! the map.

pub mod bench;
pub mod consensus;
pub mod demo;
pub mod dev;
pub mod limits;
pub mod node;
pub mod path;
pub mod plugin;
pub mod rng;
pub mod sim;
pub mod state;
pub mod storage;
pub mod tls;
pub mod watch;
pub mod zookeeper;

pub use limits::Limits;
pub use state::{Applied, Children, Command, Entry, Response, Session, StateMachine, Trigger};
pub use watch::{Rearm, WatchTable};
