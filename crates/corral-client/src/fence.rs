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
#[path = "fence_test.rs"]
mod tests;
