//! [`FenceGuard`]: the highest token seen per resource, and refusal of
//! anything lower.
//!
//! Two contracts: [`FenceStore`] keeps only the tokens, so the check and
//! the write it guards are two steps, made safe by [`FenceGuard::admit_then`]
//! within one process only; [`FencedStore`] checks the token and writes in
//! one atomic step of the store itself, which is what makes a store shared
//! by several processes safe.

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

/// What a [`FencedStore`] did with a fenced write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fenced {
    /// The token was admitted (it is now the resource's highest) and the
    /// write applied, in one step.
    Written,
    /// A higher token was admitted before: nothing was written.
    Stale {
        /// The highest token admitted for the resource.
        highest: FencingToken,
    },
}

/// A store that checks a write's fencing token and applies the write in
/// one atomic step: the contract for a resource written by several
/// processes.
///
/// [`FenceGuard::admit_then`] checks the token and then writes; its lock
/// orders writes within one process only. Two processes sharing a
/// [`FenceStore`] can interleave: one admits token 5, another admits 6 and
/// writes, and then the first writes under 5 after 6. A `FencedStore`
/// closes that gap by doing both in the store, so the check and the write
/// cannot be separated, whichever process makes them.
///
/// Over SQL, keep the token in the row of the data it fences, and make
/// [`FencedStore::write_fenced`] one statement (or one transaction):
///
/// ```sql
/// INSERT INTO invoices (id, fence, body) VALUES ($1, $2, $3)
/// ON CONFLICT (id) DO UPDATE SET fence = $2, body = $3
///   WHERE invoices.fence <= $2;
/// -- no row changed: stale; read the row's fence for `highest`
/// ```
pub trait FencedStore: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What a write carries: the new value, a statement, a closure.
    type Write: Send;

    /// Atomically: if a token higher than `token` was admitted for
    /// `resource`, writes nothing and answers [`Fenced::Stale`]; otherwise
    /// makes `token` the resource's highest and applies `write`, both or
    /// neither. Equal tokens are admitted: they come from the same grant.
    fn write_fenced(
        &self,
        resource: &str,
        token: FencingToken,
        write: Self::Write,
    ) -> impl Future<Output = Result<Fenced, Self::Error>> + Send;
}

/// One store shared by several guards (in tests, or by tasks that each
/// keep their own guard).
impl<F: FencedStore> FencedStore for Arc<F> {
    type Error = F::Error;
    type Write = F::Write;

    fn write_fenced(
        &self,
        resource: &str,
        token: FencingToken,
        write: F::Write,
    ) -> impl Future<Output = Result<Fenced, F::Error>> + Send {
        (**self).write_fenced(resource, token, write)
    }
}

/// A [`FencedStore`] in memory: one value per resource, kept with the
/// token that wrote it, both changed under one lock. Shared (in an `Arc`)
/// by the tasks of one process, it shows the contract a database-backed
/// store meets across processes.
#[derive(Debug)]
pub struct MemoryFencedStore<T> {
    values: Mutex<HashMap<String, (FencingToken, T)>>,
}

impl<T> Default for MemoryFencedStore<T> {
    fn default() -> Self {
        MemoryFencedStore {
            values: Mutex::default(),
        }
    }
}

impl<T: Clone> MemoryFencedStore<T> {
    /// The value of `resource` and the token that wrote it, if any.
    pub fn get(&self, resource: &str) -> Option<(FencingToken, T)> {
        self.lock().get(resource).cloned()
    }
}

impl<T> MemoryFencedStore<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (FencingToken, T)>> {
        // Every change is one insert: a panic cannot leave it half written.
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: Send> FencedStore for MemoryFencedStore<T> {
    type Error = Infallible;
    type Write = T;

    async fn write_fenced(
        &self,
        resource: &str,
        token: FencingToken,
        value: T,
    ) -> Result<Fenced, Infallible> {
        let mut values = self.lock();
        if let Some((highest, _)) = values.get(resource) {
            if *highest > token {
                return Ok(Fenced::Stale { highest: *highest });
            }
        }
        values.insert(resource.to_string(), (token, value));
        Ok(Fenced::Written)
    }
}

/// One store shared by several guards.
impl<F: FenceStore> FenceStore for Arc<F> {
    type Error = F::Error;

    fn highest(
        &self,
        resource: &str,
    ) -> impl Future<Output = Result<Option<FencingToken>, F::Error>> + Send {
        (**self).highest(resource)
    }

