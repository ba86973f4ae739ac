use clap::Parser;
use corral_client::TokenView;

use super::*;
use crate::cli::ClientCommand;
use crate::{Cli, Commands};

fn permission(kind: Scope, prefix: &str, access: Access) -> Permission {
    Permission {
        kind,
        prefix: prefix.into(),
        access,
    }
}

#[test]
fn permissions_split_on_the_first_and_last_colon() {
    let cases = [
        (
            "lock:invoice/:write",
            Scope::Lock,
            "invoice/",
            Access::Write,
        ),
        ("lock::write", Scope::Lock, "", Access::Write),
        ("kv:a:b:read", Scope::Kv, "a:b", Access::Read),
        ("semaphore:::admin", Scope::Semaphore, ":", Access::Admin),
        ("*::admin", Scope::Any, "", Access::Admin),
        ("election:x y/:read", Scope::Election, "x y/", Access::Read),
        ("queue:jobs/:write", Scope::Queue, "jobs/", Access::Write),
    ];
    for (text, kind, prefix, access) in cases {
        let parsed = parse_permission(text).unwrap();
        assert_eq!(parsed, permission(kind, prefix, access), "{text}");
        assert_eq!(permission_text(&parsed), text);
    }
}

#[test]
fn bad_permissions_say_what_is_wrong() {
    let cases = [
        ("", "is not KIND:PREFIX:ACCESS"),
        ("lock", "is not KIND:PREFIX:ACCESS"),
        ("lock:write", "is not KIND:PREFIX:ACCESS"),
        (
            "locks:a/:read",
            "unknown kind `locks` (lock, semaphore, election, kv, queue, *)",
        ),
        ("Lock:a/:read", "unknown kind `Lock`"),
        (
            "lock:a/:owner",
            "unknown access `owner` (read, write, admin)",
        ),
        ("lock:a/:", "unknown access ``"),
    ];
    for (text, expected) in cases {
        let error = parse_permission(text).unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn kinds_are_written_as_the_api_writes_them() {
    for scope in SCOPES {
        let wire = serde_json::to_string(&scope).unwrap();
        assert_eq!(wire, format!("\"{}\"", scope_name(scope)));
    }
    for access in ACCESSES {
        let wire = serde_json::to_string(&access).unwrap();
        assert_eq!(wire, format!("\"{access}\""));
    }
}

#[test]
fn the_token_list_has_a_row_per_permission() {
    let quotas = Quotas {
        leases_max: 10,
        holds_max: 20,
        kv_keys_max: 30,
    };
    let list = TokenList {
        tokens: vec![
            TokenView {
                name: "ci".into(),
                permissions: vec![
                    permission(Scope::Lock, "ci/", Access::Write),
                    permission(Scope::Kv, "", Access::Read),
                ],
                quotas: Some(quotas),
                created_at_ms: 1_700_000_000_000,
            },
            TokenView {
                name: "idle".into(),
                permissions: Vec::new(),
                quotas: Some(quotas),
                created_at_ms: 0,
            },
            TokenView {
                name: "root".into(),
                permissions: vec![permission(Scope::Any, "", Access::Admin)],
                quotas: None,
                created_at_ms: 0,
            },
        ],
    };
    let quoted = "leases 10, holds 20, kv keys 30";
    let expected: Vec<Vec<&str>> = vec![
        vec!["ci", "lock:ci/:write", quoted, "2023-11-14 22:13:20"],
        vec!["", "kv::read"],
        vec!["idle", "(none)", quoted, "1970-01-01 00:00:00"],
        vec!["root", "*::admin", "-", "1970-01-01 00:00:00"],
    ];
    assert_eq!(token_rows(&list), expected);
    assert_eq!(quotas_text(None), "-");
}

/// The `corral auth token add` arguments of a command line, or clap's
/// error.
fn add_args(args: &[&str]) -> Result<AddArgs, clap::Error> {
    let line = ["corral", "auth", "token", "add"].iter().chain(args);
    match Cli::try_parse_from(line)?.command {
        Commands::Client(ClientCommand::Auth(AuthCommand::Token(TokenCommand::Add(add)))) => {
            Ok(add)
        }
        _ => panic!("not an add: {args:?}"),
    }
}

#[test]
fn add_takes_permissions_and_all_three_quotas_or_none() {
    let add = add_args(&[
        "ci",
        "--permission",
        "lock:ci/:write",
        "--permission",
        "kv::read",
    ]);
    let add = add.unwrap();
    assert_eq!(add.name, "ci");
    assert_eq!(add.permissions.len(), 2);
    assert_eq!(add.quotas(), None);
    let quotas = [
        "--leases-max",
        "1",
        "--holds-max",
        "2",
        "--kv-keys-max",
        "3",
    ];
    let add = add_args(&[&["ci", "--permission", "*::read"], &quotas[..]].concat()).unwrap();
    let expected = Quotas {
        leases_max: 1,
        holds_max: 2,
        kv_keys_max: 3,
    };
    assert_eq!(add.quotas(), Some(expected));
    // One quota alone, no permission, a bad permission: usage errors.
    assert!(add_args(&["ci", "--permission", "*::read", "--leases-max", "1"]).is_err());
    assert!(add_args(&["ci"]).is_err());
    let bad = add_args(&["ci", "--permission", "lock:write"]).unwrap_err();
    assert!(
        bad.to_string().contains("is not KIND:PREFIX:ACCESS"),
        "{bad}"
    );
}
