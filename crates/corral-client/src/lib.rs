//! The Rust client library of corral.
//!
//! [`Client`] talks to any node of a cluster and moves to the next on a
//! connection error, a timeout or a `503`, retrying with exponential
//! backoff and full jitter; every write carries an `Idempotency-Key`, so a
//! retry never applies twice. [`Client::grant_lease`] returns a [`Lease`]
//! kept alive in the background, under which locks are taken as
//! [`LockGuard`]s carrying their fencing token. [`FenceGuard`] is the other
//! half of fencing, for the downstream service that must refuse a stale
//! owner.
//!
//! [`Client::queue`] names a work queue: push items to it, and claim them
//! under a lease with [`Lease::claim`] or [`Lease::claim_wait`], each as a
//! [`ClaimGuard`] whose claim is extended in the background until it is
//! acked or nacked, and which carries the claim's fencing token.
//!
//! A cluster that serves HTTPS is reached through [`Client::with_tls`]: its
//! [`TlsOptions`] name the CA to trust and, for servers that require them,
//! the client's certificate and key.
//!
//! A cluster with auth on needs a bearer token with every request: give
//! its secret to [`Client::with_token`]. A refusal for want of one is
//! [`Error::Unauthenticated`]; one the token does not allow is
//! [`Error::PermissionDenied`]. A cluster admin's client adds, lists and
//! revokes tokens with [`Client::add_token`], [`Client::list_tokens`] and
//! [`Client::revoke_token`], and lists, adds and removes the cluster's
//! members with [`Client::members`], [`Client::add_member`] and
//! [`Client::remove_member`].
//!
//! # Example
//!
//! With a cluster running (`corral dev` starts one on 127.0.0.1:7101-7103):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use corral_client::{Client, LockName};
//!
//! # async fn run() -> Result<(), corral_client::Error> {
//! let client = Client::new(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])?;
//! let lease = client.grant_lease(Duration::from_secs(10)).await?;
//! let name = LockName::new("invoice/42").expect("a valid name");
//! let guard = lease.lock_timeout(&name, Duration::from_secs(30)).await?;
//! // Send the token with every write to what the lock guards.
//! println!("holding {} under token {}", guard.name(), guard.fencing_token());
//! tokio::select! {
//!     reason = lease.lost() => eprintln!("lease lost ({reason}): stop writing"),
//!     () = tokio::time::sleep(Duration::from_secs(1)) => {}
//! }
//! guard.release().await?;
//! lease.revoke().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Fencing a downstream service
//!
//! A lock holder sends its fencing token with every write. The service
//! keeps the highest token it has accepted per resource and refuses any
//! lower one: an owner that paused, lost its lease and woke up after
//! someone else took over is refused, whatever it believes.
//!
//! ```
//! use corral_client::{FenceGuard, FencingToken, MemoryFenceStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let guard = FenceGuard::new(MemoryFenceStore::default());
//! // The first owner writes under token 7.
//! guard.admit("invoice/42", FencingToken(7)).await.unwrap();
//! // A newer owner writes under token 9.
//! guard.admit("invoice/42", FencingToken(9)).await.unwrap();
//! // The first owner wakes up and tries again: refused.
//! let refused = guard.admit("invoice/42", FencingToken(7)).await;
//! assert!(refused.is_err());
//! # });
//! ```
//!
//! `admit` and then writing are two steps; [`FenceGuard::admit_then`] keeps
//! them together within one process. When several processes write one
//! resource, keep the token with the data and let the store check and write
//! in one step: a [`FencedStore`] (a conditional update of the row),
//! written through [`FenceGuard::write`].

#![warn(missing_docs)]

mod auth;
mod client;
mod error;
mod fence;
mod guard;
mod lease;
mod members;
mod queue;
mod renew;
#[cfg(test)]
mod test_server;
mod tls;

pub use client::{Client, RetryPolicy};
pub use corral_api::{Access, AddTokenResponse, Permission, Quotas, Scope, TokenList, TokenView};
pub use corral_api::{
    AddMemberRequest, MemberList, MemberRole, MemberStatus, CATCH_UP_MS_DEFAULT, CATCH_UP_MS_MAX,
};
pub use corral_api::{Backup, BACKUP_FORMAT, BACKUP_VERSION};
pub use corral_api::{
    ClaimedItemView, EnqueueResponse, ItemId, ItemList, ItemResponse, ItemState, ItemView,
    QueueView,
};
pub use corral_api::{
    ErrorDetail, ErrorKind, Fence, FencingToken, LeaseId, LockName, LockOrder, Mode,
};
pub use error::Error;
pub use fence::{
    FenceError, FenceGuard, FenceStore, Fenced, FencedStore, MemoryFenceStore, MemoryFencedStore,
    ADMIT_TRIES_MAX,
};
pub use guard::{Held, LockGuard};
pub use lease::{Lease, LeaseOptions, LostReason};
pub use queue::{ClaimGuard, ClaimLost, Queue};
pub use tls::TlsOptions;
