//! Auth in the state machine: tokens, permissions at apply, lease
//! ownership and quotas.

use super::story::{id, name, Story};
use crate::*;

fn token(s: &str) -> TokenName {
    TokenName::new(s).expect("valid token name")
}

fn hash(b: u8) -> TokenHash {
    TokenHash([b; 32])
}

fn permission(kind: Scope, prefix: &str, access: Access) -> Permission {
    Permission {
        kind,
        prefix: prefix.to_string(),
        access,
    }
}

const QUOTAS: Quotas = Quotas {
    leases_max: 2,
    holds_max: 3,
    kv_keys_max: 1,
};

/// The bearer of `name`'s token: root's secret hashes to 0s, the others'
/// as [`with_auth`] and the tests add them.
fn bearer(name: &str) -> Bearer {
    let byte = match name {
        "root" => 0,
        "invoicer" | "whoever" => 1,
        "other" => 2,
        "small" => 3,
        _ => 9,
    };
    Bearer {
        name: token(name),
        hash: hash(byte),
    }
}

/// Runs `command` as `caller`.
fn run_as(s: &mut Story, caller: &str, command: Command) -> Response {
    let mut proposal = Proposal::new(s.now_ms, command);
    proposal.caller = Some(bearer(caller));
    let applied = s.table.apply(proposal);
    s.table.check_invariants().expect("invariants hold");
    applied.response
}

fn grant_as(s: &mut Story, caller: &str, n: u128) -> Response {
    let grant = Command::GrantLease {
        lease_id: id(n),
        ttl_ms: 10_000,
        lock_order: LockOrder::None,
        lock_delay_ms: 0,
    };
    run_as(s, caller, grant)
}

fn acquire_as(s: &mut Story, caller: &str, n: u128, lock: &str) -> Response {
    let acquire = Command::Acquire {
        lease_id: id(n),
        name: name(lock),
        mode: Mode::Exclusive,
        wait_ms: 0,
    };
    run_as(s, caller, acquire)
}

/// A story with auth on, and `invoicer` allowed to write locks under
/// `invoice/` and nothing else.
fn with_auth() -> Story {
    let mut s = Story::new();
    let enabled = s.run(Command::EnableAuth { root_hash: hash(0) });
    assert_eq!(enabled.response, Ok(Outcome::AuthEnabled));
    let add = Command::AddToken {
        name: token("invoicer"),
        hash: hash(1),
        permissions: vec![permission(Scope::Lock, "invoice/", Access::Write)],
        quotas: QUOTAS,
    };
    assert!(run_as(&mut s, "root", add).is_ok());
    s
}

fn denied(response: &Response) -> bool {
    matches!(response, Err(Refusal::PermissionDenied { .. }))
}

#[test]
fn with_auth_off_anyone_does_anything_and_owns_nothing() {
    let mut s = Story::new();
    assert!(grant_as(&mut s, "whoever", 1).is_ok());
    assert!(acquire_as(&mut s, "whoever", 1, "refund/1").is_ok());
    assert_eq!(s.table.lease(id(1)).and_then(|l| l.owner.clone()), None);
    let add = Command::AddToken {
        name: token("t"),
        hash: hash(1),
        permissions: vec![],
        quotas: QUOTAS,
    };
    assert!(matches!(s.run(add).response, Err(Refusal::Invalid { .. })));
}

#[test]
fn a_token_takes_only_what_its_prefix_allows() {
    let mut s = with_auth();
    assert!(grant_as(&mut s, "invoicer", 1).is_ok());
    assert_eq!(
        s.table.lease(id(1)).and_then(|l| l.owner.clone()),
        Some(token("invoicer"))
    );
    assert!(acquire_as(&mut s, "invoicer", 1, "invoice/1").is_ok());
    assert!(denied(&acquire_as(&mut s, "invoicer", 1, "refund/1")));
    let sem = Command::AcquirePermits {
        lease_id: id(1),
        name: name("invoice/1"),
        limit: 2,
        permits: 1,
        wait_ms: 0,
    };
    assert!(denied(&run_as(&mut s, "invoicer", sem)));
    let add = Command::AddToken {
        name: token("other"),
        hash: hash(2),
        permissions: vec![],
        quotas: QUOTAS,
    };
    assert!(denied(&run_as(&mut s, "invoicer", add)));
}

