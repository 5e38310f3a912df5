//! Cluster membership and quorum arithmetic. A static voter set for now,
//! kept behind this type so that joint consensus (adding and removing
//! members safely) can change the quorum rule in one place.

use crate::consensus::types::{LogIndex, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The voters of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    voters: BTreeSet<NodeId>,
}

impl Membership {
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect() }
    }

    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The smallest number of voters that is a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// True when the voters for which `yes` holds form a majority.
    pub fn is_quorum(&self, yes: impl Fn(NodeId) -> bool) -> bool {
        self.voters.iter().filter(|&&id| yes(id)).count() >= self.quorum()
    }

    /// True when the voters for which `no` holds make a majority impossible.
    pub fn is_lost(&self, no: impl Fn(NodeId) -> bool) -> bool {
        self.voters.iter().filter(|&&id| no(id)).count() > self.voters.len() - self.quorum()
    }

    /// The highest index a majority has reached, given each voter's index.
    pub fn committed_index(&self, matched: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        let mut indexes: Vec<LogIndex> = self.voters.iter().map(|&id| matched(id)).collect();
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        indexes.get(self.quorum() - 1).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        // Proves majorities and the committed index for 1, 3, 4 and 5 voters.
        let m = |n: u64| Membership::new((1..=n).map(NodeId));
        assert_eq!([1, 3, 4, 5].map(|n| m(n).quorum()), [1, 2, 3, 3]);
        let five = m(5);
        let idx = [9, 3, 7, 5, 1];
        assert_eq!(five.committed_index(|id| LogIndex(idx[id.0 as usize - 1])), LogIndex(5));
        assert!(five.is_quorum(|id| id.0 <= 3));
        assert!(!five.is_quorum(|id| id.0 <= 2));
        assert!(five.is_lost(|id| id.0 <= 3));
        assert!(!five.is_lost(|id| id.0 <= 2));
    }
}
