//! What applying a command answers, and what it tells other waiters.

use serde::{Deserialize, Serialize};

use crate::auth::TokenName;
use crate::lease::LeaseId;
use crate::lock::{Grant, Kind, LockName, Mode};
use crate::token::FencingToken;
use crate::work::{ClaimId, ClaimedItem, ItemId};

/// The answer to the command's proposer.
pub type Response = Result<Outcome, Refusal>;

/// A command that took effect (or found its effect already there).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The lease exists now.
    LeaseGranted {
        /// The id the node drew at random; the client's only handle on it.
        lease_id: LeaseId,
        /// Its time to live.
        ttl_ms: u64,
    },
    /// The lease is gone; these locks and semaphores were released.
    LeaseEnded {
        /// The locks it held, now released or handed to their next waiter.
        released: Vec<LockName>,
        /// The semaphores it held permits of.
        #[serde(default)]
        released_semaphores: Vec<LockName>,
        /// The elections it led.
        #[serde(default)]
        resigned: Vec<LockName>,
    },
    /// The lease holds the lock under this grant (new, or the one it
    /// already had).
    Granted(Grant),
    /// The lease holds every lock of an acquire-all, under these grants
    /// (in name order; new ones, or ones it already had). A struct
    /// variant: serde cannot tag a newtype variant that holds a sequence,
    /// and this answer is remembered for idempotency keys, so snapshots and
    /// forwarded answers carry it.
    GrantedAll {
        /// The grants, in name order.
        grants: Vec<Grant>,
    },
    /// The lease waits in the queue (for an acquire-all, in every queue of
    /// a lock it does not hold yet).
    Queued {
        /// Its place in the queue; 0 is next. For an acquire-all, its
        /// furthest place.
        position: usize,
        /// The last token handed out when it was queued: its grant will take
        /// a higher one, so any grant at or below this is an older one.
        after_token: FencingToken,
    },
    /// The lock was released (and perhaps handed to the next waiter).
    Released,
    /// The lease no longer waits for the lock and does not hold it.
    WaitCancelled,
    /// Locks whose lock-delay ran out grant again.
    DelaysLifted {
        /// How many.
        count: usize,
    },
    /// The cluster's lock order is now the one proposed.
    LockOrderSet,
    /// A fenced write or delete took effect.
    Written {
        /// The key of the fenced store that was written or deleted.
        key: LockName,
        /// The token it was written under.
        fencing_token: FencingToken,
        /// Whether it was a delete.
        deleted: bool,
    },
    /// Auth is on (it may have been before).
    AuthEnabled,
    /// The token exists now.
    TokenAdded {
        /// Its name.
        name: TokenName,
    },
    /// The token no longer exists.
    TokenRevoked {
        /// Its name.
        name: TokenName,
    },
    /// The queue is configured so now.
    QueueConfigured,
    /// The item is in the queue (or was: a repeated dedup id).
    Enqueued {
        /// Its id.
        item_id: ItemId,
        /// Its place in the queue.
        seq: u64,
        /// Whether a dedup id matched an earlier item, and nothing was
        /// added.
        duplicate: bool,
    },
    /// The items claimed, oldest first; none when none was ready and the
    /// claim would not wait.
    Claimed {
        /// The items, each under its new token.
        items: Vec<ClaimedItem>,
    },
    /// The claim waits for items.
    ClaimWaiting {
        /// Its place among the waiting claims; 0 is next.
        position: usize,
    },
    /// The item left the queue.
    Acked,
    /// The item's claim runs until `visible_at_ms` now.
    ClaimExtended {
        /// The new deadline, Unix ms.
        visible_at_ms: u64,
    },
    /// The item is back in the queue, ready at `visible_at_ms` (or it went
    /// to the dead letters, after its last attempt).
    Nacked {
        /// When it is ready again, Unix ms.
        visible_at_ms: u64,
        /// Whether it left for the dead-letter queue (or was dropped).
        dead_lettered: bool,
    },
    /// Overdue claims returned, and ready items handed to waiting claims.
    QueueTicked {
        /// How many claims were overdue.
        returned: usize,
    },
    /// The waiting claim no longer waits.
    ClaimWaitCancelled {
        /// Whether it was still waiting; if not, it got items before the
        /// cancel (an [`Event::ItemsClaimed`] told of them).
        withdrawn: bool,
    },
    /// The table is the backup's now.
    Restored {
        /// The last token the restored table handed out (bumped): the next
        /// grant takes a higher one.
        last_token: FencingToken,
    },
}

