//! `corral auth token add|list|revoke`: the tokens of a cluster with auth
//! on, managed with a cluster admin's token.

use clap::{Args, Subcommand};
use corral_client::{
    Access, AddTokenResponse, Client, Error, ErrorKind, Permission, Quotas, Scope, TokenList,
};

use super::exit;
use super::inspect::finish;
use super::output::{self, date_time};

/// `corral auth ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum AuthCommand {
    /// Add, list and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `corral auth token ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Add a token and print its secret on stdout: the only time it is
    /// shown (the cluster keeps only its hash).
    Add(AddArgs),
    /// List the tokens with their permissions and quotas (never their
    /// secrets), in name order.
    List,
    /// Revoke a token: the cluster refuses it from then on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// `corral auth token add`.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    /// The token's name: 1 to 64 ASCII letters, digits, '.', '_' and '-'.
    pub name: String,
    /// What it may do, as KIND:PREFIX:ACCESS; repeat for more. KIND is
    /// lock, semaphore, election, kv, queue or * (every kind); PREFIX the
    /// names it covers (empty for all, as in `lock::read`; it may contain
    /// ':'); ACCESS is read, write (take and give up; implies read) or
    /// admin (also see others' lease ids; `*::admin` manages the
    /// cluster). For each name the longest matching prefix decides.
    #[arg(
        long = "permission",
        value_name = "KIND:PREFIX:ACCESS",
        required = true,
        value_parser = parse_permission
    )]
    pub permissions: Vec<Permission>,
    /// Its most live leases. Give --leases-max, --holds-max and
    /// --kv-keys-max together, or none for the node's defaults.
    #[arg(long, value_name = "N", requires_all = ["holds_max", "kv_keys_max"])]
    pub leases_max: Option<u32>,
    /// Its most locks, permits and leaderships held plus waits queued,
    /// over all its leases.
    #[arg(long, value_name = "N", requires_all = ["leases_max", "kv_keys_max"])]
    pub holds_max: Option<u32>,
    /// Its most keys created in the fenced store.
    #[arg(long, value_name = "N", requires_all = ["leases_max", "holds_max"])]
    pub kv_keys_max: Option<u32>,
}

impl AddArgs {
    /// The quotas given: all three or none (clap makes sure).
    fn quotas(&self) -> Option<Quotas> {
        Some(Quotas {
            leases_max: self.leases_max?,
            holds_max: self.holds_max?,
            kv_keys_max: self.kv_keys_max?,
        })
    }
}

/// Every kind a permission may name, in the order help lists them.
const SCOPES: [Scope; 6] = [
    Scope::Lock,
    Scope::Semaphore,
    Scope::Election,
    Scope::Kv,
    Scope::Queue,
    Scope::Any,
];

/// Every access level.
const ACCESSES: [Access; 3] = [Access::Read, Access::Write, Access::Admin];

/// A kind as the API and the command line write it.
fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Lock => "lock",
        Scope::Semaphore => "semaphore",
        Scope::Election => "election",
        Scope::Kv => "kv",
        Scope::Queue => "queue",
        Scope::Any => "*",
    }
}

/// Parses `KIND:PREFIX:ACCESS`. It splits on the first and the last ':',
/// so the prefix may be empty (`lock::write`) or hold ':' itself
/// (`kv:a:b:read` covers names starting with `a:b`).
pub(super) fn parse_permission(text: &str) -> Result<Permission, String> {
    let shape = || {
        format!(
            "`{text}` is not KIND:PREFIX:ACCESS (like lock:invoice/:write, or lock::read for \
             every lock)"
        )
    };
    let (kind, rest) = text.split_once(':').ok_or_else(shape)?;
    let (prefix, access) = rest.rsplit_once(':').ok_or_else(shape)?;
    let kind = SCOPES
        .into_iter()
        .find(|s| scope_name(*s) == kind)
        .ok_or_else(|| {
            let names: Vec<&str> = SCOPES.into_iter().map(scope_name).collect();
            format!("`{text}`: unknown kind `{kind}` ({})", names.join(", "))
        })?;
    let access = ACCESSES
        .into_iter()
        .find(|a| a.to_string() == access)
        .ok_or_else(|| format!("`{text}`: unknown access `{access}` (read, write, admin)"))?;
    Ok(Permission {
        kind,
        prefix: prefix.to_string(),
        access,
    })
}

/// A permission as `KIND:PREFIX:ACCESS`, as `--permission` takes it.
pub(super) fn permission_text(permission: &Permission) -> String {
    format!(
        "{}:{}:{}",
        scope_name(permission.kind),
        permission.prefix,
        permission.access
    )
}

/// Quotas for people; `-` for none (the root token has no share of its
/// own, only the cluster's caps).
pub(super) fn quotas_text(quotas: Option<Quotas>) -> String {
    quotas.map_or_else(
        || "-".into(),
        |q| {
            format!(
                "leases {}, holds {}, kv keys {}",
                q.leases_max, q.holds_max, q.kv_keys_max
            )
        },
    )
}

/// The rows of `corral auth token list`: one per permission, the name,
/// quotas and creation time on the first; `(none)` for a token without
/// any.
pub(super) fn token_rows(list: &TokenList) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for token in &list.tokens {
        let mut permissions = token.permissions.iter().map(permission_text);
        rows.push(vec![
            token.name.clone(),
            permissions.next().unwrap_or_else(|| "(none)".into()),
            quotas_text(token.quotas),
            date_time(token.created_at_ms),
        ]);
        rows.extend(permissions.map(|p| vec![String::new(), p]));
    }
    rows
}

/// Runs `corral auth ...`; returns the exit code.
pub(super) async fn run(client: &Client, command: AuthCommand, json: bool) -> anyhow::Result<i32> {
    let AuthCommand::Token(command) = command;
    match command {
        TokenCommand::Add(args) => add(client, args, json).await,
        TokenCommand::List => finish(client.list_tokens().await, json, |list| {
            let header = ["NAME", "PERMISSIONS", "QUOTAS", "CREATED (UTC)"];
            output::table(&header, &token_rows(list))
        }),
        TokenCommand::Revoke { name } => {
            let revoked = client
                .revoke_token(&name)
                .await
                .map(|()| serde_json::json!({ "name": name, "revoked": true }));
            finish(revoked, json, |_| outln!("revoked token {name}"))
        }
    }
}

/// `corral auth token add`: the secret alone on stdout (or the answer as
/// JSON), so that `> FILE` keeps just it, and the warning on stderr.
async fn add(client: &Client, args: AddArgs, json: bool) -> anyhow::Result<i32> {
    let quotas = args.quotas();
    let added = client.add_token(&args.name, args.permissions, quotas).await;
    let exists = matches!(
        added,
        Err(Error::Refused {
            kind: ErrorKind::TokenExists,
            ..
        })
    );
    let code = finish(added, json, |added: &AddTokenResponse| {
        outln!("{}", added.token)
    })?;
    if code == exit::OK {
        eprintln!(
            "corral: added token {}; its secret is shown only this once: store it now",
            args.name
        );
    } else if exists {
        eprintln!(
            "corral: an add whose answer was lost ends so too: the token then has a secret no \
             one has seen; `corral auth token revoke {}` and add it again",
            args.name
        );
    }
    Ok(code)
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod tests;
