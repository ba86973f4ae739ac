//! [`Disk`]: where a node keeps its raft log, its raft metadata and its
//! snapshot. RocksDB in a real node ([`crate::rocks::RocksDisk`]); memory
//! in the simulation, which can lose what was not synced.
//!
//! The stores above it ([`crate::LogStore`], [`crate::StateMachineStore`])
//! hold every rule about what must be durable when; a disk only writes,
//! reads and syncs.

use crate::rocks::StoreError;

/// A key space of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Raft log entries, keyed by big-endian index so that key order is
    /// log order.
    Log,
    /// Raft metadata: vote, committed log id, last purged log id.
    Meta,
    /// The current snapshot of the state machine.
    Snapshot,
}

/// One change of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to `value`.
    Put(Family, Vec<u8>, Vec<u8>),
    /// Removes `key`.
    Delete(Family, Vec<u8>),
    /// Removes the keys from `start` (included) to `end` (excluded).
    DeleteRange(Family, Vec<u8>, Vec<u8>),
}

/// How durable a write must be when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Readable at once; durable with the next sync.
    Buffered,
    /// Durable, with everything written before it, when it returns.
    Synced,
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Visits one key and its value of a scan; answers whether to go on.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError>;

/// Called once a requested sync has finished: `Ok` when everything written
/// before the request is durable.
pub type SyncDone = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A node's storage. Writes are applied in order and atomically (all the
/// ops of one write, or none, survive a crash).
pub trait Disk: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The last key of `family` in key order, with its value.
    fn last(&self, family: Family) -> Result<Option<KeyValue>, StoreError>;

    /// Calls `visit` with each key from `from` on, in key order, while it
    /// answers `true`.
    fn scan_from(&self, family: Family, from: &[u8], visit: Visit<'_>) -> Result<(), StoreError>;

    /// Applies `ops` atomically.
    fn write(&self, ops: Vec<Op>, durability: Durability) -> Result<(), StoreError>;

    /// Syncs everything written so far, then calls `done`; many requests
    /// may share one sync (group commit). `done` may run on another thread.
    fn sync_then(&self, done: SyncDone);

    /// Whether slow work on this disk (a snapshot's encoding and write)
    /// runs on a blocking thread, off the async runtime. A simulated disk
    /// answers `false`, so that the simulation stays on one thread.
    fn offloads_slow_work(&self) -> bool {
        true
    }
}