/// A command refused; the state is unchanged.
///
/// Its `Display` is the sentence the client reads as the error's
/// `message`: the one wording of each refusal, in a node's log and on the
/// wire alike. The API's code for each refusal is `corral-api`'s
/// `ErrorKind`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// No lease with that id (never granted, revoked or expired).
    #[error("lease not found (never granted, revoked or expired)")]
    LeaseNotFound,
    /// A lease with that id exists already.
    #[error("lease id already in use")]
    LeaseExists,
    /// The ttl is outside what the state machine accepts.
    #[error("ttl_ms must be from 1 to {max_ms}")]
    InvalidTtl {
        /// The largest ttl accepted.
        max_ms: u64,
    },
    /// The lock is held by another lease, or others wait ahead, and the
    /// request would not wait.
    #[error("{}", match holder_token {
        Some(token) => format!("lock is held by another lease under token {token}"),
        None => "lock is free but a request waiting for several locks at once is ahead in its queue".into(),
    })]
    LockBusy {
        /// The newest token the lock is held under; none when the lock is
        /// free but an acquire-all waits for it ahead of this request.
        holder_token: Option<FencingToken>,
    },
    /// The lease does not hold the lock.
    #[error("the lease does not hold the lock")]
    NotHolder,
    /// Waiting would close a cycle of leases that wait for each other.
    #[error("waiting would close a cycle of leases waiting for each other; nothing was queued")]
    Deadlock {
        /// The cycle, starting with the lease that asked.
        cycle: Vec<WaitEdge>,
    },
    /// The lease holds the lock in the other mode; upgrades and downgrades
    /// are not done in place (release first).
    #[error("the lease holds or waits for the lock in {held} mode; release it or let the wait end first")]
    ModeConflict {
        /// The mode it holds.
        held: Mode,
    },
    /// The lease holds or waits for other permits of the semaphore; change
    /// them by releasing first.
    #[error("the lease holds or waits for {held} permits of the semaphore; release them or let the wait end first")]
    PermitsConflict {
        /// The permits it holds or waits for.
        held: u32,
    },
    /// The semaphore exists with another limit.
    #[error("the semaphore exists with limit {limit}; every acquire must name the same limit while it is in use")]
    LimitMismatch {
        /// The semaphore's limit.
        limit: u32,
    },
    /// The lease already waits for this lock through another request that
    /// cannot be merged with this one (an acquire-all and a single acquire,
    /// or two different acquire-alls).
    #[error("the lease already waits for {name} through another request (an acquire-all and a single acquire, or two different acquire-alls)")]
    AlreadyWaiting {
        /// The lock the lease already waits for through the other request.
        name: LockName,
    },
    /// The lock is under lock-delay: a lease that held it expired.
    #[error(
        "lock is held back by lock-delay until {until_ms} (Unix ms): a lease that held it expired"
    )]
    LockDelayed {
        /// State-machine time at which the delay ends.
        until_ms: u64,
    },
    /// Taking the lock would break the lock order the lease or the cluster
    /// keeps: it is ranked before a lock the lease holds or waits for.
    #[error("lock order: {name} is ordered before {held}, which the lease holds or waits for")]
    OrderViolation {
        /// The lock asked for.
        name: LockName,
        /// The lock held (or waited for) that it is ordered before.
        held: LockName,
    },
    /// A fenced write whose token is not the one the lock is held under
    /// now, or is below one that wrote the key before.
    #[error("stale fencing token: the lock is held under {}, the key was last written under {}; \
        a newer owner exists or the lock is not held", show_token(*lock_token), show_token(*key_token))]
    StaleToken {
        /// The newest token the lock is held under; none when it is free.
        lock_token: Option<FencingToken>,
        /// The highest token that wrote the key; none when it never was.
        key_token: Option<FencingToken>,
    },
    /// The lease does not lead the election.
    #[error("the lease does not lead the election (and is not a waiting candidate)")]
    NotLeader,
    /// A delete of a key that was never written.
    #[error("no such key")]
    KeyNotFound,
    /// The fenced store holds as many keys (or bytes) as it may.
    #[error("the fenced store is full: {limit}")]
    TooManyKeys {
        /// Which limit, in words.
        limit: String,
    },
    /// The idempotency key answered another request.
    #[error(
        "the Idempotency-Key was used before for another request; use a new key for a new request"
    )]
    IdempotencyMismatch,
    /// The command's arguments are out of range.
    #[error("{reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A limit of the state machine was reached.
    #[error("{0}")]
    LimitReached(Limit),
    /// The request's token does not exist (any more): it was revoked
    /// between the node's check and the apply.
    #[error("the token was revoked")]
    Unauthenticated,
    /// The request's token does not allow it.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// What the token lacks.
        reason: String,
    },
    /// A token with that name exists already.
    #[error("a token with that name exists; revoke it first")]
    TokenExists,
    /// No token with that name.
    #[error("no token with that name")]
    TokenNotFound,
    /// The lease has a claim with this id waiting on the queue already:
    /// two requests drew one id (a claim logged before claims had ids, or
    /// an idempotency key reused after its window).
    #[error("the lease already has a claim with this id waiting on queue {queue}; send the claim with another idempotency key")]
    ClaimAlreadyWaiting {
        /// The queue.
        queue: LockName,
    },
    /// No such item in the queue: never enqueued, acked, or dead-lettered.
    #[error("no such item in the queue (acked, dead-lettered or never enqueued)")]
    ItemNotFound,
    /// The token does not name the item's live claim: the claim ran out,
    /// its lease ended, or it was claimed again since.
    #[error("stale fencing token: the item's claim is {}; this claim was lost", show_token(*current_token))]
    StaleClaim {
        /// The token of the item's live claim; none when it is not claimed.
        current_token: Option<FencingToken>,
    },
}

