//! `/v1/queues/{queue}`: work queues. Enqueue, claim (waiting server-side
//! when asked), ack, extend and nack are commands; the stats and the item
//! list are linearizable reads. The semantics are the state machine's
//! (`corral_state::work`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use corral_api::{
    AckRequest, ClaimRequest, ClaimResponse, ClaimedItemView, ConfigureQueueRequest,
    EnqueueRequest, EnqueueResponse, ExtendRequest, ItemList, ItemResponse, ItemState, ItemView,
    NackRequest, QueueList, QueueView, ENQUEUE_BODY_BYTES_MAX, LIST_ITEMS_MAX, LIST_QUEUES_MAX,
};
use corral_state::{
    Access, ClaimId, ClaimedItem, Command, Item, LockName, Outcome, QueueConfig, QueueLimits,
    Scope, WorkQueue,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::answer::unexpected;
use super::waiting::wait_ms;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey};
use crate::json::{JsonBody, PathParam, QueryOf};
use crate::node::{Node, Submission};
use crate::wait_registry::{claims_of, WaitEnd, WaitTicket};

/// How long a claim served before its withdrawal waits for the event of
/// its items before it reads them from the state.
const CLAIM_EVENT_WAIT: Duration = Duration::from_secs(1);

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/queues", get(list_queues))
        .route("/v1/queues/{queue}", get(stats).put(configure))
        .route("/v1/queues/{queue}/items", get(list_items).post(enqueue))
        .route("/v1/queues/{queue}/claim", post(claim))
        .route("/v1/queues/{queue}/ack", post(ack))
        .route("/v1/queues/{queue}/extend", post(extend))
        .route("/v1/queues/{queue}/nack", post(nack))
}

/// Proposes `command`, fingerprinted under `scope` if keyed, and returns
/// its outcome.
async fn propose(
    node: &Node,
    key: IdempotencyKey,
    scope: &'static str,
    command: Command,
) -> Result<Outcome, ApiError> {
    let origin = key.for_request(node, scope, &command);
    node.propose(Submission::from_origin(command, origin)).await
}

async fn configure(
    State(node): State<Arc<Node>>,
    caller: Caller,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ConfigureQueueRequest>,
) -> Result<Json<QueueView>, ApiError> {
    let command = Command::ConfigureQueue {
        queue: queue.clone(),
        config: QueueConfig {
            max_attempts: request.max_attempts,
            dead_letter: request.dead_letter,
        },
        queues_max: node.queues_max,
    };
    match propose(&node, key, scope::CONFIGURE_QUEUE, command).await? {
        Outcome::QueueConfigured => {}
        other => return Err(unexpected(other)),
    }
    // The queue as it is now, with its items: read after a barrier, so
    // that the configuration just applied is in it.
    let state = node.read_linearized(&caller).await?;
    let empty = WorkQueue::default();
    let q = state.table.queues().get(&queue).unwrap_or(&empty);
    Ok(Json(view_of(&queue, q, state.table.now_ms())))
}

async fn enqueue(
    State(node): State<Arc<Node>>,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<EnqueueRequest, ENQUEUE_BODY_BYTES_MAX>,
) -> Result<(StatusCode, Json<EnqueueResponse>), ApiError> {
    let payload = serde_json::to_string(&request.payload).map_err(ApiError::internal)?;
    let command = Command::Enqueue {
        queue,
        payload,
        delay_ms: request.delay_ms,
        dedup_id: request.dedup_id,
        limits: QueueLimits {
            items_max: node.queue_items_max,
            queues_max: node.queues_max,
            dedup_window_ms: node.idempotency_window_ms,
        },
    };
    match propose(&node, key, scope::ENQUEUE, command).await? {
        Outcome::Enqueued {
            item_id,
            seq,
            duplicate,
        } => {
            let status = match duplicate {
                true => StatusCode::OK,
                false => StatusCode::CREATED,
            };
            let answer = EnqueueResponse {
                item_id,
                seq,
                duplicate,
            };
            Ok((status, Json(answer)))
        }
        other => Err(unexpected(other)),
    }
}

async fn claim(
    State(node): State<Arc<Node>>,
    caller: Caller,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    let wait_ms = wait_ms(Some(request.wait_ms))?;
    let lease_id = request.lease_id;
    let claim_id = ClaimId(key.request_id(scope::CLAIM));
    let command = Command::Claim {
        queue: queue.clone(),
        lease_id,
        visibility_ms: request.visibility_ms,
        max: request.max,
        wait_ms,
        claim_id,
    };
    let claimer = (lease_id, claim_id);
    // Registered before proposing, so items handed over right after the
    // claim queues cannot be missed.
    let ticket = (wait_ms > 0).then(|| node.waits.register_claim(claimer, &queue));
    let items = match propose(&node, key, scope::CLAIM, command).await? {
        Outcome::Claimed { items } => items,
        Outcome::ClaimWaiting { .. } => {
            let ticket = ticket.ok_or_else(|| ApiError::internal("waiting without a ticket"))?;
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            let waiting = (queue, claimer);
            wait_for_items((&node, &caller), ticket, waiting, deadline).await?
        }
        other => return Err(unexpected(other)),
    };
    Ok(Json(ClaimResponse {
        items: items.into_iter().map(claimed_view).collect(),
    }))
}

