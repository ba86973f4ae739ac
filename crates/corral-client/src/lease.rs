//! [`Lease`]: ownership tied to this process, kept alive in the
//! background, and the locks taken under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_api::{
    AcquireAllRequest, AcquireAllResponse, AcquireRequest, CampaignRequest, ElectionView,
    FencingToken, GrantResponse, LeaseId, LockName, LockOrder, Mode, SemaphoreAcquireRequest,
    SemaphoreGrantResponse, WAIT_MS_MAX,
};
use reqwest::Method;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{Call, Client};
use crate::error::Error;
use crate::guard::{release, Held, LockGuard};
use crate::renew::{keep_renewed, Hold, Renewer};

/// How long after an acquire's wait ended the server may still grant it
/// (its leader cancels an abandoned wait about 2 s past its deadline), with
/// a margin.
const ABANDONED_WAIT_GRACE: Duration = Duration::from_secs(4);

/// Options of a new lease.
#[derive(Clone, Debug, Default)]
pub struct LeaseOptions {
    /// `Some(LockOrder::Lexicographic)`: the cluster refuses any lock
    /// taken out of name order.
    pub lock_order: Option<LockOrder>,
    /// If the lease expires, its locks stay unavailable this long.
    pub lock_delay: Option<Duration>,
}

/// Why a lease is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// No keepalive was acked before the lease's deadline on this
    /// process's clock.
    Expired,
    /// The cluster says the lease does not exist (expired or revoked).
    Gone,
    /// This process revoked it.
    Revoked,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LostReason::Expired => "no keepalive was acked before the lease's deadline",
            LostReason::Gone => "the cluster no longer has the lease (expired or revoked)",
            LostReason::Revoked => "the lease was revoked",
        })
    }
}

/// A lease, kept alive every ttl/3 while this value (or a clone, or a
/// [`LockGuard`] under it) exists.
///
/// The lease is held, as far as this process may assume, until the *send*
/// time of the last acked keepalive plus the ttl, on this process's
/// monotonic clock: never counted from a reply's arrival, which may come
/// late. [`Lease::lost`] resolves when that deadline passes without a newer
/// ack, or when the cluster says the lease is gone. Stop using what its
/// locks guard at that moment; fencing tokens protect the resources from
/// anything done after it anyway.
#[derive(Clone, Debug)]
pub struct Lease {
    inner: Arc<LeaseInner>,
}

#[derive(Debug)]
struct LeaseInner {
    client: Client,
    id: LeaseId,
    ttl: Duration,
    /// Held until the send time of the last acked keepalive (or of the
    /// grant) plus the ttl.
    hold: Hold<LostReason>,
    keepalive: JoinHandle<()>,
    /// For each name: how many guards hold it, and its newest grant.
    claims: Mutex<HashMap<(Held, LockName), Claimed>>,
    /// One async lock per name in use, held by an acquire until its guard
    /// exists and by a release from its last-guard check until the cluster
    /// answered: the guards of a name share the lease's grant of it (each
    /// acquire re-grants it under a newer token), so an acquire and a
    /// release of one name must not cross.
    turns: Mutex<HashMap<(Held, LockName), Turn>>,
}

/// The guards of one name of a lease.
#[derive(Debug, Default)]
struct Claimed {
    /// How many guards hold it.
    guards: usize,
    /// The token of the newest grant a guard was made from: the grant the
    /// lease holds, which the last guard's release names.
    token: Option<FencingToken>,
}

/// One name's turn lock.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// A guard's claim on a name of its lease: while one exists, the lease
/// does not release the name behind its back, and a second guard of the
/// same grant does not release it either.
#[derive(Debug)]
pub(crate) struct Claim {
    lease: Lease,
    key: (Held, LockName),
    /// Whether it still counts (not given up).
    counted: bool,
}

impl Claim {
    /// The name claimed.
    fn name(&self) -> &LockName {
        &self.key.1
    }

