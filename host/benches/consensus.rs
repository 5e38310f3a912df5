//! Consensus core benchmark (a bench binary, not a timed test): three
//! replicas of the real core on one thread, a perfect in-memory network and
//! in-memory "disks", no state machine. The leader proposes batches of
//! entries; every round delivers all messages and Ready batches until the
//! batch commits everywhere. Reports committed entries per second of wall
//! time for several batch sizes: the ceiling that transport and storage
//! costs will later be measured against.
//!
//! Run: `cargo bench -p warren --bench consensus` (`-- --entries N`,
//! `-- --payload BYTES`).

use bytes::Bytes;
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;
use warren::consensus::{Config, LogIndex, Message, NodeId, Raft, Restored, Role};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let total = value("--entries", 400_000);
    let payload = Bytes::from(vec![7u8; value("--payload", 128)]);
    println!(
        "consensus core, 3 replicas, one thread, {} B payloads, {total} entries per run",
        payload.len()
    );
    for batch in [1usize, 16, 256, 4096] {
        let mut cluster = Cluster::new(3);
        let started = Instant::now();
        let mut proposed = 0;
        let mut rounds = 0u64;
        while proposed < total {
            let n = batch.min(total - proposed);
            for _ in 0..n {
                cluster.nodes[0].propose(payload.clone(), 0).expect("replica 1 leads");
            }
            proposed += n;
            let target = cluster.nodes[0].last_index();
            while cluster.nodes.iter().any(|r| r.commit_index() < target) {
                cluster.round();
                rounds += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  batch {batch:>5}: {:>10.0} entries/s committed on all replicas ({:.1} message rounds per batch)",
            total as f64 / secs,
            rounds as f64 / total.div_ceil(batch) as f64
        );
        black_box(&cluster.applied);
    }
}

struct Cluster {
    nodes: Vec<Raft>,
    inbox: VecDeque<Message>,
    applied: u64,
}

impl Cluster {
    /// A cluster whose replica 1 has won an election.
    fn new(n: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, ids.clone(), id.0);
                config.max_inflight = 256;
                config.max_entries_per_append = 4096;
                config.max_bytes_per_append = 8 << 20;
                Raft::new(config, Restored::default())
            })
            .collect();
        let mut cluster = Cluster { nodes, inbox: VecDeque::new(), applied: 0 };
        cluster.nodes[0].campaign_now();
        while cluster.nodes[0].role() != Role::Leader
            || cluster.nodes[0].commit_index() == LogIndex(0)
        {
            cluster.round();
        }
        cluster
    }

    /// Processes every replica's Ready (persisting is instant), then
    /// delivers every message sent.
    fn round(&mut self) {
        for node in &mut self.nodes {
            if !node.has_ready() {
                continue;
            }
            let ready = node.ready();
            self.applied += ready.committed.len() as u64;
            self.inbox.extend(ready.messages);
            self.inbox.extend(ready.persisted_messages);
            node.advance();
        }
        while let Some(m) = self.inbox.pop_front() {
            let to = (m.to.0 - 1) as usize;
            self.nodes[to].step(m);
        }
    }
}
