//! [`SimDisk`]: a node's disk in memory, in two layers: what was written,
//! and what a sync made durable. A crash keeps the durable layer, and may
//! keep a prefix of the writes since the last sync (a sync torn partway
//! through its batch). A sync takes a simulated time, and reports back only
//! when it is over, as RocksDB's does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use corral_raft::{Disk, Durability, Family, KeyValue, Op, StoreError, SyncDone, Visit};

use crate::rng::SimRng;

type Keys = BTreeMap<(Family, Vec<u8>), Vec<u8>>;

/// The contents of a disk that survive a crash, to restart a node on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Platter {
    durable: Keys,
}

/// One node's disk, for one life of the node. A crash ends it; the next
/// life gets a new disk on the platter the crash left.
#[derive(Clone)]
pub(crate) struct SimDisk {
    inner: Arc<Mutex<DiskState>>,
    rng: SimRng,
}

struct DiskState {
    /// What reads see: everything written.
    written: Keys,
    /// What a crash keeps.
    durable: Keys,
    /// Writes since the last sync, oldest first.
    unsynced: Vec<Vec<Op>>,
    /// Sync requests waiting for the next sync.
    waiting: Vec<SyncDone>,
    /// Whether a sync is running.
    syncing: bool,
    /// The slowest a sync may take now (a slow-disk fault raises it).
    sync_ms_max: u64,
    /// Set by a crash: this life's writes and syncs go nowhere.
    dead: bool,
}

impl SimDisk {
    /// A disk over what `platter` kept.
    pub(crate) fn new(platter: Platter, rng: SimRng, sync_ms_max: u64) -> SimDisk {
        let state = DiskState {
            written: platter.durable.clone(),
            durable: platter.durable,
            unsynced: Vec::new(),
            waiting: Vec::new(),
            syncing: false,
            sync_ms_max,
            dead: false,
        };
        SimDisk {
            inner: Arc::new(Mutex::new(state)),
            rng,
        }
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how slow a sync may be.
    pub(crate) fn set_sync_ms_max(&self, sync_ms_max: u64) {
        self.state().sync_ms_max = sync_ms_max;
    }

    /// Ends this life: what survives is the durable layer and, when
    /// `torn_writes` is above 0, that many of the oldest unsynced writes.
    /// Waiting syncs never report.
    pub(crate) fn crash(&self, torn_writes: usize) -> Platter {
        let mut state = self.state();
        state.dead = true;
        state.waiting.clear();
        let mut durable = state.durable.clone();
        let torn = torn_writes.min(state.unsynced.len());
        for ops in &state.unsynced[..torn] {
            apply(&mut durable, ops);
        }
        Platter { durable }
    }

    /// How many writes a crash now would lose.
    pub(crate) fn unsynced_writes(&self) -> usize {
        self.state().unsynced.len()
    }

    /// Runs one sync after a simulated time: everything written when it
    /// starts becomes durable, then the requests that waited are told.
    fn start_sync(&self) {
        let disk = self.clone();
        let sync_ms = {
            let max = self.state().sync_ms_max.max(1);
            self.rng.below(max) + 1
        };
        tokio::spawn(async move {
            let (covered, waiting) = {
                let mut state = disk.state();
                (state.unsynced.len(), std::mem::take(&mut state.waiting))
            };
            tokio::time::sleep(Duration::from_millis(sync_ms)).await;
            let again = {
                let mut state = disk.state();
                if state.dead {
                    return;
                }
                // A synced write since may have made some durable already.
                let covered = covered.min(state.unsynced.len());
                let synced: Vec<Vec<Op>> = state.unsynced.drain(..covered).collect();
                for ops in &synced {
                    apply(&mut state.durable, ops);
                }
                state.syncing = false;
                !state.waiting.is_empty()
            };
            for done in waiting {
                done(Ok(()));
            }
            if again {
                disk.sync_if_idle();
            }
        });
    }

    fn sync_if_idle(&self) {
        let start = {
            let mut state = self.state();
            let start = !state.syncing && !state.waiting.is_empty() && !state.dead;
            state.syncing |= start;
            start
        };
        if start {
            self.start_sync();
        }
    }
}

fn apply(keys: &mut Keys, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(family, key, value) => {
                keys.insert((*family, key.clone()), value.clone());
            }
            Op::Delete(family, key) => {
                keys.remove(&(*family, key.clone()));
            }
            Op::DeleteRange(family, start, end) => {
                let range = (*family, start.clone())..(*family, end.clone());
                let doomed: Vec<_> = keys.range(range).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    keys.remove(&key);
                }
            }
        }
    }
}

fn dead() -> StoreError {
    StoreError::Failed("the node crashed".into())
}

impl Disk for SimDisk {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.state();
        Ok(state.written.get(&(family, key.to_vec())).cloned())
    }

    fn last(&self, family: Family) -> Result<Option<KeyValue>, StoreError> {
        let state = self.state();
        let range = (family, Vec::new())..;
        let last = state
            .written
            .range(range)
            .take_while(|((f, _), _)| *f == family)
            .last();
        Ok(last.map(|((_, key), value)| (key.clone(), value.clone())))
    }

    fn scan_from(&self, family: Family, from: &[u8], visit: Visit<'_>) -> Result<(), StoreError> {
        // Copied out first: `visit` may take its time, and a write may come
        // meanwhile, as with a RocksDB iterator's snapshot.
        let items: Vec<KeyValue> = {
            let state = self.state();
            let range = (family, from.to_vec())..;
            state
                .written
                .range(range)
                .take_while(|((f, _), _)| *f == family)
                .map(|((_, key), value)| (key.clone(), value.clone()))
                .collect()
        };
        for (key, value) in items {
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, ops: Vec<Op>, durability: Durability) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.dead {
            return Err(dead());
        }
        apply(&mut state.written, &ops);
        match durability {
            Durability::Buffered => state.unsynced.push(ops),
            // A synced write makes everything before it durable too.
            Durability::Synced => {
                let earlier: Vec<Vec<Op>> = state.unsynced.drain(..).collect();
                for earlier in &earlier {
                    apply(&mut state.durable, earlier);
                }
                apply(&mut state.durable, &ops);
            }
        }
        Ok(())
    }

    fn sync_then(&self, done: SyncDone) {
        {
            let mut state = self.state();
            if state.dead {
                return;
            }
            state.waiting.push(done);
        }
        self.sync_if_idle();
    }

    fn offloads_slow_work(&self) -> bool {
        false
    }
}
