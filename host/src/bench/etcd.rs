//! etcd (v3 API) as a system under test (`warren bench compare`, the
//! `compare` feature), through the `etcd-client` crate: one client, and so
//! one gRPC (HTTP/2) connection, per bench session.
//!
//! etcd has a flat key space, so a ZooKeeper-style path is used as the key
//! as it is (`/bench-1-2/k7`), and what ZooKeeper does with the tree is
//! mapped as follows:
//!
//! - `create` is a transaction that puts the key only if it does not exist
//!   (compare `create_revision == 0`), so it has create's semantics: a
//!   second create of a key fails with `NodeExists` instead of overwriting
//!   it. (etcd has no parents: a create does not need one.)
//! - `set` is a plain put, returning the put's header revision as the
//!   write's stamp; unlike ZooKeeper's setData it does not fail on a
//!   missing key.
//! - `get` is a range on the key: linearizable by default (etcd's
//!   default, a read index through the leader), serializable (answered
//!   from the connected member's state) for [`ReadMode::Local`]. A missing
//!   key is `NoNode`. etcd has no sync, so [`ReadMode::Sync`] is
//!   [`OpError::unsupported`].
//! - `delete` deletes the key; `NoNode` when there was none.
//! - `children` lists the keys under `path/` (a prefix range, keys only,
//!   in pages) and returns the names one level down.
//! - `watch` is a watch stream on the key; a notification's stamp is the
//!   `mod_revision` of the change, the revision its put returned.
//! - Sequential creates and plugins are [`OpError::unsupported`].

use super::system::{OpError, ReadMode, Session, System, Watch};
use etcd_client as etcd;
use std::time::Duration;

/// How long a request may take (Warren's client default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys per page when listing children.
const PAGE: i64 = 1000;

/// An etcd cluster, reached through client URLs.
pub struct Etcd {
    urls: Vec<String>,
}

impl Etcd {
    /// Sessions connect to `endpoints` (`host:port`, or URLs with a
    /// scheme); given more than one, `etcd-client` balances each session's
    /// requests over all of them. For sessions spread evenly, give one
    /// endpoint per `Etcd` and join them with
    /// [`super::compare::RoundRobin`].
    pub fn new(endpoints: &[String]) -> Etcd {
        let urls = endpoints
            .iter()
            .map(|e| if e.contains("://") { e.clone() } else { format!("http://{e}") })
            .collect();
        Etcd { urls }
    }
}

impl System for Etcd {
    type Session = EtcdSession;

    fn name(&self) -> &str {
        "etcd"
    }

    async fn connect(&self) -> Result<EtcdSession, OpError> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let client =
            etcd::Client::connect(&self.urls, Some(options)).await.map_err(|e| OpError {
                message: format!("cannot connect to etcd at {:?}: {e}", self.urls),
                ..op_error(e)
            })?;
        Ok(EtcdSession { kv: client.kv_client(), watch: client.watch_client() })
    }
}

/// One etcd client. Its request clients are cheap handles on one
/// connection; each request takes its own clone.
#[derive(Clone)]
pub struct EtcdSession {
    kv: etcd::KvClient,
    watch: etcd::WatchClient,
}

impl Session for EtcdSession {
    type Watch = EtcdWatch;

    /// A put only if the key does not exist (see the module's
    /// documentation); `NodeExists` if it does.
    async fn create(&self, path: &str, data: &[u8], sequential: bool) -> Result<(), OpError> {
        if sequential {
            return Err(OpError::unsupported("etcd", "sequential keys"));
        }
        let txn = etcd::Txn::new()
            .when([etcd::Compare::create_revision(path, etcd::CompareOp::Equal, 0)])
            .and_then([etcd::TxnOp::put(path, data, None)]);
        let answer = self.kv.clone().txn(txn).await.map_err(op_error)?;
        if answer.succeeded() {
            Ok(())
        } else {
            Err(OpError::new("NodeExists", format!("etcd: the key {path} already exists")))
        }
    }

    /// A put; returns its revision.
    async fn set(&self, path: &str, data: &[u8]) -> Result<u64, OpError> {
        let answer = self.kv.clone().put(path, data, None).await.map_err(op_error)?;
        let revision = answer.header().map(|h| h.revision());
        revision.and_then(|r| u64::try_from(r).ok()).ok_or_else(|| {
            OpError::new("BadHeader", "etcd answered a put without a revision in its header")
        })
    }

