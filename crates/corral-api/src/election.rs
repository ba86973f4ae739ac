//! `/v1/elections`: one leader with a value, candidates in FIFO order.

use serde::{Deserialize, Serialize};

use crate::{FencingToken, LeaseId, LockName};

/// `POST /v1/elections/campaign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRequest {
    /// The candidate's lease.
    pub lease_id: LeaseId,
    /// The election: 1 to 512 bytes, no control characters.
    pub name: LockName,
    /// What the candidate will lead with (an address, an id): at most
    /// [`crate::ELECTION_VALUE_BYTES_MAX`] bytes.
    pub value: String,
    /// How long to wait as a candidate; absent or 0: answer at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `POST /v1/elections/proclaim`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProclaimRequest {
    /// The leader's lease.
    pub lease_id: LeaseId,
    /// The election the lease leads; refused with `not_leader` if it does
    /// not.
    pub name: LockName,
    /// The value to lead with from now on: at most
    /// [`crate::ELECTION_VALUE_BYTES_MAX`] bytes. It comes with a new
    /// token, so observers waiting `after_token` see it.
    pub value: String,
}

/// `POST /v1/elections/resign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResignRequest {
    /// The leader's (or a waiting candidate's) lease.
    pub lease_id: LeaseId,
    /// The election to leave: a leader hands it to the next candidate, a
    /// candidate leaves the queue.
    pub name: LockName,
    /// The token of the leadership to end. When given, only that
    /// leadership ends: if the lease leads under another token (it
    /// campaigned again since) or only waits as a candidate, it is refused
    /// with `not_leader` and changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
}

/// The answer to a resign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResignResponse {
    /// Always true: a resign that did not happen is an error.
    pub resigned: bool,
}

/// An election and its leader: the answer to campaign, proclaim, read and
/// observe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionView {
    /// The election asked about, led or not.
    pub name: LockName,
    /// The leader; null when no one leads.
    pub leader: Option<LeaderView>,
}

/// The leader of an election.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderView {
    /// The lease that leads, until it resigns or ends.
    /// Absent unless the caller owns the lease or has admin access to
    /// the name (with auth off, always there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// What it leads with: its campaign's value, or its last proclaim's.
    pub value: String,
    /// The token of its leadership: taken when it was elected, and anew at
    /// each proclaim. Observers pass it as `after_token`.
    pub fencing_token: FencingToken,
}
