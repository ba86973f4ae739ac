//! Auth at the API: bearer tokens, the rule every route is under, and the
//! caller each write carries to the state machine, which checks it again
//! as of the write's log position (see `corral_state`'s `auth` module).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use corral_state::{
    Access, Bearer, Command, LeaseId, LockTable, Quotas, Scope, Token, TokenHash, TokenName,
};

use crate::error::ApiError;
use crate::node::Node;
use crate::routes::rules::{rule_of, Rule};

/// The shortest root token secret a node accepts, in bytes.
pub(crate) const ROOT_SECRET_BYTES_MIN: usize = 16;
/// Default quotas of a token added without its own: the most live leases.
pub const TOKEN_LEASES_MAX_DEFAULT: u32 = 10_000;
/// Default quotas: the most holds plus waits over a token's leases.
pub const TOKEN_HOLDS_MAX_DEFAULT: u32 = 100_000;
/// Default quotas: the most fenced keys a token creates.
pub const TOKEN_KV_KEYS_MAX_DEFAULT: u32 = 10_000;
/// The default quotas together.
pub const TOKEN_QUOTAS_DEFAULT: Quotas = Quotas {
    leases_max: TOKEN_LEASES_MAX_DEFAULT,
    holds_max: TOKEN_HOLDS_MAX_DEFAULT,
    kv_keys_max: TOKEN_KV_KEYS_MAX_DEFAULT,
};

/// What a node knows of auth from its flags.
#[derive(Clone, Debug)]
pub(crate) struct AuthSettings {
    /// The hash of the root token in `--auth-root-token-file`: this node
    /// turns auth on when it leads and it is off, and accepts the root
    /// token until then.
    pub root_hash: Option<TokenHash>,
    /// The quotas of a token added without its own.
    pub quotas: Quotas,
    /// Whether `/metrics` needs a token too.
    pub metrics_protected: bool,
}

/// Why the root token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootTokenError {
    /// It cannot be read.
    #[error("cannot read the root token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its secret is too short to be a secret.
    #[error("the root token in {path} is shorter than {ROOT_SECRET_BYTES_MIN} bytes")]
    TooShort {
        /// The file.
        path: String,
    },
}

/// Reads the root token's secret from `path` (surrounding whitespace
/// trimmed) and hashes it.
pub(crate) fn read_root_token(path: &Path) -> Result<TokenHash, RootTokenError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RootTokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let secret = text.trim();
    if secret.len() < ROOT_SECRET_BYTES_MIN {
        return Err(RootTokenError::TooShort { path: shown });
    }
    Ok(hash_secret(secret))
}

/// The SHA-256 of a token's secret: what the state keeps.
pub(crate) fn hash_secret(secret: &str) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    TokenHash(hash)
}

/// A new token's secret: 256 random bits as hex, after a prefix that
/// secret scanners can spot.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("corral_{hex}")
}

/// Who sent a request: the token it came with (its name and the hash of
/// the secret sent), or `None`: no token, which only an open route or a
/// cluster with auth off accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller(pub Option<Bearer>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// A caller's token as of a table: `None` with auth off there.
type Known<'a> = Option<(&'a TokenName, &'a Token)>;

impl Caller {
    /// The caller's name, if it came with a token.
    pub(crate) fn name(&self) -> Option<&TokenName> {
        self.0.as_ref().map(|bearer| &bearer.name)
    }

    /// The caller as of `table`: with auth off there, anyone (`None`);
    /// with auth on, its token, which must exist with the secret's hash
    /// (401 otherwise, no token included). Reads call it on the state
    /// they read after their read barrier, so a revocation is seen at once
    /// and a node that learnt of auth only now still refuses.
    pub(crate) fn check<'a>(&'a self, table: &'a LockTable) -> Result<Known<'a>, ApiError> {
        if !table.tokens().enabled() {
            return Ok(None);
        }
        let bearer = self.0.as_ref().ok_or_else(ApiError::unauthenticated)?;
        let token = table
            .token_of(bearer)
            .ok_or_else(ApiError::unauthenticated)?;
        Ok(Some((&bearer.name, token)))
    }

    /// Refuses unless the caller may `need` `name` of `scope` as of
    /// `table`.
    pub(crate) fn require(
        &self,
        table: &LockTable,
        scope: Scope,
        name: &str,
        need: Access,
    ) -> Result<(), ApiError> {
        let Some((_, token)) = self.check(table)? else {
            return Ok(());
        };
        match token.access(scope, name) {
            Some(access) if access >= need => Ok(()),
            _ => Err(ApiError::permission_denied(format!(
                "{need} access to {name:?} is not granted"
            ))),
        }
    }

