//! Commands: the only way the lock table changes.

use serde::{Deserialize, Serialize};

use crate::auth::{Bearer, Permission, Quotas, TokenHash, TokenName};
use crate::idempotency::Idempotency;
use crate::kv::{Fence, KvKey};
use crate::lease::{LeaseId, LockOrder};
use crate::lock::{Kind, LockName, Mode};
use crate::token::FencingToken;
use crate::work::{ClaimId, ItemId, QueueConfig, QueueLimits};

/// A command with the time at which the leader proposed it.
///
/// Time enters the state machine only here: `now_ms` is the proposing
/// leader's wall clock in Unix milliseconds. Apply clamps it so that
/// state-machine time never goes backwards, even when a new leader's clock is
/// behind the old one's.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing leader's wall-clock time, in Unix milliseconds.
    pub now_ms: u64,
    /// The change to apply; every replica applies it alike.
    pub command: Command,
    /// The client's idempotency key, if it sent one: a retry with the same
    /// key is answered with the first answer and applies nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    /// The token the request came with: apply checks its permissions as
    /// of this log position. `None` is no token: with auth on, only the
    /// cluster's own commands (see [`Command::is_the_clusters`]) may come
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Bearer>,
}

impl Proposal {
    /// A proposal of the cluster itself, without an idempotency key.
    pub fn new(now_ms: u64, command: Command) -> Proposal {
        Proposal {
            now_ms,
            command,
            idempotency: None,
            caller: None,
        }
    }
}

