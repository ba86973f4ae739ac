//! The model of one corral lock: leased, exclusive and fenced.

use crate::model::Model;

/// The sequential specification of one exclusive corral lock, for
/// [`check`](crate::check).
///
/// * At most one lease holds the lock at a time.
/// * Every grant carries a fencing token higher than every earlier grant of
///   the lock (corral's tokens come from one cluster-wide counter that starts
///   at 0 and is incremented before each grant, so the first token is 1 and
///   gaps are normal: other locks take tokens too).
/// * Acquiring a lock the lease already holds grants it again, under a new
///   token higher than every earlier one.
/// * A lease that ends (expiry here) releases the lock.
///
/// Lease ids are whatever the test harness numbers its leases with; they
/// only need to be distinct.
///
/// Not modelled: lock delay (an expired holder's lock refusing grants for a
/// while). Run the failure tests with leases without lock delay, or leave
/// refusals for lock delay out of the history: an operation without effect
/// that is left out only makes the check weaker, never wrong.
///
/// # Operations with an unknown outcome
///
/// An acquire whose outcome is unknown and that is linearized where the
/// lock is free takes it with a token nobody saw. The holder's token is then
/// `None`, and `last_token` stays the last token known: the unknown token is
/// higher than it, and every later grant must be higher than the unknown
/// one, but requiring only `> last_token` of later grants is the simplest
/// bound that never rejects a correct history. (Bumping `last_token` to
/// record that one more token was taken would catch slightly more, but then
/// an unknown acquire followed by an unknown expiry would no longer lead back
/// to the very state before it, and the checker could no longer discard
/// those pairs as useless; with many timed-out clients that costs far more.)
/// If the holder later acquires again, it is told a new grant, whose token
/// is then the holder's. (A re-acquire by the holder whose outcome is
/// unknown leaves the state as it is, by the same reasoning: a re-grant it
/// made took a token above `last_token`, and later grants need only be
/// above that.)
///
/// Released or expired, an unknown holder's lock is free like any other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FencedMutex;

/// What a client asked of the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MutexInput {
    /// Acquire the lock for `lease`, possibly after waiting for it.
    Acquire {
        /// The lease that would hold it.
        lease: u64,
    },
    /// Release the lock held by `lease`.
    Release {
        /// The lease that holds it, or believes it does.
        lease: u64,
    },
    /// `lease` ended without being revoked: the server let it expire.
    ///
    /// Record it with the outcome unknown, invoked at the moment the client
    /// could no longer prove its lease alive (its last keepalive plus the
    /// time to live): the expiry may happen then, at any time after, or
    /// never if the lease was revoked first. A lease that is not holding
    /// the lock when its expiry is linearized changes nothing.
    Expire {
        /// The lease that expired.
        lease: u64,
    },
}

/// What the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MutexOutput {
    /// The acquire was granted with this fencing token.
    Granted {
        /// The fencing token of the grant.
        token: u64,
    },
    /// The acquire had no effect: the lock was busy (for a wait, the wait
    /// ran out).
    ///
    /// Only valid while another lease holds the lock: in corral, the end of
    /// a wait is itself a replicated command that grants instead if the lock
    /// is free by then, so a free lock is never refused.
    NotGranted,
    /// The release freed the lock.
    Released,
    /// The release had no effect: the lease did not hold the lock.
    NotHolder,
    /// The release succeeded as an idempotent release does: it freed the
    /// lock if the lease held it, and otherwise had no effect (a client
    /// library that treats "not the holder" as done answers this).
    ReleasedIfHeld,
    /// The expiry happened. Expiries are normally recorded with the outcome
    /// unknown; this is for a harness that observed one.
    Expired,
}

/// The state of the lock between operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MutexState {
    /// Who holds the lock, if anyone.
    pub holder: Option<Holder>,
    /// The highest token known to have been granted on the lock; 0 before
    /// the first grant. Every new grant must be above it.
    pub last_token: u64,
}

