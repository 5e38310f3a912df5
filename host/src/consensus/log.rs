//! One replica's view of the replicated log: the entries after the latest
//! snapshot, and the positions that matter — what has been handed out to be
//! written (`written`), what is durable locally (`persisted`), what a quorum
//! has (`committed`), and what has been handed out to be applied
//! (`applied`). Knows no roles or messages.

use crate::consensus::types::{LogEntry, LogIndex, Snapshot, SnapshotMeta, Term};
use std::collections::VecDeque;

pub(crate) struct RaftLog {
    /// Everything at or below `snapshot.index` is compacted away.
    snapshot: SnapshotMeta,
    /// Entries `snapshot.index + 1 ..= last_index()`.
    entries: VecDeque<LogEntry>,
    /// Highest index handed out to be written (`persisted <= written`).
    written: LogIndex,
    /// Highest index durable on this replica's disk.
    persisted: LogIndex,
    pub committed: LogIndex,
    /// Highest index handed out for applying.
    pub applied: LogIndex,
    /// A snapshot received from the leader, not yet handed out.
    pub incoming: Option<Snapshot>,
}

impl RaftLog {
    /// A log restored from disk: the snapshot (or none), the entries after
    /// it, and the last commit index recorded.
    pub(crate) fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<LogEntry>,
        commit: LogIndex,
    ) -> RaftLog {
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index.0, snapshot.index.0 + 1 + i as u64, "stored log has a gap");
        }
        let mut log = RaftLog {
            applied: snapshot.index,
            committed: snapshot.index,
            snapshot,
            entries: entries.into(),
            written: LogIndex(0),
            persisted: LogIndex(0),
            incoming: None,
        };
        log.persisted = log.last_index();
        log.written = log.persisted;
        log.committed = commit.max(log.committed).min(log.last_index());
        log
    }

    pub(crate) fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        // The last index is the snapshot's or an entry's, so it has a term.
        self.term(self.last_index()).expect("last index has a term")
    }

    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    pub(crate) fn written(&self) -> LogIndex {
        self.written
    }

    /// The term of the entry at `index`, if the log still knows it.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index < self.snapshot.index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index.0 - self.first_index().0) as usize].term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&LogEntry> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index.0 - self.first_index().0) as usize])
    }

    /// Raft's election restriction: a log at (`last_index`, `last_term`) is
    /// at least as up to date as this one.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// A follower's append: if the entry at `prev_index` has `prev_term`,
    /// writes `entries` after it (cutting any conflicting suffix), moves the
    /// commit index up to `commit` within them, and returns the last index
    /// the leader's message covers.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        commit: LogIndex,
        entries: Vec<LogEntry>,
    ) -> Option<LogIndex> {
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        let conflict = entries.iter().position(|e| self.term(e.index) != Some(e.term));
        if let Some(at) = conflict {
            let first = entries[at].index;
            assert!(
                first > self.committed,
                "leader overwrites committed entry {first} (committed {})",
                self.committed
            );
            self.append(entries.into_iter().skip(at).collect());
        }
        self.commit_to(commit.min(last_new));
        Some(last_new)
    }

    /// Writes entries after the entry before the first of them, discarding
    /// any entries from there on.
    pub(crate) fn append(&mut self, entries: Vec<LogEntry>) {
        let Some(first) = entries.first().map(|e| e.index) else { return };
        assert!(first > self.committed, "append would rewrite committed entry {first}");
        assert!(
            first >= self.first_index() && first <= self.last_index().next(),
            "append leaves a gap"
        );
        self.entries.truncate((first.0 - self.first_index().0) as usize);
        self.persisted = self.persisted.min(first.prev());
        self.written = self.written.min(first.prev());
        self.entries.extend(entries);
    }

    /// Where a follower should ask the leader to retry after rejecting an
    /// append at `rejected`: its last index if its log is shorter, otherwise
    /// the index before the first entry of the conflicting term (never below
    /// the commit index, which matches every leader's log).
    pub(crate) fn reject_hint(&self, rejected: LogIndex) -> LogIndex {
        if rejected > self.last_index() {
            return self.last_index();
        }
        let Some(term) = self.term(rejected) else { return self.committed };
        let mut index = rejected;
        while index > self.committed
            && index > self.first_index()
            && self.term(index.prev()) == Some(term)
        {
            index = index.prev();
        }
        index.prev().max(self.committed)
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Entries `from ..= to`, at most `max_count` and about `max_bytes`
    /// (always at least one when the range is not empty).
    pub(crate) fn slice(
        &self,
        from: LogIndex,
        to: LogIndex,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<LogEntry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = from;
        while index <= to && out.len() < max_count {
            let Some(entry) = self.entry(index) else { break };
            bytes += entry.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
            index = index.next();
        }
        out
    }

    /// Entries not yet handed out to be written, which now are.
    pub(crate) fn take_unstable(&mut self) -> Vec<LogEntry> {
        let from = self.written.next().max(self.first_index());
        let out = self.slice(from, self.last_index(), usize::MAX, usize::MAX);
        if let Some(last) = out.last() {
            self.written = last.index;
        }
        out
    }

    /// Everything handed out to be written is durable.
    pub(crate) fn persisted_written(&mut self) {
        self.persisted = self.persisted.max(self.written);
    }

    /// Everything written up to `index`, whose entry had term `term`, is
    /// durable: ignored when that entry has since been replaced.
    pub(crate) fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if index <= self.written && self.term(index) == Some(term) {
            self.persisted = self.persisted.max(index);
        }
    }

    /// Committed entries not yet handed out, which are now handed out.
    pub(crate) fn take_committed(&mut self) -> Vec<LogEntry> {
        let from = self.applied.next();
        let out = self.slice(from, self.committed, usize::MAX, usize::MAX);
        self.applied = self.committed.max(self.applied);
        out
    }

    /// Replaces the log with a snapshot from the leader.
    pub(crate) fn install(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.snapshot = snapshot.meta.clone();
        self.committed = snapshot.meta.index;
        self.applied = snapshot.meta.index;
        self.persisted = self.persisted.min(snapshot.meta.index.prev());
        self.written = snapshot.meta.index;
        self.incoming = Some(snapshot);
    }

    /// Drops entries at or below `meta.index`, which the state machine has
    /// applied and snapshotted.
    pub(crate) fn compact(&mut self, meta: SnapshotMeta) {
        assert!(meta.index <= self.applied, "compacting beyond what was applied");
        if meta.index <= self.snapshot.index {
            return;
        }
        assert_eq!(self.term(meta.index), Some(meta.term), "snapshot term disagrees with the log");
        let drop = (meta.index.0 - self.snapshot.index.0) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = meta;
    }
}