    /// The lease.
    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Gives the claim up and says whether it was the name's last, in one
    /// step, so that two guards let go at once cannot both think another
    /// remains.
    pub(crate) fn give_up(mut self) -> bool {
        self.counted = false;
        self.lease.unclaim(&self.key)
    }

    /// The name's turn lock, for a release.
    pub(crate) async fn turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.lease.turn(&self.key).await
    }

    /// Records that a guard was made from the grant under `token`: every
    /// acquire takes a newer one, so the highest is the lease's grant.
    pub(crate) fn note_token(&self, token: FencingToken) {
        if let Some(claimed) = self.lease.claims().get_mut(&self.key) {
            claimed.token = claimed.token.max(Some(token));
        }
    }

    /// The token of the lease's grant of the name, as the guards know it.
    pub(crate) fn newest_token(&self) -> Option<FencingToken> {
        self.lease.claims().get(&self.key).and_then(|c| c.token)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.counted {
            self.lease.unclaim(&self.key);
        }
    }
}

impl Drop for LeaseInner {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

impl Lease {
    pub(crate) fn start(client: Client, id: LeaseId, ttl: Duration, sent_at: Instant) -> Lease {
        let hold = Hold::new(sent_at + ttl);
        let keepalive = tokio::spawn(keep_alive(client.clone(), id, ttl, hold.clone()));
        Lease {
            inner: Arc::new(LeaseInner {
                client,
                id,
                ttl,
                hold,
                keepalive,
                claims: Mutex::default(),
                turns: Mutex::default(),
            }),
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<(Held, LockName), Claimed>> {
        // Every change is one insert or decrement: a panic cannot leave the
        // map half written.
        self.inner
            .claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `name` for a guard.
    pub(crate) fn claim_name(&self, held: Held, name: &LockName) -> Claim {
        let key = (held, name.clone());
        self.claims().entry(key.clone()).or_default().guards += 1;
        Claim {
            lease: self.clone(),
            key,
            counted: true,
        }
    }

    /// Drops one claim on `key`; true if it was the last.
    fn unclaim(&self, key: &(Held, LockName)) -> bool {
        let mut claims = self.claims();
        let Some(claimed) = claims.get_mut(key) else {
            return true;
        };
        claimed.guards -= 1;
        if claimed.guards > 0 {
            return false;
        }
        claims.remove(key);
        true
    }

    /// Waits for `key`'s turn: see `LeaseInner::turns`.
    async fn turn(&self, key: &(Held, LockName)) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .inner
            .turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Handles an acquire whose outcome is unknown (the cluster was
    /// unreachable after the request may have been applied): it may still
    /// be granted, up to a few seconds after its wait ends, and would then
    /// sit with the lease unknown to anyone. Once that cannot happen any
    /// more, give the names back, unless a guard holds them.
    fn release_if_abandoned(&self, held: Held, names: Vec<LockName>, wait: Duration) {
        let lease = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(wait + ABANDONED_WAIT_GRACE).await;
            for name in names {
                let key = (held, name.clone());
                // No acquire of the name may be granted meanwhile.
                let _turn = lease.turn(&key).await;
                let guarded = lease.claims().contains_key(&key);
                if !lease.is_held() || guarded {
                    continue;
                }
                let Some(token) = lease.abandoned_token(held, &name).await else {
                    continue;
                };
                if let Err(e) = release(&lease, held, &name, token).await {
                    tracing::warn!(lock = %name, error = %e, "releasing a possibly granted lock failed; it goes when the lease ends");
                }
            }
        });
    }

    /// What a release of an abandoned acquire of `name` names: for a lock,
    /// the lease's grant as the cluster reads (so that this release, if it
    /// is delayed in turn, cannot end a later grant), or `None` (no release)
    /// when the lease does not hold it; for a lock that cannot be read, and
    /// for semaphores and elections, no token (whatever the lease holds).
    async fn abandoned_token(&self, held: Held, name: &LockName) -> Option<Option<FencingToken>> {
        if held != Held::Lock {
            return Some(None);
        }
        let Ok(view) = self.inner.client.lock(name).await else {
            return Some(None);
        };
        let mine = view.holders.iter().find(|h| h.lease_id == Some(self.id()));
        mine.map(|h| Some(h.fencing_token))
    }

    /// Runs one acquire: `request`, given the server-side wait in
    /// milliseconds (`wait`, or the server's longest), goes to `path`
    /// under the names' turns, and `guards` turns the answer into guards
    /// carrying claims on the names. An unknown outcome is cleaned up in
    /// the background.
    #[allow(clippy::too_many_arguments)]
    async fn acquire_call<B, T>(
        &self,
        held: Held,
        names: &[LockName],
        path: &'static str,
        wait: Option<Duration>,
        request: impl FnOnce(u64) -> B,
        guards: impl FnOnce(T, &mut Vec<Claim>) -> Result<Vec<LockGuard>, Error>,
    ) -> Result<Vec<LockGuard>, Error>
    where
        B: Serialize,
        T: DeserializeOwned,
    {
        if !self.is_held() {
            return Err(Error::LeaseLost);
        }
        let wait_ms = wait.map_or(WAIT_MS_MAX, |w| (w.as_millis() as u64).min(WAIT_MS_MAX));
        let server_wait = Duration::from_millis(wait_ms);
        let body = request(wait_ms);
        // The names' turns, in name order (so two acquires cannot
        // deadlock), until the guards exist.
        let mut sorted: Vec<&LockName> = names.iter().collect();
        sorted.sort();
        let mut turns = Vec::with_capacity(sorted.len());
        for name in sorted {
            turns.push(self.turn(&(held, name.clone())).await);
        }
        // If this future is dropped before an answer, the acquire may still
        // be granted: clean up as for a lost answer.
        let mut pending = PendingAcquire {
            lease: self,
            held,
            names,
            wait: server_wait,
            answered: false,
        };
        let mut call = Call::new(Method::POST, path, Some(&body));
        call.server_wait = server_wait;
        let answer = self.inner.client.write::<_, T>(call).await;
        pending.answered = !matches!(answer, Err(Error::Unavailable(_)));
        drop(pending);
        let mut claims: Vec<Claim> = match &answer {
            Ok(_) => names.iter().map(|n| self.claim_name(held, n)).collect(),
            Err(_) => Vec::new(),
        };
        let guards = guards(answer?, &mut claims)?;
        // A grant that arrives after the lease's proven deadline guards
        // nothing: the lease may have expired since, and the lock be
        // someone else's. The guards are dropped, which releases them.
        if !self.is_held() {
            drop(guards);
            return Err(Error::LeaseLost);
        }
        Ok(guards)
    }

    /// [`Lease::acquire_call`] for one name: `grant` reads the answer's
    /// name, mode and token, from which the guard is made.
    async fn acquire_one_call<B, T>(
        &self,
        held: Held,
        name: &LockName,
        path: &'static str,
        wait: Option<Duration>,
        request: impl FnOnce(u64) -> B,
        grant: impl FnOnce(T) -> Result<(LockName, Mode, FencingToken), Error>,
    ) -> Result<LockGuard, Error>
    where
        B: Serialize,
        T: DeserializeOwned,
    {
        let to_guard = |answer: T, claims: &mut Vec<Claim>| {
            let (name, mode, token) = grant(answer)?;
            Ok(vec![LockGuard::new(
                claims.remove(0),
                name,
                held,
                mode,
                token,
            )])
        };
        let names = std::slice::from_ref(name);
        let mut guards = self
            .acquire_call(held, names, path, wait, request, to_guard)
            .await?;
        Ok(guards.remove(0))
    }

    /// The lease's id.
    pub fn id(&self) -> LeaseId {
        self.inner.id
    }

    /// Its time to live.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The client it was granted through.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Until when this process may assume it holds the lease; `None` once
    /// it is lost.
    pub fn held_until(&self) -> Option<Instant> {
        self.inner.hold.held_until()
    }

    /// Whether the lease is still held, as far as this process may assume.
    pub fn is_held(&self) -> bool {
        self.held_until().is_some()
    }

    /// Resolves when the lease is lost, with the reason: its deadline
    /// passed without a newer ack, the cluster says it is gone, or it was
    /// revoked.
    pub async fn lost(&self) -> LostReason {
        self.inner.hold.lost(LostReason::Expired).await
    }

    /// Ends the lease now, releasing every lock it holds, and stops its
    /// keepalives.
    pub async fn revoke(&self) -> Result<(), Error> {
        self.inner.keepalive.abort();
        self.inner.hold.lose(LostReason::Revoked);
        self.inner.client.revoke(self.inner.id).await
    }

    /// Takes `name` exclusively, waiting as long as it takes (while the
    /// lease is held).
    pub async fn lock(&self, name: &LockName) -> Result<LockGuard, Error> {
        self.acquire(name, Mode::Exclusive, None).await
    }

    /// Takes `name` exclusively if it is free now.
    pub async fn try_lock(&self, name: &LockName) -> Result<LockGuard, Error> {
        self.acquire(name, Mode::Exclusive, Some(Duration::ZERO))
            .await
    }

    /// Takes `name` exclusively, waiting at most `wait`.
    pub async fn lock_timeout(&self, name: &LockName, wait: Duration) -> Result<LockGuard, Error> {
        self.acquire(name, Mode::Exclusive, Some(wait)).await
    }

    /// Takes `name` shared (a reader), waiting at most `wait` (`None`: as
    /// long as it takes).
    pub async fn lock_shared(
        &self,
        name: &LockName,
        wait: Option<Duration>,
    ) -> Result<LockGuard, Error> {
        self.acquire(name, Mode::Shared, wait).await
    }

    /// Takes `name` in `mode`, waiting at most `wait` (`None`: as long as
    /// the lease is held; each server-side wait is at most a minute, and a
    /// new one joins the end of the queue).
    pub async fn acquire(
        &self,
        name: &LockName,
        mode: Mode,
        wait: Option<Duration>,
    ) -> Result<LockGuard, Error> {
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let request = |wait_ms| AcquireRequest {
                lease_id: self.id(),
                name: name.clone(),
                mode,
                wait_ms: Some(wait_ms),
            };
            let grant = |g: GrantResponse| Ok((g.name, g.mode, g.fencing_token));
            let path = "/v1/locks/acquire";
            match self
                .acquire_one_call(Held::Lock, name, path, left, request, grant)
                .await
            {
                Ok(guard) => return Ok(guard),
                // The server waits at most a minute at a time.
                Err(Error::Timeout) if deadline.is_none_or(|d| Instant::now() < d) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes every lock of `names` in one step, all or none, waiting at
    /// most `wait` for all of them together.
    pub async fn lock_all(
        &self,
        names: &[LockName],
        mode: Mode,
        wait: Duration,
    ) -> Result<Vec<LockGuard>, Error> {
        self.until_deadline(wait, |left| self.lock_all_once(names, mode, left))
            .await
    }

    /// Takes `permits` of the semaphore `name` (of `limit` permits),
    /// waiting at most `wait`.
    pub async fn acquire_permits(
        &self,
        name: &LockName,
        limit: u32,
        permits: u32,
        wait: Duration,
    ) -> Result<LockGuard, Error> {
        self.until_deadline(wait, |left| {
            self.acquire_permits_once(name, limit, permits, left)
        })
        .await
    }

    /// Stands for leader of the election `name` with `value`, waiting at
    /// most `wait` to lead. The guard's token is the leadership's.
    pub async fn campaign(
        &self,
        name: &LockName,
        value: &str,
        wait: Duration,
    ) -> Result<LockGuard, Error> {
        self.until_deadline(wait, |left| self.campaign_once(name, value, left))
            .await
    }

    /// Runs `once` with what is left of `wait` until it answers, or its
    /// wait runs out at the deadline: the server waits at most a minute at
    /// a time, so a longer wait is renewed (joining the end of the queue).
    async fn until_deadline<T, F, Fut>(&self, wait: Duration, mut once: F) -> Result<T, Error>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match once(left).await {
                Err(Error::Timeout) if Instant::now() < deadline => continue,
                answer => return answer,
            }
        }
    }

    async fn lock_all_once(
        &self,
        names: &[LockName],
        mode: Mode,
        wait: Duration,
    ) -> Result<Vec<LockGuard>, Error> {
        let request = |wait_ms| AcquireAllRequest {
            lease_id: self.id(),
            names: names.to_vec(),
            mode,
            wait_ms: Some(wait_ms),
        };
        let to_guards = |granted: AcquireAllResponse, claims: &mut Vec<Claim>| {
            Ok(granted
                .grants
                .into_iter()
                .filter_map(|g| {
                    let at = claims.iter().position(|c| c.name() == &g.name)?;
                    let claim = claims.swap_remove(at);
                    Some(LockGuard::new(
                        claim,
                        g.name,
                        Held::Lock,
                        g.mode,
                        g.fencing_token,
                    ))
                })
                .collect())
        };
        let path = "/v1/locks/acquire-all";
        self.acquire_call(Held::Lock, names, path, Some(wait), request, to_guards)
            .await
    }

    async fn acquire_permits_once(
        &self,
        name: &LockName,
        limit: u32,
        permits: u32,
        wait: Duration,
    ) -> Result<LockGuard, Error> {
        let request = |wait_ms| SemaphoreAcquireRequest {
            lease_id: self.id(),
            name: name.clone(),
            limit,
            permits,
            wait_ms: Some(wait_ms),
        };
        let grant = |g: SemaphoreGrantResponse| Ok((g.name, Mode::Shared, g.fencing_token));
        let path = "/v1/semaphores/acquire";
        self.acquire_one_call(Held::Semaphore, name, path, Some(wait), request, grant)
            .await
    }

    async fn campaign_once(
        &self,
        name: &LockName,
        value: &str,
        wait: Duration,
    ) -> Result<LockGuard, Error> {
        let request = |wait_ms| CampaignRequest {
            lease_id: self.id(),
            name: name.clone(),
            value: value.to_string(),
            wait_ms: Some(wait_ms),
        };
        let grant = |elected: ElectionView| {
            let leader = elected
                .leader
                .ok_or_else(|| Error::Unavailable("a campaign answered without a leader".into()))?;
            Ok((elected.name, Mode::Exclusive, leader.fencing_token))
        };
        let path = "/v1/elections/campaign";
        self.acquire_one_call(Held::Election, name, path, Some(wait), request, grant)
            .await
    }
}

/// An acquire call in flight: dropped without an answer (the caller gave
/// up, or the answer was lost), it leaves a clean-up behind.
struct PendingAcquire<'a> {
    lease: &'a Lease,
    held: Held,
    names: &'a [LockName],
    wait: Duration,
    answered: bool,
}

impl Drop for PendingAcquire<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.lease
                .release_if_abandoned(self.held, self.names.to_vec(), self.wait);
        }
    }
}

/// Sends a keepalive every ttl/3 (sooner after a failure) until the lease
/// is lost, moving the deadline to each acked keepalive's send time plus
/// the ttl.
async fn keep_alive(client: Client, id: LeaseId, ttl: Duration, hold: Hold<LostReason>) {
    let renew = |until, try_timeout| {
        let client = client.clone();
        async move { client.keepalive(id, until, try_timeout).await }
    };
    keep_renewed(Renewer {
        hold,
        ttl,
        expired: LostReason::Expired,
        lost_by: |e| matches!(e, Error::LeaseLost).then_some(LostReason::Gone),
        renew,
        what: format!("keepalive of lease {id}"),
    })
    .await;
}
