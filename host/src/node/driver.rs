//! The tokio driver of a node's [`Engine`]: it feeds the engine what the
//! sockets, the ticker and the disk produce, with the time, and carries out
//! what the engine asks, in order. It decides nothing: which writes wait
//! for which sync, who answers whom and when, all come from the engine.
//!
//! The node runs on one thread (a current-thread runtime): this task and
//! the QUIC tasks hand work to each other without waking another thread,
//! which on a small machine cost more CPU than the work itself. Each round
//! drains the queue of inputs (so every session's proposals land in one
//! Ready: that is the batching), lets the engine process them, and carries
//! out its outputs. A sync the engine waits for (or a follower's, with no
//! input queued) is made in line, after yielding once so the messages of
//! the same round (the leader's appends) leave first; any other runs on a
//! blocking thread, and writes the engine asks for meanwhile wait in
//! order for it to end (a write while fjall syncs would wait anyway).

use crate::StateMachine;
use crate::consensus::{Config, NodeId, Restored};
use crate::node::config::NodeConfig;
use crate::node::engine::{
    ConnId, DiskOp, Engine, EngineError, Input, Now, Options, Output, PeerFrame, SessionIn, SyncId,
};
use crate::state::snapshot;
use crate::storage::{self, PreparedWrite, Storage};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};
use warren_client::wire::ServerFrame;

/// What the driver is told by the node's other tasks.
pub(crate) enum Event {
    Input(Input),
    /// A client connection began: where its frames go.
    Connected {
        conn: ConnId,
        outbox: Outbox,
    },
    /// Asks for the engine's view of itself (the four-letter words).
    Report(tokio::sync::oneshot::Sender<crate::node::engine::Report>),
    /// The node is stopping: return from `run`.
    Stop,
}

