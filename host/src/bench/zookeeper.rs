//! Apache ZooKeeper as a system under test (`warren bench compare`, the
//! `compare` feature), through the `zookeeper-client` crate: one client,
//! and so one ZooKeeper session and TCP connection, per bench session.
//!
//! The mapping is ZooKeeper's own API: persistent (sequential) nodes with
//! the open ACL, setData and delete at any version, getData, and a sync
//! before a read for [`ReadMode::Sync`]. ZooKeeper has no linearizable read
//! in one request, so [`ReadMode::Linearizable`] is
//! [`OpError::unsupported`]; neither has it plugins.
//!
//! **Watch stamps.** A write's stamp is the node's data version after it
//! (`Stat::version`), not its zxid: ZooKeeper servers before 3.9
//! (ZOOKEEPER-4655; the comparison runs 3.8) send watch notifications
//! without the zxid of the change (`zookeeper-client` reports
//! `WatchedEvent::NO_ZXID`), and reading the node on each notification to
//! learn it would add a round trip to the latency measured. A persistent
//! watch on one node is instead told of every change of its data, in
//! order, once each: the watch reads the node's version *before* arming
//! (a write between the read and the arming is then missed, never counted
//! twice), and the n-th `NodeDataChanged` after it is version `v0 + n`.
//! Every data change adds exactly one to the version, so that is the
//! version the n-th change wrote. What would break the count ends the
//! watch instead of guessing: the node's deletion (a new node starts again
//! at version 0), a lost connection (notifications during a reconnection
//! may be lost, ZOOKEEPER-4698) and the session's end. A write whose
//! notification was missed shows as a `WatchTimeout` in the report; a
//! notification is never matched to a write it did not come from.

use super::system::{OpError, ReadMode, Session, System, Watch};
use std::time::Duration;
use zookeeper_client as zk;

/// How long a request may wait for its answer (Warren's client default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The session timeout asked for (Warren's client default).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

const PERSISTENT: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const PERSISTENT_SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());

/// A ZooKeeper ensemble, reached through `host:port` endpoints.
pub struct ZooKeeper {
    /// The connect string: `host:port[,host:port...]`.
    cluster: String,
    /// The system's name in reports: `zookeeper`, or `warren-zk` for
    /// Warren's ZooKeeper port.
    name: &'static str,
}

impl ZooKeeper {
    /// Sessions connect to one of `endpoints` (`host:port`); given more
    /// than one, the client picks at random and moves between them. For
    /// sessions spread evenly, give one endpoint per `ZooKeeper` and join
    /// them with [`super::compare::RoundRobin`].
    pub fn new(endpoints: &[String]) -> ZooKeeper {
        ZooKeeper::named("zookeeper", endpoints)
    }

    /// Another server speaking ZooKeeper's protocol, named `name`.
    pub fn named(name: &'static str, endpoints: &[String]) -> ZooKeeper {
        ZooKeeper { cluster: endpoints.join(","), name }
    }
}

impl System for ZooKeeper {
    type Session = ZooKeeperSession;

    fn name(&self) -> &str {
        self.name
    }

    async fn connect(&self) -> Result<ZooKeeperSession, OpError> {
        let connect = zk::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_fail_eagerly()
            .connect(&self.cluster);
        match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(Ok(client)) => Ok(ZooKeeperSession(client)),
            Ok(Err(e)) => Err(OpError {
                message: format!("cannot connect to ZooKeeper at {}: {e}", self.cluster),
                ..op_error(e)
            }),
            Err(_) => Err(timeout()),
        }
    }
}

/// One ZooKeeper session.
#[derive(Clone)]
pub struct ZooKeeperSession(zk::Client);

impl Session for ZooKeeperSession {
    type Watch = ZooKeeperWatch;

    async fn create(&self, path: &str, data: &[u8], sequential: bool) -> Result<(), OpError> {
        let options = if sequential { &PERSISTENT_SEQUENTIAL } else { &PERSISTENT };
        bounded(self.0.create(path, data, options)).await.map(drop)
    }

    /// Returns the node's data version after the write: the stamp its
    /// watches count (see the module's documentation).
    async fn set(&self, path: &str, data: &[u8]) -> Result<u64, OpError> {
        let stat = bounded(self.0.set_data(path, data, None)).await?;
        version(stat.version)
    }