    /// Whether the caller may see the id of `lease_id`, which holds or
    /// waits for `name` of `scope`: its owner, and admins of the name (an
    /// ended lease's id only the admins).
    pub(crate) fn sees_lease(
        &self,
        table: &LockTable,
        lease_id: LeaseId,
        scope: Scope,
        name: &str,
    ) -> bool {
        match self.check(table) {
            Ok(None) => true,
            Err(_) => false,
            Ok(Some((caller, token))) => {
                let owned = table
                    .lease(lease_id)
                    .is_some_and(|l| l.owner.as_ref() == Some(caller));
                owned || token.access(scope, name) == Some(Access::Admin)
            }
        }
    }

    /// Whether the caller may use `lease_id` (keepalives): its owner or a
    /// cluster admin; anyone with auth off.
    pub(crate) fn owns(&self, table: &LockTable, lease_id: LeaseId) -> bool {
        match self.check(table) {
            Ok(None) => true,
            Err(_) => false,
            Ok(Some((caller, token))) => {
                let owner = table.lease(lease_id).map(|l| l.owner.as_ref());
                owner.is_none_or(|o| o == Some(caller)) || token.is_cluster_admin()
            }
        }
    }

    /// Refuses early what the state machine would refuse: `command` as
    /// this caller, on this node's copy of the state.
    pub(crate) fn may_propose(&self, table: &LockTable, command: &Command) -> Result<(), ApiError> {
        table
            .authorize(self.0.as_ref(), command)
            .map_err(ApiError::from)
    }
}

/// The `Authorization: Bearer` secret of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

/// Applies the rule of the request's route (every route has one; a route
/// without one is refused) and records the caller for the handler.
pub(crate) async fn authenticate(
    State(node): State<Arc<Node>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Some(path) = parts.extensions.get::<MatchedPath>().cloned() else {
        // No route: the fallback answers 404 and reveals nothing.
        return next.run(Request::from_parts(parts, body)).await;
    };
    let rule = match rule_of(parts.method.as_str(), path.as_str()) {
        Some(Rule::Metrics) if node.auth.metrics_protected => Rule::Token,
        Some(Rule::Metrics) => Rule::Open,
        Some(rule) => rule,
        None => {
            return ApiError::permission_denied("this route has no permission rule").into_response()
        }
    };
    if rule != Rule::Open {
        match identify(&node, &parts, rule).await {
            Ok(caller) => {
                parts.extensions.insert(caller);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// What a bearer's hash finds in the local state: `None` when auth is off
/// there, else the token's name and whether it is a cluster admin, if
/// any. This node's root token counts while auth is off in its state.
type Found = Option<Option<(TokenName, bool)>>;

fn look_up(node: &Node, hash: Option<TokenHash>) -> Found {
    let state = node.state.read();
    let tokens = state.table.tokens();
    if !tokens.enabled() {
        let root = hash.is_some() && hash == node.auth.root_hash;
        return root.then_some(Some((TokenName::root(), true)));
    }
    let found = hash.and_then(|h| tokens.by_hash(&h));
    Some(found.map(|(name, token)| (name.clone(), token.is_cluster_admin())))
}

/// The caller of a request under `rule`: its token, which must exist and,
/// for admin routes, be a cluster admin. With auth off here and no root
/// token file, anyone: the read barrier of a read, and apply for a
/// write, refuse if auth is in fact on. Before anything is refused or
/// taken on this node's word alone (a token it does not know, or its
/// file's root token while it has not seen auth go on), it is looked up
/// again after a read barrier: the token may have been added on the leader
/// a moment ago, and auth may be on with another root.
async fn identify(node: &Node, parts: &Parts, rule: Rule) -> Result<Caller, ApiError> {
    let hash = bearer(parts).map(hash_secret);
    let found = match look_up(node, hash) {
        None if node.auth.root_hash.is_none() => return Ok(Caller(None)),
        // No token at all: nothing to look up again.
        _ if hash.is_none() => None,
        Some(Some(found)) if node.state.read().table.tokens().enabled() => Some(found),
        _ => {
            node.linearize().await?;
            look_up(node, hash).flatten()
        }
    };
    let ((name, admin), hash) = found.zip(hash).ok_or_else(ApiError::unauthenticated)?;
    if rule == Rule::Admin && !admin {
        return Err(ApiError::permission_denied(
            "this needs admin access to \"*\" with the empty prefix",
        ));
    }
    Ok(Caller(Some(Bearer { name, hash })))
}