/// The holder of the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Holder {
    /// The lease that holds the lock.
    pub lease: u64,
    /// The token of its grant; `None` if it was granted by an acquire whose
    /// outcome is unknown and has not been seen since.
    pub token: Option<u64>,
}

impl MutexState {
    /// Whether `lease` holds the lock.
    pub fn is_held_by(&self, lease: u64) -> bool {
        self.holder.is_some_and(|h| h.lease == lease)
    }

    /// The lock after its holder let go of it (released or expired).
    fn freed(&self) -> MutexState {
        MutexState {
            holder: None,
            last_token: self.last_token,
        }
    }

    /// The lock granted to `lease` with the known `token`, if the token is
    /// new.
    fn granted(&self, lease: u64, token: u64) -> Option<MutexState> {
        (token > self.last_token).then_some(MutexState {
            holder: Some(Holder {
                lease,
                token: Some(token),
            }),
            last_token: token,
        })
    }
}

impl FencedMutex {
    fn acquire(
        &self,
        state: &MutexState,
        lease: u64,
        output: Option<&MutexOutput>,
    ) -> Option<MutexState> {
        match (state.holder, output) {
            (None, Some(MutexOutput::Granted { token })) => state.granted(lease, *token),
            (None, None) => Some(MutexState {
                holder: Some(Holder { lease, token: None }),
                last_token: state.last_token,
            }),
            // Held by this lease: a re-acquire is a new grant to it, whose
            // token comes after `last_token` like any other (and so after a
            // grant nobody saw, which is replaced).
            (Some(holder), Some(MutexOutput::Granted { token })) if holder.lease == lease => {
                state.granted(lease, *token)
            }
            (Some(holder), Some(MutexOutput::NotGranted)) if holder.lease != lease => Some(*state),
            // Held: whatever the answer was, nothing changed.
            (Some(_), None) => Some(*state),
            _ => None,
        }
    }

    fn release(
        &self,
        state: &MutexState,
        lease: u64,
        output: Option<&MutexOutput>,
    ) -> Option<MutexState> {
        let holds = state.is_held_by(lease);
        match output {
            Some(MutexOutput::Released) => holds.then(|| state.freed()),
            Some(MutexOutput::NotHolder) => (!holds).then_some(*state),
            Some(MutexOutput::ReleasedIfHeld) if holds => Some(state.freed()),
            Some(MutexOutput::ReleasedIfHeld) => Some(*state),
            None if holds => Some(state.freed()),
            None => Some(*state),
            Some(_) => None,
        }
    }

    fn expire(
        &self,
        state: &MutexState,
        lease: u64,
        output: Option<&MutexOutput>,
    ) -> Option<MutexState> {
        match output {
            Some(MutexOutput::Expired) | None if state.is_held_by(lease) => Some(state.freed()),
            Some(MutexOutput::Expired) | None => Some(*state),
            Some(_) => None,
        }
    }
}

impl Model for FencedMutex {
    type State = MutexState;
    type Input = MutexInput;
    type Output = MutexOutput;

    fn init(&self) -> MutexState {
        MutexState::default()
    }

    fn step(
        &self,
        state: &MutexState,
        input: &MutexInput,
        output: Option<&MutexOutput>,
    ) -> Option<MutexState> {
        match *input {
            MutexInput::Acquire { lease } => self.acquire(state, lease, output),
            MutexInput::Release { lease } => self.release(state, lease, output),
            MutexInput::Expire { lease } => self.expire(state, lease, output),
        }
    }

    /// Refusals change nothing wherever they are accepted. A grant to the
    /// holder is not read-only: it may reveal the token of a grant nobody
    /// saw. An expiry frees the lock if its lease holds it.
    fn is_read_only(&self, input: &MutexInput, output: &MutexOutput) -> bool {
        matches!(
            (input, output),
            (MutexInput::Acquire { .. }, MutexOutput::NotGranted)
                | (MutexInput::Release { .. }, MutexOutput::NotHolder)
        )
    }
}

#[cfg(test)]
#[path = "mutex_test.rs"]
mod tests;
