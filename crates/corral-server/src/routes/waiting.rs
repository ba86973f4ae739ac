//! Server-side waiting, shared by every acquire: propose, wait for the
//! grant while queued, and withdraw through the log when the wait runs out.

use std::time::Duration;

use corral_api::{ErrorKind, WAIT_MS_MAX};
use corral_state::{
    Command, FencingToken, Grant, Kind, LeaseId, LockName, Outcome, Refusal, Scope, WaitFor,
};
use tokio::time::Instant;

use super::answer::unexpected;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{IdempotencyKey, Origin};
use crate::metrics::AcquireOutcome;
use crate::node::{Node, Submission};
use crate::wait_registry::{WaitEnd, WaitTicket};

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

/// Proposes an acquiring `command` (see [`Command::wait_for`]) and
/// answers with its grants: at once, after waiting in the queue, or from
/// the cancel if the grant won the race. Its latency and outcome go into
/// the metrics.
///
/// `key` is the request's idempotency key and `scope` its route's. The key
/// is fingerprinted over the command, in which the request is normalized
/// (names sorted, an absent wait made 0), so that a retry written
/// differently is still the same request.
pub(super) async fn acquire(
    node: &Node,
    command: Command,
    key: IdempotencyKey,
    scope: &'static str,
) -> Result<Vec<Grant>, ApiError> {
    let started = Instant::now();
    let Some(wait) = command.wait_for() else {
        return Err(ApiError::internal(
            "an acquire without an acquiring command",
        ));
    };
    let kind = wait.kind;
    let origin = key.for_request(node, scope, &command);
    let caller = origin.caller.clone();
    let result = acquire_granted(node, command, origin, wait).await;
    let result = result.map_err(|e| redact_cycle(node, &caller, e));
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

/// A deadlock's cycle as the caller may see it: only the edges whose
/// leases and lock it may see (its own, or under its `admin`); the code
/// says there was a cycle either way.
fn redact_cycle(node: &Node, caller: &Caller, mut error: ApiError) -> ApiError {
    if let ErrorKind::Deadlock { cycle } = &mut error.0.kind {
        let state = node.state.read();
        let table = &state.table;
        cycle.retain(|edge| {
            let sees = |id| caller.sees_lease(table, id, Scope::Lock, edge.waits_for.as_str());
            sees(edge.lease_id) && sees(edge.held_by)
        });
    }
    error
}

/// [`acquire`] of one name: its one grant.
pub(super) async fn acquire_one(
    node: &Node,
    command: Command,
    key: IdempotencyKey,
    scope: &'static str,
) -> Result<Grant, ApiError> {
    let mut grants = acquire(node, command, key, scope).await?;
    debug_assert_eq!(grants.len(), 1, "one name, one grant");
    grants
        .pop()
        .ok_or_else(|| ApiError::internal("an acquire answered with no grant"))
}

async fn acquire_granted(
    node: &Node,
    command: Command,
    origin: Origin,
    wait: WaitFor,
) -> Result<Vec<Grant>, ApiError> {
    let WaitFor {
        kind,
        lease_id,
        names,
        wait_ms,
    } = wait;
    let cancel = command.withdrawal();
    // Registered before proposing, so a grant applied right after the
    // enqueue cannot be missed.
    let ticket = (wait_ms > 0).then(|| node.waits.register(kind, lease_id, &names));
    // The withdrawal below goes without a caller: the node withdraws the
    // wait it registered, even if the token was revoked meanwhile.
    let submission = Submission::from_origin(command, origin);
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
            // A hold's ticket hears of holds only.
            Ok(Some(WaitEnd::Withdrawn(_) | WaitEnd::Claimed(_))) => {}
            Ok(None) | Err(_) => return Ok(WaitOutcome::TimedOut),
        }
    }
}