/// Waits for the items a waiting claim gets; when time runs out,
/// withdraws it through the log. Should the claim have got items before
/// the withdrawal applied, they are the answer: no claim is left unknown
/// to its worker.
async fn wait_for_items(
    (node, caller): (&Node, &Caller),
    mut ticket: WaitTicket,
    (queue, claimer): (LockName, (corral_state::LeaseId, ClaimId)),
    deadline: Instant,
) -> Result<Vec<ClaimedItem>, ApiError> {
    if let Some(items) = next_items(&mut ticket, deadline).await? {
        return Ok(items);
    }
    let queue_name = queue.clone();
    let (lease_id, claim_id) = claimer;
    let cancel = Command::CancelClaimWait {
        queue,
        lease_id,
        claim_id,
    };
    match node.propose(cancel).await? {
        Outcome::ClaimWaitCancelled { withdrawn: true } => Ok(Vec::new()),
        // Served before the withdrawal: this node applies the items'
        // event before it, if it has not already. A retried claim (its
        // key answered from memory) may have registered after that event:
        // the items this claim holds, read after a barrier, answer it.
        Outcome::ClaimWaitCancelled { withdrawn: false } => {
            let bound = Instant::now() + CLAIM_EVENT_WAIT;
            if let Some(items) = next_items(&mut ticket, bound).await? {
                return Ok(items);
            }
            let state = node.read_linearized(caller).await?;
            Ok(claims_of(&state.table, claimer, &queue_name))
        }
        other => Err(unexpected(other)),
    }
}

/// The items the ticket hears of before `deadline`, if any.
async fn next_items(
    ticket: &mut WaitTicket,
    deadline: Instant,
) -> Result<Option<Vec<ClaimedItem>>, ApiError> {
    loop {
        match tokio::time::timeout_at(deadline, ticket.ended.recv()).await {
            Ok(Some(WaitEnd::Claimed(items))) => return Ok(Some(items)),
            Ok(Some(WaitEnd::LeaseEnded)) => {
                return Err(corral_state::Refusal::LeaseNotFound.into())
            }
            Ok(Some(WaitEnd::Granted(_) | WaitEnd::Withdrawn(_))) => {}
            Ok(None) | Err(_) => return Ok(None),
        }
    }
}

/// A claimed item for the worker: its payload as the JSON it was.
fn claimed_view(item: ClaimedItem) -> ClaimedItemView {
    ClaimedItemView {
        item_id: item.item_id,
        seq: item.seq,
        payload: payload_of(&item.payload),
        fencing_token: item.fencing_token,
        attempt: item.attempt,
        visible_at_ms: item.visible_at_ms,
    }
}

/// A stored payload as JSON; it was stored from JSON, so it parses.
fn payload_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

async fn ack(
    State(node): State<Arc<Node>>,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<AckRequest>,
) -> Result<Json<ItemResponse>, ApiError> {
    let command = Command::Ack {
        queue,
        item_id: request.item_id,
        fencing_token: request.fencing_token,
    };
    propose_on_item(&node, key, scope::ACK, command, request.item_id).await
}

async fn extend(
    State(node): State<Arc<Node>>,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<ExtendRequest>,
) -> Result<Json<ItemResponse>, ApiError> {
    let command = Command::ExtendClaim {
        queue,
        item_id: request.item_id,
        fencing_token: request.fencing_token,
        visibility_ms: request.visibility_ms,
    };
    propose_on_item(&node, key, scope::EXTEND, command, request.item_id).await
}

async fn nack(
    State(node): State<Arc<Node>>,
    PathParam(queue): PathParam<LockName>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<NackRequest>,
) -> Result<Json<ItemResponse>, ApiError> {
    let command = Command::Nack {
        queue,
        item_id: request.item_id,
        fencing_token: request.fencing_token,
        delay_ms: request.delay_ms,
    };
    propose_on_item(&node, key, scope::NACK, command, request.item_id).await
}