    fn replace(
        &self,
        resource: &str,
        expected: Option<FencingToken>,
        new: FencingToken,
    ) -> impl Future<Output = Result<bool, F::Error>> + Send {
        (**self).replace(resource, expected, new)
    }
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
/// Over a [`FenceStore`], admitting a token and doing the write are two
/// steps: a stale writer admitted just before a newer one could still write
/// after it. [`FenceGuard::admit_then`] does both under a per-resource lock
/// **of this guard**: it is safe only when every write to the resource goes
/// through this one guard, in one process. When several processes write
/// the resource, each with its own guard over a shared store, that lock
/// orders nothing between them: use a [`FencedStore`] and
/// [`FenceGuard::write`], which check and write in one atomic step of the
/// store (a conditional update of the row that holds both the data and its
/// token).
#[derive(Debug, Default)]
pub struct FenceGuard<S> {
    store: S,
    /// One lock per resource with a write in progress.
    serial: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<S> FenceGuard<S> {
    /// A guard over `store`: a [`FenceStore`], or a [`FencedStore`].
    pub fn new(store: S) -> FenceGuard<S> {
        FenceGuard {
            store,
            serial: Mutex::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S: FencedStore> FenceGuard<S> {
    /// Writes `write` to `resource` under `token` if no higher token was
    /// admitted for it, in one atomic step of the store: safe whichever
    /// processes share the store.
    pub async fn write(
        &self,
        resource: &str,
        token: FencingToken,
        write: S::Write,
    ) -> Result<(), FenceError<S::Error>> {
        let fenced = self
            .store
            .write_fenced(resource, token, write)
            .await
            .map_err(FenceError::Store)?;
        match fenced {
            Fenced::Written => Ok(()),
            Fenced::Stale { highest } => Err(FenceError::Stale { token, highest }),
        }
    }
}

impl<S: FenceStore> FenceGuard<S> {
    /// Admits `token` for `resource` and runs `write`, both under this
    /// guard's lock for the resource: no other write to it through this
    /// guard comes between the check and the write. `write` runs only if
    /// the token is admitted.
    ///
    /// Within one process only: another process's guard over the same
    /// store does not take this lock, and its newer write can land before
    /// this one's stale write. See [`FencedStore`] for writers in several
    /// processes.
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

    /// The limit `admit_then` documents: two guards (two processes) over
    /// one token store. The stale writer is admitted first and writes
    /// last, after the newer writer's whole write.
    #[tokio::test]
    async fn admit_then_in_two_guards_lets_a_stale_write_land_last() {
        let store = Arc::new(MemoryFenceStore::default());
        let (old, new) = (FenceGuard::new(store.clone()), FenceGuard::new(store));
        let log = Mutex::new(Vec::new());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let stale = old.admit_then("r", FencingToken(5), async {
            wait.await.ok();
            log.lock().unwrap().push(5);
        });
        let newer = async {
            // Once token 5 was admitted, token 6 is admitted and written
            // in full; then the stale write goes on.
            while old.highest("r").await.unwrap() != Some(FencingToken(5)) {
                tokio::task::yield_now().await;
            }
            new.admit_then("r", FencingToken(6), async { log.lock().unwrap().push(6) })
                .await
                .unwrap();
            go.send(()).unwrap();
        };
        let (stale, ()) = tokio::join!(stale, newer);
        assert!(stale.is_ok(), "admitted before 6 was");
        assert_eq!(
            *log.lock().unwrap(),
            vec![6, 5],
            "the stale write landed last"
        );
    }

    #[tokio::test]
    async fn a_fenced_store_refuses_a_stale_write_from_another_guard() {
        let store = Arc::new(MemoryFencedStore::default());
        let (old, new) = (FenceGuard::new(store.clone()), FenceGuard::new(store));
        old.write("r", FencingToken(5), "five").await.unwrap();
        new.write("r", FencingToken(6), "six").await.unwrap();
        let stale = old.write("r", FencingToken(5), "five again").await;
        assert!(matches!(
            stale,
            Err(FenceError::Stale {
                token: FencingToken(5),
                highest: FencingToken(6)
            })
        ));
        new.write("r", FencingToken(6), "six again").await.unwrap();
        assert_eq!(
            new.store().get("r"),
            Some((FencingToken(6), "six again")),
            "an equal token is the same grant"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_in_many_guards_over_a_fenced_store_end_at_the_highest() {
        let store = Arc::new(MemoryFencedStore::default());
        let tasks: Vec<_> = (1..=64u64)
            .map(|t| {
                let guard = FenceGuard::new(store.clone());
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    guard.write("r", FencingToken(t), t).await.is_ok()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.get("r"), Some((FencingToken(64), 64)));
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
