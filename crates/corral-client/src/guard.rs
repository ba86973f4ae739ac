//! [`LockGuard`]: a held lock, its fencing token, and its release.

use corral_api::{
    FencingToken, LockName, Mode, ReleaseRequest, ReleaseResponse, ResignRequest, ResignResponse,
};
use reqwest::Method;

use crate::client::Call;
use crate::error::Error;
use crate::lease::{Claim, Lease};

/// What a [`LockGuard`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
/// when the lease ends). Two guards of one lease for one name share the
/// lease's grant of it: it is released when the last of them is. The
/// second acquire re-granted the name under a newer token, which is the
/// one to fence with from then on: the fenced store and token validation
/// refuse the first guard's.
///
/// A release names the token of the lease's newest grant of the name, so
/// that a release delayed in the network (say, through a node that was
/// paused) cannot end a grant made after it was sent.
#[derive(Debug)]
pub struct LockGuard {
    /// Taken out only by release or drop.
    claim: Option<Claim>,
    name: LockName,
    held: Held,
    mode: Mode,
    token: FencingToken,
}

impl LockGuard {
    pub(crate) fn new(
        claim: Claim,
        name: LockName,
        held: Held,
        mode: Mode,
        token: FencingToken,
    ) -> LockGuard {
        claim.note_token(token);
        LockGuard {
            claim: Some(claim),
            name,
            held,
            mode,
            token,
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
        self.claim
            .as_ref()
            .expect("a guard keeps its claim until release or drop")
            .lease()
    }

    /// Gives the lock up. A lock already gone (its lease ended) counts as
    /// released; one that another guard of the lease still holds stays.
    pub async fn release(mut self) -> Result<(), Error> {
        let Some(claim) = self.claim.take() else {
            return Ok(());
        };
        release_claim(claim, self.held, &self.name).await
    }
}

/// Gives up a guard's claim and, if it was the name's last, releases the
/// name, with no acquire of it by the lease in between.
async fn release_claim(claim: Claim, held: Held, name: &LockName) -> Result<(), Error> {
    let lease = claim.lease().clone();
    let _turn = claim.turn().await;
    let token = claim.newest_token();
    if !claim.give_up() {
        return Ok(());
    }
    release(&lease, held, name, token).await
}

/// Releases `name` of `held` kind for `lease`, only the grant under
/// `fencing_token` if one is given; gone already counts as released.
pub(crate) async fn release(
    lease: &Lease,
    held: Held,
    name: &LockName,
    fencing_token: Option<FencingToken>,
) -> Result<(), Error> {
    let client = lease.client();
    let (lease_id, name) = (lease.id(), name.clone());
    let answer = match held {
        Held::Lock | Held::Semaphore => {
            let path = match held {
                Held::Lock => "/v1/locks/release",
                _ => "/v1/semaphores/release",
            };
            let request = ReleaseRequest {
                lease_id,
                name,
                fencing_token,
            };
            let call = Call::new(Method::POST, path, Some(&request));
            client.write::<_, ReleaseResponse>(call).await.map(drop)
        }
        Held::Election => {
            let request = ResignRequest {
                lease_id,
                name,
                fencing_token,
            };
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
        let Some(claim) = self.claim.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (held, name) = (self.held, self.name.clone());
        runtime.spawn(async move {
            if let Err(e) = release_claim(claim, held, &name).await {
                tracing::warn!(lock = %name, error = %e, "releasing a dropped lock failed; it goes when the lease ends");
            }
        });
    }
}
