//! Something held until a deadline that renewals move: a lease (kept
//! alive) and a queue claim (extended).
//!
//! It is held, as far as this process may assume, until the *send* time of
//! the last acked renewal plus its ttl, on this process's monotonic clock:
//! never counted from a reply's arrival, which may come late.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;

/// What this process may assume about what it holds; `R` says why it was
/// lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing<R> {
    /// Held until this instant.
    Held { until: Instant },
    /// Lost.
    Lost(R),
}

/// The standing of something held, shared by its handle and the task that
/// renews it.
#[derive(Clone, Debug)]
pub(crate) struct Hold<R> {
    standing: watch::Sender<Standing<R>>,
}

impl<R: Copy + Send + Sync + 'static> Hold<R> {
    /// Held until `until`.
    pub(crate) fn new(until: Instant) -> Hold<R> {
        let (standing, _) = watch::channel(Standing::Held { until });
        Hold { standing }
    }

    /// Until when it may be assumed held; `None` once lost.
    pub(crate) fn held_until(&self) -> Option<Instant> {
        match *self.standing.borrow() {
            Standing::Held { until } if Instant::now() < until => Some(until),
            _ => None,
        }
    }

    /// Why it was marked lost, if it was.
    pub(crate) fn lost_reason(&self) -> Option<R> {
        match *self.standing.borrow() {
            Standing::Lost(reason) => Some(reason),
            Standing::Held { .. } => None,
        }
    }

    /// Resolves when it is lost: `expired` when its deadline passes
    /// without a newer renewal, else the reason it was marked lost for.
    pub(crate) async fn lost(&self, expired: R) -> R {
        let mut standing = self.standing.subscribe();
        loop {
            let now = *standing.borrow_and_update();
            match now {
                Standing::Lost(reason) => return reason,
                Standing::Held { until } => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => self.mark_lost_if(until, expired),
                        changed = standing.changed() => {
                            if changed.is_err() {
                                return expired;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Marks it lost for `reason` unless a newer renewal moved its
    /// deadline past `until`.
    fn mark_lost_if(&self, until: Instant, reason: R) {
        self.standing.send_if_modified(|s| match *s {
            Standing::Held { until: current } if current <= until => {
                *s = Standing::Lost(reason);
                true
            }
            _ => false,
        });
    }

    /// Marks it lost for `reason`.
    pub(crate) fn lose(&self, reason: R) {
        self.standing.send_replace(Standing::Lost(reason));
    }

    /// Moves its deadline to `until`, unless it is lost or held longer.
    pub(crate) fn renewed(&self, until: Instant) {
        self.standing.send_if_modified(|s| match *s {
            Standing::Held { until: current } if current < until => {
                *s = Standing::Held { until };
                true
            }
            _ => false,
        });
    }
}

/// How [`keep_renewed`] renews one thing.
pub(crate) struct Renewer<R, F> {
    /// Its standing.
    pub(crate) hold: Hold<R>,
    /// How long each acked renewal holds it, from the renewal's send time.
    pub(crate) ttl: Duration,
    /// Why it is lost when its deadline passes.
    pub(crate) expired: R,
    /// Which refusals mean it is lost, and why.
    pub(crate) lost_by: fn(&Error) -> Option<R>,
    /// Sends one renewal, given the deadline and the longest one try may
    /// take.
    pub(crate) renew: F,
    /// For the log: what is renewed.
    pub(crate) what: String,
}

/// Renews every ttl/3 (sooner after a failure) until it is lost, moving
/// the deadline to each acked renewal's send time plus the ttl.
pub(crate) async fn keep_renewed<R, F, Fut>(renewer: Renewer<R, F>)
where
    R: Copy + Send + Sync + 'static,
    F: FnMut(Instant, Duration) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let Renewer {
        hold,
        ttl,
        expired,
        lost_by,
        mut renew,
        what,
    } = renewer;
    // Never a busy loop, whatever the ttl.
    let period = (ttl / 3).max(Duration::from_millis(10));
    let mut pause = period;
    loop {
        tokio::time::sleep(pause).await;
        let until = match *hold.standing.borrow() {
            Standing::Held { until } => until,
            Standing::Lost(_) => return,
        };
        let sent_at = Instant::now();
        if sent_at >= until {
            hold.lose(expired);
            return;
        }
        // A node cut off from the leader may take seconds to say so: each
        // try is short, so that one slow node does not use up the time.
        let try_timeout = (ttl / 6).max(Duration::from_millis(200));
        match renew(until, try_timeout).await {
            Ok(()) => {
                hold.renewed(sent_at + ttl);
                pause = period;
            }
            Err(e) => {
                if let Some(reason) = lost_by(&e) {
                    hold.lose(reason);
                    return;
                }
                tracing::warn!(what = %what, error = %e, "renewal failed; trying again");
                pause = (period / 4).max(Duration::from_millis(50));
            }
        }
    }
}