    async fn get(&self, path: &str, read: ReadMode) -> Result<usize, OpError> {
        match read {
            ReadMode::Local => {}
            ReadMode::Sync => bounded(self.0.sync(path)).await?,
            ReadMode::Linearizable => {
                return Err(OpError::unsupported(
                    "zookeeper",
                    "linearizable read in one request (get-sync is its sync, then a local read)",
                ));
            }
        }
        bounded(self.0.get_data(path)).await.map(|(data, _)| data.len())
    }

    async fn delete(&self, path: &str) -> Result<(), OpError> {
        bounded(self.0.delete(path, None)).await
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, OpError> {
        bounded(self.0.list_children(path)).await
    }

    /// A persistent (not recursive) watch; its stamps are data versions,
    /// counted from the version read just before it was armed (after a
    /// sync, so a member behind the leader still finds a node another
    /// session just created).
    async fn watch(&self, path: &str) -> Result<ZooKeeperWatch, OpError> {
        bounded(self.0.sync(path)).await?;
        let (_, stat) = bounded(self.0.get_data(path)).await?;
        let version = version(stat.version)?;
        let watcher = bounded(self.0.watch(path, zk::AddWatchMode::Persistent)).await?;
        Ok(ZooKeeperWatch { watcher: Some(watcher), version })
    }

    /// Drops the client (the last handle of the session sends
    /// closeSession) and waits, a few seconds at most, until it closed.
    async fn close(self) -> Result<(), OpError> {
        let mut state = self.0.state_watcher();
        drop(self.0);
        let closed = async {
            while !state.peek_state().is_terminated() {
                state.changed().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .map_err(|_| OpError::new("Timeout", "the ZooKeeper session did not close within 5 s"))
    }
}

/// The data changes of one node, numbered by the version they wrote.
pub struct ZooKeeperWatch {
    /// `None` once the watch has ended: `zookeeper-client` panics when
    /// asked for an event after the session's terminal one.
    watcher: Option<zk::PersistentWatcher>,
    /// The version of the last change counted.
    version: u64,
}

impl Watch for ZooKeeperWatch {
    async fn next(&mut self) -> Option<u64> {
        let watcher = self.watcher.as_mut()?;
        loop {
            let event = watcher.changed().await;
            match event.event_type {
                zk::EventType::NodeDataChanged => {
                    self.version += 1;
                    return Some(self.version);
                }
                // Created and children events say nothing of the data.
                zk::EventType::NodeCreated | zk::EventType::NodeChildrenChanged => continue,
                // Connected again or read-only: nothing was written.
                zk::EventType::Session
                    if matches!(
                        event.session_state,
                        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
                    ) =>
                {
                    continue;
                }
                // The node deleted, the connection lost (events may be lost
                // with it) or the session over: the count can no longer be
                // trusted.
                _ => {
                    self.watcher = None;
                    return None;
                }
            }
        }
    }
}

/// A request bounded by [`REQUEST_TIMEOUT`], its error as the benchmark
/// counts it.
async fn bounded<T>(
    request: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, OpError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(answer) => answer.map_err(op_error),
        Err(_) => Err(timeout()),
    }
}

fn timeout() -> OpError {
    OpError::new(
        "Timeout",
        format!("ZooKeeper did not answer within {} s", REQUEST_TIMEOUT.as_secs()),
    )
}

/// A data version as a stamp (ZooKeeper's are never negative).
fn version(version: i32) -> Result<u64, OpError> {
    u64::try_from(version).map_err(|_| {
        OpError::new("BadStat", format!("ZooKeeper answered a negative data version {version}"))
    })
}

/// A client error as the benchmark counts it: by ZooKeeper's code name.
fn op_error(e: zk::Error) -> OpError {
    use zk::Error as E;
    let kind = match &e {
        E::NoNode => "NoNode",
        E::NodeExists => "NodeExists",
        E::BadVersion => "BadVersion",
        E::NotEmpty => "NotEmpty",
        E::NoAuth => "NoAuth",
        E::ConnectionLoss => "ConnectionLoss",
        E::SessionExpired => "SessionExpired",
        E::SessionMoved => "SessionMoved",
        E::Timeout => "Timeout",
        E::Throttled => "Throttled",
        E::NoHosts => "NoServer",
        E::ClientClosed => "Closed",
        E::AuthFailed => "AuthFailed",
        E::BadArguments(_) => "BadArguments",
        E::UnexpectedErrorCode(_) => "UnexpectedErrorCode",
        _ => "Other",
    };
    let fatal = matches!(e, E::SessionExpired | E::ClientClosed | E::AuthFailed);
    OpError { kind: kind.into(), message: format!("zookeeper: {e}"), fatal }
}
