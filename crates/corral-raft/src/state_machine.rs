//! The replicated lock table as openraft's state machine, with snapshots on
//! the node's [`Disk`].
//!
//! The table lives in memory. Its durable form is the latest snapshot, kept
//! on the disk in chunks ([`crate::snapshot_store`]); on restart the node
//! restores it and openraft re-applies the committed log after it. A
//! snapshot's data and meta are taken under one read lock, so they
//! describe the same point.

use std::io::Write;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use corral_state::{EndedHold, Event, LeaseChange, LeaseId, LockTable, QueueTally};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;

use crate::codec::Encoding;
use crate::disk::Disk;
use crate::metrics::StoreMetrics;
use crate::rocks::{StoreError, DISK_FORMAT};
use crate::snapshot_pace::SnapshotPace;
use crate::snapshot_store::{self, ChunkWriter, SnapshotChunks};
use crate::type_config::{
    LogId, NodeId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

/// What the state machine tells the node after each entry it applies.
pub enum Notice<'a> {
    /// An entry was applied (a command, or an entry without one).
    Applied {
        /// What it did to waiting leases.
        events: Vec<Event>,
        /// The holds it ended.
        ended: Vec<EndedHold>,
        /// The lease it expired.
        expired_lease: Option<LeaseId>,
        /// The lease it granted or ended, or that it replaced every lease,
        /// for the leader's lease deadlines.
        lease_change: Option<LeaseChange>,
        /// What it did to the work queues.
        queue: QueueTally,
    },
    /// The whole table was replaced by a snapshot: no events were seen for
    /// the entries it covers, so waiters must look at the table itself.
    Restored(&'a LockTable),
}

/// The index of `log_id`; 0 for none.
pub(crate) fn log_index(log_id: Option<LogId>) -> u64 {
    log_id.map_or(0, |id| id.index)
}

/// Receives the notices of every applied command and installed snapshot,
/// on every node.
pub type EventSink = Arc<dyn Fn(Notice<'_>) + Send + Sync>;

/// The applied state: the lock table and where in the log it stands.
#[derive(Debug, Default)]
pub struct AppliedState {
    /// The lock table.
    pub table: LockTable,
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
}

/// The state machine of one node. Cloning gives another handle to the same
/// state; the server keeps one to read the table.
#[derive(Clone)]
pub struct StateMachineStore {
    pub(crate) disk: Arc<dyn Disk>,
    state: Arc<RwLock<AppliedState>>,
    events: EventSink,
    metrics: StoreMetrics,
    /// Serializes snapshot writes, so that a slow build cannot overwrite a
    /// newer installed snapshot.
    snapshot_write: Arc<std::sync::Mutex<()>>,
    /// When to ask for the next snapshot.
    pub(crate) pace: Arc<SnapshotPace>,
}

impl StateMachineStore {
    /// Opens the state machine on `disk`, restoring the last snapshot.
    pub fn open(
        disk: Arc<dyn Disk>,
        events: EventSink,
        metrics: StoreMetrics,
    ) -> Result<StateMachineStore, StoreError> {
        let store = StateMachineStore {
            disk,
            state: Arc::default(),
            events,
            metrics,
            snapshot_write: Arc::default(),
            pace: Arc::new(SnapshotPace::new(
                crate::RaftSettings::default().snapshot_logs,
                0,
            )),
        };
        snapshot_store::tidy(&store.disk, snapshot_id())?;
        if let Some((meta, chunks)) = snapshot_store::current(&store.disk)? {
            store.restore(&meta, chunks.decode("snapshot data")?)?;
        }
        Ok(store)
    }

    /// The applied state, for reading. Hold the guard briefly: apply waits
    /// for it.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.state
            .read()
            .expect("the state lock is never poisoned: apply does not panic while holding it")
    }

    /// Replaces the table, as if a log had been applied that leads to it.
    #[cfg(test)]
    pub(crate) fn set_table(&self, table: LockTable) {
        self.state.write().expect("state lock").table = table;
    }

    /// The current snapshot's meta and chunks, if there is one.
    pub(crate) fn current_snapshot(
        &self,
    ) -> Result<Option<(SnapshotMeta, SnapshotChunks)>, StoreError> {
        snapshot_store::current(&self.disk)
    }

    /// Encodes the table straight into the chunks of snapshot `id`, under
    /// the read lock: apply waits for the encoding (reads do not), and no
    /// copy of the table is made. A real disk's chunks are compressed and
    /// stored on a thread of their own meanwhile, so that apply waits for
    /// the encoding alone. Returns its meta, its chunks and their stored
    /// size in bytes.
    pub(crate) fn encode_snapshot(
        &self,
        id: u64,
    ) -> Result<(SnapshotMeta, SnapshotChunks, u64), StoreError> {
        let mut writer = if self.disk.offloads_slow_work() {
            ChunkWriter::on_a_thread(self.disk.clone(), id)
                .map_err(|e| StoreError::Failed(format!("starting the chunk thread: {e}")))?
        } else {
            ChunkWriter::new(self.disk.clone(), id)
        };
        let state = self.read();
        let locked = std::time::Instant::now();
        let encoded = match writer.write_all(&[DISK_FORMAT]) {
            Err(e) => Err(StoreError::Failed(e.to_string())),
            Ok(()) => Encoding::of_format(DISK_FORMAT)
                .encode_to(&mut writer, &state.table)
                .map_err(|source| StoreError::Encode {
                    what: "snapshot data",
                    source,
                }),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        drop(state);
        self.metrics
            .snapshot_locked
            .observe(locked.elapsed().as_secs_f64());
        // A chunk thread that stopped on a disk error says why; the encoder
        // only saw that it stopped.
        let (chunks, bytes) = writer.finish()?;
        encoded?;
        self.keep_if_newest(&meta, &chunks)?;
        Ok((meta, chunks, bytes))
    }

    /// Makes `chunks` the current snapshot unless the stored one is newer,
    /// in which case they are deleted: a slow build never overwrites a
    /// newer installed snapshot.
    pub(crate) fn keep_if_newest(
        &self,
        meta: &SnapshotMeta,
        chunks: &SnapshotChunks,
    ) -> Result<(), StoreError> {
        let _writing = self.snapshot_write.lock().expect("snapshot write lock");
        if let Some((stored, _)) = self.current_snapshot()? {
            if stored.last_log_id > meta.last_log_id {
                tracing::info!(stored = ?stored.last_log_id, skipped = ?meta.last_log_id, "kept the newer stored snapshot");
                return snapshot_store::discard(self.disk.as_ref(), chunks.span.id);
            }
        }
        snapshot_store::make_current(&self.disk, meta, chunks)
    }

    /// Replaces the applied state with a snapshot's table.
    fn restore(&self, meta: &SnapshotMeta, mut table: LockTable) -> Result<(), StoreError> {
        table.rebuild_derived();
        if let Err(broken) = table.check_invariants() {
            return Err(StoreError::Invalid(format!(
                "snapshot breaks an invariant: {broken}"
            )));
        }
        let mut state = self.state.write().expect("state lock");
        state.table = table;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    /// Runs slow storage work on tokio's blocking pool, or here when the
    /// disk keeps everything on one thread (the simulation).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, std::io::Error> {
        if !self.disk.offloads_slow_work() {
            return Ok(work()?);
        }
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => Ok(result?),
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let started = std::time::Instant::now();
        // Encoding and syncing take milliseconds to seconds: off the
        // runtime, which may be a single thread that also serves heartbeats.
        let store = self.clone();
        let id = snapshot_id();
        let (meta, chunks, bytes) = self.blocking(move || store.encode_snapshot(id)).await?;
        self.metrics.snapshots_built.inc();
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.snapshot_build.observe(seconds);
        self.metrics
            .snapshot_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.pace.snapshot_at(log_index(meta.last_log_id));
        Ok(Snapshot {
            meta,
            snapshot: chunks,
        })
    }
}

/// A new snapshot's id: random, so that no two snapshots a node ever
/// holds, built or received, share one. Drawn from the runtime's
/// generator, which the simulation seeds, so that a seed replays its ids
/// too (drawing them shifted the seeds' schedules once, which is how the
/// early snapshot answer of `Replica::once_durable` was found).
pub(crate) fn snapshot_id() -> u64 {
    use openraft::AsyncRuntime;
    use rand010::RngExt;
    crate::runtime::CorralRuntime::thread_rng().random()
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), std::io::Error> {
        let state = self.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), std::io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, std::io::Error>> + Unpin + Send,
    {
        let mut last_applied = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            last_applied = Some(entry.log_id);
            let mut notice = (Vec::new(), Vec::new(), None, None, QueueTally::default());
            let reply = {
                let mut state = self.state.write().expect("state lock");
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Normal(proposal) => {
                        let applied = state.table.apply(proposal);
                        let queue = applied.queue_tally();
                        notice = (
                            applied.events,
                            applied.ended,
                            applied.expired_lease,
                            applied.lease_change,
                            queue,
                        );
                        Some(applied.response)
                    }
                    EntryPayload::Membership(membership) => {
                        // Who left the membership leaves for good: the table
                        // keeps their ids, so that they are never members
                        // again and peers refuse them.
                        let gone: Vec<NodeId> = state
                            .membership
                            .nodes()
                            .map(|(id, _)| *id)
                            .filter(|id| membership.get_node(id).is_none())
                            .collect();
                        state.table.retire_nodes(gone);
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        None
                    }
                }
            };
            // Sent after every entry, events or not: it also tells waiting
            // readers (election observers) that the state moved.
            let (events, ended, expired_lease, lease_change, queue) = notice;
            (self.events)(Notice::Applied {
                events,
                ended,
                expired_lease,
                lease_change,
                queue,
            });
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        if last_applied.is_some() {
            let items = || self.read().table.items();
            self.pace.applied(log_index(last_applied), items);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), std::io::Error> {
        let store = self.clone();
        let index = log_index(meta.last_log_id);
        let meta = meta.clone();
        // Decoded from the chunks on disk as they are read; they become
        // the current snapshot as they are, without being written again.
        self.blocking(move || {
            store.restore(&meta, snapshot.decode("snapshot data")?)?;
            store.keep_if_newest(&meta, &snapshot)
        })
        .await?;
        self.metrics.snapshots_installed.inc();
        self.pace.snapshot_at(index);
        (self.events)(Notice::Restored(&self.read().table));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, std::io::Error> {
        let store = self.clone();
        let stored = self.blocking(move || store.current_snapshot()).await?;
        Ok(stored.map(|(meta, chunks)| Snapshot {
            meta,
            snapshot: chunks,
        }))
    }
}
