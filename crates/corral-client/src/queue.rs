//! Work queues: [`Queue`] pushes items and reads a queue's stats, and
//! [`Lease::claim`] takes one item under a lease as a [`ClaimGuard`],
//! extended in the background until it is acked or nacked.

use std::time::Duration;

use corral_api::{
    AckRequest, ClaimRequest, ClaimResponse, ClaimedItemView, ConfigureQueueRequest,
    EnqueueRequest, EnqueueResponse, ErrorKind, ExtendRequest, FencingToken, ItemId, ItemList,
    ItemResponse, ItemState, LockName, NackRequest, QueueView, WAIT_MS_MAX,
};
use reqwest::Method;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{segment, Call, Client};
use crate::error::Error;
use crate::lease::{Lease, LostReason};
use crate::renew::{keep_renewed, Hold, Renewer};

/// A work queue of the cluster: its name and the client that reaches it.
/// Cheap to clone.
///
/// Every write (push, configure, and a claim's ack, extend and nack) goes
/// under an `Idempotency-Key`, so a retry never applies twice.
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    name: LockName,
}

impl Client {
    /// The queue `name`. Nothing is sent: a queue exists once an item is
    /// pushed to it or it is configured.
    pub fn queue(&self, name: &LockName) -> Queue {
        Queue {
            client: self.clone(),
            name: name.clone(),
        }
    }
}

impl Queue {
    /// Its name.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// Pushes `payload` (anything serde writes as JSON), ready now.
    pub async fn push(&self, payload: impl Serialize) -> Result<EnqueueResponse, Error> {
        self.push_with(payload, Duration::ZERO, None).await
    }

    /// Pushes `payload`, ready after `delay`. A push with the `dedup_id`
    /// of an earlier one within the cluster's idempotency window adds
    /// nothing and answers that item, `duplicate`.
    pub async fn push_with(
        &self,
        payload: impl Serialize,
        delay: Duration,
        dedup_id: Option<&str>,
    ) -> Result<EnqueueResponse, Error> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| Error::InvalidArgument(format!("payload: {e}")))?;
        let request = EnqueueRequest {
            payload,
            delay_ms: millis(delay),
            dedup_id: dedup_id.map(str::to_string),
        };
        let path = self.path("/items")?;
        self.client
            .write(Call::new(Method::POST, &path, Some(&request)))
            .await
    }

    /// Sets how the queue treats items that keep coming back: after
    /// `max_attempts` claims (0: no limit), one that comes back moves to
    /// `dead_letter` (dropped without one).
    pub async fn configure(
        &self,
        max_attempts: u32,
        dead_letter: Option<&LockName>,
    ) -> Result<QueueView, Error> {
        let request = ConfigureQueueRequest {
            max_attempts,
            dead_letter: dead_letter.cloned(),
        };
        let path = self.path("")?;
        self.client
            .write(Call::new(Method::PUT, &path, Some(&request)))
            .await
    }

    /// Its counts and settings (all zero for a queue that does not exist).
    pub async fn stats(&self) -> Result<QueueView, Error> {
        let path = self.path("")?;
        self.client
            .read(Call::new(Method::GET, &path, None::<&()>))
            .await
    }

    /// Its items, oldest first, only those in `state` if given, at most
    /// `limit` (1 to 1000).
    pub async fn items(&self, state: Option<ItemState>, limit: usize) -> Result<ItemList, Error> {
        let mut path = format!("{}?limit={limit}", self.path("/items")?);
        if let Some(state) = state {
            path.push_str("&state=");
            path.push_str(state_name(state));
        }
        self.client
            .read(Call::new(Method::GET, &path, None::<&()>))
            .await
    }

    async fn ack(&self, item_id: ItemId, token: FencingToken) -> Result<ItemResponse, Error> {
        let request = AckRequest {
            item_id,
            fencing_token: token,
        };
        let path = self.path("/ack")?;
        self.client
            .write(Call::new(Method::POST, &path, Some(&request)))
            .await
    }

    /// Extends a claim by `visibility` from now; `bound` is when to stop
    /// trying and the longest one try may take, if not the client's.
    async fn extend(
        &self,
        item_id: ItemId,
        token: FencingToken,
        visibility: Duration,
        bound: Option<(Instant, Duration)>,
    ) -> Result<ItemResponse, Error> {
        let request = ExtendRequest {
            item_id,
            fencing_token: token,
            visibility_ms: millis(visibility),
        };
        let path = self.path("/extend")?;
        let mut call = Call::new(Method::POST, &path, Some(&request));
        if let Some((give_up_at, try_timeout)) = bound {
            call.give_up_at = Some(give_up_at);
            call.try_timeout = Some(try_timeout);
        }
        self.client.write(call).await
    }

    async fn nack(
        &self,
        item_id: ItemId,
        token: FencingToken,
        delay: Duration,
    ) -> Result<ItemResponse, Error> {
        let request = NackRequest {
            item_id,
            fencing_token: token,
            delay_ms: millis(delay),
        };
        let path = self.path("/nack")?;
        self.client
            .write(Call::new(Method::POST, &path, Some(&request)))
            .await
    }

    /// `/v1/queues/{name}` and `tail`, the name one encoded path segment
    /// (a `/` in it too).
    fn path(&self, tail: &str) -> Result<String, Error> {
        Ok(format!("/v1/queues/{}{tail}", segment(self.name.as_str())?))
    }
}

