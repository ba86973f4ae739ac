//! Tokens: add, list and revoke them (`/v1/auth/tokens`), for a client
//! whose own token is a cluster admin's (`admin` on `*` with the empty
//! prefix).

use corral_api::{
    AddTokenRequest, AddTokenResponse, Permission, Quotas, RevokeTokenResponse, TokenList,
};
use reqwest::Method;

use crate::client::{segment, Call, Client};
use crate::error::Error;

impl Client {
    /// Adds a token named `name` with `permissions` (the most specific
    /// prefix decides) and `quotas` (`None`: the node's defaults), and
    /// returns its secret: the only time the cluster shows it.
    ///
    /// A token with that name already existing is refused as
    /// [`ErrorKind::TokenExists`](crate::ErrorKind::TokenExists). The add
    /// goes without an `Idempotency-Key` (the cluster takes none here, as
    /// a retry could not show the first secret again): when a try's answer
    /// was lost and a later try finds the name taken, the token may exist
    /// with a secret no one has seen; revoke it and add it again.
    pub async fn add_token(
        &self,
        name: &str,
        permissions: Vec<Permission>,
        quotas: Option<Quotas>,
    ) -> Result<AddTokenResponse, Error> {
        if matches!(name, "." | "..") {
            // The cluster would take it, but no URL could name it again.
            return Err(Error::InvalidArgument(format!(
                "a token named {name:?} could never be revoked: URLs resolve that path segment away"
            )));
        }
        let request = AddTokenRequest {
            name: name.to_string(),
            permissions,
            quotas,
        };
        self.read(Call::new(Method::POST, "/v1/auth/tokens", Some(&request)))
            .await
    }

    /// Every token with its permissions and quotas, in name order; never
    /// a secret.
    pub async fn list_tokens(&self) -> Result<TokenList, Error> {
        self.read(Call::new(Method::GET, "/v1/auth/tokens", None::<&()>))
            .await
    }

    /// Revokes the token named `name`: from then on the cluster refuses it
    /// (`401`). No such token is
    /// [`ErrorKind::TokenNotFound`](crate::ErrorKind::TokenNotFound). Sent
    /// under an `Idempotency-Key`, like every write, so that a retry after
    /// a lost answer gets that answer rather than `TokenNotFound`.
    pub async fn revoke_token(&self, name: &str) -> Result<(), Error> {
        let path = token_path(name)?;
        let _: RevokeTokenResponse = self
            .write(Call::new(Method::DELETE, &path, None::<&()>))
            .await?;
        Ok(())
    }
}

/// The path of the token named `name`, its name percent-encoded as one
/// path segment. A name that cannot be one (empty, `.` or `..`, which URLs
/// resolve away) is an [`Error::InvalidArgument`].
pub(crate) fn token_path(name: &str) -> Result<String, Error> {
    Ok(format!("/v1/auth/tokens/{}", segment(name)?))
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod tests;
