//! The HTTP API v1 of corral: request and response bodies and error codes.
//!
//! Shared by the server, which produces these bodies, and by clients, which
//! read them. See `docs/api.md` for every endpoint with examples.
//!
//! # Types of its own, not the state machine's
//!
//! A few bodies carry values the state machine also keeps:
//! [`TimelineEvent`] (with [`TimelineKind`]) and [`WaitEdge`]. The
//! `corral_state` types of those names are stored in raft snapshots, so
//! their serde shape is the snapshot format; re-exported here they were
//! also the HTTP format, and a change made for one would silently change
//! the other. So the API has its own copies, made from the state types by
//! `From` (exhaustive matches and destructuring, so a new variant or field
//! does not compile until the API decides about it), and a test checks that
//! both write the same JSON for any value, so the two formats start equal
//! and any drift between them is a decision, not an accident.
//!
//! Identifiers and plain values ([`LeaseId`], [`LockName`],
//! [`FencingToken`], [`Mode`], ...) are still the state machine's own: they
//! are the vocabulary of both formats, one newtype each, not structures
//! that could grow apart.

mod auth;
mod backup;
mod election;
#[cfg(test)]
mod encoding_test;
mod error;
#[cfg(test)]
mod error_test;
mod kv;
mod load;
mod members;
mod queue;
mod semaphore;
mod timeline;
#[cfg(test)]
mod twins_test;

pub use auth::{AddTokenRequest, AddTokenResponse, RevokeTokenResponse, TokenList, TokenView};
pub use backup::{Backup, BACKUP_FORMAT, BACKUP_VERSION};
pub use corral_state::{Access, Permission, Quotas, Scope};
pub use corral_state::{Fence, KvKey, ELECTION_VALUE_BYTES_MAX, KV_VALUE_BYTES_MAX};
pub use corral_state::{FencingToken, LeaseId, LockName, LockOrder, Mode};
pub use corral_state::{ACQUIRE_ALL_NAMES_MAX, LOCK_DELAY_MS_MAX, SEMAPHORE_LIMIT_MAX};
pub use corral_state::{TIMELINE_EVENTS_PER_LOCK, TIMELINE_LOCKS_MAX};
pub use election::{
    CampaignRequest, ElectionView, LeaderView, ProclaimRequest, ResignRequest, ResignResponse,
};
pub use error::{ErrorBody, ErrorDetail, ErrorKind, WaitEdge};
pub use kv::{
    KvDeleteRequest, KvPutRequest, KvValue, KvWriteResponse, ValidateRequest, ValidateResponse,
};
pub use load::{
    percentile_ms, CycleSamples, CycleSummary, LoadReport, LoadRequest, LOAD_DURATION_MS_MAX,
    LOAD_WORKERS_MAX,
};
pub use members::{
    AddMemberRequest, MemberList, MemberRole, MemberStatus, SnapshotBuilt, CATCH_UP_MS_DEFAULT,
    CATCH_UP_MS_MAX,
};
pub use queue::{
    AckRequest, ClaimRequest, ClaimResponse, ClaimedItemView, ConfigureQueueRequest,
    EnqueueRequest, EnqueueResponse, ExtendRequest, ItemId, ItemList, ItemResponse, ItemState,
    ItemView, NackRequest, QueueList, QueueView, ENQUEUE_BODY_BYTES_MAX, ITEM_PAYLOAD_BYTES_MAX,
    LIST_ITEMS_MAX, LIST_QUEUES_MAX, VISIBILITY_MS_MAX,
};
pub use semaphore::{
    PermitHolderView, PermitWaiterView, SemaphoreAcquireRequest, SemaphoreGrantResponse,
    SemaphoreList, SemaphoreReleaseRequest, SemaphoreView,
};
pub use timeline::{TimelineEvent, TimelineKind};

use serde::{Deserialize, Serialize};

/// The longest lease ttl: 24 hours.
pub const TTL_MS_MAX: u64 = corral_state::TTL_MS_MAX;
/// The longest server-side wait of one acquire, in milliseconds.
pub const WAIT_MS_MAX: u64 = 60_000;
/// The largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// The largest body of a fenced write: room for a 64 KiB value even when
/// JSON escapes every byte of it (`\u0001` is 6 bytes).
pub const KV_BODY_BYTES_MAX: usize = 6 * KV_VALUE_BYTES_MAX + 4 * 1024;
/// The most locks (or semaphores) one `?prefix=` listing answers with.
pub const LIST_LOCKS_MAX: usize = 1_000;
/// The most leases one `POST /v1/leases/keepalive` renews.
pub const KEEPALIVE_BATCH_MAX: usize = 1_000;
/// The most leases `GET /v1/leases` lists.
pub const LIST_LEASES_MAX: usize = 1_000;