/// `state` as the item list's query names it.
fn state_name(state: ItemState) -> &'static str {
    match state {
        ItemState::Ready => "ready",
        ItemState::Claimed => "claimed",
        ItemState::Delayed => "delayed",
    }
}

/// `d` in whole milliseconds.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Lease {
    /// Claims the oldest ready item of `queue` under this lease, if one is
    /// ready now: see [`Lease::claim_wait`].
    pub async fn claim(
        &self,
        queue: &Queue,
        visibility: Duration,
    ) -> Result<Option<ClaimGuard>, Error> {
        self.claim_wait(queue, visibility, Duration::ZERO).await
    }

    /// Claims the oldest ready item of `queue` under this lease, waiting up
    /// to `wait` for one (the server waits at most a minute at a time; a
    /// longer wait is renewed). `None` when none came.
    ///
    /// The claim lasts `visibility` unless extended: the guard extends it
    /// every visibility/3 until it is acked or nacked, and it ends with the
    /// lease. It goes through the lease's client. Claims of one lease may
    /// wait on one queue at once: each request gets items of its own. A
    /// claim whose answer is lost (the cluster was unreachable) may still
    /// have taken an item, which comes back when its visibility runs out
    /// or the lease ends.
    pub async fn claim_wait(
        &self,
        queue: &Queue,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Option<ClaimGuard>, Error> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(guard) = self.claim_once(queue, visibility, left).await? {
                return Ok(Some(guard));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// One claim request, waiting server-side up to `wait` (at most a
    /// minute).
    async fn claim_once(
        &self,
        queue: &Queue,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Option<ClaimGuard>, Error> {
        if !self.is_held() {
            return Err(Error::LeaseLost);
        }
        let queue = self.client().queue(queue.name());
        let wait_ms = millis(wait).min(WAIT_MS_MAX);
        let request = ClaimRequest {
            lease_id: self.id(),
            visibility_ms: millis(visibility),
            max: 1,
            wait_ms,
        };
        let path = queue.path("/claim")?;
        let mut call = Call::new(Method::POST, &path, Some(&request));
        call.server_wait = Duration::from_millis(wait_ms);
        let sent_at = Instant::now();
        let answer: ClaimResponse = self.client().write(call).await?;
        // `max` is 1: the server answers one item at most.
        let Some(item) = answer.items.into_iter().next() else {
            return Ok(None);
        };
        let Some(until) = proven_until(&queue, &item, visibility, sent_at).await? else {
            return Ok(None);
        };
        let guard = ClaimGuard::start(self.clone(), queue, item, visibility, until);
        // As for a lock: a claim that arrives after the lease's proven
        // deadline guards nothing. Dropped, the guard gives it back.
        if !self.is_held() {
            drop(guard);
            return Err(Error::LeaseLost);
        }
        Ok(Some(guard))
    }
}

/// Until when the claim of `item`, sent at `sent_at`, may be assumed held:
/// its visibility from the send time, if two thirds of that are left.
/// Otherwise the claim waited server-side and when the item came is
/// unknown, so an extend proves a deadline from its own send time. `None`
/// when that extend finds the claim lost already.
async fn proven_until(
    queue: &Queue,
    item: &ClaimedItemView,
    visibility: Duration,
    sent_at: Instant,
) -> Result<Option<Instant>, Error> {
    let until = sent_at + visibility;
    if until.saturating_duration_since(Instant::now()) >= visibility * 2 / 3 {
        return Ok(Some(until));
    }
    let extended_at = Instant::now();
    match queue
        .extend(item.item_id, item.fencing_token, visibility, None)
        .await
    {
        Ok(_) => Ok(Some(extended_at + visibility)),
        Err(e) if claim_lost_by(&e).is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a claim is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimLost {
    /// No extend was acked before the claim's deadline on this process's
    /// clock.
    Expired,
    /// The queue refused the claim's token: the claim ran out or ended
    /// with its lease, and the item may be another worker's now (or gone).
    Refused,
    /// Its lease was lost.
    Lease(LostReason),
}

impl std::fmt::Display for ClaimLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimLost::Expired => f.write_str("no extend was acked before the claim's deadline"),
            ClaimLost::Refused => f.write_str("the queue refused the claim's token"),
            ClaimLost::Lease(reason) => write!(f, "its lease was lost: {reason}"),
        }
    }
}

/// The refusals that mean a claim is lost.
fn claim_lost_by(error: &Error) -> Option<ClaimLost> {
    match error {
        Error::Refused {
            kind: ErrorKind::StaleToken { .. } | ErrorKind::ItemNotFound,
            ..
        } => Some(ClaimLost::Refused),
        Error::LeaseLost => Some(ClaimLost::Lease(LostReason::Gone)),
        _ => None,
    }
}

/// A claimed item of a queue, held under a [`Lease`].
///
/// While it exists, its claim is extended every visibility/3 (sooner after
/// a failure). [`ClaimGuard::lost`] resolves when it may no longer be
/// assumed held: no extend was acked before its deadline (counted from the
/// send time of the last acked one), the queue refused its token, or the
/// lease was lost. Pass [`ClaimGuard::fencing_token`] to every store the
/// work writes to.
///
/// [`ClaimGuard::ack`] ends the item, [`ClaimGuard::nack`] gives it back;
/// a guard dropped without either is nacked in the background, best
/// effort (if that fails, the item comes back when its claim runs out).
#[derive(Debug)]
pub struct ClaimGuard {
    lease: Lease,
    queue: Queue,
    item: ClaimedItemView,
    hold: Hold<ClaimLost>,
    extender: JoinHandle<()>,
    /// Acked or nacked: nothing to give back on drop.
    settled: bool,
}

impl ClaimGuard {
    fn start(
        lease: Lease,
        queue: Queue,
        item: ClaimedItemView,
        visibility: Duration,
        until: Instant,
    ) -> ClaimGuard {
        let hold = Hold::new(until);
        let extender = tokio::spawn(keep_extended(
            queue.clone(),
            (item.item_id, item.fencing_token),
            visibility,
            hold.clone(),
        ));
        ClaimGuard {
            lease,
            queue,
            item,
            hold,
            extender,
            settled: false,
        }
    }

    /// The queue.
    pub fn queue(&self) -> &LockName {
        self.queue.name()
    }

    /// The item.
    pub fn item_id(&self) -> ItemId {
        self.item.item_id
    }

    /// Its place in the queue.
    pub fn seq(&self) -> u64 {
        self.item.seq
    }

    /// Its payload, as pushed.
    pub fn payload(&self) -> &serde_json::Value {
        &self.item.payload
    }

    /// The claim's token: every ack, extend and nack names it, and so may
    /// any store the work writes to.
    pub fn fencing_token(&self) -> FencingToken {
        self.item.fencing_token
    }

    /// Which claim of the item this is: 1 the first.
    pub fn attempt(&self) -> u32 {
        self.item.attempt
    }

    /// The lease it is held under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether the claim is still held, as far as this process may assume.
    pub fn is_held(&self) -> bool {
        self.hold.held_until().is_some() && self.lease.is_held()
    }

    /// Resolves when the claim is lost, with the reason.
    pub async fn lost(&self) -> ClaimLost {
        tokio::select! {
            reason = self.hold.lost(ClaimLost::Expired) => reason,
            reason = self.lease.lost() => ClaimLost::Lease(reason),
        }
    }

    /// Ends the item: done. A claim that was lost is refused
    /// ([`ErrorKind::StaleToken`] or [`ErrorKind::ItemNotFound`]).
    pub async fn ack(mut self) -> Result<(), Error> {
        self.settle();
        let ack = self.queue.ack(self.item.item_id, self.item.fencing_token);
        ack.await.map(drop)
    }

    /// Gives the item back, ready again after `delay`; the answer says
    /// whether it left for the dead letters after its last attempt.
    pub async fn nack(mut self, delay: Duration) -> Result<ItemResponse, Error> {
        self.settle();
        let item = &self.item;
        self.queue
            .nack(item.item_id, item.fencing_token, delay)
            .await
    }

    fn settle(&mut self) {
        self.settled = true;
        self.extender.abort();
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.extender.abort();
        // A claim the queue refused is not this worker's to give back.
        if self.settled || self.hold.lost_reason() == Some(ClaimLost::Refused) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let queue = self.queue.clone();
        let (item_id, token) = (self.item.item_id, self.item.fencing_token);
        runtime.spawn(async move {
            match queue.nack(item_id, token, Duration::ZERO).await {
                Err(e) if claim_lost_by(&e).is_none() => {
                    tracing::warn!(queue = %queue.name(), item = %item_id, error = %e, "nacking a dropped claim failed; the item comes back when the claim runs out");
                }
                _ => {}
            }
        });
    }
}

/// Extends the claim of `item` (its id and token) every visibility/3 until
/// it is lost.
async fn keep_extended(
    queue: Queue,
    item: (ItemId, FencingToken),
    visibility: Duration,
    hold: Hold<ClaimLost>,
) {
    let (item_id, token) = item;
    let what = format!("extend of item {item_id} of {}", queue.name());
    let renew = |until, try_timeout| {
        let queue = queue.clone();
        async move {
            let bound = Some((until, try_timeout));
            queue
                .extend(item_id, token, visibility, bound)
                .await
                .map(drop)
        }
    };
    keep_renewed(Renewer {
        hold,
        ttl: visibility,
        expired: ClaimLost::Expired,
        lost_by: claim_lost_by,
        renew,
        what,
    })
    .await;
}

#[cfg(test)]
#[path = "queue_test.rs"]
mod tests;