/// What a client (or the leader itself) asks of the lock table.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Create a lease. The id was drawn at random by the node that took the
    /// request.
    GrantLease {
        /// The new lease's id.
        lease_id: LeaseId,
        /// Its time to live, in milliseconds.
        ttl_ms: u64,
        /// The order it promises to take its locks in.
        #[serde(default)]
        lock_order: LockOrder,
        /// How long its locks stay unavailable after it expires.
        #[serde(default)]
        lock_delay_ms: u64,
    },
    /// End a lease at its client's request, releasing all it holds.
    RevokeLease {
        /// The lease to end.
        lease_id: LeaseId,
    },
    /// End a lease whose deadline passed on the leader, releasing all it
    /// holds.
    ExpireLease {
        /// The lease to end.
        lease_id: LeaseId,
    },
    /// Take a lock, or join its queue when `wait_ms` is above zero.
    Acquire {
        /// The lease that will hold the lock.
        lease_id: LeaseId,
        /// The lock to take; it comes into use with its first holder or
        /// waiter.
        name: LockName,
        /// Exclusive or shared.
        #[serde(default)]
        mode: Mode,
        /// How long the request may wait; 0 asks for a grant or a refusal
        /// now.
        wait_ms: u64,
    },
    /// Take several locks in one step, all or none; wait for all of them
    /// together when `wait_ms` is above zero.
    AcquireAll {
        /// The lease that will hold the locks.
        lease_id: LeaseId,
        /// The locks, each once.
        names: Vec<LockName>,
        /// The mode of every grant.
        #[serde(default)]
        mode: Mode,
        /// How long the request may wait; 0 asks for the grants or a refusal
        /// now.
        wait_ms: u64,
    },
    /// Take permits of a semaphore, or join its queue when `wait_ms` is
    /// above zero.
    AcquirePermits {
        /// The lease that will hold the permits.
        lease_id: LeaseId,
        /// The semaphore to take permits of; its own namespace, apart from
        /// locks of the same name.
        name: LockName,
        /// How many permits the semaphore has; fixed by the acquire that
        /// creates it.
        limit: u32,
        /// How many permits to take.
        permits: u32,
        /// How long the request may wait.
        wait_ms: u64,
    },
    /// Give up a held lock or semaphore, handing it to the next waiters.
    Release {
        /// The lease that holds the grant to end.
        lease_id: LeaseId,
        /// The lock or semaphore.
        name: LockName,
        /// Which of the two.
        #[serde(default)]
        kind: Kind,
        /// The token of the grant to end: when given, a release that finds
        /// the lease holding under another token (a newer grant) is refused
        /// and ends nothing, so a release delayed in the network cannot end
        /// a grant made after it was sent. Absent in logs written before it
        /// existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fencing_token: Option<FencingToken>,
    },
    /// Leave a queue because the wait ran out. If the grant won the race,
    /// the grant is the answer. Leaving one queue of an acquire-all leaves
    /// all of them.
    CancelWait {
        /// The lease whose wait ran out.
        lease_id: LeaseId,
        /// The lock or semaphore.
        name: LockName,
        /// Which of the two.
        #[serde(default)]
        kind: Kind,
    },
    /// Withdraw an acquire-all whose wait ran out. If the grants won the
    /// race, they are the answer.
    CancelWaitAll {
        /// The lease whose acquire-all ran out.
        lease_id: LeaseId,
        /// The names of the acquire-all.
        names: Vec<LockName>,
    },
    /// Let the locks whose lock-delay has run out by the proposal's time
    /// grant again. The leader proposes it when a delay falls due.
    LiftLockDelays,
    /// Rank lock names by prefix, cluster-wide: an acquire of a name ranked
    /// before one the lease holds or waits for is refused. Names matching
    /// no prefix are not ranked. The leader proposes it when its configured
    /// order differs from the replicated one.
    SetLockOrder {
        /// The prefixes, lowest rank first.
        prefixes: Vec<String>,
    },
    /// Stand for leader of an election: lead at once if no one does, or
    /// queue as a candidate when `wait_ms` is above zero.
    Campaign {
        /// The lease that will lead; the leadership ends with it.
        lease_id: LeaseId,
        /// The election to lead: its own namespace, apart from locks and
        /// semaphores of the same name.
        name: LockName,
        /// The value it will lead with.
        value: String,
        /// How long it may wait.
        wait_ms: u64,
    },
    /// Change the value of an election the lease leads, under a new token.
    Proclaim {
        /// The lease that leads; any other is refused as not the leader.
        lease_id: LeaseId,
        /// The election it leads.
        name: LockName,
        /// The value observers see from now on, at most
        /// [`crate::ELECTION_VALUE_BYTES_MAX`] bytes.
        value: String,
    },
    /// Step down as leader (the next candidate leads), or withdraw a
    /// waiting candidacy.
    Resign {
        /// The lease that leads or waits as a candidate.
        lease_id: LeaseId,
        /// The election to step down from or stop waiting for.
        name: LockName,
        /// The token of the leadership to end: when given, only that
        /// leadership ends (a waiting candidacy is left alone), as for
        /// [`Command::Release`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fencing_token: Option<FencingToken>,
    },
    /// Write a key of the fenced store, if the fence is current.
    KvPut {
        /// The key to write; a new key counts against `keys_max`.
        key: KvKey,
        /// The value to store, at most [`crate::KV_VALUE_BYTES_MAX`] bytes.
        value: String,
        /// The lock and token the write is made under.
        fence: Fence,
        /// The most keys the store may hold, from the proposing node's
        /// configuration (carried here so every replica decides the same).
        keys_max: usize,
        /// The most bytes the store may hold (keys plus JSON-encoded
        /// values), likewise.
        #[serde(default = "unbounded")]
        bytes_max: usize,
    },
    /// Delete a key of the fenced store, if the fence is current.
    KvDelete {
        /// The key to delete; its record stays, with the token, so that no
        /// older token can write it again.
        key: KvKey,
        /// The lock and token the delete is made under.
        fence: Fence,
    },
    /// Turn auth on, for good, with the root token whose secret hashes to
    /// `root_hash`. Proposed by a leader started with a root token file
    /// while auth is off; once on, it changes nothing.
    EnableAuth {
        /// The SHA-256 of the root token's secret.
        root_hash: TokenHash,
    },
    /// Add a token. Its secret was drawn at random by the node that took
    /// the request and shown once to the client; only its hash is here.
    AddToken {
        /// The new token's name.
        name: TokenName,
        /// The SHA-256 of its secret.
        hash: TokenHash,
        /// What it may do.
        permissions: Vec<Permission>,
        /// Its share of the cluster.
        quotas: Quotas,
    },
    /// Revoke a token: every command that names it from here on is
    /// refused. The leases it granted live on until they end.
    RevokeToken {
        /// The token to revoke.
        name: TokenName,
    },
    /// Start a new cluster from a backup: the whole table, its token
    /// counter already raised past every token the old cluster may have
    /// issued after the backup (`corral snapshot restore --bump-tokens`).
    /// Proposed once by the first leader of a restored cluster; refused
    /// once anything was granted, or a restore applied.
    Restore {
        /// The table of the backup.
        table: Box<crate::LockTable>,
    },
    /// Configure a work queue, creating it: how it treats items that keep
    /// coming back.
    ConfigureQueue {
        /// The queue.
        queue: LockName,
        /// Its new configuration.
        config: QueueConfig,
        /// The most queues there may be, from the proposing node.
        queues_max: usize,
    },
    /// Add an item to a work queue (creating the queue).
    Enqueue {
        /// The queue.
        queue: LockName,
        /// The item's payload, JSON text.
        payload: String,
        /// How long after now it becomes ready, in milliseconds.
        delay_ms: u64,
        /// A repeated dedup id within the window adds nothing and answers
        /// the first item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dedup_id: Option<String>,
        /// The limits, from the proposing node.
        limits: QueueLimits,
    },
    /// Claim up to `max` ready items, oldest first, each under a new token;
    /// with none ready, wait (first come first served) when `wait_ms` > 0.
    Claim {
        /// The queue.
        queue: LockName,
        /// The lease the claims live under: they end with it.
        lease_id: LeaseId,
        /// How long each claim lasts unless extended, in milliseconds.
        visibility_ms: u64,
        /// The most items to take.
        max: u32,
        /// How long the request may wait for items; 0 answers now.
        wait_ms: u64,
        /// The request's id, which its items and a withdrawal name.
        #[serde(default, skip_serializing_if = "ClaimId::is_unset")]
        claim_id: ClaimId,
    },
    /// Finish an item: it leaves the queue.
    Ack {
        /// The queue.
        queue: LockName,
        /// The item.
        item_id: ItemId,
        /// The token of the item's live claim.
        fencing_token: FencingToken,
    },
    /// Move an item's claim deadline to `visibility_ms` from now.
    ExtendClaim {
        /// The queue.
        queue: LockName,
        /// The item.
        item_id: ItemId,
        /// The token of the item's live claim.
        fencing_token: FencingToken,
        /// The claim's new visibility, from now, in milliseconds.
        visibility_ms: u64,
    },
    /// Give an item back: ready now, or after `delay_ms`.
    Nack {
        /// The queue.
        queue: LockName,
        /// The item.
        item_id: ItemId,
        /// The token of the item's live claim.
        fencing_token: FencingToken,
        /// How long until it is ready again, in milliseconds.
        delay_ms: u64,
    },
    /// The leader's: return the items of `queue` whose claims ran out, and
    /// hand ready items to the claims that wait.
    TickQueue {
        /// The queue.
        queue: LockName,
    },
    /// The node's: withdraw a claim that waited for items and ran out.
    CancelClaimWait {
        /// The queue.
        queue: LockName,
        /// The lease of the waiting claim.
        lease_id: LeaseId,
        /// The waiting claim's id.
        #[serde(default, skip_serializing_if = "ClaimId::is_unset")]
        claim_id: ClaimId,
    },
}