/// Where a client connection's frames go, and a signal raised when it
/// overflowed (the client stopped reading): its writer then resets the
/// stream with `server::RESET_TOO_SLOW`, which is how a blocked stream
/// still tells the client.
#[derive(Clone)]
pub(crate) struct Outbox {
    pub tx: mpsc::Sender<ServerFrame>,
    pub overflowed: Arc<Notify>,
}

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("storage failed: {0}; the node stops so nothing unsynced is acknowledged (restart it)")]
    Storage(#[from] storage::StorageError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// A sync running on a blocking thread.
struct Running {
    handle: tokio::task::JoinHandle<Result<(), storage::StorageError>>,
    sync: SyncId,
}

/// The driver. See the module docs.
pub(crate) struct Driver {
    engine: Engine,
    storage: Storage,
    events: mpsc::Receiver<Event>,
    /// For the background snapshot writer to report back.
    events_tx: mpsc::Sender<Event>,
    peers: BTreeMap<u64, mpsc::Sender<PeerFrame>>,
    outboxes: HashMap<ConnId, Outbox>,
    start: Instant,
    running: Option<Running>,
    /// Writes and compactions that wait for the running sync, in order
    /// (consecutive writes merged into one batch), and the last sync asked
    /// for meanwhile.
    waiting: VecDeque<DiskOp>,
    waiting_sync: Option<SyncId>,
    /// Writes built and not yet made, for the next sync (or made in line
    /// at the end of the round).
    staged: Vec<PreparedWrite>,
    /// Peer frames were queued this round (an in-line sync yields first).
    sent: bool,
    /// Connections whose outbox overflowed this round.
    overflowed: Vec<ConnId>,
}

impl Driver {
    pub(crate) fn new(
        config: &NodeConfig,
        storage: Storage,
        restored: Restored,
        sm: StateMachine,
        events: mpsc::Receiver<Event>,
        events_tx: mpsc::Sender<Event>,
        peers: BTreeMap<u64, mpsc::Sender<PeerFrame>>,
    ) -> Driver {
        let voters: Vec<NodeId> = config.members().into_iter().map(NodeId).collect();
        let start = Instant::now();
        let now = now(start);
        let seed = random_seed() ^ config.id.rotate_left(32);
        let mut raft_config = Config::new(NodeId(config.id), voters, seed);
        raft_config.election_tick = config.timing.election_ticks;
        raft_config.heartbeat_tick = config.timing.heartbeat_ticks;
        let options = Options {
            timing: config.timing,
            snapshot_every: config.snapshot_every,
            limits: config.limits,
            superuser_digest: config.superuser_digest.clone(),
        };
        let engine = Engine::new(raft_config, restored, sm, options, now, random_seed());
        Driver {
            engine,
            storage,
            events,
            events_tx,
            peers,
            outboxes: HashMap::new(),
            start,
            running: None,
            waiting: VecDeque::new(),
            waiting_sync: None,
            staged: Vec::new(),
            sent: false,
            overflowed: Vec::new(),
        }
    }

    /// Runs until every event sender is gone, or storage fails.
    pub(crate) async fn run(mut self) -> Result<(), DriverError> {
        loop {
            let event = match self.running.take() {
                Some(mut running) => tokio::select! {
                    biased;
                    result = &mut running.handle => {
                        self.sync_ended(running.sync, result).await?;
                        None
                    }
                    event = self.events.recv() => {
                        self.running = Some(running);
                        Some(event)
                    }
                },
                None => Some(self.events.recv().await),
            };
            match event {
                None => {}
                Some(None | Some(Event::Stop)) => return Ok(()),
                Some(Some(event)) => self.event(event)?,
            }
            // Everything already queued joins this round's Ready.
            for _ in 0..4096 {
                match self.events.try_recv() {
                    Ok(Event::Stop) => return Ok(()),
                    Ok(event) => self.event(event)?,
                    Err(_) => break,
                }
            }
            self.round().await?;
            // Let the answers and messages of that round leave before
            // anything else here waits for a sync.
            tokio::task::yield_now().await;
        }
    }

    fn event(&mut self, event: Event) -> Result<(), DriverError> {
        match event {
            Event::Input(input) => self.engine.handle(input, now(self.start))?,
            Event::Connected { conn, outbox } => {
                self.outboxes.insert(conn, outbox);
            }
            Event::Report(tx) => {
                let _ = tx.send(self.engine.report());
            }
            Event::Stop => {}
        }
        Ok(())
    }

    /// Lets the engine process what came in, and carries out its outputs
    /// until it has none.
    async fn round(&mut self) -> Result<(), DriverError> {
        self.sent = false;
        loop {
            self.engine.process()?;
            if !self.engine.has_outputs() {
                break;
            }
            let outputs: Vec<Output> = self.engine.outputs().collect();
            for output in outputs {
                self.output(output).await?;
            }
            for conn in std::mem::take(&mut self.overflowed) {
                self.outboxes.remove(&conn);
                let gone = Input::Session(SessionIn::Gone { conn });
                self.engine.handle(gone, now(self.start))?;
            }
        }
        // Writes with no sync after them (a commit index): made now.
        self.make_staged()?;
        Ok(())
    }

    async fn output(&mut self, output: Output) -> Result<(), DriverError> {
        match output {
            Output::Peer { to, frame } => {
                if let Some(tx) = self.peers.get(&to) {
                    // A full queue drops the frame: consensus resends.
                    let _ = tx.try_send(frame);
                    self.sent = true;
                }
            }
            Output::Session { conn, frame } => {
                let Some(outbox) = self.outboxes.get(&conn) else { return Ok(()) };
                match outbox.tx.try_send(frame) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        outbox.overflowed.notify_one();
                        self.overflowed.push(conn);
                    }
                }
            }
            Output::Close { conn } => {
                // Dropping the sender ends the stream once its frames left.
                self.outboxes.remove(&conn);
            }
            Output::Disk(op) => self.disk(op).await?,
            Output::Snapshot { meta, view } => self.write_snapshot(meta, view),
        }
        Ok(())
    }

    // ---- The disk.

    async fn disk(&mut self, op: DiskOp) -> Result<(), DriverError> {
        if self.running.is_some() {
            let must_wait = matches!(op, DiskOp::InstallSnapshot(_))
                || matches!(op, DiskOp::Sync { .. } if self.engine.is_blocked());
            if !must_wait {
                self.wait(op);
                return Ok(());
            }
            // The engine waits for this one: end the running sync first,
            // then make what waited for it; the sync this op makes (or,
            // for a snapshot, the Ready's right after it) covers the syncs
            // asked for meanwhile, whose ids are below its own.
            if let Some(running) = self.running.take() {
                let result = running.handle.await;
                self.storage.synced(join_result(&self.storage, result))?;
                self.engine.handle(Input::Synced(running.sync), now(self.start))?;
            }
            self.waiting_sync = None;
            while let Some(waiting) = self.waiting.pop_front() {
                Box::pin(self.disk(waiting)).await?;
            }
        }
        match op {
            DiskOp::InstallSnapshot(snapshot) => {
                self.make_staged()?;
                self.storage.install_snapshot(&snapshot)?;
            }
            DiskOp::Write { hard_state, entries } => {
                let write = self.storage.prepare(hard_state.as_ref(), &entries)?;
                self.staged.push(write);
            }
            DiskOp::Sync { id, inline } => {
                let in_line = self.engine.is_blocked() || (inline && self.events.is_empty());
                if in_line {
                    if self.sent {
                        // The leader's appends reach the followers while
                        // its own disk syncs.
                        tokio::task::yield_now().await;
                        self.sent = false;
                    }
                    self.make_staged()?;
                    self.storage.sync()?;
                    self.engine.handle(Input::Synced(id), now(self.start))?;
                } else {
                    let writes = std::mem::take(&mut self.staged);
                    let writes = if writes.is_empty() {
                        vec![self.storage.prepare(None, &[])?]
                    } else {
                        writes
                    };
                    let handle = tokio::task::spawn_blocking(move || {
                        PreparedWrite::write_all_and_sync(writes)
                    });
                    self.running = Some(Running { handle, sync: id });
                }
            }
            DiskOp::Compacted { index } => {
                self.make_staged()?;
                self.storage.snapshot_saved(index);
            }
        }
        Ok(())
    }

    /// Keeps an op for when the running sync ends: a write joins the write
    /// before it, if that is the last op waiting (entries replace every
    /// stored entry from their first index on, so the later ones cut the
    /// earlier ones' tail); a sync only moves the id to report.
    fn wait(&mut self, op: DiskOp) {
        match (op, self.waiting.back_mut()) {
            (DiskOp::Sync { id, .. }, _) => self.waiting_sync = Some(id),
            (
                DiskOp::Write { hard_state, entries },
                Some(DiskOp::Write { hard_state: pending_state, entries: pending }),
            ) => {
                if hard_state.is_some() {
                    *pending_state = hard_state;
                }
                if let Some(first) = entries.first() {
                    pending.retain(|e| e.index < first.index);
                    pending.extend(entries);
                }
            }
            (op, _) => self.waiting.push_back(op),
        }
    }

    /// Makes the staged writes, unsynced.
    fn make_staged(&mut self) -> Result<(), DriverError> {
        for write in std::mem::take(&mut self.staged) {
            self.storage.synced(write.write())?;
        }
        Ok(())
    }

    /// The running sync ended (between rounds): reports it and carries out
    /// the disk ops that waited for it.
    async fn sync_ended(
        &mut self,
        sync: SyncId,
        result: Result<Result<(), storage::StorageError>, tokio::task::JoinError>,
    ) -> Result<(), DriverError> {
        self.storage.synced(join_result(&self.storage, result))?;
        self.engine.handle(Input::Synced(sync), now(self.start))?;
        // What waited is made now, and synced by one sync beside the
        // engine that answers for the last id (group commit: the writes of
        // every Ready that came during one sync, in one batch).
        while let Some(op) = self.waiting.pop_front() {
            self.disk(op).await?;
        }
        if let Some(id) = self.waiting_sync.take() {
            self.disk(DiskOp::Sync { id, inline: false }).await?;
        }
        self.round().await
    }

    /// Writes the frozen state on a thread of its own, then drops the log
    /// tables it covers.
    fn write_snapshot(
        &mut self,
        meta: crate::consensus::SnapshotMeta,
        view: snapshot::SnapshotView,
    ) {
        let dir = self.storage.snapshots_dir();
        let dropper = self.storage.log_dropper();
        let id = self.engine.id();
        let tx = self.events_tx.clone();
        std::thread::spawn(move || {
            let result = storage::write_snapshot_streamed(&dir, meta, |out| {
                snapshot::write_view(&view, out).map_err(std::io::Error::other)
            })
            .map_err(|e| e.to_string());
            let saved = result.as_ref().ok().map(|snapshot| snapshot.meta.index);
            let _ = tx.blocking_send(Event::Input(Input::SnapshotWritten(result)));
            // After the report, so the engine compacts its log without
            // waiting for the flush. A failure only leaves covered entries
            // on disk; the next snapshot drops them.
            if let Some(index) = saved
                && let Err(e) = dropper.drop_through(index)
            {
                tracing::warn!("n{id}: dropping the log below the snapshot failed: {e}");
            }
        });
    }
}

fn join_result(
    storage: &Storage,
    result: Result<Result<(), storage::StorageError>, tokio::task::JoinError>,
) -> Result<(), storage::StorageError> {
    result.unwrap_or_else(|e| {
        Err(storage::StorageError::Io {
            dir: storage.dir().to_owned(),
            source: std::io::Error::other(format!("the sync thread failed: {e}")),
        })
    })
}

/// The two clocks the engine takes: monotonic since the driver started,
/// and the wall clock.
fn now(start: Instant) -> Now {
    let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Now { mono_ms: start.elapsed().as_millis() as u64, wall_ms }
}

/// A seed from the operating system's random source.
fn random_seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    // The system source does not fail on Linux once booted; a zero seed
    // would only make election timeouts alike, never unsafe.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
