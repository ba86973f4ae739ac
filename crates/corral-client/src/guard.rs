//! [`LockGuard`]: a held lock, its fencing token, and its release.

use corral_api::{
    FencingToken, LockName, Mode, ReleaseRequest, ReleaseResponse, ResignRequest, ResignResponse,
};
use reqwest::Method;

use crate::client::Call;
use crate::error::Error;
use crate::lease::Lease;

/// What a [`LockGuard`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// A lock.
    Lock,
    /// Permits of a semaphore.
    Semaphore,
    /// The leadership of an election.
    Election,
}

/// A lock, semaphore permits or an election's leadership, held under a
/// [`Lease`].
///
/// Pass [`LockGuard::fencing_token`] to every resource the lock guards.
/// Release it with [`LockGuard::release`]; a guard dropped without that is
/// released in the background, best effort (if that fails, the lock goes
/// when the lease ends).
#[derive(Debug)]
pub struct LockGuard {
    lease: Lease,
    held: Held,
    name: LockName,
    mode: Mode,
    token: FencingToken,
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(
        lease: Lease,
        held: Held,
        name: LockName,
        mode: Mode,
        token: FencingToken,
    ) -> LockGuard {
        LockGuard {
            lease,
            held,
            name,
            mode,
            token,
            released: false,
        }
    }

    /// The lock, semaphore or election.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// What it holds.
    pub fn held(&self) -> Held {
        self.held
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
        release(&self.lease, self.held, &self.name).await
    }
}

async fn release(lease: &Lease, held: Held, name: &LockName) -> Result<(), Error> {
    let client = lease.client();
    let (lease_id, name) = (lease.id(), name.clone());
    let answer = match held {
        Held::Lock | Held::Semaphore => {
            let path = match held {
                Held::Lock => "/v1/locks/release",
                _ => "/v1/semaphores/release",
            };
            let request = ReleaseRequest { lease_id, name };
            let call = Call::new(Method::POST, path, Some(&request));
            client.write::<_, ReleaseResponse>(call).await.map(drop)
        }
        Held::Election => {
            let request = ResignRequest { lease_id, name };
            let call = Call::new(Method::POST, "/v1/elections/resign", Some(&request));
            client.write::<_, ResignResponse>(call).await.map(drop)
        }
    };
    match answer {
        Ok(()) | Err(Error::NotHolder) | Err(Error::LeaseLost) => Ok(()),
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
        let (lease, held, name) = (self.lease.clone(), self.held, self.name.clone());
        runtime.spawn(async move {
            if let Err(e) = release(&lease, held, &name).await {
                tracing::warn!(lock = %name, error = %e, "releasing a dropped lock failed; it goes when the lease ends");
            }
        });
    }
}
