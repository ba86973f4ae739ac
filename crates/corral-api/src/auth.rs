//! Tokens: `/v1/auth/tokens`.

use corral_state::{Permission, Quotas};
use serde::{Deserialize, Serialize};

/// `POST /v1/auth/tokens`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddTokenRequest {
    /// The token's name: 1 to 64 bytes of ASCII letters, digits, `.`, `_`
    /// and `-`.
    pub name: String,
    /// What it may do; the most specific prefix decides.
    pub permissions: Vec<Permission>,
    /// Its share of the cluster; absent: the node's defaults
    /// (`--token-leases-max`, `--token-holds-max`, `--token-kv-keys-max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
}

/// The answer to `POST /v1/auth/tokens`: the only time the secret is
/// shown.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddTokenResponse {
    /// The token's name.
    pub name: String,
    /// Its secret, to send as `Authorization: Bearer <token>`. The cluster
    /// keeps only its hash.
    pub token: String,
}

/// A token as `GET /v1/auth/tokens` lists it: never its secret.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Its share of the cluster; absent for root, which has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// When it was added, in Unix milliseconds of state-machine time.
    pub created_at_ms: u64,
}

/// `GET /v1/auth/tokens`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// Every token, in name order.
    pub tokens: Vec<TokenView>,
}

/// `DELETE /v1/auth/tokens/{name}`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeTokenResponse {
    /// Always true: the token is gone on every node.
    pub revoked: bool,
}
