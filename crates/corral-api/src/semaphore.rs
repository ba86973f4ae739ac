//! `/v1/semaphores`: counting semaphores.

use serde::{Deserialize, Serialize};

use crate::{FencingToken, LeaseId, LockName};

fn one() -> u32 {
    1
}

/// `POST /v1/semaphores/acquire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreAcquireRequest {
    /// The lease that will hold the permits.
    pub lease_id: LeaseId,
    /// Any name of 1 to 512 bytes without control characters: semaphores
    /// need no creating, the first acquire sets the limit.
    pub name: LockName,
    /// Its number of permits, 1 to [`crate::SEMAPHORE_LIMIT_MAX`]: fixed by
    /// the first acquire and kept while the semaphore is held or waited for.
    pub limit: u32,
    /// Permits to take, 1 to `limit`; default 1.
    #[serde(default = "one")]
    pub permits: u32,
    /// How long to wait in the queue; absent or 0: answer at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The answer to a successful semaphore acquire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreGrantResponse {
    /// The semaphore granted, as the request named it.
    pub name: LockName,
    /// The lease that holds the permits.
    pub lease_id: LeaseId,
    /// The permits granted: all the request asked for.
    pub permits: u32,
    /// The token of this grant. Pass it to every resource the semaphore
    /// guards.
    pub fencing_token: FencingToken,
}

/// `POST /v1/semaphores/release`: gives back all the lease's permits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreReleaseRequest {
    /// The lease that holds the permits; another lease's release is
    /// refused with `not_holder`.
    pub lease_id: LeaseId,
    /// The semaphore to give the permits back to; its next waiters are
    /// granted them.
    pub name: LockName,
    /// The token of the grant to end. When given, the release ends only
    /// that grant: if the lease holds under another token (it acquired
    /// again since), it is refused with `not_holder` and changes nothing,
    /// so a release delayed in the network cannot end a newer grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
}

/// `GET /v1/semaphores?name=`: one semaphore. One that no one holds or
/// waits for has no limit yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreView {
    /// The semaphore asked about, in use or not.
    pub name: LockName,
    /// Its limit while in use; null when free.
    pub limit: Option<u32>,
    /// Permits held, summed over the holders.
    pub permits_held: u32,
    /// Every holder, in lease id order.
    pub holders: Vec<PermitHolderView>,
    /// Waiting leases, next first.
    pub waiters: Vec<PermitWaiterView>,
}

/// A holder of permits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitHolderView {
    /// The lease the permits are granted to.
    /// Absent unless the caller owns the lease or has admin access to
    /// the name (with auth off, always there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// How many permits it holds.
    pub permits: u32,
    /// The token of its grant.
    pub fencing_token: FencingToken,
}

/// A lease waiting for permits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitWaiterView {
    /// The lease whose acquire waits.
    /// Absent unless the caller owns the lease or has admin access to
    /// the name (with auth off, always there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// How many permits it waits for.
    pub permits: u32,
}

/// `GET /v1/semaphores?prefix=`: semaphores in use, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreList {
    /// At most [`crate::LIST_LOCKS_MAX`] semaphores.
    pub semaphores: Vec<SemaphoreView>,
    /// True when more semaphores have the prefix than the list holds.
    pub truncated: bool,
}
