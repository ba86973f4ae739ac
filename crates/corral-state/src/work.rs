//! Work queues: items claimed under fencing tokens, with visibility
//! deadlines and dead letters.
//!
//! A claim is a grant: each claimed item takes the next token of the
//! cluster's one counter. An ack, extend or nack must name the item's
//! current claim by its token, so a worker whose claim was lost (its
//! deadline passed, its lease ended, or the item was claimed again) is
//! refused by the queue itself, and by any store that checks tokens.
//!
//! An item comes back (ready to be claimed again) at the earliest of its
//! claim's deadline, its claimer's lease ending, and a nack. The deadline
//! is never acted on at apply time by itself: the leader proposes
//! [`crate::Command::TickQueue`] once it passed, and apply checks it did.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::lock::LockName;
use crate::token::FencingToken;

/// The most bytes of an item's payload (its JSON text).
pub const ITEM_PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// The longest a claim's visibility (or a nack's or enqueue's delay) may
/// be: 12 hours.
pub const VISIBILITY_MS_MAX: u64 = 12 * 60 * 60 * 1000;
/// The most items one claim may take.
pub const CLAIM_ITEMS_MAX: u32 = 100;
/// The most claims that may wait on one queue.
pub const CLAIMERS_PER_QUEUE_MAX: usize = 10_000;
/// The longest a dedup id may be, in bytes.
pub const DEDUP_ID_BYTES_MAX: usize = 128;
/// The most items one queue holds by default (`--queue-items-max`).
pub const QUEUE_ITEMS_MAX_DEFAULT: usize = 100_000;
/// The most queues by default (`--queues-max`).
pub const QUEUES_MAX_DEFAULT: usize = 1_000;

/// An item's id: unique in the cluster, and rising with every enqueue, so
/// a queue's items in id order are its items in enqueue order.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub u64);

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A claim request's id, drawn by the node that takes the request (from
/// its idempotency key, so a retry keeps it). A lease may wait on one
/// queue through several requests at once: the id tells which of them
/// items were handed to, and which one a withdrawal names. 0 is the id of
/// every claim logged before claims had ids.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClaimId(pub u64);

impl ClaimId {
    /// Whether it is the id of a claim logged before claims had ids.
    pub fn is_unset(&self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for ClaimId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a queue treats items that keep coming back.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// After this many claims, an item that comes back goes to the dead
    /// letter queue (or is dropped without one); 0: no limit, the default.
    #[serde(default)]
    pub max_attempts: u32,
    /// Where items go after `max_attempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<LockName>,
}

/// The limits an enqueue is checked against, from the proposing node's
/// configuration (carried in the command, so every replica decides alike).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// The most items one queue may hold.
    pub items_max: usize,
    /// The most queues there may be.
    pub queues_max: usize,
    /// How long a dedup id is remembered, in milliseconds.
    pub dedup_window_ms: u64,
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            items_max: QUEUE_ITEMS_MAX_DEFAULT,
            queues_max: QUEUES_MAX_DEFAULT,
            dedup_window_ms: crate::IDEMPOTENCY_WINDOW_MS_DEFAULT,
        }
    }
}

/// A live claim of an item.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The lease it was claimed under.
    pub lease_id: LeaseId,
    /// Its token: what an ack, extend or nack must name.
    pub fencing_token: FencingToken,
    /// When it runs out, in state-machine time (Unix ms).
    pub deadline_ms: u64,
    /// The claim request it was handed to.
    #[serde(default, skip_serializing_if = "ClaimId::is_unset")]
    pub claim_id: ClaimId,
}

/// Where a dead-lettered item came from.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The queue it left.
    pub queue: LockName,
    /// Its id there.
    pub item_id: ItemId,
    /// How often it was claimed there.
    pub attempts: u32,
    /// The token of its last claim there.
    pub last_token: Option<FencingToken>,
}

/// An item of a queue.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub id: ItemId,
    /// Its place in its queue: rises with every enqueue.
    pub seq: u64,
    /// What the worker gets: JSON text.
    pub payload: String,
    /// When it was enqueued, state-machine time.
    pub enqueued_ms: u64,
    /// When it is (or was) ready to be claimed.
    pub visible_at_ms: u64,
    /// How often it was claimed.
    pub attempt: u32,
    /// Its live claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// The token of its latest claim, live or lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_token: Option<FencingToken>,
    /// Where it came from, in a dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
}

impl Item {
    /// Whether it can be claimed at `now_ms`.
    pub fn is_ready(&self, now_ms: u64) -> bool {
        self.claim.is_none() && self.visible_at_ms <= now_ms
    }

    /// What its live claim's worker gets, if it is claimed.
    pub fn claimed(&self) -> Option<ClaimedItem> {
        let claim = self.claim.as_ref()?;
        Some(ClaimedItem {
            item_id: self.id,
            seq: self.seq,
            payload: self.payload.clone(),
            fencing_token: claim.fencing_token,
            attempt: self.attempt,
            visible_at_ms: claim.deadline_ms,
        })
    }
}

/// What a claim hands the worker.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedItem {
    /// The item.
    pub item_id: ItemId,
    /// Its place in its queue.
    pub seq: u64,
    /// Its payload, JSON text.
    pub payload: String,
    /// The claim's token.
    pub fencing_token: FencingToken,
    /// Which claim of the item this is: 1 the first.
    pub attempt: u32,
    /// When the claim runs out, Unix ms, unless extended.
    pub visible_at_ms: u64,
}

