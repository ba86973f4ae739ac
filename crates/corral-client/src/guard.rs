//! [`LockGuard`]: a held lock, its fencing token, and its release.

use corral_api::{FencingToken, LockName, Mode, ReleaseRequest, ReleaseResponse};
use reqwest::Method;

use crate::client::Call;
use crate::error::Error;
use crate::lease::Lease;

/// A lock held under a [`Lease`].
///
/// Pass [`LockGuard::fencing_token`] to every resource the lock guards.
/// Release it with [`LockGuard::release`]; a guard dropped without that is
/// released in the background, best effort (if that fails, the lock goes
/// when the lease ends).
#[derive(Debug)]
pub struct LockGuard {
    lease: Lease,
    name: LockName,
    mode: Mode,
    token: FencingToken,
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(lease: Lease, name: LockName, mode: Mode, token: FencingToken) -> LockGuard {
        LockGuard {
            lease,
            name,
            mode,
            token,
            released: false,
        }
    }

    /// The lock.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// Exclusive or shared.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The token of this grant.
    pub fn fencing_token(&self) -> FencingToken {
        self.token
    }

    /// The lease it is held under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Gives the lock up. A lock already gone (its lease ended) counts as
    /// released.
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        release(&self.lease, &self.name).await
    }
}

async fn release(lease: &Lease, name: &LockName) -> Result<(), Error> {
    let request = ReleaseRequest {
        lease_id: lease.id(),
        name: name.clone(),
    };
    let call = Call::new(Method::POST, "/v1/locks/release", Some(&request));
    match lease.client().write::<_, ReleaseResponse>(call).await {
        Ok(_) | Err(Error::NotHolder) | Err(Error::LeaseLost) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released || !self.lease.is_held() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (lease, name) = (self.lease.clone(), self.name.clone());
        runtime.spawn(async move {
            if let Err(e) = release(&lease, &name).await {
                tracing::warn!(lock = %name, error = %e, "releasing a dropped lock failed; it goes when the lease ends");
            }
        });
    }
}