/// `POST /v1/leases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantLeaseRequest {
    /// How long the lease lives without a keepalive, in milliseconds: from
    /// the node's minimum (twice its longest election timeout) to
    /// [`TTL_MS_MAX`]. Each keepalive starts it again.
    pub ttl_ms: u64,
    /// `lexicographic`: refuse any acquire of a lock that sorts before one
    /// the lease holds or waits for. Absent: only the cluster's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_order: Option<LockOrder>,
    /// How long the lease's locks stay unavailable after it expires (not
    /// after a release or a revoke); 0 to [`LOCK_DELAY_MS_MAX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_delay_ms: Option<u64>,
}

/// A lease and its ttl: the answer to a grant or a keepalive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// The lease's id: 32 hex digits, to send with every request made
    /// under the lease.
    pub lease_id: LeaseId,
    /// Its time to live in milliseconds: it expires about that long after
    /// this answer unless a keepalive comes first.
    pub ttl_ms: u64,
}

/// `DELETE /v1/leases/{id}`: the locks the lease held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeLeaseResponse {
    /// Locks released (and handed to their next waiters).
    pub released: Vec<LockName>,
    /// Semaphores whose permits were released.
    #[serde(default)]
    pub released_semaphores: Vec<LockName>,
    /// Elections the lease led (the next candidate leads each now).
    #[serde(default)]
    pub resigned: Vec<LockName>,
}

/// `GET /v1/leases/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The lease's id: 32 hex digits.
    pub lease_id: LeaseId,
    /// The time to live it was granted with, in milliseconds (not the time
    /// left).
    pub ttl_ms: u64,
    /// The locks it holds, by name.
    pub locks: Vec<HeldLock>,
    /// The semaphores it holds permits of, by name.
    #[serde(default)]
    pub semaphores: Vec<HeldLock>,
    /// The elections it leads, by name.
    #[serde(default)]
    pub elections: Vec<HeldLock>,
    /// The order it must take locks in besides the cluster's:
    /// `lexicographic`, or `none` for only the cluster's.
    #[serde(default)]
    pub lock_order: LockOrder,
    /// How long its locks stay unavailable after it expires, in
    /// milliseconds; 0 for not at all.
    #[serde(default)]
    pub lock_delay_ms: u64,
}

/// `POST /v1/leases/keepalive`: renew many leases at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveAllRequest {
    /// At most [`KEEPALIVE_BATCH_MAX`] leases.
    pub lease_ids: Vec<LeaseId>,
}

/// The answer to a batch keepalive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveAllResponse {
    /// The leases renewed, each for its own ttl from now.
    pub renewed: Vec<LeaseResponse>,
    /// The leases that are gone (expired, revoked, never granted).
    pub not_found: Vec<LeaseId>,
}

/// `GET /v1/leases`: the live leases, in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    /// At most [`LIST_LEASES_MAX`] leases.
    pub leases: Vec<LeaseView>,
    /// True when there were more.
    pub truncated: bool,
}

/// A lock (or semaphore) a lease holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLock {
    /// The lock's (or semaphore's, or election's) name.
    pub name: LockName,
    /// The token it is held under.
    pub fencing_token: FencingToken,
}

/// `POST /v1/locks/acquire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireRequest {
    /// The lease that will hold the lock.
    pub lease_id: LeaseId,
    /// Any name of 1 to 512 bytes without control characters: locks need
    /// no creating, a name nobody holds is free.
    pub name: LockName,
    /// `exclusive` (the default) or `shared`.
    #[serde(default)]
    pub mode: Mode,
    /// How long to wait in the lock's queue; absent or 0: answer at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// A grant: the answer to a successful acquire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantResponse {
    /// The lock granted, as the request named it.
    pub name: LockName,
    /// The lease that holds it now, the request's.
    pub lease_id: LeaseId,
    /// `exclusive` (the only holder) or `shared` (one of the readers), as
    /// asked for.
    pub mode: Mode,
    /// The token of this grant. Pass it to every resource the lock guards.
    pub fencing_token: FencingToken,
}

/// `POST /v1/locks/acquire-all`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireAllRequest {
    /// The lease that will hold the locks.
    pub lease_id: LeaseId,
    /// 1 to [`ACQUIRE_ALL_NAMES_MAX`] distinct locks.
    pub names: Vec<LockName>,
    /// The mode of every grant: `exclusive` (the default) or `shared`.
    #[serde(default)]
    pub mode: Mode,
    /// How long to wait for all of them together; absent or 0: answer at
    /// once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The answer to a successful acquire-all: one grant per name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireAllResponse {
    /// The lease that holds the locks.
    pub lease_id: LeaseId,
    /// Every lock, in name order.
    pub grants: Vec<NamedToken>,
}

/// One lock of an acquire-all and the token of its grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedToken {
    /// One of the locks the request named.
    pub name: LockName,
    /// `exclusive` or `shared`: the request's mode, the same for every
    /// lock.
    pub mode: Mode,
    /// The token of its grant.
    pub fencing_token: FencingToken,
}

