//! Auth in the lock table: which token may run a command, its quotas, and
//! the commands that manage tokens.

use super::LockTable;
use crate::auth::{
    root_permissions, Access, Bearer, Permission, Quotas, Scope, Token, TokenHash, TokenName,
    Tokens,
};
use crate::command::Command;
use crate::lease::LeaseId;
use crate::lock::{Kind, LockName};
use crate::outcome::{Limit, Outcome, Refusal, Response};
use crate::TOKENS_MAX;

/// A refusal for what a token lacks.
fn denied(reason: impl Into<String>) -> Refusal {
    Refusal::PermissionDenied {
        reason: reason.into(),
    }
}

/// Refuses unless `token` has at least `need` on `name` of `scope`.
pub(crate) fn require(
    token: &Token,
    scope: Scope,
    name: &str,
    need: Access,
) -> Result<(), Refusal> {
    match token.access(scope, name) {
        Some(access) if access >= need => Ok(()),
        _ => Err(denied(format!(
            "{need} access to {} {name:?} is not granted",
            scope_word(scope)
        ))),
    }
}

/// Refuses unless `token` is a cluster admin.
pub(crate) fn require_admin(token: &Token) -> Result<(), Refusal> {
    if token.is_cluster_admin() {
        return Ok(());
    }
    Err(denied(
        "this needs admin access to \"*\" with the empty prefix",
    ))
}

fn scope_word(scope: Scope) -> &'static str {
    match scope {
        Scope::Lock => "lock",
        Scope::Semaphore => "semaphore",
        Scope::Election => "election",
        Scope::Kv => "key",
        Scope::Queue => "queue",
        Scope::Any => "resource",
    }
}