/// A claim waiting for items.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingClaim {
    /// The lease it claims under.
    pub lease_id: LeaseId,
    /// Its request's id.
    #[serde(default, skip_serializing_if = "ClaimId::is_unset")]
    pub claim_id: ClaimId,
    /// The most items it takes.
    pub max: u32,
    /// The visibility of its claims.
    pub visibility_ms: u64,
    /// When its request stops waiting, state-machine time: past it (and a
    /// grace), the leader withdraws a claim whose request is gone.
    #[serde(default)]
    pub until_ms: u64,
}

/// A dedup id's first item, until `until_ms`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dedup {
    /// The item enqueued under it.
    pub item_id: ItemId,
    /// Its place.
    pub seq: u64,
    /// Until when the id is remembered.
    pub until_ms: u64,
}

/// One queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkQueue {
    /// How it treats items that keep coming back.
    #[serde(default)]
    pub config: QueueConfig,
    /// Whether it was configured (it then lives on empty).
    #[serde(default)]
    pub configured: bool,
    /// The seq of the next item.
    pub next_seq: u64,
    /// Its items, in enqueue order. Written as a list: a map with integer
    /// keys does not survive inside an internally tagged enum (a restore
    /// command carries a whole table).
    #[serde(with = "items_as_list")]
    pub items: BTreeMap<ItemId, Item>,
    /// Recent dedup ids.
    #[serde(default)]
    pub dedup: BTreeMap<String, Dedup>,
    /// Claims waiting for items, first come first served.
    #[serde(default)]
    pub claimers: VecDeque<WaitingClaim>,
    /// Items moved to the dead-letter queue, ever.
    #[serde(default)]
    pub dead_lettered_total: u64,
    /// Items dropped after `max_attempts` without a dead-letter queue.
    #[serde(default)]
    pub dropped_total: u64,
}

impl WorkQueue {
    /// Whether it holds nothing worth keeping.
    pub(crate) fn is_idle(&self) -> bool {
        !self.configured
            && self.items.is_empty()
            && self.claimers.is_empty()
            && self.dedup.is_empty()
            && self.dead_lettered_total == 0
            && self.dropped_total == 0
    }

    /// The ids of the items ready at `now_ms`, oldest first, at most `max`.
    pub(crate) fn ready(&self, now_ms: u64, max: usize) -> Vec<ItemId> {
        self.items
            .values()
            .filter(|item| item.is_ready(now_ms))
            .take(max)
            .map(|item| item.id)
            .collect()
    }
}

/// A queue's items as a JSON list (each item holds its id), read back
/// into a map by id.
mod items_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Item, ItemId};

    pub(super) fn serialize<S: Serializer>(
        items: &BTreeMap<ItemId, Item>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(items.values())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<ItemId, Item>, D::Error> {
        let items = Vec::<Item>::deserialize(deserializer)?;
        let count = items.len();
        let map: BTreeMap<ItemId, Item> = items.into_iter().map(|i| (i.id, i)).collect();
        if map.len() != count {
            return Err(serde::de::Error::custom("two items of a queue have one id"));
        }
        Ok(map)
    }
}

/// Every queue, and the claims of each lease (derived).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Queues {
    /// The queues by name.
    pub(crate) queues: BTreeMap<LockName, WorkQueue>,
    /// The id of the next item.
    pub(crate) next_item_id: u64,
    /// The items each lease claims; derived from `queues`.
    #[serde(skip)]
    pub(crate) claims_by_lease: BTreeMap<LeaseId, BTreeSet<(LockName, ItemId)>>,
}

impl PartialEq for Queues {
    fn eq(&self, other: &Queues) -> bool {
        self.queues == other.queues && self.next_item_id == other.next_item_id
    }
}

impl Eq for Queues {}

impl Queues {
    /// Queue `name`, if it exists.
    pub fn get(&self, name: &LockName) -> Option<&WorkQueue> {
        self.queues.get(name)
    }

    /// Every queue, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&LockName, &WorkQueue)> {
        self.queues.iter()
    }

    /// How many queues exist.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether no queue exists.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// How many items are in every queue together.
    pub fn items(&self) -> usize {
        self.queues.values().map(|q| q.items.len()).sum()
    }

    /// The claims of `lease_id`.
    pub fn claims_of(&self, lease_id: LeaseId) -> Vec<(LockName, ItemId)> {
        let claims = self.claims_by_lease.get(&lease_id);
        claims.into_iter().flatten().cloned().collect()
    }

    /// Rebuilds the claims of each lease from the queues.
    pub(crate) fn rebuild_derived(&mut self) {
        self.claims_by_lease.clear();
        for (name, queue) in &self.queues {
            for item in queue.items.values() {
                if let Some(claim) = &item.claim {
                    let claims = self.claims_by_lease.entry(claim.lease_id).or_default();
                    claims.insert((name.clone(), item.id));
                }
            }
        }
    }

    /// Records (or forgets) that `lease_id` claims item `id` of `name`.
    pub(crate) fn index_claim(&mut self, lease_id: LeaseId, name: &LockName, id: ItemId, on: bool) {
        if on {
            let claims = self.claims_by_lease.entry(lease_id).or_default();
            claims.insert((name.clone(), id));
            return;
        }
        if let Some(claims) = self.claims_by_lease.get_mut(&lease_id) {
            claims.remove(&(name.clone(), id));
            if claims.is_empty() {
                self.claims_by_lease.remove(&lease_id);
            }
        }
    }
}