fn unbounded() -> usize {
    usize::MAX
}

/// What an acquiring command may wait for, read from the command itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitFor {
    /// Lock, semaphore or election.
    pub kind: Kind,
    /// The lease that waits.
    pub lease_id: LeaseId,
    /// Every name it waits for: one, or the names of an acquire-all.
    pub names: Vec<LockName>,
    /// How long it may wait; 0 asks for an answer now.
    pub wait_ms: u64,
}

impl Command {
    /// Whether the cluster proposes this command itself, without a
    /// client's token: expiries, lifted delays, the lock order, turning
    /// auth on, withdrawing a wait the node registered, a restore, and
    /// returning a queue's overdue claims.
    pub fn is_the_clusters(&self) -> bool {
        matches!(
            self,
            Command::ExpireLease { .. }
                | Command::LiftLockDelays
                | Command::SetLockOrder { .. }
                | Command::EnableAuth { .. }
                | Command::CancelWait { .. }
                | Command::CancelWaitAll { .. }
                | Command::Restore { .. }
                | Command::TickQueue { .. }
                | Command::CancelClaimWait { .. }
        )
    }

    /// What this command may wait for, when it acquires: a lock, the locks
    /// of an acquire-all, permits, or an election's leadership.
    pub fn wait_for(&self) -> Option<WaitFor> {
        let (kind, lease_id, names, wait_ms) = match self {
            Command::Acquire {
                lease_id,
                name,
                wait_ms,
                ..
            } => (Kind::Lock, lease_id, vec![name.clone()], wait_ms),
            Command::AcquireAll {
                lease_id,
                names,
                wait_ms,
                ..
            } => (Kind::Lock, lease_id, names.clone(), wait_ms),
            Command::AcquirePermits {
                lease_id,
                name,
                wait_ms,
                ..
            } => (Kind::Semaphore, lease_id, vec![name.clone()], wait_ms),
            Command::Campaign {
                lease_id,
                name,
                wait_ms,
                ..
            } => (Kind::Election, lease_id, vec![name.clone()], wait_ms),
            _ => return None,
        };
        Some(WaitFor {
            kind,
            lease_id: *lease_id,
            names,
            wait_ms: *wait_ms,
        })
    }

    /// The command that withdraws this acquire's wait when it runs out:
    /// [`Command::CancelWaitAll`] for an acquire-all, otherwise
    /// [`Command::CancelWait`].
    pub fn withdrawal(&self) -> Option<Command> {
        if let Command::AcquireAll {
            lease_id, names, ..
        } = self
        {
            return Some(Command::CancelWaitAll {
                lease_id: *lease_id,
                names: names.clone(),
            });
        }
        let mut wait = self.wait_for()?;
        debug_assert_eq!(wait.names.len(), 1, "one name outside an acquire-all");
        Some(Command::CancelWait {
            lease_id: wait.lease_id,
            name: wait.names.pop()?,
            kind: wait.kind,
        })
    }
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} at {}", self.command, self.now_ms)
    }
}

#[cfg(test)]
#[path = "command_test.rs"]
mod tests;