/// The names a command takes or gives up, with their kind.
fn names_of(command: &Command) -> Option<(Scope, Vec<&LockName>)> {
    let (scope, names) = match command {
        Command::Acquire { name, .. } => (Scope::Lock, vec![name]),
        Command::AcquireAll { names, .. } => (Scope::Lock, names.iter().collect()),
        Command::AcquirePermits { name, .. } => (Scope::Semaphore, vec![name]),
        Command::Release { name, kind, .. } => (Scope::from(*kind), vec![name]),
        Command::Campaign { name, .. }
        | Command::Proclaim { name, .. }
        | Command::Resign { name, .. } => (Scope::Election, vec![name]),
        Command::KvPut { key, .. } | Command::KvDelete { key, .. } => (Scope::Kv, vec![key]),
        Command::ConfigureQueue { queue, config, .. } => (
            Scope::Queue,
            [Some(queue), config.dead_letter.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
        ),
        Command::Enqueue { queue, .. }
        | Command::Claim { queue, .. }
        | Command::Ack { queue, .. }
        | Command::ExtendClaim { queue, .. }
        | Command::Nack { queue, .. }
        | Command::TickQueue { queue }
        | Command::CancelClaimWait { queue, .. } => (Scope::Queue, vec![queue]),
        // Listed, not matched with `_`, so that a new command is not left
        // unchecked by mistake.
        Command::GrantLease { .. }
        | Command::RevokeLease { .. }
        | Command::ExpireLease { .. }
        | Command::CancelWait { .. }
        | Command::CancelWaitAll { .. }
        | Command::LiftLockDelays
        | Command::SetLockOrder { .. }
        | Command::EnableAuth { .. }
        | Command::AddToken { .. }
        | Command::RevokeToken { .. }
        | Command::Restore { .. } => return None,
    };
    Some((scope, names))
}

/// The lease a command acts through, if any.
fn lease_of(command: &Command) -> Option<LeaseId> {
    match command {
        Command::RevokeLease { lease_id }
        | Command::ExpireLease { lease_id }
        | Command::Acquire { lease_id, .. }
        | Command::AcquireAll { lease_id, .. }
        | Command::AcquirePermits { lease_id, .. }
        | Command::Release { lease_id, .. }
        | Command::CancelWait { lease_id, .. }
        | Command::CancelWaitAll { lease_id, .. }
        | Command::Campaign { lease_id, .. }
        | Command::Proclaim { lease_id, .. }
        | Command::Resign { lease_id, .. }
        | Command::Claim { lease_id, .. }
        | Command::CancelClaimWait { lease_id, .. } => Some(*lease_id),
        _ => None,
    }
}

impl LockTable {
    /// The cluster's tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Whether `caller` may run `command` now. With auth off, anyone may
    /// run anything. With auth on, a command without a caller must be one
    /// the cluster proposes itself, and a caller must be a token of that
    /// name with that hash.
    ///
    /// The node that takes a request runs this on its copy of the table to
    /// refuse early; apply runs it again, and that one decides.
    pub fn authorize(&self, caller: Option<&Bearer>, command: &Command) -> Result<(), Refusal> {
        if !self.tokens.enabled() {
            return Ok(());
        }
        let Some(bearer) = caller else {
            return match command.is_the_clusters() {
                true => Ok(()),
                false => Err(Refusal::Unauthenticated),
            };
        };
        let name = &bearer.name;
        let token = self.token_of(bearer).ok_or(Refusal::Unauthenticated)?;
        match command {
            Command::EnableAuth { .. }
            | Command::AddToken { .. }
            | Command::RevokeToken { .. }
            | Command::ExpireLease { .. }
            | Command::LiftLockDelays
            | Command::SetLockOrder { .. } => return require_admin(token),
            // Configuring a queue is an admin's of the queue.
            Command::ConfigureQueue { queue, .. } => {
                require(token, Scope::Queue, queue.as_str(), Access::Admin)?
            }
            Command::GrantLease { .. } if !token.writes_anything() => {
                return Err(denied("a lease needs write access to something"))
            }
            _ => {}
        }
        if let Some(lease_id) = lease_of(command) {
            self.require_owner(name, token, lease_id)?;
        }
        if let Some((scope, names)) = names_of(command) {
            for lock in names {
                require(token, scope, lock.as_str(), Access::Write)?;
            }
        }
        Ok(())
    }

    /// The token `bearer` names, if it still has the bearer's hash.
    pub fn token_of(&self, bearer: &Bearer) -> Option<&Token> {
        self.tokens
            .get(&bearer.name)
            .filter(|token| token.hash == bearer.hash)
    }

    /// Refuses unless the lease (when it is live) belongs to `name`, or
    /// `token` is a cluster admin. A lease granted while auth was off
    /// belongs to no token: only an admin may use it.
    pub(crate) fn require_owner(
        &self,
        name: &TokenName,
        token: &Token,
        lease_id: LeaseId,
    ) -> Result<(), Refusal> {
        let Some(lease) = self.leases.get(&lease_id) else {
            return Ok(());
        };
        if lease.owner.as_ref() == Some(name) || token.is_cluster_admin() {
            return Ok(());
        }
        Err(denied("the lease belongs to another token"))
    }

    /// Whether `command` fits in the caller's quotas: leases, holds plus
    /// waits, and fenced keys it created. Checked after [`Self::authorize`].
    pub(crate) fn check_quotas(
        &self,
        caller: Option<&TokenName>,
        command: &Command,
    ) -> Result<(), Refusal> {
        let Some(name) = caller else { return Ok(()) };
        let Some(quotas) = self.tokens.get(name).and_then(|t| t.quotas) else {
            return Ok(());
        };
        match command {
            Command::GrantLease { .. } => {
                let leases = self.owned_leases.get(name).map_or(0, |l| l.len());
                if leases >= quotas.leases_max as usize {
                    return Err(Refusal::LimitReached(Limit::TokenLeases {
                        max: quotas.leases_max,
                    }));
                }
            }
            Command::KvPut { key, .. } if !self.kv.contains_key(key) => {
                let keys = self.owned_keys.get(name).copied().unwrap_or(0);
                if keys >= quotas.kv_keys_max as usize {
                    return Err(Refusal::LimitReached(Limit::TokenKvKeys {
                        max: quotas.kv_keys_max,
                    }));
                }
            }
            _ => self.check_holds_quota(name, quotas, command)?,
        }
        Ok(())
    }

    /// Refuses an acquire whose new names would take the token's leases
    /// past their quota of holds plus waits.
    fn check_holds_quota(
        &self,
        name: &TokenName,
        quotas: Quotas,
        command: &Command,
    ) -> Result<(), Refusal> {
        let Some(wait) = command.wait_for() else {
            return Ok(());
        };
        let Some(lease) = self.leases.get(&wait.lease_id) else {
            return Ok(());
        };
        let kind: Kind = wait.kind;
        let new = wait
            .names
            .iter()
            .filter(|n| !lease.held(kind).contains(n) && !lease.waited(kind).contains(n))
            .count();
        let owned = self.owned_leases.get(name);
        let load: usize = owned
            .into_iter()
            .flatten()
            .filter_map(|id| self.leases.get(id))
            .map(|l| l.load())
            .sum();
        if new > 0 && load + new > quotas.holds_max as usize {
            return Err(Refusal::LimitReached(Limit::TokenHolds {
                max: quotas.holds_max,
            }));
        }
        Ok(())
    }

    /// Turns auth on with the root token, unless it is on already.
    pub(super) fn enable_auth(&mut self, root_hash: TokenHash) -> Response {
        if !self.tokens.enabled() {
            let root = Token {
                hash: root_hash,
                permissions: root_permissions(),
                quotas: None,
                created_at_ms: self.now_ms,
            };
            self.tokens.insert(TokenName::root(), root);
            self.tokens.enabled = true;
        }
        Ok(Outcome::AuthEnabled)
    }

    /// Adds a token, unless its name or its hash is taken.
    pub(super) fn add_token(
        &mut self,
        name: TokenName,
        hash: TokenHash,
        permissions: Vec<Permission>,
        quotas: Quotas,
    ) -> Response {
        if !self.tokens.enabled() {
            return Err(Refusal::Invalid {
                reason: "auth is off: start a node with --auth-root-token-file first".into(),
            });
        }
        crate::auth::check_permissions(&permissions)
            .map_err(|reason| Refusal::Invalid { reason })?;
        // A name whose revoked token still owns live leases stays taken:
        // a new token of that name would own them.
        let owns_leases = self.owned_leases.contains_key(&name);
        if self.tokens.get(&name).is_some() || self.tokens.has_hash(&hash) || owns_leases {
            return Err(Refusal::TokenExists);
        }
        if self.tokens.len() >= TOKENS_MAX {
            return Err(Refusal::LimitReached(Limit::Tokens));
        }
        let token = Token {
            hash,
            permissions,
            quotas: Some(quotas),
            created_at_ms: self.now_ms,
        };
        self.tokens.insert(name.clone(), token);
        Ok(Outcome::TokenAdded { name })
    }

    /// Revokes a token; the root token stays, so that the cluster always
    /// has an admin.
    pub(super) fn revoke_token(&mut self, name: TokenName) -> Response {
        if name == TokenName::root() {
            return Err(Refusal::Invalid {
                reason: "the root token cannot be revoked".into(),
            });
        }
        self.tokens.remove(&name).ok_or(Refusal::TokenNotFound)?;
        Ok(Outcome::TokenRevoked { name })
    }
}
