//! Proposing a command and reading the answer a route expects, once: each
//! answer type says which outcomes make it, and any other outcome is a bug
//! answered as an internal error.

use corral_api::{
    KvWriteResponse, LeaseResponse, ReleaseResponse, ResignResponse, RevokeLeaseResponse,
};
use corral_state::{Command, Grant, Outcome};

use crate::error::ApiError;
use crate::idempotency::Origin;
use crate::node::{Node, Submission};

/// What a route reads from an applied command's outcome.
pub(super) trait FromOutcome: Sized {
    /// The answer, or the outcome back when it is not one this answer is
    /// made of.
    fn from_outcome(outcome: Outcome) -> Result<Self, Outcome>;
}

/// Replicates `command` with its origin and reads the answer `T`.
pub(super) async fn propose_as<T: FromOutcome>(
    node: &Node,
    command: Command,
    origin: Origin,
) -> Result<T, ApiError> {
    let submission = Submission::from_origin(command, origin);
    let outcome = node.propose(submission).await?;
    T::from_outcome(outcome).map_err(unexpected)
}

/// An outcome that does not answer the command proposed: a bug.
pub(super) fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::internal(format!("unexpected outcome {outcome:?}"))
}

impl FromOutcome for Grant {
    fn from_outcome(outcome: Outcome) -> Result<Grant, Outcome> {
        match outcome {
            Outcome::Granted(grant) => Ok(grant),
            other => Err(other),
        }
    }
}

impl FromOutcome for ReleaseResponse {
    fn from_outcome(outcome: Outcome) -> Result<ReleaseResponse, Outcome> {
        match outcome {
            Outcome::Released => Ok(ReleaseResponse { released: true }),
            other => Err(other),
        }
    }
}

/// A resign ends a leadership, or withdraws a waiting candidacy.
impl FromOutcome for ResignResponse {
    fn from_outcome(outcome: Outcome) -> Result<ResignResponse, Outcome> {
        match outcome {
            Outcome::Released | Outcome::WaitCancelled => Ok(ResignResponse { resigned: true }),
            other => Err(other),
        }
    }
}

impl FromOutcome for KvWriteResponse {
    fn from_outcome(outcome: Outcome) -> Result<KvWriteResponse, Outcome> {
        match outcome {
            Outcome::Written {
                key, fencing_token, ..
            } => Ok(KvWriteResponse { key, fencing_token }),
            other => Err(other),
        }
    }
}

impl FromOutcome for LeaseResponse {
    fn from_outcome(outcome: Outcome) -> Result<LeaseResponse, Outcome> {
        match outcome {
            Outcome::LeaseGranted { lease_id, ttl_ms } => Ok(LeaseResponse { lease_id, ttl_ms }),
            other => Err(other),
        }
    }
}

impl FromOutcome for RevokeLeaseResponse {
    fn from_outcome(outcome: Outcome) -> Result<RevokeLeaseResponse, Outcome> {
        match outcome {
            Outcome::LeaseEnded {
                released,
                released_semaphores,
                resigned,
            } => Ok(RevokeLeaseResponse {
                released,
                released_semaphores,
                resigned,
            }),
            other => Err(other),
        }
    }
}
