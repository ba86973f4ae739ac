//! The Rust client library of corral.
//!
//! So far it holds the downstream half of fencing: [`FenceGuard`], for a
//! service that takes writes from lock holders and must refuse a stale
//! owner. The client that talks to a cluster comes with the client issue.
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

mod fence;

pub use corral_api::FencingToken;
pub use fence::{FenceError, FenceGuard, FenceStore, MemoryFenceStore};
