//! Tokens and permissions: who may do what.
//!
//! Auth lives in the replicated state, so that every replica decides a
//! command's permission against the tokens as of that command's log
//! position: a check made only where the request came in could be raced
//! by a revocation committed between the check and the apply. The node
//! that takes a request checks too, to refuse early; the apply check is
//! the one that counts.
//!
//! A token is known by its name. Its secret never enters the state: only
//! a SHA-256 of it, computed by the node (this crate does no hashing, to
//! stay free of I/O and randomness; a secret is 256 random bits, so a
//! plain hash is enough).
//!
//! Permissions name a kind of resource, a name prefix and an access level.
//! For a given resource the permission with the longest matching prefix
//! decides, a specific kind before `*` at the same length; `write` implies
//! `read`, and `admin` implies both. Cluster-wide operations (tokens,
//! other tokens' leases, the lock order) need `admin` on `*` with the
//! empty prefix: a cluster admin.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lock::{Kind, LockName};

/// The most tokens the cluster holds, root included.
pub const TOKENS_MAX: usize = 1_000;
/// The most permissions one token carries.
pub const PERMISSIONS_PER_TOKEN_MAX: usize = 64;
/// The longest token name, in bytes.
pub const TOKEN_NAME_BYTES_MAX: usize = 64;
/// The name of the token `--auth-root-token-file` installs.
pub const ROOT_TOKEN_NAME: &str = "root";

/// A token's name: 1 to [`TOKEN_NAME_BYTES_MAX`] bytes of ASCII letters,
/// digits, `.`, `_` and `-`, not all dots.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TokenName(Box<str>);

/// Why a string is not a token name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a token name is 1 to {TOKEN_NAME_BYTES_MAX} bytes of ASCII letters, digits, '.', '_' and '-'"
)]
pub struct TokenNameError;

impl TokenName {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<TokenName, TokenNameError> {
        let name = name.into();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        // `.` and `..` would vanish from a URL path, so could never be revoked.
        let dots_only = name.bytes().all(|b| b == b'.');
        if name.is_empty()
            || name.len() > TOKEN_NAME_BYTES_MAX
            || !name.bytes().all(allowed)
            || dots_only
        {
            return Err(TokenNameError);
        }
        Ok(TokenName(name.into_boxed_str()))
    }

    /// The root token's name.
    pub fn root() -> TokenName {
        TokenName(ROOT_TOKEN_NAME.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenName({})", self.0)
    }
}

impl From<TokenName> for String {
    fn from(name: TokenName) -> String {
        name.0.into_string()
    }
}

impl TryFrom<String> for TokenName {
    type Error = TokenNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        TokenName::new(s)
    }
}

/// The SHA-256 of a token's secret, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TokenHash(pub [u8; 32]);

/// Why a string is not a token hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token hash is 64 hex digits")]
pub struct TokenHashError;

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret, but nothing a log needs whole either.
        write!(f, "TokenHash({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl From<TokenHash> for String {
    fn from(hash: TokenHash) -> String {
        hash.to_string()
    }
}

impl TryFrom<String> for TokenHash {
    type Error = TokenHashError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() != 64 || !s.is_ascii() {
            return Err(TokenHashError);
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = &s[2 * i..2 * i + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|_| TokenHashError)?;
        }
        Ok(TokenHash(bytes))
    }
}

/// Who a client's command comes from: a token, by its name and by the hash
/// of the secret the request carried. Apply accepts it only while a token
/// of that name has that hash, so a revoked secret never passes as a new
/// token of the same name.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bearer {
    /// The token's name.
    pub name: TokenName,
    /// The SHA-256 of the secret the request carried.
    pub hash: TokenHash,
}

/// What a permission covers: one kind of resource, or all of them.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Locks.
    Lock,
    /// Semaphores.
    Semaphore,
    /// Elections.
    Election,
    /// Keys of the fenced store.
    Kv,
    /// Work queues.
    Queue,
    /// Every kind.
    #[serde(rename = "*")]
    Any,
}

impl From<Kind> for Scope {
    fn from(kind: Kind) -> Scope {
        match kind {
            Kind::Lock => Scope::Lock,
            Kind::Semaphore => Scope::Semaphore,
            Kind::Election => Scope::Election,
        }
    }
}

/// How much a permission allows, each level including the ones before it.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// See: views, lists, timelines, key values.
    Read,
    /// Take and give up: acquire, release, campaign, fenced writes.
    Write,
    /// Also see other tokens' lease ids; on `*` with the empty prefix,
    /// manage the cluster and its tokens.
    Admin,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        })
    }
}

/// One grant of access to names of a kind that start with a prefix.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// The kind of resource.
    pub kind: Scope,
    /// The names it covers: those starting with this; empty covers all.
    #[serde(default)]
    #[cfg_attr(any(test, feature = "arbitrary"), proptest(regex = "[a-z/]{0,6}"))]
    pub prefix: String,
    /// What it allows.
    pub access: Access,
}

