//! The `/zookeeper` subtree as ZooKeeper presents it to its clients:
//! `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` (the members,
//! in ZooKeeper's dynamic-configuration format), with the root listing
//! `zookeeper` among its children. ZooKeeper keeps these in its tree from
//! the start, with zxid 0; Warren's tree does not hold them (Warren's own
//! clients do not see them): the ZooKeeper front end answers reads of them
//! itself, adds them to what it answers about the root, and refuses
//! writes into them.

use super::records::{MultiResult, ZkRequest, ZkResponse};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use warren_client::wire::Answer;
use warren_client::{Acl, Id, Perms, Stat};

const ROOT: &str = "/zookeeper";
const QUOTA: &str = "/zookeeper/quota";
const CONFIG: &str = "/zookeeper/config";

/// ZooKeeper's codes the subtree answers with.
const NO_NODE: i32 = -101;
const NO_AUTH: i32 = -102;
const NODE_EXISTS: i32 = -110;
const RUNTIME_INCONSISTENCY: i32 = -2;

/// The subtree of one node.
#[derive(Clone, Debug)]
pub struct Subtree {
    config: Vec<u8>,
}

impl Subtree {
    /// From the members (id and peer address) and, where known, their
    /// ZooKeeper client addresses.
    pub fn new(members: &[(u64, SocketAddr)], clients: &BTreeMap<u64, SocketAddr>) -> Subtree {
        let mut config = String::new();
        for (id, addr) in members {
            // server.N=host:quorum-port:election-port:role;client-host:port.
            // Warren's members elect over the one port they replicate
            // over; ZooKeeper's parsers refuse an election port equal to
            // the quorum port, so it is given as 0 (none of its own).
            let _ = write!(config, "server.{id}={}:{}:0:participant", addr.ip(), addr.port());
            if let Some(client) = clients.get(id) {
                let _ = write!(config, ";{}:{}", client.ip(), client.port());
            }
            config.push('\n');
        }
        config.push_str("version=0");
        Subtree { config: config.into_bytes() }
    }

    /// What `/zookeeper/config` holds.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    fn stat(&self, path: &str) -> Option<Stat> {
        let (children, length) = match path {
            ROOT => (2, 0),
            QUOTA => (0, 0),
            CONFIG => (0, self.config.len()),
            _ => return None,
        };
        // ZooKeeper sets the config node's ACL after creating it, with
        // version -1, which leaves that as its ACL version.
        let aversion = if path == CONFIG { -1 } else { 0 };
        Some(Stat {
            num_children: children,
            data_length: length as u32,
            aversion,
            ..Stat::default()
        })
    }

    /// The reply (error code and body) to a request the subtree answers:
    /// a read of one of its nodes, or a write into it. None for every
    /// other request.
    pub fn answer(&self, request: &ZkRequest) -> Option<(i32, ZkResponse)> {
        let found = |path: &str| self.stat(path).ok_or((NO_NODE, ZkResponse::Empty));
        let reply = match request {
            ZkRequest::Exists { path, .. } if inside(path) => found(path).map(ZkResponse::Stat),
            ZkRequest::GetData { path, .. } if inside(path) => found(path).map(|stat| {
                let data = if path == CONFIG { self.config.clone() } else { Vec::new() };
                ZkResponse::Data { data, stat }
            }),
            ZkRequest::GetChildren { path, two, .. } if inside(path) => found(path).map(|stat| {
                let names =
                    if path == ROOT { vec!["config".into(), "quota".into()] } else { vec![] };
                if *two {
                    ZkResponse::Children2 { names, stat }
                } else {
                    ZkResponse::Children(names)
                }
            }),
            ZkRequest::GetAcl { path } if inside(path) => found(path).map(|stat| {
                let perms = if path == CONFIG { Perms::READ } else { Perms::ALL };
                ZkResponse::Acl { acl: vec![Acl::new(perms, Id::anyone())], stat }
            }),
            ZkRequest::GetAllChildrenNumber { path } if path == ROOT => {
                Ok(ZkResponse::AllChildrenNumber(2))
            }
            ZkRequest::GetAllChildrenNumber { path } if inside(path) => {
                found(path).map(|_| ZkResponse::AllChildrenNumber(0))
            }
            ZkRequest::Multi { read: false, ops } => {
                let at = ops.iter().position(|op| write_refusal(op).is_some())?;
                let code = write_refusal(&ops[at]).unwrap_or(NO_AUTH);
                let results = (0..ops.len())
                    .map(|i| {
                        MultiResult::Error(match i.cmp(&at) {
                            std::cmp::Ordering::Less => 0,
                            std::cmp::Ordering::Equal => code,
                            std::cmp::Ordering::Greater => RUNTIME_INCONSISTENCY,
                        })
                    })
                    .collect();
                Ok(ZkResponse::Multi(results))
            }
            write => Err((write_refusal(write)?, ZkResponse::Empty)),
        };
        Some(reply.map(|body| (0, body)).unwrap_or_else(|refusal| refusal))
    }
}

/// Whether `path` is the subtree's root or below it.
fn inside(path: &str) -> bool {
    path == ROOT || path.starts_with("/zookeeper/")
}

/// The code a write into the subtree fails with: creating `/zookeeper`
/// finds it there; anything else may not change it.
fn write_refusal(request: &ZkRequest) -> Option<i32> {
    match request {
        ZkRequest::Create { path, .. } if path == ROOT => Some(NODE_EXISTS),
        ZkRequest::Create { path, .. }
        | ZkRequest::Delete { path, .. }
        | ZkRequest::DeleteContainer { path }
        | ZkRequest::SetData { path, .. }
        | ZkRequest::SetAcl { path, .. }
        | ZkRequest::Check { path, .. }
            if inside(path) =>
        {
            Some(NO_AUTH)
        }
        _ => None,
    }
}

/// Whether a read of `path` is about the root, whose answer gains the
/// subtree.
pub fn is_root(request: &ZkRequest) -> bool {
    matches!(
        request,
        ZkRequest::Exists { path, .. }
            | ZkRequest::GetData { path, .. }
            | ZkRequest::GetChildren { path, .. }
            | ZkRequest::GetAcl { path }
            | ZkRequest::GetAllChildrenNumber { path }
            if path == "/"
    )
}

/// An answer about the root, with `zookeeper` among its children (and
/// its three nodes among the root's descendants).
pub fn add_to_root(answer: &mut Answer) {
    match answer {
        Answer::Data { stat, .. } | Answer::Acl { stat, .. } | Answer::Exists(Some(stat)) => {
            stat.num_children += 1;
        }
        Answer::Children { names, stat, .. } => {
            // (A node of Warren's own by that name is shadowed, not listed
            // twice.)
            if let Err(at) = names.binary_search_by(|n| n.as_str().cmp("zookeeper")) {
                names.insert(at, "zookeeper".into());
                stat.num_children += 1;
            }
        }
        Answer::Count(n) => *n += 3,
        _ => {}
    }
}
