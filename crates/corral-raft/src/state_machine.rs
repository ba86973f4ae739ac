//! The replicated lock table as openraft's state machine, with snapshots in
//! RocksDB.
//!
//! The table lives in memory. Its durable form is the latest snapshot, kept
//! in RocksDB; on restart openraft restores it and re-applies the committed
//! log after it. A snapshot's data and meta are taken under one read lock, so
//! they describe the same point even while apply goes on.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use corral_state::{Event, LockTable};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::rocks::{cf, decode, encode, StoreError, CF_SNAPSHOT};
use crate::type_config::{
    LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

const KEY_META: &[u8] = b"meta";
const KEY_DATA: &[u8] = b"data";

/// What the state machine tells the node about requests that wait.
pub enum Notice<'a> {
    /// Applying a command did these things to waiting leases.
    Events(Vec<Event>),
    /// The whole table was replaced by a snapshot: no events were seen for
    /// the entries it covers, so waiters must look at the table itself.
    Restored(&'a LockTable),
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
    db: Arc<DB>,
    state: Arc<RwLock<AppliedState>>,
    events: EventSink,
}

impl StateMachineStore {
    /// Opens the state machine over `db`, restoring the last snapshot.
    pub(crate) fn open(db: Arc<DB>, events: EventSink) -> Result<StateMachineStore, StoreError> {
        let store = StateMachineStore {
            db,
            state: Arc::default(),
            events,
        };
        if let Some((meta, data)) = store.read_snapshot()? {
            store.restore(&meta, &data)?;
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

    fn read_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let family = cf(&self.db, CF_SNAPSHOT);
        let Some(meta) = self.db.get_cf(family, KEY_META)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta = decode("snapshot meta", &meta)?;
        let data = self.db.get_cf(family, KEY_DATA)?.unwrap_or_default();
        Ok(Some((meta, data)))
    }

    fn write_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let family = cf(&self.db, CF_SNAPSHOT);
        let mut batch = WriteBatch::default();
        batch.put_cf(family, KEY_META, encode(meta));
        batch.put_cf(family, KEY_DATA, data);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Replaces the applied state with a snapshot's.
    fn restore(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let table: LockTable = decode("snapshot data", data)?;
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
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let (meta, data) = {
            let state = self.read();
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
            };
            (meta, encode(&state.table))
        };
        self.write_snapshot(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        })
    }
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
        while let Some((entry, responder)) = entries.try_next().await? {
            let mut events = Vec::new();
            let reply = {
                let mut state = self.state.write().expect("state lock");
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Normal(proposal) => {
                        let applied = state.table.apply(proposal);
                        events = applied.events;
                        Some(applied.response)
                    }
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        None
                    }
                }
            };
            if !events.is_empty() {
                (self.events)(Notice::Events(events));
            }
            if let Some(responder) = responder {
                responder.send(reply);
            }
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
        let data = snapshot.into_inner();
        self.restore(meta, &data)?;
        self.write_snapshot(meta, &data)?;
        (self.events)(Notice::Restored(&self.read().table));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, std::io::Error> {
        Ok(self.read_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Cursor::new(data),
        }))
    }
}
