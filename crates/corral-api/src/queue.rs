//! The work queue API: `/v1/queues/{queue}` and its items, claims, acks,
//! extends and nacks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FencingToken, LeaseId, LockName};
pub use corral_state::{ItemId, ITEM_PAYLOAD_BYTES_MAX, VISIBILITY_MS_MAX};

/// The largest body of an enqueue: a payload at its most, with room for
/// the other fields and JSON's escapes.
pub const ENQUEUE_BODY_BYTES_MAX: usize = 6 * ITEM_PAYLOAD_BYTES_MAX + 4 * 1024;
/// The most items `GET /v1/queues/{queue}/items` lists.
pub const LIST_ITEMS_MAX: usize = 1_000;

/// `PUT /v1/queues/{queue}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureQueueRequest {
    /// After this many claims, an item that comes back leaves for the
    /// dead-letter queue (dropped without one); 0 or absent: no limit.
    #[serde(default)]
    pub max_attempts: u32,
    /// Where items go after `max_attempts`.
    #[serde(default)]
    pub dead_letter: Option<LockName>,
}

/// `POST /v1/queues/{queue}/items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// Any JSON, given to the worker as it was sent.
    pub payload: Value,
    /// How long until it is ready, in milliseconds; 0 by default.
    #[serde(default)]
    pub delay_ms: u64,
    /// A repeated dedup id within the idempotency window adds nothing and
    /// answers the first item.
    #[serde(default)]
    pub dedup_id: Option<String>,
}

/// The answer of an enqueue.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueResponse {
    /// The item.
    pub item_id: ItemId,
    /// Its place in the queue.
    pub seq: u64,
    /// Whether its dedup id matched an earlier item (nothing was added).
    #[serde(default)]
    pub duplicate: bool,
}

/// `POST /v1/queues/{queue}/claim`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The lease the claims live under: they end with it.
    pub lease_id: LeaseId,
    /// How long each claim lasts unless extended, in milliseconds.
    pub visibility_ms: u64,
    /// The most items to take; 1 by default.
    #[serde(default = "one")]
    pub max: u32,
    /// How long to wait for an item when none is ready; 0 by default.
    #[serde(default)]
    pub wait_ms: u64,
}

fn one() -> u32 {
    1
}

/// A claimed item, as the worker gets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedItemView {
    /// The item.
    pub item_id: ItemId,
    /// Its place in the queue.
    pub seq: u64,
    /// Its payload, as enqueued.
    pub payload: Value,
    /// The claim's token: ack, extend and nack name it, and so may any
    /// store the worker writes to.
    pub fencing_token: FencingToken,
    /// Which claim of the item this is: 1 the first.
    pub attempt: u32,
    /// When the claim runs out unless extended, Unix ms.
    pub visible_at_ms: u64,
}

/// The answer of a claim: the items, oldest first; empty when none came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// The items claimed.
    pub items: Vec<ClaimedItemView>,
}

/// `POST /v1/queues/{queue}/ack`: the item and its claim's token.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The item.
    pub item_id: ItemId,
    /// The token of its live claim.
    pub fencing_token: FencingToken,
}

/// `POST /v1/queues/{queue}/extend`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The item.
    pub item_id: ItemId,
    /// The token of its live claim.
    pub fencing_token: FencingToken,
    /// The claim's new visibility, from now, in milliseconds.
    pub visibility_ms: u64,
}

/// `POST /v1/queues/{queue}/nack`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    /// The item.
    pub item_id: ItemId,
    /// The token of its live claim.
    pub fencing_token: FencingToken,
    /// How long until it is ready again, in milliseconds; 0 by default.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The answer of an ack, extend or nack.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResponse {
    /// The item.
    pub item_id: ItemId,
    /// When it is next visible: its claim's new deadline (extend), or
    /// when it is ready again (nack); absent after an ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at_ms: Option<u64>,
    /// After a nack: whether it left for the dead letters (or was dropped)
    /// after its last attempt.
    #[serde(default)]
    pub dead_lettered: bool,
}

/// `PUT /v1/queues/{queue}`'s answer, and part of the stats.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    /// The queue.
    pub queue: LockName,
    /// Its `max_attempts` (0: no limit).
    pub max_attempts: u32,
    /// Its dead-letter queue.
    #[serde(default)]
    pub dead_letter: Option<LockName>,
    /// Items ready to be claimed.
    pub ready: u64,
    /// Items claimed now.
    pub claimed: u64,
    /// Items not ready yet (a delay or a nack's).
    pub delayed: u64,
    /// Claims waiting for items.
    pub waiting_claims: u64,
    /// Items moved to the dead-letter queue, ever.
    pub dead_lettered_total: u64,
    /// Items dropped after `max_attempts` without a dead-letter queue.
    pub dropped_total: u64,
    /// How long the oldest ready item has been ready, in milliseconds of
    /// state-machine time; absent when none is.
    #[serde(default)]
    pub oldest_ready_age_ms: Option<u64>,
}

/// `GET /v1/queues?prefix=`: the queues in use whose names start with the
/// prefix, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueList {
    /// The queues, at most [`LIST_QUEUES_MAX`].
    pub queues: Vec<QueueView>,
    /// Whether more matched.
    pub truncated: bool,
}

/// The most queues `GET /v1/queues` lists.
pub const LIST_QUEUES_MAX: usize = 1_000;

/// An item's state.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Ready to be claimed.
    Ready,
    /// Claimed now.
    Claimed,
    /// Not ready yet.
    Delayed,
}

/// An item as `GET /v1/queues/{queue}/items` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// The item.
    pub item_id: ItemId,
    /// Its place in the queue.
    pub seq: u64,
    /// Ready, claimed or delayed.
    pub state: ItemState,
    /// How often it was claimed.
    pub attempt: u32,
    /// When it was enqueued, Unix ms.
    pub enqueued_ms: u64,
    /// When it is (or was) ready, or, claimed, when its claim runs out.
    pub visible_at_ms: u64,
    /// The token of its live claim, when claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
    /// Its payload.
    pub payload: Value,
    /// In a dead-letter queue: the queue it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_from: Option<LockName>,
}

/// `GET /v1/queues/{queue}/items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemList {
    /// The items, oldest first.
    pub items: Vec<ItemView>,
    /// Whether more matched than `limit`.
    pub truncated: bool,
}