    async fn get(&self, path: &str, read: ReadMode) -> Result<usize, OpError> {
        let options = match read {
            ReadMode::Local => Some(etcd::GetOptions::new().with_serializable()),
            ReadMode::Linearizable => None,
            ReadMode::Sync => {
                return Err(OpError::unsupported(
                    "etcd",
                    "sync (its reads are linearizable or serializable)",
                ));
            }
        };
        let answer = self.kv.clone().get(path, options).await.map_err(op_error)?;
        match answer.kvs().first() {
            Some(kv) => Ok(kv.value().len()),
            None => Err(no_node(path)),
        }
    }

    async fn delete(&self, path: &str) -> Result<(), OpError> {
        let answer = self.kv.clone().delete(path, None).await.map_err(op_error)?;
        if answer.deleted() > 0 { Ok(()) } else { Err(no_node(path)) }
    }

    /// The names of the keys one level under `path/`.
    async fn children(&self, path: &str) -> Result<Vec<String>, OpError> {
        let prefix = if path.ends_with('/') { path.to_owned() } else { format!("{path}/") };
        let end = prefix_end(prefix.as_bytes());
        let mut kv = self.kv.clone();
        let mut names = Vec::new();
        let mut from = prefix.clone().into_bytes();
        loop {
            let options =
                etcd::GetOptions::new().with_range(end.clone()).with_keys_only().with_limit(PAGE);
            let answer = kv.get(from.clone(), Some(options)).await.map_err(op_error)?;
            for kv in answer.kvs() {
                let name = kv.key().strip_prefix(prefix.as_bytes()).unwrap_or_default();
                if let Ok(name) = std::str::from_utf8(name)
                    && !name.is_empty()
                    && !name.contains('/')
                {
                    names.push(name.to_owned());
                }
            }
            match answer.kvs().last() {
                Some(last) if answer.more() => {
                    // The next page starts just after the last key.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(names),
            }
        }
    }

    /// A watch stream on the key, once etcd confirmed it was created.
    async fn watch(&self, path: &str) -> Result<EtcdWatch, OpError> {
        let mut stream = self.watch.clone().watch(path, None).await.map_err(op_error)?;
        match stream.message().await.map_err(op_error)? {
            Some(answer) if answer.created() && !answer.canceled() => Ok(EtcdWatch(Some(stream))),
            Some(answer) => Err(OpError::new(
                "WatchRefused",
                format!("etcd did not create the watch on {path}: {}", answer.cancel_reason()),
            )),
            None => Err(OpError::new(
                "ConnectionLoss",
                format!("etcd closed the watch stream on {path} before creating it"),
            )),
        }
    }

    /// Nothing to end: the connection closes with the last handle.
    async fn close(self) -> Result<(), OpError> {
        Ok(())
    }
}

/// The changes of one key, by revision.
pub struct EtcdWatch(Option<etcd::WatchStream>);

impl Watch for EtcdWatch {
    async fn next(&mut self) -> Option<u64> {
        let stream = self.0.as_mut()?;
        loop {
            match stream.message().await {
                Ok(Some(answer)) if !answer.canceled() => {
                    // One answer may carry several changes: the last is the
                    // latest (progress notifications carry none).
                    let latest = answer
                        .events()
                        .iter()
                        .filter_map(|e| e.kv())
                        .map(|kv| kv.mod_revision())
                        .max();
                    if let Some(revision) = latest.and_then(|r| u64::try_from(r).ok()) {
                        return Some(revision);
                    }
                }
                // Cancelled (compacted, say), closed or failed: the end.
                _ => {
                    self.0 = None;
                    return None;
                }
            }
        }
    }
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

fn no_node(path: &str) -> OpError {
    OpError::new("NoNode", format!("etcd: the key {path} does not exist"))
}

/// A client error as the benchmark counts it: gRPC statuses by code,
/// transport failures as `ConnectionLoss`.
fn op_error(e: etcd::Error) -> OpError {
    let kind = match &e {
        // The code's name (`Unavailable`, ...), without naming tonic.
        etcd::Error::GRpcStatus(status) => match format!("{:?}", status.code()).as_str() {
            "DeadlineExceeded" => "Timeout".to_owned(),
            "ResourceExhausted" => "Throttled".to_owned(),
            code => code.to_owned(),
        },
        etcd::Error::TransportError(_) | etcd::Error::IoError(_) => "ConnectionLoss".to_owned(),
        etcd::Error::WatchError(_) => "WatchError".to_owned(),
        etcd::Error::InvalidArgs(_) | etcd::Error::InvalidUri(_) => "BadArguments".to_owned(),
        _ => "Other".to_owned(),
    };
    OpError::new(kind, format!("etcd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_key() {
        // Proves the range end of a prefix covers exactly the keys under it.
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), [0]);
    }
}
