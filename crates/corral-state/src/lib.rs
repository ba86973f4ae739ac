//! The lock state machine of corral.
//!
//! Commands in, state and responses out. This crate holds every lock
//! semantic of corral and nothing else: no clock, no randomness, no I/O, no
//! async. Replication, storage and HTTP live in other crates and only carry
//! [`Proposal`]s to [`LockTable::apply`] and its answers back.
//!
//! # Leases
//! A lease ties ownership to a living client. Its id is drawn at random by
//! the node that takes the request and travels in the command. Its deadline
//! is not replicated: the leader keeps it in memory, refreshes it on
//! keepalive, and proposes [`Command::ExpireLease`] when it passes. Ending a
//! lease (revoke or expiry) releases every lock it holds and takes it out of
//! every queue.
//!
//! # Locks and fencing tokens
//! An exclusive lock has at most one holder. Every grant takes the next value
//! of one cluster-wide counter, the [`FencingToken`], so tokens rise strictly
//! in log order across all locks and are never reused. Acquiring a lock the
//! lease already holds grants it again under the next token, so that a
//! release naming the old token (one sent earlier and delayed) cannot end
//! the grant the client was just told of.
//!
//! # Waiting
//! A request that may wait joins the lock's FIFO [`Lock::waiters`] queue. A
//! release or an ended lease grants the lock to the head of the queue in the
//! same command and reports an [`Event::Granted`] that any node can use to
//! wake the waiting request. A wait that runs out is withdrawn with
//! [`Command::CancelWait`], which answers with the grant if the grant won the
//! race: a grant is never lost.
//!
//! # Time
//! Each proposal carries the leader's wall-clock time. Apply keeps the
//! largest value seen, so state-machine time never goes backwards. It stamps
//! grants and queue entries, and nothing in this crate waits on it.
//!
//! # Limits
//! Every collection that input can grow is bounded: see [`LEASES_MAX`],
//! [`WAITERS_PER_LOCK_MAX`], [`LOCKS_PER_LEASE_MAX`] and
//! [`LOCK_NAME_BYTES_MAX`]. A command that would pass a limit is refused with
//! [`Refusal::LimitReached`] and changes nothing.

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
#[cfg(test)]
mod arbitrary_test;
mod auth;
mod check;
mod command;
mod compact;
mod idempotency;
mod kv;
mod lease;
mod lock;
mod outcome;
mod table;
mod timeline;
mod token;
mod work;

pub use auth::{
    check_permissions, root_permissions, Access, Bearer, Permission, Quotas, Scope, Token,
    TokenHash, TokenHashError, TokenName, TokenNameError, Tokens, PERMISSIONS_PER_TOKEN_MAX,
    ROOT_TOKEN_NAME, TOKENS_MAX, TOKEN_NAME_BYTES_MAX,
};
pub use check::{check_acquire_all_names, check_election_value, check_permits, FieldError};
pub use command::{Command, Proposal, WaitFor};
pub use compact::{Holders, NameSet};
pub use idempotency::{
    check_idempotency_key, fingerprint, Idempotency, IdempotencyKeyError, IDEMPOTENCY_KEY_BYTES_MAX,
};
pub use kv::{Fence, FencedValue, KvKey, KV_VALUE_BYTES_MAX};
pub use lease::{Lease, LeaseId, LeaseIdError, LockOrder, WaitGroup};
pub use lock::{Grant, Kind, Lock, LockName, LockNameError, Mode, Waiter, LOCK_NAME_BYTES_MAX};
pub use outcome::{
    Applied, EndedHold, Event, HoldEnd, LeaseChange, Limit, Outcome, QueueTally, Refusal, Response,
    ReturnReason, WaitEdge,
};
pub use table::{check_lock_order, BrokenInvariant, LockOrderError, LockTable, TOKENS_LEFT_MIN};
pub use timeline::{TimelineEvent, TimelineKind, TIMELINE_EVENTS_PER_LOCK, TIMELINE_LOCKS_MAX};
pub use token::FencingToken;
pub use work::{
    Claim, ClaimId, ClaimedItem, DeadLetter, Dedup, Item, ItemId, QueueConfig, QueueLimits, Queues,
    WaitingClaim, WorkQueue, CLAIMERS_PER_QUEUE_MAX, CLAIM_ITEMS_MAX, DEDUP_ID_BYTES_MAX,
    ITEM_PAYLOAD_BYTES_MAX, QUEUES_MAX_DEFAULT, QUEUE_ITEMS_MAX_DEFAULT, VISIBILITY_MS_MAX,
};

/// The most leases that may live at once.
pub const LEASES_MAX: usize = 1_000_000;
/// The most leases that may wait for one lock.
pub const WAITERS_PER_LOCK_MAX: usize = 10_000;
/// The most locks one lease may hold and wait for together.
pub const LOCKS_PER_LEASE_MAX: usize = 10_000;
/// The longest lease time to live: 24 hours.
pub const TTL_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// The largest number of permits a semaphore may have.
pub const SEMAPHORE_LIMIT_MAX: u32 = 10_000;
/// The most locks one acquire-all may name.
pub const ACQUIRE_ALL_NAMES_MAX: usize = 64;
/// The longest lock-delay a lease may carry: one minute.
pub const LOCK_DELAY_MS_MAX: u64 = 60_000;
/// The most idempotency keys remembered at once; the oldest is forgotten
/// first.
pub const IDEMPOTENCY_KEYS_MAX: usize = 100_000;
/// The most bytes of remembered answers (keys plus JSON answers); the
/// oldest is forgotten first.
pub const IDEMPOTENCY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long an idempotency key's answer is remembered by default, in
/// state-machine milliseconds: 10 minutes.
pub const IDEMPOTENCY_WINDOW_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// The longest election value, in bytes.
pub const ELECTION_VALUE_BYTES_MAX: usize = 4096;
/// The most prefixes the cluster's lock order may rank.
pub const LOCK_ORDER_PREFIXES_MAX: usize = 64;