#[test]
fn the_most_specific_prefix_decides_and_write_implies_read() {
    let t = Token {
        hash: hash(1),
        permissions: vec![
            permission(Scope::Any, "", Access::Read),
            permission(Scope::Lock, "invoice/", Access::Write),
            permission(Scope::Any, "invoice/closed/", Access::Read),
            permission(Scope::Lock, "invoice/closed/", Access::Admin),
        ],
        quotas: None,
        created_at_ms: 0,
    };
    assert_eq!(t.access(Scope::Lock, "refund/1"), Some(Access::Read));
    assert_eq!(t.access(Scope::Lock, "invoice/1"), Some(Access::Write));
    assert_eq!(t.access(Scope::Kv, "invoice/1"), Some(Access::Read));
    // Same prefix length: the specific kind before `*`.
    assert_eq!(
        t.access(Scope::Lock, "invoice/closed/1"),
        Some(Access::Admin)
    );
    assert_eq!(t.access(Scope::Kv, "invoice/closed/1"), Some(Access::Read));
    assert!(!t.is_cluster_admin());
    assert!(super::auth::require(&t, Scope::Lock, "invoice/1", Access::Read).is_ok());
    let narrow = Token {
        permissions: vec![permission(Scope::Lock, "a/", Access::Read)],
        ..t
    };
    assert_eq!(narrow.access(Scope::Lock, "b/1"), None);
    assert!(!narrow.writes_anything());
}