/// One edge of the wait-for graph: `lease_id` waits for the lock
/// `waits_for`, which `held_by` holds (or waits for ahead of it).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEdge {
    /// The waiting lease.
    pub lease_id: LeaseId,
    /// The lock it waits for.
    pub waits_for: LockName,
    /// The lease it waits on.
    pub held_by: LeaseId,
}

/// A token in a sentence: "token 7", or "nothing" for none.
fn show_token(token: Option<FencingToken>) -> String {
    token.map_or("nothing".into(), |t| format!("token {t}"))
}

/// The bounded collections of the lock table.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// [`crate::LEASES_MAX`].
    #[error("too many leases: at most {} may exist", crate::LEASES_MAX)]
    Leases,
    /// [`crate::WAITERS_PER_LOCK_MAX`].
    #[error(
        "too many waiters: at most {} may wait for one lock",
        crate::WAITERS_PER_LOCK_MAX
    )]
    WaitersPerLock,
    /// [`crate::LOCKS_PER_LEASE_MAX`].
    #[error(
        "too many locks: one lease may hold or wait for at most {}",
        crate::LOCKS_PER_LEASE_MAX
    )]
    LocksPerLease,
    /// [`crate::TOKENS_MAX`].
    #[error("too many tokens: at most {} may exist", crate::TOKENS_MAX)]
    Tokens,
    /// A token's [`crate::Quotas::leases_max`].
    #[error("token quota: this token may have at most {max} live leases")]
    TokenLeases {
        /// The token's quota.
        max: u32,
    },
    /// A token's [`crate::Quotas::holds_max`].
    #[error("token quota: this token's leases may hold and wait for at most {max} locks, permits and leaderships")]
    TokenHolds {
        /// The token's quota.
        max: u32,
    },
    /// The most items of one queue (`--queue-items-max`).
    #[error("too many items: the queue holds {max}, the most it may")]
    QueueItems {
        /// The limit.
        max: u64,
    },
    /// The most queues (`--queues-max`).
    #[error("too many queues: at most {max} may exist")]
    Queues {
        /// The limit.
        max: u64,
    },
    /// [`crate::CLAIMERS_PER_QUEUE_MAX`].
    #[error(
        "too many waiting claims: at most {} may wait on one queue",
        crate::CLAIMERS_PER_QUEUE_MAX
    )]
    ClaimersPerQueue,
    /// A token's [`crate::Quotas::kv_keys_max`].
    #[error("token quota: this token may create at most {max} keys of the fenced store")]
    TokenKvKeys {
        /// The token's quota.
        max: u32,
    },
}

/// Something that happened to a lease other than the proposer's request, for
/// the nodes whose clients wait on it. Events are derived from the log on
/// every replica, so any node can wake its own waiting requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A waiting lease was granted a lock or permits of a semaphore.
    Granted {
        /// Lock or semaphore.
        kind: Kind,
        /// The grant the waiter got, with its new token.
        grant: Grant,
    },
    /// A waiting acquire-all was granted: every lock it named, in name
    /// order.
    GrantedAll(Vec<Grant>),
    /// A waiting acquire-all was withdrawn because its lease released a
    /// lock the request counted as held.
    Withdrawn {
        /// The lease whose waiting acquire-all was withdrawn.
        lease_id: LeaseId,
        /// Every name of the acquire-all.
        names: Vec<LockName>,
    },
    /// A waiting claim got items.
    ItemsClaimed {
        /// The queue.
        queue: LockName,
        /// The claim's lease.
        lease_id: LeaseId,
        /// The claim's id.
        claim_id: ClaimId,
        /// What it got.
        items: Vec<ClaimedItem>,
    },
    /// A claimed item is back in its queue (or left it, after its last
    /// attempt: see [`Event::ItemLeft`]).
    ItemReturned {
        /// The queue.
        queue: LockName,
        /// The item.
        item_id: ItemId,
        /// The token of the claim that ended.
        fencing_token: FencingToken,
        /// Why the claim ended.
        reason: ReturnReason,
    },
    /// An item left its queue after its last attempt.
    ItemLeft {
        /// The queue it left.
        queue: LockName,
        /// The item.
        item_id: ItemId,
        /// Moved to the dead-letter queue (`true`) or dropped.
        dead_lettered: bool,
    },
    /// A waiting claim ended without items: its lease ended.
    ClaimWaitEnded {
        /// The queue.
        queue: LockName,
        /// The lease that ended.
        lease_id: LeaseId,
        /// The claim's id.
        claim_id: ClaimId,
    },
    /// A waiting lease left the queue without a grant because it ended.
    WaitEnded {
        /// Lock or semaphore.
        kind: Kind,
        /// The lease that ended.
        lease_id: LeaseId,
        /// The lock or semaphore it waited for.
        name: LockName,
    },
}