/// How much one token may take of the cluster's shared capacity, so that
/// one client cannot take the cluster-wide caps and leave 429 for
/// everyone else.
#[cfg_attr(any(test, feature = "arbitrary"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Live leases.
    pub leases_max: u32,
    /// Locks, permits and leaderships held plus waits queued, over all its
    /// leases.
    pub holds_max: u32,
    /// Keys of the fenced store it created.
    pub kv_keys_max: u32,
}

/// A token as the replicated state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The SHA-256 of its secret.
    pub hash: TokenHash,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Its share of the cluster; `None` (root) has no share beyond the
    /// cluster's caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// State-machine time at which it was added.
    pub created_at_ms: u64,
}

impl Token {
    /// The access this token has to `name` of `kind`: that of its
    /// permission with the longest matching prefix, a specific kind before
    /// `*`. `None` when no permission covers the name.
    pub fn access(&self, kind: Scope, name: &str) -> Option<Access> {
        // Two permissions of the same kind and prefix: the higher access,
        // whatever their order.
        self.permissions
            .iter()
            .filter(|p| (p.kind == kind || p.kind == Scope::Any) && name.starts_with(&p.prefix))
            .max_by_key(|p| (p.prefix.len(), p.kind != Scope::Any, p.access))
            .map(|p| p.access)
    }

    /// Whether this token manages the cluster: `admin` on `*` with the
    /// empty prefix.
    pub fn is_cluster_admin(&self) -> bool {
        self.permissions
            .iter()
            .any(|p| p.kind == Scope::Any && p.prefix.is_empty() && p.access == Access::Admin)
    }

    /// Whether it may take anything at all: some permission to write.
    /// Granting a lease needs it.
    pub fn writes_anything(&self) -> bool {
        self.permissions.iter().any(|p| p.access >= Access::Write)
    }
}

/// The permissions of the root token: everything.
pub fn root_permissions() -> Vec<Permission> {
    vec![Permission {
        kind: Scope::Any,
        prefix: String::new(),
        access: Access::Admin,
    }]
}

/// Checks what a client asks a new token to carry.
pub fn check_permissions(permissions: &[Permission]) -> Result<(), String> {
    if permissions.len() > PERMISSIONS_PER_TOKEN_MAX {
        return Err(format!(
            "a token carries at most {PERMISSIONS_PER_TOKEN_MAX} permissions"
        ));
    }
    for p in permissions {
        if p.prefix.len() > crate::LOCK_NAME_BYTES_MAX {
            return Err(format!(
                "a prefix is at most {} bytes",
                crate::LOCK_NAME_BYTES_MAX
            ));
        }
        if !p.prefix.is_empty() && LockName::new(p.prefix.clone()).is_err() {
            return Err("a prefix follows the rules of lock names".into());
        }
    }
    Ok(())
}

/// The cluster's tokens, and whether auth is on. Two are equal when their
/// tokens are: the index by hash is derived from them.
#[derive(Clone, Debug, Default, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Whether requests need a token; set once, for good, by the first
    /// root token.
    pub(crate) enabled: bool,
    /// Every token by name.
    pub(crate) by_name: BTreeMap<TokenName, Token>,
    /// Names by hash, for looking up a bearer's secret; derived from
    /// `by_name`, so not in snapshots.
    #[serde(skip)]
    by_hash: BTreeMap<TokenHash, TokenName>,
}

impl PartialEq for Tokens {
    fn eq(&self, other: &Tokens) -> bool {
        self.enabled == other.enabled && self.by_name == other.by_name
    }
}

impl Tokens {
    /// Whether the index by hash is the one `by_name` makes.
    pub(crate) fn index_agrees(&self) -> bool {
        let mut rebuilt = self.clone();
        rebuilt.rebuild_derived();
        rebuilt.by_hash == self.by_hash
    }

    /// Whether requests need a token.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A token by name.
    pub fn get(&self, name: &TokenName) -> Option<&Token> {
        self.by_name.get(name)
    }

    /// The token whose secret hashes to `hash`.
    pub fn by_hash(&self, hash: &TokenHash) -> Option<(&TokenName, &Token)> {
        let name = self.by_hash.get(hash)?;
        self.by_name.get_key_value(name)
    }

    /// Every token, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&TokenName, &Token)> {
        self.by_name.iter()
    }

    /// How many tokens exist.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub(crate) fn insert(&mut self, name: TokenName, token: Token) {
        if let Some(old) = self.by_name.get(&name) {
            self.by_hash.remove(&old.hash);
        }
        self.by_hash.insert(token.hash, name.clone());
        self.by_name.insert(name, token);
    }

    pub(crate) fn remove(&mut self, name: &TokenName) -> Option<Token> {
        let token = self.by_name.remove(name)?;
        self.by_hash.remove(&token.hash);
        Some(token)
    }

    /// Whether a token with this hash exists, under any name.
    pub(crate) fn has_hash(&self, hash: &TokenHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Rebuilds the index by hash after decoding.
    pub(crate) fn rebuild_derived(&mut self) {
        self.by_hash = self
            .by_name
            .iter()
            .map(|(name, token)| (token.hash, name.clone()))
            .collect();
    }
}
