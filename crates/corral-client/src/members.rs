//! Membership: list the members, add a node and remove one
//! (`/v1/cluster/members`), for a client whose token is a cluster admin's.
//!
//! Only the leader answers these; any other node answers `503` naming it,
//! and the client moves on to the next node as it does for any `503`.

use std::time::Duration;

use corral_api::{AddMemberRequest, MemberList, CATCH_UP_MS_DEFAULT, CATCH_UP_MS_MAX};
use reqwest::Method;

use crate::client::{Call, Client};
use crate::error::Error;

const MEMBERS: &str = "/v1/cluster/members";

/// What an add may take on the leader besides the catch-up: the join
/// handshake (5 s at most on the leader) and two membership commits.
const ADD_OVERHEAD: Duration = Duration::from_secs(10);

impl Client {
    /// The members as the leader sees them: role, addresses, how far each
    /// is behind, and when each last acknowledged the leader; with the ids
    /// retired by earlier removals.
    pub async fn members(&self) -> Result<MemberList, Error> {
        self.read(Call::new(Method::GET, MEMBERS, None::<&()>))
            .await
    }

    /// Adds the node `request` names, started with `--join`: the leader
    /// checks it answers as that node, makes it a learner, waits up to
    /// `catch_up_ms` (60 s by default) for it to catch up, then makes it a
    /// voter (unless `learner`). Each try may take that long: the client
    /// waits for it, on top of its usual timeout.
    ///
    /// Sent without an `Idempotency-Key` (the cluster takes none here); a
    /// retry is safe all the same: an add of a node that is already a
    /// voter at the same address answers with the members, and one still
    /// a learner waits for it again. Refusals come as
    /// [`Error::Refused`] with their kind: among them
    /// [`ErrorKind::LearnerLagging`](crate::ErrorKind::LearnerLagging)
    /// (it did not catch up in time and stays a learner: send the same add
    /// again to wait longer),
    /// [`ErrorKind::NodeIdRetired`](crate::ErrorKind::NodeIdRetired),
    /// [`ErrorKind::MemberExists`](crate::ErrorKind::MemberExists) (at
    /// another address),
    /// [`ErrorKind::MembershipChangeInProgress`](crate::ErrorKind::MembershipChangeInProgress)
    /// and [`ErrorKind::JoinFailed`](crate::ErrorKind::JoinFailed); none
    /// is retried.
    pub async fn add_member(&self, request: &AddMemberRequest) -> Result<MemberList, Error> {
        let mut call = Call::new(Method::POST, MEMBERS, Some(request));
        call.server_wait = add_wait(request);
        self.read(call).await
    }

    /// Removes member `id` for good: its id is retired and never taken
    /// again. A removal that would leave too few reachable voters for a
    /// majority is refused as
    /// [`ErrorKind::NoReachableMajority`](crate::ErrorKind::NoReachableMajority)
    /// unless `force`. Removing the leader makes it hand leadership over
    /// first and answer `503`, so the client sends the removal again and
    /// the new leader does it.
    ///
    /// Sent without an `Idempotency-Key` (the cluster takes none here): when
    /// a try's answer is lost and a later try finds the member gone, that
    /// later try answers
    /// [`ErrorKind::MemberNotFound`](crate::ErrorKind::MemberNotFound), the
    /// same as for an id that never was a member. [`Client::members`] then
    /// tells them apart: a removed id is in its `retired` list.
    pub async fn remove_member(&self, id: u64, force: bool) -> Result<MemberList, Error> {
        let path = member_path(id, force);
        self.read(Call::new(Method::DELETE, &path, None::<&()>))
            .await
    }
}

/// The path that removes member `id`.
pub(crate) fn member_path(id: u64, force: bool) -> String {
    format!("{MEMBERS}/{id}?force={force}")
}

/// How long the leader may hold an add before it answers: the catch-up
/// bound it was given (the server refuses one above the maximum at once)
/// and the steps around it.
pub(crate) fn add_wait(request: &AddMemberRequest) -> Duration {
    let catch_up = request
        .catch_up_ms
        .unwrap_or(CATCH_UP_MS_DEFAULT)
        .min(CATCH_UP_MS_MAX);
    Duration::from_millis(catch_up) + ADD_OVERHEAD
}

#[cfg(test)]
#[path = "members_test.rs"]
mod tests;
