//! Work queues in the lock table: enqueue, claim under fencing tokens,
//! ack, extend, nack, overdue claims, dead letters, and claims that wait.
//! The types are in `crate::work`.

use std::collections::VecDeque;

use super::LockTable;
use crate::lease::LeaseId;
use crate::lock::LockName;
use crate::outcome::{Event, Limit, Outcome, Refusal, Response, ReturnReason};
use crate::token::FencingToken;
use crate::work::{
    Claim, ClaimId, ClaimedItem, DeadLetter, Dedup, Item, ItemId, QueueConfig, QueueLimits, Queues,
    WaitingClaim, WorkQueue, CLAIMERS_PER_QUEUE_MAX, CLAIM_ITEMS_MAX, DEDUP_ID_BYTES_MAX,
    ITEM_PAYLOAD_BYTES_MAX, VISIBILITY_MS_MAX,
};

/// What an enqueue adds, checked.
pub(super) struct NewItem {
    pub payload: String,
    pub delay_ms: u64,
    pub dedup_id: Option<String>,
}

/// What a claim asks, checked.
pub(super) struct ClaimAsk {
    pub lease_id: LeaseId,
    pub claim_id: ClaimId,
    pub visibility_ms: u64,
    pub max: u32,
    pub wait_ms: u64,
}

fn invalid(reason: impl Into<String>) -> Refusal {
    Refusal::Invalid {
        reason: reason.into(),
    }
}

fn check_ms(what: &str, ms: u64, min: u64) -> Result<(), Refusal> {
    if (min..=VISIBILITY_MS_MAX).contains(&ms) {
        return Ok(());
    }
    Err(invalid(format!(
        "{what} must be from {min} to {VISIBILITY_MS_MAX}"
    )))
}