/// `POST /v1/locks/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// The lease that holds the lock; another lease's release is refused
    /// with `not_holder`.
    pub lease_id: LeaseId,
    /// The lock to release; the next waiters are granted it.
    pub name: LockName,
    /// The token of the grant to end. When given, the release ends only
    /// that grant: if the lease holds under another token (it acquired
    /// again since), it is refused with `not_holder` and changes nothing,
    /// so a release delayed in the network cannot end a newer grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
}

/// The answer to a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    /// Always true: a release that did not happen is an error.
    pub released: bool,
}

/// `GET /v1/locks?name=`: one lock. A free lock has no holder and no
/// waiters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockView {
    /// The lock asked about (free or not).
    pub name: LockName,
    /// Its exclusive holder, or null when free or held shared.
    pub holder: Option<HolderView>,
    /// Every holder: the exclusive one, or all shared ones.
    pub holders: Vec<HolderView>,
    /// Waiting leases, next first: those the caller may see (see
    /// `queue` for every place in line).
    pub waiters: Vec<LeaseId>,
    /// The same waiters with what they wait for, next first.
    #[serde(default)]
    pub queue: Vec<WaiterView>,
    /// While the lock is under lock-delay: when it ends, in Unix
    /// milliseconds of state-machine time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed_until_ms: Option<u64>,
}

/// A lease waiting in a lock's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiterView {
    /// The lease whose acquire waits.
    /// Absent unless the caller owns the lease or has admin access to
    /// the name (with auth off, always there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// `exclusive` or `shared`: how it will hold the lock once granted.
    pub mode: Mode,
    /// True when it waits for an acquire-all, granted only together with
    /// its other locks.
    pub acquire_all: bool,
}

/// The holder of a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    /// The lease the lock is granted to.
    /// Absent unless the caller owns the lease or has admin access to
    /// the name (with auth off, always there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<LeaseId>,
    /// How it holds the lock.
    pub mode: Mode,
    /// The token it holds the lock under.
    pub fencing_token: FencingToken,
}

/// `GET /v1/locks?prefix=`: held locks, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockList {
    /// At most [`LIST_LOCKS_MAX`] locks, the first in name order.
    pub locks: Vec<LockView>,
    /// True when more locks have the prefix than the list holds; ask again
    /// with a longer prefix.
    pub truncated: bool,
}

/// `GET /v1/locks/history?name=`: a lock's recent events, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHistory {
    /// The lock asked about. Its `events` are empty if none are kept: it
    /// was never used, or it was among the stalest of more than
    /// [`TIMELINE_LOCKS_MAX`] locks and forgotten.
    pub name: LockName,
    /// At most [`TIMELINE_EVENTS_PER_LOCK`] events, oldest first.
    pub events: Vec<TimelineEvent>,
    /// When it was read, in state-machine time (Unix ms, but never a
    /// node's wall clock): the leader's clock on the leader, elsewhere the
    /// time of the last write applied. Holds still open last until then.
    #[serde(default)]
    pub now_ms: u64,
}

/// `GET /v1/cluster`: this node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The id of the node that answered (its `--id`).
    pub node_id: u64,
    /// The leader this node follows; null while it knows none (during an
    /// election).
    pub leader_id: Option<u64>,
    /// The raft term this node is in: it rises with every election, so a
    /// higher term means newer news.
    pub term: u64,
    /// The last log index known committed.
    pub commit_index: Option<u64>,
    /// The last log index applied here.
    pub applied_index: Option<u64>,
    /// The last log index covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// The last log index purged from this node's log (covered by a
    /// snapshot).
    pub purged_index: Option<u64>,
    /// Every member, in id order.
    pub members: Vec<MemberView>,
    /// Whether requests need a token (`Authorization: Bearer`).
    #[serde(default)]
    pub auth_enabled: bool,
    /// The cluster's identity: 16 hex digits, made at its first start (a
    /// restored cluster gets one of its own); nodes refuse peers of
    /// another.
    #[serde(default)]
    pub cluster_id: String,
}

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its node id, as in `--initial-cluster`.
    pub id: u64,
    /// The `host:port` its peers reach it on: its `--peer-listen`, or its
    /// one listener without it.
    pub addr: String,
    /// The `host:port` it serves clients on, once this node has learnt it
    /// from the member (over the peer connection).
    #[serde(default)]
    pub client_addr: Option<String>,
    /// `leader`, `follower` or `learner`, as far as this node knows.
    pub role: String,
}

/// What the leader sends a node that is being added (`POST /raft/join`),
/// with its cluster's identity in the peer headers.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The id the node is added under: it must be its own.
    pub node_id: u64,
    /// Whether auth is on in the cluster: a node that serves its peers on
    /// its client listener then refuses to join.
    #[serde(default)]
    pub auth_enabled: bool,
}

/// What a member says of itself to its peers (`GET /raft/member`).
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSelf {
    /// Its node id.
    pub node_id: u64,
    /// The `host:port` it serves clients on.
    pub client_addr: String,
}