#[test]
fn a_revoked_token_is_refused_at_apply_even_for_a_remembered_answer() {
    let mut s = with_auth();
    assert!(grant_as(&mut s, "invoicer", 1).is_ok());
    let keyed = |key: &str| {
        let mut proposal = Proposal::new(
            1_000,
            Command::Acquire {
                lease_id: id(1),
                name: name("invoice/1"),
                mode: Mode::Exclusive,
                wait_ms: 0,
            },
        );
        proposal.caller = Some(bearer("invoicer"));
        proposal.idempotency = Some(Idempotency {
            key: key.to_string(),
            fingerprint: 7,
            window_ms: 60_000,
        });
        proposal
    };
    assert!(s.table.apply(keyed("k")).response.is_ok());
    let revoke = Command::RevokeToken {
        name: token("invoicer"),
    };
    assert!(run_as(&mut s, "root", revoke).is_ok());
    assert_eq!(
        s.table.apply(keyed("k")).response,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(
        acquire_as(&mut s, "invoicer", 1, "invoice/2"),
        Err(Refusal::Unauthenticated)
    );
    // The cluster itself still ends the lease.
    let expire = Command::ExpireLease { lease_id: id(1) };
    assert!(s.run(expire).response.is_ok());
}

#[test]
fn a_lease_is_used_only_by_its_owner_or_an_admin() {
    let mut s = with_auth();
    let add = Command::AddToken {
        name: token("other"),
        hash: hash(2),
        permissions: vec![permission(Scope::Any, "", Access::Write)],
        quotas: QUOTAS,
    };
    assert!(run_as(&mut s, "root", add).is_ok());
    assert!(grant_as(&mut s, "invoicer", 1).is_ok());
    assert!(denied(&acquire_as(&mut s, "other", 1, "invoice/1")));
    let revoke = Command::RevokeLease { lease_id: id(1) };
    assert!(denied(&run_as(&mut s, "other", revoke.clone())));
    let expire = Command::ExpireLease { lease_id: id(1) };
    assert!(denied(&run_as(&mut s, "other", expire)));
    assert!(run_as(&mut s, "root", revoke).is_ok());
}

#[test]
fn quotas_bound_leases_holds_and_keys() {
    let mut s = with_auth();
    let add = Command::AddToken {
        name: token("small"),
        hash: hash(3),
        permissions: vec![permission(Scope::Any, "", Access::Write)],
        quotas: QUOTAS,
    };
    assert!(run_as(&mut s, "root", add).is_ok());
    assert!(grant_as(&mut s, "small", 1).is_ok());
    assert!(grant_as(&mut s, "small", 2).is_ok());
    assert_eq!(
        grant_as(&mut s, "small", 3),
        Err(Refusal::LimitReached(Limit::TokenLeases { max: 2 }))
    );
    assert!(acquire_as(&mut s, "small", 1, "a").is_ok());
    assert!(acquire_as(&mut s, "small", 2, "b").is_ok());
    assert!(acquire_as(&mut s, "small", 2, "c").is_ok());
    // Taking again what it holds adds nothing.
    assert!(acquire_as(&mut s, "small", 2, "c").is_ok());
    assert_eq!(
        acquire_as(&mut s, "small", 1, "d"),
        Err(Refusal::LimitReached(Limit::TokenHolds { max: 3 }))
    );
    let put = |key: &str, token_of_a| Command::KvPut {
        key: name(key),
        value: "v".into(),
        fence: Fence {
            lock: name("a"),
            fencing_token: token_of_a,
        },
        keys_max: 100,
        bytes_max: 10_000,
    };
    let a_token = s.table.lock(&name("a")).and_then(|l| l.newest_token());
    let a_token = a_token.expect("a is held");
    assert!(run_as(&mut s, "small", put("k1", a_token)).is_ok());
    assert!(run_as(&mut s, "small", put("k1", a_token)).is_ok());
    assert_eq!(
        run_as(&mut s, "small", put("k2", a_token)),
        Err(Refusal::LimitReached(Limit::TokenKvKeys { max: 1 }))
    );
    // An ended lease gives its share back.
    assert!(run_as(&mut s, "small", Command::RevokeLease { lease_id: id(1) }).is_ok());
    assert!(grant_as(&mut s, "small", 3).is_ok());
}

#[test]
fn tokens_are_unique_and_root_stays() {
    let mut s = with_auth();
    let add = |name: &str, b: u8| Command::AddToken {
        name: token(name),
        hash: hash(b),
        permissions: vec![],
        quotas: QUOTAS,
    };
    assert_eq!(
        run_as(&mut s, "root", add("invoicer", 9)),
        Err(Refusal::TokenExists)
    );
    assert_eq!(
        run_as(&mut s, "root", add("fresh", 1)),
        Err(Refusal::TokenExists)
    );
    let revoke_root = Command::RevokeToken {
        name: token("root"),
    };
    assert!(matches!(
        run_as(&mut s, "root", revoke_root),
        Err(Refusal::Invalid { .. })
    ));
    let missing = Command::RevokeToken {
        name: token("missing"),
    };
    assert_eq!(run_as(&mut s, "root", missing), Err(Refusal::TokenNotFound));
    // A second root hash changes nothing: auth was on already.
    assert!(s
        .run(Command::EnableAuth { root_hash: hash(5) })
        .response
        .is_ok());
    assert!(s.table.tokens().by_hash(&hash(0)).is_some());
    assert!(s.table.tokens().by_hash(&hash(5)).is_none());
}

#[test]
fn a_snapshot_keeps_tokens_owners_and_their_indexes() {
    let mut s = with_auth();
    assert!(grant_as(&mut s, "invoicer", 1).is_ok());
    let json = serde_json::to_string(&s.table).expect("encodes");
    let mut restored: LockTable = serde_json::from_str(&json).expect("decodes");
    restored.rebuild_derived();
    assert_eq!(restored, s.table);
    let (found, _) = restored.tokens().by_hash(&hash(1)).expect("indexed");
    assert_eq!(found, &token("invoicer"));
    let mut s = Story {
        table: restored,
        now_ms: 2_000,
    };
    assert!(grant_as(&mut s, "invoicer", 2).is_ok());
    assert_eq!(
        grant_as(&mut s, "invoicer", 3),
        Err(Refusal::LimitReached(Limit::TokenLeases { max: 2 }))
    );
}

#[test]
fn with_auth_on_only_the_clusters_own_commands_come_without_a_token() {
    let mut s = with_auth();
    let grant = Command::GrantLease {
        lease_id: id(7),
        ttl_ms: 10_000,
        lock_order: LockOrder::None,
        lock_delay_ms: 0,
    };
    assert_eq!(s.run(grant).response, Err(Refusal::Unauthenticated));
    let add = Command::AddToken {
        name: token("sneaky"),
        hash: hash(7),
        permissions: root_permissions(),
        quotas: QUOTAS,
    };
    assert_eq!(s.run(add).response, Err(Refusal::Unauthenticated));
    assert!(s.run(Command::LiftLockDelays).response.is_ok());
}

#[test]
fn a_secret_that_is_not_the_tokens_is_refused() {
    let mut s = with_auth();
    let mut proposal = Proposal::new(
        s.now_ms,
        Command::GrantLease {
            lease_id: id(1),
            ttl_ms: 10_000,
            lock_order: LockOrder::None,
            lock_delay_ms: 0,
        },
    );
    proposal.caller = Some(Bearer {
        name: token("invoicer"),
        hash: hash(42),
    });
    assert_eq!(
        s.table.apply(proposal).response,
        Err(Refusal::Unauthenticated)
    );
}

#[test]
fn a_name_that_still_owns_leases_cannot_be_added_again() {
    let mut s = with_auth();
    assert!(grant_as(&mut s, "invoicer", 1).is_ok());
    let revoke = Command::RevokeToken {
        name: token("invoicer"),
    };
    assert!(run_as(&mut s, "root", revoke).is_ok());
    let add = Command::AddToken {
        name: token("invoicer"),
        hash: hash(8),
        permissions: vec![],
        quotas: QUOTAS,
    };
    assert_eq!(
        run_as(&mut s, "root", add.clone()),
        Err(Refusal::TokenExists)
    );
    assert!(s
        .run(Command::ExpireLease { lease_id: id(1) })
        .response
        .is_ok());
    assert!(run_as(&mut s, "root", add).is_ok());
}

#[test]
fn a_retry_answered_from_memory_is_not_held_to_the_quota() {
    let mut s = with_auth();
    let keyed = |n: u128| {
        let mut proposal = Proposal::new(
            1_000,
            Command::GrantLease {
                lease_id: id(n),
                ttl_ms: 10_000,
                lock_order: LockOrder::None,
                lock_delay_ms: 0,
            },
        );
        proposal.caller = Some(bearer("invoicer"));
        proposal.idempotency = Some(Idempotency {
            key: format!("grant-{n}"),
            fingerprint: n as u64,
            window_ms: 60_000,
        });
        proposal
    };
    let first = s.table.apply(keyed(1)).response;
    assert!(first.is_ok());
    assert!(s.table.apply(keyed(2)).response.is_ok());
    // At the quota of 2 now; the first grant's retry still gets its answer.
    assert_eq!(s.table.apply(keyed(1)).response, first);
    assert_eq!(
        s.table.apply(keyed(3)).response,
        Err(Refusal::LimitReached(Limit::TokenLeases { max: 2 }))
    );
}

#[test]
fn the_same_prefix_twice_gives_the_higher_access_in_any_order() {
    for permissions in [
        vec![
            permission(Scope::Lock, "a/", Access::Write),
            permission(Scope::Lock, "a/", Access::Read),
        ],
        vec![
            permission(Scope::Lock, "a/", Access::Read),
            permission(Scope::Lock, "a/", Access::Write),
        ],
    ] {
        let t = Token {
            hash: hash(1),
            permissions,
            quotas: None,
            created_at_ms: 0,
        };
        assert_eq!(t.access(Scope::Lock, "a/1"), Some(Access::Write));
    }
    assert!(TokenName::new("..").is_err());
    assert!(TokenName::new(".").is_err());
    assert!(TokenName::new("a.b").is_ok());
}