impl LockTable {
    /// The work queues.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    pub(super) fn configure_queue(
        &mut self,
        queue: LockName,
        config: QueueConfig,
        queues_max: usize,
    ) -> Response {
        if config.dead_letter.as_ref() == Some(&queue) {
            return Err(invalid("a queue cannot be its own dead-letter queue"));
        }
        self.check_queue_room(&queue, queues_max)?;
        let entry = self.queues.queues.entry(queue).or_default();
        entry.config = config;
        entry.configured = true;
        Ok(Outcome::QueueConfigured)
    }

    /// Refuses a new queue past `queues_max`.
    fn check_queue_room(&self, queue: &LockName, queues_max: usize) -> Result<(), Refusal> {
        if self.queues.queues.contains_key(queue) || self.queues.len() < queues_max {
            return Ok(());
        }
        let max = u64::try_from(queues_max).unwrap_or(u64::MAX);
        Err(Refusal::LimitReached(Limit::Queues { max }))
    }

    pub(super) fn enqueue_item(
        &mut self,
        queue: LockName,
        new: NewItem,
        limits: QueueLimits,
        events: &mut Vec<Event>,
    ) -> Response {
        if new.payload.len() > ITEM_PAYLOAD_BYTES_MAX {
            return Err(invalid(format!(
                "payload is {} bytes, above {ITEM_PAYLOAD_BYTES_MAX}",
                new.payload.len()
            )));
        }
        check_ms("delay_ms", new.delay_ms, 0)?;
        if new
            .dedup_id
            .as_ref()
            .is_some_and(|d| d.is_empty() || d.len() > DEDUP_ID_BYTES_MAX)
        {
            return Err(invalid(format!(
                "dedup_id must be 1 to {DEDUP_ID_BYTES_MAX} bytes"
            )));
        }
        let now_ms = self.now_ms;
        if let Some(q) = self.queues.queues.get_mut(&queue) {
            q.dedup.retain(|_, d| d.until_ms > now_ms);
            let first = new.dedup_id.as_ref().and_then(|id| q.dedup.get(id));
            if let Some(first) = first {
                return Ok(Outcome::Enqueued {
                    item_id: first.item_id,
                    seq: first.seq,
                    duplicate: true,
                });
            }
            if q.items.len() >= limits.items_max {
                let max = u64::try_from(limits.items_max).unwrap_or(u64::MAX);
                return Err(Refusal::LimitReached(Limit::QueueItems { max }));
            }
        }
        self.check_queue_room(&queue, limits.queues_max)?;
        let visible_at_ms = now_ms.saturating_add(new.delay_ms);
        let (item_id, seq) = self.push_item(&queue, new.payload, visible_at_ms, None);
        if let Some(dedup_id) = new.dedup_id {
            let until_ms = now_ms.saturating_add(limits.dedup_window_ms);
            let dedup = Dedup {
                item_id,
                seq,
                until_ms,
            };
            self.queue_mut(&queue).dedup.insert(dedup_id, dedup);
        }
        self.serve_claimers(&queue, events);
        Ok(Outcome::Enqueued {
            item_id,
            seq,
            duplicate: false,
        })
    }

    /// Adds an item to `queue` (creating it); its id and seq.
    fn push_item(
        &mut self,
        queue: &LockName,
        payload: String,
        visible_at_ms: u64,
        dead_letter: Option<DeadLetter>,
    ) -> (ItemId, u64) {
        let item_id = ItemId(self.queues.next_item_id);
        self.queues.next_item_id += 1;
        let enqueued_ms = self.now_ms;
        let q = self.queues.queues.entry(queue.clone()).or_default();
        let seq = q.next_seq;
        q.next_seq += 1;
        let item = Item {
            id: item_id,
            seq,
            payload,
            enqueued_ms,
            visible_at_ms,
            attempt: 0,
            claim: None,
            last_token: None,
            dead_letter,
        };
        q.items.insert(item_id, item);
        (item_id, seq)
    }

    fn queue_mut(&mut self, queue: &LockName) -> &mut WorkQueue {
        self.queues
            .queues
            .get_mut(queue)
            .expect("the queue was just used")
    }

    pub(super) fn claim(
        &mut self,
        queue: LockName,
        ask: ClaimAsk,
        events: &mut Vec<Event>,
    ) -> Response {
        if !self.leases.contains_key(&ask.lease_id) {
            return Err(Refusal::LeaseNotFound);
        }
        check_ms("visibility_ms", ask.visibility_ms, 1)?;
        if !(1..=CLAIM_ITEMS_MAX).contains(&ask.max) {
            return Err(invalid(format!("max must be from 1 to {CLAIM_ITEMS_MAX}")));
        }
        // Claims that waited first are served first.
        self.serve_claimers(&queue, events);
        let now_ms = self.now_ms;
        let ready = match self.queues.queues.get(&queue) {
            Some(q) if q.claimers.is_empty() => q.ready(now_ms, ask.max as usize),
            _ => Vec::new(),
        };
        if !ready.is_empty() || ask.wait_ms == 0 {
            let claimer = (ask.lease_id, ask.claim_id);
            let items = self.claim_items(&queue, &ready, claimer, ask.visibility_ms);
            return Ok(Outcome::Claimed { items });
        }
        self.wait_for_items(queue, ask)
    }

    /// Queues a claim that found no ready item.
    fn wait_for_items(&mut self, queue: LockName, ask: ClaimAsk) -> Response {
        let now_ms = self.now_ms;
        let q = self.queues.queues.entry(queue.clone()).or_default();
        // The claim id tells a lease's waiting requests apart: two with
        // one id could not tell which of them the items were handed to.
        let same = |c: &WaitingClaim| (c.lease_id, c.claim_id) == (ask.lease_id, ask.claim_id);
        if q.claimers.iter().any(same) {
            return Err(Refusal::ClaimAlreadyWaiting { queue });
        }
        if q.claimers.len() >= CLAIMERS_PER_QUEUE_MAX {
            return Err(Refusal::LimitReached(Limit::ClaimersPerQueue));
        }
        q.claimers.push_back(WaitingClaim {
            lease_id: ask.lease_id,
            claim_id: ask.claim_id,
            max: ask.max,
            visibility_ms: ask.visibility_ms,
            until_ms: now_ms.saturating_add(ask.wait_ms),
        });
        Ok(Outcome::ClaimWaiting {
            position: q.claimers.len() - 1,
        })
    }

    /// Claims the items `ids` of `queue` for the claim `claim_id` of
    /// `lease_id`, each under the next token.
    fn claim_items(
        &mut self,
        queue: &LockName,
        ids: &[ItemId],
        (lease_id, claim_id): (LeaseId, ClaimId),
        visibility_ms: u64,
    ) -> Vec<ClaimedItem> {
        let deadline_ms = self.now_ms.saturating_add(visibility_ms);
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let token = self.last_token.next();
            self.last_token = token;
            let item = self.item_mut(queue, *id);
            debug_assert!(item.claim.is_none(), "only a ready item is claimed");
            item.attempt = item.attempt.saturating_add(1);
            item.last_token = Some(token);
            item.claim = Some(Claim {
                lease_id,
                fencing_token: token,
                deadline_ms,
                claim_id,
            });
            claimed.extend(item.claimed());
            self.queues.index_claim(lease_id, queue, *id, true);
        }
        claimed
    }

    fn item_mut(&mut self, queue: &LockName, id: ItemId) -> &mut Item {
        let q = self.queue_mut(queue);
        q.items.get_mut(&id).expect("a listed item is in its queue")
    }

    /// Hands ready items of `queue` to its waiting claims, first come
    /// first served.
    pub(super) fn serve_claimers(&mut self, queue: &LockName, events: &mut Vec<Event>) {
        let now_ms = self.now_ms;
        loop {
            let Some(q) = self.queues.queues.get_mut(queue) else {
                return;
            };
            let Some(first) = q.claimers.front() else {
                return;
            };
            let ready = q.ready(now_ms, first.max as usize);
            if ready.is_empty() {
                return;
            }
            let first = q.claimers.pop_front().expect("a first claim");
            let claimer = (first.lease_id, first.claim_id);
            let items = self.claim_items(queue, &ready, claimer, first.visibility_ms);
            events.push(Event::ItemsClaimed {
                queue: queue.clone(),
                lease_id: first.lease_id,
                claim_id: first.claim_id,
                items,
            });
        }
    }

    /// The item named, if the token names its live claim.
    fn claimed_item(
        &self,
        queue: &LockName,
        item_id: ItemId,
        token: FencingToken,
    ) -> Result<&Item, Refusal> {
        let q = self.queues.get(queue).ok_or(Refusal::ItemNotFound)?;
        let item = q.items.get(&item_id).ok_or(Refusal::ItemNotFound)?;
        match &item.claim {
            Some(claim) if claim.fencing_token == token => Ok(item),
            claim => Err(Refusal::StaleClaim {
                current_token: claim.as_ref().map(|c| c.fencing_token),
            }),
        }
    }

    pub(super) fn ack(
        &mut self,
        queue: LockName,
        item_id: ItemId,
        token: FencingToken,
    ) -> Response {
        let lease_id = self.claimed_item(&queue, item_id, token)?.claim_lease();
        self.queues.index_claim(lease_id, &queue, item_id, false);
        self.queue_mut(&queue).items.remove(&item_id);
        self.drop_if_idle(&queue);
        Ok(Outcome::Acked)
    }

    pub(super) fn extend_claim(
        &mut self,
        queue: LockName,
        item_id: ItemId,
        token: FencingToken,
        visibility_ms: u64,
    ) -> Response {
        check_ms("visibility_ms", visibility_ms, 1)?;
        self.claimed_item(&queue, item_id, token)?;
        let visible_at_ms = self.now_ms.saturating_add(visibility_ms);
        let item = self.item_mut(&queue, item_id);
        if let Some(claim) = item.claim.as_mut() {
            claim.deadline_ms = visible_at_ms;
        }
        Ok(Outcome::ClaimExtended { visible_at_ms })
    }

    pub(super) fn nack(
        &mut self,
        queue: LockName,
        item_id: ItemId,
        token: FencingToken,
        delay_ms: u64,
        events: &mut Vec<Event>,
    ) -> Response {
        check_ms("delay_ms", delay_ms, 0)?;
        self.claimed_item(&queue, item_id, token)?;
        let visible_at_ms = self.now_ms.saturating_add(delay_ms);
        let returned = (item_id, ReturnReason::Nacked);
        let dead_lettered = self.return_item(&queue, returned, visible_at_ms, events);
        self.serve_claimers(&queue, events);
        self.drop_if_idle(&queue);
        Ok(Outcome::Nacked {
            visible_at_ms,
            dead_lettered,
        })
    }

    /// Ends the live claim of an item: it is ready at `visible_at_ms`, or
    /// leaves for the dead letters after its last attempt. Whether it left.
    fn return_item(
        &mut self,
        queue: &LockName,
        (item_id, reason): (ItemId, ReturnReason),
        visible_at_ms: u64,
        events: &mut Vec<Event>,
    ) -> bool {
        let item = self.item_mut(queue, item_id);
        let claim = item.claim.take().expect("a returned item is claimed");
        item.visible_at_ms = visible_at_ms;
        let attempts = item.attempt;
        self.queues
            .index_claim(claim.lease_id, queue, item_id, false);
        events.push(Event::ItemReturned {
            queue: queue.clone(),
            item_id,
            fencing_token: claim.fencing_token,
            reason,
        });
        let config = self.queue_mut(queue).config.clone();
        if config.max_attempts == 0 || attempts < config.max_attempts {
            return false;
        }
        let q = self.queue_mut(queue);
        let item = q.items.remove(&item_id).expect("the item is in its queue");
        events.push(Event::ItemLeft {
            queue: queue.clone(),
            item_id,
            dead_lettered: config.dead_letter.is_some(),
        });
        let Some(dead_letters) = config.dead_letter else {
            q.dropped_total += 1;
            return true;
        };
        q.dead_lettered_total += 1;
        let origin = DeadLetter {
            queue: queue.clone(),
            item_id,
            attempts,
            last_token: item.last_token,
        };
        let now_ms = self.now_ms;
        self.push_item(&dead_letters, item.payload, now_ms, Some(origin));
        self.serve_claimers(&dead_letters, events);
        true
    }

    pub(super) fn tick_queue(&mut self, queue: LockName, events: &mut Vec<Event>) -> Response {
        let now_ms = self.now_ms;
        let overdue: Vec<ItemId> = match self.queues.get(&queue) {
            Some(q) => q
                .items
                .values()
                .filter(|item| item.claim.as_ref().is_some_and(|c| c.deadline_ms <= now_ms))
                .map(|item| item.id)
                .collect(),
            None => Vec::new(),
        };
        for item_id in &overdue {
            self.return_item(&queue, (*item_id, ReturnReason::Deadline), now_ms, events);
        }
        self.serve_claimers(&queue, events);
        self.drop_if_idle(&queue);
        Ok(Outcome::QueueTicked {
            returned: overdue.len(),
        })
    }

    pub(super) fn cancel_claim_wait(
        &mut self,
        queue: LockName,
        claimer: (LeaseId, ClaimId),
    ) -> Response {
        let mut withdrawn = false;
        if let Some(q) = self.queues.queues.get_mut(&queue) {
            let before = q.claimers.len();
            q.claimers.retain(|c| (c.lease_id, c.claim_id) != claimer);
            withdrawn = q.claimers.len() != before;
        }
        self.drop_if_idle(&queue);
        Ok(Outcome::ClaimWaitCancelled { withdrawn })
    }

    /// The queues the leader should tick at `now_ms`: a claim ran out, or
    /// a claim waits while an item is ready (a delay passed). At most
    /// `max`.
    pub fn queues_due(&self, now_ms: u64, max: usize) -> Vec<LockName> {
        let due = |q: &WorkQueue| {
            q.items.values().any(|item| {
                let overdue = item.claim.as_ref().is_some_and(|c| c.deadline_ms <= now_ms);
                overdue || (!q.claimers.is_empty() && item.is_ready(now_ms))
            })
        };
        let queues = self.queues.iter().filter(|(_, q)| due(q));
        queues.map(|(name, _)| name.clone()).take(max).collect()
    }

    /// The waiting claims whose request stopped waiting before `before_ms`
    /// and did not withdraw them (its node may have died). At most `max`.
    pub fn orphaned_claims(&self, before_ms: u64, max: usize) -> Vec<(LockName, LeaseId, ClaimId)> {
        let mut orphans = Vec::new();
        for (name, q) in self.queues.iter() {
            for waiting in q.claimers.iter().filter(|c| c.until_ms < before_ms) {
                orphans.push((name.clone(), waiting.lease_id, waiting.claim_id));
            }
        }
        orphans.truncate(max);
        orphans
    }

    /// Returns every item `lease_id` claims (ready at once) and ends its
    /// waiting claims: its lease ended.
    pub(super) fn end_claims(&mut self, lease_id: LeaseId, events: &mut Vec<Event>) {
        let now_ms = self.now_ms;
        let mut touched = Vec::new();
        // Its waiting claims first: an item it gives back (or a dead letter
        // of one) must not go to a claim of its own.
        for (name, q) in self.queues.queues.iter_mut() {
            let (ended, waiting) = std::mem::take(&mut q.claimers)
                .into_iter()
                .partition::<VecDeque<_>, _>(|c| c.lease_id == lease_id);
            q.claimers = waiting;
            for claim in &ended {
                events.push(Event::ClaimWaitEnded {
                    queue: name.clone(),
                    lease_id,
                    claim_id: claim.claim_id,
                });
            }
            if !ended.is_empty() {
                touched.push(name.clone());
            }
        }
        for (queue, item_id) in self.queues.claims_of(lease_id) {
            let returned = (item_id, ReturnReason::LeaseEnded);
            self.return_item(&queue, returned, now_ms, events);
            touched.push(queue);
        }
        touched.sort();
        touched.dedup();
        for queue in touched {
            self.serve_claimers(&queue, events);
            self.drop_if_idle(&queue);
        }
    }

    /// Forgets a queue that holds nothing worth keeping.
    fn drop_if_idle(&mut self, queue: &LockName) {
        let now_ms = self.now_ms;
        if let Some(q) = self.queues.queues.get_mut(queue) {
            q.dedup.retain(|_, d| d.until_ms > now_ms);
            if q.is_idle() {
                self.queues.queues.remove(queue);
            }
        }
    }
}

impl Item {
    /// The lease of its live claim; call only on a claimed item.
    fn claim_lease(&self) -> LeaseId {
        self.claim
            .as_ref()
            .map(|c| c.lease_id)
            .expect("a claimed item")
    }
}

#[cfg(test)]
#[path = "work_test.rs"]
mod tests;