/// Why a claim ended without an ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnReason {
    /// Its visibility deadline passed (the leader's tick).
    Deadline,
    /// Its lease ended.
    LeaseEnded,
    /// Its worker nacked it.
    Nacked,
}

/// What one applied proposal did to the work queues, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueTally {
    /// Items added (a repeated dedup id adds none).
    pub enqueued: u64,
    /// Items claimed, by the request or by waiting claims.
    pub claimed: u64,
    /// Items acked.
    pub acked: u64,
    /// Items nacked.
    pub nacked: u64,
    /// Claims that ran out.
    pub timed_out: u64,
    /// Claims whose lease ended.
    pub lease_lost: u64,
    /// Items moved to a dead-letter queue.
    pub dead_lettered: u64,
    /// Items dropped after their last attempt.
    pub dropped: u64,
    /// Acks, extends and nacks refused for a lost claim.
    pub stale_refused: u64,
}

impl Applied {
    /// What this proposal did to the work queues.
    pub fn queue_tally(&self) -> QueueTally {
        let mut tally = QueueTally::default();
        match &self.response {
            Ok(Outcome::Enqueued {
                duplicate: false, ..
            }) => tally.enqueued += 1,
            Ok(Outcome::Claimed { items }) => tally.claimed += items.len() as u64,
            Ok(Outcome::Acked) => tally.acked += 1,
            Err(Refusal::StaleClaim { .. }) => tally.stale_refused += 1,
            _ => {}
        }
        for event in &self.events {
            match event {
                Event::ItemsClaimed { items, .. } => tally.claimed += items.len() as u64,
                Event::ItemReturned { reason, .. } => match reason {
                    ReturnReason::Deadline => tally.timed_out += 1,
                    ReturnReason::LeaseEnded => tally.lease_lost += 1,
                    ReturnReason::Nacked => tally.nacked += 1,
                },
                Event::ItemLeft { dead_lettered, .. } => match dead_lettered {
                    true => tally.dead_lettered += 1,
                    false => tally.dropped += 1,
                },
                _ => {}
            }
        }
        tally
    }
}

/// The result of applying one proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The answer to the proposer.
    pub response: Response,
    /// What it did to other waiting requests.
    pub events: Vec<Event>,
    /// The holds it ended, for hold-time metrics.
    pub ended: Vec<EndedHold>,
    /// The lease it expired, if it was an expiry.
    pub expired_lease: Option<LeaseId>,
    /// The lease it granted or ended, or that it replaced every lease.
    pub lease_change: Option<LeaseChange>,
}

impl Applied {
    /// A result that changed nothing else.
    pub fn answer(response: Response) -> Applied {
        Applied {
            response,
            events: Vec::new(),
            ended: Vec::new(),
            expired_lease: None,
            lease_change: None,
        }
    }
}

/// What a command did to the set of live leases: what the leader's lease
/// clock, which keeps a deadline for each, learns from as they apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    /// A lease was granted.
    Granted {
        /// The new lease.
        lease_id: LeaseId,
        /// Its time to live.
        ttl_ms: u64,
    },
    /// A lease was revoked or expired.
    Ended {
        /// The lease that is gone.
        lease_id: LeaseId,
        /// Whether it expired (rather than was revoked).
        expired: bool,
    },
    /// A backup was restored: the table, and every lease in it, replaced.
    Replaced,
}

/// A hold that a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedHold {
    /// Lock, semaphore or election.
    pub kind: Kind,
    /// The grant that ended.
    pub grant: Grant,
    /// How long it was held, in state-machine time.
    pub held_ms: u64,
    /// Why it ended.
    pub reason: HoldEnd,
}

/// Why a hold ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldEnd {
    /// Its holder released it (or resigned).
    Released,
    /// Its holder's lease expired.
    Expired,
    /// Its holder's lease was revoked.
    Revoked,
}
