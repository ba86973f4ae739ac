//! [`FenceGuard`]: the highest token seen per resource, and refusal of
//! anything lower.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use corral_api::FencingToken;

/// Where a [`FenceGuard`] keeps the highest token per resource.
///
/// Implement it over the service's own database to survive restarts: keep
/// one row per resource, and make [`FenceStore::replace`] a conditional
/// update (`UPDATE fences SET token = $new WHERE resource = $r AND token =
/// $expected`, or an insert when `expected` is `None`), so that two writers
/// racing cannot both win.
pub trait FenceStore: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The highest token accepted for `resource`, if any.
    fn highest(
        &self,
        resource: &str,
    ) -> impl Future<Output = Result<Option<FencingToken>, Self::Error>> + Send;

    /// Sets the highest token of `resource` to `new` if it is still
    /// `expected`; says whether it did.
    fn replace(
        &self,
        resource: &str,
        expected: Option<FencingToken>,
        new: FencingToken,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// A [`FenceStore`] in memory: enough for one process, lost on restart.
#[derive(Debug, Default)]
pub struct MemoryFenceStore {
    highest: Mutex<HashMap<String, FencingToken>>,
}

impl FenceStore for MemoryFenceStore {
    type Error = Infallible;

    async fn highest(&self, resource: &str) -> Result<Option<FencingToken>, Infallible> {
        Ok(self.lock().get(resource).copied())
    }

    async fn replace(
        &self,
        resource: &str,
        expected: Option<FencingToken>,
        new: FencingToken,
    ) -> Result<bool, Infallible> {
        let mut highest = self.lock();
        if highest.get(resource).copied() != expected {
            return Ok(false);
        }
        highest.insert(resource.to_string(), new);
        Ok(true)
    }
}

impl MemoryFenceStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FencingToken>> {
        // A panic while holding this lock cannot leave the map half
        // written: every change is one insert.
        self.highest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a [`FenceGuard`] refused a token.
#[derive(Debug, thiserror::Error)]
pub enum FenceError<E: std::error::Error + 'static> {
    /// A higher token was accepted before: the writer is a stale owner.
    #[error("stale fencing token {token}: token {highest} was accepted before")]
    Stale {
        /// The token refused.
        token: FencingToken,
        /// The highest token accepted for the resource.
        highest: FencingToken,
    },
    /// The store failed.
    #[error("fence store: {0}")]
    Store(#[source] E),
    /// The store kept changing under every try to raise the token.
    #[error(
        "fence store: the token of {resource} kept changing; gave up after {ADMIT_TRIES_MAX} tries"
    )]
    Contended {
        /// The resource.
        resource: String,
    },
}

/// How many times [`FenceGuard::admit`] reads and tries to raise a token
/// before it gives up.
pub const ADMIT_TRIES_MAX: usize = 64;

/// Keeps the highest fencing token accepted per resource and refuses lower
/// ones. Equal tokens are accepted: they come from the same grant.
///
/// Admitting a token and doing the write are two steps: a stale writer
/// admitted just before a newer one could still write after it. Use
/// [`FenceGuard::admit_then`], which does both under a per-resource lock of
/// this guard, when the writes go through this process. When the data
/// lives in a database, the database is the real guard: keep the token in
/// the row and write with a condition (`UPDATE ... SET fence = :token WHERE
/// fence <= :token`), in the same transaction as the data.
#[derive(Debug, Default)]
pub struct FenceGuard<S> {
    store: S,
    /// One lock per resource with a write in progress.
    serial: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<S: FenceStore> FenceGuard<S> {
    /// A guard over `store`.
    pub fn new(store: S) -> FenceGuard<S> {
        FenceGuard {
            store,
            serial: Mutex::default(),
        }
    }

    /// Admits `token` for `resource` and runs `write`, both under this
    /// guard's lock for the resource: no other write to it through this
    /// guard comes between the check and the write. `write` runs only if
    /// the token is admitted.
    pub async fn admit_then<T>(
        &self,
        resource: &str,
        token: FencingToken,
        write: impl Future<Output = T>,
    ) -> Result<T, FenceError<S::Error>> {
        let lock = self
            .serial_lock()
            .entry(resource.to_string())
            .or_default()
            .clone();
        let result = {
            let _held = lock.lock().await;
            match self.admit(resource, token).await {
                Ok(()) => Ok(write.await),
                Err(e) => Err(e),
            }
        };
        // Forget the resource's lock once no one else holds or waits for it.
        drop(lock);
        let mut serial = self.serial_lock();
        if serial
            .get(resource)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            serial.remove(resource);
        }
        result
    }

    fn serial_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.serial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Accepts `token` for `resource` if no higher token was accepted
    /// before, and makes it the highest.
    pub async fn admit(
        &self,
        resource: &str,
        token: FencingToken,
    ) -> Result<(), FenceError<S::Error>> {
        for _ in 0..ADMIT_TRIES_MAX {
            let highest = self
                .store
                .highest(resource)
                .await
                .map_err(FenceError::Store)?;
            match highest {
                Some(highest) if highest > token => {
                    return Err(FenceError::Stale { token, highest });
                }
                Some(highest) if highest == token => return Ok(()),
                _ => {}
            }
            // Someone else may raise it between the read and the replace;
            // then read again.
            let replaced = self
                .store
                .replace(resource, highest, token)
                .await
                .map_err(FenceError::Store)?;
            if replaced {
                return Ok(());
            }
        }
        Err(FenceError::Contended {
            resource: resource.to_string(),
        })
    }

    /// The highest token accepted for `resource`, if any.
    pub async fn highest(&self, resource: &str) -> Result<Option<FencingToken>, S::Error> {
        self.store.highest(resource).await
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn lower_tokens_are_refused_per_resource() {
        let guard = FenceGuard::new(MemoryFenceStore::default());
        guard.admit("a", FencingToken(5)).await.unwrap();
        guard.admit("a", FencingToken(5)).await.unwrap();
        guard.admit("b", FencingToken(1)).await.unwrap();
        let refused = guard.admit("a", FencingToken(4)).await;
        assert!(matches!(
            refused,
            Err(FenceError::Stale {
                token: FencingToken(4),
                highest: FencingToken(5)
            })
        ));
        guard.admit("a", FencingToken(6)).await.unwrap();
        assert_eq!(guard.highest("a").await.unwrap(), Some(FencingToken(6)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn admit_then_keeps_a_stale_write_from_landing_last() {
        let guard = Arc::new(FenceGuard::new(MemoryFenceStore::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (1..=32u64)
            .map(|t| {
                let (guard, log) = (guard.clone(), log.clone());
                tokio::spawn(async move {
                    let write = async {
                        tokio::task::yield_now().await;
                        log.lock().unwrap().push(t);
                    };
                    guard.admit_then("r", FencingToken(t), write).await.is_ok()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        assert!(
            log.windows(2).all(|w| w[0] < w[1]),
            "writes landed in token order: {log:?}"
        );
        assert_eq!(log.last(), Some(&32));
        assert!(
            guard.serial_lock().is_empty(),
            "per-resource locks are dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_end_at_the_highest_token() {
        let guard = Arc::new(FenceGuard::new(MemoryFenceStore::default()));
        let tasks: Vec<_> = (1..=64u64)
            .map(|t| {
                let guard = guard.clone();
                tokio::spawn(async move { guard.admit("r", FencingToken(t)).await.is_ok() })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert!(admitted >= 1);
        assert_eq!(guard.highest("r").await.unwrap(), Some(FencingToken(64)));
    }
}
