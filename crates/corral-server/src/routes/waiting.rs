//! Server-side waiting, shared by every acquire: propose, wait for the
//! grant while queued, and withdraw through the log when the wait runs out.

use std::time::Duration;

use corral_api::{ErrorKind, WAIT_MS_MAX};
use corral_state::{
    Command, FencingToken, Grant, Kind, LeaseId, LockName, Outcome, Refusal, WaitFor,
};
use tokio::time::Instant;

use super::answer::unexpected;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::metrics::AcquireOutcome;
use crate::node::{Node, Submission};
use crate::wait_registry::{WaitEnd, WaitTicket};

/// One acquire as the routes hand it over: the command, and the request's
/// idempotency key with the route it came by. The key is fingerprinted over
/// the command, in which the request is normalized (names sorted, an
/// absent wait made 0), so that a retry written differently is still the
/// same request. What it waits for, and how it withdraws, are read from the
/// command.
pub(super) struct Acquire {
    /// An acquiring command (see [`Command::wait_for`]).
    pub command: Command,
    /// The request's idempotency key, and its route's scope.
    pub key: (IdempotencyKey, &'static str),
}

/// Checks a request's `wait_ms`.
pub(super) fn wait_ms(wait_ms: Option<u64>) -> Result<u64, ApiError> {
    let wait_ms = wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(ApiError::invalid(format!(
            "field `wait_ms`: must be at most {WAIT_MS_MAX}, got {wait_ms}"
        )));
    }
    Ok(wait_ms)
}

/// Proposes the acquire and answers with its grants: at once, after
/// waiting in the queue, or from the cancel if the grant won the race.
/// Its latency and outcome go into the metrics.
pub(super) async fn acquire(node: &Node, acquire: Acquire) -> Result<Vec<Grant>, ApiError> {
    let started = Instant::now();
    let Some(wait) = acquire.command.wait_for() else {
        return Err(ApiError::internal(
            "an acquire without an acquiring command",
        ));
    };
    let kind = wait.kind;
    let result = acquire_granted(node, acquire, wait).await;
    let outcome = match result.as_ref().map_err(ApiError::kind) {
        Ok(_) => AcquireOutcome::Granted,
        Err(ErrorKind::LockBusy { .. }) => AcquireOutcome::Busy,
        Err(ErrorKind::WaitTimeout) => AcquireOutcome::Timeout,
        Err(ErrorKind::Deadlock { .. }) => AcquireOutcome::Deadlock,
        Err(_) => AcquireOutcome::Failed,
    };
    node.metrics.acquire_done(kind, outcome, started.elapsed());
    result
}

async fn acquire_granted(
    node: &Node,
    acquire: Acquire,
    wait: WaitFor,
) -> Result<Vec<Grant>, ApiError> {
    let Acquire {
        command,
        key: (key, route),
    } = acquire;
    let WaitFor {
        kind,
        lease_id,
        names,
        wait_ms,
    } = wait;
    let cancel = command.withdrawal();
    let idempotency = key.for_request(node, route, &command);
    // Registered before proposing, so a grant applied right after the
    // enqueue cannot be missed.
    let ticket = (wait_ms > 0).then(|| node.waits.register(kind, lease_id, &names));
    let submission = Submission {
        command,
        idempotency,
    };
    match node.propose(submission).await? {
        Outcome::Granted(grant) => Ok(vec![grant]),
        Outcome::GrantedAll { grants } => Ok(grants),
        Outcome::Queued { after_token, .. } => {
            let ticket = ticket.ok_or_else(|| ApiError::internal("queued without a wait"))?;
            // A retry answered from its idempotency key may come after the
            // grant it waits for was applied here.
            if let Some(grants) = granted_since(node, kind, lease_id, &names, after_token) {
                return Ok(grants);
            }
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            let cancel = cancel.ok_or_else(|| ApiError::internal("queued without a withdrawal"))?;
            let all = matches!(cancel, Command::CancelWaitAll { .. });
            let ended = match wait_for_grant(ticket, &names, all, after_token, deadline).await? {
                WaitOutcome::Granted(grants) => return Ok(grants),
                WaitOutcome::TimedOut => ApiError::wait_timeout(),
                WaitOutcome::MaybeWithdrawn => ApiError::wait_withdrawn(),
            };
            // Time ran out (or the wait looks withdrawn): withdraw through
            // the log, which answers with the grant if it won the race.
            match node.propose(cancel).await? {
                Outcome::Granted(grant) => Ok(vec![grant]),
                Outcome::GrantedAll { grants } => Ok(grants),
                Outcome::WaitCancelled => Err(ended),
                other => Err(unexpected(other)),
            }
        }
        other => Err(unexpected(other)),
    }
}

/// The lease's grants of every name, if this node has applied them and one
/// is newer than `after_token`.
fn granted_since(
    node: &Node,
    kind: Kind,
    lease_id: LeaseId,
    names: &[LockName],
    after_token: FencingToken,
) -> Option<Vec<Grant>> {
    let state = node.state.read();
    let grants: Vec<Grant> = names
        .iter()
        .map(|name| {
            state
                .table
                .entry(kind, name)?
                .holders
                .get(&lease_id)
                .cloned()
        })
        .collect::<Option<_>>()?;
    grants
        .iter()
        .any(|g| g.fencing_token > after_token)
        .then_some(grants)
}

/// How a wait ended on this node.
enum WaitOutcome {
    /// Granted: the grants.
    Granted(Vec<Grant>),
    /// The request's time ran out.
    TimedOut,
    /// This node applied the withdrawal of an acquire-all of the same
    /// names; it may be an older request's, so the log must say.
    MaybeWithdrawn,
}

/// Waits until the lease is granted every name or ends, or until
/// `deadline`. Only grants newer than `after_token`, the last token handed
/// out when the request was queued, answer this request: an older one is a
/// grant this node applied late. Likewise a withdrawal only hints that this
/// acquire-all (`all`) was withdrawn.
async fn wait_for_grant(
    mut ticket: WaitTicket,
    names: &[LockName],
    all: bool,
    after_token: FencingToken,
    deadline: Instant,
) -> Result<WaitOutcome, ApiError> {
    loop {
        match tokio::time::timeout_at(deadline, ticket.ended.recv()).await {
            Ok(Some(WaitEnd::Granted(grants))) => {
                let fresh = grants.iter().any(|g| g.fencing_token > after_token);
                let covers = names.iter().all(|n| grants.iter().any(|g| g.name == *n));
                if fresh && covers {
                    return Ok(WaitOutcome::Granted(grants));
                }
            }
            Ok(Some(WaitEnd::LeaseEnded)) => return Err(Refusal::LeaseNotFound.into()),
            Ok(Some(WaitEnd::Withdrawn(withdrawn))) if all && withdrawn == names => {
                return Ok(WaitOutcome::MaybeWithdrawn)
            }
            Ok(Some(WaitEnd::Withdrawn(_))) => {}
            Ok(None) | Err(_) => return Ok(WaitOutcome::TimedOut),
        }
    }
}