/// Proposes an ack, extend or nack of `item_id` and answers with what it
/// did to the item.
async fn propose_on_item(
    node: &Node,
    key: IdempotencyKey,
    scope: &'static str,
    command: Command,
    item_id: corral_state::ItemId,
) -> Result<Json<ItemResponse>, ApiError> {
    let (visible_at_ms, dead_lettered) = match propose(node, key, scope, command).await? {
        Outcome::Acked => (None, false),
        Outcome::ClaimExtended { visible_at_ms } => (Some(visible_at_ms), false),
        // An item that left the queue is never visible in it again.
        Outcome::Nacked {
            visible_at_ms,
            dead_lettered,
        } => ((!dead_lettered).then_some(visible_at_ms), dead_lettered),
        other => return Err(unexpected(other)),
    };
    Ok(Json(ItemResponse {
        item_id,
        visible_at_ms,
        dead_lettered,
    }))
}

async fn stats(
    State(node): State<Arc<Node>>,
    caller: Caller,
    PathParam(queue): PathParam<LockName>,
) -> Result<Json<QueueView>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Queue, queue.as_str(), Access::Read)?;
    let empty = WorkQueue::default();
    let q = state.table.queues().get(&queue).unwrap_or(&empty);
    Ok(Json(view_of(&queue, q, state.table.now_ms())))
}

/// `?prefix=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixQuery {
    #[serde(default)]
    prefix: String,
}

/// The queues whose names start with the prefix; the caller needs read
/// access to the prefix.
async fn list_queues(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<PrefixQuery>,
) -> Result<Json<QueueList>, ApiError> {
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Queue, &query.prefix, Access::Read)?;
    let now_ms = state.table.now_ms();
    let queues = state.table.queues().iter();
    let matching = queues.filter(|(name, _)| name.as_str().starts_with(&query.prefix));
    let mut views: Vec<QueueView> = matching
        .take(LIST_QUEUES_MAX + 1)
        .map(|(name, q)| view_of(name, q, now_ms))
        .collect();
    let truncated = views.len() > LIST_QUEUES_MAX;
    views.truncate(LIST_QUEUES_MAX);
    Ok(Json(QueueList {
        queues: views,
        truncated,
    }))
}

/// The counts of `q` at state-machine time `now_ms`.
fn view_of(queue: &LockName, q: &WorkQueue, now_ms: u64) -> QueueView {
    let count = |state: ItemState| {
        let n = q
            .items
            .values()
            .filter(|i| state_of(i, now_ms) == state)
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    };
    let oldest_ready = q.items.values().find(|i| i.is_ready(now_ms));
    QueueView {
        queue: queue.clone(),
        max_attempts: q.config.max_attempts,
        dead_letter: q.config.dead_letter.clone(),
        ready: count(ItemState::Ready),
        claimed: count(ItemState::Claimed),
        delayed: count(ItemState::Delayed),
        waiting_claims: u64::try_from(q.claimers.len()).unwrap_or(u64::MAX),
        dead_lettered_total: q.dead_lettered_total,
        dropped_total: q.dropped_total,
        oldest_ready_age_ms: oldest_ready.map(|i| now_ms.saturating_sub(i.visible_at_ms)),
    }
}

fn state_of(item: &Item, now_ms: u64) -> ItemState {
    match (&item.claim, item.visible_at_ms <= now_ms) {
        (Some(_), _) => ItemState::Claimed,
        (None, true) => ItemState::Ready,
        (None, false) => ItemState::Delayed,
    }
}

/// `?state=ready|claimed|delayed&limit=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    #[serde(default)]
    state: Option<ItemState>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list_items(
    State(node): State<Arc<Node>>,
    caller: Caller,
    PathParam(queue): PathParam<LockName>,
    QueryOf(query): QueryOf<ItemsQuery>,
) -> Result<Json<ItemList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=LIST_ITEMS_MAX).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "query `limit`: must be from 1 to {LIST_ITEMS_MAX}"
        )));
    }
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Queue, queue.as_str(), Access::Read)?;
    let now_ms = state.table.now_ms();
    let items = state.table.queues().get(&queue).into_iter();
    let matching = items
        .flat_map(|q| q.items.values())
        .filter(|i| query.state.is_none_or(|s| state_of(i, now_ms) == s));
    let mut views: Vec<ItemView> = matching
        .take(limit + 1)
        .map(|i| item_view(i, now_ms))
        .collect();
    let truncated = views.len() > limit;
    views.truncate(limit);
    Ok(Json(ItemList {
        items: views,
        truncated,
    }))
}

fn item_view(item: &Item, now_ms: u64) -> ItemView {
    let claim = item.claim.as_ref();
    ItemView {
        item_id: item.id,
        seq: item.seq,
        state: state_of(item, now_ms),
        attempt: item.attempt,
        enqueued_ms: item.enqueued_ms,
        visible_at_ms: claim.map_or(item.visible_at_ms, |c| c.deadline_ms),
        fencing_token: claim.map(|c| c.fencing_token),
        payload: payload_of(&item.payload),
        dead_letter_from: item.dead_letter.as_ref().map(|d| d.queue.clone()),
    }
}
